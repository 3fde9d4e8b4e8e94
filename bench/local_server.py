"""Benchmark of the Brain-compatible local server: recognition speed and upload memory.

Run ``.venv/bin/python bench/local_server.py`` (about two minutes). It starts real servers with the
test fixtures' helper and prints:

* the real-time factor (processing time / audio duration) of synchronous recognition of Festival
  speech, per voice, with one worker; and the throughput of a batch of async assets with all workers;
* the server's peak resident memory while it receives a 1 GiB upload (a sparse file streamed by
  ``curl -T``), next to its idle memory and the file's size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.fixtures.brain import start_brain_server  # noqa: E402
from tests.fixtures.speech import SpeechFactory  # noqa: E402

MiB = 1024**2
UPLOAD_BYTES = 1024**3
SENTENCES = [0, 1, 2, 3, 4, 5]


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(reference, hypothesis))


def bench_rtf(work: Path, speech: SpeechFactory) -> None:
    print("== Recognition speed (sync POST /speech:recognize, --workers 1) ==")
    print(f"{'voice':<6} {'audio s':>8} {'wall s':>7} {'RTF':>6} {'WER':>6}")
    server = start_brain_server(work / "rtf", users=[("bench", "bench")], workers=1)
    try:
        with server.client(timeout=600) as client:
            for voice in ("slt", "kal"):
                path = speech.joined(SENTENCES, voice=voice)
                started = time.monotonic()
                response = client.post(
                    "/speech:recognize",
                    content=path.read_bytes(),
                    headers={"Content-Type": "application/octet-stream"},
                )
                wall = time.monotonic() - started
                asset = response.json()
                rate = wer(speech.text(SENTENCES), asset["transcript"])
                print(
                    f"{voice:<6} {asset['duration']:>8.1f} {wall:>7.2f} {wall / asset['duration']:>6.3f} {rate:>6.3f}"
                )
    finally:
        server.stop()

    workers = os.cpu_count() or 1
    print(f"\n== Throughput (4 async assets, --workers {workers}) ==")
    server = start_brain_server(work / "throughput", users=[("bench", "bench")], workers=workers)
    try:
        with server.client(timeout=600) as client:
            path = speech.joined(SENTENCES[:3], voice="kal")
            body = path.read_bytes()
            started = time.monotonic()
            ids = [
                client.post(
                    "/speech:recognize",
                    params={"async": "true"},
                    content=body,
                    headers={"Content-Type": "application/octet-stream"},
                ).json()["asset_id"]
                for _ in range(4)
            ]
            total_audio = 0.0
            for asset_id in ids:
                while (asset := client.get(f"/assets/{asset_id}").json())["status"] == "processing":
                    time.sleep(0.1)
                total_audio += asset["duration"]
            wall = time.monotonic() - started
            print(f"{total_audio:.1f} s of audio in {wall:.2f} s: {wall / total_audio:.3f} s per audio second")
    finally:
        server.stop()


def bench_upload_rss(work: Path) -> None:
    print("\n== Memory while receiving a 1 GiB upload (curl -T, sparse file of zeros) ==")
    sparse = work / "upload-1GiB.bin"
    with sparse.open("wb") as handle:
        handle.truncate(UPLOAD_BYTES)
    server = start_brain_server(work / "rss", users=[("bench", "bench")], workers=1)
    try:
        process = psutil.Process(server.process.pid)
        time.sleep(1.0)
        idle = process.memory_info().rss
        peak = idle
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, process.memory_info().rss)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        try:
            result = subprocess.run(
                [
                    "curl",
                    "-sS",
                    "-u",
                    "bench:bench",
                    "-X",
                    "POST",
                    "-T",
                    str(sparse),
                    "-H",
                    "Content-type: application/octet-stream",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    f"{server.url}/speech:recognize",
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            stop.set()
            sampler.join()
        wall = time.monotonic() - started
        workers_rss = sum(child.memory_info().rss for child in process.children(recursive=True))
        print(f"{'':<28} {'MiB':>9}")
        print(f"{'upload size':<28} {UPLOAD_BYTES / MiB:>9.1f}")
        print(f"{'server RSS, idle':<28} {idle / MiB:>9.1f}")
        print(f"{'server RSS, peak in upload':<28} {peak / MiB:>9.1f}")
        print(f"{'growth (limit ~64)':<28} {(peak - idle) / MiB:>9.1f}")
        print(f"{'worker processes RSS':<28} {workers_rss / MiB:>9.1f}  (unchanged by uploads)")
        print(
            f"HTTP {result.stdout.strip()} after {wall:.1f} s ({UPLOAD_BYTES / MiB / wall:.0f} MiB/s);"
            " 400 is expected: zeros are not audio"
        )
        leftovers = list((server.data_dir / "tmp").iterdir())
        print(f"partial files left in the data dir: {len(leftovers)}")
    finally:
        server.stop()


def main() -> int:
    if shutil.which("text2wave") is None or shutil.which("curl") is None:
        print("needs Festival's text2wave and curl", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="brain-bench-") as tmp:
        work = Path(tmp)
        speech = SpeechFactory(work / "speech")
        speech.cache_dir.mkdir()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load}, Python {sys.version.split()[0]}")
        print("(RTF grows with other load on the CPUs: compare runs at similar load averages)\n")
        bench_rtf(work, speech)
        bench_upload_rss(work)
        print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
