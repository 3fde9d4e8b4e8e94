"""BrainToSqlOperator(phrases=...): the hits of a phrase search in the transcript_hits table, on PostgreSQL (psycopg 3
and 2), SQLite and DuckDB, from assets the local server recognised."""

from __future__ import annotations

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.transfers import sql_loader
from airflow_provider_brain.transfers.sql_tables import TRANSCRIPT_HITS
from tests.transfers.test_brain_to_sql import Warehouse, run, warehouse  # noqa: F401 - the fixture

#: Sentence 0 says "the park" once and "the" three times; sentence 1 "a cup of coffee" once.
PHRASES = ["the park", "a cup of coffee", "the", "a purple elephant"]


def hits(db: Warehouse, table: str = "transcript_hits") -> list[tuple]:
    return db.records(
        f"SELECT asset_id, hit_index, source, phrase, start_s, end_s, confidence FROM {table}"
        " ORDER BY asset_id, hit_index"
    )


def test_hits_are_loaded_with_their_source_and_replaced_on_reload(warehouse, brain_assets, brain_conn):  # noqa: F811
    park, coffee = brain_assets.done
    result = run(asset_ids=brain_assets.done_ids, phrases=PHRASES)
    rows = hits(warehouse)
    expected = BrainHook().search("the", [park.asset_id])
    assert result["hits_table"] == "transcript_hits" and result["hit_rows"] == len(rows)
    by_asset = {a: [r for r in rows if r[0] == a] for a in brain_assets.done_ids}
    assert sorted(r[3] for r in by_asset[park.asset_id]) == sorted(["the park"] + ["the"] * len(expected))
    assert [r[3] for r in by_asset[coffee.asset_id]] == ["a cup of coffee"]
    for asset in brain_assets.done:
        mine = by_asset[asset.asset_id]
        assert [r[1] for r in mine] == list(range(len(mine)))  # numbered in time order
        assert [r[4] for r in mine] == sorted(r[4] for r in mine)
        assert {r[2] for r in mine} == {asset.metadata["source"]}
        starts = {w.start for w in asset.words}
        ends = {w.end for w in asset.words}
        for _, _, _, phrase, start, end, confidence in mine:
            assert start in starts and end in ends and start < end  # on the words' own timings
            assert 0.0 < confidence <= 1.0
    (park_hit,) = [r for r in by_asset[park.asset_id] if r[3] == "the park"]
    words = [w.word for w in park.words]
    at = next(i for i in range(len(words) - 1) if words[i : i + 2] == ["the", "park"])
    assert (park_hit[4], park_hit[5]) == (park.words[at].start, park.words[at + 1].end)

    run(asset_ids=brain_assets.done_ids, phrases=PHRASES)  # the same load again: the same rows
    assert hits(warehouse) == rows
    run(asset_ids=brain_assets.done_ids)  # a load without phrases leaves the hits as they are
    assert hits(warehouse) == rows
    # Other phrases replace the assets' hits; none found leaves none.
    assert run(asset_ids=[coffee.asset_id], phrases=["a purple elephant"])["hit_rows"] == 0
    assert [r[0] for r in hits(warehouse)] == [park.asset_id] * len(by_asset[park.asset_id])


def test_min_confidence_custom_table_and_asset_event_counts(warehouse, brain_assets, brain_conn):  # noqa: F811
    everything = BrainHook().search("the", brain_assets.done_ids)
    threshold = sorted(h.confidence for h in everything)[len(everything) // 2]
    run(asset_ids=brain_assets.done_ids, phrases="the", hits_table="said_hits", min_confidence=threshold)
    kept = hits(warehouse, "said_hits")
    assert len(kept) == sum(1 for h in everything if h.confidence >= threshold) < len(everything)
    assert all(r[6] >= threshold - 1e-9 for r in kept)
    assert warehouse.count("transcripts") == 2


def test_a_refused_hits_load_rolls_back_and_quotes_no_phrase(warehouse, brain_assets, brain_conn, monkeypatch):  # noqa: F811
    run(asset_ids=brain_assets.done_ids, phrases=["the park"])
    before = hits(warehouse), warehouse.transcripts()

    def broken(assets, found, loaded_at):
        yield ("x" * 100, 0, None, "secret phrase", 0.0, 1.0, 0.5, None)  # a NULL loaded_at: NOT NULL refuses it

    monkeypatch.setattr(sql_loader, "hit_table_rows", broken)
    with pytest.raises(sql_loader.BrainLoadError, match="while writing transcript_hits") as caught:
        run(asset_ids=brain_assets.done_ids, phrases=["the park"])
    assert "secret phrase" not in str(caught.value)
    assert (hits(warehouse), warehouse.transcripts()) == before


def test_the_hits_table_is_defined_once():
    assert TRANSCRIPT_HITS.primary_key == ("asset_id", "hit_index")
    assert TRANSCRIPT_HITS.column_list == ("asset_id, hit_index, source, phrase, start_s, end_s, confidence, loaded_at")
    with pytest.raises(ValueError, match="Search phrase 1"):
        run(asset_ids=[], phrases=[""])
