"""What waiting costs at scale: N concurrent waits through the coalesced poller, through one request per asset
per poll (how BrainAssetTrigger polled before the poller), and through naive threads.

For each way, a fresh local Brain server receives N submissions whose media cannot be fetched (so no
recognition CPU blurs the figures), held ``processing`` by ``--min-latency``. The server then restarts with
a latency chosen so that the first asset finishes about ``--seconds`` after the waiters start and the rest
follow in submission order. The waiters run in a process of their own until every one has heard. Printed
side by side: requests/s to Brain (counted in the server's access log), the waiters' CPU s/min and peak
RSS, the Brain server's own CPU s/min, and the worst and median delay between an asset finishing (its
``completed`` stamp) and its waiter hearing of it.

Run: ``.venv/bin/python bench/waiting.py [--waits 10000 --poll 10 --seconds 120]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airflow_provider_brain.models import parse_api_time  # noqa: E402
from tests.fixtures.brain import BrainServer, start_brain_server  # noqa: E402
from tests.fixtures.connections import brain_connection_json  # noqa: E402

UNREACHABLE = "http://127.0.0.1:9/never.wav"
ACCESS = re.compile(r"brain_local\.access: GET /assets")

COMMON = """
import asyncio, json, resource, sys, threading, time
ids = json.load(open(sys.argv[1]))
poll, limit, out = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
heard = {}
cpu0, t0 = time.process_time(), time.monotonic()


async def wait_all(wait_one):
    tasks = [asyncio.create_task(wait_one(i)) for i in ids]
    await asyncio.wait(tasks, timeout=limit)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
"""

FINISH = """
cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
json.dump({"cpu": cpu, "wall": wall, "peak_kib": peak, "heard": heard}, open(out, "w"))
"""

WAYS = {
    "coalesced": (
        "BrainAssetTrigger, shared poller",
        """
        from airflow_provider_brain.triggers.asset import BrainAssetTrigger

        async def wait_one(asset_id):
            async for event in BrainAssetTrigger(asset_id, poll_interval=poll).run():
                heard[asset_id] = time.time()

        asyncio.run(wait_all(wait_one))
        """,
    ),
    "per_asset": (
        "a request per asset per poll",
        """
        from airflow_provider_brain.hooks.brain import BrainHook

        async def wait_one(asset_id):
            # BrainAssetTrigger's loop before the poller: a hook (and HTTP client) per wait, a GET per poll.
            hook = BrainHook()
            try:
                while True:
                    if not (await hook.aget_asset(asset_id)).is_processing:
                        heard[asset_id] = time.time()
                        return
                    await asyncio.sleep(poll)
            finally:
                await hook.aclose()

        asyncio.run(wait_all(wait_one))
        """,
    ),
    "threads": (
        "threads + time.sleep (naive)",
        """
        import requests

        url, user, password = sys.argv[5], sys.argv[6], sys.argv[7]
        stop = threading.Event()

        def wait_one(asset_id):
            # The naive way: one thread per wait, a session, a while loop and time.sleep.
            session = requests.Session()
            session.auth = (user, password)
            while not stop.is_set():
                try:
                    status = session.get(f"{url}/assets/{asset_id}", timeout=300).json().get("status")
                except requests.RequestException:
                    status = "processing"
                if status != "processing":
                    heard[asset_id] = time.time()
                    return
                stop.wait(poll)

        threads = [threading.Thread(target=wait_one, args=(i,), daemon=True) for i in ids]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + limit
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stop.set()
        """,
    ),
}


def submit(server: BrainServer, count: int) -> list[str]:
    """``count`` asynchronous URL submissions, 8 at a time; their ids in submission order."""
    local = threading.local()

    def one(_: int) -> str:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.auth = server.auth
        answer = session.post(
            f"{server.url}/speech:recognize", json={"audio": {"url": UNREACHABLE}, "config": {"async": True}}
        )
        answer.raise_for_status()
        return str(answer.json()["asset_id"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def completions(server: BrainServer) -> dict[str, float]:
    """When each asset finished (its ``completed`` stamp, epoch seconds), read from the listing."""
    found: dict[str, float] = {}
    offset: int | None = 0
    with server.client(timeout=300) as client:
        while offset is not None:
            page = client.get("/assets", params={"done": "false", "limit": 1000, "offset": offset}).json()
            for item in page["results"]:
                when = parse_api_time(item.get("completed"))
                if when is not None:
                    found[item["asset_id"]] = when.timestamp()
            offset = page.get("next_offset")
    return found


def measure(way: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    data = workdir / way
    queue = str(args.waits * 2 + 10)
    server = start_brain_server(data, workers=1, extra_args=["--min-latency", "100000", "--max-queue", queue])
    first = time.time()
    ids = submit(server, args.waits)
    spread = time.time() - first
    server.stop()
    # Restart: every asset is processed again (its media still unreachable) and held until created + latency,
    # so the first one finishes about --seconds after the waiters start (allowing 15 s for start-up).
    latency = time.time() + 15 + args.seconds - first
    extra = ["--min-latency", f"{latency:.1f}", "--max-queue", queue]
    server = start_brain_server(data, workers=1, port=server.port, extra_args=extra)
    try:
        ids_file, out_file = workdir / f"{way}-ids.json", workdir / f"{way}-out.json"
        ids_file.write_text(json.dumps(ids))
        limit = args.seconds + spread + 60 + 2 * args.poll
        env = {**os.environ, "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(server.url, *server.auth)}
        script = COMMON + textwrap.dedent(WAYS[way][1]) + FINISH
        argv = [sys.executable, "-c", script, str(ids_file), str(args.poll), str(limit), str(out_file)]
        argv += [server.url, *server.auth]
        log_offset = len(server.log_text())
        brain = psutil.Process(server.process.pid)
        brain_cpu0 = sum(brain.cpu_times()[:2])
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        brain_cpu = sum(brain.cpu_times()[:2]) - brain_cpu0
        if result.returncode != 0:
            raise SystemExit(result.stderr[-3000:])
        figures = json.loads(out_file.read_text())
        calls = len(ACCESS.findall(server.log_text()[log_offset:]))
        finished = completions(server)
    finally:
        server.stop()
    heard = figures["heard"]
    delays = [heard[i] - finished[i] for i in ids if i in heard and i in finished]
    minutes = figures["wall"] / 60
    return {
        "cpu_per_min": figures["cpu"] / minutes,
        "peak_mib": figures["peak_kib"] / 1024,
        "requests_per_s": calls / figures["wall"],
        "brain_cpu_per_min": brain_cpu / minutes,
        "worst_delay": max(delays) if delays else float("nan"),
        "median_delay": statistics.median(delays) if delays else float("nan"),
        "heard": len(heard),
        "wall": figures["wall"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waits", type=int, default=10_000)
    parser.add_argument("--poll", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long every wait is open before any ends")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"a comma-separated subset of {','.join(WAYS)}")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # A socket per naive wait, on both sides.
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in args.ways.split(","):
            print(f"... {WAYS[way][0]}", file=sys.stderr, flush=True)
            results[way] = measure(way, args, Path(tmp))
    print(
        f"{args.waits} concurrent waits, one poll every {args.poll:g} s each; all open for about {args.seconds:g} s,"
        " then the assets finish one after another:"
    )
    header = ("requests/s", "CPU s/min", "peak RSS MiB", "Brain CPU s/min", "worst delay s", "median delay s")
    print(f"{'':36}" + "".join(f"{h:>17}" for h in header))
    for way, r in results.items():
        cells = (
            f"{r['requests_per_s']:.1f}",
            f"{r['cpu_per_min']:.1f}",
            f"{r['peak_mib']:.0f}",
            f"{r['brain_cpu_per_min']:.1f}",
            f"{r['worst_delay']:.1f}",
            f"{r['median_delay']:.1f}",
        )
        print(f"{WAYS[way][0]:36}" + "".join(f"{c:>17}" for c in cells))
        if r["heard"] < args.waits:
            print(f"    ({args.waits - int(r['heard'])} waits had not heard when the run ended)")
    print(
        "Delays run from the server's completion stamp to the waiter hearing of it. Each waiter process includes\n"
        "Airflow itself (~110 MiB), which a triggerer has loaded anyway; each naive wait is also a worker slot."
    )


if __name__ == "__main__":
    main()
