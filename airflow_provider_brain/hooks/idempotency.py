"""Idempotency keys: how a submission names itself in its asset's metadata, and how a retry finds it again.

A submission stores its key under ``IDEMPOTENCY_METADATA_KEY``; a retry (of an HTTP call whose answer was
lost, or of a task whose worker or trigger died) scans the newest assets for it instead of submitting
again. ``KeyScan`` decides what a scan keeps and where it stops, free of I/O; the sync and async twins
below (``find_keys``/``afind_keys``, ``submit_once``/``asubmit_once``) differ only in how they send.
A scan may read another key from each asset (``key_of``): ``hooks/source_versions.py`` looks up which
object versions Brain already holds with the same scan.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import tenacity

from airflow_provider_brain.exceptions import BrainAPIError, BrainConnectionError
from airflow_provider_brain.hooks.connected import TransportOwner
from airflow_provider_brain.hooks.listing import CLOCK_SLACK, get_asset_call, list_page_call, page_results
from airflow_provider_brain.models import Asset, parse_api_time

if TYPE_CHECKING:
    from airflow_provider_brain.hooks.transport import Call, Transport

#: Metadata key under which a submission records its idempotency key (``submit_url(idempotency_key=...)``).
IDEMPOTENCY_METADATA_KEY = "airflow_idempotency_key"
#: How many of the newest assets a lookup by idempotency key scans, at least.
MAX_LOOKUP_ASSETS = 1000
#: Page size of a lookup for one key: most lookups end on the first page.
LOOKUP_PAGE_SIZE = 100

log = logging.getLogger(__name__)


def task_key(dag_id: str, run_id: str, task_id: str, map_index: int | None, source: str) -> str:
    """The idempotency key of one task instance across its tries, and its audio: dag id, run id, task id, map
    index and a hash of the source (so a cleared mapped task whose index now names another file is not
    confused with its earlier self). No secrets: the source is already stripped of query strings."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return f"{dag_id}/{run_id}/{task_id}/{map_index}/{digest}"


def task_metadata(ti: object) -> dict[str, str]:
    """Which task submitted an asset: ``dag_id``, ``task_id`` and ``run_id``, for its metadata (the warehouse's
    audio minutes per DAG read them back). When is the asset's ``created``: a submission time in the metadata
    would differ between two tries, and the server refuses a resent ``Idempotency-Key`` whose body differs."""
    return {name: str(getattr(ti, name, "") or "") for name in ("dag_id", "task_id", "run_id")}


def new_idempotency_key() -> str:
    """A key for a submission that was given none: still sent, so a server that honours ``Idempotency-Key``
    answers the retries of this one call with the first asset."""
    return f"airflow-provider-brain/{uuid.uuid4().hex}"


def upload_never_accepted(exc: BaseException) -> bool:
    """Whether a failed submission certainly created nothing: refused (429) or never sent (no connection)."""
    if isinstance(exc, BrainConnectionError):
        return not exc.maybe_sent
    return isinstance(exc, BrainAPIError) and exc.status == 429


def run_started_at(dag_run: object) -> datetime | None:
    """When a DAG run started (or was queued, if it has not started): how far back a retry looks for the
    assets its earlier tries submitted. ``None`` if the run says neither."""
    started = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
    return started if isinstance(started, datetime) else None


def idempotency_key_of(asset: Asset) -> str | None:
    """The idempotency key an asset's metadata records, if any: what ``KeyScan`` matches by default."""
    key = asset.metadata.get(IDEMPOTENCY_METADATA_KEY)
    return key if isinstance(key, str) else None


class KeyScan:
    """A scan of assets listed newest first for idempotency keys: what it keeps and when it stops.

    For each key it keeps the newest asset (not failed) that carries it. It stops at the first asset created
    before ``created_after`` (less ``CLOCK_SLACK``), after ``max_assets`` (default: no count limit with
    ``created_after``, else ``MAX_LOOKUP_ASSETS`` or twice the number of keys, whichever is more), or once
    every key is found, so the caller's listing fetches only the pages it needs.

    :param key_of: the key an asset carries (default: its idempotency key); ``None`` for none.
    """

    def __init__(
        self,
        keys: Iterable[str],
        *,
        created_after: datetime | None = None,
        max_assets: int | None = None,
        key_of: Callable[[Asset], str | None] = idempotency_key_of,
    ) -> None:
        self.wanted = set(keys)
        self.key_of = key_of
        self.found: dict[str, Asset] = {}
        self.scanned = 0
        if max_assets is not None:
            self.limit: float = max_assets
        elif created_after is not None:
            self.limit = float("inf")  # The cutoff bounds the scan, however many assets others created meanwhile.
        else:
            self.limit = max(MAX_LOOKUP_ASSETS, 2 * len(self.wanted))
        if created_after is not None and created_after.tzinfo is None:
            created_after = created_after.replace(tzinfo=UTC)  # naive datetimes in Airflow are UTC
        self.cutoff = created_after - CLOCK_SLACK if created_after else None

    def feed(self, asset: Asset) -> bool:
        """Look at the next asset of the listing; ``False`` once the scan should stop."""
        created = parse_api_time(asset.created)
        if self.scanned >= self.limit or (self.cutoff and created and created < self.cutoff):
            return False
        self.scanned += 1
        key = self.key_of(asset)
        if key is not None and key in self.wanted and key not in self.found and not asset.is_failed:
            self.found[key] = asset
        return len(self.found) < len(self.wanted)


def match_keys(
    newest_first: Iterable[Asset],
    keys: Iterable[str],
    *,
    created_after: datetime | None = None,
    max_assets: int | None = None,
) -> dict[str, Asset]:
    """For each key, the newest asset (not failed) that carries it, read from assets listed newest first
    (where the scan stops: ``KeyScan``)."""
    scan = KeyScan(keys, created_after=created_after, max_assets=max_assets)
    for asset in newest_first:
        if not scan.feed(asset):
            break
    return scan.found


def find_keys(
    transport: Transport, scan: KeyScan, *, page_size: int = LOOKUP_PAGE_SIZE, retry: bool = True
) -> dict[str, Asset]:
    """Run ``scan`` over the listing (every status, newest first), one page at a time, as far as it needs."""
    offset: int | None = 0
    while offset is not None:
        results, offset = page_results(transport.request(list_page_call(offset, page_size), retry=retry), offset)
        if not all(scan.feed(Asset.from_json(item)) for item in results):
            break
    return scan.found


async def afind_keys(
    transport: Transport, scan: KeyScan, *, page_size: int = LOOKUP_PAGE_SIZE, retry: bool = True
) -> dict[str, Asset]:
    """Async ``find_keys`` (for triggers)."""
    offset: int | None = 0
    while offset is not None:
        page = await transport.arequest(list_page_call(offset, page_size), retry=retry)
        results, offset = page_results(page, offset)
        if not all(scan.feed(Asset.from_json(item)) for item in results):
            break
    return scan.found


def _resend_note(asset_id: str) -> None:
    log.info("Brain had accepted an earlier attempt of this submission as asset %s: not sending it again", asset_id)


def submit_once(transport: Transport, call: Call, key: str, *, retry_read_timeouts: bool) -> Asset:
    """Send a submission with the retry policy, looking for an earlier attempt's asset before each resend.

    One try per lookup page: the submission's own retries cover an outage that also hits the lookup. The
    listing is a summary, so a found asset is fetched itself, as the submission would have answered.
    """
    started = datetime.now(UTC)
    attempts = 0

    def attempt() -> Asset:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            earlier = find_keys(transport, KeyScan([key], created_after=started), retry=False).get(key)
            if earlier is not None:
                _resend_note(earlier.asset_id)
                return Asset.from_json(transport.send(get_asset_call(earlier.asset_id)))
        return Asset.from_json(transport.send(call))

    retrying = tenacity.Retrying(**transport.policy(call, idempotent=retry_read_timeouts))
    asset: Asset = retrying(transport.with_fresh_credentials, attempt)
    return asset


async def asubmit_once(transport: Transport, call: Call, key: str) -> Asset:
    """Async ``submit_once`` for an asynchronous submission (so read timeouts are retried too)."""
    started = datetime.now(UTC)
    attempts = 0

    async def attempt() -> Asset:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            earlier = (await afind_keys(transport, KeyScan([key], created_after=started), retry=False)).get(key)
            if earlier is not None:
                _resend_note(earlier.asset_id)
                return Asset.from_json(await transport.asend(get_asset_call(earlier.asset_id)))
        return Asset.from_json(await transport.asend(call))

    retrying = tenacity.AsyncRetrying(**transport.policy(call, idempotent=True))
    return await retrying(transport.awith_fresh_credentials, attempt)


class KeyLookups(TransportOwner):
    """``BrainHook``'s lookups by idempotency key (a base class of it): every status, newest first."""

    def find_asset_by_idempotency_key(
        self,
        key: str,
        *,
        created_after: datetime | None = None,
        max_assets: int = MAX_LOOKUP_ASSETS,
        retry: bool = True,
    ) -> Asset | None:
        """The newest asset, not failed, whose metadata holds idempotency key ``key``; ``None`` if there is none.

        Scans the user's assets (every status) newest first, and stops at the first created before
        ``created_after`` (less ``CLOCK_SLACK``, for whole-second stamps and clock skew) or after
        ``max_assets``: cheap when the submission is recent, bounded when it is not.

        :param retry: ``False`` sends each page request once (for use inside a call that retries itself).
        """
        scan = KeyScan([key], created_after=created_after, max_assets=max_assets)
        return find_keys(self.transport, scan, retry=retry).get(key)

    async def afind_asset_by_idempotency_key(
        self, key: str, *, created_after: datetime | None = None, max_assets: int = MAX_LOOKUP_ASSETS
    ) -> Asset | None:
        """Async ``find_asset_by_idempotency_key`` (for triggers)."""
        scan = KeyScan([key], created_after=created_after, max_assets=max_assets)
        return (await afind_keys(await self.aget_transport(), scan)).get(key)

    def find_assets_by_idempotency_keys(
        self,
        keys: Iterable[str],
        *,
        created_after: datetime | None = None,
        max_assets: int | None = None,
        retry: bool = True,
        page_size: int = 1000,
    ) -> dict[str, Asset]:
        """For each idempotency key, the newest asset (not failed) that carries it; keys without one are absent.

        One scan of the listing, newest first, for all keys at once (a batch retry looks up thousands of
        files in a few pages); where it stops: ``KeyScan``.
        """
        scan = KeyScan(keys, created_after=created_after, max_assets=max_assets)
        return find_keys(self.transport, scan, page_size=page_size, retry=retry)
