"""The Brain quick guide's first example as a DAG: upload a file from the worker and wait for its transcript.

    curl -u USER:PASS -X POST -T /path/to/file.mp3 -H 'Content-type: application/octet-stream' \\
        https://brain.deepgram.com/speech:recognize

Connection: ``brain_default`` (a ``brain`` connection). The file must exist on the worker that runs
the task; it is streamed, never read whole into memory. Choose it with
``airflow dags test brain_local_file -c '{"path": "/data/call.mp3"}'``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator

with DAG(
    dag_id="brain_local_file",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "example"],
    params={"path": Param("/path/to/file.mp3", type="string", description="Audio file on the worker")},
):
    # [START howto_operator_brain_transcribe_local_file]
    # deferrable=False: the worker uploads, then polls until the transcript is done (the guide's
    # synchronous call). The return value (XCom) is a summary: asset id, status, duration, word count.
    BrainTranscribeOperator(task_id="transcribe", local_path="{{ params.path }}", deferrable=False, poll_interval=2)
    # [END howto_operator_brain_transcribe_local_file]
