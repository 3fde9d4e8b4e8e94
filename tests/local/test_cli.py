"""The ``brain-local`` command line: user sources, refusals, ready line, clean stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.brain import REPO_ROOT, start_brain_server


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    child_env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_brain.local", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env,
        cwd=REPO_ROOT,
    )


def test_users_from_flags_file_and_environment(tmp_path):
    users_file = tmp_path / "users.txt"
    users_file.write_text("# team\nfile-user:file-pw\n\n")
    env = dict(os.environ, BRAIN_LOCAL_USERS="env-one:pw1, env-two:pw2")
    server = start_brain_server(
        tmp_path / "data",
        users=[("flag-user", "flag-pw")],
        workers=1,
        extra_args=["--users-file", str(users_file)],
        env=env,
    )
    try:
        for user, password in [
            ("flag-user", "flag-pw"),
            ("file-user", "file-pw"),
            ("env-one", "pw1"),
            ("env-two", "pw2"),
        ]:
            response = httpx.get(f"{server.url}/users", auth=(user, password))
            assert response.status_code == 200
            assert response.json()["username"] == user
        assert httpx.get(f"{server.url}/users", auth=("file-user", "flag-pw")).status_code == 401
        assert "listening on http://127.0.0.1:" in server.log_text()
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--data-dir", "{tmp}"], "no users"),
        (["serve", "--data-dir", "{tmp}", "--user", "a"], "--password"),
        (["serve", "--data-dir", "{tmp}", "--user", "a", "--password", "b", "--workers", "0"], "--workers"),
        (
            ["serve", "--data-dir", "{tmp}", "--user", "a", "--password", "b", "--max-json-bytes", "2000"]
            + ["--max-json-buffered-bytes", "1000"],
            "--max-json-buffered-bytes must be at least --max-json-bytes",
        ),
    ],
)
def test_refuses_bad_configuration(tmp_path, args, message):
    result = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], env={"BRAIN_LOCAL_USERS": ""})
    assert result.returncode != 0
    assert message in result.stderr


def test_bad_users_env_is_refused(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path), env={"BRAIN_LOCAL_USERS": "no-colon-here"})
    assert result.returncode != 0
    assert "user:password" in result.stderr
    assert "no-colon-here" not in result.stdout


def test_help_lists_the_documented_flags():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--data-dir",
        "--user",
        "--password",
        "--workers",
        "--max-body-bytes",
        "--users-file",
        "--allow-private-urls",
        "--max-json-buffered-bytes",
    ):
        assert flag in result.stdout


def test_console_script(tmp_path):
    script = Path(sys.executable).with_name("brain-local")
    assert script.exists() or shutil.which("brain-local"), "brain-local is missing: pip install -e '.[local]'"
    result = subprocess.run(
        [str(script if script.exists() else "brain-local"), "serve", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--data-dir" in result.stdout


def test_secret_persists_so_tokens_survive_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    server = start_brain_server(data_dir, users=[("demo", "demo")], workers=1)
    token = httpx.get(f"{server.url}/users/login", auth=("demo", "demo")).json()["signed_username"]
    assert server.stop() == 0
    assert oct((data_dir / "secret.key").stat().st_mode & 0o777) == "0o600"
    server = start_brain_server(data_dir, users=[("demo", "demo")], workers=1)
    try:
        assert httpx.get(f"{server.url}/users", params={"signed_username": token}).status_code == 200
    finally:
        server.stop()
    other = start_brain_server(tmp_path / "other", users=[("demo", "demo")], workers=1)
    try:
        # Another data dir has another secret: the token means nothing there.
        assert httpx.get(f"{other.url}/users", params={"signed_username": token}).status_code == 401
    finally:
        other.stop()


def test_a_second_server_on_the_same_data_dir_is_refused(brain_server):
    result = run_cli("serve", "--port", "0", "--data-dir", str(brain_server.data_dir), "--user", "x", "--password", "y")
    assert result.returncode != 0
    assert "another brain-local server is using" in result.stderr
    assert brain_server.alive()
