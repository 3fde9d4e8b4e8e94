"""Each table's columns are defined once (``sql_tables``): the DDL, the row builders and the operator's
docstring follow that one definition, and the DDL stays what existing warehouses were created with."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from airflow_provider_brain.transfers import brain_to_sql, sql_loader
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator, TranscriptLoader
from airflow_provider_brain.transfers.sql_tables import (
    TRANSCRIPT_WORDS,
    TRANSCRIPTS,
    Column,
    LogicalType,
    TableSchema,
    dialect_types,
)

#: The statements every release before the column definitions wrote: existing warehouses were created by them.
PINNED_DDL = {
    "postgresql": [
        "CREATE TABLE IF NOT EXISTS transcripts (asset_id VARCHAR(64) NOT NULL, source TEXT, "
        "duration DOUBLE PRECISION, transcript TEXT, mean_confidence DOUBLE PRECISION, word_count INTEGER, "
        "created_at TIMESTAMP, completed_at TIMESTAMP, loaded_at TIMESTAMP NOT NULL, PRIMARY KEY (asset_id))",
        "CREATE TABLE IF NOT EXISTS transcript_words (asset_id VARCHAR(64) NOT NULL, word_index INTEGER NOT NULL, "
        "word TEXT, start_s DOUBLE PRECISION, end_s DOUBLE PRECISION, confidence DOUBLE PRECISION, "
        "PRIMARY KEY (asset_id, word_index))",
    ],
    "bigquery": [
        "CREATE TABLE IF NOT EXISTS transcripts (asset_id STRING NOT NULL, source STRING, duration FLOAT64, "
        "transcript STRING, mean_confidence FLOAT64, word_count INT64, created_at TIMESTAMP, completed_at TIMESTAMP, "
        "loaded_at TIMESTAMP NOT NULL, PRIMARY KEY (asset_id) NOT ENFORCED)",
        "CREATE TABLE IF NOT EXISTS transcript_words (asset_id STRING NOT NULL, word_index INT64 NOT NULL, "
        "word STRING, start_s FLOAT64, end_s FLOAT64, confidence FLOAT64, PRIMARY KEY (asset_id, word_index) "
        "NOT ENFORCED)",
    ],
    "mssql": [
        "CREATE TABLE IF NOT EXISTS transcripts (asset_id NVARCHAR(64) NOT NULL, source NVARCHAR(MAX), duration FLOAT, "
        "transcript NVARCHAR(MAX), mean_confidence FLOAT, word_count INT, created_at DATETIME2, "
        "completed_at DATETIME2, loaded_at DATETIME2 NOT NULL, PRIMARY KEY (asset_id))",
        "CREATE TABLE IF NOT EXISTS transcript_words (asset_id NVARCHAR(64) NOT NULL, word_index INT NOT NULL, "
        "word NVARCHAR(MAX), start_s FLOAT, end_s FLOAT, confidence FLOAT, PRIMARY KEY (asset_id, word_index))",
    ],
}


@dataclass
class _DialectHook:
    dialect_name: str


@pytest.mark.parametrize("dialect", sorted(PINNED_DDL))
def test_ddl_derived_from_the_column_definitions_is_what_existing_warehouses_have(dialect):
    """What existing warehouses were created with, and the nullable columns since added at the end (the loader
    adds them to older tables: tests/transfers/test_audio_minutes.py)."""
    loader = TranscriptLoader(_DialectHook(dialect))  # type: ignore[arg-type]
    text = dialect_types(dialect).text
    added = f", dag_id {text}, task_id {text}, run_id {text}, PRIMARY KEY (asset_id)"
    transcripts, words = PINNED_DDL[dialect]

    assert loader.ddl() == [transcripts.replace(", PRIMARY KEY (asset_id)", added, 1), words]


def test_column_definitions_name_every_column_once_with_the_keys_the_load_replaces_by():
    assert TRANSCRIPTS.column_names == brain_to_sql.TRANSCRIPT_COLUMNS
    assert TRANSCRIPT_WORDS.column_names == brain_to_sql.WORD_COLUMNS
    assert TRANSCRIPTS.primary_key == ("asset_id",)
    assert TRANSCRIPT_WORDS.primary_key == ("asset_id", "word_index")
    assert "source" in TRANSCRIPTS.column_names  # replace_by_source looks rows up by it
    assert dialect_types("nosuchdialect") == dialect_types("postgresql")


def test_row_builders_fill_every_defined_column():
    """A column added to a definition but not to its row builder would shift every value after it."""
    from airflow_provider_brain.models import Asset, AssetStatus, Word

    timed = Asset(
        asset_id="00000000000000aa", status=AssetStatus.DONE, transcript="a b", words=(Word("a", 0.0, 1.0, 0.9),) * 2
    )
    untimed = Asset(asset_id="00000000000000bb", status=AssetStatus.DONE, transcript="a b", confidence=(0.5, 0.6))
    loader = TranscriptLoader(_DialectHook("sqlite"))  # type: ignore[arg-type]

    transcript_rows = list(loader._transcript_rows([timed, untimed], sql_loader.utc_now()))
    word_rows = list(sql_loader._word_rows([timed, untimed]))

    assert {len(row) for row in transcript_rows} == {len(TRANSCRIPTS.columns)}
    assert {len(row) for row in word_rows} == {len(TRANSCRIPT_WORDS.columns)}


def test_a_column_definition_refuses_a_nullable_key_and_a_table_without_one():
    with pytest.raises(ValueError, match="must be NOT NULL"):
        Column("asset_id", LogicalType.KEY, primary_key=True)
    with pytest.raises(ValueError, match="No primary-key column"):
        TableSchema((Column("word", LogicalType.TEXT),))


def test_operator_docstring_lists_the_defined_columns():
    documented = " ".join((BrainToSqlOperator.__doc__ or "").split())

    assert f"({', '.join(TRANSCRIPTS.column_names)};" in documented
    assert f"({', '.join(TRANSCRIPT_WORDS.column_names)})" in documented
