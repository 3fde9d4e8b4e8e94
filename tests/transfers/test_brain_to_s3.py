"""BrainToS3Operator against moto in server mode and the real local Brain server."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import parse_api_time
from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator, source_document_name, split_s3_uri
from airflow_provider_brain.transfers.common import BrainAssetsNotDone


def run(**kwargs: Any) -> list[str]:
    kwargs.setdefault("task_id", f"export_{uuid.uuid4().hex[:6]}")
    return BrainToS3Operator(**kwargs).execute(context={})


def objects(s3_server, bucket: str) -> dict[str, bytes]:
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def stored_content_type(s3_server, bucket: str, key: str) -> str:
    return s3_server.client().head_object(Bucket=bucket, Key=key)["ContentType"]


def assert_document(document: dict[str, Any], asset, with_words: bool) -> None:
    assert document["asset_id"] == asset.asset_id
    assert document["status"] == "done"
    assert document["source"] == asset.metadata["source"]
    assert document["transcript"] == asset.transcript
    assert document["confidence"] == pytest.approx(list(asset.confidence))
    assert document["mean_confidence"] == pytest.approx(asset.mean_confidence)
    assert document["word_count"] == asset.word_count
    assert document["duration"] == pytest.approx(asset.duration)
    assert document["created"] == asset.created and document["completed"] == asset.completed
    assert document["metadata"] == asset.metadata
    if with_words:
        assert [w["word"] for w in document["words"]] == [w.word for w in asset.words]
        assert [w["start"] for w in document["words"]] == pytest.approx([w.start for w in asset.words])
        assert [w["end"] for w in document["words"]] == pytest.approx([w.end for w in asset.words])
    else:
        assert "words" not in document


@pytest.mark.parametrize("times", [False, True])
def test_one_json_document_per_audio_file(s3_server, s3_bucket, brain_assets, brain_conn, times):
    keys = run(asset_ids=brain_assets.done_ids, s3_uri=f"s3://{s3_bucket}/brain/2026-11-25/", times=times)

    # The fixture's assets came from s3://audio/sentence-0.wav and s3://audio/sentence-1.wav.
    expected = ["brain/2026-11-25/s3/audio/sentence-0.wav.json", "brain/2026-11-25/s3/audio/sentence-1.wav.json"]
    assert keys == expected
    stored = objects(s3_server, s3_bucket)
    assert sorted(stored) == sorted(expected)
    for key, asset in zip(expected, brain_assets.done, strict=True):
        assert_document(json.loads(stored[key]), asset, with_words=times)
        assert stored_content_type(s3_server, s3_bucket, key) == "application/json"


def test_by_asset_id_without_replace_by_source(s3_server, s3_bucket, brain_assets, brain_conn):
    keys = run(asset_ids=brain_assets.done_ids, s3_uri=f"s3://{s3_bucket}/brain", replace_by_source=False)

    assert keys == [f"brain/{asset_id}.json" for asset_id in brain_assets.done_ids]
    assert sorted(objects(s3_server, s3_bucket)) == sorted(keys)


def test_bucket_root_prefix(s3_server, s3_bucket, brain_assets, brain_conn):
    keys = run(asset_ids=brain_assets.done_ids[0], s3_uri=f"s3://{s3_bucket}")

    assert keys == ["s3/audio/sentence-0.wav.json"]
    assert list(objects(s3_server, s3_bucket)) == keys


def test_an_asset_without_a_source_is_named_by_its_id(s3_server, s3_bucket, brain_conn, speech):
    asset = BrainHook().submit_file(speech.file(5))
    keys = run(asset_ids=[asset.asset_id], s3_uri=f"s3://{s3_bucket}/brain")

    assert keys == [f"brain/{asset.asset_id}.json"]


def test_a_new_transcription_of_the_same_file_replaces_its_document(s3_server, s3_bucket, brain_conn, speech):
    """A rerun transcribes the file into a new asset: one document per file, the newest, never two."""
    hook = BrainHook()
    source = {"source": f"s3://audio/rerun-{uuid.uuid4().hex[:8]}.wav"}
    first = hook.submit_file(speech.file(4), metadata=source)
    uri = f"s3://{s3_bucket}/brain"
    run(asset_ids=[first.asset_id], s3_uri=uri)
    second = hook.submit_file(speech.file(4), metadata=source)
    assert parse_api_time(second.created) > parse_api_time(first.created)  # millisecond stamps: strictly newer

    # The rerun's batch may still hold the old asset (a cleared task): the newer one wins, wherever it is.
    keys = run(asset_ids=[second.asset_id, first.asset_id], s3_uri=uri)

    assert keys == [f"brain/{source_document_name(source['source'])}"]
    stored = objects(s3_server, s3_bucket)
    assert list(stored) == keys
    assert json.loads(stored[keys[0]])["asset_id"] == second.asset_id


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("s3://audio/calls/a.wav", "s3/audio/calls/a.wav.json"),
        ("s3://audio/calls/a?take=2#b.wav", "s3/audio/calls/a?take=2#b.wav.json"),  # S3 keys may hold ? and #
        ("https://media.example.com/x/b.mp3?X-Amz-Signature=abc#t", "https/media.example.com/x/b.mp3.json"),
        ("https://user:secret@media.example.com:8443/x.mp3", "https/media.example.com:8443/x.mp3.json"),
        ("/data/in/c.flac", "file/data/in/c.flac.json"),
        ("relative/d.ogg", "file/relative/d.ogg.json"),
    ],
)
def test_document_names_follow_the_source(source, name):
    assert source_document_name(source) == name


@pytest.mark.parametrize("source", ["s3://audio/../../etc/./e.wav", "http://host//f.wav", "s3://audio/dir/"])
def test_odd_segments_are_dropped_and_the_name_stays_unique(source):
    name = source_document_name(source)
    assert re.fullmatch(r"[a-z0-9]+/[a-z]+(/[a-z.]+)*\.[0-9a-f]{12}\.json", name), name
    assert ".." not in name.split("/") and "//" not in name
    assert source_document_name("s3://audio/x/../y.wav") != source_document_name("s3://audio/x/y.wav")


def test_a_source_too_long_for_an_s3_key_is_hashed():
    name = source_document_name("s3://audio/" + "x" * 2000 + ".wav")
    assert name.startswith("by-source/") and name.endswith(".json") and len(name) < 100


def test_rewriting_replaces_documents_never_duplicates(s3_server, s3_bucket, brain_assets, brain_conn, speech):
    hook = BrainHook()
    edited = hook.submit_file(speech.file(3), metadata={"source": "s3://audio/weather.wav"})
    ids = [edited.asset_id, *brain_assets.done_ids]
    uri = f"s3://{s3_bucket}/brain"
    first = run(asset_ids=ids, s3_uri=uri)

    hook.update_asset(edited.asset_id, transcript="it will rain")
    second = run(asset_ids=ids, s3_uri=uri)

    assert first == second
    stored = objects(s3_server, s3_bucket)
    assert sorted(stored) == sorted(second)
    document = json.loads(stored["brain/s3/audio/weather.wav.json"])
    assert document["asset_id"] == edited.asset_id
    assert document["transcript"] == "it will rain"


def test_jsonl_batch_is_one_file_rewritten_in_place(s3_server, s3_bucket, brain_assets, brain_conn):
    uri = f"s3://{s3_bucket}/exports/transcripts.jsonl"
    summaries = [{"asset_id": a, "status": "done"} for a in brain_assets.done_ids]

    keys = run(asset_ids=summaries + summaries, s3_uri=uri, output_format="jsonl", times=True)
    again = run(asset_ids=summaries, s3_uri=uri, output_format="jsonl", times=True)

    assert keys == again == ["exports/transcripts.jsonl"]
    stored = objects(s3_server, s3_bucket)
    assert list(stored) == keys
    lines = stored["exports/transcripts.jsonl"].decode().splitlines()
    assert len(lines) == 2  # duplicates in the batch and the rerun add nothing
    assert stored_content_type(s3_server, s3_bucket, "exports/transcripts.jsonl") == "application/jsonl"
    for line, asset in zip(lines, brain_assets.done, strict=True):
        assert_document(json.loads(line), asset, with_words=True)


def test_jsonl_needs_a_key_not_a_prefix(s3_bucket, brain_assets, brain_conn):
    with pytest.raises(ValueError, match="must name a key"):
        run(asset_ids=brain_assets.done_ids, s3_uri=f"s3://{s3_bucket}/exports/", output_format="jsonl")


def test_unfinished_assets_fail_by_name_and_write_nothing(s3_server, s3_bucket, brain_assets, brain_conn):
    ids = [*brain_assets.done_ids, brain_assets.processing_id, brain_assets.failed_id]

    with pytest.raises(BrainAssetsNotDone) as excinfo:
        run(asset_ids=ids, s3_uri=f"s3://{s3_bucket}/brain")

    assert brain_assets.processing_id in str(excinfo.value) and brain_assets.failed_id in str(excinfo.value)
    assert objects(s3_server, s3_bucket) == {}


def test_skip_unfinished_writes_the_done_ones(s3_server, s3_bucket, brain_assets, brain_conn):
    ids = [brain_assets.processing_id, *brain_assets.done_ids, brain_assets.failed_id]

    keys = run(asset_ids=ids, s3_uri=f"s3://{s3_bucket}/brain", skip_unfinished=True)

    assert keys == ["brain/s3/audio/sentence-0.wav.json", "brain/s3/audio/sentence-1.wav.json"]
    assert sorted(objects(s3_server, s3_bucket)) == sorted(keys)


def test_jsonl_with_nothing_done_leaves_the_previous_file(s3_server, s3_bucket, brain_assets, brain_conn):
    uri = f"s3://{s3_bucket}/exports/batch.jsonl"
    run(asset_ids=brain_assets.done_ids, s3_uri=uri, output_format="jsonl")
    before = objects(s3_server, s3_bucket)

    keys = run(asset_ids=[brain_assets.processing_id], s3_uri=uri, output_format="jsonl", skip_unfinished=True)

    assert keys == []
    assert objects(s3_server, s3_bucket) == before


def test_transcript_is_never_logged(s3_bucket, brain_assets, brain_conn, caplog, capsys):
    caplog.set_level("DEBUG")
    run(asset_ids=brain_assets.done_ids, s3_uri=f"s3://{s3_bucket}/brain", times=True)
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert f"Wrote Brain asset {brain_assets.done_ids[0]}" in logged
    for asset in brain_assets.done:
        assert asset.transcript not in logged


# ---------------------------------------------------------------------- without servers


@pytest.mark.parametrize("uri", ["bucket/key", "s3:///key", "https://bucket.s3.amazonaws.com/key", None])
def test_bad_s3_uris_are_refused(uri):
    with pytest.raises(ValueError):
        split_s3_uri(uri)  # type: ignore[arg-type]


def test_operator_is_templated_and_mappable():
    from airflow.sdk import DAG

    assert {"asset_ids", "s3_uri"} <= set(BrainToS3Operator.template_fields)
    with DAG("brain_to_s3_mapped", schedule=None):
        mapped = BrainToS3Operator.partial(task_id="export", s3_uri="s3://b/p").expand(
            asset_ids=["0123456789abcdef", "fedcba9876543210"]
        )
    assert mapped.task_id == "export"
