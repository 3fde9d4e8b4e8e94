"""``cancel_on_kill`` on a real deployment: a user who marks a waiting transcribe task failed has its asset
deleted on Brain within seconds, whether the task waits in a worker or was started in the triggerer."""

from __future__ import annotations

import time

import httpx
import pytest

from deploy.stack import BRAIN_PASSWORD, BRAIN_USER
from tests.deployment.backlog import keep_brain_busy
from tests.deployment.conftest import brain_assets, follow, local_logs, task_instances, trigger, wait_for_dag

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(480)]
DELETED_WITHIN = 10.0


def asset_id_of(stack, dag_id, run_id, timeout=180):
    """The asset id the task pushed to XCom, once it is waiting (``deferred``, or ``running`` in a worker).

    A deferrable task pushes it while still ``running``, a moment before it defers: it counts as waiting once
    ``deferred`` (a task marked failed in that moment ends as its deferral is refused, with no on_kill)."""
    waiting = ("running",) if dag_id.endswith("_worker") else ("deferred",)
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/transcribe/xcomEntries/asset_id"

    def pushed():
        (ti,) = [t for t in task_instances(stack, dag_id, run_id) if t["task_id"] == "transcribe"]
        if ti["state"] not in waiting:
            return None
        try:
            return stack.rest("GET", path)["value"]
        except Exception:
            return None

    asset_id = str(stack.wait_for(f"{dag_id}: the asset id in XCom", pushed, timeout, interval=0.5)).strip('"')
    if dag_id.endswith("_deferred"):
        # Deferred is not yet waiting in the triggerer: until the triggerer runs the trigger (its log file
        # appears), a user's action removes the trigger before any of its code runs, so no on_kill is called.
        def trigger_running() -> bool:
            return bool(local_logs(stack, "triggerer", dag_id, run_id, pattern="*.trigger.*"))

        stack.wait_for(f"{dag_id}: its trigger running", trigger_running, 60, interval=0.25)
    return asset_id


def brain_status(stack, asset_id) -> int:
    with httpx.Client(base_url=stack.brain_url, auth=(BRAIN_USER, BRAIN_PASSWORD), timeout=30) as client:
        return client.get(f"/assets/{asset_id}").status_code


def wait_deleted(stack, asset_id) -> float:
    """Seconds until ``GET /assets/{id}`` answers 404 (fails after ``DELETED_WITHIN`` s)."""
    started = time.monotonic()
    while brain_status(stack, asset_id) != 404:
        assert time.monotonic() - started < DELETED_WITHIN, f"asset {asset_id} still on Brain"
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.mark.parametrize(
    "dag_id", ["brain_deploy_cancel_deferred", "brain_deploy_cancel_worker", "brain_deploy_cancel_triggerer"]
)
def test_a_task_marked_failed_while_waiting_has_its_asset_deleted(stack, upload_audio, speech, dag_id):
    (uri,) = upload_audio(1)
    wait_for_dag(stack, dag_id)
    backlog = keep_brain_busy(stack, speech)  # the asset stays processing while the test ends the task
    try:
        run_id = trigger(stack, dag_id, {"s3_uri": uri})
        asset_id = asset_id_of(stack, dag_id, run_id)
        assert brain_status(stack, asset_id) == 200

        stack.rest("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/transcribe", {"new_state": "failed"})
        took = wait_deleted(stack, asset_id)
        print(f"{dag_id}: asset deleted {took:.1f} s after the task was marked failed")
        assert brain_assets(stack, [uri]) == [], "no other asset of the file either"
    finally:
        backlog.release()  # the next test's audio need not wait behind this one's backlog


def test_a_task_cleared_while_deferred_leaves_one_live_asset(stack, upload_audio, speech):
    dag_id = "brain_deploy_cancel_deferred"
    (uri,) = upload_audio(1)
    wait_for_dag(stack, dag_id)
    backlog = keep_brain_busy(stack, speech)
    run_id = trigger(stack, dag_id, {"s3_uri": uri})
    first = asset_id_of(stack, dag_id, run_id)
    live_counts: list[int] = []

    stack.rest(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        {
            "dag_run_id": run_id,
            "task_ids": ["transcribe"],
            "dry_run": False,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    wait_deleted(stack, first)
    backlog.release()

    def count_live(watch):
        live_counts.append(len([a for a in brain_assets(stack, [uri]) if a["status"] != "failed"]))

    watch = follow(stack, dag_id, run_id, timeout=300, on_sample=count_live)
    assert watch.state == "success", watch.seen
    assets = brain_assets(stack, [uri])
    assert len(assets) == 1 and assets[0]["asset_id"] != first and assets[0]["status"] == "done"
    assert max(live_counts) <= 1, f"two live assets of one file at once: {live_counts}"
