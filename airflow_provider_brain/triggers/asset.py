"""Wait for a Brain asset in the triggerer, so the wait holds no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_brain import metrics
from airflow_provider_brain.exceptions import redact_urls
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.cancel import adelete_quietly
from airflow_provider_brain.hooks.shared import shared_poller
from airflow_provider_brain.models import Asset, validate_asset_id
from airflow_provider_brain.progress import WaitProgress
from airflow_provider_brain.triggers.events import AssetEvent, EventStatus
from airflow_provider_brain.xcoms import publish_asset, store_result

#: The event statuses, by their old names (``EventStatus`` is the contract).
DONE, FAILED, TIMEOUT, ERROR = EventStatus.DONE, EventStatus.FAILED, EventStatus.TIMEOUT, EventStatus.ERROR


class BrainAssetTrigger(BaseTrigger):
    """Wait for a Brain asset in the triggerer until it is done or failed, or the deadline passes.

    Its polls go through the connection's shared ``AssetPoller``: a thousand of these triggers in one
    triggerer cost one ``GET /assets`` page per interval, not a thousand requests.

    It serialises only primitives (connection id, asset id, poll interval and an absolute
    wall-clock deadline as epoch seconds), so a triggerer restart resumes the same wait with
    the same deadline. Transient HTTP errors are retried by the hook; anything else becomes
    one ``error`` event. Events carry the asset id, a status and a message: never the transcript.

    .. code-block:: python

        self.defer(
            trigger=BrainAssetTrigger(asset_id=asset_id, poll_interval=10, end_time=time.time() + 3600),
            method_name="execute_complete",
        )

    :param asset_id: the asset to wait for.
    :param brain_conn_id: the Brain connection.
    :param poll_interval: seconds between two polls.
    :param end_time: wall-clock deadline (``time.time()`` seconds); ``None`` waits for ever.
    :param cancel_on_kill: delete the asset when a user ends the deferred task (Airflow 3.3 calls ``on_kill``
        then, and not on a triggerer restart). At the deadline the resumed task decides (it names the wait).
    :param end_task: when the asset is done, end the deferred task here instead of resuming it in a worker:
        store the return value ``BrainTranscribeOperator`` would (``{"source", "times", "return_transcript"}``
        say what it holds) and the extra link's URL, then yield ``TaskSuccessEvent``. A worker run less per
        file. A failure, a deadline or an error still resumes the task, which decides (retries included);
        so does a done asset whose result could not be stored, and a trigger run without a task instance
        (``airflow dags test``).
    """

    def __init__(
        self,
        asset_id: str,
        brain_conn_id: str = BrainHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        cancel_on_kill: bool = False,
        end_task: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is untyped
        self.asset_id = validate_asset_id(asset_id)
        self.brain_conn_id = brain_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.end_task = dict(end_task) if end_task else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "asset_id": self.asset_id,
                "brain_conn_id": self.brain_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "end_task": self.end_task,
            },
        )

    def _event(self, status: EventStatus, message: str, reason: str | None = None) -> TriggerEvent:
        return TriggerEvent(AssetEvent(status, self.asset_id, message, reason).payload())

    async def on_kill(self) -> None:
        """A user ended the deferred task (marked it failed or success, or cleared it): cancel its asset."""
        await cancel_asset(self, self.asset_id, "the task was ended by a user")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Every trigger of this connection in the triggerer's event loop shares one poller (one listing
        # request per interval for all of them) and one HTTP client.
        poller = shared_poller(self.brain_conn_id)
        self.log.info("BrainAssetTrigger waiting for asset %s, polling every %g s", self.asset_id, self.poll_interval)
        try:
            asset = await self._wait(poller.wait_until(self.asset_id, self.poll_interval, self.end_time))
            if asset is None:
                yield self._event(TIMEOUT, f"Brain asset {self.asset_id} was still processing at the deadline")
            elif asset.is_done:
                yield await self._end_task(poller.hook, asset) or self._event(
                    DONE, f"Brain asset {self.asset_id} is done"
                )
            else:
                reason = redact_urls(asset.error or "no reason given")
                yield self._event(FAILED, f"Brain asset {self.asset_id} failed: {reason}", reason)
        except Exception as err:  # One event, with a message, rather than a crashed trigger.
            yield self._event(ERROR, f"Waiting for Brain asset {self.asset_id} failed: {type(err).__name__}: {err}")

    async def _wait(self, wait: Any) -> Asset | None:
        """Await the poller's wait, with a progress line in the log once a progress interval and a final one."""
        progress = WaitProgress(self.log, 1)
        task: asyncio.Task[Asset | None] = asyncio.ensure_future(wait)
        try:
            while not (await asyncio.wait({task}, timeout=progress.due_in()))[0]:
                progress.update(0, 0)
        finally:
            task.cancel()
        asset = task.result()
        progress.final(int(asset is not None and asset.is_done), int(asset is not None and asset.is_failed))
        return asset

    async def _end_task(self, hook: BrainHook, asset: Asset) -> TaskSuccessEvent | None:
        """End the task here (``end_task``): its return value and link stored, ``TaskSuccessEvent``; ``None``
        (resume in a worker, which does the same) if not asked, not possible or if storing failed."""
        ti = getattr(self, "task_instance", None)
        if not self.end_task or ti is None:
            return None
        try:
            await publish_asset(ti, hook, self.asset_id, link_only=True)  # The worker pushed the id and URL.
            done = await store_result(
                ti,
                hook,
                asset,
                source=str(self.end_task.get("source") or ""),
                times=bool(self.end_task.get("times")),
                return_transcript=bool(self.end_task.get("return_transcript")),
            )
        except Exception as err:
            self.log.warning(
                "Could not end the task in the triggerer (%s: %s); it resumes in a worker",
                type(err).__name__,
                redact_urls(str(err)),
            )
            return None
        metrics.done(metrics.task_tags(ti), [done])
        self.log.info(
            "Brain asset %s: done, %.1f s of audio, %d words; the task ends here, in the triggerer",
            done.asset_id,
            done.duration or 0.0,
            done.word_count,
        )
        return TaskSuccessEvent()


async def cancel_asset(trigger: Any, asset_id: str, why: str) -> None:
    """Delete ``asset_id`` if ``trigger.cancel_on_kill``, best effort (logged, never raised): the API's only way to
    stop Brain working on audio nobody waits for any more."""
    if getattr(trigger, "cancel_on_kill", False):
        await adelete_quietly(shared_poller(trigger.brain_conn_id).hook, trigger.log, asset_id, why)


def raise_for_event(event: dict[str, Any] | None, *, timeout: float | None = None) -> str:
    """Turn a trigger event back into the task's outcome: return the asset id if done, else raise.

    Shared by the operator and the sensor so both check the event (``AssetEvent.parse``) and fail alike.
    """
    return AssetEvent.parse(event).outcome(timeout=timeout)
