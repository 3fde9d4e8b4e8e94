"""A backlog that keeps the stack's Brain busy at no CPU cost: submissions by URL whose media trickles in.

The local server works on assets in order, with one dispatcher per recognition process and ``DOWNLOAD_SLOTS``
more for downloads. A dispatcher downloading a URL is busy until the download ends, so when every dispatcher is
downloading media that a local HTTP server sends a byte at a time, whatever is submitted next stays
``processing``, as behind other users' work on a busy service. It used to be a backlog of long recordings, which
kept the recogniser (a core) busy for as long as it was held; a held download costs nothing.

``Backlog.release`` deletes the held assets and lets their downloads end at once (the server discards media whose
asset is gone, so nothing is recognised); ``release_all`` releases whatever a failed test left held, and a held
download ends by itself after ``MAX_HOLD_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from airflow_provider_brain.local.worker import DOWNLOAD_SLOTS
from deploy.stack import BRAIN_PASSWORD, BRAIN_USER, Stack
from tests.deployment.conftest import delete_assets

#: More held submissions than the stack's dispatchers (one recognition process, DOWNLOAD_SLOTS downloads).
HELD_FILES = 1 + DOWNLOAD_SLOTS + 3
#: A held download ends by itself after this long, so a test that never released it cannot stall the next ones.
MAX_HOLD_SECONDS = 240.0
_TRICKLE_SECONDS = 0.5

_held: list[Backlog] = []


class _Trickle:
    """A local HTTP server that sends ``body`` a byte every ``_TRICKLE_SECONDS`` until released, then the rest."""

    def __init__(self, body: bytes) -> None:
        self.released = threading.Event()
        trickle = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                sent, deadline = 0, time.monotonic() + MAX_HOLD_SECONDS
                try:
                    while sent < len(body) - 1 and not trickle.released.is_set() and time.monotonic() < deadline:
                        self.wfile.write(body[sent : sent + 1])
                        self.wfile.flush()
                        sent += 1
                        trickle.released.wait(_TRICKLE_SECONDS)
                    self.wfile.write(body[sent:])
                except OSError:
                    pass  # the server gave up on the download

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="brain-backlog-media", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/held.wav"

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class Backlog(list[str]):
    """The held assets' ids (a list, so a test can hand them around and clear them); ``release`` frees Brain."""

    def __init__(self, stack: Stack, ids: list[str], trickle: _Trickle) -> None:
        super().__init__(ids)
        self._stack = stack
        self._trickle = trickle

    def release(self) -> None:
        """Delete the held assets, then let their downloads end: Brain goes on with what was submitted after."""
        delete_assets(self._stack, list(self))  # none the second time: release clears the list
        self.clear()
        self._trickle.released.set()

    def stop(self) -> None:
        self.release()
        self._trickle.stop()


def keep_brain_busy(stack: Stack, speech: Any) -> Backlog:
    """Hold every dispatcher of the stack's Brain with a download that trickles (sentence 0's WAV, should it ever
    arrive whole): whatever is submitted next stays ``processing`` until ``release``. Returns the backlog."""
    trickle = _Trickle(speech.file(0).read_bytes())
    body = {"audio": {"url": trickle.url}, "config": {"async": True}}
    with httpx.Client(base_url=stack.brain_url, auth=(BRAIN_USER, BRAIN_PASSWORD), timeout=60) as client:
        ids = []
        for _ in range(HELD_FILES):
            response = client.post("/speech:recognize", json=body)
            response.raise_for_status()
            ids.append(response.json()["asset_id"])
    backlog = Backlog(stack, ids, trickle)
    _held.append(backlog)
    return backlog


def release_all() -> None:
    """Release and stop every backlog still held (a test that failed before it released its own)."""
    while _held:
        _held.pop().stop()
