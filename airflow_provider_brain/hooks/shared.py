"""The poller every wait on one connection in one event loop shares (a triggerer's, or a test's).

It lives apart from ``hooks/poller.py`` so that the poller knows nothing of ``BrainHook``: the poller takes any
hook with a transport, and this module, above both, puts them together.
"""

from __future__ import annotations

import asyncio
import weakref

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.poller import AssetPoller

_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AssetPoller[BrainHook]]] = (
    weakref.WeakKeyDictionary()
)


def shared_poller(brain_conn_id: str) -> AssetPoller[BrainHook]:
    """The poller every wait on ``brain_conn_id`` in the running event loop shares (made on first use).

    Its HTTP client stays open for the life of the loop, so a triggerer keeps one connection pool to Brain
    however many triggers come and go; refused credentials make it read the connection again.
    """
    per_loop = _pollers.setdefault(asyncio.get_running_loop(), {})
    shared = per_loop.get(brain_conn_id)
    if shared is None:
        shared = per_loop[brain_conn_id] = AssetPoller(BrainHook(brain_conn_id=brain_conn_id))
    return shared
