"""How ``BrainTranscribeOperator`` hands its audio to Brain, and names it for lineage.

An S3 object as a presigned GET URL (``s3_transfer="presign"``) or streamed through the worker (``"stream"``),
a URL as it is, a file on the worker uploaded in a stream. The operator keeps the task's life cycle (resume,
reuse, wait, give up); this module only sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_brain.hooks.idempotency import IDEMPOTENCY_METADATA_KEY
from airflow_provider_brain.hooks.source_versions import (
    REUSE_LOOKUP_ASSETS,
    SOURCE_VERSION_METADATA_KEY,
    S3Object,
    find_transcriptions,
)
from airflow_provider_brain.hooks.uploads import SizedStream
from airflow_provider_brain.sources import (
    AudioLocation,
    existing_s3_object,
    mask_url_secrets,
    presigned_get_url,
)

if TYPE_CHECKING:
    from airflow_provider_brain.hooks.brain import BrainHook
    from airflow_provider_brain.models import Asset

S3_TRANSFERS = ("presign", "stream")


def submit_audio(
    hook: BrainHook,
    location: AudioLocation,
    metadata: dict[str, Any],
    *,
    aws_conn_id: str | None,
    s3_transfer: str = "presign",
    presigned_url_expires: int = 3600,
    s3: Any = None,
) -> Asset:
    """Submit the audio at ``location`` asynchronously, with ``metadata`` (its idempotency key included).

    :param s3: an ``S3Hook`` that has already found the object (``HeadObject``), its version in ``metadata``;
        else one is made, checks the object and records its version (``source_version``).
    """
    key = metadata.get(IDEMPOTENCY_METADATA_KEY)
    if s3_location := location.s3:
        bucket, s3_key = s3_location
        if s3 is None:
            # The HEAD that proves the object exists also names its version: recorded at no extra cost, so a
            # sweep (or a reuse_existing task) knows this object version is transcribed.
            s3, version = existing_s3_object(aws_conn_id, bucket, s3_key)
            metadata = {**metadata, SOURCE_VERSION_METADATA_KEY: version.version}
        if s3_transfer == "stream":

            def open_object() -> SizedStream:
                response = s3.get_key(s3_key, bucket).get()
                return SizedStream(response["Body"], response["ContentLength"])

            return hook.submit_file(open_object, async_=True, metadata=metadata, idempotency_key=key)
        url = presigned_get_url(s3, bucket, s3_key, expires_in=presigned_url_expires, hint="try s3_transfer='stream'")
        return hook.submit_url(url, async_=True, metadata=metadata, idempotency_key=key)
    if location.audio_url:
        mask_url_secrets(location.audio_url)
        return hook.submit_url(location.audio_url, async_=True, metadata=metadata, idempotency_key=key)
    return hook.submit_file(str(location.local_path), async_=True, metadata=metadata, idempotency_key=key)


def reusable_asset(
    hook: BrainHook, aws_conn_id: str | None, bucket: str, key: str
) -> tuple[Any, S3Object, Asset | None]:
    """For ``reuse_existing="source_version"``: an ``S3Hook``, the object's current version (one ``HeadObject``,
    which also checks it exists) and the newest live or done asset of that version among the newest
    ``REUSE_LOOKUP_ASSETS`` (one ``GET /assets`` page), if there is one."""
    s3, version = existing_s3_object(aws_conn_id, bucket, key)
    return s3, version, find_transcriptions(hook, [version], max_assets=REUSE_LOOKUP_ASSETS).get(version.uri)


def lineage_inputs(location: AudioLocation) -> list[Any]:
    """OpenLineage input datasets: the S3 object or the URL (without query string); none for a local file."""
    from airflow_provider_brain.transfers.lineage import source_datasets

    return source_datasets([location.label])
