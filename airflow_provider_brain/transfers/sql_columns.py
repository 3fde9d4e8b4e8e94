"""Columns added to a table after warehouses created it: added to an existing table by ``create_tables``
(``ALTER TABLE ... ADD``), or left out of a load into a table that lacks them (``create_tables=False``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_provider_brain.transfers.sql_tables import ADDED_TRANSCRIPT_COLUMNS, TRANSCRIPTS, TableSchema


def column_names(loader: Any, table: str) -> set[str]:
    """The columns ``table`` has (lower case), read from an empty ``SELECT *``."""
    with loader._transaction() as (_, cur):
        cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        cur.fetchall()
        return {str(d[0]).lower() for d in cur.description or ()}


def add_missing_columns(loader: Any, table: str, schema: TableSchema) -> None:
    """Add the nullable columns a table created by an older release lacks; a concurrent loader that added one
    first is success."""
    missing = [c for c in schema.columns if c.nullable and c.name not in column_names(loader, table)]
    add = "ADD" if loader.dialect in ("mssql", "oracle") else "ADD COLUMN"
    for column in missing:
        try:
            with loader._transaction() as (_, cur):
                cur.execute(f"ALTER TABLE {table} {add} {column.name} {loader.types.of(column.type)}")
            loader.log.info("Added column %s to %s", column.name, table)
        except Exception:
            if column.name not in column_names(loader, table):
                raise


def missing_added_columns(loader: Any) -> set[str]:
    """The later-added columns the loader's transcripts table lacks (a table made without ``create_tables``)."""
    try:
        return set(ADDED_TRANSCRIPT_COLUMNS) - column_names(loader, loader.table)
    except Exception:  # noqa: BLE001 - no readable table: the load itself says what is wrong
        return set()


def fitted_transcripts(
    rows: Iterator[tuple[Any, ...]], missing: set[str]
) -> tuple[TableSchema, Iterator[tuple[Any, ...]]]:
    """The transcripts schema and rows without the ``missing`` columns."""
    if not missing:
        return TRANSCRIPTS, rows
    keep = [i for i, column in enumerate(TRANSCRIPTS.columns) if column.name not in missing]
    return TRANSCRIPTS.without(missing), (tuple(row[i] for i in keep) for row in rows)
