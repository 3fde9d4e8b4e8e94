"""Transcribe one file entirely in the triggerer: presign, submit, wait and end the task, with no worker.

``BrainTranscribeOperator(start_from_trigger=True)`` defers straight from the scheduler to this trigger
(Airflow 3.3+). The triggerer renders its templated arguments per task instance (map index included), then
``run()`` does what the operator does in a worker: the same idempotency key, the same XComs, the same
return value. It ends the task itself with ``TaskSuccessEvent`` or ``TaskFailedEvent``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from airflow_provider_brain.config import default_poll_interval
from airflow_provider_brain.exceptions import BrainNotFound, redact_urls
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.idempotency import (
    IDEMPOTENCY_METADATA_KEY,
    MAX_LOOKUP_ASSETS,
    run_started_at,
    task_key,
)
from airflow_provider_brain.hooks.shared import shared_poller
from airflow_provider_brain.hooks.source_versions import SOURCE_VERSION_METADATA_KEY
from airflow_provider_brain.models import Asset, parse_api_time
from airflow_provider_brain.sources import (
    AudioLocation,
    existing_s3_object,
    presigned_get_url,
    shared_s3_hook,
)
from airflow_provider_brain.triggers.asset import cancel_asset
from airflow_provider_brain.xcoms import publish_asset, store_result, xcom_get, xcom_set

log = logging.getLogger(__name__)

#: Private XCom of a task started in the triggerer: its idempotency key and, once submitted, its asset id and
#: deadline. A trigger run again (triggerer restart, a retry) reads it to resume the asset instead of submitting
#: again, and to keep one deadline for every try.
SUBMISSION_XCOM_KEY = "brain_submission"


class BrainTranscribeTrigger(BaseTrigger):
    """Submit one file to Brain and wait for its transcript in the triggerer, then end the task.

    Not deferred to by hand: ``BrainTranscribeOperator(start_from_trigger=True)`` names it in its
    ``start_trigger_args``. Its arguments are the operator's, by the same names; the audio source and
    ``metadata`` may be Jinja templates, rendered by the triggerer for each task instance.

    What it does, in order: resume the asset an earlier run of this task instance submitted (its
    ``brain_submission`` XCom, or a lookup by idempotency key on a retry); else presign the S3 object (or take
    ``audio_url``) and submit it with ``BrainHook.asubmit_url`` and the operator's idempotency key; push
    ``asset_id`` and the asset URL (the extra link) to XCom; wait through the connection's shared poller until
    ``timeout`` seconds after the asset's creation (one deadline for every try); push the return value and
    yield ``TaskSuccessEvent``. A failed asset, a timeout or an error is logged with its reason (URL query
    strings redacted) and yields ``TaskFailedEvent``, so no worker starts just to fail the task; retries
    start in the triggerer again. With ``cancel_on_kill`` (the default) the asset is deleted at the deadline
    and when a user ends the task (``on_kill``), never on a triggerer restart.
    """

    def __init__(
        self,
        *,
        s3_uri: str | None = None,
        s3_bucket: str | None = None,
        s3_key: str | None = None,
        audio_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        brain_conn_id: str = BrainHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        presigned_url_expires: int = 3600,
        wait_for_completion: bool = True,
        poll_interval: float | None = None,
        timeout: float = 3600.0,
        times: bool = False,
        return_transcript: bool = False,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is untyped
        self.s3_uri = s3_uri
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.audio_url = audio_url
        self.metadata = dict(metadata or {})
        self.brain_conn_id = brain_conn_id
        self.aws_conn_id = aws_conn_id
        self.presigned_url_expires = int(presigned_url_expires)
        self.wait_for_completion = bool(wait_for_completion)
        self.poll_interval = default_poll_interval() if poll_interval is None else float(poll_interval)
        self.timeout = float(timeout)
        self.times = bool(times)
        self.return_transcript = bool(return_transcript)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._asset_id: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "s3_uri": self.s3_uri,
                "s3_bucket": self.s3_bucket,
                "s3_key": self.s3_key,
                "audio_url": self.audio_url,
                "metadata": self.metadata,
                "brain_conn_id": self.brain_conn_id,
                "aws_conn_id": self.aws_conn_id,
                "presigned_url_expires": self.presigned_url_expires,
                "wait_for_completion": self.wait_for_completion,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "times": self.times,
                "return_transcript": self.return_transcript,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    @property
    def location(self) -> AudioLocation:
        """The rendered audio source (a template that rendered to nothing counts as not given)."""
        return AudioLocation(
            s3_uri=_given(self.s3_uri),
            s3_bucket=_given(self.s3_bucket),
            s3_key=_given(self.s3_key),
            audio_url=_given(self.audio_url),
        )

    async def on_kill(self) -> None:
        """A user ended the task (marked it failed or success, or cleared it): cancel its asset, if submitted."""
        if self._asset_id:
            await cancel_asset(self, self._asset_id, "the task was ended by a user")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        if ti is None:
            # Only Airflow's start-from-trigger path runs this trigger; it always sets the task instance.
            self.log.error("BrainTranscribeTrigger runs only as a task started in the triggerer")
            yield TaskFailedEvent()
            return
        try:
            succeeded = await self._transcribe(ti)
        except Exception as err:  # Fail the task here: a raising trigger would start a worker just to fail it.
            self.log.error("Transcribing %s failed: %s: %s", self._label(), type(err).__name__, redact_urls(str(err)))
            succeeded = False
        yield TaskSuccessEvent() if succeeded else TaskFailedEvent()

    def _label(self) -> str:
        try:
            return self.location.label
        except ValueError:
            return "the audio"

    async def _transcribe(self, ti: Any) -> bool:
        location = self.location
        location.check("BrainTranscribeOperator")
        source = location.label
        key = task_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, source)
        poller = shared_poller(self.brain_conn_id)
        state = await xcom_get(ti, SUBMISSION_XCOM_KEY)
        state = dict(state) if isinstance(state, Mapping) and state.get("idempotency_key") == key else {}
        if state.get("deadline") and time.time() >= float(state["deadline"]):
            # An earlier try gave its asset up at the deadline (and deleted it): one deadline for every try.
            self.log.error(
                "The deadline of %s passed in an earlier try (timeout %g s); not submitting it again",
                source,
                self.timeout,
            )
            return False
        asset = await self._resume(ti, poller.hook, key, state) or await self._submit(ti, poller.hook, location, key)
        self._asset_id = asset.asset_id
        # One deadline per asset, from its creation, whichever try or trigger run waits for it (as in a worker).
        same = state.get("asset_id") == asset.asset_id and state.get("deadline")
        deadline = float(state["deadline"]) if same else asset.deadline(self.timeout)
        if (state.get("asset_id"), state.get("deadline")) != (asset.asset_id, deadline):
            state = {"idempotency_key": key, "asset_id": asset.asset_id, "deadline": deadline}
            await xcom_set(ti, SUBMISSION_XCOM_KEY, state)
        await publish_asset(ti, poller.hook, asset.asset_id)
        if self.wait_for_completion:
            settled = await poller.wait_until(asset.asset_id, self.poll_interval, deadline)
            if settled is None:
                waited = time.time() - (_created(asset) or time.time())
                self.log.error(
                    "Brain asset %s of %s was still processing %.0f s after it was created (timeout %g s)",
                    asset.asset_id,
                    source,
                    waited,
                    self.timeout,
                )
                await cancel_asset(self, asset.asset_id, "its deadline passed")
                return False
            asset = settled
        if asset.is_failed:
            self.log.error(
                "Brain asset %s of %s failed: %s", asset.asset_id, source, redact_urls(asset.error or "no reason given")
            )
            return False
        asset = await store_result(
            ti, poller.hook, asset, source=source, times=self.times, return_transcript=self.return_transcript
        )
        self.log.info(
            "Brain asset %s: %s, %.1f s of audio, %d words",
            asset.asset_id,
            asset.status.value,
            asset.duration or 0.0,
            asset.word_count,
        )
        return True

    async def _resume(self, ti: Any, hook: BrainHook, key: str, state: Mapping[str, Any]) -> Asset | None:
        """The asset an earlier run of this task instance submitted for this source, if it is not failed.

        :param state: this task instance's ``brain_submission`` XCom, if it names this source (else empty).
        """
        if state.get("asset_id"):
            try:
                asset = await hook.aget_asset(str(state["asset_id"]))
            except BrainNotFound:
                asset = None  # Deleted since: transcribe afresh.
            if asset is not None and not asset.is_failed:
                self.log.info("Resuming Brain asset %s, submitted by an earlier run of this task", asset.asset_id)
                return asset
            return None
        if not state and int(getattr(ti, "try_number", 1) or 1) <= 1:
            return None
        # A run that stopped between submitting and recording the asset, or a retry whose XComs are gone.
        found = await hook.afind_asset_by_idempotency_key(key, created_after=_run_start(ti))
        if found is not None:
            self.log.info("Resuming Brain asset %s, found by this task's idempotency key", found.asset_id)
        return found

    async def _submit(self, ti: Any, hook: BrainHook, location: AudioLocation, key: str) -> Asset:
        await xcom_set(ti, SUBMISSION_XCOM_KEY, {"idempotency_key": key, "asset_id": None})
        url, version = await asyncio.to_thread(self._media_url, location)
        metadata = {**self.metadata, "source": location.label, IDEMPOTENCY_METADATA_KEY: key}
        if version is not None:
            metadata[SOURCE_VERSION_METADATA_KEY] = version
        asset = await hook.asubmit_url(url, metadata=metadata, idempotency_key=key)
        self.log.info("Submitted %s to Brain as asset %s", location.label, asset.asset_id)
        return asset

    def _media_url(self, location: AudioLocation) -> tuple[str, str | None]:
        """The URL Brain downloads (a presigned GET for S3) and, for S3, the object's version (``source_version``,
        from the HEAD that proves it exists). Sync (boto3 and connection lookups): run in a thread.

        The triggerer's hook is shared by every trigger on the connection, and the URL is not registered with
        the log masker (see ``presigned_get_url``): nothing here logs it, and errors are redacted.
        """
        if s3 := location.s3:
            bucket, key = s3
            hook, version = existing_s3_object(self.aws_conn_id, bucket, key, s3=shared_s3_hook(self.aws_conn_id))
            url = presigned_get_url(
                hook,
                bucket,
                key,
                expires_in=self.presigned_url_expires,
                hint="s3_transfer='stream' streams it through a worker instead",
                mask=False,
            )
            return url, version.version
        return str(location.audio_url), None


def _given(value: str | None) -> str | None:
    """A rendered template that came out empty (or ``None``) means the source was not given."""
    if value is None:
        return None
    text = str(value).strip()
    return text if text and text != "None" else None


def _created(asset: Asset) -> float | None:
    created = parse_api_time(asset.created)
    return created.timestamp() if created else None


def _run_start(ti: Any) -> datetime | None:
    """When the task's DAG run started, to bound a lookup by idempotency key.

    The triggerer gives a task started here a runtime task instance, whose context holds its DAG run; a bare
    task instance has none, and the lookup then reads only the newest assets (``MAX_LOOKUP_ASSETS``), which
    is said in the log rather than hidden.
    """
    context = ti.get_template_context() if hasattr(ti, "get_template_context") else {}
    started = run_started_at(context.get("dag_run"))
    if started is None:
        log.warning(
            "The start of this task's DAG run is unknown here: the lookup of an earlier try's asset reads only "
            "the %d newest assets",
            MAX_LOOKUP_ASSETS,
        )
    return started
