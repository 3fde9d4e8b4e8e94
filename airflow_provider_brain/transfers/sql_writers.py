"""The fastest way each database driver offers to insert many rows inside a transaction someone else opened.

``TranscriptLoader`` deletes an asset's old rows and inserts the new ones in one transaction, so every path
here writes on the cursor it is given and never commits: ``COPY ... FROM STDIN`` on PostgreSQL (binary on
psycopg 3, streamed text on psycopg2), one ``INSERT ... SELECT UNNEST(?), ...`` per batch on DuckDB, and
batched ``executemany`` everywhere else. Column lists come from the table's ``TableSchema``::

    method, write = bulk_writer(conn, dialect="postgresql", placeholder="%s", batch_size=10_000)
    write(cur, "transcript_words", TRANSCRIPT_WORDS, rows)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from airflow_provider_brain.transfers.sql_tables import LogicalType, TableSchema

#: Inserts rows into a table (its name and schema) on an open cursor, inside the load's transaction; returns how many.
RowWriter = Callable[[Any, str, TableSchema, Iterable[tuple[Any, ...]]], int]


def bulk_writer(
    conn: Any, *, dialect: str, placeholder: str, batch_size: int, use_copy: bool = True
) -> tuple[str, RowWriter]:
    """The name of the fastest insert path ``conn`` offers, and a writer that takes it.

    PostgreSQL: ``COPY ... FROM STDIN`` (the hook's own ``copy_expert``/``bulk_load`` open their own
    connection and commit, so they cannot share the delete's transaction; the driver's copy can).
    DuckDB: one ``INSERT ... SELECT UNNEST(?), ...`` per batch, columns passed as lists (its
    ``executemany`` runs one statement per row, about 25x slower). Everything else: ``executemany``.
    """
    module = type(conn).__module__
    if use_copy and dialect in ("postgresql", "postgres"):
        if module.startswith("psycopg2"):
            return "copy", copy_psycopg2
        if module.startswith("psycopg"):
            return "copy", copy_psycopg3
    if "duckdb" in module:
        return "unnest", unnest_writer(batch_size)
    return "executemany", executemany_writer(placeholder, batch_size)


def executemany_writer(placeholder: str, batch_size: int) -> RowWriter:
    """``INSERT ... VALUES`` by ``executemany``, ``batch_size`` rows a call: works on every DB-API driver."""

    def write(cur: Any, table: str, schema: TableSchema, rows: Iterable[tuple[Any, ...]]) -> int:
        marks = ", ".join([placeholder] * len(schema.columns))
        sql = f"INSERT INTO {table} ({schema.column_list}) VALUES ({marks})"
        count = 0
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, batch_size)):
            cur.executemany(sql, batch)
            count += len(batch)
        return count

    return write


def unnest_writer(batch_size: int) -> RowWriter:
    """DuckDB: one ``INSERT ... SELECT UNNEST(?), ...`` per ``batch_size`` rows, each column bound as a list."""

    def write(cur: Any, table: str, schema: TableSchema, rows: Iterable[tuple[Any, ...]]) -> int:
        unnests = ", ".join(["UNNEST(?)"] * len(schema.columns))
        sql = f"INSERT INTO {table} ({schema.column_list}) SELECT {unnests}"
        count = 0
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, batch_size)):
            cur.execute(sql, [list(column) for column in zip(*batch, strict=True)])
            count += len(batch)
        return count

    return write


#: The PostgreSQL types (by OID) psycopg can write each logical type's Python values to in binary:
#: text/varchar, int2/int4/int8, float4/float8, timestamp.
_TEXT_OIDS = frozenset({25, 1043})
_BINARY_SAFE_OIDS: dict[LogicalType, frozenset[int]] = {
    LogicalType.KEY: _TEXT_OIDS,
    LogicalType.TEXT: _TEXT_OIDS,
    LogicalType.INTEGER: frozenset({20, 21, 23}),
    LogicalType.NUMBER: frozenset({700, 701}),
    LogicalType.TIMESTAMP: frozenset({1114}),
}


def copy_psycopg3(cur: Any, table: str, schema: TableSchema, rows: Iterable[tuple[Any, ...]]) -> int:
    """``COPY ... FROM STDIN`` on psycopg 3: binary when the table's column types allow it, text otherwise."""
    # Binary COPY skips formatting and parsing numbers as text on both sides: about 1.6x text COPY here.
    # Its wire format must match each column's type exactly, so the types come from the table itself;
    # a table someone created with other types (NUMERIC, CHAR, TIMESTAMPTZ, ...) gets text COPY instead.
    cur.execute(f"SELECT {schema.column_list} FROM {table} WHERE 1 = 0")
    type_oids = [col.type_code for col in cur.description]
    binary = all(oid in _BINARY_SAFE_OIDS[column.type] for column, oid in zip(schema.columns, type_oids, strict=True))
    count = 0
    options = " (FORMAT BINARY)" if binary else ""
    with cur.copy(f"COPY {table} ({schema.column_list}) FROM STDIN{options}") as copy:
        if binary:
            copy.set_types(type_oids)
        write_row = copy.write_row
        for row in rows:
            write_row(row)
            count += 1
    return count


def copy_psycopg2(cur: Any, table: str, schema: TableSchema, rows: Iterable[tuple[Any, ...]]) -> int:
    """``COPY ... FROM STDIN`` on psycopg2, as text streamed from the rows (never the whole table in memory)."""
    stream = _CopyTextStream(rows)
    cur.copy_expert(f"COPY {table} ({schema.column_list}) FROM STDIN", stream, size=1 << 20)
    return stream.count


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
