"""DeepgramTranscribeOperator without a DAG run: its arguments checked when the DAG is parsed, and what it tells
OpenLineage (the audio in, the stored result out)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from airflow_provider_brain.triggers.deepgram import DeepgramTranscribeTrigger

OUT = "s3://lake/deepgram/"


def test_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="exactly one audio source"):
        DeepgramTranscribeOperator(task_id="t", output_uri=OUT)
    with pytest.raises(ValueError, match=r"\(deferrable=True\) sends a URL from the triggerer"):
        DeepgramTranscribeOperator(task_id="t", output_uri=OUT, local_path="/a.wav", deferrable=True)
    with pytest.raises(ValueError, match=r"\(deferrable=True\) sends a URL from the triggerer"):
        DeepgramTranscribeOperator(
            task_id="t", output_uri=OUT, s3_uri="s3://a/b.wav", s3_transfer="stream", deferrable=True
        )
    with pytest.raises(ValueError, match="s3_transfer must be one of"):
        DeepgramTranscribeOperator(task_id="t", output_uri=OUT, s3_uri="s3://a/b.wav", s3_transfer="copy")


def test_openlineage_in_and_out() -> None:
    operator = DeepgramTranscribeOperator(task_id="t", output_uri=OUT, s3_uri="s3://calls/2026/a.wav")
    [source] = operator.get_openlineage_facets_on_start().inputs
    assert (source.namespace, source.name) == ("s3://calls", "2026/a.wav")
    reference = {"deepgram_result": "s3://lake/deepgram/d/r/t.abc.json", "request_id": "r"}
    assert operator.execute_complete({}, {"status": "done", "reference": reference}) == reference
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://lake", "deepgram/d/r/t.abc.json")]
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("s3://calls", "2026/a.wav")]
    url = DeepgramTranscribeOperator(task_id="u", output_uri=OUT, audio_url="https://h/x/b.mp3?X-Amz-Signature=s")
    [dataset] = url.get_openlineage_facets_on_start().inputs
    assert (dataset.namespace, dataset.name) == ("https://h", "/x/b.mp3")


def test_a_trigger_error_fails_the_task_with_its_message() -> None:
    operator = DeepgramTranscribeOperator(task_id="t", output_uri=OUT, s3_uri="s3://calls/a.wav")
    with pytest.raises(Exception, match="DeepgramAnswerLost: Deepgram accepted"):
        operator.execute_complete({}, {"status": "error", "message": "DeepgramAnswerLost: Deepgram accepted x"})
    with pytest.raises(Exception, match="cannot read"):
        operator.execute_complete({}, {"what": 1})


def test_the_deferral_outlasts_the_triggers_deadline(tmp_path: Path) -> None:
    """Airflow's deferral timeout cancels a trigger without an event; the trigger's own deadline passes first, a
    minute earlier, so the task fails with the trigger's message naming the file."""
    operator = DeepgramTranscribeOperator(
        task_id="t",
        output_uri=f"file://{tmp_path}/",
        aws_conn_id=None,
        s3_uri="s3://calls/a.wav",
        deferrable=True,
        timeout=600,
    )
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})  # type: ignore[typeddict-item]
    trigger = deferred.value.trigger
    assert isinstance(trigger, DeepgramTranscribeTrigger)
    assert deferred.value.timeout is not None
    assert deferred.value.timeout >= timedelta(seconds=trigger.deadline - time.time() + 59)
