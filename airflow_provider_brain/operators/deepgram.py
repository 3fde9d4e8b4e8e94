"""Transcribe audio (an S3 object, a URL or a file on the worker) with Deepgram and store the result."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
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
from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.deepgram import DeepgramHook
from airflow_provider_brain.hooks.idempotency import task_metadata
from airflow_provider_brain.hooks.source_versions import check_reuse_existing
from airflow_provider_brain.hooks.uploads import SizedStream
from airflow_provider_brain.operators.transcribe_source import lineage_inputs
from airflow_provider_brain.operators.url_fields import HidesUrlSecrets
from airflow_provider_brain.sources import (
    AudioLocation,
    existing_s3_object,
    mask_url_secrets,
    presigned_get_url,
    s3_object_of,
    shared_s3_hook,
)
from airflow_provider_brain.triggers.deepgram import DEFER_MARGIN_SECONDS, DeepgramTranscribeTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["DeepgramTranscribeOperator"]

S3_TRANSFERS = ("presign", "stream")
#: The run part of the results' path with ``reuse_existing``: shared by every run of the task.
SOURCE_VERSIONS = "source_versions"


class DeepgramTranscribeOperator(HidesUrlSecrets, BaseOperator):
    """Transcribe one audio file with Deepgram's pre-recorded API: from S3, from a URL, or from the worker's disk.

    Deepgram keeps no transcript, so its answer (the whole ``ListenV1Response``) is written to ``output_uri`` the
    moment it arrives, and the task returns a small reference for XCom: ``deepgram_result`` (where the JSON is),
    ``request_id``, ``duration``, ``word_count``, ``confidence`` and ``source``; never the transcript.
    ``BrainToSqlOperator`` and ``BrainToS3Operator`` take that reference through ``asset_ids``.

    Every request carries the task as a Deepgram ``tag`` (``<dag_id>.<task_id>``: usage per DAG) and an
    idempotency marker derived from the dag, run, task, map index and source. A try finds what an earlier try
    stored and returns it without sending the audio again; a request whose answer was lost is looked up in
    the project's history before any resend (``DeepgramHook``).

    With an ``s3://`` ``output_uri`` the result comes by Deepgram's ``callback`` by default: the request carries
    a presigned PUT URL of the result's location, Deepgram answers with its request id at once and writes the
    result there itself, and the task waits for it. An answer lost on the way, or a triggerer restarted while it
    waited, then costs nothing: the request found in the history still delivers, and the task's result is that
    first request's. Elsewhere (or with ``result_delivery="answer"``) the request's answer is the result, and
    the task writes it.

    With ``deferrable=True`` the request and the wait run in the triggerer, so no worker slot is held while
    Deepgram works (S3 presigned or ``audio_url`` sources: the triggerer cannot read the worker's files or
    stream S3).

    .. code-block:: python

        DeepgramTranscribeOperator.partial(
            task_id="transcribe", output_uri="s3://transcripts/deepgram/", deferrable=True
        ).expand(s3_uri=["s3://calls/2026/a.wav", "s3://calls/2026/b.wav"])

    :param s3_uri: ``s3://bucket/key`` of the audio (or give ``s3_bucket`` and ``s3_key``).
    :param audio_url: an http(s) URL Deepgram can download.
    :param local_path: a file on the worker, sent as the request's body, streamed.
    :param output_uri: where results go: ``s3://bucket/prefix/`` (templated) or an ``ObjectStoragePath`` (its
        ``conn_id`` is used). Each result is ``<output_uri>/<dag_id>/<run_id>/<task_id>[.<map_index>].<marker>.json``.
    :param s3_transfer: ``"presign"`` (default) hands Deepgram a presigned GET URL valid for
        ``presigned_url_expires`` seconds; ``"stream"`` streams the object from S3 into the request.
    :param options: listen options over the connection's ``options`` extra, e.g. ``{"model": "nova-3",
        "smart_format": True}``.
    :param tags: more Deepgram tags beside ``<dag_id>.<task_id>``.
    :param reuse_existing: ``None`` (default) sends the audio in every run. ``"source_version"`` (S3 sources,
        callback delivery) transcribes each version of an object (its ETag) once per task: the result is kept at
        ``<output_uri>/<dag_id>/source_versions/<task_id>.<marker>.json``, and a run finds it there, or finds
        another run's request for it in the history and waits for that request's callback, instead of sending
        it again (an S3 notification delivered twice starts two runs).
    :param result_delivery: ``"callback"`` (Deepgram PUTs the result to the ``s3://`` location; the default for
        an ``s3://`` ``output_uri``) or ``"answer"`` (the request's answer; the default elsewhere). Use
        ``"answer"`` when Deepgram cannot reach the store's endpoint (an S3-compatible store behind a firewall).
    :param poll_interval: seconds between two looks for the callback's result.
    :param deferrable: send the request, and wait, from the triggerer.
    :param timeout: seconds the request (and the wait for its callback) may take before the task fails.
    """

    template_fields: Sequence[str] = (
        "s3_uri",
        "s3_bucket",
        "s3_key",
        "audio_url",
        "local_path",
        "output_uri",
        "options",
        "tags",
    )
    template_fields_renderers = {"options": "json"}
    #: The Rendered Template tab shows ``audio_url`` with its signature hidden; the task sends it whole.
    url_fields = ("audio_url",)
    ui_color = "#e9f7ef"

    def __init__(
        self,
        *,
        output_uri: Any,
        s3_uri: str | None = None,
        s3_bucket: str | None = None,
        s3_key: str | None = None,
        audio_url: str | None = None,
        local_path: str | None = None,
        deepgram_conn_id: str = DeepgramHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        s3_transfer: str = "presign",
        presigned_url_expires: int = 3600,
        options: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        result_delivery: str | None = None,
        poll_interval: float = 5.0,
        reuse_existing: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        AudioLocation(s3_uri, s3_bucket, s3_key, audio_url, local_path).check("DeepgramTranscribeOperator")
        if s3_transfer not in S3_TRANSFERS:
            raise ValueError(f"s3_transfer must be one of {S3_TRANSFERS}, not {s3_transfer!r}")
        if deferrable and (local_path or s3_transfer == "stream"):
            raise ValueError(
                "DeepgramTranscribeOperator(deferrable=True) sends a URL from the triggerer: use an S3 source with "
                "s3_transfer='presign' or audio_url, or deferrable=False for local_path and streamed S3 objects"
            )
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        check_delivery(result_delivery)
        if poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds")
        given = {"s3_uri": s3_uri, "s3_bucket": s3_bucket, "audio_url": audio_url, "local_path": local_path}
        check_reuse_existing(reuse_existing, [name for name, value in given.items() if value], type(self).__name__)
        if reuse_existing and result_delivery == "answer":
            raise ValueError(
                "DeepgramTranscribeOperator(reuse_existing=...) waits for another run's request by its callback: "
                "it needs an s3:// output_uri and result_delivery='callback'"
            )
        self.s3_uri = s3_uri
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.audio_url = audio_url
        self.local_path = local_path
        # An ObjectStoragePath is kept as its URI and connection: both serialise as plain strings.
        self.output_uri = str(output_uri)
        self.store_conn_id: str | None = getattr(output_uri, "conn_id", None) or aws_conn_id
        self.deepgram_conn_id = deepgram_conn_id
        self.aws_conn_id = aws_conn_id
        self.s3_transfer = s3_transfer
        self.presigned_url_expires = presigned_url_expires
        self.options = dict(options or {})
        self.tags = list(tags)
        self.result_delivery = result_delivery
        self.poll_interval = poll_interval
        self.reuse_existing = reuse_existing
        self.deferrable = deferrable
        self.timeout = timeout
        self._stored_at: str | None = None  # for OpenLineage on complete

    @cached_property
    def hook(self) -> DeepgramHook:
        return DeepgramHook(deepgram_conn_id=self.deepgram_conn_id)

    @property
    def location(self) -> AudioLocation:
        """Where the audio is, as rendered: ``audio_url`` with its signature (the field shows it hidden)."""
        audio_url = self.rendered_url("audio_url")
        return AudioLocation(self.s3_uri, self.s3_bucket, self.s3_key, audio_url, self.local_path)

    def _task_tags(self, context: Context) -> list[str]:
        ti = context["ti"]
        return [f"{ti.dag_id}.{ti.task_id}", *self.tags]

    def execute(self, context: Context) -> dict[str, Any]:
        started = time.time()
        ti = context["ti"]
        location = self.location
        location.check("DeepgramTranscribeOperator")
        source = location.label
        marker, stored_at = self._marker_and_location(location, ti)
        self._stored_at = stored_at
        task = task_metadata(ti)
        stored = stored_result(stored_at, self.store_conn_id)
        if stored is not None:
            self.log.info(
                "Found Deepgram request %s's result at %s (an earlier try%s stored it)",
                stored.request_id,
                stored_at,
                " or run" if self.reuse_existing else "",
            )
            return result_reference(stored, stored_at, self.store_conn_id, source, task)
        delivery = delivery_for(stored_at, self.result_delivery)
        if self.reuse_existing and delivery != "callback":
            raise ValueError("reuse_existing needs result_delivery='callback' (an s3:// output_uri)")
        sent_id = self._sent_before(context, marker, stored_at) if delivery == "callback" else None
        if sent_id:
            self.log.info(
                "Deepgram request %s of an earlier try or run is transcribing %s: waiting for it", sent_id, source
            )
        if self.deferrable:
            s3 = location.s3
            self.defer(
                trigger=DeepgramTranscribeTrigger(
                    source=source,
                    location=stored_at,
                    marker=marker,
                    deadline=started + self.timeout,
                    deferred_at=time.time(),
                    s3_bucket=s3[0] if s3 else None,
                    s3_key=s3[1] if s3 else None,
                    audio_url=None if s3 else location.audio_url,
                    deepgram_conn_id=self.deepgram_conn_id,
                    aws_conn_id=self.aws_conn_id,
                    store_conn_id=self.store_conn_id,
                    presigned_url_expires=self.presigned_url_expires,
                    options=self.options,
                    tags=self._task_tags(context),
                    task_fields=task,
                    result_delivery=delivery,
                    poll_interval=self.poll_interval,
                    request_id=sent_id,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + DEFER_MARGIN_SECONDS),  # the trigger's deadline first
            )
        self.log.info("Sending %s to Deepgram (marker %s)", source, marker)
        if delivery == "callback":
            callback = presigned_put_url(stored_at, self.store_conn_id, expires_in=int(self.timeout))
            mask_url_secrets(callback)
            request_id = sent_id or self._send(location, marker, self._task_tags(context), callback)
            self.log.info("Deepgram request %s accepted: its callback writes the result to %s", request_id, stored_at)
            result = wait_for_delivery(
                stored_at,
                self.store_conn_id,
                request_id,
                deadline=started + self.timeout,
                poll_interval=self.poll_interval,
            )
        else:
            result = self._send(location, marker, self._task_tags(context), None)
            write_result(stored_at, result.raw, self.store_conn_id)
        self.log.info(
            "Deepgram request %s: %.1f s of audio, %d words; result at %s",
            result.request_id,
            result.duration,
            result.word_count,
            stored_at,
        )
        return result_reference(result, stored_at, self.store_conn_id, source, task)

    def _sent_before(self, context: Context, marker: str, stored_at: str) -> str | None:
        """A request an earlier try (or, with ``reuse_existing``, another run) sent for this result, whose callback
        may still bring it: the history is searched (since the run started) from the second try on, and always
        with ``reuse_existing``; a request whose error was delivered does not count."""
        if not self.reuse_existing and getattr(context["ti"], "try_number", 1) <= 1:
            return None
        dag_run = context.get("dag_run")
        since = None if self.reuse_existing else getattr(dag_run, "start_date", None)
        return still_to_deliver(self.hook.find_request(marker, since=since), stored_at, self.store_conn_id)

    def _marker_and_location(self, location: AudioLocation, ti: Any) -> tuple[str, str]:
        """The request's idempotency marker and the result's location: per task instance, or (``reuse_existing``)
        per task and object version, shared by every run."""
        source = location.label
        s3 = location.s3
        if self.reuse_existing and s3 is not None:
            _, version = existing_s3_object(self.aws_conn_id, *s3, s3=shared_s3_hook(self.aws_conn_id))
            marker = listen_marker(ti.dag_id, SOURCE_VERSIONS, ti.task_id, None, f"{source}#{version.version}")
            return marker, result_location(self.output_uri, ti.dag_id, SOURCE_VERSIONS, ti.task_id, None, marker)
        marker = listen_marker(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, source)
        return marker, result_location(self.output_uri, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, marker)

    def _send(self, location: AudioLocation, marker: str, tags: list[str], callback: str | None) -> Any:
        """Send the audio: the ``DeepgramResult`` (no ``callback``), or the request id (``callback``)."""
        common: dict[str, Any] = {"options": self.options, "tags": tags, "idempotency_key": marker}
        if callback is None:
            send_url, send_file = self.hook.listen_url, self.hook.listen_file
        else:
            common["callback"] = callback
            send_url, send_file = self.hook.submit_url, self.hook.submit_file  # type: ignore[assignment]
        s3 = location.s3
        if s3 is not None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            s3_hook = S3Hook(aws_conn_id=self.aws_conn_id)
            if self.s3_transfer == "stream":

                def open_object() -> SizedStream:
                    response = s3_hook.get_conn().get_object(Bucket=s3[0], Key=s3[1])
                    return SizedStream(response["Body"], response["ContentLength"])

                return send_file(open_object, **common)
            url = presigned_get_url(s3_hook, s3[0], s3[1], expires_in=self.presigned_url_expires)
            return send_url(url, **common)
        if location.audio_url:
            return send_url(location.audio_url, **common)
        return send_file(str(location.local_path), **common)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the reference it stored, or the reason it failed."""
        if not isinstance(event, Mapping) or event.get("status") not in ("done", "error"):
            raise BrainError(f"Deepgram trigger sent an event this task cannot read (keys {sorted(event or {})})")
        if event["status"] == "error":
            raise BrainError(str(event.get("message") or "Deepgram transcription failed in the triggerer"))
        reference = event.get("reference")
        if not isinstance(reference, Mapping):
            raise BrainError("Deepgram trigger's event has no reference to the stored result")
        self._stored_at = str(reference.get("deepgram_result") or "") or None
        return dict(reference)

    def get_openlineage_facets_on_start(self) -> Any:
        """OpenLineage input: the S3 object or the URL (without query string) of the audio; none for a local file."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(inputs=lineage_inputs(self.location))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the audio in, the stored result out (an ``s3://`` location; others are not named)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_brain.transfers.lineage import s3_dataset

        stored = s3_object_of(self._stored_at) if self._stored_at else None
        outputs = [s3_dataset(*stored)] if stored else []
        return OperatorLineage(inputs=lineage_inputs(self.location), outputs=outputs)
