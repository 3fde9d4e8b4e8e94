"""BrainSearchOperator against the real local server (Festival speech, real recognition); a fault-injecting proxy
counts what is sent."""

from __future__ import annotations

import json
import logging

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_brain.operators.search import BrainSearchOperator, normalize_phrases
from tests.fixtures.speech import SENTENCES

OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def two_assets(brain_server, speech):
    """Sentence 0 ("... played in the park ...") and sentence 2 ("please call me back ..."), transcribed."""
    ids = []
    with brain_server.client() as client:
        for index in (0, 2):
            response = client.post("/speech:recognize", content=speech.file(index).read_bytes(), headers=OCTET)
            assert response.status_code == 200, response.text
            ids.append(response.json()["asset_id"])
    return ids


def run(**kwargs):
    return BrainSearchOperator(task_id="search", **kwargs).execute(context={})


def test_counts_per_phrase_and_per_asset_and_no_transcript(brain_conn, two_assets, caplog, capsys):
    park, call = two_assets
    caplog.set_level(logging.INFO)
    # What a transcribe task returns (summaries), and a batch's failed file, which is left out.
    summaries = [
        {"asset_id": park, "source": "s3://b/park.wav", "status": "done"},
        {"asset_id": call, "source": "s3://b/call.wav", "status": "done"},
        {"asset_id": "f" * 16, "source": "s3://b/broken.wav", "status": "failed"},
    ]
    summary = run(asset_ids=summaries, phrases=["the PARK", "call me back", "a purple elephant"])
    assert summary == {
        "hits": 2,
        "phrases": {"the PARK": 1, "call me back": 1, "a purple elephant": 0},
        "assets": {park: {"the PARK": 1}, call: {"call me back": 1}},
        "searched_assets": 2,
        "min_confidence": 0.0,
    }
    logged = caplog.text + capsys.readouterr().out  # the task logger writes to stdout outside a task runner
    dumped = json.dumps(summary) + logged
    assert not any(word in dumped for word in ("children", "played", "sun went down", "finished reading"))
    assert "Phrase 2 of 3 (12 characters): 1 hit(s) in 1 asset(s)" in logged
    assert "call me back" not in logged and "PARK" not in logged


def test_phrases_rendered_as_a_list_string_and_min_confidence(brain_conn, two_assets):
    park, call = two_assets
    found = run(asset_ids=[park, call], phrases="['the park', 'call me back']")
    assert found["phrases"] == {"the park": 1, "call me back": 1}
    # A threshold just above the park hit's confidence leaves out that hit only.
    from airflow_provider_brain.hooks.brain import BrainHook

    (hit,) = BrainHook().search("the park", [park])
    (other,) = BrainHook().search("call me back", [call])
    threshold = hit.confidence + 1e-6
    assert other.confidence >= threshold, "the test needs the other hit to be surer"
    filtered = run(asset_ids=[park, call], phrases=["the park", "call me back"], min_confidence=threshold)
    assert filtered["phrases"] == {"the park": 0, "call me back": 1}
    assert filtered["min_confidence"] == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("phrases", "message"),
    [
        (["the park", ""], "Search phrase 2: .*this one is empty"),
        (["  ", "the park"], "Search phrase 1: .*this one is empty"),
        ("?!", "only punctuation"),
        ([], "at least one search phrase"),
        (None, "must be a string"),
        ([["nested"]], "must be a string"),
    ],
)
def test_an_empty_phrase_fails_before_anything_is_sent(brain_conn, fault_proxy, two_assets, phrases, message):
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    with pytest.raises(ValueError, match=message):
        run(asset_ids=two_assets, phrases=phrases)
    assert fault_proxy.seen == []


def test_an_unknown_asset_fails_naming_it(brain_conn, fault_proxy, two_assets):
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    with pytest.raises(AirflowFailException, match="1 of 3 asset\\(s\\) to search are unknown to Brain.*: 0{16}$"):
        run(asset_ids=[*two_assets, "0" * 16], phrases="the park")
    assert fault_proxy.requests_to("/assets/search") == []  # nothing searched
    with pytest.raises(ValueError, match="Invalid Brain asset id '../x'"):
        run(asset_ids=[two_assets[0], "../x"], phrases="the park")


def test_another_users_asset_is_unknown_and_leaks_nothing(brain_conn, brain_server, speech, two_assets):
    with brain_server.client(user="alice") as alice:
        response = alice.post("/speech:recognize", content=speech.file(3).read_bytes(), headers=OCTET)
        theirs = response.json()["asset_id"]
    with pytest.raises(AirflowFailException, match=f"unknown to Brain .*another user's\\): {theirs}$") as caught:
        run(asset_ids=[two_assets[0], theirs], phrases="the small garden")
    assert "garden" not in str(caught.value).replace("the small garden", "")
    # As alice, the same search finds it: the refusal was about whose asset it is.
    brain_conn(login="alice", password=brain_server.users["alice"])
    assert run(asset_ids=[theirs], phrases="the small garden")["assets"] == {theirs: {"the small garden": 1}}


def test_a_10000_character_phrase_has_no_hit(brain_conn, two_assets, caplog, capsys):
    caplog.set_level(logging.INFO)
    phrase = ("the park " * 1200)[:10_000]
    summary = run(asset_ids=two_assets, phrases=[phrase, "the park"])
    assert summary["phrases"][phrase] == 0 and summary["phrases"]["the park"] == 1
    logged = caplog.text + capsys.readouterr().out
    assert "Phrase 1 of 2 (10000 characters): 0 hit(s)" in logged
    assert "the park the park" not in logged


def test_no_assets_no_requests(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url)
    fault_proxy.seen.clear()
    assert run(asset_ids=[], phrases="the park")["phrases"] == {"the park": 0}
    assert fault_proxy.seen == []


def test_normalize_phrases_and_templating():
    assert normalize_phrases("hello there") == ["hello there"]
    assert normalize_phrases(["a b", "a b", "c"]) == ["a b", "c"]
    assert normalize_phrases(' ["x", "y"] ') == ["x", "y"]
    with pytest.raises(ValueError, match="Could not read"):
        normalize_phrases("[unclosed")
    assert BrainSearchOperator.template_fields == ("phrases", "asset_ids")
    with pytest.raises(ValueError, match="min_confidence"):
        BrainSearchOperator(task_id="s", phrases="x", asset_ids=[], min_confidence=1.5)
    assert SENTENCES[0].startswith("the children played in the park")


def test_an_asset_still_processing_fails_the_search_naming_it(tmp_path, monkeypatch, speech):
    from airflow_provider_brain.exceptions import BrainError
    from tests.fixtures.brain import slow_default_brain

    with slow_default_brain(tmp_path / "data", monkeypatch, latency=60) as server, server.client() as client:
        response = client.post(
            "/speech:recognize", params={"async": "true"}, content=speech.file(0).read_bytes(), headers=OCTET
        )
        waiting = response.json()["asset_id"]
        with pytest.raises(BrainError, match=f"1 of 1 asset\\(s\\) to search are not done: {waiting} \\(processing\\)"):
            run(asset_ids=[waiting], phrases="the park")
