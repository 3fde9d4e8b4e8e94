"""What a wait reads from Brain and how it decides, free of waiting: the listing's calls and paging, one cycle's
scan over it (``ListingScan``), what a wait reports for an asset it cannot wait for, and how long refused
credentials are borne (``AuthGrace``). Shared by the sync waits (``hooks/waits.py``) and the async poller
(``hooks/poller.py``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_brain.exceptions import BrainAPIError, BrainAuthError, BrainError
from airflow_provider_brain.hooks.calls import Call, asset_path
from airflow_provider_brain.models import Asset, AssetStatus, parse_api_time

#: The API's largest page: one request tells the status of this many assets.
LIST_PAGE_SIZE = 1000
#: A listing scan never reads more pages than this in one cycle; what it did not reach is fetched by id.
MAX_LIST_PAGES = 50
#: Up to this many watched assets, fetching each by id costs no more requests than a listing page.
DIRECT_FETCH_MAX = 1
#: Servers may stamp whole seconds and clocks differ a little: a scan reaches this far past its cutoff (a
#: lookup by idempotency key before its run's start, a poll past its oldest watched asset).
CLOCK_SLACK = timedelta(seconds=60)
#: How long a wait goes on while Brain refuses the credentials and the connection still holds the refused ones:
#: a password rotation changes the server and the Airflow connection one after the other, not at once.
AUTH_GRACE_SECONDS = 120.0


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
        cutoff = self._page_oldest + CLOCK_SLACK
        pending = sum(1 for i in self.missing if i not in self.created or self.created[i] <= cutoff)
        return pending > self.pages


def unreadable(asset_id: str, err: BaseException) -> BrainAPIError:
    """The error a wait ends with when Brain's answer about its asset cannot be read."""
    return BrainAPIError(f"Brain's answer about asset {asset_id} could not be read: {err}")


def needs_direct_fetch(asset: Asset) -> bool:
    """A listed asset that the summary cannot settle: failed (the listing omits the reason)."""
    return asset.is_failed and not asset.error


def failed_asset(asset_id: str, error: str) -> Asset:
    """What a wait reports for an asset it cannot wait for any more, with why."""
    return Asset(asset_id=asset_id, status=AssetStatus.FAILED, error=error)


def deleted_asset(asset_id: str) -> Asset:
    """What a wait reports for an asset that vanished (deleted on Brain while it was awaited)."""
    return failed_asset(asset_id, "the asset no longer exists on Brain (deleted?)")


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
