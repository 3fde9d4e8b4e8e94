"""``/assets``: one asset (get, correct, delete), its media, the listing, and search.

Every store call runs on the store's threads and a search in the search process (``local/offload.py``),
so none of these handlers holds the event loop while SQLite or the disk works.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from airflow_provider_brain.local.assets import ASSET_ID_PATTERN, DONE, Asset, realign
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.http_input import flag, int_param, json_body
from airflow_provider_brain.local.search import SearchQuery
from airflow_provider_brain.local.state import Brain, brain_of

log = logging.getLogger("brain_local.api")

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


async def _owned_asset(request: Request, brain: Brain, user: str) -> Asset:
    asset_id = request.path_params["asset_id"]
    asset = await brain.db.call(brain.store.get, asset_id, owner=user) if ASSET_ID_PATTERN.match(asset_id) else None
    if asset is None:
        raise ApiError(404, "asset not found")
    return asset


async def get_asset(request: Request) -> Response:
    """``GET /assets/{id}`` (``?times=true`` adds word timings)."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    asset = await _owned_asset(request, brain, user)
    return JSONResponse(asset.to_json(times=flag(request.query_params.get("times"), "times")))


async def get_content(request: Request) -> Response:
    """``GET /assets/{id}/content``: the original media bytes."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    asset = await _owned_asset(request, brain, user)
    path = brain.store.media_file(asset)
    if path is None or not await asyncio.to_thread(path.exists):
        raise ApiError(404, "the asset's media has not been downloaded yet")
    # FileResponse reads the file on threads of its own.
    return FileResponse(path, media_type=asset.media_type or "application/octet-stream")


async def put_asset(request: Request) -> Response:
    """``PUT /assets/{id}``: correct the transcript and/or replace the metadata."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    asset = await _owned_asset(request, brain, user)
    async with json_body(request, brain.settings.max_json_bytes, brain.json_budget) as body:
        return await _correct(brain, asset, body)


async def _correct(brain: Brain, asset: Asset, body: Any) -> Response:
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object")
    transcript, metadata = body.get("transcript"), body.get("metadata")
    if transcript is not None and not isinstance(transcript, str):
        raise ApiError(400, "transcript must be a string")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(400, "metadata must be an object")
    if transcript is not None and asset.status != DONE:
        raise ApiError(400, f"the asset is {asset.status}; only a done asset's transcript can be corrected")
    words = realign(asset.words, transcript) if transcript is not None else None
    await brain.db.call(brain.store.update, asset.asset_id, words, metadata)
    updated = await brain.db.call(brain.store.get, asset.asset_id)
    assert updated is not None
    return JSONResponse(updated.to_json())


async def delete_asset(request: Request) -> Response:
    """``DELETE /assets/{id}``: remove the asset and its media, and stop its recognition if one is running."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    asset = await _owned_asset(request, brain, user)
    await brain.db.call(brain.store.delete, asset.asset_id)
    stopped = brain.dispatcher is not None and await brain.dispatcher.cancel(asset.asset_id)
    log.info("asset %s deleted by user %s%s", asset.asset_id, user, "; its recognition is stopped" if stopped else "")
    return JSONResponse({"asset_id": asset.asset_id, "deleted": True})


async def asset_endpoint(request: Request) -> Response:
    """``/assets/{id}``: one route for its three methods, so a wrong method gets one honest ``Allow``."""
    handler = {"GET": get_asset, "HEAD": get_asset, "PUT": put_asset, "DELETE": delete_asset}[request.method]
    return await handler(request)


async def list_assets(request: Request) -> Response:
    """``GET /assets``: newest first, done only unless ``done=false``, paged by limit/offset."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    done_only = flag(request.query_params.get("done", "true"), "done")
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0)
    summaries, more = await brain.db.call(brain.store.page, user, done_only, limit, offset)
    body: dict[str, Any] = {"results": summaries}
    if more:
        body["next_offset"] = offset + len(summaries)
    return JSONResponse(body)


async def search_assets(request: Request) -> Response:
    """``POST /assets/search``: where a phrase occurs in the caller's assets, best confidence first."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    async with json_body(request, brain.settings.max_json_bytes, brain.json_budget) as body:
        query = SearchQuery.parse(body)
        answer = await brain.db.search(user, query)
    return Response(answer, media_type="application/json")
