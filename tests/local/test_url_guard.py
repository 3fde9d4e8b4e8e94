"""The address check itself (``local/url_guard.py``), with a stub resolver and a backend that records every
address it is asked to connect to: a refused address is never connected to, whatever the name resolves to
and wherever a redirect points."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpcore
import httpx
import pytest

from airflow_provider_brain.local.url_guard import PrivateAddressError, check_url, http_client, refusal

PUBLIC = "93.184.216.34"


class Recording(httpcore.AsyncNetworkBackend):
    """Records each address it is asked to connect to, and connects every one to the local media server."""

    def __init__(self, port: int) -> None:
        self.asked: list[tuple[str, int]] = []
        self.port = port
        self.real = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.asked.append((host, port))
        return await self.real.connect_tcp("127.0.0.1", self.port, timeout, local_address, socket_options)

    async def sleep(self, seconds):
        await self.real.sleep(seconds)


def resolver(table: dict[str, list[list[str]]]):
    """A resolver answering each name with the next of its lists (the last one again once they run out)."""
    calls: dict[str, int] = {}

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        n = calls[host] = calls.get(host, -1) + 1
        return table[host][min(n, len(table[host]) - 1)]

    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.5", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "non-global"),  # carrier-grade NAT
        ("224.0.0.1", "multicast"),
        (PUBLIC, None),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_refusal_names_what_an_address_is(address, kind):
    assert refusal(ipaddress.ip_address(address)) == kind


def test_a_public_name_is_connected_to_by_the_address_that_was_checked(media_server, speech):
    async def scenario() -> None:
        media_server.serve("guard.wav", speech.file(0))
        url = "http://media.example/files/guard.wav"  # the recording backend connects it to the media server
        backend = Recording(int(media_server.url.rsplit(":", 1)[1]))
        names = resolver({"media.example": [[PUBLIC]]})
        async with http_client("audio.url", False, resolver=names, inner=backend) as client:
            response = await client.get(url)
        assert response.status_code == 200 and response.content == speech.file(0).read_bytes()
        assert backend.asked == [(PUBLIC, 80)]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("target", "kind"),
    [("http://127.0.0.1:9/files/guard.wav", "loopback"), ("http://inside.example/x", "private")],
)
def test_every_redirect_hop_is_checked_before_connecting(media_server, speech, target, kind):
    async def scenario() -> None:
        media_server.serve("guard.wav", speech.file(0))
        backend = Recording(int(media_server.url.rsplit(":", 1)[1]))
        names = resolver({"media.example": [[PUBLIC]], "inside.example": [["10.0.0.7"]], "127.0.0.1": [["127.0.0.1"]]})
        async with http_client("audio.url", False, resolver=names, inner=backend, follow_redirects=True) as client:
            with pytest.raises(PrivateAddressError) as refused:
                await client.get("http://media.example/redirect-to", params={"url": target})
        assert f"a {kind} address" in str(refused.value) and "--allow-private-urls" in str(refused.value)
        assert backend.asked == [(PUBLIC, 80)]  # the first hop only

    asyncio.run(scenario())


def test_a_name_with_any_private_address_is_refused_without_connecting(media_server):
    async def scenario() -> None:
        backend = Recording(int(media_server.url.rsplit(":", 1)[1]))
        names = resolver({"mixed.example": [[PUBLIC, "192.168.1.5"]]})
        with pytest.raises(PrivateAddressError, match="a private address"):
            await check_url("http://mixed.example/a.wav", "audio.url", False, resolver=names)
        async with http_client("audio.url", False, resolver=names, inner=backend) as client:
            with pytest.raises(PrivateAddressError):
                await client.get("http://mixed.example/a.wav")
        assert backend.asked == []

    asyncio.run(scenario())


def test_a_name_that_rebinds_to_a_private_address_after_the_check_is_not_reached(media_server):
    async def scenario() -> None:
        backend = Recording(int(media_server.url.rsplit(":", 1)[1]))
        names = resolver({"rebind.example": [[PUBLIC], ["169.254.169.254"]]})
        await check_url("http://rebind.example/latest/meta-data/", "audio.url", False, resolver=names)  # passes
        async with http_client("audio.url", False, resolver=names, inner=backend) as client:
            with pytest.raises(PrivateAddressError, match="link-local"):
                await client.get("http://rebind.example/latest/meta-data/")
        assert backend.asked == []

    asyncio.run(scenario())


def test_with_private_addresses_allowed_nothing_is_checked(media_server, speech):
    async def scenario() -> None:
        url = media_server.serve("guard.wav", speech.file(0))
        await check_url(url, "audio.url", True)
        async with http_client("audio.url", True) as client:
            assert (await client.get(url)).content == speech.file(0).read_bytes()
        with pytest.raises(PrivateAddressError, match="loopback"):
            await check_url(url, "audio.url", False)

    asyncio.run(scenario())


def test_a_name_lookup_that_hangs_is_a_connect_timeout(media_server):
    async def scenario() -> None:
        async def hanging(host: str, port: int) -> list[str]:
            await asyncio.sleep(30)
            return [PUBLIC]

        backend = Recording(int(media_server.url.rsplit(":", 1)[1]))
        async with http_client("config.callback", False, resolver=hanging, inner=backend, timeout=0.5) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.post("http://slow-dns.example/cb", json={})
        assert backend.asked == []

    asyncio.run(scenario())
