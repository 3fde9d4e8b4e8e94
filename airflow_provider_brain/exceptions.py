"""Errors raised by the Brain provider.

One small hierarchy, so DAG authors can catch what they mean: ``BrainAuthError`` for a
connection to fix, ``BrainNotFound`` for an asset id that does not exist (or belongs to
another user), ``BrainAssetFailed`` for audio the service could not transcribe, and
``BrainAPIError`` for everything else the API answered. Messages name the request and
the status, and quote at most a short excerpt of the response body: never credentials.
"""

from __future__ import annotations

import re

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

#: How much of an error response body an exception message may quote.
BODY_EXCERPT_CHARS = 200


_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)\?(?!<redacted>)[^\s\"'<>]*")
#: A URL percent-encoded into another URL's query (``callback=https%3A%2F%2F...``): redacted whole.
_ENCODED_URL = re.compile(r"https?%3A%2F%2F[^\s&\"'<>]*", re.IGNORECASE)


def redact_urls(text: str) -> str:
    """Drop the query strings of URLs in a server's message: a presigned URL's signature lives there."""
    return _ENCODED_URL.sub("<redacted-url>", _URL_QUERY.sub(r"\1?<redacted>", text))


def body_excerpt(body: str | bytes | None) -> str:
    """Return a short, single-line excerpt of a response body for an error message."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = redact_urls(" ".join(text.split()))
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[: BODY_EXCERPT_CHARS - 3] + "..."
    return text


class BrainError(AirflowException):
    """Base class of every error the Brain provider raises."""


class BrainAPIError(BrainError):
    """The Brain API answered with an error status, or with a body that is not the JSON it promises.

    :param message: what went wrong, for a person.
    :param status: the HTTP status (``None`` when no response arrived).
    :param body: a short excerpt of the response body.
    :param retry_after: seconds the server asked us to wait (``Retry-After``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        super().__init__(message)


class BrainConnectionError(BrainAPIError):
    """No usable HTTP answer arrived: the connection failed, was reset, or timed out.

    :param maybe_sent: ``False`` when the connection could not even be opened, so the server saw nothing.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class BrainReadTimeout(BrainConnectionError):
    """The request was sent, but no answer came within the connection's ``timeout``."""


class BrainAuthError(BrainAPIError):
    """The server rejected the connection's credentials (401/403): fix the connection's login/password."""


class BrainNotFound(BrainAPIError):
    """The asset does not exist, or belongs to another user (404)."""


class BrainAssetFailed(BrainError):
    """The service could not transcribe the audio; ``reason`` is the server's own explanation."""

    def __init__(self, asset_id: str, reason: str) -> None:
        self.asset_id = asset_id
        self.reason = redact_urls(reason)
        super().__init__(f"Brain asset {asset_id} failed: {self.reason or 'no reason given by the server'}")


class BrainTimeout(BrainError):
    """An asset was still processing when the wait's deadline passed."""

    def __init__(self, asset_id: str, timeout: float, waited: float | None = None) -> None:
        self.asset_id = asset_id
        self.timeout = timeout
        self.waited = timeout if waited is None else waited
        super().__init__(
            f"Brain asset {asset_id} was still processing {self.waited:.0f} s after it was submitted "
            f"(timeout {timeout:g} s); raise the timeout, or wait for it later with BrainAssetSensor"
        )


class BrainDeadlinePassed(BrainTimeout, AirflowFailException):
    """A transcribe task's ``timeout``, counted from its asset's creation, passed: the task fails without retries
    (a retry would only wait past the deadline again)."""


class BrainAnswerLost(BrainError):
    """A submission may have been accepted but its answer was lost, and it is not sent again: the server does
    not honour ``Idempotency-Key``, so a resend could transcribe the audio twice."""


class BrainUploadNotRewindable(BrainError):
    """A streamed upload failed part-way and its source cannot be read again to retry it."""


class BrainBatchFailed(BrainError):
    """Files of a batch could not be transcribed; ``sources`` names each one (reasons are in the task log)."""

    def __init__(self, sources: list[str], *, total: int) -> None:
        self.sources = list(sources)
        super().__init__(
            f"{len(self.sources)} of {total} files of this batch could not be transcribed (reasons in the task log): "
            + ", ".join(self.sources)
            + ". Pass fail_on_asset_failure=False to get the failures in the task's return value instead"
        )


class BrainBatchTimeout(BrainError, AirflowFailException):
    """Assets of a batch were still processing when its deadline passed (``timeout`` after the batch's first
    submission, across tries); ``sources`` names their files. Fails without retries: a retry would only find
    the deadline passed again."""

    def __init__(self, sources: list[str], *, total: int, timeout: float, deleted: bool = False) -> None:
        self.sources = list(sources)
        super().__init__(
            f"{len(self.sources)} of {total} files of this batch were still processing {timeout:g} s after the "
            "batch was first submitted: "
            + ", ".join(self.sources)
            + (". Their assets were deleted (cancel_on_kill=True)" if deleted else "")
            + ". Raise the timeout and run the task again"
        )
