"""DAGs the deployment tests run to prove ``start_from_trigger``: transcribe tasks that never take a worker slot.

``brain_deploy_trigger`` is ``brain_deploy_mapped`` started in the triggerer: its audio comes from the
run's conf through an upstream task (``{"s3_uris": [...]}``), each file is transcribed by a mapped
``BrainTranscribeOperator(start_from_trigger=True)`` and the transcripts are loaded into the warehouse from
the mapped task's XComs. No retries: a failed file fails its task once, with the server's reason.

``brain_deploy_trigger_retried`` is the same through the test's fault proxy (``brain_proxied``), with one
retry: a try the proxy fails after it submitted is retried in the triggerer and must resume its asset.

``brain_deploy_trigger_forms`` checks the other ways a value reaches the trigger per task instance: a
literal list (files under ``LITERAL_PREFIX``, uploaded by the test) and a templated, unmapped source; a
downstream task checks that every return value arrived as a dict.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

AUDIO_BUCKET = "deploy-audio"
LITERAL_PREFIX = "start-from-trigger-literal"
LITERAL_URIS = [f"s3://{AUDIO_BUCKET}/{LITERAL_PREFIX}/{i}.wav" for i in range(3)]

with DAG(
    dag_id="brain_deploy_trigger",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=64,
    tags=["brain", "deployment-test"],
):

    @task
    def audio_uris(dag_run=None) -> list[str]:
        return list(dag_run.conf["s3_uris"])

    # [START howto_operator_brain_start_from_trigger]
    transcribe = BrainTranscribeOperator.partial(
        task_id="transcribe", start_from_trigger=True, deferrable=True, poll_interval=2, timeout=600
    ).expand(s3_uri=audio_uris())
    # [END howto_operator_brain_start_from_trigger]
    BrainToSqlOperator(
        task_id="load_warehouse",
        asset_ids=transcribe.output,
        conn_id="brain_warehouse",
        table="deploy_transcripts",
        words_table=None,
    )

with DAG(
    dag_id="brain_deploy_trigger_retried",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "deployment-test"],
):

    @task
    def retried_uris(dag_run=None) -> list[str]:
        return list(dag_run.conf["s3_uris"])

    BrainTranscribeOperator.partial(
        task_id="transcribe",
        brain_conn_id="brain_proxied",
        start_from_trigger=True,
        poll_interval=2,
        timeout=600,
        retries=1,
        retry_delay=timedelta(seconds=2),
    ).expand(s3_uri=retried_uris())

with DAG(
    dag_id="brain_deploy_trigger_forms",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "deployment-test"],
):
    literal = BrainTranscribeOperator.partial(
        task_id="literal", start_from_trigger=True, poll_interval=2, timeout=600
    ).expand(s3_uri=LITERAL_URIS)
    templated = BrainTranscribeOperator(
        task_id="templated",
        s3_uri="{{ dag_run.conf['one'] }}",
        metadata={"run": "{{ run_id }}"},
        start_from_trigger=True,
        poll_interval=2,
        timeout=600,
    )

    @task
    def check(literal_results, templated_result) -> dict:
        """Fail unless every return value is the operator's dict, for the file its task instance named."""
        results = [*literal_results, templated_result]
        kinds = sorted({type(r).__name__ for r in results})
        if kinds != ["dict"]:
            raise TypeError(f"start_from_trigger return values arrived as {kinds}, not dicts")
        return {"sources": [r["source"] for r in results], "statuses": [r["status"] for r in results]}

    check(literal.output, templated.output)

# cancel_on_kill (the default): a user who ends a waiting task has its asset deleted on Brain, whether the task
# waits deferred, in a worker, or started in the triggerer. One file from the run's conf ({"s3_uri": ...}).
# The deferred one asks for the worker path: by default a deferrable task starts in the triggerer on 3.3.
for dag_id, waiting in (
    ("brain_deploy_cancel_deferred", {"deferrable": True, "start_from_trigger": False}),
    ("brain_deploy_cancel_worker", {"deferrable": False}),
    ("brain_deploy_cancel_triggerer", {"start_from_trigger": True}),
):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["brain", "deployment-test"],
    ):
        BrainTranscribeOperator(
            task_id="transcribe", s3_uri="{{ dag_run.conf['s3_uri'] }}", poll_interval=1, timeout=900, **waiting
        )
