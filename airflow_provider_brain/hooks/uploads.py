"""Upload bodies for ``BrainHook.submit_file``: a path, a file object, an iterable of chunks or a callable
that opens a fresh stream, each turned into something the HTTP client streams, re-openable where possible.

How the body is handed to ``requests`` decides the upload's speed (``bench/upload.py`` measures it):

* A file whose size is known (a path, a seekable file) goes as ``SizedBody``, an iterable of 1 MiB blocks
  with a length, so ``requests`` sends a ``Content-Length`` and urllib3 sends each block as it is. (Given
  the file object itself, urllib3 reads it in 16 KiB blocks: twice the client CPU per byte.)
* A stream whose size is known (``SizedStream``: an S3 object's body with its ``ContentLength``) goes the
  same way, without seeking.
* A stream of unknown size (any other non-seekable file) goes with chunked transfer encoding, in
  64 KiB blocks: urllib3 copies each block to frame it, and with blocks of 256 KiB or more glibc's malloc
  maps and unmaps memory for those copies, page-faulting through the whole upload (about 1 s more CPU
  per GiB, in a fresh process such as a task's).

Either way the client holds a block or two in memory, whatever the upload's size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from airflow_provider_brain.exceptions import BrainError

#: What ``submit_file`` uploads: a path, a binary file, an iterable of byte chunks, or a
#: callable that opens a fresh stream each time (so an upload from e.g. S3 can be retried).
AudioSource = str | os.PathLike[str] | BinaryIO | IO[bytes] | Iterable[bytes] | Callable[[], Any]

#: Read size for a file of known size, sent with ``Content-Length``.
FILE_BLOCK = 1 << 20
#: Read size for a stream of unknown size, sent chunked (see the module docstring for why it is small).
STREAM_BLOCK = 1 << 16


class SizedBody:
    """The next ``size`` bytes of a file, as blocks; its ``len()`` makes ``requests`` send a ``Content-Length``.

    Never sends more than ``size`` (a file that grows during the upload is sent as it was when measured);
    a file that ends sooner raises ``BrainError`` rather than leave the server waiting for missing bytes.
    """

    def __init__(self, fileobj: IO[bytes], size: int) -> None:
        self.fileobj = fileobj
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        remaining = self.size
        while remaining > 0:
            block = self.fileobj.read(min(FILE_BLOCK, remaining))
            if not block:
                raise BrainError(
                    f"The audio to upload ended {remaining} bytes short of the {self.size} it had when the "
                    "upload started: was the file changed while it was being sent?"
                )
            remaining -= len(block)
            yield block


class SizedStream:
    """A non-seekable stream whose length is known, e.g. an S3 object's body and its ``ContentLength``.

    ``submit_file`` sends it like a file of known size (``Content-Length``, 1 MiB blocks), which is faster
    than chunked transfer encoding and lets the server refuse an oversized body before it arrives:

    .. code-block:: python

        def open_object():
            response = s3_client.get_object(Bucket=bucket, Key=key)
            return SizedStream(response["Body"], response["ContentLength"])

        hook.submit_file(open_object, async_=True)
    """

    def __init__(self, reader: Any, size: int) -> None:
        self.reader = reader
        self.size = int(size)

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.reader.read(size)
        return data

    def close(self) -> None:
        close = getattr(self.reader, "close", None)
        if close is not None:
            close()


class _Opened:
    """Context manager over one attempt's upload body; closes what the attempt opened, if anything."""

    def __init__(self, body: Iterable[bytes], closer: Callable[[], Any] | None = None) -> None:
        self.body = body
        self._closer = closer

    def __enter__(self) -> Iterable[bytes]:
        return self.body

    def __exit__(self, *exc: object) -> None:
        if self._closer is not None:
            self._closer()


def body_opener(source: AudioSource) -> tuple[Callable[[], _Opened], bool]:
    """Return (a callable giving a fresh upload body per attempt, whether a retry can resend it)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"Audio file to upload to Brain does not exist: {path}")

        def open_path() -> _Opened:
            handle = path.open("rb")
            return _Opened(_file_body(handle), handle.close)

        return open_path, True
    if hasattr(source, "read"):
        fileobj: Any = source
        if _seekable(fileobj):
            start = fileobj.tell()

            def rewind() -> _Opened:
                fileobj.seek(start)
                return _Opened(_file_body(fileobj))

            return rewind, True
        return (lambda: _Opened(_file_body(fileobj))), False
    if callable(source):
        opener = source

        def reopen() -> _Opened:
            body = opener()
            if hasattr(body, "read"):
                return _Opened(_file_body(body), getattr(body, "close", None))
            return _Opened(iter(body))

        return reopen, True
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("submit_file streams audio: pass a path, a file object or an iterable of bytes chunks")
    return (lambda: _Opened(iter(source))), False


def _seekable(fileobj: Any) -> bool:
    return bool(getattr(fileobj, "seekable", lambda: False)())


def _file_body(fileobj: Any) -> Iterable[bytes]:
    """A file from where it stands: sized to its end if it can seek, or by its ``SizedStream`` length, else a
    stream of unknown size."""
    if isinstance(fileobj, SizedStream):
        return SizedBody(fileobj.reader, fileobj.size)
    if _seekable(fileobj):
        start = fileobj.tell()
        end = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(start)
        return SizedBody(fileobj, end - start)
    return _read_chunks(fileobj)


def _read_chunks(fileobj: IO[bytes], size: int = STREAM_BLOCK) -> Iterator[bytes]:
    while chunk := fileobj.read(size):
        yield chunk
