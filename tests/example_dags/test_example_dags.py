"""The example DAGs: they load, and they run end to end on the local Brain server, moto S3 and real warehouses."""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path

import jiwer
import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.transfers.brain_to_s3 import source_document_name
from tests.fixtures.connections import brain_connection_json

EXAMPLES = Path(__file__).parents[2] / "example_dags"
WER_BOUND = 0.3
FILES = 3


@pytest.fixture(scope="module")
def dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.2
        from airflow.models.dagbag import DagBag
    # Airflow 3.1's DagBag adds Airflow's own examples unless told not to; 3.3's has no such switch.
    only_ours = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    return DagBag(dag_folder=str(EXAMPLES), **only_ours)


def test_example_dags_load_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "brain_s3_to_warehouse",
        "brain_s3_event_triggered",
        "brain_local_file",
        "brain_s3_batch",
        "brain_asset_sensor",
        "brain_transcripts_downstream",
        "brain_s3_sweep",
        "brain_s3_phrase_alerts",
        "deepgram_s3_to_warehouse",
        "deepgram_s3_batch",
    }


def test_s3_to_warehouse_shape(dagbag):
    dag = dagbag.dags["brain_s3_to_warehouse"]
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "list_audio": ["audio_uris"],
        "audio_uris": ["transcribe"],
        "transcribe": ["archive_json", "load_warehouse"],
        "load_warehouse": [],
        "archive_json": [],
    }
    transcribe = dag.get_task("transcribe")
    assert transcribe.partial_kwargs.get("deferrable") is True


def test_s3_batch_shape(dagbag):
    dag = dagbag.dags["brain_s3_batch"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "list_audio": ["batches"],
        "batches": ["transcribe"],
        "transcribe": ["load_warehouse"],
        "load_warehouse": [],
    }
    assert dag.get_task("transcribe").partial_kwargs.get("deferrable") is True


def test_event_triggered_shape(dagbag):
    dag = dagbag.dags["brain_s3_event_triggered"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "new_objects": ["transcribe"],
        "transcribe": ["load_warehouse"],
        "load_warehouse": [],
    }
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.name == "brain_new_audio"
    (watcher,) = asset.watchers
    assert type(watcher.trigger).__name__ == "MessageQueueTrigger"


def test_local_file_shape(dagbag):
    dag = dagbag.dags["brain_local_file"]
    assert [t.task_id for t in dag.tasks] == ["transcribe"]


class ExampleRun:
    def __init__(self, cli, env):
        self.cli = cli
        self.env = env

    def test(self, dag_id: str, conf: dict | None = None) -> str:
        args = ["dags", "test", dag_id]
        if conf:
            args += ["-c", json.dumps(conf)]
        result = self.cli.run(*args, extra_env=self.env, check=False)
        output = result.stdout + result.stderr
        finished = [line for line in output.splitlines() if "DagRun Finished" in line]
        assert result.returncode == 0 and finished and "state=success" in finished[-1], output[-6000:]
        return output


@pytest.fixture
def examples(airflow_cli, brain_server, s3_server, s3_bucket, speech, tmp_path):
    client = s3_server.client()
    for i in range(FILES):
        client.upload_file(
            str(speech.file(i, fmt="mp3" if i == 1 else "wav")),
            s3_bucket,
            f"incoming/call-{i}.{'mp3' if i == 1 else 'wav'}",
        )
    client.put_object(Bucket=s3_bucket, Key="incoming/notes.txt", Body=b"not audio")
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "AIRFLOW_CONN_BRAIN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}),
    }
    return ExampleRun(airflow_cli, env), tmp_path / "warehouse.db"


def check_rows(transcripts, words, speech, bucket):
    """One row per audio file, transcripts close to what was said, word rows in time order."""
    by_source = {row[1]: row for row in transcripts}
    expected = {f"s3://{bucket}/incoming/call-{i}.{'mp3' if i == 1 else 'wav'}": i for i in range(FILES)}
    assert set(by_source) == set(expected)
    for source, i in expected.items():
        asset_id, _, duration, transcript = by_source[source]
        assert duration > 1 and jiwer.wer(speech.text([i]).lower(), transcript) <= WER_BOUND
        mine = sorted((w for w in words if w[0] == asset_id), key=lambda w: w[1])
        assert [w[2] for w in mine] == transcript.split()
        starts = [w[3] for w in mine]
        assert starts == sorted(starts) and all(w[3] <= w[4] <= duration + 0.01 for w in mine)


def test_s3_to_warehouse_end_to_end_and_idempotent(examples, s3_server, s3_bucket, speech):
    run, warehouse = examples
    conf = {"bucket": s3_bucket, "prefix": "incoming/"}
    run.test("brain_s3_to_warehouse", conf)

    def read():
        with sqlite3.connect(warehouse) as db:
            return (
                db.execute("SELECT asset_id, source, duration, transcript FROM transcripts").fetchall(),
                db.execute("SELECT asset_id, word_index, word, start_s, end_s FROM transcript_words").fetchall(),
            )

    transcripts, words = read()
    check_rows(transcripts, words, speech, s3_bucket)

    def archive():
        client = s3_server.client()
        listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="transcripts/")["Contents"]
        return {o["Key"]: json.loads(client.get_object(Bucket=s3_bucket, Key=o["Key"])["Body"].read()) for o in listed}

    # One document per audio file, named after it.
    expected_keys = sorted(f"transcripts/{source_document_name(row[1])}" for row in transcripts)
    assert sorted(archive()) == expected_keys

    run.test("brain_s3_to_warehouse", conf)  # Same files again: rows and documents replaced, not duplicated.
    again, again_words = read()
    assert len(again) == FILES and len(again_words) == sum(len(r[3].split()) for r in again)
    assert {row[0] for row in again}.isdisjoint(row[0] for row in transcripts), "the rerun made new assets"
    documents = archive()
    assert sorted(documents) == expected_keys
    assert sorted(d["asset_id"] for d in documents.values()) == sorted(row[0] for row in again)


def test_s3_batch_end_to_end(examples, s3_bucket, speech):
    """Three files in batches of two: two mapped batch tasks, one row per file."""
    run, warehouse = examples
    output = run.test("brain_s3_batch", {"bucket": s3_bucket, "prefix": "incoming/", "batch_size": 2})
    assert output.count("BrainBatchTrigger waiting for") == 2
    with sqlite3.connect(warehouse) as db:
        transcripts = db.execute("SELECT asset_id, source, duration, transcript FROM transcripts").fetchall()
        words = db.execute("SELECT asset_id, word_index, word, start_s, end_s FROM transcript_words").fetchall()
    check_rows(transcripts, words, speech, s3_bucket)


def test_local_file(examples, speech, monkeypatch):
    run, _ = examples
    path = str(speech.file(2))
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", run.env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    hook = BrainHook()
    before = {a.asset_id for a in hook.list_assets(include_unfinished=True)}  # other tests send this file too
    output = run.test("brain_local_file", {"path": path})
    assert "Brain asset" in output and "done" in output
    # The positive proof: the run left Brain one done asset of that file, with its transcript.
    new = [a for a in hook.list_assets(include_unfinished=True) if a.asset_id not in before]
    (asset,) = [a for a in new if a.metadata.get("source") == path]
    done = hook.get_asset(asset.asset_id)
    assert done.is_done and jiwer.wer(speech.text([2]).lower(), done.transcript) <= WER_BOUND
