"""``POST /assets/search`` away from the event loop, however many assets the caller has.

``SearchQuery.parse`` checks the body on the loop (cheap); ``run_search`` does the rest in the search
process (``StoreAccess.search``): SQLite picks the candidates (``instr`` on each done asset's normalised
words, in C, in chunks of ``CHUNK_ASSETS``), Python finds the hits in those only, keeps the best
``limit``/page of them when the request bounds it, and renders the JSON body there too. Searches take
turns in that one process, so one search over a large account delays other searches, never other
requests: a process, not a thread, because a thread would share the GIL with the event loop's thread.
"""

from __future__ import annotations

import heapq
import json
import os
import signal
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_brain.local.assets import ASSET_ID_PATTERN, normalise, phrase_hits, search_text
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.recognizer import exit_with_parent
from airflow_provider_brain.local.store import AssetStore

#: Candidate assets read from SQLite per statement (each chunk is parsed before the next is read).
CHUNK_ASSETS = 256
#: How much lower than the server the search process runs (``nice``): searches yield the CPUs to requests.
SEARCH_NICENESS = 10


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
    """The JSON body answering ``query`` over ``owner``'s done assets (blocking: the search process runs it).

    Hits are ranked by confidence, highest first; equal confidences keep the order of a scan of the
    newest asset first, word by word (what sorting every hit with a stable sort gives). A request with
    ``limit`` or ``npp`` keeps only the hits it can show, in a heap; one without keeps every hit, each
    encoded to JSON as it is found (a small string, not a dict for the garbage collector to walk), in
    runs sorted per chunk and merged at the end.
    """
    kept = query.most_kept()
    best: list[_Ranked] = []  # a heap of the ``kept`` best, when the request bounds them
    runs: list[list[_Ranked]] = []  # else every hit, one sorted run per chunk
    if kept != 0:
        for chunk in store.search_candidates(owner, search_text(query.words), query.asset_ids, CHUNK_ASSETS):
            run = [
                (hit["confidence"], seq, -at, _encode(hit))  # seq and at tell every hit apart
                for seq, asset_id, text, words_json in chunk
                for at, hit in enumerate(phrase_hits(asset_id, text, json.loads(words_json), query.words))
            ]
            if kept is None:
                run.sort(reverse=True)
                runs.append(run)
                continue
            for entry in run:
                if len(best) < kept:
                    heapq.heappush(best, entry)
                else:
                    heapq.heappushpop(best, entry)
    if kept is None:
        hits = [entry[3] for entry in heapq.merge(*runs, reverse=True)]
        while runs:
            runs.pop()
    else:
        best.sort(reverse=True)  # at most one page or ``limit``
        hits = [entry[3] for entry in best]
    if query.limit is not None:
        hits = hits[: query.limit]
    if query.npp is not None:
        start = query.page * query.npp
        hits = hits[start : start + query.npp]
    # As Starlette's JSONResponse renders {"results": hits}, but here, off the event loop.
    return ('{"results":[' + ",".join(hits) + "]}").encode()


#: A hit as ranked: confidence, the asset's seq, minus its position in the asset, and its JSON.
_Ranked = tuple[float, int, int, str]


def _encode(hit: dict[str, Any]) -> str:
    return json.dumps(hit, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# --- in the search process ---------------------------------------------------------------------------

_reader: AssetStore | None = None


def open_reader(data_dir: Path) -> None:
    """The search process's initializer: read ``data_dir``'s store; stop only when the server says so."""
    global _reader
    exit_with_parent()
    # Ctrl-C in a terminal, or a SIGTERM to the whole process group, is for the server, which ends this
    # process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Searches are the server's batch work: when the CPUs are busy, the event loop (and so every other
    # request) goes first. Safe in a process of its own: it holds no GIL or lock the server waits for
    # (a WAL reader blocks no writer).
    with suppress(OSError):
        os.nice(SEARCH_NICENESS)
    _reader = AssetStore(data_dir, reader=True)


def search_in_process(owner: str, query: SearchQuery) -> bytes:
    """``run_search`` on the store that ``open_reader`` opened."""
    assert _reader is not None, "open_reader is the search pool's initializer"
    return run_search(_reader, owner, query)
