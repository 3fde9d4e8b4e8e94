"""Cancelling an asset: the API's only way to stop Brain working on audio nobody waits for is to delete it.

Used wherever ``cancel_on_kill`` applies (a user ended the task, its deadline passed): the operators in a
worker (``delete_quietly``) and the triggers in the triggerer (``adelete_quietly``). Best effort: a failure is
logged, never raised, since the task is ending anyway; an asset already gone is simply not there to delete.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from airflow_provider_brain.exceptions import BrainNotFound


class DeletesAssets(Protocol):
    """What ``delete_quietly`` needs of a hook (``BrainHook`` has it; this module stays below the hook)."""

    def delete_asset(self, asset_id: str) -> bool: ...


class DeletesAssetsAsync(Protocol):
    """What ``adelete_quietly`` needs of a hook."""

    async def adelete_asset(self, asset_id: str) -> bool: ...


def delete_quietly(hook: DeletesAssets, log: logging.Logger | Any, asset_id: str, why: str) -> None:
    """Delete ``asset_id`` through a ``BrainHook`` and log why; never raises."""
    try:
        deleted = hook.delete_asset(asset_id)
    except Exception as err:  # noqa: BLE001 - best effort, see the module docstring
        _report(log, asset_id, why, err)
        return
    _report(log, asset_id, why, deleted)


async def adelete_quietly(hook: DeletesAssetsAsync, log: logging.Logger | Any, asset_id: str, why: str) -> None:
    """``delete_quietly`` for the event loop (``BrainHook.adelete_asset``)."""
    try:
        deleted = await hook.adelete_asset(asset_id)
    except Exception as err:  # noqa: BLE001 - best effort, see the module docstring
        _report(log, asset_id, why, err)
        return
    _report(log, asset_id, why, deleted)


def _report(log: Any, asset_id: str, why: str, outcome: bool | Exception) -> None:
    if isinstance(outcome, BrainNotFound) or outcome is False:
        return
    if isinstance(outcome, Exception):
        log.warning("Could not delete Brain asset %s after %s: %s", asset_id, why, outcome)
    else:
        log.info("Deleted Brain asset %s because %s (cancel_on_kill=True)", asset_id, why)
