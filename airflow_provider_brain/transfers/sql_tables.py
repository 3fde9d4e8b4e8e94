"""The tables Brain transcripts (and the hits of a phrase search) are loaded into, each column defined once.

A column says its name, its logical type, whether it may be NULL and whether it belongs to the primary
key. Everything the loader writes is derived from that: the ``CREATE TABLE`` statement in each dialect's
words (``ColumnTypes``), the column lists of ``INSERT``, ``COPY`` and ``UNNEST``, and the types a binary
``COPY`` may write. Adding or renaming a column is one edit here, and the row builders in
``sql_loader`` must then yield their values in the same order::

    TRANSCRIPTS.create_sql("analytics.transcripts", DIALECT_TYPES.get("mysql", ColumnTypes()))
    TRANSCRIPT_WORDS.column_list  # "asset_id, word_index, word, start_s, end_s, confidence"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class LogicalType(StrEnum):
    """What a column holds, before any dialect spells it as a SQL type."""

    #: An asset id: short, bounded text, so every database can put it in a primary key (MySQL cannot index TEXT).
    KEY = "key"
    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    #: A time without a zone, in UTC: the loader writes Brain's times as naive UTC ``datetime`` objects.
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, logical type, and whether it may be NULL or is part of the primary key."""

    name: str
    type: LogicalType
    nullable: bool = True
    primary_key: bool = False

    def __post_init__(self) -> None:
        if self.primary_key and self.nullable:
            raise ValueError(f"Primary-key column {self.name!r} must be NOT NULL (nullable=False)")


@dataclass(frozen=True)
class ColumnTypes:
    """The SQL words one dialect uses for each logical type (the defaults are ANSI-ish: PostgreSQL, SQLite, DuckDB)."""

    key: str = "VARCHAR(64)"
    text: str = "TEXT"
    number: str = "DOUBLE PRECISION"
    integer: str = "INTEGER"
    timestamp: str = "TIMESTAMP"
    #: Written after ``PRIMARY KEY (...)``: BigQuery accepts a primary key only as ``NOT ENFORCED``.
    primary_key_suffix: str = ""

    def of(self, logical: LogicalType) -> str:
        """The SQL type of ``logical`` in this dialect."""
        return {
            LogicalType.KEY: self.key,
            LogicalType.TEXT: self.text,
            LogicalType.NUMBER: self.number,
            LogicalType.INTEGER: self.integer,
            LogicalType.TIMESTAMP: self.timestamp,
        }[logical]


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


def dialect_types(dialect: str) -> ColumnTypes:
    """The column types for a hook's ``dialect_name``; unknown dialects get the portable defaults."""
    return DIALECT_TYPES.get(dialect, ColumnTypes())


@dataclass(frozen=True)
class TableSchema:
    """The columns of one table, in the order the loader builds its rows."""

    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        names = [column.name for column in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate column names in {names}")
        if not self.primary_key:
            raise ValueError(f"No primary-key column among {names}: a reload could not replace rows by key")

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names, in row order."""
        return tuple(column.name for column in self.columns)

    @property
    def column_list(self) -> str:
        """The column names as SQL lists them in ``INSERT INTO t (...)``, ``COPY t (...)`` and ``SELECT``."""
        return ", ".join(self.column_names)

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The primary key's columns, in row order."""
        return tuple(column.name for column in self.columns if column.primary_key)

    def without(self, names: set[str]) -> TableSchema:
        """This schema without the columns ``names`` (none of them in the primary key)."""
        return TableSchema(tuple(c for c in self.columns if c.name not in names or c.primary_key))

    def create_sql(self, table: str, types: ColumnTypes) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for this schema under the (already validated) name ``table``."""
        columns = ", ".join(
            f"{column.name} {types.of(column.type)}{'' if column.nullable else ' NOT NULL'}" for column in self.columns
        )
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            f"{columns}, PRIMARY KEY ({', '.join(self.primary_key)}){types.primary_key_suffix})"
        )


#: One row per asset; times in UTC. ``created_at`` is when the asset was submitted.
TRANSCRIPTS = TableSchema(
    (
        Column("asset_id", LogicalType.KEY, nullable=False, primary_key=True),
        Column("source", LogicalType.TEXT),
        Column("duration", LogicalType.NUMBER),
        Column("transcript", LogicalType.TEXT),
        Column("mean_confidence", LogicalType.NUMBER),
        Column("word_count", LogicalType.INTEGER),
        Column("created_at", LogicalType.TIMESTAMP),
        Column("completed_at", LogicalType.TIMESTAMP),
        Column("loaded_at", LogicalType.TIMESTAMP, nullable=False),
        # Which task submitted the asset (its metadata), for audio minutes per DAG; added to older tables by
        # ``TranscriptLoader.create_tables`` (nullable, so rows of assets submitted otherwise have NULL).
        Column("dag_id", LogicalType.TEXT),
        Column("task_id", LogicalType.TEXT),
        Column("run_id", LogicalType.TEXT),
    )
)

#: One row per word of an asset, numbered from 0 in the order spoken; times in seconds from the start.
TRANSCRIPT_WORDS = TableSchema(
    (
        Column("asset_id", LogicalType.KEY, nullable=False, primary_key=True),
        Column("word_index", LogicalType.INTEGER, nullable=False, primary_key=True),
        Column("word", LogicalType.TEXT),
        Column("start_s", LogicalType.NUMBER),
        Column("end_s", LogicalType.NUMBER),
        Column("confidence", LogicalType.NUMBER),
    )
)

#: One row per place a searched phrase was said in an asset (``BrainToSqlOperator(phrases=...)``), numbered from 0
#: in time order within the asset; times in seconds from the start. A load replaces all of its assets' hits.
TRANSCRIPT_HITS = TableSchema(
    (
        Column("asset_id", LogicalType.KEY, nullable=False, primary_key=True),
        Column("hit_index", LogicalType.INTEGER, nullable=False, primary_key=True),
        Column("source", LogicalType.TEXT),
        Column("phrase", LogicalType.TEXT),
        Column("start_s", LogicalType.NUMBER),
        Column("end_s", LogicalType.NUMBER),
        Column("confidence", LogicalType.NUMBER),
        Column("loaded_at", LogicalType.TIMESTAMP, nullable=False),
    )
)

#: Columns of ``transcripts`` added after tables existed: a load into a table without them (``create_tables=False``,
#: a DBA's table) leaves them out rather than failing.
ADDED_TRANSCRIPT_COLUMNS = ("dag_id", "task_id", "run_id")

TRANSCRIPT_COLUMNS = TRANSCRIPTS.column_names
WORD_COLUMNS = TRANSCRIPT_WORDS.column_names

#: A table name, optionally qualified by a schema (and a database/catalog): no quoting, no injection.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}")


def validate_table_name(name: str) -> str:
    """Return ``name`` if it is a plain (optionally schema-qualified) identifier; it is put into SQL as is."""
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise ValueError(f"Invalid table name {name!r}: use letters, digits and _, optionally as schema.table")
    return name
