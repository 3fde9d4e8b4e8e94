"""BrainAssetTrigger against the real local server: serialisation, each event, the wall-clock deadline."""

from __future__ import annotations

import asyncio
import importlib
import time
from types import SimpleNamespace

import pytest

from airflow_provider_brain.exceptions import BrainAssetFailed, BrainError, BrainTimeout
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.triggers.asset import BrainAssetTrigger, raise_for_event
from tests.fixtures.faults import Fault, FaultProxy


def run_trigger(trigger: BrainAssetTrigger) -> list[dict]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=120))


def rebuild(trigger: BrainAssetTrigger) -> BrainAssetTrigger:
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def test_serialize_round_trip_holds_only_primitives():
    trigger = BrainAssetTrigger("0123456789abcdef", brain_conn_id="brain_x", poll_interval=3, end_time=1_900_000_000.5)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_brain.triggers.asset.BrainAssetTrigger"
    assert kwargs == {
        "asset_id": "0123456789abcdef",
        "brain_conn_id": "brain_x",
        "poll_interval": 3.0,
        "end_time": 1_900_000_000.5,
        "cancel_on_kill": False,
        "end_task": None,
    }
    assert all(isinstance(v, (str, int, float, bool, dict, type(None))) for v in kwargs.values())
    assert rebuild(trigger).serialize() == trigger.serialize()
    ending = BrainAssetTrigger("0123456789abcdef", end_task={"source": "s3://b/k.wav", "times": True})
    assert rebuild(ending).serialize()[1]["end_task"] == {"source": "s3://b/k.wav", "times": True}


def test_rejects_a_bad_asset_id():
    with pytest.raises(ValueError, match="asset id"):
        BrainAssetTrigger("{{ ti.xcom_pull() }}")


def test_done_event(brain_conn, speech):
    asset = BrainHook().submit_file(speech.file(0), async_=True)
    (event,) = run_trigger(rebuild(BrainAssetTrigger(asset.asset_id, poll_interval=0.2, end_time=time.time() + 120)))
    assert event["status"] == "done" and event["asset_id"] == asset.asset_id
    assert set(event) == {"status", "asset_id", "message"}
    done = BrainHook().get_asset(asset.asset_id)
    for word in done.transcript.split():
        if len(word) > 3:
            assert word not in event["message"]
    assert raise_for_event(event) == asset.asset_id


def test_failed_event_carries_the_reason(brain_conn):
    asset = BrainHook().submit_url("http://127.0.0.1:9/missing.wav", async_=True)
    (event,) = run_trigger(BrainAssetTrigger(asset.asset_id, poll_interval=0.2))
    assert event["status"] == "failed" and asset.asset_id in event["message"]
    reason = BrainHook().get_asset(asset.asset_id).error
    assert reason and event["reason"] == reason and reason in event["message"], "the reason is its own field"
    with pytest.raises(BrainAssetFailed, match=asset.asset_id) as failed:
        raise_for_event(event)
    assert failed.value.reason == reason


@pytest.fixture
def held_proxy(held_brain):
    """A fault proxy (recording every request) in front of the server whose assets stay processing."""
    proxy = FaultProxy(held_brain.url).start()
    yield proxy
    proxy.stop()


def test_timeout_event_after_one_last_poll(brain_conn, held_proxy, speech):
    brain_conn(url=held_proxy.url)
    asset = BrainHook().submit_file(speech.file(0), async_=True)  # Held processing (--min-latency) past the test.
    held_proxy.seen.clear()
    deadline = time.time() + 1.0
    started = time.time()
    (event,) = run_trigger(BrainAssetTrigger(asset.asset_id, poll_interval=30, end_time=deadline))
    assert event["status"] == "timeout"
    # Slept until the deadline (not the 30 s poll interval), then polled once more.
    assert 0.9 <= time.time() - started < 10
    polls = held_proxy.requests_to(f"/assets/{asset.asset_id}")
    assert len(polls) == 2 and polls[-1].at >= deadline
    with pytest.raises(BrainTimeout):
        raise_for_event(event, timeout=1)


def test_deadline_is_wall_clock(brain_conn, held_brain, speech):
    """A deadline already past in wall-clock time (as after a long triggerer outage) ends the wait at once."""
    brain_conn(url=held_brain.url)
    asset = BrainHook().submit_file(speech.file(0), async_=True)  # Held processing (--min-latency) past the test.
    (event,) = run_trigger(rebuild(BrainAssetTrigger(asset.asset_id, poll_interval=30, end_time=time.time() - 5)))
    assert event["status"] == "timeout"
    assert rebuild(BrainAssetTrigger(asset.asset_id, end_time=1234.5)).end_time == 1234.5


def test_error_event_on_a_permanent_error(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url, password="wrong")
    (event,) = run_trigger(BrainAssetTrigger("0123456789abcdef", poll_interval=0.1))
    assert event["status"] == "error" and "BrainAuthError" in event["message"]
    assert "wrong" not in event["message"].replace("wrong-", "")
    with pytest.raises(BrainError, match="BrainAuthError"):
        raise_for_event(event)


def test_transient_errors_are_retried_not_reported(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    asset = BrainHook().submit_file(speech.file(0))
    fault_proxy.add(Fault("status", status=503), Fault("reset"))
    trigger = BrainAssetTrigger(asset.asset_id, poll_interval=0.1)
    (event,) = run_trigger(trigger)
    assert event["status"] == "done"


def test_an_outage_longer_than_the_retries_is_waited_out(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url, max_retries=0)
    asset = BrainHook().submit_file(speech.file(1), async_=True)
    fault_proxy.fail_for(2, status=503)
    (event,) = run_trigger(BrainAssetTrigger(asset.asset_id, poll_interval=0.3, end_time=time.time() + 120))
    assert event["status"] == "done"
    assert any(s.faulted == "status" for s in fault_proxy.seen)


END_TASK = {"source": "s3://audio/a.wav", "times": False, "return_transcript": False}


def test_a_trigger_asked_to_end_the_task_without_a_task_instance_resumes_it(brain_conn, speech):
    """``airflow dags test`` runs triggers with no task instance: the task resumes in the worker, as before."""
    asset = BrainHook().submit_file(speech.file(0), async_=True)
    (event,) = run_trigger(rebuild(BrainAssetTrigger(asset.asset_id, poll_interval=0.2, end_task=END_TASK)))
    assert event["status"] == "done" and raise_for_event(event) == asset.asset_id


def test_a_task_whose_result_cannot_be_stored_resumes_in_a_worker(brain_conn, speech, caplog, capsys):
    """Outside a triggerer no supervisor takes the XComs: the trigger says so and resumes the task, which then
    stores its result itself. Nothing is lost."""
    asset = BrainHook().submit_file(speech.file(0), async_=True)
    trigger = rebuild(BrainAssetTrigger(asset.asset_id, poll_interval=0.2, end_task=END_TASK))
    trigger.task_instance = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)
    (event,) = run_trigger(trigger)
    assert event["status"] == "done" and raise_for_event(event) == asset.asset_id
    assert "Could not end the task in the triggerer" in caplog.text + capsys.readouterr().out
