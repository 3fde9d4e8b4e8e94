"""``BrainSearchOperator``: where phrases were said in the audio a transcribe or batch task turned into assets.

It returns (pushes to XCom) a small summary, hits per phrase and per asset, never a transcript or a matched
snippet; ``BrainToSqlOperator(phrases=...)`` loads the hits themselves into a warehouse table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.search import SearchHit, check_assets, normalize_phrases
from airflow_provider_brain.transfers.common import normalize_asset_ids

if TYPE_CHECKING:
    from airflow.sdk import Context

#: How many ids an error message names (the rest are counted).
IDS_SHOWN = 10


def summarize(
    hits_by_phrase: Mapping[str, Sequence[SearchHit]], searched: int, min_confidence: float
) -> dict[str, Any]:
    """What the task returns: hit counts per phrase, and per asset and phrase (assets with hits only)."""
    assets: dict[str, dict[str, int]] = {}
    for phrase, hits in hits_by_phrase.items():
        for hit in hits:
            counts = assets.setdefault(hit.asset_id, {})
            counts[phrase] = counts.get(phrase, 0) + 1
    return {
        "hits": sum(len(hits) for hits in hits_by_phrase.values()),
        "phrases": {phrase: len(hits) for phrase, hits in hits_by_phrase.items()},
        "assets": assets,
        "searched_assets": searched,
        "min_confidence": min_confidence,
    }


class BrainSearchOperator(BaseOperator):
    """Search Brain assets for phrases: which files mention "refund", and how often.

    Every asset is checked first (one listing page per 1,000 ids): an id Brain does not know (never created,
    deleted, or another user's) fails the task at once, naming it; one still processing or failed fails it
    too (retries may wait for it). Then each phrase costs one request per 1,000 assets and page of 1,000 hits
    (``BrainHook.search``), not one per asset. Hits below ``min_confidence`` are left out.

    .. code-block:: python

        transcribe = BrainTranscribeBatchOperator(task_id="transcribe", s3_uris=[...])
        BrainSearchOperator(task_id="search", asset_ids=transcribe.output, phrases=["refund", "cancel my order"])

    The return value (XCom) is a summary, never a transcript or a snippet::

        {"hits": 3, "phrases": {"refund": 2, "cancel my order": 1}, "searched_assets": 40, "min_confidence": 0.0,
         "assets": {"05e36324fca6c919": {"refund": 2}, "1cf6880b730e3b87": {"cancel my order": 1}}}

    The log gives ids and counts only; a phrase is named by its position in the list.

    :param phrases: one phrase or a list; templated (``"{{ params.phrases }}"``), or an upstream task's XCom.
        Matched as the API matches: the words in order, case and punctuation ignored.
    :param asset_ids: the assets to search: what a transcribe task returned (one summary, or a mapped task's
        list), a batch task's list of summaries (failed files are left out), or ids. Templated.
    :param min_confidence: leave out hits whose confidence (the matched words' mean) is below this, in [0, 1].
    :param brain_conn_id: the Brain connection.
    """

    template_fields: Sequence[str] = ("phrases", "asset_ids")
    ui_color = "#e8f0d7"

    def __init__(
        self,
        *,
        phrases: Any,
        asset_ids: Any,
        min_confidence: float = 0.0,
        brain_conn_id: str = BrainHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)):
            raise ValueError(f"min_confidence must be a number in [0, 1], not {min_confidence!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], not {min_confidence}")
        self.phrases = phrases
        self.asset_ids = asset_ids
        self.min_confidence = float(min_confidence)
        self.brain_conn_id = brain_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        phrases = normalize_phrases(self.phrases)
        ids = normalize_asset_ids(self.asset_ids)
        hook = BrainHook(brain_conn_id=self.brain_conn_id)
        if ids:
            self._check(hook, ids)
        hits_by_phrase: dict[str, list[SearchHit]] = {}
        for position, phrase in enumerate(phrases, start=1):
            found = hook.search(phrase, ids) if ids else []
            hits_by_phrase[phrase] = [h for h in found if h.confidence >= self.min_confidence]
            self.log.info(
                "Phrase %d of %d (%d characters): %d hit(s) in %d asset(s), %d below min_confidence",
                position,
                len(phrases),
                len(phrase),
                len(hits_by_phrase[phrase]),
                len({h.asset_id for h in hits_by_phrase[phrase]}),
                len(found) - len(hits_by_phrase[phrase]),
            )
        summary = summarize(hits_by_phrase, len(ids), self.min_confidence)
        self.log.info(
            "Searched %d Brain asset(s) for %d phrase(s): %d hit(s) in %d asset(s)",
            len(ids),
            len(phrases),
            summary["hits"],
            len(summary["assets"]),
        )
        return summary

    def _check(self, hook: BrainHook, ids: list[str]) -> None:
        """Fail on ids Brain does not know (no retry helps) and on assets that are not done (a retry may)."""
        known = check_assets(hook.transport, ids)
        unknown = [asset_id for asset_id, asset in known.items() if asset is None]
        if unknown:
            raise AirflowFailException(
                f"{len(unknown)} of {len(ids)} asset(s) to search are unknown to Brain (never created, deleted, or "
                f"another user's): {_listed(unknown)}"
            )
        not_done = {i: a.status.value for i, a in known.items() if a is not None and not a.is_done}
        if not_done:
            raise BrainError(
                f"{len(not_done)} of {len(ids)} asset(s) to search are not done: "
                f"{_listed([f'{i} ({status})' for i, status in not_done.items()])}. Search them once transcribed"
            )


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:IDS_SHOWN])
    return shown + (f" and {len(items) - IDS_SHOWN} more" if len(items) > IDS_SHOWN else "")
