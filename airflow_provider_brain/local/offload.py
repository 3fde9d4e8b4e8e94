"""Blocking work away from the event loop: SQLite on the store's threads, searches in a process of their
own, files written by threads.

The event loop serves every request, so it must never wait on the disk: a slow disk, or a search over
thousands of assets, would stall every other request. Store calls and searches go through
``StoreAccess``; file writes through ``FileWriter`` (the loop's default executor, as ``asyncio.to_thread``),
so a burst of uploads to a slow disk holds no thread a ``GET`` needs.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

from airflow_provider_brain.local import search
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.store import AssetStore

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("brain_local.api")

#: Threads for the store's short calls (one row, one file move): enough that a few slow ones (a WAL
#: checkpoint's fsync) leave others free.
STORE_THREADS = 4
#: Bytes an upload or download gathers in memory before a thread writes them (and the next chunk is read).
WRITE_BLOCK_BYTES = 1024 * 1024


class StoreAccess:
    """The asset store as the event loop uses it: ``await db.call(db.store.get, asset_id)`` runs a short
    call on one of ``STORE_THREADS`` threads; ``await db.search(owner, query)`` runs a search in the search
    process.

    Searches may read every asset of a user. They take turns in one process of their own (started at the
    first search, replaced if it dies): on a thread they would share the GIL with the event loop's thread,
    which would then wait for them, for milliseconds at a time, on every request it serves.
    """

    def __init__(self, store: AssetStore, threads: int = STORE_THREADS) -> None:
        self.store = store
        self._calls = ThreadPoolExecutor(threads, thread_name_prefix="brain-store")
        self._searches = self._new_search_pool()
        self._closed = False

    def _new_search_pool(self) -> ProcessPoolExecutor:
        # 'spawn', as for recognition: a clean interpreter, no copy of the server's loop, sockets or SQLite.
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=search.open_reader,
            initargs=(self.store.data_dir,),
        )

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a store thread and return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._calls, functools.partial(fn, *args, **kwargs))

    async def search(self, owner: str, query: search.SearchQuery) -> bytes:
        """The JSON body answering ``query`` over ``owner``'s assets, after any search before it.

        If the search process has died (say the OOM killer took it while idle), a new one runs the search;
        a search that kills two processes in a row answers 500.
        """
        loop = asyncio.get_running_loop()
        for _ in range(2):
            pool = self._searches
            try:
                return await loop.run_in_executor(pool, search.search_in_process, owner, query)
            except BrokenProcessPool:
                if self._closed:
                    break
                if self._searches is pool:
                    log.error("the search process died; starting a new one")
                    self._searches = self._new_search_pool()
                    _end_pool(pool)
        raise ApiError(500, "the search process stopped during this search")

    def close(self) -> None:
        """End the search process, wait for the store calls under way, then close the store."""
        self._closed = True
        _end_pool(self._searches)
        self._calls.shutdown(wait=True, cancel_futures=True)
        self.store.close()


def _end_pool(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: a search minutes into a huge account is not worth waiting for (SIGKILL, since the
    process ignores SIGTERM and SIGINT)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with suppress(Exception):
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


class FileWriter:
    """A file written from the event loop: data is gathered up to ``WRITE_BLOCK_BYTES``, then a thread
    writes that block while the next one is received; the caller waits only when a block is ready before
    the disk has taken the one before it (so a slow disk slows that one upload, not the server).

    ``async with await FileWriter.create(path) as out: await out.write(chunk)``
    """

    def __init__(self, handle: IO[bytes], hashed: bool = False) -> None:
        self._handle = handle
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._writing: asyncio.Future[None] | None = None
        self._sha256 = hashlib.sha256() if hashed else None

    @classmethod
    async def create(cls, path: Path, hashed: bool = False) -> FileWriter:
        """Create (or truncate) ``path`` for writing; ``hashed`` also keeps a SHA-256 of what is written (on the
        writing threads too, so a large upload's hash costs the event loop nothing)."""
        return cls(await asyncio.to_thread(path.open, "wb"), hashed)

    def hexdigest(self) -> str:
        """The SHA-256 of everything written (a ``hashed`` writer, once closed)."""
        assert self._sha256 is not None and self._writing is None
        return self._sha256.hexdigest()

    def _write_block(self, block: list[bytes]) -> None:
        if self._sha256 is not None:
            for chunk in block:  # blocks are written one after another, in order
                self._sha256.update(chunk)
        self._handle.writelines(block)

    async def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= WRITE_BLOCK_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        """Start writing the pending block, once the block before it is written (blocks stay in order)."""
        await self._written()
        if self._pending:
            # The chunks as received, not joined: a fresh block of megabytes costs more in page faults
            # than the write itself.
            block, self._pending, self._pending_bytes = self._pending, [], 0
            self._writing = asyncio.get_running_loop().run_in_executor(None, self._write_block, block)

    async def _written(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def close(self) -> None:
        """Write what is left and close the file (closed even if a write fails)."""
        try:
            await self._flush()
            await self._written()
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
