"""One API request described once (``Call``) for the sync and async paths, and what its answer means: the
status-to-error mapping, and the classification of a client library's exception."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import requests
import urllib3

from airflow_provider_brain.exceptions import (
    BrainAPIError,
    BrainAuthError,
    BrainConnectionError,
    BrainNotFound,
    BrainReadTimeout,
    body_excerpt,
    redact_urls,
)
from airflow_provider_brain.models import validate_asset_id


@dataclass(frozen=True)
class Call:
    """One API request, described once and sent by either the sync or the async path."""

    method: str
    path: str
    #: The query, as a mapping or as pairs (a name repeated). Left out of the repr: a Deepgram ``callback``
    #: parameter is a presigned PUT URL.
    params: Mapping[str, str] | tuple[tuple[str, str], ...] | None = field(default=None, repr=False)
    #: Left out of the repr: a URL submission's body holds the presigned URL, an update's the asset's metadata.
    json: Any = field(default=None, repr=False)
    #: Sent as the ``Idempotency-Key`` header: a server that honours it answers a resend with the first asset.
    idempotency_key: str | None = None
    #: A POST that changes nothing (a search): sending it twice is harmless.
    read_only: bool = False
    #: Which API it goes to, as messages name it ("Deepgram" for the Deepgram hook's calls).
    service: str = "Brain"
    #: The query holds a secret (a callback's presigned URL): a failure is not chained to the HTTP client's
    #: exception, whose message quotes the URL sent, query included.
    secret_query: bool = False

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice is harmless: not so for a POST that submits, which may create a second asset."""
        return self.method != "POST" or self.read_only

    @property
    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}


def asset_path(asset_id: str) -> str:
    return "/assets/" + quote(validate_asset_id(asset_id), safe="")


def transport_error(call: Call, base_url: str, err: Exception) -> BrainAPIError:
    """Classify a requests/httpx exception: retryable network trouble, or a setup error to fix. The error's
    ``__cause__`` is ``err``, unless the call's query holds a secret (``secret_query``): the client's exception
    quotes the URL sent, query included, and a task log prints the chain. Raise it outside the ``except``.

    A ``BrainConnectionError`` says whether the request may have reached the server (``maybe_sent``): a
    connection that could not be opened sent nothing, so even a submission is safe to send again.
    """
    error = _classify(call, base_url, err)
    error.__cause__ = None if call.secret_query else err
    return error


def _classify(call: Call, base_url: str, err: Exception) -> BrainAPIError:
    # ``redact_urls``: requests quotes the URL it sent, query string (a callback URL's signature) included.
    message = redact_urls(
        f"{call.service} {call.method} {call.path}: no answer from {base_url} ({type(err).__name__}: {err})"
    )
    if isinstance(err, (requests.ReadTimeout, httpx.ReadTimeout)):
        return BrainReadTimeout(message)
    if isinstance(err, (requests.ConnectTimeout, httpx.ConnectError, httpx.ConnectTimeout)) or (
        isinstance(err, requests.ConnectionError) and _never_connected(err)
    ):
        return BrainConnectionError(message, maybe_sent=False)
    network = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        httpx.TimeoutException,
        httpx.NetworkError,
        httpx.RemoteProtocolError,
    )
    ssl_failure = isinstance(err, requests.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(err)
    if isinstance(err, network) and not ssl_failure:
        return BrainConnectionError(message)
    return BrainAPIError(
        redact_urls(
            f"{call.service} {call.method} {call.path} could not be sent to {base_url}: {type(err).__name__}: {err}"
        )
    )


def _never_connected(err: requests.ConnectionError) -> bool:
    """Whether requests failed while opening the connection (refused, unresolvable), before sending a byte."""
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError) or isinstance(
        err.args[0] if err.args else None, urllib3.exceptions.NewConnectionError
    )


def _raise_for_status(call: Call, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Map an error status to the provider's exceptions; a 2xx/3xx answer passes."""
    if status < 400:
        return
    excerpt = body_excerpt(body)
    try:
        reason = redact_urls(str(json.loads(body).get("error"))) or excerpt
    except (ValueError, AttributeError):
        reason = excerpt
    what = f"Brain {call.method} {call.path}"
    if status in (401, 403):
        raise BrainAuthError(
            f"{what} was refused ({status}): {reason}. Check the Brain connection's login and password.",
            status=status,
            body=excerpt,
        )
    if status == 404:
        raise BrainNotFound(f"{what} failed with 404: {reason}", status=status, body=excerpt)
    retry_after = _parse_retry_after(headers.get("Retry-After")) if status == 429 else None
    raise BrainAPIError(f"{what} failed with {status}: {reason}", status=status, body=excerpt, retry_after=retry_after)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # An HTTP-date Retry-After: fall back to our own backoff.


def decode(call: Call, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    _raise_for_status(call, status, headers, body)
    try:
        return json.loads(body)
    except ValueError as err:
        # Not quoted: a successful answer may hold transcript text.
        raise BrainAPIError(
            f"Brain {call.method} {call.path} answered {status} with {len(body)} bytes that are not JSON ({err})",
            status=status,
        ) from None
