"""Helpers of the hook tests."""

from __future__ import annotations

from airflow_provider_brain.hooks.brain import BrainHook


def fast_hook(**kwargs) -> BrainHook:
    """A hook with short backoffs, so retry tests take seconds."""
    return BrainHook(retry_backoff=0.05, retry_backoff_max=0.2, **kwargs)


def count_assets(brain_server) -> int:
    with brain_server.client() as client:
        return len(client.get("/assets", params={"done": "false", "limit": 1000}).json()["results"])
