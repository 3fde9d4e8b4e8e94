"""Upload bodies for ``BrainHook.submit_file``: a path, a file object, an iterable of chunks or a callable
that opens a fresh stream, each turned into something the HTTP client streams, re-openable where possible."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

#: What ``submit_file`` uploads: a path, a binary file, an iterable of byte chunks, or a
#: callable that opens a fresh stream each time (so an upload from e.g. S3 can be retried).
AudioSource = str | os.PathLike[str] | BinaryIO | IO[bytes] | Iterable[bytes] | Callable[[], Any]


class _Opened:
    """Context manager over an upload body: opens a path, rewinds a seekable file, or passes a stream."""

    def __init__(self, body: Any, close: bool, closer: Callable[[], Any] | None = None) -> None:
        self.body = body
        self._close = close
        self._closer = closer

    def __enter__(self) -> Any:
        return self.body

    def __exit__(self, *exc: object) -> None:
        if self._close:
            self.body.close()
        if self._closer is not None:
            self._closer()


def body_opener(source: AudioSource) -> tuple[Any, bool]:
    """Return (a callable giving a fresh upload body per attempt, whether a retry can resend it)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"Audio file to upload to Brain does not exist: {path}")
        return (lambda: _Opened(path.open("rb"), close=True)), True
    if hasattr(source, "read"):
        fileobj = source
        seekable = bool(getattr(fileobj, "seekable", lambda: False)())
        if seekable:
            start = fileobj.tell()  # type: ignore[union-attr,attr-defined]

            def rewind() -> _Opened:
                fileobj.seek(start)  # type: ignore[union-attr,attr-defined]
                return _Opened(fileobj, close=False)

            return rewind, True
        return (lambda: _Opened(_read_chunks(fileobj), close=False)), False  # type: ignore[arg-type]
    if callable(source):
        opener = source

        def reopen() -> _Opened:
            body = opener()
            if hasattr(body, "read"):
                return _Opened(_read_chunks(body), close=False, closer=getattr(body, "close", None))
            return _Opened(iter(body), close=False)

        return reopen, True
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("submit_file streams audio: pass a path, a file object or an iterable of bytes chunks")
    return (lambda: _Opened(iter(source), close=False)), False


def _read_chunks(fileobj: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := fileobj.read(size):
        yield chunk
