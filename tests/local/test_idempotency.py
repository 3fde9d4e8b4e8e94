"""``Idempotency-Key`` on ``POST /speech:recognize``: a resent submission gets the first one's asset (200, as
it is now), never a second asset; the same key with another body is 422; keys are per user, survive a
restart, are freed by deleting their asset, and are not taken by a request whose body was cut off."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from tests.fixtures.brain import start_brain_server
from tests.local.conftest import MAX_FILE_WER, OCTET, check_done_asset, send_cut_off, wait_done, wer


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


def all_assets(client: httpx.Client) -> set[str]:
    listing = client.get("/assets", params={"done": "false", "limit": 1000})
    return {a["asset_id"] for a in listing.json()["results"]}


def submit(client: httpx.Client, key: str, **kwargs) -> httpx.Response:
    headers = {"Idempotency-Key": key, **kwargs.pop("headers", {})}
    return client.post("/speech:recognize", headers=headers, **kwargs)


def test_a_resent_upload_gets_the_same_asset(client, speech):
    wav = speech.file(0).read_bytes()
    key = new_key()
    before = all_assets(client)
    first = submit(client, key, content=wav, headers=OCTET)
    assert first.status_code == 200, first.text
    check_done_asset(first.json())
    assert wer(speech.sentences[0], first.json()["transcript"]) <= MAX_FILE_WER
    assert "idempotent-replayed" not in first.headers
    again = submit(client, key, content=wav, headers=OCTET, params={"async": "true"})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == client.get(f"/assets/{first.json()['asset_id']}").json()
    assert all_assets(client) == before | {first.json()["asset_id"]}


def test_the_same_key_with_another_body_is_422(client, speech, media_server):
    key = new_key()
    first = submit(client, key, content=speech.file(0).read_bytes(), headers=OCTET, params={"async": "true"})
    assert first.status_code == 200
    before = all_assets(client)
    other_upload = submit(client, key, content=speech.file(1).read_bytes(), headers=OCTET)
    url = media_server.serve("idem-422.wav", speech.file(0))
    as_json = submit(client, key, json={"audio": {"url": url}})
    for refused in (other_upload, as_json):
        assert refused.status_code == 422, refused.text
        assert "Idempotency-Key was already used with a different request" in refused.json()["error"]
    assert all_assets(client) == before


def test_a_resent_url_submission_is_the_same_request_whatever_its_spacing_or_key_order(client, speech, media_server):
    url = media_server.serve("idem-json.wav", speech.file(2))
    key = new_key()
    body = {"audio": {"url": url}, "config": {"async": True}, "metadata": {"filename": "idem.wav", "n": 1}}
    first = submit(client, key, json=body)
    assert first.status_code == 200 and first.json()["status"] == "processing"
    asset_id = first.json()["asset_id"]
    done = wait_done(client, asset_id)
    reordered = json.dumps(
        {"metadata": {"n": 1, "filename": "idem.wav"}, "config": {"async": True}, "audio": {"url": url}}, indent=2
    )
    again = submit(client, key, content=reordered, headers={"Content-Type": "application/json"})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == done  # the asset as it is now: done, with its transcript and metadata
    assert again.json()["metadata"] == {"filename": "idem.wav", "n": 1}
    changed = submit(client, key, json={**body, "metadata": {"filename": "other.wav"}})
    assert changed.status_code == 422


def test_keys_belong_to_their_user_and_a_deleted_asset_frees_its_key(brain_server, speech):
    wav = speech.file(3).read_bytes()
    key = new_key()
    with brain_server.client() as demo, brain_server.client("alice") as alice:
        mine = submit(demo, key, content=wav, headers=OCTET, params={"async": "true"}).json()["asset_id"]
        theirs = submit(alice, key, content=wav, headers=OCTET, params={"async": "true"})
        assert theirs.status_code == 200 and "idempotent-replayed" not in theirs.headers
        assert theirs.json()["asset_id"] != mine
        assert submit(demo, key, content=wav, headers=OCTET).json()["asset_id"] == mine
        assert demo.delete(f"/assets/{mine}").status_code == 200
        renewed = submit(demo, key, content=wav, headers=OCTET)
        assert renewed.status_code == 200 and "idempotent-replayed" not in renewed.headers
        check_done_asset(renewed.json())
        assert renewed.json()["asset_id"] not in (mine, theirs.json()["asset_id"])


# Other control characters never reach the app: the HTTP parser refuses the request (400) itself.
@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "tab\tinside", b"caf\xc3\xa9"],
    ids=["empty", "256 chars", "tab", "non-ASCII"],
)
def test_a_malformed_key_is_400(client, speech, key):
    before = all_assets(client)
    response = client.post(
        "/speech:recognize", content=speech.file(0).read_bytes(), headers=[("Idempotency-Key", key), *OCTET.items()]
    )
    assert response.status_code == 400
    assert "Idempotency-Key must be one header of 1 to 255 printable ASCII characters" in response.json()["error"]
    assert all_assets(client) == before


def test_two_keys_in_one_request_are_400_and_255_characters_are_fine(client, speech):
    wav = speech.file(0).read_bytes()
    twice = client.post(
        "/speech:recognize", content=wav, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b"), *OCTET.items()]
    )
    assert twice.status_code == 400
    longest = "k" * 245 + uuid.uuid4().hex[:10]
    assert submit(client, longest, content=wav, headers=OCTET, params={"async": "true"}).status_code == 200


def _send_together(count: int, send) -> list[httpx.Response]:
    answers: list[httpx.Response | BaseException] = [None] * count  # type: ignore[list-item]
    barrier = threading.Barrier(count)

    def one(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = send()
        except BaseException as exc:  # noqa: BLE001 - reported below
            answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    return answers  # type: ignore[return-value]


def test_concurrent_uploads_with_one_key_make_one_asset(brain_server, speech):
    wav = speech.file(4).read_bytes()
    key = new_key()
    with brain_server.client() as client:
        before = all_assets(client)

        def send() -> httpx.Response:
            with brain_server.client() as own:
                return submit(own, key, content=wav, headers=OCTET, params={"async": "true"})

        answers = _send_together(8, send)
        assert [a.status_code for a in answers] == [200] * 8
        ids = {a.json()["asset_id"] for a in answers}
        assert len(ids) == 1
        assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
        assert all_assets(client) == before | ids


def test_concurrent_synchronous_url_submissions_with_one_key_make_one_asset(brain_server, speech, media_server):
    # The download takes 2 s: without a turn per key, each request would fetch and make its own asset.
    media_server.serve("idem-slow.wav", speech.file(5))
    url = f"{media_server.url}/slow/2/idem-slow.wav"
    key = new_key()
    with brain_server.client() as client:
        before = all_assets(client)

        def send() -> httpx.Response:
            with brain_server.client() as own:
                return submit(own, key, json={"audio": {"url": url}})

        answers = _send_together(4, send)
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        ids = {a.json()["asset_id"] for a in answers}
        assert len(ids) == 1
        first = [a.json() for a in answers if "idempotent-replayed" not in a.headers]
        assert len(first) == 1
        check_done_asset(first[0])
        assert wer(speech.sentences[5], first[0]["transcript"]) <= MAX_FILE_WER
        assert all_assets(client) == before | ids
    assert media_server.events.count(("started", "/slow/2/idem-slow.wav")) == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_a_cut_off_upload_does_not_take_its_key(brain_server, speech, chunked):
    wav = speech.file(1).read_bytes()
    key = new_key()
    with brain_server.client() as client:
        before = all_assets(client)
        send_cut_off(brain_server, wav[: len(wav) // 2], chunked, headers={"Idempotency-Key": key})
        time.sleep(1.0)
        assert all_assets(client) == before
        whole = submit(client, key, content=wav, headers=OCTET)
        assert whole.status_code == 200 and "idempotent-replayed" not in whole.headers
        check_done_asset(whole.json())
        assert all_assets(client) == before | {whole.json()["asset_id"]}


def test_a_key_survives_a_restart_and_a_full_queue(tmp_path, speech):
    # Assets stay processing for 60 s, and the queue holds one: the second new submission is refused.
    args = ["--max-queue", "1", "--min-latency", "60"]
    wav = speech.file(2).read_bytes()
    key = new_key()
    server = start_brain_server(tmp_path / "data", users=[("demo", "demo")], workers=1, extra_args=args)
    try:
        with server.client() as client:
            first = submit(client, key, content=wav, headers=OCTET, params={"async": "true"}).json()
            assert client.post("/speech:recognize", content=wav, headers=OCTET).status_code == 429
            again = submit(client, key, content=wav, headers=OCTET)
            assert again.status_code == 200 and again.json()["asset_id"] == first["asset_id"]
            assert again.json()["status"] == "processing"  # the asset as it is now, not waited for
    finally:
        assert server.stop() == 0
    restarted = start_brain_server(
        tmp_path / "data", users=[("demo", "demo")], workers=1, port=server.port, extra_args=args
    )
    try:
        with restarted.client() as client:
            again = submit(client, key, content=wav, headers=OCTET)
            assert again.status_code == 200 and again.json()["asset_id"] == first["asset_id"]
            assert submit(client, key, content=speech.file(3).read_bytes(), headers=OCTET).status_code == 422
            assert all_assets(client) == {first["asset_id"]}
    finally:
        restarted.stop()
