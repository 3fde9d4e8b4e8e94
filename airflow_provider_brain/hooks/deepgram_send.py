"""How the Deepgram hook sends a listen request, sync and async: retried at once only when it provably was not
accepted (a 429, a connection that never opened); after a possibly lost answer (a reset after sending, a read
timeout, a 5xx) the project's history is searched for the request's idempotency marker first, and the request
is sent again only if it is not there. A request found there is ``DeepgramAnswerLost``, or, when a callback
brings its result, simply the request id."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import tenacity

from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.connected import TransportOwner
from airflow_provider_brain.hooks.deepgram_calls import (
    DeepgramAnswerLost,
    ListenCall,
    accepted,
    lost_answer,
    safe_to_resend,
)

log = logging.getLogger("airflow_provider_brain.hooks.deepgram")


class ListenSender(TransportOwner):
    """Mixin of ``DeepgramHook``: the resend rule of ``POST /v1/listen``."""

    history_wait: float

    def find_request(self, marker: str, *, since: datetime | None = None) -> dict[str, Any] | None:
        raise NotImplementedError

    async def afind_request(self, marker: str, *, since: datetime | None = None) -> dict[str, Any] | None:
        raise NotImplementedError

    def _listen(self, listen: ListenCall, opener: Any, *, rewindable: bool, accepted_is_enough: bool = False) -> Any:
        """Send a listen call and return Deepgram's answer. After a lost answer the request is sent again only if
        the history does not show it; if it does, ``DeepgramAnswerLost``, or (``accepted_is_enough``: a callback
        brings the result) the request id found, as ``{"request_id": ...}``."""
        transport = self.transport
        call, marker = listen.call, listen.marker
        since = datetime.now(UTC)
        resends = 0
        while True:

            def attempt() -> Any:
                if opener is None:
                    return transport.send(call)
                with opener() as body:
                    return transport.send(call, body=body, headers={"Content-Type": "application/octet-stream"})

            policy = {**transport.policy(call), "retry": tenacity.retry_if_exception(safe_to_resend)}
            if not rewindable:
                policy["retry"] = tenacity.retry_never
            try:
                return tenacity.Retrying(**policy)(transport.with_fresh_credentials, attempt)
            except BrainError as exc:
                if not lost_answer(exc):
                    raise
                found = self._find_lost(marker, since)
                if accepted_is_enough and accepted(found):
                    return self._found(found, marker, exc)
                self._check_resend(found, marker, exc, resends, rewindable)
                resends += 1
                time.sleep(min(self.retry_backoff * 2**resends, self.retry_backoff_max))

    def _find_lost(self, marker: str, since: datetime) -> dict[str, Any] | None:
        give_up = time.monotonic() + self.history_wait
        while True:
            found = self.find_request(marker, since=since)
            if found is not None or time.monotonic() >= give_up:
                return found
            time.sleep(1.0)

    @staticmethod
    def _found(found: Any, marker: str, exc: BrainError) -> dict[str, Any]:
        request_id = str(found.get("request_id"))
        log.warning(
            "Deepgram listen request %s: the answer was lost (%s), but the history shows request %s: not sent "
            "again, its callback brings the result",
            marker,
            type(exc).__name__,
            request_id,
        )
        return {"request_id": request_id}

    def _check_resend(
        self, found: dict[str, Any] | None, marker: str, exc: BrainError, resends: int, rewindable: bool
    ) -> None:
        """Raise unless the lost request may be sent again: not in the history (or failed there with a 5xx),
        resends left, and a body that can be read again."""
        if accepted(found):
            assert found is not None
            raise DeepgramAnswerLost(str(found.get("request_id")), marker, type(exc).__name__) from exc
        if resends >= self.transport.settings.max_retries or not rewindable:
            raise exc
        log.warning(
            "Deepgram listen request %s: the answer was lost (%s) and the project's history does not show it; "
            "sending it again",
            marker,
            type(exc).__name__,
        )

    async def _alisten(self, listen: ListenCall, *, accepted_is_enough: bool = False) -> Any:
        """Async ``_listen`` for a URL body."""
        transport = await self.aget_transport()
        call, marker = listen.call, listen.marker
        since = datetime.now(UTC)
        resends = 0
        while True:
            policy = {**transport.policy(call), "retry": tenacity.retry_if_exception(safe_to_resend)}
            try:
                return await tenacity.AsyncRetrying(**policy)(
                    transport.awith_fresh_credentials, lambda: transport.asend(call)
                )
            except BrainError as exc:
                if not lost_answer(exc):
                    raise
                give_up = time.monotonic() + self.history_wait
                while (found := await self.afind_request(marker, since=since)) is None and time.monotonic() < give_up:
                    await asyncio.sleep(1.0)
                if accepted_is_enough and accepted(found):
                    return self._found(found, marker, exc)
                self._check_resend(found, marker, exc, resends, True)
                resends += 1
                await asyncio.sleep(min(self.retry_backoff * 2**resends, self.retry_backoff_max))
