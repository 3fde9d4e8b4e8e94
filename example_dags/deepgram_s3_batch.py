"""Transcribe a list of audio files with Deepgram in one task, and keep going when some of them fail.

    transcribe (one task for every file: its requests sent from the triggerer, a few at a time)

Where ``deepgram_s3_to_warehouse`` maps one task per file, this DAG sends the whole list from one task: fewer task
instances for many short files. Each file still gets its own idempotency marker, its answer is stored under
``results_uri`` as it arrives, and a retried task sends only the files whose answer is not stored yet. A file that
cannot be transcribed (a missing object, audio Deepgram refuses) does not fail the others: the task returns the
results it has and names the failed files, with their reasons, in XCom key ``failed``.

Connections (nothing is hard-coded here):
- ``aws_default``: the S3 bucket holding the audio (presigned for Deepgram), and where the results go.
- ``deepgram_default``: Deepgram (a ``deepgram`` connection: the API key in the password; the host is
  ``https://api.deepgram.com`` unless you point it at ``brain-local``, which speaks Deepgram's dialect too).

Run it for other files with
``airflow dags test deepgram_s3_batch -c '{"sources": ["s3://my-audio/a.wav"], "results_uri": "s3://my-audio/dg/"}'``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_brain.operators.deepgram_batch import DeepgramTranscribeBatchOperator

with DAG(
    dag_id="deepgram_s3_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["deepgram", "example"],
    # params.sources renders as a list, not as its text.
    render_template_as_native_obj=True,
    params={
        "sources": Param(
            ["s3://brain-audio/incoming/call-0.wav", "s3://brain-audio/incoming/call-1.mp3"],
            type="array",
            items={"type": "string"},
            description="The audio to transcribe: s3:// URIs or http(s) URLs",
        ),
        "results_uri": Param(
            "s3://brain-audio/deepgram/", type="string", description="Where Deepgram's JSON answers go"
        ),
    },
):
    # [START howto_operator_deepgram_transcribe_batch]
    # Every file of the list from one task. deferrable=True sends the requests from the triggerer, at most
    # max_concurrency at a time (keep the sum over your pipelines under your Deepgram plan's concurrency limit):
    # no worker slot is held while Deepgram works. fail_on_error=False returns the files that were transcribed
    # (in the order given) and pushes {source: reason} of the others to XCom key "failed".
    transcribe = DeepgramTranscribeBatchOperator(
        task_id="transcribe",
        sources="{{ params.sources }}",
        output_uri="{{ params.results_uri }}",
        options={"smart_format": True},
        max_concurrency=2,
        deferrable=True,
        fail_on_error=False,
        retries=2,
    )
    # [END howto_operator_deepgram_transcribe_batch]
