"""The Airflow side of the deployment: the environment every component gets (Airflow is configured with
environment variables only; connections are ``AIRFLOW_CONN_*`` variables), each component's command line,
and when each is ready."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from deploy.processes import http_answers
from deploy.rest import health
from deploy.services import AWS_KEY, AWS_REGION, AWS_SECRET, BRAIN_PASSWORD, BRAIN_USER, LOG_BUCKET, REPO_ROOT

AIRFLOW = str(Path(sys.executable).parent / "airflow")
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"
WORKERS = ("worker1", "worker2")
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", *WORKERS)


def environment(
    component: str | None,
    *,
    root: Path,
    dags: Path,
    ports: Mapping[str, int],
    urls: Mapping[str, str],
    pg_user: str,
    fernet_key: str,
    worker_concurrency: int,
    extra_env: Mapping[str, str],
) -> dict[str, str]:
    """The environment every component gets (Airflow config and connections), plus ``component``'s own."""
    pg = f"{pg_user}@127.0.0.1:{ports['postgres']}"
    api = urls["api"]
    aws = {"endpoint_url": urls["moto"], "region_name": AWS_REGION}
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # One key for all: otherwise each AIRFLOW_HOME makes its own, and the triggerer cannot decrypt
        # the trigger kwargs the scheduler or dag-processor stored.
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "simple_auth_passwords.json"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/airflow",
        "AIRFLOW__CELERY__BROKER_URL": urls["redis"],
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
        "AIRFLOW__API_AUTH__JWT_SECRET": "brain-stack-jwt-secret-for-local-tests-only",
        "AIRFLOW__API__SECRET_KEY": "brain-stack-secret-key-for-local-tests-only",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__EXPOSE_CONFIG": "True",
        # Short intervals: a test waits seconds, not minutes, for a new DAG, a dead worker or triggerer. A changed
        # DAG file is parsed again at the next refresh (file_parsing_sort_mode modified_time); an unchanged one every
        # 30 s (Airflow's default), since an unpaused DAG's asset watchers are registered only when its file is parsed.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{LOG_BUCKET}/logs",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["log-worker1"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["log-triggerer"]),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {"conn_type": "aws", "login": AWS_KEY, "password": AWS_SECRET, "extra": aws}
        ),
        "AIRFLOW_CONN_BRAIN_DEFAULT": json.dumps(
            {"conn_type": "brain", "host": urls["brain"], "login": BRAIN_USER, "password": BRAIN_PASSWORD}
        ),
        # The local server speaks Deepgram's dialect on the same port; a Deepgram API key is any user's password.
        "AIRFLOW_CONN_DEEPGRAM_DEFAULT": json.dumps(
            {"conn_type": "deepgram", "host": urls["brain"], "password": BRAIN_PASSWORD}
        ),
        "AIRFLOW_CONN_BRAIN_WAREHOUSE": json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": ports["postgres"],
                "login": pg_user,
                "schema": "warehouse",
            }
        ),
        "AWS_ACCESS_KEY_ID": AWS_KEY,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": AWS_REGION,
        "BRAIN_AUDIO_QUEUE_URL": urls["queue"],
        **extra_env,
    }
    if component:
        home = root / component
        env["AIRFLOW_HOME"] = str(home)
        if component in WORKERS:
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(ports[f"log-{component}"])
    return env


def process_env(component_env: Mapping[str, str]) -> dict[str, str]:
    """The environment a process starts with: ours without any Airflow or AWS settings, then ``component_env``."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AWS_", "AIRFLOW_HOME"))
    }
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    base["PYTHONUNBUFFERED"] = "1"
    return {**base, **component_env}


def airflow_command(
    name: str, *, root: Path, ports: Mapping[str, int], worker_concurrency: int
) -> tuple[list[str], Path]:
    """The command line and working directory of Airflow component ``name``."""
    if name == "api-server":
        return [AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(ports["api-server"]), "-w", "1"], root / name
    if name in ("scheduler", "dag-processor"):
        return [AIRFLOW, name], root / name
    if name == "triggerer":
        return [AIRFLOW, "triggerer"], root / name
    if name in WORKERS:
        command = [AIRFLOW, "celery", "worker", "-H", f"{name}@%h", "-c", str(worker_concurrency)]
        return [*command, "--without-gossip", "--without-mingle"], root / name
    raise KeyError(name)


def airflow_ready(name: str, *, api: str, log: Path, started_at: float) -> bool:
    """Whether Airflow component ``name``, started at ``started_at`` with its output in ``log``, is ready."""
    if name == "api-server":
        return http_answers(api + "/api/v2/monitor/health")
    if name in WORKERS:
        text = log.read_text(errors="replace") if log.exists() else ""
        return f"{name}@" in text and " ready." in text
    answer = health(api)
    key = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}[name]
    if not answer or (answer.get(key) or {}).get("status") != "healthy":
        return False
    beat = (answer.get(key) or {}).get(f"latest_{key}_heartbeat") or ""
    # A heartbeat from before this start is a previous incarnation's (a restart after kill -9).
    return bool(beat) and _iso_to_epoch(beat) >= started_at - 1


def _iso_to_epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
