"""``Idempotency-Key`` on ``POST /speech:recognize``: a resent submission gets the asset the first one made.

The key is stored with the asset (``assets.idempotency_key``, unique per owner), beside a digest of the
request that made it: a later request from the same user with the same key and the same body is answered
with that asset as it is now; with another body, ``422``. Deleting the asset frees the key. Requests with
the same key take turns (``KeyLocks``) from the moment their body has arrived until their asset exists, so
two sent at once still make one asset; a body that is cut off never takes the turn, so it reserves nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request

from airflow_provider_brain.local.errors import ApiError

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
#: JSON bodies with up to this much inline content are digested on the loop; larger ones on a thread.
DIGEST_ON_LOOP_CHARS = 64 * 1024


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, or None; 400 if it is not 1 to 255 printable ASCII characters."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    key = values[0]
    if len(values) > 1 or not 1 <= len(key) <= MAX_KEY_CHARS or any(not " " <= c <= "~" for c in key):
        raise ApiError(400, f"{HEADER} must be one header of 1 to {MAX_KEY_CHARS} printable ASCII characters")
    return key


def upload_digest(sha256_hex: str) -> str:
    """The request digest of a raw upload, from the SHA-256 of its bytes."""
    return f"upload:sha256:{sha256_hex}"


def _json_digest(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"json:sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


async def json_digest(body: Any, size: int) -> str:
    """The request digest of a JSON submission: a SHA-256 of its canonical JSON (keys sorted, no spaces), so
    the same object sent with other spacing or key order is the same request. ``size``: its inline content's
    length (the rest of a submission is small)."""
    return _json_digest(body) if size <= DIGEST_ON_LOOP_CHARS else await asyncio.to_thread(_json_digest, body)


def check_same_request(stored: str | None, digest: str) -> None:
    """422 unless a resent request (``digest``) is the one whose asset holds the key (``stored``)."""
    if stored != digest:
        raise ApiError(422, f"this {HEADER} was already used with a different request; use a new key")


class KeyLocks:
    """One lock per (user, key) in use; a key's lock is dropped when no request holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, user: str, key: str | None) -> AsyncIterator[None]:
        """Hold the turn of ``user``'s ``key`` (nothing to hold without a key)."""
        if key is None:
            yield
            return
        name = (user, key)
        lock, users = self._locks.get(name, (asyncio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
