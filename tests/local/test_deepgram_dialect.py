"""The local server speaks Deepgram's pre-recorded dialect, proven with Deepgram's own SDK (``deepgram-sdk``):
``/v1/listen`` by file and by URL, with words, timings and metadata the SDK's models accept; the request found
again through the SDK's management API; a callback delivered (and retried); the SDK's own 429 handling meeting
the server's ``Retry-After``; a wrong key refused."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from deepgram import DeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.errors.bad_request_error import BadRequestError
from deepgram.types.listen_v1accepted_response import ListenV1AcceptedResponse
from deepgram.types.listen_v1response import ListenV1Response

from airflow_provider_brain.local.assets import Asset
from airflow_provider_brain.local.deepgram.answer import ListenOptions, listen_response, punctuated
from airflow_provider_brain.local.recognizer import Word
from tests.fixtures.brain import start_brain_server
from tests.local.conftest import MAX_FILE_WER, wer


def deepgram_client(url: str, key: str, **kwargs: Any) -> DeepgramClient:
    """The SDK pointed at a local server; ``key`` is a configured user's password."""
    ws = url.replace("http://", "ws://")
    environment = DeepgramClientEnvironment(base=url, production=ws, agent=ws, agent_rest=url)
    return DeepgramClient(api_key=key, environment=environment, timeout=120, **kwargs)


@pytest.fixture
def dg(brain_server: Any) -> DeepgramClient:
    return deepgram_client(brain_server.url, brain_server.password)


def check_answer(answer: Any, reference: str, audio: bytes | None = None) -> ListenV1Response:
    """The invariants of a ``ListenV1Response`` a Deepgram client relies on, and words close to ``reference``."""
    assert isinstance(answer, ListenV1Response), type(answer)
    meta = answer.metadata
    uuid.UUID(meta.request_id)
    if audio is not None:
        assert meta.sha256 == hashlib.sha256(audio).hexdigest()
    assert meta.duration > 0 and meta.channels == 1
    assert meta.models and set(meta.models) <= set(meta.model_info)
    assert meta.created.tzinfo is not None
    [channel] = answer.results.channels
    [alternative] = channel.alternatives or []
    words = alternative.words or []
    assert wer(reference, " ".join(w.word or "" for w in words)) <= MAX_FILE_WER, alternative.transcript
    assert 0.0 < (alternative.confidence or 0) <= 1.0
    previous_end = 0.0
    for word in words:
        assert word.start is not None and word.end is not None
        assert previous_end - 1e-6 <= word.start <= word.end <= meta.duration + 1e-6, word
        assert 0.0 <= (word.confidence or 0) <= 1.0
        previous_end = word.end
    return answer


def test_transcribe_file_with_options_and_find_it_in_the_history(dg: DeepgramClient, speech: Any) -> None:
    audio = speech.joined([0, 2]).read_bytes()
    answer = dg.listen.v1.media.transcribe_file(
        request=audio, model="nova-3", punctuate=True, utterances=True, tag=["dialect", "file"], extra="team:audio"
    )
    check_answer(answer, speech.text([0, 2]), audio)
    assert isinstance(answer, ListenV1Response)
    assert answer.metadata.tags == ["dialect", "file"]
    assert (answer.metadata.model_extra or {}).get("extra") == {"team": "audio"}
    [alternative] = answer.results.channels[0].alternatives or []
    words = [w.model_dump() for w in alternative.words or []]
    # punctuate: a capital to open the audio, a full stop to close it; the transcript is made of those words.
    assert words[0]["punctuated_word"][0].isupper() and words[-1]["punctuated_word"].endswith(".")
    assert alternative.transcript == " ".join(w["punctuated_word"] for w in words)
    # utterances: the two sentences, 0.8 s apart, are two utterances holding every word in order.
    utterances = answer.results.utterances or []
    assert len(utterances) == 2, [u.transcript for u in utterances]
    assert [w.word for u in utterances for w in u.words or []] == [w["word"] for w in words]
    assert all(u.start is not None and u.end is not None and u.start <= u.end for u in utterances)

    [project] = dg.manage.v1.projects.list().projects or []
    assert project.project_id and project.name
    history = dg.manage.v1.projects.requests.list(project.project_id, limit=5)
    assert history.requests and history.requests[0].request_id == answer.metadata.request_id
    found = dg.manage.v1.projects.requests.get(project.project_id, answer.metadata.request_id).request
    assert found is not None and found.created is not None and found.code == 200
    assert found.path is not None and found.path.startswith("/v1/listen?")
    assert found.response is not None and found.response["details"]["tags"] == ["dialect", "file"]
    # Usage by tag counts this request's audio.
    used = dg.manage.v1.projects.usage.get(project.project_id, tag="file")
    results = (used.model_extra or {})["results"]
    assert sum(r["requests"] for r in results) >= 1 and sum(r["hours"] for r in results) > 0
    breakdown = dg.manage.v1.projects.usage.breakdown.get(project.project_id, grouping="tags")
    by_tag = {tuple(r.grouping.tags or ()): r.requests for r in breakdown.results}
    assert by_tag.get(("file",), 0) >= 1


def test_history_pages_and_date_range(dg: DeepgramClient, speech: Any) -> None:
    audio = speech.file(3).read_bytes()
    ids = [dg.listen.v1.media.transcribe_file(request=audio).metadata.request_id for _ in range(3)]  # type: ignore[union-attr]
    [project] = dg.manage.v1.projects.list().projects or []
    assert project.project_id
    requests = dg.manage.v1.projects.requests
    first = requests.list(project.project_id, limit=2, page=0).requests or []
    second = requests.list(project.project_id, limit=2, page=1).requests or []
    assert [r.request_id for r in first] == ids[::-1][:2] and second[0].request_id == ids[0]
    assert not requests.list(project.project_id, start=datetime(2999, 1, 1, tzinfo=UTC)).requests
    since = requests.list(project.project_id, start=datetime.now(UTC) - timedelta(minutes=10), limit=1000).requests
    assert {r.request_id for r in since or []} >= set(ids)


def test_transcribe_url(dg: DeepgramClient, speech: Any, media_server: Any) -> None:
    url = media_server.serve("dg-url.wav", speech.file(1))
    answer = dg.listen.v1.media.transcribe_url(url=url)
    check_answer(answer, speech.text([1]), speech.file(1).read_bytes())


class FlakyListener:
    """A callback listener that answers 503 to the first request, then 200: a sender must try again."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0
        self.arrived = threading.Event()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                listener.attempts += 1
                if listener.attempts == 1:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.end_headers()
                listener.bodies.append((self.command, json.loads(body)))
                listener.arrived.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def flaky() -> Iterator[FlakyListener]:
    listener = FlakyListener()
    yield listener
    listener.httpd.shutdown()
    listener.httpd.server_close()


def test_callback_gets_the_full_result_after_a_failed_attempt(
    dg: DeepgramClient, speech: Any, flaky: FlakyListener
) -> None:
    audio = speech.file(2).read_bytes()
    accepted = dg.listen.v1.media.transcribe_file(request=audio, callback=flaky.url, callback_method="put", tag="cb")
    assert isinstance(accepted, ListenV1AcceptedResponse)
    assert flaky.arrived.wait(120), "no callback arrived"
    [(method, body)] = flaky.bodies
    assert method == "PUT" and flaky.attempts == 2
    answer = ListenV1Response.model_validate(body)
    assert answer.metadata.request_id == accepted.request_id and answer.metadata.tags == ["cb"]
    check_answer(answer, speech.text([2]), audio)


def test_sdk_429_handling_meets_retry_after(tmp_path: Any, speech: Any) -> None:
    """A full queue answers 429 with ``Retry-After``; the SDK waits that long and its retry gets the answer."""
    server = start_brain_server(tmp_path / "data", workers=1, extra_args=["--max-queue", "1", "--min-latency", "3"])
    try:
        audio = speech.file(0).read_bytes()
        octet = {"Content-Type": "application/octet-stream"}
        with server.client() as brain:  # one asset held processing for 3 s fills the queue
            assert brain.post("/speech:recognize?async=true", content=audio, headers=octet).status_code == 200
        refused = httpx.post(
            f"{server.url}/v1/listen", content=audio, headers={"Authorization": f"Token {server.password}", **octet}
        )
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        with pytest.raises(ApiError) as caught:  # without retries the SDK shows the 429 and its Retry-After
            deepgram_client(server.url, server.password, max_retries=0).listen.v1.media.transcribe_file(request=audio)
        assert caught.value.status_code == 429 and caught.value.headers and caught.value.headers["retry-after"]
        started = time.monotonic()
        answer = deepgram_client(server.url, server.password).listen.v1.media.transcribe_file(request=audio)
        waited = time.monotonic() - started
        check_answer(answer, speech.text([0]), audio)
        assert waited >= int(refused.headers["Retry-After"]) - 0.5, waited
        # The access log line of a request is written once its answer is sent: a moment after the SDK has it.
        deadline = time.monotonic() + 10
        while True:
            statuses = [line.split()[-3] for line in server.log_text().splitlines() if "POST /v1/listen " in line]
            if statuses[-1:] == ["200"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert statuses[-2:] == ["429", "200"], statuses
    finally:
        server.stop()


def test_wrong_key_is_401_and_another_users_project_404(brain_server: Any, dg: DeepgramClient) -> None:
    with pytest.raises(ApiError) as caught:
        deepgram_client(brain_server.url, "not-a-password", max_retries=0).manage.v1.projects.list()
    assert caught.value.status_code == 401 and caught.value.body["err_code"] == "INVALID_AUTH"
    with pytest.raises(ApiError) as caught:
        deepgram_client(brain_server.url, "not-a-password", max_retries=0).listen.v1.media.transcribe_file(
            request=b"RIFF"
        )
    assert caught.value.status_code == 401
    alice = deepgram_client(brain_server.url, brain_server.users["alice"])
    [theirs] = alice.manage.v1.projects.list().projects or []
    assert theirs.project_id
    with pytest.raises(ApiError) as caught:
        dg.manage.v1.projects.requests.list(theirs.project_id)
    assert caught.value.status_code == 404


def test_url_with_callback_is_fetched_in_the_queue(dg: DeepgramClient, speech: Any, media_server: Any) -> None:
    """A URL request with a callback is answered before its audio is fetched; the callback has the full answer,
    its ``sha256`` that of the fetched audio."""
    url = media_server.serve("dg-callback.wav", speech.file(4))
    path = f"/dg-callback/{uuid.uuid4()}"
    accepted = dg.listen.v1.media.transcribe_url(url=url, callback=media_server.url + path, utterances=True)
    assert isinstance(accepted, ListenV1AcceptedResponse)
    answer = ListenV1Response.model_validate(media_server.wait_callback(path))
    assert answer.metadata.request_id == accepted.request_id and answer.results.utterances
    check_answer(answer, speech.text([4]), speech.file(4).read_bytes())


def test_bad_audio_and_bad_options_are_400(dg: DeepgramClient) -> None:
    with pytest.raises(BadRequestError):
        dg.listen.v1.media.transcribe_file(request=b"this is not audio at all", request_options={"max_retries": 0})
    with pytest.raises(BadRequestError) as caught:
        dg.listen.v1.media.transcribe_file(request=b"RIFF", language="de", request_options={"max_retries": 0})
    assert "English" in caught.value.body["err_msg"]


def test_punctuation_and_utterances_follow_pauses() -> None:
    words = [Word("i", 0.0, 0.2, 1.0), Word("know", 0.2, 0.5, 1.0), Word("yes", 1.5, 1.8, 1.0)]
    assert punctuated(words) == ["I", "know.", "Yes."]
    options = ListenOptions(punctuate=True, utterances=True)
    asset = Asset("0" * 16, "demo:deepgram", "done", "2026-01-01T00:00:00.000Z", "http://x", duration=2.0, words=words)
    answer = listen_response(asset, str(uuid.uuid4()), asset.created, "0" * 64, options)
    assert answer["results"]["channels"][0]["alternatives"][0]["transcript"] == "I know. Yes."
    assert [u["transcript"] for u in answer["results"]["utterances"]] == ["I know.", "Yes."]
    assert ListenOptions.from_json(options.to_json()) == options


def test_a_callback_cut_off_by_a_restart_is_sent_after_it(tmp_path: Any, speech: Any, media_server: Any) -> None:
    data = tmp_path / "data"
    server = start_brain_server(data, workers=1, extra_args=["--min-latency", "30"])
    path = f"/dg-restart/{uuid.uuid4()}"
    try:
        client = deepgram_client(server.url, server.password)
        accepted = client.listen.v1.media.transcribe_file(
            request=speech.file(5).read_bytes(), callback=media_server.url + path
        )
        assert isinstance(accepted, ListenV1AcceptedResponse)
    finally:
        assert server.stop() == 0
    assert not [c for c in media_server.callbacks if c["path"] == path]
    server = start_brain_server(data, workers=1)
    try:
        answer = ListenV1Response.model_validate(media_server.wait_callback(path))
        assert answer.metadata.request_id == accepted.request_id
        check_answer(answer, speech.text([5]), speech.file(5).read_bytes())
    finally:
        server.stop()
