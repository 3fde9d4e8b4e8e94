"""The ``deepgram`` connection type: registered with its form, seen by a real Airflow, and tested by
``airflow connections test`` against the local server's Deepgram dialect (a good key, then a wrong one)."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_brain.get_provider_info import get_provider_info


def deepgram_connection_json(url: str, key: str, **extra: object) -> str:
    return json.dumps({"conn_type": "deepgram", "host": url, "password": key, "extra": extra})


def test_deepgram_connection_form() -> None:
    [deepgram] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "deepgram"]
    assert deepgram["hook-class-name"] == "airflow_provider_brain.hooks.deepgram.DeepgramHook"
    assert deepgram["ui-field-behaviour"]["placeholders"]["host"] == "https://api.deepgram.com"
    assert deepgram["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    assert {"project_id", "options"} <= set(deepgram["conn-fields"])


def test_airflow_lists_and_tests_the_deepgram_connection(airflow_cli: Any, brain_server: Any) -> None:
    hooks = airflow_cli.run("providers", "hooks", "--output", "json").stdout
    assert "airflow_provider_brain.hooks.deepgram.DeepgramHook" in hooks
    good = airflow_cli.run(
        "connections",
        "test",
        "deepgram_default",
        extra_env={"AIRFLOW_CONN_DEEPGRAM_DEFAULT": deepgram_connection_json(brain_server.url, brain_server.password)},
    )
    assert "Connection success!" in good.stdout, good.stdout
    bad = airflow_cli.run(
        "connections",
        "test",
        "deepgram_default",
        extra_env={"AIRFLOW_CONN_DEEPGRAM_DEFAULT": deepgram_connection_json(brain_server.url, "wrong-key-98765")},
        check=False,
    )
    output = bad.stdout + bad.stderr
    assert "Connection failed!" in output and "INVALID_AUTH" in output and "API key" in output
    assert "wrong-key-98765" not in output
