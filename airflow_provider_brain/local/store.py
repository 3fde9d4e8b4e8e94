"""Durable asset storage: metadata in SQLite, media files beside it, both in the data dir.

The database is also the work queue: an asset is ``processing`` until a worker marks it ``done`` or
``failed``, so after a restart every asset still ``processing`` is simply picked up again. All calls are
short single-row statements, made under one lock from the event loop thread.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from airflow_provider_brain.local.assets import DONE, FAILED, PROCESSING, Asset
from airflow_provider_brain.local.recognizer import Word

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    completed TEXT,
    base_url TEXT NOT NULL,
    duration REAL,
    words TEXT,
    error TEXT,
    error_status INTEGER,
    metadata TEXT,
    media_path TEXT,
    media_type TEXT,
    source_url TEXT,
    callback TEXT
);
CREATE INDEX IF NOT EXISTS assets_owner ON assets (owner, seq);
CREATE INDEX IF NOT EXISTS assets_status ON assets (status, seq);
"""


def utc_now() -> str:
    """Now as the API writes times: ISO 8601 UTC with a ``Z``, to the millisecond (so a client can tell how
    long after an asset finished it heard of it, and ``--min-latency`` holds to the millisecond)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_asset(row: sqlite3.Row) -> Asset:
    words = [Word(*w) for w in json.loads(row["words"])] if row["words"] else []
    return Asset(
        asset_id=row["asset_id"],
        owner=row["owner"],
        status=row["status"],
        created=row["created"],
        completed=row["completed"],
        base_url=row["base_url"],
        duration=row["duration"],
        words=words,
        error=row["error"],
        error_status=row["error_status"],
        metadata=json.loads(row["metadata"]) if row["metadata"] is not None else None,
        media_path=row["media_path"],
        media_type=row["media_type"],
        source_url=row["source_url"],
        callback=row["callback"],
    )


def _words_json(words: list[Word]) -> str:
    return json.dumps([[w.word, w.start, w.end, w.confidence] for w in words])


class DataDirInUse(Exception):
    """Another server already runs on this data dir (two would recognise the same assets twice)."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Take an exclusive lock on ``<data_dir>/server.lock`` for this process's lifetime.

    The lock goes with the process, even on SIGKILL, so a restart after a crash is never blocked.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "server.lock").open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"another brain-local server is using {data_dir}") from None
    return handle


class AssetStore:
    """Assets in ``<data_dir>/brain.sqlite3`` and media under ``<data_dir>/media``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.media_dir = data_dir / "media"
        self.tmp_dir = data_dir / "tmp"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # Partial uploads from a previous run are garbage: no asset refers to them.
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(data_dir / "brain.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> Asset | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return _to_asset(row) if row else None

    def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def adopt_media(self, asset_id: str, tmp_file: Path) -> str:
        """Move a finished upload or download into place; return its path relative to the data dir."""
        tmp_file.replace(self.media_dir / asset_id)
        return f"media/{asset_id}"

    def media_file(self, asset: Asset) -> Path | None:
        """The absolute path of the asset's media, if it has any."""
        return self.data_dir / asset.media_path if asset.media_path else None

    def new_tmp_file(self) -> Path:
        """A fresh path for a partial upload or download (removed on failure, or at the next start)."""
        return self.tmp_dir / f"{secrets.token_hex(8)}.part"

    def create(self, asset: Asset) -> None:
        """Insert a new asset (its media file, if any, is already in place)."""
        self._exec(
            "INSERT INTO assets (asset_id, owner, status, created, base_url, duration, metadata, media_path,"
            " media_type, source_url, callback) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                asset.asset_id,
                asset.owner,
                asset.status,
                asset.created,
                asset.base_url,
                asset.duration,
                json.dumps(asset.metadata) if asset.metadata is not None else None,
                asset.media_path,
                asset.media_type,
                asset.source_url,
                asset.callback,
            ),
        )

    def get(self, asset_id: str, owner: str | None = None) -> Asset | None:
        """The asset, or None if it does not exist or (when ``owner`` is given) belongs to someone else."""
        if owner is None:
            return self._one("SELECT * FROM assets WHERE asset_id = ?", (asset_id,))
        return self._one("SELECT * FROM assets WHERE asset_id = ? AND owner = ?", (asset_id, owner))

    def page(self, owner: str, done_only: bool, limit: int, offset: int) -> tuple[list[Asset], bool]:
        """One page of the owner's assets, newest first, and whether more follow."""
        where = "owner = ?" + (" AND status = 'done'" if done_only else "")
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM assets WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                (owner, limit + 1, offset),
            ).fetchall()
        return [_to_asset(r) for r in rows[:limit]], len(rows) > limit

    def owned(self, owner: str, asset_ids: list[str] | None) -> list[Asset]:
        """The owner's done assets among ``asset_ids`` (all of them if None)."""
        with self._lock:
            if asset_ids is None:
                rows = self._db.execute(
                    "SELECT * FROM assets WHERE owner = ? AND status = 'done' ORDER BY seq DESC", (owner,)
                ).fetchall()
            else:
                marks = ",".join("?" * len(asset_ids))
                rows = self._db.execute(
                    f"SELECT * FROM assets WHERE owner = ? AND status = 'done' AND asset_id IN ({marks})"
                    " ORDER BY seq DESC",
                    (owner, *asset_ids),
                ).fetchall()
        return [_to_asset(r) for r in rows]

    def pending_after(self, seq: int) -> tuple[int, Asset] | None:
        """The oldest ``processing`` asset created after the one numbered ``seq``, with its number."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM assets WHERE status = 'processing' AND seq > ? ORDER BY seq LIMIT 1", (seq,)
            ).fetchone()
        return (int(row["seq"]), _to_asset(row)) if row else None

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM assets WHERE status = 'processing'").fetchone()[0])

    def set_media(self, asset_id: str, media_path: str, media_type: str) -> None:
        self._exec(
            "UPDATE assets SET media_path = ?, media_type = ? WHERE asset_id = ?",
            (media_path, media_type, asset_id),
        )

    def mark_done(self, asset_id: str, duration: float, words: list[Word]) -> None:
        self._exec(
            "UPDATE assets SET status = ?, completed = ?, duration = ?, words = ?, error = NULL"
            " WHERE asset_id = ? AND status = ?",
            (DONE, utc_now(), duration, _words_json(words), asset_id, PROCESSING),
        )

    def mark_failed(self, asset_id: str, error: str, error_status: int, duration: float | None = None) -> None:
        self._exec(
            "UPDATE assets SET status = ?, completed = ?, error = ?, error_status = ?,"
            " duration = COALESCE(?, duration) WHERE asset_id = ? AND status = ?",
            (FAILED, utc_now(), error, error_status, duration, asset_id, PROCESSING),
        )

    def update(self, asset_id: str, words: list[Word] | None, metadata: dict[str, Any] | None) -> None:
        """Apply a ``PUT``: new words (from a corrected transcript) and/or new metadata."""
        if words is not None:
            self._exec("UPDATE assets SET words = ? WHERE asset_id = ?", (_words_json(words), asset_id))
        if metadata is not None:
            self._exec("UPDATE assets SET metadata = ? WHERE asset_id = ?", (json.dumps(metadata), asset_id))

    def delete(self, asset_id: str) -> None:
        """Remove the asset's row, then its media."""
        asset = self.get(asset_id)
        self._exec("DELETE FROM assets WHERE asset_id = ?", (asset_id,))
        if asset and asset.media_path:
            (self.data_dir / asset.media_path).unlink(missing_ok=True)


__all__ = ["AssetStore", "FAILED", "utc_now"]
