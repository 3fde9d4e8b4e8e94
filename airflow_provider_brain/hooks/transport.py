"""The transport under ``BrainHook``: connection settings, one request description for the sync and async
paths, the status-to-error mapping, and the one decision of what is worth retrying.

``Transport`` holds the two HTTP clients (``requests`` for workers, ``httpx`` for triggers) over one
``ClientSettings`` and sends every ``Call`` with the same retry policy. Nothing here knows the API's
endpoints beyond building their paths: that is the hook's job.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import certifi
import httpx
import requests
import tenacity

from airflow_provider_brain import __version__
from airflow_provider_brain.exceptions import (
    BrainAPIError,
    BrainAuthError,
    BrainConnectionError,
    BrainNotFound,
    BrainReadTimeout,
    body_excerpt,
    redact_urls,
)
from airflow_provider_brain.models import validate_asset_id

DEFAULT_BASE_URL = "https://brain.deepgram.com"
DEFAULT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5
#: The longest ``Retry-After`` we honour; a server asking for more is waited for this long.
MAX_RETRY_AFTER = 300.0
USER_AGENT = f"airflow-provider-brain/{__version__}"

log = logging.getLogger("airflow_provider_brain.hooks.brain")


def transport_error(call: Call, base_url: str, err: Exception) -> BrainAPIError:
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
    password: str | None = field(repr=False)
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
class Call:
    """One API request, described once and sent by either the sync or the async path."""

    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice is harmless: not so for POST, which may create a second asset."""
        return self.method != "POST"


def asset_path(asset_id: str) -> str:
    return "/assets/" + quote(validate_asset_id(asset_id), safe="")


def _raise_for_status(call: Call, status: int, headers: Mapping[str, str], body: bytes) -> None:
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


def decode(call: Call, status: int, headers: Mapping[str, str], body: bytes) -> Any:
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


def _retry_logger(call: Call) -> Any:
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
def ssl_context(verify: bool | str) -> ssl.SSLContext:
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


def retry_policy(
    settings: ClientSettings,
    call: Call,
    *,
    backoff: float,
    backoff_max: float,
    retry: bool = True,
    idempotent: bool | None = None,
) -> dict[str, Any]:
    """Tenacity arguments shared by the sync and async paths (``idempotent`` overrides the call's own)."""
    idempotent = call.idempotent if idempotent is None else idempotent
    return {
        "retry": (
            tenacity.retry_if_exception(functools.partial(is_retryable, idempotent=idempotent))
            if retry
            else tenacity.retry_never
        ),
        "wait": _WaitRetryAfterOrBackoff(backoff, backoff_max),
        "stop": tenacity.stop_after_attempt(settings.max_retries + 1),
        "before_sleep": _retry_logger(call),
        "reraise": True,
    }


class Transport:
    """Sends ``Call``s to one Brain: a ``requests.Session`` (sync) and an ``httpx.AsyncClient`` (async), each
    opened on first use, with auth, proxies, TLS and User-Agent from ``settings`` and one retry policy.

    :param settings: where and how to connect.
    :param retry_backoff: first backoff in seconds between retries (grows exponentially, with jitter).
    :param retry_backoff_max: the longest backoff between two retries, in seconds.
    """

    def __init__(self, settings: ClientSettings, *, retry_backoff: float, retry_backoff_max: float) -> None:
        self.settings = settings
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self._session: requests.Session | None = None
        self._async_client: httpx.AsyncClient | None = None

    def policy(self, call: Call, *, retry: bool = True, idempotent: bool | None = None) -> dict[str, Any]:
        return retry_policy(
            self.settings,
            call,
            backoff=self.retry_backoff,
            backoff_max=self.retry_backoff_max,
            retry=retry,
            idempotent=idempotent,
        )

    # ------------------------------------------------------------------ sync

    @property
    def session(self) -> requests.Session:
        """The ``requests.Session`` shared by the sync calls, with auth, proxies and User-Agent set."""
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

    def send(self, call: Call, *, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        """Send one request and decode its JSON answer (no retry here)."""
        settings = self.settings
        try:
            response = self.session.request(
                call.method,
                settings.url(call.path),
                params=call.params,
                json=call.json if body is None else None,
                data=body,
                headers=dict(headers or {}),
                timeout=(DEFAULT_CONNECT_TIMEOUT, settings.timeout),
            )
        except requests.RequestException as err:
            raise transport_error(call, settings.base_url, err) from err
        return decode(call, response.status_code, response.headers, response.content)

    def request(self, call: Call, *, retry: bool = True) -> Any:
        """Send ``call`` with the retry policy and return its decoded JSON."""
        return tenacity.Retrying(**self.policy(call, retry=retry))(self.send, call)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # ------------------------------------------------------------------ async

    @property
    def async_client(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` shared by the async calls (bound to the event loop that first uses it)."""
        if self._async_client is None:
            settings = self.settings
            mounts = (
                {
                    f"{scheme}://": httpx.AsyncHTTPTransport(proxy=url, verify=ssl_context(settings.verify))
                    for scheme, url in settings.proxies.items()
                }
                if settings.proxies
                else None
            )
            self._async_client = httpx.AsyncClient(
                auth=settings.auth,
                verify=ssl_context(settings.verify),
                mounts=mounts,
                timeout=httpx.Timeout(settings.timeout, connect=DEFAULT_CONNECT_TIMEOUT),
                headers={"User-Agent": f"{USER_AGENT} httpx/{httpx.__version__}"},
            )
        return self._async_client

    async def asend(self, call: Call) -> Any:
        """Send one request on the async client and decode its JSON answer (no retry here)."""
        settings = self.settings
        try:
            response = await self.async_client.request(
                call.method, settings.url(call.path), params=call.params, json=call.json
            )
        except httpx.HTTPError as err:
            raise transport_error(call, settings.base_url, err) from err
        return decode(call, response.status_code, response.headers, response.content)

    async def arequest(self, call: Call, *, retry: bool = True) -> Any:
        """Async ``request``: the same retry policy, sleeping without blocking the event loop."""
        return await tenacity.AsyncRetrying(**self.policy(call, retry=retry))(self.asend, call)

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
