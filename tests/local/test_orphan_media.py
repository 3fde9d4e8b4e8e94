"""An asset deleted while its media is still arriving leaves no media file behind."""

from __future__ import annotations

import time

from tests.fixtures.brain import start_brain_server
from tests.local.conftest import check_done_asset, wait_done


def _wait_log(server, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log_text():
        assert time.monotonic() < deadline, f"not logged within {timeout} s: {text}"
        time.sleep(0.1)


def test_an_asset_deleted_during_its_download_leaves_no_media(tmp_path, speech, media_server):
    media_server.serve("orphan.wav", speech.file(1))
    doomed_path, kept_path = "/slow/4/orphan.wav", "/slow/1/orphan.wav"
    server = start_brain_server(tmp_path / "data", users=[("demo", "demo")], workers=1)
    media_dir, tmp_dir = server.data_dir / "media", server.data_dir / "tmp"
    try:
        with server.client() as client:
            submit = {"audio": {"url": media_server.url + doomed_path}, "config": {"async": True}}
            doomed = client.post("/speech:recognize", json=submit).json()["asset_id"]
            media_server.wait_event("started", doomed_path, timeout=30)
            deadline = time.monotonic() + 10
            while not list(tmp_dir.iterdir()):  # the download is under way into the data dir's tmp
                assert time.monotonic() < deadline, "the download never began writing"
                time.sleep(0.05)
            assert client.delete(f"/assets/{doomed}").status_code == 200
            media_server.wait_event("finished", doomed_path, timeout=30)
            _wait_log(server, f"asset {doomed}: deleted while its media downloaded; the download is discarded")
            assert list(media_dir.iterdir()) == []
            assert list(tmp_dir.iterdir()) == []
            assert client.get(f"/assets/{doomed}").status_code == 404
            assert f"asset {doomed} done" not in server.log_text()

            # The same download, not deleted, does become the asset's media: the check above can see one.
            submit["audio"]["url"] = media_server.url + kept_path
            kept = client.post("/speech:recognize", json=submit).json()["asset_id"]
            check_done_asset(wait_done(client, kept, timeout=60))
            assert [p.name for p in media_dir.iterdir()] == [kept]
            assert client.get(f"/assets/{kept}/content").content == speech.file(1).read_bytes()
    finally:
        server.stop()
