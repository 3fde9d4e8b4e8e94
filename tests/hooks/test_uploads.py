"""Upload bodies against the real local server: a known size goes with Content-Length, a stream chunked,
a retry after a cut re-sends the whole source, and a file that ends early fails instead of hanging."""

from __future__ import annotations

import io
import random
import wave

import pytest

from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.uploads import FILE_BLOCK, SizedStream
from tests.fixtures.faults import Fault

FRAMES = 700_000  # 2.8 MB of 16-bit stereo: several blocks, and not a whole number of them


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> bytes:
    """A valid WAV of noise (short at 192 kHz), so a shifted or repeated block shows in the stored media."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(192_000)
        wav.writeframes(random.Random(17).randbytes(FRAMES * 4))
    assert len(out.getvalue()) > 2 * FILE_BLOCK
    return out.getvalue()


class Reader:
    """A non-seekable reader, like an S3 object's ``StreamingBody``: ``read(size)`` and ``close()`` only."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)

    def close(self) -> None:
        self.closed = True


def fast_hook() -> BrainHook:
    return BrainHook(retry_backoff=0.05, retry_backoff_max=0.2)


def record_requests(hook: BrainHook) -> list[dict[str, str]]:
    """The headers of every request the hook's session sends from now on (that got an answer)."""
    sent: list[dict[str, str]] = []
    hook.transport.session.hooks["response"].append(lambda response, **_: sent.append(dict(response.request.headers)))
    return sent


def stored_media(brain_server, asset_id: str) -> bytes:
    with brain_server.client() as client:
        answer = client.get(f"/assets/{asset_id}/content")
        answer.raise_for_status()
        return answer.content


def test_path_is_sent_with_content_length(brain_conn, brain_server, audio, tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(audio)
    hook = BrainHook()
    sent = record_requests(hook)
    asset = hook.submit_file(path, async_=True)
    assert sent[0]["Content-Length"] == str(len(audio))
    assert "Transfer-Encoding" not in sent[0]
    assert stored_media(brain_server, asset.asset_id) == audio


@pytest.mark.parametrize("given", ["file", "callable"])
def test_seekable_file_sends_what_follows_its_position(brain_conn, brain_server, audio, given):
    def open_file() -> io.BytesIO:
        handle = io.BytesIO(b"a header of another format" + audio)
        handle.seek(len(b"a header of another format"))
        return handle

    hook = BrainHook()
    sent = record_requests(hook)
    asset = hook.submit_file(open_file() if given == "file" else open_file, async_=True)
    assert sent[0]["Content-Length"] == str(len(audio))
    assert stored_media(brain_server, asset.asset_id) == audio


def test_stream_of_unknown_size_is_sent_chunked(brain_conn, brain_server, audio):
    reader = Reader(audio)
    hook = BrainHook()
    sent = record_requests(hook)
    asset = hook.submit_file(lambda: reader, async_=True)
    assert sent[0]["Transfer-Encoding"] == "chunked" and "Content-Length" not in sent[0]
    assert reader.closed
    assert stored_media(brain_server, asset.asset_id) == audio


def test_stream_of_known_size_is_sent_with_content_length(brain_conn, brain_server, audio):
    """An S3 body with its ContentLength, as BrainTranscribeOperator(s3_transfer="stream") passes it."""
    reader = Reader(audio)
    hook = BrainHook()
    sent = record_requests(hook)
    asset = hook.submit_file(lambda: SizedStream(reader, len(audio)), async_=True)
    assert sent[0]["Content-Length"] == str(len(audio)) and "Transfer-Encoding" not in sent[0]
    assert reader.closed
    assert stored_media(brain_server, asset.asset_id) == audio


@pytest.mark.parametrize("kind", ["path", "stream"])
def test_upload_cut_after_a_block_is_resent_whole(brain_conn, brain_server, fault_proxy, audio, tmp_path, kind):
    brain_conn(url=fault_proxy.url)
    path = tmp_path / "noise.wav"
    path.write_bytes(audio)
    opened: list[Reader] = []

    def open_stream() -> Reader:
        opened.append(Reader(audio))
        return opened[-1]

    fault_proxy.add(Fault("reset_mid_body", after_bytes=FILE_BLOCK + 100_000, path_prefix="/speech:recognize"))
    asset = fast_hook().submit_file(path if kind == "path" else open_stream, async_=True)
    assert [s.faulted for s in fault_proxy.requests_to("/speech:recognize")] == ["reset_mid_body", None]
    assert stored_media(brain_server, asset.asset_id) == audio
    if kind == "stream":
        assert len(opened) == 2 and all(reader.closed for reader in opened)


class EndsEarly(io.BytesIO):
    """Seekable and measured whole, but its reads stop half-way: a file truncated while it is uploaded."""

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, len(self.getvalue()) // 2 - self.tell())
        return super().read(left if size is None or size < 0 else min(size, left))


def test_file_that_ends_before_its_size_fails_clearly(brain_conn, audio):
    opened: list[EndsEarly] = []

    def open_file() -> EndsEarly:
        opened.append(EndsEarly(audio))
        return opened[-1]

    with pytest.raises(BrainError, match="bytes short of the"):
        fast_hook().submit_file(open_file, async_=True)
    assert len(opened) == 1, "the upload was retried: the server would have waited for the missing bytes"
