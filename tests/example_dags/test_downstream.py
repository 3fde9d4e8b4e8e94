"""A warehouse load queues the DAG scheduled on its table, and tells OpenLineage what it read and wrote.

One real run of ``brain_s3_to_warehouse`` into PostgreSQL (local Brain server, moto S3) with
``brain_transcripts_downstream`` serialized and unpaused, and the openlineage provider writing its events to a
file. Then the metadata DB is read: the asset events the load emitted, the queue entry the scheduler turns into
the downstream run, and the scheduler's own query for DAGs needing an asset-triggered run.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import psycopg2

from airflow_provider_brain.transfers.sql_tables import TRANSCRIPT_WORDS, TRANSCRIPTS
from tests.example_dags.test_example_dags import FILES, check_rows, examples  # noqa: F401 - the fixture

DOWNSTREAM = "brain_transcripts_downstream"

# The scheduler's query for DAGs whose assets have been updated (the same call the scheduler loop makes).
NEEDING_RUNS = """
from airflow.models.dag import DagModel
from airflow.utils.session import create_session
with create_session() as session:
    query, _ = DagModel.dags_needing_dagruns(session)
    dags = query.all() if hasattr(query, "all") else session.scalars(query).all()  # 3.3 / 3.1
    print(sorted(dag.dag_id for dag in dags))
"""


def test_load_queues_downstream_and_emits_lineage(examples, postgres_server, s3_bucket, speech, tmp_path):  # noqa: F811
    """Also the example's load into PostgreSQL (the tables are new: one row per file, the transcripts close to what
    was said, the words in order), which test_s3_to_warehouse_into_postgres checked with a run of its own."""
    run, _ = examples
    with psycopg2.connect(postgres_server.dsn) as db, db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS transcripts, transcript_words")
    lineage_file = tmp_path / "openlineage.jsonl"
    run.env.update(
        AIRFLOW_CONN_BRAIN_WAREHOUSE=postgres_server.connection_json(),
        AIRFLOW__OPENLINEAGE__DISABLED="false",
        AIRFLOW__OPENLINEAGE__NAMESPACE="brain-tests",
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {"type": "file", "log_file_path": str(lineage_file), "append": True}
        ),
    )
    # What the DAG processor does in a deployment: every example serialized (the downstream DAG's schedule
    # recorded), and the downstream DAG switched on.
    run.cli.run("dags", "reserialize", extra_env=run.env)
    run.cli.run("dags", "unpause", DOWNSTREAM, extra_env=run.env)

    run.test("brain_s3_to_warehouse", {"bucket": s3_bucket, "prefix": "incoming/"})

    with psycopg2.connect(postgres_server.dsn) as db, db.cursor() as cur:
        cur.execute("SELECT asset_id, source, duration, transcript FROM transcripts")
        transcripts = cur.fetchall()
        cur.execute("SELECT asset_id, word_index, word, start_s, end_s FROM transcript_words")
        words = cur.fetchall()
    check_rows(transcripts, words, speech, s3_bucket)

    table_uri = f"postgres://{postgres_server.host}:{postgres_server.port}/{postgres_server.dbname}/public/"
    with sqlite3.connect(run.cli.home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = 'brain_s3_to_warehouse' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        events = db.execute(
            "SELECT a.uri, e.source_task_id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
            " WHERE e.source_dag_id = 'brain_s3_to_warehouse' AND e.source_run_id = ?",
            (run_id,),
        ).fetchall()
        queued = db.execute(
            "SELECT a.uri FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id WHERE q.target_dag_id = ?",
            (DOWNSTREAM,),
        ).fetchall()
    by_uri = {uri: (task, json.loads(extra)) for uri, task, extra in events}
    # One event per table, with counts only; one for the S3 archive prefix.
    assert set(by_uri) == {
        table_uri + "transcripts",
        table_uri + "transcript_words",
        f"s3://{s3_bucket}/transcripts",
    }, events
    task, extra = by_uri[table_uri + "transcripts"]
    assert task == "load_warehouse"
    assert extra["assets"] == extra["transcript_rows"] == FILES and extra["word_rows"] > FILES
    assert extra["skipped"] == 0 and "transcript" not in extra
    assert by_uri[f"s3://{s3_bucket}/transcripts"] == ("archive_json", {"documents": FILES, "format": "json"})
    assert {table_uri + "transcripts"} <= {uri for (uri,) in queued}

    scheduler = subprocess.run(
        [sys.executable, "-c", NEEDING_RUNS], env=run.cli.env | run.env, capture_output=True, text=True, check=False
    )
    assert scheduler.returncode == 0 and DOWNSTREAM in scheduler.stdout, scheduler.stdout + scheduler.stderr[-3000:]

    lineage = [json.loads(line) for line in lineage_file.read_text().splitlines() if line.strip()]
    complete = {
        e["job"]["name"]: e
        for e in lineage
        if e.get("eventType") == "COMPLETE" and e["job"]["name"].startswith("brain_s3_to_warehouse.")
    }
    load = complete["brain_s3_to_warehouse.load_warehouse"]
    audio = {(d["namespace"], d["name"]) for d in load["inputs"]}
    assert audio == {
        (f"s3://{s3_bucket}", "incoming/call-0.wav"),
        (f"s3://{s3_bucket}", "incoming/call-1.mp3"),
        (f"s3://{s3_bucket}", "incoming/call-2.wav"),
    }
    outputs = {d["name"]: d for d in load["outputs"]}
    namespace = f"postgres://{postgres_server.host}:{postgres_server.port}"
    for table, schema in (("transcripts", TRANSCRIPTS), ("transcript_words", TRANSCRIPT_WORDS)):
        dataset = outputs[f"{postgres_server.dbname}.public.{table}"]
        assert dataset["namespace"] == namespace
        fields = dataset["facets"]["schema"]["fields"]
        assert [f["name"] for f in fields] == list(schema.column_names)
    assert {
        f["name"]: f["type"]
        for f in outputs[f"{postgres_server.dbname}.public.transcripts"]["facets"]["schema"]["fields"]
    }["duration"] == "DOUBLE PRECISION"

    archive = complete["brain_s3_to_warehouse.archive_json"]
    assert {(d["namespace"], d["name"]) for d in archive["outputs"]} == {(f"s3://{s3_bucket}", "transcripts")}
    assert {(d["namespace"], d["name"]) for d in archive["inputs"]} == audio
