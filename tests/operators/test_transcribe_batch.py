"""BrainTranscribeBatchOperator in real DAG runs (``airflow dags test``) over files in moto's S3, transcribed
by the local Brain server, loaded into a SQLite warehouse.

The cases whose runs succeed (waiting in the worker and deferred, a file that is not audio reported, a crash
mid-submission) are task groups of one DAG, ``brain_batches``, and those whose runs fail (a file that is not audio
failing the task, the deadline in the worker and deferred) of another, ``brain_batch_failures``: each run once per
module, each group over its own prefix (and warehouse, or slow Brain), each test checking its own group's tasks,
assets, rows and log."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jiwer
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_brain.hooks.brain import IDEMPOTENCY_METADATA_KEY, BrainHook
from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator
from tests.fixtures.brain import start_brain_server
from tests.fixtures.connections import brain_connection_json
from tests.fixtures.faults import Fault
from tests.operators.test_transcribe_dags import DagRunner, assert_succeeded, task_output

DAG_FILE = Path(__file__).parents[1] / "dags" / "transcribe_batch.py"
WER_BOUND = 0.25
FILES = 4


GROUPS = ("worker", "deferrable", "not_audio_reported", "retry")


def upload_batch(client, bucket: str, speech, prefix: str) -> None:
    """FILES audio files (clip-1 an MP3) and a text file under ``prefix``."""
    for i in range(FILES):
        fmt = "mp3" if i == 1 else "wav"
        client.upload_file(str(speech.file(i % 3, fmt=fmt)), bucket, f"{prefix}clip-{i}.{fmt}")
    client.put_object(Bucket=bucket, Key=f"{prefix}notes.txt", Body=b"these are notes, not audio")


@dataclass
class BatchesRun:
    """The module's one run of ``brain_batches``: each group's files under ``batch/<group>/``."""

    runner: DagRunner
    bucket: str
    warehouses: dict[str, Path]
    code: int
    output: str


@pytest.fixture(scope="module")
def batches_run(airflow_cli, brain_server, s3_server, speech, tmp_path_factory) -> BatchesRun:
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    bucket = f"brain-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    warehouses = {}
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "BRAIN_TEST_BUCKET": bucket,
        "BRAIN_TEST_PREFIX": "batch/",
    }
    folder = tmp_path_factory.mktemp("batches")
    for group in GROUPS:
        upload_batch(client, bucket, speech, f"batch/{group}/")
        warehouses[group] = folder / f"warehouse-{group}.db"
        conn = json.dumps({"conn_type": "sqlite", "host": str(warehouses[group])})
        env[f"AIRFLOW_CONN_BRAIN_WAREHOUSE_{group.upper()}"] = conn
    runner = DagRunner(airflow_cli, env)
    code, output = runner.test("brain_batches")
    return BatchesRun(runner, bucket, warehouses, code, output)


@pytest.fixture
def batches(batches_run: BatchesRun, monkeypatch) -> BatchesRun:
    """The module's run, with ``brain_default`` set here too (the checks read the assets back)."""
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", batches_run.runner.env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    return batches_run


def sources(bucket: str, prefix: str = "batch/") -> list[str]:
    return [f"s3://{bucket}/{prefix}clip-{i}.{'mp3' if i == 1 else 'wav'}" for i in range(FILES)]


def assets_by_source() -> dict[str, list]:
    found: dict[str, list] = {}
    for asset in BrainHook().list_assets(include_unfinished=True):
        found.setdefault(asset.metadata.get("source"), []).append(asset)
    return found


def task_xcoms(runner: DagRunner, dag_id: str, task_id: str = "transcribe") -> dict[str, object]:
    """The XComs the task pushed in the last run of ``dag_id``, decoded, read from the metadata database."""
    with sqlite3.connect(runner.cli.home / "airflow.db") as db:
        rows = db.execute(
            "SELECT key, value FROM xcom WHERE dag_id = ? AND task_id = ? ORDER BY timestamp", (dag_id, task_id)
        ).fetchall()
    # A JSON column: SQLite hands a number back as a number (the batch's ``audio_seconds``), the rest as text.
    return {key: value if isinstance(value, int | float) else json.loads(value) for key, value in rows}


def warehouse_rows(path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return {row[0]: (row[1], row[2]) for row in db.execute("SELECT source, asset_id, transcript FROM transcripts")}


# The ids are the DAGs these cases had before they were task groups of brain_batches.
@pytest.mark.parametrize(
    "group", [pytest.param("worker", id="brain_batch_worker"), pytest.param("deferrable", id="brain_batch_deferrable")]
)
def test_batch_transcribes_every_file_once_and_loads_it(batches, speech, group):
    assert_succeeded(batches.code, batches.output)
    output = task_output(batches.output, f"{group}.transcribe")
    if group == "deferrable":
        assert "BrainBatchTrigger waiting for 4 assets" in output
    else:
        assert "Waiting for 4 Brain assets in the worker" in output
    xcoms = task_xcoms(batches.runner, "brain_batches", f"{group}.transcribe")
    summaries, ids = xcoms["return_value"], xcoms["asset_ids"]
    by_source = assets_by_source()
    expected = sources(batches.bucket, f"batch/{group}/")
    assert len(ids) == FILES and all(len(by_source[s]) == 1 for s in expected)
    assert ids == [by_source[s][0].asset_id for s in expected], "asset ids in input order"
    rows = warehouse_rows(batches.warehouses[group])
    assert sorted(rows) == sorted(expected)
    for i, source in enumerate(expected):
        asset = by_source[source][0]
        key = asset.metadata[IDEMPOTENCY_METADATA_KEY]
        assert asset.metadata["team"] == "calls" and key.startswith("brain_batches/")
        assert key.split("/")[2] == f"{group}.transcribe", key
        assert rows[source][0] == asset.asset_id
        assert jiwer.wer(speech.text([i % 3]).lower(), rows[source][1]) <= WER_BOUND
    assert [s["source"] for s in summaries] == expected
    assert [s["asset_id"] for s in summaries] == ids and all(s["status"] == "done" for s in summaries)
    audio_seconds = sum(s["duration"] for s in summaries)
    assert audio_seconds > 0 and xcoms["audio_seconds"] == pytest.approx(audio_seconds, abs=0.01)


@dataclass
class FailuresRun:
    """The module's one run of ``brain_batch_failures``, and what each deadline group's own slow Brain saw: the
    submissions and successful deletions in its access log, and the assets it still held unfinished afterwards."""

    runner: DagRunner
    bucket: str
    code: int
    output: str
    slow: dict[str, tuple[list, list, list]]


DEADLINES = ("deadline_worker", "deadline_deferred")


@pytest.fixture(scope="module")
def failures_run(airflow_cli, brain_server, s3_server, speech, tmp_path_factory) -> FailuresRun:
    """The deadline groups each against a Brain that keeps every asset processing for 120 s; not_audio_fails
    against the session's Brain."""
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    bucket = f"brain-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    folder = tmp_path_factory.mktemp("batch-failures")
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "AIRFLOW_CONN_BRAIN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(folder / "warehouse.db")}),
        "BRAIN_TEST_BUCKET": bucket,
        "BRAIN_TEST_PREFIX": "batch/",
    }
    for group in ("not_audio_fails", *DEADLINES):
        upload_batch(client, bucket, speech, f"batch/{group}/")
    slow_servers = {}
    try:
        for group in DEADLINES:
            slow_servers[group] = start_brain_server(folder / group, workers=1, extra_args=["--min-latency", "120"])
            env[f"AIRFLOW_CONN_BRAIN_SLOW_{group.upper()}"] = brain_connection_json(
                slow_servers[group].url, *slow_servers[group].auth
            )
        runner = DagRunner(airflow_cli, env)
        code, output = runner.test("brain_batch_failures")
        slow = {}
        for group, server in slow_servers.items():
            access = re.findall(r"brain_local\.access: (\w+) (\S+) (\d+)", server.log_text())
            with server.client() as brain:
                listed = brain.get("/assets", params={"done": "false"}).json()["results"]
            submissions = [p for method, p, _ in access if method == "POST" and p.startswith("/speech:recognize")]
            deletions = [p for method, p, status in access if method == "DELETE" and status == "200"]
            slow[group] = (submissions, deletions, listed)
    finally:
        for server in slow_servers.values():
            server.stop()
    return FailuresRun(runner, bucket, code, output, slow)


@pytest.fixture
def failures(failures_run: FailuresRun, monkeypatch) -> FailuresRun:
    """The module's failing run, with ``brain_default`` set here too (the checks read the assets back)."""
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", failures_run.runner.env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    finished = [line for line in failures_run.output.splitlines() if "DagRun Finished" in line]
    assert finished and "state=failed" in finished[-1], failures_run.output[-5000:]
    return failures_run


def test_not_audio_fails_the_task_naming_the_file(failures):
    output = task_output(failures.output, "not_audio_fails.transcribe")
    assert f"1 of {FILES + 1} files of this batch could not be transcribed" in output
    assert f"s3://{failures.bucket}/batch/not_audio_fails/notes.txt" in output
    assert "X-Amz-Signature" not in failures.output
    # Every file was still waited for: the audio ones are done.
    by_source = assets_by_source()
    assert all(by_source[s][0].is_done for s in sources(failures.bucket, "batch/not_audio_fails/"))


def test_not_audio_reported_in_the_summaries(batches):
    assert_succeeded(batches.code, batches.output)
    summaries = task_xcoms(batches.runner, "brain_batches", "not_audio_reported.transcribe")["return_value"]
    by_file = {s["source"]: s for s in summaries}
    notes = by_file.pop(f"s3://{batches.bucket}/batch/not_audio_reported/notes.txt")
    assert notes["status"] == "failed" and notes["error"] and notes["asset_id"]
    assert "X-Amz-Signature" not in notes["error"]
    assert all(s["status"] == "done" and s["duration"] > 1 for s in by_file.values())
    # The load skipped the failed file and took the rest.
    expected = sources(batches.bucket, "batch/not_audio_reported/")
    assert sorted(warehouse_rows(batches.warehouses["not_audio_reported"])) == sorted(expected)


def test_retry_after_a_crash_mid_submission_submits_only_the_rest(batches):
    output = task_output(batches.output, "retry.transcribe")
    assert "simulated crash mid-submission" in output
    assert_succeeded(batches.code, batches.output)
    assert "Resuming 2 of 4 files submitted by an earlier try" in output
    by_source = assets_by_source()
    expected = sources(batches.bucket, "batch/retry/")
    assert {s: len(by_source.get(s, [])) for s in expected} == dict.fromkeys(expected, 1)


# The ids are the DAGs these cases had before they were task groups of brain_batch_failures.
@pytest.mark.parametrize(
    "group",
    [
        pytest.param("deadline_worker", id="brain_batch_deadline_worker"),
        pytest.param("deadline_deferred", id="brain_batch_deadline_deferred"),
    ],
)
def test_the_batch_deadline_spans_all_tries_and_cancels_its_assets(failures, group):
    """timeout=5 s, retries=2, assets that stay processing 120 s: one try, each file submitted once, all deleted."""
    submissions, deletions, listed = failures.slow[group]
    assert len(submissions) == FILES, "no retry submitted the files again"
    assert len(deletions) == FILES and listed == [], "every asset still processing was deleted on Brain"
    output = task_output(failures.output, f"{group}.transcribe")
    assert f"{FILES} of {FILES} files of this batch were still processing 5 s after the batch was first" in output
    assert output.count("because its batch's deadline passed (cancel_on_kill=True)") == FILES
    assert "Resuming" not in failures.output, "the task failed for good: no retry ran"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="exactly one list"):
        BrainTranscribeBatchOperator(task_id="t", s3_uris=["s3://b/k"], audio_urls=["https://x/y"])
    with pytest.raises(ValueError, match="exactly one list"):
        BrainTranscribeBatchOperator(task_id="t2")
    op = BrainTranscribeBatchOperator(task_id="t3", s3_uris=["s3://b/a.wav", "https://x/y.wav"])
    with pytest.raises(ValueError, match=r"s3_uris\[1\] must look like s3://bucket/key"):
        op.sources()
    op = BrainTranscribeBatchOperator(task_id="t4", s3_uris="s3://b/a.wav")
    with pytest.raises(ValueError, match="list of strings"):
        op.sources()
    op = BrainTranscribeBatchOperator(task_id="t5", audio_urls=["https://h/a.wav?X-Amz-Signature=secret", "ftp://h/b"])
    with pytest.raises(ValueError, match=r"audio_urls\[1\]") as err:
        op.sources()
    assert "secret" not in str(err.value)


def test_a_deferred_batch_still_says_why_a_file_could_not_be_submitted(
    brain_conn, fault_proxy, aws_connection, s3_server, s3_bucket, speech
):
    """Brain refuses one submission (a 400, not retried): the summaries built after the deferral give its reason,
    which the deferral carried, and the other file is transcribed. Execute, the trigger and execute_complete run
    here in-process, as Airflow would run them, against the real server behind the fault proxy."""
    brain_conn(url=fault_proxy.url)
    uris = []
    for i in range(2):
        s3_server.client().upload_file(str(speech.file(i)), s3_bucket, f"refused/clip-{i}.wav")
        uris.append(f"s3://{s3_bucket}/refused/clip-{i}.wav")
    refusal = b'{"error": "audio refused by the account policy"}'
    fault_proxy.add(Fault("status", status=400, body=refusal, path_prefix="/speech:recognize"))
    op = BrainTranscribeBatchOperator(
        task_id="transcribe",
        s3_uris=uris,
        deferrable=True,
        poll_interval=0.5,
        max_concurrent_submissions=1,
        fail_on_asset_failure=False,
    )
    xcoms: dict[str, object] = {}
    ti = SimpleNamespace(
        dag_id="refused",
        run_id="run",
        task_id="transcribe",
        map_index=-1,
        try_number=1,
        xcom_push=lambda key, value: xcoms.__setitem__(key, value),
        xcom_pull=lambda task_ids, key, map_indexes: xcoms[key],
    )
    context = {"ti": ti, "dag_run": None}

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    event = asyncio.run(anext(deferred.value.trigger.run())).payload
    summaries = op.execute_complete(context, event, **deferred.value.kwargs)

    by_source = {s["source"]: s for s in summaries}
    assert by_source[uris[0]]["status"] == "failed" and by_source[uris[0]]["asset_id"] is None
    assert "audio refused by the account policy" in by_source[uris[0]]["error"]
    assert by_source[uris[1]]["status"] == "done"
