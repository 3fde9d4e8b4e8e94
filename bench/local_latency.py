"""Benchmark: the local server's ``GET /assets/{id}`` latency while searches read 10,000 assets of the same
user and uploads stream in, against the server as it was before its blocking work left the event loop.

Run ``.venv/bin/python bench/local_latency.py`` (about two minutes). For each server, in turn:

* a fresh data dir gets ``--assets`` done assets of user ``bench`` (about 30 words each), written by
  that server's own ``AssetStore`` (``create`` + ``mark_done``, as a recognition records them) in a
  subprocess before the server starts: uploading and recognising 10,000 files would take hours;
* ``brain-local serve --workers 1`` starts on it;
* for ``--seconds``: ``--searchers`` clients post ``POST /assets/search`` for ``--query`` over all of the
  user's assets back to back ("the" is in nearly every asset: the most a search can read), and
  ``--uploaders`` clients stream 10 s WAV files (silence, 48 kHz stereo, 1.8 MiB) to
  ``POST /speech:recognize?async=true`` in 64 KiB blocks at ``--upload-mib-s`` each; meanwhile one
  client sends ``GET /assets/{id}`` for seeded assets, one after another with 20 ms between, and times
  each from request to the last byte of the answer.

The baseline is the same load against the package of commit ``--baseline`` (default: the commit before
the change that moved SQLite, file writes and search off the event loop), exported with ``git archive``
into a temporary directory and started the same way. The clients are the same for both servers:
``http.client`` (answers read, not parsed), the searchers and uploaders on threads of a process of their
own, the timed GETs alone in this one. "searches" counts the searches answered while the load ran.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The commit before the local server's blocking work moved off its event loop.
BASELINE_REV = "1252d09^"
USER, PASSWORD = "bench", "bench"
READY = re.compile(r"Brain local server listening on (http://\S+)")
GET_INTERVAL = 0.02
UPLOAD_BLOCK = 64 * 1024

SEED = r"""
import json, random, sys, time
from pathlib import Path
from airflow_provider_brain.local.assets import Asset, new_asset_id
from airflow_provider_brain.local.recognizer import Word
from airflow_provider_brain.local.store import AssetStore, utc_now

data_dir, count, user = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sentences = [s.split() for s in json.loads(sys.argv[4])]
rng = random.Random(17)
started = time.monotonic()
store = AssetStore(data_dir)
ids = []
for _ in range(count):
    asset = Asset(new_asset_id(), user, "processing", utc_now(), "http://127.0.0.1", duration=12.0)
    store.create(asset)
    texts = [w for s in rng.sample(sentences, 3) for w in s]
    words = [
        Word(t, round(k * 0.35, 2), round(k * 0.35 + 0.3, 2), round(rng.uniform(0.5, 1.0), 4))
        for k, t in enumerate(texts)
    ]
    store.mark_done(asset.asset_id, 12.0, words)
    ids.append(asset.asset_id)
store.close()
print(json.dumps({"seconds": time.monotonic() - started, "ids": ids[::97]}))
"""

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please call stella and ask her to bring these things with her from the store",
    "we will meet at the station at nine in the morning",
    "she sells sea shells by the sea shore",
    "the children played in the park until the sun went down",
    "she opened the window and looked at the rain",
    "a large crowd gathered to hear the news about the election",
    "our train leaves at noon so pack your bags tonight",
]


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def export_baseline(rev: str, dest: Path) -> str:
    """Unpack the package as it was at ``rev`` into ``dest``; return the commit's short hash and subject."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", rev, "airflow_provider_brain"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%h %s", rev], check=True, capture_output=True, text=True
    ).stdout.strip()[:90]


def code_env(code_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code_root)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def seed(code_root: Path, data_dir: Path, count: int) -> tuple[float, list[str]]:
    """Write ``count`` done assets with the store of the code in ``code_root``; return seconds and some ids."""
    result = subprocess.run(
        [sys.executable, "-c", SEED, str(data_dir), str(count), USER, json.dumps(SENTENCES)],
        cwd=code_root,
        env=code_env(code_root),
        check=True,
        capture_output=True,
        text=True,
    )
    seeded = json.loads(result.stdout.strip().splitlines()[-1])
    return seeded["seconds"], seeded["ids"]


def start_server(code_root: Path, data_dir: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    args = [sys.executable, "-m", "airflow_provider_brain.local", "serve", "--port", "0", "--workers", "1"]
    args += ["--data-dir", str(data_dir), "--user", USER, "--password", PASSWORD, "--log-level", "warning"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=code_root, env=code_env(code_root), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        match = READY.search(log_path.read_text(errors="replace"))
        if match:
            return process, match.group(1)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server not ready in 120 s:\n{log_path.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def silent_wav() -> bytes:
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((48000 * 10, 2), dtype="int16"), 48000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@dataclass
class Load:
    """What the clients did against one server."""

    get_ms: list[float] = field(default_factory=list)
    get_errors: int = 0
    search_s: list[float] = field(default_factory=list)
    search_bytes: int = 0
    search_errors: int = 0
    uploads: int = 0
    upload_errors: int = 0
    uploaded_bytes: int = 0


class Clients:
    """The searchers and uploaders, on threads of the load process, until ``stop`` is set."""

    def __init__(self, url: str, query: str, wav: bytes, upload_rate: float) -> None:
        self.host, self.port, self.headers = address(url)
        self.query, self.wav, self.upload_rate = query, wav, upload_rate
        self.stop = threading.Event()
        self.load = Load()
        self.lock = threading.Lock()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=600)

    def searcher(self) -> None:
        body = json.dumps({"query": self.query})
        headers = {**self.headers, "Content-Type": "application/json"}
        while not self.stop.is_set():
            connection = self.connection()
            started = time.monotonic()
            try:
                connection.request("POST", "/assets/search", body=body, headers=headers)
                response = connection.getresponse()
                size = len(response.read())
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok, size = False, 0
            finally:
                connection.close()
            with self.lock:
                if ok:
                    self.load.search_s.append(time.monotonic() - started)
                    self.load.search_bytes += size
                else:
                    self.load.search_errors += 1

    def uploader(self) -> None:
        pause = UPLOAD_BLOCK / (self.upload_rate * 1024 * 1024)
        while not self.stop.is_set():
            connection = self.connection()
            try:
                connection.putrequest("POST", "/speech:recognize?async=true")
                for name, value in {**self.headers, "Content-Type": "application/octet-stream"}.items():
                    connection.putheader(name, value)
                connection.putheader("Content-Length", str(len(self.wav)))
                connection.endheaders()
                for start in range(0, len(self.wav), UPLOAD_BLOCK):
                    connection.send(self.wav[start : start + UPLOAD_BLOCK])
                    time.sleep(pause)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                connection.close()
            with self.lock:
                if ok:
                    self.load.uploads += 1
                    self.load.uploaded_bytes += len(self.wav)
                else:
                    self.load.upload_errors += 1


def address(url: str) -> tuple[str, int, dict[str, str]]:
    parts = urlsplit(url)
    auth = {"Authorization": "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    return parts.hostname or "127.0.0.1", parts.port or 80, auth


def load_process(url: str, args: dict[str, Any], stop: Any, results: Any) -> None:
    """The searchers and uploaders, in a process apart from the timed GETs (their reading of 4 MiB
    answers must not hold the timing thread's GIL)."""
    clients = Clients(url, args["query"], silent_wav(), args["upload_mib_s"])
    threads = [threading.Thread(target=clients.searcher) for _ in range(args["searchers"])]
    threads += [threading.Thread(target=clients.uploader) for _ in range(args["uploaders"])]
    for thread in threads:
        thread.start()
    stop.wait()
    clients.stop.set()
    for thread in threads:
        thread.join()
    results.put(clients.load)


def time_gets(url: str, ids: list[str], seconds: float, load: Load) -> None:
    """GET seeded assets one after another (``GET_INTERVAL`` apart) for ``seconds``; record each time."""
    host, port, headers = address(url)
    connection = http.client.HTTPConnection(host, port, timeout=120)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            connection.request("GET", f"/assets/{ids[i % len(ids)]}", headers=headers)
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=120)
            ok = False
        i += 1
        if ok:
            load.get_ms.append((time.monotonic() - started) * 1000)
        else:
            load.get_errors += 1
        time.sleep(GET_INTERVAL)
    connection.close()


def run_load(url: str, ids: list[str], args: argparse.Namespace) -> Load:
    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    settings = {k: getattr(args, k) for k in ("query", "upload_mib_s", "searchers", "uploaders")}
    process = context.Process(target=load_process, args=(url, settings, stop, results))
    process.start()
    time.sleep(3.0)  # the first searches and uploads are under way before the first GET
    timed = Load()
    time_gets(url, ids, args.seconds, timed)
    stop.set()
    load: Load = results.get(timeout=600)
    process.join()
    load.get_ms, load.get_errors = timed.get_ms, timed.get_errors
    return load


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long GETs are timed, per server")
    parser.add_argument("--query", default="the")
    parser.add_argument("--searchers", type=int, default=1)
    parser.add_argument("--uploaders", type=int, default=2)
    parser.add_argument("--upload-mib-s", type=float, default=1.0, help="each uploader's rate")
    parser.add_argument("--baseline", default=BASELINE_REV, help="git revision of the baseline server")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs, load average {load_average()}, Python {sys.version.split()[0]}")
    results: list[tuple[str, Load]] = []
    with tempfile.TemporaryDirectory(prefix="brain-latency-") as tmp:
        work = Path(tmp)
        baseline_root = work / "baseline"
        baseline_root.mkdir()
        subject = export_baseline(args.baseline, baseline_root)
        print(f"baseline: the package at {args.baseline} ({subject}), from git archive")
        print(f"ours: the package in {REPO_ROOT}\n")
        for name, code_root in (("baseline", baseline_root), ("ours", REPO_ROOT)):
            data_dir = work / f"{name}-data"
            seconds, ids = seed(code_root, data_dir, args.assets)
            print(
                f"{name}: seeded {args.assets:,} done assets of user {USER} through the server's own store"
                f" (AssetStore.create + mark_done, no HTTP) in {seconds:.1f} s"
            )
            process, url = start_server(code_root, data_dir, work / f"{name}-server.log")
            try:
                print(f"{name}: measuring {args.seconds:g} s (load average {load_average()})", flush=True)
                results.append((name, run_load(url, ids, args)))
            finally:
                stop_server(process)

    print(
        f"\n== GET /assets/{{id}} while {args.searchers} client(s) search {args.assets:,} assets for"
        f" {args.query!r} back to back and {args.uploaders} stream uploads at {args.upload_mib_s:g} MiB/s each =="
    )
    print(
        f"{'server':<9} {'GETs':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'searches':>8} {'s/search':>8} {'MiB/search':>10} {'uploads':>7} {'errors':>6}"
    )
    for name, load in results:
        searches = len(load.search_s)
        print(
            f"{name:<9} {len(load.get_ms):>5} {percentile(load.get_ms, 0.50):>7.1f}"
            f" {percentile(load.get_ms, 0.95):>7.1f} {percentile(load.get_ms, 0.99):>7.1f}"
            f" {max(load.get_ms, default=float('nan')):>7.1f} {searches:>8}"
            f" {sum(load.search_s) / searches if searches else float('nan'):>8.2f}"
            f" {load.search_bytes / searches / 1024**2 if searches else float('nan'):>10.2f}"
            f" {load.uploads:>7} {load.get_errors + load.search_errors + load.upload_errors:>6}"
        )
    print("target: p99 under 100 ms")
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
