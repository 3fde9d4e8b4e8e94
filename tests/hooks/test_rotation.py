"""A password rotation while waits go on (#22): Brain restarted with a new password, the Airflow connection
updated a moment later, and every wait (triggers sharing the triggerer's poller, a worker's wait) ends done,
with nothing restarted on the Airflow side."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.triggers.asset import BrainAssetTrigger
from airflow_provider_brain.triggers.batch import BrainBatchTrigger
from tests.fixtures.brain import start_brain_server
from tests.fixtures.connections import brain_connection_json

#: Assets stay processing this long: the rotation happens while every wait is under way.
LATENCY = 12.0


def set_connection(monkeypatch: pytest.MonkeyPatch, url: str, password: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", brain_connection_json(url, "demo", password))


def test_waits_survive_a_password_rotation(tmp_path, monkeypatch, speech):
    data_dir = tmp_path / "data"
    server = start_brain_server(
        data_dir, users=[("demo", "old-secret")], workers=1, extra_args=["--min-latency", str(LATENCY)]
    )
    try:
        set_connection(monkeypatch, server.url, "old-secret")
        hook = BrainHook()
        ids = [hook.submit_file(speech.file(i), async_=True).asset_id for i in range(4)]

        results: dict[str, object] = {}

        async def triggers() -> None:
            single = [BrainAssetTrigger(asset_id, poll_interval=0.5) for asset_id in ids[:2]]
            batch = BrainBatchTrigger(ids[2:3], poll_interval=0.5)

            async def first(trigger) -> dict:
                async for event in trigger.run():
                    return event.payload
                raise AssertionError("the trigger ended without an event")

            payloads = await asyncio.gather(*(first(t) for t in [*single, batch]))
            results["triggers"] = payloads

        def worker() -> None:
            try:
                results["worker"] = BrainHook().wait_for_asset(ids[3], poll_interval=0.5, timeout=120)
            except Exception as err:
                results["worker"] = err

        loop_thread = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(triggers(), 150)))
        worker_thread = threading.Thread(target=worker)
        loop_thread.start()
        worker_thread.start()
        time.sleep(2.0)  # every wait has polled with the old password by now

        server.stop()
        server = start_brain_server(
            data_dir,
            users=[("demo", "new-secret")],
            workers=1,
            port=server.port,
            extra_args=["--min-latency", str(LATENCY)],
        )
        time.sleep(2.0)  # the waits meet 401s: the connection still holds the old password
        set_connection(monkeypatch, server.url, "new-secret")

        loop_thread.join(160)
        worker_thread.join(160)
        assert not loop_thread.is_alive() and not worker_thread.is_alive()

        payloads = results["triggers"]
        assert [p["status"] for p in payloads] == ["done", "done", "done"], payloads
        assert payloads[2]["failed"] == {}
        worker_asset = results["worker"]
        assert not isinstance(worker_asset, Exception), worker_asset
        assert worker_asset.is_done and worker_asset.asset_id == ids[3]
        # The refusals really happened: the server logged 401s between the rotation and the update.
        assert " 401" in server.log_text()
    finally:
        server.stop()
