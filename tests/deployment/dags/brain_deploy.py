"""DAGs the deployment tests run on the real stack (``deploy/stack.py``): mapped, deferrable transcription.

``brain_deploy_mapped`` talks to the Brain server directly (``brain_default``); ``brain_deploy_proxied``
through the test's fault proxy (``brain_proxied``). Both take their audio from the run's conf
(``{"s3_uris": [...]}``), transcribe each file in a mapped task that waits in the triggerer, and load the
transcripts into the Postgres warehouse.

``pause_after_submit`` (a list of map indexes in the conf) is the test's hook for killing a worker at the
worst moment: on its first try, that task instance writes ``<signal dir>/<map index>.json`` (its pid and
the submission) right after the submit call returned, before the asset id reaches the task state store,
and then sleeps until the test kills its worker.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

SIGNAL_DIR = Path(os.environ.get("BRAIN_DEPLOY_SIGNAL_DIR", "/tmp/brain-deploy-signals"))
#: The longest backoff between two retries through the fault proxy (the hook's ``retry_backoff_max``, 60 s by default):
#: a task sees the end of the proxy's 30 s outage within this long, so the 503 test lasts about as long as its
#: outage instead of as long as the unluckiest of twelve jittered backoffs (61 to 96 s with 60).
PROXIED_BACKOFF_MAX = 8.0


class PauseAfterSubmitOperator(BrainTranscribeOperator):
    """``BrainTranscribeOperator`` that can stop dead right after submitting (see the module docstring)."""

    @cached_property
    def hook(self) -> BrainHook:
        if self.brain_conn_id == "brain_proxied":
            return BrainHook(brain_conn_id=self.brain_conn_id, retry_backoff_max=PROXIED_BACKOFF_MAX)
        return BrainHook(brain_conn_id=self.brain_conn_id)

    def submit_job(self, context):
        submitted = super().submit_job(context)
        ti = context["ti"]
        conf = context["dag_run"].conf or {}
        if ti.try_number == 1 and ti.map_index in conf.get("pause_after_submit", []):
            out = SIGNAL_DIR / context["dag_run"].run_id.replace(":", "_").replace("+", "_")
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{ti.map_index}.json").write_text(json.dumps({"pid": os.getpid(), "submitted": str(submitted)}))
            time.sleep(600)
        return submitted


for dag_id, conn_id in (("brain_deploy_mapped", "brain_default"), ("brain_deploy_proxied", "brain_proxied")):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_tasks=32,
        tags=["brain", "deployment-test"],
    ):

        @task
        def audio_uris(dag_run=None) -> list[str]:
            return list(dag_run.conf["s3_uris"])

        transcribe = PauseAfterSubmitOperator.partial(
            task_id="transcribe",
            brain_conn_id=conn_id,
            deferrable=True,
            poll_interval=2,
            retries=2,
            retry_delay=timedelta(seconds=2),
        ).expand(s3_uri=audio_uris())
        BrainToSqlOperator(
            task_id="load_warehouse",
            asset_ids=transcribe.output,
            conn_id="brain_warehouse",
            brain_conn_id=conn_id,
            table="deploy_transcripts",
            words_table=None,
        )
