"""The default ``start_from_trigger`` on a real deployment (#24): a deferrable transcribe task whose DAG does not
mention ``start_from_trigger`` runs from scheduling to success in the triggerer, never queued to a Celery worker,
with the XComs, extra link and warehouse rows of the worker path; the same task with a ``pre_execute`` keeps
the worker path (its hook runs) and its log says why."""

from __future__ import annotations

import inspect
import time

import pytest

from airflow_provider_brain.operators.start_choice import DEFAULT_OFF
from tests.deployment.conftest import brain_assets, follow, task_log, tries, trigger
from tests.deployment.dags import brain_deploy_default
from tests.deployment.dags.brain_deploy_default import PRE_EXECUTE_RAN
from tests.deployment.test_faults import assert_exactly_once
from tests.deployment.test_start_from_trigger import assert_never_on_a_worker, worker_logs

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(480)]
DAG_ID = "brain_deploy_default"
N_FILES = 8


def test_the_dag_does_not_ask_for_the_triggerer():
    """What the deployment test below proves is the default: the DAG's code never names the flag."""
    assert "start_from_trigger=" not in inspect.getsource(brain_deploy_default)


def test_a_deferrable_task_starts_and_ends_in_the_triggerer_by_default(stack, upload_audio):
    *uris, hooked_uri = upload_audio(N_FILES + 1)
    run_id = trigger(stack, DAG_ID, {"s3_uris": uris, "hooked_uri": hooked_uri})
    watch = follow(stack, DAG_ID, run_id, timeout=300)

    ids = assert_exactly_once(stack, DAG_ID, watch, uris)
    assert_never_on_a_worker(stack, DAG_ID, run_id, watch, {"transcribe"})
    base = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/transcribe"
    for i, uri in enumerate(uris):
        assert [t["state"] for t in tries(stack, DAG_ID, run_id, "transcribe", i)] == ["success"]
        result = stack.rest("GET", f"{base}/xcomEntries/return_value?map_index={i}")["value"]
        assert (result["source"], result["asset_id"], result["status"]) == (uri, ids[uri], "done")
        assert result["word_count"] > 0
        links = stack.rest("GET", f"{base}/links?map_index={i}")["extra_links"]
        assert links == {"Brain asset": f"{stack.brain_url}/assets/{ids[uri]}"}, links

    # Its log, as a user reads it, has the worker path's lines (the triggerer's half reaches the log bucket late).
    said = [f"Submitted {uris[0]} to Brain as asset {ids[uris[0]]}", f"Brain asset {ids[uris[0]]}: done, "]
    log = ""
    deadline = time.monotonic() + 60
    while not all(line in log for line in said) and time.monotonic() < deadline:
        log = task_log(stack, DAG_ID, run_id, "transcribe", 0, 1)
        time.sleep(2)
    assert all(line in log for line in said), log[-3000:]

    # The task with a pre_execute ran in a worker (a worker wrote its log: the run's states, sampled every 0.5 s, once
    # missed its moments queued and running before it deferred), its hook ran, and its log says why.
    assert worker_logs(stack, DAG_ID, run_id, "hooked"), watch.states_of("hooked", -1)
    log = task_log(stack, DAG_ID, run_id, "hooked", -1, 1)
    assert PRE_EXECUTE_RAN in log, log[-3000:]
    assert f"{DEFAULT_OFF}: it sets pre_execute, which only a worker runs" in log, log[-3000:]
    (asset,) = brain_assets(stack, [hooked_uri])
    assert asset["status"] == "done"
