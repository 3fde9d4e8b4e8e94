"""Process supervision for the deployment: start a component in its own process group with its own log, wait
until it is ready, find every process it started, and stop or kill all of them.

Nothing here knows what a component is: the callers give the command line, the environment and the readiness
check (``deploy.services`` for PostgreSQL, Redis, moto and Brain; ``deploy.airflow_env`` for Airflow).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StackError(RuntimeError):
    """A component did not start; the message names it and its log."""


@dataclass
class Proc:
    """One started component: its process group and log."""

    name: str
    pid: int
    log: str
    started_at: float = field(default_factory=time.time)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own local servers
        return True
    except urllib.error.HTTPError:
        return True  # Any HTTP answer (401 from Brain, 404 from moto) means it is serving.
    except OSError:
        return False


def tcp_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def alive(pid: int) -> bool:
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


def group_alive(pgid: int) -> bool:
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


def spawn(name: str, command: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> Proc:
    """Start ``command`` in its own process group, appending its output to ``log_path``."""
    cwd.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n==== {time.strftime('%H:%M:%S')} starting {name}: {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group: down() and kill() reach its children too
        )
    return Proc(name=name, pid=process.pid, log=str(log_path))


def run_logged(
    name: str, command: list[str], *, log_path: Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> None:
    """Run a one-off command (``initdb``, ``airflow db migrate``) to completion, its output in ``log_path``."""
    with log_path.open("ab") as log:
        result = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=timeout, check=False
        )
    if result.returncode != 0:
        raise StackError(f"{name} failed with exit code {result.returncode}; log: {log_path}")


def wait_ready(procs: Mapping[str, Proc], names: Iterable[str], ready: Callable[[str], bool], timeout: float) -> None:
    """Wait until ``ready(name)`` for each of ``names``; raise ``StackError`` if one exits or ``timeout`` passes."""
    pending = list(names)
    deadline = time.monotonic() + timeout
    while pending:
        for name in list(pending):
            proc = procs[name]
            if not alive(proc.pid):
                raise StackError(f"{name} exited during start-up; log: {proc.log}")
            if ready(name):
                pending.remove(name)
        if pending and time.monotonic() > deadline:
            details = "; ".join(f"{n} (log: {procs[n].log})" for n in pending)
            raise StackError(f"not ready after {timeout:g} s: {details}")
        if pending:
            time.sleep(0.5)


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def tree(pgid: int) -> list[Any]:
    """The live processes of process group ``pgid`` and every descendant of them (as ``psutil.Process``).

    The group alone does not reach everything: the task runner of a Celery worker starts its own
    session, so a ``kill -9`` of the worker's group would leave the task running on a "dead" machine.
    """
    import psutil

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


def kill(proc: Proc, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
    """Send ``sig`` to a component (SIGKILL: a crash, which takes every process it started with it) and wait
    until it is gone; a component that ignores a gentler signal for ``timeout`` gets SIGKILL."""
    import psutil

    members = tree(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    if sig == signal.SIGKILL:
        for member in members:
            with contextlib.suppress(psutil.Error):
                member.kill()
    _, still_alive = psutil.wait_procs(members, timeout=timeout)
    if still_alive:
        if sig == signal.SIGKILL:
            raise StackError(f"{proc.name}: {[p.pid for p in still_alive]} still alive {timeout:g} s after SIGKILL")
        for member in still_alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(still_alive, timeout=10)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(proc.pid, os.WNOHANG)


def busy_children(procs: Iterable[Proc]) -> int:
    """How many children of these components have a child of their own, running or exited but not yet reaped
    (for a Celery worker: pool processes with a task process under them)."""
    import psutil

    count = 0
    for proc in procs:
        try:
            children = psutil.Process(proc.pid).children()
        except psutil.NoSuchProcess:
            raise StackError(f"{proc.name} is not running; log: {proc.log}") from None
        for child in children:
            with contextlib.suppress(psutil.Error):  # gone since listed: not busy
                if child.children():
                    count += 1
    return count


def component_of(procs: Mapping[str, Proc], pid: int) -> str | None:
    """The component that (directly or not) started process ``pid``."""
    import psutil

    leaders = {proc.pid: name for name, proc in procs.items()}
    with contextlib.suppress(psutil.Error):
        process: Any = psutil.Process(pid)
        while process is not None:
            if process.pid in leaders:
                return leaders[process.pid]
            process = process.parent()
    return None
