"""The same S3 audio through Deepgram (deferred) and through Brain, each loaded into the warehouse and written as
SRT captions by the same transfer operators: what the Deepgram path lands should be what the Brain path lands.

Locations, tables and the database come from environment variables the test sets; connections from AIRFLOW_CONN_*.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
KEYS = os.environ.get("BRAIN_TEST_KEYS", "audio/a.wav").split(",")
SUFFIX = os.environ.get("BRAIN_TEST_TABLE_SUFFIX", "test")
SOURCES = [f"s3://{BUCKET}/{key}" for key in KEYS]

with DAG(dag_id="deepgram_and_brain_transfers", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    deepgram = DeepgramTranscribeOperator.partial(
        task_id="deepgram", output_uri=f"s3://{BUCKET}/deepgram-results/", deferrable=True
    ).expand(s3_uri=SOURCES)
    BrainToSqlOperator(
        task_id="deepgram_to_sql",
        asset_ids=deepgram.output,
        conn_id="warehouse_pg",
        table=f"dg_transcripts_{SUFFIX}",
        words_table=f"dg_words_{SUFFIX}",
    )
    BrainToS3Operator(
        task_id="deepgram_to_srt", asset_ids=deepgram.output, s3_uri=f"s3://{BUCKET}/captions-dg/", output_format="srt"
    )

    brain = BrainTranscribeOperator.partial(task_id="brain", poll_interval=0.5).expand(s3_uri=SOURCES)
    BrainToSqlOperator(
        task_id="brain_to_sql",
        asset_ids=brain.output,
        conn_id="warehouse_pg",
        table=f"brain_transcripts_{SUFFIX}",
        words_table=f"brain_words_{SUFFIX}",
    )
    BrainToS3Operator(
        task_id="brain_to_srt", asset_ids=brain.output, s3_uri=f"s3://{BUCKET}/captions-brain/", output_format="srt"
    )
