"""Speech recognition with pocketsphinx, run inside worker processes.

Each worker process builds its ``Decoder`` once (``init_worker`` is the pool's initializer: loading the
US-English model shipped in the pocketsphinx wheel takes about half a second) and then recognises files
with ``recognize_file``. Long audio is cut into utterances of at most ``MAX_UTTERANCE_SECONDS`` at the
quietest moment near the limit, which keeps the decoder's memory and search time bounded.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from airflow_provider_brain.local.audio import TARGET_RATE, Pcm16Stream

FRAMES_PER_SECOND = 100
MAX_UTTERANCE_SECONDS = 30.0
#: Where in the last seconds of a full buffer to look for a quiet cut point.
CUT_SEARCH_SECONDS = 5.0

PR_SET_PDEATHSIG = 1
_VARIANT = re.compile(r"\(\d+\)$")
_decoder: Any = None


class RecognitionCancelled(Exception):
    """The asset was deleted while its file was being recognised: stop, and free the worker process."""


@dataclass(frozen=True)
class Word:
    """One recognised word: text, start and end in seconds, confidence in [0, 1] (the text is kept out of
    the repr: what was said does not reach a log line or a traceback)."""

    word: str = field(repr=False)
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Recognition:
    """What recognising one file gives: the audio's duration and its words in order (``from_cache``: answered by
    ``--recognition-cache`` without recognising)."""

    duration: float
    words: list[Word] = field(repr=False)
    from_cache: bool = False


def exit_with_parent() -> None:
    """End this worker when the server process dies, even by SIGKILL, instead of lingering as an orphan."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="brain-parent-watch", daemon=True).start()


def init_worker() -> None:
    """Build this process's decoder (the pool initializer)."""
    global _decoder
    from pocketsphinx import Decoder

    exit_with_parent()
    # Ctrl-C in a terminal, or a SIGTERM to the whole process group, must not kill a worker under the
    # server's feet (its asset would count as crashed); the server ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _decoder = Decoder(samprate=TARGET_RATE, loglevel="FATAL")


def warm_up() -> bool:
    """A no-op task: submitting one per worker makes the pool start its processes before traffic."""
    return _decoder is not None


def clean_word(token: str) -> str | None:
    """Return the word a decoder token stands for, or None for fillers (``<s>``, ``<sil>``, ``[NOISE]``)."""
    if not token or token[0] in "<[+" or token.endswith("]") or token.endswith(">"):
        return None
    return _VARIANT.sub("", token) or None


def _decode_utterance(pcm: np.ndarray, offset: float) -> list[Word]:
    decoder = _decoder
    if decoder is None:
        init_worker()
        decoder = _decoder
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), False, True)
    decoder.end_utt()
    words: list[Word] = []
    for seg in decoder.seg():
        text = clean_word(seg.word)
        if text is None:
            continue
        start = offset + seg.start_frame / FRAMES_PER_SECOND
        end = offset + (seg.end_frame + 1) / FRAMES_PER_SECOND
        # The posterior can exceed 1.0 by rounding in log-space arithmetic.
        confidence = min(1.0, max(0.0, float(seg.prob)))
        words.append(Word(text, round(start, 3), round(end, 3), round(confidence, 6)))
    return words


def _quiet_cut(pcm: np.ndarray) -> int:
    """Index (within ``pcm``) of the quietest 100 ms in its last ``CUT_SEARCH_SECONDS``."""
    hop = TARGET_RATE // FRAMES_PER_SECOND
    begin = max(0, len(pcm) - int(CUT_SEARCH_SECONDS * TARGET_RATE))
    region = pcm[begin:].astype(np.float32)
    frames = len(region) // hop
    if frames < 10:
        return len(pcm)
    energy = (region[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    smoothed = np.convolve(energy, np.ones(10) / 10, mode="same")
    return begin + int(np.argmin(smoothed)) * hop + hop // 2


def recognize_file(path: str, cancel_marker: str | None = None) -> Recognition:
    """Transcribe one media file; raises ``AudioDecodeError`` if it is not decodable audio.

    :param cancel_marker: a file whose appearance means "stop": checked before each block of audio is
        taken (one stat; between utterances, so a stop comes within one utterance's decoding at most), and
        ``RecognitionCancelled`` is raised.
    """
    stream = Pcm16Stream(Path(path))
    limit = int(MAX_UTTERANCE_SECONDS * TARGET_RATE)
    buffer = np.empty(0, dtype=np.int16)
    consumed = 0
    words: list[Word] = []
    for block in stream:
        if cancel_marker and os.path.exists(cancel_marker):
            raise RecognitionCancelled(path)
        buffer = np.concatenate([buffer, block])
        while len(buffer) >= limit:
            cut = _quiet_cut(buffer[:limit])
            words.extend(_decode_utterance(buffer[:cut], consumed / TARGET_RATE))
            consumed += cut
            buffer = buffer[cut:]
    if len(buffer) >= TARGET_RATE // 10:
        words.extend(_decode_utterance(buffer, consumed / TARGET_RATE))
    duration = stream.duration
    # Keep every time inside the media even when the resampler's tail rounds a frame past the end.
    words = [Word(w.word, min(w.start, duration), min(max(w.end, w.start), duration), w.confidence) for w in words]
    return Recognition(duration=round(duration, 3), words=words)
