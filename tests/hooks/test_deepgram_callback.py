"""Results delivered by Deepgram's ``callback`` to a presigned S3 PUT URL (the local server's Deepgram dialect,
real recognition, moto's S3): the result lands where the task looks for it; an answer lost after the server
accepted the request (fault proxy) leaves one request in the history and the result is that first request's,
in the hook and in the operator; a request that fails delivers its error, which names the request; and the
callback URL, a secret, is in no message or log."""

from __future__ import annotations

import asyncio
import time
import traceback
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_brain.deepgram_store import (
    await_delivery,
    presigned_put_url,
    read_result,
    wait_for_delivery,
)
from airflow_provider_brain.exceptions import BrainConnectionError
from airflow_provider_brain.hooks.deepgram_calls import DeepgramAPIError
from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from tests.fixtures.faults import Fault
from tests.hooks.test_deepgram_hook import check_words, deepgram_conn, fast_hook, marked

__all__ = ["deepgram_conn"]  # a fixture, used by name


def put_url(bucket: str, name: str) -> tuple[str, str]:
    location = f"s3://{bucket}/results/{name}.json"
    return location, presigned_put_url(location, "aws_default", expires_in=900)


def upload(s3_server: Any, bucket: str, path: Any, key: str) -> str:
    client = s3_server.client()
    client.upload_file(str(path), bucket, key)
    return str(client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}))


def test_the_callback_writes_the_result_where_the_task_looks(deepgram_conn: Any, speech: Any, s3_bucket: str) -> None:
    location, callback = put_url(s3_bucket, "file")
    marker = f"cb-{uuid.uuid4()}"
    hook = fast_hook()
    request_id = hook.submit_file(speech.file(2), callback=callback, tags=["dags.cb"], idempotency_key=marker)
    result = wait_for_delivery(location, "aws_default", request_id, deadline=time.time() + 120, poll_interval=0.2)
    assert result.request_id == request_id and result.tags == ("dags.cb",)
    check_words(result, speech.sentences[2])
    [request] = marked(hook, marker)
    assert request["request_id"] == request_id and request["response"]["details"]["method"] == "async"


@pytest.mark.parametrize("path", ["sync file", "async url"])
def test_a_lost_answer_with_a_callback_gives_the_first_requests_result(
    deepgram_conn: Any, fault_proxy: Any, speech: Any, s3_server: Any, s3_bucket: str, path: str
) -> None:
    """The answer is lost after the server accepted the request: the history shows it, so it is not sent again,
    and the result its callback delivers is the task's."""
    location, callback = put_url(s3_bucket, path.replace(" ", "-"))
    marker = f"cblost-{uuid.uuid4()}"
    deepgram_conn(url=fault_proxy.url)
    fault_proxy.add(Fault("lost_answer", status=0, path_prefix="/v1/listen"))
    if path == "sync file":
        request_id = fast_hook().submit_file(speech.file(0), callback=callback, idempotency_key=marker)
        result = wait_for_delivery(location, "aws_default", request_id, deadline=time.time() + 120, poll_interval=0.2)
    else:
        url = upload(s3_server, s3_bucket, speech.file(0), "lost.wav")

        async def run() -> Any:
            hook = fast_hook()
            try:
                request_id = await hook.asubmit_url(url, callback=callback, idempotency_key=marker)
            finally:
                await hook.aclose()
            return await await_delivery(
                location, "aws_default", request_id, deadline=time.time() + 120, poll_interval=0.2
            )

        result = asyncio.run(run())
    [request] = marked(fast_hook(), marker)
    assert result.request_id == request["request_id"]
    assert len(fault_proxy.requests_to("/v1/listen", "POST")) == 1
    check_words(result, speech.sentences[0])


def test_the_operators_result_after_a_lost_answer_is_the_first_requests(
    deepgram_conn: Any, fault_proxy: Any, speech: Any, s3_server: Any, s3_bucket: str
) -> None:
    """The operator (in a worker, default delivery for an ``s3://`` output: the callback) returns the one
    request's result when the answer to its request was lost: one request, no resend, no DeepgramAnswerLost."""
    key = "calls/lost.wav"
    upload(s3_server, s3_bucket, speech.file(1), key)
    deepgram_conn(url=fault_proxy.url)
    fault_proxy.add(Fault("lost_answer", status=502, path_prefix="/v1/listen"))
    operator = DeepgramTranscribeOperator(
        task_id="transcribe", s3_uri=f"s3://{s3_bucket}/{key}", output_uri=f"s3://{s3_bucket}/out/", poll_interval=0.2
    )
    operator.hook.history_wait = 1.0
    ti = SimpleNamespace(dag_id="dg_lost", task_id="transcribe", run_id=f"manual__{uuid.uuid4()}", map_index=-1)
    reference = operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert len(fault_proxy.requests_to("/v1/listen", "POST")) == 1
    stored = read_result(reference["deepgram_result"], "aws_default")
    assert stored is not None and reference["request_id"] == stored["metadata"]["request_id"]
    history = fast_hook().get_request(reference["request_id"])
    assert history["response"]["details"]["tags"] == ["dg_lost.transcribe"]
    assert reference["word_count"] >= 3 and reference["source"] == f"s3://{s3_bucket}/{key}"


def test_a_failed_request_delivers_its_error_naming_the_request(
    deepgram_conn: Any, s3_server: Any, s3_bucket: str, tmp_path: Any
) -> None:
    not_audio = tmp_path / "notes.wav"
    not_audio.write_bytes(b"these are not audio samples " * 200)
    url = upload(s3_server, s3_bucket, not_audio, "notes.wav")
    location, callback = put_url(s3_bucket, "failed")
    request_id = fast_hook().submit_url(url, callback=callback)
    with pytest.raises(DeepgramAPIError) as caught:
        wait_for_delivery(location, "aws_default", request_id, deadline=time.time() + 120, poll_interval=0.2)
    assert request_id in str(caught.value) and caught.value.request_id == request_id
    assert caught.value.err_code == "REQUEST_FAILED"


def test_the_callback_url_is_in_no_message_or_log(
    deepgram_conn: Any, speech: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """requests quotes the URL it sent (query included) when it cannot connect: the callback, percent-encoded in
    that query, is redacted from the error and from the retry log, which still say what failed."""
    deepgram_conn(url="http://127.0.0.1:9", max_retries=1)
    secret = "X-Amz-Signature=" + uuid.uuid4().hex
    with pytest.raises(BrainConnectionError) as caught:
        fast_hook().submit_file(speech.file(0), callback=f"https://bucket.example/k.json?{secret}")
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert str(caught.value).startswith("Deepgram POST /v1/listen:") and len(retries) == 1
    assert "<redacted-url>" in str(caught.value) and "<redacted-url>" in retries[0]
    signature = secret.split("=")[1]
    assert signature not in str(caught.value) and signature not in caplog.text
    # Nor in the traceback a task log prints: the client's exception, which quotes the query, is not chained.
    assert signature not in "".join(traceback.format_exception(caught.value))
    assert caught.value.__cause__ is None and caught.value.__context__ is None
