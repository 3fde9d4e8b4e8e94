"""Find audio in S3 that has no transcript yet and transcribe it: the completeness half of event-driven pipelines.

    missing_audio (list the prefix, compare with Brain)  ->  transcribe (batches of the missing files)
                                                                 ->  load_warehouse

``brain_s3_event_triggered`` transcribes each file as its S3 notification arrives, but a notification can be
lost (the SQS trigger deletes a message when it receives it, before Airflow has recorded the event: a triggerer
that dies in between loses it). This DAG runs every hour and catches up: it lists the prefix with each object's
ETag, looks for assets whose metadata holds that ``source`` and ``source_version`` (any status but failed), and
transcribes only the objects none holds, recording their versions, so the next sweep and the event path see them.

Cost per run: one ``ListObjectsV2`` request per 1,000 objects, and one scan of Brain's asset listing for all of
them (pages of 1,000 assets, back to the oldest object's write time; not one request per object). Keep the prefix
to recent audio (e.g. a dated prefix) so that scan stays short. Objects younger than ``min_age_seconds`` are left
to the event path (a sweep and an event run that both see no asset yet would both submit); the next sweep takes
them if their notification was lost.

Where the DAG is parsed, ``BRAIN_SWEEP_SCHEDULE`` (a cron expression or preset, default ``@hourly``, or a number
of seconds) and ``BRAIN_SWEEP_MIN_AGE_SECONDS`` (default 900) set how often it sweeps and how long it leaves new
files to the events: a sweep every N minutes finds a lost file within N minutes plus the minimum age.

Connections: ``aws_default``, ``brain_default`` and ``brain_warehouse``. A manual run may name another place:
``airflow dags test brain_s3_sweep -c '{"bucket": "my-audio", "prefix": "2026-11-26/", "min_age_seconds": 0}'``.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import DAG, Param, task

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.source_versions import list_s3_objects, sweep_batches, untranscribed
from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")
_schedule = os.environ.get("BRAIN_SWEEP_SCHEDULE", "@hourly").strip()
SCHEDULE: str | timedelta = timedelta(seconds=int(_schedule)) if _schedule.isdigit() else _schedule
MIN_AGE_SECONDS = int(os.environ.get("BRAIN_SWEEP_MIN_AGE_SECONDS", "900"))

with DAG(
    dag_id="brain_s3_sweep",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["brain", "example"],
    params={
        "bucket": Param("brain-audio", type="string", description="Bucket holding the audio"),
        "prefix": Param("incoming/", type="string", description="Sweep the files under this prefix"),
        "min_age_seconds": Param(
            MIN_AGE_SECONDS, type="integer", minimum=0, description="Leave younger files to the events"
        ),
        "batch_size": Param(1000, type="integer", minimum=1, description="Files per batch task"),
    },
):
    # [START howto_brain_s3_sweep]
    @task
    def missing_audio(params: dict | None = None) -> list[dict]:
        """The audio under the prefix whose object version no Brain asset holds, as batch task arguments."""
        objects = list_s3_objects(
            S3Hook(aws_conn_id="aws_default"),
            params["bucket"],
            params["prefix"],
            suffixes=AUDIO_SUFFIXES,
            min_age=params["min_age_seconds"],
        )
        missing = untranscribed(BrainHook(), objects)
        where = f"s3://{params['bucket']}/{params['prefix']}"
        log.info("%d audio files under %s, %d without a transcript", len(objects), where, len(missing))
        return sweep_batches(missing, params["batch_size"])

    transcribe = BrainTranscribeBatchOperator.partial(
        task_id="transcribe", deferrable=True, poll_interval=10, timeout=6 * 3600, retries=2
    ).expand_kwargs(missing_audio())

    BrainToSqlOperator(task_id="load_warehouse", asset_ids=transcribe.output, conn_id="brain_warehouse")
    # [END howto_brain_s3_sweep]
