"""Restarts lose nothing: done assets stay done, assets caught mid-processing are finished afterwards."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.brain import start_brain_server
from tests.local.conftest import MAX_FILE_WER, MAX_SET_WER, check_done_asset, wait_done, wer

OCTET = {"Content-Type": "application/octet-stream"}
#: All six sentences, about 25 s of speech: several seconds of recognition, time to kill it half-way.
INDICES = [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_finishes_assets_left_processing(tmp_path, speech, how):
    data_dir = tmp_path / "data"
    audio = speech.file(0, voice="kal").read_bytes()  # ~4 s of speech: a second or more of work each
    server = start_brain_server(data_dir, users=[("demo", "demo")], workers=1)
    try:
        with server.client() as client:
            first = client.post("/speech:recognize", content=speech.file(5).read_bytes(), headers=OCTET).json()
            check_done_asset(first)
            queued = []
            for _ in range(3):
                response = client.post("/speech:recognize", params={"async": "true"}, content=audio, headers=OCTET)
                queued.append(response.json()["asset_id"])
            time.sleep(0.5)  # the single worker is now inside the first of them
            statuses = {a["asset_id"]: a["status"] for a in client.get("/assets?done=false").json()["results"]}
        assert sum(statuses[a] == "processing" for a in queued) >= 2, statuses
        started = time.monotonic()
        if how == "sigterm":
            assert server.stop() == 0
            # Shutdown does not wait for the recognition in progress.
            assert time.monotonic() - started < 10
            assert "Brain local server stopped" in server.log_text()
        else:
            server.kill()
    finally:
        server.kill()

    restarted = start_brain_server(data_dir, users=[("demo", "demo")], workers=1, port=server.port)
    try:
        assert restarted.url == server.url
        with restarted.client() as client:
            again = client.get(f"/assets/{first['asset_id']}").json()
            assert again == first  # done stays done, untouched
            for asset_id in queued:
                done = wait_done(client, asset_id, timeout=180, times=True)
                check_done_asset(done, with_words=True)
                assert wer(speech.sentences[0], done["transcript"]) <= MAX_FILE_WER
        assert "resuming" in restarted.log_text()
    finally:
        assert restarted.stop() == 0


def test_a_crashed_recognition_process_is_replaced_and_the_asset_retried(tmp_path, speech):
    import psutil

    server = start_brain_server(tmp_path / "data", users=[("demo", "demo")], workers=1)
    try:
        with server.client() as client:
            body = speech.joined(INDICES, voice="kal").read_bytes()
            queued = client.post("/speech:recognize", params={"async": "true"}, content=body, headers=OCTET).json()
            time.sleep(0.5)
            assert client.get(f"/assets/{queued['asset_id']}").json()["status"] == "processing"
            workers = [
                p
                for p in psutil.Process(server.process.pid).children()
                if "resource_tracker" not in " ".join(p.cmdline())
            ]
            assert len(workers) == 1
            workers[0].kill()  # as the OOM killer would
            done = wait_done(client, queued["asset_id"], timeout=180)
            check_done_asset(done)
            assert wer(speech.text(INDICES), done["transcript"]) <= MAX_SET_WER
            # The new pool serves later requests too.
            check_done_asset(
                client.post("/speech:recognize", content=speech.file(0).read_bytes(), headers=OCTET).json()
            )
        assert "recognition process died" in server.log_text()
    finally:
        assert server.stop() == 0
