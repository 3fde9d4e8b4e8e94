"""The event contract between Brain's triggers and the tasks they resume: checked on resume, refused by name."""

from __future__ import annotations

import pytest

from airflow_provider_brain.exceptions import BrainAssetFailed, BrainError, BrainTimeout
from airflow_provider_brain.triggers.events import AssetEvent, BatchEvent, EventStatus

ASSET_ID = "0123456789abcdef"


def test_statuses_are_one_str_enum_that_serialises_as_plain_strings():
    assert [s.value for s in EventStatus] == ["done", "failed", "timeout", "error"]
    payload = AssetEvent(EventStatus.DONE, ASSET_ID, "done").payload()
    assert payload == {"status": "done", "asset_id": ASSET_ID, "message": "done"}
    assert type(payload["status"]) is str, "events are JSON: no enum objects in them"


def test_a_failed_event_round_trips_with_its_reason_redacted():
    reason = "could not download https://b.s3/x.wav?X-Amz-Signature=abc123: 403"
    payload = AssetEvent(EventStatus.FAILED, ASSET_ID, f"Brain asset {ASSET_ID} failed", reason).payload()
    assert "abc123" not in payload["reason"]
    with pytest.raises(BrainAssetFailed) as failed:
        AssetEvent.parse(payload).outcome()
    assert failed.value.reason == "could not download https://b.s3/x.wav?<redacted> 403"


def test_an_event_from_before_the_reason_field_still_fails_with_the_reason():
    old = {
        "status": "failed",
        "asset_id": ASSET_ID,
        "message": f"Brain asset {ASSET_ID} failed: audio could not be decoded",
    }
    assert AssetEvent.parse(old).reason == "audio could not be decoded"


def test_timeout_and_error_outcomes():
    with pytest.raises(BrainTimeout):
        AssetEvent.parse({"status": "timeout", "asset_id": ASSET_ID, "message": "late"}).outcome(timeout=5)
    with pytest.raises(BrainError, match="credentials refused"):
        AssetEvent.parse({"status": "error", "asset_id": ASSET_ID, "message": "credentials refused"}).outcome()


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (None, "cannot read"),
        ({"asset_id": ASSET_ID}, "cannot read"),
        ({"status": "exploded", "asset_id": ASSET_ID}, "unknown status 'exploded'"),
        ({"status": "done", "asset_id": "../etc/passwd"}, "valid asset id"),
        ({"status": "done"}, "valid asset id"),
    ],
)
def test_asset_events_that_are_not_ours_are_refused_by_name(event, says):
    with pytest.raises(BrainError, match=says):
        AssetEvent.parse(event)


def test_batch_events_round_trip_and_malformed_ones_are_refused():
    event = BatchEvent(EventStatus.TIMEOUT, "1 of 3", {ASSET_ID: "bad ?sig=x"}, ["fedcba9876543210"]).payload()
    parsed = BatchEvent.parse(event)
    assert parsed.status is EventStatus.TIMEOUT and parsed.processing == ["fedcba9876543210"]
    assert parsed.failed == {ASSET_ID: "bad ?sig=x"}  # no URL, nothing to redact
    with pytest.raises(BrainError, match="unknown status 'failed'"):
        BatchEvent.parse({**event, "status": "failed"})
    with pytest.raises(BrainError, match="malformed"):
        BatchEvent.parse({**event, "failed": ["x"]})
