"""``example_dags/brain_s3_event_triggered.py`` against Deepgram (``BRAIN_TRANSCRIBE_WITH=deepgram``): a real run
(``airflow dags test``) on the local server's Deepgram dialect, moto S3 and a SQLite warehouse, where one object is
named twice (a notification delivered twice): one request, both tasks return its result, one warehouse row."""

from __future__ import annotations

import json
import sqlite3

import jiwer
import pytest

from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.deepgram import DeepgramHook
from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from tests.example_dags.test_example_dags import EXAMPLES, WER_BOUND, examples  # noqa: F401 - a fixture

DAG_ID = "brain_s3_event_triggered"


def test_the_deepgram_branch_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.2
        from airflow.models.dagbag import DagBag
    monkeypatch.setenv("BRAIN_TRANSCRIBE_WITH", "deepgram")
    monkeypatch.setenv("BRAIN_DEEPGRAM_RESULTS_URI", "s3://results/deepgram/")
    bag = DagBag(dag_folder=str(EXAMPLES / f"{DAG_ID}.py"))
    assert bag.import_errors == {}
    task = bag.dags[DAG_ID].get_task("transcribe")
    assert task.operator_class.__name__ == DeepgramTranscribeOperator.__name__
    assert task.partial_kwargs["reuse_existing"] == "source_version"
    assert task.partial_kwargs["output_uri"] == "s3://results/deepgram/"


def test_a_notification_delivered_twice_sends_one_deepgram_request(
    examples,  # noqa: F811
    brain_server,
    s3_bucket,
    speech,
    monkeypatch: pytest.MonkeyPatch,
):
    run, warehouse = examples
    connection = {"conn_type": "deepgram", "host": brain_server.url, "password": brain_server.password}
    run.env.update(
        {
            "BRAIN_TRANSCRIBE_WITH": "deepgram",
            "BRAIN_DEEPGRAM_RESULTS_URI": f"s3://{s3_bucket}/deepgram/",
            "AIRFLOW_CONN_DEEPGRAM_DEFAULT": json.dumps(connection),
        }
    )
    uri = f"s3://{s3_bucket}/incoming/call-2.wav"
    output = run.test(DAG_ID, {"s3_uris": [uri, uri]})
    assert "an earlier try or run stored it" in output

    monkeypatch.setenv("AIRFLOW_CONN_DEEPGRAM_DEFAULT", json.dumps(connection))
    hook = DeepgramHook()
    history = hook.transport.request(Call("GET", f"/v1/projects/{hook.project_id()}/requests", {"limit": "1000"}))
    mine = [
        r
        for r in history["requests"]
        if f"{DAG_ID}.transcribe" in (r["response"]["details"]["tags"] or []) and s3_bucket in str(r.get("callback"))
    ]
    assert len(mine) == 1, "one request for the object named twice"
    with sqlite3.connect(warehouse) as db:
        rows = db.execute("SELECT asset_id, transcript FROM transcripts WHERE source = ?", (uri,)).fetchall()
    assert [row[0] for row in rows] == [mine[0]["request_id"]], "one row, from the one request"
    assert jiwer.wer(speech.text([2]).lower(), rows[0][1].lower()) <= WER_BOUND
