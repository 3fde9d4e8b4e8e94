"""Deleting an asset while it is recognised stops the recognition and frees its worker for the next one."""

from __future__ import annotations

import time

from tests.fixtures.brain import start_brain_server
from tests.local.conftest import MAX_FILE_WER, OCTET, check_done_asset, wait_done, wer


def test_deleting_a_processing_asset_stops_its_recognition_and_frees_the_worker(tmp_path, speech):
    # About 4.5 minutes of speech: a minute or more of recognition on one worker, so a next file that had
    # to wait for it could not be done within the bound below.
    long = speech.joined(list(range(6)) * 10).read_bytes()
    short = speech.file(3).read_bytes()
    server = start_brain_server(tmp_path / "data", users=[("demo", "demo")], workers=1)
    try:
        with server.client() as client:
            doomed = client.post("/speech:recognize", params={"async": "true"}, content=long, headers=OCTET).json()
            time.sleep(2.0)  # The only worker is now recognising it.
            assert client.get(f"/assets/{doomed['asset_id']}").json()["status"] == "processing"
            assert client.delete(f"/assets/{doomed['asset_id']}").status_code == 200
            deleted = time.monotonic()
            nxt = client.post("/speech:recognize", params={"async": "true"}, content=short, headers=OCTET).json()
            done = wait_done(client, nxt["asset_id"], timeout=30)
            freed_after = time.monotonic() - deleted
            check_done_asset(done)
            assert wer(speech.sentences[3], done["transcript"]) <= MAX_FILE_WER
            assert client.get(f"/assets/{doomed['asset_id']}").status_code == 404
        log = server.log_text()
        assert f"asset {doomed['asset_id']}: deleted while processing; recognition stopped" in log
        assert f"asset {doomed['asset_id']} deleted by user demo; its recognition is stopped" in log
        assert f"asset {doomed['asset_id']} done" not in log
        assert freed_after < 30
        # No marker is left behind for the stopped asset.
        assert list((tmp_path / "data" / "cancelled").iterdir()) == []
    finally:
        server.stop()
