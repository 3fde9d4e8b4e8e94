"""The asset store itself: listings read no words, media is never left without its asset."""

from __future__ import annotations

import sqlite3

import pytest

from airflow_provider_brain.local.assets import Asset, new_asset_id
from airflow_provider_brain.local.recognizer import Word
from airflow_provider_brain.local.store import AssetStore, utc_now


@pytest.fixture
def store(tmp_path):
    opened = AssetStore(tmp_path / "data")
    yield opened
    opened.close()


def _new(store: AssetStore, owner: str = "u", **fields) -> Asset:
    asset = Asset(new_asset_id(), owner, "processing", utc_now(), "http://127.0.0.1:1", **fields)
    store.create(asset)
    return asset


def test_listing_summaries_equal_the_assets_summaries_without_reading_words(store):
    words = [Word("hello", 0.1, 0.4, 0.9), Word("world", 0.5, 0.9, 0.8)]
    done = _new(store, duration=1.0, metadata={"filename": "a.wav"})
    store.mark_done(done.asset_id, 1.0, words)
    failed = _new(store)
    store.mark_failed(failed.asset_id, "could not decode the audio", 400, duration=2.5)
    processing = _new(store, metadata={"k": [1, 2]})
    other = _new(store, owner="someone-else")
    store.mark_done(other.asset_id, 1.0, words)

    everything, more = store.page("u", done_only=False, limit=10, offset=0)
    expected = [store.get(a.asset_id).to_summary() for a in (processing, failed, done)]
    assert everything == expected and not more
    assert [s["status"] for s in everything] == ["processing", "failed", "done"]
    assert everything[1]["error"] == "could not decode the audio"
    assert "transcript" not in everything[2] and "confidence" not in everything[2]
    assert store.page("u", done_only=True, limit=10, offset=0) == ([expected[2]], False)
    assert store.page("u", done_only=False, limit=2, offset=0) == (expected[:2], True)

    # A words column that cannot be parsed: the single asset cannot be read, the listing still can.
    db = sqlite3.connect(store.data_dir / "brain.sqlite3")
    db.execute("UPDATE assets SET words = 'not json' WHERE asset_id = ?", (done.asset_id,))
    db.commit()
    db.close()
    with pytest.raises(ValueError):
        store.get(done.asset_id)
    assert store.page("u", done_only=False, limit=10, offset=0) == (expected, False)
