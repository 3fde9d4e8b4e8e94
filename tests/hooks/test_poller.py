"""Coalesced polling: many waits on one connection cost one listing request per interval, measured at the
server's access log, and each waiter still hears of its own asset within about one interval."""

from __future__ import annotations

import asyncio
import importlib
import re
import time

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import parse_api_time
from airflow_provider_brain.triggers.asset import BrainAssetTrigger
from airflow_provider_brain.triggers.batch import BrainBatchTrigger
from tests.fixtures.brain import slow_default_brain
from tests.fixtures.faults import Fault, FaultProxy

LATENCY = 8.0
HELD = 4.0  # Seconds the unreadable-item test's assets stay processing.
POLL = 1.0
REFUSED_URL = "http://127.0.0.1:9/gone.wav"  # Fails at once; --min-latency keeps it processing meanwhile.
ACCESS = re.compile(r"brain_local\.access: (\w+) (\S+) (\d+)")


@pytest.fixture
def slow_brain(tmp_path, monkeypatch):
    with slow_default_brain(
        tmp_path / "data", monkeypatch, LATENCY, workers=2, extra_args=["--max-queue", "5000"]
    ) as server:
        yield server


def requests_since(server, offset: int) -> list[tuple[str, str]]:
    text = server.log_text()[offset:]
    return [(m.group(1), m.group(2)) for m in ACCESS.finditer(text)]


def submit_many(server, count: int, speech) -> tuple[list[str], list[str]]:
    """``count`` assets that will fail (unreachable media) and two that will be done, all held processing."""
    hook = BrainHook()
    done = [hook.submit_file(speech.file(i), async_=True).asset_id for i in range(2)]
    failing = [hook.submit_url(REFUSED_URL, async_=True).asset_id for _ in range(count)]
    return done, failing


@pytest.mark.alone  # Asserts how soon each waiter hears of its asset: about one interval, measured in wall time.
def test_many_concurrent_triggers_share_one_listing_per_interval(slow_brain, speech):
    done, failing = submit_many(slow_brain, 200, speech)
    offset = len(slow_brain.log_text())
    heard: dict[str, tuple[dict, float]] = {}

    async def wait_one(asset_id: str) -> None:
        async for event in BrainAssetTrigger(asset_id, poll_interval=POLL, end_time=time.time() + 120).run():
            heard[asset_id] = (event.payload, time.time())

    async def wait_all() -> None:
        await asyncio.wait_for(asyncio.gather(*(wait_one(a) for a in done + failing)), 120)

    started = time.time()
    asyncio.run(wait_all())
    elapsed = time.time() - started

    assert {a: heard[a][0]["status"] for a in done} == dict.fromkeys(done, "done")
    assert {a: heard[a][0]["status"] for a in failing} == dict.fromkeys(failing, "failed")
    reason = BrainHook().get_asset(failing[0]).error
    assert reason and all(heard[a][0]["message"].endswith(reason) for a in failing)
    # At the server: listing pages, about one per interval, and almost no request per asset.
    seen = requests_since(slow_brain, offset)
    listings = [path for method, path in seen if method == "GET" and path == "/assets"]
    per_asset = [path for method, path in seen if method == "GET" and path.startswith("/assets/")]
    assert len(listings) <= elapsed / POLL + 2, (len(listings), elapsed)
    assert len(per_asset) <= 4, per_asset
    assert len(listings) + len(per_asset) < len(done + failing) / 10
    # Each waiter heard of its asset within about one interval of the server marking it finished.
    finished = {a.asset_id: parse_api_time(a.completed) for a in BrainHook().list_assets(include_unfinished=True)}
    late = [a for a in done + failing if finished[a] and finished[a].timestamp() > started]
    assert len(late) >= 50, "most assets should finish while the triggers wait"
    delays = {a: heard[a][1] - finished[a].timestamp() for a in late}
    assert max(delays.values()) <= POLL + 1.5, sorted(delays.values())[-5:]


def test_batch_trigger_and_a_restart_mid_wait(slow_brain, speech):
    """A triggerer restart mid-wait: the serialised trigger, rebuilt in a new event loop, hears every asset."""
    done, failing = submit_many(slow_brain, 30, speech)
    trigger = BrainBatchTrigger(done + failing, poll_interval=POLL, end_time=time.time() + 120)
    path, kwargs = trigger.serialize()
    assert all(isinstance(a, str) for a in kwargs["asset_ids"])

    async def first_life() -> None:
        async for _ in trigger.run():
            raise AssertionError("no event before the assets are done")

    with pytest.raises(TimeoutError):  # The triggerer dies after about a second of waiting.
        asyncio.run(asyncio.wait_for(first_life(), 1.5))
    module, _, name = path.rpartition(".")
    reborn = getattr(importlib.import_module(module), name)(**kwargs)

    async def second_life() -> list[dict]:
        return [event.payload async for event in reborn.run()]

    (event,) = asyncio.run(asyncio.wait_for(second_life(), 60))
    assert event["status"] == "done" and event["processing"] == []
    assert sorted(event["failed"]) == sorted(failing)
    assert event["message"] == f"2 of {len(done + failing)} Brain assets done, {len(failing)} failed"


def test_batch_trigger_times_out_naming_what_is_left(slow_brain, speech):
    done, failing = submit_many(slow_brain, 3, speech)
    trigger = BrainBatchTrigger(done + failing, poll_interval=POLL, end_time=time.time() + 1.0)

    async def run() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(run(), 30))
    assert event["status"] == "timeout" and sorted(event["processing"]) == sorted(done + failing)


def test_sync_wait_for_many_assets(slow_brain, speech):
    done, failing = submit_many(slow_brain, 50, speech)
    offset = len(slow_brain.log_text())
    settled = BrainHook().wait_for_assets(done + failing, poll_interval=POLL, timeout=60)
    assert {a: settled[a].status.value for a in done} == dict.fromkeys(done, "done")
    assert all(settled[a].is_failed and settled[a].error for a in failing)
    seen = requests_since(slow_brain, offset)
    assert len([p for m, p in seen if p.startswith("/assets/")]) == 0
    assert len([p for m, p in seen if p == "/assets"]) <= LATENCY / POLL + 3


def test_deleted_asset_ends_its_wait_as_failed(slow_brain, speech):
    hook = BrainHook()
    kept = hook.submit_url(REFUSED_URL, async_=True).asset_id
    gone = hook.submit_url(REFUSED_URL, async_=True).asset_id
    hook.delete_asset(gone)
    settled = hook.wait_for_assets([kept, gone], poll_interval=POLL, timeout=60)
    assert settled[gone].is_failed and "no longer exists" in (settled[gone].error or "")
    assert settled[kept].is_failed


def test_an_unreadable_listing_item_fails_only_its_own_wait(brain_conn, tmp_path, monkeypatch, speech):
    """One watched item the listing shows in a form we cannot read fails that file; the healthy asset's wait on
    the same connection (and the same poller) still ends done. Both stay processing for HELD seconds (a short
    file, held by --min-latency), so the first poll finds them unfinished."""
    with slow_default_brain(tmp_path / "held", monkeypatch, HELD) as server:
        fault_proxy = FaultProxy(server.url).start()
        try:
            unreadable_item_fails_only_its_own_wait(brain_conn, fault_proxy, speech)
        finally:
            fault_proxy.stop()


def unreadable_item_fails_only_its_own_wait(brain_conn, fault_proxy, speech) -> None:
    brain_conn(url=fault_proxy.url)
    hook = BrainHook()
    ids = [hook.submit_file(speech.file(i), async_=True).asset_id for i in range(2)]
    bad_page = b'{"results": [{"asset_id": "%s", "status": "processing", "duration": "n/a"}]}' % ids[0].encode()
    fault_proxy.add(Fault("status", status=200, body=bad_page, path_prefix="/assets"))

    async def run() -> list[dict]:
        return [event.payload async for event in BrainBatchTrigger(ids, poll_interval=0.2).run()]

    (event,) = asyncio.run(asyncio.wait_for(run(), 120))
    assert event["status"] == "done", event["message"]
    assert list(event["failed"]) == [ids[0]] and "could not be read" in event["failed"][ids[0]]
    assert "1 of 2 Brain assets done, 1 failed" in event["message"]


def test_the_poller_reads_its_connection_again(brain_conn, fault_proxy, speech, monkeypatch):
    """A long-lived poller (the triggerer's) takes a changed connection without a refusal to prompt it, as the
    shared S3 hook renews itself: here the connection moves to the proxy between two waits."""
    from airflow_provider_brain.hooks import poller as poller_module

    monkeypatch.setattr(poller_module, "RENEW_SECONDS", 0.0)
    brain_conn()
    hook = BrainHook()
    first, second = (hook.submit_file(speech.file(i), async_=True).asset_id for i in range(2))

    async def run() -> list[tuple[str, str | None]]:
        shared = poller_module.AssetPoller(BrainHook())
        ends = [await shared.wait(first, 0.2)]
        brain_conn(url=fault_proxy.url)
        ends.append(await shared.wait(second, 0.2))
        return [(asset.status.value, asset.error) for asset in ends]

    ends = asyncio.run(asyncio.wait_for(run(), 120))
    assert [status for status, _ in ends] == ["done", "done"], f"(status, error) of each wait: {ends}"
    assert fault_proxy.requests_to("/assets"), "the second wait polled through the connection's new URL"
