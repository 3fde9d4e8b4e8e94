"""The API contract on who may do what: Basic auth, tokens, ownership, and secrets kept out of answers and logs."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.local.conftest import OCTET, upload_sync


@pytest.mark.parametrize(
    "auth",
    [None, ("demo", "wrong-password"), ("nobody", "demo"), ("demo", "")],
)
def test_401_with_basic_challenge_and_no_echo(brain_server, auth):
    for method, path in [("GET", "/assets"), ("POST", "/speech:recognize"), ("GET", "/assets/0123456789abcdef")]:
        response = httpx.request(method, brain_server.url + path, auth=auth, content=b"x" * 10)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="brain"'
        assert set(response.json()) == {"error"}
        if auth:
            assert auth[1] == "" or auth[1] not in response.text
            assert auth[0] not in response.text


def test_malformed_basic_header_is_401(brain_server):
    response = httpx.get(brain_server.url + "/assets", headers={"Authorization": "Basic %%%"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="brain"'


def test_another_users_asset_is_404(brain_server, client, speech):
    asset = upload_sync(client, speech.file(0, voice="kal"))
    asset_id = asset["asset_id"]
    with brain_server.client("alice") as alice:
        for method in ("GET", "PUT", "DELETE"):
            response = alice.request(method, f"/assets/{asset_id}", json={"transcript": "mine"})
            assert response.status_code == 404
            assert response.json() == {"error": "asset not found"}
        assert alice.get(f"/assets/{asset_id}/content").status_code == 404
        assert asset_id not in [a["asset_id"] for a in alice.get("/assets?done=false").json()["results"]]
        hits = alice.post("/assets/search", json={"query": "children", "asset_ids": [asset_id]}).json()
        assert hits == {"results": []}
    # Still there, unchanged, for its owner.
    assert client.get(f"/assets/{asset_id}").json()["transcript"] == asset["transcript"]


def test_unknown_and_malformed_asset_ids_are_404(client):
    for asset_id in ("0123456789abcdef", "not-an-id", "0123456789ABCDEF", "0" * 17):
        response = client.get(f"/assets/{asset_id}")
        assert response.status_code == 404
        assert response.json() == {"error": "asset not found"}


def test_unknown_routes_and_wrong_methods_answer_json(client):
    missing = client.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found"}
    wrong = client.get("/speech:recognize")
    assert wrong.status_code == 405
    assert "error" in wrong.json()
    assert "POST" in wrong.headers["allow"]
    assert client.post("/assets/0123456789abcdef").status_code == 405


def test_token_login_and_users(brain_server, client):
    token = client.get("/users/login").json()["signed_username"]
    plain = httpx.Client(base_url=brain_server.url)
    user = plain.get("/users", params={"signed_username": token})
    assert user.status_code == 200
    assert user.json()["username"] == brain_server.user
    assert set(user.json()) == {"username"}
    assert plain.get("/assets", params={"signed_username": token}).status_code == 200

    # A token for one user cannot be turned into another's, and a bad token is 401.
    with brain_server.client("alice") as alice:
        alice_token = alice.get("/users/login").json()["signed_username"]
    assert "alice-secret" not in alice_token
    forged = "alice." + token.rsplit(".", 1)[1]
    for bad in (forged, token + "0", "demo", "", alice_token[:-1]):
        response = plain.get("/assets", params={"signed_username": bad})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="brain"'
    assert plain.get("/users", params={"signed_username": alice_token}).json()["username"] == "alice"


def test_credentials_and_tokens_never_appear_in_the_server_log(brain_server, speech, media_server):
    url = media_server.serve("signed.wav", speech.file(1)) + "?X-Amz-Signature=media-signature-123"
    callback = f"{media_server.url}/callback/logged?token=callback-token-456"
    with brain_server.client("alice") as alice:
        token = alice.get("/users/login").json()["signed_username"]
        alice.post("/speech:recognize", content=speech.file(0).read_bytes(), headers=OCTET)
        alice.post("/speech:recognize", json={"audio": {"url": url}, "config": {"callback": callback}})
        media_server.wait_callback("/callback/logged?token=callback-token-456")
    httpx.get(f"{brain_server.url}/assets", params={"signed_username": token})
    httpx.get(f"{brain_server.url}/assets", auth=("alice", "wrong-alice-secret"))
    time.sleep(0.2)
    log = brain_server.log_text()
    assert "GET /assets 200" in log  # the log is being written at all
    assert token.rsplit(".", 1)[1] not in log
    assert "alice-secret" not in log
    assert "media-signature-123" not in log
    assert "callback-token-456" not in log
    # Transcripts are personal data: no recognised word of the sentence in the log.
    assert "children" not in log and "park" not in log and "coffee" not in log
