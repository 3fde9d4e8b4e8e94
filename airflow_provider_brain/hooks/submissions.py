"""Submissions: the raw upload with its retry rules, and the JSON form for media at a URL.

``BrainHook.submit_file``/``submit_url`` are the public face; what is sent, and when a failed submission may be
sent again, is decided here. Every submission carries an ``Idempotency-Key`` header (the caller's key, or one
made up for the call), so a server that honours it answers a resend with the first asset.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import tenacity

from airflow_provider_brain.exceptions import BrainAnswerLost, BrainAPIError, BrainUploadNotRewindable
from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.idempotency import (
    IDEMPOTENCY_METADATA_KEY,
    new_idempotency_key,
    upload_never_accepted,
)
from airflow_provider_brain.hooks.retry import is_retryable
from airflow_provider_brain.hooks.transport import Transport
from airflow_provider_brain.hooks.uploads import AudioSource, body_opener
from airflow_provider_brain.models import Asset

log = logging.getLogger("airflow_provider_brain.hooks.brain")


def upload(
    transport: Transport, source: AudioSource, *, async_: bool, content_type: str, idempotency_key: str | None
) -> Asset:
    """Stream ``source`` to ``POST /speech:recognize`` and return the asset Brain answered.

    Resent after a retryable failure when the body can be read again and the resend is harmless: always when
    the server honours ``Idempotency-Key`` (the connection's ``server_idempotency``), else only when the upload
    certainly created nothing (a 429, a connection never opened).
    """
    key = idempotency_key or new_idempotency_key()
    call = Call("POST", "/speech:recognize", params={"async": "true" if async_ else "false"}, idempotency_key=key)
    headers = {"Content-Type": content_type}
    opener, rewindable = body_opener(source)

    def attempt() -> Any:
        with opener() as body:
            return transport.send(call, body=body, headers=headers)

    # A stream that was read once cannot be sent again: no retry, and a clear error instead.
    policy = transport.policy(call, retry=rewindable, idempotent=transport.settings.server_idempotency)
    if rewindable and not transport.settings.server_idempotency:
        policy["retry"] = tenacity.retry_if_exception(upload_never_accepted)
    try:
        data = tenacity.Retrying(**policy)(transport.with_fresh_credentials, attempt)
    except BrainAPIError as err:
        if not is_retryable(err, idempotent=False) or (rewindable and upload_never_accepted(err)):
            raise
        if not rewindable:
            raise BrainUploadNotRewindable(
                f"Upload to Brain failed ({err}) and its source is a stream that cannot be read again; "
                "pass a file path or a seekable file object to let the provider retry the upload"
            ) from err
        if not transport.settings.server_idempotency:
            raise BrainAnswerLost(
                f"Upload to Brain may have been accepted, but its answer was lost ({err}); it is not sent "
                f"again because the connection says the server ignores Idempotency-Key (key {key!r}): "
                "look for the asset before submitting this audio again"
            ) from err
        raise
    return Asset.from_json(data)


def url_call(
    url: str,
    *,
    async_: bool,
    metadata: Mapping[str, Any] | None,
    callback: str | None,
    idempotency_key: str | None,
) -> Call:
    """The JSON form of ``POST /speech:recognize`` for media at ``url``."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("Brain can only fetch http:// or https:// URLs; upload other media with submit_file")
    config: dict[str, Any] = {"async": async_}
    if callback:
        config["callback"] = callback
    payload: dict[str, Any] = {"audio": {"url": url}, "config": config}
    if metadata or idempotency_key:
        payload["metadata"] = dict(metadata or {})
    if idempotency_key:
        payload["metadata"][IDEMPOTENCY_METADATA_KEY] = idempotency_key
    # Without a key of the caller's, one made up for this call still lets the server dedupe its retries.
    return Call("POST", "/speech:recognize", json=payload, idempotency_key=idempotency_key or new_idempotency_key())


def submitted(asset: Asset, call: Call) -> Asset:
    """The asset a URL submission answered, with the metadata it stored (a processing asset's JSON omits it)."""
    stored = (call.json or {}).get("metadata")
    if stored and not asset.metadata:
        asset = dataclasses.replace(asset, metadata=dict(stored))
    log.info("Submitted a URL to Brain: asset %s (%s)", asset.asset_id, asset.status.value)
    return asset
