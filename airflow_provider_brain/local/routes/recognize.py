"""``POST /speech:recognize``: a raw media upload, a JSON body naming a URL, or inline base64 content.

Bodies and downloads are streamed to a temporary file by threads, checked to be decodable audio, then
made a ``processing`` asset; synchronous calls wait for the dispatcher to finish it. A request carrying an
``Idempotency-Key`` that made an asset before is answered with that asset (``local/idempotency.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from airflow_provider_brain.local.assets import DONE, PROCESSING, Asset, new_asset_id
from airflow_provider_brain.local.audio import AudioDecodeError, probe
from airflow_provider_brain.local.download import check_media_url, download_to_file
from airflow_provider_brain.local.errors import ApiError, DownloadError
from airflow_provider_brain.local.http_input import base_url, flag, json_body, receive_body
from airflow_provider_brain.local.idempotency import (
    check_same_request,
    idempotency_key,
    json_digest,
    upload_digest,
)
from airflow_provider_brain.local.offload import unlink
from airflow_provider_brain.local.state import Brain, brain_of
from airflow_provider_brain.local.store import utc_now
from airflow_provider_brain.local.url_guard import PrivateAddressError, check_url

log = logging.getLogger("brain_local.api")

RETRY_AFTER_SECONDS = 5
_SPACE = re.compile(r"\s")
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/json")


@dataclass
class Submission:
    """Who submits, and what the new asset records beside its media."""

    user: str
    base_url: str
    key: str | None = None
    digest: str | None = None
    metadata: dict[str, Any] | None = None
    callback: str | None = None

    def new_asset(self, **fields: Any) -> Asset:
        return Asset(
            asset_id=new_asset_id(),
            owner=self.user,
            status=PROCESSING,
            created=utc_now(),
            base_url=self.base_url,
            metadata=self.metadata,
            callback=self.callback,
            idempotency_key=self.key,
            request_digest=self.digest,
            **fields,
        )


async def _admit_media(brain: Brain, tmp: Path, submission: Submission) -> Asset:
    """Check that ``tmp`` is decodable audio, then make it a new ``processing`` asset."""
    try:
        info = await asyncio.to_thread(probe, tmp)
    except AudioDecodeError as exc:
        raise ApiError(400, str(exc)) from None
    asset = submission.new_asset(duration=round(info.duration, 3) if info.duration else None, media_type=info.mime_type)
    await brain.db.call(brain.store.create, asset, tmp)
    log.info("asset %s: %s media from user %s queued", asset.asset_id, info.format, submission.user)
    return asset


async def _earlier(brain: Brain, submission: Submission) -> Response | None:
    """The answer to a resent submission: the asset its ``Idempotency-Key`` made, as it is now (200), or 422 if
    that key came with another request; None if the key is new (or its asset was deleted)."""
    if submission.key is None:
        return None
    asset = await brain.db.call(brain.store.find_by_key, submission.user, submission.key)
    if asset is None:
        return None
    assert submission.digest is not None
    check_same_request(asset.request_digest, submission.digest)
    log.info("asset %s: submitted again by user %s with its Idempotency-Key", asset.asset_id, submission.user)
    return JSONResponse(asset.to_json(), headers={"Idempotent-Replayed": "true"})


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
    final = await brain.db.call(brain.store.get, asset.asset_id)
    if final is None:
        raise ApiError(404, "asset was deleted while it was being recognised")
    if final.status == DONE:
        return JSONResponse(final.to_json())
    # The failed asset itself, whose "error" says why, under the status that fits the cause.
    return JSONResponse(final.to_json(), status_code=final.error_status or 500)


async def _check_capacity(brain: Brain) -> None:
    if await brain.db.call(brain.store.pending_count) >= brain.settings.max_queue:
        raise ApiError(429, "too many assets are waiting; retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _check_address(brain: Brain, url: str, what: str) -> None:
    """400 at submission for a URL whose host is a loopback, private or link-local address (unless allowed)."""
    try:
        await check_url(url, what, brain.settings.allow_private_urls)
    except PrivateAddressError as exc:
        raise ApiError(400, str(exc)) from None


async def recognize(request: Request) -> Response:
    """``POST /speech:recognize``: a raw media upload, or a JSON body naming a URL or inline content."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    key = idempotency_key(request)
    # A full queue refuses new work, not a resend of work it already holds.
    if key is None or await brain.db.call(brain.store.find_by_key, user, key) is None:
        await _check_capacity(brain)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _JSON_TYPES or content_type.endswith("+json"):
        outcome = await _recognize_json(request, brain, Submission(user, base_url(request), key))
    else:
        outcome = await _recognize_upload(request, brain, Submission(user, base_url(request), key))
    if isinstance(outcome, Response):
        return outcome
    # The request's body is dropped by now: a synchronous caller waits for recognition holding none of it.
    return await _answer(brain, *outcome)


async def _recognize_upload(request: Request, brain: Brain, submission: Submission) -> Response | tuple[Asset, bool]:
    is_async = flag(request.query_params.get("async"), "async")
    tmp = brain.store.new_tmp_file()
    try:
        size, sha256 = await receive_body(
            request, tmp, brain.settings.max_body_bytes, hashed=submission.key is not None
        )
        if size == 0:
            raise ApiError(400, "empty request body: send the media file as the body")
        submission.digest = upload_digest(sha256) if sha256 is not None else None
        async with brain.keys.hold(submission.user, submission.key):
            earlier = await _earlier(brain, submission)
            if earlier is not None:
                return earlier
            return await _admit_media(brain, tmp, submission), is_async
    except ClientDisconnect:
        log.info("upload from user %s cut off by the client; no asset created", submission.user)
        return Response(status_code=400)
    finally:
        await unlink(tmp)


async def _recognize_json(request: Request, brain: Brain, submission: Submission) -> Response | tuple[Asset, bool]:
    """A JSON submission; its body is held (and charged to the JSON budget) only until its asset exists."""
    try:
        async with json_body(request, brain.settings.max_json_bytes, brain.json_budget) as body:
            return await _from_json(brain, submission, body)
    except ClientDisconnect:
        return Response(status_code=400)


async def _from_json(brain: Brain, submission: Submission, body: Any) -> Response | tuple[Asset, bool]:
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
    is_async = flag(config["async"] if "async" in config else config.get("isAsync"), "config.async")
    callback = config.get("callback")
    if callback is not None:
        try:
            check_media_url(callback)
        except DownloadError:
            raise ApiError(400, "config.callback must be an absolute http or https URL") from None
        await _check_address(brain, callback, "config.callback")
    url = audio.get("url", audio.get("uri"))
    content = audio.get("content")
    media_url: str | None = None  # None: the media is inline
    if content is None:
        if url is None:
            raise ApiError(400, "audio.url is required")
        try:
            media_url = check_media_url(url)
        except DownloadError as exc:
            raise ApiError(400, str(exc)) from None
        await _check_address(brain, media_url, "audio.url")
    elif not isinstance(content, str) or not content:
        raise ApiError(400, "audio.content must be a non-empty base64 string")
    if submission.key is not None:
        submission.digest = await json_digest(body, len(content) if isinstance(content, str) else 0)
    submission.metadata, submission.callback = metadata, callback
    async with brain.keys.hold(submission.user, submission.key):
        earlier = await _earlier(brain, submission)
        if earlier is not None:
            return earlier
        if media_url is not None:
            if is_async:
                return await _queue_url(brain, submission, media_url), True
            return await _fetch_url(brain, submission, media_url), False
        assert isinstance(content, str)  # checked above
        return await _recognize_inline(brain, submission, content), is_async


async def _queue_url(brain: Brain, submission: Submission, url: str) -> Asset:
    """An asynchronous URL submission: its media is downloaded in the worker stage, so the caller gets its
    asset id at once."""
    asset = submission.new_asset(source_url=url)
    await brain.db.call(brain.store.create, asset)
    log.info("asset %s: URL submission from user %s queued", asset.asset_id, submission.user)
    return asset


async def _fetch_url(brain: Brain, submission: Submission, url: str) -> Asset:
    """A synchronous URL submission: the asset exists once its media has arrived whole."""
    tmp = brain.store.new_tmp_file()
    try:
        await download_to_file(
            url,
            tmp,
            max_bytes=brain.settings.max_body_bytes,
            timeout=brain.settings.download_timeout,
            allow_private=brain.settings.allow_private_urls,
        )
        return await _admit_media(brain, tmp, submission)
    except DownloadError as exc:
        raise ApiError(exc.status, str(exc)) from None
    finally:
        await unlink(tmp)


def _write_base64(content: str, dest: Path) -> None:
    """Decode ``audio.content`` into ``dest`` (blocking: up to the JSON limit of base64, so on a thread)."""
    if _SPACE.search(content):  # copied only if it must be: it may be tens of megabytes
        # Line breaks are common in base64 (MIME style); anything else outside the alphabet is an error.
        content = "".join(content.split())
    try:
        media = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "audio.content is not valid base64") from None
    if not media:
        raise ApiError(400, "audio.content is not valid base64")
    dest.write_bytes(media)


async def _recognize_inline(brain: Brain, submission: Submission, content: str) -> Asset:
    tmp = brain.store.new_tmp_file()
    try:
        await asyncio.to_thread(_write_base64, content, tmp)
        return await _admit_media(brain, tmp, submission)
    finally:
        await unlink(tmp)
