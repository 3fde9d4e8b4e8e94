"""Load Brain transcripts into any SQL database Airflow has a common-sql connection for."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseHook, BaseOperator

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import Asset
from airflow_provider_brain.transfers.common import (
    asset_source,
    fetch_done_assets,
    newest_per_source,
    normalize_asset_ids,
    parse_timestamp,
    replacement_source,
    utc_now,
    word_tuples,
)

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import Context

TRANSCRIPT_COLUMNS = (
    "asset_id",
    "source",
    "duration",
    "transcript",
    "mean_confidence",
    "word_count",
    "created_at",
    "completed_at",
    "loaded_at",
)
WORD_COLUMNS = ("asset_id", "word_index", "word", "start_s", "end_s", "confidence")

#: Inserts rows into a table on an open cursor, inside the load's transaction; returns how many.
RowWriter = Callable[[Any, str, Sequence[str], Iterable[tuple[Any, ...]]], int]

#: How many asset ids one ``DELETE ... WHERE asset_id IN (...)`` names (well under every driver's limit).
DELETE_CHUNK = 500

#: A table name, optionally qualified by a schema (and a database/catalog): no quoting, no injection.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}")


@dataclass(frozen=True)
class ColumnTypes:
    """The few SQL types the two tables need, spelled for one dialect."""

    key: str = "VARCHAR(64)"
    text: str = "TEXT"
    number: str = "DOUBLE PRECISION"
    integer: str = "INTEGER"
    timestamp: str = "TIMESTAMP"
    primary_key_suffix: str = ""


#: ANSI-ish types work on PostgreSQL, SQLite, DuckDB, Snowflake and most others; these need their own words.
DIALECT_TYPES: dict[str, ColumnTypes] = {
    "bigquery": ColumnTypes("STRING", "STRING", "FLOAT64", "INT64", "TIMESTAMP", " NOT ENFORCED"),
    # Redshift's TEXT is VARCHAR(256): far too short for a transcript.
    "redshift": ColumnTypes(text="VARCHAR(65535)"),
    "mysql": ColumnTypes(text="LONGTEXT", number="DOUBLE", timestamp="DATETIME(6)"),
    "mariadb": ColumnTypes(text="LONGTEXT", number="DOUBLE", timestamp="DATETIME(6)"),
    "mssql": ColumnTypes("NVARCHAR(64)", "NVARCHAR(MAX)", "FLOAT", "INT", "DATETIME2"),
    "oracle": ColumnTypes("VARCHAR2(64)", "CLOB", "BINARY_DOUBLE", "NUMBER(10)", "TIMESTAMP"),
}


def validate_table_name(name: str) -> str:
    """Return ``name`` if it is a plain (optionally schema-qualified) identifier; it is put into SQL as is."""
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise ValueError(f"Invalid table name {name!r}: use letters, digits and _, optionally as schema.table")
    return name


@dataclass(frozen=True)
class LoadResult:
    """What one load wrote."""

    assets: int
    transcript_rows: int
    word_rows: int
    method: str


class TranscriptLoader:
    """Writes assets into a ``transcripts`` and a ``transcript_words`` table through a common-sql ``DbApiHook``.

    Each load is one transaction: the assets' old rows are deleted and the new ones inserted, then it
    commits; any failure rolls it all back, so a rerun or retry never duplicates rows and a failed load
    leaves the previous rows as they were. Rows go in by ``COPY`` on PostgreSQL (psycopg 3 or 2), by
    ``INSERT ... SELECT UNNEST(?)`` of column lists on DuckDB, and by ``executemany`` elsewhere, in batches
    of ``batch_size`` rows. Commits are not split by batch, on purpose: a commit mid-load would publish
    half an asset.

    The ``BrainToSqlOperator`` uses this; it also works on its own with ``Asset`` objects::

        loader = TranscriptLoader(PostgresHook("warehouse"))
        loader.create_tables()
        loader.load(assets)
    """

    def __init__(
        self,
        hook: DbApiHook,
        *,
        table: str = "transcripts",
        words_table: str | None = "transcript_words",
        batch_size: int = 10_000,
        use_copy: bool = True,
        replace_by_source: bool = True,
    ) -> None:
        self.hook = hook
        self.replace_by_source = replace_by_source
        self.table = validate_table_name(table)
        self.words_table = validate_table_name(words_table) if words_table else None
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.use_copy = use_copy

    @property
    def log(self) -> Any:
        return self.hook.log

    @cached_property
    def dialect(self) -> str:
        try:
            return str(self.hook.dialect_name).lower()
        except Exception:  # noqa: BLE001 - a hook that cannot tell its dialect gets the portable defaults
            return "default"

    @property
    def types(self) -> ColumnTypes:
        return DIALECT_TYPES.get(self.dialect, ColumnTypes())

    # ------------------------------------------------------------------ DDL

    def ddl(self) -> list[str]:
        """``CREATE TABLE IF NOT EXISTS`` statements for both tables, in this hook's dialect."""
        t = self.types
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            f"asset_id {t.key} NOT NULL, "
            f"source {t.text}, "
            f"duration {t.number}, "
            f"transcript {t.text}, "
            f"mean_confidence {t.number}, "
            f"word_count {t.integer}, "
            f"created_at {t.timestamp}, "
            f"completed_at {t.timestamp}, "
            f"loaded_at {t.timestamp} NOT NULL, "
            f"PRIMARY KEY (asset_id){t.primary_key_suffix})"
        ]
        if self.words_table:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {self.words_table} ("
                f"asset_id {t.key} NOT NULL, "
                f"word_index {t.integer} NOT NULL, "
                f"word {t.text}, "
                f"start_s {t.number}, "
                f"end_s {t.number}, "
                f"confidence {t.number}, "
                f"PRIMARY KEY (asset_id, word_index){t.primary_key_suffix})"
            )
        return statements

    def create_tables(self) -> None:
        """Create the tables if they are missing (each in its own transaction, before any load)."""
        for statement, table in zip(self.ddl(), (self.table, self.words_table), strict=False):
            self._create_table(statement, table)  # type: ignore[arg-type]

        if self.replace_by_source:
            self._create_source_index()

    def _create_table(self, statement: str, table: str, attempts: int = 6) -> None:
        """Run one ``CREATE TABLE IF NOT EXISTS``, surviving a concurrent creator.

        Two mapped tasks racing on it can both miss the table and one fails, at the statement (PostgreSQL:
        duplicate pg_type) or at its commit (DuckDB: a write-write conflict on the catalog), sometimes
        before the winner has committed, so the table is not visible yet. If the table is there, that is
        success; otherwise try again shortly: by then the other creator has committed (and ``IF NOT
        EXISTS`` does nothing) or rolled back (and this one creates it).
        """
        for attempt in range(attempts):
            try:
                with self._transaction() as (_, cur):
                    cur.execute(statement)
                return
            except Exception:
                if self._table_exists(table):
                    self.log.info("Table %s was created concurrently by another load", table)
                    return
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * 2**attempt)

    def _create_source_index(self) -> None:
        """Index ``source`` where ``CREATE INDEX IF NOT EXISTS`` is understood, so replace_by_source's lookup
        does not scan the whole table; elsewhere (and on any failure) the lookup simply scans: never fatal."""
        schema, _, name = self.table.rpartition(".")
        if self.dialect not in ("postgresql", "postgres", "sqlite") or (schema and self.dialect == "sqlite"):
            return
        try:
            with self._transaction() as (_, cur):
                cur.execute(f"CREATE INDEX IF NOT EXISTS {name}_source_idx ON {self.table} (source)")
        except Exception as err:  # noqa: BLE001 - an optimisation; a concurrent creator may win the race
            self.log.info("No index on %s.source (%s); lookups by source will scan the table", self.table, err)

    def _table_exists(self, table: str) -> bool:
        try:
            with self._transaction() as (_, cur):
                cur.execute(f"SELECT 1 FROM {table} WHERE 1 = 0")
                cur.fetchall()
        except Exception:  # noqa: BLE001 - any failure to read it means we cannot use it either
            return False
        return True

    # ------------------------------------------------------------------ load

    def load(self, assets: Sequence[Asset], *, loaded_at: datetime | None = None) -> LoadResult:
        """Replace the rows of ``assets`` (done assets) in one transaction; return the counts written."""
        for asset in assets:
            if not asset.is_done:
                raise ValueError(f"Brain asset {asset.asset_id} is {asset.status.value}, not done: cannot load it")
        ids = list(dict.fromkeys(asset.asset_id for asset in assets))
        if len(ids) != len(assets):
            # The same asset twice would violate the primary key: keep its last version.
            assets = list({asset.asset_id: asset for asset in assets}.values())
        if self.replace_by_source:
            # Two assets of one file in a batch: the older would stand beside the newer. Its rows (if an
            # earlier load wrote them) go with the source's other old rows below.
            assets, superseded_in_batch = newest_per_source(assets)
            ids = [asset.asset_id for asset in assets] + [asset.asset_id for asset in superseded_in_batch]
        if not assets:
            return LoadResult(assets=0, transcript_rows=0, word_rows=0, method="none")
        loaded_at = loaded_at or utc_now()
        with self._transaction() as (conn, cur):
            tables = [t for t in (self.words_table, self.table) if t]
            # A rerun transcribes the same files into new assets: their older rows give way, so the
            # tables keep one transcript per audio file.
            superseded = self._ids_of_sources(cur, assets) if self.replace_by_source else []
            for table in tables:
                self._delete(cur, table, ids + [i for i in superseded if i not in set(ids)])
            method, write = self._bulk_writer(conn)
            transcript_rows = write(cur, self.table, TRANSCRIPT_COLUMNS, self._transcript_rows(assets, loaded_at))
            word_rows = 0
            if self.words_table:
                word_rows = write(cur, self.words_table, WORD_COLUMNS, _word_rows(assets))
        self.log.info(
            "Loaded %d Brain asset(s) into %s (%d rows) and %s (%d rows) by %s",
            len(assets),
            self.table,
            transcript_rows,
            self.words_table or "-",
            word_rows,
            method,
        )
        return LoadResult(assets=len(assets), transcript_rows=transcript_rows, word_rows=word_rows, method=method)

    def _transcript_rows(self, assets: Iterable[Asset], loaded_at: datetime) -> Iterator[tuple[Any, ...]]:
        ts = self._timestamp
        for asset in assets:
            yield (
                asset.asset_id,
                asset_source(asset),
                asset.duration,
                asset.transcript,
                asset.mean_confidence,
                asset.word_count,
                ts(parse_timestamp(asset.created)),
                ts(parse_timestamp(asset.completed)),
                ts(loaded_at),
            )

    def _timestamp(self, value: datetime | None) -> Any:
        # sqlite3's implicit datetime adapter is deprecated (Python 3.12): hand it ISO text, which it sorts right.
        if value is not None and self.dialect == "sqlite":
            return value.isoformat(sep=" ")
        return value

    # ------------------------------------------------------------------ SQL plumbing

    @contextmanager
    def _transaction(self) -> Iterator[tuple[Any, Any]]:
        """A connection and cursor in one transaction: committed on success, rolled back on any error."""
        conn = self.hook.get_conn()
        # DuckDB's Python driver runs in autocommit mode and has no way to turn it off but BEGIN.
        explicit = "duckdb" in type(conn).__module__
        cur = None
        try:
            if not explicit and getattr(self.hook, "supports_autocommit", False):
                self.hook.set_autocommit(conn, False)
            cur = conn.cursor()
            if explicit:
                cur.execute("BEGIN TRANSACTION")
            yield conn, cur
            if explicit:
                cur.execute("COMMIT")
            else:
                conn.commit()
        except BaseException:
            try:
                if explicit and cur is not None:
                    cur.execute("ROLLBACK")
                else:
                    conn.rollback()
            except Exception as rollback_error:  # noqa: BLE001 - the original error is the one to raise
                self.log.warning("Rollback failed: %s", rollback_error)
            raise
        finally:
            if cur is not None:
                try:
                    cur.close()
                except Exception:  # noqa: BLE001, S110 - closing a cursor of a failed connection
                    pass
            conn.close()

    def _ids_of_sources(self, cur: Any, assets: Sequence[Asset]) -> list[str]:
        """Asset ids already in the transcripts table for the same sources as ``assets``."""
        sources = list(dict.fromkeys(s for s in (replacement_source(a) for a in assets) if s))
        found: list[str] = []
        for start in range(0, len(sources), DELETE_CHUNK):
            chunk = sources[start : start + DELETE_CHUNK]
            marks = ", ".join([self.hook.placeholder] * len(chunk))
            cur.execute(f"SELECT asset_id FROM {self.table} WHERE source IN ({marks})", list(chunk))
            found.extend(str(row[0]) for row in cur.fetchall())
        return found

    def _delete(self, cur: Any, table: str, ids: Sequence[str]) -> None:
        placeholder = self.hook.placeholder
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start : start + DELETE_CHUNK]
            marks = ", ".join([placeholder] * len(chunk))
            cur.execute(f"DELETE FROM {table} WHERE asset_id IN ({marks})", list(chunk))

    def _executemany(self, cur: Any, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        marks = ", ".join([self.hook.placeholder] * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        count = 0
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, self.batch_size)):
            cur.executemany(sql, batch)
            count += len(batch)
        return count

    def _bulk_writer(self, conn: Any) -> tuple[str, RowWriter]:
        """The fastest way this connection offers to insert many rows inside an open transaction.

        PostgreSQL: ``COPY ... FROM STDIN`` (the hook's own ``copy_expert``/``bulk_load`` open their own
        connection and commit, so they cannot share the delete's transaction; the driver's copy can).
        DuckDB: one ``INSERT ... SELECT UNNEST(?), ...`` per batch, columns passed as lists (its
        ``executemany`` runs one statement per row, about 25x slower). Everything else: ``executemany``.
        """
        module = type(conn).__module__
        if self.use_copy and self.dialect in ("postgresql", "postgres"):
            if module.startswith("psycopg2"):
                return "copy", _copy_psycopg2
            if module.startswith("psycopg"):
                return "copy", _copy_psycopg3
        if "duckdb" in module:
            return "unnest", self._insert_unnest
        return "executemany", self._executemany

    def _insert_unnest(self, cur: Any, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        unnests = ", ".join(["UNNEST(?)"] * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {unnests}"
        count = 0
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, self.batch_size)):
            cur.execute(sql, [list(column) for column in zip(*batch, strict=True)])
            count += len(batch)
        return count


def _word_rows(assets: Iterable[Asset]) -> Iterator[tuple[Any, ...]]:
    for asset in assets:
        asset_id = asset.asset_id
        if asset.words is not None:
            # The hot path of a big load: straight from the Word objects, no intermediate tuples.
            for index, w in enumerate(asset.words):
                yield asset_id, index, w.word, w.start, w.end, w.confidence
        else:
            for values in word_tuples(asset):
                yield (asset_id, *values)


#: What Python type each column's values have, and the PostgreSQL types (by OID) psycopg can write them
#: to in binary: text/varchar, int2/int4/int8, float4/float8, timestamp.
_COLUMN_KINDS = {
    "asset_id": "text",
    "source": "text",
    "duration": "float",
    "transcript": "text",
    "mean_confidence": "float",
    "word_count": "int",
    "created_at": "timestamp",
    "completed_at": "timestamp",
    "loaded_at": "timestamp",
    "word_index": "int",
    "word": "text",
    "start_s": "float",
    "end_s": "float",
    "confidence": "float",
}
_BINARY_SAFE_OIDS = {"text": {25, 1043}, "int": {20, 21, 23}, "float": {700, 701}, "timestamp": {1114}}


def _copy_psycopg3(cur: Any, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    # Binary COPY skips formatting and parsing numbers as text on both sides: about 1.6x text COPY here.
    # Its wire format must match each column's type exactly, so the types come from the table itself;
    # a table someone created with other types (NUMERIC, CHAR, TIMESTAMPTZ, ...) gets text COPY instead.
    column_list = ", ".join(columns)
    cur.execute(f"SELECT {column_list} FROM {table} WHERE 1 = 0")
    type_oids = [col.type_code for col in cur.description]
    binary = all(oid in _BINARY_SAFE_OIDS[_COLUMN_KINDS[name]] for name, oid in zip(columns, type_oids, strict=True))
    count = 0
    options = " (FORMAT BINARY)" if binary else ""
    with cur.copy(f"COPY {table} ({column_list}) FROM STDIN{options}") as copy:
        if binary:
            copy.set_types(type_oids)
        write_row = copy.write_row
        for row in rows:
            write_row(row)
            count += 1
    return count


_COPY_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text_cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_TEXT_ESCAPES)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


class _CopyTextStream:
    """A file-like object ``copy_expert`` reads: COPY text lines made on demand, never the whole table in memory."""

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._rows = iter(rows)
        self._buffer = b""
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        want = size if size and size > 0 else 1 << 20
        parts = [self._buffer]
        have = len(self._buffer)
        for row in self._rows:
            line = ("\t".join(_copy_text_cell(v) for v in row) + "\n").encode("utf-8")
            parts.append(line)
            have += len(line)
            self.count += 1
            if have >= want:
                break
        data = b"".join(parts)
        self._buffer = data[want:]
        return data[:want]

    readline = read


def _copy_psycopg2(cur: Any, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    stream = _CopyTextStream(rows)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", stream, size=1 << 20)
    return stream.count


def get_db_hook(conn_id: str, hook_params: dict[str, Any] | None = None) -> DbApiHook:
    """The common-sql ``DbApiHook`` of connection ``conn_id``, or a ``ValueError`` saying why there is none."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    connection = BaseHook.get_connection(conn_id)
    try:
        hook = connection.get_hook(hook_params=hook_params)
    except (AirflowException, ImportError) as err:
        raise ValueError(
            f"Connection {conn_id!r} has type {connection.conn_type!r}, for which no usable hook is installed "
            f"({err}); BrainToSqlOperator needs a SQL database connection whose provider is installed"
        ) from err
    if not isinstance(hook, DbApiHook):
        raise ValueError(
            f"Connection {conn_id!r} (type {connection.conn_type!r}) gives a {type(hook).__name__}, which is not a "
            "common-sql DbApiHook: BrainToSqlOperator needs a SQL database connection "
            "(postgres, sqlite, duckdb, snowflake, redshift, bigquery, mysql, ...)"
        )
    return hook


class BrainToSqlOperator(BaseOperator):
    """Load Brain transcripts into two tables of any SQL database with a common-sql connection.

    ``transcripts`` gets one row per asset (asset_id, source, duration, transcript, mean_confidence,
    word_count, created_at, completed_at, loaded_at; times in UTC) and ``transcript_words`` one row per
    word (asset_id, word_index, word, start_s, end_s, confidence). Both are created if missing. Loading
    an asset again replaces its rows in one transaction, so reruns and retries never duplicate rows, and
    a load that fails half-way leaves the previous rows intact; with ``replace_by_source`` (the default)
    a new asset of the same audio (a rerun that transcribed the file again) also replaces the old one's
    rows. On PostgreSQL the rows go in by ``COPY``, on DuckDB by ``INSERT ... SELECT UNNEST``, elsewhere
    by ``executemany``, in batches of ``batch_size``. The assets are fetched (and checked) before the
    database is touched, so very large batches are best split with ``.partial().expand()``.

    .. code-block:: python

        transcribe = BrainTranscribeOperator.partial(task_id="transcribe").expand(s3_uri=audio_files)
        BrainToSqlOperator(task_id="load", asset_ids=transcribe.output, conn_id="warehouse")

    :param asset_ids: one asset id or a list; items may also be the transcribe operator's summaries
        (mappings with ``asset_id``). Templated, and mappable with ``.partial().expand(asset_ids=...)``.
    :param conn_id: any connection whose hook is a common-sql ``DbApiHook`` (postgres, sqlite, duckdb,
        snowflake, ...). A DuckDB file admits one writing process at a time: give mapped loads into one
        ``max_active_tis_per_dag=1`` (or a one-slot pool).
    :param table: the transcripts table (optionally ``schema.table``).
    :param words_table: the words table; ``None`` to load transcripts only (and not fetch word timings).
    :param brain_conn_id: the Brain connection.
    :param skip_unfinished: skip assets that are not done, with a warning, instead of failing on them.
    :param create_tables: create the tables if missing (``CREATE TABLE IF NOT EXISTS``).
    :param batch_size: rows per ``executemany`` (or ``UNNEST``) call on databases without ``COPY``.
    :param replace_by_source: an asset replaces the rows of older assets of the same source (the same
        S3 object, URL or file), so rerunning a DAG over the same audio keeps one row per file.
    :param hook_params: extra keyword arguments for the database hook.
    :return: a summary: ``{"assets": ..., "transcript_rows": ..., "word_rows": ..., "skipped": [...], ...}``.
    """

    template_fields: Sequence[str] = ("asset_ids", "table", "words_table")
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        asset_ids: Any,
        conn_id: str,
        table: str = "transcripts",
        words_table: str | None = "transcript_words",
        brain_conn_id: str = BrainHook.default_conn_name,
        skip_unfinished: bool = False,
        create_tables: bool = True,
        batch_size: int = 10_000,
        replace_by_source: bool = True,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.replace_by_source = replace_by_source
        self.asset_ids = asset_ids
        self.conn_id = conn_id
        self.table = table
        self.words_table = words_table
        self.brain_conn_id = brain_conn_id
        self.skip_unfinished = skip_unfinished
        self.create_tables = create_tables
        self.batch_size = batch_size
        self.hook_params = hook_params

    def execute(self, context: Context) -> dict[str, Any]:
        ids = normalize_asset_ids(self.asset_ids)
        db_hook = get_db_hook(self.conn_id, self.hook_params)
        loader = TranscriptLoader(
            db_hook,
            table=self.table,
            words_table=self.words_table,
            batch_size=self.batch_size,
            replace_by_source=self.replace_by_source,
        )
        # Fetch (and check) everything before touching the database: an unfinished asset fails the task
        # without a write, and the transaction stays short.
        fetched = fetch_done_assets(
            BrainHook(brain_conn_id=self.brain_conn_id),
            ids,
            times=bool(self.words_table),
            skip_unfinished=self.skip_unfinished,
            log=self.log,
        )
        if self.create_tables:
            loader.create_tables()
        result = loader.load(fetched.done)
        return {
            "table": loader.table,
            "words_table": loader.words_table,
            "assets": result.assets,
            "transcript_rows": result.transcript_rows,
            "word_rows": result.word_rows,
            "skipped": sorted(fetched.skipped),
            "method": result.method,
        }
