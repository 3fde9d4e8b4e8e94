"""The hits of a phrase search as rows of the ``transcript_hits`` table (``sql_tables.TRANSCRIPT_HITS``), and the
search a load runs to get them.

``BrainToSqlOperator(phrases=[...])`` searches its assets for each phrase (``BrainHook.search``: one request per
1,000 assets and page of hits, not one per asset) and ``TranscriptLoader.load(..., hits=...)`` writes the rows in
the same transaction as the transcripts. A row holds the phrase as the DAG gave it, never the matched snippet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_brain.transfers.common import asset_source

if TYPE_CHECKING:
    from airflow_provider_brain.hooks.brain import BrainHook
    from airflow_provider_brain.hooks.search import SearchHit
    from airflow_provider_brain.models import Asset


def search_hits(
    hook: BrainHook, phrases: Sequence[str], assets: Sequence[Asset], *, min_confidence: float = 0.0
) -> list[SearchHit]:
    """Every hit of each phrase in ``assets``, at least ``min_confidence``: what a load writes to the hits table."""
    ids = [asset.asset_id for asset in assets]
    if not ids:
        return []
    return [hit for phrase in phrases for hit in hook.search(phrase, ids) if hit.confidence >= min_confidence]


def hit_table_rows(assets: Sequence[Asset], hits: Sequence[SearchHit], loaded_at: Any) -> Iterator[tuple[Any, ...]]:
    """One row per hit of ``assets`` (hits of other assets are left out), in ``TRANSCRIPT_HITS`` column order:
    numbered from 0 within each asset in time order, so the same search over the same asset gives the same rows."""
    sources = {asset.asset_id: asset_source(asset) for asset in assets}
    by_asset: dict[str, list[SearchHit]] = {}
    for hit in hits:
        if hit.asset_id in sources:
            by_asset.setdefault(hit.asset_id, []).append(hit)
    for asset_id, mine in by_asset.items():
        mine.sort(key=lambda h: (h.start, h.end, h.query))
        for index, hit in enumerate(mine):
            yield asset_id, index, sources[asset_id], hit.query, hit.start, hit.end, hit.confidence, loaded_at
