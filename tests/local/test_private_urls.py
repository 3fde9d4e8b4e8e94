"""A server started without ``--allow-private-urls`` fetches no media from, and POSTs no callback to,
loopback, private or link-local addresses: each is refused at submission with a 400 that names the flag,
and a listener on loopback sees no connection. Started with the flag, the same URLs work."""

from __future__ import annotations

import base64
import socket
import threading

import pytest

from tests.fixtures.brain import start_brain_server
from tests.local.conftest import check_done_asset, wait_done


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    server = start_brain_server(tmp_path_factory.mktemp("guarded") / "data", workers=1, allow_private_urls=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def listener():
    opened = Listener()
    yield opened
    opened.sock.close()


def refused_urls(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://127.0.0.1:{port}/a.wav", "loopback"),
        (f"http://localhost:{port}/a.wav", "loopback"),
        (f"http://[::1]:{port}/a.wav", "loopback"),
        (f"http://127.0.0.1:{port}/redirect/1/a.wav", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/a.wav", "link-local"),
        ("http://10.1.2.3/a.wav", "private"),
        ("https://192.168.1.5/a.wav", "private"),
        ("http://0.0.0.0/a.wav", "unspecified"),
    ]


def _assert_refused(response, what: str, kind: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith(f"{what} resolves to a {kind} address")
    assert "--allow-private-urls" in error


@pytest.mark.parametrize("is_async", [False, True])
def test_media_urls_to_non_global_addresses_are_refused_before_any_connection(guarded, listener, is_async):
    with guarded.client() as client:
        for url, kind in refused_urls(listener.port):
            response = client.post("/speech:recognize", json={"audio": {"url": url}, "config": {"async": is_async}})
            _assert_refused(response, "audio.url", kind)
        assert client.get("/assets", params={"done": "false"}).json()["results"] == []
    assert listener.accepted == 0
    assert "could not download" not in guarded.log_text()


def test_callbacks_to_non_global_addresses_are_refused_at_submission(guarded, listener, speech):
    content = base64.b64encode(speech.file(0).read_bytes()).decode()
    with guarded.client() as client:
        for url, kind in refused_urls(listener.port):
            body = {"audio": {"content": content}, "config": {"async": True, "callback": url}}
            _assert_refused(client.post("/speech:recognize", json=body), "config.callback", kind)
        assert client.get("/assets", params={"done": "false"}).json()["results"] == []
    assert listener.accepted == 0


def test_uploads_need_no_flag(guarded, speech):
    with guarded.client() as client:
        response = client.post("/speech:recognize", content=speech.file(0).read_bytes())
    assert response.status_code == 200, response.text
    check_done_asset(response.json())


def test_with_the_flag_loopback_media_and_callbacks_work(brain_server, media_server, speech):
    url = media_server.serve("allowed.wav", speech.file(2)).replace("127.0.0.1", "localhost")
    callback = f"{media_server.url}/callbacks/allowed"
    with brain_server.client() as client:
        sync = client.post("/speech:recognize", json={"audio": {"url": url}})
        assert sync.status_code == 200, sync.text
        check_done_asset(sync.json())
        body = {"audio": {"url": url}, "config": {"async": True, "callback": callback}}
        queued = client.post("/speech:recognize", json=body).json()
        done = wait_done(client, queued["asset_id"])
    check_done_asset(done)
    assert media_server.wait_callback("/callbacks/allowed")["asset_id"] == queued["asset_id"]
