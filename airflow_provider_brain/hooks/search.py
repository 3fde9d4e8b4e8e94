"""Phrase search (``POST /assets/search``): where a phrase was said, as typed hits, every page followed.

``SearchScan`` plans the requests and reads their answers, free of I/O; ``search`` and ``asearch`` (what
``BrainHook.search``/``asearch`` run) differ only in how they send. One phrase costs
``ceil(len(asset_ids) / IDS_PER_REQUEST)`` lists of ids times the pages of hits each needs (``PAGE_SIZE``
hits a page), never a request per asset: the contract's ``asset_ids`` list and its ``npp``/``p`` paging.

A search reads and changes nothing, so it is retried like a ``GET`` (read timeouts too), with the transport's
one policy. Nothing here logs a phrase or a matched snippet: a ``SearchHit``'s repr shows its asset, times and
confidence only. ``check_assets`` tells which of many ids are done, processing, failed or unknown (one
listing page per 1,000 of them, then a fetch per id the listing did not show).

.. code-block:: python

    hits = BrainHook("brain_default").search("cancel my order", ["05e36324fca6c919", "1cf6880b730e3b87"])
    for hit in hits:  # best confidence first
        print(hit.asset_id, hit.start, hit.end, hit.confidence)
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_brain.exceptions import BrainAPIError, BrainNotFound
from airflow_provider_brain.hooks.calls import Call
from airflow_provider_brain.hooks.listing import LIST_PAGE_SIZE, get_asset_call, list_page_call, page_results
from airflow_provider_brain.models import Asset, validate_asset_id

if TYPE_CHECKING:
    from airflow_provider_brain.hooks.transport import Transport

#: Hits asked for per page (``npp``).
PAGE_SIZE = 1000
#: Asset ids sent in one request (about 20 KB of JSON): more ids make more requests, each paged on its own.
IDS_PER_REQUEST = 1000
#: A list of ids whose hits need more pages than this is refused: a million hits is not a search result.
MAX_PAGES = 1000
#: How many listing pages (of ``LIST_PAGE_SIZE``) ``check_assets`` reads at most before fetching by id.
MAX_LIST_PAGES = 50

_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class SearchHit:
    """One place a phrase was said: which asset, from when to when (seconds from the media's start), and how
    sure the recogniser was (the mean confidence of the matched words).

    ``query`` is the phrase searched for and ``text`` the matched words as the server gives them (``None``
    if it gives none); neither is in the repr, which a log line or an exception message may print.
    """

    asset_id: str
    start: float
    end: float
    confidence: float
    query: str = field(default="", repr=False)
    text: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, item: object, query: str) -> SearchHit:
        """One item of the answer's ``results``; ``BrainAPIError`` (naming the field, never its text) if malformed."""
        if not isinstance(item, Mapping):
            raise BrainAPIError(f"Brain POST /assets/search answered a hit that is a {type(item).__name__}")
        try:
            asset_id = validate_asset_id(item.get("asset_id"))
        except ValueError:
            raise BrainAPIError("Brain POST /assets/search answered a hit without a valid asset_id") from None
        numbers = {}
        for name in ("start", "end", "confidence"):
            value = item.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BrainAPIError(
                    f"Brain POST /assets/search answered a hit of asset {asset_id} with no numeric {name!r}"
                )
            numbers[name] = float(value)
        text = item.get("text")
        return cls(asset_id=asset_id, query=query, text=text if isinstance(text, str) else None, **numbers)

    def summary(self) -> dict[str, Any]:
        """The hit for XCom or a log line: ids, times and confidence; no phrase, no snippet."""
        return {"asset_id": self.asset_id, "start": self.start, "end": self.end, "confidence": self.confidence}


def validate_query(query: object) -> str:
    """Return ``query`` if it is a phrase Brain can search for (text with at least one word character), else raise
    ``ValueError``. The message never quotes the phrase."""
    if not isinstance(query, str):
        raise ValueError(f"A Brain search phrase must be a string, not a {type(query).__name__}")
    if not _WORD.search(query):
        what = "empty" if not query.strip() else f"only punctuation ({len(query)} characters)"
        raise ValueError(f"A Brain search phrase must hold at least one word; this one is {what}")
    return query


def search_call(
    query: str, asset_ids: list[str] | None, *, page: int, page_size: int, limit: int | None = None
) -> Call:
    """One page of ``POST /assets/search`` for ``query`` over ``asset_ids`` (``None``: all the user's assets)."""
    body: dict[str, Any] = {"query": query, "npp": page_size, "p": page}
    if asset_ids is not None:
        body["asset_ids"] = asset_ids
    if limit is not None:
        body["limit"] = limit
    return Call("POST", "/assets/search", json=body, read_only=True)


class SearchScan:
    """The requests one phrase's search needs, and the hits their answers hold, free of I/O.

    Drive it with ``next_call()`` and ``feed(answer)`` until ``next_call()`` is ``None``; ``hits()`` then
    gives every hit once, best confidence first. Per list of ids it asks page after page until a page is
    short (or holds ``limit`` hits); a full page that brings nothing new (a server ignoring ``p``) raises,
    rather than asking for ever.

    :param asset_ids: the assets to search (validated, duplicates dropped); ``None`` for all the user's.
    :param limit: the most hits wanted in all (the best ones); ``None`` for every hit.
    """

    def __init__(
        self,
        query: str,
        asset_ids: Iterable[str] | None,
        *,
        limit: int | None = None,
        page_size: int = PAGE_SIZE,
        ids_per_request: int = IDS_PER_REQUEST,
    ) -> None:
        self.query = validate_query(query)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a whole number of at least 0, not {limit!r}")
        if page_size < 1 or ids_per_request < 1:
            raise ValueError("page_size and ids_per_request must be at least 1")
        self.limit = limit
        self.page_size = page_size if limit is None else max(1, min(page_size, limit))
        if asset_ids is None:
            self.chunks: list[list[str] | None] = [None]
        else:
            if isinstance(asset_ids, str):
                asset_ids = [asset_ids]
            ids = list(dict.fromkeys(validate_asset_id(a) for a in asset_ids))
            self.chunks = [ids[i : i + ids_per_request] for i in range(0, len(ids), ids_per_request)]
        self.requests = 0
        self._hits: dict[tuple[str, float, float], SearchHit] = {}
        self._chunk = 0
        self._page = 0
        self._chunk_hits = 0
        if limit == 0:
            self._chunk = len(self.chunks)

    def next_call(self) -> Call | None:
        """The next request to send, or ``None`` once every list of ids is read to its last page."""
        if self._chunk >= len(self.chunks):
            return None
        return search_call(
            self.query, self.chunks[self._chunk], page=self._page, page_size=self.page_size, limit=self.limit
        )

    def feed(self, answer: Any) -> None:
        """Read the answer to the call ``next_call()`` gave last."""
        results = answer.get("results") if isinstance(answer, Mapping) else None
        if not isinstance(results, list):
            raise BrainAPIError("Brain POST /assets/search answered without a 'results' list")
        self.requests += 1
        asked = self.chunks[self._chunk]
        allowed = None if asked is None else set(asked)
        new = 0
        for item in results:
            hit = SearchHit.from_json(item, self.query)
            if allowed is not None and hit.asset_id not in allowed:
                raise BrainAPIError(f"Brain POST /assets/search answered a hit of asset {hit.asset_id}, not searched")
            key = (hit.asset_id, hit.start, hit.end)
            if key not in self._hits:
                self._hits[key] = hit
                new += 1
        self._chunk_hits += new
        full = len(results) == self.page_size
        if full and not new:
            raise BrainAPIError(
                f"Brain POST /assets/search page {self._page} repeated hits already read: the paging (p) does not "
                "advance; is a proxy or the server ignoring it?"
            )
        done = not full or (self.limit is not None and self._chunk_hits >= self.limit)
        if not done and self._page + 1 >= MAX_PAGES:
            raise BrainAPIError(
                f"Brain search found more than {MAX_PAGES * self.page_size} hits in one list of assets: "
                "pass a limit, or a longer phrase"
            )
        if done:
            self._chunk, self._page, self._chunk_hits = self._chunk + 1, 0, 0
        else:
            self._page += 1

    def hits(self) -> list[SearchHit]:
        """Every hit read, once each, best confidence first (then by asset and time); at most ``limit``."""
        ordered = sorted(self._hits.values(), key=lambda h: (-h.confidence, h.asset_id, h.start, h.end))
        return ordered if self.limit is None else ordered[: self.limit]


def search(
    transport: Transport,
    query: str,
    asset_ids: Iterable[str] | None,
    *,
    limit: int | None = None,
    page_size: int = PAGE_SIZE,
    ids_per_request: int = IDS_PER_REQUEST,
) -> list[SearchHit]:
    """Where ``query`` was said in ``asset_ids`` (``None``: in all the user's assets), best confidence first.

    Every page of every list of ids is read; ids are checked before anything is sent. An id Brain does not
    know (or another user's) just has no hits: the contract ignores it (``check_assets`` tells them apart).
    """
    scan = SearchScan(query, asset_ids, limit=limit, page_size=page_size, ids_per_request=ids_per_request)
    while (call := scan.next_call()) is not None:
        scan.feed(transport.request(call))
    return scan.hits()


async def asearch(
    transport: Transport,
    query: str,
    asset_ids: Iterable[str] | None,
    *,
    limit: int | None = None,
    page_size: int = PAGE_SIZE,
    ids_per_request: int = IDS_PER_REQUEST,
) -> list[SearchHit]:
    """Async ``search`` (httpx, for triggers and other event loops)."""
    scan = SearchScan(query, asset_ids, limit=limit, page_size=page_size, ids_per_request=ids_per_request)
    while (call := scan.next_call()) is not None:
        scan.feed(await transport.arequest(call))
    return scan.hits()


def check_assets(transport: Transport, asset_ids: Iterable[str]) -> dict[str, Asset | None]:
    """Each id's asset as the listing summarises it (status, created, metadata; no transcript), ``None`` for an id
    Brain does not know (never created, deleted, or another user's).

    Reads listing pages (every status, newest first) while more ids are missing than pages were read, at most
    ``MAX_LIST_PAGES``; the ids it did not reach are fetched one by one.
    """
    wanted = list(dict.fromkeys(validate_asset_id(a) for a in asset_ids))
    found: dict[str, Asset | None] = {}
    offset: int | None = 0
    pages = 0
    # One id costs one fetch; more are looked for in the listing first.
    while len(wanted) > 1 and offset is not None and pages < MAX_LIST_PAGES and len(wanted) - len(found) > pages:
        results, next_offset = page_results(transport.request(list_page_call(offset, LIST_PAGE_SIZE)), offset)
        pages += 1
        watched = set(wanted)
        for item in results:
            if isinstance(item, Mapping) and item.get("asset_id") in watched:
                found[str(item["asset_id"])] = Asset.from_json(item)
        offset = next_offset
    for asset_id in wanted:
        if asset_id not in found:
            try:
                found[asset_id] = Asset.from_json(transport.request(get_asset_call(asset_id)))
            except BrainNotFound:
                found[asset_id] = None
    return {asset_id: found[asset_id] for asset_id in wanted}


def normalize_phrases(value: Any) -> list[str]:
    """The phrases a DAG passes, as a list without duplicates, each checked (``validate_query``).

    Accepted: one phrase; a list (or any iterable, an XCom's included) of phrases; or the string form of a list,
    which is what a Jinja template such as ``"{{ params.phrases }}"`` renders when the DAG does not render native
    objects. Raises ``ValueError`` for none at all, and for an empty phrase (naming its position, never its text).
    """
    if isinstance(value, str) and value.strip()[:1] == "[":
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError("Could not read the search phrases from the rendered list") from None
    items: Iterable[Any] = [value] if isinstance(value, str) or value is None else value
    if isinstance(value, Mapping):
        raise ValueError("Search phrases must be a phrase or a list of phrases, not a mapping")
    phrases: list[str] = []
    for position, phrase in enumerate(items):
        try:
            phrases.append(validate_query(phrase))
        except ValueError as err:
            raise ValueError(f"Search phrase {position + 1}: {err}") from None
    if not phrases:
        raise ValueError("BrainSearchOperator needs at least one search phrase")
    return list(dict.fromkeys(phrases))
