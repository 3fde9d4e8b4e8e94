"""Send one file to Deepgram from the triggerer and store its result: no worker slot while Deepgram works.

``DeepgramTranscribeOperator(deferrable=True)`` defers to this trigger before sending anything. The request is
the wait (Deepgram answers ``POST /v1/listen`` when the transcript is done), so the triggerer sends it with the
hook's async path (httpx, Airflow's async connection lookup), writes the answer to the object store in a
thread, and sends back only the reference: ids, sizes and where the result is, never the transcript.

An S3 source is presigned here, not in the worker: a presigned URL in the trigger's arguments would be stored
in Airflow's database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_brain.deepgram_models import DeepgramResult
from airflow_provider_brain.deepgram_store import (
    await_delivery,
    presigned_put_url,
    result_reference,
    still_to_deliver,
    stored_result,
    write_result,
)
from airflow_provider_brain.exceptions import redact_urls
from airflow_provider_brain.hooks.deepgram import DeepgramAnswerLost, DeepgramHook
from airflow_provider_brain.hooks.deepgram_calls import accepted
from airflow_provider_brain.sources import presigned_get_url, shared_s3_hook

#: Seconds a Deepgram task's deferral outlasts its trigger's own deadline. Airflow's deferral timeout cancels the
#: trigger without an event (the try fails with a bare timeout); the trigger's deadline, passing first, sends an
#: error that says which file Deepgram did not answer for in time.
DEFER_MARGIN_SECONDS = 60.0


class DeepgramTranscribeTrigger(BaseTrigger):
    """Transcribe one file with Deepgram and write the answer at ``location``; yields ``{"status": "done",
    "reference": {...}}`` or ``{"status": "error", "message": ...}`` (URL query strings redacted).

    :param result_delivery: ``"callback"``: the request carries a presigned PUT URL of ``location`` as its
        callback, and the trigger waits for Deepgram to write the result there (reading it every
        ``poll_interval`` seconds); ``"answer"``: the request's answer is the result, and the trigger writes it.
    :param request_id: a request already sent for this result (another run's, with ``reuse_existing``): wait for
        its callback, send nothing.
    :param deferred_at: when the task deferred (``time.time()``). A trigger that runs again (the triggerer
        restarted) finds its earlier run's request in the history, among those made since then, and does not send
        the audio again. With a callback it waits for that request's result; without one the answer is lost, so
        it fails the try with ``DeepgramAnswerLost`` instead of paying for the audio twice (the task's next try
        defers anew and sends it again).
    :param task_fields: the task's ``dag_id``, ``task_id`` and ``run_id``, carried into the reference.
    :param deadline: wall-clock time (``time.time()``) after which the request is given up (one deadline for
        every try and every triggerer restart).
    """

    def __init__(
        self,
        *,
        source: str,
        location: str,
        marker: str,
        deadline: float,
        s3_bucket: str | None = None,
        s3_key: str | None = None,
        audio_url: str | None = None,
        deepgram_conn_id: str = DeepgramHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        store_conn_id: str | None = "aws_default",
        presigned_url_expires: int = 3600,
        options: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
        task_fields: Mapping[str, str] | None = None,
        deferred_at: float | None = None,
        result_delivery: str = "answer",
        poll_interval: float = 5.0,
        request_id: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is untyped
        self.source = source
        self.location = location
        self.marker = marker
        self.deadline = deadline
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.audio_url = audio_url
        self.deepgram_conn_id = deepgram_conn_id
        self.aws_conn_id = aws_conn_id
        self.store_conn_id = store_conn_id
        self.presigned_url_expires = presigned_url_expires
        self.options = dict(options or {})
        self.tags = list(tags or [])
        self.task_fields = dict(task_fields or {})
        self.deferred_at = deferred_at
        self.result_delivery = result_delivery
        self.poll_interval = poll_interval
        self.request_id = request_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "source": self.source,
                "location": self.location,
                "marker": self.marker,
                "deadline": self.deadline,
                "s3_bucket": self.s3_bucket,
                "s3_key": self.s3_key,
                "audio_url": self.audio_url,
                "deepgram_conn_id": self.deepgram_conn_id,
                "aws_conn_id": self.aws_conn_id,
                "store_conn_id": self.store_conn_id,
                "presigned_url_expires": self.presigned_url_expires,
                "options": self.options,
                "tags": self.tags,
                "task_fields": self.task_fields,
                "deferred_at": self.deferred_at,
                "result_delivery": self.result_delivery,
                "poll_interval": self.poll_interval,
                "request_id": self.request_id,
            },
        )

    async def _url(self) -> str:
        if self.s3_bucket and self.s3_key:
            s3 = await asyncio.to_thread(shared_s3_hook, self.aws_conn_id)
            return await asyncio.to_thread(
                presigned_get_url, s3, self.s3_bucket, self.s3_key, expires_in=self.presigned_url_expires, mask=False
            )
        if not self.audio_url:
            raise ValueError("DeepgramTranscribeTrigger needs s3_bucket and s3_key, or audio_url")
        return self.audio_url

    async def _earlier_request(self, hook: DeepgramHook) -> dict[str, Any] | None:
        """The request an earlier run of this trigger sent, if the history shows one: made since the task deferred
        (less ``HISTORY_SLACK``). Without a callback only one Deepgram created after the deferral counts (an
        earlier try's is not this run's lost answer); with one, any (its callback writes the same location)."""
        if self.deferred_at is None:
            return None
        since = datetime.fromtimestamp(self.deferred_at, UTC)
        created_after = None if self.result_delivery == "callback" else since
        found = await hook.afind_requests([self.marker], since=since, created_after=created_after)
        return found.get(self.marker)

    async def _by_callback(self, hook: DeepgramHook) -> DeepgramResult:
        """The result already stored, or the earlier request's, or a new request's (the result's location as its
        callback), waited for."""
        stored = await asyncio.to_thread(stored_result, self.location, self.store_conn_id)
        if stored is not None:
            return stored
        request_id = self.request_id
        if request_id is None:
            found = await self._earlier_request(hook)
            request_id = await asyncio.to_thread(still_to_deliver, found, self.location, self.store_conn_id)
            if request_id is not None:
                self.log.info(
                    "Deepgram request %s for %s was sent before the triggerer restarted", request_id, self.source
                )
        if request_id is None:
            callback = await asyncio.to_thread(
                presigned_put_url, self.location, self.store_conn_id, expires_in=int(self.deadline - time.time())
            )
            self.log.info("Sending %s to Deepgram from the triggerer (marker %s)", self.source, self.marker)
            request_id = await hook.asubmit_url(
                await self._url(), callback=callback, options=self.options, tags=self.tags, idempotency_key=self.marker
            )
        self.log.info("Waiting for Deepgram request %s's callback to write %s", request_id, self.location)
        return await await_delivery(
            self.location, self.store_conn_id, request_id, deadline=self.deadline, poll_interval=self.poll_interval
        )

    async def _by_answer(self, hook: DeepgramHook) -> DeepgramResult:
        """Send the file and wait for the answer, then write it; an earlier run's request is a lost answer."""
        found = await self._earlier_request(hook)
        if accepted(found):
            assert found is not None
            raise DeepgramAnswerLost(str(found.get("request_id")), self.marker, "the triggerer stopped while it ran")
        self.log.info("Sending %s to Deepgram from the triggerer (marker %s)", self.source, self.marker)
        async with asyncio.timeout(self.deadline - time.time()):
            result = await hook.alisten_url(
                await self._url(), options=self.options, tags=self.tags, idempotency_key=self.marker
            )
        await asyncio.to_thread(write_result, self.location, result.raw, self.store_conn_id)
        return result

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = DeepgramHook(deepgram_conn_id=self.deepgram_conn_id)
        try:
            if self.deadline - time.time() <= 0:
                raise TimeoutError(f"the task's timeout passed before {self.source} was sent to Deepgram")
            by_callback = self.result_delivery == "callback"
            result = await (self._by_callback(hook) if by_callback else self._by_answer(hook))
            reference = result_reference(result, self.location, self.store_conn_id, self.source, self.task_fields)
            self.log.info(
                "Deepgram request %s: %.1f s of audio, %d words; result at %s",
                result.request_id,
                result.duration,
                result.word_count,
                self.location,
            )
            yield TriggerEvent({"status": "done", "reference": reference})
        except TimeoutError as exc:
            message = str(exc) or f"Deepgram did not answer for {self.source} before the task's timeout"
            self.log.error(message)
            yield TriggerEvent({"status": "error", "message": message})
        except Exception as exc:  # every failure ends the task with a message, not a dead trigger
            message = redact_urls(f"{type(exc).__name__}: {exc}")
            self.log.error("Deepgram transcription of %s failed: %s", self.source, message)
            yield TriggerEvent({"status": "error", "message": message})
        finally:
            await hook.aclose()
