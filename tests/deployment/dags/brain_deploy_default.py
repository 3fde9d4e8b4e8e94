"""The DAG the deployment test of the default ``start_from_trigger`` runs (#24): no ``start_from_trigger`` anywhere.

``brain_deploy_default`` takes its audio from the run's conf (``{"s3_uris": [...], "hooked_uri": ...}``). The
mapped ``transcribe`` is a plain deferrable task: on Airflow 3.3 it starts, submits, waits and ends in the
triggerer by default. ``hooked`` is the same task with a ``pre_execute``, which only a worker runs: by
default it keeps the worker path, and its log says why. The transcripts of both go to the warehouse.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

#: What ``hooked``'s ``pre_execute`` writes to its log: proof it ran in a worker.
PRE_EXECUTE_RAN = "pre_execute of hooked ran"


def say_pre_execute_ran(context) -> None:
    """A ``pre_execute`` hook, as a DAG would set one (to check an input, say)."""
    context["task"].log.info(PRE_EXECUTE_RAN)


with DAG(
    dag_id="brain_deploy_default",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=64,
    tags=["brain", "deployment-test"],
):

    @task
    def audio_uris(dag_run=None) -> list[str]:
        return list(dag_run.conf["s3_uris"])

    # [START howto_operator_brain_start_from_trigger_default]
    transcribe = BrainTranscribeOperator.partial(
        task_id="transcribe", deferrable=True, poll_interval=2, timeout=600
    ).expand(s3_uri=audio_uris())
    # [END howto_operator_brain_start_from_trigger_default]
    hooked = BrainTranscribeOperator(
        task_id="hooked",
        s3_uri="{{ dag_run.conf['hooked_uri'] }}",
        deferrable=True,
        poll_interval=2,
        timeout=600,
        pre_execute=say_pre_execute_ran,
    )
    BrainToSqlOperator(
        task_id="load_warehouse",
        asset_ids=transcribe.output,
        conn_id="brain_warehouse",
        table="deploy_transcripts",
        words_table=None,
    )
