"""The Deepgram dialect's request history: one row per ``POST /v1/listen``, beside the asset it made.

A listen request is recognised as an asset of the store (owned by ``listen_owner(user)``, so it never
shows in the user's Brain listing); this table adds what Deepgram's answer and its management API need:
the request's uuid, its options and tags, its callback and, once known, the media's SHA-256. It lives
in its own SQLite file in the data dir, so the asset store's schema is untouched. Every method blocks:
the server calls them through ``StoreAccess.call`` (``await brain.db.call(records.add, ...)``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS listen_requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    created TEXT NOT NULL,
    path TEXT NOT NULL,
    options TEXT NOT NULL,
    callback TEXT,
    callback_method TEXT,
    sha256 TEXT,
    callback_done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS listen_requests_owner ON listen_requests (owner, seq);
"""


def listen_owner(user: str) -> str:
    """The asset owner of ``user``'s listen requests. A Basic-auth username holds no ``:`` (RFC 7617), so no
    user of the Brain API can be this owner and list or fetch these assets."""
    return f"{user}:deepgram"


@dataclass
class ListenRecord:
    """One listen request: who sent it, which asset recognises it, and the options its answer depends on."""

    request_id: str
    owner: str
    asset_id: str
    created: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)
    callback: str | None = None
    callback_method: str | None = None
    sha256: str | None = None

    @property
    def tags(self) -> list[str]:
        return list(self.options.get("tag") or [])


def _to_record(row: sqlite3.Row) -> ListenRecord:
    return ListenRecord(
        request_id=row["request_id"],
        owner=row["owner"],
        asset_id=row["asset_id"],
        created=row["created"],
        path=row["path"],
        options=json.loads(row["options"]),
        callback=row["callback"],
        callback_method=row["callback_method"],
        sha256=row["sha256"],
    )


class ListenRecords:
    """The ``listen_requests`` table in ``<data_dir>/deepgram.sqlite3``; safe from any thread."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "deepgram.sqlite3"
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections_lock = threading.Lock()  # not the write lock: a write may open its thread's connection
        self._connections: list[sqlite3.Connection] = []
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        with self._write_lock:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=30.0)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()

    def add(self, record: ListenRecord) -> None:
        with self._write_lock:
            self._db().execute(
                "INSERT INTO listen_requests (request_id, owner, asset_id, created, path, options, callback,"
                " callback_method, sha256) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    record.request_id,
                    record.owner,
                    record.asset_id,
                    record.created,
                    record.path,
                    json.dumps(record.options),
                    record.callback,
                    record.callback_method,
                    record.sha256,
                ),
            )

    def set_sha256(self, request_id: str, sha256: str) -> None:
        with self._write_lock:
            self._db().execute("UPDATE listen_requests SET sha256 = ? WHERE request_id = ?", (sha256, request_id))

    def get(self, owner: str, request_id: str) -> ListenRecord | None:
        row = (
            self._db()
            .execute("SELECT * FROM listen_requests WHERE owner = ? AND request_id = ?", (owner, request_id))
            .fetchone()
        )
        return _to_record(row) if row else None

    def page(self, owner: str, *, start: str | None, end: str | None, limit: int, offset: int) -> list[ListenRecord]:
        """The owner's requests created in ``[start, end]`` (ISO strings in the store's form), newest first."""
        where, args = ["owner = ?"], [owner]
        if start is not None:
            where.append("created >= ?")
            args.append(start)
        if end is not None:
            where.append("created <= ?")
            args.append(end)
        sql = f"SELECT * FROM listen_requests WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ? OFFSET ?"
        return [_to_record(r) for r in self._db().execute(sql, (*args, limit, offset)).fetchall()]

    def all_of(self, owner: str, *, start: str | None, end: str | None) -> list[ListenRecord]:
        """Every request of the owner in ``[start, end]`` (usage sums them), oldest first."""
        records = self.page(owner, start=start, end=end, limit=-1, offset=0)
        records.reverse()
        return records

    def callback_done(self, request_id: str) -> None:
        """Delivered, or given up on: a restart does not send it again."""
        with self._write_lock:
            self._db().execute("UPDATE listen_requests SET callback_done = 1 WHERE request_id = ?", (request_id,))

    def pending_callbacks(self) -> list[ListenRecord]:
        """Requests whose callback is not delivered yet (a restart cut it off, or it waits for recognition)."""
        rows = (
            self._db()
            .execute("SELECT * FROM listen_requests WHERE callback IS NOT NULL AND callback_done = 0 ORDER BY seq")
            .fetchall()
        )
        return [_to_record(r) for r in rows]
