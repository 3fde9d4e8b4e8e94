"""Triggers with ``cancel_on_kill``: what the triggerer does when a user ends a deferred task (it cancels the
trigger's run, then awaits ``on_kill``), against a real Brain server whose assets stay processing."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.triggers.asset import BrainAssetTrigger
from airflow_provider_brain.triggers.batch import BrainBatchTrigger
from tests.fixtures.brain import slow_default_brain


@pytest.fixture
def slow_brain(tmp_path, monkeypatch):
    with slow_default_brain(tmp_path / "data", monkeypatch, 120) as server:
        yield server


def submit(speech, n: int) -> list[str]:
    hook = BrainHook()
    return [hook.submit_file(speech.file(i), async_=True).asset_id for i in range(n)]


def live_ids(server) -> set[str]:
    with server.client() as client:
        return {a["asset_id"] for a in client.get("/assets", params={"done": "false"}).json()["results"]}


def end_like_a_user(trigger, *, user_action: bool = True) -> None:
    """Run the trigger a moment, cancel it, then (for a user's action, not a triggerer stopping) call
    ``on_kill``, as Airflow 3.3's triggerer does."""

    async def scenario():
        running = asyncio.ensure_future(anext(trigger.run()))
        await asyncio.sleep(1.5)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        if user_action:
            await trigger.on_kill()

    asyncio.run(scenario())


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_asset_trigger_deletes_its_asset_only_when_asked(slow_brain, speech, cancel_on_kill):
    (asset_id,) = submit(speech, 1)
    end_like_a_user(BrainAssetTrigger(asset_id, poll_interval=0.5, cancel_on_kill=cancel_on_kill))
    assert (asset_id in live_ids(slow_brain)) is not cancel_on_kill


def test_batch_trigger_deletes_the_assets_still_processing(slow_brain, speech):
    ids = submit(speech, 3)
    end_like_a_user(BrainBatchTrigger(ids, poll_interval=0.5, cancel_on_kill=True))
    assert live_ids(slow_brain).isdisjoint(ids)


def test_a_restart_is_not_a_kill(slow_brain, speech):
    """A triggerer that stops cancels the run but calls no on_kill: the asset stays, for the next triggerer."""
    (asset_id,) = submit(speech, 1)
    end_like_a_user(BrainAssetTrigger(asset_id, poll_interval=0.5, cancel_on_kill=True), user_action=False)
    assert asset_id in live_ids(slow_brain)
