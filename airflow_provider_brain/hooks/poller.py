"""Coalesced status polling: many waits on one Brain connection cost one listing request per interval.

A thousand triggers that each ``GET /assets/{id}`` every 10 s send Brain 100 requests a second; a real
service rate-limits that long before the triggerer runs out of CPU. Here every wait in a process that
shares a connection (every ``BrainAssetTrigger`` and ``BrainBatchTrigger`` in a triggerer's event loop, a
batch task waiting in a worker) asks one poller, and the poller learns the status of up to 1,000 assets
per request from ``GET /assets?done=false&limit=1000`` (newest first). It follows ``next_offset`` only as
far back as the oldest asset it watches, and fetches ``GET /assets/{id}`` for an id the listing did not
show (an older asset, a listing that lags) and for a failed asset, whose reason the listing omits.

``ListingScan`` is the decision, free of I/O, shared by the sync wait (``BrainHook.wait_for_assets``) and
the async ``AssetPoller``; ``shared_poller`` hands every trigger of an event loop the same poller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from airflow_provider_brain.exceptions import (
    BrainAPIError,
    BrainAssetFailed,
    BrainAuthError,
    BrainError,
    BrainNotFound,
    BrainTimeout,
)
from airflow_provider_brain.hooks.calls import Call, asset_path
from airflow_provider_brain.hooks.retry import is_retryable
from airflow_provider_brain.hooks.transport import Transport
from airflow_provider_brain.models import Asset, AssetStatus, parse_api_time

#: The API's largest page: one request tells the status of this many assets.
LIST_PAGE_SIZE = 1000
#: A listing scan never reads more pages than this in one cycle; what it did not reach is fetched by id.
MAX_LIST_PAGES = 50
#: Up to this many watched assets, fetching each by id costs no more requests than a listing page.
DIRECT_FETCH_MAX = 1
#: How many ``GET /assets/{id}`` a cycle sends at once (ids the listing missed, failed assets' reasons).
FETCH_CONCURRENCY = 8
#: Listing times are whole seconds on some servers and clocks differ: scan this far past the oldest watch.
CREATED_SLACK = timedelta(seconds=60)
#: How long a wait goes on while Brain refuses the credentials and the connection still holds the refused ones:
#: a password rotation changes the server and the Airflow connection one after the other, not at once.
AUTH_GRACE_SECONDS = 120.0
#: The longest the last check at a wait's deadline may take before the wait reports a timeout.
LAST_CHECK_SECONDS = 10.0
#: A polling cycle starts no retry after this long (or its interval, if longer): a ``Retry-After: 300`` is not
#: sat out inside one cycle while waits come and go; the next cycle asks again.
CYCLE_SECONDS = 30.0

log = logging.getLogger(__name__)


def get_asset_call(asset_id: str, times: bool = False) -> Call:
    """``GET /assets/{id}`` (with word timings if ``times``)."""
    return Call("GET", asset_path(asset_id), params={"times": "true"} if times else None)


def list_page_call(offset: int, page_size: int = LIST_PAGE_SIZE) -> Call:
    """One page of ``GET /assets?done=false`` (every status, newest first)."""
    return Call("GET", "/assets", params={"done": "false", "limit": str(page_size), "offset": str(offset)})


def page_results(page: Any, offset: int | None = None) -> tuple[list[Any], int | None]:
    """A listing page's items and its ``next_offset`` (``None`` on the last page).

    :param offset: the offset this page was asked for: a ``next_offset`` that does not move past it would
        have the caller read the same page for ever, so it is an error.
    """
    results = page.get("results") if isinstance(page, Mapping) else None
    if not isinstance(results, list):
        raise BrainAPIError("Brain GET /assets answered without a 'results' list")
    raw = page.get("next_offset")
    if raw is None or not results:
        return results, None
    try:
        next_offset = int(raw)
    except (TypeError, ValueError):
        raise BrainAPIError(f"Brain GET /assets answered a next_offset that is not a number: {raw!r:.40}") from None
    if offset is not None and next_offset <= offset:
        raise BrainAPIError(
            f"Brain GET /assets?offset={offset} answered next_offset={next_offset}, which does not move past it: "
            "the listing would repeat for ever; is a proxy or the server rewriting the paging?"
        )
    return results, next_offset


@dataclass
class ListingScan:
    """One cycle's pass over the listing for the ``watched`` ids, newest first.

    Drive it with ``next_call()`` and ``feed(page)`` until ``next_call()`` is ``None``; then ``seen`` holds
    the watched assets the listing showed (summaries: status, created, duration, metadata), and
    ``missing`` the ids to fetch one by one. ``created`` remembers when each watched asset was created, so
    later cycles know how far back to read. Another page is read while it is likely to save requests
    (``_worth_another_page``); ``outcome()`` then says what is settled and what to fetch by id.
    """

    watched: set[str]
    created: dict[str, datetime]
    page_size: int = LIST_PAGE_SIZE
    max_pages: int = MAX_LIST_PAGES
    seen: dict[str, Asset] = field(default_factory=dict)
    #: Watched items the listing showed in a form we cannot read (an unknown status...): only their waits fail.
    broken: dict[str, BrainError] = field(default_factory=dict)
    pages: int = 0
    _next_offset: int | None = 0
    _page_oldest: datetime | None = None

    def next_call(self) -> Call | None:
        if self._next_offset is None or self.pages >= self.max_pages or not self.missing:
            return None
        if self.pages > 0 and not self._worth_another_page():
            return None
        return list_page_call(self._next_offset, self.page_size)

    def feed(self, page: Any) -> None:
        results, next_offset = page_results(page, self._next_offset)
        self.pages += 1
        self._next_offset = next_offset
        self._page_oldest = None
        # Only watched items are parsed: a page holds up to 1,000 others, read every interval.
        for item in results:
            asset_id = item.get("asset_id") if isinstance(item, Mapping) else None
            if asset_id in self.watched and asset_id not in self.seen and asset_id not in self.broken:
                try:
                    asset = Asset.from_json(item)
                except (BrainError, ValueError, TypeError) as err:
                    self.broken[asset_id] = unreadable(asset_id, err)
                    continue
                self.seen[asset.asset_id] = asset
                if (created := parse_api_time(asset.created)) is not None:
                    self.created[asset.asset_id] = created
        if results and isinstance(results[-1], Mapping):
            self._page_oldest = parse_api_time(results[-1].get("created"))  # newest first: the last is oldest

    @property
    def missing(self) -> set[str]:
        return self.watched - self.seen.keys() - self.broken.keys()

    def outcome(self) -> tuple[dict[str, Asset], set[str]]:
        """After the scan: the watched assets it settled (done, or failed with their reason), and the ids to
        fetch by id (not listed, or failed without a reason in the listing)."""
        settled = {i: a for i, a in self.seen.items() if not a.is_processing and not needs_direct_fetch(a)}
        return settled, self.missing | {i for i, a in self.seen.items() if needs_direct_fetch(a)}

    def _worth_another_page(self) -> bool:
        """Whether the next page is likely to save requests: more ids still to find, among those created
        before this page's oldest item (so further back) and those whose creation time is unknown, than pages
        read so far. Otherwise the few left are cheaper fetched one by one."""
        if self._page_oldest is None:
            return False
        cutoff = self._page_oldest + CREATED_SLACK
        pending = sum(1 for i in self.missing if i not in self.created or self.created[i] <= cutoff)
        return pending > self.pages


def unreadable(asset_id: str, err: BaseException) -> BrainAPIError:
    """The error a wait ends with when Brain's answer about its asset cannot be read."""
    return BrainAPIError(f"Brain's answer about asset {asset_id} could not be read: {err}")


def needs_direct_fetch(asset: Asset) -> bool:
    """A listed asset that the summary cannot settle: failed (the listing omits the reason)."""
    return asset.is_failed and not asset.error


class AsyncBrain(Protocol):
    """What the async poller needs of a hook: its transport, read with the async connection lookup."""

    brain_conn_id: str

    async def aget_transport(self) -> Transport: ...

    async def aclose(self) -> None: ...


class SyncBrain(Protocol):
    """What the sync waits need of a hook: its transport (sync connection lookup)."""

    @property
    def transport(self) -> Transport: ...


HookT = TypeVar("HookT", bound=AsyncBrain)


class AuthGrace:
    """Whether a wait still goes on after Brain refused credentials that worked before: for
    ``AUTH_GRACE_SECONDS`` after the first refusal in a row, so a rotation whose two halves (server,
    connection) land apart does not end it. Credentials refused from the start fail at once."""

    def __init__(self) -> None:
        self._worked = False
        self._since: float | None = None

    def tolerates(self, err: BaseException) -> bool:
        if not isinstance(err, BrainAuthError) or not self._worked:
            return False
        now = time.monotonic()
        self._since = self._since if self._since is not None else now
        return now - self._since < AUTH_GRACE_SECONDS

    def reset(self) -> None:
        """A request went through: the credentials work."""
        self._worked = True
        self._since = None


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
        deadline = time.time() + max(self._interval, CYCLE_SECONDS)
        if len(watched) > DIRECT_FETCH_MAX:
            scan = ListingScan(watched, self._created)
            while (call := scan.next_call()) is not None:
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


def wait_for_assets(
    hook: SyncBrain, asset_ids: list[str], *, poll_interval: float, timeout: float | None
) -> dict[str, Asset]:
    """Wait in this thread until every asset is done or failed, or ``timeout`` passes (``BrainHook.wait_for_assets``).

    Each interval costs one listing scan plus a fetch per id the listing missed and per failed asset; no
    request, retries included, runs past the deadline. Returns the settled assets (summaries, failed ones with
    their reason); an id missing from the result was still processing at the deadline. An asset deleted
    meanwhile, or one Brain answers in a form we cannot read, comes back failed, with that reason.
    """
    pending = set(asset_ids)
    settled: dict[str, Asset] = {}
    created: dict[str, datetime] = {}
    deadline = None if timeout is None else time.time() + timeout
    auth = AuthGrace()
    while pending:
        try:
            settled.update(_settle_sync(hook.transport, pending, created, deadline))
            auth.reset()
        except BrainError as err:
            if not (is_retryable(err) or auth.tolerates(err)):
                raise
            log.warning("Checking %d Brain assets failed (%s); still waiting", len(pending), err)
        pending -= settled.keys()
        if not pending or not _sleep_until_next_poll(poll_interval, deadline):
            break
    return settled


def _sleep_until_next_poll(poll_interval: float, deadline: float | None) -> bool:
    """Sleep one interval, or until the wall-clock ``deadline``; ``False`` (at once) if it has passed."""
    remaining = poll_interval if deadline is None else deadline - time.time()
    if remaining <= 0:
        return False
    time.sleep(min(poll_interval, remaining))
    return True


def _settle_sync(
    transport: Transport, watched: set[str], created: dict[str, datetime], deadline: float | None
) -> dict[str, Asset]:
    settled: dict[str, Asset] = {}
    to_fetch = set(watched)
    if len(watched) > DIRECT_FETCH_MAX:
        scan = ListingScan(watched, created)
        while (call := scan.next_call()) is not None:
            scan.feed(transport.request(call, deadline=deadline))
        settled, to_fetch = scan.outcome()
        settled.update({i: failed_asset(i, str(err)) for i, err in scan.broken.items()})
    for asset_id in sorted(to_fetch):
        try:
            data = transport.request(get_asset_call(asset_id), deadline=deadline)
        except BrainNotFound:
            data = None
        except BrainError as err:
            if not is_retryable(err):
                raise
            log.warning("Checking Brain asset %s failed (%s); still waiting", asset_id, err)
            continue  # An outage of this one fetch: what the listing settled still counts.
        try:
            asset = deleted_asset(asset_id) if data is None else Asset.from_json(data)
        except (BrainError, ValueError, TypeError) as err:
            settled[asset_id] = failed_asset(asset_id, str(unreadable(asset_id, err)))
            continue
        if (when := parse_api_time(asset.created)) is not None:
            created[asset_id] = when
        if not asset.is_processing:
            settled[asset_id] = asset
    return settled


def failed_asset(asset_id: str, error: str) -> Asset:
    """What a wait reports for an asset it cannot wait for any more, with why."""
    return Asset(asset_id=asset_id, status=AssetStatus.FAILED, error=error)


def deleted_asset(asset_id: str) -> Asset:
    """What a wait reports for an asset that vanished (deleted on Brain while it was awaited)."""
    return failed_asset(asset_id, "the asset no longer exists on Brain (deleted?)")


def wait_for_asset(
    hook: SyncBrain, asset_id: str, *, poll_interval: float, timeout: float | None, times: bool
) -> Asset:
    """Poll one asset by id until it is done (``BrainHook.wait_for_asset``); an outage is waited out, but no
    request, retries included, runs past the deadline.

    :raises BrainAssetFailed: the asset failed; the message carries the server's reason.
    :raises BrainTimeout: still processing after ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.time() + timeout
    auth = AuthGrace()
    call = get_asset_call(asset_id, times)
    while True:
        try:
            asset: Asset | None = Asset.from_json(hook.transport.request(call, deadline=deadline))
            auth.reset()
        except BrainError as err:
            if not (is_retryable(err) or auth.tolerates(err)):
                raise
            log.warning("Checking Brain asset %s failed (%s); still waiting", asset_id, err)
            asset = None
        if asset is not None and asset.is_done:
            return asset
        if asset is not None and asset.is_failed:
            raise BrainAssetFailed(asset_id, asset.error or "")
        if not _sleep_until_next_poll(poll_interval, deadline):
            raise BrainTimeout(asset_id, timeout or 0.0)
