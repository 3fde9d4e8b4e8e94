"""BrainToS3Operator writing captions (SRT, WebVTT) from recognised speech, read back by independent parsers.
(Split from test_brain_to_s3.py, which covers the JSON documents.)"""

from __future__ import annotations

import html
import itertools
import json
import uuid
from dataclasses import dataclass

import pytest
import srt
import webvtt

from airflow_provider_brain.exceptions import BrainAPIError
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import parse_api_time
from airflow_provider_brain.transfers.brain_to_s3 import BrainToS3Operator, source_document_name
from tests.fixtures.faults import Fault
from tests.transfers.test_brain_to_s3 import objects, run, stored_content_type


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
