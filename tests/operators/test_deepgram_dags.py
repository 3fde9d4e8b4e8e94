"""DeepgramTranscribeOperator in real DAG runs (``airflow dags test``): audio in a real S3 API (moto, server mode),
recognised by the local server's Deepgram dialect, results written to S3. Deferred and mapped, then every source
in a worker, then a try lost after its result was stored."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import jiwer
import pytest

from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.deepgram import DeepgramHook
from tests.operators.test_transcribe_dags import assert_succeeded

DAG_FILE = Path(__file__).parents[1] / "dags" / "deepgram_transcribe.py"
WER_BOUND = 0.25
SUMMARY_KEYS = {"deepgram_result", "store_conn_id", "request_id", "duration", "audio_seconds", "word_count"}


def deepgram_connection_json(url: str, key: str, **extra: object) -> str:
    return json.dumps({"conn_type": "deepgram", "host": url, "password": key, "extra": extra})


class DeepgramDags:
    def __init__(self, cli: Any, env: dict[str, str], s3: Any, bucket: str) -> None:
        self.cli, self.env, self.s3, self.bucket = cli, env, s3, bucket

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


@pytest.fixture
def deepgram_dags(airflow_cli, brain_server, s3_server, s3_bucket, speech, monkeypatch) -> DeepgramDags:
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    for i in range(3):
        client.upload_file(str(speech.file(i, fmt="mp3")), s3_bucket, f"audio/clip-{i}.mp3")
    connection = deepgram_connection_json(brain_server.url, brain_server.password)
    env = {
        "AIRFLOW_CONN_DEEPGRAM_DEFAULT": connection,
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "BRAIN_TEST_BUCKET": s3_bucket,
        "BRAIN_TEST_LOCAL_PATH": str(speech.file(5)),
    }
    monkeypatch.setenv("AIRFLOW_CONN_DEEPGRAM_DEFAULT", connection)
    return DeepgramDags(airflow_cli, env, client, s3_bucket)


def check_result(stored: dict[str, Any], reference: dict[str, Any], sentence: str) -> None:
    """The stored answer is the request the reference names, with the sentence's words; the reference holds none."""
    assert stored["metadata"]["request_id"] == reference["request_id"]
    words = stored["results"]["channels"][0]["alternatives"][0]["words"]
    assert jiwer.wer(sentence, " ".join(w["word"] for w in words)) <= WER_BOUND
    assert reference["word_count"] == len(words) and reference["duration"] == stored["metadata"]["duration"] > 0
    assert SUMMARY_KEYS <= set(reference) and "transcript" not in reference and "words" not in reference


def test_deferred_and_mapped_over_s3_files(deepgram_dags: DeepgramDags, speech: Any) -> None:
    output = deepgram_dags.test("deepgram_deferred")
    assert "running trigger in line" in output.lower() and output.count("to Deepgram from the triggerer") == 3
    references = deepgram_dags.returns("deepgram_deferred", "transcribe")
    assert sorted(references) == [0, 1, 2]
    hook = DeepgramHook()
    for index, reference in references.items():
        assert reference["source"] == f"s3://{deepgram_dags.bucket}/audio/clip-{index}.mp3"
        stored = deepgram_dags.stored(reference)
        check_result(stored, reference, speech.sentences[index])
        # No transcript in the task logs: the one recognised (it differs from the sentence read aloud).
        transcript = stored["results"]["channels"][0]["alternatives"][0]["transcript"]
        assert len(transcript.split()) >= 3 and transcript not in output
        request = hook.get_request(reference["request_id"])
        assert request["response"]["details"]["tags"] == ["deepgram_deferred.transcribe"]
    assert len({r["request_id"] for r in references.values()}) == 3


def test_every_source_in_a_worker(deepgram_dags: DeepgramDags, speech: Any) -> None:
    deepgram_dags.test("deepgram_worker")
    for task_id, index in (("stream", 0), ("presign", 1), ("local", 5)):
        [reference] = deepgram_dags.returns("deepgram_worker", task_id).values()
        check_result(deepgram_dags.stored(reference), reference, speech.sentences[index])
    [local] = deepgram_dags.returns("deepgram_worker", "local").values()
    stored = deepgram_dags.stored(local)
    assert stored["metadata"]["tags"] == ["deepgram_worker.local", "local-file"]
    assert stored["results"]["channels"][0]["alternatives"][0]["words"][-1]["punctuated_word"].endswith(".")


def test_a_retry_returns_the_stored_result_without_a_second_request(deepgram_dags: DeepgramDags, speech: Any) -> None:
    output = deepgram_dags.test("deepgram_retry")
    assert "simulated crash after storing" in output and "(an earlier try stored it)" in output
    [reference] = deepgram_dags.returns("deepgram_retry", "transcribe").values()
    check_result(deepgram_dags.stored(reference), reference, speech.sentences[2])
    hook = DeepgramHook()
    path = f"/v1/projects/{hook.project_id()}/requests"
    history = hook.transport.request(Call("GET", path, params={"limit": "1000"}))["requests"]
    tagged = [r for r in history if r["response"]["details"]["tags"] == ["deepgram_retry.transcribe"]]
    assert [r["request_id"] for r in tagged] == [reference["request_id"]]
