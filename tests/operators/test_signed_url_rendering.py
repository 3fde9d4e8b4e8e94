"""Presigned URLs in real DAG runs: the tasks submit them whole, but the rendered fields Airflow stores for the
Rendered Template tab (``rendered_task_instance_fields``) hold no signature, credential or token.

An upstream task presigns objects in moto's S3 during the run; the single, mapped-and-deferred and batch
transcribe operators take the URLs from its XCom (the templated field renders them), and the local Brain
server downloads and transcribes them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import jiwer
import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.sources import public_url
from tests.fixtures.connections import brain_connection_json
from tests.operators.test_transcribe_dags import DagRunner, assert_succeeded

DAG_FILE = Path(__file__).parents[1] / "dags" / "signed_urls.py"
KEYS = ["signed/one.wav", "signed/two.wav"]
WER_BOUND = 0.25


@pytest.fixture
def runner(airflow_cli, brain_server, s3_server, s3_bucket, speech, monkeypatch):
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    for index, key in enumerate(KEYS):
        client.upload_file(str(speech.file(index)), s3_bucket, key)
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "BRAIN_TEST_BUCKET": s3_bucket,
        "BRAIN_TEST_KEYS": ",".join(KEYS),
    }
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    return DagRunner(airflow_cli, env)


def stored(runner: DagRunner, dag_id: str, sql: str) -> list[tuple]:
    with sqlite3.connect(runner.cli.home / "airflow.db") as db:
        return db.execute(sql, (dag_id,)).fetchall()


def presigned_urls(runner: DagRunner, dag_id: str) -> list[str]:
    """What the upstream task presigned in the last run of ``dag_id`` (its XCom)."""
    ((value,),) = stored(
        runner,
        dag_id,
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'presign' AND key = 'return_value' "
        "ORDER BY timestamp DESC LIMIT 1",
    )
    urls = json.loads(value)
    assert len(urls) == len(KEYS) and all(urlsplit(url).query for url in urls)
    return urls


def rendered_fields(runner: DagRunner, dag_id: str) -> dict[int, dict]:
    """The transcribe task's stored rendered fields, by map index."""
    rows = stored(
        runner,
        dag_id,
        "SELECT map_index, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ? "
        "AND task_id = 'transcribe'",
    )
    return {map_index: json.loads(fields) for map_index, fields in rows}


def secrets_of(url: str) -> list[str]:
    """The values a presigned URL must not show: its signature, its credential (the access key id), any token."""
    found = [
        value
        for name, value in parse_qsl(urlsplit(url).query)
        if any(word in name.lower() for word in ("signature", "credential", "token", "accesskeyid"))
    ]
    assert any("signature" in name.lower() for name, _ in parse_qsl(urlsplit(url).query)), url
    return found


def assert_hidden(text: str, urls: list[str]) -> None:
    for url in urls:
        for secret in secrets_of(url):
            assert secret not in text and quote(secret, safe="") not in text, secret
        # What the tab still shows: where the audio is.
        assert public_url(url) in text


def assert_transcribed(urls: list[str], speech) -> None:
    """Each URL was submitted whole (the server could download it) and transcribed."""
    hook = BrainHook()
    by_source = {a.metadata.get("source"): a for a in hook.list_assets(include_unfinished=True)}
    for index, url in enumerate(urls):
        asset = hook.get_asset(by_source[public_url(url)].asset_id)
        assert asset.is_done, asset
        assert jiwer.wer(speech.text([index]).lower(), asset.transcript) <= WER_BOUND


def test_a_templated_audio_url_is_stored_without_its_signature(runner, speech):
    code, output = runner.test("brain_signed_url")
    assert_succeeded(code, output)
    urls = presigned_urls(runner, "brain_signed_url")

    fields = rendered_fields(runner, "brain_signed_url")
    assert list(fields) == [-1]
    assert fields[-1]["audio_url"].startswith(public_url(urls[0]) + "?")
    assert_hidden(json.dumps(fields), urls[:1])
    assert_transcribed(urls[:1], speech)


@pytest.mark.parametrize("dag_id", ["brain_signed_url_deferred_mapped", "brain_signed_url_resumed"])
def test_mapped_deferred_tasks_store_no_signature(runner, speech, dag_id):
    code, output = runner.test(dag_id)
    assert_succeeded(code, output)
    assert "BrainAssetTrigger waiting for asset" in output  # They did defer.
    if dag_id == "brain_signed_url_resumed":
        # Rendered again on resuming in a worker (which stores the fields again): the real URL is back.
        assert output.count("Resumed in a worker: real URL signed=True, shown URL hidden=True") == len(KEYS)
    urls = presigned_urls(runner, dag_id)

    fields = rendered_fields(runner, dag_id)
    assert sorted(fields) == [0, 1]
    assert_hidden(json.dumps(fields), urls)
    for index, url in enumerate(urls):
        assert fields[index]["audio_url"].startswith(public_url(url) + "?")
    assert_transcribed(urls, speech)


def test_a_batch_stores_its_urls_without_signatures(runner, speech):
    code, output = runner.test("brain_signed_urls_batch")
    assert_succeeded(code, output)
    urls = presigned_urls(runner, "brain_signed_urls_batch")

    fields = rendered_fields(runner, "brain_signed_urls_batch")
    assert [url.partition("?")[0] for url in fields[-1]["audio_urls"]] == [public_url(url) for url in urls]
    assert_hidden(json.dumps(fields), urls)
    assert_transcribed(urls, speech)
