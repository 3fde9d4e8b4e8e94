"""What the S3 and SQL transfers share: reading ``asset_ids`` from whatever XCom hands over, fetching the
assets through ``BrainHook`` with one policy for unfinished ones, and flattening an ``Asset`` into records.

Nothing here logs or returns transcript text: only ids, counts and statuses.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_brain.exceptions import BrainError, redact_urls
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import Asset, parse_api_time, validate_asset_id

#: Metadata keys that name where an asset's audio came from, in order of preference.
SOURCE_METADATA_KEYS = ("source", "url", "filename")

AssetIdsArg = str | Mapping[str, Any] | Asset | Iterable[str | Mapping[str, Any] | Asset]


class BrainAssetsNotDone(BrainError):
    """Some assets to transfer are still processing or failed; ``assets`` maps their ids to statuses."""

    def __init__(self, assets: Mapping[str, str]) -> None:
        self.assets = dict(assets)
        listed = ", ".join(f"{asset_id} ({status})" for asset_id, status in self.assets.items())
        super().__init__(
            f"{len(self.assets)} Brain asset(s) are not done and cannot be transferred: {listed}. "
            "Wait for them (BrainAssetSensor), or pass skip_unfinished=True to transfer the done ones only"
        )


def normalize_asset_ids(value: Any) -> list[str]:
    """Turn what a DAG passes as ``asset_ids`` into a list of valid ids, in order, without duplicates.

    Accepted: one id; an ``Asset``; a mapping with an ``"asset_id"`` key (the summary the transcribe
    operators return; a batch's summary of a failed file, ``"status": "failed"``, is left out); any
    iterable of those (a list, an XCom's lazy sequence, a mapped batch's list of lists); or the string
    form of such a list, which is what a Jinja template renders when the DAG does not render native objects.
    """
    ids: list[str] = []
    seen: set[str] = set()
    for item in _flatten(value):
        asset_id = validate_asset_id(item)
        if asset_id not in seen:
            seen.add(asset_id)
            ids.append(asset_id)
    return ids


def asset_leaves(value: Any) -> Iterator[Any]:
    """The leaves of what a DAG passes as ``asset_ids``: ids, mappings and ``Asset``s, with lists flattened, a
    template's rendered list parsed, and a mapped task's lazy XCom sliced once. Text that looks like a list but
    does not parse is yielded as it is, for the caller to refuse with its own words."""
    if value is None:
        return
    if isinstance(value, Mapping | Asset):
        yield value
    elif isinstance(value, str):
        text = value.strip()
        if text and text[0] in "[({":
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                yield text
                return
            yield from asset_leaves(parsed)
        elif text:
            yield text
    elif isinstance(value, Sequence) and not isinstance(value, (list, tuple)):
        # An XCom of a mapped task is a lazy sequence: one slice is one request, where iterating it
        # fetches item by item and ends on a "not found" error in the task log.
        for item in value[:]:
            yield from asset_leaves(item)
    elif isinstance(value, Iterable):
        for item in value:
            yield from asset_leaves(item)
    else:
        yield value


def _flatten(value: Any) -> Iterator[Any]:
    for leaf in asset_leaves(value):
        if isinstance(leaf, Asset):
            yield leaf.asset_id
        elif isinstance(leaf, Mapping):
            if "asset_id" not in leaf:
                raise ValueError(
                    f"Expected a Brain asset id or a mapping with an 'asset_id' key, got keys {sorted(leaf)}"
                )
            if leaf.get("status") != "failed":  # A batch's summary of a file Brain could not transcribe: skipped.
                yield leaf["asset_id"]
        elif isinstance(leaf, str) and leaf[0] in "[({":
            raise ValueError(f"Could not read Brain asset ids from {leaf[:80]!r}")
        else:
            yield leaf  # validate_asset_id rejects what is not an id with a clear message


@dataclass
class FetchedAssets:
    """Assets ready to transfer, and the ids of those left out because they were not done."""

    done: list[Asset] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def fetch_done_assets(
    hook: BrainHook,
    asset_ids: Sequence[str],
    *,
    times: bool,
    skip_unfinished: bool,
    log: logging.Logger | logging.LoggerAdapter[Any] | Any,
) -> FetchedAssets:
    """Fetch every asset; raise ``BrainAssetsNotDone`` naming all unfinished ones, or skip them with a warning."""
    fetched = FetchedAssets()
    for asset_id in asset_ids:
        asset = hook.get_asset(asset_id, times=times)
        if asset.is_done:
            fetched.done.append(asset)
        else:
            status = asset.status.value
            if asset.is_failed and asset.error:
                status = f"{status}: {redact_urls(asset.error)}"
            fetched.skipped[asset_id] = status
    if fetched.skipped:
        if not skip_unfinished:
            raise BrainAssetsNotDone(fetched.skipped)
        log.warning(
            "Skipping %d Brain asset(s) that are not done: %s",
            len(fetched.skipped),
            ", ".join(f"{asset_id} ({status})" for asset_id, status in fetched.skipped.items()),
        )
    return fetched


def asset_source(asset: Asset) -> str | None:
    """Where the audio came from, as recorded in the asset's metadata (``source``, ``url`` or ``filename``)."""
    for key in SOURCE_METADATA_KEYS:
        value = asset.metadata.get(key)
        if value:
            return str(value)
    return None


def replacement_source(asset: Asset) -> str | None:
    """The audio file an asset stands for when a newer asset replaces it: the ``source`` the transcribe
    operator records. ``url`` and ``filename`` never replace anything: different files may share them."""
    value = asset.metadata.get("source")
    return str(value) if value else None


def newest_per_source(
    assets: Sequence[Asset], key: Callable[[Asset], str | None] = replacement_source
) -> tuple[list[Asset], list[Asset]]:
    """Split a batch into the assets to keep and those superseded by a newer asset of the same file.

    A batch may hold two transcriptions of one file (a task cleared after the file was transcribed again):
    only the newest (by ``created``, then by position in the batch) stands for the file. ``key`` names
    the file (default: ``replacement_source``); assets it names ``None`` are all kept. Order is preserved.
    """
    keys = [key(asset) for asset in assets]
    newest: dict[str, int] = {}
    for index, (asset, name) in enumerate(zip(assets, keys, strict=True)):
        if name is None:
            continue
        best = newest.get(name)
        if best is None or _created_key(asset) >= _created_key(assets[best]):
            newest[name] = index
    kept_indexes = set(newest.values())
    kept = [a for i, a in enumerate(assets) if keys[i] is None or i in kept_indexes]
    superseded = [a for i, a in enumerate(assets) if keys[i] is not None and i not in kept_indexes]
    return kept, superseded


def _created_key(asset: Asset) -> datetime:
    return parse_timestamp(asset.created) or datetime.min


def parse_timestamp(value: str | None) -> datetime | None:
    """An API timestamp as a naive UTC ``datetime`` (what the SQL transfer stores); ``None`` if absent or unreadable."""
    parsed = parse_api_time(value)
    return parsed.replace(tzinfo=None) if parsed else None


def utc_now() -> datetime:
    """The current time as a naive UTC ``datetime``, as stored in ``loaded_at``."""
    return datetime.now(UTC).replace(tzinfo=None)


def word_tuples(asset: Asset) -> Iterator[tuple[int, str, float | None, float | None, float | None]]:
    """``(word_index, word, start_s, end_s, confidence)`` for each word of a done asset, from index 0.

    With timings (``times=True``) they come from ``asset.words``; without, from the transcript split on
    whitespace and the matching ``confidence`` entries, with no start or end.
    """
    if asset.words is not None:
        for index, word in enumerate(asset.words):
            yield index, word.word, word.start, word.end, word.confidence
        return
    confidence = asset.confidence
    for index, text in enumerate((asset.transcript or "").split()):
        yield index, text, None, None, (confidence[index] if index < len(confidence) else None)


def asset_document(asset: Asset) -> dict[str, Any]:
    """The JSON document the S3 transfer writes for one asset: a flat, stable shape warehouses load as is."""
    document: dict[str, Any] = {
        "asset_id": asset.asset_id,
        "status": asset.status.value,
        "source": asset_source(asset),
        "duration": asset.duration,
        "transcript": asset.transcript,
        "confidence": list(asset.confidence),
        "mean_confidence": asset.mean_confidence,
        "word_count": asset.word_count,
        "created": asset.created,
        "completed": asset.completed,
        "metadata": asset.metadata,
    }
    if asset.words is not None:
        document["words"] = [w.as_dict() for w in asset.words]
    return document
