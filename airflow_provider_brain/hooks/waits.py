"""Waiting in this thread (a worker): ``BrainHook.wait_for_asset`` and ``wait_for_assets``, with a wall-clock
deadline that no request, retries included, runs past."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Protocol

from airflow_provider_brain import metrics
from airflow_provider_brain.exceptions import BrainAssetFailed, BrainError, BrainNotFound, BrainTimeout
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
from airflow_provider_brain.progress import WaitProgress

log = logging.getLogger("airflow_provider_brain.hooks.poller")


class SyncBrain(Protocol):
    """What the sync waits need of a hook: its transport (sync connection lookup)."""

    @property
    def transport(self) -> Transport: ...


def wait_for_assets(
    hook: SyncBrain,
    asset_ids: list[str],
    *,
    poll_interval: float,
    timeout: float | None,
    progress: WaitProgress | None = None,
    tags: metrics.Tags | None = None,
) -> dict[str, Asset]:
    """Wait in this thread until every asset is done or failed, or ``timeout`` passes (``BrainHook.wait_for_assets``).

    Each interval costs one listing scan plus a fetch per id the listing missed and per failed asset; no
    request, retries included, runs past the deadline. Returns the settled assets (summaries, failed ones with
    their reason); an id missing from the result was still processing at the deadline. An asset deleted
    meanwhile, or one Brain answers in a form we cannot read, comes back failed, with that reason.
    With ``progress``, the counts go to the log once a ``PROGRESS_EVERY_SECONDS`` and at the end; the status
    requests are counted in ``brain.poll_requests``, tagged with ``tags``.
    """
    pending = set(asset_ids)
    settled: dict[str, Asset] = {}
    created: dict[str, datetime] = {}
    deadline = None if timeout is None else time.time() + timeout
    auth = AuthGrace()
    while pending:
        try:
            settled.update(_settle_sync(hook.transport, pending, created, deadline, tags))
            auth.reset()
        except BrainError as err:
            if not (is_retryable(err) or auth.tolerates(err)):
                raise
            log.warning("Checking %d Brain assets failed (%s); still waiting", len(pending), err)
        pending -= settled.keys()
        if progress is not None and pending:
            progress.update(*_tally(settled))
        if not pending or not _sleep_until_next_poll(poll_interval, deadline):
            break
    if progress is not None:
        progress.final(*_tally(settled))
    return settled


def _tally(settled: dict[str, Asset]) -> tuple[int, int]:
    failed = sum(1 for a in settled.values() if a.is_failed)
    return len(settled) - failed, failed


def _sleep_until_next_poll(poll_interval: float, deadline: float | None) -> bool:
    """Sleep one interval, or until the wall-clock ``deadline``; ``False`` (at once) if it has passed."""
    remaining = poll_interval if deadline is None else deadline - time.time()
    if remaining <= 0:
        return False
    time.sleep(min(poll_interval, remaining))
    return True


def _settle_sync(
    transport: Transport,
    watched: set[str],
    created: dict[str, datetime],
    deadline: float | None,
    tags: metrics.Tags | None = None,
) -> dict[str, Asset]:
    settled: dict[str, Asset] = {}
    to_fetch = set(watched)
    if len(watched) > DIRECT_FETCH_MAX:
        scan = ListingScan(watched, created)
        while (call := scan.next_call()) is not None:
            metrics.poll_requests(tags)
            scan.feed(transport.request(call, deadline=deadline))
        settled, to_fetch = scan.outcome()
        settled.update({i: failed_asset(i, str(err)) for i, err in scan.broken.items()})
    for asset_id in sorted(to_fetch):
        try:
            metrics.poll_requests(tags)
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


def wait_for_asset(
    hook: SyncBrain,
    asset_id: str,
    *,
    poll_interval: float,
    timeout: float | None,
    times: bool,
    progress: WaitProgress | None = None,
    tags: metrics.Tags | None = None,
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
            metrics.poll_requests(tags)
            asset: Asset | None = Asset.from_json(hook.transport.request(call, deadline=deadline))
            auth.reset()
        except BrainError as err:
            if not (is_retryable(err) or auth.tolerates(err)):
                raise
            log.warning("Checking Brain asset %s failed (%s); still waiting", asset_id, err)
            asset = None
        if asset is not None and not asset.is_processing:
            if progress is not None:
                progress.final(int(asset.is_done), int(asset.is_failed))
            if asset.is_failed:
                metrics.failed(tags or {})
                raise BrainAssetFailed(asset_id, asset.error or "")
            return asset
        if progress is not None:
            progress.update(0, 0)
        if not _sleep_until_next_poll(poll_interval, deadline):
            if progress is not None:
                progress.final(0, 0)
            raise BrainTimeout(asset_id, timeout or 0.0)
