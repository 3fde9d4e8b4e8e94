"""Assets on the real local Brain server for the transfer tests: done ones, one still processing, one failed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import Asset
from tests.fixtures.connections import brain_connection_json


@dataclass(frozen=True)
class BrainAssets:
    done: tuple[Asset, ...]  # fetched with times=True, as they were right after transcription
    processing_id: str
    failed_id: str

    @property
    def done_ids(self) -> list[str]:
        return [asset.asset_id for asset in self.done]


class MediaServer:
    """Serves ``/garbage.wav`` (bytes that are not audio, so the asset fails) and never answers anything else
    (so a URL submission stays ``processing`` for the whole test run)."""

    def __init__(self) -> None:
        closed = self._closed = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/garbage.wav":
                    body = b"this is not audio at all " * 64
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/wav")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    closed.wait()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.garbage_url = f"{base}/garbage.wav"
        self.stalled_url = f"{base}/never-arrives.wav"

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def brain_assets(brain_server, speech) -> Iterator[BrainAssets]:
    """Two transcribed sentences, one asset stuck processing, one failed; all owned by the server's first user."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "AIRFLOW_CONN_BRAIN_DEFAULT",
            brain_connection_json(brain_server.url, brain_server.user, brain_server.password),
        )
        hook = BrainHook()
        done = []
        for index in (0, 1):
            submitted = hook.submit_file(speech.file(index), metadata={"source": f"s3://audio/sentence-{index}.wav"})
            done.append(hook.get_asset(submitted.asset_id, times=True))
        media = MediaServer()
        processing = hook.submit_url(media.stalled_url, async_=True)
        failed = hook.submit_url(media.garbage_url, async_=True)
        failed_id = _wait_failed(hook, failed.asset_id)
        try:
            yield BrainAssets(done=tuple(done), processing_id=processing.asset_id, failed_id=failed_id)
        finally:
            media.close()


def _wait_failed(hook: BrainHook, asset_id: str, timeout: float = 60.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asset = hook.get_asset(asset_id)
        if asset.is_failed:
            return asset_id
        assert not asset.is_done, "undecodable audio was transcribed"
        time.sleep(0.2)
    raise AssertionError(f"asset {asset_id} did not fail within {timeout} s")
