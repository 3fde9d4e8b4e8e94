"""DAGs the operator tests run with ``airflow dags test``: the waiting modes, plus crash-and-retry cases.

The audio's location comes from environment variables the test sets; connections from AIRFLOW_CONN_*.
``brain_modes``, ``brain_retry`` and ``brain_defer`` hold several cases each, one task group per case over objects
of its own (under ``CASES_PREFIX``): one run proves them all, instead of one ``airflow dags test`` (about 12 CPU
seconds of Airflow start-up and parsing) per case.
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
#: Where the cases of ``brain_modes``, ``brain_retry`` and ``brain_defer`` find their objects.
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

# Waiting in the triggerer: a submit task and a deferrable sensor on a long file still processing when the sensor
# starts (sensor), a deferrable task (deferrable), a task mapped over the keys under a prefix (mapped), and
# start_from_trigger asked for where `airflow dags test` (which ignores it) or the source keeps the task in a worker:
# each task runs as it would without it, and says why in its log (fallback).
with DAG(dag_id="brain_defer", **COMMON):
    # The sensor first, the other groups after it: `dags test` runs the tasks that are ready one after another, so
    # the sensor starts right after its submit task, while the long file is still processing, as in a DAG of its own.
    with TaskGroup("sensor") as sensor_group:
        submit = BrainTranscribeOperator(
            task_id="submit",
            s3_uri=f"s3://{BUCKET}/{CASES_PREFIX}sensor-long.wav",
            wait_for_completion=False,
            deferrable=False,
        )
        wait = BrainAssetSensor(
            task_id="wait",
            asset_id="{{ ti.xcom_pull(task_ids='sensor.submit', key='asset_id') }}",
            deferrable=True,
            poke_interval=0.5,
            timeout=300,
        )
        submit >> wait

    with TaskGroup("deferrable") as deferrable_group:
        BrainTranscribeOperator(
            task_id="transcribe",
            s3_uri=f"s3://{BUCKET}/{CASES_PREFIX}deferrable.wav",
            deferrable=True,
            poll_interval=0.5,
        )

    with TaskGroup("mapped") as mapped_group:
        keys = S3ListOperator(task_id="list", bucket=BUCKET, prefix=f"{CASES_PREFIX}mapped/")

        @task
        def to_uris(found: list[str]) -> list[str]:
            return [f"s3://{BUCKET}/{key}" for key in found]

        BrainTranscribeOperator.partial(task_id="transcribe", deferrable=True, poll_interval=0.5).expand(
            s3_uri=to_uris(keys.output)
        )

    with TaskGroup("fallback") as fallback_group:
        fallback = f"{CASES_PREFIX}fallback/"
        BrainTranscribeOperator(
            task_id="presigned", s3_uri=f"s3://{BUCKET}/{fallback}one.wav", start_from_trigger=True, poll_interval=0.5
        )
        BrainTranscribeOperator(
            task_id="streamed",
            s3_bucket=BUCKET,
            s3_key=f"{fallback}clip-0.mp3",
            s3_transfer="stream",
            start_from_trigger=True,
            poll_interval=0.5,
        )
        BrainTranscribeOperator(
            task_id="local",
            local_path=os.environ.get("BRAIN_TEST_LOCAL_PATH", "/nonexistent.wav"),
            start_from_trigger=True,
        )

        @task
        def more_uris() -> list[str]:
            return [f"s3://{BUCKET}/{fallback}clip-{i}.mp3" for i in (1, 2)]

        BrainTranscribeOperator.partial(task_id="mapped", start_from_trigger=True, poll_interval=0.5).expand(
            s3_uri=more_uris()
        )

    sensor_group >> [deferrable_group, mapped_group, fallback_group]

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
