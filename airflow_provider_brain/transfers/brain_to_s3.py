"""Write Brain transcripts to S3 as JSON documents or one JSON Lines file, ready for a warehouse to load, or as
captions (SubRip or WebVTT) for a player."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import Asset
from airflow_provider_brain.sources import parse_s3_uri, s3_object_of
from airflow_provider_brain.transfers.captions import (
    DEFAULT_MAX_CUE_SECONDS,
    DEFAULT_MAX_LINE_CHARS,
    DEFAULT_MAX_LINES,
    DEFAULT_MAX_PAUSE_SECONDS,
    SRT_CONTENT_TYPE,
    VTT_CONTENT_TYPE,
    CaptionLimits,
    Cue,
    asset_cues,
    render_srt,
    render_vtt,
)
from airflow_provider_brain.transfers.common import (
    asset_document,
    newest_per_source,
    replacement_source,
)
from airflow_provider_brain.transfers.deepgram_results import fetch_transfer_assets
from airflow_provider_brain.transfers.lineage import (
    emit_asset_events,
    partial_with_alias,
    s3_asset,
    s3_dataset,
    source_datasets,
    with_alias,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

OUTPUT_FORMATS = ("json", "jsonl", "srt", "vtt")

#: Caption formats: how each renders its cues, and the Content-Type its documents get.
CAPTION_FORMATS: dict[str, Callable[[Sequence[Cue]], str]] = {"srt": render_srt, "vtt": render_vtt}
#: The ``Content-Type`` of the objects each output format writes.
CONTENT_TYPES = {
    "json": "application/json",
    "jsonl": "application/jsonl",
    "srt": SRT_CONTENT_TYPE,
    "vtt": VTT_CONTENT_TYPE,
}

#: A JSON Lines batch is spooled in memory up to this size, then on local disk: never all in memory.
SPOOL_MAX_BYTES = 64 * 1024**2

#: S3 keys are at most 1,024 bytes: a document name that would make a longer key is a hash instead.
MAX_S3_KEY_BYTES = 1024


def split_s3_uri(s3_uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` as ``("bucket", "some/key")`` (a bucket alone gives an empty key)."""
    return parse_s3_uri(s3_uri, "s3_uri", key_required=False)


def source_document_name(source: str, max_bytes: int = MAX_S3_KEY_BYTES, extension: str = "json") -> str:
    """The document name (``{prefix}/`` + this) for the audio at ``source``, readable and deterministic.

    ``s3://audio/calls/a.wav`` gives ``s3/audio/calls/a.wav.json``, ``https://host/x/b.mp3?sig=...``
    ``https/host/x/b.mp3.json`` (never the query string, which may hold a signature, nor credentials in
    the host), a local path ``/data/c.flac`` ``file/data/c.flac.json``. Empty, ``.`` and ``..`` segments
    are dropped, so a name cannot escape the prefix; a source that had such segments gets a short hash of
    itself in its name, so it cannot take another file's name. A name longer than ``max_bytes`` becomes
    ``by-source/<sha256>.json``. Captions end in their own ``extension`` (``srt``, ``vtt``) instead of ``json``.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()
    parts = urlsplit(source)
    if s3_object := s3_object_of(source):
        # The whole key, '?' and '#' too: "a?x.wav" must not take the name of "a".
        head, path = ["s3", s3_object[0]], s3_object[1]
    elif parts.scheme and parts.hostname:
        head = [parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else "")]
        path = parts.path
    else:
        head, path = ["file"], source
    segments = path.split("/")
    if segments and segments[0] == "":
        segments = segments[1:]  # the leading slash of an absolute path
    kept = [s for s in segments if s not in ("", ".", "..")]
    name = "/".join(head + kept)
    if kept != segments:
        name += f".{digest[:12]}"
    name += f".{extension}"
    if len(name.encode()) > max_bytes:
        name = f"by-source/{digest}.{extension}"
    return name


#: The ``AssetAlias`` a write declares unless told otherwise.
DEFAULT_ASSET_ALIAS = "brain_to_s3"


class BrainToS3Operator(BaseOperator):
    """Write Brain transcripts to S3, one JSON document per asset or one JSON Lines file per batch, or captions.

    With ``output_format="json"`` (the default) ``s3_uri`` is a prefix and each audio file gets one
    document, named after the file it came from: ``{prefix}/s3/bucket/calls/a.wav.json`` for
    ``s3://bucket/calls/a.wav`` (see ``source_document_name``). Rerunning a DAG over the same audio
    transcribes it into a new asset, whose document replaces the old one: one document per file, never a
    duplicate. With ``replace_by_source=False``, or for an asset with no recorded source, the document is
    ``{prefix}/{asset_id}.json``. With ``"jsonl"``, ``s3_uri`` is the key of one JSON Lines file holding
    the whole batch (what Snowflake, Redshift and BigQuery load natively), rewritten in place. In both
    forms, when a batch holds two assets of one file, only the newest is written.

    With ``"srt"`` (SubRip, ``application/x-subrip``) or ``"vtt"`` (WebVTT, ``text/vtt``), each audio file gets
    a caption file, named and replaced exactly as the JSON documents are, ending in ``.srt`` or ``.vtt``
    (``{prefix}/s3/bucket/calls/a.wav.vtt``). Cues come from the word timings (always fetched, whatever
    ``times`` says): at most ``caption_max_line_chars`` characters a line (a longer word gets a line of its
    own, never split) and ``caption_max_lines`` lines, at most ``caption_max_seconds`` on screen, and a new cue
    after a silence longer than ``caption_max_pause_seconds``. Cue times never overlap and stay within the
    audio's duration. An asset with no words gives an empty ``.srt`` file, or a ``.vtt`` that is only its
    ``WEBVTT`` header; a word without a start or end time fails the task, naming the asset
    (``CaptionTimingError``). See ``airflow_provider_brain.transfers.captions``.

    Each document holds ``asset_id``, ``status``, ``source``, ``duration``, ``transcript``,
    ``confidence``, ``mean_confidence``, ``word_count``, ``created``, ``completed``, ``metadata``
    and, with ``times=True``, ``words`` (``word``, ``start``, ``end``, ``confidence``).

    .. code-block:: python

        transcribe = BrainTranscribeOperator.partial(task_id="transcribe").expand(s3_uri=audio_files)
        BrainToS3Operator(
            task_id="export",
            asset_ids=transcribe.output,
            s3_uri="s3://lake/brain/{{ ds }}/transcripts.jsonl",
            output_format="jsonl",
            times=True,
        )

    **Assets.** A run that writes emits an Airflow asset event for ``s3_uri`` as written after templating,
    without a trailing slash (``s3://lake/brain/2026-01-01`` for a prefix, ``s3://lake/.../transcripts.jsonl``
    for JSON Lines), with ``extra`` ``{"documents": n, "format": ...}``. ``s3_uri`` is usually templated, so
    the operator declares an ``AssetAlias`` (``asset_alias``) and resolves the asset through it when it runs.
    A downstream DAG schedules on ``Asset("s3://lake/brain/transcripts")`` (``transfers.lineage.s3_asset``
    normalises the text as Airflow does) or on the alias. OpenLineage sees the source audio as inputs and
    ``s3://bucket`` / the prefix (or key) as output.

    :param asset_ids: one asset id or a list; items may also be the transcribe operator's summaries
        (mappings with ``asset_id``) or ``DeepgramTranscribeOperator``'s references (read from their object store).
        Templated, and mappable with ``.partial().expand(asset_ids=...)``
        (with ``jsonl``, give each mapped task its own key, e.g. ``.../part-{{ ti.map_index }}.jsonl``).
    :param s3_uri: ``s3://bucket/prefix`` for ``json``, ``srt`` and ``vtt``, ``s3://bucket/key.jsonl`` for ``jsonl``.
        Templated.
    :param output_format: ``"json"``, ``"jsonl"``, ``"srt"`` or ``"vtt"``.
    :param times: include word timings (``words``) in JSON documents; captions always use them.
    :param skip_unfinished: skip assets that are not done, with a warning, instead of failing on them.
    :param replace_by_source: name documents after their audio file rather than their asset id, and write
        only the newest asset of each file in a batch.
    :param caption_max_line_chars: captions: characters a line may hold (default 42).
    :param caption_max_lines: captions: lines a cue may hold (default 2).
    :param caption_max_seconds: captions: how long a cue may stay on screen, in seconds (default 7).
    :param caption_max_pause_seconds: captions: a silence between words longer than this starts a new cue
        (default 1 second).
    :param aws_conn_id: the AWS connection for ``S3Hook``.
    :param brain_conn_id: the Brain connection.
    :param asset_alias: the ``AssetAlias`` this task declares as an outlet (default ``brain_to_s3``), through
        which each run that writes emits an asset event for ``s3_uri``; ``None`` for no alias.
    :return: the S3 keys written.
    """

    template_fields: Sequence[str] = ("asset_ids", "s3_uri")
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        asset_ids: Any,
        s3_uri: str,
        output_format: str = "json",
        times: bool = False,
        skip_unfinished: bool = False,
        replace_by_source: bool = True,
        caption_max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
        caption_max_lines: int = DEFAULT_MAX_LINES,
        caption_max_seconds: float = DEFAULT_MAX_CUE_SECONDS,
        caption_max_pause_seconds: float = DEFAULT_MAX_PAUSE_SECONDS,
        aws_conn_id: str | None = "aws_default",
        brain_conn_id: str = BrainHook.default_conn_name,
        asset_alias: str | None = DEFAULT_ASSET_ALIAS,
        **kwargs: Any,
    ) -> None:
        kwargs["outlets"] = with_alias(kwargs.get("outlets"), asset_alias)
        super().__init__(**kwargs)
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
        # Checked here, so a bad limit fails when the DAG is parsed rather than when its task runs.
        CaptionLimits(
            max_line_chars=caption_max_line_chars,
            max_lines=caption_max_lines,
            max_cue_seconds=caption_max_seconds,
            max_pause_seconds=caption_max_pause_seconds,
        )
        self.asset_ids = asset_ids
        self.s3_uri = s3_uri
        self.output_format = output_format
        self.times = times
        self.skip_unfinished = skip_unfinished
        self.replace_by_source = replace_by_source
        self.caption_max_line_chars = caption_max_line_chars
        self.caption_max_lines = caption_max_lines
        self.caption_max_seconds = caption_max_seconds
        self.caption_max_pause_seconds = caption_max_pause_seconds
        self.aws_conn_id = aws_conn_id
        self.brain_conn_id = brain_conn_id
        self.asset_alias = asset_alias
        # What the last run wrote, for the OpenLineage listener (which asks the same operator object on complete).
        self._lineage_output: tuple[str, str] | None = None
        self._lineage_sources: list[str | None] = []

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``BaseOperator.partial``, with the write's ``AssetAlias`` among the mapped task's outlets at parse time."""
        return partial_with_alias(cls, kwargs, kwargs.get("asset_alias", DEFAULT_ASSET_ALIAS))

    def execute(self, context: Context) -> list[str]:
        keys = self._write(context)
        if keys:
            bucket, key = split_s3_uri(self.s3_uri)
            self._lineage_output = (bucket, key)
            extra = {"documents": len(keys), "format": self.output_format}
            emit_asset_events(context, self.outlets, [s3_asset(self.s3_uri)], extra)
        return keys

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source audio in, ``s3://bucket`` / the prefix (or JSON Lines key) out."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        outputs = [s3_dataset(*self._lineage_output)] if self._lineage_output else []
        return OperatorLineage(inputs=source_datasets(self._lineage_sources), outputs=outputs)

    def _write(self, context: Context) -> list[str]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, key = split_s3_uri(self.s3_uri)
        if self.output_format == "jsonl" and (not key or key.endswith("/")):
            raise ValueError(f"output_format='jsonl' writes one file: s3_uri must name a key, not {self.s3_uri!r}")
        fetched = fetch_transfer_assets(
            self.asset_ids,
            brain_conn_id=self.brain_conn_id,
            times=self.times or self.output_format in CAPTION_FORMATS,
            skip_unfinished=self.skip_unfinished,
            log=self.log,
        )
        assets = fetched.done
        self._lineage_sources = [replacement_source(asset) for asset in assets]
        if self.replace_by_source:
            # Grouped by the key each asset would be written to: one object, one (the newest) asset.
            if self.output_format != "jsonl":
                prefix = key.rstrip("/")
                assets, superseded = newest_per_source(assets, key=lambda a: self._document_name(a, prefix))
            else:
                assets, superseded = newest_per_source(assets)
            for old in superseded:
                self.log.info(
                    "Not writing Brain asset %s: a newer asset of the same audio is in the batch", old.asset_id
                )
        # Every object carries its media type, so a browser or a downstream reader knows what it holds.
        s3 = S3Hook(aws_conn_id=self.aws_conn_id, extra_args={"ContentType": CONTENT_TYPES[self.output_format]})
        if self.output_format == "jsonl":
            return self._write_jsonl(s3, bucket, key, assets)
        if self.output_format in CAPTION_FORMATS:
            # Every asset's cues before the first write: a word without timing fails the task, nothing half-written.
            limits = self.caption_limits
            cues = {asset.asset_id: asset_cues(asset, limits) for asset in assets}
            return self._write_documents(s3, bucket, key, assets, cues)
        return self._write_documents(s3, bucket, key, assets)

    @property
    def caption_limits(self) -> CaptionLimits:
        return CaptionLimits(
            max_line_chars=self.caption_max_line_chars,
            max_lines=self.caption_max_lines,
            max_cue_seconds=self.caption_max_seconds,
            max_pause_seconds=self.caption_max_pause_seconds,
        )

    def _document_name(self, asset: Asset, prefix: str) -> str:
        extension = self.output_format if self.output_format in CAPTION_FORMATS else "json"
        source = replacement_source(asset) if self.replace_by_source else None
        budget = MAX_S3_KEY_BYTES - len(prefix.encode()) - 1
        return source_document_name(source, budget, extension) if source else f"{asset.asset_id}.{extension}"

    def _document_body(self, asset: Asset, cues: Mapping[str, Sequence[Cue]]) -> tuple[bytes, str]:
        """The bytes of one asset's document, and what to log about them besides words and bytes (no text)."""
        if self.output_format in CAPTION_FORMATS:
            render = CAPTION_FORMATS[self.output_format]
            its_cues = cues[asset.asset_id]
            return render(its_cues).encode("utf-8"), f", {len(its_cues)} {self.output_format.upper()} cues"
        return json.dumps(asset_document(asset), ensure_ascii=False).encode("utf-8"), ""

    def _write_documents(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        assets: Sequence[Asset],
        cues: Mapping[str, Sequence[Cue]] | None = None,
    ) -> list[str]:
        prefix = prefix.rstrip("/")
        keys = []
        for asset in assets:
            name = self._document_name(asset, prefix)
            key = f"{prefix}/{name}" if prefix else name
            body, described = self._document_body(asset, cues or {})
            s3.load_bytes(body, key=key, bucket_name=bucket, replace=True)
            self.log.info(
                "Wrote Brain asset %s (%d words%s, %d bytes) to s3://%s/%s",
                asset.asset_id,
                asset.word_count,
                described,
                len(body),
                bucket,
                key,
            )
            keys.append(key)
        return keys

    def _write_jsonl(self, s3: Any, bucket: str, key: str, assets: Sequence[Asset]) -> list[str]:
        if not assets:
            # Every asset was skipped: leave whatever an earlier run wrote rather than blank it.
            self.log.warning("No done Brain assets to write; s3://%s/%s left as it was", bucket, key)
            return []
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as spool:
            for asset in assets:
                spool.write(json.dumps(asset_document(asset), ensure_ascii=False, separators=(",", ":")).encode())
                spool.write(b"\n")
            size = spool.tell()
            spool.seek(0)
            s3.load_file_obj(spool, key=key, bucket_name=bucket, replace=True)
        self.log.info("Wrote %d Brain asset(s) (%d bytes) as JSON Lines to s3://%s/%s", len(assets), size, bucket, key)
        return [key]
