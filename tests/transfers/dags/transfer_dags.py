"""A DAG the transfer tests run with ``airflow dags test``: transcribe audio from S3, then land it three ways.

- ``BrainToSqlOperator`` over the whole XCom of the mapped transcribe task (a lazy list of summaries);
- ``BrainToS3Operator`` mapped over that XCom, one JSON document per mapped task;
- ``BrainToS3Operator`` writing one JSON Lines file at a templated key.

Locations and the database come from environment variables the test sets; connections from AIRFLOW_CONN_*.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
KEYS = os.environ.get("BRAIN_TEST_KEYS", "audio/a.wav").split(",")

with DAG(dag_id="brain_transfers", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    transcribe = BrainTranscribeOperator.partial(task_id="transcribe", poll_interval=0.5).expand(
        s3_uri=[f"s3://{BUCKET}/{key}" for key in KEYS]
    )
    BrainToSqlOperator(task_id="to_sql", asset_ids=transcribe.output, conn_id="warehouse")
    BrainToS3Operator.partial(task_id="to_s3_mapped", s3_uri=f"s3://{BUCKET}/transcripts/").expand(
        asset_ids=transcribe.output
    )
    # A template does not make a dependency: the explicit >> does.
    transcribe >> BrainToS3Operator(
        task_id="to_s3_jsonl",
        asset_ids="{{ ti.xcom_pull(task_ids='transcribe') | list }}",
        s3_uri=f"s3://{BUCKET}/batches/{{{{ run_id | replace(':', '_') }}}}.jsonl",
        output_format="jsonl",
        times=True,
    )
