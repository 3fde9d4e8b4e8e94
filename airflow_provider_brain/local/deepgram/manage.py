"""Deepgram's management API, as far as one user's listen requests go: ``GET /v1/projects`` (one project per
user), ``/v1/projects/{id}``, its ``requests`` (newest first; ``page``, ``limit``, ``start``, ``end``,
``request_id``, ``status``), one request, and ``usage`` (with ``tag``) and ``usage/breakdown`` (``grouping=tags``).
A request's ``response`` summarises its outcome and options; it never holds the transcript."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_brain.local.assets import DONE, FAILED, PROCESSING, Asset
from airflow_provider_brain.local.deepgram.answer import ListenOptions, request_summary
from airflow_provider_brain.local.deepgram.common import authenticate, check_project, deepgram_errors, project_id
from airflow_provider_brain.local.deepgram.records import ListenRecord, listen_owner
from airflow_provider_brain.local.deepgram.service import DeepgramDialect
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.http_input import int_param
from airflow_provider_brain.local.state import brain_of


def _project(user: str) -> dict[str, Any]:
    return {"project_id": project_id(user), "name": f"{user}'s project", "mip_opt_out": True}


@deepgram_errors
async def list_projects(request: Request) -> Response:
    """``GET /v1/projects``: the caller's one project."""
    user = authenticate(brain_of(request), request)
    return JSONResponse({"projects": [_project(user)]})


@deepgram_errors
async def get_project(request: Request) -> Response:
    user = authenticate(brain_of(request), request)
    check_project(user, request.path_params["project_id"])
    return JSONResponse(_project(user))


def _stamp(raw: str | None, name: str, end: bool) -> str | None:
    """A ``start``/``end`` parameter (``YYYY-MM-DD``, or a date and time, with or without an offset) in the
    store's form, so it compares with ``created`` as text; a bare ``end`` date covers that whole day."""
    if not raw:
        return None
    try:
        if len(raw) == 10:
            moment = datetime.combine(date.fromisoformat(raw), time.max if end else time.min, UTC)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(400, f"{name} must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[+HH:MM]") from None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status(asset: Asset | None) -> tuple[str, int | None]:
    if asset is None:
        return FAILED, 500
    if asset.status == DONE:
        return DONE, 200
    if asset.status == PROCESSING:
        return PROCESSING, None
    return FAILED, asset.error_status or 500


def _request_json(user: str, record: ListenRecord, asset: Asset | None) -> dict[str, Any]:
    _, code = _status(asset)
    body: dict[str, Any] = {
        "request_id": record.request_id,
        "project_uuid": project_id(user),
        "created": record.created,
        "path": record.path,
        "api_key_id": project_id(user),
        "response": request_summary(asset, ListenOptions.from_json(record.options), record.callback),
        "deployment": "self-hosted",
        "callback": record.callback,
    }
    if code is not None:
        body["code"] = code
    return body


async def _with_assets(request: Request, records: list[ListenRecord]) -> list[tuple[ListenRecord, Asset | None]]:
    brain = brain_of(request)

    def load() -> list[Asset | None]:
        return [brain.store.get(r.asset_id) for r in records]

    return list(zip(records, await brain.db.call(load), strict=True))


@deepgram_errors
async def list_requests(request: Request) -> Response:
    """``GET /v1/projects/{project_id}/requests``: the caller's listen requests, newest first."""
    brain = brain_of(request)
    dialect: DeepgramDialect = request.app.state.deepgram
    user = authenticate(brain, request)
    check_project(user, request.path_params["project_id"])
    params = request.query_params
    page = int_param(request, "page", 0, 0)
    limit = int_param(request, "limit", 10, 1, 1000)
    start, end = _stamp(params.get("start"), "start", False), _stamp(params.get("end"), "end", True)
    wanted = params.get("status")
    if wanted not in (None, "succeeded", "failed"):
        raise ApiError(400, "status must be succeeded or failed")
    owner = listen_owner(user)
    if wanted is None and not params.get("request_id"):
        records = await brain.db.call(
            dialect.records.page, owner, start=start, end=end, limit=limit, offset=page * limit
        )
        rows = await _with_assets(request, records)
    else:
        everything = await brain.db.call(dialect.records.all_of, owner, start=start, end=end)
        everything.reverse()
        if params.get("request_id"):
            everything = [r for r in everything if r.request_id == params["request_id"]]
        rows = await _with_assets(request, everything)
        if wanted is not None:
            rows = [(r, a) for r, a in rows if _status(a)[0] == (DONE if wanted == "succeeded" else FAILED)]
        rows = rows[page * limit : (page + 1) * limit]
    return JSONResponse({"page": page, "limit": limit, "requests": [_request_json(user, r, a) for r, a in rows]})


@deepgram_errors
async def get_request(request: Request) -> Response:
    """``GET /v1/projects/{project_id}/requests/{request_id}``."""
    brain = brain_of(request)
    dialect: DeepgramDialect = request.app.state.deepgram
    user = authenticate(brain, request)
    check_project(user, request.path_params["project_id"])
    record = await brain.db.call(dialect.records.get, listen_owner(user), request.path_params["request_id"])
    if record is None:
        raise ApiError(404, "request not found")
    [(record, asset)] = await _with_assets(request, [record])
    return JSONResponse({"request": _request_json(user, record, asset)})


async def _done_rows(request: Request, user: str) -> tuple[list[tuple[ListenRecord, Asset]], str | None, str | None]:
    brain = brain_of(request)
    dialect: DeepgramDialect = request.app.state.deepgram
    check_project(user, request.path_params["project_id"])
    params = request.query_params
    start, end = _stamp(params.get("start"), "start", False), _stamp(params.get("end"), "end", True)
    records = await brain.db.call(dialect.records.all_of, listen_owner(user), start=start, end=end)
    tag = params.get("tag")
    if tag:
        records = [r for r in records if tag in r.tags]
    rows = [(r, a) for r, a in await _with_assets(request, records) if a is not None and a.status == DONE]
    return rows, start, end


def _period(rows: list[tuple[ListenRecord, Asset]], start: str | None, end: str | None) -> tuple[str, str]:
    days = [r.created[:10] for r, _ in rows] or [datetime.now(UTC).date().isoformat()]
    return (start or min(days))[:10], (end or max(days))[:10]


def _hours(rows: list[tuple[ListenRecord, Asset]]) -> float:
    return round(sum(a.duration or 0.0 for _, a in rows) / 3600, 6)


@deepgram_errors
async def usage(request: Request) -> Response:
    """``GET /v1/projects/{project_id}/usage``: hours recognised and requests made, per day (``tag`` filters)."""
    user = authenticate(brain_of(request), request)
    rows, start, end = await _done_rows(request, user)
    by_day: dict[str, list[tuple[ListenRecord, Asset]]] = {}
    for row in rows:
        by_day.setdefault(row[0].created[:10], []).append(row)
    results = [
        {
            "start": day,
            "end": day,
            "hours": _hours(day_rows),
            "total_hours": _hours(day_rows),
            "requests": len(day_rows),
        }
        for day, day_rows in sorted(by_day.items())
    ]
    first, last = _period(rows, start, end)
    return JSONResponse({"start": first, "end": last, "resolution": {"units": "day", "amount": 1}, "results": results})


@deepgram_errors
async def usage_breakdown(request: Request) -> Response:
    """``GET /v1/projects/{project_id}/usage/breakdown``: the period's totals, by tag with ``grouping=tags``."""
    user = authenticate(brain_of(request), request)
    rows, start, end = await _done_rows(request, user)
    first, last = _period(rows, start, end)
    groups: dict[str | None, list[tuple[ListenRecord, Asset]]] = {}
    by_tags = request.query_params.get("grouping") == "tags"
    for row in rows:
        tags: list[str | None] = list(row[0].tags) if by_tags and row[0].tags else [None]
        for tag in tags:
            groups.setdefault(tag, []).append(row)
    results = []
    for tag, group in groups.items():
        hours = _hours(group)
        results.append(
            {
                "hours": hours,
                "total_hours": hours,
                "agent_hours": 0.0,
                "tokens_in": 0.0,
                "tokens_out": 0.0,
                "tts_characters": 0.0,
                "requests": len(group),
                "grouping": {"start": first, "end": last, "tags": [tag] if tag is not None else None},
            }
        )
    resolution = {"units": "day", "amount": 1}
    return JSONResponse({"start": first, "end": last, "resolution": resolution, "results": results})
