"""Ending a transcribe task in the triggerer: its XComs written from there, and the done task's return value.

A task that ends in the triggerer (started there, or deferred and finished there) has no worker to store its
return value and its extra link's URL, so the trigger stores them before it yields ``TaskSuccessEvent``. XComs go
through the triggerer's supervisor: its sync client works from a thread without blocking the event loop.
(``TaskSuccessEvent(xcoms=...)`` would store each value as a JSON string, and ``ti.xcom_push`` fails for mapped
tasks.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.links import ASSET_URL_XCOM_KEY, BrainAssetLink
from airflow_provider_brain.models import Asset


async def xcom_set(ti: Any, key: str, value: Any) -> None:
    """Store one XCom of the trigger's task instance."""
    from airflow.providers.common.compat.sdk import XCom

    await asyncio.to_thread(
        XCom.set, key, value, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index
    )


async def xcom_get(ti: Any, key: str) -> Any:
    """One XCom of the trigger's task instance (``None`` if there is none)."""
    from airflow.providers.common.compat.sdk import XCom

    return await asyncio.to_thread(
        XCom.get_one, key=key, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index
    )


async def publish_asset(ti: Any, hook: BrainHook, asset_id: str, *, link_only: bool = False) -> None:
    """The XComs a worker pushes once it knows the asset, its id and its URL (unless ``link_only``: a deferred
    task pushed them before deferring), and the extra link's URL, which a worker stores when a task ends, and
    no worker ends this one. Each XCom is one call to the API server: a thousand tasks, thousands of calls."""
    url = (await hook.aget_settings()).url(f"/assets/{asset_id}")
    if not link_only:
        await xcom_set(ti, "asset_id", asset_id)
        await xcom_set(ti, ASSET_URL_XCOM_KEY, url)
    await xcom_set(ti, BrainAssetLink().xcom_key, url)


async def store_result(
    ti: Any, hook: BrainHook, asset: Asset, *, source: str, times: bool, return_transcript: bool
) -> Asset:
    """Store a settled asset's task result as the task's return value (what ``BrainTranscribeOperator``
    returns); return the asset as fetched for it (again, whole, with word timings if ``times``, when done)."""
    if asset.is_done:
        asset = await hook.aget_asset(asset.asset_id, times=times)
    await xcom_set(ti, "return_value", asset.task_result(source=source, times=times, transcript=return_transcript))
    return asset
