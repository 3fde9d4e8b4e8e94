"""The project's request history, searched by idempotency marker: what tells a lost answer from a request
Deepgram never received. ``GET /v1/projects/{id}/requests`` lists requests newest first; each carries its path
(the query string with the marker) and a summary of its outcome, never a transcript."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.deepgram_calls import MARKER_EXTRA_KEY, dg_call, request_has_marker
from airflow_provider_brain.hooks.transport import Transport
from airflow_provider_brain.models import parse_api_time

#: How far back a search looks before ``since`` (clocks differ; Deepgram lists by its own time).
HISTORY_SLACK = timedelta(minutes=5)
#: Pages of 100 requests a search reads at most (newest first: ours are among the first).
HISTORY_PAGES = 10
PAGE_SIZE = 100


def first_project(answer: Any) -> str:
    """The first project of a ``GET /v1/projects`` answer."""
    projects = answer.get("projects") if isinstance(answer, Mapping) else None
    if not projects:
        raise BrainError(
            "The Deepgram API key sees no project: set the connection's project_id extra, or use a key of a project"
        )
    return str(projects[0]["project_id"])


def history_call(project: str, page: int, since: datetime | None) -> Call:
    params = {"limit": str(PAGE_SIZE), "page": str(page)}
    if since is not None:
        params["start"] = (since - HISTORY_SLACK).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dg_call("GET", f"/v1/projects/{project}/requests", params=params)


def marker_of(item: Mapping[str, Any], markers: Collection[str]) -> str | None:
    """Which of ``markers`` a history item carries, if any."""
    return next((m for m in markers if request_has_marker(item, m)), None)


def _collect(
    found: dict[str, dict[str, Any]], items: list[Any], markers: Collection[str], created_after: datetime | None
) -> bool:
    """Add the page's items carrying a marker not found yet; whether the search is over."""
    for item in items:
        created = parse_api_time(item.get("created"))
        if created_after is not None and created is not None and created < created_after:
            continue
        marker = marker_of(item, [m for m in markers if m not in found])
        if marker is not None:
            found[marker] = item
    return len(found) == len(markers) or len(items) < PAGE_SIZE


def find_requests(
    transport: Transport,
    project: str,
    markers: Collection[str],
    *,
    since: datetime | None = None,
    created_after: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """The newest request carrying each marker, by marker (markers not found are left out).

    :param since: ask only for requests made after this time (less ``HISTORY_SLACK``).
    :param created_after: ignore requests Deepgram says it created before this (an earlier try's).
    """
    found: dict[str, dict[str, Any]] = {}
    if not markers:
        return found
    for page in range(HISTORY_PAGES):
        items = transport.request(history_call(project, page, since)).get("requests") or []
        if _collect(found, items, markers, created_after):
            break
    return found


async def afind_requests(
    transport: Transport,
    project: str,
    markers: Collection[str],
    *,
    since: datetime | None = None,
    created_after: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Async ``find_requests``."""
    found: dict[str, dict[str, Any]] = {}
    if not markers:
        return found
    for page in range(HISTORY_PAGES):
        items = (await transport.arequest(history_call(project, page, since))).get("requests") or []
        if _collect(found, items, markers, created_after):
            break
    return found


__all__ = ["HISTORY_PAGES", "HISTORY_SLACK", "MARKER_EXTRA_KEY", "afind_requests", "find_requests", "first_project"]
