"""``--recognition-cache``: media recognised once is answered from the cache, by any server that shares it."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.brain import REPO_ROOT, start_brain_server
from tests.local.conftest import check_done_asset, upload_sync

HIT = "from the recognition cache"


def words(client, asset_id):
    return client.get(f"/assets/{asset_id}", params={"times": "true"}).json()["words"]


def test_the_same_media_is_recognised_once_across_servers_and_a_bad_entry_is_recognised_again(tmp_path, speech):
    cache = tmp_path / "cache"
    clip, other = speech.file(1), speech.file(4, voice="kal")
    first = start_brain_server(tmp_path / "first", workers=1, recognition_cache=cache)
    try:
        with first.client() as client:
            recognised = upload_sync(client, clip)
            recognised_words = words(client, recognised["asset_id"])
    finally:
        assert first.stop() == 0
    assert HIT not in first.log_text() and f"{recognised['asset_id']} done:" in first.log_text()
    (entry,) = cache.glob("*.json")

    second = start_brain_server(tmp_path / "second", workers=1, recognition_cache=cache)
    try:
        with second.client() as client:
            again = upload_sync(client, clip)
            check_done_asset(again)
            assert again["asset_id"] != recognised["asset_id"]
            assert (again["transcript"], again["confidence"], again["duration"]) == (
                recognised["transcript"],
                recognised["confidence"],
                recognised["duration"],
            )
            assert words(client, again["asset_id"]) == recognised_words
            assert f"{again['asset_id']} done:" in second.log_text() and HIT in second.log_text()

            # Other media is recognised and kept beside it; an entry that cannot be read is recognised again.
            assert upload_sync(client, other)["transcript"] != recognised["transcript"]
            assert len(list(cache.glob("*.json"))) == 2
            entry.write_text("{not json")
            mended = upload_sync(client, clip)
            assert mended["transcript"] == recognised["transcript"]
            assert second.log_text().count(HIT) == 1
            # Recognised anew (after other media: the decoder's running normalisation moves times and confidences
            # a little, so only the words are compared), and the entry replaced by a readable one.
            assert [w["word"] for w in words(client, mended["asset_id"])] == [w["word"] for w in recognised_words]
            assert upload_sync(client, clip)["confidence"] == mended["confidence"]
            assert second.log_text().count(HIT) == 2
    finally:
        assert second.stop() == 0
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in cache.glob("*.json"))  # no temp files


def test_a_cache_directory_that_cannot_be_made_is_refused_at_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_brain.local", "serve", "--data-dir", str(tmp_path / "data")]
        + ["--user", "u", "--password", "p", "--recognition-cache", str(blocker / "cache")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"--recognition-cache {blocker / 'cache'}: cannot create it" in result.stderr
