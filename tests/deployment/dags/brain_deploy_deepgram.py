"""The DAG the Deepgram deployment test runs (#27): the per-file Deepgram operator, deferred, over S3 files.

``brain_deploy_deepgram`` takes its audio from the run's conf (``{"s3_uris": [...]}``). The stack's local server
speaks Deepgram's dialect on the same port (the ``deepgram_default`` connection). Each mapped ``transcribe`` sends
its file from the triggerer with a presigned PUT URL of its result's location as the callback, and waits there for
the result: no worker slot is held while Deepgram works, and a triggerer restarted meanwhile sends nothing twice.
The results go to the warehouse like Brain's.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_brain.operators.deepgram import DeepgramTranscribeOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

with DAG(
    dag_id="brain_deploy_deepgram",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=64,
    tags=["deepgram", "deployment-test"],
):

    @task
    def audio_uris(dag_run=None) -> list[str]:
        return list(dag_run.conf["s3_uris"])

    transcribe = DeepgramTranscribeOperator.partial(
        task_id="transcribe",
        output_uri="s3://deploy-audio/deepgram-results/",
        deferrable=True,
        poll_interval=1,
        timeout=600,
    ).expand(s3_uri=audio_uris())
    BrainToSqlOperator(
        task_id="load_warehouse",
        asset_ids=transcribe.output,
        conn_id="brain_warehouse",
        table="deploy_deepgram_transcripts",
        words_table=None,
    )
