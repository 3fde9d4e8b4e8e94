"""What recognising a file gave, kept by the file's SHA-256: ``brain-local serve --recognition-cache DIR``.

A file recognised once need not be recognised again. A developer re-running a DAG offline on the same calls, or a
test suite that sends the same clips many times, gets the words at once and leaves the recognition processes free.
A cached answer is a real recognition of that media; recognising it anew could differ only as two recognitions
already do (a recognition process adapts its normalisation as it goes, so times and confidences move in the last
digits with what the process recognised before). The key covers the recogniser as well as the media
(pocketsphinx's version and this package's decoding and recognition code), so an upgrade never serves words the
new recogniser would not give. Several servers may share one directory: entries are written whole (a temporary
file renamed into place), and an entry that cannot be read is recognised again.

It runs inside the recognition processes (``recognize_cached`` is what the pool is given), so hashing a long file
never holds the server's event loop. Entries hold transcripts: keep the directory as private as the data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from airflow_provider_brain.local import audio, recognizer
from airflow_provider_brain.local.recognizer import Recognition, Word

#: Bumped when an entry's layout changes: older entries are then recognised again.
LAYOUT = b"brain-recognition-cache/1"
_READ_BLOCK = 1 << 20


@lru_cache(maxsize=1)
def recogniser_fingerprint() -> bytes:
    """What, besides the media, decides the words: the layout, pocketsphinx's version and our recognition code."""
    digest = hashlib.sha256(LAYOUT)
    digest.update(version("pocketsphinx").encode())
    for module in (audio, recognizer):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.digest()


def cache_key(media: Path) -> str:
    """The entry name of ``media``: SHA-256 over the recogniser's fingerprint and the file's bytes."""
    digest = hashlib.sha256(recogniser_fingerprint())
    with media.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def recognize_cached(path: str, cancel_marker: str | None, cache_dir: str | None) -> Recognition:
    """``recognizer.recognize_file``, answered from ``cache_dir`` when this media was recognised before.

    A hit comes back with ``from_cache`` set; a miss is recognised and stored. Media that cannot be decoded
    raises as before and stores nothing. Without a ``cache_dir`` every file is recognised.
    """
    if cache_dir is None:
        return recognizer.recognize_file(path, cancel_marker)
    entry = Path(cache_dir) / f"{cache_key(Path(path))}.json"
    cached = _load(entry)
    if cached is not None:
        return cached
    result = recognizer.recognize_file(path, cancel_marker)
    _store(entry, result)
    return result


def _load(entry: Path) -> Recognition | None:
    try:
        data = json.loads(entry.read_bytes())
        words = [Word(str(w), float(s), float(e), float(c)) for w, s, e, c in data["words"]]
        return Recognition(duration=float(data["duration"]), words=words, from_cache=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, unreadable or from another layout: recognised (again), and the entry written


def _store(entry: Path, result: Recognition) -> None:
    body = {"duration": result.duration, "words": [[w.word, w.start, w.end, w.confidence] for w in result.words]}
    try:
        handle, temporary = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".tmp")
    except OSError:
        return  # a full or read-only cache costs a recognition next time, never this asset's result
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(body, out)
        os.replace(temporary, entry)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
