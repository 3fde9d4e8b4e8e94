"""An upload through BrainHook.submit_file streams, from a path or a stream: the client's memory stays flat.

128 MiB is enough to show it: a client that held the body, or any part of it bigger than an eighth, would grow by
more than MAX_GROWTH; one that streams grows by about 2 MiB (README's benchmark: at most 2.0 MiB for 1 GiB).
``bench/upload.py`` measures the 1 GiB upload's throughput.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.brain import start_brain_server
from tests.fixtures.connections import brain_connection_json

UPLOAD = 128 << 20
MAX_GROWTH = UPLOAD // 8

MEASURE = textwrap.dedent(
    """
    import json, sys, time
    from airflow_provider_brain.exceptions import BrainAPIError
    from airflow_provider_brain.hooks.brain import BrainHook

    def status_kib(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field))

    import logging, tempfile

    class Stream:  # A non-seekable reader, like an S3 object's StreamingBody: read(size) and close() only.

        def __init__(self, path):
            self._file = open(path, "rb")

        def read(self, size=-1):
            return self._file.read(size)

        def close(self):
            self._file.close()

    path, mode = sys.argv[1], sys.argv[2]
    source = path if mode == "path" else (lambda: Stream(path))
    hook = BrainHook()
    # Warm up everything that is loaded once per process, so only the upload itself is measured:
    # imports, the connection and session, Airflow's logging set-up (a retry logs a warning), and
    # the upload and error paths (a small file that is not audio, sent the way the measured one is).
    hook.test_connection()
    logging.getLogger("airflow_provider_brain.hooks.brain").warning("warm-up before measuring")
    with tempfile.NamedTemporaryFile(suffix=".wav") as small:
        small.write(b"not audio" * 1000)
        small.flush()
        try:
            hook.submit_file(small.name if mode == "path" else (lambda: Stream(small.name)), async_=True)
        except BrainAPIError:
            pass
    baseline = status_kib("VmRSS")
    # Reset the high-water mark, so the peak is the upload's, not an earlier moment's (imports, warm-up).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    started = time.perf_counter()
    try:
        hook.submit_file(source, async_=True)
        outcome = "accepted"
    except BrainAPIError as err:  # Sparse zeros are not audio: the server says so after the whole body.
        outcome = f"{err.status}"
    elapsed = time.perf_counter() - started
    peak = status_kib("VmHWM")
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "seconds": elapsed, "outcome": outcome}))
    """
)


@pytest.mark.parametrize("mode", ["path", "stream"])
def test_an_upload_keeps_client_memory_flat(tmp_path, mode):
    # Its own server and a clean environment: the measurement must not depend on what other tests left.
    server = start_brain_server(tmp_path / "data", workers=1)
    big = tmp_path / "big.wav"
    with big.open("wb") as handle:
        handle.truncate(UPLOAD)  # Sparse: no disk used, but every byte is read and sent.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(server.url, *server.auth),
    }
    try:
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, str(big), mode], capture_output=True, text=True, timeout=600, env=env
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    growth = (figures["peak_kib"] - figures["baseline_kib"]) * 1024
    assert figures["outcome"] in ("accepted", "400"), figures
    assert growth < MAX_GROWTH, (
        f"client RSS grew by {growth / 2**20:.1f} MiB uploading {UPLOAD >> 20} MiB from a {mode}: {figures}"
    )
    print(f"{mode}: client RSS grew by {growth / 2**20:.1f} MiB uploading {UPLOAD >> 20} MiB")
