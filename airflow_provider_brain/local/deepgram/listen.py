"""``POST /v1/listen``: Deepgram's pre-recorded transcription, answered by the same recogniser and queue.

The body is the audio itself (the SDK sends ``application/octet-stream``) or ``{"url": "..."}``; options
come in the query string (``local/deepgram/answer.py``). Each request becomes an asset of the store, so it
waits in the same queue (``--max-queue``: ``429`` with ``Retry-After``), its URL is checked by the same
guard (``--allow-private-urls``) and fetched by the same downloader. Without ``callback`` the answer is the
full ``ListenV1Response``; with it, ``{"request_id"}`` at once and the full answer sent to the callback.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from airflow_provider_brain.local.assets import Asset
from airflow_provider_brain.local.audio import AudioDecodeError, probe
from airflow_provider_brain.local.deepgram.answer import ListenOptions
from airflow_provider_brain.local.deepgram.common import authenticate, deepgram_errors
from airflow_provider_brain.local.deepgram.records import ListenRecord, listen_owner
from airflow_provider_brain.local.deepgram.service import DeepgramDialect
from airflow_provider_brain.local.download import check_media_url, download_to_file
from airflow_provider_brain.local.errors import ApiError, DownloadError
from airflow_provider_brain.local.http_input import base_url, json_body, receive_body
from airflow_provider_brain.local.offload import unlink
from airflow_provider_brain.local.routes.recognize import RETRY_AFTER_SECONDS, Submission
from airflow_provider_brain.local.state import Brain, brain_of
from airflow_provider_brain.local.store import utc_now
from airflow_provider_brain.local.url_guard import PrivateAddressError, check_url

log = logging.getLogger("brain_local.deepgram")

_JSON_TYPES = ("application/json", "text/json")


async def _check_url(brain: Brain, url: object, what: str) -> str:
    """``url`` if it is an absolute http(s) URL the server may reach; 400 otherwise."""
    try:
        checked = check_media_url(url)
    except DownloadError:
        raise ApiError(400, f"{what} must be an absolute http or https URL") from None
    try:
        await check_url(checked, what, brain.settings.allow_private_urls)
    except PrivateAddressError as exc:
        raise ApiError(400, str(exc)) from None
    return checked


async def _admit(brain: Brain, submission: Submission, tmp_path: Path) -> Asset:
    """Check the received media is decodable audio, then make it a ``processing`` asset."""
    try:
        info = await asyncio.to_thread(probe, tmp_path)
    except AudioDecodeError as exc:
        raise ApiError(400, str(exc)) from None
    asset = submission.new_asset(duration=round(info.duration, 3) if info.duration else None, media_type=info.mime_type)
    await brain.db.call(brain.store.create, asset, tmp_path)
    return asset


async def _from_upload(request: Request, brain: Brain, submission: Submission) -> tuple[Asset, str]:
    tmp = brain.store.new_tmp_file()
    try:
        size, sha256 = await receive_body(request, tmp, brain.settings.max_body_bytes, hashed=True)
        if size == 0:
            raise ApiError(400, 'empty request body: send the audio, or a JSON body {"url": ...}')
        assert sha256 is not None
        return await _admit(brain, submission, tmp), sha256
    finally:
        await unlink(tmp)


async def _from_url(brain: Brain, submission: Submission, url: str, queue: bool) -> Asset:
    """An asset for media at ``url``: queued for the dispatcher to fetch (``queue``), or fetched now."""
    if queue:
        asset = submission.new_asset(source_url=url)
        await brain.db.call(brain.store.create, asset)
        return asset
    tmp = brain.store.new_tmp_file()
    try:
        settings = brain.settings
        await download_to_file(
            url,
            tmp,
            max_bytes=settings.max_body_bytes,
            timeout=settings.download_timeout,
            allow_private=settings.allow_private_urls,
        )
        return await _admit(brain, submission, tmp)
    except DownloadError as exc:
        raise ApiError(exc.status, str(exc).replace("audio.url", "url")) from None
    finally:
        await unlink(tmp)


@deepgram_errors
async def listen(request: Request) -> Response:
    """``POST /v1/listen``."""
    brain = brain_of(request)
    dialect: DeepgramDialect = request.app.state.deepgram
    user = authenticate(brain, request)
    options = ListenOptions.parse(request.query_params)
    callback = request.query_params.get("callback")
    method = (request.query_params.get("callback_method") or "post").lower()
    if method not in ("post", "put"):
        raise ApiError(400, "callback_method must be post or put")
    if callback is not None:
        callback = await _check_url(brain, callback, "callback")
    if await brain.db.call(brain.store.pending_count) >= brain.settings.max_queue:
        raise ApiError(429, "too many requests are waiting; retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)})
    submission = Submission(listen_owner(user), base_url(request))
    request_id, created = str(uuid.uuid4()), utc_now()
    sha256: str | None = None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type in _JSON_TYPES or content_type.endswith("+json"):
            async with json_body(request, brain.settings.max_json_bytes, brain.json_budget) as body:
                if not isinstance(body, dict) or "url" not in body:
                    raise ApiError(400, 'the JSON body must be {"url": "https://..."}')
                url = await _check_url(brain, body["url"], "url")
            asset = await _from_url(brain, submission, url, queue=callback is not None)
        else:
            asset, sha256 = await _from_upload(request, brain, submission)
    except ClientDisconnect:
        return Response(status_code=400)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    record = ListenRecord(
        request_id, submission.user, asset.asset_id, created, path, options.to_json(), callback, method
    )
    record.sha256 = sha256
    await brain.db.call(dialect.records.add, record)
    log.info("listen %s: asset %s from user %s queued", request_id, asset.asset_id, user)
    dispatcher = brain.dispatcher
    assert dispatcher is not None
    if callback is not None:
        dialect.deliver_later(record)
        await dispatcher.notify()
        return JSONResponse({"request_id": request_id}, headers={"dg-request-id": request_id})
    waiting = asyncio.ensure_future(dialect.wait_for(asset.asset_id))
    await dispatcher.notify()
    final = await waiting
    if final is None:
        raise ApiError(500, "the request's audio was lost while it was being recognised")
    return JSONResponse(await dialect.answer(record, final), headers={"dg-request-id": request_id})
