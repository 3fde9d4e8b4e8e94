"""Which addresses the server may fetch media from or POST callbacks to.

A server that fetches any URL it is given lets a caller reach what only the server can: its own loopback
services, the private network around it, the cloud metadata service at 169.254.169.254. Unless it was
started with ``--allow-private-urls``, the server refuses every address that is not global.

The check sits where the connection is made, not only where the URL arrives: ``GuardedBackend`` resolves
the host itself, checks every address it resolves to, and connects to a checked address (so a name that
resolves to a public address at submission and a private one at download, DNS rebinding, gains nothing).
Every redirect hop opens its connection through it, so every hop is checked. TLS still verifies the
certificate against the host name (httpcore passes it as the server name).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Resolves ``(host, port)`` to addresses: ``resolve`` by default, a stub in tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]

FLAG = "--allow-private-urls"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class PrivateAddressError(Exception):
    """A URL's host is, or resolves to, an address the server refuses; the message names ``FLAG``."""

    def __init__(self, what: str, kind: str, address: str) -> None:
        super().__init__(
            f"{what} resolves to a {kind} address ({address}); this server fetches and calls back only global"
            f" addresses unless it is started with {FLAG}"
        )


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches (mapped, 6to4, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused (``"loopback"``, ``"private"``, ...), or None for a global address."""
    for candidate in (_embedded_ipv4(ip), ip):
        if candidate is None:
            continue
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_link_local:
            return "link-local"
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_multicast:
            return "multicast"
        if candidate.is_private:
            return "private"
        if not candidate.is_global:
            return "non-global"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(host: str, port: int, what: str, resolver: Resolver = resolve) -> list[str]:
    """The addresses of ``host``, all of them global, or ``PrivateAddressError`` naming the first that is not.

    An unresolvable name raises ``socket.gaierror`` (``OSError``).
    """
    addresses = await resolver(host.strip("[]"), port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    for address in addresses:
        kind = refusal(ipaddress.ip_address(address.split("%", 1)[0]))  # an IPv6 zone is not part of the address
        if kind is not None:
            raise PrivateAddressError(what, kind, address)
    return addresses


async def check_url(url: str, what: str, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Refuse ``url`` at once if its host is, or resolves to, a refused address.

    A name that does not resolve now is let through: its download or callback fails on its own later (and
    is checked again then).
    """
    if allow_private:
        return
    parts = urlsplit(url)
    if not parts.hostname:
        return
    try:
        await checked_addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), what, resolver)
    except OSError:
        return


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked global addresses (see the module docstring)."""

    def __init__(
        self, what: str, inner: httpcore.AsyncNetworkBackend | None = None, resolver: Resolver = resolve
    ) -> None:
        self._what = what
        self._inner = inner or httpcore.AnyIOBackend()
        self._resolver = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            # The connect timeout covers the name lookup too: it is part of connecting.
            async with asyncio.timeout(timeout):
                addresses = await checked_addresses(host, port, self._what, self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout("timed out resolving the host") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve the host: {exc.__class__.__name__}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose connection pool connects through a ``GuardedBackend``."""

    def __init__(self, backend: GuardedBackend, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(verify=ssl_context if ssl_context is not None else True, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context, network_backend=backend)


def http_client(
    what: str,
    allow_private: bool,
    *,
    verify: ssl.SSLContext | None = None,
    resolver: Resolver = resolve,
    inner: httpcore.AsyncNetworkBackend | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that reaches only global addresses unless ``allow_private``.

    Guarded, it ignores environment proxies: through a proxy, the address checked would be the proxy's.
    ``what`` names the URL in a refusal (``"audio.url"``, ``"config.callback"``); ``resolver`` and ``inner``
    (the backend that really connects) are for tests.
    """
    if allow_private:
        return httpx.AsyncClient(verify=verify if verify is not None else True, **kwargs)
    transport = _GuardedTransport(GuardedBackend(what, inner=inner, resolver=resolver), verify)
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)
