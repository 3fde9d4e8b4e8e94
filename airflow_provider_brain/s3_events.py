"""Read S3 object keys out of S3 event notifications, as they reach a DAG through SQS.

An Airflow 3 ``AssetWatcher`` on a ``MessageQueueTrigger(scheme="sqs")`` turns each batch of
SQS messages into an asset event whose ``extra["payload"]["message_batch"]`` holds the raw
messages; each message's ``Body`` is S3's notification JSON. These helpers pull out the
``s3://bucket/key`` of every created object, so a DAG transcribes exactly those files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus


def s3_uris_from_notification(body: str | Mapping[str, Any]) -> list[str]:
    """The ``s3://bucket/key`` of each ``ObjectCreated`` record of one S3 notification (JSON text or dict).

    S3 URL-encodes keys in notifications (a space arrives as ``+``); they are decoded here.
    Test events (``s3:TestEvent``) and other event types give nothing.
    """
    data = json.loads(body) if isinstance(body, str) else body
    if isinstance(data, Mapping) and isinstance(data.get("Message"), str):  # Delivered through SNS.
        data = json.loads(data["Message"])
    uris = []
    for record in (data or {}).get("Records", []) if isinstance(data, Mapping) else []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        bucket = s3.get("bucket", {}).get("name")
        key = s3.get("object", {}).get("key")
        if bucket and key:
            uris.append(f"s3://{bucket}/{unquote_plus(key)}")
    return uris


def s3_uris_from_asset_events(events: Iterable[Any]) -> list[str]:
    """All created objects named by asset events from an SQS ``AssetWatcher``, in order, without duplicates."""
    uris: list[str] = []
    for event in events:
        extra = getattr(event, "extra", None) or (event.get("extra") if isinstance(event, Mapping) else None) or {}
        payload = extra.get("payload") or {}
        for message in payload.get("message_batch") or []:
            body = message.get("Body") if isinstance(message, Mapping) else None
            if body:
                uris.extend(uri for uri in s3_uris_from_notification(body) if uri not in uris)
    return uris
