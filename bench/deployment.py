"""Bench: mapped transcriptions through the real deployment (``deploy/stack.py``), six ways.

1. ``deferrable``: ``BrainTranscribeOperator(deferrable=True)`` as a DAG writes it, with no
   ``start_from_trigger``: the default, which on Airflow 3.3 starts each task in the triggerer (#24), and before
   3.3 submits in a worker and waits in the triggerer;
2. ``reschedule``: ``BrainTranscribeOperator(wait_for_completion=False)`` then
   ``BrainAssetSensor(mode="reschedule")``: each poke takes a worker slot for a moment;
3. ``naive``: what users write today: a ``@task`` (PythonOperator) that presigns, POSTs with ``requests``
   and loops ``while``/``sleep`` until the transcript is done, holding its worker slot all along;
4. ``batch``: ``BrainTranscribeBatchOperator(deferrable=True)`` mapped over chunks of ``--batch-size``
   files: one task submits a chunk, one trigger waits for all of it;
5. ``trigger``: ``BrainTranscribeOperator(start_from_trigger=True)``: each mapped task starts, submits,
   waits and ends in the triggerer, with no worker at all.
6. ``worker``: ``BrainTranscribeOperator(deferrable=True, start_from_trigger=False)``: what ``deferrable``
   was before #24: submit in a worker, wait in the triggerer (ended there on Airflow 3.3).

For each: wall time of the DAG run, peak worker slots occupied (task processes alive under the two
Celery workers, sampled every 0.25 s), slot-seconds (those slots integrated over time) and CPU seconds
of the workers, the triggerer and the scheduler (user + system of every process of the component,
including reaped children). All poll every 2 s.

    .venv/bin/python bench/deployment.py            # 200 files, all six ways (about 30 minutes here)
    .venv/bin/python bench/deployment.py --files 40 --modes deferrable,naive
    .venv/bin/python bench/deployment.py --files 48 --brain-latency 30   # a service that takes 30 s a file
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.stack import WORKERS, Stack  # noqa: E402

BUCKET = "bench-audio"
MODES = ("deferrable", "reschedule", "naive", "batch", "trigger", "worker")
POLL = 2

DAGS = '''
"""Bench DAGs written by bench/deployment.py: one per waiting mode, audio from the run's conf."""

import time
from datetime import datetime

import boto3
import requests
from airflow.sdk import DAG, BaseHook, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator
from airflow_provider_brain.sensors.asset import BrainAssetSensor

COMMON = {"schedule": None, "start_date": datetime(2026, 1, 1), "catchup": False, "max_active_tasks": 256}


@task
def audio_uris(dag_run=None):
    return list(dag_run.conf["s3_uris"])


with DAG(dag_id="bench_deferrable", **COMMON):
    BrainTranscribeOperator.partial(task_id="transcribe", deferrable=True, poll_interval=POLL).expand(
        s3_uri=audio_uris()
    )

with DAG(dag_id="bench_trigger", **COMMON):
    BrainTranscribeOperator.partial(
        task_id="transcribe", start_from_trigger=True, deferrable=True, poll_interval=POLL
    ).expand(s3_uri=audio_uris())

with DAG(dag_id="bench_worker", **COMMON):
    BrainTranscribeOperator.partial(
        task_id="transcribe", deferrable=True, start_from_trigger=False, poll_interval=POLL
    ).expand(s3_uri=audio_uris())

with DAG(dag_id="bench_reschedule", **COMMON):

    @task
    def asset_ids(results):
        return [r["asset_id"] for r in results]

    submitted = BrainTranscribeOperator.partial(
        task_id="submit", wait_for_completion=False, deferrable=False
    ).expand(s3_uri=audio_uris())
    BrainAssetSensor.partial(task_id="wait", mode="reschedule", poke_interval=POLL, timeout=3600).expand(
        asset_id=asset_ids(submitted.output)
    )

with DAG(dag_id="bench_naive", **COMMON):

    @task
    def transcribe(uri):
        conn = BaseHook.get_connection("brain_default")
        aws = BaseHook.get_connection("aws_default")
        bucket, key = uri[len("s3://"):].split("/", 1)
        s3 = boto3.client(
            "s3",
            endpoint_url=aws.extra_dejson["endpoint_url"],
            region_name=aws.extra_dejson["region_name"],
            aws_access_key_id=aws.login,
            aws_secret_access_key=aws.password,
        )
        url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)
        auth = (conn.login, conn.password)
        body = {"audio": {"url": url}, "config": {"async": True}, "metadata": {"source": uri}}
        asset = requests.post(f"{conn.host}/speech:recognize", json=body, auth=auth, timeout=60).json()
        while asset["status"] not in ("done", "failed"):
            time.sleep(POLL)
            asset = requests.get(f"{conn.host}/assets/{asset['asset_id']}", auth=auth, timeout=60).json()
        if asset["status"] == "failed":
            raise RuntimeError(f"asset {asset['asset_id']} failed")
        return asset["asset_id"]

    transcribe.expand(uri=audio_uris())

with DAG(dag_id="bench_batch", **COMMON):

    @task
    def chunks(dag_run=None):
        uris, size = list(dag_run.conf["s3_uris"]), int(dag_run.conf["batch_size"])
        return [uris[i : i + size] for i in range(0, len(uris), size)]

    BrainTranscribeBatchOperator.partial(task_id="transcribe", deferrable=True, poll_interval=POLL).expand(
        s3_uris=chunks()
    )
'''.replace("POLL", str(POLL))


def cpu_seconds(stack: Stack, names: tuple[str, ...], seen: dict[int, float]) -> None:
    """Record, per live process of the components, its CPU seconds so far (the max ever seen wins)."""
    for name in names:
        for process in stack.tree(name):
            with contextlib.suppress(psutil.Error):
                t = process.cpu_times()
                seen[process.pid] = max(
                    seen.get(process.pid, 0.0), t.user + t.system + t.children_user + t.children_system
                )


def run_mode(stack: Stack, mode: str, uris: list[str], timeout: float, batch_size: int) -> dict[str, float]:
    dag_id = f"bench_{mode}"
    stack.wait_for(f"{dag_id} parsed", lambda: _parsed(stack, dag_id), 180)
    stack.rest("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    groups = {"workers": WORKERS, "triggerer": ("triggerer",), "scheduler": ("scheduler",)}
    before = {group: {} for group in groups}  # type: dict[str, dict[int, float]]
    for group, names in groups.items():
        cpu_seconds(stack, names, before[group])
    after = {group: dict(values) for group, values in before.items()}
    run_id = stack.rest(
        "POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {"s3_uris": uris, "batch_size": batch_size}}
    )["dag_run_id"]
    peak, slot_seconds, last_cpu = 0, 0.0, 0.0
    deadline = time.monotonic() + timeout
    last_sample = time.monotonic()
    while True:
        in_use = stack.running_tasks()
        now = time.monotonic()
        slot_seconds += in_use * (now - last_sample)
        last_sample = now
        peak = max(peak, in_use)
        if time.monotonic() - last_cpu > 1:
            for group, names in groups.items():
                cpu_seconds(stack, names, after[group])
            last_cpu = time.monotonic()
            run = stack.rest("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} not done after {timeout:g} s")
        time.sleep(0.25)
    for group, names in groups.items():
        cpu_seconds(stack, names, after[group])
    if run["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run_id} {run['state']}; logs under {stack.root}")
    wall = _epoch(run["end_date"]) - _epoch(run["start_date"])
    result = {"wall_s": wall, "peak_slots": float(peak), "slot_s": slot_seconds}
    for group in groups:
        result[f"cpu_{group}_s"] = sum(after[group].values()) - sum(before[group].values())
    return result


def _parsed(stack: Stack, dag_id: str) -> bool:
    try:
        stack.rest("GET", f"/dags/{dag_id}")
        return True
    except Exception:
        return False


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--timeout", type=float, default=1800, help="per mode, seconds")
    parser.add_argument("--batch-size", type=int, default=50, help="files per batch task (batch mode)")
    parser.add_argument(
        "--brain-latency",
        type=float,
        default=0.0,
        help="seconds each asset stays processing at least (brain-local --min-latency), like a busy real service",
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")

    from tests.fixtures.speech import SpeechFactory

    work = Path(tempfile.mkdtemp(prefix="brain-bench-deploy-"))
    dags = work / "bench_dags"
    dags.mkdir()
    (dags / "bench_deployment_dags.py").write_text(DAGS)
    (work / "speech").mkdir()
    clip = SpeechFactory(work / "speech").file(0)  # a short clip (about 3 s of speech)
    brain_args = ["--min-latency", str(args.brain_latency)] if args.brain_latency else []
    stack = Stack(work / "stack", dag_sources=[dags], brain_args=brain_args)
    results: dict[str, dict[str, float]] = {}
    try:
        started = time.monotonic()
        stack.up()
        print(f"stack up in {time.monotonic() - started:.0f} s; logs in {stack.logs}", flush=True)
        s3 = stack.boto3("s3")
        s3.create_bucket(Bucket=BUCKET)
        for mode in modes:
            uris = []
            for i in range(args.files):
                key = f"{mode}/{i:04d}.wav"
                s3.upload_file(str(clip), BUCKET, key)
                uris.append(f"s3://{BUCKET}/{key}")
            print(f"{mode}: {args.files} files ...", flush=True)
            try:
                results[mode] = run_mode(stack, mode, uris, args.timeout, args.batch_size)
            except RuntimeError as err:  # A failed run of one way: say so in its column, measure the others.
                print(f"    {err}", flush=True)
                continue
            print(f"    {results[mode]}", flush=True)
    finally:
        stack.down()
    print()
    slots = len(WORKERS) * stack.worker_concurrency
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    latency = f", Brain latency {args.brain_latency:g} s" if args.brain_latency else ""
    print(
        f"{args.files} transcriptions ({args.batch_size} a batch task in batch mode), {slots} worker slots,"
        f" poll every {POLL} s{latency}; load average {load}"
    )
    header = ["", *modes]
    rows = [
        ("wall time (s)", "wall_s", "{:.0f}"),
        ("peak worker slots", "peak_slots", "{:.0f}"),
        ("worker slot-seconds", "slot_s", "{:.0f}"),
        ("CPU s, workers", "cpu_workers_s", "{:.0f}"),
        ("CPU s, triggerer", "cpu_triggerer_s", "{:.1f}"),
        ("CPU s, scheduler", "cpu_scheduler_s", "{:.0f}"),
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for label, key, fmt in rows:
        cells = (fmt.format(results[m][key]) if m in results else "run failed" for m in modes)
        print("| " + " | ".join([label, *cells]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
