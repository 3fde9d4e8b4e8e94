"""A DAG the deployment tests run to make loads report their first asset event at the same moment.

``brain_deploy_first_write`` transcribes the run's files (``{"s3_uris": [...]}``) and loads them into the table
the conf names (``"table"``: a name no load has written before). Its load waits, once its rows are in, until
``"barrier"`` loads of the runs started together have got that far (each writes a file under
``<signal dir>/<table>/``), then records its asset events: every load's success reaches the api-server within
milliseconds of the others', the first time Airflow sees that table's asset. The load has a retry (a load is
idempotent), so a run that still fails shows that Airflow did not retry it.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

SIGNAL_DIR = Path(os.environ.get("BRAIN_DEPLOY_SIGNAL_DIR", "/tmp/brain-deploy-signals"))
BARRIER_TIMEOUT = 240  # seconds: the other runs' files are still being transcribed


class BarrierLoadOperator(BrainToSqlOperator):
    """``BrainToSqlOperator`` that records its writes only once ``conf["barrier"]`` loads have loaded."""

    def _record_writes(self, context, *args, **kwargs):
        conf = context["dag_run"].conf or {}
        waiting = SIGNAL_DIR / "first-write" / self.table
        waiting.mkdir(parents=True, exist_ok=True)
        (waiting / context["dag_run"].run_id.replace(":", "_").replace("+", "_")).touch()
        deadline = time.monotonic() + BARRIER_TIMEOUT
        while len(list(waiting.iterdir())) < int(conf.get("barrier", 1)) and time.monotonic() < deadline:
            time.sleep(0.005)
        return super()._record_writes(context, *args, **kwargs)


with DAG(
    dag_id="brain_deploy_first_write",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "deployment-test"],
):

    @task
    def audio_uris(dag_run=None) -> list[str]:
        return list(dag_run.conf["s3_uris"])

    transcribe = BrainTranscribeOperator.partial(task_id="transcribe", deferrable=True, poll_interval=2).expand(
        s3_uri=audio_uris()
    )
    BarrierLoadOperator(
        task_id="load_warehouse",
        asset_ids=transcribe.output,
        conn_id="brain_warehouse",
        table="{{ dag_run.conf['table'] }}",
        words_table=None,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )
