"""A DAG that hands the transcribe operators presigned S3 URLs (made in the run by an upstream task), for the test
that the Rendered Template tab never shows their signatures while the tasks still submit the real URLs.

One run proves the four cases, each a task group of its own over its own objects (``<group>/<key>`` in bucket
``BRAIN_TEST_BUCKET``, so each group's assets are its own): ``single`` (a templated ``audio_url``),
``deferred_mapped``, ``resumed`` (mapped, deferred and resumed in a worker) and ``batch``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, TaskGroup, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
KEYS = os.environ.get("BRAIN_TEST_KEYS", "a.wav,b.wav").split(",")
GROUPS = ("single", "deferred_mapped", "resumed", "batch")
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
def presign(group: str) -> list[str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook()
    return [
        s3.generate_presigned_url("get_object", params={"Bucket": BUCKET, "Key": f"{group}/{key}"}, expires_in=600)
        for key in KEYS
    ]


with DAG(dag_id="brain_signed_urls", **COMMON):
    with TaskGroup("single"):
        # Templated: the task renders the URL from the upstream task's XCom.
        one = BrainTranscribeOperator(
            task_id="transcribe",
            audio_url="{{ ti.xcom_pull(task_ids='single.presign')[0] }}",
            deferrable=False,
            poll_interval=0.5,
        )
        presign("single") >> one

    with TaskGroup("deferred_mapped"):
        BrainTranscribeOperator.partial(task_id="transcribe", deferrable=True, poll_interval=0.5).expand(
            audio_url=presign("deferred_mapped")
        )

    with TaskGroup("resumed"):
        ResumeInWorkerOperator.partial(task_id="transcribe", deferrable=True, poll_interval=0.5).expand(
            audio_url=presign("resumed")
        )

    with TaskGroup("batch"):
        BrainTranscribeBatchOperator(
            task_id="transcribe", audio_urls=presign("batch"), deferrable=True, poll_interval=0.5
        )
