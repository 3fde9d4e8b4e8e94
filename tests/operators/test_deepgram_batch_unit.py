"""DeepgramTranscribeBatchOperator without a DAG run: what Airflow does to an operator outside ``execute``."""

from __future__ import annotations

import copy

import pendulum
from airflow.sdk import DAG

from airflow_provider_brain.operators.deepgram_batch import DeepgramTranscribeBatchOperator

OUT = "s3://lake/deepgram/"


def test_the_operator_can_be_deep_copied_and_its_dag_subset() -> None:
    """Clearing a task in the UI builds ``dag.partial_subset``, which deep-copies every operator it keeps."""
    with DAG("batch_copy", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        operator = DeepgramTranscribeBatchOperator(task_id="batch", sources=["s3://calls/a.wav"], output_uri=OUT)
    copied = copy.deepcopy(operator)
    assert copied.sources == ["s3://calls/a.wav"] and copied.output_uri == OUT
    subset = dag.partial_subset(task_ids=["batch"])
    assert subset.get_task("batch").sources == ["s3://calls/a.wav"]
