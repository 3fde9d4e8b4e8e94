"""Transcribe a list of audio files (S3 objects or URLs) in one task: one submission pass, one wait."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_brain import metrics
from airflow_provider_brain.config import default_poll_interval
from airflow_provider_brain.exceptions import (
    BrainAuthError,
    BrainBatchFailed,
    BrainBatchTimeout,
    BrainError,
    redact_urls,
)
from airflow_provider_brain.hooks.brain import IDEMPOTENCY_METADATA_KEY, BrainHook
from airflow_provider_brain.hooks.cancel import delete_quietly
from airflow_provider_brain.hooks.idempotency import run_started_at, task_metadata
from airflow_provider_brain.models import Asset
from airflow_provider_brain.operators.transcribe import idempotency_key
from airflow_provider_brain.operators.url_fields import HidesUrlSecrets
from airflow_provider_brain.progress import WaitProgress
from airflow_provider_brain.sources import parse_s3_uri, presigned_get_url, public_url
from airflow_provider_brain.triggers.batch import BrainBatchTrigger
from airflow_provider_brain.triggers.events import BatchEvent, EventStatus

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of the batch's asset ids (input order, ``None`` for a file whose submission failed).
ASSET_IDS_XCOM_KEY = "asset_ids"


#: How much of each submission error a deferral carries to the summaries (the task log has it whole).
SUBMIT_ERROR_CHARS = 300


class BrainTranscribeBatchOperator(HidesUrlSecrets, BaseOperator):
    """Transcribe many audio files in one task: submit them all, wait once, return one summary per file.

    A mapped ``BrainTranscribeOperator`` costs one task instance, and two task starts when deferred, per
    file; this operator costs one task for the whole list, and one trigger (or one polling loop in the
    worker) whose requests to Brain do not grow with the number of files (one ``GET /assets`` page per
    1,000 files per interval). Map it over chunks of a long list, e.g. 10,000 files as 10 tasks of 1,000.

    Every file is submitted as a URL (S3 objects as presigned GET URLs), a few at a time, each with an
    idempotency key of its own (dag, run, task, map index, and a hash of the file's source): a retried
    task finds the assets its earlier try created, in one scan of the newest assets, and submits only the
    files that have none. The asset ids go to XCom (key ``asset_ids``, input order) before any wait.

    The return value is a list with one summary per input file, in input order: ``source``,
    ``asset_id``, ``status`` (``done`` or ``failed``), ``duration``, and ``error`` (the server's reason,
    URLs redacted) when failed; ``words`` too with ``times=True``. ``BrainToSqlOperator`` and
    ``BrainToS3Operator`` take it (or a mapped batch's list of lists) as ``asset_ids``; they skip failed files.

    .. code-block:: python

        batch = BrainTranscribeBatchOperator(
            task_id="transcribe", s3_uris=["s3://calls/2026/a.wav", "s3://calls/2026/b.wav"], deferrable=True
        )
        BrainToSqlOperator(task_id="load", asset_ids=batch.output, conn_id="warehouse")

    :param s3_uris: ``s3://bucket/key`` of each file (templated; an XComArg works).
    :param audio_urls: http(s) URLs Brain can download (instead of ``s3_uris``).
    :param presigned_url_expires: how long each presigned S3 URL stays valid, in seconds; Brain must start
        downloading within that time, so raise it for a batch that queues for long.
    :param deferrable: wait in the triggerer (one trigger for the whole batch) instead of the worker.
    :param poll_interval: seconds between two status checks of the batch (default: ``[brain] default_poll_interval``).
    :param timeout: seconds the whole batch may take, from its oldest asset's creation (one deadline for every
        try). Passing it deletes the assets still processing (with ``cancel_on_kill``) and fails without retries.
    :param times: include each done file's word timings (``words``) in its summary (one request per file).
    :param metadata: extra metadata stored with every asset.
    :param file_metadata: extra metadata for some files' assets, by the file as given (its ``s3://`` URI or URL),
        over ``metadata``; e.g. ``{"s3://calls/a.wav": {"source_version": "<ETag>"}}`` (templated; the
        ``brain_s3_sweep`` example passes it with ``expand_kwargs``).
    :param fail_on_asset_failure: fail the task, after every file has settled, naming each file that failed;
        with ``False`` the failures come back in the summaries and the task succeeds.
    :param max_concurrent_submissions: how many submissions are in flight at once (HTTP connections).
    :param cancel_on_kill: when a user ends the task while it waits (in the worker or deferred), delete its assets
        still processing on Brain. Not on a worker crash or a triggerer restart: those resume.
    """

    template_fields: Sequence[str] = ("s3_uris", "audio_urls", "metadata", "file_metadata")
    template_fields_renderers = {"metadata": "json", "file_metadata": "json"}
    #: The Rendered Template tab shows ``audio_urls`` with their signatures hidden (a parse per URL, no masker
    #: entries); the task submits them whole.
    url_fields = ("audio_urls",)
    ui_color = "#d6e7f8"

    def __init__(
        self,
        *,
        s3_uris: Sequence[str] | str | None = None,
        audio_urls: Sequence[str] | str | None = None,
        brain_conn_id: str = BrainHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        presigned_url_expires: int = 3600,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        timeout: float = 3600.0,
        times: bool = False,
        metadata: Mapping[str, Any] | None = None,
        fail_on_asset_failure: bool = True,
        max_concurrent_submissions: int = 8,
        cancel_on_kill: bool = True,
        file_metadata: Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (s3_uris is None) == (audio_urls is None):
            raise ValueError(
                "BrainTranscribeBatchOperator needs exactly one list of audio: s3_uris or audio_urls; got "
                + ("both" if s3_uris is not None else "neither")
            )
        poll_interval = default_poll_interval() if poll_interval is None else poll_interval
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be positive numbers of seconds")
        if max_concurrent_submissions < 1:
            raise ValueError("max_concurrent_submissions must be at least 1")
        self.s3_uris = s3_uris
        self.audio_urls = audio_urls
        self.brain_conn_id = brain_conn_id
        self.aws_conn_id = aws_conn_id
        self.presigned_url_expires = presigned_url_expires
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.times = times
        self.metadata = dict(metadata or {})
        self.file_metadata = file_metadata
        self.fail_on_asset_failure = fail_on_asset_failure
        self.max_concurrent_submissions = max_concurrent_submissions
        self.cancel_on_kill = cancel_on_kill
        self._given: list[str] = []
        self._waiting_for: list[str] = []
        self._tags: dict[str, str] = {}

    @cached_property
    def hook(self) -> BrainHook:
        return BrainHook(brain_conn_id=self.brain_conn_id)

    # ------------------------------------------------------------------ the files

    def sources(self) -> list[str]:
        """The files to transcribe, as rendered, checked and safe to log: ``s3://bucket/key`` or a URL
        without its query string. Raises ``ValueError`` naming the first item that is not one."""
        given = self.s3_uris if self.s3_uris is not None else self.rendered_url("audio_urls")
        name = "s3_uris" if self.s3_uris is not None else "audio_urls"
        if isinstance(given, str):
            raise ValueError(
                f"{name} must be a list of strings, not one string ({public_url(given)!r}); wrap it in [...]"
            )
        items = list(given or [])
        for position, item in enumerate(items):
            if not isinstance(item, str):
                raise ValueError(f"{name}[{position}] is a {type(item).__name__}, not a string")
            if self.s3_uris is not None:
                parse_s3_uri(item, f"{name}[{position}]")
            elif (parts := urlsplit(item)).scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{name}[{position}] must be an http(s) URL, got {public_url(item)!r}")
        self._given = items
        return [item if self.s3_uris is not None else public_url(item) for item in items]

    def _url_for(self, position: int, s3: Any) -> str:
        """The URL Brain downloads file ``position`` from: a presigned GET URL for S3, else the URL given.

        Not registered with the log masker: a batch holds up to thousands of URLs, and each mask makes the next
        one dearer (see ``presigned_get_url``). No URL is ever logged here; errors go through ``redact_urls``.
        """
        if self.s3_uris is None:
            return self._given[position]
        bucket, key = parse_s3_uri(self._given[position])
        return presigned_get_url(s3, bucket, key, expires_in=self.presigned_url_expires, mask=False)

    # ------------------------------------------------------------------ submit

    def execute(self, context: Context) -> Any:
        self._tags = metrics.task_tags(context["ti"])
        sources = self.sources()
        if not sources:
            self.log.info("No audio files given: nothing to transcribe")
            context["ti"].xcom_push(key=ASSET_IDS_XCOM_KEY, value=[])
            return []
        asset_ids, submit_errors, deadline = self._submit_all(context, sources)
        context["ti"].xcom_push(key=ASSET_IDS_XCOM_KEY, value=asset_ids)
        live = [a for a in dict.fromkeys(asset_ids) if a is not None]
        if self.deferrable and live:
            self.defer(
                trigger=BrainBatchTrigger(
                    asset_ids=live,
                    brain_conn_id=self.brain_conn_id,
                    poll_interval=self.poll_interval,
                    end_time=deadline,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                # The reasons travel with the deferral (redacted, cut short), so the summaries still give them.
                kwargs={"submit_errors": {s: why[:SUBMIT_ERROR_CHARS] for s, why in submit_errors.items()}},
            )
        self.log.info("Waiting for %d Brain assets in the worker", len(live))
        self._waiting_for = live
        remaining = max(0.0, deadline - time.time())
        progress = WaitProgress(self.log, len(live))
        settled = self.hook.wait_for_assets(
            live, poll_interval=self.poll_interval, timeout=remaining, progress=progress, tags=self._tags
        )
        self._waiting_for = []
        failed = {a.asset_id: redact_urls(a.error or "") for a in settled.values() if a.is_failed}
        processing = [a for a in live if a not in settled]
        return self._finish(context, sources, asset_ids, submit_errors, failed, processing, settled)

    def _submit_all(self, context: Context, sources: list[str]) -> tuple[list[str | None], dict[str, str], float]:
        """Submit every file that has no live asset yet; return the asset id of each (input order), the
        reason of each submission that failed (by source), and the batch's deadline: ``timeout`` after its
        oldest asset's creation, so a retry that resumes an earlier try's assets does not wait longer in all.

        A file is what was given (``s3://`` URI or the whole URL, query string included, so two downloads
        that differ only in their query are two files); the same file twice is submitted once.
        """
        given = self._given
        first: dict[str, int] = {}
        for position, item in enumerate(given):
            first.setdefault(item, position)
        keys = {item: idempotency_key(context, item) for item in first}
        found = self._earlier_assets(context, keys)
        by_item: dict[str, str] = {item: found[key].asset_id for item, key in keys.items() if key in found}
        deadlines = [found[key].deadline(self.timeout) for key in keys.values() if key in found]
        if by_item:
            self.log.info("Resuming %d of %d files submitted by an earlier try of this task", len(by_item), len(keys))
            metrics.reused(self._tags, len(by_item))
        to_submit = [item for item in first if item not in by_item]
        errors: dict[str, str] = {}
        if not isinstance(per_file := self.file_metadata or {}, Mapping):
            raise ValueError(f"file_metadata must map files to metadata, not be a {type(per_file).__name__}")
        s3 = self._s3_hook() if self.s3_uris is not None and to_submit else None
        session = self.hook.get_conn()  # Made once, before the threads share it, with a pool for all of them.
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.max_concurrent_submissions)
        session.mount("http://", adapter)
        session.mount("https://", adapter)

        def submit(item: str) -> Asset:
            source = sources[first[item]]
            extra = per_file.get(item) or {}
            metadata = {**self.metadata, **extra, **task_metadata(context["ti"]), "source": source}
            metadata[IDEMPOTENCY_METADATA_KEY] = keys[item]
            url = self._url_for(first[item], s3)
            return self.hook.submit_url(url, async_=True, metadata=metadata, idempotency_key=keys[item])

        started = time.monotonic()
        pool = ThreadPoolExecutor(self.max_concurrent_submissions, thread_name_prefix="brain-submit")
        try:
            futures = {pool.submit(submit, item): item for item in to_submit}
            for future in as_completed(futures):
                item = futures[future]
                try:
                    asset = future.result()
                    by_item[item] = asset.asset_id
                    deadlines.append(asset.deadline(self.timeout))
                except BrainAuthError:
                    raise
                except BrainError as err:
                    source = sources[first[item]]
                    errors[source] = redact_urls(str(err))
                    self.log.warning("Could not submit %s to Brain: %s", source, errors[source])
        finally:
            # An error no other file can escape (refused credentials, a bug): stop what has not started.
            pool.shutdown(wait=True, cancel_futures=True)
        if to_submit:
            metrics.submitted(self._tags, len(to_submit) - len(errors))
            self.log.info(
                "Submitted %d files to Brain in %.1f s (%d at a time), %d failed to submit",
                len(to_submit) - len(errors),
                time.monotonic() - started,
                self.max_concurrent_submissions,
                len(errors),
            )
        return [by_item.get(item) for item in given], errors, min(deadlines, default=time.time() + self.timeout)

    def _s3_hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def _earlier_assets(self, context: Context, keys: dict[str, str]) -> dict[str, Asset]:
        """On a retry, the live assets an earlier try submitted, by idempotency key: one listing scan back to
        the run's start, however many other assets (other batches of the run) were created since."""
        if getattr(context["ti"], "try_number", 1) <= 1:
            return {}
        started = run_started_at(context.get("dag_run"))
        return self.hook.find_assets_by_idempotency_keys(keys.values(), created_after=started)

    # ------------------------------------------------------------------ wait and finish

    def on_kill(self) -> None:
        """A user ended the task while it waited in the worker: delete its assets that are still processing."""
        if not (self.cancel_on_kill and self._waiting_for):
            return
        settled = self.hook.wait_for_assets(self._waiting_for, poll_interval=self.poll_interval, timeout=0)
        for asset_id in self._waiting_for:
            if asset_id not in settled:
                self._delete(asset_id, "the task was killed")

    def _delete(self, asset_id: str, why: str) -> None:
        """Delete a still-processing asset (``cancel_on_kill``), best effort: the API's only way to stop one."""
        delete_quietly(self.hook, self.log, asset_id, why)

    def execute_complete(
        self, context: Context, event: dict[str, Any], submit_errors: Mapping[str, str] | None = None
    ) -> Any:
        """Resume after the batch trigger: build the summaries from its event and the ids in XCom.

        :param submit_errors: why each file that has no asset could not be submitted, by source.
        """
        self._tags = metrics.task_tags(context["ti"])
        ended = BatchEvent.parse(event)
        if ended.status is EventStatus.ERROR:
            raise BrainError(ended.message)
        sources = self.sources()
        ti = context["ti"]
        asset_ids = ti.xcom_pull(task_ids=ti.task_id, key=ASSET_IDS_XCOM_KEY, map_indexes=ti.map_index)
        if not isinstance(asset_ids, list) or len(asset_ids) != len(sources):
            raise BrainError("The batch's asset ids are missing from XCom (key 'asset_ids'): cannot match files")
        failed, processing = ended.failed, ended.processing
        reasons = dict(submit_errors or {})
        unsubmitted = {
            s: reasons.get(s, "it could not be submitted (the reason is in the task log)")
            for s, a in zip(sources, asset_ids, strict=True)
            if a is None
        }
        return self._finish(context, sources, asset_ids, unsubmitted, failed, processing, {})

    def _finish(
        self,
        context: Context,
        sources: list[str],
        asset_ids: list[str | None],
        submit_errors: dict[str, str],
        failed: dict[str, str],
        processing: list[str],
        settled: Mapping[str, Asset],
    ) -> list[dict[str, Any]]:
        if processing:
            still = set(processing)
            waiting = [s for s, a in zip(sources, asset_ids, strict=True) if a in still]
            if self.cancel_on_kill:
                for late in processing:
                    self._delete(late, "its batch's deadline passed")
            raise BrainBatchTimeout(waiting, total=len(sources), timeout=self.timeout, deleted=self.cancel_on_kill)
        details = self._details(asset_ids, failed, settled)
        metrics.failed(self._tags, len(failed))
        audio_seconds = sum(d.get("duration") or 0.0 for d in details.values())
        context["ti"].xcom_push(key="audio_seconds", value=round(audio_seconds, 3))
        summaries: list[dict[str, Any]] = []
        for source, asset_id in zip(sources, asset_ids, strict=True):
            summary: dict[str, Any] = {"source": source, "asset_id": asset_id, "status": "done"}
            if asset_id is None:
                summary.update(status="failed", error=submit_errors.get(source, "it could not be submitted"))
            elif asset_id in failed:
                summary.update(status="failed", error=failed[asset_id])
            elif asset_id in details:
                summary.update(details[asset_id])
            summaries.append(summary)
        bad = [s for s in summaries if s["status"] == "failed"]
        for summary in bad:
            self.log.warning(
                "Brain could not transcribe %s (asset %s): %s", summary["source"], summary["asset_id"], summary["error"]
            )
        self.log.info("Batch of %d files: %d done, %d failed", len(summaries), len(summaries) - len(bad), len(bad))
        if bad and self.fail_on_asset_failure:
            raise BrainBatchFailed([s["source"] for s in bad], total=len(summaries))
        return summaries

    def _details(
        self, asset_ids: list[str | None], failed: dict[str, str], settled: Mapping[str, Asset]
    ) -> dict[str, Any]:
        """Duration (and word timings with ``times``) of each done asset; fetched when the wait did not bring them."""
        done = [a for a in dict.fromkeys(asset_ids) if a is not None and a not in failed]
        details: dict[str, dict[str, Any]] = {}
        if not self.times:
            if not all(a in settled for a in done):  # Resumed from the trigger: one listing scan tells them all.
                settled = {**settled, **self.hook.wait_for_assets(done, poll_interval=self.poll_interval, timeout=0)}
            metrics.done(self._tags, [settled[a] for a in done if a in settled])
            return {a: {"duration": settled[a].duration} for a in done if a in settled}
        with ThreadPoolExecutor(self.max_concurrent_submissions, thread_name_prefix="brain-fetch") as pool:
            for asset in pool.map(lambda a: self.hook.get_asset(a, times=True), done):
                metrics.done(self._tags, [asset])
                details[asset.asset_id] = {
                    "duration": asset.duration,
                    "words": [w.as_dict() for w in asset.words or ()],
                }
        return details
