"""Transcribe a day of audio (thousands of files) in a few batch tasks, and load the transcripts.

    list_audio  ->  batches (chunks of batch_size files)  ->  transcribe (one batch task per chunk, deferred)
                                                                   ->  load_warehouse

A mapped ``BrainTranscribeOperator`` is one task instance per file: right for a few hundred files, when
each file's retry, log and state should stand alone in the UI. Past that, batch: 10,000 files in chunks of
1,000 are 10 task instances (under ``[core] max_map_length``, 1,024 by default), each submitting its
files a few at a time and waiting in one trigger whose polling costs one request per 1,000 files per
interval. A retried batch task submits only the files that have no live asset yet.

Connections: ``aws_default`` (the audio bucket), ``brain_default`` (Brain), ``brain_warehouse`` (any
common-sql database). Run it for another prefix with
``airflow dags test brain_s3_batch -c '{"bucket": "my-audio", "prefix": "2026-11-26/"}'``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")

with DAG(
    dag_id="brain_s3_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "example"],
    params={
        "bucket": Param("brain-audio", type="string", description="Bucket holding the audio"),
        "prefix": Param("incoming/", type="string", description="Transcribe the files under this prefix"),
        "batch_size": Param(1000, type="integer", minimum=1, description="Files per batch task"),
    },
):
    list_audio = S3ListOperator(task_id="list_audio", bucket="{{ params.bucket }}", prefix="{{ params.prefix }}")

    # [START howto_operator_brain_transcribe_batch]
    @task
    def batches(keys: list[str], params: dict | None = None) -> list[list[str]]:
        """The audio files as s3:// URIs, in chunks of batch_size: one batch task each."""
        uris = [f"s3://{params['bucket']}/{key}" for key in keys if key.lower().endswith(AUDIO_SUFFIXES)]
        size = int(params["batch_size"])
        return [uris[i : i + size] for i in range(0, len(uris), size)]

    transcribe = BrainTranscribeBatchOperator.partial(
        task_id="transcribe", deferrable=True, poll_interval=10, timeout=6 * 3600, retries=2
    ).expand(s3_uris=batches(list_audio.output))

    BrainToSqlOperator(task_id="load_warehouse", asset_ids=transcribe.output, conn_id="brain_warehouse")
    # [END howto_operator_brain_transcribe_batch]
