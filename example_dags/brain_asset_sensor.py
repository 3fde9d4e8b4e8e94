"""Load the transcripts of audio that was submitted to Brain outside Airflow, once Brain has finished them.

    asset_ids (checks the ids passed in)  ->  wait (one deferred sensor per asset)  ->  load_warehouse

A script, a web app or a phone system uploads the audio with ``async=true`` and keeps the asset ids Brain
returns; a DAG run receives them as the ``asset_ids`` param. ``BrainAssetSensor`` waits for one asset, so
it is mapped over the ids: each waits in the triggerer (no worker slot) and fails with Brain's reason if
its asset failed. To take the ids from an upstream task instead (one that reads them from a queue or a
table), replace ``asset_ids`` with that task; it must return a list of ids. A run without ids, or with
anything but a list of ids, fails before any task starts, naming the param.

Connections: ``brain_default`` (Brain) and ``brain_warehouse`` (any common-sql database). Run it with
``airflow dags test brain_asset_sensor -c '{"asset_ids": ["4f1c9a7e2b3d5c60", "9e8d7c6b5a493827"]}'``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_provider_brain.models import ASSET_ID_PATTERN, validate_asset_id
from airflow_provider_brain.sensors.asset import BrainAssetSensor
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

with DAG(
    dag_id="brain_asset_sensor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "example"],
    params={
        "asset_ids": Param(
            type="array",
            items={"type": "string", "pattern": f"^{ASSET_ID_PATTERN.pattern}$"},
            minItems=1,
            description="Ids of Brain assets submitted outside Airflow (16 hexadecimal digits each)",
        ),
    },
):
    # [START howto_sensor_brain_asset]
    @task
    def asset_ids(params: dict | None = None) -> list[str]:
        """The run's asset ids, checked here so that bad input fails once, naming the param."""
        ids = params.get("asset_ids")
        if not isinstance(ids, list) or not ids:
            raise ValueError(f"Param 'asset_ids' must be a non-empty list of Brain asset ids, got {ids!r}")
        for position, asset_id in enumerate(ids):
            try:
                validate_asset_id(asset_id)
            except ValueError as err:
                raise ValueError(f"Param 'asset_ids', item {position}: {err}") from None
        return list(dict.fromkeys(ids))

    ids = asset_ids()
    wait = BrainAssetSensor.partial(task_id="wait", deferrable=True, poke_interval=5, timeout=6 * 3600).expand(
        asset_id=ids
    )
    wait >> BrainToSqlOperator(task_id="load_warehouse", asset_ids=ids, conn_id="brain_warehouse")
    # [END howto_sensor_brain_asset]
