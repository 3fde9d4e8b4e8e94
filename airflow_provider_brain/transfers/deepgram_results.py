"""Deepgram results in the transfers: ``BrainToSqlOperator`` and ``BrainToS3Operator`` take a
``DeepgramTranscribeOperator``'s output through the same ``asset_ids`` parameter as Brain's.

What ``asset_ids`` hands over is split once: references to stored Deepgram results (mappings with
``deepgram_result``) are read from their object store and converted to the provider's transcript model
(``DeepgramResult.to_asset``); everything else goes to ``normalize_asset_ids`` and Brain, as before. Nothing
here logs transcript text: ids, locations and counts only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_provider_brain.deepgram_models import DeepgramResult
from airflow_provider_brain.deepgram_store import RESULT_KEY, is_result_ref, read_result
from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import Asset
from airflow_provider_brain.transfers.common import FetchedAssets, asset_leaves, fetch_done_assets, normalize_asset_ids

#: What a Deepgram reference's task fields are called in an asset's metadata (audio minutes per DAG reads them).
TASK_FIELDS = ("dag_id", "task_id", "run_id")


class DeepgramResultMissing(BrainError):
    """A Deepgram reference names a result that is not in its object store (deleted, or another store)."""


def split_deepgram_refs(value: Any) -> tuple[list[Any], list[Mapping[str, Any]]]:
    """``(everything else, Deepgram references)`` of an ``asset_ids`` value, each in order."""
    others: list[Any] = []
    refs: list[Mapping[str, Any]] = []
    for item in asset_leaves(value):
        (refs if is_result_ref(item) else others).append(item)
    return others, refs


def deepgram_asset(ref: Mapping[str, Any]) -> Asset | None:
    """The stored result a reference names, as an ``Asset``; ``None`` if it is not in the store."""
    data = read_result(str(ref[RESULT_KEY]), ref.get("store_conn_id"))
    if data is None:
        return None
    metadata = {name: str(ref[name]) for name in ("source", *TASK_FIELDS) if ref.get(name)}
    return DeepgramResult.from_json(data).to_asset(metadata)


def fetch_transfer_assets(
    value: Any,
    *,
    brain_conn_id: str,
    times: bool,
    skip_unfinished: bool,
    log: logging.Logger | logging.LoggerAdapter[Any] | Any,
) -> FetchedAssets:
    """Every asset an ``asset_ids`` value names, done ones ready to transfer: Brain's fetched through
    ``BrainHook`` (one policy for unfinished ones, ``fetch_done_assets``), Deepgram's read from their store.

    A Deepgram result missing from its store fails the task (``DeepgramResultMissing``), or is skipped with a
    warning with ``skip_unfinished``.
    """
    others, refs = split_deepgram_refs(value)
    ids = normalize_asset_ids(others)
    fetched = (
        fetch_done_assets(
            BrainHook(brain_conn_id=brain_conn_id), ids, times=times, skip_unfinished=skip_unfinished, log=log
        )
        if ids
        else FetchedAssets()
    )
    read = 0
    for ref in refs:
        asset = deepgram_asset(ref)
        if asset is not None:
            fetched.done.append(asset)
            read += 1
            continue
        where, request = ref[RESULT_KEY], ref.get("request_id")
        if not skip_unfinished:
            raise DeepgramResultMissing(
                f"Deepgram request {request}'s result is not at {where}: was it deleted? Run its transcribe task "
                "again, or pass skip_unfinished=True to transfer the others"
            )
        log.warning("Skipping Deepgram request %s: its result is not at %s", request, where)
        fetched.skipped[str(request)] = "result missing"
    if refs:
        log.info("Read %d of %d Deepgram result(s) from their store", read, len(refs))
    return fetched
