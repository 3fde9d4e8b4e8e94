"""``start_from_trigger`` on a real deployment: transcribe tasks that run from scheduling to success in the
triggerer, never queued to a Celery worker, with the same XComs, rows and exactly-once promise as the
worker path, through a triggerer killed mid-wait and a file that is not audio."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from deploy.stack import WORKERS
from tests.deployment.backlog import keep_brain_busy
from tests.deployment.conftest import (
    AUDIO_BUCKET,
    brain_assets,
    follow,
    local_logs,
    task_log,
    tries,
    trigger,
    wait_for_dag,
)
from tests.deployment.dags.brain_deploy_trigger import LITERAL_URIS
from tests.deployment.test_faults import assert_exactly_once
from tests.fixtures.faults import Fault

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(480)]
DAG_ID = "brain_deploy_trigger"
FORMS = "brain_deploy_trigger_forms"
N_FILES = 12
WORKER_STATES = {"queued", "running", "restarting", "up_for_reschedule"}


def worker_logs(stack, dag_id, run_id, task_id):
    """The log files the Celery workers wrote for ``task_id``'s tries in the run (each try a worker ran has one)."""
    return [log for worker in WORKERS for log in local_logs(stack, worker, dag_id, run_id, task_id)]


def assert_never_on_a_worker(stack, dag_id, run_id, watch, task_ids):
    """No task instance of ``task_ids`` was ever queued or running (the scheduler never sent it to the
    executor), and no worker has a log of it."""
    for (task_id, map_index), states in watch.seen.items():
        if task_id in task_ids:
            assert not WORKER_STATES & set(states), f"{task_id}[{map_index}] went through {states}"
    for task_id in task_ids:
        ran = worker_logs(stack, dag_id, run_id, task_id)
        assert not ran, f"a worker ran {task_id}: {ran}"


def test_mapped_run_starts_and_ends_in_the_triggerer(stack, upload_audio):
    uris = upload_audio(N_FILES)
    run_id = trigger(stack, DAG_ID, {"s3_uris": uris})
    watch = follow(stack, DAG_ID, run_id, timeout=300)

    ids = assert_exactly_once(stack, DAG_ID, watch, uris)
    assert_never_on_a_worker(stack, DAG_ID, run_id, watch, {"transcribe"})
    # The triggerer records each object's version (from the HEAD that checks it), as the worker path does.
    versions = {a["metadata"]["source"]: a["metadata"].get("source_version") for a in brain_assets(stack, uris)}
    etags = {uri: stack.boto3("s3").head_object(Bucket=AUDIO_BUCKET, Key=uri.split("/", 3)[3])["ETag"] for uri in uris}
    assert versions == {uri: etag.strip('"') for uri, etag in etags.items()}
    for i, uri in enumerate(uris):
        assert [t["state"] for t in tries(stack, DAG_ID, run_id, "transcribe", i)] == ["success"]
        base = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/transcribe"
        result = stack.rest("GET", f"{base}/xcomEntries/return_value?map_index={i}")["value"]
        assert isinstance(result, dict), f"return value stored as {type(result).__name__}: {result!r}"
        assert (result["source"], result["asset_id"], result["status"]) == (uri, ids[uri], "done")
        assert result["word_count"] > 0
        links = stack.rest("GET", f"{base}/links?map_index={i}")["extra_links"]
        assert links == {"Brain asset": f"{stack.brain_url}/assets/{ids[uri]}"}, links


def test_triggerer_killed_mid_wait_leaves_one_asset_per_file(stack, upload_audio, speech):
    uris = upload_audio(N_FILES)
    wait_for_dag(stack, DAG_ID)
    backlog = keep_brain_busy(stack, speech)  # the run's assets wait behind other work: the kill lands mid-wait
    run_id = trigger(stack, DAG_ID, {"s3_uris": uris})
    killed = []

    def kill_once_submitted(watch):
        if killed:
            return
        states = [s for (task, i), s in watch.samples[-1].items() if task == "transcribe" and i >= 0]
        if states and states.count("deferred") >= 3 and len(brain_assets(stack, uris)) >= 3:
            stack.kill("triggerer", signal.SIGKILL)
            killed.append(time.time())
            time.sleep(3)
            stack.start("triggerer")
            backlog.release()  # the kill landed mid-wait: the run's own assets need not queue longer

    watch = follow(stack, DAG_ID, run_id, timeout=400, on_sample=kill_once_submitted)
    assert killed, "the triggerer was never killed: no asset was seen submitted"
    assert_exactly_once(stack, DAG_ID, watch, uris)
    assert_never_on_a_worker(stack, DAG_ID, run_id, watch, {"transcribe"})


def test_a_file_that_is_not_audio_fails_its_task_with_the_reason(stack, upload_audio):
    uris = upload_audio(3)
    bad = f"s3://{AUDIO_BUCKET}/not-audio-{uuid.uuid4().hex[:8]}.wav"
    stack.boto3("s3").put_object(Bucket=AUDIO_BUCKET, Key=bad.split("/", 3)[3], Body=b"this is not audio\n" * 200)
    files = [*uris, bad]
    run_id = trigger(stack, DAG_ID, {"s3_uris": files})
    watch = follow(stack, DAG_ID, run_id, timeout=300)

    assert watch.state == "failed"
    final = {i: watch.states_of("transcribe", i)[-1] for i in range(len(files))}
    assert final == {0: "success", 1: "success", 2: "success", 3: "failed"}, watch.seen
    assert_never_on_a_worker(stack, DAG_ID, run_id, watch, {"transcribe"})
    assets = brain_assets(stack, files)
    assert sorted(a["metadata"]["source"] for a in assets) == sorted(files), "exactly one asset per file"
    assert {a["metadata"]["source"]: a["status"] for a in assets}[bad] == "failed"
    log = ""
    deadline = time.monotonic() + 60
    while "could not be decoded" not in log and time.monotonic() < deadline:
        log = task_log(stack, DAG_ID, run_id, "transcribe", 3, 1)
        time.sleep(2)
    assert "failed: audio could not be decoded" in log, log[-3000:]


def test_a_try_failed_after_submitting_is_retried_in_the_triggerer_on_the_same_asset(stack, stack_proxy, upload_audio):
    uris = upload_audio(2)
    dag_id = "brain_deploy_trigger_retried"
    wait_for_dag(stack, dag_id)
    # The first status poll after the submissions is refused: both first tries fail after submitting.
    stack_proxy.add(Fault("status", status=401, path_prefix="/assets"))
    run_id = trigger(stack, dag_id, {"s3_uris": uris})
    watch = follow(stack, dag_id, run_id, timeout=300)

    assert watch.state == "success", watch.seen
    assert_never_on_a_worker(stack, dag_id, run_id, watch, {"transcribe"})
    assert sorted(a["metadata"]["source"] for a in brain_assets(stack, uris)) == sorted(uris), "one asset per file"
    retried = [i for i in range(len(uris)) if len(tries(stack, dag_id, run_id, "transcribe", i)) == 2]
    assert retried, "the refused poll failed a first try"
    for i in retried:
        assert [t["state"] for t in tries(stack, dag_id, run_id, "transcribe", i)] == ["failed", "success"]
        assert "Resuming Brain asset" in task_log(stack, dag_id, run_id, "transcribe", i, 2)


def test_literal_lists_and_templates_reach_each_task_instance(stack, speech):
    s3 = stack.boto3("s3")
    for i, uri in enumerate(LITERAL_URIS):
        s3.upload_file(str(speech.file(i)), AUDIO_BUCKET, uri.split("/", 3)[3])
    one = f"s3://{AUDIO_BUCKET}/templated-{uuid.uuid4().hex[:8]}.wav"
    s3.upload_file(str(speech.file(4)), AUDIO_BUCKET, one.split("/", 3)[3])
    run_id = trigger(stack, FORMS, {"one": one})
    watch = follow(stack, FORMS, run_id, timeout=300)

    assert watch.state == "success", watch.seen
    assert_never_on_a_worker(stack, FORMS, run_id, watch, {"literal", "templated"})
    checked = stack.rest("GET", f"/dags/{FORMS}/dagRuns/{run_id}/taskInstances/check/xcomEntries/return_value")
    assert checked["value"] == {"sources": [*LITERAL_URIS, one], "statuses": ["done"] * 4}
    templated = brain_assets(stack, [one])
    assert [a["metadata"].get("run") for a in templated] == [run_id], "metadata templates rendered too"
