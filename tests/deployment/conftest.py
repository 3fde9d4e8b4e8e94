"""The deployment tests: the provider on a real CeleryExecutor deployment (``deploy/stack.py``).

Every test here carries the ``deployment`` marker (run them with ``pytest -m deployment tests/deployment``).
One stack serves the whole session (``stack``); a fault proxy (``stack_proxy``) sits in front of its Brain
server as the ``brain_proxied`` connection. Each test uploads its own audio under its own S3 prefix and
triggers its own DAG run, so tests do not see each other's assets or rows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest

from deploy.stack import BRAIN_PASSWORD, BRAIN_USER, REPO_ROOT, Stack
from tests.fixtures.brain import min_latency_args
from tests.fixtures.connections import brain_connection_json
from tests.fixtures.faults import FaultProxy

DAGS = Path(__file__).parent / "dags"
AUDIO_BUCKET = "deploy-audio"  # no notifications: the fault tests trigger their runs themselves
TERMINAL = {"success", "failed"}
#: The example DAG that the stack's S3 notifications start (test_s3_events.py).
EVENTS_DAG = "brain_s3_event_triggered"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deployment: runs against the real Airflow deployment of deploy/stack.py (slow; own CI stage)"
    )


@pytest.fixture(scope="session")
def stack_proxy() -> Iterator[FaultProxy]:
    """Fault proxy for the stack's Brain server; its upstream is set once the stack has picked its ports."""
    proxy = FaultProxy("http://127.0.0.1:9").start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_proxy: FaultProxy) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    extra_env = {
        # Enough retries to outlast a 30 s outage with full-jitter backoff capped at 8 s (PROXIED_BACKOFF_MAX in
        # dags/brain_deploy.py): 20 retries wait about 70 s in all, and less than 30 s practically never.
        "AIRFLOW_CONN_BRAIN_PROXIED": brain_connection_json(
            stack_proxy.url, BRAIN_USER, BRAIN_PASSWORD, max_retries=20
        ),
        "BRAIN_DEPLOY_SIGNAL_DIR": str(root / "signals"),
        # A worker killed -9 loses the tasks it had just received: they stay queued in Airflow (Celery would
        # redeliver them after its 24 h visibility timeout). The scheduler requeues them after this long: long
        # enough that no task here waits that long for a slot (two Celery workers of four slots), short enough
        # that the worker-kill test does not wait a minute and a half for it (41 s against 103 to 109 s at 90 s).
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "45",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
        # brain_s3_sweep (paused but for its tests) sweeps every 20 s, leaving files under 10 s to the events.
        "BRAIN_SWEEP_SCHEDULE": "20",
        "BRAIN_SWEEP_MIN_AGE_SECONDS": "10",
    }
    deployment = Stack(
        root,
        dag_sources=[
            DAGS,
            *(REPO_ROOT / "example_dags" / f"{name}.py" for name in (EVENTS_DAG, "brain_s3_sweep")),
        ],
        extra_env=extra_env,
        # One recogniser, not two: a Brain busy with other work is a backlog of downloads that trickle in
        # (tests/deployment/backlog.py), and a second recogniser would only cost memory and start-up.
        brain_workers=1,
        # The tests send the same few clips again and again (a run recognised 117 files, 448 s of audio, nearly
        # all of them repeats): each is recognised once, then answered from the cache, held processing for 3 s
        # after its submission, about as long as a real recognition of such a clip, so that the tasks still defer.
        brain_args=["--recognition-cache", str(tmp_path_factory.mktemp("recognition-cache")), *min_latency_args(3)],
    )
    try:
        deployment.up()
        stack_proxy.upstream_port = deployment.ports["brain"]
        deployment.boto3("s3").create_bucket(Bucket=AUDIO_BUCKET)
        # The S3-event DAG is unpaused from the start: its queue's watcher is registered when its file is next parsed
        # after the unpause (up to 30 s later, the stack's MIN_FILE_PROCESS_INTERVAL), by the time the S3-event tests
        # run, instead of while their first run waits. Only those tests put objects in its bucket.
        wait_for_dag(deployment, EVENTS_DAG)
        yield deployment
    finally:
        deployment.down()


@dataclass
class RunWatch:
    """A DAG run followed through the REST API: the states each task instance was seen in."""

    dag_id: str
    run_id: str
    state: str = "queued"
    seen: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    samples: list[dict[tuple[str, int], str]] = field(default_factory=list)

    def states_of(self, task_id: str, map_index: int) -> list[str]:
        return self.seen.get((task_id, map_index), [])


def wait_for_dag(stack: Stack, dag_id: str, timeout: float = 120) -> None:
    """Wait until the dag-processor has parsed ``dag_id``, then unpause it."""

    def parsed() -> bool:
        try:
            stack.rest("GET", f"/dags/{dag_id}")
            return True
        except Exception:
            return False

    stack.wait_for(f"DAG {dag_id} parsed", parsed, timeout)
    stack.rest("PATCH", f"/dags/{dag_id}", {"is_paused": False})


def trigger(stack: Stack, dag_id: str, conf: dict[str, Any]) -> str:
    wait_for_dag(stack, dag_id)
    run = stack.rest("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    return run["dag_run_id"]


def task_instances(stack: Stack, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return stack.rest("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=500")["task_instances"]


def follow(
    stack: Stack,
    dag_id: str,
    run_id: str,
    timeout: float,
    on_sample: Callable[[RunWatch], None] | None = None,
    interval: float = 0.5,
) -> RunWatch:
    """Poll the run and its task instances until the run finishes (or ``timeout``); record every state seen."""
    watch = RunWatch(dag_id, run_id)
    deadline = time.monotonic() + timeout
    while True:
        watch.state = stack.rest("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        sample = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in task_instances(stack, dag_id, run_id)}
        watch.samples.append(sample)
        for key, state in sample.items():
            states = watch.seen.setdefault(key, [])
            if not states or states[-1] != state:
                states.append(state)
        if on_sample:
            on_sample(watch)
        if watch.state in TERMINAL:
            return watch
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} run {run_id} still {watch.state} after {timeout:g} s: {sample}")
        time.sleep(interval)


def tries(stack: Stack, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
    return stack.rest("GET", path)["task_instances"]


def brain_assets(stack: Stack, sources: list[str]) -> list[dict[str, Any]]:
    """Every asset (done or not) on the stack's Brain server whose metadata names one of ``sources``."""
    found: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=stack.brain_url, auth=(BRAIN_USER, BRAIN_PASSWORD), timeout=30) as client:
        for done in ("true", "false"):
            offset: int | None = 0
            while offset is not None:
                page = client.get("/assets", params={"limit": "100", "offset": str(offset), "done": done})
                page.raise_for_status()
                body = page.json()
                for item in body["results"]:
                    found[item["id"] if "id" in item else item["asset_id"]] = item
                offset = body.get("next_offset") if body["results"] else None
    wanted = set(sources)
    return [a for a in found.values() if (a.get("metadata") or {}).get("source") in wanted]


def delete_assets(stack: Stack, asset_ids: list[str]) -> None:
    """Delete assets on the stack's Brain (a backlog that has served its purpose): their work stops."""
    with httpx.Client(base_url=stack.brain_url, auth=(BRAIN_USER, BRAIN_PASSWORD), timeout=30) as client:
        for asset_id in asset_ids:
            client.delete(f"/assets/{asset_id}")


def warehouse_rows(stack: Stack, sources: list[str], table: str = "deploy_transcripts") -> list[tuple[Any, ...]]:
    with psycopg2.connect(stack.warehouse_dsn()) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT source, asset_id FROM {table} WHERE source = ANY(%s)", (sources,))
        return cursor.fetchall()


def local_logs(
    stack: Stack, component: str, dag_id: str, run_id: str, task_id: str | None = None, pattern: str = "*.log"
) -> list[Path]:
    """The task log files ``component`` (a Celery worker or the triggerer) wrote on this machine for the run (for
    ``task_id`` only, if given), there as soon as they are written; the REST API serves them once uploaded."""
    folder = stack.root / component / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    if task_id is not None:
        folder /= f"task_id={task_id}"
    return sorted(folder.rglob(pattern)) if folder.exists() else []


def task_log(stack: Stack, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """One try's log as a user reads it: through the REST API (the api-server finds it in the S3 log bucket,
    or on the machine that is running it). Every field of every structured line, one line per line."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    body = stack.rest("GET", f"{path}?map_index={map_index}&full_content=true")
    return "\n".join(json.dumps(line) if isinstance(line, dict) else str(line) for line in body["content"])


def task_logs(stack: Stack, dag_id: str, run_id: str) -> dict[str, str]:
    """The log of every try of every task instance of the run, read through the REST API, keyed
    ``task_id=<task>/map_index=<i>/attempt=<n>``."""
    logs = {}
    for ti in task_instances(stack, dag_id, run_id):
        task_id, map_index = ti["task_id"], ti["map_index"]
        for attempt in range(1, (ti["try_number"] or 0) + 1):
            key = f"task_id={task_id}/map_index={map_index}/attempt={attempt}"
            logs[key] = task_log(stack, dag_id, run_id, task_id, map_index, attempt)
    return logs


@pytest.fixture
def upload_audio(stack: Stack, speech) -> Callable[[int], list[str]]:
    """``upload_audio(n)``: ``n`` distinct spoken sentences under a fresh S3 prefix; returns their s3:// URIs."""

    def upload(n: int) -> list[str]:
        s3 = stack.boto3("s3")
        prefix = f"calls-{uuid.uuid4().hex[:8]}"
        uris = []
        for i in range(n):
            voice = ("slt", "kal")[(i // 6) % 2]
            key = f"{prefix}/{i:02d}-{voice}.wav"
            s3.upload_file(str(speech.file(i % 6, voice=voice)), AUDIO_BUCKET, key)
            uris.append(f"s3://{AUDIO_BUCKET}/{key}")
        return uris

    return upload


@pytest.fixture(autouse=True)
def _release_backlogs() -> Iterator[None]:
    """A test that failed before releasing its backlog must not leave the next ones waiting behind it."""
    yield
    from tests.deployment.backlog import release_all

    release_all()
