"""Helpers for the local server's tests: a tiny HTTP server for media URLs and callbacks, polling, WER."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jiwer
import pytest

#: Word error rate bounds, measured on this machine (pocketsphinx 5.1.1 en-us, Festival 2.5) with the
#: sentences of tests/fixtures/speech.py in WAV, MP3, 44.1 kHz stereo WAV, 22.05 kHz FLAC and 48 kHz
#: stereo OGG. Worst single sentence seen: 0.31 (slt, "she opened the window ..." heard as "she helped
#: handling job ...") and 0.25 (kal MP3, "meet at" heard as "make up"); most files are word-perfect.
#: All six sentences together: 0.03 (slt) and 0.01 (kal); ~38 s of joined sentences: 0.04 and 0.01.
#: The bounds leave room for other CPUs' float rounding, yet fail on a wrong rate or channel mix
#: (44.1 kHz audio fed as 16 kHz gives 0.93 to 1.27).
MAX_FILE_WER = 0.40
#: The header of a raw media upload.
OCTET = {"Content-Type": "application/octet-stream"}
MAX_SET_WER = 0.15


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (jiwer)."""
    return float(jiwer.wer(reference, hypothesis))


def wait_done(client: httpx.Client, asset_id: str, timeout: float = 120.0, times: bool = False) -> dict[str, Any]:
    """Poll ``GET /assets/{id}`` until it is no longer processing; return the asset JSON."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/assets/{asset_id}", params={"times": "true"} if times else None)
        response.raise_for_status()
        body = response.json()
        if body["status"] != "processing":
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"asset {asset_id} still processing after {timeout} s")
        time.sleep(0.2)


def upload_sync(client: httpx.Client, path: Path) -> dict[str, Any]:
    """Upload a file and wait for its transcript (a synchronous submission); the done asset's JSON."""
    response = client.post("/speech:recognize", content=path.read_bytes(), headers=OCTET)
    assert response.status_code == 200, response.text
    return response.json()


def check_done_asset(asset: dict[str, Any], with_words: bool = False) -> None:
    """The invariants of a done asset that every client relies on."""
    assert asset["status"] == "done", asset
    assert len(asset["asset_id"]) == 16 and all(c in "0123456789abcdef" for c in asset["asset_id"])
    assert isinstance(asset["transcript"], str)
    assert len(asset["confidence"]) == len(asset["transcript"].split())
    assert all(0.0 <= c <= 1.0 for c in asset["confidence"])
    assert asset["duration"] > 0
    assert asset["content_url"].endswith(f"/assets/{asset['asset_id']}/content")
    assert asset["content_url"].startswith("http://")
    if with_words:
        words = asset["words"]
        assert [w["word"] for w in words] == asset["transcript"].split()
        assert [w["confidence"] for w in words] == asset["confidence"]
        previous_end = 0.0
        for word in words:
            assert 0.0 <= word["start"] <= word["end"] <= asset["duration"] + 1e-6, word
            assert word["start"] >= previous_end - 1e-6, words
            previous_end = word["end"]


def send_cut_off(server: Any, body_prefix: bytes, chunked: bool, headers: dict[str, str] | None = None) -> None:
    """Send an upload whose body stops early (after ``body_prefix``), then close the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    auth = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body_prefix) * 10}"
    head = (
        f"POST /speech:recognize HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n{extra}\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head)
        if chunked:
            sock.sendall(f"{len(body_prefix):x}\r\n".encode() + body_prefix + b"\r\n")
        else:
            sock.sendall(body_prefix)
        time.sleep(0.3)


class MediaServer:
    """A small threaded HTTP server: files to download, redirect chains, and a callback sink."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self.callbacks: list[dict[str, Any]] = []
        self.callback_arrived = threading.Condition()
        #: ``(event, path)`` of slow downloads: ``("started", "/slow/3/a.wav")``, then ``("finished", ...)``.
        self.events: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/redirect-to":
                    # /redirect-to?url=<absolute URL>: one redirect, to anywhere.
                    self.send_response(302)
                    self.send_header("Location", parse_qs(urlsplit(self.path).query)["url"][0])
                    self.end_headers()
                    return
                if path.startswith("/redirect/"):
                    # /redirect/<n>/<name>: n redirects, then the file <name>.
                    _, _, hops, name = path.split("/", 3)
                    left = int(hops)
                    self.send_response(302)
                    self.send_header("Location", f"/redirect/{left - 1}/{name}" if left > 1 else f"/files/{name}")
                    self.end_headers()
                    return
                if path.startswith("/files/") and path[len("/files/") :] in server.files:
                    data = server.files[path[len("/files/") :]].read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if path.startswith("/slow/"):
                    # /slow/<seconds>/<name>: the file <name> in ten pieces spread over <seconds>.
                    _, _, seconds, name = path.split("/", 3)
                    data = server.files[name].read_bytes()
                    server.note("started", path)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    step = -(-len(data) // 10)
                    for at in range(0, len(data), step):
                        self.wfile.write(data[at : at + step])
                        self.wfile.flush()
                        time.sleep(float(seconds) / 10)
                    server.note("finished", path)
                    return
                if path.startswith("/stream/"):
                    # Bytes without Content-Length, so only the streaming check can stop them.
                    size = int(path.rsplit("/", 1)[1])
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"\0" * 65536
                    sent = 0
                    try:
                        while sent < size:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    except OSError:
                        pass
                    return
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                self.send_response(204)
                self.end_headers()
                with server.callback_arrived:
                    server.callbacks.append({"path": self.path, "body": body})
                    server.callback_arrived.notify_all()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, name: str, path: Path) -> str:
        """Serve ``path`` at ``/files/<name>`` and return its URL."""
        self.files[name] = path
        return f"{self.url}/files/{name}"

    def note(self, event: str, path: str) -> None:
        with self.callback_arrived:
            self.events.append((event, path))
            self.callback_arrived.notify_all()

    def wait_event(self, event: str, path: str, timeout: float = 60.0) -> None:
        """Wait until a slow download of ``path`` has reached ``event`` (``started`` or ``finished``)."""
        with self.callback_arrived:
            if not self.callback_arrived.wait_for(lambda: (event, path) in self.events, timeout):
                raise AssertionError(f"no {event} download of {path} within {timeout} s")

    def wait_callback(self, path: str, timeout: float = 60.0) -> dict[str, Any]:
        """The JSON body POSTed to ``path``, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self.callback_arrived:
            while True:
                for item in self.callbacks:
                    if item["path"] == path:
                        return item["body"]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no callback POST to {path} within {timeout} s")
                self.callback_arrived.wait(remaining)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def client(brain_server: Any) -> Iterator[httpx.Client]:
    """An httpx client for the session server, as its main user."""
    with brain_server.client() as c:
        yield c
