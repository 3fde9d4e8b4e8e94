"""The HTTP API (Starlette): routes of ``BRAIN_API.md`` and the JSON error handling around them."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from airflow_provider_brain.local.assets import (
    ASSET_ID_PATTERN,
    DONE,
    PROCESSING,
    Asset,
    new_asset_id,
    normalise,
    realign,
    search_words,
)
from airflow_provider_brain.local.audio import AudioDecodeError, probe
from airflow_provider_brain.local.auth import Authenticator, load_or_create_secret
from airflow_provider_brain.local.download import check_media_url, download_to_file
from airflow_provider_brain.local.errors import ApiError, DownloadError
from airflow_provider_brain.local.settings import ServerSettings
from airflow_provider_brain.local.store import AssetStore, utc_now
from airflow_provider_brain.local.worker import Dispatcher

log = logging.getLogger("brain_local.api")
access_log = logging.getLogger("brain_local.access")

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
RETRY_AFTER_SECONDS = 5
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/json")


class Brain:
    """The server's state for one run: settings, store, dispatcher and authenticator."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = AssetStore(settings.data_dir)
        self.auth = Authenticator(settings.users, load_or_create_secret(settings.data_dir))
        self.dispatcher: Dispatcher | None = None


def _brain(request: Request) -> Brain:
    brain: Brain = request.app.state.brain
    return brain


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _flag(value: Any, name: str) -> bool:
    """Read a boolean given as JSON ``true``/``false`` or a query string ``true|false|1|0``."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ApiError(400, f"{name} must be true or false")


def _int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if value < low:
        raise ApiError(400, f"{name} must be at least {low}")
    return min(value, high) if high is not None else value


def _owned_asset(request: Request, user: str) -> Asset:
    asset_id = request.path_params["asset_id"]
    asset = _brain(request).store.get(asset_id, owner=user) if ASSET_ID_PATTERN.match(asset_id) else None
    if asset is None:
        raise ApiError(404, "asset not found")
    return asset


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# --- receiving media -------------------------------------------------------------------------------


async def _receive_body(request: Request, dest: Path, limit: int) -> int:
    """Stream the request body into ``dest``; 413 past ``limit``. The caller removes ``dest`` on error."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is larger than the limit of {limit} bytes")
    received = 0
    with dest.open("wb") as handle:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(413, f"request body is larger than the limit of {limit} bytes")
            # Writes go to the page cache in chunks of at most ~64 KiB: quick enough for the loop.
            handle.write(chunk)
    return received


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"JSON body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"JSON body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed JSON body") from None


async def _admit_media(
    brain: Brain, tmp: Path, user: str, request: Request, metadata: dict[str, Any] | None, callback: str | None
) -> Asset:
    """Check that ``tmp`` is decodable audio, then make it a new ``processing`` asset."""
    try:
        info = await asyncio.to_thread(probe, tmp)
    except AudioDecodeError as exc:
        raise ApiError(400, str(exc)) from None
    asset_id = new_asset_id()
    relative = brain.store.adopt_media(asset_id, tmp)
    asset = Asset(
        asset_id=asset_id,
        owner=user,
        status=PROCESSING,
        created=utc_now(),
        base_url=_base_url(request),
        duration=round(info.duration, 3) if info.duration else None,
        metadata=metadata,
        media_path=relative,
        media_type=info.mime_type,
        callback=callback,
    )
    brain.store.create(asset)
    log.info("asset %s: %s media from user %s queued", asset_id, info.format, user)
    return asset


async def _answer(brain: Brain, asset: Asset, is_async: bool) -> Response:
    """Queue ``asset``; answer at once (async) or when it is recognised (sync)."""
    dispatcher = brain.dispatcher
    assert dispatcher is not None
    if is_async:
        await dispatcher.notify()
        return JSONResponse({"asset_id": asset.asset_id, "status": PROCESSING})
    waiting = asyncio.ensure_future(dispatcher.wait_for(asset.asset_id))
    await dispatcher.notify()
    await waiting
    final = brain.store.get(asset.asset_id)
    if final is None:
        raise ApiError(404, "asset was deleted while it was being recognised")
    if final.status == DONE:
        return JSONResponse(final.to_json())
    # The failed asset itself, whose "error" says why, under the status that fits the cause.
    return JSONResponse(final.to_json(), status_code=final.error_status or 500)


def _check_capacity(brain: Brain) -> None:
    if brain.store.pending_count() >= brain.settings.max_queue:
        raise ApiError(429, "too many assets are waiting; retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def recognize(request: Request) -> Response:
    """``POST /speech:recognize``: a raw media upload, or a JSON body naming a URL or inline content."""
    brain = _brain(request)
    user = brain.auth.authenticate(request)
    _check_capacity(brain)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _JSON_TYPES or content_type.endswith("+json"):
        return await _recognize_json(request, brain, user)
    is_async = _flag(request.query_params.get("async"), "async")
    tmp = brain.store.new_tmp_file()
    try:
        size = await _receive_body(request, tmp, brain.settings.max_body_bytes)
        if size == 0:
            raise ApiError(400, "empty request body: send the media file as the body")
        asset = await _admit_media(brain, tmp, user, request, None, None)
    except ClientDisconnect:
        log.info("upload from user %s cut off by the client; no asset created", user)
        return Response(status_code=400)
    finally:
        tmp.unlink(missing_ok=True)
    return await _answer(brain, asset, is_async)


async def _recognize_json(request: Request, brain: Brain, user: str) -> Response:
    try:
        body = await _read_json(request, brain.settings.max_json_bytes)
    except ClientDisconnect:
        return Response(status_code=400)
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object")
    audio = body.get("audio")
    config = body.get("config") or {}
    metadata = body.get("metadata")
    if not isinstance(audio, dict):
        raise ApiError(400, 'audio is required: {"audio": {"url": "https://..."}}')
    if not isinstance(config, dict):
        raise ApiError(400, "config must be an object")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(400, "metadata must be an object")
    is_async = _flag(config["async"] if "async" in config else config.get("isAsync"), "config.async")
    callback = config.get("callback")
    if callback is not None:
        try:
            check_media_url(callback)
        except DownloadError:
            raise ApiError(400, "config.callback must be an absolute http or https URL") from None
    url = audio.get("url", audio.get("uri"))
    content = audio.get("content")
    if content is not None:
        return await _recognize_inline(request, brain, user, content, metadata, callback, is_async)
    if url is None:
        raise ApiError(400, "audio.url is required")
    try:
        check_media_url(url)
    except DownloadError as exc:
        raise ApiError(400, str(exc)) from None
    if is_async:
        # Download in the worker stage, so the caller gets its asset id at once.
        asset = Asset(
            asset_id=new_asset_id(),
            owner=user,
            status=PROCESSING,
            created=utc_now(),
            base_url=_base_url(request),
            metadata=metadata,
            source_url=url,
            callback=callback,
        )
        brain.store.create(asset)
        log.info("asset %s: URL submission from user %s queued", asset.asset_id, user)
        return await _answer(brain, asset, True)
    tmp = brain.store.new_tmp_file()
    try:
        await download_to_file(
            url, tmp, max_bytes=brain.settings.max_body_bytes, timeout=brain.settings.download_timeout
        )
        asset = await _admit_media(brain, tmp, user, request, metadata, callback)
    except DownloadError as exc:
        raise ApiError(exc.status, str(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return await _answer(brain, asset, False)


async def _recognize_inline(
    request: Request,
    brain: Brain,
    user: str,
    content: Any,
    metadata: dict[str, Any] | None,
    callback: str | None,
    is_async: bool,
) -> Response:
    if not isinstance(content, str) or not content:
        raise ApiError(400, "audio.content must be a non-empty base64 string")
    try:
        # Line breaks are common in base64 (MIME style); anything else outside the alphabet is an error.
        media = base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "audio.content is not valid base64") from None
    if not media:
        raise ApiError(400, "audio.content is not valid base64")
    tmp = brain.store.new_tmp_file()
    try:
        tmp.write_bytes(media)
        asset = await _admit_media(brain, tmp, user, request, metadata, callback)
    finally:
        tmp.unlink(missing_ok=True)
    return await _answer(brain, asset, is_async)


# --- assets ---------------------------------------------------------------------------------------


async def get_asset(request: Request) -> Response:
    """``GET /assets/{id}`` (``?times=true`` adds word timings)."""
    user = _brain(request).auth.authenticate(request)
    asset = _owned_asset(request, user)
    return JSONResponse(asset.to_json(times=_flag(request.query_params.get("times"), "times")))


async def get_content(request: Request) -> Response:
    """``GET /assets/{id}/content``: the original media bytes."""
    brain = _brain(request)
    user = brain.auth.authenticate(request)
    asset = _owned_asset(request, user)
    path = brain.store.media_file(asset)
    if path is None or not path.exists():
        raise ApiError(404, "the asset's media has not been downloaded yet")
    return FileResponse(path, media_type=asset.media_type or "application/octet-stream")


async def put_asset(request: Request) -> Response:
    """``PUT /assets/{id}``: correct the transcript and/or replace the metadata."""
    brain = _brain(request)
    user = brain.auth.authenticate(request)
    asset = _owned_asset(request, user)
    body = await _read_json(request, brain.settings.max_json_bytes)
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
    brain.store.update(asset.asset_id, words, metadata)
    updated = brain.store.get(asset.asset_id)
    assert updated is not None
    return JSONResponse(updated.to_json())


async def delete_asset(request: Request) -> Response:
    """``DELETE /assets/{id}``: remove the asset and its media."""
    brain = _brain(request)
    user = brain.auth.authenticate(request)
    asset = _owned_asset(request, user)
    brain.store.delete(asset.asset_id)
    log.info("asset %s deleted by user %s", asset.asset_id, user)
    return JSONResponse({"asset_id": asset.asset_id, "deleted": True})


async def asset_endpoint(request: Request) -> Response:
    """``/assets/{id}``: one route for its three methods, so a wrong method gets one honest ``Allow``."""
    handler = {"GET": get_asset, "HEAD": get_asset, "PUT": put_asset, "DELETE": delete_asset}[request.method]
    return await handler(request)


async def list_assets(request: Request) -> Response:
    """``GET /assets``: newest first, done only unless ``done=false``, paged by limit/offset."""
    brain = _brain(request)
    user = brain.auth.authenticate(request)
    done_only = _flag(request.query_params.get("done", "true"), "done")
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0)
    assets, more = brain.store.page(user, done_only, limit, offset)
    body: dict[str, Any] = {"results": [a.to_summary() for a in assets]}
    if more:
        body["next_offset"] = offset + len(assets)
    return JSONResponse(body)


async def search_assets(request: Request) -> Response:
    """``POST /assets/search``: where a phrase occurs in the caller's assets, best confidence first."""
    brain = _brain(request)
    user = brain.auth.authenticate(request)
    body = await _read_json(request, brain.settings.max_json_bytes)
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object")
    query = body.get("query")
    if not isinstance(query, str):
        raise ApiError(400, "query must be a non-empty string")
    words = [w for w in (normalise(t) for t in query.split()) if w]
    if not words:
        raise ApiError(400, "query must be a non-empty string")
    asset_ids = body.get("asset_ids")
    if asset_ids is not None and (not isinstance(asset_ids, list) or not all(isinstance(a, str) for a in asset_ids)):
        raise ApiError(400, "asset_ids must be a list of asset ids")

    def number(name: str, default: int | None, low: int) -> int | None:
        value = body.get(name, default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ApiError(400, f"{name} must be an integer of at least {low}")
        return value

    npp, page, limit = number("npp", None, 1), number("p", 0, 0), number("limit", None, 0)
    ids = [a for a in asset_ids if ASSET_ID_PATTERN.match(a)] if asset_ids is not None else None
    hits: list[dict[str, Any]] = []
    for asset in brain.store.owned(user, ids):
        hits.extend(search_words(asset, words))
    hits.sort(key=lambda h: h["confidence"], reverse=True)
    if limit is not None:
        hits = hits[:limit]
    if npp is not None:
        start = (page or 0) * npp
        hits = hits[start : start + npp]
    return JSONResponse({"results": hits})


# --- users ----------------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    """``GET /users/login``: a signed-username token for the caller."""
    brain = _brain(request)
    user = brain.auth.authenticate(request)
    return JSONResponse({"signed_username": brain.auth.sign(user)})


async def get_user(request: Request) -> Response:
    """``GET /users``: the caller's record (no secrets)."""
    user = _brain(request).auth.authenticate(request)
    return JSONResponse({"username": user})


# --- wiring ---------------------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return _error(exc.status_code, message, dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return _error(500, "internal server error")


class AccessLog:
    """Logs method, path, status and time of each request; never the query string (it may hold tokens)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            access_log.info(
                "%s %s %s %.0f ms", scope["method"], scope["path"], status, (time.monotonic() - started) * 1000
            )


def create_app(settings: ServerSettings) -> AccessLog:
    """Build the ASGI app; its lifespan opens the store and runs the dispatcher.

    The access log wraps everything, so it records the final status, 500s included.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        brain = Brain(settings)
        brain.dispatcher = Dispatcher(brain.store, settings)
        await brain.dispatcher.start()
        app.state.brain = brain
        try:
            yield
        finally:
            with suppress(Exception):
                await brain.dispatcher.stop()
            brain.store.close()

    routes = [
        Route("/speech:recognize", recognize, methods=["POST"]),
        Route("/assets", list_assets, methods=["GET"]),
        Route("/assets/search", search_assets, methods=["POST"]),
        Route("/assets/{asset_id}", asset_endpoint, methods=["GET", "PUT", "DELETE"]),
        Route("/assets/{asset_id}/content", get_content, methods=["GET"]),
        Route("/users/login", login, methods=["GET"]),
        Route("/users", get_user, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
    )
    return AccessLog(app)
