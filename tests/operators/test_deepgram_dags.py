"""DeepgramTranscribeOperator in real DAG runs (``airflow dags test``): audio in a real S3 API (moto, server mode),
recognised by the local server's Deepgram dialect, results written to S3. One run of ``deepgram_runs`` per module,
a task group per case: deferred and mapped, every source in a worker, a try lost after its result was stored (and,
for test_deepgram_batch.py, a batch in a worker and presigned URLs from an upstream task)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, urlsplit

import jiwer
import pytest

from airflow_provider_brain.hooks.deepgram import DeepgramHook
from tests.fixtures.deepgram import deepgram_history
from tests.operators.test_transcribe_batch import task_output
from tests.operators.test_transcribe_dags import assert_succeeded

DAG_FILE = Path(__file__).parents[1] / "dags" / "deepgram_transcribe.py"
#: The DAG of the module's one run: a task group per case.
RUNS = "deepgram_runs"
WER_BOUND = 0.25
SUMMARY_KEYS = {"deepgram_result", "store_conn_id", "request_id", "duration", "audio_seconds", "word_count"}


def deepgram_connection_json(url: str, key: str, **extra: object) -> str:
    return json.dumps({"conn_type": "deepgram", "host": url, "password": key, "extra": extra})


class DeepgramDags:
    def __init__(self, cli: Any, env: dict[str, str], s3: Any, bucket: str) -> None:
        self.cli, self.env, self.s3, self.bucket = cli, env, s3, bucket
        # The requests the server's history held before: a worker that comes back to this module after another
        # (pytest-xdist's worksteal) sets the module's run up again, with the same DAG and so the same tags.
        with mock.patch.dict(os.environ, {"AIRFLOW_CONN_DEEPGRAM_DEFAULT": env["AIRFLOW_CONN_DEEPGRAM_DEFAULT"]}):
            self.earlier = {r["request_id"] for r in deepgram_history()}

    def tagged(self, tag: str) -> list[dict[str, Any]]:
        """The requests tagged ``tag`` that the server received since this set-up (its Deepgram connection must
        be set)."""
        new = [r for r in deepgram_history() if r["request_id"] not in self.earlier]
        return [r for r in new if tag in r["response"]["details"]["tags"]]

    def test(self, dag_id: str) -> str:
        result = self.cli.run("dags", "test", dag_id, extra_env=self.env, check=False)
        output = result.stdout + result.stderr
        assert_succeeded(result.returncode, output)
        return output

    def returns(self, dag_id: str, task_id: str) -> dict[int, dict[str, Any]]:
        """The return values of a task's instances in the last run, by map index."""
        with sqlite3.connect(self.cli.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT map_index, value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'",
                (dag_id, task_id),
            ).fetchall()
        return {index: json.loads(value) for index, value in rows}

    def stored(self, reference: dict[str, Any]) -> dict[str, Any]:
        location = reference["deepgram_result"]
        assert location.startswith(f"s3://{self.bucket}/deepgram-results/")
        key = location.removeprefix(f"s3://{self.bucket}/")
        data: dict[str, Any] = json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        return data


def deepgram_env(cli: Any, brain_server: Any, s3_server: Any, bucket: str, speech: Any) -> DeepgramDags:
    """The DAG file in the dags folder, three clips in ``bucket``, and the environment its runs need."""
    shutil.copy(DAG_FILE, cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    for i in range(3):
        client.upload_file(str(speech.file(i, fmt="mp3")), bucket, f"audio/clip-{i}.mp3")
    env = {
        "AIRFLOW_CONN_DEEPGRAM_DEFAULT": deepgram_connection_json(brain_server.url, brain_server.password),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "BRAIN_TEST_BUCKET": bucket,
        "BRAIN_TEST_LOCAL_PATH": str(speech.file(5)),
    }
    return DeepgramDags(cli, env, client, bucket)


@pytest.fixture
def deepgram_dags(airflow_cli, brain_server, s3_server, s3_bucket, speech, monkeypatch) -> DeepgramDags:
    """A bucket and environment of the test's own, for a DAG it runs itself."""
    dags = deepgram_env(airflow_cli, brain_server, s3_server, s3_bucket, speech)
    monkeypatch.setenv("AIRFLOW_CONN_DEEPGRAM_DEFAULT", dags.env["AIRFLOW_CONN_DEEPGRAM_DEFAULT"])
    return dags


@pytest.fixture(scope="module")
def deepgram_run_once(airflow_cli, brain_server, s3_server, speech) -> tuple[DeepgramDags, str]:
    """The module's one run of ``deepgram_runs`` (a task group per case), over a bucket of its own."""
    bucket = f"brain-test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    dags = deepgram_env(airflow_cli, brain_server, s3_server, bucket, speech)
    return dags, dags.test(RUNS)


@pytest.fixture
def deepgram_runs(deepgram_run_once: tuple[DeepgramDags, str], monkeypatch) -> tuple[DeepgramDags, str]:
    """The module's run, with the Deepgram connection set here too (the checks read the history back)."""
    monkeypatch.setenv("AIRFLOW_CONN_DEEPGRAM_DEFAULT", deepgram_run_once[0].env["AIRFLOW_CONN_DEEPGRAM_DEFAULT"])
    return deepgram_run_once


def check_result(stored: dict[str, Any], reference: dict[str, Any], sentence: str) -> None:
    """The stored answer is the request the reference names, with the sentence's words; the reference holds none."""
    assert stored["metadata"]["request_id"] == reference["request_id"]
    words = stored["results"]["channels"][0]["alternatives"][0]["words"]
    assert jiwer.wer(sentence, " ".join(w["word"] for w in words)) <= WER_BOUND
    assert reference["word_count"] == len(words) and reference["duration"] == stored["metadata"]["duration"] > 0
    assert SUMMARY_KEYS <= set(reference) and "transcript" not in reference and "words" not in reference


def test_deferred_and_mapped_over_s3_files(deepgram_runs: tuple[DeepgramDags, str], speech: Any) -> None:
    dags, output = deepgram_runs
    mine = task_output(output, "deferred.transcribe")
    assert "running trigger in line" in mine.lower() and mine.count("to Deepgram from the triggerer") == 3
    references = dags.returns(RUNS, "deferred.transcribe")
    assert sorted(references) == [0, 1, 2]
    hook = DeepgramHook()
    for index, reference in references.items():
        assert reference["source"] == f"s3://{dags.bucket}/audio/clip-{index}.mp3"
        stored = dags.stored(reference)
        check_result(stored, reference, speech.sentences[index])
        # No transcript in the task logs: the one recognised (it differs from the sentence read aloud).
        transcript = stored["results"]["channels"][0]["alternatives"][0]["transcript"]
        assert len(transcript.split()) >= 3 and transcript not in output
        request = hook.get_request(reference["request_id"])
        assert request["response"]["details"]["tags"] == [f"{RUNS}.deferred.transcribe"]
    assert len({r["request_id"] for r in references.values()}) == 3


def test_every_source_in_a_worker(deepgram_runs: tuple[DeepgramDags, str], speech: Any) -> None:
    dags, _ = deepgram_runs
    for task_id, index in (("stream", 0), ("presign", 1), ("local", 5)):
        [reference] = dags.returns(RUNS, f"worker.{task_id}").values()
        check_result(dags.stored(reference), reference, speech.sentences[index])
    [local] = dags.returns(RUNS, "worker.local").values()
    stored = dags.stored(local)
    assert stored["metadata"]["tags"] == [f"{RUNS}.worker.local", "local-file"]
    assert stored["results"]["channels"][0]["alternatives"][0]["words"][-1]["punctuated_word"].endswith(".")


def test_a_retry_returns_the_stored_result_without_a_second_request(
    deepgram_runs: tuple[DeepgramDags, str], speech: Any
) -> None:
    dags, output = deepgram_runs
    mine = task_output(output, "retry.transcribe")
    assert "simulated crash after storing" in mine and "(an earlier try stored it)" in mine
    [reference] = dags.returns(RUNS, "retry.transcribe").values()
    check_result(dags.stored(reference), reference, speech.sentences[2])
    retried = dags.tagged(f"{RUNS}.retry.transcribe")
    assert [r["request_id"] for r in retried] == [reference["request_id"]]


def test_worker_batch_over_s3_and_a_local_file(deepgram_runs: tuple[DeepgramDags, str], speech: Any) -> None:
    dags, _ = deepgram_runs
    [references] = dags.returns(RUNS, "batch_worker.batch").values()
    for reference, index in zip(references, (0, 5), strict=True):
        check_result(dags.stored(reference), reference, speech.sentences[index])
    assert len(dags.tagged(f"{RUNS}.batch_worker.batch")) == 2


def test_presigned_urls_are_sent_whole_but_never_rendered(deepgram_runs: tuple[DeepgramDags, str], speech: Any) -> None:
    """audio_url (deferred) and a batch's sources from an upstream task's presigned URLs: transcribed, while the
    rendered fields Airflow stores for the Rendered Template tab hold none of their signatures or credentials."""
    dags, output = deepgram_runs
    urls = dags.returns(RUNS, "signed.presign")[-1]
    secrets = [v for url in urls for k, v in parse_qsl(urlsplit(url).query) if "signature" in k.lower()]
    assert len(secrets) == 2
    [single] = dags.returns(RUNS, "signed.single").values()
    [batch] = dags.returns(RUNS, "signed.batch").values()
    for reference, index in ((single, 0), (batch[0], 0), (batch[1], 1)):
        check_result(dags.stored(reference), reference, speech.sentences[index])
        assert "?" not in reference["source"]
    with sqlite3.connect(dags.cli.home / "airflow.db") as db:
        rendered = db.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ?", (RUNS,)
        ).fetchall()
    assert {task_id for task_id, _ in rendered} >= {"signed.single", "signed.batch"}
    for secret in secrets:
        assert all(secret not in fields and quote(secret, safe="") not in fields for _, fields in rendered)
        # The log shows them only where the DAG's own presign task returns them ("Returned value was: ...").
        logged = "\n".join(line for line in output.splitlines() if "Returned value was" not in line)
        assert secret not in logged and quote(secret, safe="") not in logged
