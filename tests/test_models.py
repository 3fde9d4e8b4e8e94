"""Parsing Brain's asset JSON: a malformed answer is a ``BrainAPIError`` that names what is wrong."""

from __future__ import annotations

import pytest

from airflow_provider_brain.exceptions import BrainAPIError
from airflow_provider_brain.models import Asset, Word

DONE = {"asset_id": "a" * 16, "status": "done", "transcript": "hello world", "confidence": [0.9, 0.8]}


def test_words_parse_with_their_times():
    words = [
        {"word": "hello", "start": 0.12, "end": 0.41, "confidence": 0.9},
        {"word": "world", "start": 1, "end": 2, "confidence": 1},
    ]
    asset = Asset.from_json({**DONE, "words": words})
    assert asset.words == (Word("hello", 0.12, 0.41, 0.9), Word("world", 1.0, 2.0, 1.0))


@pytest.mark.parametrize(
    ("word", "complaint"),
    [
        ({"word": "hello", "end": 0.4, "confidence": 0.9}, "word 1 in 'words' has no numeric 'start' (missing)"),
        ({"word": "hello", "start": 0.1, "end": None, "confidence": 0.9}, "has no numeric 'end' (missing)"),
        ({"word": "hello", "start": 0.1, "end": "0.4", "confidence": 0.9}, "has no numeric 'end' (a str)"),
        ({"word": "hello", "start": 0.1, "end": 0.4, "confidence": True}, "has no numeric 'confidence' (a bool)"),
        ("hello", "word 1 in 'words' is not a word object but a str"),
    ],
)
def test_a_malformed_word_is_an_api_error_naming_the_asset_and_the_field_not_the_word(word, complaint):
    first = {"word": "private", "start": 0.0, "end": 0.1, "confidence": 1.0}
    with pytest.raises(BrainAPIError) as caught:
        Asset.from_json({**DONE, "words": [first, word]})
    message = str(caught.value)
    assert complaint in message and DONE["asset_id"] in message
    assert "hello" not in message and "private" not in message


def test_reprs_show_timings_and_sizes_never_what_was_said():
    """One ``%r`` in a log line or an exception message must not leak a transcript, a word or a metadata value."""
    said = ["confidential", "diagnosis"]
    words = [{"word": w, "start": 0.5 * i, "end": 0.5 * i + 0.4, "confidence": 0.875} for i, w in enumerate(said)]
    asset = Asset.from_json(
        {
            **DONE,
            "transcript": " ".join(said),
            "words": words,
            "metadata": {"source": "s3://calls/patient-4711.wav"},
            "error": "could not fetch https://calls.s3.amazonaws.com/a.wav?X-Amz-Signature=5ecret5ig",
        }
    )

    word_repr = repr(asset.words[1])
    assert word_repr == "Word(start=0.5, end=0.9, confidence=0.875)"
    shown = " ".join([word_repr, repr(asset), str(asset), repr(asset.words), repr([asset])])
    assert f"asset_id={DONE['asset_id']!r}" in shown and "word_count=2" in shown and "metadata_keys=['source']" in shown
    for secret in [*said, "patient-4711", "5ecret5ig"]:
        assert secret not in shown
    # Hidden from the repr, still there for whoever reads the object.
    assert asset.words[1].word == "diagnosis"
