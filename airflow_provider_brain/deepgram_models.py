"""A typed view of Deepgram's ``ListenV1Response``, parsed once at the edge like the Brain models.

``DeepgramResult`` holds what the provider uses (the request id, duration, the first channel's best
alternative, its words and timings) and the JSON as Deepgram sent it (``raw``, written whole to the object
store). Its repr shows ids and sizes only: never the transcript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_brain.exceptions import BrainAPIError
from airflow_provider_brain.models import Asset, AssetStatus, Word


@dataclass(frozen=True)
class DeepgramResult:
    """One ``POST /v1/listen`` answer: metadata, the first channel's first alternative, and the JSON itself."""

    request_id: str
    created: str | None
    duration: float
    transcript: str = field(repr=False)
    confidence: float | None
    words: tuple[Word, ...] = field(repr=False)
    tags: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def word_count(self) -> int:
        return len(self.words)

    def summary(self) -> dict[str, Any]:
        """Ids and sizes for XCom and logs (no transcript)."""
        return {
            "request_id": self.request_id,
            "duration": self.duration,
            "word_count": self.word_count,
            "confidence": self.confidence,
        }

    def to_asset(self, metadata: Mapping[str, Any]) -> Asset:
        """The result as the provider's transcript model (what the S3 and SQL transfers load): a done ``Asset``
        whose id is the request id, with Deepgram's transcript, its words and timings, and per-word confidences.

        :param metadata: what the asset's metadata records (``source``, ``dag_id``, ``task_id``, ``run_id``).
        """
        return Asset(
            asset_id=self.request_id,
            status=AssetStatus.DONE,
            transcript=self.transcript,
            confidence=tuple(word.confidence for word in self.words),
            duration=self.duration,
            words=self.words,
            metadata={**metadata, "deepgram_request_id": self.request_id},
            created=self.created,
            completed=self.created,
            raw=self.raw,
        )

    @classmethod
    def from_json(cls, data: object) -> DeepgramResult:
        """Parse a ``ListenV1Response``; ``BrainAPIError`` naming the missing part for anything else."""
        if not isinstance(data, Mapping) or not isinstance(data.get("metadata"), Mapping):
            raise BrainAPIError("Deepgram's listen answer has no 'metadata' object: not a ListenV1Response")
        meta = data["metadata"]
        request_id = meta.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise BrainAPIError("Deepgram's listen answer has no metadata.request_id")
        channels = (data.get("results") or {}).get("channels") or []
        alternatives = (channels[0].get("alternatives") or []) if channels else []
        best: Mapping[str, Any] = alternatives[0] if alternatives else {}
        words = tuple(_word(item, index, request_id) for index, item in enumerate(best.get("words") or []))
        confidence = best.get("confidence")
        return cls(
            request_id=request_id,
            created=meta.get("created"),
            duration=float(meta.get("duration") or 0.0),
            transcript=str(best.get("transcript") or ""),
            confidence=float(confidence) if isinstance(confidence, int | float) else None,
            words=words,
            tags=tuple(str(t) for t in meta.get("tags") or ()),
            raw=dict(data),
        )


def _word(item: object, index: int, request_id: str) -> Word:
    """Word ``index`` (its plain ``word``, as Brain's words are; the punctuated form stays in ``raw``)."""
    where = f"Deepgram request {request_id}: word {index}"
    if not isinstance(item, Mapping):
        raise BrainAPIError(f"{where} is not a word object")
    numbers = {}
    for name in ("start", "end", "confidence"):
        value = item.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BrainAPIError(f"{where} has no numeric {name!r}: the answer is malformed")
        numbers[name] = float(value)
    return Word(word=str(item.get("word", "")), **numbers)
