"""DAGs the batch operator tests run with ``airflow dags test``: waiting in the worker or the triggerer, a
batch holding a file that is not audio (failing the task, or reporting it), and a crash mid-submission.

Files come from the prefix ``BRAIN_TEST_PREFIX`` of bucket ``BRAIN_TEST_BUCKET``; connections from AIRFLOW_CONN_*.
``brain_batches`` holds the cases whose runs succeed, one task group each, listing ``<prefix><group>/`` and
loading into a warehouse of its own (``brain_warehouse_<group>``), and ``brain_batch_failures`` those whose runs
fail: one run proves them all, instead of one ``airflow dags test`` (about 12 CPU seconds of Airflow start-up
and parsing) per case.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.sdk import DAG, TaskGroup, task

from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
PREFIX = os.environ.get("BRAIN_TEST_PREFIX", "batch/")
AUDIO_ONLY = (".wav", ".mp3")
COMMON = {"schedule": None, "start_date": datetime(2026, 1, 1), "catchup": False}


class CrashMidSubmissionOperator(BrainTranscribeBatchOperator):
    """Its first try dies after two files were submitted, as a worker killed mid-batch would."""

    def execute(self, context):
        if context["ti"].try_number == 1:
            submit_url = self.hook.submit_url
            submitted = []

            def submit_then_crash(*args, **kwargs):
                if len(submitted) == 2:
                    raise RuntimeError("simulated crash mid-submission")
                submitted.append(submit_url(*args, **kwargs))
                return submitted[-1]

            self.hook.submit_url = submit_then_crash
        return super().execute(context)


@task
def to_uris(keys: list[str], audio_only: bool) -> list[str]:
    return [f"s3://{BUCKET}/{key}" for key in keys if not audio_only or key.endswith(AUDIO_ONLY)]


with DAG(dag_id="brain_batches", **COMMON):
    # Waiting in the worker and in the triggerer.
    for group, deferrable in (("worker", False), ("deferrable", True)):
        with TaskGroup(group):
            listed = S3ListOperator(task_id="list", bucket=BUCKET, prefix=f"{PREFIX}{group}/")
            batch = BrainTranscribeBatchOperator(
                task_id="transcribe",
                s3_uris=to_uris(listed.output, audio_only=True),
                deferrable=deferrable,
                poll_interval=0.5,
                metadata={"team": "calls"},
            )
            BrainToSqlOperator(task_id="load", asset_ids=batch.output, conn_id=f"brain_warehouse_{group}")

    # A file that is not audio, reported in the summaries instead of failing the task.
    with TaskGroup("not_audio_reported"):
        listed = S3ListOperator(task_id="list", bucket=BUCKET, prefix=f"{PREFIX}not_audio_reported/")
        batch = BrainTranscribeBatchOperator(
            task_id="transcribe",
            s3_uris=to_uris(listed.output, audio_only=False),
            deferrable=True,
            poll_interval=0.5,
            fail_on_asset_failure=False,
        )
        BrainToSqlOperator(task_id="load", asset_ids=batch.output, conn_id="brain_warehouse_not_audio_reported")

    # A first try that dies mid-submission.
    with TaskGroup("retry"):
        listed = S3ListOperator(task_id="list", bucket=BUCKET, prefix=f"{PREFIX}retry/")
        CrashMidSubmissionOperator(
            task_id="transcribe",
            s3_uris=to_uris(listed.output, audio_only=True),
            deferrable=False,
            poll_interval=0.5,
            max_concurrent_submissions=1,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )

# The cases whose runs fail. A file that is not audio failing the task (not_audio_fails). One deadline across
# tries, in the worker and deferred: `timeout` counts from the batch's first submission; passing it deletes the
# assets still processing (cancel_on_kill, the default) and fails the task without retries. Each deadline group
# talks to a Brain of its own (brain_slow_<group>), whose access log tells its submissions and deletions apart.
with DAG(dag_id="brain_batch_failures", **COMMON):
    with TaskGroup("not_audio_fails"):
        listed = S3ListOperator(task_id="list", bucket=BUCKET, prefix=f"{PREFIX}not_audio_fails/")
        batch = BrainTranscribeBatchOperator(
            task_id="transcribe",
            s3_uris=to_uris(listed.output, audio_only=False),
            deferrable=True,
            poll_interval=0.5,
            fail_on_asset_failure=True,
        )
        BrainToSqlOperator(task_id="load", asset_ids=batch.output, conn_id="brain_warehouse")

    for group, deferrable in (("deadline_worker", False), ("deadline_deferred", True)):
        with TaskGroup(group):
            listed = S3ListOperator(task_id="list", bucket=BUCKET, prefix=f"{PREFIX}{group}/")
            BrainTranscribeBatchOperator(
                task_id="transcribe",
                s3_uris=to_uris(listed.output, audio_only=True),
                brain_conn_id=f"brain_slow_{group}",
                deferrable=deferrable,
                poll_interval=0.5,
                timeout=5,
                retries=2,
                retry_delay=timedelta(seconds=0),
            )
