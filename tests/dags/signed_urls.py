"""DAGs that hand the transcribe operators presigned S3 URLs (made in the run by an upstream task), for the test
that the Rendered Template tab never shows their signatures while the tasks still submit the real URLs."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
KEYS = os.environ.get("BRAIN_TEST_KEYS", "a.wav,b.wav").split(",")
COMMON = {"schedule": None, "start_date": datetime(2026, 1, 1), "catchup": False}


class ResumeInWorkerOperator(BrainTranscribeOperator):
    """Has its own ``execute_complete``, so the task resumes in a worker (not ending in the triggerer); says
    whether the resumed task had the real URL again (re-rendered) and the shown one still hidden."""

    def execute_complete(self, context, event, resumed=False, owned=True):
        real, shown = self.location.audio_url or "", self.audio_url or ""
        self.log.info(
            "Resumed in a worker: real URL signed=%s, shown URL hidden=%s", "Signature=" in real, "=***" in shown
        )
        return super().execute_complete(context, event, resumed=resumed, owned=owned)


@task
def presign() -> list[str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook()
    return [
        s3.generate_presigned_url("get_object", params={"Bucket": BUCKET, "Key": key}, expires_in=600) for key in KEYS
    ]


with DAG(dag_id="brain_signed_url", **COMMON):
    urls = presign()
    # Templated: the task renders the URL from the upstream task's XCom.
    one = BrainTranscribeOperator(
        task_id="transcribe", audio_url="{{ ti.xcom_pull(task_ids='presign')[0] }}", deferrable=False, poll_interval=0.5
    )
    urls >> one

with DAG(dag_id="brain_signed_url_deferred_mapped", **COMMON):
    BrainTranscribeOperator.partial(task_id="transcribe", deferrable=True, poll_interval=0.5).expand(
        audio_url=presign()
    )

with DAG(dag_id="brain_signed_url_resumed", **COMMON):
    ResumeInWorkerOperator.partial(task_id="transcribe", deferrable=True, poll_interval=0.5).expand(audio_url=presign())

with DAG(dag_id="brain_signed_urls_batch", **COMMON):
    BrainTranscribeBatchOperator(task_id="transcribe", audio_urls=presign(), deferrable=True, poll_interval=0.5)
