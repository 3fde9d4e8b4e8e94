"""Which transcribe tasks start in the triggerer, decided at parse time, and the per-index templates that
give each map index its own file there (the deployment tests run them on a real triggerer)."""

from __future__ import annotations

import logging
from datetime import datetime

import airflow
import pytest
from airflow.sdk import DAG, task
from packaging.version import Version

from airflow_provider_brain.operators import trigger_start
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator

URIS = ["s3://bucket/a.wav", "s3://bucket/b.wav"]


@pytest.fixture
def dag(monkeypatch):
    """A DAG to define tasks in. What these tests check is decided at parse time by this provider, so on an
    Airflow that cannot start tasks in the triggerer they pretend it can (the test below checks the real answer)."""
    monkeypatch.setattr(trigger_start, "triggerer_can_start_tasks", lambda: True)
    with DAG("trigger_start_probe", schedule=None, start_date=datetime(2026, 1, 1)) as probe:
        yield probe


def test_an_s3_task_starts_in_the_triggerer_with_its_arguments(dag):
    op = BrainTranscribeOperator(
        task_id="t", s3_uri="s3://{{ params.bucket }}/x.wav", start_from_trigger=True, timeout=60, metadata={"a": 1}
    )
    assert op.start_from_trigger is True
    args = op.start_trigger_args
    assert args.trigger_cls == "airflow_provider_brain.triggers.transcribe.BrainTranscribeTrigger"
    assert args.trigger_kwargs["s3_uri"] == "s3://{{ params.bucket }}/x.wav", "rendered by the triggerer"
    assert (args.trigger_kwargs["metadata"], args.trigger_kwargs["timeout"]) == ({"a": 1}, 60)
    assert args.timeout.total_seconds() > 60, "Airflow's own trigger timeout leaves the task's to fire first"
    assert set(args.trigger_kwargs) <= set(op.template_fields) | set(trigger_start.TRIGGER_ARGUMENTS)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"local_path": "/data/a.wav"}, "local_path names a file on a worker"),
        ({"s3_uri": URIS[0], "s3_transfer": "stream"}, "s3_transfer='stream'"),
    ],
)
def test_sources_a_worker_must_handle_stay_in_the_worker(dag, kwargs, why):
    op = BrainTranscribeOperator(task_id="t", start_from_trigger=True, **kwargs)
    assert op.start_from_trigger is False
    assert why in trigger_start.blocker(vars(op))


def test_an_airflow_that_cannot_render_in_the_triggerer_keeps_every_task_in_the_worker(dag, monkeypatch):
    monkeypatch.setattr(trigger_start, "triggerer_can_start_tasks", lambda: False)
    single = BrainTranscribeOperator(task_id="single", s3_uri=URIS[0], start_from_trigger=True)
    mapped = BrainTranscribeOperator.partial(task_id="mapped", start_from_trigger=True).expand(s3_uri=URIS)
    assert (single.start_from_trigger, mapped.start_from_trigger) == (False, False)
    assert "Airflow 3.3" in trigger_start.blocker(vars(single))


def test_the_capability_check_matches_the_airflow_release():
    """Airflow renders a start-from-trigger task's templates in the triggerer from 3.3 on."""
    assert trigger_start.triggerer_can_start_tasks() == (Version(airflow.__version__).release >= (3, 3))


def test_a_literal_list_gives_each_index_its_item(dag):
    mapped = BrainTranscribeOperator.partial(task_id="m", start_from_trigger=True, poll_interval=1).expand(s3_uri=URIS)
    assert mapped.start_from_trigger is True
    kwargs = mapped.start_trigger_args.trigger_kwargs
    assert kwargs["s3_uri"] == '{{ task.expand_input.value["s3_uri"][ti.map_index] }}'
    assert kwargs["poll_interval"] == 1


def test_an_upstream_list_is_pulled_with_map_indexes_so_it_cannot_hang(dag):
    @task(task_id="list.files")
    def files() -> list[str]:
        return URIS

    mapped = BrainTranscribeOperator.partial(task_id="m", start_from_trigger=True).expand(audio_url=files())
    template = mapped.start_trigger_args.trigger_kwargs["audio_url"]
    assert template == ('{{ ti.xcom_pull(task_ids="list.files", key="return_value", map_indexes=-1)[ti.map_index] }}')


def test_expansions_the_triggerer_cannot_resolve_run_in_a_worker(dag, caplog):
    @task
    def names(x: int) -> str:
        return f"s3://bucket/{x}.wav"

    caplog.set_level(logging.WARNING, logger=trigger_start.__name__)
    over_two = BrainTranscribeOperator.partial(task_id="two", start_from_trigger=True).expand(
        s3_bucket=["b"], s3_key=["k"]
    )
    over_dicts = BrainTranscribeOperator.partial(task_id="dicts", start_from_trigger=True).expand_kwargs(
        [{"s3_uri": URIS[0]}]
    )
    per_file = names.expand(x=[1])
    from_mapped = BrainTranscribeOperator.partial(task_id="from_mapped", start_from_trigger=True).expand(
        s3_uri=per_file
    )
    local = BrainTranscribeOperator.partial(task_id="local", start_from_trigger=True).expand(local_path=["/a.wav"])
    assert [op.start_from_trigger for op in (over_two, over_dicts, from_mapped, local)] == [False] * 4
    said = caplog.text
    assert "two: start_from_trigger is off" in said and "expands over s3_bucket, s3_key" in said
    assert "expand_kwargs()" in said and "comes from the mapped task 'names'" in said
    assert "local: start_from_trigger is off" in said and "local_path" in said


def test_without_start_from_trigger_nothing_changes(dag):
    op = BrainTranscribeOperator(task_id="t", s3_uri=URIS[0])
    mapped = BrainTranscribeOperator.partial(task_id="m").expand(s3_uri=URIS)
    assert (op.start_from_trigger, mapped.start_from_trigger) == (False, False)
    assert mapped.start_trigger_args is None
