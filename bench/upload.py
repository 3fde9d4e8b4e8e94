"""Upload throughput and client memory: BrainHook.submit_file against ``curl -T``, same file, same server.

Run: ``.venv/bin/python bench/upload.py [--size-mib 1024]``. Starts its own local Brain server.
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
    import json, sys, time
    from airflow_provider_brain.exceptions import BrainAPIError
    from airflow_provider_brain.hooks.brain import BrainHook

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
        hook.submit_file(sys.argv[1], async_=True)
    except BrainAPIError:
        pass  # Zeros are not audio; the server answers 400 once the whole body has arrived.
    elapsed = time.perf_counter() - started
    peak = status_kib("VmHWM")
    print(json.dumps({"seconds": elapsed, "rss_growth_kib": peak - baseline, "peak_kib": peak}))
    """
)


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "upload.bin"
        with data.open("wb") as handle:
            handle.truncate(args.size_mib << 20)
        server = start_brain_server(Path(tmp) / "brain", workers=1)
        try:
            env = {**os.environ, "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(server.url, *server.auth)}
            hook = json.loads(
                subprocess.run(
                    [sys.executable, "-c", HOOK_UPLOAD, str(data)], env=env, capture_output=True, text=True, check=True
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            curl = curl_upload(server.url, server.auth, data)
        finally:
            server.stop()
    mib = args.size_mib
    print(f"Upload of {mib} MiB to the local Brain server (loopback), this machine:")
    print(f"{'':28}{'MiB/s':>10}{'peak RSS (MiB)':>18}{'RSS growth (MiB)':>20}")
    print(
        f"{'BrainHook.submit_file':28}{mib / hook['seconds']:>10.0f}{hook['peak_kib'] / 1024:>18.1f}"
        f"{hook['rss_growth_kib'] / 1024:>20.1f}"
    )
    print(f"{'curl -T (baseline)':28}{mib / curl['seconds']:>10.0f}{curl['peak_kib'] / 1024:>18.1f}{'':>20}")


if __name__ == "__main__":
    main()
