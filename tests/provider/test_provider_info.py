"""Provider metadata: valid against Airflow's own schemas, and seen by a real Airflow."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import airflow
import jsonschema

from airflow_provider_brain.get_provider_info import get_provider_info
from tests.fixtures.connections import brain_connection_json

AIRFLOW_DIR = Path(airflow.__file__).parent


def test_provider_info_matches_airflow_schema():
    schema = json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_connection_type_matches_provider_yaml_schema():
    """The connection form metadata (ui-field-behaviour, conn-fields) follows provider.yaml's stricter schema."""
    yaml_schema = json.loads((AIRFLOW_DIR / "provider.yaml.schema.json").read_text())
    conn_schema = {**yaml_schema["properties"]["connection-types"], "definitions": yaml_schema.get("definitions", {})}
    jsonschema.validate(get_provider_info()["connection-types"], conn_schema)
    behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["placeholders"]["host"] == "https://brain.deepgram.com"
    assert behaviour["relabeling"] == {
        "host": "Base URL",
        "login": "API ID / username",
        "password": "API token / password",
    }


def test_every_listed_module_and_class_imports():
    info = get_provider_info()
    modules = [
        m for kind in ("hooks", "operators", "sensors", "triggers") for e in info[kind] for m in e["python-modules"]
    ]
    modules += [t["python-module"] for t in info["transfers"]]
    for name in modules:
        importlib.import_module(name)
    for dotted in [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]:
        module, _, cls = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), cls)


def test_airflow_lists_the_provider_and_its_connection_type(airflow_cli):
    providers = airflow_cli.run("providers", "list", "--output", "json").stdout
    assert any(p["package_name"] == "airflow-provider-brain" for p in json.loads(providers[providers.index("[") :]))
    hooks = airflow_cli.run("providers", "hooks", "--output", "json").stdout
    assert "brain" in hooks and "airflow_provider_brain.hooks.brain.BrainHook" in hooks


def test_airflow_connections_test(airflow_cli, brain_server):
    good = airflow_cli.run(
        "connections",
        "test",
        "brain_default",
        extra_env={"AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth)},
    )
    assert "Connection success!" in good.stdout, good.stdout
    bad = airflow_cli.run(
        "connections",
        "test",
        "brain_default",
        extra_env={"AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, "demo", "wrong-pass")},
        check=False,
    )
    output = bad.stdout + bad.stderr
    assert "Connection failed!" in output and "Check the Brain connection's login and password" in output
    assert "wrong-pass" not in output


def test_airflow_knows_the_brain_config_section(airflow_cli):
    """The provider's ``[brain]`` options reach Airflow's configuration through the provider metadata."""
    value = airflow_cli.run("config", "get-value", "brain", "default_poll_interval").stdout.strip().splitlines()[-1]
    assert float(value) == 10.0


def test_default_poll_interval_comes_from_the_config(monkeypatch):
    from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
    from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator

    monkeypatch.setenv("AIRFLOW__BRAIN__DEFAULT_POLL_INTERVAL", "3")
    single = BrainTranscribeOperator(task_id="t", s3_uri="s3://b/k.wav")
    batch = BrainTranscribeBatchOperator(task_id="b", s3_uris=["s3://b/k.wav"])
    given = BrainTranscribeOperator(task_id="g", s3_uri="s3://b/k.wav", poll_interval=1)
    assert (single.poll_interval, batch.poll_interval, given.poll_interval) == (3.0, 3.0, 1)
