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

This module holds the ``Stack`` (its state, addresses, start-up order and shutdown tiers) and the CLI; the
parts are, lowest first: ``deploy.processes`` (process groups, logs, readiness polling, kill/stop),
``deploy.rest`` (the REST API client), ``deploy.services`` (PostgreSQL, Redis, moto, Brain) and
``deploy.airflow_env`` (the Airflow components' environment, command lines and readiness).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from deploy import airflow_env, processes, services
from deploy.airflow_env import ADMIN_PASSWORD, ADMIN_USER, AIRFLOW, AIRFLOW_COMPONENTS, WORKERS
from deploy.processes import Proc, StackError, free_port
from deploy.rest import RestClient
from deploy.services import BRAIN_PASSWORD, BRAIN_USER, BUCKET, MOTO_ACCOUNT, QUEUE, REPO_ROOT, SERVICES

DEFAULT_ROOT = Path(os.environ.get("BRAIN_STACK_DIR") or Path(tempfile.gettempdir()) / "brain-stack")


class Stack:
    """The deployment rooted at ``root``: its ports, environment, processes and logs (see the module docstring)."""

    def __init__(
        self,
        root: Path = DEFAULT_ROOT,
        *,
        dag_sources: Sequence[Path] = (REPO_ROOT / "example_dags",),
        extra_env: dict[str, str] | None = None,
        worker_concurrency: int = 4,
        brain_workers: int = 2,
        brain_args: Sequence[str] = (),
    ) -> None:
        self.root = Path(root).resolve()
        self.logs = self.root / "logs"
        self.dags = self.root / "dags"
        self.dag_sources = [Path(p) for p in dag_sources]
        self.extra_env = dict(extra_env or {})
        self.worker_concurrency = worker_concurrency
        #: The Brain server's recognition processes (``brain-local serve --workers``).
        self.brain_workers = brain_workers
        #: Extra ``brain-local serve`` arguments, e.g. ``["--min-latency", "30"]`` for a busy service.
        self.brain_args = list(brain_args)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, Proc] = {}
        self.pg_dir: str = ""
        self.fernet_key: str = ""
        self.run_as: str | None = "postgres" if os.geteuid() == 0 else None
        self._client: RestClient | None = None

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
            "brain_workers": self.brain_workers,
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
        stack.brain_workers = int(state.get("brain_workers", stack.brain_workers))
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
        return airflow_env.environment(
            component,
            root=self.root,
            dags=self.dags,
            ports=self.ports,
            urls=self.urls,
            pg_user=self.pg_user,
            fernet_key=self.fernet_key,
            worker_concurrency=self.worker_concurrency,
            extra_env=self.extra_env,
        )

    # ---------------------------------------------------------------- processes
    def _command(self, name: str) -> tuple[list[str], Path]:
        """The command line and working directory of component ``name``."""
        if name in SERVICES:
            return services.service_command(
                name,
                root=self.root,
                ports=self.ports,
                pg_dir=self.pg_dir,
                run_as=self.run_as,
                brain_workers=self.brain_workers,
                brain_args=self.brain_args,
            )
        return airflow_env.airflow_command(
            name, root=self.root, ports=self.ports, worker_concurrency=self.worker_concurrency
        )

    def _ready(self, name: str) -> bool:
        if name in SERVICES:
            return services.service_ready(name, ports=self.ports, urls=self.urls, pg_user=self.pg_user)
        proc = self.procs[name]
        return airflow_env.airflow_ready(name, api=self.api, log=Path(proc.log), started_at=proc.started_at)

    def _spawn(self, name: str) -> Proc:
        command, cwd = self._command(name)
        env = airflow_env.process_env(self.env(name if name in AIRFLOW_COMPONENTS else None))
        proc = processes.spawn(name, command, cwd, env, self.logs / f"{name}.log")
        self.procs[name] = proc
        self.save()
        return proc

    def _wait_ready(self, names: Iterable[str], timeout: float) -> None:
        processes.wait_ready(self.procs, names, self._ready, timeout)

    def start(self, name: str, timeout: float = 120) -> Proc:
        """Start (or restart) one component and wait until it is ready."""
        proc = self._spawn(name)
        self._wait_ready([name], timeout)
        return proc

    def tree(self, name: str) -> list[Any]:
        """The component's live processes: its process group and every descendant (as ``psutil.Process``)."""
        return processes.tree(self.procs[name].pid)

    def running_tasks(self) -> int:
        """Worker slots in use: Celery pool processes of the workers that have a task process (``airflow
        worker -- <ti id>``) under them, running or exited but not yet reaped (its supervisor, the pool
        process, is still finishing the task: the slot is not free yet)."""
        return processes.busy_children(self.procs[name] for name in WORKERS)

    def component_of(self, pid: int) -> str | None:
        """The component that (directly or not) started process ``pid``."""
        return processes.component_of(self.procs, pid)

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Send ``sig`` to a component (default SIGKILL: a crash, which takes every process it started with it)
        and wait until it is gone; a component that ignores a gentler signal for ``timeout`` gets SIGKILL."""
        processes.kill(self.procs[name], sig, timeout)

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
            services.init_postgres(Path(self.pg_dir), self.pg_user, self.run_as, self._run_logged)
            for name in ("postgres", "redis", "moto", "brain"):
                self._spawn(name)
            self._wait_ready(["postgres", "redis", "moto", "brain"], 90)
            services.create_databases(self.ports["postgres"], self.pg_user)
            services.setup_s3(self.urls["moto"])
            migrate_env = airflow_env.process_env(self.env("api-server"))
            self._run_logged("airflow-db-migrate", [AIRFLOW, "db", "migrate"], env=migrate_env)
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
        processes.run_logged(name, command, log_path=self.logs / f"{name}.log", cwd=self.root, env=env, timeout=timeout)

    def boto3(self, service: str) -> Any:
        return services.boto3_client(service, self.urls["moto"])

    # ---------------------------------------------------------------- REST API
    @property
    def _rest_client(self) -> RestClient:
        if self._client is None or self._client.api != self.api:
            self._client = RestClient(self.api, ADMIN_USER, ADMIN_PASSWORD)
        return self._client

    def token(self) -> str:
        return self._rest_client.token()

    def rest(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """Call the REST API (``/api/v2`` + ``path``) as the admin user; return the parsed JSON."""
        return self._rest_client.rest(method, path, body, timeout)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """Poll ``check`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
        return processes.wait_for(what, check, timeout, interval)


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
            print(f"{name:14} pgid {proc.pid:>7}  {'up' if processes.group_alive(proc.pid) else 'DOWN'}  {proc.log}")
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
