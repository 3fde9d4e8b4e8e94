"""``example_dags/deepgram_s3_to_warehouse.py``: its shape, and a real run (``airflow dags test``) against the local
server's Deepgram dialect, moto S3 and a SQLite warehouse, twice over the same files."""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path

import jiwer

from airflow_provider_brain.transfers.brain_to_s3 import source_document_name
from tests.operators.test_transcribe_dags import assert_succeeded

EXAMPLE = Path(__file__).parents[2] / "example_dags" / "deepgram_s3_to_warehouse.py"
FILES = 3
WER_BOUND = 0.3


def test_shape() -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.2
        from airflow.models.dagbag import DagBag
    # Airflow 3.1's DagBag adds Airflow's own examples unless told not to; 3.3's has no such switch.
    only_ours = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    bag = DagBag(dag_folder=str(EXAMPLE), **only_ours)
    assert bag.import_errors == {}
    dag = bag.dags["deepgram_s3_to_warehouse"]
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "list_audio": ["audio_uris"],
        "audio_uris": ["transcribe"],
        "transcribe": ["captions", "load_warehouse"],
        "load_warehouse": [],
        "captions": [],
    }
    assert dag.get_task("transcribe").partial_kwargs.get("deferrable") is True


def test_end_to_end_and_idempotent(airflow_cli, brain_server, s3_server, s3_bucket, speech, tmp_path) -> None:
    client = s3_server.client()
    for i in range(FILES):
        fmt = "mp3" if i == 1 else "wav"
        client.upload_file(str(speech.file(i, fmt=fmt)), s3_bucket, f"incoming/call-{i}.{fmt}")
    client.put_object(Bucket=s3_bucket, Key="incoming/notes.txt", Body=b"not audio")
    warehouse = tmp_path / "warehouse.db"
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE.parent),
        "AIRFLOW_CONN_DEEPGRAM_DEFAULT": json.dumps(
            {"conn_type": "deepgram", "host": brain_server.url, "password": brain_server.password}
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "AIRFLOW_CONN_BRAIN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
    }
    conf = json.dumps({"bucket": s3_bucket, "prefix": "incoming/"})
    sources = {f"s3://{s3_bucket}/incoming/call-{i}.{'mp3' if i == 1 else 'wav'}": i for i in range(FILES)}

    def run_and_check() -> set[str]:
        result = airflow_cli.run("dags", "test", "deepgram_s3_to_warehouse", "-c", conf, extra_env=env, check=False)
        output = result.stdout + result.stderr
        assert_succeeded(result.returncode, output)
        assert "running trigger in line" in output.lower()
        with sqlite3.connect(warehouse) as db:
            rows = db.execute("SELECT asset_id, source, transcript, word_count FROM transcripts").fetchall()
            words = db.execute("SELECT COUNT(*) FROM transcript_words").fetchone()[0]
        assert sorted(row[1] for row in rows) == sorted(sources)  # one row per file
        for _, source, transcript, _ in rows:
            # smart_format punctuates: compare the words, not the capitals and full stops.
            plain = "".join(c for c in transcript.lower() if c.isalnum() or c in " '")
            assert jiwer.wer(speech.text([sources[source]]).lower(), plain) <= WER_BOUND
        assert words == sum(row[3] for row in rows)
        listed = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="captions/")["Contents"]}
        assert listed == {f"captions/{source_document_name(s, extension='srt')}" for s in sources}
        return {row[0] for row in rows}

    first = run_and_check()
    again = run_and_check()  # the same files again: rows and captions replaced, not duplicated
    assert first.isdisjoint(again), "a new run is a new set of requests"
