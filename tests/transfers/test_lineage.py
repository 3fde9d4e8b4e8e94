"""Where the transfers say they wrote: asset URIs per connection, asset events, OpenLineage datasets."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from airflow.sdk import DAG, Asset, AssetAlias
from airflow.sdk.definitions.connection import Connection
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator
from airflow_provider_brain.transfers.lineage import (
    brain_table_asset,
    canonical_asset,
    emit_asset_events,
    s3_asset,
    s3_dataset,
    source_datasets,
    table_location,
)
from airflow_provider_brain.transfers.sql_tables import DIALECT_TYPES, TRANSCRIPTS


def conn(conn_type: str, **fields) -> Connection:
    return Connection(conn_id="warehouse", conn_type=conn_type, **fields)


@pytest.mark.parametrize(
    ("connection", "table", "uri"),
    [
        (
            conn("postgres", host="db", port=6543, schema="analytics"),
            "transcripts",
            "postgres://db:6543/analytics/public/transcripts",
        ),
        # The port the postgres provider's sanitizer would add anyway, written out: one asset either way.
        (
            conn("postgres", host="db", schema="analytics"),
            "raw.transcripts",
            "postgres://db:5432/analytics/raw/transcripts",
        ),
        (conn("postgres", host="db", schema="analytics"), "other.raw.t", "postgres://db:5432/other/raw/t"),
        (conn("sqlite", host="/data/warehouse.db"), "transcripts", "file:///data/warehouse.db/transcripts"),
        (conn("duckdb", host="/data/w.duckdb"), "main.transcripts", "file:///data/w.duckdb/main/transcripts"),
        (conn("mysql", host="db", schema="analytics"), "transcripts", "mysql://db:3306/analytics/transcripts"),
        (conn("snowflake", schema="PUBLIC"), "transcripts", "snowflake://warehouse/PUBLIC/transcripts"),
    ],
)
def test_table_uris(connection, table, uri):
    location = table_location(connection, table)
    assert location.asset_uri == uri
    asset = location.asset()
    # Already what Airflow normalises it to, and named by it: a downstream Asset(uri) is the same asset.
    assert asset.uri == asset.name == uri == Asset(uri).uri
    assert asset == Asset(uri)


def test_no_credentials_in_uri():
    location = table_location(conn("postgres", host="db", login="me", password="s3cret", schema="a"), "t")
    assert "me" not in location.asset_uri and "s3cret" not in location.asset_uri


@pytest.mark.parametrize("host", ["", ":memory:", "md:my_db"])
def test_in_memory_database_is_no_asset(host):
    assert table_location(conn("duckdb", host=host), "transcripts") is None


def test_hook_database_overrides_connection():
    location = table_location(conn("postgres", host="db", schema="a"), "t", database="b")
    assert location.asset_uri == "postgres://db:5432/b/public/t"


def test_brain_table_asset_reads_the_connection(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WH", json.dumps({"conn_type": "postgres", "host": "db", "port": 5432, "schema": "analytics"})
    )
    assert brain_table_asset("wh") == Asset("postgres://db:5432/analytics/public/transcripts")
    assert brain_table_asset("wh", "transcript_words").uri.endswith("/public/transcript_words")


def test_canonical_asset_names_by_normalised_uri():
    assert Asset("s3://lake/brain/") != Asset("s3://lake/brain")  # same URI, different names
    assert canonical_asset("s3://lake/brain/") == Asset("s3://lake/brain") == s3_asset("s3://lake/brain/")


def test_openlineage_table_dataset_has_the_defined_columns():
    location = table_location(conn("postgres", host="db", schema="analytics"), "transcripts")
    dataset = location.dataset(TRANSCRIPTS, DIALECT_TYPES["mysql"])
    assert (dataset.namespace, dataset.name) == ("postgres://db:5432", "analytics.public.transcripts")
    fields = dataset.facets["schema"].fields
    assert [f.name for f in fields] == list(TRANSCRIPTS.column_names)
    assert {f.name: f.type for f in fields}["transcript"] == "LONGTEXT"
    sqlite = table_location(conn("sqlite", host="/data/w.db"), "transcripts").dataset(TRANSCRIPTS)
    assert (sqlite.namespace, sqlite.name) == ("file", "/data/w.db/transcripts")


def test_source_datasets():
    datasets = source_datasets(
        [
            "s3://audio/calls/a.wav",
            "https://host:8443/x/b.mp3?X-Amz-Signature=abc",
            "/local/c.wav",
            None,
            "s3://audio/calls/a.wav",
            "s3://audio/calls/a?take=2#b.wav",  # S3 keys may hold ? and #: the whole key names the object
        ]
    )
    assert [(d.namespace, d.name) for d in datasets] == [
        ("s3://audio", "calls/a.wav"),
        ("https://host:8443", "/x/b.mp3"),
        ("s3://audio", "calls/a?take=2#b.wav"),
    ]
    assert (s3_dataset("lake", "brain/").namespace, s3_dataset("lake", "brain/").name) == ("s3://lake", "brain")
    assert s3_dataset("lake", "").name == "/"


def test_operators_declare_their_alias_and_keep_user_outlets():
    mine = Asset("s3://other/thing")
    sql = BrainToSqlOperator(task_id="load", asset_ids=[], conn_id="warehouse", outlets=[mine])
    assert sql.outlets == [mine, AssetAlias("brain_to_sql:warehouse")]
    assert BrainToSqlOperator(task_id="l", asset_ids=[], conn_id="w", asset_alias=None).outlets == []
    assert BrainToSqlOperator(task_id="l", asset_ids=[], conn_id="w", asset_alias="mine").outlets == [
        AssetAlias("mine")
    ]
    s3 = BrainToS3Operator(task_id="export", asset_ids=[], s3_uri="s3://lake/{{ ds }}", outlets=mine)
    assert s3.outlets == [mine, AssetAlias("brain_to_s3")]
    assert BrainToS3Operator(task_id="e", asset_ids=[], s3_uri="s3://l/p", asset_alias=None).outlets == []


def test_mapped_transfers_declare_their_alias_when_the_dag_is_parsed():
    """Airflow runs no ``__init__`` of a mapped task at parse time: the alias must be in ``partial``'s outlets for
    the serialized DAG (what the scheduler reads) to hold it, and each map index's operator declares it once."""
    from airflow.serialization.serialized_objects import DagSerialization

    mine = Asset("s3://other/thing")
    ids = [["0123456789abcdef"]]
    with DAG("mapped_transfers", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        sql = BrainToSqlOperator.partial(task_id="load", conn_id="warehouse").expand(asset_ids=ids)
        s3 = BrainToS3Operator.partial(task_id="export", s3_uri="s3://lake/p", outlets=[mine]).expand(asset_ids=ids)
        # The connection is expanded: the alias names it, so only each map index knows it.
        anywhere = BrainToSqlOperator.partial(task_id="anywhere").expand(conn_id=["a", "b"], asset_ids=ids * 2)
    assert sql.outlets == [AssetAlias("brain_to_sql:warehouse")]
    assert s3.outlets == [mine, AssetAlias("brain_to_s3")]
    assert anywhere.outlets == []
    assert sql.unmap({"asset_ids": ids[0]}).outlets == [AssetAlias("brain_to_sql:warehouse")]
    assert anywhere.unmap({"asset_ids": ids[0], "conn_id": "a"}).outlets == [AssetAlias("brain_to_sql:a")]
    serialized = json.dumps(DagSerialization.to_dict(dag), default=str)
    assert "brain_to_sql:warehouse" in serialized and "brain_to_s3" in serialized


def test_emit_asset_events():
    declared = Asset("postgres://db:5432/a/public/transcripts")
    words = Asset("postgres://db:5432/a/public/transcript_words")
    alias = AssetAlias("brain_to_sql:warehouse")
    events = OutletEventAccessors()
    emit_asset_events({"outlet_events": events}, [declared, alias], [declared, words], {"assets": 2})
    # The declared asset's own event gets the counts; only the undeclared table goes through the alias.
    assert events[declared].extra == {"assets": 2}
    emitted = events[alias].asset_alias_events
    assert [(e.dest_asset_key.uri, e.extra) for e in emitted] == [(words.uri, {"assets": 2})]
    emit_asset_events({}, [alias], [words], {})  # no outlet_events (a unit test's context): nothing to do
