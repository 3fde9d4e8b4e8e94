"""What ``POST /v1/listen`` is asked (its query options) and what it answers (``ListenV1Response``).

Only the options that change the answer of our recogniser act: ``punctuate``/``smart_format`` (a capital
after each pause and a full stop before it, ``I`` capitalised, in ``punctuated_word`` and the transcript),
``utterances`` (words grouped at pauses of ``utt_split`` seconds), ``tag`` (echoed in ``metadata.tags``) and
``extra`` (``key:value`` pairs echoed in ``metadata.extra``). The rest are accepted and ignored, as a model
that cannot do them would; a ``language`` other than English is refused, since the recogniser hears no other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from airflow_provider_brain.local.assets import Asset
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.http_input import flag
from airflow_provider_brain.local.recognizer import Word

#: The one model there is, under a stable uuid (Deepgram names models by uuid in ``metadata.models``).
MODEL_NAME = "pocketsphinx-en-us"
MODEL_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "brain-local/pocketsphinx/en-us"))
MODEL_INFO = {MODEL_UUID: {"name": MODEL_NAME, "version": "5.1.1", "arch": "pocketsphinx"}}
#: Deepgram's default ``utt_split``: seconds of silence that end an utterance.
DEFAULT_UTT_SPLIT = 0.8
#: A pause this long ends a sentence for ``punctuate``.
SENTENCE_PAUSE = 0.5
_BOOLEANS = ("punctuate", "smart_format", "utterances")


@dataclass(frozen=True)
class ListenOptions:
    """The options of one listen request that shape its answer (stored with it as JSON)."""

    punctuate: bool = False
    utterances: bool = False
    utt_split: float = DEFAULT_UTT_SPLIT
    tag: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()
    model: str | None = None
    language: str | None = None

    @classmethod
    def parse(cls, params: QueryParams) -> ListenOptions:
        """Read the query string; 400 for a malformed boolean, ``utt_split`` or ``extra``, or a foreign language."""
        values = {name: flag(params.get(name), name) for name in _BOOLEANS}
        language = params.get("language")
        if language and language.lower() not in ("en", "en-us") and not language.lower().startswith("en-"):
            raise ApiError(400, f"language {language!r} is not available: this server recognises English only")
        utt_split = DEFAULT_UTT_SPLIT
        if params.get("utt_split"):
            try:
                utt_split = float(params["utt_split"])
            except ValueError:
                raise ApiError(400, "utt_split must be a number of seconds") from None
        extra = []
        for item in params.getlist("extra"):
            key, sep, value = item.partition(":")
            if not sep or not key:
                raise ApiError(400, "extra must be key:value")
            extra.append((key, value))
        return cls(
            punctuate=values["punctuate"] or values["smart_format"],
            utterances=values["utterances"],
            utt_split=utt_split,
            tag=tuple(params.getlist("tag")),
            extra=tuple(extra),
            model=params.get("model"),
            language=language,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "punctuate": self.punctuate,
            "utterances": self.utterances,
            "utt_split": self.utt_split,
            "tag": list(self.tag),
            "extra": [list(pair) for pair in self.extra],
            "model": self.model,
            "language": self.language,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ListenOptions:
        return cls(
            punctuate=bool(data.get("punctuate")),
            utterances=bool(data.get("utterances")),
            utt_split=float(data.get("utt_split", DEFAULT_UTT_SPLIT)),
            tag=tuple(data.get("tag") or ()),
            extra=tuple((k, v) for k, v in data.get("extra") or ()),
            model=data.get("model"),
            language=data.get("language"),
        )


def _runs(words: list[Word], pause: float) -> list[range]:
    """The positions of the words, in runs separated by silences of at least ``pause`` seconds."""
    runs: list[range] = []
    for i, word in enumerate(words):
        if runs and word.start - words[i - 1].end < pause:
            runs[-1] = range(runs[-1].start, i + 1)
        else:
            runs.append(range(i, i + 1))
    return runs


def punctuated(words: list[Word]) -> list[str]:
    """Each word as ``punctuated_word``: a capital after a pause, a full stop before one, ``I`` upper case."""
    out = [w.word for w in words]
    for i, text in enumerate(out):
        if text == "i" or text.startswith("i'"):
            out[i] = text.capitalize()
    for run in _runs(words, SENTENCE_PAUSE):
        out[run.start] = out[run.start][:1].upper() + out[run.start][1:]
        out[run[-1]] += "."
    return out


def _word_json(word: Word, shown: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"word": word.word, "start": word.start, "end": word.end, "confidence": word.confidence}
    if shown is not None:
        body["punctuated_word"] = shown
    return body


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 6) if values else 0.0


def listen_response(asset: Asset, request_id: str, created: str, sha256: str, options: ListenOptions) -> dict[str, Any]:
    """The ``ListenV1Response`` of a done asset: one channel, one alternative, its words and timings."""
    words = asset.words
    shown: list[str | None] = list(punctuated(words)) if options.punctuate else [None] * len(words)
    transcript = " ".join(s or w.word for s, w in zip(shown, words, strict=True))
    word_items = [_word_json(w, s) for w, s in zip(words, shown, strict=True)]
    metadata: dict[str, Any] = {
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": created,
        "duration": asset.duration or 0.0,
        "channels": 1,
        "models": [MODEL_UUID],
        "model_info": MODEL_INFO,
    }
    if options.tag:
        metadata["tags"] = list(options.tag)
    if options.extra:
        metadata["extra"] = dict(options.extra)
    alternative = {"transcript": transcript, "confidence": _mean([w.confidence for w in words]), "words": word_items}
    results: dict[str, Any] = {"channels": [{"alternatives": [alternative]}]}
    if options.utterances:
        results["utterances"] = _utterances(words, shown, options.utt_split, request_id)
    return {"metadata": metadata, "results": results}


def _utterances(words: list[Word], shown: list[str | None], pause: float, request_id: str) -> list[dict[str, Any]]:
    utterances = []
    for number, run in enumerate(_runs(words, pause)):
        utterances.append(
            {
                "start": words[run.start].start,
                "end": words[run[-1]].end,
                "confidence": _mean([words[i].confidence for i in run]),
                "channel": 0,
                "transcript": " ".join(shown[i] or words[i].word for i in run),
                "words": [_word_json(words[i], shown[i]) for i in run],
                "id": str(uuid.uuid5(uuid.UUID(request_id), str(number))),
            }
        )
    return utterances


def request_summary(asset: Asset | None, options: ListenOptions, callback: str | None) -> dict[str, Any]:
    """The ``response`` of a request in the management API: its outcome and what it was asked, no transcript."""
    details: dict[str, Any] = {
        "duration": asset.duration if asset is not None and asset.duration is not None else 0.0,
        "channels": 1,
        "streams": 1,
        "method": "async" if callback else "sync",
        "models": [MODEL_UUID],
        "tags": list(options.tag),
        "features": [name for name in ("punctuate", "utterances") if getattr(options, name)],
    }
    body: dict[str, Any] = {"details": details}
    if asset is not None and asset.completed:
        body["completed"] = asset.completed
    return body
