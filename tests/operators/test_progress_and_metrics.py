"""A long batch wait in real DAG runs (``airflow dags test``), in the worker and deferred, against a local Brain
server that keeps every asset processing for 70 s: the task log shows the counts at least once a minute and a
final tally, and a real StatsD listener (a UDP socket) receives the documented ``brain.`` metrics."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import Asset
from tests.fixtures.brain import start_brain_server
from tests.fixtures.connections import brain_connection_json
from tests.operators.test_transcribe_dags import DagRunner, assert_succeeded

DAG_FILE = Path(__file__).parents[1] / "dags" / "brain_progress.py"
AUDIO_FILES = 20
LATENCY = 70  # Seconds each asset stays processing: the wait passes one minute, so a progress line is due.


class StatsdListener:
    """A UDP socket that keeps every StatsD line it receives (``name:value|type``)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(line for line in data.decode().splitlines() if line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def counters(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for line in self.lines:
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if kind.startswith("c"):
                totals[name] += float(value)
        return totals

    def timers(self, name: str) -> list[float]:
        return [float(line.split(":")[1].split("|")[0]) for line in self.lines if line.startswith(name + ":")]


MODES = ("brain_progress_worker", "brain_progress_deferred")


def test_long_batch_wait_logs_progress_and_sends_metrics(
    airflow_cli, s3_server, s3_bucket, speech, tmp_path, monkeypatch
):
    """Both modes at once, each in an Airflow home, with a Brain server and a StatsD listener of its own: the two
    DAG runs wait out the same 70 s side by side instead of one after the other (``airflow dags test`` runs one
    task at a time, so two tasks in one run would not). Every check below is made for each mode."""
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    for dag_id in MODES:
        for i in range(AUDIO_FILES):
            client.upload_file(str(speech.file(i % 3)), s3_bucket, f"{dag_id}/clip-{i:02d}.wav")
        client.put_object(Bucket=s3_bucket, Key=f"{dag_id}/notes.txt", Body=b"these are notes, not audio")
    clis = {MODES[0]: airflow_cli, MODES[1]: airflow_cli.sibling(tmp_path / "second-airflow-home")}
    with contextlib.ExitStack() as stack:
        servers, listeners, runners = {}, {}, {}
        for dag_id in MODES:
            server = start_brain_server(tmp_path / dag_id, workers=2, extra_args=["--min-latency", str(LATENCY)])
            stack.callback(server.stop)
            listener = StatsdListener()
            stack.callback(listener.close)
            servers[dag_id], listeners[dag_id] = server, listener
            runners[dag_id] = DagRunner(
                clis[dag_id],
                {
                    "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(server.url, *server.auth),
                    "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
                    "BRAIN_TEST_BUCKET": s3_bucket,
                    "BRAIN_TEST_PREFIX": f"{dag_id}/",
                    "AIRFLOW__METRICS__STATSD_ON": "True",
                    "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                    "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
                },
            )
        with ThreadPoolExecutor(len(MODES)) as pool:
            runs = {dag_id: pool.submit(runners[dag_id].test, dag_id) for dag_id in MODES}
            results = {dag_id: run.result() for dag_id, run in runs.items()}
        for dag_id in MODES:
            code, output = results[dag_id]
            assert_succeeded(code, output)
            monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", runners[dag_id].env["AIRFLOW_CONN_BRAIN_DEFAULT"])
            assets = list(BrainHook().list_assets(include_unfinished=True))
            check_progress_and_metrics(output, assets, listeners[dag_id], s3_bucket)


def check_progress_and_metrics(output: str, assets: list[Asset], statsd: StatsdListener, s3_bucket: str) -> None:
    total = AUDIO_FILES + 1
    progress = [
        m.start() for m in re.finditer(r"Brain progress \(still waiting\): \d+ done, \d+ failed, \d+ still", output)
    ]
    final = output.find(f"Brain progress (wait ended): {AUDIO_FILES} done, 1 failed, 0 still processing, of {total}")
    assert progress, "no progress line while the wait passed a minute"
    assert final > 0 and min(progress) < final, "the progress line comes before the final tally"
    assert f"of {total}; waited" in output[min(progress) :]
    assert "clip-" not in output[min(progress) : final], "no file named in the progress lines"

    done = [a for a in assets if a.is_done]
    assert len(done) == AUDIO_FILES and len(assets) == total
    counters = statsd.counters()
    assert counters["airflow.brain.assets.submitted"] == total
    assert counters["airflow.brain.assets.done"] == AUDIO_FILES
    assert counters["airflow.brain.assets.failed"] == 1
    assert counters["airflow.brain.audio_seconds"] == pytest.approx(sum(a.duration for a in done), abs=0.01)
    assert counters["airflow.brain.poll_requests"] >= 2
    assert len(statsd.timers("airflow.brain.submit_to_done")) == AUDIO_FILES
    assert min(statsd.timers("airflow.brain.submit_to_done")) >= LATENCY * 1000 * 0.9
    brain_lines = [line for line in statsd.lines if "brain." in line]
    assert not any(s in line for line in brain_lines for s in ("clip", "s3:", "http", s3_bucket))
