"""The cue builder and the SRT/WebVTT writers without servers; files read back with the `srt` and `webvtt` libraries."""

from __future__ import annotations

import html
import math
import random

import pytest
import srt
import webvtt

from airflow_provider_brain.models import Asset, AssetStatus, Word
from airflow_provider_brain.transfers.captions import (
    CaptionLimits,
    CaptionTimingError,
    Cue,
    asset_cues,
    build_cues,
    format_srt_time,
    format_vtt_time,
    render_srt,
    render_vtt,
)

ASSET_ID = "0123456789abcdef"


def words_at(texts: list[str], *, start: float = 0.0, length: float = 0.3, gap: float = 0.1) -> list[Word]:
    """Words one after another: each ``length`` seconds long, ``gap`` seconds apart."""
    words = []
    for text in texts:
        words.append(Word(text, round(start, 3), round(start + length, 3), 0.9))
        start += length + gap
    return words


def assert_valid(cues: list[Cue], limits: CaptionLimits, duration: float | None = None) -> None:
    """What every cue list promises: in order, no overlap, inside the audio, within the limits."""
    previous_end = 0
    for cue in cues:
        assert previous_end <= cue.start_ms <= cue.end_ms
        if duration is not None:
            assert cue.end_ms <= duration * 1000
        assert 1 <= len(cue.lines) <= limits.max_lines
        for line in cue.lines:
            assert line and line == line.strip() and "  " not in line
            assert len(line) <= limits.max_line_chars or " " not in line  # only a lone long word is longer
        if len(cue.words) > 1:
            assert cue.end_ms - cue.start_ms <= limits.max_cue_seconds * 1000
        previous_end = cue.end_ms


def srt_cues(text: str) -> list[srt.Subtitle]:
    return list(srt.parse(text))


def vtt_cues(text: str) -> list[webvtt.Caption]:
    return list(webvtt.from_string(text))


# ---------------------------------------------------------------------- limits


def test_lines_fill_up_to_the_character_limit_then_a_second_line_then_a_new_cue():
    texts = ["word"] * 30  # 4 characters + a space: 8 words (39 characters) a 42-character line
    cues = build_cues(words_at(texts, length=0.1, gap=0.0), limits=CaptionLimits(max_cue_seconds=60))

    assert [len(line.split()) for cue in cues for line in cue.lines] == [8, 8, 8, 6]
    assert [len(cue.lines) for cue in cues] == [2, 2]
    assert all(len(line) <= 42 for cue in cues for line in cue.lines)


def test_custom_limits_are_followed():
    limits = CaptionLimits(max_line_chars=10, max_lines=1, max_cue_seconds=60)
    cues = build_cues(words_at(["aa", "bb", "cc", "dd", "ee"], gap=0.0), limits=limits)

    assert [cue.lines for cue in cues] == [("aa bb cc",), ("dd ee",)]


def test_a_cue_never_lasts_longer_than_the_limit():
    # One word a second, no pauses: without the limit, all 20 would fit in two 42-character lines.
    words = words_at([f"w{i}" for i in range(20)], length=0.9, gap=0.1)
    limits = CaptionLimits(max_cue_seconds=3.0)

    cues = build_cues(words, limits=limits)

    assert [cue.words for cue in cues][:2] == [["w0", "w1", "w2"], ["w3", "w4", "w5"]]
    assert_valid(cues, limits)
    assert [w for cue in cues for w in cue.words] == [w.word for w in words]


def test_a_pause_longer_than_the_limit_starts_a_new_cue():
    words = [*words_at(["before", "the"], start=0.0), *words_at(["pause", "after"], start=0.7 + 1.2)]
    # "the" ends at 0.7 s, "pause" starts at 1.9 s: a 1.2 s silence.

    assert [cue.words for cue in build_cues(words)] == [["before", "the"], ["pause", "after"]]
    assert [cue.words for cue in build_cues(words, limits=CaptionLimits(max_pause_seconds=1.5))] == [
        ["before", "the", "pause", "after"]
    ]


def test_a_pause_of_exactly_the_limit_keeps_the_cue():
    words = [Word("one", 0.0, 0.5, 1.0), Word("two", 1.5, 2.0, 1.0)]
    assert len(build_cues(words, limits=CaptionLimits(max_pause_seconds=1.0))) == 1


def test_a_word_longer_than_a_line_gets_a_line_of_its_own_whole():
    long_word = "pneumonoultramicroscopicsilicovolcanoconiosis-supercalifragilistic"  # 66 characters
    words = words_at(["a", "few", "words", long_word, "and", "more"])

    cues = build_cues(words)

    lines = [line for cue in cues for line in cue.lines]
    assert lines == ["a few words", long_word, "and more"]
    assert [w for cue in cues for w in cue.words] == [w.word for w in words]


def test_two_long_words_in_a_row_each_get_their_own_line():
    first, second = "x" * 50, "y" * 45
    cues = build_cues(words_at([first, second, "z"]), limits=CaptionLimits(max_lines=2))

    assert [cue.lines for cue in cues] == [(first, second), ("z",)]


def test_a_single_word_longer_than_the_cue_limit_is_one_cue_as_long_as_the_word():
    words = [Word("a", 0.0, 0.2, 1.0), Word("hmmmmmmm", 0.3, 9.3, 1.0), Word("b", 9.4, 9.6, 1.0)]

    cues = build_cues(words, limits=CaptionLimits(max_cue_seconds=7.0))

    assert [(cue.start_ms, cue.end_ms, cue.words) for cue in cues] == [
        (0, 200, ["a"]),
        (300, 9300, ["hmmmmmmm"]),
        (9400, 9600, ["b"]),
    ]


def test_randomised_words_always_give_valid_cues_holding_every_word_in_order():
    rng = random.Random(16)
    for _ in range(200):
        limits = CaptionLimits(
            max_line_chars=rng.randint(5, 50),
            max_lines=rng.randint(1, 3),
            max_cue_seconds=rng.uniform(0.5, 8),
            max_pause_seconds=rng.uniform(0.1, 2),
        )
        words, start = [], rng.uniform(0, 1)
        for _ in range(rng.randint(0, 60)):
            start = max(0.0, start + rng.uniform(-0.2, 1.5))  # overlaps and pauses alike
            length = rng.uniform(0, 1.2)
            text = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 60)))
            words.append(Word(text, round(start, 3), round(start + length, 3), 0.5))
            start += length
        duration = rng.choice([None, start * rng.uniform(0.5, 1.5)])

        cues = build_cues(words, duration=duration, limits=limits)

        assert_valid(cues, limits, duration)
        assert [w for cue in cues for w in cue.words] == [w.word for w in words]
        parsed = srt_cues(render_srt(cues))
        assert " ".join(c.content.replace("\n", " ") for c in parsed) == " ".join(w.word for w in words)


# ---------------------------------------------------------------------- times


def test_cue_times_are_the_first_words_start_and_the_last_words_end():
    words = [Word("hello", 0.12, 0.5, 1.0), Word("there", 0.55, 0.98, 1.0)]
    (cue,) = build_cues(words)
    assert (cue.start_ms, cue.end_ms, cue.lines) == (120, 980, ("hello there",))


def test_overlapping_words_never_make_overlapping_cues():
    # The second cue's first word starts before the first cue's last word ends.
    words = [Word("a" * 40, 0.0, 2.0, 1.0), Word("b" * 40, 1.5, 3.0, 1.0), Word("c" * 5, 1.8, 3.5, 1.0)]

    cues = build_cues(words, limits=CaptionLimits(max_lines=1))

    assert [(cue.start_ms, cue.end_ms) for cue in cues] == [(0, 2000), (2000, 3000), (3000, 3500)]


def test_times_are_clamped_to_the_audio_duration():
    words = [Word("late", 1.0, 2.4, 1.0), Word("later", 2.6, 2.9, 1.0)]

    cues = build_cues(words, duration=2.5)

    assert [(cue.start_ms, cue.end_ms) for cue in cues] == [(1000, 2500)]
    (parsed,) = srt_cues(render_srt(cues))
    assert parsed.end.total_seconds() <= 2.5


def test_a_duration_with_sub_millisecond_digits_is_never_exceeded_by_rounding():
    (cue,) = build_cues([Word("x", 0.0, 3.4567, 1.0)], duration=3.4567)
    assert cue.end_ms == 3456


def test_words_without_text_show_nothing_and_inner_whitespace_becomes_one_space():
    words = [Word("", 0.0, 0.1, 1.0), Word("new\nyork", 0.2, 0.5, 1.0), Word("  ", 0.6, 0.7, 1.0)]
    assert [cue.lines for cue in build_cues(words)] == [("new york",)]


# ---------------------------------------------------------------------- empty and untimed


def test_no_words_give_an_empty_srt_and_a_header_only_vtt():
    assert build_cues([]) == []
    assert render_srt([]) == ""
    assert render_vtt([]) == "WEBVTT\n"
    assert srt_cues("") == [] and vtt_cues(render_vtt([])) == []


def asset(words: list[dict] | None, transcript: str | None = None) -> Asset:
    data: dict = {"asset_id": ASSET_ID, "status": "done", "duration": 10.0}
    if words is not None:
        data["words"] = words
        data["transcript"] = " ".join(w.get("word", "") for w in words) if transcript is None else transcript
    elif transcript is not None:
        data["transcript"] = transcript
    return Asset.from_json(data)


def test_an_asset_with_no_words_has_no_cues():
    assert asset_cues(asset([], transcript="")) == []
    assert asset_cues(Asset(asset_id=ASSET_ID, status=AssetStatus.DONE, transcript="")) == []


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ({"word": "secret", "start": 2.0, "end": 1.0, "confidence": 1.0}, "word 1 ends before it starts"),
        ({"word": "secret", "start": -1.0, "end": 1.0, "confidence": 1.0}, "word 1 starts before the audio does"),
        (
            {"word": "secret", "start": float("nan"), "end": 1.0, "confidence": 1.0},
            "word 1 has a start or end that is not a time",
        ),
    ],
)
def test_a_word_without_timing_is_an_error_naming_the_asset_not_the_words(word, reason):
    words = [{"word": "private", "start": 0.0, "end": 0.5, "confidence": 1.0}, word]

    with pytest.raises(CaptionTimingError) as excinfo:
        asset_cues(asset(words))

    message = str(excinfo.value)
    assert ASSET_ID in message and reason in message
    assert "secret" not in message and "private" not in message
    assert excinfo.value.asset_id == ASSET_ID and excinfo.value.word_index == 1
    assert isinstance(excinfo.value, ValueError)


def test_an_asset_fetched_without_timings_is_an_error_naming_it():
    untimed = asset(None, transcript="something private")

    with pytest.raises(CaptionTimingError, match=f"{ASSET_ID} has words but no word timings") as excinfo:
        asset_cues(untimed)
    assert "private" not in str(excinfo.value)


def test_asset_cues_stay_inside_the_assets_duration():
    timed = asset([{"word": "end", "start": 9.5, "end": 10.4, "confidence": 1.0}])
    assert [(cue.start_ms, cue.end_ms) for cue in asset_cues(timed)] == [(9500, 10000)]


# ---------------------------------------------------------------------- formats


def test_srt_is_numbered_from_one_with_comma_milliseconds_and_blank_lines_between():
    cues = [Cue(500, 1250, ("hello there",)), Cue(3_723_004, 3_725_000, ("two", "lines"))]

    assert render_srt(cues) == (
        "1\n00:00:00,500 --> 00:00:01,250\nhello there\n\n2\n01:02:03,004 --> 01:02:05,000\ntwo\nlines\n\n"
    )
    parsed = srt_cues(render_srt(cues))
    assert [(p.index, p.start.total_seconds(), p.end.total_seconds(), p.content) for p in parsed] == [
        (1, 0.5, 1.25, "hello there"),
        (2, 3723.004, 3725.0, "two\nlines"),
    ]


def test_vtt_has_its_header_and_dot_milliseconds():
    cues = [Cue(500, 1250, ("hello there",)), Cue(3_723_004, 3_725_000, ("two", "lines"))]

    assert render_vtt(cues) == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:01.250\nhello there\n\n01:02:03.004 --> 01:02:05.000\ntwo\nlines\n"
    )
    parsed = vtt_cues(render_vtt(cues))
    assert [(c.start, c.end, c.text) for c in parsed] == [
        ("00:00:00.500", "00:00:01.250", "hello there"),
        ("01:02:03.004", "01:02:05.000", "two\nlines"),
    ]


def test_vtt_escapes_markup_characters():
    cues = [Cue(0, 1000, ("R&D <b> -->",))]

    text = render_vtt(cues)

    assert "R&amp;D &lt;b&gt; --&gt;" in text
    (parsed,) = vtt_cues(text)
    assert html.unescape(parsed.text) == "R&D <b> -->"


@pytest.mark.parametrize(
    ("ms", "srt_time", "vtt_time"),
    [
        (0, "00:00:00,000", "00:00:00.000"),
        (59_999, "00:00:59,999", "00:00:59.999"),
        (3_600_000, "01:00:00,000", "01:00:00.000"),
        (100 * 3_600_000 + 1, "100:00:00,001", "100:00:00.001"),
    ],
)
def test_time_formats(ms, srt_time, vtt_time):
    assert format_srt_time(ms) == srt_time
    assert format_vtt_time(ms) == vtt_time


def test_a_cues_repr_shows_times_and_sizes_not_text():
    cue = Cue(0, 1000, ("my card number is", "four two four two"))
    assert "card" not in repr(cue) and "four" not in repr(cue)
    assert repr(cue) == "Cue(start_ms=0, end_ms=1000, lines=2, chars=34)"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_line_chars", 0),
        ("max_line_chars", 4.5),
        ("max_lines", 0),
        ("max_lines", True),
        ("max_cue_seconds", 0),
        ("max_cue_seconds", math.inf),
        ("max_pause_seconds", -1.0),
        ("max_pause_seconds", "1"),
    ],
)
def test_bad_limits_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        CaptionLimits(**{field: value})
