"""Loads that write a table for the first time at the same moment all succeed (issue #22).

Airflow 3.3.2's api-server creates a table's asset the first time a task reports an event for it through an
``AssetAlias``, inside the request that marks the task successful. Two such requests at once both insert it; the
second fails on ``idx_asset_name_uri_unique`` (or, once the asset exists, on the alias's link to it), and the
api-server then marks that task ``failed``, whatever its retries: its rows are loaded, its run is red.

``brain_deploy_first_write`` runs the provider's load with a barrier: each run's load waits, after loading, until
all the runs started together have loaded, so their successes reach the api-server within milliseconds, the
first time Airflow sees that table.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from deploy.stack import Stack
from tests.deployment.conftest import follow, tries, wait_for_dag, warehouse_rows

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(480)]
FIRST_WRITE = "brain_deploy_first_write"
#: Loads waiting at the barrier hold worker slots: the stack has 8 (2 workers x 4); transcription defers.
N_RUNS = 6


def table_events(stack: Stack, table: str) -> list[dict]:
    """The asset events of the table (its asset is named by its URI, which ends with the table's name)."""
    events = stack.rest("GET", f"/assets/events?name_pattern={table}&limit=100")["asset_events"]
    return [event for event in events if event["uri"].endswith(f"/{table}")]


def test_loads_writing_a_table_first_at_the_same_moment_all_succeed(stack: Stack, upload_audio):
    uris = upload_audio(N_RUNS)
    table = f"first_write_{uuid.uuid4().hex[:8]}"
    wait_for_dag(stack, FIRST_WRITE)
    run_ids = [
        stack.rest(
            "POST",
            f"/dags/{FIRST_WRITE}/dagRuns",
            {"logical_date": None, "conf": {"s3_uris": [uri], "table": table, "barrier": N_RUNS}},
        )["dag_run_id"]
        for uri in uris
    ]
    started = time.monotonic()
    with ThreadPoolExecutor(N_RUNS) as pool:
        watches = list(pool.map(lambda run_id: follow(stack, FIRST_WRITE, run_id, timeout=400, interval=2), run_ids))

    load_tries = {
        w.run_id: [t["state"] for t in tries(stack, FIRST_WRITE, w.run_id, "load_warehouse", -1)] for w in watches
    }
    failed = sorted(w.run_id for w in watches if w.state != "success")
    assert not failed, f"{len(failed)} of {N_RUNS} runs failed; load tries: {load_tries}"
    # One try each (a load whose report lost the race is failed by the api-server, never retried).
    assert all(t == ["success"] for t in load_tries.values()), load_tries

    rows = warehouse_rows(stack, uris, table=table)
    assert sorted(source for source, _ in rows) == sorted(uris), "one row per file"
    events = table_events(stack, table)
    assert len(events) == N_RUNS, f"one asset event per load, got {len(events)}"
    assert sorted(e["source_run_id"] for e in events) == sorted(run_ids)
    assert all(e["extra"]["transcript_rows"] == 1 for e in events)
    assert time.monotonic() - started < 400
