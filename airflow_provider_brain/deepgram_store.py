"""Where Deepgram results live: Deepgram keeps no transcript, so each answer is written to an object store the
DAG names (an ``s3://bucket/prefix/`` or an ``ObjectStoragePath``) the moment it arrives, and XCom carries a
small reference to it (``ResultRef``), never the transcript.

``s3://`` locations go through the amazon provider's ``S3Hook`` (no extra package); any other location through
Airflow's ``ObjectStoragePath`` (its fsspec backend must be installed). Every function here blocks: the
triggerer calls them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_brain.deepgram_models import DeepgramResult
from airflow_provider_brain.hooks.idempotency import task_key
from airflow_provider_brain.sources import parse_s3_uri

#: The key of a reference in XCom: a mapping with it is a Deepgram task's output (the transfers look for it).
RESULT_KEY = "deepgram_result"
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
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, key = parse_s3_uri(location, "output_uri")
        S3Hook(aws_conn_id=conn_id).load_bytes(body, key=key, bucket_name=bucket, replace=True)
    else:
        path = _path(location, conn_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def read_result(location: str, conn_id: str | None) -> dict[str, Any] | None:
    """The listen answer stored at ``location``, or ``None`` if there is none."""
    if location.startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, key = parse_s3_uri(location, "deepgram_result")
        s3 = S3Hook(aws_conn_id=conn_id)
        if not s3.check_for_key(key, bucket):
            return None
        data: dict[str, Any] = json.loads(s3.read_key(key, bucket))
        return data
    path = _path(location, conn_id)
    if not path.exists():
        return None
    stored: dict[str, Any] = json.loads(path.read_bytes())
    return stored


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
