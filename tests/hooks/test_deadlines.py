"""Waits keep their deadlines and end (#22): a server asking for ``Retry-After: 300`` does not carry a wait past
its deadline, a listing whose paging does not advance is an error rather than a loop, and an item the listing
shows in a form we cannot read fails only its own wait."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_brain.exceptions import BrainAPIError, BrainTimeout
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.triggers.asset import BrainAssetTrigger
from tests.fixtures.faults import Fault

#: A server that is down and asks clients to come back in five minutes.
FIVE_MINUTES = {"Retry-After": "300"}
DEADLINE = 8.0
POLL = 2.0


def test_a_sync_wait_ends_within_a_poll_interval_of_its_deadline(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url)
    fault_proxy.fail_for(120, status=503, headers=FIVE_MINUTES)
    started = time.monotonic()
    with pytest.raises(BrainTimeout):
        BrainHook().wait_for_asset("0123456789abcdef", poll_interval=POLL, timeout=DEADLINE)
    took = time.monotonic() - started
    # Within a poll interval of the deadline; the last half second is the event loop's and the test's own
    # scheduling on a busy machine (a run beside other suites measured 10.01 s for 8 + 2).
    assert DEADLINE - 0.5 <= took <= DEADLINE + POLL + 0.5, took
    assert len(fault_proxy.requests_to("/assets/")) >= 2, "it polled while it waited"


def test_a_batch_wait_ends_within_a_poll_interval_of_its_deadline(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url)
    fault_proxy.fail_for(120, status=503, headers=FIVE_MINUTES)
    started = time.monotonic()
    settled = BrainHook().wait_for_assets(
        ["0123456789abcdef", "fedcba9876543210"], poll_interval=POLL, timeout=DEADLINE
    )
    took = time.monotonic() - started
    assert settled == {}
    # Within a poll interval of the deadline; the last half second is the event loop's and the test's own
    # scheduling on a busy machine (a run beside other suites measured 10.01 s for 8 + 2).
    assert DEADLINE - 0.5 <= took <= DEADLINE + POLL + 0.5, took


def test_a_trigger_ends_within_a_poll_interval_of_its_deadline(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url)
    fault_proxy.fail_for(120, status=503, headers=FIVE_MINUTES)
    trigger = BrainAssetTrigger("0123456789abcdef", poll_interval=POLL, end_time=time.time() + DEADLINE)

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    started = time.monotonic()
    payload = asyncio.run(asyncio.wait_for(first_event(), 60))
    took = time.monotonic() - started
    assert payload["status"] == "timeout", payload
    # Within a poll interval of the deadline; the last half second is the event loop's and the test's own
    # scheduling on a busy machine (a run beside other suites measured 10.01 s for 8 + 2).
    assert DEADLINE - 0.5 <= took <= DEADLINE + POLL + 0.5, took


def test_a_listing_that_repeats_its_offset_is_an_error(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url)
    page = b'{"results": [{"asset_id": "0123456789abcdef", "status": "done", "created": "2026-12-05T00:00:00Z"}], '
    fault_proxy.add(Fault("status", status=200, body=page + b'"next_offset": 0}', path_prefix="/assets?"))
    with pytest.raises(BrainAPIError, match="does not move past"):
        list(BrainHook().list_assets())
    assert len(fault_proxy.requests_to("/assets?")) == 1


def test_a_listing_with_an_unknown_status_fails_only_that_assets_wait(brain_conn, fault_proxy, speech):
    """Two triggers share the connection's poller; a proxy rewrites one asset's status to one the contract
    does not know. That trigger ends failed, naming why; the other's wait ends done."""
    brain_conn(url=fault_proxy.url)
    hook = BrainHook()
    ids = [hook.submit_file(speech.file(i), async_=True).asset_id for i in range(2)]
    bad = b'{"results": [{"asset_id": "%s", "status": "paused", "created": "2026-12-05T00:00:00Z"}]}' % ids[0].encode()
    fault_proxy.add(Fault("status", status=200, body=bad, path_prefix="/assets?"))

    async def both() -> list[dict]:
        async def first(trigger: BrainAssetTrigger) -> dict:
            async for event in trigger.run():
                return event.payload
            raise AssertionError("no event")

        return await asyncio.gather(*(first(BrainAssetTrigger(i, poll_interval=0.3)) for i in ids))

    broken, healthy = asyncio.run(asyncio.wait_for(both(), 120))
    assert broken["status"] == "failed" and "could not be read" in broken["reason"], broken
    assert "paused" in broken["reason"]
    assert healthy["status"] == "done", healthy
