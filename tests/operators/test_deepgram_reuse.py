"""``DeepgramTranscribeOperator(reuse_existing="source_version")`` against a slow local server (each request takes
seconds, as a busy service's would) and moto: two runs for the same object version at once (an S3 notification
delivered twice) send one request and both return its result; a later run finds the result stored and sends
nothing; a new version of the object is transcribed anew. And the arguments it needs are checked at parse time.
Also a task's second try, results by callback, waiting for its first try's request instead of sending again."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from tests.fixtures.deepgram import deepgram_history
from tests.triggers.test_deepgram_trigger import slow_deepgram

__all__ = ["slow_deepgram"]  # a fixture, used by name


def tagged(tag: str) -> list[dict[str, Any]]:
    return [r for r in deepgram_history() if tag in (r["response"]["details"]["tags"] or [])]


def run(operator: DeepgramTranscribeOperator, dag_id: str) -> dict[str, Any]:
    """One run's try of the task, in this process (a fresh copy of the task, as each run's worker has)."""
    ti = SimpleNamespace(dag_id=dag_id, task_id=operator.task_id, run_id=f"event__{uuid.uuid4()}", map_index=-1)
    task = DeepgramTranscribeOperator(
        task_id=operator.task_id,
        s3_uri=operator.s3_uri,
        output_uri=operator.output_uri,
        reuse_existing="source_version",
        poll_interval=0.3,
    )
    return task.execute({"ti": ti})  # type: ignore[arg-type]


def test_each_object_version_is_sent_once_across_runs(
    slow_deepgram: Any, s3_server: Any, s3_bucket: str, speech: Any
) -> None:
    client = s3_server.client()
    client.upload_file(str(speech.file(0)), s3_bucket, "calls/a.wav")
    dag_id = f"dg_reuse_{uuid.uuid4().hex[:6]}"
    operator = DeepgramTranscribeOperator(
        task_id="transcribe",
        s3_uri=f"s3://{s3_bucket}/calls/a.wav",
        output_uri=f"s3://{s3_bucket}/out/",
        reuse_existing="source_version",
    )
    tag = f"{dag_id}.transcribe"

    # Two runs at once: the second starts while the first's request is being recognised.
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(run, operator, dag_id)
        while not tagged(tag):
            assert not first.done(), first.result()
            time.sleep(0.2)
        second = pool.submit(run, operator, dag_id)
        references = [first.result(timeout=120), second.result(timeout=120)]
    [request] = tagged(tag)
    assert {r["request_id"] for r in references} == {request["request_id"]}
    assert references[0]["deepgram_result"] == references[1]["deepgram_result"]
    assert "/source_versions/" in references[0]["deepgram_result"] and references[0]["word_count"] >= 3

    # A later run (the notification delivered once more): the stored result, no request.
    assert run(operator, dag_id)["request_id"] == request["request_id"] and len(tagged(tag)) == 1

    # A new version of the object is another file: transcribed anew, its result kept apart.
    client.upload_file(str(speech.file(1)), s3_bucket, "calls/a.wav")
    newer = run(operator, dag_id)
    assert newer["request_id"] != request["request_id"] and len(tagged(tag)) == 2
    assert newer["deepgram_result"] != references[0]["deepgram_result"]


def test_reuse_needs_an_s3_source_and_the_callback() -> None:
    with pytest.raises(ValueError, match="needs an S3 source"):
        DeepgramTranscribeOperator(
            task_id="t", audio_url="https://x/a.wav", output_uri="s3://b/o/", reuse_existing="source_version"
        )
    with pytest.raises(ValueError, match="result_delivery='callback'"):
        DeepgramTranscribeOperator(
            task_id="t",
            s3_uri="s3://b/a.wav",
            output_uri="s3://b/o/",
            reuse_existing="source_version",
            result_delivery="answer",
        )
    with pytest.raises(ValueError, match="reuse_existing must be None or one of"):
        DeepgramTranscribeOperator(task_id="t", s3_uri="s3://b/a.wav", output_uri="s3://b/o/", reuse_existing="etag")


def test_a_second_try_waits_for_the_first_tries_request(
    slow_deepgram: Any, s3_server: Any, s3_bucket: str, speech: Any
) -> None:
    """Results by callback: a try that fails while its request is being recognised (its timeout passed; a killed
    worker is the same) leaves the request running, and the next try finds it in the history and waits for it:
    one request, and its result is the task's."""
    client = s3_server.client()
    client.upload_file(str(speech.file(3)), s3_bucket, "calls/b.wav")
    dag_id = f"dg_retry_{uuid.uuid4().hex[:6]}"
    run_id = f"manual__{uuid.uuid4()}"
    started = SimpleNamespace(start_date=datetime.now(UTC) - timedelta(minutes=1))

    def try_once(number: int, timeout: float) -> dict[str, Any]:
        task = DeepgramTranscribeOperator(
            task_id="transcribe",
            s3_uri=f"s3://{s3_bucket}/calls/b.wav",
            output_uri=f"s3://{s3_bucket}/out/",
            poll_interval=0.3,
            timeout=timeout,
        )
        ti = SimpleNamespace(dag_id=dag_id, task_id="transcribe", run_id=run_id, map_index=-1, try_number=number)
        return task.execute({"ti": ti, "dag_run": started})  # type: ignore[arg-type]

    with pytest.raises(TimeoutError, match="did not reach"):
        try_once(1, timeout=1.0)  # sent, then given up while the server takes LATENCY seconds
    [request] = tagged(f"{dag_id}.transcribe")
    reference = try_once(2, timeout=120)
    assert reference["request_id"] == request["request_id"] and len(tagged(f"{dag_id}.transcribe")) == 1
    assert reference["word_count"] >= 3
