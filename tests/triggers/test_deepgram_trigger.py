"""DeepgramTranscribeTrigger against a slow local server (requests stay in flight for seconds): a triggerer stopped
while a request is in flight, then the same trigger run again, leaves one request in the history and fails the try
naming it; a new deferral (the task's next try) sends the file again and stores its result. With the result
delivered by callback, the trigger run again waits for the first request's result instead. And the batch trigger
over requests that never answer (a stand-in ``alisten_url``): one transport, closed after every request ended."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from airflow_provider_brain.deepgram_store import read_result
from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.deepgram import DeepgramHook
from airflow_provider_brain.hooks.deepgram_calls import request_has_marker
from airflow_provider_brain.triggers.deepgram import DeepgramTranscribeTrigger
from airflow_provider_brain.triggers.deepgram_batch import DeepgramBatchTrigger
from tests.fixtures.brain import start_brain_server

LATENCY = 6.0


@pytest.fixture
def slow_deepgram(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    server = start_brain_server(tmp_path / "data", workers=1, extra_args=["--min-latency", str(LATENCY)])
    connection = {"conn_type": "deepgram", "host": server.url, "password": server.password}
    monkeypatch.setenv("AIRFLOW_CONN_DEEPGRAM_DEFAULT", json.dumps(connection))
    try:
        yield server
    finally:
        server.stop()


def requests_with(marker: str) -> list[dict[str, Any]]:
    hook = DeepgramHook()
    path = f"/v1/projects/{hook.project_id()}/requests"
    return [r for r in hook.transport.request(Call("GET", path))["requests"] if request_has_marker(r, marker)]


async def first_event(trigger: DeepgramTranscribeTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def test_a_restarted_trigger_does_not_send_twice(slow_deepgram, s3_server, s3_bucket, speech) -> None:
    client = s3_server.client()
    client.upload_file(str(speech.file(0)), s3_bucket, "a.wav")
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "a.wav"})
    marker = f"restart-{uuid.uuid4()}"
    location = f"s3://{s3_bucket}/results/a.json"
    kwargs = {
        "source": "a.wav",
        "location": location,
        "marker": marker,
        "deadline": time.time() + 300,
        "audio_url": url,
        "deferred_at": time.time(),
    }

    async def stopped_mid_request() -> None:
        task = asyncio.ensure_future(first_event(DeepgramTranscribeTrigger(**kwargs)))
        await asyncio.sleep(2.0)  # sent and accepted; the server holds it for LATENCY seconds
        task.cancel()  # what a triggerer stopping does to its triggers

    asyncio.run(stopped_mid_request())
    [accepted] = requests_with(marker)
    _, restored = DeepgramTranscribeTrigger(**kwargs).serialize()
    event = asyncio.run(first_event(DeepgramTranscribeTrigger(**restored)))
    assert event["status"] == "error" and accepted["request_id"] in event["message"], event
    assert "DeepgramAnswerLost" in event["message"] and url.split("?")[1] not in event["message"]
    assert len(requests_with(marker)) == 1 and read_result(location, "aws_default") is None

    retry = {**kwargs, "deferred_at": time.time()}  # the task's next try defers anew
    event = asyncio.run(first_event(DeepgramTranscribeTrigger(**retry)))
    assert event["status"] == "done", event
    reference = event["reference"]
    assert reference["request_id"] != accepted["request_id"] and len(requests_with(marker)) == 2
    stored = read_result(location, "aws_default")
    assert stored is not None and stored["metadata"]["request_id"] == reference["request_id"]


def test_a_restarted_trigger_waits_for_its_first_requests_callback(slow_deepgram, s3_server, s3_bucket, speech) -> None:
    """With the result delivered by callback, a triggerer stopped while it waits loses nothing: the trigger run
    again finds its request in the history, sends nothing, and its result is that first request's."""
    client = s3_server.client()
    client.upload_file(str(speech.file(1)), s3_bucket, "b.wav")
    marker = f"cbrestart-{uuid.uuid4()}"
    location = f"s3://{s3_bucket}/results/b.json"
    kwargs = {
        "source": "b.wav",
        "location": location,
        "marker": marker,
        "deadline": time.time() + 300,
        "s3_bucket": s3_bucket,
        "s3_key": "b.wav",
        "deferred_at": time.time(),
        "result_delivery": "callback",
        "poll_interval": 0.5,
    }

    async def stopped_while_waiting() -> None:
        task = asyncio.ensure_future(first_event(DeepgramTranscribeTrigger(**kwargs)))
        await asyncio.sleep(2.0)  # sent and accepted; the server recognises it for LATENCY seconds
        task.cancel()

    asyncio.run(stopped_while_waiting())
    [accepted] = requests_with(marker)
    assert read_result(location, "aws_default") is None  # still being recognised: the trigger was waiting
    _, restored = DeepgramTranscribeTrigger(**kwargs).serialize()
    assert restored["result_delivery"] == "callback" and restored["poll_interval"] == 0.5
    event = asyncio.run(first_event(DeepgramTranscribeTrigger(**restored)))
    assert event["status"] == "done", event
    assert event["reference"]["request_id"] == accepted["request_id"] and event["reference"]["word_count"] >= 3
    assert len(requests_with(marker)) == 1
    stored = read_result(location, "aws_default")
    assert stored is not None and stored["metadata"]["request_id"] == accepted["request_id"]


def test_a_restarted_batch_trigger_waits_for_its_first_requests_callbacks(
    slow_deepgram, s3_server, s3_bucket, speech
) -> None:
    """The batch trigger, results by callback, stopped while its files are recognised and run again: nothing is
    sent twice, every file's result is its one request's, none fails."""
    client = s3_server.client()
    items = []
    for i in range(2):
        client.upload_file(str(speech.file(i)), s3_bucket, f"batch/{i}.wav")
        source = f"s3://{s3_bucket}/batch/{i}.wav"
        location = f"s3://{s3_bucket}/results/batch-{i}.json"
        items.append({"source": source, "label": source, "marker": f"cbbatch-{uuid.uuid4()}", "location": location})
    kwargs = {
        "items": items,
        "max_concurrency": 2,
        "deadline": time.time() + 300,
        "deferred_at": time.time(),
        "result_delivery": "callback",
        "poll_interval": 0.5,
    }

    async def every_event(trigger: DeepgramBatchTrigger) -> list[dict[str, Any]]:
        return [dict(event.payload) async for event in trigger.run()]

    async def stopped_while_waiting() -> None:
        task = asyncio.ensure_future(every_event(DeepgramBatchTrigger(**kwargs)))
        await asyncio.sleep(2.0)  # both sent and accepted; the server takes LATENCY seconds for each
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(stopped_while_waiting())
    first = {item["marker"]: requests_with(item["marker"]) for item in items}
    assert [len(found) for found in first.values()] == [1, 1]
    _, restored = DeepgramBatchTrigger(**kwargs).serialize()
    [event] = asyncio.run(every_event(DeepgramBatchTrigger(**restored)))
    assert event == {"status": "done", "sent": 2, "failed": {}}, event
    for item in items:
        [request] = requests_with(item["marker"])
        stored = read_result(item["location"], "aws_default")
        assert stored is not None and stored["metadata"]["request_id"] == first[item["marker"]][0]["request_id"]
        assert request["request_id"] == first[item["marker"]][0]["request_id"]


def test_the_batch_trigger_closes_its_client_after_the_requests_it_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files with no answer by the deadline are reported, and their requests cancelled and ended before the hook
    closes the client they use; the files' first requests, made at once, share one transport."""
    happened: list[str] = []

    class Client:
        async def aclose(self) -> None:
            happened.append("client closed")

    async def aread_settings(hook: DeepgramHook) -> None:
        await asyncio.sleep(0.05)  # the connection lookup: every first request waits here at once

    def new_transport(hook: DeepgramHook, settings: None) -> Client:
        happened.append("transport built")
        return Client()

    async def alisten_url(hook: DeepgramHook, url: str, **_: Any) -> None:
        await hook.aget_transport()
        try:
            await asyncio.sleep(60)  # Deepgram never answers
        finally:
            await asyncio.sleep(0.05)  # the HTTP client ends the request
            happened.append("request ended")

    monkeypatch.setattr(DeepgramHook, "_aread_settings", aread_settings)
    monkeypatch.setattr(DeepgramHook, "_new_transport", new_transport)
    monkeypatch.setattr(DeepgramHook, "alisten_url", alisten_url)
    items = [{"source": f"https://h/{i}.wav", "label": f"https://h/{i}.wav", "marker": f"m{i}"} for i in range(3)]
    trigger = DeepgramBatchTrigger(
        items=[{**item, "location": "unused"} for item in items], max_concurrency=3, deadline=time.time() + 0.5
    )

    async def every_event() -> list[dict[str, Any]]:
        return [dict(event.payload) async for event in trigger.run()]

    [event] = asyncio.run(every_event())
    assert event["failed"] == {item["label"]: "no answer before the task's timeout" for item in items}
    assert happened == ["transport built", *["request ended"] * 3, "client closed"]
