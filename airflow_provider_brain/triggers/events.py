"""What Brain's triggers send back to the tasks they resume: one small typed contract, checked on resume.

``EventStatus`` is shared by the asset trigger, the batch trigger, the transcribe operators and the sensor.
``AssetEvent`` and ``BatchEvent`` are built by the triggers (``payload()``) and parsed back by the task
(``parse()``), which refuses an event it cannot read with a message naming what is wrong, instead of
guessing. Events carry ids, statuses and reasons (URL query strings redacted): never a transcript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from airflow_provider_brain.exceptions import BrainAssetFailed, BrainError, BrainTimeout, redact_urls
from airflow_provider_brain.models import validate_asset_id


class EventStatus(StrEnum):
    """How a trigger's wait ended."""

    DONE = "done"  #: the asset is done (for a batch: every asset settled, done or failed)
    FAILED = "failed"  #: the asset failed; the event's ``reason`` is the server's
    TIMEOUT = "timeout"  #: still processing at the deadline
    ERROR = "error"  #: the wait itself failed (refused credentials, an answer no retry fixes)


def _status(event: Any, allowed: tuple[EventStatus, ...], kind: str) -> EventStatus:
    if not isinstance(event, Mapping) or "status" not in event:
        raise BrainError(f"Brain {kind} trigger sent an event this task cannot read: {event!r}")
    try:
        status = EventStatus(event["status"])
    except ValueError:
        status = None
    if status not in allowed:
        raise BrainError(f"Brain {kind} trigger sent an unknown status {event['status']!r}")
    return status


@dataclass(frozen=True)
class AssetEvent:
    """The end of a wait for one asset (``BrainAssetTrigger``)."""

    status: EventStatus
    asset_id: str
    message: str
    reason: str | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status.value, "asset_id": self.asset_id, "message": self.message}
        if self.reason is not None:
            body["reason"] = redact_urls(self.reason)
        return body

    @classmethod
    def parse(cls, event: Any) -> AssetEvent:
        """Check an event on resume; ``BrainError`` naming the problem if it is not one of ours."""
        status = _status(event, tuple(EventStatus), "asset")
        try:
            asset_id = validate_asset_id(event.get("asset_id"))
        except ValueError as err:
            raise BrainError(f"Brain asset trigger sent an event without a valid asset id: {err}") from None
        reason = event.get("reason")
        if status is EventStatus.FAILED and reason is None:
            # An event from a trigger deferred before the reason had its own field: it ends the message.
            reason = str(event.get("message", "")).split(": ", 1)[-1]
        return cls(status, asset_id, str(event.get("message", "")), None if reason is None else str(reason))

    def outcome(self, *, timeout: float | None = None) -> str:
        """The asset id if done; else raise what the task fails with (the server's reason, the timeout)."""
        if self.status is EventStatus.DONE:
            return self.asset_id
        if self.status is EventStatus.FAILED:
            raise BrainAssetFailed(self.asset_id, self.reason or "")
        if self.status is EventStatus.TIMEOUT:
            raise BrainTimeout(self.asset_id, timeout or 0.0)
        raise BrainError(self.message or f"Brain trigger reported an error for asset {self.asset_id}")


@dataclass(frozen=True)
class BatchEvent:
    """The end of a wait for a batch (``BrainBatchTrigger``): failed ids with reasons, ids still processing."""

    status: EventStatus
    message: str
    failed: dict[str, str] = field(default_factory=dict)
    processing: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "failed": {asset_id: redact_urls(reason) for asset_id, reason in self.failed.items()},
            "processing": list(self.processing),
            "message": self.message,
        }

    @classmethod
    def parse(cls, event: Any) -> BatchEvent:
        """Check an event on resume; ``BrainError`` naming the problem if it is not one of ours."""
        status = _status(event, (EventStatus.DONE, EventStatus.TIMEOUT, EventStatus.ERROR), "batch")
        failed, processing = event.get("failed") or {}, event.get("processing") or []
        if not isinstance(failed, Mapping) or not isinstance(processing, list):
            raise BrainError("Brain batch trigger sent an event whose 'failed' or 'processing' is malformed")
        return cls(
            status,
            str(event.get("message", "")),
            {str(k): str(v) for k, v in failed.items()},
            [str(a) for a in processing],
        )
