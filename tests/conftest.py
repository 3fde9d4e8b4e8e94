"""Shared pytest set-up: real servers (local Brain, moto S3, PostgreSQL) come from the fixture plugins below.

Under pytest-xdist (``make test`` runs the fast suite with ``-n auto``) each worker is a session of its own:
it starts its own servers on free ports, in its own temporary directories (``tmp_path_factory`` gives each
worker one), and its own Airflow home. A test marked ``alone`` measures wall-clock time (how soon something
happens, how long a request takes), which another worker's load on the same cores would skew: it runs while
no other worker runs a test (the other workers finish the test they are in, then wait for it). ``make test``
keeps the workers from waiting: it deselects them from the parallel run (``-m "not alone"``) and runs them after
it, in a session of their own without xdist.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Generator
from typing import IO

import pytest

from tests.fixtures.shared import run_dir

pytest_plugins = [
    "tests.fixtures.speech",
    "tests.fixtures.brain",
    "tests.fixtures.s3",
    "tests.fixtures.postgres",
    "tests.fixtures.faults",
    "tests.fixtures.connections",
    "tests.fixtures.airflow",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alone: asserts on wall-clock time; under pytest-xdist no other worker runs a test meanwhile"
    )


_locks: dict[str, IO[bytes]] = {}


def _lock_file(config: pytest.Config, name: str) -> IO[bytes]:
    """A file every worker of this run opens: in the parent of the worker's base temporary directory."""
    if name not in _locks:
        shared = run_dir(config._tmp_path_factory)  # type: ignore[attr-defined]
        _locks[name] = (shared / name).open("ab")
    return _locks[name]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Under xdist, every test holds a shared lock from setup to teardown and an ``alone`` test an exclusive one.

    A gate lock keeps an ``alone`` test from waiting forever behind the other workers' shared locks: it holds the
    gate while it waits, so no worker starts another test meanwhile.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return (yield)
    gate = _lock_file(item.config, "alone.gate")
    tests = _lock_file(item.config, "alone.lock")
    fcntl.flock(gate, fcntl.LOCK_EX)
    try:
        fcntl.flock(tests, fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH)
    finally:
        fcntl.flock(gate, fcntl.LOCK_UN)
    try:
        return (yield)
    finally:
        fcntl.flock(tests, fcntl.LOCK_UN)
