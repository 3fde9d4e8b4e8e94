"""Decoding media into the 16 kHz mono 16-bit PCM that pocketsphinx wants, in bounded memory.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis/Opus and MP3 at any rate and channel count; the
audio is read in blocks, mixed down to mono and resampled with soxr's streaming resampler, so a long
file never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_RATE = 16000
#: Seconds of source audio read per block.
BLOCK_SECONDS = 10.0

_MIME_BY_FORMAT = {
    "WAV": "audio/wav",
    "WAVEX": "audio/wav",
    "FLAC": "audio/flac",
    "OGG": "audio/ogg",
    "MP3": "audio/mpeg",
    "MPEG": "audio/mpeg",
    "AIFF": "audio/aiff",
    "AU": "audio/basic",
}


class AudioDecodeError(Exception):
    """The media is not audio that can be decoded; the message says why, briefly."""


@dataclass(frozen=True)
class AudioInfo:
    """What a quick look at a media file's header tells."""

    format: str
    samplerate: int
    channels: int
    duration: float
    mime_type: str


def _reason(exc: Exception) -> str:
    text = getattr(exc, "error_string", None) or str(exc)
    # libsndfile messages sometimes quote the file path; the client needs only the reason.
    return text.split(":")[-1].strip() or exc.__class__.__name__


def probe(path: Path) -> AudioInfo:
    """Read the media header; raise ``AudioDecodeError`` if it is not decodable audio."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for "not audio"
        raise AudioDecodeError(f"audio could not be decoded: {_reason(exc)}") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioDecodeError("audio could not be decoded: no audio stream")
    duration = info.frames / info.samplerate if info.frames > 0 else 0.0
    return AudioInfo(
        format=info.format,
        samplerate=info.samplerate,
        channels=info.channels,
        duration=duration,
        mime_type=_MIME_BY_FORMAT.get(info.format, "application/octet-stream"),
    )


class Pcm16Stream:
    """Iterates a media file as int16 mono blocks at ``TARGET_RATE``; ``duration`` is known at the end."""

    def __init__(self, path: Path, block_seconds: float = BLOCK_SECONDS) -> None:
        self._path = path
        self._block_seconds = block_seconds
        self.source_frames = 0
        self.source_rate = 0

    @property
    def duration(self) -> float:
        """Seconds of source audio read so far (all of it once iteration has finished)."""
        return self.source_frames / self.source_rate if self.source_rate else 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            handle = sf.SoundFile(str(self._path))
        except Exception as exc:
            raise AudioDecodeError(f"audio could not be decoded: {_reason(exc)}") from None
        with handle:
            self.source_rate = handle.samplerate
            block = max(1, int(handle.samplerate * self._block_seconds))
            resampler = (
                soxr.ResampleStream(handle.samplerate, TARGET_RATE, 1, dtype="float32", quality="HQ")
                if handle.samplerate != TARGET_RATE
                else None
            )
            while True:
                try:
                    data = handle.read(block, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioDecodeError(f"audio could not be decoded: {_reason(exc)}") from None
                last = len(data) < block
                self.source_frames += len(data)
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                if resampler is not None:
                    mono = resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
                if len(mono):
                    yield (np.clip(mono, -1.0, 1.0) * 32767.0).astype(np.int16)
                if last:
                    return
