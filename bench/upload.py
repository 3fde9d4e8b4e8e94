"""Upload throughput and client memory: BrainHook.submit_file against ``curl -T``, same file, same server.

Run: ``.venv/bin/python bench/upload.py [--size-mib 1024] [--rounds 3]``. Starts its own local Brain server.

``submit_file`` is measured from a path, from an S3-like stream (a callable returning a non-seekable reader
with its length, ``SizedStream``, as the operator's ``s3_transfer="stream"`` passes an S3 body and its
``ContentLength``) and from a stream of unknown length (sent chunked), each in a fresh process, with its
RSS growth over the upload. The file is read once before measuring, so no upload pays for the first read of
the file (a sparse file here: reading it the first time fills the page cache, seconds of kernel time).
Each round runs curl and the three sources in turn; the best of the rounds is reported, with the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.brain import start_brain_server  # noqa: E402
from tests.fixtures.connections import brain_connection_json  # noqa: E402

HOOK_UPLOAD = textwrap.dedent(
    """
    import json, os, sys, time
    from airflow_provider_brain.exceptions import BrainAPIError
    from airflow_provider_brain.hooks.brain import BrainHook
    from airflow_provider_brain.hooks.uploads import SizedStream

    class Stream:
        \"\"\"A non-seekable reader, like an S3 object's StreamingBody: read(size) and close() only.\"\"\"

        def __init__(self, path):
            self._file = open(path, "rb")

        def read(self, size=-1):
            return self._file.read(size)

        def close(self):
            self._file.close()

    path, mode = sys.argv[1], sys.argv[2]
    size = os.path.getsize(path)
    sources = {
        "path": path,
        "stream": lambda: SizedStream(Stream(path), size),  # as the operator sends an S3 body
        "unsized": lambda: Stream(path),  # a stream of unknown length: chunked
    }
    source = sources[mode]
    hook = BrainHook()
    hook.test_connection()
    def status_kib(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field))

    baseline = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Reset the high-water mark: measure the upload's peak only.
    started = time.perf_counter()
    try:
        hook.submit_file(source, async_=True)
    except BrainAPIError:
        pass  # Zeros are not audio; the server answers 400 once the whole body has arrived.
    elapsed = time.perf_counter() - started
    peak = status_kib("VmHWM")
    print(json.dumps({"seconds": elapsed, "rss_growth_kib": peak - baseline, "peak_kib": peak}))
    """
)

MODES = {
    "path": "submit_file, path",
    "stream": "submit_file, S3-like stream",
    "unsized": "submit_file, unsized stream",
}


def hook_upload(env: dict[str, str], path: Path, mode: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", HOOK_UPLOAD, str(path), mode], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def curl_upload(url: str, auth: tuple[str, str], path: Path) -> dict[str, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            "/usr/bin/time", "-f", "%M", "curl", "-s", "-o", "/dev/null", "-u", f"{auth[0]}:{auth[1]}",
            "-X", "POST", "-T", str(path), "-H", "Content-type: application/octet-stream",
            f"{url}/speech:recognize?async=true",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "peak_kib": float(result.stderr.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"curl": [], **{mode: [] for mode in MODES}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "upload.bin"
        with data.open("wb") as handle:
            handle.truncate(args.size_mib << 20)
        with data.open("rb") as handle:
            while handle.read(1 << 20):
                pass
        server = start_brain_server(Path(tmp) / "brain", workers=1)
        try:
            env = {**os.environ, "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(server.url, *server.auth)}
            for _ in range(args.rounds):
                runs["curl"].append(curl_upload(server.url, server.auth, data))
                for mode in MODES:
                    runs[mode].append(hook_upload(env, data, mode))
        finally:
            server.stop()
    mib = args.size_mib
    speeds = {name: sorted(mib / run["seconds"] for run in results) for name, results in runs.items()}
    print(f"Upload of {mib} MiB to the local Brain server (loopback), best of {args.rounds} rounds, this machine:")
    print(f"{'':30}{'MiB/s':>8}{'spread':>12}{'% of curl':>11}{'peak RSS (MiB)':>16}{'RSS growth (MiB)':>18}")
    for name, label in [("curl", "curl -T (baseline)"), *MODES.items()]:
        best, worst = speeds[name][-1], speeds[name][0]
        peak = max(run["peak_kib"] for run in runs[name]) / 1024
        growth = f"{max(run['rss_growth_kib'] for run in runs[name]) / 1024:.1f}" if name != "curl" else ""
        print(
            f"{label:30}{best:>8.0f}{f'{worst:.0f}-{best:.0f}':>12}{100 * best / speeds['curl'][-1]:>10.0f}%"
            f"{peak:>16.1f}{growth:>18}"
        )


if __name__ == "__main__":
    main()
