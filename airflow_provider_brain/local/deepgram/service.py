"""What the Deepgram dialect keeps for a running server: its request history and its pending callbacks.

A listen request with ``callback`` is answered at once; a background task waits for its asset, then sends
the full ``ListenV1Response`` to the callback URL (POST, or PUT with ``callback_method=put``), trying again
with backoff on a connection error or a 5xx. A request whose callback was not delivered when the server
stopped is taken up again at the next start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from contextlib import suppress
from pathlib import Path
from typing import Any

from airflow_provider_brain.local.assets import DONE, Asset
from airflow_provider_brain.local.callbacks import deliver_callback
from airflow_provider_brain.local.deepgram.answer import ListenOptions, listen_response
from airflow_provider_brain.local.deepgram.records import ListenRecord, ListenRecords
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.state import Brain

log = logging.getLogger("brain_local.deepgram")

CALLBACK_ATTEMPTS = 5
#: Seconds before the first retry of a callback; doubled for each one after.
CALLBACK_BACKOFF = 1.0


def file_sha256(path: Path) -> str:
    """The SHA-256 of a media file in hex (blocking: on a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class DeepgramDialect:
    """The dialect's state in one server run (``app.state.deepgram``)."""

    def __init__(self, brain: Brain) -> None:
        self.brain = brain
        self.records = ListenRecords(brain.settings.data_dir)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Take up the callbacks a previous run did not deliver."""
        for record in await self.brain.db.call(self.records.pending_callbacks):
            self.deliver_later(record)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(self.records.close)

    async def sha256_of(self, record: ListenRecord, asset: Asset) -> str:
        """The media's SHA-256, computed once from the stored media and kept with the request."""
        if record.sha256 is not None:
            return record.sha256
        media = self.brain.store.media_file(asset)
        if media is None:
            return ""
        record.sha256 = await asyncio.to_thread(file_sha256, media)
        await self.brain.db.call(self.records.set_sha256, record.request_id, record.sha256)
        return record.sha256

    async def wait_for(self, asset_id: str) -> Asset | None:
        """The asset once it is no longer processing (None if it is gone)."""
        dispatcher = self.brain.dispatcher
        assert dispatcher is not None
        await dispatcher.wait_for(asset_id)
        asset: Asset | None = await self.brain.db.call(self.brain.store.get, asset_id)
        return asset

    async def answer(self, record: ListenRecord, asset: Asset) -> dict[str, Any]:
        """The ``ListenV1Response`` of a done asset, or an ``ApiError`` saying why it failed."""
        if asset.status != DONE:
            raise ApiError(asset.error_status or 500, asset.error or "recognition failed")
        sha256 = await self.sha256_of(record, asset)
        return listen_response(
            asset, record.request_id, record.created, sha256, ListenOptions.from_json(record.options)
        )

    def deliver_later(self, record: ListenRecord) -> None:
        task = asyncio.create_task(self._deliver(record), name=f"deepgram-callback-{record.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, record: ListenRecord) -> None:
        assert record.callback is not None
        asset = await self.wait_for(record.asset_id)
        if asset is None:
            await self.brain.db.call(self.records.callback_done, record.request_id)
            return
        try:
            body = await self.answer(record, asset)
        except ApiError as exc:
            body = {"request_id": record.request_id, "err_code": "REQUEST_FAILED", "err_msg": exc.message}
        settings = self.brain.settings
        await deliver_callback(
            record.callback,
            body,
            what="callback",
            label=f"listen {record.request_id}",
            allow_private_urls=settings.allow_private_urls,
            timeout=settings.callback_timeout,
            attempts=CALLBACK_ATTEMPTS,
            backoff=CALLBACK_BACKOFF,
            log=log,
            method=(record.callback_method or "post").upper(),
        )
        await self.brain.db.call(self.records.callback_done, record.request_id)


def dialect_of(brain_app_state: Any) -> DeepgramDialect:
    dialect: DeepgramDialect = brain_app_state.deepgram
    return dialect
