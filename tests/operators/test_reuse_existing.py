"""BrainTranscribeOperator(reuse_existing="source_version"): one transcription per S3 object version, across runs.

The checks a DAG author meets at parse time, and the submit step of real task instances of different runs
(the step that decides to submit or reuse, run here in-process) against moto's S3 and the local Brain server.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import DAG

from airflow_provider_brain.exceptions import BrainNotFound
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.source_versions import SOURCE_VERSION_METADATA_KEY
from airflow_provider_brain.operators import trigger_start
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from tests.fixtures.brain import slow_default_brain

REUSE = {"reuse_existing": "source_version"}


def context(run_id: str) -> dict:
    """What ``submit_job`` reads of a task instance's context: a first try of ``transcribe`` in run ``run_id``."""
    ti = SimpleNamespace(
        dag_id="reuse", run_id=run_id, task_id="transcribe", map_index=-1, try_number=1, xcom_push=lambda **_: None
    )
    return {"ti": ti, "dag_run": None}


def assets_for(source: str) -> list:
    return [a for a in BrainHook().list_assets(include_unfinished=True) if a.metadata.get("source") == source]


# ------------------------------------------------------------------ parse time


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"s3_uri": "s3://b/k.wav", "reuse_existing": "yes"}, "reuse_existing must be None or one of 'source_version'"),
        ({"audio_url": "https://x/a.wav", **REUSE}, "needs an S3 source .*; audio_url has no version"),
        ({"local_path": "/data/a.wav", **REUSE}, "needs an S3 source .*; local_path has no version"),
    ],
)
def test_a_bad_value_or_a_source_without_versions_fails_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BrainTranscribeOperator(task_id="t", **kwargs)


def test_mapped_tasks_are_checked_at_parse_time_too():
    with DAG("reuse_probe", schedule=None, start_date=datetime(2026, 1, 1)):
        with pytest.raises(ValueError, match="audio_url has no version"):
            BrainTranscribeOperator.partial(task_id="urls", **REUSE).expand(audio_url=["https://x/a.wav"])
        with pytest.raises(ValueError, match="reuse_existing must be None or one of"):
            BrainTranscribeOperator.partial(task_id="bad", reuse_existing="etag").expand(s3_uri=["s3://b/a.wav"])
        BrainTranscribeOperator.partial(task_id="ok", **REUSE).expand(s3_uri=["s3://b/a.wav"])
        BrainTranscribeOperator(task_id="bucket_key", s3_bucket="b", s3_key="a.wav", **REUSE)


def test_with_start_from_trigger_it_runs_in_a_worker_and_says_why(monkeypatch):
    monkeypatch.setattr(trigger_start, "triggerer_can_start_tasks", lambda: True)
    with DAG("reuse_trigger_probe", schedule=None, start_date=datetime(2026, 1, 1)):
        single = BrainTranscribeOperator(task_id="single", s3_uri="s3://b/a.wav", start_from_trigger=True, **REUSE)
        mapped = BrainTranscribeOperator.partial(task_id="mapped", start_from_trigger=True, **REUSE).expand(
            s3_uri=["s3://b/a.wav", "s3://b/b.wav"]
        )
    assert (single.start_from_trigger, mapped.start_from_trigger) == (False, False)
    assert "reuse_existing looks for an asset" in trigger_start.blocker(vars(single))


# ------------------------------------------------------------------ real runs


def test_a_second_run_reuses_the_asset_until_the_object_changes(brain_conn, s3_server, s3_bucket, speech):
    client = s3_server.client()
    uri = f"s3://{s3_bucket}/calls/a.wav"
    client.upload_file(str(speech.file(0)), s3_bucket, "calls/a.wav")
    op = BrainTranscribeOperator(task_id="transcribe", s3_uri=uri, **REUSE)

    first = op.submit_job(context("run-1"))
    (asset,) = assets_for(uri)
    assert asset.asset_id == first["asset_id"]
    assert asset.metadata[SOURCE_VERSION_METADATA_KEY] == hashlib.md5(speech.file(0).read_bytes()).hexdigest()

    second = op.submit_job(context("run-2"))  # Another run, no retry: the same object version.
    assert second == {**first, "reused": True} and len(assets_for(uri)) == 1, "nothing submitted: reused"

    client.upload_file(str(speech.file(1)), s3_bucket, "calls/a.wav")  # Overwritten: a new ETag.
    third = op.submit_job(context("run-3"))
    assert third["asset_id"] != first["asset_id"]
    versions = {a.asset_id: a.metadata[SOURCE_VERSION_METADATA_KEY] for a in assets_for(uri)}
    assert versions[third["asset_id"]] == hashlib.md5(speech.file(1).read_bytes()).hexdigest()
    assert len(versions) == 2
    assert op.submit_job(context("run-4")) == {**third, "reused": True}, "and the new version's asset in turn"


def test_a_failed_asset_is_not_reused(brain_conn, s3_server, s3_bucket):
    uri = f"s3://{s3_bucket}/calls/noise.wav"
    s3_server.client().put_object(Bucket=s3_bucket, Key="calls/noise.wav", Body=b"these bytes are not audio")
    op = BrainTranscribeOperator(task_id="transcribe", s3_uri=uri, **REUSE)
    first = op.submit_job(context("run-1"))
    deadline = time.monotonic() + 30
    while not BrainHook().get_asset(first["asset_id"]).is_failed:
        assert time.monotonic() < deadline, "the server should fail an asset it cannot decode"
        time.sleep(0.2)
    second = op.submit_job(context("run-2"))
    assert second["asset_id"] != first["asset_id"]
    assert len(assets_for(uri)) == 2


def test_every_s3_submission_records_its_version_for_later_reuse(brain_conn, s3_server, s3_bucket, speech):
    """Without reuse_existing a task still submits in every run, but records the version it got from the HEAD
    that checks the object exists (no extra request), in both transfer modes: a later reuse_existing task, or
    the sweep, then knows the object version is transcribed."""
    uri = f"s3://{s3_bucket}/calls/plain.wav"
    s3_server.client().upload_file(str(speech.file(2)), s3_bucket, "calls/plain.wav")
    etag = hashlib.md5(speech.file(2).read_bytes()).hexdigest()

    presigned = BrainTranscribeOperator(task_id="transcribe", s3_uri=uri).submit_job(context("run-1"))
    streamed = BrainTranscribeOperator(task_id="transcribe", s3_uri=uri, s3_transfer="stream").submit_job(
        context("run-2")
    )
    versions = {a.asset_id: a.metadata.get(SOURCE_VERSION_METADATA_KEY) for a in assets_for(uri)}
    assert versions == {presigned["asset_id"]: etag, streamed["asset_id"]: etag}

    reused = BrainTranscribeOperator(task_id="transcribe", s3_uri=uri, **REUSE).submit_job(context("run-3"))
    assert reused["asset_id"] in versions and len(assets_for(uri)) == 2


def test_a_task_that_reuses_another_runs_asset_never_deletes_it(tmp_path, monkeypatch, s3_server, s3_bucket, speech):
    """cancel_on_kill deletes only what the task submitted: ending the reusing task (in the worker, or deferred:
    its trigger is told not to) leaves the other run's asset processing; ending the owner deletes it."""
    with slow_default_brain(tmp_path / "data", monkeypatch, 120):
        uri = f"s3://{s3_bucket}/calls/shared.wav"
        s3_server.client().upload_file(str(speech.file(3)), s3_bucket, "calls/shared.wav")
        owner, reuser = (
            BrainTranscribeOperator(task_id="transcribe", s3_uri=uri, deferrable=True, **REUSE) for _ in range(2)
        )
        first = owner.submit_job(context("run-1"))
        second = reuser.submit_job(context("run-2"))
        assert second == {**first, "reused": True}

        with pytest.raises(TaskDeferred) as deferred:
            reuser.poll_until_complete(second, context("run-2"))
        assert deferred.value.trigger.cancel_on_kill is False
        assert deferred.value.kwargs == {"resumed": True, "owned": False}
        reuser.on_kill()
        assert BrainHook().get_asset(first["asset_id"]).status.value == "processing"

        with pytest.raises(TaskDeferred) as deferred:
            owner.poll_until_complete(first, context("run-1"))
        assert deferred.value.trigger.cancel_on_kill is True
        owner.on_kill()
        with pytest.raises(BrainNotFound):
            BrainHook().get_asset(first["asset_id"])
