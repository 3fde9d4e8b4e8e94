"""Reading what a request sends: flags, integer parameters, JSON bodies and media bodies streamed to disk."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.requests import Request

from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.offload import FileWriter

log = logging.getLogger("brain_local.api")

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


class JsonBudget:
    """How many bytes of JSON bodies the server may hold in memory at once, over all requests.

    A JSON body is parsed whole in memory (``audio.content`` may make it megabytes), so without a bound many
    large ones at once could take all the memory there is. A body is charged from its first byte (its
    declared length at once, else chunk by chunk) until its request is done with it; one that does not fit is
    read and dropped, then answered ``503`` with ``Retry-After``. Only the event loop touches it: no lock.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.total:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


#: Seconds a client whose JSON body did not fit the budget is told to wait.
BUSY_RETRY_AFTER_SECONDS = 1


@asynccontextmanager
async def json_body(request: Request, limit: int, budget: JsonBudget) -> AsyncIterator[Any]:
    """``async with json_body(request, limit, budget) as body``: the request's JSON body, charged to ``budget``
    until the block ends. 413 past ``limit``, 400 if it is not JSON, 503 if the budget has no room for it."""
    _check_declared(request, limit, "JSON body")
    declared = request.headers.get("content-length")
    charged = 0
    fits = True
    if declared and declared.isdigit():
        charged = int(declared)
        fits = budget.take(charged)
        if not fits:
            charged = 0
    try:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"JSON body is larger than the limit of {limit} bytes")
            if fits and size > charged:
                fits = budget.take(size - charged)
                if fits:
                    charged = size
                else:
                    chunks.clear()  # read the rest and drop it, so the client gets its answer
            if fits:
                chunks.append(chunk)
        if not fits:
            log.warning("a JSON body of %d bytes did not fit in memory beside the others being read; 503", size)
            raise ApiError(
                503,
                "the server is busy reading other large JSON bodies; retry later",
                {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
            )
        raw = b"".join(chunks)
        chunks.clear()
        body = _parse_json(raw) if size <= PARSE_ON_LOOP_BYTES else await asyncio.to_thread(_parse_json, raw)
        del raw
        yield body
    finally:
        budget.give(charged)
