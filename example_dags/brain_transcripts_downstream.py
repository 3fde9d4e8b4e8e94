"""Run after every load of Brain transcripts into the warehouse: scheduled on the table, not on a time.

``brain_s3_to_warehouse`` (and the other examples loading through ``brain_warehouse``) loads the
``transcripts`` table with ``BrainToSqlOperator``, which emits an asset event for the table each time it
writes rows. This DAG is queued by that event and reads the table: here it only counts the rows; a real one
would refresh a report or a search index.

The table's asset URI depends on the connection (``postgres://host:5432/database/public/transcripts`` on
PostgreSQL, ``file:///path/warehouse.db/transcripts`` on SQLite), and the examples run against either, so
this DAG schedules on the operator's ``AssetAlias``, which each load resolves to the table's asset. With one
known warehouse, schedule on the table itself (both forms are the same asset)::

    schedule=[Asset("postgres://db.example.com:5432/analytics/public/transcripts")]
    schedule=[brain_table_asset("brain_warehouse", "transcripts")]  # reads the connection when parsed
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, AssetAlias, task

from airflow_provider_brain.transfers.brain_to_sql import get_db_hook

# [START howto_brain_downstream_of_load]
with DAG(
    dag_id="brain_transcripts_downstream",
    # Every load through the brain_warehouse connection (BrainToSqlOperator's default alias).
    schedule=[AssetAlias("brain_to_sql:brain_warehouse")],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "example"],
):

    @task
    def count_transcripts(triggering_asset_events=None) -> int:
        """Which loads queued this run (counts only), and how many transcripts the table holds now."""
        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                print(f"{asset.uri}: {event.extra.get('assets')} assets loaded by {event.source_dag_id}")
        return get_db_hook("brain_warehouse").get_first("SELECT COUNT(*) FROM transcripts")[0]

    count_transcripts()
# [END howto_brain_downstream_of_load]
