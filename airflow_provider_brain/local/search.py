"""``POST /assets/search`` off the event loop, however many assets the caller has.

``SearchQuery.parse`` checks the body on the loop (cheap); ``run_search`` does the rest on the search
thread (``StoreThreads.search``): SQLite picks the candidates (``instr`` on each done asset's normalised
words, in C, in chunks of ``CHUNK_ASSETS``), Python finds the hits in those only, keeps the best
``limit``/page of them when the request bounds it, and renders the JSON body there too. Searches take
turns on that one thread, so one search over a large account delays other searches, never other requests.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_brain.local.assets import ASSET_ID_PATTERN, normalise, phrase_hits, search_text
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.store import AssetStore

#: Candidate assets read from SQLite per statement (each chunk is parsed before the next is read).
CHUNK_ASSETS = 256


@dataclass(frozen=True)
class SearchQuery:
    """A checked search request: the normalised phrase, the assets to search, and how to cut the hits."""

    words: list[str]
    asset_ids: list[str] | None
    npp: int | None
    page: int
    limit: int | None

    @classmethod
    def parse(cls, body: Any) -> SearchQuery:
        """The request's JSON body as a query, or a ``400`` ``ApiError`` that says what is wrong."""
        if not isinstance(body, dict):
            raise ApiError(400, "the JSON body must be an object")
        query = body.get("query")
        if not isinstance(query, str):
            raise ApiError(400, "query must be a non-empty string")
        words = [w for w in (normalise(t) for t in query.split()) if w]
        if not words:
            raise ApiError(400, "query must be a non-empty string")
        asset_ids = body.get("asset_ids")
        if asset_ids is not None and (
            not isinstance(asset_ids, list) or not all(isinstance(a, str) for a in asset_ids)
        ):
            raise ApiError(400, "asset_ids must be a list of asset ids")

        def number(name: str, default: int | None, low: int) -> int | None:
            value = body.get(name, default)
            if value is None:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ApiError(400, f"{name} must be an integer of at least {low}")
            return value

        npp, page, limit = number("npp", None, 1), number("p", 0, 0), number("limit", None, 0)
        ids = [a for a in asset_ids if ASSET_ID_PATTERN.match(a)] if asset_ids is not None else None
        return cls(words=words, asset_ids=ids, npp=npp, page=page or 0, limit=limit)

    def most_kept(self) -> int | None:
        """How many of the best hits the answer can show at most (None: all of them)."""
        kept = self.limit
        if self.npp is not None:
            last = (self.page + 1) * self.npp
            kept = last if kept is None else min(kept, last)
        return kept


def run_search(store: AssetStore, owner: str, query: SearchQuery) -> bytes:
    """The JSON body answering ``query`` over ``owner``'s done assets (blocking: run it on a thread).

    Hits are ranked by confidence, highest first; equal confidences keep the order of a scan of the
    newest asset first, word by word (what sorting every hit with a stable sort gives).
    """
    kept = query.most_kept()
    ranked: list[tuple[float, int, int, dict[str, Any]]] = []
    if kept != 0:
        for chunk in store.search_candidates(owner, search_text(query.words), query.asset_ids, CHUNK_ASSETS):
            for seq, asset_id, text, words_json in chunk:
                for at, hit in enumerate(phrase_hits(asset_id, text, json.loads(words_json), query.words)):
                    entry = (hit["confidence"], seq, -at, hit)  # seq and at tell every hit apart
                    if kept is None:
                        ranked.append(entry)
                    elif len(ranked) < kept:
                        heapq.heappush(ranked, entry)
                    else:
                        heapq.heappushpop(ranked, entry)
    ranked.sort(key=lambda entry: entry[:3], reverse=True)
    hits = [entry[3] for entry in ranked]
    if query.limit is not None:
        hits = hits[: query.limit]
    if query.npp is not None:
        start = query.page * query.npp
        hits = hits[start : start + query.npp]
    # As Starlette's JSONResponse renders it, but here, off the event loop: a body can be megabytes.
    return json.dumps({"results": hits}, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
