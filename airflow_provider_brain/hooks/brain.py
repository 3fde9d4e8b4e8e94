"""``BrainHook``: the Brain API as Airflow sees it. Submit audio, fetch, list, update, delete and wait.

Operators, sensors, triggers and transfers only call this hook. How requests travel (settings, the two
HTTP clients, status-to-error mapping, the retry decision) lives in ``hooks/transport.py`` and the modules it
names; submissions in ``hooks/submissions.py`` and ``hooks/uploads.py``; waits in ``hooks/waits.py`` and
``hooks/poller.py``. Sync methods use ``requests``; the
``a``-prefixed coroutines (for triggers) use ``httpx`` and Airflow's async connection lookup, so they never
block the triggerer's event loop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_brain.exceptions import (
    BrainConnectionError,
    BrainError,
    BrainReadTimeout,
)
from airflow_provider_brain.hooks import idempotency, listing, submissions, waits
from airflow_provider_brain.hooks import search as phrase_search
from airflow_provider_brain.hooks.idempotency import (
    IDEMPOTENCY_METADATA_KEY,
)
from airflow_provider_brain.hooks.search import SearchHit
from airflow_provider_brain.hooks.transport import (
    DEFAULT_BASE_URL,
    Call,
    ClientSettings,
    Transport,
    asset_path,
    base_url_from_connection,
    is_retryable,
    settings_from_connection,
)
from airflow_provider_brain.hooks.uploads import AudioSource
from airflow_provider_brain.models import Asset
from airflow_provider_brain.progress import WaitProgress

__all__ = [
    "DEFAULT_BASE_URL",
    "IDEMPOTENCY_METADATA_KEY",
    "AudioSource",
    "BrainConnectionError",
    "BrainHook",
    "BrainReadTimeout",
    "base_url_from_connection",
    "is_retryable",
]

log = logging.getLogger(__name__)


class BrainHook(idempotency.KeyLookups, BaseHook):
    """Talk to a Brain speech-transcription API: submit audio, fetch, list, update and delete assets.

    The connection (type ``brain``) holds the base URL in *host* (default
    ``https://brain.deepgram.com``), the API ID or username in *login*, and the API token or
    password in *password*. Extras: ``timeout`` (seconds, default 300), ``verify`` (bool or CA
    bundle path), ``proxies`` (``{"https": "http://proxy:3128"}``), ``max_retries``
    (default 5) and ``server_idempotency`` (default true: the server honours ``Idempotency-Key``).

    .. code-block:: python

        hook = BrainHook(brain_conn_id="brain_default")
        asset = hook.submit_file("/data/call-17.wav", async_=True)
        done = hook.wait_for_asset(asset.asset_id, poll_interval=5, timeout=600)
        print(done.duration, done.word_count)

    :param brain_conn_id: the Airflow connection to use.
    :param retry_backoff: first backoff in seconds between retries (grows exponentially, with jitter).
    :param retry_backoff_max: the longest backoff between two retries, in seconds.
    :param max_retries: overrides the connection's ``max_retries`` extra.
    """

    conn_name_attr = "brain_conn_id"
    default_conn_name = "brain_default"
    conn_type = "brain"
    hook_name = "Brain"

    def __init__(
        self,
        brain_conn_id: str = default_conn_name,
        *,
        retry_backoff: float = 1.0,
        retry_backoff_max: float = 60.0,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.brain_conn_id = brain_conn_id
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self._max_retries_override = max_retries
        self._transport: Transport | None = None

    # ------------------------------------------------------------------ settings and transport

    @property
    def settings(self) -> ClientSettings:
        """The connection's settings, read on first use (sync path)."""
        return self.transport.settings

    async def aget_settings(self) -> ClientSettings:
        """The connection's settings, read with Airflow's async connection lookup (async path)."""
        return (await self.aget_transport()).settings

    def _read_settings(self) -> ClientSettings:
        """The connection's settings, looked up now (a rotated password is seen the next time this runs)."""
        conn = self.get_connection(self.brain_conn_id)
        return self._with_overrides(settings_from_connection(conn, conn.extra_dejson))

    async def _aread_settings(self) -> ClientSettings:
        """``_read_settings`` with Airflow's async connection lookup."""
        conn = await self.aget_connection(self.brain_conn_id)
        extras = await conn.aextra_dejson() if hasattr(conn, "aextra_dejson") else conn.extra_dejson
        return self._with_overrides(settings_from_connection(conn, extras))

    def _with_overrides(self, settings: ClientSettings) -> ClientSettings:
        if self._max_retries_override is not None:
            settings = dataclasses.replace(settings, max_retries=self._max_retries_override)
        return settings

    def get_conn(self) -> requests.Session:
        """The ``requests.Session`` shared by this hook's calls, with auth, proxies and User-Agent set."""
        return self.transport.session

    def _request(self, call: Call, *, retry: bool = True) -> Any:
        return self.transport.request(call, retry=retry)

    async def _arequest(self, call: Call) -> Any:
        return await (await self.aget_transport()).arequest(call)

    # ------------------------------------------------------------------ API: submit

    def submit_file(
        self,
        source: AudioSource,
        *,
        async_: bool = False,
        metadata: Mapping[str, Any] | None = None,
        content_type: str = "application/octet-stream",
        idempotency_key: str | None = None,
    ) -> Asset:
        """Upload media to ``POST /speech:recognize``, streamed: the file is never read whole into memory.

        :param source: a path, an open binary file (seekable or not), an iterable of ``bytes`` chunks,
            or a callable returning a fresh file object or chunk iterable on each call. A path, a
            seekable file or a callable is re-read from its start when a retryable failure cuts the
            upload; an iterator cannot be, so such a failure raises ``BrainUploadNotRewindable``.
        :param async_: return at once with a ``processing`` asset instead of waiting for the transcript.
        :param metadata: stored with the asset (sent with ``PUT /assets/{id}`` right after the upload,
            since the raw-upload form of the API carries no metadata).
        :param content_type: ``application/octet-stream`` or an ``audio/*`` type.
        :param idempotency_key: names this upload (no secrets). It is sent as the ``Idempotency-Key`` header
            (one is made up when none is given), so a server that honours it answers a resend after a lost
            answer with the first asset; it is also stored in the asset's metadata with ``metadata``. Against
            a server that does not (the connection's ``server_idempotency`` extra set to false), an upload
            whose answer was lost is not sent again: ``BrainAnswerLost`` says so.
        """
        asset = submissions.upload(
            self.transport, source, async_=async_, content_type=content_type, idempotency_key=idempotency_key
        )
        asset = self._finished(asset, async_)
        if idempotency_key:
            metadata = {**(metadata or {}), IDEMPOTENCY_METADATA_KEY: idempotency_key}
        if metadata:
            try:
                stored = self.update_asset(asset.asset_id, metadata=metadata)
            except BrainError as err:
                # The audio is uploaded: losing its id over metadata would upload it twice.
                log.warning("Brain asset %s was uploaded, but storing its metadata failed: %s", asset.asset_id, err)
            else:
                # A processing asset's JSON omits metadata; report what was stored.
                asset = dataclasses.replace(stored, metadata=stored.metadata or dict(metadata))
        log.info("Uploaded audio to Brain: asset %s (%s)", asset.asset_id, asset.status.value)
        return asset

    def submit_url(
        self,
        url: str,
        *,
        async_: bool = False,
        metadata: Mapping[str, Any] | None = None,
        callback: str | None = None,
        idempotency_key: str | None = None,
    ) -> Asset:
        """Ask Brain to download and transcribe the media at ``url`` (JSON form of ``POST /speech:recognize``).

        The URL may be a presigned S3 URL: it is sent in the request body and never logged.

        Every submission carries an ``Idempotency-Key`` header (``idempotency_key``, or one made up for this
        call): a server that honours it answers a resend after a lost answer with the first asset. For one that
        does not, ``idempotency_key`` is also stored in the metadata and looked up before any resend
        (``hooks/idempotency.py``: one ``GET /assets`` per resend, none on the first attempt).

        :param async_: return at once with a ``processing`` asset instead of waiting for the transcript.
        :param metadata: stored with the asset and returned with it (e.g. ``{"source": "s3://bucket/key"}``).
        :param callback: a URL that receives a ``POST`` of the asset JSON when it is done or failed.
        :param idempotency_key: names this submission (no secrets: it is stored in the asset's metadata).
            With ``async_=True`` a read timeout is then retried too.
        """
        call = submissions.url_call(
            url, async_=async_, metadata=metadata, callback=callback, idempotency_key=idempotency_key
        )
        if idempotency_key:
            asset = idempotency.submit_once(self.transport, call, idempotency_key, retry_read_timeouts=async_)
        else:
            asset = Asset.from_json(self._request(call))
        return submissions.submitted(self._finished(asset, async_), call)

    def _finished(self, asset: Asset, async_: bool) -> Asset:
        """A synchronous submission answered with a processing asset (an earlier attempt found, or a resend the
        server answered with the first asset as it is now): wait for it, as a synchronous submission does."""
        if async_ or not asset.is_processing:
            return asset
        return self.wait_for_asset(asset.asset_id, timeout=self.settings.timeout)

    async def asubmit_url(
        self, url: str, *, metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None
    ) -> Asset:
        """Async ``submit_url(async_=True)`` for triggers: returns the ``processing`` asset at once.

        The same payload, retry policy and idempotency-key lookup before each resend as ``submit_url``.
        """
        call = submissions.url_call(url, async_=True, metadata=metadata, callback=None, idempotency_key=idempotency_key)
        transport = await self.aget_transport()
        if idempotency_key:
            asset = await idempotency.asubmit_once(transport, call, idempotency_key)
        else:
            asset = Asset.from_json(await transport.arequest(call))
        return submissions.submitted(asset, call)

    # ------------------------------------------------------------------ API: assets

    def get_asset(self, asset_id: str, *, times: bool = False, deadline: float | None = None) -> Asset:
        """Fetch one asset; ``times=True`` adds word-level timings (``Asset.words``).

        :param deadline: a wall-clock time (``time.time()``) past which no retry starts and no attempt waits.
        """
        return Asset.from_json(self.transport.request(listing.get_asset_call(asset_id, times), deadline=deadline))

    async def aget_asset(self, asset_id: str, *, times: bool = False, deadline: float | None = None) -> Asset:
        """Async ``get_asset`` for triggers: httpx, async connection lookup, same parsing and retries."""
        transport = await self.aget_transport()
        return Asset.from_json(await transport.arequest(listing.get_asset_call(asset_id, times), deadline=deadline))

    def list_assets(self, *, include_unfinished: bool = False, page_size: int = 100) -> Iterator[Asset]:
        """Yield the user's assets, newest first, fetching further pages only as they are consumed.

        :param include_unfinished: also list assets that are still processing or failed.
        """
        offset = 0
        while True:
            params = {"limit": str(page_size), "offset": str(offset)}
            if include_unfinished:
                params["done"] = "false"
            results, next_offset = listing.page_results(self._request(Call("GET", "/assets", params=params)), offset)
            for item in results:
                yield Asset.from_json(item)
            if next_offset is None:
                return
            offset = next_offset

    def update_asset(
        self,
        asset_id: str,
        *,
        transcript: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Asset:
        """Correct an asset's transcript and/or replace its metadata (``PUT /assets/{id}``)."""
        payload: dict[str, Any] = {}
        if transcript is not None:
            payload["transcript"] = transcript
        if metadata is not None:
            payload["metadata"] = dict(metadata)
        if not payload:
            raise ValueError("update_asset needs a transcript or metadata to change")
        return Asset.from_json(self._request(Call("PUT", asset_path(asset_id), json=payload)))

    def delete_asset(self, asset_id: str) -> bool:
        """Delete an asset and its media; returns whether the server confirmed it."""
        data = self._request(Call("DELETE", asset_path(asset_id)))
        return bool(isinstance(data, Mapping) and data.get("deleted"))

    async def adelete_asset(self, asset_id: str) -> bool:
        """Async ``delete_asset`` (a trigger cancelling its asset when a user ends the task)."""
        data = await self._arequest(Call("DELETE", asset_path(asset_id)))
        return bool(isinstance(data, Mapping) and data.get("deleted"))

    def wait_for_asset(
        self,
        asset_id: str,
        *,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        times: bool = False,
        progress: WaitProgress | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Asset:
        """Poll an asset until it is done, holding the caller (use the trigger to wait without a worker).
        ``progress`` logs the wait once a minute; ``tags`` tag its ``brain.poll_requests``.

        :raises BrainAssetFailed: the asset failed; the message carries the server's reason.
        :raises BrainTimeout: still processing after ``timeout`` seconds.
        """
        return waits.wait_for_asset(
            self, asset_id, poll_interval=poll_interval, timeout=timeout, times=times, progress=progress, tags=tags
        )

    def wait_for_assets(
        self,
        asset_ids: Iterable[str],
        *,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        progress: WaitProgress | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Asset]:
        """Wait for many assets at once, with one ``GET /assets`` page per interval for up to 1,000 of them.

        Returns the assets that are done or failed (listing summaries: no transcript; failed ones carry
        their reason), keyed by id; an id missing from the result was still processing at ``timeout``.
        Failures are returned, not raised: the caller decides what a failed file means.
        """
        ids = list(dict.fromkeys(asset_ids))
        return waits.wait_for_assets(
            self, ids, poll_interval=poll_interval, timeout=timeout, progress=progress, tags=tags
        )

    def search(self, query: str, asset_ids: Iterable[str] | None, *, limit: int | None = None) -> list[SearchHit]:
        """Where ``query`` was said in ``asset_ids`` (``None``: all the user's assets): typed hits, best confidence
        first, every page followed (``hooks/search.py``). Unknown and others' ids just have no hits."""
        return phrase_search.search(self.transport, query, asset_ids, limit=limit)

    async def asearch(
        self, query: str, asset_ids: Iterable[str] | None, *, limit: int | None = None
    ) -> list[SearchHit]:
        """Async ``search`` (for triggers)."""
        return await phrase_search.asearch(await self.aget_transport(), query, asset_ids, limit=limit)

    def test_connection(self) -> tuple[bool, str]:
        """Check the URL and credentials with one cheap, unretried call (used by the UI and CLI)."""
        try:
            self._request(Call("GET", "/assets", params={"limit": "1"}), retry=False)
        except (BrainError, ValueError) as err:
            return False, str(err)
        return True, f"Connected to Brain at {self.settings.base_url}"
