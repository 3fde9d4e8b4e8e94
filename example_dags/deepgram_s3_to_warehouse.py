"""Transcribe every audio file under an S3 prefix with Deepgram, load the transcripts into a SQL warehouse and
write SRT captions: ``brain_s3_to_warehouse`` on Deepgram's pre-recorded API.

    list_audio  ->  transcribe (one mapped task per file, its request sent from the triggerer)  ->  load_warehouse
                                                                                               \\->  captions

Connections (nothing is hard-coded here):
- ``aws_default``: the S3 bucket holding the audio, and where the results go (an ``aws`` connection).
- ``deepgram_default``: Deepgram (a ``deepgram`` connection: the API key in the password; the host is
  ``https://api.deepgram.com`` unless you point it at ``brain-local``, which speaks Deepgram's dialect too).
- ``brain_warehouse``: any database with a common-sql hook (Postgres, Snowflake, SQLite, ...).

Run it for another bucket or prefix with ``airflow dags test deepgram_s3_to_warehouse -c '{"bucket": "my-audio"}'``.
Running it again over the same files replaces their rows and captions: nothing is duplicated.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")

with DAG(
    dag_id="deepgram_s3_to_warehouse",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["deepgram", "example"],
    params={
        "bucket": Param("brain-audio", type="string", description="Bucket holding the audio"),
        "prefix": Param("incoming/", type="string", description="Transcribe the files under this prefix"),
        "results_prefix": Param("deepgram/", type="string", description="Where Deepgram's JSON answers go"),
        "captions_prefix": Param("captions/", type="string", description="Where the SRT captions go"),
    },
):
    list_audio = S3ListOperator(task_id="list_audio", bucket="{{ params.bucket }}", prefix="{{ params.prefix }}")

    @task
    def audio_uris(keys: list[str], params: dict | None = None) -> list[str]:
        """Keep audio files only, as s3:// URIs for the transcribe task."""
        return [f"s3://{params['bucket']}/{key}" for key in keys if key.lower().endswith(AUDIO_SUFFIXES)]

    # [START howto_operator_deepgram_transcribe]
    # One request per file (dynamic task mapping), sent from the triggerer (deferrable=True): no worker slot is
    # held while Deepgram works. Each answer is written to output_uri as it arrives (Deepgram keeps no
    # transcript); XCom carries where it is and a summary. Each request is tagged <dag_id>.<task_id>.
    transcribe = DeepgramTranscribeOperator.partial(
        task_id="transcribe",
        output_uri="s3://{{ params.bucket }}/{{ params.results_prefix }}",
        options={"smart_format": True},
        deferrable=True,
        retries=2,
    ).expand(s3_uri=audio_uris(list_audio.output))
    # [END howto_operator_deepgram_transcribe]

    # [START howto_transfer_deepgram_results]
    # The transfers take Deepgram's results through asset_ids, as they take Brain's assets.
    BrainToSqlOperator(task_id="load_warehouse", asset_ids=transcribe.output, conn_id="brain_warehouse")
    BrainToS3Operator(
        task_id="captions",
        asset_ids=transcribe.output,
        s3_uri="s3://{{ params.bucket }}/{{ params.captions_prefix }}",
        output_format="srt",
    )
    # [END howto_transfer_deepgram_results]
