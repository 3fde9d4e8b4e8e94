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
