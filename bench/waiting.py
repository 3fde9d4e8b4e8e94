"""What waiting costs: 1,000 BrainAssetTriggers in one event loop against 1,000 polling threads.

Both wait for the same 1,000 assets on the local Brain server, polling each every ``--poll`` seconds for
``--seconds`` seconds; the assets stay "processing" for the whole run (their media URL points at a server
that never answers). Printed side by side: peak RSS, CPU seconds per minute of waiting, requests per second.

Run: ``.venv/bin/python bench/waiting.py [--waits 1000 --poll 5 --seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.brain import start_brain_server  # noqa: E402
from tests.fixtures.connections import brain_connection_json  # noqa: E402

TRIGGERS = textwrap.dedent(
    """
    import asyncio, json, resource, sys, time
    from airflow_provider_brain.hooks.brain import BrainHook
    from airflow_provider_brain.triggers.asset import BrainAssetTrigger

    ids, poll, seconds = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    calls = 0
    original = BrainHook.aget_asset

    async def counted(self, *args, **kwargs):
        global calls
        calls += 1
        return await original(self, *args, **kwargs)

    BrainHook.aget_asset = counted

    async def wait_one(trigger):
        async for event in trigger.run():
            return event.payload

    async def main():
        tasks = [asyncio.create_task(wait_one(BrainAssetTrigger(i, poll_interval=poll))) for i in ids]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    cpu0, t0 = time.process_time(), time.monotonic()
    asyncio.run(main())
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"cpu": cpu, "wall": wall, "calls": calls, "peak_kib": peak}))
    """
)

THREADS = textwrap.dedent(
    """
    import json, resource, sys, threading, time
    import requests

    ids, poll, seconds = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    url, user, password = sys.argv[4], sys.argv[5], sys.argv[6]
    stop = threading.Event()
    calls = 0
    lock = threading.Lock()

    def wait_one(asset_id):
        # The naive way: one thread per wait, a session, a while loop and time.sleep.
        global calls
        session = requests.Session()
        session.auth = (user, password)
        while not stop.is_set():
            status = session.get(f"{url}/assets/{asset_id}", timeout=60).json().get("status")
            with lock:
                calls += 1
            if status != "processing":
                return
            time.sleep(poll)

    cpu0, t0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=wait_one, args=(i,), daemon=True) for i in ids]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(poll + 60)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"cpu": cpu, "wall": wall, "calls": calls, "peak_kib": peak}))
    """
)


def black_hole() -> tuple[str, threading.Event]:
    """An HTTP 'server' that accepts connections and never answers: media that never arrives."""
    done = threading.Event()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    held: list[socket.socket] = []

    def serve() -> None:
        sock.settimeout(0.5)
        while not done.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/never.wav", done


def measure(script: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    url_never, done = black_hole()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_brain_server(
            Path(tmp) / "brain",
            workers=1,
            extra_args=["--max-queue", str(args.waits * 2), "--download-timeout", "3600"],
        )
        try:
            with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as client:
                ids = [
                    client.post(
                        "/speech:recognize", json={"audio": {"url": url_never}, "config": {"async": True}}
                    ).json()["asset_id"]
                    for _ in range(args.waits)
                ]
            env = {**os.environ, "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(server.url, *server.auth)}
            common = [json.dumps(ids), str(args.poll), str(args.seconds)]
            triggers = measure(TRIGGERS, common, env)
            threads = measure(THREADS, [*common, server.url, *server.auth], env)
        finally:
            server.stop()
            done.set()
    print(f"{args.waits} waits on processing assets, one poll every {args.poll:g} s each, for {args.seconds:g} s:")
    print(f"{'':34}{'worker slots':>13}{'peak RSS MiB':>14}{'CPU s / min':>13}{'requests/s':>12}")
    for name, figures, slots in (
        ("BrainAssetTrigger, one event loop", triggers, 0),
        ("threads + time.sleep (naive)", threads, args.waits),
    ):
        per_minute = figures["cpu"] / figures["wall"] * 60
        rate = figures["calls"] / figures["wall"]
        print(f"{name:34}{slots:>13}{figures['peak_kib'] / 1024:>14.0f}{per_minute:>13.1f}{rate:>12.0f}")
    print(
        "The trigger process's RSS includes Airflow itself (~110 MiB), which a triggerer has loaded anyway. In a real\n"
        "deployment each naive wait is a running task: one worker slot (a process on Celery/Kubernetes) per wait."
    )


if __name__ == "__main__":
    main()
