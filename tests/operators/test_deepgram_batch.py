"""DeepgramTranscribeBatchOperator in real DAG runs (``airflow dags test``, moto S3, the local server's Deepgram
dialect): deferred over S3 files with one missing (its reason reported, the others returned), run as
``example_dags/deepgram_s3_batch.py``, the example the Deepgram how-to quotes; and in a worker over an S3 object and
a local file."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.deepgram import DeepgramHook
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


def tagged(tag: str) -> list[dict[str, Any]]:
    hook = DeepgramHook()
    path = f"/v1/projects/{hook.project_id()}/requests"
    history = hook.transport.request(Call("GET", path, params={"limit": "1000"}))["requests"]
    return [r for r in history if tag in r["response"]["details"]["tags"]]


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
    sent = {r["request_id"] for r in tagged("deepgram_s3_batch.transcribe")}
    [missing] = sent - {r["request_id"] for r in references}
    assert len(sent) == 4 and missing in failed[f"s3://{bucket}/audio/missing.wav"]


def test_worker_batch_over_s3_and_a_local_file(deepgram_dags: DeepgramDags, speech: Any) -> None:
    deepgram_dags.test("deepgram_batch_worker")
    [references] = deepgram_dags.returns("deepgram_batch_worker", "batch").values()
    for reference, index in zip(references, (0, 5), strict=True):
        check_result(deepgram_dags.stored(reference), reference, speech.sentences[index])
    assert len(tagged("deepgram_batch_worker.batch")) == 2


def test_presigned_urls_are_sent_whole_but_never_rendered(deepgram_dags: DeepgramDags, speech: Any) -> None:
    """audio_url (deferred) and a batch's sources from an upstream task's presigned URLs: transcribed, while the
    rendered fields Airflow stores for the Rendered Template tab hold none of their signatures or credentials."""
    output = deepgram_dags.test("deepgram_signed")
    urls = deepgram_dags.returns("deepgram_signed", "presign")[-1]
    secrets = [v for url in urls for k, v in parse_qsl(urlsplit(url).query) if "signature" in k.lower()]
    assert len(secrets) == 2
    [single] = deepgram_dags.returns("deepgram_signed", "single").values()
    [batch] = deepgram_dags.returns("deepgram_signed", "batch").values()
    for reference, index in ((single, 0), (batch[0], 0), (batch[1], 1)):
        check_result(deepgram_dags.stored(reference), reference, speech.sentences[index])
        assert "?" not in reference["source"]
    with sqlite3.connect(deepgram_dags.cli.home / "airflow.db") as db:
        rendered = db.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = 'deepgram_signed'"
        ).fetchall()
    assert {task_id for task_id, _ in rendered} >= {"single", "batch"}
    for secret in secrets:
        assert all(secret not in fields and quote(secret, safe="") not in fields for _, fields in rendered)
        # The log shows them only where the DAG's own presign task returns them ("Returned value was: ...").
        logged = "\n".join(line for line in output.splitlines() if "Returned value was" not in line)
        assert secret not in logged and quote(secret, safe="") not in logged
