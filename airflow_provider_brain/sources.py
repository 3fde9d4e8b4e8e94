"""Where audio comes from, as the transcribe operators see it: ``s3://`` URIs, presigned GET URLs for them,
and URLs made safe to log and store (no query string: a presigned URL's signature lives there)."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit, urlunsplit

from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.source_versions import S3Object, head_s3_object


def public_url(url: str) -> str:
    """A URL fit for logs, XCom and metadata: scheme, host and path only (drops presigned query strings)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_s3_uri(uri: str, name: str = "s3_uri", *, key_required: bool = True) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; ``ValueError`` naming the parameter ``name`` otherwise.

    The key is everything after the bucket, as it is: S3 keys may hold ``?``, ``#`` or ``%`` (an S3
    notification's decoded key does), which a URL parser would take for a query, a fragment or an escape.
    With ``key_required=False`` a bucket alone (``s3://bucket``, a prefix's root) gives an empty key.
    """
    if not isinstance(uri, str):
        raise ValueError(f"{name} must look like s3://bucket/key, got {uri!r:.200}")
    scheme, bucket, key = uri[:5], *uri[5:].partition("/")[::2]
    if scheme.lower() != "s3://" or not bucket or (key_required and not key.strip("/")):
        raise ValueError(f"{name} must look like s3://bucket/key, got {uri[:200]!r}")
    return bucket, key.lstrip("/")


def s3_object_of(source: str) -> tuple[str, str] | None:
    """``(bucket, key)`` if ``source`` is an ``s3://bucket/key`` URI (the key whole), else ``None``."""
    try:
        return parse_s3_uri(source)
    except ValueError:
        return None


def presigned_get_url(s3: Any, bucket: str, key: str, *, expires_in: int, hint: str = "", mask: bool = True) -> str:
    """A presigned GET URL for the object, registered with Airflow's log masker unless ``mask`` is false.

    :param s3: an ``S3Hook``.
    :param hint: what to try instead, appended to the error when the object cannot be presigned.
    :param mask: register the URL's secrets with the masker. A task that presigns one file should (its log
        must not show them). A process that presigns many must not: each mask recompiles one pattern of all
        of them (300 masks cost 40 CPU seconds, 600 cost minutes), and the triggerer's masker lives as long
        as the process. There the URL must simply never be logged (errors go through ``redact_urls``).
    """
    url = s3.generate_presigned_url(
        client_method="get_object", params={"Bucket": bucket, "Key": key}, expires_in=expires_in
    )
    if not url:
        raise BrainError(f"Could not presign s3://{bucket}/{key}{'; ' + hint if hint else ''}")
    if mask:
        mask_url_secrets(url)
    return str(url)


#: Query parameters that carry a URL's secret (a presigned URL's signature or session token, a shared token).
_SECRET_PARAM_WORDS = ("signature", "sig", "token", "secret", "password", "key", "credential", "auth")


def mask_url_secrets(url: str) -> None:
    """Have Airflow's log masker hide a URL's secrets (a presigned URL's signature) wherever they appear.

    Registers only the values of parameters named like secrets (a signature, a token, a credential), or the
    whole query string if none is: one to three masks per URL. Each mask recompiles a pattern of all of them
    in the task process and its supervisor, so the cost of the next one grows with their number: a process
    that handles many URLs (the batch operator, the triggerer) must not register each one (see
    ``presigned_get_url``'s ``mask``).
    """
    from airflow.providers.common.compat.sdk import mask_secret

    query = urlsplit(url).query
    if not query:
        return
    secrets = [
        value
        for name, value in parse_qsl(query)
        if len(value) >= 8 and any(word in name.lower() for word in _SECRET_PARAM_WORDS)
    ]
    for secret in secrets or [query]:
        mask_secret(secret)


#: What a hidden secret reads as: Airflow's own mask.
HIDDEN = "***"


def _secret_param(name: str) -> bool:
    return any(word in unquote_plus(name).lower() for word in _SECRET_PARAM_WORDS)


def hide_url_secrets(url: str) -> str:
    """The URL as a page or a log may show it: the values of its secret-named query parameters (a presigned URL's
    signature, credential and session token) and any password in it replaced by ``***``; the rest kept, so it
    still says which file, and which parameters were there. A query with no secret-named parameter is hidden
    whole (the rule ``mask_url_secrets`` follows: it may be an opaque token). Costs a parse, no masker entry."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{HIDDEN}@{host}"
    if query:
        pairs = query.split("&")
        if any(_secret_param(pair.partition("=")[0]) for pair in pairs):
            query = "&".join(
                f"{pair.partition('=')[0]}={HIDDEN}" if _secret_param(pair.partition("=")[0]) else pair
                for pair in pairs
            )
        else:
            query = HIDDEN
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)


def hide_secrets_in_urls(value: Any) -> Any:
    """``value`` with ``hide_url_secrets`` applied to every URL in it: a string (a URL, or the text of a list a
    template rendered without native types) or a list or tuple of them. Anything else is returned as it is."""
    if isinstance(value, str):
        return _URL_IN_TEXT.sub(lambda match: hide_url_secrets(match.group(0)), value)
    if isinstance(value, list | tuple):
        return type(value)(hide_secrets_in_urls(item) for item in value)
    return value


@dataclass(frozen=True)
class AudioLocation:
    """Where one file's audio is, as a transcribe task names it: exactly one of an ``s3://`` URI, an S3 bucket
    and key, an http(s) URL, or a file on the worker. Shared by the operator and the trigger that starts the
    task in the triggerer, so both check and name a source alike."""

    s3_uri: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    audio_url: str | None = None
    local_path: str | None = None

    def check(self, owner: str) -> None:
        """Raise ``ValueError``, naming ``owner`` and the parameters, unless exactly one source is given."""
        given = [
            name
            for name, value in (
                ("s3_uri", self.s3_uri),
                ("s3_bucket/s3_key", self.s3_bucket or self.s3_key),
                ("audio_url", self.audio_url),
                ("local_path", self.local_path),
            )
            if value
        ]
        if len(given) != 1:
            raise ValueError(
                f"{owner} needs exactly one audio source: s3_uri (or s3_bucket with s3_key), "
                f"audio_url or local_path; got {', '.join(given) if given else 'none'}"
            )
        if (self.s3_bucket or self.s3_key) and not (self.s3_bucket and self.s3_key):
            raise ValueError(f"{owner}: s3_bucket and s3_key go together; give both, or use s3_uri")

    @property
    def s3(self) -> tuple[str, str] | None:
        """``(bucket, key)`` for an S3 source, else ``None``."""
        if self.s3_uri:
            return parse_s3_uri(self.s3_uri)
        if self.s3_bucket and self.s3_key:
            return self.s3_bucket, self.s3_key
        return None

    @property
    def label(self) -> str:
        """Where the audio comes from, safe to log and store (no presigned query string)."""
        if location := self.s3:
            return f"s3://{location[0]}/{location[1]}"
        if self.audio_url:
            return public_url(self.audio_url)
        return str(self.local_path)


def existing_s3_object(aws_conn_id: str | None, bucket: str, key: str, *, s3: Any = None) -> tuple[Any, S3Object]:
    """An ``S3Hook`` on ``aws_conn_id`` and the object's current version, from one ``HeadObject``, which also
    proves the object exists: a clear ``FileNotFoundError`` if it does not.

    :param s3: the ``S3Hook`` to use (e.g. ``shared_s3_hook``'s); a new one if not given.
    """
    if s3 is None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3 = S3Hook(aws_conn_id=aws_conn_id)
    return s3, head_s3_object(s3, bucket, key)


#: How long ``shared_s3_hook`` keeps one connection's hook: an edited connection is picked up after this.
SHARED_S3_HOOK_SECONDS = 600.0
_shared_s3_hooks: dict[str | None, tuple[float, Any]] = {}
_shared_s3_hooks_lock = threading.Lock()


def shared_s3_hook(aws_conn_id: str | None) -> Any:
    """One ``S3Hook`` per connection for a long-lived process (the triggerer), renewed every 10 minutes.

    A new hook costs a connection lookup and a boto3 client (about 0.2 CPU seconds: botocore loads and parses
    its service models), which a triggerer presigning thousands of files would pay for each one. boto3 clients
    are thread-safe, so the threads that presign share it. Its credentials are the connection's (a role's are
    refreshed by botocore as usual).
    """
    now = time.monotonic()
    with _shared_s3_hooks_lock:
        entry = _shared_s3_hooks.get(aws_conn_id)
        if entry is None or now - entry[0] > SHARED_S3_HOOK_SECONDS:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            hook = S3Hook(aws_conn_id=aws_conn_id)
            hook.get_conn()  # Build the client here, under the lock, not once per racing thread.
            entry = _shared_s3_hooks[aws_conn_id] = (now, hook)
        return entry[1]
