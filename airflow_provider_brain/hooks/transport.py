"""The transport under ``BrainHook``: the two HTTP clients over one ``ClientSettings``.

``Transport`` holds the two HTTP clients (``requests`` for workers, ``httpx`` for triggers) and sends every
``Call`` (``hooks/calls.py``) with the one retry policy (``hooks/retry.py``), renewing its credentials when
Brain refuses them. Nothing here knows the API's endpoints beyond building their paths: that is the hook's job.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import certifi
import httpx
import requests
import tenacity

from airflow_provider_brain import __version__
from airflow_provider_brain.exceptions import BrainAuthError
from airflow_provider_brain.hooks.calls import Call, asset_path, decode, transport_error
from airflow_provider_brain.hooks.retry import is_retryable, retry_policy
from airflow_provider_brain.hooks.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    ClientSettings,
    base_url_from_connection,
    request_timeout,
    settings_from_connection,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "Call",
    "ClientSettings",
    "Transport",
    "asset_path",
    "base_url_from_connection",
    "is_retryable",
    "settings_from_connection",
    "ssl_context",
]

USER_AGENT = f"airflow-provider-brain/{__version__}"

log = logging.getLogger("airflow_provider_brain.hooks.brain")


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


T = TypeVar("T")
#: What a transport does with an answer: ``(call, status, headers, body) -> decoded JSON``, or raise.
Decoder = Callable[[Call, int, Mapping[str, str], bytes], Any]


class Transport:
    """Sends ``Call``s to one Brain: a ``requests.Session`` (sync) and an ``httpx.AsyncClient`` (async), each
    opened on first use, with auth, proxies, TLS and User-Agent from ``settings`` and one retry policy.

    When Brain refuses the credentials (401/403), the transport reads the connection again (``reload`` or
    ``areload``) and, if its credentials changed (a password rotated while a wait went on), sends the request
    once more with them; the clients are renewed. Only a refusal of the current credentials is raised.

    :param settings: where and how to connect.
    :param retry_backoff: first backoff in seconds between retries (grows exponentially, with jitter).
    :param retry_backoff_max: the longest backoff between two retries, in seconds.
    :param reload: reads the connection's settings again (sync connection lookup).
    :param areload: the same with Airflow's async connection lookup (for the event loop).
    :param decoder: turns a status, headers and body into decoded JSON or the provider's exception (the
        Brain mapping by default; the Deepgram hook passes its own, which reads ``err_code``/``err_msg``).
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry_backoff: float,
        retry_backoff_max: float,
        reload: Callable[[], ClientSettings] | None = None,
        areload: Callable[[], Awaitable[ClientSettings]] | None = None,
        decoder: Decoder = decode,
    ) -> None:
        self.settings = settings
        self.decoder = decoder
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self._reload = reload
        self._areload = areload
        self._session: requests.Session | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._stale_clients: list[httpx.AsyncClient] = []

    def policy(
        self, call: Call, *, retry: bool = True, idempotent: bool | None = None, deadline: float | None = None
    ) -> dict[str, Any]:
        return retry_policy(
            self.settings,
            call,
            backoff=self.retry_backoff,
            backoff_max=self.retry_backoff_max,
            retry=retry,
            idempotent=idempotent,
            deadline=deadline,
        )

    # ------------------------------------------------------------------ credentials

    def _adopt(self, fresh: ClientSettings) -> bool:
        """Take the connection's settings as read again; whether the credentials (or the URL) changed."""
        if fresh == self.settings:
            return False
        log.info("The Brain connection changed; its new settings are used from now on")
        self.settings = fresh
        self.close()
        if self._async_client is not None:  # closed by the next ``aclose``, from the event loop it belongs to
            self._stale_clients.append(self._async_client)
            self._async_client = None
        return True

    def with_fresh_credentials(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt``; if Brain refuses the credentials and the connection now holds others, run it again."""
        try:
            return attempt()
        except BrainAuthError:
            if self._reload is None or not self._adopt(self._reload()):
                raise
            return attempt()

    async def arenew(self) -> None:
        """Read the connection again and take any change (a long-lived transport, such as the triggerer's shared
        poller's, renews itself now and then, as the shared S3 hook does)."""
        if self._areload is not None and self._adopt(await self._areload()):
            await self.aclose_stale()

    async def awith_fresh_credentials(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Async ``with_fresh_credentials``: the connection is read with Airflow's async lookup."""
        try:
            return await attempt()
        except BrainAuthError:
            if self._areload is None or not self._adopt(await self._areload()):
                raise
            await self.aclose_stale()
            return await attempt()

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
            session.headers.update(settings.auth_headers)
            self._session = session
        return self._session

    def send(
        self,
        call: Call,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> Any:
        """Send one request and decode its JSON answer (no retry here)."""
        settings = self.settings
        try:
            response = self.session.request(
                call.method,
                settings.url(call.path),
                params=call.params,
                json=call.json if body is None else None,
                data=body,
                headers={**call.headers, **(headers or {})},
                timeout=(DEFAULT_CONNECT_TIMEOUT, request_timeout(settings, deadline)),
            )
        except requests.RequestException as err:
            error = transport_error(call, settings.base_url, err)
        else:
            return self.decoder(call, response.status_code, response.headers, response.content)
        raise error  # outside the except: chained to the client's exception only as transport_error says

    def request(self, call: Call, *, retry: bool = True, deadline: float | None = None) -> Any:
        """Send ``call`` with the retry policy (no retry starts past ``deadline``) and return its decoded JSON."""
        retrying = tenacity.Retrying(**self.policy(call, retry=retry, deadline=deadline))
        return retrying(self.with_fresh_credentials, lambda: self.send(call, deadline=deadline))

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
                headers={"User-Agent": f"{USER_AGENT} httpx/{httpx.__version__}", **settings.auth_headers},
            )
        return self._async_client

    async def asend(self, call: Call, *, deadline: float | None = None) -> Any:
        """Send one request on the async client and decode its JSON answer (no retry here)."""
        settings = self.settings
        try:
            response = await self.async_client.request(
                call.method,
                settings.url(call.path),
                params=call.params,
                json=call.json,
                headers=call.headers,
                timeout=httpx.Timeout(request_timeout(settings, deadline), connect=DEFAULT_CONNECT_TIMEOUT),
            )
        except httpx.HTTPError as err:
            error = transport_error(call, settings.base_url, err)
        else:
            return self.decoder(call, response.status_code, response.headers, response.content)
        raise error  # outside the except: chained to the client's exception only as transport_error says

    async def arequest(self, call: Call, *, retry: bool = True, deadline: float | None = None) -> Any:
        """Async ``request``: the same retry policy, sleeping without blocking the event loop."""
        retrying = tenacity.AsyncRetrying(**self.policy(call, retry=retry, deadline=deadline))
        return await retrying(self.awith_fresh_credentials, lambda: self.asend(call, deadline=deadline))

    async def aclose_stale(self) -> None:
        """Close the async clients that credentials read again replaced."""
        while self._stale_clients:
            await self._stale_clients.pop().aclose()

    async def aclose(self) -> None:
        await self.aclose_stale()
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
