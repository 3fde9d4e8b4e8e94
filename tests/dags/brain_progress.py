"""DAGs the progress and metrics tests run with ``airflow dags test``: a batch of every object under a prefix (one
not audio, reported rather than failing), waited for in the worker or in the triggerer, polling every 5 s.

Files come from the prefix ``BRAIN_TEST_PREFIX`` of bucket ``BRAIN_TEST_BUCKET``; connections from AIRFLOW_CONN_*.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.sdk import DAG, task

from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
PREFIX = os.environ.get("BRAIN_TEST_PREFIX", "progress/")


@task
def to_uris(keys: list[str]) -> list[str]:
    return [f"s3://{BUCKET}/{key}" for key in keys]


for dag_id, deferrable in (("brain_progress_worker", False), ("brain_progress_deferred", True)):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        listed = S3ListOperator(task_id="list", bucket=BUCKET, prefix=PREFIX)
        BrainTranscribeBatchOperator(
            task_id="transcribe",
            s3_uris=to_uris(listed.output),
            deferrable=deferrable,
            poll_interval=5,
            fail_on_asset_failure=False,
            timeout=600,
        )
