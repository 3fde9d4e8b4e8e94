"""The DAG the Deepgram operator tests run once per module with ``airflow dags test``, a task group per case:
mapped and deferred over S3 files, each source in a worker, a try that fails after its result was stored, a batch
in a worker, and presigned URLs from an upstream task. Locations come from environment variables the test sets;
connections from AIRFLOW_CONN_*."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, TaskGroup, task

from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from airflow_provider_brain.operators.deepgram_batch import DeepgramTranscribeBatchOperator

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
OUTPUT = f"s3://{BUCKET}/deepgram-results/"
KEYS = [f"audio/clip-{i}.mp3" for i in range(3)]
COMMON = {"schedule": None, "start_date": datetime(2026, 1, 1), "catchup": False}


class CrashAfterStoreOperator(DeepgramTranscribeOperator):
    """Fails its first try after the result was stored, as a worker lost right then would."""

    def execute(self, context):
        reference = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated crash after storing {reference['request_id']}")
        return reference


with DAG(dag_id="deepgram_runs", **COMMON):
    with TaskGroup("deferred"):
        DeepgramTranscribeOperator.partial(task_id="transcribe", output_uri=OUTPUT, deferrable=True).expand(
            s3_uri=[f"s3://{BUCKET}/{key}" for key in KEYS]
        )

    with TaskGroup("worker"):
        DeepgramTranscribeOperator(
            task_id="stream", s3_bucket=BUCKET, s3_key=KEYS[0], s3_transfer="stream", output_uri=OUTPUT
        )
        DeepgramTranscribeOperator(task_id="presign", s3_uri=f"s3://{BUCKET}/{KEYS[1]}", output_uri=OUTPUT)
        DeepgramTranscribeOperator(
            task_id="local",
            local_path=os.environ.get("BRAIN_TEST_LOCAL_PATH", "/nonexistent.wav"),
            output_uri=OUTPUT,
            options={"punctuate": True},
            tags=["local-file"],
        )

    with TaskGroup("retry"):
        CrashAfterStoreOperator(
            task_id="transcribe",
            s3_uri=f"s3://{BUCKET}/{KEYS[2]}",
            output_uri=OUTPUT,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )

    with TaskGroup("batch_worker"):
        DeepgramTranscribeBatchOperator(
            task_id="batch",
            sources=[f"s3://{BUCKET}/{KEYS[0]}", os.environ.get("BRAIN_TEST_LOCAL_PATH", "/nonexistent.wav")],
            output_uri=OUTPUT,
            max_concurrency=2,
        )

    with TaskGroup("signed"):

        @task
        def presign() -> list[str]:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            s3 = S3Hook(aws_conn_id="aws_default")
            return [
                s3.generate_presigned_url("get_object", params={"Bucket": BUCKET, "Key": key}, expires_in=600)
                for key in KEYS[:2]
            ]

        urls = presign()
        urls >> DeepgramTranscribeOperator(
            task_id="single",
            audio_url="{{ ti.xcom_pull(task_ids='signed.presign')[0] }}",
            output_uri=OUTPUT,
            deferrable=True,
        )
        DeepgramTranscribeBatchOperator(task_id="batch", sources=urls, output_uri=OUTPUT)
