"""The asset record and what is computed from it: its JSON forms, transcript corrections and search.

An asset's words (text, start, end, confidence) are the single source of truth: ``transcript`` is their
texts joined by spaces and ``confidence`` their confidences, so ``len(confidence) ==
len(transcript.split())`` holds by construction, also after a ``PUT`` corrects the transcript.
"""

from __future__ import annotations

import difflib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_brain.local.recognizer import Word

ASSET_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
PROCESSING, DONE, FAILED = "processing", "done", "failed"


def new_asset_id() -> str:
    """A fresh asset id: 16 lowercase hex digits, as the contract requires."""
    return secrets.token_hex(8)


@dataclass
class Asset:
    """One submitted media file and, once recognised, its words."""

    asset_id: str
    owner: str
    status: str
    created: str
    base_url: str
    completed: str | None = None
    duration: float | None = None
    words: list[Word] = field(default_factory=list)
    error: str | None = None
    #: HTTP status a synchronous caller gets for a failed asset (400 bad media, 500 server fault).
    error_status: int | None = None
    metadata: dict[str, Any] | None = None
    media_path: str | None = None
    media_type: str | None = None
    source_url: str | None = None
    callback: str | None = None
    #: The ``Idempotency-Key`` it was submitted with, and a digest of that request's body (``local/idempotency.py``).
    idempotency_key: str | None = None
    request_digest: str | None = None

    @property
    def transcript(self) -> str:
        return " ".join(w.word for w in self.words)

    @property
    def content_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/assets/{self.asset_id}/content"

    def to_json(self, times: bool = False) -> dict[str, Any]:
        """The asset as ``GET /assets/{id}`` answers it (``times`` adds ``words``)."""
        body: dict[str, Any] = {"asset_id": self.asset_id, "status": self.status, "created": self.created}
        if self.duration is not None:
            body["duration"] = self.duration
        if self.status == PROCESSING:
            return body
        if self.media_path:
            body["content_url"] = self.content_url
        if self.status == DONE:
            body["transcript"] = self.transcript
            body["confidence"] = [w.confidence for w in self.words]
            if times:
                body["words"] = [
                    {"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence} for w in self.words
                ]
        else:
            body["error"] = self.error or "recognition failed"
        if self.completed:
            body["completed"] = self.completed
        if self.metadata is not None:
            body["metadata"] = self.metadata
        return body

    def to_summary(self) -> dict[str, Any]:
        """The shorter form used in ``GET /assets`` listings."""
        return summary(
            self.asset_id, self.status, self.created, self.duration, self.metadata, self.completed, self.error
        )


#: The columns of an asset that its listing summary needs, in ``summary``'s order: no words, so a listing
#: never reads nor parses a transcript.
SUMMARY_COLUMNS = ("asset_id", "status", "created", "duration", "metadata", "completed", "error")


def summary(
    asset_id: str,
    status: str,
    created: str,
    duration: float | None,
    metadata: dict[str, Any] | None,
    completed: str | None,
    error: str | None,
) -> dict[str, Any]:
    """An asset as ``GET /assets`` lists it (``Asset.to_summary``, or built from ``SUMMARY_COLUMNS``)."""
    body: dict[str, Any] = {"asset_id": asset_id, "status": status, "created": created}
    if duration is not None:
        body["duration"] = duration
    if metadata is not None:
        body["metadata"] = metadata
    if completed:
        body["completed"] = completed
    if status == FAILED:
        body["error"] = error or "recognition failed"  # A listing of failures says why, no request per asset.
    return body


def realign(words: list[Word], transcript: str) -> list[Word]:
    """Words for a corrected ``transcript``, keeping the timings of words that did not change.

    Unchanged words keep time and confidence; replacement words share the time span of the words they
    replace and get confidence 1.0 (a person wrote them); inserted words sit at the neighbouring
    boundary with no length.
    """
    new_texts = transcript.split()
    old_texts = [w.word for w in words]
    result: list[Word] = []
    matcher = difflib.SequenceMatcher(a=old_texts, b=new_texts, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            result.extend(words[i1:i2])
        elif tag in ("replace", "insert"):
            if i2 > i1:
                start, end = words[i1].start, words[i2 - 1].end
            else:
                start = end = words[i1 - 1].end if i1 > 0 else (words[0].start if words else 0.0)
            count = j2 - j1
            step = (end - start) / count
            for k, text in enumerate(new_texts[j1:j2]):
                result.append(Word(text, round(start + k * step, 3), round(start + (k + 1) * step, 3), 1.0))
    return result


_PUNCTUATION = re.compile(r"[^\w']+|^'+|'+$")


def normalise(token: str) -> str:
    """A word as search compares it: lower case, punctuation stripped."""
    return _PUNCTUATION.sub("", token.lower())


def search_text(words: list[str]) -> str:
    """Words as search compares them, in one string: each normalised, joined and framed by single spaces.

    A normalised word holds no space, so a phrase occurs in the words exactly where
    ``search_text(query)`` occurs in this string: SQLite can find the candidates with ``instr``.
    """
    return " " + " ".join(normalise(w) for w in words) + " "


def phrase_hits(asset_id: str, text: str, words: list[Any], query: list[str]) -> list[dict[str, Any]]:
    """Every place the normalised ``query`` words occur in order in an asset's words, first to last.

    ``text`` is ``search_text`` of the words; ``words`` are ``(word, start, end, confidence)`` sequences.
    """
    needle = search_text(query)
    n = len(query)
    hits: list[dict[str, Any]] = []
    at = text.find(needle)
    while at >= 0:
        first = text.count(" ", 0, at)  # the words before the match, each followed by one space
        matched = words[first : first + n]
        hits.append(
            {
                "asset_id": asset_id,
                "start": matched[0][1],
                "end": matched[-1][2],
                "confidence": round(sum(w[3] for w in matched) / n, 6),
                "text": " ".join(w[0] for w in matched),
            }
        )
        at = text.find(needle, at + 1)  # from the next character: overlapping matches count too
    return hits


def search_words(asset: Asset, query: list[str]) -> list[dict[str, Any]]:
    """Every place the ``query`` words occur in order in ``asset``'s words."""
    words = [(w.word, w.start, w.end, w.confidence) for w in asset.words]
    return phrase_hits(asset.asset_id, search_text([w.word for w in asset.words]), words, query)
