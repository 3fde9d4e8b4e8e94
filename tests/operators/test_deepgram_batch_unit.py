"""DeepgramTranscribeBatchOperator without a DAG run: what Airflow does to an operator outside ``execute``, and
which file each marker and stored result belongs to (a fake ``listen_url``, results on the local disk)."""

from __future__ import annotations

import copy
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import DAG

from airflow_provider_brain.deepgram_models import DeepgramResult
from airflow_provider_brain.deepgram_store import read_result
from airflow_provider_brain.hooks.deepgram import DeepgramHook
from airflow_provider_brain.operators.deepgram_batch import DeepgramTranscribeBatchOperator
from airflow_provider_brain.triggers.deepgram_batch import DeepgramBatchTrigger

OUT = "s3://lake/deepgram/"


def test_the_operator_can_be_deep_copied_and_its_dag_subset() -> None:
    """Clearing a task in the UI builds ``dag.partial_subset``, which deep-copies every operator it keeps."""
    with DAG("batch_copy", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        operator = DeepgramTranscribeBatchOperator(task_id="batch", sources=["s3://calls/a.wav"], output_uri=OUT)
    copied = copy.deepcopy(operator)
    assert copied.sources == ["s3://calls/a.wav"] and copied.output_uri == OUT
    subset = dag.partial_subset(task_ids=["batch"])
    assert subset.get_task("batch").sources == ["s3://calls/a.wav"]


def answer(request_id: str) -> DeepgramResult:
    """A listen answer naming the request it answers."""
    return DeepgramResult.from_json({"metadata": {"request_id": request_id, "duration": 1.0}, "results": {}})


def test_urls_differing_only_in_their_query_are_two_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each URL gets its own marker and stored result (``?f=a`` and ``?f=b`` are two files), and neither query
    string reaches the references, the stored locations or the log."""
    sent: dict[str, str] = {}

    def listen_url(hook: DeepgramHook, url: str, *, idempotency_key: str, **_: Any) -> DeepgramResult:
        sent[url] = idempotency_key
        return answer(f"request-{url[-1]}")

    monkeypatch.setattr(DeepgramHook, "listen_url", listen_url)
    sources = ["https://h/get?f=a&Signature=secret-a", "https://h/get?f=b&Signature=secret-b"]
    operator = DeepgramTranscribeBatchOperator(
        task_id="batch", sources=sources, output_uri=f"file://{tmp_path}/", aws_conn_id=None
    )
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="batch", map_index=-1)
    references = operator.execute({"ti": ti})  # type: ignore[typeddict-item]
    assert sorted(sent) == sources and len(set(sent.values())) == 2
    assert [r["request_id"] for r in references] == ["request-a", "request-b"]
    assert len({r["deepgram_result"] for r in references}) == 2
    assert len({r["source"] for r in references}) == 2
    stored = [read_result(r["deepgram_result"], None) for r in references]
    assert [s["metadata"]["request_id"] for s in stored if s] == ["request-a", "request-b"]
    logged = "".join(capfd.readouterr())  # Airflow 3's task logger writes to the process's output
    assert "Deepgram request request-b: https://h/get (" in logged  # the label, told apart by its marker
    shown = logged + repr(references)
    assert "secret" not in shown and "f=a" not in shown and "f=b" not in shown
    # A second try finds both results stored and sends nothing.
    sent.clear()
    assert operator.execute({"ti": ti}) == references  # type: ignore[typeddict-item]
    assert sent == {}


def test_the_deferral_outlasts_the_triggers_deadline(tmp_path: Path) -> None:
    """The trigger's deadline passes first (its event names the files without an answer), not Airflow's deferral
    timeout, which cancels the trigger without an event."""
    operator = DeepgramTranscribeBatchOperator(
        task_id="batch",
        sources=["s3://calls/a.wav"],
        output_uri=f"file://{tmp_path}/",
        aws_conn_id=None,
        deferrable=True,
        timeout=600,
    )
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="batch", map_index=-1)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})  # type: ignore[typeddict-item]
    trigger = deferred.value.trigger
    assert isinstance(trigger, DeepgramBatchTrigger)
    assert deferred.value.timeout is not None
    assert deferred.value.timeout >= timedelta(seconds=trigger.deadline - time.time() + 59)
