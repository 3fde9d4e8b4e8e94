"""BrainHook.search / asearch against the real local server, on speech synthesised by Festival and recognised
for real; a fault-injecting proxy counts the requests and answers 503 on demand."""

from __future__ import annotations

import asyncio
import logging

import pytest

from airflow_provider_brain.exceptions import BrainAPIError
from airflow_provider_brain.hooks import search as search_module
from airflow_provider_brain.hooks.search import SearchHit, SearchScan, check_assets
from tests.fixtures.faults import Fault
from tests.hooks.helpers import fast_hook

#: Four recordings of two sentences each (tests/fixtures/speech.py): "played in the park" is said in the
#: first and the third, "call me back" in the second and the fourth.
RECORDINGS = ([0, 1], [2, 3], [4, 0], [5, 2])
PARK = "Played in the PARK!"
OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def recordings(brain_server, speech):
    """The four recordings, transcribed by the local server: their asset JSON with word timings, in order."""
    assets = []
    with brain_server.client() as client:
        for indices in RECORDINGS:
            response = client.post("/speech:recognize", content=speech.joined(indices).read_bytes(), headers=OCTET)
            assert response.status_code == 200, response.text
            asset_id = response.json()["asset_id"]
            assets.append(client.get(f"/assets/{asset_id}", params={"times": "true"}).json())
    return assets


def phrase_span(asset: dict, phrase: str) -> tuple[float, float]:
    """Where the words of ``phrase`` are in ``asset``'s word timings: (first word's start, last word's end)."""
    wanted = phrase.lower().replace("!", "").split()
    words = [w["word"] for w in asset["words"]]
    at = next(i for i in range(len(words)) if words[i : i + len(wanted)] == wanted)
    return asset["words"][at]["start"], asset["words"][at + len(wanted) - 1]["end"]


def test_a_phrase_said_in_two_of_four_recordings_is_found_in_exactly_those(brain_conn, recordings):
    ids = [a["asset_id"] for a in recordings]
    hits = fast_hook().search(PARK, ids)
    assert sorted(h.asset_id for h in hits) == sorted([ids[0], ids[2]])
    for hit in hits:
        asset = recordings[ids.index(hit.asset_id)]
        start, end = phrase_span(asset, PARK)
        assert (hit.start, hit.end) == (start, end)
        assert 0.0 <= hit.start < hit.end <= asset["duration"] + 1e-6
        assert 0.0 < hit.confidence <= 1.0
        assert hit.text == "played in the park" and hit.query == PARK
    assert [h.confidence for h in hits] == sorted((h.confidence for h in hits), reverse=True)

    other = fast_hook().search("call me back", ids)
    assert sorted(h.asset_id for h in other) == sorted([ids[1], ids[3]])


def test_a_phrase_said_in_none_has_no_hit(brain_conn, recordings):
    ids = [a["asset_id"] for a in recordings]
    assert fast_hook().search("a purple elephant", ids) == []
    assert fast_hook().search("park played", ids) == []  # the words, but not in this order


def test_paging_across_several_pages_returns_every_hit_once(brain_conn, fault_proxy, recordings):
    """ "the" is said 13 times in the four recordings: pages of 2 hits over lists of 3 ids read them all, once each,
    in a bounded number of requests."""
    ids = [a["asset_id"] for a in recordings]
    said = sum(a["transcript"].split().count("the") for a in recordings)
    assert said >= 10
    brain_conn(url=fault_proxy.url)
    hook = fast_hook()
    fault_proxy.seen.clear()
    whole = hook.search("the", ids)
    assert len(fault_proxy.requests_to("/assets/search", "POST")) == 1
    assert len(whole) == said

    fault_proxy.seen.clear()
    paged = search_module.search(hook.transport, "the", ids, page_size=2, ids_per_request=3)
    assert paged == whole  # every hit once, best confidence first
    assert len(set(paged)) == said
    first_three = sum(a["transcript"].split().count("the") for a in recordings[:3])
    # Per list of ids: its full pages, then one short page (or an empty one after a full last page).
    expected = first_three // 2 + 1 + (said - first_three) // 2 + 1
    assert len(fault_proxy.requests_to("/assets/search", "POST")) == expected

    fault_proxy.seen.clear()
    best = search_module.search(hook.transport, "the", ids, limit=3, page_size=2, ids_per_request=3)
    assert best == whole[:3]
    assert len(fault_proxy.requests_to("/assets/search", "POST")) <= 4


def test_many_assets_cost_one_request_per_list_of_ids_not_one_per_asset(brain_conn, fault_proxy, recordings):
    ids = [a["asset_id"] for a in recordings]
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    # 4 real ids among 2,500 unknown ones: three lists of at most 1,000 ids, one page each.
    unknown = [f"{n:016x}" for n in range(2500)]
    hits = fast_hook().search(PARK, [*unknown, *ids])
    assert {h.asset_id for h in hits} == {ids[0], ids[2]}
    assert len(fault_proxy.requests_to("/assets/search", "POST")) == 3


def test_asearch_matches_search(brain_conn, recordings):
    ids = [a["asset_id"] for a in recordings]

    async def run():
        hook = fast_hook()
        try:
            return await hook.asearch(PARK, ids), await search_module.asearch(
                await hook.aget_transport(), "the", ids, page_size=2
            )
        finally:
            await hook.aclose()

    found, paged = asyncio.run(run())
    assert found == fast_hook().search(PARK, ids)
    assert paged == fast_hook().search("the", ids)


def test_search_is_retried_like_a_read_and_logs_no_phrase_or_snippet(brain_conn, fault_proxy, recordings, caplog):
    ids = [a["asset_id"] for a in recordings]
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    fault_proxy.add(
        Fault("status", status=503, path_prefix="/assets/search"), Fault("reset", path_prefix="/assets/search")
    )
    caplog.set_level(logging.DEBUG)
    hits = fast_hook().search(PARK, ids)
    assert len(hits) == 2
    assert len(fault_proxy.requests_to("/assets/search", "POST")) == 3
    logged = caplog.text
    assert "Brain POST /assets/search failed" in logged  # the retries are logged...
    assert "park" not in logged.lower() and "played" not in logged.lower()  # ...without the phrase or the snippet
    assert "played in the park" not in repr(hits) and "park" not in str(hits[0])
    assert repr(hits[0]).startswith(f"SearchHit(asset_id='{hits[0].asset_id}', start=")


def test_client_errors_are_not_retried(brain_conn, fault_proxy, recordings):
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    fault_proxy.add(Fault("status", status=400, body=b'{"error": "bad query"}', path_prefix="/assets/search"))
    with pytest.raises(BrainAPIError, match="400: bad query"):
        fast_hook().search(PARK, [recordings[0]["asset_id"]])
    assert len(fault_proxy.requests_to("/assets/search", "POST")) == 1


# ---------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("phrase", ["", "   ", "?! ...", None, 42])
def test_an_empty_phrase_is_refused_before_anything_is_sent(brain_conn, fault_proxy, recordings, phrase):
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    with pytest.raises(ValueError, match="search phrase must"):
        fast_hook().search(phrase, [recordings[0]["asset_id"]])
    assert fault_proxy.seen == []


def test_a_10000_character_phrase_finds_nothing_and_is_not_echoed(brain_conn, recordings, caplog):
    ids = [a["asset_id"] for a in recordings]
    phrase = ("the park " * 1200)[:10_000]
    caplog.set_level(logging.DEBUG)
    assert fast_hook().search(phrase, ids) == []
    assert fast_hook().search(phrase[:8], ids)  # its first words alone are found
    assert "the park the park" not in caplog.text


@pytest.mark.parametrize("bad", ["../../users", "05E36324FCA6C919", "{{ ti.xcom_pull('x') }}", "", 7])
def test_an_id_that_is_not_an_asset_id_is_refused_before_anything_is_sent(brain_conn, fault_proxy, recordings, bad):
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    with pytest.raises(ValueError, match="Invalid Brain asset id"):
        fast_hook().search(PARK, [recordings[0]["asset_id"], bad])
    assert fault_proxy.seen == []


def test_another_users_asset_gives_no_hit_and_is_reported_unknown(brain_conn, brain_server, speech, recordings):
    with brain_server.client(user="alice") as alice:
        response = alice.post("/speech:recognize", content=speech.file(0).read_bytes(), headers=OCTET)
        theirs = response.json()["asset_id"]
    mine = recordings[0]["asset_id"]
    brain_conn(login="alice", password=brain_server.users["alice"], conn_id="brain_alice")
    assert [h.asset_id for h in fast_hook(brain_conn_id="brain_alice").search(PARK, [theirs])] == [theirs]
    # As demo: alice's asset is not searched, and not known; demo's own is.
    hook = fast_hook()
    assert [h.asset_id for h in hook.search(PARK, [theirs, mine])] == [mine]
    found = check_assets(hook.transport, [theirs, mine, "0" * 16])
    assert found[theirs] is None and found["0" * 16] is None
    assert found[mine] is not None and found[mine].is_done
    assert check_assets(hook.transport, [theirs]) == {theirs: None}


# ---------------------------------------------------------------------------- answers a server may give


def test_a_server_that_ignores_the_page_number_is_caught():
    scan = SearchScan("hello", ["0" * 16], page_size=2)
    page = {"results": [{"asset_id": "0" * 16, "start": s, "end": s + 1, "confidence": 0.9} for s in (1.0, 2.0)]}
    scan.feed(page)
    assert scan.next_call() is not None
    with pytest.raises(BrainAPIError, match="does not advance"):
        scan.feed(page)


def test_a_malformed_hit_is_an_error_that_quotes_no_text():
    scan = SearchScan("hello", ["0" * 16])
    with pytest.raises(BrainAPIError, match="numeric 'start'") as caught:
        scan.feed({"results": [{"asset_id": "0" * 16, "start": "soon", "end": 1, "text": "secret words"}]})
    assert "secret" not in str(caught.value)
    with pytest.raises(BrainAPIError, match="not searched"):
        SearchScan("hello", ["0" * 16]).feed(
            {"results": [{"asset_id": "1" * 16, "start": 0, "end": 1, "confidence": 1}]}
        )
    hit = SearchHit.from_json({"asset_id": "0" * 16, "start": 0, "end": 1, "confidence": 1, "extra": 1}, "q")
    assert hit.text is None and hit.summary() == {"asset_id": "0" * 16, "start": 0.0, "end": 1.0, "confidence": 1.0}
