"""Where Deepgram results live: Deepgram keeps no transcript, so each answer is written to an object store the
DAG names (an ``s3://bucket/prefix/`` or an ``ObjectStoragePath``) the moment it arrives, and XCom carries a
small reference to it (``ResultRef``), never the transcript.

``s3://`` locations go through the amazon provider's ``S3Hook`` (no extra package); any other location through
Airflow's ``ObjectStoragePath`` (its fsspec backend must be installed). Every function here blocks: the
triggerer calls them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_brain.deepgram_models import DeepgramResult
from airflow_provider_brain.exceptions import BrainError, redact_urls
from airflow_provider_brain.hooks.deepgram_calls import DeepgramAPIError
from airflow_provider_brain.hooks.idempotency import task_key
from airflow_provider_brain.sources import parse_s3_uri, shared_s3_hook

#: The key of a reference in XCom: a mapping with it is a Deepgram task's output (the transfers look for it).
RESULT_KEY = "deepgram_result"
#: The longest a SigV4 presigned URL may live (7 days).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def listen_marker(dag_id: str, run_id: str, task_id: str, map_index: int | None, source: str) -> str:
    """The idempotency marker of one task instance and its audio, the same across its tries: a hash of the Brain
    operators' ``task_key`` (dag, run, task, map index, source), short enough for a Deepgram ``extra`` value."""
    return hashlib.sha256(task_key(dag_id, run_id, task_id, map_index, source).encode()).hexdigest()[:32]


def result_location(output: str, dag_id: str, run_id: str, task_id: str, map_index: int | None, marker: str) -> str:
    """Where one task instance's result goes: ``<output>/<dag_id>/<run_id>/<task_id>[.<map_index>].<marker>.json``
    (the run id made safe for a path); the same for every try, so a retry finds what an earlier try wrote."""
    index = "" if map_index is None or map_index < 0 else f".{map_index}"
    name = f"{_UNSAFE.sub('_', task_id)}{index}.{marker[:12]}.json"
    return f"{output.rstrip('/')}/{_UNSAFE.sub('_', dag_id)}/{_UNSAFE.sub('_', run_id)}/{name}"


def _path(location: str, conn_id: str | None) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(location, conn_id=conn_id)


def write_result(location: str, data: Mapping[str, Any], conn_id: str | None) -> None:
    """Write a listen answer as JSON at ``location`` (replacing what a failed try may have left)."""
    body = json.dumps(data, ensure_ascii=False).encode()
    if location.startswith("s3://"):
        bucket, key = parse_s3_uri(location, "output_uri")
        shared_s3_hook(conn_id).load_bytes(body, key=key, bucket_name=bucket, replace=True)
    else:
        path = _path(location, conn_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def read_result(location: str, conn_id: str | None) -> dict[str, Any] | None:
    """The JSON stored at ``location`` (a listen answer, or the error a callback delivered), or ``None``."""
    if location.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = parse_s3_uri(location, "deepgram_result")
        try:
            body = shared_s3_hook(conn_id).get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        data: dict[str, Any] = json.loads(body)
        return data
    path = _path(location, conn_id)
    if not path.exists():
        return None
    stored: dict[str, Any] = json.loads(path.read_bytes())
    return stored


def _is_error(data: Mapping[str, Any]) -> bool:
    """Whether stored JSON is Deepgram's error (a callback delivers ``{"request_id", "err_code", "err_msg"}``)."""
    return "err_code" in data or "err_msg" in data


def stored_result(location: str, conn_id: str | None) -> DeepgramResult | None:
    """The result an earlier try (or a callback) stored at ``location``; ``None`` if there is none, or only an
    error that a new request replaces."""
    data = read_result(location, conn_id)
    return None if data is None or _is_error(data) else DeepgramResult.from_json(data)


#: How a result reaches the store: Deepgram's answer to the request, or its callback (``result_delivery``).
DELIVERIES = ("answer", "callback")


def check_delivery(given: str | None) -> None:
    """``ValueError`` unless ``result_delivery`` is ``None`` or one of ``DELIVERIES``."""
    if given is not None and given not in DELIVERIES:
        raise ValueError(f"result_delivery must be one of {DELIVERIES}, not {given!r}")


def delivery_for(location: str, given: str | None) -> str:
    """How a result reaches ``location``: ``given``, else by callback for ``s3://`` (Deepgram PUTs it to a
    presigned URL) and by the answer elsewhere."""
    delivery = given or ("callback" if location.startswith("s3://") else "answer")
    if delivery == "callback" and not location.startswith("s3://"):
        raise ValueError(
            f"result_delivery='callback' needs an s3:// output_uri (Deepgram PUTs the result to a presigned URL), "
            f"not {location!r}: use result_delivery='answer'"
        )
    return delivery


def presigned_put_url(location: str, conn_id: str | None, *, expires_in: int) -> str:
    """A presigned PUT URL for an ``s3://`` result location: a listen request's ``callback``, so Deepgram writes
    the result where the task looks for it, even if the request's own answer is lost. Never log it."""
    bucket, key = parse_s3_uri(location, "output_uri")
    expires = min(max(int(expires_in), 900), MAX_PRESIGN_SECONDS)
    url = shared_s3_hook(conn_id).generate_presigned_url(
        client_method="put_object", params={"Bucket": bucket, "Key": key}, expires_in=expires
    )
    if not url:
        raise BrainError(f"Could not presign a PUT for {location}: check the store connection {conn_id!r}")
    return str(url)


def delivered_result(location: str, conn_id: str | None, request_id: str) -> DeepgramResult | None:
    """The result Deepgram's callback delivered at ``location``: ``None`` while there is none (or only another
    request's error). This request's error raises ``DeepgramAPIError`` with Deepgram's ``err_code``/``err_msg``."""
    data = read_result(location, conn_id)
    if data is None:
        return None
    if not _is_error(data):
        return DeepgramResult.from_json(data)
    if data.get("request_id") != request_id:
        return None
    reason = redact_urls(f"{data.get('err_code')}: {data.get('err_msg')}")
    raise DeepgramAPIError(
        f"Deepgram request {request_id} failed: {reason}", err_code=data.get("err_code"), request_id=request_id
    )


def failed_at(location: str, conn_id: str | None, request_id: str) -> bool:
    """Whether ``request_id``'s callback delivered an error at ``location`` (the file must be sent anew)."""
    data = read_result(location, conn_id)
    return data is not None and _is_error(data) and data.get("request_id") == request_id


def still_to_deliver(found: Mapping[str, Any] | None, location: str, conn_id: str | None) -> str | None:
    """The id of a request found in the history whose callback may still bring ``location``'s result: accepted
    (not failed with a 5xx), and no error of its own delivered there."""
    if found is None or int(found.get("code") or 200) >= 500:
        return None
    request_id = str(found.get("request_id"))
    return None if failed_at(location, conn_id, request_id) else request_id


def _waited_too_long(request_id: str, location: str) -> TimeoutError:
    return TimeoutError(
        f"Deepgram's callback for request {request_id} did not reach {location} before the task's timeout. If "
        "Deepgram cannot reach this store's endpoint, use result_delivery='answer'"
    )


def wait_for_delivery(
    location: str, conn_id: str | None, request_id: str, *, deadline: float, poll_interval: float
) -> DeepgramResult:
    """Look for the callback's result every ``poll_interval`` seconds until the wall-clock ``deadline``."""
    while (result := delivered_result(location, conn_id, request_id)) is None:
        if time.time() + poll_interval > deadline:
            raise _waited_too_long(request_id, location)
        time.sleep(poll_interval)
    return result


async def await_delivery(
    location: str, conn_id: str | None, request_id: str, *, deadline: float, poll_interval: float
) -> DeepgramResult:
    """Async ``wait_for_delivery`` (for triggers): S3 is read on a thread, the wait does not block the loop."""
    while (result := await asyncio.to_thread(delivered_result, location, conn_id, request_id)) is None:
        if time.time() + poll_interval > deadline:
            raise _waited_too_long(request_id, location)
        await asyncio.sleep(poll_interval)
    return result


def is_result_ref(value: object) -> bool:
    """Whether an XCom value is a Deepgram task's reference (a mapping with ``deepgram_result``)."""
    return isinstance(value, Mapping) and RESULT_KEY in value


def result_reference(
    result: DeepgramResult, location: str, conn_id: str | None, source: str, task: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What a Deepgram task returns for XCom: where its result is, with which connection, and a summary (request
    id, duration, words, confidence, source, and the task's ``dag_id``/``task_id``/``run_id`` for audio minutes
    per DAG); no transcript."""
    return {
        RESULT_KEY: location,
        "store_conn_id": conn_id,
        **result.summary(),
        "audio_seconds": result.duration,
        "source": source,
        **(task or {}),
    }
