"""The one place the provider talks HTTP to Brain: URLs, auth, retries, streaming and parsing.

Operators, sensors, triggers and transfers only call this hook. Its synchronous methods use
a ``requests.Session``; its ``a``-prefixed coroutines (for triggers) use ``httpx`` and
Airflow's async connection lookup, so they never block the triggerer's event loop. Both
paths share the URL building, the response decoding into typed objects, and the single
decision of what is worth retrying.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import quote, urlsplit, urlunsplit

import certifi
import httpx
import requests
import tenacity
from airflow.sdk import BaseHook

from airflow_provider_brain import __version__
from airflow_provider_brain.exceptions import (
    BrainAPIError,
    BrainAssetFailed,
    BrainAuthError,
    BrainError,
    BrainNotFound,
    BrainTimeout,
    BrainUploadNotRewindable,
    body_excerpt,
    redact_urls,
)
from airflow_provider_brain.models import Asset, parse_api_time, validate_asset_id

DEFAULT_BASE_URL = "https://brain.deepgram.com"
DEFAULT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5
#: The longest ``Retry-After`` we honour; a server asking for more is waited for this long.
MAX_RETRY_AFTER = 300.0
USER_AGENT = f"airflow-provider-brain/{__version__}"
#: Metadata key under which a submission records its idempotency key (``submit_url(idempotency_key=...)``).
IDEMPOTENCY_METADATA_KEY = "airflow_idempotency_key"
#: How many of the newest assets a lookup by idempotency key scans, at most.
MAX_LOOKUP_ASSETS = 1000
#: Servers stamp whole seconds and clocks differ a little: a lookup reaches this far before its cutoff.
CLOCK_SLACK = timedelta(seconds=60)

log = logging.getLogger(__name__)

#: What ``submit_file`` uploads: a path, a binary file, an iterable of byte chunks, or a
#: callable that opens a fresh stream each time (so an upload from e.g. S3 can be retried).
AudioSource = str | os.PathLike[str] | BinaryIO | IO[bytes] | Iterable[bytes] | Callable[[], Any]


class BrainConnectionError(BrainAPIError):
    """No usable HTTP answer arrived: the connection failed, was reset, or timed out."""


class BrainReadTimeout(BrainConnectionError):
    """The request was sent, but no answer came within the connection's ``timeout``."""


def _transport_error(call: _Call, base_url: str, err: Exception) -> BrainAPIError:
    """Classify a requests/httpx exception: retryable network trouble, or a setup error to fix."""
    message = f"Brain {call.method} {call.path}: no answer from {base_url} ({type(err).__name__}: {err})"
    if isinstance(err, (requests.ReadTimeout, httpx.ReadTimeout)):
        return BrainReadTimeout(message)
    network = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        httpx.TimeoutException,
        httpx.NetworkError,
        httpx.RemoteProtocolError,
    )
    ssl_failure = isinstance(err, requests.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(err)
    if isinstance(err, network) and not ssl_failure:
        return BrainConnectionError(message)
    return BrainAPIError(
        f"Brain {call.method} {call.path} could not be sent to {base_url}: {type(err).__name__}: {err}"
    )


@dataclass(frozen=True)
class ClientSettings:
    """Everything a request needs, read once from the Airflow connection."""

    base_url: str
    login: str | None
    password: str | None
    timeout: float
    verify: bool | str
    proxies: dict[str, str] | None
    max_retries: int

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.login, self.password or "") if self.login else None

    def url(self, path: str) -> str:
        return self.base_url + path


def base_url_from_connection(host: str | None, schema: str | None, port: int | None) -> str:
    """Build the API's base URL from a connection's host (with or without scheme), schema and port.

    ``host="http://127.0.0.1:8765"``, or ``host="127.0.0.1", schema="http", port=8765``, both give
    ``http://127.0.0.1:8765``; an empty host gives the public ``https://brain.deepgram.com``.
    """
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Brain connection host {host!r} is not an http(s) URL or host name")
    if parts.username or parts.password:
        raise ValueError(
            "Brain connection host holds credentials (user:pass@host): put them in the connection's "
            "login and password fields, where Airflow masks them"
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def settings_from_connection(conn: Any, extras: Mapping[str, Any]) -> ClientSettings:
    """Turn an Airflow connection (and its already-parsed extras) into ``ClientSettings``."""
    verify = _extra(extras, "verify", True)
    if isinstance(verify, str) and verify.lower() in ("true", "false"):
        verify = verify.lower() == "true"
    proxies = extras.get("proxies") or None
    if proxies is not None and not isinstance(proxies, Mapping):
        raise ValueError('Brain connection extra \'proxies\' must be a JSON object like {"https": "http://proxy:3128"}')
    return ClientSettings(
        base_url=base_url_from_connection(conn.host, conn.schema, conn.port),
        login=conn.login or None,
        password=conn.password or None,
        timeout=float(_extra(extras, "timeout", DEFAULT_TIMEOUT)),
        verify=verify,
        proxies=dict(proxies) if proxies else None,
        max_retries=int(_extra(extras, "max_retries", DEFAULT_MAX_RETRIES)),
    )


def _extra(extras: Mapping[str, Any], name: str, default: Any) -> Any:
    """An extra's value, with the default for a missing, null or empty one (as the connection form saves them)."""
    value = extras.get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class _Call:
    """One API request, described once and sent by either the sync or the async path."""

    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice is harmless: not so for POST, which may create a second asset."""
        return self.method != "POST"


def _asset_path(asset_id: str) -> str:
    return "/assets/" + quote(validate_asset_id(asset_id), safe="")


def _raise_for_status(call: _Call, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Map an error status to the provider's exceptions; a 2xx/3xx answer passes."""
    if status < 400:
        return
    excerpt = body_excerpt(body)
    try:
        reason = redact_urls(str(json.loads(body).get("error"))) or excerpt
    except (ValueError, AttributeError):
        reason = excerpt
    what = f"Brain {call.method} {call.path}"
    if status in (401, 403):
        raise BrainAuthError(
            f"{what} was refused ({status}): {reason}. Check the Brain connection's login and password.",
            status=status,
            body=excerpt,
        )
    if status == 404:
        raise BrainNotFound(f"{what} failed with 404: {reason}", status=status, body=excerpt)
    retry_after = _parse_retry_after(headers.get("Retry-After")) if status == 429 else None
    raise BrainAPIError(f"{what} failed with {status}: {reason}", status=status, body=excerpt, retry_after=retry_after)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # An HTTP-date Retry-After: fall back to our own backoff.


def _decode(call: _Call, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    _raise_for_status(call, status, headers, body)
    try:
        return json.loads(body)
    except ValueError as err:
        # Not quoted: a successful answer may hold transcript text.
        raise BrainAPIError(
            f"Brain {call.method} {call.path} answered {status} with {len(body)} bytes that are not JSON ({err})",
            status=status,
        ) from None


def is_retryable(exc: BaseException, *, idempotent: bool = True) -> bool:
    """The one retry decision: connection failures, timeouts, 429 and 5xx. Never other 4xx.

    A read timeout on a non-idempotent call (a submission) is not retried: the server has the
    whole request and may be transcribing it, so sending it again would transcribe it twice.
    """
    if isinstance(exc, BrainReadTimeout):
        return idempotent
    if isinstance(exc, BrainConnectionError):
        return True
    if isinstance(exc, BrainAPIError) and exc.status is not None:
        return exc.status == 429 or exc.status >= 500
    return False


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    """Wait what the server asked for (``Retry-After``), else exponential backoff with full jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), MAX_RETRY_AFTER)
        return float(self._backoff(retry_state))


def _retry_logger(call: _Call) -> Any:
    """A tenacity ``before_sleep`` that says which call failed, why, and when it is retried."""

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "Brain %s %s failed (%s); retry %d in %.1f s",
            call.method,
            call.path,
            exc,
            retry_state.attempt_number,
            wait,
        )

    return before_sleep


@functools.lru_cache(maxsize=8)
def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One TLS context per verify setting, shared by every async client in the process.

    Building a context loads the CA bundle (milliseconds and ~1 MiB each): a triggerer running a
    thousand Brain triggers would otherwise pay that a thousand times.
    """
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        return (
            ssl.create_default_context(cafile=verify)
            if os.path.isfile(verify)
            else ssl.create_default_context(capath=verify)
        )
    return ssl.create_default_context(cafile=certifi.where())


class BrainHook(BaseHook):
    """Talk to a Brain speech-transcription API: submit audio, fetch, list, update and delete assets.

    The connection (type ``brain``) holds the base URL in *host* (default
    ``https://brain.deepgram.com``), the API ID or username in *login*, and the API token or
    password in *password*. Extras: ``timeout`` (seconds, default 300), ``verify`` (bool or CA
    bundle path), ``proxies`` (``{"https": "http://proxy:3128"}``) and ``max_retries``
    (default 5).

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
        self._settings: ClientSettings | None = None
        self._session: requests.Session | None = None
        self._async_client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ settings and clients

    @property
    def settings(self) -> ClientSettings:
        """The connection's settings, read on first use (sync path)."""
        if self._settings is None:
            conn = self.get_connection(self.brain_conn_id)
            self._settings = self._apply_overrides(settings_from_connection(conn, conn.extra_dejson))
        return self._settings

    async def aget_settings(self) -> ClientSettings:
        """The connection's settings, read with Airflow's async connection lookup (async path)."""
        if self._settings is None:
            conn = await self.aget_connection(self.brain_conn_id)
            extras = await conn.aextra_dejson() if hasattr(conn, "aextra_dejson") else conn.extra_dejson
            self._settings = self._apply_overrides(settings_from_connection(conn, extras))
        return self._settings

    def _apply_overrides(self, settings: ClientSettings) -> ClientSettings:
        if self._max_retries_override is None:
            return settings
        return ClientSettings(**{**settings.__dict__, "max_retries": self._max_retries_override})

    def get_conn(self) -> requests.Session:
        """The ``requests.Session`` shared by this hook's calls, with auth, proxies and User-Agent set."""
        if self._session is None:
            settings = self.settings
            session = requests.Session()
            session.auth = settings.auth
            session.verify = settings.verify
            if settings.proxies:
                session.proxies.update(settings.proxies)
            session.headers["User-Agent"] = f"{USER_AGENT} requests/{requests.__version__}"
            self._session = session
        return self._session

    async def _aget_client(self) -> httpx.AsyncClient:
        if self._async_client is None:
            settings = await self.aget_settings()
            mounts = (
                {
                    f"{scheme}://": httpx.AsyncHTTPTransport(proxy=url, verify=_ssl_context(settings.verify))
                    for scheme, url in settings.proxies.items()
                }
                if settings.proxies
                else None
            )
            self._async_client = httpx.AsyncClient(
                auth=settings.auth,
                verify=_ssl_context(settings.verify),
                mounts=mounts,
                timeout=httpx.Timeout(settings.timeout, connect=DEFAULT_CONNECT_TIMEOUT),
                headers={"User-Agent": f"{USER_AGENT} httpx/{httpx.__version__}"},
            )
        return self._async_client

    async def aclose(self) -> None:
        """Close the async HTTP client, if one was opened."""
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def close(self) -> None:
        """Close the sync HTTP session, if one was opened."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def _retry_policy(
        self, settings: ClientSettings, call: _Call, *, retry: bool = True, idempotent: bool | None = None
    ) -> dict[str, Any]:
        """Tenacity arguments shared by the sync and async paths (``idempotent`` overrides the call's own)."""
        idempotent = call.idempotent if idempotent is None else idempotent
        return {
            "retry": (
                tenacity.retry_if_exception(functools.partial(is_retryable, idempotent=idempotent))
                if retry
                else tenacity.retry_never
            ),
            "wait": _WaitRetryAfterOrBackoff(self.retry_backoff, self.retry_backoff_max),
            "stop": tenacity.stop_after_attempt(settings.max_retries + 1),
            "before_sleep": _retry_logger(call),
            "reraise": True,
        }

    # ------------------------------------------------------------------ sync transport

    def _send(
        self,
        call: _Call,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request and decode its JSON answer (no retry here)."""
        settings = self.settings
        try:
            response = self.get_conn().request(
                call.method,
                settings.url(call.path),
                params=call.params,
                json=call.json if body is None else None,
                data=body,
                headers=dict(headers or {}),
                timeout=(DEFAULT_CONNECT_TIMEOUT, settings.timeout),
            )
        except requests.RequestException as err:
            raise _transport_error(call, settings.base_url, err) from err
        return _decode(call, response.status_code, response.headers, response.content)

    def _request(self, call: _Call, *, retry: bool = True) -> Any:
        """Send ``call`` with the retry policy and return its decoded JSON."""
        return tenacity.Retrying(**self._retry_policy(self.settings, call, retry=retry))(self._send, call)

    # ------------------------------------------------------------------ async transport

    async def _asend(self, call: _Call) -> Any:
        client = await self._aget_client()
        settings = await self.aget_settings()
        try:
            response = await client.request(call.method, settings.url(call.path), params=call.params, json=call.json)
        except httpx.HTTPError as err:
            raise _transport_error(call, settings.base_url, err) from err
        return _decode(call, response.status_code, response.headers, response.content)

    async def _arequest(self, call: _Call) -> Any:
        policy = self._retry_policy(await self.aget_settings(), call)
        return await tenacity.AsyncRetrying(**policy)(self._asend, call)

    # ------------------------------------------------------------------ API: submit

    def submit_file(
        self,
        source: AudioSource,
        *,
        async_: bool = False,
        metadata: Mapping[str, Any] | None = None,
        content_type: str = "application/octet-stream",
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
        """
        call = _Call("POST", "/speech:recognize", params={"async": "true" if async_ else "false"})
        headers = {"Content-Type": content_type}
        opener, rewindable = _body_opener(source)

        def attempt() -> Any:
            with opener() as body:
                return self._send(call, body=body, headers=headers)

        # A stream that was read once cannot be sent again: no retry, and a clear error instead.
        retrying = tenacity.Retrying(**self._retry_policy(self.settings, call, retry=rewindable))
        try:
            data = retrying(attempt)
        except BrainAPIError as err:
            if rewindable or not is_retryable(err, idempotent=False):
                raise
            raise BrainUploadNotRewindable(
                f"Upload to Brain failed ({err}) and its source is a stream that cannot be read again; "
                "pass a file path or a seekable file object to let the provider retry the upload"
            ) from err
        asset = Asset.from_json(data)
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

        A retried submission may create a second asset when Brain accepted the first attempt but its
        answer was lost (a 5xx from a proxy, a reset, a timeout). With ``idempotency_key``, the key is
        stored in the asset's metadata and, before sending again, the hook looks for an asset carrying it
        among the newest ones (``find_asset_by_idempotency_key``): if Brain created the asset before the
        answer was lost, that asset is returned and the request is not sent again. (A request Brain was
        still working on when the lookup ran, such as a synchronous submission still downloading its
        media, is not found, and is sent again.) This costs one ``GET /assets`` per resend, none on the
        first attempt.

        :param async_: return at once with a ``processing`` asset instead of waiting for the transcript.
        :param metadata: stored with the asset and returned with it (e.g. ``{"source": "s3://bucket/key"}``).
        :param callback: a URL that receives a ``POST`` of the asset JSON when it is done or failed.
        :param idempotency_key: names this submission (no secrets: it is stored in the asset's metadata).
            With ``async_=True`` a read timeout is then retried too; a synchronous submission whose earlier
            attempt is found returns that asset as it is, possibly still ``processing``.
        """
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("Brain can only fetch http:// or https:// URLs; upload other media with submit_file")
        config: dict[str, Any] = {"async": async_}
        if callback:
            config["callback"] = callback
        payload: dict[str, Any] = {"audio": {"url": url}, "config": config}
        if metadata or idempotency_key:
            payload["metadata"] = dict(metadata or {})
        if idempotency_key:
            payload["metadata"][IDEMPOTENCY_METADATA_KEY] = idempotency_key
        call = _Call("POST", "/speech:recognize", json=payload)
        if idempotency_key:
            asset = self._submit_once(call, idempotency_key, retry_read_timeouts=async_)
            if not async_ and asset.is_processing:
                # An earlier attempt was found still at work: wait for it, as a synchronous submission does.
                asset = self.wait_for_asset(asset.asset_id, timeout=self.settings.timeout)
        else:
            asset = Asset.from_json(self._request(call))
        if payload.get("metadata") and not asset.metadata:
            # A processing asset's JSON omits metadata; report what was stored.
            asset = dataclasses.replace(asset, metadata=dict(payload["metadata"]))
        log.info("Submitted a URL to Brain: asset %s (%s)", asset.asset_id, asset.status.value)
        return asset

    def _submit_once(self, call: _Call, key: str, *, retry_read_timeouts: bool) -> Asset:
        """Send a submission with the retry policy, looking for an earlier attempt's asset before each resend."""
        started = datetime.now(UTC)
        attempts = 0

        def attempt() -> Asset:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # One try per page: the submission's own retries cover an outage that also hits the lookup.
                earlier = self.find_asset_by_idempotency_key(key, created_after=started, retry=False)
                if earlier is not None:
                    log.info(
                        "Brain had accepted an earlier attempt of this submission as asset %s: not sending it again",
                        earlier.asset_id,
                    )
                    # The listing is a summary: fetch the asset itself, as the submission would have answered.
                    return Asset.from_json(self._send(_get_asset_call(earlier.asset_id, False)))
            return Asset.from_json(self._send(call))

        policy = self._retry_policy(self.settings, call, idempotent=retry_read_timeouts)
        return tenacity.Retrying(**policy)(attempt)

    def find_asset_by_idempotency_key(
        self,
        key: str,
        *,
        created_after: datetime | None = None,
        max_assets: int = MAX_LOOKUP_ASSETS,
        retry: bool = True,
    ) -> Asset | None:
        """The newest asset, not failed, whose metadata holds idempotency key ``key``; ``None`` if there is none.

        Scans the user's assets (every status) newest first, and stops at the first created before
        ``created_after`` (less ``CLOCK_SLACK``, for whole-second stamps and clock skew) or after
        ``max_assets``: cheap when the submission is recent, bounded when it is not.

        :param retry: ``False`` sends each page request once (for use inside a call that retries itself).
        """
        if created_after is not None and created_after.tzinfo is None:
            created_after = created_after.replace(tzinfo=UTC)  # naive datetimes in Airflow are UTC
        cutoff = created_after - CLOCK_SLACK if created_after else None
        for scanned, asset in enumerate(self._iter_assets(include_unfinished=True, page_size=100, retry=retry)):
            if scanned >= max_assets:
                return None
            created = parse_api_time(asset.created)
            if cutoff and created and created < cutoff:
                return None
            if asset.metadata.get(IDEMPOTENCY_METADATA_KEY) == key and not asset.is_failed:
                return asset
        return None

    # ------------------------------------------------------------------ API: assets

    def get_asset(self, asset_id: str, *, times: bool = False) -> Asset:
        """Fetch one asset; ``times=True`` adds word-level timings (``Asset.words``)."""
        return Asset.from_json(self._request(_get_asset_call(asset_id, times)))

    async def aget_asset(self, asset_id: str, *, times: bool = False) -> Asset:
        """Async ``get_asset`` for triggers: httpx, async connection lookup, same parsing and retries."""
        return Asset.from_json(await self._arequest(_get_asset_call(asset_id, times)))

    def list_assets(self, *, include_unfinished: bool = False, page_size: int = 100) -> Iterator[Asset]:
        """Yield the user's assets, newest first, fetching further pages only as they are consumed.

        :param include_unfinished: also list assets that are still processing or failed.
        """
        return self._iter_assets(include_unfinished=include_unfinished, page_size=page_size, retry=True)

    def _iter_assets(self, *, include_unfinished: bool, page_size: int, retry: bool) -> Iterator[Asset]:
        offset = 0
        while True:
            params = {"limit": str(page_size), "offset": str(offset)}
            if include_unfinished:
                params["done"] = "false"
            page = self._request(_Call("GET", "/assets", params=params), retry=retry)
            results = page.get("results") if isinstance(page, Mapping) else None
            if not isinstance(results, list):
                raise BrainAPIError("Brain GET /assets answered without a 'results' list")
            for item in results:
                yield Asset.from_json(item)
            next_offset = page.get("next_offset")
            if next_offset is None or not results:
                return
            offset = int(next_offset)

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
        return Asset.from_json(self._request(_Call("PUT", _asset_path(asset_id), json=payload)))

    def delete_asset(self, asset_id: str) -> bool:
        """Delete an asset and its media; returns whether the server confirmed it."""
        data = self._request(_Call("DELETE", _asset_path(asset_id)))
        return bool(isinstance(data, Mapping) and data.get("deleted"))

    def wait_for_asset(
        self,
        asset_id: str,
        *,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        times: bool = False,
    ) -> Asset:
        """Poll an asset until it is done, holding the caller (use the trigger to wait without a worker).

        :raises BrainAssetFailed: the asset failed; the message carries the server's reason.
        :raises BrainTimeout: still processing after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            asset = self._poll_once(asset_id, times=times)
            if asset is not None and asset.is_done:
                return asset
            if asset is not None and asset.is_failed:
                raise BrainAssetFailed(asset_id, asset.error or "")
            if deadline is not None and time.monotonic() >= deadline:
                raise BrainTimeout(asset_id, timeout or 0.0)
            remaining = poll_interval if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(poll_interval, remaining))

    def _poll_once(self, asset_id: str, *, times: bool) -> Asset | None:
        """One status check of a wait; ``None`` when an outage outlasted the call's retries (keep waiting)."""
        try:
            return self.get_asset(asset_id, times=times)
        except BrainError as err:
            if not is_retryable(err):
                raise
            log.warning("Checking Brain asset %s failed (%s); still waiting", asset_id, err)
            return None

    def test_connection(self) -> tuple[bool, str]:
        """Check the URL and credentials with one cheap, unretried call (used by the UI and CLI)."""
        try:
            self._request(_Call("GET", "/assets", params={"limit": "1"}), retry=False)
        except (BrainError, ValueError) as err:
            return False, str(err)
        return True, f"Connected to Brain at {self.settings.base_url}"


def _get_asset_call(asset_id: str, times: bool) -> _Call:
    return _Call("GET", _asset_path(asset_id), params={"times": "true"} if times else None)


class _Opened:
    """Context manager over an upload body: opens a path, rewinds a seekable file, or passes a stream."""

    def __init__(self, body: Any, close: bool, closer: Callable[[], Any] | None = None) -> None:
        self.body = body
        self._close = close
        self._closer = closer

    def __enter__(self) -> Any:
        return self.body

    def __exit__(self, *exc: object) -> None:
        if self._close:
            self.body.close()
        if self._closer is not None:
            self._closer()


def _body_opener(source: AudioSource) -> tuple[Any, bool]:
    """Return (a callable giving a fresh upload body per attempt, whether a retry can resend it)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"Audio file to upload to Brain does not exist: {path}")
        return (lambda: _Opened(path.open("rb"), close=True)), True
    if hasattr(source, "read"):
        fileobj = source
        seekable = bool(getattr(fileobj, "seekable", lambda: False)())
        if seekable:
            start = fileobj.tell()  # type: ignore[union-attr,attr-defined]

            def rewind() -> _Opened:
                fileobj.seek(start)  # type: ignore[union-attr,attr-defined]
                return _Opened(fileobj, close=False)

            return rewind, True
        return (lambda: _Opened(_read_chunks(fileobj), close=False)), False  # type: ignore[arg-type]
    if callable(source):
        opener = source

        def reopen() -> _Opened:
            body = opener()
            if hasattr(body, "read"):
                return _Opened(_read_chunks(body), close=False, closer=getattr(body, "close", None))
            return _Opened(iter(body), close=False)

        return reopen, True
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("submit_file streams audio: pass a path, a file object or an iterable of bytes chunks")
    return (lambda: _Opened(iter(source), close=False)), False


def _read_chunks(fileobj: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := fileobj.read(size):
        yield chunk
