"""Fetching media from ``audio.url``: streamed to disk with httpx, within the server's limits.

Only http and https; only global addresses, every redirect hop checked, unless the server allows private
ones (``local/url_guard.py``); at most 5 redirects; a per-read timeout and a wall-clock limit for the whole
download; the body size limit checked against ``Content-Length`` and while streaming. Error messages go
back to the client and never contain the URL (it may carry credentials or signatures). The file is
written by threads (``FileWriter``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import httpx

from airflow_provider_brain.local.errors import DownloadError
from airflow_provider_brain.local.offload import FileWriter, unlink
from airflow_provider_brain.local.url_guard import PrivateAddressError, http_client

MAX_REDIRECTS = 5
CHUNK_BYTES = 1024 * 1024


def check_media_url(url: object) -> str:
    """Return ``url`` if it is an absolute http(s) URL, else raise ``DownloadError``."""
    if not isinstance(url, str) or not url:
        raise DownloadError("audio.url must be a non-empty string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError("audio.url must be an absolute http or https URL")
    return url


async def download_to_file(
    url: str, dest: Path, *, max_bytes: int, timeout: float, allow_private: bool = False
) -> str | None:
    """Stream ``url`` into ``dest``; return the response's content type. Removes ``dest`` on failure."""
    check_media_url(url)
    try:
        async with asyncio.timeout(timeout):
            return await _download(url, dest, max_bytes, allow_private)
    except TimeoutError:
        await unlink(dest)
        raise DownloadError(f"could not download audio.url: timed out after {timeout:g} s") from None
    except DownloadError:
        await unlink(dest)
        raise
    except PrivateAddressError as exc:
        await unlink(dest)
        raise DownloadError(f"could not download audio.url: {exc}") from None
    except httpx.TooManyRedirects:
        await unlink(dest)
        raise DownloadError(f"could not download audio.url: more than {MAX_REDIRECTS} redirects") from None
    except httpx.UnsupportedProtocol:
        await unlink(dest)
        raise DownloadError("could not download audio.url: redirected to a non-http(s) URL") from None
    except (httpx.HTTPError, OSError) as exc:
        await unlink(dest)
        raise DownloadError(f"could not download audio.url: {exc.__class__.__name__}") from None


def _too_large(max_bytes: int) -> DownloadError:
    return DownloadError(f"media at audio.url is larger than the limit of {max_bytes} bytes", status=413)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every download: building one loads the CA bundle (tens of milliseconds of CPU on
    the event loop, which every other request would wait out)."""
    return ssl.create_default_context(cafile=certifi.where())


async def _download(url: str, dest: Path, max_bytes: int, allow_private: bool) -> str | None:
    async with http_client(
        "audio.url",
        allow_private,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=httpx.Timeout(30.0),
        verify=_tls_context(),
    ) as client:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise DownloadError(f"could not download audio.url: HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(max_bytes)
            received = 0
            async with await FileWriter.create(dest) as out:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    received += len(chunk)
                    if received > max_bytes:
                        raise _too_large(max_bytes)
                    await out.write(chunk)
            content_type: str | None = response.headers.get("content-type")
            return content_type
