"""The brain_asset_sensor example: audio submitted to Brain outside Airflow, its asset ids passed to a run as
conf, the mapped sensor deferring until Brain is done, and the transcripts loaded into the warehouse."""

from __future__ import annotations

import inspect
import json
import re
import sqlite3

import jiwer
import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from tests.example_dags.test_example_dags import EXAMPLES, WER_BOUND, ExampleRun
from tests.fixtures.brain import slow_default_brain
from tests.fixtures.connections import brain_connection_json

DAG_FILE = EXAMPLES / "brain_asset_sensor.py"
#: Brain keeps each asset processing this long after its upload: longer than `airflow dags test` takes to
#: reach the first sensor, which then finds its asset unfinished and defers (on a loaded 2-core machine that
#: took 27 s once, past the 30 s this was, and no sensor deferred).
LATENCY = 50
FILES = 3


@pytest.fixture(scope="module")
def dag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.2
        from airflow.models.dagbag import DagBag
    only_ours = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    dagbag = DagBag(dag_folder=str(DAG_FILE), **only_ours)
    assert dagbag.import_errors == {}
    return dagbag.dags["brain_asset_sensor"]


def test_asset_sensor_shape(dag):
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "asset_ids": ["load_warehouse", "wait"],
        "wait": ["load_warehouse"],
        "load_warehouse": [],
    }
    wait = dag.get_task("wait")
    assert type(wait).__name__ == "MappedOperator" and wait.partial_kwargs.get("deferrable") is True
    assert dag.get_task("load_warehouse").conn_id == "brain_warehouse"


@pytest.mark.parametrize(
    ("asset_ids", "said"),
    [
        (None, "Param 'asset_ids' must be a non-empty list of Brain asset ids, got None"),
        ([], "Param 'asset_ids' must be a non-empty list of Brain asset ids, got []"),
        (["4f1c9a7e2b3d5c60", 7], "Param 'asset_ids', item 1: Invalid Brain asset id 7"),
        (["call-1.wav"], "Param 'asset_ids', item 0: Invalid Brain asset id 'call-1.wav'"),
    ],
)
def test_bad_asset_ids_name_the_param(dag, asset_ids, said):
    """The check the run's first task makes, also where the ids come from an upstream task, not the param."""
    check = dag.get_task("asset_ids").python_callable
    with pytest.raises(ValueError, match="^" + re.escape(said)):
        check(params={"asset_ids": asset_ids})


def test_asset_ids_in_order_once(dag):
    check = dag.get_task("asset_ids").python_callable
    ids = ["9e8d7c6b5a493827", "4f1c9a7e2b3d5c60", "9e8d7c6b5a493827"]
    assert check(params={"asset_ids": ids}) == ["9e8d7c6b5a493827", "4f1c9a7e2b3d5c60"]


@pytest.fixture
def slow_brain(tmp_path, monkeypatch):
    with slow_default_brain(tmp_path / "brain", monkeypatch, LATENCY, workers=2) as server:
        yield server


@pytest.fixture
def run(airflow_cli, slow_brain, tmp_path, monkeypatch):
    brain = brain_connection_json(slow_brain.url, *slow_brain.auth)
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", brain)  # For the BrainHook that submits the audio here.
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain,
        "AIRFLOW_CONN_BRAIN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}),
    }
    return ExampleRun(airflow_cli, env), tmp_path / "warehouse.db"


def test_asset_sensor_end_to_end(run, speech):
    """Three uploads outside Airflow; the run waits for all three, deferring, and loads exactly their transcripts."""
    example, warehouse = run
    hook = BrainHook()
    submitted = [
        hook.submit_file(speech.file(i), async_=True, metadata={"filename": f"call-{i}.wav"}) for i in range(FILES)
    ]
    assert all(asset.is_processing for asset in submitted)
    ids = [asset.asset_id for asset in submitted]

    output = example.test("brain_asset_sensor", {"asset_ids": ids})

    # `airflow dags test` runs one trigger at a time, in line: the later sensors may find their assets done.
    assert output.count("BrainAssetTrigger waiting for asset") >= 1, output[-6000:]
    assets = {asset_id: hook.get_asset(asset_id) for asset_id in ids}
    assert all(asset.is_done for asset in assets.values())
    with sqlite3.connect(warehouse) as db:
        rows = db.execute("SELECT asset_id, source, transcript FROM transcripts").fetchall()
        words = db.execute("SELECT asset_id, COUNT(*) FROM transcript_words GROUP BY asset_id").fetchall()
    assert {row[0]: row[2] for row in rows} == {asset_id: asset.transcript for asset_id, asset in assets.items()}
    assert sorted(row[1] for row in rows) == [f"call-{i}.wav" for i in range(FILES)]
    for i, asset_id in enumerate(ids):
        assert jiwer.wer(speech.text([i]).lower(), assets[asset_id].transcript) <= WER_BOUND
    assert dict(words) == {asset_id: len(asset.transcript.split()) for asset_id, asset in assets.items()}


@pytest.mark.parametrize(
    ("conf", "said"),
    [
        (None, "Invalid input for param asset_ids: No value passed"),
        ({"asset_ids": ["4f1c9a7e2b3d5c60", 7]}, "Invalid input for param asset_ids: 7 is not of type 'string'"),
        ({"asset_ids": ["call-1.wav"]}, "Invalid input for param asset_ids: 'call-1.wav' does not match"),
    ],
)
def test_bad_conf_fails_before_the_run_naming_the_param(airflow_cli, conf, said):
    """What a user sees: Airflow checks the conf against the param's schema before any task starts."""
    args = ["dags", "test", "brain_asset_sensor", *(["-c", json.dumps(conf)] if conf else [])]
    result = airflow_cli.run(*args, extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES)}, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and said in output, output[-6000:]
    assert "Task started" not in output
