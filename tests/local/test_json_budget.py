"""JSON bodies are parsed in memory, so the server bounds how many bytes of them it holds at once: many large
ones sent together are each answered (processed, or 503 with Retry-After), and its memory stays bounded."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import httpx

from tests.fixtures.brain import start_brain_server

MIB = 1024**2
BODY_LIMIT = 24 * MIB
BUDGET = 48 * MIB
CLIENTS = 12


def peak_rss(pid: int) -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_many_large_json_bodies_at_once_keep_memory_bounded_and_each_gets_an_answer(tmp_path):
    server = start_brain_server(
        tmp_path / "data",
        users=[("big", "big-pw")],
        workers=1,
        extra_args=["--max-json-bytes", str(BODY_LIMIT), "--max-json-buffered-bytes", str(BUDGET)],
    )
    # About 22 MiB of inline "audio" (zeros: it decodes as base64, then is refused as media).
    body = json.dumps({"audio": {"content": base64.b64encode(bytes(16 * MIB + 512 * 1024)).decode()}}).encode()
    assert 20 * MIB < len(body) < BODY_LIMIT
    answers: list[httpx.Response | BaseException | None] = [None] * CLIENTS
    barrier = threading.Barrier(CLIENTS)

    def send(i: int) -> None:
        # Half declare their length, half stream it chunked (the budget is charged as the chunks arrive).
        content = body if i % 2 else (body[at : at + MIB] for at in range(0, len(body), MIB))
        try:
            with server.client(timeout=300) as client:
                barrier.wait()
                answers[i] = client.post(
                    "/speech:recognize", content=content, headers={"Content-Type": "application/json"}
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            answers[i] = exc

    try:
        rss_before = server_rss = peak_rss(server.process.pid)
        threads = [threading.Thread(target=send, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        server_rss = peak_rss(server.process.pid)
        statuses = [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]
        assert all(s in (400, 503) for s in statuses), statuses
        refused = [a for a in answers if isinstance(a, httpx.Response) and a.status_code == 503]
        processed = [a for a in answers if isinstance(a, httpx.Response) and a.status_code == 400]
        assert refused and processed, statuses
        assert all("could not be decoded" in a.json()["error"] for a in processed)
        assert all(a.headers["retry-after"] == "1" and "retry later" in a.json()["error"] for a in refused)
        # At most two bodies (the budget) at once, each held as bytes, then as the parsed string, then decoded:
        # well under what twelve at once would take (about 12 x 22 MiB x 3).
        grown = server_rss - rss_before
        assert grown < 200 * MIB, f"the server's peak RSS grew by {grown / MIB:.0f} MiB"
        # Once they are done, a body fits again.
        with server.client() as client:
            again = client.post("/speech:recognize", content=body, headers={"Content-Type": "application/json"})
            assert again.status_code == 400 and "could not be decoded" in again.json()["error"]
            assert client.get("/assets", params={"done": "false"}).json()["results"] == []
    finally:
        server.stop()
    print(f"peak RSS grew by {(server_rss - rss_before) / MIB:.0f} MiB; answers {sorted(statuses)}")
