"""BrainHook under faults the real server cannot make on demand (the fault proxy): which errors are retried,
how often and how long, uploads cut part way, slow answers, and what the errors say."""

from __future__ import annotations

import io
import time

import pytest

from airflow_provider_brain.exceptions import (
    BrainAPIError,
    BrainAssetFailed,
    BrainAuthError,
    BrainUploadNotRewindable,
)
from airflow_provider_brain.hooks.brain import (
    BrainConnectionError,
    BrainHook,
    base_url_from_connection,
)
from tests.fixtures.faults import Fault
from tests.hooks.helpers import count_assets, fast_hook

# ---------------------------------------------------------------------------- errors and retries


def test_wrong_password_is_auth_error_without_retry_or_secret(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url, password="wrong-secret-123")
    with pytest.raises(BrainAuthError) as caught:
        fast_hook().get_asset("0123456789abcdef")
    assert "login and password" in str(caught.value) and "wrong-secret-123" not in str(caught.value)
    assert len(fault_proxy.seen) == 1


@pytest.mark.parametrize("status", [400, 404, 413])
def test_client_errors_are_not_retried(brain_conn, fault_proxy, status):
    brain_conn(url=fault_proxy.url)
    fault_proxy.add(Fault("status", status=status, body=b'{"error": "nope"}'))
    with pytest.raises(BrainAPIError, match=f"{status}: nope"):
        fast_hook().get_asset("0123456789abcdef")
    assert len(fault_proxy.seen) == 1


def test_5xx_and_resets_are_retried_then_succeed(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    asset = BrainHook().submit_file(speech.file(0))
    fault_proxy.seen.clear()
    fault_proxy.add(Fault("status", status=503), Fault("reset"), Fault("status", status=502))
    got = fast_hook().get_asset(asset.asset_id)
    assert got.asset_id == asset.asset_id
    assert [s.faulted for s in fault_proxy.seen] == ["status", "reset", "status", None]


def test_retry_after_is_honoured(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    asset = BrainHook().submit_file(speech.file(0))
    fault_proxy.seen.clear()
    fault_proxy.add(Fault("status", status=429, headers={"Retry-After": "1.5"}))
    fast_hook().get_asset(asset.asset_id)
    first, second = fault_proxy.seen
    assert second.at - first.at >= 1.4  # Our own backoff would have waited at most 0.2 s.


def test_retries_are_bounded_and_the_error_names_the_status(brain_conn, fault_proxy):
    brain_conn(url=fault_proxy.url, max_retries=2)
    fault_proxy.fail_for(30, status=503)
    with pytest.raises(BrainAPIError, match="503") as caught:
        fast_hook().get_asset("0123456789abcdef")
    assert caught.value.status == 503
    assert len(fault_proxy.seen) == 3


def test_malformed_json_is_a_clear_error(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    asset = BrainHook().submit_file(speech.file(0))
    fault_proxy.add(Fault("malformed"))
    with pytest.raises(BrainAPIError, match="not JSON"):
        fast_hook().get_asset(asset.asset_id)


def test_connection_refused_is_retried_then_reported(brain_conn):
    brain_conn(url="http://127.0.0.1:9", max_retries=1)
    with pytest.raises(BrainConnectionError, match="no answer from http://127.0.0.1:9"):
        fast_hook().get_asset("0123456789abcdef")


def test_upload_cut_part_way_is_resent_from_a_path(brain_conn, brain_server, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    before = count_assets(brain_server)
    fault_proxy.add(Fault("reset_mid_body", after_bytes=20_000, path_prefix="/speech:recognize"))
    asset = fast_hook().submit_file(speech.file(1))
    assert asset.is_done and asset.word_count > 0
    assert [s.faulted for s in fault_proxy.requests_to("/speech:recognize")] == ["reset_mid_body", None]
    assert count_assets(brain_server) == before + 1


def test_upload_cut_part_way_from_a_stream_fails_clearly(brain_conn, brain_server, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    before = count_assets(brain_server)
    fault_proxy.add(Fault("reset_mid_body", after_bytes=20_000, path_prefix="/speech:recognize"))
    data = speech.file(1).read_bytes()
    with pytest.raises(BrainUploadNotRewindable, match="file path or a seekable file"):
        fast_hook().submit_file(data[i : i + 8192] for i in range(0, len(data), 8192))
    assert len(fault_proxy.requests_to("/speech:recognize")) == 1
    assert count_assets(brain_server) == before


def test_seekable_file_is_rewound_on_retry(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    fault_proxy.add(Fault("status", status=503, path_prefix="/speech:recognize"))
    buffer = io.BytesIO(speech.file(2).read_bytes())
    asset = fast_hook().submit_file(buffer)
    assert asset.is_done and asset.word_count > 0


# ---------------------------------------------------------------------------- review fixes


def test_a_slow_submission_is_not_sent_twice_to_a_server_that_ignores_keys(
    brain_conn, brain_server, fault_proxy, speech
):
    """A read timeout on POST means the server has the audio: without Idempotency-Key, resending it would
    transcribe it twice."""
    brain_conn(url=fault_proxy.url, timeout=1, server_idempotency=False)
    fault_proxy.drop_request_headers.add("idempotency-key")
    fault_proxy.add(Fault("delay", seconds=3, path_prefix="/speech:recognize"))
    from airflow_provider_brain.hooks.brain import BrainReadTimeout

    before = count_assets(brain_server)
    with pytest.raises(BrainReadTimeout):
        fast_hook().submit_file(speech.file(0), async_=True)
    assert len(fault_proxy.requests_to("/speech:recognize")) == 1
    time.sleep(3.5)  # the delayed attempt reaches the server 3 s after it was sent: let it arrive
    assert count_assets(brain_server) == before + 1


def test_a_slow_submission_is_sent_again_with_its_key_and_leaves_one_asset(
    brain_conn, brain_server, fault_proxy, speech
):
    """The same read timeout against a server that honours Idempotency-Key: the resend is answered with the
    first asset (once the delayed first request arrives, or by the first being the resend's asset)."""
    brain_conn(url=fault_proxy.url, timeout=1)
    before = count_assets(brain_server)
    fault_proxy.add(Fault("delay", seconds=3, path_prefix="/speech:recognize"))
    asset = fast_hook().submit_file(speech.file(0), async_=True)
    assert len(fault_proxy.requests_to("/speech:recognize")) == 2
    time.sleep(3.5)  # the delayed first attempt reaches the server 3 s after it was sent: let it arrive
    assert count_assets(brain_server) == before + 1
    assert BrainHook().get_asset(asset.asset_id).asset_id == asset.asset_id


def test_a_slow_read_is_retried(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url, timeout=1)
    asset = BrainHook().submit_file(speech.file(0), async_=True)
    fault_proxy.seen.clear()
    fault_proxy.add(Fault("delay", seconds=3, path_prefix="/assets/"))
    assert fast_hook().get_asset(asset.asset_id).asset_id == asset.asset_id
    assert len(fault_proxy.requests_to("/assets/")) == 2


def test_empty_extras_mean_defaults(brain_conn):
    brain_conn(timeout=None, max_retries="", verify="")
    settings = BrainHook().settings
    assert (settings.timeout, settings.max_retries, settings.verify) == (300.0, 5, True)


def test_credentials_in_the_host_are_refused():
    with pytest.raises(ValueError, match="login and password fields"):
        base_url_from_connection("https://user:secret@brain.example.com", None, None)


def test_a_garbled_success_body_is_not_quoted(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url)
    asset = BrainHook().submit_file(speech.file(0))
    fault_proxy.add(Fault("malformed"))
    with pytest.raises(BrainAPIError) as caught:
        fast_hook().get_asset(asset.asset_id)
    assert "<html>" not in str(caught.value) and "bytes that are not JSON" in str(caught.value)


def test_waiting_outlasts_an_outage_longer_than_the_retries(brain_conn, fault_proxy, speech):
    brain_conn(url=fault_proxy.url, max_retries=0)
    asset = BrainHook().submit_file(speech.file(1), async_=True)
    fault_proxy.fail_for(2, status=503)
    done = fast_hook().wait_for_asset(asset.asset_id, poll_interval=0.3, timeout=120)
    assert done.is_done
    assert any(s.faulted == "status" for s in fault_proxy.seen)


def test_server_reasons_lose_url_query_strings():
    from airflow_provider_brain.exceptions import body_excerpt

    url = "https://b.s3.amazonaws.com/a.wav?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA"
    assert "deadbeef" not in str(BrainAssetFailed("0123456789abcdef", f"could not download {url}: 403"))
    assert "deadbeef" not in body_excerpt(f'{{"error": "could not download {url}"}}')
    assert "https://b.s3.amazonaws.com/a.wav" in body_excerpt(f"fetch {url} failed")
