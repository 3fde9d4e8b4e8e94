"""Transcribe every audio file under an S3 prefix and load the transcripts into a SQL warehouse.

    list_audio  ->  transcribe (one mapped task per file, waiting in the triggerer)  ->  load_warehouse
                                                                                   \\->  archive_json

Connections (nothing is hard-coded here):
- ``aws_default``: the S3 bucket holding the audio (an ``aws`` connection).
- ``brain_default``: the Brain API (a ``brain`` connection: base URL, API ID, API token).
- ``brain_warehouse``: any database with a common-sql hook (Postgres, Snowflake, SQLite, ...).

Run it for another bucket or prefix with ``airflow dags test brain_s3_to_warehouse -c '{"bucket": "my-audio"}'``.
Running it again over the same files replaces their rows and JSON documents: nothing is duplicated.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")

with DAG(
    dag_id="brain_s3_to_warehouse",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "example"],
    params={
        "bucket": Param("brain-audio", type="string", description="Bucket holding the audio"),
        "prefix": Param("incoming/", type="string", description="Transcribe the files under this prefix"),
        "archive_prefix": Param("transcripts/", type="string", description="Where the JSON transcripts go"),
    },
):
    # 1. Which files are there? (S3ListOperator returns their keys.)
    list_audio = S3ListOperator(task_id="list_audio", bucket="{{ params.bucket }}", prefix="{{ params.prefix }}")

    @task
    def audio_uris(keys: list[str], params: dict | None = None) -> list[str]:
        """Keep audio files only, as s3:// URIs for the transcribe task."""
        return [f"s3://{params['bucket']}/{key}" for key in keys if key.lower().endswith(AUDIO_SUFFIXES)]

    # [START howto_operator_brain_transcribe]
    # 2. One transcription per file (dynamic task mapping). deferrable=True hands the wait to the
    #    triggerer, so a long transcription holds no worker slot. A retried task resumes its asset.
    transcribe = BrainTranscribeOperator.partial(
        task_id="transcribe", deferrable=True, poll_interval=5, timeout=3600, retries=2
    ).expand(s3_uri=audio_uris(list_audio.output))
    # [END howto_operator_brain_transcribe]

    # [START howto_transfer_brain_to_sql]
    # 3. Every transcript into the warehouse (tables transcripts + transcript_words). Each load emits an asset
    #    event for both tables (through the alias "brain_to_sql:brain_warehouse"), which queues
    #    brain_transcripts_downstream...
    BrainToSqlOperator(task_id="load_warehouse", asset_ids=transcribe.output, conn_id="brain_warehouse")
    # [END howto_transfer_brain_to_sql]

    # [START howto_transfer_brain_to_s3]
    # 4. ...and the full asset JSON, word timings included, archived next to the audio.
    BrainToS3Operator(
        task_id="archive_json",
        asset_ids=transcribe.output,
        s3_uri="s3://{{ params.bucket }}/{{ params.archive_prefix }}",
        times=True,
    )
    # [END howto_transfer_brain_to_s3]
