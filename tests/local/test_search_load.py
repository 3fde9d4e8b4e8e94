"""A search over thousands of assets does not hold up the rest of the server (real server, real HTTP).

The assets are seeded through the server's own store before it starts: thousands of uploads would take
minutes of recognition. Only the order of answers is asserted; how fast is ``bench/local_latency.py``'s.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
from urllib.parse import urlsplit

import psutil

from airflow_provider_brain.local.assets import Asset, new_asset_id
from airflow_provider_brain.local.recognizer import Word
from airflow_provider_brain.local.store import AssetStore, utc_now
from tests.fixtures.brain import start_brain_server

ASSETS = 3000
#: Searches queued at once: the server runs them one after another, each reading every asset.
SEARCHES = 6
GETS = 20
SENTENCE = "the lazy dog sleeps while the quick fox jumps over the lazy dog in the park".split()


def seed(data_dir, owner: str, count: int) -> list[str]:
    """``count`` done assets of ``owner``, each holding "the lazy dog" twice, written by the store."""
    store = AssetStore(data_dir)
    ids = []
    try:
        for i in range(count):
            asset = Asset(new_asset_id(), owner, "processing", utc_now(), "http://127.0.0.1", duration=6.0)
            store.create(asset)
            confidence = 0.5 + (i % 50) / 100
            words = [Word(w, k * 0.4, k * 0.4 + 0.3, confidence) for k, w in enumerate(SENTENCE)]
            store.mark_done(asset.asset_id, 6.0, words)
            ids.append(asset.asset_id)
    finally:
        store.close()
    return ids


def send_search(server, query: str) -> http.client.HTTPConnection:
    """Send a search and return without reading its answer: the request is in the server's socket."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    token = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    connection.request(
        "POST",
        "/assets/search",
        body=json.dumps({"query": query}),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    return connection


def answered(connection: http.client.HTTPConnection) -> bool:
    """Whether the server has begun to answer (or closed) without reading anything."""
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable)


def test_get_answers_while_searches_read_thousands_of_assets(tmp_path):
    data_dir = tmp_path / "data"
    ids = seed(data_dir, "demo", ASSETS)
    server = start_brain_server(data_dir, workers=1)
    try:
        searches = [send_search(server, "The lazy DOG.") for _ in range(SEARCHES)]
        with server.client() as client:
            for i in range(GETS):
                response = client.get(f"/assets/{ids[i]}")
                assert response.status_code == 200
                assert response.json()["transcript"] == " ".join(SENTENCE)
        # Every GET was answered while searches were still reading: on the event loop, each GET would
        # have waited for the searches sent before it.
        assert not all(answered(c) for c in searches)

        for connection in searches:
            response = connection.getresponse()
            assert response.status == 200
            hits = json.loads(response.read())["results"]
            assert len(hits) == 2 * ASSETS
            confidences = [h["confidence"] for h in hits]
            assert confidences == sorted(confidences, reverse=True)
            assert {h["text"] for h in hits} == {"the lazy dog"}
            connection.close()
    finally:
        assert server.stop() == 0


def test_search_survives_the_death_of_its_process(tmp_path):
    """Searches run in a process of their own; if it dies, the next search starts another."""
    data_dir = tmp_path / "data"
    seed(data_dir, "demo", 20)
    server = start_brain_server(data_dir, workers=1)
    try:
        server_process = psutil.Process(server.process.pid)
        before = {p.pid for p in server_process.children(recursive=True)}
        with server.client() as client:
            first = client.post("/assets/search", json={"query": "quick fox"})
            assert first.status_code == 200
            assert len(first.json()["results"]) == 20
            started = [p for p in server_process.children(recursive=True) if p.pid not in before]
            assert len(started) == 1  # the search process, started by the first search
            started[0].kill()
            started[0].wait(10)
            again = client.post("/assets/search", json={"query": "quick fox"})
            assert again.status_code == 200
            assert again.json() == first.json()
            assert client.get("/assets", params={"limit": 1}).status_code == 200
        assert "the search process died; starting a new one" in server.log_text()
    finally:
        assert server.stop() == 0
