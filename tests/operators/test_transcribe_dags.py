"""BrainTranscribeOperator and BrainAssetSensor in real Airflow DAG runs (``airflow dags test``).

The audio sits in a real S3 API server (moto, server mode) reached through an ``aws``
connection with ``endpoint_url``; the transcription comes from the local Brain server.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import jiwer
import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.operators import trigger_start
from airflow_provider_brain.operators.transcribe import IDEMPOTENCY_KEY
from tests.fixtures.brain import start_brain_server
from tests.fixtures.connections import brain_connection_json
from tests.fixtures.faults import Fault
from tests.hooks.helpers import count_assets

DAG_FILE = Path(__file__).parents[1] / "dags" / "transcribe_modes.py"
WER_BOUND = 0.25


class DagRunner:
    def __init__(self, airflow_cli, env):
        self.cli = airflow_cli
        self.env = env

    def xcoms(self, dag_id: str, group: str | None = None) -> dict[str, str]:
        """The XComs of the last run of ``dag_id`` (of the tasks of task group ``group`` only, if given), read
        from the real metadata database."""
        query, params = "SELECT key, value FROM xcom WHERE dag_id = ?", [dag_id]
        if group is not None:
            query, params = query + " AND task_id LIKE ?", [*params, f"{group}.%"]
        with sqlite3.connect(self.cli.home / "airflow.db") as db:
            rows = db.execute(query + " ORDER BY timestamp", params).fetchall()
        return {key: value.decode() if isinstance(value, bytes) else value for key, value in rows}

    def test(self, dag_id: str):
        result = self.cli.run("dags", "test", dag_id, extra_env=self.env, check=False)
        output = result.stdout + result.stderr
        return result.returncode, output


@pytest.fixture
def dag_runner(airflow_cli, brain_server, s3_server, s3_bucket, speech, monkeypatch):
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    client.upload_file(str(speech.file(0)), s3_bucket, "calls/one.wav")
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "BRAIN_TEST_BUCKET": s3_bucket,
        "BRAIN_TEST_KEY": "calls/one.wav",
    }
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    return DagRunner(airflow_cli, env)


@dataclass
class CasesRun:
    """One run of a DAG whose cases are task groups (``brain_modes``, ``brain_retry``, ``brain_defer``), made once
    per module."""

    runner: DagRunner
    bucket: str
    code: int
    output: str

    def source(self, group: str) -> str:
        """The object the case ``group`` transcribes (``<prefix><group>.wav``)."""
        return f"s3://{self.bucket}/cases/{group}.wav"


def run_cases(
    airflow_cli,
    brain_server,
    s3_server,
    speech,
    dag_id: str,
    groups: tuple[str, ...],
    objects: dict[str, Path] | None = None,
    env: dict[str, str] | None = None,
) -> CasesRun:
    """Run ``dag_id`` once over a bucket of its own holding sentence 0 as ``cases/<group>.wav`` for each group,
    and each of ``objects`` (files by key under ``cases/``)."""
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    bucket = f"brain-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    for group in groups:
        client.upload_file(str(speech.file(0)), bucket, f"cases/{group}.wav")
    for key, path in (objects or {}).items():
        client.upload_file(str(path), bucket, f"cases/{key}")
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "BRAIN_TEST_BUCKET": bucket,
        "BRAIN_TEST_CASES_PREFIX": "cases/",
        **(env or {}),
    }
    runner = DagRunner(airflow_cli, env)
    code, output = runner.test(dag_id)
    return CasesRun(runner, bucket, code, output)


MODES = ("sync", "stream", "reschedule")
RETRIES = ("after_store", "before_store")


@pytest.fixture(scope="module")
def modes_run(airflow_cli, brain_server, s3_server, speech) -> CasesRun:
    return run_cases(airflow_cli, brain_server, s3_server, speech, "brain_modes", MODES)


@pytest.fixture(scope="module")
def retry_run(airflow_cli, brain_server, s3_server, speech) -> CasesRun:
    return run_cases(airflow_cli, brain_server, s3_server, speech, "brain_retry", RETRIES)


@pytest.fixture(scope="module")
def defer_run(airflow_cli, latent_brain, s3_server, speech) -> CasesRun:
    """brain_defer: deferrable, sensor (on twelve sentences, still processing when the sensor starts), mapped (three
    MP3s under cases/mapped/) and fallback (one WAV and three MP3s under cases/fallback/, and sentence 3 on disk).
    On ``latent_brain``: every asset is still processing when its task first looks, so each task really defers."""
    objects = {"sensor-long.wav": speech.joined([0, 1, 2] * 4), "fallback/one.wav": speech.file(0)}
    for i in range(3):
        objects[f"mapped/clip-{i}.mp3"] = objects[f"fallback/clip-{i}.mp3"] = speech.file(i, fmt="mp3")
    local = {"BRAIN_TEST_LOCAL_PATH": str(speech.file(3))}
    return run_cases(airflow_cli, latent_brain, s3_server, speech, "brain_defer", ("deferrable",), objects, local)


@pytest.fixture
def defer(defer_run: CasesRun, monkeypatch) -> CasesRun:
    """The module's run of brain_defer, with ``brain_default`` set here too (the checks read the assets back)."""
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", defer_run.runner.env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    return defer_run


def task_output(output: str, task_id: str) -> str:
    """What task ``task_id`` logged in an ``airflow dags test`` run: ``dags test`` runs one task at a time (a
    deferred task's trigger in line), so its lines are those from each ``[DAG TEST] starting task_id=<task_id>``
    line to the next ``[DAG TEST] end task task_id=<task_id>`` line (Airflow's own ``[DAG TEST]`` lines among them;
    on 3.1 a trigger's lines come after the run's, on stderr)."""
    start = re.compile(rf"\[DAG TEST\] starting task_id={re.escape(task_id)} map_index=")
    end = re.compile(rf"\[DAG TEST\] end task task_id={re.escape(task_id)} map_index=")
    lines, inside = [], False
    for line in output.splitlines():
        inside = inside or bool(start.search(line))
        if inside:
            lines.append(line)
            inside = not end.search(line)
    assert lines, f"no log of task {task_id} in the output"
    return "\n".join(lines)


def assets_for(source: str) -> list:
    hook = BrainHook()
    return [a for a in hook.list_assets(include_unfinished=True) if a.metadata.get("source") == source]


def assert_succeeded(code: int, output: str) -> None:
    finished = [line for line in output.splitlines() if "DagRun Finished" in line]
    assert code == 0 and finished and "state=success" in finished[-1], output[-5000:]


# Each mode is a task group of brain_modes (one run for the three); the ids are the DAGs they were before.
@pytest.mark.parametrize("mode", [pytest.param(mode, id=f"brain_{mode}") for mode in MODES])
def test_transcribe_modes(modes_run, speech, monkeypatch, mode):
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", modes_run.runner.env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    assert_succeeded(modes_run.code, modes_run.output)
    (asset,) = assets_for(modes_run.source(mode))
    done = BrainHook().get_asset(asset.asset_id)
    assert done.is_done
    assert jiwer.wer(speech.text([0]).lower(), done.transcript) <= WER_BOUND
    # The key names the task instance: this DAG, this group's submitting task.
    submitter = f"{mode}.submit" if mode == "reschedule" else f"{mode}.transcribe"
    key = done.metadata[IDEMPOTENCY_KEY]
    assert key.startswith("brain_modes/") and key.split("/")[2] == submitter, key
    # What the task page's extra link and downstream tasks read: the asset id and its URL, no credentials.
    xcoms = modes_run.runner.xcoms("brain_modes", group=mode)
    assert json.loads(xcoms["asset_id"]) == asset.asset_id
    link = json.loads(xcoms["brain_asset_url"])
    assert link.endswith(f"/assets/{asset.asset_id}") and "demo" not in link


# test_deferrable_really_defers, test_sensor_deferrable, test_mapped_over_s3_keys and
# test_start_from_trigger_falls_back_to_the_worker_and_says_why check the task groups of one run of brain_defer.
def test_deferrable_really_defers(defer):
    assert_succeeded(defer.code, defer.output)
    assert "running trigger in line" in task_output(defer.output, "deferrable.transcribe").lower()
    (asset,) = assets_for(defer.source("deferrable"))
    # The trigger waited for this task's own asset (the other groups' triggers wait for theirs).
    assert f"BrainAssetTrigger waiting for asset {asset.asset_id}," in defer.output
    assert BrainHook().get_asset(asset.asset_id).is_done


def test_sensor_deferrable(defer):
    assert_succeeded(defer.code, defer.output)
    (asset,) = assets_for(f"s3://{defer.bucket}/cases/sensor-long.wav")
    # A long file: still processing, so the sensor deferred, waiting for that asset.
    assert f"BrainAssetTrigger waiting for asset {asset.asset_id}," in defer.output
    assert "running trigger in line" in task_output(defer.output, "sensor.wait").lower()
    assert BrainHook().get_asset(asset.asset_id).is_done


# Each case is a task group of brain_retry (one run for the two); the ids are the DAGs they were before.
@pytest.mark.parametrize(
    ("group", "crash"),
    [
        pytest.param("after_store", "simulated crash after submitting", id="brain_retry_after_store"),
        pytest.param("before_store", "simulated crash before storing", id="brain_retry_before_store"),
    ],
)
def test_retry_after_submission_resumes_the_same_asset(retry_run, monkeypatch, group, crash):
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", retry_run.runner.env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    assert crash in retry_run.output  # This case's first try did fail after submitting.
    assert_succeeded(retry_run.code, retry_run.output)
    assets = assets_for(retry_run.source(group))
    assert len(assets) == 1, [a.asset_id for a in assets]
    assert BrainHook().get_asset(assets[0].asset_id).is_done


def test_mapped_over_s3_keys(defer, speech):
    assert_succeeded(defer.code, defer.output)
    for i in range(3):
        (asset,) = assets_for(f"s3://{defer.bucket}/cases/mapped/clip-{i}.mp3")
        done = BrainHook().get_asset(asset.asset_id)
        assert jiwer.wer(speech.text([i]).lower(), done.transcript) <= WER_BOUND


def test_start_from_trigger_falls_back_to_the_worker_and_says_why(defer, speech):
    local = speech.file(3)
    assert defer.runner.env["BRAIN_TEST_LOCAL_PATH"] == str(local)
    code, output = defer.code, defer.output  # Only the fallback group's tasks ask for start_from_trigger.
    assert_succeeded(code, output)
    said = "start_from_trigger=True, but this task runs in a worker: "
    if trigger_start.triggerer_can_start_tasks():
        assert output.count(said + "Airflow started it in a worker (`airflow dags test` ignores") == 3  # 1 + 2 mapped
        assert output.count(said + "s3_transfer='stream' streams the object through a worker") == 1
        assert output.count(said + "local_path names a file on a worker") == 1
    else:  # Before Airflow 3.3 every task says so first.
        assert output.count(said + "this Airflow cannot start a task in the triggerer") == 5
    fallback = f"s3://{defer.bucket}/cases/fallback"
    sources = [f"{fallback}/one.wav", *(f"{fallback}/clip-{i}.mp3" for i in range(3))]
    for source in [*sources, str(local)]:
        (asset,) = assets_for(source)
        assert BrainHook().get_asset(asset.asset_id).is_done, source


@pytest.mark.parametrize("dag_id", ["brain_deadline_worker", "brain_deadline_deferred"])
def test_the_deadline_spans_all_tries_and_cancels_the_asset(dag_runner, tmp_path, dag_id):
    """timeout=6 s, retries=2, an asset that stays processing 120 s: one try, about 6 s, one asset, deleted."""
    output, submissions, deletions, listed = run_against_a_slow_brain(dag_runner, tmp_path, dag_id)
    assert len(submissions) == 1, "no retry submitted the audio again, nor waited again"
    assert len(deletions) == 1 and listed == [], "the asset was deleted on Brain"
    waited = {int(w) for w in re.findall(r"still processing (\d+) s after it was submitted \(timeout 6 s\)", output)}
    # One try ended the task (its two retries unused), when the deadline had passed and long before the asset's
    # 120 s were up. Counting tries, not seconds: on a loaded machine one try's resume alone can take 12 s.
    assert output.count("[DAG TEST] starting task_id=transcribe") == 1, output[-5000:]
    assert len(waited) == 1 and 6 <= min(waited) < 60, output[-5000:]
    assert "BrainDeadlinePassed" in output, "the task failed without retries, naming the deadline"
    assert "Deleted Brain asset" in output and "because its deadline passed" in output


def run_against_a_slow_brain(runner: DagRunner, tmp_path: Path, dag_id: str) -> tuple[str, list, list, list]:
    """Run ``dag_id`` against a Brain that keeps every asset processing for 120 s; assert the run failed.

    Returns the run's output, the submissions and successful deletions in Brain's access log, and the assets
    still on Brain unfinished afterwards."""
    slow = start_brain_server(tmp_path / "slow", workers=1, extra_args=["--min-latency", "120"])
    try:
        runner.env["AIRFLOW_CONN_BRAIN_DEFAULT"] = brain_connection_json(slow.url, *slow.auth)
        _, output = runner.test(dag_id)
        access = re.findall(r"brain_local\.access: (\w+) (\S+) (\d+)", slow.log_text())
        with slow.client() as client:
            listed = client.get("/assets", params={"done": "false"}).json()["results"]
    finally:
        slow.stop()
    finished = [line for line in output.splitlines() if "DagRun Finished" in line]
    assert finished and "state=failed" in finished[-1], output[-5000:]
    submissions = [path for method, path, _ in access if method == "POST" and path.startswith("/speech:recognize")]
    deletions = [path for method, path, status in access if method == "DELETE" and status == "200"]
    return output, submissions, deletions, listed


def test_a_lost_upload_answer_leaves_one_asset_across_task_tries(dag_runner, brain_server, fault_proxy, speech):
    """#22: the first try's upload reached Brain and its answer was lost; the retry (same task, same key) is
    answered with that asset instead of creating a second."""
    fault_proxy.add(Fault("lost_answer", status=502, path_prefix="/speech:recognize"))
    env = {
        **dag_runner.env,
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(fault_proxy.url, *brain_server.auth, max_retries=0),
        "BRAIN_TEST_LOCAL_PATH": str(speech.file(2)),
    }
    before = count_assets(brain_server)
    # Another test on this xdist worker may have sent the same file to this server before.
    earlier = {a.asset_id for a in assets_for(str(speech.file(2)))}
    code, output = DagRunner(dag_runner.cli, env).test("brain_local_lost_answer")
    assert_succeeded(code, output)
    assert "failed with 502" in output, "the first try failed on the lost answer"
    posts = fault_proxy.requests_to("/speech:recognize", "POST")
    assert [p.faulted for p in posts] == ["lost_answer", None]
    assert count_assets(brain_server) == before + 1
    (asset,) = [a for a in assets_for(str(speech.file(2))) if a.asset_id not in earlier]
    assert BrainHook().get_asset(asset.asset_id).is_done
