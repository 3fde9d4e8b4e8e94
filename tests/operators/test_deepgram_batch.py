"""DeepgramTranscribeBatchOperator in real DAG runs (``airflow dags test``, moto S3, the local server's Deepgram
dialect): deferred over S3 files with one missing (its reason reported, the others returned), run as
``example_dags/deepgram_s3_batch.py``, the example the Deepgram how-to quotes. The batch in a worker over an S3
object and a local file, and over presigned URLs from an upstream task, are groups of test_deepgram_dags.py's run."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from tests.operators.test_deepgram_dags import DeepgramDags, check_result
from tests.operators.test_deepgram_dags import deepgram_dags as deepgram_dags  # the fixture
from tests.operators.test_transcribe_dags import assert_succeeded

EXAMPLE = Path(__file__).parents[2] / "example_dags" / "deepgram_s3_batch.py"


def failed_xcom(dags: DeepgramDags, dag_id: str, task_id: str = "batch") -> dict[str, str]:
    with sqlite3.connect(dags.cli.home / "airflow.db") as db:
        [(value,)] = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'failed'", (dag_id, task_id)
        ).fetchall()
    return dict(json.loads(value))


def test_deferred_batch_with_a_missing_file(deepgram_dags: DeepgramDags, speech: Any) -> None:
    """The example DAG, given three clips and a missing object: the clips stored and returned in order, the
    missing one reported with its reason, one tagged request per file."""
    shutil.copy(EXAMPLE, deepgram_dags.cli.dags_folder / EXAMPLE.name)
    bucket = deepgram_dags.bucket
    conf = {
        "sources": [*(f"s3://{bucket}/audio/clip-{i}.mp3" for i in range(3)), f"s3://{bucket}/audio/missing.wav"],
        "results_uri": f"s3://{bucket}/deepgram-results/",
    }
    result = deepgram_dags.cli.run(
        "dags", "test", "deepgram_s3_batch", "-c", json.dumps(conf), extra_env=deepgram_dags.env, check=False
    )
    output = result.stdout + result.stderr
    assert_succeeded(result.returncode, output)
    assert "running trigger in line" in output.lower(), output[-3000:]
    assert "Sending 4 file(s) to Deepgram, 2 at a time" in output, output[-3000:]
    [references] = deepgram_dags.returns("deepgram_s3_batch", "transcribe").values()
    assert [r["source"] for r in references] == [f"s3://{bucket}/audio/clip-{i}.mp3" for i in range(3)]
    for index, reference in enumerate(references):
        check_result(deepgram_dags.stored(reference), reference, speech.sentences[index])
    failed = failed_xcom(deepgram_dags, "deepgram_s3_batch", "transcribe")
    assert list(failed) == [f"s3://{bucket}/audio/missing.wav"] and "404" in failed[f"s3://{bucket}/audio/missing.wav"]
    # One request per file: the missing object's was accepted (results come by callback) and failed when Deepgram
    # fetched it; its reason names that request.
    sent = {r["request_id"] for r in deepgram_dags.tagged("deepgram_s3_batch.transcribe")}
    [missing] = sent - {r["request_id"] for r in references}
    assert len(sent) == 4 and missing in failed[f"s3://{bucket}/audio/missing.wav"]
