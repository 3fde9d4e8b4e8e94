"""Idempotency keys: how a submission names itself in its asset's metadata, and how a retry finds it again.

A submission stores its key under ``IDEMPOTENCY_METADATA_KEY``; a retry (of an HTTP call whose answer was
lost, or of a task whose worker died) scans the newest assets for it instead of submitting again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from airflow_provider_brain.models import Asset, parse_api_time

#: Metadata key under which a submission records its idempotency key (``submit_url(idempotency_key=...)``).
IDEMPOTENCY_METADATA_KEY = "airflow_idempotency_key"
#: How many of the newest assets a lookup by idempotency key scans, at least.
MAX_LOOKUP_ASSETS = 1000
#: Servers may stamp whole seconds and clocks differ a little: a lookup reaches this far before its cutoff.
CLOCK_SLACK = timedelta(seconds=60)


def match_keys(
    newest_first: Iterable[Asset],
    keys: Iterable[str],
    *,
    created_after: datetime | None = None,
    max_assets: int | None = None,
) -> dict[str, Asset]:
    """For each key, the newest asset (not failed) that carries it, read from assets listed newest first.

    Stops at the first asset created before ``created_after`` (less ``CLOCK_SLACK``), after ``max_assets``
    (default: no count limit with ``created_after``, else ``MAX_LOOKUP_ASSETS`` or twice the number of keys,
    whichever is more), or once every key is found, so the caller's listing fetches only the pages it needs.
    """
    wanted = set(keys)
    if max_assets is not None:
        limit: float = max_assets
    elif created_after is not None:
        limit = float("inf")  # The cutoff bounds the scan, however many assets others created meanwhile.
    else:
        limit = max(MAX_LOOKUP_ASSETS, 2 * len(wanted))
    if created_after is not None and created_after.tzinfo is None:
        created_after = created_after.replace(tzinfo=UTC)  # naive datetimes in Airflow are UTC
    cutoff = created_after - CLOCK_SLACK if created_after else None
    found: dict[str, Asset] = {}
    for scanned, asset in enumerate(newest_first):
        created = parse_api_time(asset.created)
        if scanned >= limit or (cutoff and created and created < cutoff):
            break
        key = asset.metadata.get(IDEMPOTENCY_METADATA_KEY)
        if key in wanted and key not in found and not asset.is_failed:
            found[key] = asset
            if len(found) == len(wanted):
                break
    return found
