"""DAGs the operator tests run with ``airflow dags test``: the waiting modes, plus crash-and-retry cases.

The audio's location comes from environment variables the test sets; connections from AIRFLOW_CONN_*.
``brain_modes`` and ``brain_retry`` hold several cases each, one task group per case over an object of its own
(``<prefix><group>.wav``): one run proves them all, instead of one ``airflow dags test`` (about 12 CPU seconds of
Airflow start-up and parsing) per case.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.sdk import DAG, TaskGroup, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.sensors.asset import BrainAssetSensor

BUCKET = os.environ.get("BRAIN_TEST_BUCKET", "bucket")
KEY = os.environ.get("BRAIN_TEST_KEY", "audio.wav")
LONG_KEY = os.environ.get("BRAIN_TEST_LONG_KEY", "long.wav")
PREFIX = os.environ.get("BRAIN_TEST_PREFIX", "audio/")
#: Where the cases of ``brain_modes`` and ``brain_retry`` find their objects: ``<prefix><group>.wav``.
CASES_PREFIX = os.environ.get("BRAIN_TEST_CASES_PREFIX", "cases/")
COMMON = {"schedule": None, "start_date": datetime(2026, 1, 1), "catchup": False}


class CrashAfterSubmitOperator(BrainTranscribeOperator):
    """Fails its first try right after the asset id was stored, as a worker crash would."""

    def poll_until_complete(self, external_id, context):
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated crash after submitting {external_id}")
        return super().poll_until_complete(external_id, context)


class CrashBeforeStoreOperator(BrainTranscribeOperator):
    """Fails its first try after the submit call returned but before the id reached the task state store."""

    def submit_job(self, context):
        asset_id = super().submit_job(context)
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated crash before storing {asset_id}")
        return asset_id


# The waiting modes in a worker: polling (sync), streaming the object from S3 (stream), and a submit task
# followed by a sensor in reschedule mode (reschedule).
with DAG(dag_id="brain_modes", **COMMON):
    with TaskGroup("sync"):
        BrainTranscribeOperator(
            task_id="transcribe",
            s3_uri=f"s3://{BUCKET}/{CASES_PREFIX}sync.wav",
            deferrable=False,
            poll_interval=0.5,
            times=True,
        )

    with TaskGroup("stream"):
        BrainTranscribeOperator(
            task_id="transcribe",
            s3_bucket=BUCKET,
            s3_key=f"{CASES_PREFIX}stream.wav",
            s3_transfer="stream",
            deferrable=False,
            poll_interval=0.5,
        )

    with TaskGroup("reschedule"):
        submit = BrainTranscribeOperator(
            task_id="submit",
            s3_uri=f"s3://{BUCKET}/{CASES_PREFIX}reschedule.wav",
            wait_for_completion=False,
            deferrable=False,
        )
        wait = BrainAssetSensor(
            task_id="wait",
            asset_id="{{ ti.xcom_pull(task_ids='reschedule.submit', key='asset_id') }}",
            mode="reschedule",
            poke_interval=1,
            timeout=300,
        )
        submit >> wait

with DAG(dag_id="brain_deferrable", **COMMON):
    BrainTranscribeOperator(task_id="transcribe", s3_uri=f"s3://{BUCKET}/{KEY}", deferrable=True, poll_interval=0.5)

with DAG(dag_id="brain_sensor_deferrable", **COMMON):
    submit = BrainTranscribeOperator(
        task_id="submit", s3_uri=f"s3://{BUCKET}/{LONG_KEY}", wait_for_completion=False, deferrable=False
    )
    wait = BrainAssetSensor(
        task_id="wait",
        asset_id="{{ ti.xcom_pull(task_ids='submit', key='asset_id') }}",
        deferrable=True,
        poke_interval=0.5,
        timeout=300,
    )
    submit >> wait

# A first try that crashes after submitting, once after the asset id was stored and once before.
with DAG(dag_id="brain_retry", **COMMON):
    for group, crashing_operator in (
        ("after_store", CrashAfterSubmitOperator),
        ("before_store", CrashBeforeStoreOperator),
    ):
        with TaskGroup(group):
            crashing_operator(
                task_id="transcribe",
                s3_uri=f"s3://{BUCKET}/{CASES_PREFIX}{group}.wav",
                deferrable=False,
                poll_interval=0.5,
                retries=1,
                retry_delay=timedelta(seconds=0),
            )

with DAG(dag_id="brain_mapped", **COMMON):
    keys = S3ListOperator(task_id="list", bucket=BUCKET, prefix=PREFIX)

    @task
    def to_uris(found: list[str]) -> list[str]:
        return [f"s3://{BUCKET}/{key}" for key in found]

    BrainTranscribeOperator.partial(task_id="transcribe", deferrable=True, poll_interval=0.5).expand(
        s3_uri=to_uris(keys.output)
    )

# start_from_trigger asked for where `airflow dags test` (which ignores it) or the source keeps the task in
# a worker: each task runs as it would without it, and says why in its log.
with DAG(dag_id="brain_trigger_start_fallback", **COMMON):
    BrainTranscribeOperator(
        task_id="presigned", s3_uri=f"s3://{BUCKET}/{KEY}", start_from_trigger=True, poll_interval=0.5
    )
    BrainTranscribeOperator(
        task_id="streamed",
        s3_bucket=BUCKET,
        s3_key=f"{PREFIX}clip-0.mp3",
        s3_transfer="stream",
        start_from_trigger=True,
        poll_interval=0.5,
    )
    BrainTranscribeOperator(
        task_id="local", local_path=os.environ.get("BRAIN_TEST_LOCAL_PATH", "/nonexistent.wav"), start_from_trigger=True
    )

    @task
    def more_uris() -> list[str]:
        return [f"s3://{BUCKET}/{PREFIX}clip-{i}.mp3" for i in (1, 2)]

    BrainTranscribeOperator.partial(task_id="mapped", start_from_trigger=True, poll_interval=0.5).expand(
        s3_uri=more_uris()
    )

# One deadline across tries: `timeout` counts from the asset's creation, and passing it fails the task for
# good (no retry waits again) after deleting the asset (cancel_on_kill, the default).
for dag_id, deferrable in (("brain_deadline_worker", False), ("brain_deadline_deferred", True)):
    with DAG(dag_id=dag_id, **COMMON):
        BrainTranscribeOperator(
            task_id="transcribe",
            s3_uri=f"s3://{BUCKET}/{KEY}",
            deferrable=deferrable,
            poll_interval=0.5,
            timeout=6,
            retries=2,
            retry_delay=timedelta(seconds=0),
        )

# A local file whose first upload's answer is lost (the test's fault proxy answers 502 after forwarding it, and
# the connection allows no retry inside the hook): the task's retry sends it again with the same Idempotency-Key.
with DAG(dag_id="brain_local_lost_answer", **COMMON):
    BrainTranscribeOperator(
        task_id="transcribe",
        local_path=os.environ.get("BRAIN_TEST_LOCAL_PATH", "/nonexistent.wav"),
        deferrable=False,
        poll_interval=0.5,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
