"""Which version of an S3 object a Brain asset transcribed, and which object versions no asset holds yet.

A transcription of an S3 object is named by the object and its version, not by the DAG run that asked for it:
every submission records ``source`` (``s3://bucket/key``) in its asset's metadata, and a submission that cares
about versions records ``source_version`` (``SOURCE_VERSION_METADATA_KEY``) next to it: the object's ETag,
quotes stripped. Two paths read them back:

- ``BrainTranscribeOperator(reuse_existing="source_version")`` (one object): ``HeadObject``, then one look at the
  newest assets (``find_transcriptions``); a live or done asset of that object version is reused.
- a sweep of a prefix (example DAG ``brain_s3_sweep``): ``list_s3_objects`` lists it with each object's ETag,
  ``untranscribed`` keeps the objects whose version no live or done asset holds, in one scan of Brain's asset
  listing for all of them (not one request per object), and ``sweep_batches`` cuts them into
  ``BrainTranscribeBatchOperator`` arguments that record the versions too.

Why the ETag, not the version id: it is the one identity all three places that see an object agree on, in
versioned and unversioned buckets alike: the S3 notification (``eTag``), ``HeadObject`` and the prefix listing
(``ListObjectsV2`` has no version ids; ``ListObjectVersions`` lists every old version and delete marker too).
An object overwritten with other bytes gets a new ETag, so it is transcribed again; the same bytes uploaded
again keep theirs (for a single-part upload), so they are not. A multipart upload's ETag depends on its part
size: the same bytes uploaded with another part size are transcribed once more, never skipped.

Failed assets hold nothing: their object version is transcribed again. Both lookups use the idempotency-key
scan (``hooks/idempotency.py``'s ``KeyScan`` and ``find_keys``) with another key, and stop at the first
asset created before the object (less a minute of clock slack): an older asset cannot be of that version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_brain.hooks.idempotency import KeyScan, find_keys

if TYPE_CHECKING:
    from airflow_provider_brain.hooks.brain import BrainHook
    from airflow_provider_brain.models import Asset

log = logging.getLogger(__name__)

#: Metadata key of the version (ETag, without quotes) of the S3 object an asset transcribed, next to ``source``.
SOURCE_VERSION_METADATA_KEY = "source_version"
#: What ``reuse_existing`` accepts (besides ``None``: always submit).
REUSE_EXISTING_MODES = ("source_version",)
#: How many of the newest assets one object's lookup reads, at most: one ``GET /assets`` page.
REUSE_LOOKUP_ASSETS = 1000
#: Page size of the listing scans here (the API's maximum).
SCAN_PAGE_SIZE = 1000
#: Operator arguments that name an S3 source (the only kind with a version).
S3_SOURCE_ARGUMENTS = ("s3_uri", "s3_bucket", "s3_key")


def etag_version(etag: str) -> str:
    """The ``source_version`` of an object with this ETag: S3 quotes ETags in headers and listings, not in
    notifications; stored without quotes."""
    return etag.strip().strip('"')


def version_key(source: str, version: str) -> str:
    """One string naming an object version, for the scan (a key may hold any character: JSON keeps them apart)."""
    return json.dumps([source, version])


def version_key_of(asset: Asset) -> str | None:
    """The object version an asset's metadata records, as ``version_key`` names it; ``None`` if it records none."""
    source = asset.metadata.get("source")
    version = asset.metadata.get(SOURCE_VERSION_METADATA_KEY)
    if isinstance(source, str) and isinstance(version, str):
        return version_key(source, version)
    return None


def check_reuse_existing(mode: str | None, sources: Iterable[str], owner: str) -> None:
    """Raise ``ValueError``, naming ``owner`` and the accepted values, unless ``mode`` may be used with the
    audio sources given (the names of the operator arguments that are set)."""
    if mode is None:
        return
    if mode not in REUSE_EXISTING_MODES:
        accepted = ", ".join(repr(m) for m in REUSE_EXISTING_MODES)
        raise ValueError(f"{owner}: reuse_existing must be None or one of {accepted}, not {mode!r}")
    other = [name for name in sources if name not in S3_SOURCE_ARGUMENTS]
    if other:
        raise ValueError(
            f"{owner}: reuse_existing={mode!r} needs an S3 source (s3_uri, or s3_bucket and s3_key), whose ETag "
            f"names the version transcribed; {other[0]} has no version to compare"
        )


@dataclass(frozen=True)
class S3Object:
    """One version of an S3 object: where it is, its ETag (``version``) and when it was written."""

    bucket: str
    key: str
    version: str
    last_modified: datetime

    @property
    def uri(self) -> str:
        """``s3://bucket/key``: the ``source`` a transcribe task records for it."""
        return f"s3://{self.bucket}/{self.key}"


def head_s3_object(s3: Any, bucket: str, key: str) -> S3Object:
    """The current version of an object (one ``HeadObject``); ``FileNotFoundError`` if it is not there: the one
    existence check of every S3 source (``audio_sources.existing_s3_object`` uses it too).

    :param s3: an ``S3Hook``.
    """
    head = s3.head_object(key, bucket)
    if head is None:
        raise FileNotFoundError(f"s3://{bucket}/{key} does not exist, or connection {s3.aws_conn_id!r} may not read it")
    return S3Object(bucket, key, etag_version(str(head["ETag"])), _aware(head["LastModified"]))


def list_s3_objects(
    s3: Any, bucket: str, prefix: str, *, suffixes: Sequence[str] = (), min_age: float = 0.0
) -> list[S3Object]:
    """The objects under ``prefix`` with their versions: one ``ListObjectsV2`` request per 1,000 objects.

    :param s3: an ``S3Hook``.
    :param suffixes: keep only keys ending so (case-insensitive), e.g. ``(".wav", ".mp3")``; all if empty.
    :param min_age: leave out objects written less than this many seconds ago (the event path's share: a sweep
        that takes them too may transcribe a file the event run is about to, since neither sees the other's
        asset yet; the next sweep takes them if their event was lost).
    """
    newest = datetime.now(UTC) - timedelta(seconds=min_age)
    ends = tuple(s.lower() for s in suffixes)
    found: list[S3Object] = []
    for page in s3.get_conn().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key, written = str(item["Key"]), _aware(item["LastModified"])
            if key.endswith("/") or (ends and not key.lower().endswith(ends)) or written > newest:
                continue
            found.append(S3Object(bucket, key, etag_version(str(item["ETag"])), written))
    return found


def find_transcriptions(
    hook: BrainHook, objects: Sequence[S3Object], *, max_assets: int | None = None
) -> dict[str, Asset]:
    """For each object version a live or done asset holds, that asset (the newest), by ``s3://`` URI.

    One scan of the asset listing (every status, newest first, pages of 1,000) for all the objects at once. It
    stops once every version is found, at the first asset created before the oldest object was written (less
    ``CLOCK_SLACK``), or after ``max_assets`` assets: one page for one object with ``REUSE_LOOKUP_ASSETS``.
    """
    if not objects:
        return {}
    keys = {version_key(o.uri, o.version): o for o in objects}
    oldest = min(o.last_modified for o in objects)
    scan = KeyScan(keys, created_after=oldest, max_assets=max_assets, key_of=version_key_of)
    found = find_keys(hook.transport, scan, page_size=SCAN_PAGE_SIZE)
    log.info("Looked for %d object versions among %d Brain assets: %d held", len(keys), scan.scanned, len(found))
    return {keys[key].uri: asset for key, asset in found.items()}


def untranscribed(hook: BrainHook, objects: Sequence[S3Object], *, max_assets: int | None = None) -> list[S3Object]:
    """The objects whose version no live or done asset holds (failed ones hold nothing), in listing order.

    Cost: one scan of Brain's asset listing for all of them (``find_transcriptions``): back to the oldest
    object's write time, in pages of 1,000 assets. Keep the prefix to recent files (a dated prefix) or give
    ``max_assets`` to bound it; an object whose asset lies beyond ``max_assets`` is transcribed again.
    """
    held = find_transcriptions(hook, objects, max_assets=max_assets)
    return [o for o in objects if o.uri not in held]


def sweep_batches(objects: Sequence[S3Object], batch_size: int) -> list[dict[str, Any]]:
    """``BrainTranscribeBatchOperator`` arguments for ``expand_kwargs``, ``batch_size`` objects each: their URIs
    and, per file, the ``source_version`` its asset records (so the next sweep and the event path see it)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return [
        {
            "s3_uris": [o.uri for o in chunk],
            "file_metadata": {o.uri: {SOURCE_VERSION_METADATA_KEY: o.version} for o in chunk},
        }
        for chunk in (objects[i : i + batch_size] for i in range(0, len(objects), batch_size))
    ]


def _aware(value: Any) -> datetime:
    """A datetime from boto3 (timezone-aware) or a string, as an aware datetime (naive ones are UTC)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
