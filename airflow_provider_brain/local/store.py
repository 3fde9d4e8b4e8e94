"""Durable asset storage: metadata in SQLite, media files beside it, both in the data dir.

The database is also the work queue: an asset is ``processing`` until a worker marks it ``done`` or
``failed``, so after a restart every asset still ``processing`` is simply picked up again.

Every method blocks (SQLite, the disk) and is safe from any thread: the server calls them through
``StoreAccess`` (``local/offload.py``), never on its event loop. Each thread has its own connection;
in WAL mode readers never wait for each other or for the writer, and writes take one lock (a queue in
Python, not SQLite's sleeping busy handler). Each done asset also keeps its words normalised as search
compares them (``search_text``), so a search finds its candidates in SQL without parsing every asset.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from airflow_provider_brain.local.assets import (
    DONE,
    FAILED,
    PROCESSING,
    SUMMARY_COLUMNS,
    Asset,
    search_text,
    summary,
)
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
    callback TEXT,
    search_text TEXT,
    idempotency_key TEXT,
    request_digest TEXT
);
CREATE INDEX IF NOT EXISTS assets_owner ON assets (owner, seq);
CREATE INDEX IF NOT EXISTS assets_status ON assets (status, seq);
-- A user's done assets, newest first: the listing and search walk it, whatever other users hold.
CREATE INDEX IF NOT EXISTS assets_owner_status ON assets (owner, status, seq);
"""

#: Created after ``_add_columns``: a data dir from before the key existed lacks its column until then.
_KEY_INDEX = """
-- One asset per user and Idempotency-Key; deleting the asset frees its key.
CREATE UNIQUE INDEX IF NOT EXISTS assets_idempotency_key ON assets (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"""
#: Columns added since the first release, with their types: ``_add_columns`` gives an older data dir them.
_ADDED_COLUMNS = {"search_text": "TEXT", "idempotency_key": "TEXT", "request_digest": "TEXT"}


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
        idempotency_key=row["idempotency_key"],
        request_digest=row["request_digest"],
    )


def _to_summary(row: sqlite3.Row) -> dict[str, Any]:
    metadata = json.loads(row["metadata"]) if row["metadata"] is not None else None
    return summary(
        row["asset_id"], row["status"], row["created"], row["duration"], metadata, row["completed"], row["error"]
    )


def _words_json(words: list[Word]) -> str:
    return json.dumps([[w.word, w.start, w.end, w.confidence] for w in words])


def _search_text(words: list[Word]) -> str:
    return search_text([w.word for w in words])


#: Most asset ids in one ``IN (...)`` (SQLite limits the parameters of one statement).
_IDS_PER_STATEMENT = 500


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

    def __init__(self, data_dir: Path, *, reader: bool = False) -> None:
        """Open (and create or upgrade) the store of ``data_dir``; with ``reader``, only open it for another
        process that reads beside the server (the search process): it creates and cleans nothing."""
        self.data_dir = data_dir
        self.media_dir = data_dir / "media"
        self.tmp_dir = data_dir / "tmp"
        self._path = data_dir / "brain.sqlite3"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        if reader:
            return
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # Partial uploads from a previous run are garbage: no asset refers to them.
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        with self._write_lock:
            db.executescript(_SCHEMA)
            self._add_columns(db)
            db.executescript(_KEY_INDEX)
            self._remove_orphan_media(db)

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (opened on its first call)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            with self._connections_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the asset store is closed")
                db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=30.0)
                self._connections.append(db)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @staticmethod
    def _add_columns(db: sqlite3.Connection) -> None:
        """Give a data dir from an older release the columns added since, ``search_text`` filled for its done
        assets (an older asset has no Idempotency-Key)."""
        columns = {row["name"] for row in db.execute("PRAGMA table_info(assets)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in columns:
                db.execute(f"ALTER TABLE assets ADD COLUMN {name} {kind}")
        rows = db.execute("SELECT asset_id, words FROM assets WHERE search_text IS NULL AND words IS NOT NULL")
        filled = [(search_text([w[0] for w in json.loads(words)]), asset_id) for asset_id, words in rows]
        if filled:
            db.execute("BEGIN")
            db.executemany("UPDATE assets SET search_text = ? WHERE asset_id = ?", filled)
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection; calls after this raise."""
        with self._connections_lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> Asset | None:
        row = self._db().execute(sql, args).fetchone()
        return _to_asset(row) if row else None

    def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._write_lock:
            return self._db().execute(sql, args).rowcount

    def media_file(self, asset: Asset) -> Path | None:
        """The absolute path of the asset's media, if it has any."""
        return self.data_dir / asset.media_path if asset.media_path else None

    def new_tmp_file(self) -> Path:
        """A fresh path for a partial upload or download (removed on failure, or at the next start)."""
        return self.tmp_dir / f"{secrets.token_hex(8)}.part"

    def create(self, asset: Asset, media: Path | None = None) -> None:
        """Insert a new asset; with ``media`` (a finished upload or download), also move that file into place as
        the asset's media (``asset.media_path`` is set to it). One step under the write lock: the row first (a
        clash moves nothing), then the file (if that fails the row goes), so no media file is left without its
        asset and none is overwritten."""
        if media is not None:
            asset.media_path = f"media/{asset.asset_id}"
        with self._write_lock:
            db = self._db()
            db.execute(
                "INSERT INTO assets (asset_id, owner, status, created, base_url, duration, metadata, media_path,"
                " media_type, source_url, callback, idempotency_key, request_digest)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    asset.idempotency_key,
                    asset.request_digest,
                ),
            )
            if media is not None:
                try:
                    media.replace(self.media_dir / asset.asset_id)
                except BaseException:
                    db.execute("DELETE FROM assets WHERE asset_id = ?", (asset.asset_id,))
                    raise

    def attach_media(self, asset_id: str, media: Path, media_type: str) -> Path | None:
        """Make ``media`` (an asset's finished download) its media file and return where it now lies; if the
        asset was deleted meanwhile, remove ``media`` and return None. Under the write lock, so a ``delete``
        comes either before (the download is dropped here) or after (``delete`` removes the file)."""
        with self._write_lock:
            db = self._db()
            if db.execute("SELECT 1 FROM assets WHERE asset_id = ?", (asset_id,)).fetchone() is None:
                media.unlink(missing_ok=True)
                return None
            target = self.media_dir / asset_id
            media.replace(target)
            db.execute(
                "UPDATE assets SET media_path = ?, media_type = ? WHERE asset_id = ?",
                (f"media/{asset_id}", media_type, asset_id),
            )
            return target

    def get(self, asset_id: str, owner: str | None = None) -> Asset | None:
        """The asset, or None if it does not exist or (when ``owner`` is given) belongs to someone else."""
        if owner is None:
            return self._one("SELECT * FROM assets WHERE asset_id = ?", (asset_id,))
        return self._one("SELECT * FROM assets WHERE asset_id = ? AND owner = ?", (asset_id, owner))

    def find_by_key(self, owner: str, key: str) -> Asset | None:
        """The owner's asset submitted with Idempotency-Key ``key``, if it still exists."""
        return self._one("SELECT * FROM assets WHERE owner = ? AND idempotency_key = ?", (owner, key))

    def page(self, owner: str, done_only: bool, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        """One page of the owner's assets as listing summaries, newest first, and whether more follow.

        Only ``SUMMARY_COLUMNS`` are read: a page of long transcripts costs no more than one of short ones.
        """
        where = "owner = ?" + (" AND status = 'done'" if done_only else "")
        sql = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM assets WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?"
        rows = self._db().execute(sql, (owner, limit + 1, offset)).fetchall()
        return [_to_summary(r) for r in rows[:limit]], len(rows) > limit

    def search_candidates(
        self, owner: str, needle: str, asset_ids: list[str] | None, chunk: int
    ) -> Iterator[list[tuple[int, str, str, str]]]:
        """The owner's done assets whose ``search_text`` holds ``needle``, as ``(seq, asset_id, search_text,
        words JSON)`` rows in chunks of at most ``chunk`` (all of them, or those among ``asset_ids``).

        Each chunk is its own short statement, matched in SQLite's C code, so a long scan holds no read
        transaction open and lets other threads run between chunks.
        """
        db = self._db()
        base = (
            "SELECT seq, asset_id, search_text, words FROM assets WHERE owner = ? AND status = 'done'"
            " AND instr(search_text, ?) > 0"
        )
        if asset_ids is not None:
            unique = list(dict.fromkeys(asset_ids))
            for i in range(0, len(unique), _IDS_PER_STATEMENT):
                ids = unique[i : i + _IDS_PER_STATEMENT]
                rows = db.execute(
                    f"{base} AND asset_id IN ({','.join('?' * len(ids))})", (owner, needle, *ids)
                ).fetchall()
                for j in range(0, len(rows), chunk):
                    yield [tuple(r) for r in rows[j : j + chunk]]
            return
        before = 2**63 - 1  # past the largest seq SQLite can hand out
        while rows := db.execute(
            f"{base} AND seq < ? ORDER BY seq DESC LIMIT ?", (owner, needle, before, chunk)
        ).fetchall():
            yield [tuple(r) for r in rows]
            before = rows[-1]["seq"]

    def pending_after(self, seq: int) -> tuple[int, Asset] | None:
        """The oldest ``processing`` asset created after the one numbered ``seq``, with its number."""
        sql = "SELECT * FROM assets WHERE status = 'processing' AND seq > ? ORDER BY seq LIMIT 1"
        row = self._db().execute(sql, (seq,)).fetchone()
        return (int(row["seq"]), _to_asset(row)) if row else None

    def pending_count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM assets WHERE status = 'processing'").fetchone()[0])

    def mark_done(self, asset_id: str, duration: float, words: list[Word]) -> None:
        self._exec(
            "UPDATE assets SET status = ?, completed = ?, duration = ?, words = ?, search_text = ?, error = NULL"
            " WHERE asset_id = ? AND status = ?",
            (DONE, utc_now(), duration, _words_json(words), _search_text(words), asset_id, PROCESSING),
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
            self._exec(
                "UPDATE assets SET words = ?, search_text = ? WHERE asset_id = ?",
                (_words_json(words), _search_text(words), asset_id),
            )
        if metadata is not None:
            self._exec("UPDATE assets SET metadata = ? WHERE asset_id = ?", (json.dumps(metadata), asset_id))

    def delete(self, asset_id: str) -> None:
        """Remove the asset's row, then its media (see ``attach_media`` for a download still under way)."""
        with self._write_lock:
            db = self._db()
            row = db.execute("SELECT media_path FROM assets WHERE asset_id = ?", (asset_id,)).fetchone()
            db.execute("DELETE FROM assets WHERE asset_id = ?", (asset_id,))
        if row is not None and row["media_path"]:
            (self.data_dir / row["media_path"]).unlink(missing_ok=True)

    def _remove_orphan_media(self, db: sqlite3.Connection) -> None:
        """Remove media files no asset refers to: a crash between moving a file into place and recording its
        asset, or between deleting an asset's row and its file, leaves one behind."""
        known = {row[0] for row in db.execute("SELECT media_path FROM assets WHERE media_path IS NOT NULL")}
        for path in self.media_dir.iterdir():
            if f"media/{path.name}" not in known:
                path.unlink(missing_ok=True)


__all__ = ["AssetStore", "FAILED", "utc_now"]
