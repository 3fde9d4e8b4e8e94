"""Transcribe each audio file the moment it lands in S3: event-driven, the Airflow 3 way.

The bucket sends ``s3:ObjectCreated:*`` notifications to an SQS queue. An ``Asset`` with an
``AssetWatcher`` on the common-messaging provider's ``MessageQueueTrigger(scheme="sqs")`` watches
that queue from the triggerer, and each batch of messages starts one DAG run, which transcribes
exactly the objects named in its triggering events and loads them into the warehouse.

Why not a sensor: a deferrable ``S3KeySensor`` on a schedule polls S3 by listing, finds files
late, and must remember what it already saw. Notifications name each new object once, at once.
Use the sensor only for a bucket whose notifications you cannot configure.

S3 sends one ``s3:TestEvent`` message when notifications are first configured: it names no object,
so its run transcribes nothing (``new_objects`` is empty and the tasks after it are skipped).

S3 delivers notifications at least once, and SQS may deliver a message twice: a second run for the same
object would transcribe it again. ``reuse_existing="source_version"`` makes each object version (its ETag)
transcribed once: the task reuses a live or done asset of it (one ``GET /assets`` page) and only loads it.
Notifications can also be lost (the SQS trigger deletes each message as it receives it, before Airflow has
recorded the event): ``brain_s3_sweep`` finds such files on a schedule and transcribes them.

Install ``airflow-provider-brain[events]`` (the common-messaging provider and aiobotocore) where the
triggerer runs. Set ``BRAIN_AUDIO_QUEUE_URL`` to the queue's URL where the DAG is parsed. Connections:
``aws_default``, ``brain_default`` and ``brain_warehouse``.

To transcribe with Deepgram instead, set ``BRAIN_TRANSCRIBE_WITH=deepgram`` where the DAG is parsed (connection
``deepgram_default``) and ``BRAIN_DEEPGRAM_RESULTS_URI`` to the ``s3://`` prefix for Deepgram's results: each
object version is then sent once, its result kept under that prefix and found again by a repeated event.

A manual run may name its files: ``airflow dags test brain_s3_event_triggered -c '{"s3_uris": ["s3://bucket/call.wav"]}'``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.s3_events import s3_uris_from_asset_events
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

#: Which service transcribes: "brain" (brain_default) or "deepgram" (deepgram_default).
TRANSCRIBE_WITH = os.environ.get("BRAIN_TRANSCRIBE_WITH", "brain")
DEEPGRAM_RESULTS_URI = os.environ.get("BRAIN_DEEPGRAM_RESULTS_URI", "s3://brain-transcripts/deepgram/")
QUEUE_URL = os.environ.get("BRAIN_AUDIO_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/000000000000/brain-audio")

# [START howto_brain_s3_event_watcher]
new_audio = Asset(
    "brain_new_audio",
    watchers=[
        AssetWatcher(
            name="brain_audio_queue",
            trigger=MessageQueueTrigger(scheme="sqs", sqs_queue=QUEUE_URL, aws_conn_id="aws_default", waiter_delay=5),
        )
    ],
)
# [END howto_brain_s3_event_watcher]

with DAG(
    dag_id="brain_s3_event_triggered",
    schedule=[new_audio],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "example"],
):
    # [START howto_brain_s3_event_new_objects]
    @task
    def new_objects(triggering_asset_events=None, dag_run=None) -> list[str]:
        """The s3:// URIs named by this run's S3 notifications (or by a manual run's conf)."""
        uris = s3_uris_from_asset_events(
            event for events in (triggering_asset_events or {}).values() for event in events
        )
        return uris or list((dag_run.conf or {}).get("s3_uris", []))

    # [END howto_brain_s3_event_new_objects]

    if TRANSCRIBE_WITH == "deepgram":
        # [START howto_operator_deepgram_reuse_existing]
        transcribe = DeepgramTranscribeOperator.partial(
            task_id="transcribe", output_uri=DEEPGRAM_RESULTS_URI, deferrable=True, reuse_existing="source_version"
        ).expand(s3_uri=new_objects())
        # [END howto_operator_deepgram_reuse_existing]
    else:
        # [START howto_operator_brain_reuse_existing]
        transcribe = BrainTranscribeOperator.partial(
            task_id="transcribe", deferrable=True, poll_interval=5, reuse_existing="source_version"
        ).expand(s3_uri=new_objects())
        # [END howto_operator_brain_reuse_existing]
    BrainToSqlOperator(task_id="load_warehouse", asset_ids=transcribe.output, conn_id="brain_warehouse")
