"""The one decision of what is worth retrying, and how long to wait: shared by the sync and async paths."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import tenacity

from airflow_provider_brain.exceptions import BrainAPIError, BrainConnectionError, BrainReadTimeout
from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.settings import ClientSettings

#: The longest ``Retry-After`` we honour; a server asking for more is waited for this long.
MAX_RETRY_AFTER = 300.0

log = logging.getLogger("airflow_provider_brain.hooks.brain")


def is_retryable(exc: BaseException, *, idempotent: bool = True) -> bool:
    """The one retry decision: connection failures, timeouts, 429 and 5xx. Never other 4xx.

    A read timeout on a non-idempotent call (a submission) is not retried: the server has the
    whole request and may be transcribing it, so sending it again would transcribe it twice.
    """
    if isinstance(exc, BrainReadTimeout):
        return idempotent
    if isinstance(exc, BrainConnectionError):
        return True
    if isinstance(exc, BrainAPIError) and exc.status is not None:
        return exc.status == 429 or exc.status >= 500
    return False


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    """Wait what the server asked for (``Retry-After``), else exponential backoff with full jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), MAX_RETRY_AFTER)
        return float(self._backoff(retry_state))


def _retry_logger(call: Call) -> Any:
    """A tenacity ``before_sleep`` that says which call failed, why, and when it is retried."""

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "%s %s %s failed (%s); retry %d in %.1f s",
            call.service,
            call.method,
            call.path,
            exc,
            retry_state.attempt_number,
            wait,
        )

    return before_sleep


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop retrying when the next wait would end past a wall-clock deadline (``time.time()`` seconds)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return time.time() + (retry_state.upcoming_sleep or 0.0) >= self.deadline


def retry_policy(
    settings: ClientSettings,
    call: Call,
    *,
    backoff: float,
    backoff_max: float,
    retry: bool = True,
    idempotent: bool | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Tenacity arguments shared by the sync and async paths (``idempotent`` overrides the call's own).

    :param deadline: a wall-clock time (``time.time()``) past which no retry starts: a wait with a deadline
        does not sit out a ``Retry-After: 300`` that ends after it.
    """
    idempotent = call.idempotent if idempotent is None else idempotent
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(settings.max_retries + 1)
    if deadline is not None:
        stop = stop | _StopAtDeadline(deadline)
    return {
        "retry": (
            tenacity.retry_if_exception(functools.partial(is_retryable, idempotent=idempotent))
            if retry
            else tenacity.retry_never
        ),
        "wait": _WaitRetryAfterOrBackoff(backoff, backoff_max),
        "stop": stop,
        "before_sleep": _retry_logger(call),
        "reraise": True,
    }
