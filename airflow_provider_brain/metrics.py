"""The provider's metrics, sent through Airflow's metrics API (StatsD, Datadog or OpenTelemetry, as configured).

One function per event, called where the event happens. Names start with ``brain.``; tags are the task's
``dag_id`` and ``task_id`` (where the backend takes tags; plain StatsD drops them). No name or tag holds a file
name, a URL or a transcript. With metrics off, Airflow's ``Stats`` is a no-op and nothing is sent.

==============================  =======  ===================================================================
``brain.assets.submitted``      counter  assets a task submitted to Brain
``brain.assets.reused``         counter  assets a task took over instead of submitting (an earlier try's, or
                                         ``reuse_existing``)
``brain.assets.done``           counter  assets a task saw done
``brain.assets.failed``         counter  assets a task saw failed on Brain
``brain.audio_seconds``         counter  seconds of audio in the done assets
``brain.submit_to_done``        timer    from an asset's creation to its completion on Brain (ms)
``brain.poll_requests``         counter  status requests sent while waiting (the shared triggerer poller's
                                         are not tagged: one request serves many tasks)
==============================  =======  ===================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_brain.models import Asset, parse_api_time

log = logging.getLogger(__name__)

try:  # Airflow's own shim picks the SDK's Stats on 3.2+ and airflow.stats before.
    from airflow.providers.common.compat.sdk import Stats
except ImportError:  # pragma: no cover - an older common-compat
    from airflow.stats import Stats  # type: ignore[no-redef,attr-defined,unused-ignore]

Tags = Mapping[str, str]


def task_tags(ti: Any) -> dict[str, str]:
    """The tags of a task's metrics: its ``dag_id`` and ``task_id`` (no map index: it would not aggregate)."""
    return {"dag_id": str(getattr(ti, "dag_id", "") or ""), "task_id": str(getattr(ti, "task_id", "") or "")}


def _count(name: str, count: float, tags: Tags | None) -> None:
    if count:
        try:
            # Typed int, but every backend sends a float as it is (audio seconds are fractional).
            Stats.incr(name, count, tags=dict(tags or {}))  # type: ignore[arg-type]
        except Exception as err:  # A metrics backend never fails a task.
            log.debug("Could not send metric %s: %s", name, err)


def submitted(tags: Tags, count: int = 1) -> None:
    """``count`` assets were submitted to Brain by the task."""
    _count("brain.assets.submitted", count, tags)


def reused(tags: Tags, count: int = 1) -> None:
    """``count`` assets were taken over (an earlier try's, or another run's with ``reuse_existing``)."""
    _count("brain.assets.reused", count, tags)


def poll_requests(tags: Tags | None, count: int = 1) -> None:
    """``count`` status requests were sent while waiting."""
    _count("brain.poll_requests", count, tags)


def failed(tags: Tags, count: int = 1) -> None:
    """``count`` assets failed on Brain."""
    _count("brain.assets.failed", count, tags)


def done(tags: Tags, assets: Iterable[Asset]) -> None:
    """These assets are done: count them, their audio seconds, and each one's time from creation to completion."""
    settled = [a for a in assets if a.is_done]
    _count("brain.assets.done", len(settled), tags)
    _count("brain.audio_seconds", round(sum(a.duration or 0.0 for a in settled), 3), tags)
    for asset in settled:
        created, completed = parse_api_time(asset.created), parse_api_time(asset.completed)
        if created is not None and completed is not None:
            try:
                Stats.timing("brain.submit_to_done", (completed - created).total_seconds() * 1000.0, tags=dict(tags))
            except Exception as err:
                log.debug("Could not send metric brain.submit_to_done: %s", err)


def settled(tags: Tags, asset: Asset) -> None:
    """One asset settled: done or failed, as it says."""
    if asset.is_failed:
        failed(tags)
    else:
        done(tags, [asset])
