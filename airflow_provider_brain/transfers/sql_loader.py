"""``TranscriptLoader``: write Brain assets into the transcripts and words tables of any common-sql database.

It is what ``BrainToSqlOperator`` runs once the assets are fetched, and it works on its own with ``Asset``
objects and a ``DbApiHook``. The tables' columns come from ``sql_tables``; this module decides how a load
is made safe (one transaction, old rows replaced) and fast (the best bulk path each driver offers).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_brain.models import Asset
from airflow_provider_brain.transfers.common import (
    asset_source,
    newest_per_source,
    parse_timestamp,
    replacement_source,
    utc_now,
    word_tuples,
)
from airflow_provider_brain.transfers.sql_columns import add_missing_columns, fitted_transcripts, missing_added_columns
from airflow_provider_brain.transfers.sql_errors import BrainLoadError, is_driver_error, load_error
from airflow_provider_brain.transfers.sql_hits import hit_table_rows
from airflow_provider_brain.transfers.sql_tables import (
    TRANSCRIPT_HITS,
    TRANSCRIPT_WORDS,
    TRANSCRIPTS,
    ColumnTypes,
    TableSchema,
    dialect_types,
    validate_table_name,
)
from airflow_provider_brain.transfers.sql_writers import bulk_writer

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_brain.hooks.search import SearchHit

#: How many asset ids one ``DELETE ... WHERE asset_id IN (...)`` names (well under every driver's limit).
DELETE_CHUNK = 500


@dataclass(frozen=True)
class LoadResult:
    """What one load wrote."""

    assets: int
    transcript_rows: int
    word_rows: int
    method: str
    hit_rows: int = 0


class TranscriptLoader:
    """Writes assets into a ``transcripts`` and a ``transcript_words`` table through a common-sql ``DbApiHook``.

    Each load is one transaction: the assets' old rows are deleted and the new ones inserted, then it
    commits; any failure rolls it all back, so a rerun or retry never duplicates rows and a failed load
    leaves the previous rows as they were. Rows go in by ``COPY`` on PostgreSQL (psycopg 3 or 2), by
    ``INSERT ... SELECT UNNEST(?)`` of column lists on DuckDB, and by ``executemany`` elsewhere, in batches
    of ``batch_size`` rows (``sql_writers``); the columns are those ``sql_tables`` defines. Commits are
    not split by batch, on purpose: a commit mid-load would publish half an asset.

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
        hits_table: str | None = None,
    ) -> None:
        self.hook = hook
        self.replace_by_source = replace_by_source
        self.table = validate_table_name(table)
        self.words_table = validate_table_name(words_table) if words_table else None
        #: Where ``load(..., hits=...)`` writes the hits of a phrase search (``None``: no hits table).
        self.hits_table = validate_table_name(hits_table) if hits_table else None
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.use_copy = use_copy

    @property
    def log(self) -> Any:
        """The hook's logger: the load logs ids and counts only, never transcript text."""
        return self.hook.log

    @cached_property
    def dialect(self) -> str:
        """The hook's dialect name, lower case (``"default"`` if it cannot say): picks types and bulk path."""
        try:
            return str(self.hook.dialect_name).lower()
        except Exception:  # noqa: BLE001 - a hook that cannot tell its dialect gets the portable defaults
            return "default"

    @property
    def types(self) -> ColumnTypes:
        """The SQL types this hook's dialect spells the columns with."""
        return dialect_types(self.dialect)

    # ------------------------------------------------------------------ DDL

    def ddl(self) -> list[str]:
        """``CREATE TABLE IF NOT EXISTS`` statements for the tables, in this hook's dialect."""
        return [schema.create_sql(table, self.types) for table, schema in self._tables()]

    def _tables(self) -> list[tuple[str, TableSchema]]:
        tables = [(self.table, TRANSCRIPTS), (self.words_table, TRANSCRIPT_WORDS), (self.hits_table, TRANSCRIPT_HITS)]
        return [(table, schema) for table, schema in tables if table]

    def create_tables(self) -> None:
        """Create the tables if they are missing (each in its own transaction, before any load)."""
        for statement, (table, schema) in zip(self.ddl(), self._tables(), strict=True):
            self._create_table(statement, table)
            add_missing_columns(self, table, schema)

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

    def load(
        self, assets: Sequence[Asset], *, loaded_at: datetime | None = None, hits: Sequence[SearchHit] | None = None
    ) -> LoadResult:
        """Replace the rows of ``assets`` (done assets) in one transaction; return the counts written.

        :param hits: a phrase search's hits in these assets: with them (even none), every hit row of the assets in
            ``hits_table`` is replaced too (the table then holds, per asset, the hits of its last load's phrases).
        """
        if hits is not None and not self.hits_table:
            raise ValueError("hits were given but the loader has no hits_table")
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
        tables = [t for t in (self.words_table, self.hits_table if hits is not None else None, self.table) if t]
        missing = missing_added_columns(self)
        # What the load was doing when the database refused it; None until a connection is open (a
        # connection error quotes no row, and its message is what the user needs to see).
        step: tuple[str, str] | None = None
        try:
            with self._transaction() as (conn, cur):
                step = ("replacing the old rows of", " and ".join(tables))
                # A rerun transcribes the same files into new assets: their older rows give way, so the
                # tables keep one transcript per audio file.
                superseded = self._ids_of_sources(cur, assets) if self.replace_by_source else []
                for table in tables:
                    self._delete(cur, table, ids + [i for i in superseded if i not in set(ids)])
                method, write = bulk_writer(
                    conn,
                    dialect=self.dialect,
                    placeholder=self.hook.placeholder,
                    batch_size=self.batch_size,
                    use_copy=self.use_copy,
                )
                step = ("writing", self.table)
                schema, rows = fitted_transcripts(self._transcript_rows(assets, loaded_at), missing)
                transcript_rows = write(cur, self.table, schema, rows)
                word_rows = 0
                if self.words_table:
                    step = ("writing", self.words_table)
                    word_rows = write(cur, self.words_table, TRANSCRIPT_WORDS, _word_rows(assets))
                hit_rows = 0
                if self.hits_table and hits is not None:
                    step = ("writing", self.hits_table)
                    rows = hit_table_rows(assets, hits, self._timestamp(loaded_at))
                    hit_rows = write(cur, self.hits_table, TRANSCRIPT_HITS, rows)
                step = ("committing", " and ".join(tables))
        except Exception as err:
            if step is None or not is_driver_error(err):
                raise
            # ``from None``: the driver's error (and its message quoting the row) is not printed with the traceback.
            raise self._load_error(err, step, assets) from None
        self.log.info(
            "Loaded %d Brain asset(s) into %s (%d rows) and %s (%d rows)%s by %s",
            len(assets),
            self.table,
            transcript_rows,
            self.words_table or "-",
            word_rows,
            f" and {self.hits_table} ({hit_rows} rows)" if hits is not None else "",
            method,
        )
        return LoadResult(
            assets=len(assets), transcript_rows=transcript_rows, word_rows=word_rows, method=method, hit_rows=hit_rows
        )

    def _transcript_rows(self, assets: Iterable[Asset], loaded_at: datetime) -> Iterator[tuple[Any, ...]]:
        """One row per asset, its values in ``TRANSCRIPTS`` column order."""
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
                *(_text(asset.metadata.get(name)) for name in ("dag_id", "task_id", "run_id")),
            )

    def _timestamp(self, value: datetime | None) -> Any:
        # sqlite3's implicit datetime adapter is deprecated (Python 3.12): hand it ISO text, which it sorts right.
        if value is not None and self.dialect == "sqlite":
            return value.isoformat(sep=" ")
        return value

    def _load_error(self, err: Exception, step: tuple[str, str], assets: Sequence[Asset]) -> BrainLoadError:
        """A ``BrainLoadError`` for the driver's ``err``: where it happened and what kind it was, no values."""
        doing, table = step
        return load_error(
            err,
            doing=doing,
            table=table,
            assets=assets,
            owner_of_row=lambda row: self._asset_of_row(table, row, assets),
        )

    def _asset_of_row(self, table: str, row: int, assets: Sequence[Asset]) -> str | None:
        """The asset whose rows of ``table`` include the ``row``-th (from 1) written to it."""
        if table == self.table:
            return assets[row - 1].asset_id if 0 < row <= len(assets) else None
        if table == self.hits_table:
            return None  # hits are not counted per asset here; the ids are in the message
        seen = 0
        for asset in assets:
            seen += sum(1 for _ in _word_rows([asset]))
            if row <= seen:
                return asset.asset_id
        return None

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


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _word_rows(assets: Iterable[Asset]) -> Iterator[tuple[Any, ...]]:
    """One row per word of each asset, its values in ``TRANSCRIPT_WORDS`` column order."""
    for asset in assets:
        asset_id = asset.asset_id
        if asset.words is not None:
            # The hot path of a big load: straight from the Word objects, no intermediate tuples.
            for index, w in enumerate(asset.words):
                yield asset_id, index, w.word, w.start, w.end, w.confidence
        else:
            for values in word_tuples(asset):
                yield (asset_id, *values)
