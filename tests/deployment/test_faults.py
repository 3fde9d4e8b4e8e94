"""The provider's promises on a real deployment (CeleryExecutor, separate triggerer), each under a fault.

Each test uploads its own synthesised speech to S3, triggers ``brain_deploy_mapped`` (or
``brain_deploy_proxied``, through a fault proxy) with those files and checks, through the REST API, the
Brain server and the warehouse, that every file was transcribed exactly once.
"""

from __future__ import annotations

import json
import re
import signal
import time

import psutil
import pytest

from deploy.stack import BRAIN_PASSWORD, WORKERS
from tests.deployment.backlog import keep_brain_busy
from tests.deployment.conftest import (
    brain_assets,
    follow,
    local_logs,
    task_log,
    task_logs,
    tries,
    trigger,
    wait_for_dag,
    warehouse_rows,
)

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(480)]
MAPPED = "brain_deploy_mapped"
N_FILES = 12


def assert_exactly_once(stack, dag_id, watch, uris):
    assert watch.state == "success", watch.seen
    # Index -1 is the placeholder before the task expands.
    transcribes = {k: v for k, v in watch.seen.items() if k[0] == "transcribe" and k[1] >= 0}
    assert sorted(i for _, i in transcribes) == list(range(len(uris)))
    assets = brain_assets(stack, uris)
    by_source = {}
    for asset in assets:
        by_source.setdefault(asset["metadata"]["source"], []).append(asset["asset_id"])
    assert {s: len(ids) for s, ids in by_source.items()} == dict.fromkeys(uris, 1), "one Brain asset per file"
    assert all(a["status"] == "done" for a in assets)
    rows = warehouse_rows(stack, uris)
    assert sorted(rows) == sorted((s, ids[0]) for s, ids in by_source.items()), "one transcript row per file"
    return {s: ids[0] for s, ids in by_source.items()}


def test_normal_run_waits_in_the_triggerer_not_in_a_worker(stack, upload_audio, speech):
    uris = upload_audio(N_FILES)
    # A busy service (the real one takes minutes): the run's assets wait behind a backlog, long enough for
    # every transcribe task to submit and defer before the first asset is done.
    wait_for_dag(stack, MAPPED)  # parsed first, so the backlog is not spent waiting for the dag-processor
    backlog = keep_brain_busy(stack, speech)
    run_id = trigger(stack, MAPPED, {"s3_uris": uris})
    slots_in_use: list[int] = []

    def waiting(sample):
        states = [state for (task, i), state in sample.items() if task == "transcribe" and i >= 0]
        return len(states) == N_FILES and set(states) == {"deferred"}

    def count_slots(watch):
        slots_in_use.append(stack.running_tasks())
        # Every task seen waiting, with no slot taken, for a few samples (what the assertions below need): the
        # backlog has served its purpose, and deleting it stops its recognition, so the run's assets finish sooner.
        seen = watch.samples[-6:]
        if backlog and len(seen) == 6 and all(map(waiting, seen)) and slots_in_use[-5:] == [0] * 5:
            backlog.release()

    watch = follow(stack, MAPPED, run_id, timeout=300, on_sample=count_slots)
    ids = assert_exactly_once(stack, MAPPED, watch, uris)
    for i in range(N_FILES):
        assert "deferred" in watch.states_of("transcribe", i), (i, watch.states_of("transcribe", i))
        # Ended by its trigger once the asset was done: no second worker run, straight from deferred to success.
        assert watch.states_of("transcribe", i)[-2:] == ["deferred", "success"], watch.states_of("transcribe", i)
        history = tries(stack, MAPPED, run_id, "transcribe", i)
        assert [t["state"] for t in history] == ["success"], "no retry needed"
        base = f"/dags/{MAPPED}/dagRuns/{run_id}/taskInstances/transcribe"
        result = stack.rest("GET", f"{base}/xcomEntries/return_value?map_index={i}")["value"]
        assert (result["source"], result["asset_id"], result["status"]) == (uris[i], ids[uris[i]], "done")
        links = stack.rest("GET", f"{base}/links?map_index={i}")["extra_links"]
        assert links == {"Brain asset": f"{stack.brain_url}/assets/{ids[uris[i]]}"}, links

    # While every mapped task is waiting (deferred), in this sample and the next (so no task was
    # between states when the slots were counted), the workers only free slots: a task that deferred keeps
    # its slot while its supervisor finishes the try (state update, log upload to S3), then the slot is
    # free and stays free until an asset is done. Waiting holds no slot.
    quiet = [
        slots_in_use[k]
        for k in range(len(watch.samples) - 1)
        if waiting(watch.samples[k]) and waiting(watch.samples[k + 1])
    ]
    print(f"worker slots in use while every task was deferred, every 0.5 s: {quiet}")
    assert quiet, "never saw every transcription waiting at once"
    assert all(a >= b for a, b in zip(quiet, quiet[1:], strict=False)), f"a slot was taken while all waited: {quiet}"
    assert quiet.count(0) >= 4, f"slots not freed (for 2 s at least) while all tasks were deferred: {quiet}"
    assert max(slots_in_use) > 0, "the count does see task processes when tasks run"

    # Each task's log, read as a user reads it (REST API, S3 log bucket), holds the part it ran in a worker
    # before deferring and the part its trigger ran. A worker uploads a log when the task process has exited,
    # just after the task's state is recorded, and the trigger's part when the trigger has ended: allow them a
    # while. The trigger's last line, that it ended the task, is logged a millisecond before the trigger ends,
    # and Airflow 3.3.2 uploads the trigger's part right then: once in a CI run the uploaded part lacked that
    # line, while the triggerer's own log held it. So that line is looked for in either place.
    triggerer_log = stack.root / "logs" / "triggerer.log"
    done = r"Brain asset \S+: done, [0-9.]+ s of audio, \d+ words; the task ends here, in the triggerer"

    def ended_by_trigger(i: int, log: str) -> bool:
        if re.search(done, log):
            return True
        mine = f"map_index={i} run_id={run_id} task_id=transcribe"
        return any(re.search(done, line) and mine in line for line in triggerer_log.read_text().splitlines())

    def complete(i: int) -> bool:
        log = task_log(stack, MAPPED, run_id, "transcribe", i, 1)
        submitted = f"Submitted {uris[i]} to Brain as asset" in log
        return submitted and "BrainAssetTrigger" in log and ended_by_trigger(i, log)

    missing = list(range(N_FILES))
    deadline = time.monotonic() + 120
    while missing and time.monotonic() < deadline:
        missing = [i for i in missing if not complete(i)]
        if missing:
            time.sleep(2)
    assert not missing, {i: task_log(stack, MAPPED, run_id, "transcribe", i, 1)[-3000:] for i in missing}
    ran_on = {w for w in WORKERS if local_logs(stack, w, MAPPED, run_id)}
    assert ran_on == set(WORKERS), f"every worker ran tasks: {ran_on}"


def test_triggerer_killed_while_tasks_are_deferred(stack, upload_audio):
    uris = upload_audio(N_FILES)
    run_id = trigger(stack, MAPPED, {"s3_uris": uris})
    killed = []

    def kill_when_deferred(watch):
        states = [s for (task, i), s in watch.samples[-1].items() if task == "transcribe" and i >= 0]
        if not killed and states and sum(s == "deferred" for s in states) >= 3:
            stack.kill("triggerer", signal.SIGKILL)
            killed.append(time.time())
            time.sleep(3)
            stack.start("triggerer")

    watch = follow(stack, MAPPED, run_id, timeout=300, on_sample=kill_when_deferred)
    assert killed, "the triggerer was never killed: no task was seen deferred"
    assert_exactly_once(stack, MAPPED, watch, uris)


def test_worker_killed_right_after_a_submission_returns(stack, upload_audio):
    uris = upload_audio(N_FILES)
    paused = 1
    run_id = trigger(stack, MAPPED, {"s3_uris": uris, "pause_after_submit": [paused]})
    signal_dir = stack.root / "signals" / run_id.replace(":", "_").replace("+", "_")
    signal_file = stack.wait_for("the paused task's signal", lambda: (signal_dir / f"{paused}.json").exists(), 180)
    assert signal_file
    info = json.loads((signal_dir / f"{paused}.json").read_text())
    victim = stack.component_of(info["pid"])
    assert victim in WORKERS
    assert psutil.pid_exists(info["pid"])
    stack.kill(victim, signal.SIGKILL)
    stack.start(victim)

    watch = follow(stack, MAPPED, run_id, timeout=360)
    ids = assert_exactly_once(stack, MAPPED, watch, uris)
    history = tries(stack, MAPPED, run_id, "transcribe", paused)
    assert [t["state"] for t in history][-1] == "success"
    assert len(history) >= 2, "the killed try must have been retried"
    assert ids[uris[paused]] in info["submitted"], "the retry resumed the asset the killed try submitted"

    def paused_task_logs() -> str:
        logs = task_logs(stack, MAPPED, run_id)
        return "\n".join(text for path, text in logs.items() if f"map_index={paused}" in path)

    # A try's worker half reaches the S3 log bucket when its process has exited, which can be a little
    # after the task instance reads ``success``: read until it is there, as a user reloading the page would.
    try:
        stack.wait_for("its log line", lambda: re.search(r"Resuming Brain asset \S+", paused_task_logs()), 60, 3)
    except TimeoutError:
        pytest.fail(f"the retry never says it resumed; its logs read:\n{paused_task_logs()[-3000:]}")


def test_brain_server_restarted_while_assets_are_processing(stack, upload_audio):
    uris = upload_audio(N_FILES)
    run_id = trigger(stack, MAPPED, {"s3_uris": uris})
    restarted = []

    def restart_when_processing(watch):
        states = [s for (task, i), s in watch.samples[-1].items() if task == "transcribe" and i >= 0]
        if not restarted and states and sum(s == "deferred" for s in states) >= 2:
            stack.stop("brain")
            stack.start("brain")
            restarted.append(time.time())

    watch = follow(stack, MAPPED, run_id, timeout=300, on_sample=restart_when_processing)
    assert restarted
    assert_exactly_once(stack, MAPPED, watch, uris)


def test_brain_answers_503_for_30_seconds(stack, stack_proxy, upload_audio):
    uris = upload_audio(N_FILES)
    stack_proxy.fail_for(30, 503)
    started = time.time()
    run_id = trigger(stack, "brain_deploy_proxied", {"s3_uris": uris})
    watch = follow(stack, "brain_deploy_proxied", run_id, timeout=360)
    assert_exactly_once(stack, "brain_deploy_proxied", watch, uris)
    faulted = [s for s in stack_proxy.seen if s.faulted and s.at >= started]
    assert faulted, "the outage was seen by the tasks"
    logs = "\n".join(task_logs(stack, "brain_deploy_proxied", run_id).values())
    assert "503" in logs, "the task logs show the retries"
    assert BRAIN_PASSWORD not in logs
    assert "X-Amz-Signature" not in logs and "Signature=" not in logs
