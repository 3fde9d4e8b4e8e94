"""Delivering a callback: the asset's or the listen request's answer, sent as JSON to the URL its submitter gave,
through the URL guard, retried with backoff on a 5xx or a connection error. Best effort: logs, never raises."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_brain.local.url_guard import PrivateAddressError, http_client


async def deliver_callback(
    url: str,
    body: Any,
    *,
    what: str,
    label: str,
    allow_private_urls: bool,
    timeout: float,
    attempts: int,
    backoff: float,
    log: logging.Logger,
    method: str = "POST",
) -> None:
    """Send ``body`` to ``url`` (``what`` names the field it came from in errors; ``label`` names the request in
    the log). An answer below 500 ends it; a refused private address ends it at once."""
    host = urlsplit(url).hostname
    async with http_client(what, allow_private_urls, timeout=timeout) as client:
        for attempt in range(attempts):
            try:
                response = await client.request(method, url, json=body)
                if response.status_code < 500:
                    log.info("%s: callback to %s answered %d", label, host, response.status_code)
                    return
            except PrivateAddressError as exc:
                log.warning("%s: callback to %s refused: %s", label, host, exc)
                return
            except httpx.HTTPError as exc:
                log.info("%s: callback to %s failed: %s", label, host, exc.__class__.__name__)
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff * 2**attempt)
    log.warning("%s: giving up on callback to %s", label, host)
