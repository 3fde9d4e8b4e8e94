"""The API contract: JSON forms, errors, assets' lifecycle and search (auth and tokens: test_auth.py)."""

from __future__ import annotations

import base64
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.local.conftest import MAX_FILE_WER, OCTET, check_done_asset, upload_sync, wait_done, wer


def submit_json(client, body, **kwargs):
    return client.post("/speech:recognize", json=body, **kwargs)


# --- JSON submissions --------------------------------------------------------------------------------


def test_url_sync_returns_done_asset_with_metadata(client, speech, media_server):
    url = media_server.serve("sync.wav", speech.file(4))
    response = submit_json(client, {"audio": {"url": url}, "metadata": {"filename": "call-17.wav"}})
    assert response.status_code == 200, response.text
    asset = response.json()
    check_done_asset(asset)
    assert asset["metadata"] == {"filename": "call-17.wav"}
    assert wer(speech.sentences[4], asset["transcript"]) <= MAX_FILE_WER
    listing = client.get("/assets").json()["results"]
    assert {"asset_id": asset["asset_id"], "metadata": {"filename": "call-17.wav"}}.items() <= next(
        item for item in listing if item["asset_id"] == asset["asset_id"]
    ).items()


def test_client_variants_uri_isasync_and_callback(client, speech, media_server):
    url = media_server.serve("variant.mp3", speech.file(5, fmt="mp3"))
    callback = f"{media_server.url}/callback/variant"
    response = submit_json(
        client, {"audio": {"uri": url}, "config": {"isAsync": True, "callback": callback}, "metadata": {"k": 1}}
    )
    assert response.status_code == 200
    queued = response.json()
    assert queued["status"] == "processing"
    posted = media_server.wait_callback("/callback/variant")
    assert posted["asset_id"] == queued["asset_id"]
    assert posted["status"] == "done"
    check_done_asset(posted)
    assert posted == client.get(f"/assets/{queued['asset_id']}").json()


def test_callback_is_posted_for_failed_assets_too(client, media_server, tmp_path):
    garbage = tmp_path / "noise.mp3"
    garbage.write_bytes(b"this is not audio at all" * 100)
    url = media_server.serve("noise.mp3", garbage)
    callback = f"{media_server.url}/callback/failed"
    queued = submit_json(client, {"audio": {"url": url}, "config": {"async": True, "callback": callback}}).json()
    posted = media_server.wait_callback("/callback/failed")
    assert posted["asset_id"] == queued["asset_id"]
    assert posted["status"] == "failed"
    assert "decoded" in posted["error"]


def test_inline_base64_content(client, speech):
    path = speech.file(2, voice="kal", fmt="flac")
    body = {"audio": {"content": base64.b64encode(path.read_bytes()).decode()}, "config": {"async": False}}
    response = submit_json(client, body)
    assert response.status_code == 200, response.text
    asset = response.json()
    check_done_asset(asset)
    assert wer(speech.sentences[2], asset["transcript"]) <= MAX_FILE_WER
    assert client.get(f"/assets/{asset['asset_id']}/content").content == path.read_bytes()
    # MIME-style base64 with line breaks is accepted as well.
    wrapped = {"audio": {"content": base64.encodebytes(path.read_bytes()).decode()}}
    assert "\n" in wrapped["audio"]["content"]
    again = submit_json(client, wrapped)
    assert again.status_code == 200
    assert again.json()["transcript"] == asset["transcript"]


def test_url_redirects_followed_up_to_five(client, speech, media_server):
    media_server.serve("redirected.wav", speech.file(0))
    ok = submit_json(client, {"audio": {"url": f"{media_server.url}/redirect/5/redirected.wav"}})
    assert ok.status_code == 200, ok.text
    check_done_asset(ok.json())
    too_many = submit_json(client, {"audio": {"url": f"{media_server.url}/redirect/6/redirected.wav"}})
    assert too_many.status_code == 400
    assert "redirects" in too_many.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"audio": {}}, "audio.url is required"),
        ({"config": {"async": True}}, "audio"),
        ({"audio": {"url": "ftp://example.com/a.mp3"}}, "http or https"),
        ({"audio": {"url": "file:///etc/passwd"}}, "http or https"),
        ({"audio": {"url": "not a url"}}, "http or https"),
        ({"audio": {"content": "%%% not base64 %%%"}}, "base64"),
        ({"audio": {"url": "http://127.0.0.1:9/a.wav"}, "config": "yes"}, "config"),
        ({"audio": {"url": "http://127.0.0.1:9/a.wav"}, "metadata": [1]}, "metadata"),
        ({"audio": {"url": "http://127.0.0.1:9/a.wav"}, "config": {"callback": "mailto:x"}}, "callback"),
        ([1, 2, 3], "object"),
    ],
)
def test_bad_json_requests_are_400(client, body, fragment):
    response = submit_json(client, body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_malformed_json_is_400(client):
    response = client.post(
        "/speech:recognize", content=b'{"audio": {"url": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "malformed JSON body"}


def test_unreachable_url_sync_is_400_and_async_fails(client):
    url = "http://127.0.0.1:9/nothing.wav"
    sync = submit_json(client, {"audio": {"url": url}})
    assert sync.status_code == 400
    assert "could not download" in sync.json()["error"]
    assert "127.0.0.1" not in sync.json()["error"]
    queued = submit_json(client, {"audio": {"url": url}, "config": {"async": True}}).json()
    failed = wait_done(client, queued["asset_id"])
    assert failed["status"] == "failed"
    assert "could not download" in failed["error"]


def test_url_answering_404_is_reported(client, media_server):
    response = submit_json(client, {"audio": {"url": f"{media_server.url}/files/missing.wav"}})
    assert response.status_code == 400
    assert "HTTP 404" in response.json()["error"]


# --- undecodable audio -------------------------------------------------------------------------------


def test_undecodable_upload_is_400_and_server_keeps_working(client, speech, tmp_path, brain_server):
    for payload in (b"\x00" * 5000, b"ID3" + b"\xff" * 4000, b"RIFF\x10\x00\x00\x00WAVEfmt garbage"):
        response = client.post("/speech:recognize", content=payload, headers=OCTET)
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("audio could not be decoded")
    async_response = client.post("/speech:recognize", params={"async": "true"}, content=b"\x01" * 5000, headers=OCTET)
    assert async_response.status_code == 400
    empty = client.post("/speech:recognize", content=b"", headers=OCTET)
    assert empty.status_code == 400
    assert brain_server.alive()
    check_done_asset(upload_sync(client, speech.file(1)))


def test_async_url_with_undecodable_media_fails_with_reason(client, media_server, tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + b"\x07" * 3000)
    url = media_server.serve("garbage.wav", garbage)
    queued = submit_json(client, {"audio": {"url": url}, "config": {"async": True}}).json()
    failed = wait_done(client, queued["asset_id"])
    assert failed["status"] == "failed"
    assert failed["error"].startswith("audio could not be decoded")
    assert "transcript" not in failed
    # Only done assets are listed by default; done=false shows the failed one.
    assert queued["asset_id"] not in [a["asset_id"] for a in client.get("/assets").json()["results"]]
    everything = client.get("/assets", params={"done": "false", "limit": 1000}).json()["results"]
    assert queued["asset_id"] in [a["asset_id"] for a in everything]


# --- asset lifecycle ---------------------------------------------------------------------------------


def test_put_corrects_transcript_and_metadata_keeping_invariants(client, speech):
    asset = upload_sync(client, speech.file(1, voice="kal"))
    asset_id = asset["asset_id"]
    words = asset["transcript"].split()
    corrected = " ".join(["Hi,"] + words[1:] + ["today."])
    response = client.put(f"/assets/{asset_id}", json={"transcript": corrected, "metadata": {"checked": True}})
    assert response.status_code == 200
    updated = response.json()
    assert updated["transcript"] == corrected
    assert updated["metadata"] == {"checked": True}
    timed = client.get(f"/assets/{asset_id}", params={"times": "true"}).json()
    check_done_asset(timed, with_words=True)
    # Unchanged words keep the recogniser's confidence; words a person wrote count as certain.
    assert timed["confidence"][1:-1] == asset["confidence"][1:]
    assert timed["confidence"][0] == 1.0 and timed["confidence"][-1] == 1.0

    assert (
        client.put(f"/assets/{asset_id}", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    )
    assert client.put(f"/assets/{asset_id}", json={"transcript": 5}).status_code == 400


def test_delete_removes_asset_and_media(client, speech, brain_server):
    asset = upload_sync(client, speech.file(2))
    asset_id = asset["asset_id"]
    assert (brain_server.data_dir / "media" / asset_id).exists()
    response = client.delete(f"/assets/{asset_id}")
    assert response.status_code == 200
    assert response.json() == {"asset_id": asset_id, "deleted": True}
    assert client.get(f"/assets/{asset_id}").status_code == 404
    assert client.get(f"/assets/{asset_id}/content").status_code == 404
    assert not (brain_server.data_dir / "media" / asset_id).exists()
    assert client.delete(f"/assets/{asset_id}").status_code == 404


def test_list_pagination_newest_first(brain_server, speech, tmp_path):
    from tests.fixtures.brain import start_brain_server

    server = start_brain_server(tmp_path / "pages", users=[("pager", "pager-pw")], workers=1)
    try:
        with server.client() as pager:
            ids = []
            for index in range(5):
                queued = pager.post(
                    "/speech:recognize",
                    params={"async": "true"},
                    content=speech.file(index).read_bytes(),
                    headers=OCTET,
                ).json()
                ids.append(queued["asset_id"])
            every = pager.get("/assets", params={"done": "false"}).json()
            assert [a["asset_id"] for a in every["results"]] == ids[::-1]
            assert "next_offset" not in every
            for asset_id in ids:
                wait_done(pager, asset_id)
            seen, offset, pages = [], 0, 0
            while True:
                page = pager.get("/assets", params={"limit": 2, "offset": offset}).json()
                seen += [a["asset_id"] for a in page["results"]]
                pages += 1
                if "next_offset" not in page:
                    break
                offset = page["next_offset"]
            assert seen == ids[::-1]
            assert pages == 3
            item = page["results"][0]
            assert set(item) >= {"asset_id", "status", "duration", "created"}
            assert "transcript" not in item
            for bad in ({"limit": 0}, {"limit": "x"}, {"offset": -1}, {"done": "maybe"}):
                response = pager.get("/assets", params=bad)
                assert response.status_code == 400
                assert "error" in response.json()
    finally:
        assert server.stop() == 0


# --- search ---------------------------------------------------------------------------------------


def test_search_finds_phrase_with_times(client, speech):
    first = upload_sync(client, speech.file(0, voice="kal"))
    second = upload_sync(client, speech.file(4, voice="kal"))
    assert "the park" in first["transcript"]
    response = client.post(
        "/assets/search", json={"query": "The PARK!", "asset_ids": [first["asset_id"], second["asset_id"]]}
    )
    assert response.status_code == 200
    hits = response.json()["results"]
    assert [h["asset_id"] for h in hits] == [first["asset_id"]]
    timed = client.get(f"/assets/{first['asset_id']}", params={"times": "true"}).json()
    words = [w["word"] for w in timed["words"]]
    at = next(i for i in range(len(words) - 1) if words[i : i + 2] == ["the", "park"])
    assert hits[0]["text"] == "the park"
    assert hits[0]["start"] == timed["words"][at]["start"]
    assert hits[0]["end"] == timed["words"][at + 1]["end"]
    expected = (timed["words"][at]["confidence"] + timed["words"][at + 1]["confidence"]) / 2
    assert hits[0]["confidence"] == pytest.approx(expected, abs=1e-6)

    # "the" occurs several times: results come best confidence first, and limit/npp/p cut them.
    many = client.post("/assets/search", json={"query": "the", "asset_ids": [first["asset_id"], second["asset_id"]]})
    confidences = [h["confidence"] for h in many.json()["results"]]
    assert len(confidences) >= 3
    assert confidences == sorted(confidences, reverse=True)
    limited = client.post("/assets/search", json={"query": "the", "asset_ids": [first["asset_id"]], "limit": 1})
    assert len(limited.json()["results"]) == 1
    page1 = client.post(
        "/assets/search", json={"query": "the", "asset_ids": [first["asset_id"], second["asset_id"]], "npp": 2, "p": 1}
    ).json()["results"]
    assert page1 == many.json()["results"][2:4]

    for bad in ({"query": ""}, {"query": "  !! "}, {}, {"query": "x", "asset_ids": "abc"}):
        response = client.post("/assets/search", json=bad)
        assert response.status_code == 400


def corrupt_flac(path):
    """A FLAC file whose header is fine but whose frames are garbage: it passes the upload check and
    fails in the recognizer."""
    rng = np.random.default_rng(7)
    sf.write(str(path), (rng.random(16000 * 3) - 0.5).astype("float32"), 16000)
    data = bytearray(path.read_bytes())
    for i in range(200, len(data)):
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    return path


def test_media_failing_in_the_recognizer_sync_400_async_failed(client, speech, tmp_path, brain_server):
    media = corrupt_flac(tmp_path / "corrupt.flac").read_bytes()
    sync = client.post("/speech:recognize", content=media, headers=OCTET)
    assert sync.status_code == 400
    body = sync.json()
    assert body["error"].startswith("audio could not be decoded")
    assert body["status"] == "failed"
    assert client.get(f"/assets/{body['asset_id']}").json()["status"] == "failed"
    queued = client.post("/speech:recognize", params={"async": "true"}, content=media, headers=OCTET).json()
    failed = wait_done(client, queued["asset_id"])
    assert failed["status"] == "failed"
    assert failed["error"].startswith("audio could not be decoded")
    assert brain_server.alive()
    check_done_asset(upload_sync(client, speech.file(2, voice="kal")))


@pytest.mark.alone  # Asserts each API round trip stays under a second: another worker's load would slow it.
def test_api_stays_responsive_while_long_audio_is_recognised(client, speech):
    long_audio = speech.joined([0, 1, 2], voice="kal").read_bytes()
    queued = client.post("/speech:recognize", params={"async": "true"}, content=long_audio, headers=OCTET).json()
    processing = client.get(f"/assets/{queued['asset_id']}", params={"times": "true"}).json()
    assert processing["status"] == "processing"
    # While processing, only these fields (the contract): no transcript, no words yet.
    assert set(processing) <= {"asset_id", "status", "created", "duration"}
    slowest = 0.0
    while client.get(f"/assets/{queued['asset_id']}").json()["status"] == "processing":
        started = time.monotonic()
        assert client.get("/assets", params={"limit": 5}).status_code == 200
        assert client.get("/users").status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    # Recognition takes seconds; each API round trip meanwhile stays far below that.
    assert slowest < 1.0
    check_done_asset(client.get(f"/assets/{queued['asset_id']}").json())


def test_upload_without_content_type_is_treated_as_media(brain_server, speech):
    request = httpx.Request(
        "POST", f"{brain_server.url}/speech:recognize", content=speech.file(0).read_bytes(), headers={}
    )
    request.headers.pop("content-type", None)
    with httpx.Client(auth=brain_server.auth, timeout=120) as plain:
        response = plain.send(request)
    assert response.status_code == 200, response.text
    check_done_asset(response.json())
