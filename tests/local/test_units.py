"""Pieces of the server tested in-process: word cleaning, transcript correction, search, audio decoding."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from airflow_provider_brain.local.assets import Asset, normalise, realign, search_words
from airflow_provider_brain.local.audio import AudioDecodeError, Pcm16Stream, probe
from airflow_provider_brain.local.recognizer import Word, clean_word


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("hello", "hello"),
        ("hello(2)", "hello"),
        ("o'clock", "o'clock"),
        ("<s>", None),
        ("</s>", None),
        ("<sil>", None),
        ("[NOISE]", None),
        ("[SPEECH]", None),
        ("++BREATH++", None),
        ("", None),
    ],
)
def test_clean_word(token, expected):
    assert clean_word(token) == expected


WORDS = [Word("hello", 0.1, 0.4, 0.9), Word("big", 0.4, 0.6, 0.5), Word("world", 0.7, 1.2, 0.8)]


def test_realign_keeps_unchanged_words_and_spreads_replacements():
    words = realign(WORDS, "hello small green world again")
    assert [w.word for w in words] == ["hello", "small", "green", "world", "again"]
    assert words[0] == WORDS[0] and words[3] == WORDS[2]
    assert (words[1].start, words[2].end) == (0.4, 0.6)
    assert words[1].end == words[2].start == 0.5
    assert words[4].start == words[4].end == 1.2
    assert all(w.confidence == 1.0 for w in (words[1], words[2], words[4]))
    assert realign(WORDS, "") == []
    assert [w.word for w in realign([], "new words")] == ["new", "words"]


def test_search_words_matches_phrase_ignoring_case_and_punctuation():
    asset = Asset("0" * 16, "u", "done", "t", "http://x", words=[Word("Hello,", 0, 1, 0.5), *WORDS[1:]])
    assert search_words(asset, ["hello", "big"]) == [
        {"asset_id": "0" * 16, "start": 0, "end": 0.6, "confidence": 0.5, "text": "Hello, big"}
    ]
    assert search_words(asset, ["big", "hello"]) == []
    assert normalise("World!") == "world"
    assert normalise("o'clock") == "o'clock"


def test_pcm_stream_resamples_and_mixes_in_blocks(tmp_path):
    rate, seconds = 44100, 3.3
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "tone.flac"
    sf.write(str(path), np.stack([tone, -tone * 0.0], axis=1), rate)
    stream = Pcm16Stream(path, block_seconds=1.0)
    blocks = list(stream)
    assert len(blocks) >= 3
    pcm = np.concatenate(blocks)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - int(16000 * seconds)) <= 2
    assert stream.duration == pytest.approx(seconds, abs=1e-3)
    # Stereo mixed to mono: half the amplitude of the left channel.
    assert np.abs(pcm).max() == pytest.approx(0.25 * 32767, rel=0.02)
    info = probe(path)
    assert (info.format, info.channels, info.samplerate, info.mime_type) == ("FLAC", 2, rate, "audio/flac")


def test_undecodable_media_raises_a_clear_error(tmp_path):
    path = tmp_path / "x.mp3"
    path.write_bytes(b"not audio" * 100)
    with pytest.raises(AudioDecodeError, match="audio could not be decoded") as caught:
        probe(path)
    assert str(tmp_path) not in str(caught.value)
    with pytest.raises(AudioDecodeError):
        list(Pcm16Stream(path))


def test_settings_and_words_keep_secrets_and_speech_out_of_their_reprs(tmp_path):
    from airflow_provider_brain.local.recognizer import Recognition
    from airflow_provider_brain.local.settings import ServerSettings

    settings = ServerSettings(data_dir=tmp_path, users={"alice": "s3cret-pass"})
    word = Word("tomorrow", 0.5, 0.9, 0.93)
    assert "s3cret-pass" not in repr(settings) and "alice" not in repr(settings)
    assert str(tmp_path) in repr(settings), "the rest of the settings still shows"
    for shown in (repr(word), repr(Recognition(1.5, [word]))):
        assert "tomorrow" not in shown
    assert "0.93" in repr(word)
