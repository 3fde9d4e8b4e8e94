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


def test_a_call_repr_leaves_out_its_body():
    """A URL submission's body is the presigned URL: a call in a log line or a traceback's locals must not show it."""
    from airflow_provider_brain.hooks.calls import Call

    signed = "https://calls.s3.amazonaws.com/a.wav?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=5ecret5ignature"
    call = Call("POST", "/speech:recognize", json={"url": signed}, idempotency_key="k1")

    shown = repr(call)

    assert "5ecret5ignature" not in shown and "AKIAEXAMPLE" not in shown
    assert "method='POST'" in shown and "path='/speech:recognize'" in shown
    assert call.json == {"url": signed}  # still what is sent
