"""S3 events and the sweep: every object put in the bucket is transcribed once, none lost, none twice.

The stack's bucket ``brain-audio`` notifies the SQS queue ``brain-audio`` on moto; the example DAG
``brain_s3_event_triggered`` is scheduled by an ``Asset`` whose ``AssetWatcher`` runs a
``MessageQueueTrigger(scheme="sqs")`` in the triggerer, with ``BRAIN_AUDIO_QUEUE_URL`` set by the stack. The example
DAG ``brain_s3_sweep`` sweeps ``brain-audio/incoming/`` every ``SWEEP_INTERVAL`` seconds here
(``BRAIN_SWEEP_SCHEDULE``), leaving files younger than ``SWEEP_MIN_AGE`` seconds to the events; it is unpaused
only while the sweep tests run, so that its runs do not take worker slots during the other tests.

Every test filters runs by the objects their triggering asset events name, so the tests do not see each other's
runs; each object is named for its test.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

from airflow_provider_brain.s3_events import s3_uris_from_asset_events, s3_uris_from_notification
from deploy.stack import BUCKET, Stack
from tests.deployment.conftest import EVENTS_DAG, brain_assets, follow, task_instances, wait_for_dag

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(420)]
EVENTS = EVENTS_DAG
SWEEP = "brain_s3_sweep"
SWEEP_INTERVAL = 20  # seconds; the stack passes it as BRAIN_SWEEP_SCHEDULE
SWEEP_MIN_AGE = 10  # seconds; the stack passes it as BRAIN_SWEEP_MIN_AGE_SECONDS
WATCHER_POLL = 5  # seconds: the event DAG's MessageQueueTrigger(waiter_delay=5)
#: How soon the sweep submits a lost file, at the latest: old enough, the next sweep, that run's first task.
SWEEP_WITHIN = SWEEP_MIN_AGE + SWEEP_INTERVAL + 60


def runs_of(stack: Stack, dag_id: str) -> list[dict[str, Any]]:
    return stack.rest("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def trigger_events(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """The asset events that started an event-driven run (each carries the SQS messages it was made of)."""
    return stack.rest("GET", f"/dags/{EVENTS}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]


def event_runs_naming(stack: Stack, uri: str) -> list[dict[str, Any]]:
    """The runs of the event-driven DAG whose S3 notifications name ``uri``, oldest first."""
    named = [
        r for r in runs_of(stack, EVENTS) if uri in s3_uris_from_asset_events(trigger_events(stack, r["dag_run_id"]))
    ]
    return sorted(named, key=lambda r: r["run_after"])


def rows_for(stack: Stack, uris: list[str]) -> list[tuple[str, str]]:
    with psycopg2.connect(stack.warehouse_dsn()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT source, asset_id FROM transcripts WHERE source = ANY(%s) ORDER BY source", (uris,))
        return cursor.fetchall()


def assets_by_source(stack: Stack, uris: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {uri: [] for uri in uris}
    for asset in brain_assets(stack, uris):
        found[asset["metadata"]["source"]].append(asset)
    return found


def nothing_left_to_deliver(stack: Stack) -> bool:
    """No notification waits in the queue or is in flight, and no asset event waits to start a run of the DAG."""
    attributes = stack.boto3("sqs").get_queue_attributes(
        QueueUrl=stack.urls["queue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    queued = stack.rest("GET", f"/dags/{EVENTS}/assets/queuedEvents")["total_entries"]
    return queued == 0 and all(int(count) == 0 for count in attributes.values())


def put(stack: Stack, speech, key: str, sentence: int) -> str:
    stack.boto3("s3").upload_file(str(speech.file(sentence)), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


@pytest.fixture(scope="module")
def first_event(stack: Stack, speech) -> dict[str, Any]:
    """One object put in the bucket, and the run its notification started, followed to its end."""
    wait_for_dag(stack, EVENTS)
    # The watcher's trigger starts once the DAG is unpaused; a notification sent before it listens waits in the queue.
    uri = put(stack, speech, "incoming/event-one.wav", 2)
    runs = stack.wait_for("a run started by the S3 event", lambda: event_runs_naming(stack, uri), timeout=120)
    watch = follow(stack, EVENTS, runs[0]["dag_run_id"], timeout=240)
    return {"uri": uri, "watch": watch}


def test_one_object_put_starts_one_run_that_transcribes_it(stack, first_event):
    uri, watch = first_event["uri"], first_event["watch"]
    assert watch.state == "success"
    # A duplicate delivery would show up as a further run naming the object: wait until nothing is left that could
    # start one (no notification queued or in flight, no asset event queued for the DAG), twice, a watcher poll apart.
    stack.wait_for("nothing left to deliver", lambda: nothing_left_to_deliver(stack), timeout=120)
    time.sleep(WATCHER_POLL + 1)
    assert nothing_left_to_deliver(stack)
    runs = event_runs_naming(stack, uri)
    assert [r["dag_run_id"] for r in runs] == [watch.run_id]
    assert runs[0]["run_type"] == "asset_triggered"

    mapped = [ti for ti in task_instances(stack, EVENTS, watch.run_id) if ti["task_id"] == "transcribe"]
    assert [(ti["map_index"], ti["state"]) for ti in mapped] == [(0, "success")]
    (asset,) = assets_by_source(stack, [uri])[uri]
    assert asset["status"] == "done"
    assert asset["metadata"]["source_version"], "the event path records the object version it transcribed"
    assert rows_for(stack, [uri]) == [(uri, asset["asset_id"])]


def test_the_same_notification_delivered_twice_leaves_one_asset_and_one_row(stack, first_event):
    uri, first = first_event["uri"], first_event["watch"]
    assert first.state == "success"
    # Send the recorded notification again, as S3 or SQS would on an at-least-once redelivery.
    bodies = [
        message["Body"]
        for event in trigger_events(stack, first.run_id)
        for message in event["extra"]["payload"]["message_batch"]
        if uri in s3_uris_from_notification(message["Body"])
    ]
    assert bodies, "the first run's asset event carries the S3 notification"
    stack.boto3("sqs").send_message(QueueUrl=stack.urls["queue"], MessageBody=bodies[0])

    def second_run() -> list[dict[str, Any]]:
        return [r for r in event_runs_naming(stack, uri) if r["dag_run_id"] != first.run_id]

    (again,) = stack.wait_for("a second run for the redelivered notification", second_run, timeout=120)
    watch = follow(stack, EVENTS, again["dag_run_id"], timeout=240)
    assert watch.state == "success", watch.seen
    assert watch.states_of("transcribe", 0)[-1] == "success"

    (asset,) = assets_by_source(stack, [uri])[uri]  # reused: Brain transcribed the object once
    assert rows_for(stack, [uri]) == [(uri, asset["asset_id"])]


@pytest.fixture(scope="module")
def sweeping(stack: Stack) -> Iterator[None]:
    """The sweep DAG unpaused for the tests that need it; paused again, with no run left going, after them."""
    wait_for_dag(stack, SWEEP)
    yield
    stack.rest("PATCH", f"/dags/{SWEEP}", {"is_paused": True})

    def idle() -> bool:
        return all(r["state"] in ("success", "failed") for r in runs_of(stack, SWEEP))

    stack.wait_for("the sweep's last run to end", idle, timeout=180)


@pytest.fixture(scope="module")
def triggerer_down_puts(stack: Stack, speech, sweeping) -> dict[str, Any]:
    """Two objects put while the triggerer (and so the queue's watcher) is down: ``lost``, whose notification is
    purged right after the put, and ``late``, whose notification waits in the queue. The triggerer comes back
    once the sweep has submitted both; then both paths have had their chance to transcribe them."""
    wait_for_dag(stack, EVENTS)
    sqs = stack.boto3("sqs")
    stack.kill("triggerer", signal.SIGKILL)
    try:
        lost = put(stack, speech, "incoming/sweep-lost.wav", 3)
        sqs.purge_queue(QueueUrl=stack.urls["queue"])
        late = put(stack, speech, "incoming/sweep-late.wav", 4)
        put_at = time.monotonic()
        assert (
            int(
                sqs.get_queue_attributes(QueueUrl=stack.urls["queue"], AttributeNames=["All"])["Attributes"][
                    "ApproximateNumberOfMessages"
                ]
            )
            == 1
        ), "only the late object's notification is queued"

        def submitted() -> bool:
            found = assets_by_source(stack, [lost, late])
            return all(found.values())

        stack.wait_for("the sweep to submit both objects", submitted, timeout=SWEEP_WITHIN)
        swept_after = time.monotonic() - put_at
    finally:
        stack.start("triggerer")

    late_runs = stack.wait_for("the late notification's run", lambda: event_runs_naming(stack, late), timeout=120)
    late_watch = follow(stack, EVENTS, late_runs[0]["dag_run_id"], timeout=240)

    def sweep_loaded() -> bool:
        return len(rows_for(stack, [lost, late])) == 2

    stack.wait_for("the sweep's run to load both transcripts", sweep_loaded, timeout=180)
    return {"lost": lost, "late": late, "late_watch": late_watch, "swept_after": swept_after}


def test_a_lost_notification_is_transcribed_by_the_sweep(stack, triggerer_down_puts):
    lost = triggerer_down_puts["lost"]
    assert triggerer_down_puts["swept_after"] < SWEEP_WITHIN
    assert event_runs_naming(stack, lost) == [], "its notification was purged: no event run names it"
    (asset,) = assets_by_source(stack, [lost])[lost]
    assert asset["status"] == "done"
    assert rows_for(stack, [lost]) == [(lost, asset["asset_id"])]


def test_a_file_put_while_the_triggerer_is_down_is_transcribed_once(stack, triggerer_down_puts):
    late, watch = triggerer_down_puts["late"], triggerer_down_puts["late_watch"]
    assert watch.state == "success", watch.seen
    # The sweep submitted it first (the triggerer was down); the event run reused that asset.
    (asset,) = assets_by_source(stack, [late])[late]
    assert rows_for(stack, [late]) == [(late, asset["asset_id"])]
    # Every object the sweep saw, the event tests' too, holds one asset: the sweep transcribed none of them again.
    listed = stack.boto3("s3").list_objects_v2(Bucket=BUCKET, Prefix="incoming/")["Contents"]
    uris = [f"s3://{BUCKET}/{item['Key']}" for item in listed]
    assert late in uris
    assert {s: len(a) for s, a in assets_by_source(stack, uris).items()} == dict.fromkeys(uris, 1)
