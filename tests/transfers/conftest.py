"""Assets on the real local Brain server for the transfer tests: done ones, one still processing, one failed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import Asset
from tests.fixtures.connections import brain_connection_json


class MediaServer:
    """Serves ``/garbage.wav`` (bytes that are not audio, so the asset fails) and ``/trickle/<n>.wav``, a
    download that sends a byte a second until ``stop_trickle(n)``, so its asset stays ``processing`` for as
    long as a test needs (the Brain server's per-read timeout never fires). Stopping it cuts the download:
    the asset fails and frees the Brain server's dispatcher, which a download holds (with ``--workers 2``,
    two trickles left running would stall every other transcription)."""

    #: No trickle outlives this, whatever happens to the test that started it.
    MAX_TRICKLE_SECONDS = 120

    def __init__(self) -> None:
        closed = self._closed = threading.Event()
        self._stopped: dict[str, threading.Event] = {}
        self._count = 0
        trickles = self._stopped

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
                    return
                stop = trickles.get(self.path)
                if stop is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                deadline = time.monotonic() + MediaServer.MAX_TRICKLE_SECONDS
                try:
                    while not stop.wait(1.0) and not closed.is_set() and time.monotonic() < deadline:
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.base = base
        self.garbage_url = f"{base}/garbage.wav"

    def start_trickle(self) -> tuple[str, str]:
        """A new never-ending download: ``(url, path)``; pass ``path`` to ``stop_trickle``."""
        self._count += 1
        path = f"/trickle/{self._count}.wav"
        self._stopped[path] = threading.Event()
        return self.base + path, path

    def stop_trickle(self, path: str) -> None:
        self._stopped[path].set()

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class SessionAssets:
    done: tuple[Asset, ...]
    failed_id: str
    media: MediaServer
    connection: str  # AIRFLOW_CONN_BRAIN_DEFAULT value for the server's first user


class BrainAssets:
    """What a test gets: done assets (fetched with times=True right after transcription), a failed one, and
    ``processing_id``, an asset submitted when first asked for so it is sure to be still processing."""

    def __init__(self, base: SessionAssets) -> None:
        self._base = base
        self._trickles: list[str] = []
        self.done = base.done
        self.failed_id = base.failed_id

    @property
    def done_ids(self) -> list[str]:
        return [asset.asset_id for asset in self.done]

    @cached_property
    def processing_id(self) -> str:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", self._base.connection)
            url, path = self._base.media.start_trickle()
            self._trickles.append(path)
            asset = BrainHook().submit_url(url, async_=True)
        assert asset.is_processing, asset.status
        return asset.asset_id

    def close(self) -> None:
        for path in self._trickles:
            self._base.media.stop_trickle(path)


@pytest.fixture(scope="session")
def brain_session_assets(brain_server, speech) -> Iterator[SessionAssets]:
    connection = brain_connection_json(brain_server.url, brain_server.user, brain_server.password)
    media = MediaServer()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", connection)
            hook = BrainHook()
            done = []
            for index in (0, 1):
                submitted = hook.submit_file(
                    speech.file(index), metadata={"source": f"s3://audio/sentence-{index}.wav"}
                )
                done.append(hook.get_asset(submitted.asset_id, times=True))
            failed_id = _wait_failed(hook, hook.submit_url(media.garbage_url, async_=True).asset_id)
        yield SessionAssets(done=tuple(done), failed_id=failed_id, media=media, connection=connection)
    finally:
        media.close()


@pytest.fixture
def brain_assets(brain_session_assets: SessionAssets) -> Iterator[BrainAssets]:
    """Two transcribed sentences, a failed asset and (on demand) a processing one, owned by the server's first user."""
    assets = BrainAssets(brain_session_assets)
    yield assets
    assets.close()


def _wait_failed(hook: BrainHook, asset_id: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asset = hook.get_asset(asset_id)
        if asset.is_failed:
            return asset_id
        assert not asset.is_done, "undecodable audio was transcribed"
        time.sleep(0.2)
    raise AssertionError(f"asset {asset_id} did not fail within {timeout} s")
