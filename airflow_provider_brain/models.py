"""Typed views of the Brain API's JSON.

The hook parses every response here, once, at the edge; operators, sensors, triggers and
transfers work with these objects, not with dicts. Unknown fields a real service may add
are kept in ``raw`` rather than rejected.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from airflow_provider_brain.exceptions import BrainAPIError, redact_urls

ASSET_ID_PATTERN = re.compile(r"[0-9a-f]{16}")


def parse_api_time(value: str | None) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z`` or an offset; naive means UTC) as an aware UTC ``datetime``;
    ``None`` if absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def validate_asset_id(asset_id: object) -> str:
    """Return ``asset_id`` if it is 16 lowercase hex digits, else raise ``ValueError``.

    Asset ids end up in URL paths; checking them first keeps a stray ``../`` or a templated
    value that did not render (``"{{ ti.xcom_pull(...) }}"``) from reaching the server.
    """
    if not isinstance(asset_id, str) or not ASSET_ID_PATTERN.fullmatch(asset_id):
        raise ValueError(f"Invalid Brain asset id {asset_id!r}: expected 16 lowercase hexadecimal digits")
    return asset_id


class AssetStatus(StrEnum):
    """Where an asset is in its life."""

    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Word:
    """One recognised word, with its time span in seconds from the start of the media.

    Its repr shows the timing and confidence only: a word is part of what someone said.
    """

    word: str = field(repr=False)
    start: float
    end: float
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        """The word as the API's JSON spells it (``word``, ``start``, ``end``, ``confidence``)."""
        return {"word": self.word, "start": self.start, "end": self.end, "confidence": self.confidence}


@dataclass(frozen=True)
class Asset:
    """One submitted media file and, once done, its transcript.

    ``words`` is filled only when the asset was fetched with ``times=True``.
    ``raw`` keeps the JSON exactly as the server sent it, unknown fields included.
    """

    asset_id: str
    status: AssetStatus
    transcript: str | None = None
    confidence: tuple[float, ...] = ()
    duration: float | None = None
    words: tuple[Word, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    content_url: str | None = None
    created: str | None = None
    completed: str | None = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        # Ids, status and sizes only: a transcript, its words or metadata values in a log line, a debugger or an
        # exception message would leak what was said (often personal data).
        words = "None" if self.words is None else str(len(self.words))
        return (
            f"Asset(asset_id={self.asset_id!r}, status={self.status.value!r}, duration={self.duration!r}, "
            f"word_count={self.word_count}, words={words}, metadata_keys={sorted(self.metadata)!r}, "
            f"error={self.error!r})"
        )

    @property
    def is_done(self) -> bool:
        return self.status is AssetStatus.DONE

    @property
    def is_failed(self) -> bool:
        return self.status is AssetStatus.FAILED

    @property
    def is_processing(self) -> bool:
        return self.status is AssetStatus.PROCESSING

    @property
    def word_count(self) -> int:
        return len(self.transcript.split()) if self.transcript else 0

    @property
    def mean_confidence(self) -> float | None:
        return sum(self.confidence) / len(self.confidence) if self.confidence else None

    def deadline(self, timeout: float) -> float:
        """When a wait of ``timeout`` seconds from the asset's creation ends (``time.time()`` seconds): one
        deadline for every try of a task and every restart of a trigger. From now if the server gave no time."""
        created = parse_api_time(self.created)
        return (created.timestamp() if created else time.time()) + timeout

    def summary(self) -> dict[str, Any]:
        """A small JSON-serialisable description for XCom and logs: ids, status, sizes; no transcript."""
        return {
            "asset_id": self.asset_id,
            "status": self.status.value,
            "duration": self.duration,
            "word_count": self.word_count,
        }

    def task_result(self, *, source: str, times: bool = False, transcript: bool = False) -> dict[str, Any]:
        """What a transcribe task returns for XCom: ``summary()``, ``source`` and ``audio_seconds``, plus word timings
        if ``times`` (and the asset was fetched with them) and the transcript only if ``transcript``."""
        result: dict[str, Any] = {**self.summary(), "source": source, "audio_seconds": self.duration or 0.0}
        if transcript:
            result["transcript"] = self.transcript
        if times and self.words is not None:
            result["words"] = [w.as_dict() for w in self.words]
        return result

    @classmethod
    def from_json(cls, data: object) -> Asset:
        """Parse one asset object of the API; raise ``BrainAPIError`` for JSON that is not one."""
        if not isinstance(data, Mapping):
            raise BrainAPIError(f"Expected an asset JSON object from Brain, got {type(data).__name__}")
        asset_id = data.get("asset_id")
        try:
            validate_asset_id(asset_id)
        except ValueError as err:
            raise BrainAPIError(f"Brain returned an asset with an invalid id: {err}") from None
        status = _parse_status(data)
        words = data.get("words")
        return cls(
            asset_id=str(asset_id),
            status=status,
            transcript=data.get("transcript"),
            confidence=tuple(float(c) for c in data.get("confidence") or ()),
            duration=_optional_float(data.get("duration")),
            words=tuple(_parse_word(w, i, str(asset_id)) for i, w in enumerate(words))
            if isinstance(words, list)
            else None,
            metadata=dict(data.get("metadata") or {}),
            content_url=data.get("content_url"),
            created=data.get("created"),
            completed=data.get("completed"),
            # Untrusted server text: a download error may quote the presigned URL it was given.
            error=redact_urls(str(data["error"])) if data.get("error") else None,
            raw=dict(data),
        )


def _parse_status(data: Mapping[str, Any]) -> AssetStatus:
    raw_status = data.get("status")
    if raw_status is None:
        # The seed guide's synchronous answer has no status: a transcript means it is done.
        if "transcript" in data:
            return AssetStatus.DONE
        raise BrainAPIError(f"Brain asset {data.get('asset_id')} has neither a status nor a transcript")
    try:
        return AssetStatus(raw_status)
    except ValueError:
        raise BrainAPIError(
            f"Brain asset {data.get('asset_id')} has an unknown status {raw_status!r} "
            f"(expected one of: {', '.join(s.value for s in AssetStatus)})"
        ) from None


def _parse_word(item: object, index: int, asset_id: str) -> Word:
    """Entry ``index`` of an asset's ``words``. The contract gives every word its text, start, end and
    confidence: an entry without one (or with one that is not a number) is a malformed answer, not a word at
    0 s. The message names the asset and the word's position, never the word."""
    where = f"Brain asset {asset_id}: word {index} in 'words'"
    if not isinstance(item, Mapping):
        raise BrainAPIError(f"{where} is not a word object but a {type(item).__name__}")
    numbers = {}
    for name in ("start", "end", "confidence"):
        value = item.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = "missing" if value is None else f"a {type(value).__name__}"
            raise BrainAPIError(f"{where} has no numeric {name!r} ({shown}): the answer is malformed")
        numbers[name] = float(value)
    return Word(word=str(item.get("word", "")), **numbers)


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
