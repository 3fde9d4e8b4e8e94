"""Send many files to Deepgram from the triggerer, a bounded number at a time, and store each result.

``DeepgramTranscribeBatchOperator(deferrable=True)`` defers to this trigger. Each file is what
``DeepgramTranscribeTrigger`` does for one (presign in the triggerer, ``alisten_url``, write the answer), run
under an ``asyncio.Semaphore`` of ``max_concurrency``, over one hook (one HTTP client). The event carries, for
each file that failed, its reason (URL query strings redacted); the results themselves are in the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_brain.deepgram_models import DeepgramResult
from airflow_provider_brain.deepgram_store import (
    await_delivery,
    presigned_put_url,
    still_to_deliver,
    stored_result,
    write_result,
)
from airflow_provider_brain.exceptions import redact_urls
from airflow_provider_brain.hooks.deepgram import DeepgramAnswerLost, DeepgramHook
from airflow_provider_brain.hooks.deepgram_calls import accepted
from airflow_provider_brain.sources import parse_s3_uri, presigned_get_url, shared_s3_hook


class DeepgramBatchTrigger(BaseTrigger):
    """Transcribe ``items`` (each ``{"source", "label", "location", "marker"}``, and ``request_id`` for a file an
    earlier try sent, whose callback is waited for; ``source`` an ``s3://`` URI or a
    URL, ``label`` what may be logged of it) with at most ``max_concurrency`` requests in flight; yields
    ``{"status": "done", "sent": n, "failed": {label: reason}}``. The results are in the store, not the event:
    the task reads their references from there.

    :param result_delivery: ``"callback"`` (each request carries a presigned PUT URL of its item's location, and a
        file holds its place until its result is there) or ``"answer"`` (see ``DeepgramTranscribeTrigger``).
    :param deferred_at: when the task deferred. A run after a triggerer restart finds the files its earlier run
        sent since then and does not send them again: with a callback it waits for their results; without one it
        fails them (``DeepgramAnswerLost``) rather than pay for them twice.
    """

    def __init__(
        self,
        *,
        items: list[dict[str, str]],
        max_concurrency: int,
        deadline: float,
        deepgram_conn_id: str = DeepgramHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        store_conn_id: str | None = "aws_default",
        presigned_url_expires: int = 3600,
        options: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
        deferred_at: float | None = None,
        result_delivery: str = "answer",
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is untyped
        self.items = [dict(item) for item in items]
        self.max_concurrency = max_concurrency
        self.deadline = deadline
        self.deepgram_conn_id = deepgram_conn_id
        self.aws_conn_id = aws_conn_id
        self.store_conn_id = store_conn_id
        self.presigned_url_expires = presigned_url_expires
        self.options = dict(options or {})
        self.tags = list(tags or [])
        self.deferred_at = deferred_at
        self.result_delivery = result_delivery
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "items": self.items,
                "max_concurrency": self.max_concurrency,
                "deadline": self.deadline,
                "deepgram_conn_id": self.deepgram_conn_id,
                "aws_conn_id": self.aws_conn_id,
                "store_conn_id": self.store_conn_id,
                "presigned_url_expires": self.presigned_url_expires,
                "options": self.options,
                "tags": self.tags,
                "deferred_at": self.deferred_at,
                "result_delivery": self.result_delivery,
                "poll_interval": self.poll_interval,
            },
        )

    async def _url(self, source: str) -> str:
        if not source.startswith("s3://"):
            return source
        bucket, key = parse_s3_uri(source)
        s3 = await asyncio.to_thread(shared_s3_hook, self.aws_conn_id)
        return await asyncio.to_thread(
            presigned_get_url, s3, bucket, key, expires_in=self.presigned_url_expires, mask=False
        )

    async def _sent_before(self, hook: DeepgramHook) -> dict[str, dict[str, Any]]:
        """The requests an earlier run of this trigger (same deferral: the triggerer restarted) sent, by marker;
        with a callback, any since the deferral (see ``DeepgramTranscribeTrigger._earlier_request``)."""
        if self.deferred_at is None:
            return {}
        since = datetime.fromtimestamp(self.deferred_at, UTC)
        markers = [item["marker"] for item in self.items]
        created_after = None if self.result_delivery == "callback" else since
        return await hook.afind_requests(markers, since=since, created_after=created_after)

    async def _one(
        self, hook: DeepgramHook, item: Mapping[str, str], gate: asyncio.Semaphore, earlier: Mapping[str, Any] | None
    ) -> None:
        by_callback = self.result_delivery == "callback"
        if not by_callback and accepted(earlier):
            # Accepted by this trigger's earlier run, whose answer the restart lost: not paid for twice.
            assert earlier is not None
            raise DeepgramAnswerLost(str(earlier.get("request_id")), item["marker"], "the triggerer stopped")
        common: dict[str, Any] = {"options": self.options, "tags": self.tags, "idempotency_key": item["marker"]}
        async with gate:
            if by_callback:
                result = await self._by_callback(hook, item, earlier, common)
            else:
                result = await hook.alisten_url(await self._url(item["source"]), **common)
                await asyncio.to_thread(write_result, item["location"], result.raw, self.store_conn_id)
        self.log.info("Deepgram request %s: %s, %d words", result.request_id, item["label"], result.word_count)

    async def _by_callback(
        self, hook: DeepgramHook, item: Mapping[str, str], earlier: Mapping[str, Any] | None, common: dict[str, Any]
    ) -> DeepgramResult:
        """One file's result: stored already, or an earlier request's (an earlier try's, given in the item, or this
        trigger's before a restart), or a new request's, waited for."""
        location = item["location"]
        stored = await asyncio.to_thread(stored_result, location, self.store_conn_id)
        if stored is not None:
            return stored
        request_id = item.get("request_id") or await asyncio.to_thread(
            still_to_deliver, earlier, location, self.store_conn_id
        )
        if request_id is None:
            expires = int(self.deadline - time.time())
            put = await asyncio.to_thread(presigned_put_url, location, self.store_conn_id, expires_in=expires)
            request_id = await hook.asubmit_url(await self._url(item["source"]), callback=put, **common)
        return await await_delivery(
            location, self.store_conn_id, request_id, deadline=self.deadline, poll_interval=self.poll_interval
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = DeepgramHook(deepgram_conn_id=self.deepgram_conn_id)
        gate = asyncio.Semaphore(self.max_concurrency)
        tasks: list[asyncio.Future[None]] = []
        self.log.info("Sending %d file(s) to Deepgram, %d at a time", len(self.items), self.max_concurrency)
        try:
            remaining = max(0.0, self.deadline - time.time())
            await hook.aget_transport()  # built once here, not by each file's first request at once
            sent_before = await self._sent_before(hook)
            tasks = [
                asyncio.ensure_future(self._one(hook, item, gate, sent_before.get(item["marker"])))
                for item in self.items
            ]
            done, pending = await asyncio.wait(tasks, timeout=remaining) if tasks else (set(), set())
            await _cancel(pending)
            failed = {}
            for item, task in zip(self.items, tasks, strict=True):
                if task in pending:
                    failed[item["label"]] = "no answer before the task's timeout"
                elif (exc := task.exception()) is not None:
                    failed[item["label"]] = redact_urls(f"{type(exc).__name__}: {exc}")
            yield TriggerEvent({"status": "done", "sent": len(self.items), "failed": failed})
        finally:
            # Also when the triggerer stops this trigger: no request may still use the client being closed.
            await _cancel([task for task in tasks if not task.done()])
            await hook.aclose()


async def _cancel(tasks: Collection[asyncio.Future[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended (its request closed), so the hook is closed after them."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
