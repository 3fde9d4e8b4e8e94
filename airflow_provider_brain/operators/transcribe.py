"""Submit audio (an S3 object, a URL or a file on the worker) to Brain and wait for its transcript."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_brain import metrics
from airflow_provider_brain.config import default_poll_interval
from airflow_provider_brain.exceptions import (
    BrainAssetFailed,
    BrainNotFound,
    BrainTimeout,
)
from airflow_provider_brain.hooks.brain import IDEMPOTENCY_METADATA_KEY, BrainHook
from airflow_provider_brain.hooks.idempotency import run_started_at, task_key, task_metadata
from airflow_provider_brain.hooks.source_versions import SOURCE_VERSION_METADATA_KEY, check_reuse_existing
from airflow_provider_brain.links import ASSET_URL_XCOM_KEY, BrainAssetLink
from airflow_provider_brain.models import Asset, AssetStatus
from airflow_provider_brain.operators import start_choice, trigger_start
from airflow_provider_brain.operators.partial import SOURCE_ARGUMENTS, TriggerStartPartial
from airflow_provider_brain.operators.task_end import TaskEnd
from airflow_provider_brain.operators.transcribe_source import (
    S3_TRANSFERS,
    lineage_inputs,
    reusable_asset,
    submit_audio,
)
from airflow_provider_brain.operators.url_fields import HidesUrlSecrets
from airflow_provider_brain.progress import WaitProgress
from airflow_provider_brain.sources import AudioLocation, public_url
from airflow_provider_brain.triggers.asset import BrainAssetTrigger
from airflow_provider_brain.triggers.events import AssetEvent, EventStatus

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["IDEMPOTENCY_KEY", "S3_TRANSFERS", "BrainTranscribeOperator", "idempotency_key", "public_url"]

#: Metadata key under which every submission records which task instance made it.
IDEMPOTENCY_KEY = IDEMPOTENCY_METADATA_KEY


def idempotency_key(context: Context, source: str) -> str:
    """Name one task instance across its tries, and its audio: dag id, run id, task id, map index and a
    hash of the source (so a cleared mapped task whose index now names another file is not confused
    with its earlier self). No secrets: the source is already stripped of query strings."""
    ti = context["ti"]
    return task_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, source)


def _asset_id_of(external_id: Any) -> str:
    """The asset id in what the task state store holds: ``{"asset_id", "source"}`` (or a bare id)."""
    return str(external_id["asset_id"] if isinstance(external_id, Mapping) else external_id)


class BrainTranscribeOperator(HidesUrlSecrets, TaskEnd):
    """Transcribe one audio file with Brain: from S3, from a URL, or from a file on the worker.

    The asset id goes to XCom (key ``asset_id``) as soon as the asset exists, before any wait.
    Waiting happens in the worker (``deferrable=False``) or in the triggerer (``deferrable=True``,
    which frees the worker slot; on Airflow 3.3 such a task starts there too, by default: ``start_from_trigger``).
    A retried task resumes the asset its earlier try created instead of transcribing the audio again: the id is
    kept in Airflow's task state store, and every submission also carries an idempotency key in its metadata,
    which a retry looks up among the newest assets when the store has no id (a worker that died right after
    submitting).

    The return value is a small summary for XCom (``asset_id``, ``status``, ``duration``,
    ``word_count``, ``source``), never the transcript unless ``return_transcript=True``.

    .. code-block:: python

        transcribe = BrainTranscribeOperator.partial(
            task_id="transcribe", deferrable=True, aws_conn_id="aws_default"
        ).expand(s3_uri=["s3://calls/2026/a.wav", "s3://calls/2026/b.wav"])

    :param s3_uri: ``s3://bucket/key`` of the audio (or give ``s3_bucket`` and ``s3_key``).
    :param audio_url: an http(s) URL Brain can download.
    :param local_path: a file on the worker, uploaded in a stream.
    :param s3_transfer: ``"presign"`` (default) hands Brain a presigned GET URL valid for
        ``presigned_url_expires`` seconds; ``"stream"`` streams the object from S3 into the upload
        (for buckets that may not be presigned).
    :param wait_for_completion: wait until the transcript is done; if ``False``, return once submitted.
    :param deferrable: wait in the triggerer instead of the worker.
    :param poll_interval: seconds between two status checks (default: ``[brain] default_poll_interval``, 10).
    :param timeout: seconds to wait for the transcript before failing, counted from the asset's creation: one
        deadline for all tries.
    :param times: fetch word timings and include them (``words``) in the return value.
    :param return_transcript: include the transcript text in the return value.
    :param metadata: extra metadata stored with the asset.
    :param durable: keep the asset id in the task state store across retries (Airflow 3.3+).
    :param start_from_trigger: run the whole task in the triggerer, with no worker (Airflow 3.3+; S3 presign or
        ``audio_url``). ``None`` (default): on for a deferrable task unless a worker must run it (``pre_execute``,
        ``on_execute_callback``...: ``operators/start_choice.py`` lists them, and its log says which); ``False``:
        the worker path.
    :param cancel_on_kill: when a user ends the task while it waits (in the worker or deferred), or a deadline
        passes, delete its asset on Brain, the API's only way to stop one. Not on a worker crash or a triggerer
        restart: those resume.
    :param reuse_existing: ``None`` (default) submits the audio in every run. ``"source_version"`` (S3 only)
        transcribes an object version once across runs (a notification delivered twice): its ETag, from the
        ``HeadObject`` that checks it exists, goes to the asset's metadata as ``source_version``, and a live or
        done (not failed) asset of the same ``source`` and version is reused instead of submitting. Cost: one
        ``GET /assets`` page (the 1,000 newest assets at most, down to the object's write time). A reused asset
        belongs to the task that submitted it: ``cancel_on_kill`` of the reusing task never deletes it (that
        would stop the other run's work); if its owner deletes it, a deferred reuser transcribes afresh. Its
        ``timeout`` still counts from the asset's creation. Runs in a worker (no ``start_from_trigger``).
    """

    template_fields: Sequence[str] = ("s3_uri", "s3_bucket", "s3_key", "audio_url", "local_path", "metadata")
    template_fields_renderers = {"metadata": "json"}
    #: The Rendered Template tab shows ``audio_url`` with its signature hidden; the task submits it whole.
    url_fields = ("audio_url",)
    operator_extra_links = (BrainAssetLink(),)
    external_id_key = "brain_asset_id"
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        s3_uri: str | None = None,
        s3_bucket: str | None = None,
        s3_key: str | None = None,
        audio_url: str | None = None,
        local_path: str | None = None,
        brain_conn_id: str = BrainHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        s3_transfer: str = "presign",
        presigned_url_expires: int = 3600,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        timeout: float = 3600.0,
        times: bool = False,
        return_transcript: bool = False,
        metadata: Mapping[str, Any] | None = None,
        start_from_trigger: bool | None = None,
        cancel_on_kill: bool = True,
        reuse_existing: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        AudioLocation(s3_uri, s3_bucket, s3_key, audio_url, local_path).check("BrainTranscribeOperator")
        given = zip(SOURCE_ARGUMENTS, (s3_uri, s3_bucket, s3_key, audio_url, local_path), strict=True)
        check_reuse_existing(reuse_existing, [name for name, value in given if value], "BrainTranscribeOperator")
        if s3_transfer not in S3_TRANSFERS:
            raise ValueError(f"s3_transfer must be one of {S3_TRANSFERS}, not {s3_transfer!r}")
        poll_interval = default_poll_interval() if poll_interval is None else poll_interval
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be positive numbers of seconds")
        self.s3_uri = s3_uri
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.audio_url = audio_url
        self.local_path = local_path
        self.brain_conn_id = brain_conn_id
        self.aws_conn_id = aws_conn_id
        self.s3_transfer = s3_transfer
        self.presigned_url_expires = presigned_url_expires
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.times = times
        self.return_transcript = return_transcript
        self.metadata = dict(metadata or {})
        self.cancel_on_kill = cancel_on_kill
        self.reuse_existing = reuse_existing
        self._last_result: dict[str, Any] | None = None
        self._asset_id: str | None = None
        self._tags: dict[str, str] = {}
        # False while waiting for an asset another run submitted (reuse_existing): cancel_on_kill leaves it be.
        self._owns_asset = True
        start_choice.choose(self, start_from_trigger)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``BaseOperator.partial``, whose ``expand()`` also sets up ``start_from_trigger`` for the mapped task
        (Airflow runs no ``__init__`` per map index at parse time)."""
        from airflow.sdk.bases.operator import partial as sdk_partial

        return TriggerStartPartial.wrap(sdk_partial(cls, **kwargs))

    @cached_property
    def hook(self) -> BrainHook:
        return BrainHook(brain_conn_id=self.brain_conn_id)

    # ------------------------------------------------------------------ the source

    @property
    def location(self) -> AudioLocation:
        """Where the audio is, as rendered: ``audio_url`` with its signature (the field shows it hidden)."""
        audio_url = self.rendered_url("audio_url")
        return AudioLocation(self.s3_uri, self.s3_bucket, self.s3_key, audio_url, self.local_path)

    @property
    def source(self) -> str:
        """Where the audio comes from, safe to log and store (no presigned query string)."""
        return self.location.label

    # ------------------------------------------------------------------ ResumableJobMixin

    def execute(self, context: Context) -> Any:
        start_choice.say_where_it_runs(self)
        return self.execute_resumable(context)

    def submit_job(self, context: Context) -> Any:
        key = idempotency_key(context, self.source)
        previous = self._find_previous_submission(context, key)
        tags = metrics.task_tags(context["ti"])
        if previous is not None:
            self.log.info("Resuming Brain asset %s, submitted by an earlier try of this task", previous)
            metrics.reused(tags)
            return {"asset_id": previous, "source": self.source}
        metadata = {**self.metadata, **task_metadata(context["ti"]), "source": self.source, IDEMPOTENCY_KEY: key}
        s3 = None
        if self.reuse_existing and (location := self.location.s3):
            s3, version, existing = reusable_asset(self.hook, self.aws_conn_id, *location)
            metadata[SOURCE_VERSION_METADATA_KEY] = version.version
            if existing is not None:
                why = f"{existing.status.value}, of {self.source} at version {version.version}"
                self.log.info(
                    "Reusing Brain asset %s (%s) instead of submitting it again; another run submitted it, so "
                    "this task never deletes it",
                    existing.asset_id,
                    why,
                )
                metrics.reused(tags)
                return {"asset_id": existing.asset_id, "source": self.source, "reused": True}
        asset = submit_audio(
            self.hook,
            self.location,
            metadata,
            aws_conn_id=self.aws_conn_id,
            s3_transfer=self.s3_transfer,
            presigned_url_expires=self.presigned_url_expires,
            s3=s3,
        )
        self.log.info("Submitted %s to Brain as asset %s", self.source, asset.asset_id)
        metrics.submitted(tags)
        self._submitted_here = asset.asset_id
        return {"asset_id": asset.asset_id, "source": self.source}

    def _find_previous_submission(self, context: Context, key: str) -> str | None:
        """On a retry, find the asset an earlier try submitted but could not record (newest first)."""
        ti = context["ti"]
        if getattr(ti, "try_number", 1) <= 1:
            return None
        asset = self.hook.find_asset_by_idempotency_key(key, created_after=run_started_at(context.get("dag_run")))
        return asset.asset_id if asset else None

    def get_job_status(self, external_id: Any, context: Context) -> str:
        if isinstance(external_id, Mapping) and external_id.get("source") != self.source:
            # This map index now names another file (the upstream list changed): transcribe it afresh.
            return "stale"
        try:
            return self.hook.get_asset(_asset_id_of(external_id)).status.value
        except BrainNotFound:
            return "missing"  # Deleted since: neither active nor done, so the mixin resubmits.

    def is_job_active(self, status: str) -> bool:
        return status == AssetStatus.PROCESSING.value

    def is_job_succeeded(self, status: str) -> bool:
        return status == AssetStatus.DONE.value

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        asset_id = _asset_id_of(external_id)
        self._tags = metrics.task_tags(context["ti"])
        self._owns_asset = not (isinstance(external_id, Mapping) and external_id.get("reused"))
        self._publish(context, asset_id)
        if not self.wait_for_completion:
            return self._result(self.hook.get_asset(asset_id))
        asset = self.hook.get_asset(asset_id, times=self.times)
        if asset.is_failed:
            raise BrainAssetFailed(asset_id, asset.error or "")
        if asset.is_done:
            return self._result(asset)
        # One deadline for every try: `timeout` seconds from the asset's creation, not from this try's start.
        end_time = asset.deadline(self.timeout)
        if time.time() >= end_time:
            self._give_up(asset_id, end_time)
        if self.deferrable:
            self.defer(
                trigger=BrainAssetTrigger(
                    asset_id=asset_id,
                    brain_conn_id=self.brain_conn_id,
                    poll_interval=self.poll_interval,
                    end_time=end_time,
                    cancel_on_kill=self.cancel_on_kill and self._owns_asset,
                    end_task=self._end_task_in_triggerer(),
                ),
                method_name="execute_complete",
                kwargs={"resumed": asset_id != getattr(self, "_submitted_here", None), "owned": self._owns_asset},
            )
        self.log.info("Waiting for Brain asset %s in the worker", asset_id)
        try:
            done = self.hook.wait_for_asset(
                asset_id,
                poll_interval=self.poll_interval,
                timeout=end_time - time.time(),
                times=self.times,
                progress=WaitProgress(self.log, 1),
                tags=self._tags,
            )
        except BrainTimeout:
            self._give_up(asset_id, end_time)
        return self._result(done)

    def _end_task_in_triggerer(self) -> dict[str, Any] | None:
        """What the trigger needs to end this task itself once the asset is done (one worker run less per file),
        or ``None`` to resume in a worker: on Airflow before 3.3 (where only the worker path is proven), for a
        task with outlets (their asset events are a worker's job) or a subclass with its own
        ``execute_complete``."""
        own_completion = type(self).execute_complete is not BrainTranscribeOperator.execute_complete
        if own_completion or self.outlets or not trigger_start.triggerer_can_start_tasks():
            return None
        return {"source": self.source, "times": self.times, "return_transcript": self.return_transcript}

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        asset_id = _asset_id_of(external_id)
        if self._last_result and self._last_result["asset_id"] == asset_id:
            return self._last_result  # poll_until_complete just built it.
        self._publish(context, asset_id)
        return self._result(self.hook.get_asset(asset_id, times=self.times))

    def execute_complete(
        self, context: Context, event: dict[str, Any], resumed: bool = False, owned: bool = True
    ) -> Any:
        """Resume after the trigger: fail with the server's reason, or return the summary.

        :param resumed: the asset was an earlier try's (or another run's, reused). If it is gone, the task was
            cleared while that try waited, and ``cancel_on_kill`` deleted it, racing this try's start (or its
            owner deleted it): transcribe afresh.
        :param owned: this task submitted the asset (not reused): ``cancel_on_kill`` may delete it.
        """
        self._owns_asset = owned
        self._tags = metrics.task_tags(context["ti"])
        ended = AssetEvent.parse(event)
        self._asset_id = ended.asset_id
        # A deleted asset is reported failed (the poller's reason) or as an error: ask Brain which it is.
        if resumed and ended.status is not EventStatus.DONE and self._gone(ended.asset_id):
            self.log.warning(
                "Brain asset %s, submitted by an earlier try, was deleted while this try waited for it (a task "
                "cleared while it waited has its asset deleted, cancel_on_kill=True): transcribing %s afresh",
                ended.asset_id,
                self.source,
            )
            return self.execute(context)
        if ended.status is EventStatus.TIMEOUT:
            self._give_up(ended.asset_id, None)
        if ended.status is EventStatus.FAILED:
            metrics.failed(self._tags)
        asset_id = ended.outcome(timeout=self.timeout)
        return self._result(self.hook.get_asset(asset_id, times=self.times))

    # ------------------------------------------------------------------ lineage

    def get_openlineage_facets_on_start(self) -> Any:
        """OpenLineage input: the S3 object or the URL (without query string) of the audio.

        Called by the openlineage provider only when it is installed; local files have no dataset.
        """
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(inputs=lineage_inputs(self.location))

    # ------------------------------------------------------------------ results

    def _publish(self, context: Context, asset_id: str) -> None:
        self._asset_id = asset_id
        ti = context["ti"]
        ti.xcom_push(key="asset_id", value=asset_id)
        ti.xcom_push(key=ASSET_URL_XCOM_KEY, value=self.hook.settings.url(f"/assets/{asset_id}"))

    def _result(self, asset: Asset) -> dict[str, Any]:
        if asset.is_failed or asset.is_done:
            metrics.settled(self._tags, asset)
        if asset.is_failed:
            raise BrainAssetFailed(asset.asset_id, asset.error or "")
        if not asset.is_done and self.wait_for_completion:
            raise BrainTimeout(asset.asset_id, self.timeout)
        result = asset.task_result(source=self.source, times=self.times, transcript=self.return_transcript)
        self.log.info(
            "Brain asset %s: %s, %.1f s of audio, %d words",
            asset.asset_id,
            asset.status.value,
            asset.duration or 0.0,
            asset.word_count,
        )
        self._last_result = result
        return result
