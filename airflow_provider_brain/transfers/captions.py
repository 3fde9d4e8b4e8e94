"""Captions from word timings: cues a captioner would accept, written as SubRip (``.srt``) or WebVTT (``.vtt``).

Pure functions, standard library only. ``asset_cues`` turns a done asset's words into ``Cue`` objects within
``CaptionLimits`` (characters per line, lines per cue, a cue's longest duration, the pause that starts a new
cue); ``render_srt`` and ``render_vtt`` write them out.

.. code-block:: python

    cues = asset_cues(hook.get_asset(asset_id, times=True), CaptionLimits(max_line_chars=37))
    Path("talk.vtt").write_text(render_vtt(cues), encoding="utf-8")

What the cues guarantee: times in whole milliseconds, never negative, never past the audio's duration (when the
asset has one), in order and never overlapping (a cue ends at or before the next one starts), and every word of
the transcript in order, none dropped or split. A word longer than a line gets a line of its own; a single word
that lasts longer than ``max_cue_seconds`` gets a cue of its own, as long as the word. An asset with no words
gives no cues: an empty ``.srt`` file and a ``.vtt`` file that is just its ``WEBVTT`` header.

Errors name the asset and the word's position, never a word: transcripts are often personal data, and so is
a ``Cue``'s text (its repr shows times and sizes only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.models import Asset, Word

#: Common broadcast and streaming guidelines: 42 characters a line, two lines, at most about 7 seconds on screen.
DEFAULT_MAX_LINE_CHARS = 42
DEFAULT_MAX_LINES = 2
DEFAULT_MAX_CUE_SECONDS = 7.0
#: A silence longer than this between two words ends a cue: the next words are a new thought.
DEFAULT_MAX_PAUSE_SECONDS = 1.0

SRT_CONTENT_TYPE = "application/x-subrip"
VTT_CONTENT_TYPE = "text/vtt"


class CaptionTimingError(BrainError, ValueError):
    """A word has no usable start and end time, so no caption can say when to show it.

    ``asset_id`` (``None`` for words that came from no asset) and ``word_index`` (0-based; ``None`` when no
    word has a timing) say which word; the message never quotes the word itself.
    """

    def __init__(self, asset_id: str | None, word_index: int | None, reason: str) -> None:
        self.asset_id = asset_id
        self.word_index = word_index
        where = f"Brain asset {asset_id}" if asset_id else "Words"
        which = "" if word_index is None else f": word {word_index}"
        super().__init__(f"{where}{which} {reason}; captions need a start and an end time for every word")


@dataclass(frozen=True)
class CaptionLimits:
    """How much a cue may hold and for how long.

    :param max_line_chars: characters a line may hold (a single longer word gets a line of its own).
    :param max_lines: lines a cue may hold.
    :param max_cue_seconds: how long a cue may last, from its first word's start to its last word's end.
    :param max_pause_seconds: a silence between two words longer than this starts a new cue.
    """

    max_line_chars: int = DEFAULT_MAX_LINE_CHARS
    max_lines: int = DEFAULT_MAX_LINES
    max_cue_seconds: float = DEFAULT_MAX_CUE_SECONDS
    max_pause_seconds: float = DEFAULT_MAX_PAUSE_SECONDS

    def __post_init__(self) -> None:
        for name in ("max_line_chars", "max_lines"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        for name in ("max_cue_seconds", "max_pause_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a number of seconds above 0, got {value!r}")


@dataclass(frozen=True, repr=False)
class Cue:
    """One caption on screen: from ``start_ms`` to ``end_ms`` (milliseconds from the start of the audio), ``lines``."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]

    def __repr__(self) -> str:
        # Times and sizes only: the text is what someone said.
        return f"Cue(start_ms={self.start_ms}, end_ms={self.end_ms}, lines={len(self.lines)}, chars={self.chars})"

    @property
    def chars(self) -> int:
        return sum(len(line) for line in self.lines)

    @property
    def words(self) -> list[str]:
        return [word for line in self.lines for word in line.split(" ")]


def asset_cues(asset: Asset, limits: CaptionLimits | None = None) -> list[Cue]:
    """The cues of a done asset fetched with ``times=True``, within ``limits`` and the asset's duration.

    Raises ``CaptionTimingError`` naming the asset when it has words but no timings (fetched without
    ``times=True``), or when a word's times are not a span within the audio. (A word without a start or an end
    never gets here: ``Asset.from_json`` refuses it as a malformed answer, ``BrainAPIError``.)
    """
    if asset.words is None:
        if asset.word_count == 0:
            return []
        raise CaptionTimingError(asset.asset_id, None, "has words but no word timings (fetch it with times=True)")
    return build_cues(asset.words, duration=asset.duration, limits=limits, asset_id=asset.asset_id)


def build_cues(
    words: Sequence[Word],
    *,
    duration: float | None = None,
    limits: CaptionLimits | None = None,
    asset_id: str | None = None,
) -> list[Cue]:
    """Group ``words`` (in spoken order) into cues, greedily: each word joins the current line if it fits, else a
    new line of the cue, else a new cue. A new cue also starts after a pause longer than ``max_pause_seconds``
    and before a word that would make the cue last longer than ``max_cue_seconds``.

    Times are clamped into ``[0, duration]`` (``duration=None``: no upper bound) and, where words overlap, a cue
    starts where the previous one ends. A word's inner whitespace becomes one space; a word with no text shows
    nothing and is left out. ``asset_id`` only names the asset in a ``CaptionTimingError``.
    """
    limits = limits or CaptionLimits()
    max_ms = _floor_ms(duration) if duration is not None and math.isfinite(duration) and duration >= 0 else None
    max_cue_ms = _floor_ms(limits.max_cue_seconds)
    max_pause_ms = _floor_ms(limits.max_pause_seconds)

    cues: list[Cue] = []
    lines: list[str] = []
    cue_start = cue_end = previous_end = 0

    def close_cue() -> None:
        nonlocal previous_end
        cues.append(Cue(cue_start, cue_end, tuple(lines)))
        previous_end = cue_end

    for index, word in enumerate(words):
        start_ms, end_ms = _word_span_ms(word, index, asset_id, max_ms)
        text = " ".join(word.word.split())
        if not text:
            continue
        if lines:
            fits_in_time = start_ms - cue_end <= max_pause_ms and max(end_ms, cue_end) - cue_start <= max_cue_ms
            if fits_in_time and len(lines[-1]) + 1 + len(text) <= limits.max_line_chars:
                lines[-1] = f"{lines[-1]} {text}"
                cue_end = max(cue_end, end_ms)
                continue
            if fits_in_time and len(lines) < limits.max_lines:
                lines.append(text)
                cue_end = max(cue_end, end_ms)
                continue
            close_cue()
        lines = [text]
        cue_start = max(start_ms, previous_end)
        cue_end = max(end_ms, cue_start)
    if lines:
        close_cue()
    return cues


def _word_span_ms(word: Word, index: int, asset_id: str | None, max_ms: int | None) -> tuple[int, int]:
    start, end = word.start, word.end
    for value in (start, end):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CaptionTimingError(asset_id, index, "has a start or end that is not a time")
    if start < 0:
        raise CaptionTimingError(asset_id, index, "starts before the audio does")
    if end < start:
        raise CaptionTimingError(asset_id, index, "ends before it starts")
    start_ms, end_ms = round(start * 1000), round(end * 1000)
    if max_ms is not None:
        start_ms, end_ms = min(start_ms, max_ms), min(end_ms, max_ms)
    return start_ms, end_ms


def _floor_ms(seconds: float) -> int:
    # The last whole millisecond inside a span; the tolerance keeps 1.001 s (1000.9999... ms) at 1001.
    return math.floor(seconds * 1000 + 1e-6)


def format_srt_time(ms: int) -> str:
    """``HH:MM:SS,mmm`` (hours grow past two digits if they must)."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"


def format_vtt_time(ms: int) -> str:
    """``HH:MM:SS.mmm``."""
    return format_srt_time(ms).replace(",", ".")


def render_srt(cues: Iterable[Cue]) -> str:
    """SubRip text: numbered cues from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line after each.

    No cues give an empty string (an empty ``.srt`` file: nothing to show).
    """
    blocks = [
        f"{number}\n{format_srt_time(cue.start_ms)} --> {format_srt_time(cue.end_ms)}\n" + "\n".join(cue.lines)
        for number, cue in enumerate(cues, start=1)
    ]
    return "".join(block + "\n\n" for block in blocks)


def render_vtt(cues: Iterable[Cue]) -> str:
    """WebVTT text: the ``WEBVTT`` header, then each cue as ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` and its lines.

    ``&``, ``<`` and ``>`` in the text are escaped (WebVTT reads them as markup, and ``-->`` would end a cue's
    text). No cues give just the header, which is a valid, empty WebVTT file.
    """
    parts = ["WEBVTT\n"]
    for cue in cues:
        text = "\n".join(_escape_vtt(line) for line in cue.lines)
        parts.append(f"\n{format_vtt_time(cue.start_ms)} --> {format_vtt_time(cue.end_ms)}\n{text}\n")
    return "".join(parts)


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
