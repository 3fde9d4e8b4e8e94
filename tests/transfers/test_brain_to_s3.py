"""BrainToS3Operator against moto in server mode and the real local Brain server."""

from __future__ import annotations

import html
import itertools
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import srt
import webvtt

from airflow_provider_brain.exceptions import BrainAPIError
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import parse_api_time
from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator, source_document_name, split_s3_uri
from airflow_provider_brain.transfers.common import BrainAssetsNotDone
from tests.fixtures.faults import Fault


def run(**kwargs: Any) -> list[str]:
    kwargs.setdefault("task_id", f"export_{uuid.uuid4().hex[:6]}")
    return BrainToS3Operator(**kwargs).execute(context={})


def objects(s3_server, bucket: str) -> dict[str, bytes]:
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


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


# ---------------------------------------------------------------------- captions (SRT, WebVTT)


@dataclass(frozen=True)
class ParsedCue:
    start: float
    end: float
    lines: list[str]


def read_captions(output_format: str, body: bytes) -> list[ParsedCue]:
    """A caption file as the independent ``srt`` and ``webvtt-py`` libraries read it."""
    text = body.decode("utf-8")
    if output_format == "srt":
        return [
            ParsedCue(s.start.total_seconds(), s.end.total_seconds(), s.content.split("\n")) for s in srt.parse(text)
        ]
    return [
        ParsedCue(
            c.start_time.in_milliseconds() / 1000,
            c.end_time.in_milliseconds() / 1000,
            html.unescape(c.text).split("\n"),
        )
        for c in webvtt.from_string(text)
    ]


def assert_captions(
    cues: list[ParsedCue], asset, *, line_chars: int = 42, lines: int = 2, seconds: float = 7.0
) -> None:
    """Cues inside the audio, in order, never overlapping, within the limits (default: the operator's), holding
    the transcript."""
    previous_end = 0.0
    for cue in cues:
        assert previous_end <= cue.start <= cue.end <= asset.duration
        assert 1 <= len(cue.lines) <= lines
        assert all(len(line) <= line_chars or " " not in line for line in cue.lines)
        if sum(len(line.split()) for line in cue.lines) > 1:
            assert cue.end - cue.start <= seconds
        previous_end = cue.end
    assert " ".join(" ".join(cue.lines) for cue in cues) == asset.transcript


def stored_content_type(s3_server, bucket: str, key: str) -> str:
    return s3_server.client().head_object(Bucket=bucket, Key=key)["ContentType"]


@pytest.mark.parametrize(("output_format", "content_type"), [("srt", "application/x-subrip"), ("vtt", "text/vtt")])
def test_captions_of_recognised_speech_read_back_by_independent_parsers(
    s3_server, s3_bucket, brain_assets, brain_conn, caplog, capsys, output_format, content_type
):
    caplog.set_level("DEBUG")
    keys = run(asset_ids=brain_assets.done_ids, s3_uri=f"s3://{s3_bucket}/captions/", output_format=output_format)

    expected = [f"captions/s3/audio/sentence-{i}.wav.{output_format}" for i in (0, 1)]
    assert keys == expected
    stored = objects(s3_server, s3_bucket)
    assert sorted(stored) == sorted(expected)
    for key, asset in zip(expected, brain_assets.done, strict=True):
        assert asset.word_count > 0
        assert stored_content_type(s3_server, s3_bucket, key) == content_type
        assert_captions(read_captions(output_format, stored[key]), asset)
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err
    for asset in brain_assets.done:
        assert f"Wrote Brain asset {asset.asset_id}" in logged
        assert asset.transcript not in logged


def test_captions_of_longer_speech_break_at_pauses_and_limits(s3_server, s3_bucket, brain_conn, speech):
    """Four sentences with 1.5 s of silence between them: a cue ends at every pause, and none breaks a limit."""
    hook = BrainHook()
    source = f"s3://audio/talk-{uuid.uuid4().hex[:8]}.wav"
    submitted = hook.submit_file(speech.joined([0, 1, 2, 3], pause=1.5), metadata={"source": source})
    asset = hook.get_asset(submitted.asset_id, times=True)
    uri = f"s3://{s3_bucket}/media"

    written = {fmt: run(asset_ids=submitted.asset_id, s3_uri=uri, output_format=fmt) for fmt in ("srt", "vtt", "json")}

    # Each format has its own document of the same audio file, side by side.
    name = f"media/s3/{source.removeprefix('s3://')}"
    assert written == {fmt: [f"{name}.{fmt}"] for fmt in ("srt", "vtt", "json")}
    stored = objects(s3_server, s3_bucket)
    pauses = {i + 1 for i, (a, b) in enumerate(itertools.pairwise(asset.words)) if b.start - a.end > 1.0}
    assert len(pauses) >= 3, "the recogniser's timings do not show the silences between the sentences"
    for fmt in ("srt", "vtt"):
        cues = read_captions(fmt, stored[f"{name}.{fmt}"])
        assert_captions(cues, asset)
        assert len(cues) >= 4
        # Where each cue starts, as an index into the asset's words: every pause is one of them.
        starts = set(itertools.accumulate([0] + [sum(len(line.split()) for line in cue.lines) for cue in cues]))
        assert pauses <= starts

    # Tighter limits than the defaults: more, shorter cues, and still every word in order.
    limits = {"caption_max_line_chars": 20, "caption_max_lines": 1, "caption_max_seconds": 2.0}
    (key,) = run(asset_ids=submitted.asset_id, s3_uri=f"s3://{s3_bucket}/tight", output_format="srt", **limits)
    tight = read_captions("srt", objects(s3_server, s3_bucket)[key])
    assert_captions(tight, asset, line_chars=20, lines=1, seconds=2.0)
    assert len(tight) > 2 * len(read_captions("srt", stored[f"{name}.srt"]))


def test_a_new_transcription_of_the_same_file_replaces_its_captions(s3_server, s3_bucket, brain_conn, speech):
    """Captions are named and replaced as the JSON documents are: one file per audio file, the newest asset's."""
    hook = BrainHook()
    source = {"source": f"s3://audio/rerun-{uuid.uuid4().hex[:8]}.wav"}
    first = hook.submit_file(speech.file(4), metadata=source)
    uri = f"s3://{s3_bucket}/captions"
    keys = run(asset_ids=[first.asset_id], s3_uri=uri, output_format="srt")
    assert keys == [f"captions/{source_document_name(source['source'], extension='srt')}"]

    # A corrected transcript, written again: the file is replaced in place.
    hook.update_asset(first.asset_id, transcript="it will rain")
    assert run(asset_ids=[first.asset_id], s3_uri=uri, output_format="srt") == keys
    edited = hook.get_asset(first.asset_id, times=True)
    assert edited.transcript == "it will rain"
    assert_captions(read_captions("srt", objects(s3_server, s3_bucket)[keys[0]]), edited)

    second = hook.submit_file(speech.file(4), metadata=source)
    assert parse_api_time(second.created) > parse_api_time(first.created)  # millisecond stamps: strictly newer
    assert run(asset_ids=[second.asset_id, first.asset_id], s3_uri=uri, output_format="srt") == keys

    stored = objects(s3_server, s3_bucket)
    assert list(stored) == keys
    assert_captions(read_captions("srt", stored[keys[0]]), hook.get_asset(second.asset_id, times=True))


def test_an_asset_with_no_words_gives_an_empty_srt_and_a_header_only_vtt(s3_server, s3_bucket, brain_conn, speech):
    # Recognising silence gives no words only most of the time (pocketsphinx now and then hears one), so the words
    # go the way a person removes them: a transcript corrected to nothing.
    hook = BrainHook()
    asset = hook.submit_file(speech.file(2), metadata={"source": "s3://audio/cleared.wav"})
    hook.update_asset(asset.asset_id, transcript="")
    assert hook.get_asset(asset.asset_id, times=True).words == ()

    uri = f"s3://{s3_bucket}/captions"
    keys = [run(asset_ids=asset.asset_id, s3_uri=uri, output_format=fmt)[0] for fmt in ("srt", "vtt")]

    stored = objects(s3_server, s3_bucket)
    assert keys == ["captions/s3/audio/cleared.wav.srt", "captions/s3/audio/cleared.wav.vtt"]
    assert stored[keys[0]] == b"" and stored[keys[1]] == b"WEBVTT\n"
    assert read_captions("srt", stored[keys[0]]) == [] and read_captions("vtt", stored[keys[1]]) == []


def test_a_word_without_timing_fails_naming_the_asset_and_writes_nothing(
    s3_server, s3_bucket, brain_assets, brain_conn, fault_proxy
):
    """A Brain that sends a word with no start time: a malformed answer, the task fails naming the asset and the
    word's position (not the word), and no file is half-written."""
    brain_conn(url=fault_proxy.url)
    broken = brain_assets.done[1]
    answer = json.loads(json.dumps(broken.raw))
    del answer["words"][2]["start"]
    fault_proxy.add(
        Fault("status", status=200, body=json.dumps(answer).encode(), path_prefix=f"/assets/{broken.asset_id}")
    )

    with pytest.raises(BrainAPIError) as excinfo:
        run(asset_ids=brain_assets.done_ids, s3_uri=f"s3://{s3_bucket}/captions", output_format="vtt")

    message = str(excinfo.value)
    assert broken.asset_id in message and "word 2 in 'words' has no numeric 'start' (missing)" in message
    assert broken.words[2].word not in message.split()
    assert objects(s3_server, s3_bucket) == {}


def test_unknown_output_format_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="output_format must be one of json, jsonl, srt, vtt, got 'ass'"):
        BrainToS3Operator(task_id="x", asset_ids="0123456789abcdef", s3_uri="s3://b/p", output_format="ass")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"caption_max_line_chars": 0}, "max_line_chars"),
        ({"caption_max_lines": 0}, "max_lines"),
        ({"caption_max_seconds": -1}, "max_cue_seconds"),
        ({"caption_max_pause_seconds": 0}, "max_pause_seconds"),
    ],
)
def test_bad_caption_limits_are_refused_when_the_dag_is_parsed(kwargs, named):
    with pytest.raises(ValueError, match=named):
        BrainToS3Operator(task_id="x", asset_ids="0123456789abcdef", s3_uri="s3://b/p", output_format="srt", **kwargs)
