"""Uploads whose answer was lost (#22): every submission carries an ``Idempotency-Key`` header, so a resend to a
server that honours it (the local server) leaves one asset; against a server that ignores it, an upload that
may have been accepted is not sent again."""

from __future__ import annotations

import uuid

import pytest
import requests

from airflow_provider_brain.exceptions import BrainAnswerLost
from airflow_provider_brain.hooks.brain import IDEMPOTENCY_METADATA_KEY, BrainHook
from tests.fixtures.faults import Fault
from tests.hooks.helpers import count_assets, fast_hook

LOST_ANSWERS = [
    Fault("lost_answer", status=502, path_prefix="/speech:recognize"),  # forwarded; a gateway lost the answer
    Fault("lost_answer", status=0, path_prefix="/speech:recognize"),  # forwarded; reset before the answer
]


@pytest.mark.parametrize("fault", LOST_ANSWERS, ids=["502", "reset"])
@pytest.mark.parametrize("keyed", [True, False], ids=["key", "no-key"])
def test_a_lost_upload_answer_leaves_one_asset(brain_conn, brain_server, fault_proxy, speech, fault, keyed):
    brain_conn(url=fault_proxy.url)
    before = count_assets(brain_server)
    fault_proxy.add(fault)
    key = f"test/{uuid.uuid4().hex}" if keyed else None

    asset = fast_hook().submit_file(speech.file(0), async_=True, idempotency_key=key)

    posts = [s.faulted for s in fault_proxy.requests_to("/speech:recognize", "POST")]
    assert posts == ["lost_answer", None], "the upload was sent again, with the same key"
    assert count_assets(brain_server) == before + 1
    done = BrainHook().wait_for_asset(asset.asset_id, poll_interval=0.2, timeout=120)
    assert done.is_done and done.word_count > 0
    if keyed:
        assert done.metadata[IDEMPOTENCY_METADATA_KEY] == key


def test_a_refused_upload_is_sent_again_even_to_a_server_that_ignores_the_header(
    brain_conn, brain_server, fault_proxy, speech
):
    """A 429 created nothing: resending it is safe whatever the server does with keys."""
    brain_conn(url=fault_proxy.url, server_idempotency=False)
    fault_proxy.drop_request_headers.add("idempotency-key")
    before = count_assets(brain_server)
    fault_proxy.add(Fault("status", status=429, headers={"Retry-After": "0"}, path_prefix="/speech:recognize"))

    asset = fast_hook().submit_file(speech.file(0), async_=True)

    assert [s.faulted for s in fault_proxy.requests_to("/speech:recognize", "POST")] == ["status", None]
    assert count_assets(brain_server) == before + 1 and asset.asset_id


@pytest.mark.parametrize("fault", LOST_ANSWERS, ids=["502", "reset"])
def test_a_server_that_ignores_the_header_is_not_sent_a_lost_upload_again(
    brain_conn, brain_server, fault_proxy, speech, fault
):
    brain_conn(url=fault_proxy.url, server_idempotency="false")
    fault_proxy.drop_request_headers.add("idempotency-key")
    before = count_assets(brain_server)
    fault_proxy.add(fault)

    with pytest.raises(BrainAnswerLost, match="ignores Idempotency-Key") as caught:
        fast_hook().submit_file(speech.file(0), async_=True, idempotency_key="calls/17")

    assert "calls/17" in str(caught.value), "the error names the key to look for"
    assert len(fault_proxy.requests_to("/speech:recognize", "POST")) == 1
    assert count_assets(brain_server) == before + 1, "the one accepted upload, and no second"


def test_the_server_answers_a_repeated_key_with_its_first_asset(brain_conn, brain_server, speech):
    """What the hook relies on, seen from outside: two uploads with one key are one asset."""
    brain_conn()
    before = count_assets(brain_server)
    key = f"test/{uuid.uuid4().hex}"
    first = BrainHook().submit_file(speech.file(1), async_=True, idempotency_key=key)
    second = BrainHook().submit_file(speech.file(1), async_=True, idempotency_key=key)
    assert second.asset_id == first.asset_id
    assert count_assets(brain_server) == before + 1


def test_every_submission_carries_a_key_header(brain_conn, fault_proxy, speech, monkeypatch):
    """The header goes out on uploads and on URL submissions, a made-up key where the caller gave none."""
    brain_conn(url=fault_proxy.url)
    sent: list[str | None] = []
    original = requests.Session.request

    def spy(self, method, url, **kwargs):
        if method == "POST":
            sent.append((kwargs.get("headers") or {}).get("Idempotency-Key"))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    BrainHook().submit_file(speech.file(0), async_=True)
    BrainHook().submit_file(speech.file(0), async_=True, idempotency_key="mine")
    assert len(sent) == 2 and sent[0] and sent[1] == "mine"
    assert len(fault_proxy.requests_to("/speech:recognize", "POST")) == 2


def test_a_synchronous_upload_whose_answer_was_lost_returns_the_transcript(
    brain_conn, brain_server, fault_proxy, speech
):
    """The resend of a synchronous upload is answered with the first asset as it is now, possibly still
    processing: the hook then waits for it, as a synchronous submission does."""
    brain_conn(url=fault_proxy.url)
    before = count_assets(brain_server)
    fault_proxy.add(LOST_ANSWERS[0])
    asset = fast_hook().submit_file(speech.file(3))
    assert asset.is_done and asset.word_count > 0 and asset.transcript
    assert count_assets(brain_server) == before + 1
