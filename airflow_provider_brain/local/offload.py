"""Blocking work off the event loop: SQLite on the store's threads, searches on one of their own, files
written by threads.

The event loop serves every request, so it must never wait on the disk: a slow disk, or a search over
thousands of assets, would stall every other request. SQLite calls go to ``StoreThreads``; file writes
go through ``FileWriter`` (the loop's default executor, as ``asyncio.to_thread``), so a burst of uploads
to a slow disk holds no thread a ``GET`` needs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

from airflow_provider_brain.local.store import AssetStore

P = ParamSpec("P")
T = TypeVar("T")

#: Threads for the store's short calls (one row, one file move): enough that a few slow ones (a WAL
#: checkpoint's fsync) leave others free.
STORE_THREADS = 4
#: Bytes an upload or download gathers in memory before a thread writes them (and the next chunk is read).
WRITE_BLOCK_BYTES = 1024 * 1024


class StoreThreads:
    """The asset store as the event loop calls it: ``await db.call(db.store.get, asset_id)``.

    Short calls share ``STORE_THREADS`` threads. Searches, which may read thousands of assets, run one at
    a time on a thread of their own: they queue behind each other, never in front of a ``GET``.
    """

    def __init__(self, store: AssetStore, threads: int = STORE_THREADS) -> None:
        self.store = store
        self._calls = ThreadPoolExecutor(threads, thread_name_prefix="brain-store")
        self._searches = ThreadPoolExecutor(1, thread_name_prefix="brain-search")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a store thread and return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._calls, functools.partial(fn, *args, **kwargs))

    async def search(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the search thread, after any search before it."""
        return await asyncio.get_running_loop().run_in_executor(self._searches, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for the calls under way, then close the store."""
        self._searches.shutdown(wait=True, cancel_futures=True)
        self._calls.shutdown(wait=True, cancel_futures=True)
        self.store.close()


class FileWriter:
    """A file written from the event loop: data is gathered up to ``WRITE_BLOCK_BYTES``, then a thread
    writes it while the caller waits (so a slow disk slows that one upload, not the server).

    ``async with await FileWriter.create(path) as out: await out.write(chunk)``
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    @classmethod
    async def create(cls, path: Path) -> FileWriter:
        """Create (or truncate) ``path`` for writing."""
        return cls(await asyncio.to_thread(path.open, "wb"))

    async def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= WRITE_BLOCK_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            block = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending, self._pending_bytes = [], 0
            await asyncio.to_thread(self._handle.write, block)

    async def close(self) -> None:
        """Write what is left and close the file (closed even if that write fails)."""
        try:
            await self._flush()
        finally:
            await asyncio.to_thread(self._handle.close)

    async def __aenter__(self) -> FileWriter:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self._pending, self._pending_bytes = [], 0  # a failed transfer's file is removed anyway
        await self.close()


async def unlink(path: Path) -> None:
    """Remove ``path`` if it exists, on a thread."""
    await asyncio.to_thread(path.unlink, missing_ok=True)
