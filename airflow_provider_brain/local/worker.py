"""Work dispatch: ``processing`` assets in the database go through recognition in a process pool.

``Dispatcher`` runs one coroutine per worker process. Each claims the oldest unclaimed ``processing``
asset, downloads its media if it was submitted by URL asynchronously, runs ``recognize_cached`` in the
pool (so the event loop, and with it the API, never waits on recognition) and records the result. The
database is the queue, so nothing is lost on a restart and memory does not grow with the backlog.
Synchronous requests wait for their asset with ``wait_for``; callbacks are POSTed after completion.
Every store call runs on the store's threads (``StoreAccess``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from airflow_provider_brain.local import recognizer
from airflow_provider_brain.local.assets import PROCESSING, Asset
from airflow_provider_brain.local.audio import AudioDecodeError, probe
from airflow_provider_brain.local.callbacks import deliver_callback
from airflow_provider_brain.local.download import download_to_file
from airflow_provider_brain.local.errors import DownloadError
from airflow_provider_brain.local.offload import StoreAccess, unlink
from airflow_provider_brain.local.recognition_cache import recognize_cached
from airflow_provider_brain.local.settings import ServerSettings

log = logging.getLogger("brain_local.worker")

CALLBACK_ATTEMPTS = 3
#: Pool crashes an asset may be caught in before it is marked failed.
MAX_CRASHES = 3
#: Downloads of async URL submissions that may be under way beside the recognitions.
DOWNLOAD_SLOTS = 8


class Dispatcher:
    """Owns the recognition process pool and the coroutines that feed it from the store."""

    def __init__(self, db: StoreAccess, settings: ServerSettings) -> None:
        self._db = db
        self._store = db.store
        self._settings = settings
        self._claimed: set[str] = set()
        #: The newest asset (by ``seq``) handed to a dispatcher: the next claim looks only past it.
        self._cursor = 0
        #: Assets released still processing (a pool crash, an outcome not recorded): claimed again first.
        self._again: deque[str] = deque()
        self._crashes: dict[str, int] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        #: Claimed assets deleted since (``cancel``), and the held-back outcomes of claimed assets by id.
        self._cancelled: set[str] = set()
        self._held: dict[str, asyncio.Task[None]] = {}
        self._cancel_dir = self._store.data_dir / "cancelled"
        self._wake = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # 'spawn' gives each worker a clean interpreter: no copy of the server's event loop, sockets or
        # SQLite handle, and no fork-with-threads hazards.
        return ProcessPoolExecutor(
            max_workers=self._settings.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=recognizer.init_worker,
        )

    async def start(self) -> None:
        """Start the worker processes (loading the model in each) and the dispatch coroutines."""
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(_fresh_dir, self._cancel_dir)  # Markers of a previous run mean nothing now.
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, recognizer.warm_up) for _ in range(self._settings.workers))
        )
        # More dispatchers than recognition processes: a dispatcher downloading a slow URL must not
        # stall recognition of media that is already here. The pool runs ``workers`` at a time and
        # queues the rest.
        self._tasks = [
            asyncio.create_task(self._run(), name=f"brain-dispatch-{i}")
            for i in range(self._settings.workers + DOWNLOAD_SLOTS)
        ]
        pending = await self._db.call(self._store.pending_count)
        if pending:
            log.info("resuming %d asset(s) left processing by a previous run", pending)

    async def stop(self) -> None:
        """Stop dispatching; assets in progress stay ``processing`` and resume at the next start."""
        for task in self._tasks + list(self._background):
            task.cancel()
        for task in self._tasks + list(self._background):
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._shutdown_pool(self._pool)

    @staticmethod
    def _shutdown_pool(pool: ProcessPoolExecutor) -> None:
        # A worker may be minutes into a long file; its result would be thrown away anyway, so end it
        # now rather than make shutdown wait (the asset is recognised again after restart). SIGKILL,
        # because workers ignore SIGTERM and SIGINT: only the server decides when they stop.
        processes = list(getattr(pool, "_processes", {}).values())
        for process in processes:
            with suppress(Exception):
                process.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    async def notify(self) -> None:
        """Tell idle dispatchers that a new asset is waiting."""
        async with self._wake:
            self._wake.notify_all()

    async def wait_for(self, asset_id: str) -> None:
        """Return once ``asset_id`` is no longer ``processing`` (register before ``notify``)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(asset_id, []).append(future)
        asset = await self._db.call(self._store.get, asset_id)
        if asset is None or asset.status != "processing":
            self._resolve(asset_id)
        await future

    async def cancel(self, asset_id: str) -> bool:
        """Stop working on an asset that was deleted while processing; ``True`` if work on it was under way.

        Its recognition stops at the next block of audio (the worker process sees a marker file) and frees
        its process for the next asset; a download in progress finishes but recognition does not start; an
        outcome held back by ``--min-latency`` is dropped. Call it after the asset's row is gone, so no
        dispatcher claims it again.
        """
        if asset_id not in self._claimed:
            return False
        self._cancelled.add(asset_id)
        await asyncio.to_thread(self._cancel_marker(asset_id).touch)
        held = self._held.pop(asset_id, None)
        if held is not None:
            held.cancel()
        return True

    def _cancel_marker(self, asset_id: str) -> Path:
        return self._cancel_dir / asset_id

    async def _forget_cancel(self, asset_id: str) -> None:
        if asset_id in self._cancelled:
            self._cancelled.discard(asset_id)
            await asyncio.to_thread(self._cancel_marker(asset_id).unlink, missing_ok=True)

    def _resolve(self, asset_id: str) -> None:
        for future in self._waiters.pop(asset_id, []):
            if not future.done():
                future.set_result(None)

    async def _claim(self) -> Asset:
        async with self._wake:
            while True:
                asset = await self._next_pending()
                if asset is not None:
                    self._claimed.add(asset.asset_id)
                    return asset
                # The timeout is a safety net only; submissions wake us through notify().
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)

    async def _next_pending(self) -> Asset | None:
        """The next ``processing`` asset no dispatcher works on: one released for another try, else the
        oldest past the cursor. An index lookup, however many assets are held back (``--min-latency``)."""
        while self._again:
            asset = await self._db.call(self._store.get, self._again.popleft())
            if asset is not None and asset.status == PROCESSING and asset.asset_id not in self._claimed:
                return asset
        while (found := await self._db.call(self._store.pending_after, self._cursor)) is not None:
            self._cursor, asset = found
            if asset.asset_id not in self._claimed:
                return asset
        return None

    async def _run(self) -> None:
        while True:
            asset = await self._claim()
            held = False
            try:
                held = await self._process(asset)
            except asyncio.CancelledError:
                raise
            except Exception:
                # E.g. its outcome could not be recorded: it is still processing, so it is claimed again below.
                log.exception("asset %s: could not be processed", asset.asset_id)
            finally:
                if not held:
                    self._claimed.discard(asset.asset_id)
                    await self._forget_cancel(asset.asset_id)
            if held:
                continue  # ``_complete_later`` finishes it; this dispatcher takes the next asset.
            current = await self._db.call(self._store.get, asset.asset_id)
            # Still processing means "try again" (a pool crash): the loop claims it anew.
            if current is None or current.status != PROCESSING:
                self._resolve(asset.asset_id)
            else:
                self._again.append(asset.asset_id)

    async def _process(self, asset: Asset) -> bool:
        """Recognise one asset and record the outcome; ``True`` if the outcome is held back (``min_latency``)."""
        started = time.monotonic()
        outcome: Callable[[], None]
        try:
            media = await self._ensure_media(asset)
            if asset.asset_id in self._cancelled:
                raise recognizer.RecognitionCancelled(asset.asset_id)
            loop = asyncio.get_running_loop()
            pool = self._pool
            marker = str(self._cancel_marker(asset.asset_id))
            cache = self._settings.recognition_cache
            cache_dir = None if cache is None else str(cache)
            result = await loop.run_in_executor(pool, recognize_cached, str(media), marker, cache_dir)
        except recognizer.RecognitionCancelled:
            log.info("asset %s: deleted while processing; recognition stopped", asset.asset_id)
            return False
        except AudioDecodeError as exc:
            outcome = functools.partial(self._fail, asset, str(exc), 400)
        except DownloadError as exc:
            outcome = functools.partial(self._fail, asset, str(exc), exc.status)
        except BrokenProcessPool:
            await self._on_pool_crash(pool, asset)
            return False
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("asset %s: unexpected error", asset.asset_id)
            outcome = functools.partial(self._fail, asset, "internal error while recognising", 500)
        else:
            outcome = functools.partial(self._complete, asset, result, time.monotonic() - started)
        # Done or failed, an asset stays processing for at least min_latency after its submission.
        latency = self._settings.min_latency
        hold = min(latency, latency - _age_seconds(asset.created))  # capped: a clock step cannot stretch it
        if hold > 0:
            task = asyncio.create_task(self._finish_later(asset, outcome, hold))
            self._background.add(task)
            self._held[asset.asset_id] = task
            task.add_done_callback(self._background.discard)
            return True
        await self._db.call(outcome)
        self._send_callback(asset.asset_id)
        return False

    def _complete(self, asset: Asset, result: recognizer.Recognition, elapsed: float) -> None:
        """Record ``asset`` as done (blocking: run on a store thread)."""
        self._store.mark_done(asset.asset_id, result.duration, result.words)
        log.info(
            "asset %s done: %.2f s of audio in %.2f s (%d words%s)",
            asset.asset_id,
            result.duration,
            elapsed,
            len(result.words),
            ", from the recognition cache" if result.from_cache else "",
        )

    async def _finish_later(self, asset: Asset, outcome: Callable[[], None], hold: float) -> None:
        """Keep an asset ``processing`` for ``hold`` more seconds (``min_latency``), holding no slot, then
        record its outcome. Stopped before then, the asset stays ``processing`` and is recognised again at
        the next start."""
        try:
            await asyncio.sleep(hold)
            self._held.pop(asset.asset_id, None)
            await self._db.call(outcome)
        except asyncio.CancelledError:
            self._held.pop(asset.asset_id, None)
            self._claimed.discard(asset.asset_id)
            if asset.asset_id in self._cancelled:  # Deleted meanwhile (``cancel``): nothing to record.
                await asyncio.shield(self._forget_cancel(asset.asset_id))
                self._resolve(asset.asset_id)
                return
            raise
        except Exception:
            # Left processing and released: a dispatcher claims it again and records an outcome then.
            log.exception("asset %s: could not record its outcome", asset.asset_id)
            self._claimed.discard(asset.asset_id)
            self._again.append(asset.asset_id)
            return
        self._claimed.discard(asset.asset_id)
        self._send_callback(asset.asset_id)
        self._resolve(asset.asset_id)

    async def _on_pool_crash(self, pool: ProcessPoolExecutor, asset: Asset) -> None:
        """A worker process died (a crash, the OOM killer): every task in that pool is lost.

        The pool is replaced once, however many tasks report it. Which asset caused the crash is
        unknown, so each affected asset is tried again and fails only after ``MAX_CRASHES`` crashes.
        """
        if self._pool is pool:
            log.error("a recognition process died; starting a new pool")
            self._pool = self._new_pool()
            self._shutdown_pool(pool)
        crashes = self._crashes.get(asset.asset_id, 0) + 1
        self._crashes[asset.asset_id] = crashes
        if crashes >= MAX_CRASHES:
            self._crashes.pop(asset.asset_id, None)
            await self._db.call(self._fail, asset, "the recognizer crashed on this media", 500)
            self._send_callback(asset.asset_id)
        else:
            log.warning("asset %s: recognition process died (%d); trying again", asset.asset_id, crashes)

    async def _ensure_media(self, asset: Asset) -> Path:
        existing = self._store.media_file(asset)
        if existing is not None:
            return existing
        assert asset.source_url is not None, "an asset has either media or a source URL"
        tmp = self._store.new_tmp_file()
        await download_to_file(
            asset.source_url,
            tmp,
            max_bytes=self._settings.max_body_bytes,
            timeout=self._settings.download_timeout,
            allow_private=self._settings.allow_private_urls,
        )
        try:
            info = await asyncio.to_thread(probe, tmp)
        except AudioDecodeError:
            await unlink(tmp)
            raise
        media = await self._db.call(self._store.attach_media, asset.asset_id, tmp, info.mime_type)
        if media is None:
            log.info("asset %s: deleted while its media downloaded; the download is discarded", asset.asset_id)
            raise recognizer.RecognitionCancelled(asset.asset_id)
        return media

    def _fail(self, asset: Asset, message: str, status: int) -> None:
        """Record ``asset`` as failed (blocking: run on a store thread)."""
        log.info("asset %s failed (%d): %s", asset.asset_id, status, message)
        self._store.mark_failed(asset.asset_id, message, status)

    def _send_callback(self, asset_id: str) -> None:
        """POST the asset to its callback URL, if it has one, in the background."""
        task = asyncio.create_task(self._post_callback(asset_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_callback(self, asset_id: str) -> None:
        asset = await self._db.call(self._store.get, asset_id)
        if asset is None or asset.callback is None:
            return
        await deliver_callback(
            asset.callback,
            asset.to_json(),
            what="config.callback",
            label=f"asset {asset.asset_id}",
            allow_private_urls=self._settings.allow_private_urls,
            timeout=self._settings.callback_timeout,
            attempts=CALLBACK_ATTEMPTS,
            backoff=1.0,
            log=log,
        )


def _fresh_dir(path: Path) -> None:
    """An empty directory at ``path``."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def _age_seconds(created: str) -> float:
    """Seconds since an asset's ``created`` stamp (UTC); 0 if it cannot be read."""
    try:
        stamp = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (datetime.now(UTC) - stamp).total_seconds()
