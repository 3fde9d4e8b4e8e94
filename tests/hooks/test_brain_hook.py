"""BrainHook against the real local Brain server, with a fault-injecting proxy for what it cannot do on demand."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import jiwer
import pytest

from airflow_provider_brain.exceptions import (
    BrainAPIError,
    BrainAssetFailed,
    BrainAuthError,
    BrainNotFound,
)
from airflow_provider_brain.hooks.brain import (
    IDEMPOTENCY_METADATA_KEY,
    BrainHook,
    base_url_from_connection,
)
from airflow_provider_brain.models import AssetStatus
from tests.fixtures.faults import Fault
from tests.hooks.helpers import fast_hook

WER_BOUND = 0.25


# ---------------------------------------------------------------------------- URL building


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://brain.deepgram.com"),
        ("http://127.0.0.1:8765", None, None, "http://127.0.0.1:8765"),
        ("127.0.0.1", "http", 8765, "http://127.0.0.1:8765"),
        ("brain.example.com", None, None, "https://brain.example.com"),
        ("https://gw.example.com/brain/", None, 8443, "https://gw.example.com:8443/brain"),
    ],
)
def test_base_url_from_connection(host, schema, port, expected):
    assert base_url_from_connection(host, schema, port) == expected


def test_base_url_rejects_other_schemes():
    with pytest.raises(ValueError, match="not an http"):
        base_url_from_connection("ftp://example.com", None, None)


# ---------------------------------------------------------------------------- the API, for real


def test_submit_file_sync_transcribes(brain_conn, speech):
    asset = BrainHook().submit_file(speech.file(0))
    assert asset.status is AssetStatus.DONE
    assert jiwer.wer(speech.text([0]).lower(), asset.transcript) <= WER_BOUND
    assert len(asset.confidence) == len(asset.transcript.split())
    assert asset.duration and asset.duration > 1


def test_submit_async_then_wait_with_times_and_metadata(brain_conn, speech):
    hook = BrainHook()
    with open(speech.file(1, fmt="mp3"), "rb") as handle:
        submitted = hook.submit_file(handle, async_=True, metadata={"filename": "call-17.mp3"})
    assert submitted.asset_id and submitted.metadata == {"filename": "call-17.mp3"}
    done = hook.wait_for_asset(submitted.asset_id, poll_interval=0.2, timeout=120, times=True)
    assert done.is_done and done.metadata == {"filename": "call-17.mp3"}
    assert [w.word for w in done.words] == done.transcript.split()
    starts = [w.start for w in done.words]
    assert starts == sorted(starts) and all(0 <= w.start <= w.end <= done.duration + 0.01 for w in done.words)
    # What a debugger, a `%r` in a log line or an exception message shows: ids and sizes, never what was said.
    shown = repr(done)
    assert done.asset_id in shown and f"word_count={done.word_count}" in shown and "'filename'" in shown
    assert not any(word in shown for word in done.transcript.split() if len(word) > 3)
    assert "call-17.mp3" not in shown


def test_submit_iterator_of_chunks(brain_conn, speech):
    data = speech.file(2).read_bytes()
    chunks = (data[i : i + 4096] for i in range(0, len(data), 4096))
    asset = BrainHook().submit_file(chunks)
    assert asset.is_done and asset.word_count > 0


def test_submit_url_async(brain_conn, speech, tmp_path):
    audio = speech.file(0, fmt="flac")
    handler = partial(SimpleHTTPRequestHandler, directory=str(audio.parent))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = BrainHook()
        url = f"http://127.0.0.1:{server.server_address[1]}/{audio.name}"
        asset = hook.submit_url(url, async_=True, metadata={"source": "test"})
        assert asset.status is AssetStatus.PROCESSING
        done = hook.wait_for_asset(asset.asset_id, poll_interval=0.2, timeout=120)
        assert jiwer.wer(speech.text([0]).lower(), done.transcript) <= WER_BOUND
        assert done.metadata["source"] == "test"
    finally:
        server.shutdown()


@pytest.fixture
def media_url(speech):
    """A URL Brain can download one spoken sentence from (a plain HTTP server on loopback)."""
    audio = speech.file(1)
    handler = partial(SimpleHTTPRequestHandler, directory=str(audio.parent))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{audio.name}"
    server.shutdown()


def assets_with_source(source: str) -> list[str]:
    return [a.asset_id for a in BrainHook().list_assets(include_unfinished=True) if a.metadata.get("source") == source]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("lost_answer", status=502),  # Brain accepted it; a gateway lost the answer
        Fault("lost_answer", status=0),  # Brain accepted it; the connection was reset before the answer
        Fault("status", status=503),  # Brain never saw it
        None,  # no fault: no lookup either
    ],
    ids=["accepted-502", "accepted-reset", "refused-503", "no-fault"],
)
@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_keyed_submission_is_never_sent_twice(brain_conn, fault_proxy, media_url, fault, path):
    """The worker's ``submit_url`` and the trigger's ``asubmit_url`` look for an accepted attempt alike."""
    brain_conn(url=fault_proxy.url)
    source = f"test://{uuid.uuid4().hex}"
    if fault:
        fault_proxy.add(dataclasses.replace(fault, path_prefix="/speech:recognize"))

    if path == "sync":
        asset = fast_hook().submit_url(media_url, async_=True, metadata={"source": source}, idempotency_key=source)
    else:
        asset = asyncio.run(fast_hook().asubmit_url(media_url, metadata={"source": source}, idempotency_key=source))

    posts = [s.faulted for s in fault_proxy.requests_to("/speech:recognize", "POST")]
    lookups = len(fault_proxy.requests_to("/assets?", "GET"))
    if fault is None:
        assert (posts, lookups) == ([None], 0), "the first attempt costs no lookup"
    elif fault.kind == "lost_answer":
        assert (posts, lookups) == (["lost_answer"], 1), "found the accepted attempt's asset instead of sending again"
    else:
        assert (posts, lookups) == (["status", None], 1), "looked, found nothing, sent again"
    assert assets_with_source(source) == [asset.asset_id]
    assert asset.metadata[IDEMPOTENCY_METADATA_KEY] == source
    assert BrainHook().wait_for_asset(asset.asset_id, poll_interval=0.2, timeout=120).is_done


def test_a_keyed_sync_submission_whose_answer_was_lost_returns_the_whole_transcript(
    brain_conn, fault_proxy, media_url, speech
):
    brain_conn(url=fault_proxy.url)
    source = f"test://{uuid.uuid4().hex}"
    fault_proxy.add(Fault("lost_answer", status=502, path_prefix="/speech:recognize"))

    asset = fast_hook().submit_url(media_url, metadata={"source": source}, idempotency_key=source)

    assert len(fault_proxy.requests_to("/speech:recognize", "POST")) == 1
    assert asset.is_done and asset.metadata["source"] == source
    assert jiwer.wer(speech.text([1]).lower(), asset.transcript) <= WER_BOUND
    assert len(asset.confidence) == asset.word_count


def test_without_a_key_a_server_that_ignores_the_header_is_sent_it_twice(brain_conn, fault_proxy, media_url):
    """What the key is for: the same fault, no key, a server that ignores Idempotency-Key (the proxy drops the
    header), and Brain ends up with two assets of one file."""
    brain_conn(url=fault_proxy.url)
    fault_proxy.drop_request_headers.add("idempotency-key")
    source = f"test://{uuid.uuid4().hex}"
    fault_proxy.add(Fault("lost_answer", status=502, path_prefix="/speech:recognize"))

    asset = fast_hook().submit_url(media_url, async_=True, metadata={"source": source})

    assert len(fault_proxy.requests_to("/speech:recognize", "POST")) == 2
    both = assets_with_source(source)
    assert len(both) == 2 and asset.asset_id in both


def test_submit_url_rejects_other_schemes(brain_conn):
    with pytest.raises(ValueError, match="http"):
        BrainHook().submit_url("file:///etc/passwd")


def test_update_delete_and_not_found(brain_conn, speech):
    hook = BrainHook()
    asset = hook.submit_file(speech.file(0))
    updated = hook.update_asset(asset.asset_id, transcript="corrected words", metadata={"k": "v"})
    assert updated.transcript == "corrected words" and updated.metadata == {"k": "v"}
    assert hook.delete_asset(asset.asset_id) is True
    with pytest.raises(BrainNotFound, match=asset.asset_id):
        hook.get_asset(asset.asset_id)


def test_list_assets_follows_next_offset_lazily(brain_conn, brain_server, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    hook = BrainHook()
    ids = {hook.submit_file(speech.file(i % 3), async_=True).asset_id for i in range(5)}
    fault_proxy.seen.clear()
    listed = hook.list_assets(include_unfinished=True, page_size=2)
    first_two = [next(listed).asset_id, next(listed).asset_id]
    assert len(fault_proxy.requests_to("/assets?")) == 1  # The second page is not fetched yet.
    everything = first_two + [a.asset_id for a in listed]
    assert ids <= set(everything) and len(everything) == len(set(everything))
    assert len(fault_proxy.requests_to("/assets?")) >= 3


def test_invalid_asset_id_never_reaches_the_server(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url)
    with pytest.raises(ValueError, match="16 lowercase hexadecimal"):
        BrainHook().get_asset("../users")
    assert fault_proxy.seen == []


def test_undecodable_upload_is_a_clear_400(brain_conn, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(BrainAPIError, match="400: audio could not be decoded") as caught:
        BrainHook().submit_file(junk, async_=True)
    assert caught.value.status == 400


def test_failed_asset_raises_with_reason(brain_conn):
    hook = BrainHook()
    # Nothing listens on port 9: the server's download fails, and so does the asset.
    asset = hook.submit_url("http://127.0.0.1:9/missing.wav", async_=True)
    with pytest.raises(BrainAssetFailed) as caught:
        hook.wait_for_asset(asset.asset_id, poll_interval=0.2, timeout=60)
    assert caught.value.reason and asset.asset_id in str(caught.value)


# ---------------------------------------------------------------------------- async path


def test_async_get_asset_matches_sync_and_retries(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    asset = BrainHook().submit_file(speech.file(0))
    fault_proxy.seen.clear()
    fault_proxy.add(Fault("status", status=500), Fault("reset"))

    async def fetch():
        hook = fast_hook()
        try:
            return await hook.aget_asset(asset.asset_id, times=True)
        finally:
            await hook.aclose()

    got = asyncio.run(fetch())
    assert got.transcript == asset.transcript and got.words and len(got.words) == asset.word_count
    assert [s.faulted for s in fault_proxy.seen] == ["status", "reset", None]


def test_async_auth_error_is_not_retried(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url, password="bad")

    async def fetch():
        hook = fast_hook()
        try:
            await hook.aget_asset("0123456789abcdef")
        finally:
            await hook.aclose()

    with pytest.raises(BrainAuthError):
        asyncio.run(fetch())
    assert len(fault_proxy.seen) == 1


# ---------------------------------------------------------------------------- logs and connection test


def test_logs_hold_no_password_and_no_transcript(brain_conn, fault_proxy, speech, caplog):
    brain_conn(url=fault_proxy.url, password="demo")
    caplog.set_level(logging.DEBUG)
    fault_proxy.add(Fault("status", status=503))
    hook = fast_hook()
    asset = hook.submit_file(speech.file(0))
    hook.wait_for_asset(asset.asset_id, poll_interval=0.1, timeout=60)
    text = caplog.text
    assert asset.asset_id in text  # Logged: ids.
    assert "retry" in text  # And the retry.
    assert "ZGVtbzpkZW1v" not in text  # base64("demo:demo"), the Basic auth header.
    for word in set(asset.transcript.split()) - {"a", "the", "to", "and", "of", "in"}:
        if len(word) > 3:
            assert word not in text.lower(), f"transcript word {word!r} leaked into the logs"


def test_test_connection(brain_conn):
    ok, message = BrainHook().test_connection()
    assert ok and "Connected" in message
    brain_conn(password="wrong")
    ok, message = BrainHook().test_connection()
    assert not ok and "login and password" in message


def test_wait_for_asset_times_out(brain_conn, held_brain, speech):
    brain_conn(url=held_brain.url)
    hook = BrainHook()
    asset = hook.submit_file(speech.file(0), async_=True)  # Held processing (--min-latency) past the test.
    start = time.monotonic()
    from airflow_provider_brain.exceptions import BrainTimeout

    with pytest.raises(BrainTimeout, match=asset.asset_id):
        hook.wait_for_asset(asset.asset_id, poll_interval=0.05, timeout=0.2)
    assert time.monotonic() - start < 5
