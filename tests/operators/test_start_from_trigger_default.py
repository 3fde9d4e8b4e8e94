"""The default ``start_from_trigger`` (#24): which transcribe tasks that do not mention it start in the triggerer,
and which keep the worker path, with the reason their log gives. Decided at parse time by this provider; the
deployment test (tests/deployment/test_start_from_trigger_default.py) runs such a DAG on a real triggerer."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
import structlog.testing
from airflow.sdk import DAG, Asset, task

from airflow_provider_brain.operators import start_choice, trigger_start
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator

URI = "s3://bucket/a.wav"
URIS = [URI, "s3://bucket/b.wav"]
BYPASSED = "a task started in the triggerer would bypass"


def _noop(*args, **kwargs):
    """A hook a DAG gives its task (pre_execute, on_execute_callback...)."""


class OwnSubmit(BrainTranscribeOperator):
    """A subclass with its own job step: only the worker path runs it."""

    def submit_job(self, context):
        return super().submit_job(context)


class OwnPreExecute(BrainTranscribeOperator):
    def pre_execute(self, context):
        return None


class PlainSubclass(BrainTranscribeOperator):
    """A subclass that only changes how it looks: nothing of its job runs only in a worker."""

    ui_color = "#ffffff"


@pytest.fixture
def can_start(monkeypatch):
    """An Airflow that starts tasks in the triggerer (3.3): the decision is this provider's, checked on 3.1 too."""
    monkeypatch.setattr(trigger_start, "triggerer_can_start_tasks", lambda: True)


@pytest.fixture
def dag(can_start):
    with DAG("default_probe", schedule=None, start_date=datetime(2026, 1, 1)) as probe:
        yield probe


def worker_log(op) -> str:
    """What a task's log says when it runs in a worker (``execute`` starts with this), whole: read from
    structlog's capture, since the console renderer may shorten a long line."""
    with structlog.testing.capture_logs() as logs:
        start_choice.say_where_it_runs(op)
    return "\n".join(entry["event"] % tuple(entry.get("positional_args", ())) for entry in logs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"s3_uri": URI},
        {"s3_bucket": "bucket", "s3_key": "a.wav"},
        {"audio_url": "https://media.example.com/a.wav"},
        {"s3_uri": "{{ dag_run.conf['uri'] }}", "metadata": {"run": "{{ run_id }}"}, "retries": 2},
        {"s3_uri": URI, "on_success_callback": _noop, "on_failure_callback": _noop},
        {"s3_uri": URI, "wait_for_completion": False, "times": True},
    ],
)
def test_a_deferrable_task_starts_in_the_triggerer_by_default(dag, kwargs):
    op = BrainTranscribeOperator(task_id="t", deferrable=True, timeout=60, **kwargs)
    assert op.start_from_trigger is True
    args = op.start_trigger_args
    assert args.trigger_cls == trigger_start.TRIGGER_CLASS
    assert args.trigger_kwargs["timeout"] == 60
    # Run in a worker all the same (`airflow dags test`), the log says Airflow chose so.
    said = worker_log(op)
    assert f"{start_choice.DEFAULT_OFF}: Airflow started it in a worker" in said


def test_a_subclass_that_only_looks_different_starts_there_too(dag):
    assert PlainSubclass(task_id="t", s3_uri=URI, deferrable=True).start_from_trigger is True


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"local_path": "/data/a.wav"}, "local_path names a file on a worker"),
        ({"s3_uri": URI, "s3_transfer": "stream"}, "s3_transfer='stream'"),
        ({"s3_uri": URI, "reuse_existing": "source_version"}, "reuse_existing looks for an asset"),
        ({"s3_uri": URI, "pre_execute": _noop}, "it sets pre_execute, which only a worker runs"),
        ({"s3_uri": URI, "post_execute": _noop}, "it sets post_execute, which only a worker runs"),
        ({"s3_uri": URI, "on_execute_callback": _noop}, "it sets on_execute_callback, which only a worker runs"),
        ({"s3_uri": URI, "outlets": [Asset("s3://out/x")]}, "it has outlets, whose asset events only a worker records"),
        (
            {"s3_uri": URI, "pool": "brain"},
            f"it runs in pool 'brain', whose limit {BYPASSED}",
        ),
        (
            {"s3_uri": URI, "max_active_tis_per_dag": 4},
            f"it sets max_active_tis_per_dag, which {BYPASSED}",
        ),
        (
            {"s3_uri": URI, "execution_timeout": timedelta(minutes=5)},
            "it sets execution_timeout, which Airflow counts from a worker's start",
        ),
    ],
)
def test_what_only_a_worker_does_keeps_the_worker_path_and_the_log_says_why(dag, kwargs, why):
    op = BrainTranscribeOperator(task_id="t", deferrable=True, **kwargs)
    assert op.start_from_trigger is False
    assert f"{start_choice.DEFAULT_OFF}: {why}" in worker_log(op)


@pytest.mark.parametrize(("cls", "own"), [(OwnSubmit, "submit_job"), (OwnPreExecute, "pre_execute")])
def test_a_subclass_with_its_own_job_keeps_the_worker_path(dag, cls, own):
    op = cls(task_id="t", s3_uri=URI, deferrable=True)
    assert op.start_from_trigger is False
    assert f"{cls.__name__} has its own {own}, which only a worker runs" in worker_log(op)


def test_a_dag_with_its_own_macros_keeps_the_worker_path(can_start):
    with DAG("macros", schedule=None, start_date=datetime(2026, 1, 1), user_defined_macros={"bucket": "b"}):
        op = BrainTranscribeOperator(task_id="t", s3_uri="s3://{{ bucket }}/a.wav", deferrable=True)
    assert op.start_from_trigger is False
    assert "user_defined_macros or user_defined_filters" in worker_log(op)


def test_false_and_not_deferrable_keep_the_worker_path_silently(dag):
    asked_not = BrainTranscribeOperator(task_id="no", s3_uri=URI, deferrable=True, start_from_trigger=False)
    in_worker = BrainTranscribeOperator(task_id="worker", s3_uri=URI, deferrable=False)
    assert (asked_not.start_from_trigger, in_worker.start_from_trigger) == (False, False)
    assert worker_log(asked_not) == worker_log(in_worker) == ""


def test_true_keeps_what_it_did_even_with_a_worker_hook(dag):
    """An explicit True is today's behaviour: only the source decides (the DAG author chose the triggerer)."""
    op = BrainTranscribeOperator(task_id="t", s3_uri=URI, start_from_trigger=True, pre_execute=_noop)
    assert op.start_from_trigger is True
    assert "start_from_trigger=True, but this task runs in a worker: Airflow started it" in worker_log(op)


def test_before_airflow_3_3_nothing_changes_and_nothing_is_said(monkeypatch):
    monkeypatch.setattr(trigger_start, "triggerer_can_start_tasks", lambda: False)
    with DAG("old_airflow", schedule=None, start_date=datetime(2026, 1, 1)):
        op = BrainTranscribeOperator(task_id="t", s3_uri=URI, deferrable=True)
        mapped = BrainTranscribeOperator.partial(task_id="m", deferrable=True).expand(s3_uri=URIS)
    assert (op.start_from_trigger, mapped.start_from_trigger) == (False, False)
    assert worker_log(op) == ""


def test_a_mapped_deferrable_task_starts_in_the_triggerer_by_default(dag):
    @task(task_id="list.files")
    def files() -> list[str]:
        return URIS

    literal = BrainTranscribeOperator.partial(task_id="literal", deferrable=True).expand(s3_uri=URIS)
    upstream = BrainTranscribeOperator.partial(task_id="upstream", deferrable=True).expand(audio_url=files())
    assert (literal.start_from_trigger, upstream.start_from_trigger) == (True, True)
    assert (
        literal.start_trigger_args.trigger_kwargs["s3_uri"] == '{{ task.expand_input.value["s3_uri"][ti.map_index] }}'
    )
    assert "map_indexes=-1" in upstream.start_trigger_args.trigger_kwargs["audio_url"]


def test_mapped_tasks_the_default_leaves_in_a_worker_say_why_in_the_dag_processor(dag, caplog):
    caplog.set_level(logging.INFO, logger=start_choice.__name__)
    hooked = BrainTranscribeOperator.partial(task_id="hooked", deferrable=True, on_execute_callback=_noop).expand(
        s3_uri=URIS
    )
    pooled = BrainTranscribeOperator.partial(task_id="pooled", deferrable=True, pool="brain").expand(s3_uri=URIS)
    own = OwnSubmit.partial(task_id="own", deferrable=True).expand(s3_uri=URIS)
    dicts = BrainTranscribeOperator.partial(task_id="dicts", deferrable=True).expand_kwargs([{"s3_uri": URI}])
    local = BrainTranscribeOperator.partial(task_id="local", deferrable=True).expand(local_path=["/a.wav"])
    asked_not = BrainTranscribeOperator.partial(task_id="asked_not", deferrable=True, start_from_trigger=False)
    asked_not = asked_not.expand(s3_uri=URIS)
    in_worker = BrainTranscribeOperator.partial(task_id="in_worker", deferrable=False).expand(s3_uri=URIS)
    tasks = (hooked, pooled, own, dicts, local, asked_not, in_worker)
    assert [t.start_from_trigger for t in tasks] == [False] * len(tasks)
    said = {r.getMessage() for r in caplog.records if r.name == start_choice.__name__}
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == start_choice.__name__)
    head = f": {start_choice.DEFAULT_OFF}: "
    assert said == {
        f"hooked{head}it sets on_execute_callback, which only a worker runs",
        f"pooled{head}it runs in pool 'brain', whose limit a task started in the triggerer would bypass",
        f"own{head}OwnSubmit has its own submit_job, which only a worker runs",
        f"dicts{head}expand_kwargs() is resolved per map index only in a worker",
        f"local{head}local_path names a file on a worker, which only a worker can upload",
    }, "the worker path asked for (False, deferrable=False) is not a fallback: nothing said"
