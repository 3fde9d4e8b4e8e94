"""S3 events, not polling: one object put in the bucket starts exactly one run that transcribes exactly it.

The stack's bucket ``brain-audio`` notifies the SQS queue ``brain-audio`` on moto; the example DAG
``brain_s3_event_triggered`` is scheduled by an ``Asset`` whose ``AssetWatcher`` runs a
``MessageQueueTrigger(scheme="sqs")`` in the triggerer, with ``BRAIN_AUDIO_QUEUE_URL`` set by the stack.
"""

from __future__ import annotations

import time

import psycopg2
import pytest

from deploy.stack import BUCKET
from tests.deployment.conftest import brain_assets, follow, task_instances, wait_for_dag

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(420)]
DAG_ID = "brain_s3_event_triggered"


def test_one_object_put_starts_one_run_that_transcribes_it(stack, speech):
    wait_for_dag(stack, DAG_ID)
    # The watcher's trigger starts once the DAG is unpaused; give it a beat to be listening.
    time.sleep(5)
    key = "incoming/event-one.wav"
    uri = f"s3://{BUCKET}/{key}"
    stack.boto3("s3").upload_file(str(speech.file(2)), BUCKET, key)

    def runs():
        return stack.rest("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]

    first = stack.wait_for("a run started by the S3 event", runs, timeout=120)
    watch = follow(stack, DAG_ID, first[0]["dag_run_id"], timeout=240)
    assert watch.state == "success"

    # Later messages (a duplicate delivery, the test event) would show up as further runs.
    time.sleep(15)
    all_runs = runs()
    assert [r["dag_run_id"] for r in all_runs] == [first[0]["dag_run_id"]]
    assert all_runs[0]["run_type"] == "asset_triggered"

    mapped = [ti for ti in task_instances(stack, DAG_ID, watch.run_id) if ti["task_id"] == "transcribe"]
    assert [(ti["map_index"], ti["state"]) for ti in mapped] == [(0, "success")]
    (asset,) = brain_assets(stack, [uri])
    assert asset["status"] == "done"
    with psycopg2.connect(stack.warehouse_dsn()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT source, asset_id FROM transcripts")
        assert cursor.fetchall() == [(uri, asset["asset_id"])]
