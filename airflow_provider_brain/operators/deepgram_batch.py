"""Transcribe many files with Deepgram in one task, a bounded number at a time, and store each result."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_brain.deepgram_store import (
    check_delivery,
    delivery_for,
    listen_marker,
    presigned_put_url,
    result_location,
    result_reference,
    still_to_deliver,
    stored_result,
    wait_for_delivery,
    write_result,
)
from airflow_provider_brain.exceptions import BrainError, redact_urls
from airflow_provider_brain.hooks.deepgram import DeepgramHook
from airflow_provider_brain.hooks.deepgram_history import find_requests
from airflow_provider_brain.hooks.idempotency import task_metadata
from airflow_provider_brain.operators.url_fields import HidesUrlSecrets
from airflow_provider_brain.sources import parse_s3_uri, presigned_get_url, public_url
from airflow_provider_brain.triggers.deepgram import DEFER_MARGIN_SECONDS
from airflow_provider_brain.triggers.deepgram_batch import DeepgramBatchTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["DeepgramBatchFailed", "DeepgramTranscribeBatchOperator"]

#: The XCom key of the files that failed (``{source: reason}``) when ``fail_on_error=False``.
FAILED_XCOM_KEY = "failed"


class DeepgramBatchFailed(BrainError):
    """Files of a Deepgram batch could not be transcribed; ``failed`` maps each source to its reason."""

    def __init__(self, failed: Mapping[str, str], total: int) -> None:
        self.failed = dict(failed)
        super().__init__(
            f"{len(self.failed)} of {total} files could not be transcribed by Deepgram (reasons in the task log): "
            + ", ".join(self.failed)
            + ". Run the task again to send them (the stored ones are not sent again), or pass fail_on_error=False"
        )


def _label(source: str) -> str:
    return public_url(source) if source.startswith(("http://", "https://")) else source


class DeepgramTranscribeBatchOperator(HidesUrlSecrets, BaseOperator):
    """Transcribe many audio files with Deepgram in one task, at most ``max_concurrency`` requests at a time.

    Each file is what ``DeepgramTranscribeOperator`` does for one: its own idempotency marker (dag, run, task, map
    index, source), its result stored under ``output_uri`` (by Deepgram's callback for an ``s3://`` one, so a lost
    answer or a restarted triggerer sends nothing twice), and a try finding its result stored does not send it
    again. With a callback a file holds its place among the ``max_concurrency`` until its result is stored. The
    task returns the list of references (one per file, in order), which the transfers take
    through ``asset_ids``.

    .. code-block:: python

        DeepgramTranscribeBatchOperator(
            task_id="transcribe", sources=["s3://calls/a.wav", "s3://calls/b.wav"],
            output_uri="s3://transcripts/deepgram/", max_concurrency=8, deferrable=True,
        )

    :param sources: ``s3://`` URIs (presigned), http(s) URLs, or (not deferrable) files on the worker. Templated.
    :param max_concurrency: files being transcribed at once.
    :param deferrable: send the requests from the triggerer (no worker slot while Deepgram works; S3 or URLs only).
    :param fail_on_error: fail the task if any file failed (after every other file was tried); if ``False``, return
        the others and push ``{source: reason}`` of the failed ones to XCom key ``failed``.
    :param timeout: seconds the whole batch may take.

    The other parameters are ``DeepgramTranscribeOperator``'s.
    """

    template_fields: Sequence[str] = ("sources", "output_uri", "options", "tags")
    template_fields_renderers = {"options": "json"}
    #: The Rendered Template tab shows the sources' URLs with their signatures hidden; the task sends them whole.
    url_fields = ("sources",)
    ui_color = "#e9f7ef"

    def __init__(
        self,
        *,
        sources: Any,
        output_uri: Any,
        max_concurrency: int = 4,
        deepgram_conn_id: str = DeepgramHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        presigned_url_expires: int = 3600,
        options: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        fail_on_error: bool = True,
        timeout: float = 6 * 3600.0,
        result_delivery: str | None = None,
        poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_concurrency < 1 or timeout <= 0 or poll_interval <= 0:
            raise ValueError(
                "max_concurrency must be at least 1, and timeout and poll_interval positive numbers of seconds"
            )
        check_delivery(result_delivery)
        self.result_delivery = result_delivery
        self.poll_interval = poll_interval
        self.sources = sources
        self.output_uri = str(output_uri)
        self.store_conn_id: str | None = getattr(output_uri, "conn_id", None) or aws_conn_id
        self.max_concurrency = max_concurrency
        self.deepgram_conn_id = deepgram_conn_id
        self.aws_conn_id = aws_conn_id
        self.presigned_url_expires = presigned_url_expires
        self.options = dict(options or {})
        self.tags = list(tags)
        self.deferrable = deferrable
        self.fail_on_error = fail_on_error
        self.timeout = timeout

    def _items(self, context: Context) -> list[dict[str, str]]:
        ti = context["ti"]
        given = self.rendered_url("sources")
        if isinstance(given, str) and given.strip().startswith("["):
            given = ast.literal_eval(given.strip())  # a list rendered by a DAG without native templates
        # A file listed twice is sent once.
        sources = list(dict.fromkeys(str(s) for s in ([given] if isinstance(given, str) else list(given or []))))
        labels = [_label(source) for source in sources]
        items = []
        for source, label in zip(sources, labels, strict=True):
            # The whole source is hashed: URLs that differ only in their query string are different files. The
            # marker is a hash, so the query (a presigned URL's signature) is in no log, location or request tag.
            marker = listen_marker(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, source)
            location = result_location(self.output_uri, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, marker)
            if labels.count(label) > 1:  # the failed files are reported by label: each must be told apart
                label = f"{label} ({marker[:12]})"
            items.append({"source": source, "label": label, "marker": marker, "location": location})
        return items

    def _stored(self, items: list[dict[str, str]], task: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """The references of the items whose result is in the store, by source."""
        references = {}
        for item in items:
            stored = stored_result(item["location"], self.store_conn_id)
            if stored is not None:
                references[item["source"]] = result_reference(
                    stored, item["location"], self.store_conn_id, item["label"], task
                )
        return references

    def execute(self, context: Context) -> list[dict[str, Any]]:
        deadline = time.time() + self.timeout
        ti = context["ti"]
        task = task_metadata(ti)
        tags = [f"{ti.dag_id}.{ti.task_id}", *self.tags]
        items = self._items(context)
        references = self._stored(items, task)  # what earlier tries stored is not sent again
        todo = [item for item in items if item["source"] not in references]
        self.log.info("%d file(s), %d stored by earlier tries, %d to send", len(items), len(references), len(todo))
        delivery = delivery_for(self.output_uri, self.result_delivery)
        if delivery == "callback":
            self._add_sent_before(context, todo)
        if todo and self.deferrable:
            if any(not item["source"].startswith(("s3://", "http://", "https://")) for item in todo):
                raise ValueError("deferrable=True sends URLs from the triggerer: local files need deferrable=False")
            self.defer(
                trigger=DeepgramBatchTrigger(
                    items=[
                        {k: item[k] for k in ("source", "label", "marker", "location", "request_id") if k in item}
                        for item in todo
                    ],
                    max_concurrency=self.max_concurrency,
                    deadline=deadline,
                    deferred_at=time.time(),
                    deepgram_conn_id=self.deepgram_conn_id,
                    aws_conn_id=self.aws_conn_id,
                    store_conn_id=self.store_conn_id,
                    presigned_url_expires=self.presigned_url_expires,
                    options=self.options,
                    tags=tags,
                    result_delivery=delivery,
                    poll_interval=self.poll_interval,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + DEFER_MARGIN_SECONDS),  # the trigger's deadline first
            )
        failed: dict[str, str] = {}
        # Made here, not in __init__: an operator holding a threading.local cannot be deep-copied, and Airflow
        # deep-copies operators (clearing a task builds a partial_subset of its DAG).
        hooks = threading.local()
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = {
                item["source"]: (item, pool.submit(self._one, item, tags, task, hooks, delivery, deadline))
                for item in todo
            }
            for source, (item, future) in futures.items():
                try:
                    references[source] = future.result()
                except Exception as exc:
                    failed[item["label"]] = redact_urls(f"{type(exc).__name__}: {exc}")
        return self._finish(context, [references[i["source"]] for i in items if i["source"] in references], failed)

    def _add_sent_before(self, context: Context, todo: list[dict[str, str]]) -> None:
        """From the second try on, give each file an earlier try sent, whose callback may still bring its result,
        that request's id (``request_id``): it is waited for, not sent again."""
        if getattr(context["ti"], "try_number", 1) <= 1 or not todo:
            return
        hook = DeepgramHook(deepgram_conn_id=self.deepgram_conn_id)
        since = getattr(context.get("dag_run"), "start_date", None)
        found = find_requests(hook.transport, hook.project_id(), [item["marker"] for item in todo], since=since)
        for item in todo:
            request_id = still_to_deliver(found.get(item["marker"]), item["location"], self.store_conn_id)
            if request_id is not None:
                item["request_id"] = request_id
                self.log.info("Deepgram request %s of an earlier try is transcribing %s", request_id, item["label"])

    def _hook(self, hooks: threading.local) -> DeepgramHook:
        hook: DeepgramHook | None = getattr(hooks, "hook", None)
        if hook is None:  # one per thread: a requests.Session is not shared across threads
            hook = hooks.hook = DeepgramHook(deepgram_conn_id=self.deepgram_conn_id)
        return hook

    def _one(
        self,
        item: Mapping[str, str],
        tags: list[str],
        task: Mapping[str, str],
        hooks: threading.local,
        delivery: str,
        deadline: float,
    ) -> dict[str, Any]:
        source = item["source"]
        common: dict[str, Any] = {"options": self.options, "tags": tags, "idempotency_key": item["marker"]}
        hook = self._hook(hooks)
        by_callback = delivery == "callback"
        if by_callback and item.get("request_id"):
            result = wait_for_delivery(
                item["location"],
                self.store_conn_id,
                item["request_id"],
                deadline=deadline,
                poll_interval=self.poll_interval,
            )
            return result_reference(result, item["location"], self.store_conn_id, item["label"], task)
        if by_callback:
            common["callback"] = presigned_put_url(item["location"], self.store_conn_id, expires_in=int(self.timeout))
        send_url, send_file = (
            (hook.submit_url, hook.submit_file) if by_callback else (hook.listen_url, hook.listen_file)
        )
        if source.startswith("s3://"):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            bucket, key = parse_s3_uri(source)
            url = presigned_get_url(
                S3Hook(aws_conn_id=self.aws_conn_id), bucket, key, expires_in=self.presigned_url_expires
            )
            sent: Any = send_url(url, **common)
        elif source.startswith(("http://", "https://")):
            sent = send_url(source, **common)
        else:
            sent = send_file(source, **common)
        if by_callback:
            result = wait_for_delivery(
                item["location"], self.store_conn_id, sent, deadline=deadline, poll_interval=self.poll_interval
            )
        else:
            result = sent
            write_result(item["location"], result.raw, self.store_conn_id)
        self.log.info("Deepgram request %s: %s, %d words", result.request_id, item["label"], result.word_count)
        return result_reference(result, item["location"], self.store_conn_id, item["label"], task)

    def _finish(
        self, context: Context, references: list[dict[str, Any]], failed: dict[str, str]
    ) -> list[dict[str, Any]]:
        for source, reason in failed.items():
            self.log.error("Deepgram transcription of %s failed: %s", source, reason)
        if failed and self.fail_on_error:
            raise DeepgramBatchFailed(failed, len(references) + len(failed))
        if failed:
            context["ti"].xcom_push(key=FAILED_XCOM_KEY, value=failed)
        return references

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Resume after the trigger: every stored result's reference, in source order, and the failed files."""
        if not isinstance(event, Mapping) or event.get("status") != "done":
            raise BrainError("Deepgram batch trigger sent an event this task cannot read")
        items = self._items(context)
        references = self._stored(items, task_metadata(context["ti"]))
        stored_labels = {item["label"] for item in items if item["source"] in references}
        # A file stored by this trigger's earlier run (the triggerer restarted) is no failure, whatever it said.
        failed = {str(k): str(v) for k, v in (event.get("failed") or {}).items() if str(k) not in stored_labels}
        for item in items:
            if item["source"] not in references and item["label"] not in failed:
                failed[item["label"]] = "its result is not in the store"
        return self._finish(context, [references[i["source"]] for i in items if i["source"] in references], failed)
