"""BrainToSqlOperator's arguments, checked without a database: connections that are not SQL, table names,
templating and mapping. (Split from test_brain_to_sql.py, which loads into real databases.)"""

from __future__ import annotations

import json

import pytest

from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator, TranscriptLoader
from tests.transfers.test_brain_to_sql import run


def test_connection_without_a_dbapi_hook_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NOT_SQL", json.dumps({"conn_type": "aws", "login": "x", "password": "y"}))

    with pytest.raises(ValueError, match="not a common-sql DbApiHook"):
        run(asset_ids=["0123456789abcdef"], conn_id="not_sql")


def test_connection_of_an_unknown_type_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ODD", json.dumps({"conn_type": "nosuchdb", "host": "x"}))

    with pytest.raises(ValueError, match="no usable hook is installed"):
        run(asset_ids=["0123456789abcdef"], conn_id="odd")


@pytest.mark.parametrize("name", ["transcripts; DROP TABLE x", "1abc", "a.b.c.d", ""])
def test_table_names_are_plain_identifiers(name):
    with pytest.raises(ValueError, match="Invalid table name"):
        TranscriptLoader(object(), table=name)  # type: ignore[arg-type]


def test_schema_qualified_table_name_is_accepted():
    assert TranscriptLoader(object(), table="analytics.transcripts").table == "analytics.transcripts"  # type: ignore[arg-type]


def test_operator_is_templated_and_mappable():
    from airflow.sdk import DAG

    assert "asset_ids" in BrainToSqlOperator.template_fields
    with DAG("brain_to_sql_mapped", schedule=None):
        mapped = BrainToSqlOperator.partial(task_id="load", conn_id="warehouse").expand(
            asset_ids=["0123456789abcdef", "fedcba9876543210"]
        )
    assert mapped.task_id == "load"
