"""DeepgramHook against the real local server's Deepgram dialect (real recognition), and under the faults only
the fault proxy can make: a file and a URL transcribed with the right words and timings, the request found
again in the project's history by its idempotency marker, a lost answer never sent twice, a refused one sent
again, and errors that name the problem but not the key."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_brain.exceptions import BrainConnectionError
from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.deepgram import DeepgramAnswerLost, DeepgramHook, DeepgramResult
from airflow_provider_brain.hooks.deepgram_calls import DeepgramAPIError, DeepgramAuthError, request_has_marker
from tests.fixtures.faults import Fault
from tests.local.conftest import MAX_FILE_WER, wer


@pytest.fixture
def deepgram_conn(monkeypatch: pytest.MonkeyPatch, brain_server: Any) -> Callable[..., str]:
    """Point a ``deepgram`` connection (default ``deepgram_default``) at a URL (default: the local server)."""

    def set_conn(
        url: str | None = None, *, conn_id: str = "deepgram_default", key: str | None = None, **extra: Any
    ) -> str:
        value = {
            "conn_type": "deepgram",
            "host": url or brain_server.url,
            "password": brain_server.password if key is None else key,
            "extra": extra,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
        return conn_id

    set_conn()
    return set_conn


def fast_hook(**kwargs: Any) -> DeepgramHook:
    return DeepgramHook(retry_backoff=0.05, retry_backoff_max=0.2, history_wait=1.0, **kwargs)


def check_words(result: DeepgramResult, reference: str) -> None:
    """Words close to what was said, in order, each inside the audio, with confidences in [0, 1]."""
    assert wer(reference, " ".join(w.word for w in result.words)) <= MAX_FILE_WER
    assert result.duration > 0 and result.confidence is not None and 0 < result.confidence <= 1
    previous_end = 0.0
    for word in result.words:
        assert previous_end - 1e-6 <= word.start <= word.end <= result.duration + 1e-6
        assert 0.0 <= word.confidence <= 1.0
        previous_end = word.end


def marked(hook: DeepgramHook, marker: str) -> list[dict[str, Any]]:
    """Every request of the project's recent history that carries ``marker``."""
    path = f"/v1/projects/{hook.project_id()}/requests"
    answer = hook.transport.request(Call("GET", path, params={"limit": "1000"}))
    return [item for item in answer["requests"] if request_has_marker(item, marker)]


def test_file_words_timings_tags_and_history(deepgram_conn: Any, speech: Any) -> None:
    hook = fast_hook()
    marker = f"file-{uuid.uuid4()}"
    result = hook.listen_file(
        speech.joined([0, 2]), options={"punctuate": True}, tags=["dags.transcribe"], idempotency_key=marker
    )
    check_words(result, speech.text([0, 2]))
    uuid.UUID(result.request_id)
    assert result.tags == ("dags.transcribe",)
    assert result.raw["metadata"]["extra"] == {"airflow_idempotency_key": marker}
    punctuated = [w["punctuated_word"] for w in result.raw["results"]["channels"][0]["alternatives"][0]["words"]]
    assert punctuated[0][0].isupper() and punctuated[-1].endswith(".")
    assert "transcript" not in repr(result) and result.transcript not in repr(result)
    found = hook.find_request(marker)
    assert found is not None and found["request_id"] == result.request_id and found["code"] == 200
    assert found["response"]["details"]["tags"] == ["dags.transcribe"]
    assert hook.find_request(f"never-sent-{uuid.uuid4()}") is None


def test_url_and_bytes(deepgram_conn: Any, speech: Any, s3_server: Any, s3_bucket: str) -> None:
    client = s3_server.client()
    client.upload_file(str(speech.file(1)), s3_bucket, "calls/one.wav")
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "calls/one.wav"})
    hook = fast_hook()
    by_url = hook.listen_url(url)
    check_words(by_url, speech.sentences[1])
    by_bytes = hook.listen_bytes(speech.file(1).read_bytes())
    assert [w.word for w in by_bytes.words] == [w.word for w in by_url.words]
    # The same audio by URL and by body: the same timings, to the recogniser's 10 ms frames (two runs differ by one).
    assert [w.start for w in by_bytes.words] == pytest.approx([w.start for w in by_url.words], abs=0.021)
    assert by_bytes.request_id != by_url.request_id


def test_async_url_finds_the_same_words(deepgram_conn: Any, speech: Any, s3_server: Any, s3_bucket: str) -> None:
    client = s3_server.client()
    client.upload_file(str(speech.file(3)), s3_bucket, "a.wav")
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "a.wav"})

    async def run() -> tuple[DeepgramResult, dict[str, Any] | None]:
        hook = fast_hook()
        try:
            result = await hook.alisten_url(url, tags=["async"], idempotency_key="async-" + url[-12:])
            return result, await hook.afind_request("async-" + url[-12:])
        finally:
            await hook.aclose()

    result, found = asyncio.run(run())
    check_words(result, speech.sentences[3])
    assert found is not None and found["request_id"] == result.request_id


@pytest.mark.parametrize("status", [0, 502])
def test_lost_answer_is_not_sent_twice(deepgram_conn: Any, fault_proxy: Any, speech: Any, status: int) -> None:
    """An answer lost after the server accepted the request (a reset, or a gateway's 502): the history shows the
    request, so it is not sent again; one request carries the marker, and the error names it."""
    deepgram_conn(url=fault_proxy.url)
    fault_proxy.add(Fault("lost_answer", status=status, path_prefix="/v1/listen"))
    hook = fast_hook()
    marker = f"lost-{uuid.uuid4()}"
    with pytest.raises(DeepgramAnswerLost) as caught:
        hook.listen_file(speech.file(0), idempotency_key=marker)
    [request] = marked(hook, marker)
    assert caught.value.request_id == request["request_id"] and request["code"] == 200
    assert len(fault_proxy.requests_to("/v1/listen", "POST")) == 1
    assert marker in str(caught.value) and "run the task again" in str(caught.value)


def test_lost_answer_on_the_async_path(
    deepgram_conn: Any, fault_proxy: Any, speech: Any, s3_server: Any, s3_bucket: str
) -> None:
    client = s3_server.client()
    client.upload_file(str(speech.file(0)), s3_bucket, "lost.wav")
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "lost.wav"})
    deepgram_conn(url=fault_proxy.url)
    fault_proxy.add(Fault("lost_answer", status=0, path_prefix="/v1/listen"))
    marker = f"alost-{uuid.uuid4()}"

    async def run() -> None:
        hook = fast_hook()
        try:
            await hook.alisten_url(url, idempotency_key=marker)
        finally:
            await hook.aclose()

    with pytest.raises(DeepgramAnswerLost) as caught:
        asyncio.run(run())
    [request] = marked(fast_hook(), marker)
    assert caught.value.request_id == request["request_id"]
    assert len(fault_proxy.requests_to("/v1/listen", "POST")) == 1


@pytest.mark.parametrize("fault", [Fault("status", status=503), Fault("reset")], ids=["503", "reset"])
def test_a_request_the_server_never_got_is_sent_again(
    deepgram_conn: Any, fault_proxy: Any, speech: Any, fault: Fault
) -> None:
    """A 503 or a reset before the server saw the request: the history does not show it, so it is sent again,
    and one request (the second) carries the marker."""
    deepgram_conn(url=fault_proxy.url)
    fault.path_prefix = "/v1/listen"
    fault_proxy.add(fault)
    hook = fast_hook()
    marker = f"resend-{uuid.uuid4()}"
    result = hook.listen_file(speech.file(2), idempotency_key=marker)
    check_words(result, speech.sentences[2])
    [request] = marked(hook, marker)
    assert request["request_id"] == result.request_id
    assert [s.faulted for s in fault_proxy.requests_to("/v1/listen", "POST")] == [fault.kind, None]
    assert len(fault_proxy.requests_to("/v1/projects/")) >= 1  # the history was read before the resend


def test_429_is_sent_again_after_retry_after_without_a_history_search(
    deepgram_conn: Any, fault_proxy: Any, speech: Any
) -> None:
    deepgram_conn(url=fault_proxy.url)
    fault_proxy.add(Fault("status", status=429, headers={"Retry-After": "1"}, path_prefix="/v1/listen"))
    result = fast_hook().listen_file(speech.file(0))
    check_words(result, speech.sentences[0])
    posts = fault_proxy.requests_to("/v1/listen", "POST")
    assert [s.faulted for s in posts] == ["status", None] and posts[1].at - posts[0].at >= 1.0
    assert fault_proxy.requests_to("/v1/projects") == []


def test_errors_name_the_problem_not_the_key(deepgram_conn: Any, speech: Any) -> None:
    deepgram_conn(key="wrong-key-12345")
    with pytest.raises(DeepgramAuthError) as caught:
        fast_hook().listen_file(speech.file(0))
    assert "INVALID_AUTH" in str(caught.value) and "API key" in str(caught.value)
    assert "wrong-key-12345" not in str(caught.value)
    deepgram_conn()
    with pytest.raises(DeepgramAPIError, match="failed with 400 Bad Request: audio could not be decoded") as bad:
        fast_hook().listen_bytes(b"this is not audio at all" * 100)
    assert bad.value.status == 400 and bad.value.err_code


def test_test_connection_and_project(deepgram_conn: Any, brain_server: Any) -> None:
    ok, message = DeepgramHook().test_connection()
    assert ok and "1 project(s)" in message and brain_server.url in message
    deepgram_conn(key="wrong-key-12345")
    ok, message = DeepgramHook().test_connection()
    assert not ok and "INVALID_AUTH" in message and "wrong-key-12345" not in message
    deepgram_conn(project_id="given-project")
    assert DeepgramHook().project_id() == "given-project"


def test_no_server_is_retried_then_named(deepgram_conn: Any, speech: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens: never delivered, so sent again (max_retries=2), then an error naming Deepgram and the URL."""
    deepgram_conn(url="http://127.0.0.1:9", max_retries=2)
    with pytest.raises(BrainConnectionError) as caught:
        fast_hook().listen_file(speech.file(0))
    assert str(caught.value).startswith("Deepgram POST /v1/listen:") and "127.0.0.1:9" in str(caught.value)
    assert not caught.value.maybe_sent
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and all(m.startswith("Deepgram POST /v1/listen failed") for m in retries)


def test_calls_made_at_once_share_one_transport(deepgram_conn: Any) -> None:
    """A batch trigger's first requests each ask for the transport while the connection is looked up: one is
    built (and closed by ``aclose``), not one per request whose HTTP clients are never closed."""

    async def at_once() -> list[Any]:
        hook = DeepgramHook()
        try:
            transports = await asyncio.gather(*(hook.aget_transport() for _ in range(4)))
            assert await hook.aproject_id()
            return [*transports, await hook.aget_transport()]
        finally:
            await hook.aclose()

    transports = asyncio.run(at_once())
    assert all(transport is transports[0] for transport in transports)


@pytest.mark.parametrize(
    ("host", "extra", "problem"),
    [
        ("ftp://api.example.com", {}, "Deepgram connection host 'ftp://api.example.com' is not an http"),
        ("https://user:pw@api.example.com", {}, "Deepgram connection host holds credentials"),
        ("https://api.example.com", {"proxies": "proxy:3128"}, "Deepgram connection extra 'proxies'"),
    ],
)
def test_a_misconfigured_connection_is_named_deepgram(
    monkeypatch: pytest.MonkeyPatch, host: str, extra: dict[str, Any], problem: str
) -> None:
    """A Deepgram connection's errors name Deepgram: a reader with a Brain connection too knows which to fix."""
    value = {"conn_type": "deepgram", "host": host, "password": "key-12345", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_DEEPGRAM_DEFAULT", json.dumps(value))
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        DeepgramHook().transport  # noqa: B018 - reads the connection
    assert "Brain" not in str(caught.value) and "key-12345" not in str(caught.value) and "pw" not in str(caught.value)
