"""The transport's settings: read once from the connection, and never printing its password."""

from __future__ import annotations

from airflow_provider_brain.hooks.brain import BrainHook


def test_settings_repr_hides_the_password(brain_conn, brain_server):
    password = brain_server.users["alice"]
    assert len(password) > 6  # distinctive enough that finding it in the repr would mean it leaked
    brain_conn(login="alice", password=password)
    hook = BrainHook()

    shown = repr(hook.settings)

    assert password not in shown
    assert f"base_url={hook.settings.base_url!r}" in shown and "login='alice'" in shown
    # Hidden from the repr, still used: the server accepts the credentials.
    assert hook.settings.password == password
    ok, message = hook.test_connection()
    assert ok, message
