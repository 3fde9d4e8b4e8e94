"""A production-shaped Airflow deployment on one machine, for the deployment tests and for trying the provider.

``python -m deploy.stack up [DIR]`` starts, each as its own process group with its own log in ``DIR/logs``:

- PostgreSQL (Debian binaries; Airflow's metadata DB and a ``warehouse`` database for transcripts),
- Redis (Debian ``redis-server``) as the Celery broker,
- moto in server mode (S3 and SQS), with a bucket ``brain-audio`` whose ``s3:ObjectCreated:*``
  notifications go to the SQS queue ``brain-audio`` (its URL is ``BRAIN_AUDIO_QUEUE_URL``),
  and a bucket ``airflow-logs`` for the task logs (remote logging, as separate machines need),
- the local Brain server (user ``demo``, password ``demo-stack-password``),
- ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and two ``airflow celery worker``
  (CeleryExecutor), each with its own ``AIRFLOW_HOME`` and working directory; they share only the DAGs
  folder, the metadata DB and the broker, as separate machines would.

``python -m deploy.stack down [DIR]`` stops every process group recorded in ``DIR/stack.json``. Airflow is
configured with environment variables only (the ``env`` of ``stack.json``); connections are
``AIRFLOW_CONN_*`` variables given to every component. The REST API user is ``admin``/``admin``.

The tests use the same class: ``Stack(root, dag_sources=[...]).up()``, then ``stack.kill("triggerer")``,
``stack.start("triggerer")``, ``stack.api`` and so on; ``stack.down()`` in a ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
DEFAULT_ROOT = Path(os.environ.get("BRAIN_STACK_DIR") or Path(tempfile.gettempdir()) / "brain-stack")

ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"
BRAIN_USER, BRAIN_PASSWORD = "demo", "demo-stack-password"
AWS_KEY, AWS_SECRET, AWS_REGION = "testing", "testing", "us-east-1"
MOTO_ACCOUNT = "123456789012"
BUCKET = QUEUE = "brain-audio"
#: Task logs go to S3 (moto) as in a multi-machine deployment: the api-server reads a finished task's log
#: from there, whichever worker ran it (the workers' log servers all answer on one host here).
LOG_BUCKET = "airflow-logs"
WORKERS = ("worker1", "worker2")
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", *WORKERS)


class StackError(RuntimeError):
    """A component did not start; the message names it and its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own local servers
        return True
    except urllib.error.HTTPError:
        return True  # Any HTTP answer (401 from Brain, 404 from moto) means it is serving.
    except OSError:
        return False


def _tcp_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left (their parent, this process, has not reaped them yet) counts as gone.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[-1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def _find_pg_bin() -> Path:
    candidates = [os.environ["PG_BIN"]] if os.environ.get("PG_BIN") else []
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        candidates.append(str(Path(shutil.which("initdb") or "").parent))
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    candidates.sort(key=lambda c: int(Path(c).parent.name) if Path(c).parent.name.isdigit() else 0, reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise StackError("PostgreSQL server binaries not found: install Debian's postgresql or set PG_BIN")


@dataclass
class Proc:
    """One started component: its process group and log."""

    name: str
    pid: int
    log: str
    started_at: float = field(default_factory=time.time)


class Stack:
    """The deployment rooted at ``root``: its ports, environment, processes and logs (see the module docstring)."""

    def __init__(
        self,
        root: Path = DEFAULT_ROOT,
        *,
        dag_sources: Sequence[Path] = (REPO_ROOT / "example_dags",),
        extra_env: dict[str, str] | None = None,
        worker_concurrency: int = 4,
        brain_args: Sequence[str] = (),
    ) -> None:
        self.root = Path(root).resolve()
        self.logs = self.root / "logs"
        self.dags = self.root / "dags"
        self.dag_sources = [Path(p) for p in dag_sources]
        self.extra_env = dict(extra_env or {})
        self.worker_concurrency = worker_concurrency
        #: Extra ``brain-local serve`` arguments, e.g. ``["--min-latency", "30"]`` for a busy service.
        self.brain_args = list(brain_args)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, Proc] = {}
        self.pg_dir: str = ""
        self.fernet_key: str = ""
        self.run_as: str | None = "postgres" if os.geteuid() == 0 else None
        self._token: str | None = None

    # ---------------------------------------------------------------- state
    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def save(self) -> None:
        state = {
            "ports": self.ports,
            "pg_dir": self.pg_dir,
            "fernet_key": self.fernet_key,
            "run_as": self.run_as,
            "brain_args": self.brain_args,
            "procs": {name: vars(proc) for name, proc in self.procs.items()},
            "env": self.env(),
            "urls": self.urls,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, root: Path = DEFAULT_ROOT) -> Stack:
        stack = cls(root)
        state = json.loads(stack.state_file.read_text())
        stack.ports = state["ports"]
        stack.pg_dir = state["pg_dir"]
        stack.fernet_key = state.get("fernet_key", "")
        stack.run_as = state["run_as"]
        stack.brain_args = list(state.get("brain_args", []))
        stack.procs = {name: Proc(**proc) for name, proc in state["procs"].items()}
        return stack

    # ---------------------------------------------------------------- addresses
    @property
    def urls(self) -> dict[str, str]:
        if not self.ports:
            return {}
        return {
            "api": f"http://127.0.0.1:{self.ports['api-server']}",
            "brain": f"http://127.0.0.1:{self.ports['brain']}",
            "moto": f"http://127.0.0.1:{self.ports['moto']}",
            "queue": f"http://127.0.0.1:{self.ports['moto']}/{MOTO_ACCOUNT}/{QUEUE}",
            "postgres": f"postgresql://{self.pg_user}@127.0.0.1:{self.ports['postgres']}",
            "redis": f"redis://127.0.0.1:{self.ports['redis']}/0",
        }

    @property
    def api(self) -> str:
        return self.urls["api"]

    @property
    def brain_url(self) -> str:
        return self.urls["brain"]

    @property
    def pg_user(self) -> str:
        return self.run_as or os.environ.get("USER") or "postgres"

    def warehouse_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.ports['postgres']} user={self.pg_user} dbname=warehouse"

    def env(self, component: str | None = None) -> dict[str, str]:
        """The environment every component gets (Airflow config and connections), plus ``component``'s own."""
        pg = f"{self.pg_user}@127.0.0.1:{self.ports['postgres']}"
        moto = self.urls["moto"]
        aws = {"endpoint_url": moto, "region_name": AWS_REGION}
        env = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # One key for all: otherwise each AIRFLOW_HOME makes its own, and the triggerer cannot decrypt
            # the trigger kwargs the scheduler or dag-processor stored.
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.root / "simple_auth_passwords.json"),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": self.urls["redis"],
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__API_AUTH__JWT_SECRET": "brain-stack-jwt-secret-for-local-tests-only",
            "AIRFLOW__API__SECRET_KEY": "brain-stack-secret-key-for-local-tests-only",
            "AIRFLOW__API__BASE_URL": self.api,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__EXPOSE_CONFIG": "True",
            # Short intervals: a test waits seconds, not minutes, for a new DAG, a dead worker or triggerer.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
            "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{LOG_BUCKET}/logs",
            "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports["log-worker1"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["log-triggerer"]),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {"conn_type": "aws", "login": AWS_KEY, "password": AWS_SECRET, "extra": aws}
            ),
            "AIRFLOW_CONN_BRAIN_DEFAULT": json.dumps(
                {"conn_type": "brain", "host": self.brain_url, "login": BRAIN_USER, "password": BRAIN_PASSWORD}
            ),
            "AIRFLOW_CONN_BRAIN_WAREHOUSE": json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "port": self.ports["postgres"],
                    "login": self.pg_user,
                    "schema": "warehouse",
                }
            ),
            "AWS_ACCESS_KEY_ID": AWS_KEY,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": AWS_REGION,
            "BRAIN_AUDIO_QUEUE_URL": self.urls["queue"],
            **self.extra_env,
        }
        if component:
            home = self.root / component
            env["AIRFLOW_HOME"] = str(home)
            if component in WORKERS:
                env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.ports[f"log-{component}"])
        return env

    def _process_env(self, component: str | None) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AWS_", "AIRFLOW_HOME"))
        }
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        base["PYTHONUNBUFFERED"] = "1"
        return {**base, **self.env(component)}

    # ---------------------------------------------------------------- processes
    def _command(self, name: str) -> tuple[list[str], Path]:
        """The command line and working directory of component ``name``."""
        p = self.ports
        if name == "postgres":
            command = [str(_find_pg_bin() / "postgres"), "-D", f"{self.pg_dir}/data", "-p", str(p["postgres"])]
            command += ["-k", f"{self.pg_dir}", "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"]
            command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            if self.run_as:
                command = ["runuser", "-u", self.run_as, "--", *command]
            return command, Path(self.pg_dir)
        if name == "redis":
            command = ["redis-server", "--port", str(p["redis"]), "--bind", "127.0.0.1", "--save", ""]
            return [*command, "--appendonly", "no", "--dir", str(self.root / name)], self.root / name
        if name == "moto":
            return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p["moto"])], self.root / name
        if name == "brain":
            command = [sys.executable, "-m", "airflow_provider_brain.local", "serve", "--host", "127.0.0.1"]
            command += ["--port", str(p["brain"]), "--data-dir", str(self.root / "brain" / "data")]
            command += ["--user", BRAIN_USER, "--password", BRAIN_PASSWORD, "--workers", "2"]
            # The media it fetches are presigned URLs of moto, which listens on 127.0.0.1.
            command += ["--allow-private-urls", *self.brain_args]
            return command, REPO_ROOT
        if name == "api-server":
            return [AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(p["api-server"]), "-w", "1"], self.root / name
        if name in ("scheduler", "dag-processor"):
            return [AIRFLOW, name], self.root / name
        if name == "triggerer":
            return [AIRFLOW, "triggerer"], self.root / name
        if name in WORKERS:
            command = [AIRFLOW, "celery", "worker", "-H", f"{name}@%h", "-c", str(self.worker_concurrency)]
            return [*command, "--without-gossip", "--without-mingle"], self.root / name
        raise KeyError(name)

    def _ready(self, name: str) -> bool:
        p = self.ports
        if name == "postgres":
            return self._pg_ready()
        if name == "redis":
            return _tcp_answers(p["redis"])
        if name == "moto":
            return _http_answers(self.urls["moto"] + "/moto-api/")
        if name == "brain":
            return _http_answers(self.brain_url + "/users")
        if name == "api-server":
            return _http_answers(self.api + "/api/v2/monitor/health")
        log = Path(self.procs[name].log)
        text = log.read_text(errors="replace") if log.exists() else ""
        if name in WORKERS:
            return f"{name}@" in text and " ready." in text
        health = self._health()
        key = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}[name]
        if not health or (health.get(key) or {}).get("status") != "healthy":
            return False
        beat = (health.get(key) or {}).get(f"latest_{key}_heartbeat") or ""
        # A heartbeat from before this start is a previous incarnation's (a restart after kill -9).
        return bool(beat) and _iso_to_epoch(beat) >= self.procs[name].started_at - 1

    def _pg_ready(self) -> bool:
        if not _tcp_answers(self.ports["postgres"]):
            return False
        try:
            import psycopg2

            port = self.ports["postgres"]
            psycopg2.connect(host="127.0.0.1", port=port, user=self.pg_user, dbname="postgres").close()
            return True
        except Exception:
            return False

    def _health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.api + "/api/v2/monitor/health", timeout=3) as response:  # noqa: S310
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def _spawn(self, name: str) -> Proc:
        command, cwd = self._command(name)
        cwd.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%H:%M:%S')} starting {name}: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=self._process_env(name if name in AIRFLOW_COMPONENTS else None),
                start_new_session=True,  # its own process group: down() and kill() reach its children too
            )
        proc = Proc(name=name, pid=process.pid, log=str(log_path))
        self.procs[name] = proc
        self.save()
        return proc

    def _wait_ready(self, names: Iterable[str], timeout: float) -> None:
        pending = list(names)
        deadline = time.monotonic() + timeout
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if not _alive(proc.pid):
                    raise StackError(f"{name} exited during start-up; log: {proc.log}")
                if self._ready(name):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                details = "; ".join(f"{n} (log: {self.procs[n].log})" for n in pending)
                raise StackError(f"not ready after {timeout:g} s: {details}")
            if pending:
                time.sleep(0.5)

    def start(self, name: str, timeout: float = 120) -> Proc:
        """Start (or restart) one component and wait until it is ready."""
        proc = self._spawn(name)
        self._wait_ready([name], timeout)
        return proc

    def tree(self, name: str) -> list[Any]:
        """The component's live processes: its process group and every descendant (as ``psutil.Process``).

        The group alone does not reach everything: the task runner of a Celery worker starts its own
        session, so a ``kill -9`` of the worker's group would leave the task running on a "dead" machine.
        """
        import psutil

        pgid = self.procs[name].pid
        found: dict[int, Any] = {}
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):  # gone since listed
                if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                    found[process.pid] = process
        for process in list(found.values()):
            with contextlib.suppress(psutil.Error, OSError):
                for child in process.children(recursive=True):
                    found.setdefault(child.pid, child)
        return [p for p in found.values() if p.pid != os.getpid()]

    def running_tasks(self) -> int:
        """Worker slots in use: Celery pool processes of the workers that have a task process (``airflow
        worker -- <ti id>``) under them, running or exited but not yet reaped (its supervisor, the pool
        process, is still finishing the task: the slot is not free yet)."""
        import psutil

        count = 0
        for name in WORKERS:
            try:
                pool_processes = psutil.Process(self.procs[name].pid).children()
            except psutil.NoSuchProcess:
                raise StackError(f"{name} is not running; log: {self.procs[name].log}") from None
            for pool_process in pool_processes:
                with contextlib.suppress(psutil.Error):  # gone since listed: not busy
                    if pool_process.children():
                        count += 1
        return count

    def component_of(self, pid: int) -> str | None:
        """The component that (directly or not) started process ``pid``."""
        import psutil

        leaders = {proc.pid: name for name, proc in self.procs.items()}
        with contextlib.suppress(psutil.Error):
            process: Any = psutil.Process(pid)
            while process is not None:
                if process.pid in leaders:
                    return leaders[process.pid]
                process = process.parent()
        return None

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Send ``sig`` to a component (default SIGKILL: a crash, which takes every process it started with it)
        and wait until it is gone; a component that ignores a gentler signal for ``timeout`` gets SIGKILL."""
        import psutil

        proc = self.procs[name]
        members = self.tree(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if sig == signal.SIGKILL:
            for member in members:
                with contextlib.suppress(psutil.Error):
                    member.kill()
        _, alive = psutil.wait_procs(members, timeout=timeout)
        if alive:
            if sig == signal.SIGKILL:
                raise StackError(f"{name}: {[p.pid for p in alive]} still alive {timeout:g} s after SIGKILL")
            for member in alive:
                with contextlib.suppress(psutil.Error):
                    member.kill()
            psutil.wait_procs(alive, timeout=10)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(proc.pid, os.WNOHANG)

    def stop(self, name: str, timeout: float = 30) -> None:
        """Stop a component gracefully (SIGINT for PostgreSQL's fast shutdown, SIGTERM for the rest)."""
        started = time.monotonic()
        self.kill(name, signal.SIGINT if name == "postgres" else signal.SIGTERM, timeout)
        with contextlib.suppress(OSError), open(self.procs[name].log, "a") as log:
            log.write(f"\n==== {time.strftime('%H:%M:%S')} stopped {name} in {time.monotonic() - started:.1f} s\n")

    # ---------------------------------------------------------------- whole stack
    def up(self, timeout: float = 240) -> Stack:
        """Start everything; on any failure stop what started and raise ``StackError`` naming the component."""
        if self.state_file.exists():
            with contextlib.suppress(Exception):
                Stack.load(self.root).down()
        shutil.rmtree(self.root, ignore_errors=True)
        self.logs.mkdir(parents=True)
        names = ["postgres", "redis", "moto", "brain", "api-server", *AIRFLOW_COMPONENTS[1:], "log-triggerer"]
        self.ports = {name: free_port() for name in names}
        self.ports.update({f"log-{w}": free_port() for w in WORKERS})
        from cryptography.fernet import Fernet

        self.fernet_key = Fernet.generate_key().decode()
        self.pg_dir = tempfile.mkdtemp(prefix="brain-stack-pg-", dir="/tmp")
        (self.root / "simple_auth_passwords.json").write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        self._copy_dags()
        self.save()
        try:
            self._init_postgres()
            for name in ("postgres", "redis", "moto", "brain"):
                self._spawn(name)
            self._wait_ready(["postgres", "redis", "moto", "brain"], 90)
            self._create_databases()
            self._setup_s3()
            self._migrate()
            for name in AIRFLOW_COMPONENTS:
                self._spawn(name)
            self._wait_ready(AIRFLOW_COMPONENTS, timeout)
        except BaseException:
            self.down()
            raise
        return self

    def down(self, timeout: float = 15) -> list[str]:
        """Stop every recorded component, Airflow first and PostgreSQL last; return the names stopped.

        The components of one tier stop side by side (a component that ignores SIGTERM for ``timeout``
        gets SIGKILL), so stopping takes about as long as the slowest component, not the sum."""
        from concurrent.futures import ThreadPoolExecutor

        tiers = [AIRFLOW_COMPONENTS, ("brain", "moto"), ("redis",), ("postgres",)]
        known = {name for tier in tiers for name in tier}
        tiers.insert(0, tuple(name for name in self.procs if name not in known))
        stopped = []
        for tier in tiers:
            running = [name for name in tier if name in self.procs and self.tree(name)]
            with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
                list(pool.map(lambda name: self.stop(name, timeout), running))
            stopped += running
        if self.pg_dir:
            shutil.rmtree(self.pg_dir, ignore_errors=True)
        return stopped

    def _copy_dags(self) -> None:
        self.dags.mkdir(parents=True, exist_ok=True)
        for source in self.dag_sources:
            files = [source] if source.is_file() else sorted(source.glob("*.py"))
            for file in files:
                if not file.name.startswith("_"):
                    shutil.copy2(file, self.dags / file.name)

    def _run_logged(self, name: str, command: list[str], env: dict[str, str] | None = None, timeout: float = 300):
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            result = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root, timeout=timeout, check=False
            )
        if result.returncode != 0:
            raise StackError(f"{name} failed with exit code {result.returncode}; log: {log_path}")

    def _init_postgres(self) -> None:
        pg_dir = Path(self.pg_dir)
        pg_dir.chmod(0o755)
        (pg_dir / "data").mkdir()
        if self.run_as:
            shutil.chown(pg_dir, user=self.run_as, group=self.run_as)
            shutil.chown(pg_dir / "data", user=self.run_as, group=self.run_as)
        command = [str(_find_pg_bin() / "initdb"), "-D", str(pg_dir / "data"), "--auth=trust", "--no-sync"]
        command += ["-U", self.pg_user, "-E", "UTF8"]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        self._run_logged("postgres-initdb", command)

    def _create_databases(self) -> None:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.ports["postgres"], user=self.pg_user, dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE airflow")
            cursor.execute("CREATE DATABASE warehouse")
        connection.close()

    def _migrate(self) -> None:
        self._run_logged("airflow-db-migrate", [AIRFLOW, "db", "migrate"], env=self._process_env("api-server"))

    def boto3(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.urls["moto"],
            region_name=AWS_REGION,
            aws_access_key_id=AWS_KEY,
            aws_secret_access_key=AWS_SECRET,
        )

    def _setup_s3(self) -> None:
        """Bucket ``brain-audio`` notifies queue ``brain-audio`` of every new object (moto delivers it);
        bucket ``airflow-logs`` holds the task logs."""
        sqs, s3 = self.boto3("sqs"), self.boto3("s3")
        s3.create_bucket(Bucket=LOG_BUCKET)
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
        )
        # S3 sends an ``s3:TestEvent`` when notifications are configured; drop it so the first DAG run an
        # event-driven DAG sees comes from a real object.
        sqs.purge_queue(QueueUrl=queue_url)

    # ---------------------------------------------------------------- REST API
    def token(self) -> str:
        if self._token is None:
            request = urllib.request.Request(  # noqa: S310 - our own api-server
                self.api + "/auth/token",
                data=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                self._token = json.loads(response.read())["access_token"]
        return self._token

    def rest(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """Call the REST API (``/api/v2`` + ``path``) as the admin user; return the parsed JSON."""
        request = urllib.request.Request(  # noqa: S310 - our own api-server
            f"{self.api}/api/v2{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token()}"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise StackError(f"{method} {path}: HTTP {err.code}: {err.read()[:500]!r}") from err
        return json.loads(raw) if raw else None

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """Poll ``check`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:g} s")
            time.sleep(interval)


def _iso_to_epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT, help=f"default: {DEFAULT_ROOT}")
    args = parser.parse_args(argv)
    if args.action == "up":
        started = time.monotonic()
        try:
            stack = Stack(args.root).up()
        except StackError as err:
            print(f"stack-up failed: {err}", file=sys.stderr)
            return 1
        print(f"Stack up in {time.monotonic() - started:.0f} s; logs in {stack.logs}")
        print(f"  Airflow UI and REST API: {stack.api}  (user {ADMIN_USER}, password {ADMIN_PASSWORD})")
        print(f"  Brain server:            {stack.brain_url}  (user {BRAIN_USER}, password {BRAIN_PASSWORD})")
        print(f"  S3/SQS (moto):           {stack.urls['moto']}  bucket {BUCKET} -> queue {stack.urls['queue']}")
        print(f"  Environment of every component: {stack.state_file} (key 'env')")
        print(f"Stop it with: make stack-down  (or python -m deploy.stack down {stack.root})")
        return 0
    if not (args.root / "stack.json").exists():
        print(f"no stack recorded in {args.root}")
        return 0
    stack = Stack.load(args.root)
    if args.action == "status":
        for name, proc in stack.procs.items():
            print(f"{name:14} pgid {proc.pid:>7}  {'up' if _group_alive(proc.pid) else 'DOWN'}  {proc.log}")
        return 0
    stopped = stack.down()
    left = [name for name in stack.procs if stack.tree(name)]
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    if left:
        print(f"still running: {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
