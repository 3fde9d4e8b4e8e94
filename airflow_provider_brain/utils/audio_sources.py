"""Where audio comes from, as the transcribe operators see it: ``s3://`` URIs, presigned GET URLs for them,
and URLs made safe to log and store (no query string: a presigned URL's signature lives there)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from airflow_provider_brain.exceptions import BrainError


def public_url(url: str) -> str:
    """A URL fit for logs, XCom and metadata: scheme, host and path only (drops presigned query strings)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_s3_uri(uri: str, name: str = "s3_uri") -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; ``ValueError`` naming the parameter ``name`` otherwise."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"{name} must look like s3://bucket/key, got {uri[:200]!r}")
    return parts.netloc, parts.path.lstrip("/")


def presigned_get_url(s3: Any, bucket: str, key: str, *, expires_in: int, hint: str = "") -> str:
    """A presigned GET URL for the object, already registered with Airflow's log masker.

    :param s3: an ``S3Hook``.
    :param hint: what to try instead, appended to the error when the object cannot be presigned.
    """
    url = s3.generate_presigned_url(
        client_method="get_object", params={"Bucket": bucket, "Key": key}, expires_in=expires_in
    )
    if not url:
        raise BrainError(f"Could not presign s3://{bucket}/{key}{'; ' + hint if hint else ''}")
    mask_url_secrets(url)
    return str(url)


def mask_url_secrets(url: str) -> None:
    """Have Airflow's log masker hide a URL's query string (a presigned URL's signature) wherever it appears."""
    from airflow.sdk.log import mask_secret

    query = urlsplit(url).query
    if query:
        mask_secret(url)
        mask_secret(query)
        for _, value in parse_qsl(query):
            if len(value) >= 8:
                mask_secret(value)
