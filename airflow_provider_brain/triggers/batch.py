"""Wait for a whole batch of Brain assets in the triggerer: one trigger, one event, however many files."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_brain.exceptions import redact_urls
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.shared import shared_poller
from airflow_provider_brain.models import Asset, validate_asset_id
from airflow_provider_brain.progress import WaitProgress
from airflow_provider_brain.triggers.asset import cancel_asset
from airflow_provider_brain.triggers.events import BatchEvent, EventStatus


class BrainBatchTrigger(BaseTrigger):
    """Wait until every asset of a batch is done or failed, or the deadline passes; then one event.

    The waits go through the connection's shared ``AssetPoller``, so a batch of 10,000 assets costs about
    ten ``GET /assets`` pages per interval. It serialises only primitives (the ids, connection id, poll
    interval and a wall-clock deadline), so a triggerer restart resumes the same wait.

    The event: ``status`` ``done`` (every asset settled), ``timeout`` (some still processing at the
    deadline) or ``error`` (a failure no retry fixes, e.g. refused credentials); ``failed`` maps each
    failed asset id to the server's reason (query strings of URLs redacted); ``processing`` lists the ids
    still processing at a timeout; ``message`` says it in words. Never a transcript.

    :param asset_ids: the assets to wait for.
    :param brain_conn_id: the Brain connection.
    :param poll_interval: seconds between two polls.
    :param end_time: wall-clock deadline (``time.time()`` seconds); ``None`` waits for ever.
    :param cancel_on_kill: when a user ends the deferred task, delete the assets still processing.
    """

    def __init__(
        self,
        asset_ids: Sequence[str],
        brain_conn_id: str = BrainHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is untyped
        self.asset_ids = list(dict.fromkeys(validate_asset_id(a) for a in asset_ids))
        self.brain_conn_id = brain_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._settled: set[str] = set()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "asset_ids": list(self.asset_ids),
                "brain_conn_id": self.brain_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _note_settled(self, asset_id: str, wait: asyncio.Future[Asset]) -> None:
        if not wait.cancelled() and wait.exception() is None:
            self._settled.add(asset_id)

    async def on_kill(self) -> None:
        """A user ended the deferred batch task: delete its assets still processing (with ``cancel_on_kill``)."""
        for asset_id in self.asset_ids:
            if asset_id not in self._settled:
                await cancel_asset(self, asset_id, "the task was ended by a user")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        poller = shared_poller(self.brain_conn_id)
        count = len(self.asset_ids)
        self.log.info("BrainBatchTrigger waiting for %d assets, polling every %g s", count, self.poll_interval)
        waits = {
            asset_id: asyncio.ensure_future(poller.wait(asset_id, self.poll_interval)) for asset_id in self.asset_ids
        }
        for asset_id, wait in waits.items():
            wait.add_done_callback(functools.partial(self._note_settled, asset_id))
        try:
            progress = WaitProgress(self.log, count)
            await self._wait(waits, progress)
            progress.final(*_tally(waits))
            failed: dict[str, str] = {}
            processing: list[str] = []
            for asset_id, wait in waits.items():
                if not wait.done():
                    processing.append(asset_id)
                elif (err := wait.exception()) is not None:
                    message = f"Waiting for {count} Brain assets failed: {type(err).__name__}: {err}"
                    yield TriggerEvent(BatchEvent(EventStatus.ERROR, message).payload())
                    return
                else:
                    asset: Asset = wait.result()
                    if asset.is_failed:
                        failed[asset_id] = redact_urls(asset.error or "no reason given")
            status = EventStatus.TIMEOUT if processing else EventStatus.DONE
            message = f"{count - len(failed) - len(processing)} of {count} Brain assets done, {len(failed)} failed"
            if processing:
                message += f", {len(processing)} still processing at the deadline"
            yield TriggerEvent(BatchEvent(status, message, failed, processing).payload())
        finally:
            for wait in waits.values():
                wait.cancel()

    async def _wait(self, waits: Mapping[str, asyncio.Future[Asset]], progress: WaitProgress) -> None:
        """Until every wait ends or the deadline passes, with the counts in the log once a progress interval."""
        pending: set[asyncio.Future[Asset]] = set(waits.values())
        while pending:
            remaining = None if self.end_time is None else max(0.0, self.end_time - time.time())
            step = progress.due_in() if remaining is None else min(progress.due_in(), remaining)
            _, pending = await asyncio.wait(pending, timeout=step)
            if not pending or (remaining is not None and remaining <= step):
                return
            progress.update(*_tally(waits))


def _tally(waits: Mapping[str, asyncio.Future[Asset]]) -> tuple[int, int]:
    """How many of the waits ended with a done asset, and how many with a failed one."""
    ended = [w.result() for w in waits.values() if w.done() and not w.cancelled() and w.exception() is None]
    failed = sum(1 for asset in ended if asset.is_failed)
    return len(ended) - failed, failed
