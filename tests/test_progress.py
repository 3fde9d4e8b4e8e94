"""Progress lines of the per-file waits (the worker's ``wait_for_asset``, the deferred ``BrainAssetTrigger`` and
the sensor in poke mode), in-process against a local Brain server that holds each asset processing for a few
seconds, with ``PROGRESS_EVERY_SECONDS`` lowered to one second (the minute-long runs are
tests/operators/test_progress_and_metrics.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from airflow_provider_brain import progress
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.sensors.asset import BrainAssetSensor
from airflow_provider_brain.triggers.asset import BrainAssetTrigger
from tests.fixtures.brain import slow_default_brain

LATENCY = 4.0
STILL = "Brain progress (still waiting): 0 done, 0 failed, 1 still processing, of 1; waited"
ENDED = "Brain progress (wait ended): 1 done, 0 failed, 0 still processing, of 1; waited"


@pytest.fixture
def held_asset(tmp_path, monkeypatch, speech):
    monkeypatch.setattr(progress, "PROGRESS_EVERY_SECONDS", 1.0)
    with slow_default_brain(tmp_path / "data", monkeypatch, LATENCY):
        yield BrainHook().submit_file(speech.file(0), async_=True).asset_id


def assert_progress_then_tally(caplog, capsys) -> None:
    """The progress lines, from the standard logger (caplog) or Airflow's structured task logger (stdout)."""
    messages = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
    found = [m[m.index("Brain progress") :] for m in messages if "Brain progress" in m]
    assert found and found[0].startswith(STILL), found
    assert found[-1].startswith(ENDED) and sum(line.startswith(ENDED) for line in found) == 1, found
    # At most one line a second (the lowered interval) for a wait of about LATENCY seconds, not one per poll.
    assert 1 <= len(found) - 1 <= LATENCY + 2


def test_worker_wait_for_asset(held_asset, caplog, capsys):
    log = logging.getLogger("test.progress.worker")
    with caplog.at_level(logging.INFO, logger="test.progress.worker"):
        asset = BrainHook().wait_for_asset(
            held_asset, poll_interval=0.2, timeout=120, progress=progress.WaitProgress(log, 1)
        )
    assert asset.is_done
    assert_progress_then_tally(caplog, capsys)


def test_deferred_asset_trigger(held_asset, caplog, capsys):
    trigger = BrainAssetTrigger(asset_id=held_asset, poll_interval=0.2)

    async def first_event():
        async for event in trigger.run():
            return event

    with caplog.at_level(logging.INFO):
        event = asyncio.run(asyncio.wait_for(first_event(), 120))
    assert event.payload["status"] == "done"
    assert_progress_then_tally(caplog, capsys)


def test_sensor_in_poke_mode(held_asset, caplog, capsys):
    sensor = BrainAssetSensor(task_id="wait", asset_id=held_asset, poke_interval=0.2, timeout=120, mode="poke")
    context = {"ti": SimpleNamespace(dag_id="d", task_id="wait")}
    with caplog.at_level(logging.INFO):
        while not sensor.poke(context):
            asyncio.run(asyncio.sleep(0.2))
    assert_progress_then_tally(caplog, capsys)
