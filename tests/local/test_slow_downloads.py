"""A slow media URL must not stall the transcription of audio that has already arrived."""

from __future__ import annotations

import socket
import threading
import time

from tests.fixtures.brain import start_brain_server


def test_a_hanging_url_does_not_block_uploads(tmp_path, speech):
    held: list[socket.socket] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.5)
    stop = threading.Event()

    def accept_and_hang():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return  # The listener was closed: the test is over.

    threading.Thread(target=accept_and_hang, daemon=True).start()
    server = start_brain_server(tmp_path / "data", workers=1, extra_args=["--download-timeout", "600"])
    try:
        with server.client(timeout=120) as client:
            hanging = f"http://127.0.0.1:{listener.getsockname()[1]}/never.wav"
            for _ in range(2):
                answer = client.post("/speech:recognize", json={"audio": {"url": hanging}, "config": {"async": True}})
                assert answer.status_code == 200
            started = time.monotonic()
            with open(speech.file(0), "rb") as audio:
                done = client.post("/speech:recognize", content=audio.read())
            assert done.status_code == 200 and done.json()["status"] == "done"
            assert time.monotonic() - started < 60
    finally:
        server.stop()
        stop.set()
        time.sleep(0.6)  # Let the accept loop see the stop before its socket closes.
        for conn in held:
            conn.close()
        listener.close()
