"""Reading what a request sends: flags, integer parameters, JSON bodies and media bodies streamed to disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request

from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.offload import FileWriter

#: JSON bodies up to this size are parsed on the loop; larger ones (``audio.content``) on a thread.
PARSE_ON_LOOP_BYTES = 64 * 1024


def flag(value: Any, name: str) -> bool:
    """Read a boolean given as JSON ``true``/``false`` or a query string ``true|false|1|0``."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ApiError(400, f"{name} must be true or false")


def int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if value < low:
        raise ApiError(400, f"{name} must be at least {low}")
    return min(value, high) if high is not None else value


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _check_declared(request: Request, limit: int, what: str) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"{what} is larger than the limit of {limit} bytes")


async def receive_body(request: Request, dest: Path, limit: int, *, hashed: bool = False) -> tuple[int, str | None]:
    """Stream the request body into ``dest``; return its size and (``hashed``) its SHA-256 in hex. 413 past
    ``limit``. The caller removes ``dest`` on error."""
    _check_declared(request, limit, "request body")
    received = 0
    async with await FileWriter.create(dest, hashed) as out:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(413, f"request body is larger than the limit of {limit} bytes")
            await out.write(chunk)
    return received, out.hexdigest() if hashed else None


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed JSON body") from None


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body; 413 past ``limit``, 400 if it is not JSON."""
    _check_declared(request, limit, "JSON body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"JSON body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    return _parse_json(raw) if size <= PARSE_ON_LOOP_BYTES else await asyncio.to_thread(_parse_json, raw)
