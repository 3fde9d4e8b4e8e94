"""Coalesced status polling: many waits on one Brain connection cost one listing request per interval.

A thousand triggers that each ``GET /assets/{id}`` every 10 s send Brain 100 requests a second; a real
service rate-limits that long before the triggerer runs out of CPU. Here every wait in a process that
shares a connection (every ``BrainAssetTrigger`` and ``BrainBatchTrigger`` in a triggerer's event loop, a
batch task waiting in a worker) asks one poller, and the poller learns the status of up to 1,000 assets
per request from ``GET /assets?done=false&limit=1000`` (newest first). It follows ``next_offset`` only as
far back as the oldest asset it watches, and fetches ``GET /assets/{id}`` for an id the listing did not
show (an older asset, a listing that lags) and for a failed asset, whose reason the listing omits.

``ListingScan`` (``hooks/listing.py``) is the decision, free of I/O, shared by the sync waits (``hooks/waits.py``)
and the async ``AssetPoller``; ``BrainHook``'s ``shared_poller`` hands every trigger of an event loop the same
poller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from airflow_provider_brain import metrics
from airflow_provider_brain.exceptions import BrainAuthError, BrainError, BrainNotFound
from airflow_provider_brain.hooks.listing import (
    DIRECT_FETCH_MAX,
    AuthGrace,
    ListingScan,
    deleted_asset,
    failed_asset,
    get_asset_call,
    unreadable,
)
from airflow_provider_brain.hooks.retry import is_retryable
from airflow_provider_brain.hooks.transport import Transport
from airflow_provider_brain.models import Asset, parse_api_time

#: How many ``GET /assets/{id}`` a cycle sends at once (ids the listing missed, failed assets' reasons).
FETCH_CONCURRENCY = 8
#: The longest the last check at a wait's deadline may take before the wait reports a timeout.
LAST_CHECK_SECONDS = 10.0
#: A polling cycle starts no retry after this long (or its interval, if longer): a ``Retry-After: 300`` is not
#: sat out inside one cycle while waits come and go; the next cycle asks again.
CYCLE_SECONDS = 30.0
#: The poller reads its connection again this often, so a change of URL, extras or password reaches a
#: long-lived triggerer without waiting for a refusal.
RENEW_SECONDS = 600.0


log = logging.getLogger(__name__)


class AsyncBrain(Protocol):
    """What the async poller needs of a hook: its transport, read with the async connection lookup."""

    brain_conn_id: str

    async def aget_transport(self) -> Transport: ...

    async def aclose(self) -> None: ...


HookT = TypeVar("HookT", bound=AsyncBrain)


class _Waiter:
    __slots__ = ("future", "poll_interval")

    def __init__(self, future: asyncio.Future[Asset], poll_interval: float) -> None:
        self.future = future
        self.poll_interval = poll_interval


class AssetPoller(Generic[HookT]):
    """One polling loop for every wait on one Brain connection in one event loop.

    ``await poller.wait(asset_id, poll_interval)`` returns the asset once it is done or failed (the
    listing's summary; fetch it for the transcript). The loop runs while someone waits, once per the
    shortest interval asked for, and ends with the last wait. An outage (connection errors, 429, 5xx past
    the hook's retries) is logged and waited out; an error no retry can fix (401, a bad answer) ends every
    wait with that error, and an item the listing shows in a form we cannot read ends only its own waits.
    Refused credentials are read again from the connection (``Transport``); while the connection still holds
    the refused ones, the waits go on for ``AUTH_GRACE_SECONDS``. A cancelled wait simply stops being watched.

    :param hook: the hook whose async client and connection every poll uses.
    """

    def __init__(self, hook: HookT) -> None:
        self.hook = hook
        self._auth = AuthGrace()
        self._renewed = time.monotonic()
        self._waiters: dict[str, list[_Waiter]] = {}
        self._created: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._interval = float("inf")

    async def wait(self, asset_id: str, poll_interval: float) -> Asset:
        """Wait until ``asset_id`` is done or failed and return it; checks begin with the poller's next cycle."""
        future: asyncio.Future[Asset] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, float(poll_interval))
        self._waiters.setdefault(asset_id, []).append(waiter)
        if waiter.poll_interval < self._interval:
            self._interval = waiter.poll_interval
            self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="brain-asset-poller")
        try:
            return await future
        finally:
            self._forget(asset_id, waiter)

    async def wait_until(self, asset_id: str, poll_interval: float, end_time: float | None) -> Asset | None:
        """``wait``, up to the wall-clock deadline ``end_time`` (``time.time()`` seconds; ``None``: for ever).

        ``None`` if the asset was still processing at the deadline. Wall-clock, not monotonic: a deadline a
        trigger serialised must survive a triggerer restart. One last fetch at the deadline, so an asset
        that finished just then is not a timeout.
        """
        if end_time is None:
            return await self.wait(asset_id, poll_interval)
        try:
            return await asyncio.wait_for(self.wait(asset_id, poll_interval), max(0.0, end_time - time.time()))
        except TimeoutError:
            pass
        check = get_asset_call(asset_id)
        try:
            transport = await self.hook.aget_transport()
            data = await transport.arequest(check, deadline=time.time() + min(poll_interval, LAST_CHECK_SECONDS))
        except BrainError as err:
            if not is_retryable(err):
                raise
            return None  # Brain is out at the deadline: the wait timed out, not failed.
        asset = Asset.from_json(data)
        return None if asset.is_processing else asset

    def _forget(self, asset_id: str, waiter: _Waiter) -> None:
        waiters = self._waiters.get(asset_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[asset_id]
                self._created.pop(asset_id, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters:
                started = loop.time()
                try:
                    await self._cycle()
                    self._auth.reset()
                except BrainError as err:
                    if is_retryable(err) or self._auth.tolerates(err):
                        log.warning("Checking %d Brain assets failed (%s); still waiting", len(self._waiters), err)
                    else:
                        await self._fail_all(err)
                except Exception as err:  # An answer we cannot read: no retry fixes it, and no wait may hang.
                    await self._fail_all(err)
                self._interval = min(
                    (w.poll_interval for ws in self._waiters.values() for w in ws), default=float("inf")
                )
                while self._waiters:
                    remaining = started + self._interval - loop.time()
                    if remaining <= 0:
                        break
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except TimeoutError:
                        break
        finally:
            self._task = None

    async def _cycle(self) -> None:
        watched = set(self._waiters)
        settled: dict[str, Asset] = {}
        to_fetch: set[str] = watched
        transport = await self.hook.aget_transport()
        if time.monotonic() - self._renewed >= RENEW_SECONDS:
            self._renewed = time.monotonic()
            await transport.arenew()
        deadline = time.time() + max(self._interval, CYCLE_SECONDS)
        if len(watched) > DIRECT_FETCH_MAX:
            scan = ListingScan(watched, self._created)
            while (call := scan.next_call()) is not None:
                metrics.poll_requests(None)
                scan.feed(await transport.arequest(call, deadline=deadline))
            settled, to_fetch = scan.outcome()
            settled.update({i: failed_asset(i, str(err)) for i, err in scan.broken.items()})
        settled.update(await self._fetch_each(transport, to_fetch, deadline))
        for asset_id, asset in settled.items():
            for waiter in self._waiters.get(asset_id, ()):
                if not waiter.future.done():
                    waiter.future.set_result(asset)

    def _fail(self, asset_id: str, err: BaseException) -> None:
        for waiter in self._waiters.get(asset_id, ()):
            if not waiter.future.done():
                waiter.future.set_exception(err)

    async def _fetch_each(self, transport: Transport, asset_ids: set[str], deadline: float) -> dict[str, Asset]:
        """Fetch assets by id, a few at a time; an id that errors out (e.g. 404) ends only its own waits. An
        outage, or refused credentials, is raised: it concerns every wait, not this id."""
        semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)
        settled: dict[str, Asset] = {}

        async def fetch(asset_id: str) -> None:
            async with semaphore:
                try:
                    metrics.poll_requests(None)
                    data = await transport.arequest(get_asset_call(asset_id), deadline=deadline)
                except BrainNotFound:
                    data = None
                except BrainError as err:
                    if is_retryable(err) or isinstance(err, BrainAuthError):
                        raise
                    self._fail(asset_id, err)
                    return
                try:
                    asset = deleted_asset(asset_id) if data is None else Asset.from_json(data)
                except (BrainError, ValueError, TypeError) as err:
                    asset = failed_asset(asset_id, str(unreadable(asset_id, err)))
            if (created := parse_api_time(asset.created)) is not None and asset_id in self._waiters:
                self._created[asset_id] = created
            if not asset.is_processing:
                settled[asset_id] = asset

        results = await asyncio.gather(*(fetch(i) for i in asset_ids), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if auth := next((e for e in errors if isinstance(e, BrainAuthError)), None):
            raise auth  # Refused credentials concern every wait: decided in ``_run``.
        if errors:  # Only retryable ones reach here: an outage, waited out.
            log.warning("Checking %d Brain asset(s) failed (%s); still waiting", len(errors), errors[0])
        return settled

    async def _fail_all(self, err: BaseException) -> None:
        """End every wait with ``err`` (the transport reads the connection afresh on the next refusal)."""
        self._auth = AuthGrace()
        for asset_id in list(self._waiters):
            self._fail(asset_id, err)
