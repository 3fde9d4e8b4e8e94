"""The Deepgram operator on the deployment (#27): ``DeepgramTranscribeOperator(deferrable=True)`` mapped over S3
files, against the stack's local server speaking Deepgram's dialect, results delivered by callback to S3.

While every file waits (the server is held busy by a backlog, as a busy service would be) every task is deferred
and no worker slot is in use; the triggerer killed (SIGKILL) then and started again, each trigger finds its
request in the project's history and waits for that request's callback: one request per file, each task's result
is its one request's, one warehouse row per file.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from airflow_provider_brain.deepgram_store import listen_marker
from airflow_provider_brain.hooks.deepgram_calls import request_has_marker
from airflow_provider_brain.sources import parse_s3_uri
from deploy.stack import BRAIN_PASSWORD
from tests.deployment.backlog import keep_brain_busy
from tests.deployment.conftest import (
    follow,
    local_logs,
    task_log,
    tries,
    trigger,
    wait_for_dag,
    warehouse_rows,
)
from tests.fixtures.deepgram import deepgram_history

pytestmark = pytest.mark.deployment

DAG_ID = "brain_deploy_deepgram"
N_FILES = 4
RESTARTED = "was sent before the triggerer restarted"


def test_deferred_files_hold_no_slot_and_a_killed_triggerer_sends_nothing_twice(
    stack, upload_audio, speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {"conn_type": "deepgram", "host": stack.brain_url, "password": BRAIN_PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_DEEPGRAM_DEFAULT", json.dumps(connection))
    uris = upload_audio(N_FILES)
    wait_for_dag(stack, DAG_ID)
    backlog = keep_brain_busy(stack, speech)
    run_id = trigger(stack, DAG_ID, {"s3_uris": uris})
    markers = [listen_marker(DAG_ID, run_id, "transcribe", i, uri) for i, uri in enumerate(uris)]
    slots_in_use: list[int] = []
    killed: list[float] = []

    def waiting(sample: dict[tuple[str, int], str]) -> bool:
        states = [state for (task, i), state in sample.items() if task == "transcribe" and i >= 0]
        return len(states) == N_FILES and set(states) == {"deferred"}

    def kill_while_all_wait(watch: Any) -> None:
        slots_in_use.append(stack.running_tasks())
        if killed or len(watch.samples) < 4 or not all(map(waiting, watch.samples[-4:])):
            return
        if slots_in_use[-3:] != [0, 0, 0]:
            return
        sent = [m for m in markers if any(request_has_marker(r, m) for r in deepgram_history())]
        if len(sent) < N_FILES:
            return
        stack.kill("triggerer", signal.SIGKILL)
        killed.append(time.time())
        time.sleep(3)
        stack.start("triggerer")

        # Every request stays unanswered until each trigger run again has said it found it (Brain answers a clip
        # it has recognised before within seconds): then the backlog has served its purpose. The triggerer writes
        # each trigger's lines to a file of its own as they come.
        def restarted_triggers_found_their_requests() -> bool:
            trigger_logs = local_logs(stack, "triggerer", DAG_ID, run_id)
            found = [p for p in trigger_logs if RESTARTED in p.read_text(errors="replace")]
            return len(found) >= N_FILES

        stack.wait_for("the restarted triggers to find their requests", restarted_triggers_found_their_requests, 120)
        backlog.release()

    watch = follow(stack, DAG_ID, run_id, timeout=420, on_sample=kill_while_all_wait)
    assert killed, f"never saw every file sent and waiting with no slot in use: {slots_in_use}"
    assert watch.state == "success", watch.seen
    assert max(slots_in_use) > 0, "the count does see task processes when tasks run"

    requests = deepgram_history()
    ids: dict[str, str] = {}
    for i, uri in enumerate(uris):
        [request] = [r for r in requests if request_has_marker(r, markers[i])]  # one request per file
        base = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/transcribe"
        reference = stack.rest("GET", f"{base}/xcomEntries/return_value?map_index={i}")["value"]
        if isinstance(reference, str):
            reference = json.loads(reference)
        assert reference["request_id"] == request["request_id"] and reference["source"] == uri, reference
        bucket, key = parse_s3_uri(reference["deepgram_result"])
        stored = json.loads(stack.boto3("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        assert stored["metadata"]["request_id"] == request["request_id"], "the result is the one request's"
        assert [t["state"] for t in tries(stack, DAG_ID, run_id, "transcribe", i)] == ["success"], "no retry"
        assert "deferred" in watch.states_of("transcribe", i)

        ids[uri] = request["request_id"]

    # Each trigger run again after the kill said it found its request (so it sent nothing) and waited for it, in
    # its task's log as a user reads it (REST API; the trigger's part reaches the log bucket when it ends).
    for i, uri in enumerate(uris):

        def said_so(i: int = i) -> bool:
            return RESTARTED in task_log(stack, DAG_ID, run_id, "transcribe", i, 1)

        stack.wait_for(f"transcribe[{i}]'s log says its request was found", said_so, 120, interval=2)
        assert ids[uri] in task_log(stack, DAG_ID, run_id, "transcribe", i, 1)
    rows = warehouse_rows(stack, uris, table="deploy_deepgram_transcripts")
    assert sorted(rows) == sorted(ids.items()), "one warehouse row per file, holding its one request's result"
