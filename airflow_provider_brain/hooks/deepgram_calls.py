"""What the Deepgram hook sends and how it reads the answers: the connection's settings (a ``Token`` key), the
listen request's query string (options, the task's ``tag``, the idempotency marker), Deepgram's error shape
(``{"err_code", "err_msg", "request_id"}``) mapped onto the provider's exceptions, and how a lost answer is told
from an error that proves nothing was accepted."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_brain.exceptions import (
    BrainAPIError,
    BrainAuthError,
    BrainConnectionError,
    BrainError,
    BrainNotFound,
    body_excerpt,
    redact_urls,
)
from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.settings import ClientSettings, settings_from_connection

DEFAULT_DEEPGRAM_URL = "https://api.deepgram.com"
#: The ``extra`` key every listen request of this provider carries: ``extra=airflow_idempotency_key:<key>``.
MARKER_EXTRA_KEY = "airflow_idempotency_key"
#: Listen options a connection's ``options`` extra or a call may set (values as Deepgram spells them).
LISTEN_OPTIONS = (
    "model",
    "language",
    "punctuate",
    "smart_format",
    "utterances",
    "utt_split",
    "diarize",
    "paragraphs",
    "numerals",
    "profanity_filter",
    "redact",
    "keywords",
    "version",
)


class DeepgramAPIError(BrainAPIError):
    """Deepgram answered an error: ``err_code`` and ``err_msg`` are its own words, ``request_id`` its id."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        retry_after: float | None = None,
        err_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body, retry_after=retry_after)
        self.err_code = err_code
        self.request_id = request_id


class DeepgramAuthError(DeepgramAPIError, BrainAuthError):
    """Deepgram refused the API key (401/403): put a valid key in the connection's password."""


class DeepgramNotFound(DeepgramAPIError, BrainNotFound):
    """The project or request does not exist for this key (404)."""


class DeepgramAnswerLost(BrainError):
    """Deepgram accepted a listen request (its history shows it) but the answer never arrived.

    Deepgram keeps no transcript to download later, and the request is not sent again on its own: a resend
    would be billed and recognised a second time. ``request_id`` is the accepted request; run the task
    again (a new try) to transcribe the audio anew.
    """

    def __init__(self, request_id: str, marker: str, cause: str) -> None:
        self.request_id = request_id
        self.marker = marker
        super().__init__(
            f"Deepgram accepted listen request {request_id} (idempotency key {marker}) but its answer was lost "
            f"({cause}). Deepgram keeps no transcript, so it was not sent again automatically (that would bill "
            "the audio twice): run the task again to transcribe it anew"
        )


@dataclasses.dataclass(frozen=True)
class ListenCall:
    """A ``POST /v1/listen`` call and the idempotency marker its query carries."""

    call: Call
    marker: str


#: How Deepgram may deliver a callback.
CALLBACK_METHODS = ("put", "post")


def accepted(found: Mapping[str, Any] | None) -> bool:
    """Whether a request found in the history was accepted (not failed there with a 5xx)."""
    return found is not None and int(found.get("code") or 200) < 500


def request_id_of(answer: Any) -> str:
    """The ``request_id`` of a listen answer sent with a callback (``{"request_id": ...}``)."""
    request_id = answer.get("request_id") if isinstance(answer, Mapping) else None
    if not request_id:
        raise DeepgramAPIError("Deepgram POST /v1/listen with a callback answered without a request_id")
    return str(request_id)


def dg_call(method: str, path: str, **kwargs: Any) -> Call:
    """A ``Call`` to Deepgram: messages and retry logs name Deepgram, not Brain."""
    return Call(method, path, service="Deepgram", **kwargs)


def deepgram_settings(conn: Any, extras: Mapping[str, Any]) -> ClientSettings:
    """``ClientSettings`` of a ``deepgram`` connection: the API key (password) sent as ``Token``, the host
    defaulting to ``https://api.deepgram.com``; ``timeout``, ``verify``, ``proxies``, ``max_retries`` as for Brain."""
    if not conn.password:
        raise ValueError("The Deepgram connection has no API key: put it in the connection's password field")
    settings = settings_from_connection(conn, extras, service="Deepgram", default_url=DEFAULT_DEEPGRAM_URL)
    return dataclasses.replace(settings, login=None, auth_scheme="token", server_idempotency=False)


def listen_params(
    options: Mapping[str, Any],
    *,
    tags: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
    marker: str | None = None,
    callback: tuple[str, str] | None = None,
) -> tuple[tuple[str, str], ...]:
    """The query of ``POST /v1/listen``: options (booleans as ``true``/``false``), each tag, each extra
    ``key:value``, the idempotency marker as ``extra=airflow_idempotency_key:<marker>``, and the callback (URL,
    method). Sent as the call's ``params``: its path, which messages and retry logs show, stays ``/v1/listen``
    (a callback URL is a presigned PUT URL, a secret)."""
    pairs: list[tuple[str, str]] = []
    for name, value in options.items():
        if value is None:
            continue
        if name in ("tag", "extra", "callback", "callback_method"):
            raise ValueError(f"Listen option {name!r} is set by the hook, not in options")
        if isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, list | tuple):
            pairs.extend((name, str(item)) for item in value)
        else:
            pairs.append((name, str(value)))
    pairs.extend(("tag", tag) for tag in tags)
    for key, value in (extra or {}).items():
        pairs.append(("extra", f"{key}:{value}"))
    if marker:
        pairs.append(("extra", f"{MARKER_EXTRA_KEY}:{marker}"))
    if callback is not None:
        url, method = callback
        if method not in CALLBACK_METHODS:
            raise ValueError(f"callback_method must be one of {CALLBACK_METHODS}, not {method!r}")
        pairs += [("callback", url), ("callback_method", method)]
    return tuple(pairs)


def request_has_marker(item: Mapping[str, Any], marker: str) -> bool:
    """Whether a request of the project's history (``GET /v1/projects/{id}/requests``) carries ``marker``:
    as the ``extra`` pair in its path's query, or as one of its tags."""
    wanted = f"{MARKER_EXTRA_KEY}:{marker}"
    path = str(item.get("path") or "")
    if any(name == "extra" and value == wanted for name, value in parse_qsl(urlsplit(path).query)):
        return True
    details = (item.get("response") or {}).get("details") or {}
    return wanted in (details.get("tags") or [])


def lost_answer(exc: BaseException) -> bool:
    """Whether a failed listen request may have been accepted: the connection broke after it was sent, no
    answer came in time, or a 5xx (a gateway may answer 502/504 while Deepgram works on). Not a 429, not a
    connection that could not be opened: those prove nothing was accepted."""
    if isinstance(exc, BrainConnectionError):
        return exc.maybe_sent
    return isinstance(exc, BrainAPIError) and exc.status is not None and exc.status >= 500


def safe_to_resend(exc: BaseException) -> bool:
    """Whether a listen request may be sent again at once: refused with 429, or never delivered."""
    if isinstance(exc, BrainConnectionError):
        return not exc.maybe_sent
    return isinstance(exc, BrainAPIError) and exc.status == 429


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def decode_deepgram(call: Call, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """Decode a Deepgram answer, or raise the provider's exception with Deepgram's ``err_code``/``err_msg``
    (URLs' query strings redacted; the API key is in a header and never in a message)."""
    what = f"Deepgram {call.method} {urlsplit(call.path).path}"
    if status >= 400:
        excerpt = body_excerpt(body)
        err_code = err_msg = request_id = None
        try:
            data = json.loads(body)
            if isinstance(data, Mapping):
                err_code = data.get("err_code") or data.get("category")
                err_msg = data.get("err_msg") or data.get("message")
                request_id = data.get("request_id")
        except ValueError:
            pass
        request_id = request_id or headers.get("dg-request-id")
        reason = f"{err_code}: {redact_urls(str(err_msg))}" if err_code or err_msg else excerpt
        where = f" (request {request_id})" if request_id else ""
        kwargs: dict[str, Any] = {"status": status, "body": excerpt, "err_code": err_code, "request_id": request_id}
        if status in (401, 403):
            raise DeepgramAuthError(
                f"{what} was refused ({status}) {reason}{where}. Check the API key in the Deepgram connection's "
                "password, and that it may use this project",
                **kwargs,
            )
        if status == 404:
            raise DeepgramNotFound(f"{what} failed with 404 {reason}{where}", **kwargs)
        retry_after = _parse_retry_after(headers.get("Retry-After")) if status == 429 else None
        raise DeepgramAPIError(f"{what} failed with {status} {reason}{where}", retry_after=retry_after, **kwargs)
    try:
        return json.loads(body)
    except ValueError as err:
        # Not quoted: a successful answer holds transcript text.
        raise DeepgramAPIError(
            f"{what} answered {status} with {len(body)} bytes that are not JSON ({err})", status=status
        ) from None
