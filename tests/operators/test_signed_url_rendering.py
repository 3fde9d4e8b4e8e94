"""Presigned URLs in a real DAG run: the tasks submit them whole, but the rendered fields Airflow stores for the
Rendered Template tab (``rendered_task_instance_fields``) hold no signature, credential or token.

An upstream task presigns objects in moto's S3 during the run; the single, mapped-and-deferred and batch
transcribe operators take the URLs from its XCom (the templated field renders them), and the local Brain
server downloads and transcribes them. The four cases are task groups of one DAG, run once per module (one
``airflow dags test`` of about 12 CPU seconds instead of four); each test checks its own group's tasks, objects,
stored fields and log.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import jiwer
import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.sources import public_url
from tests.fixtures.connections import brain_connection_json
from tests.operators.test_transcribe_dags import DagRunner, assert_succeeded

DAG_FILE = Path(__file__).parents[1] / "dags" / "signed_urls.py"
DAG_ID = "brain_signed_urls"
KEYS = ["one.wav", "two.wav"]
WER_BOUND = 0.25


class SignedRun:
    """The module's one run of ``brain_signed_urls``: its exit code and output, and where it ran."""

    def __init__(self, runner: DagRunner, code: int, output: str) -> None:
        self.runner, self.code, self.output = runner, code, output


@pytest.fixture(scope="module")
def signed_run(airflow_cli, latent_brain, s3_server, speech) -> SignedRun:
    """The DAG run, on ``latent_brain``: its deferred and resumed tasks find their assets processing and defer."""
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    bucket = f"brain-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    for group in ("single", "deferred_mapped", "resumed", "batch"):
        for index, key in enumerate(KEYS):
            client.upload_file(str(speech.file(index)), bucket, f"{group}/{key}")
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(latent_brain.url, *latent_brain.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "BRAIN_TEST_BUCKET": bucket,
        "BRAIN_TEST_KEYS": ",".join(KEYS),
    }
    runner = DagRunner(airflow_cli, env)
    code, output = runner.test(DAG_ID)
    return SignedRun(runner, code, output)


@pytest.fixture
def run(signed_run: SignedRun, monkeypatch) -> Iterator[SignedRun]:
    """The module's run, with ``brain_default`` set here too (the checks read the assets back)."""
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", signed_run.runner.env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    yield signed_run


def stored(runner: DagRunner, sql: str, *params: str) -> list[tuple]:
    with sqlite3.connect(runner.cli.home / "airflow.db") as db:
        return db.execute(sql, (DAG_ID, *params)).fetchall()


def presigned_urls(runner: DagRunner, group: str) -> list[str]:
    """What the group's upstream task presigned in the last run (its XCom)."""
    ((value,),) = stored(
        runner,
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
        "ORDER BY timestamp DESC LIMIT 1",
        f"{group}.presign",
    )
    urls = json.loads(value)
    assert len(urls) == len(KEYS) and all(urlsplit(url).query for url in urls)
    assert all(urlsplit(url).path.endswith(f"/{group}/{key}") for url, key in zip(urls, KEYS, strict=True))
    return urls


def rendered_fields(runner: DagRunner, group: str) -> dict[int, dict]:
    """The group's transcribe task's stored rendered fields, by map index."""
    rows = stored(
        runner,
        "SELECT map_index, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ? AND task_id = ?",
        f"{group}.transcribe",
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


def assets_of(urls: list[str]) -> list:
    """The Brain asset of each URL (by the source its metadata names: the URL without its query)."""
    hook = BrainHook()
    by_source = {a.metadata.get("source"): a for a in hook.list_assets(include_unfinished=True)}
    return [hook.get_asset(by_source[public_url(url)].asset_id) for url in urls]


def assert_transcribed(urls: list[str], speech) -> None:
    """Each URL was submitted whole (the server could download it) and transcribed."""
    for index, asset in enumerate(assets_of(urls)):
        assert asset.is_done, asset
        assert jiwer.wer(speech.text([index]).lower(), asset.transcript) <= WER_BOUND


def test_a_templated_audio_url_is_stored_without_its_signature(run, speech):
    assert_succeeded(run.code, run.output)
    urls = presigned_urls(run.runner, "single")

    fields = rendered_fields(run.runner, "single")
    assert list(fields) == [-1]
    assert fields[-1]["audio_url"].startswith(public_url(urls[0]) + "?")
    assert_hidden(json.dumps(fields), urls[:1])
    assert_transcribed(urls[:1], speech)


# The ids of the DAGs these cases had before they were task groups of one DAG (the floor's suite names them).
@pytest.mark.parametrize(
    "group",
    [
        pytest.param("deferred_mapped", id="brain_signed_url_deferred_mapped"),
        pytest.param("resumed", id="brain_signed_url_resumed"),
    ],
)
def test_mapped_deferred_tasks_store_no_signature(run, speech, group):
    assert_succeeded(run.code, run.output)
    urls = presigned_urls(run.runner, group)
    # They did defer: a trigger waited for one of this group's assets (the other groups have assets of their own).
    waited = [f"BrainAssetTrigger waiting for asset {asset.asset_id}," in run.output for asset in assets_of(urls)]
    assert any(waited), waited
    if group == "resumed":
        # Rendered again on resuming in a worker (which stores the fields again): the real URL is back. Only this
        # group's operator logs the line.
        assert run.output.count("Resumed in a worker: real URL signed=True, shown URL hidden=True") == len(KEYS)

    fields = rendered_fields(run.runner, group)
    assert sorted(fields) == [0, 1]
    assert_hidden(json.dumps(fields), urls)
    for index, url in enumerate(urls):
        assert fields[index]["audio_url"].startswith(public_url(url) + "?")
    assert_transcribed(urls, speech)


def test_a_batch_stores_its_urls_without_signatures(run, speech):
    assert_succeeded(run.code, run.output)
    urls = presigned_urls(run.runner, "batch")

    fields = rendered_fields(run.runner, "batch")
    assert [url.partition("?")[0] for url in fields[-1]["audio_urls"]] == [public_url(url) for url in urls]
    assert_hidden(json.dumps(fields), urls)
    assert_transcribed(urls, speech)
