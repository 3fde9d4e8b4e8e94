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


def test_media_moves_in_with_its_asset_and_a_deleted_asset_gets_none(store):
    upload = store.new_tmp_file()
    upload.write_bytes(b"media")
    asset = Asset(new_asset_id(), "u", "processing", utc_now(), "http://127.0.0.1:1")
    store.create(asset, upload)
    assert store.media_file(store.get(asset.asset_id)).read_bytes() == b"media"

    # An asset submitted by URL, deleted before its download finished: the download is dropped.
    by_url = _new(store, source_url="http://example.com/a.wav")
    store.delete(by_url.asset_id)
    download = store.new_tmp_file()
    download.write_bytes(b"late")
    assert store.attach_media(by_url.asset_id, download, "audio/wav") is None
    assert not download.exists()
    assert sorted(p.name for p in store.media_dir.iterdir()) == [asset.asset_id]

    # A failed insert (a duplicate id) moves nothing: the existing asset's media stays as it was.
    clash = store.new_tmp_file()
    clash.write_bytes(b"other")
    with pytest.raises(sqlite3.IntegrityError):
        store.create(Asset(asset.asset_id, "u", "processing", utc_now(), "x"), clash)
    assert sorted(p.name for p in store.media_dir.iterdir()) == [asset.asset_id]
    assert store.media_file(store.get(asset.asset_id)).read_bytes() == b"media"

    store.delete(asset.asset_id)
    assert list(store.media_dir.iterdir()) == []


def test_opening_the_store_removes_media_no_asset_refers_to(tmp_path):
    store = AssetStore(tmp_path / "data")
    upload = store.new_tmp_file()
    upload.write_bytes(b"media")
    kept = Asset(new_asset_id(), "u", "processing", utc_now(), "http://127.0.0.1:1")
    store.create(kept, upload)
    store.close()
    (tmp_path / "data" / "media" / "0123456789abcdef").write_bytes(b"left by a crash")
    reopened = AssetStore(tmp_path / "data")
    try:
        assert [p.name for p in reopened.media_dir.iterdir()] == [kept.asset_id]
    finally:
        reopened.close()
