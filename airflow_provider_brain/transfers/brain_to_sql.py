"""Load Brain transcripts into any SQL database Airflow has a common-sql connection for.

``BrainToSqlOperator`` fetches the assets and hands them to ``TranscriptLoader`` (``sql_loader``), which
writes the tables defined in ``sql_tables`` by the bulk path ``sql_writers`` picks for the driver. The
loader's names are importable from here too, as they were before the split.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.assets import Asset, AssetAlias
from airflow.providers.common.compat.sdk import AirflowException, BaseHook, BaseOperator

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.search import normalize_phrases
from airflow_provider_brain.models import Asset as BrainAsset
from airflow_provider_brain.transfers.common import replacement_source
from airflow_provider_brain.transfers.deepgram_results import fetch_transfer_assets
from airflow_provider_brain.transfers.lineage import (
    TableLocation,
    emit_asset_events,
    partial_with_alias,
    source_datasets,
    table_location,
    with_alias,
)
from airflow_provider_brain.transfers.sql_hits import search_hits
from airflow_provider_brain.transfers.sql_loader import DELETE_CHUNK, LoadResult, TranscriptLoader
from airflow_provider_brain.transfers.sql_tables import (
    DIALECT_TYPES,
    TRANSCRIPT_COLUMNS,
    TRANSCRIPT_HITS,
    TRANSCRIPT_WORDS,
    TRANSCRIPTS,
    WORD_COLUMNS,
    ColumnTypes,
    TableSchema,
    validate_table_name,
)
from airflow_provider_brain.transfers.sql_writers import RowWriter

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import Context

__all__ = [
    "DELETE_CHUNK",
    "DIALECT_TYPES",
    "TRANSCRIPT_COLUMNS",
    "WORD_COLUMNS",
    "BrainToSqlOperator",
    "ColumnTypes",
    "LoadResult",
    "RowWriter",
    "TranscriptLoader",
    "get_db_hook",
    "validate_table_name",
]


def get_db_hook(conn_id: str, hook_params: dict[str, Any] | None = None) -> DbApiHook:
    """The common-sql ``DbApiHook`` of connection ``conn_id``, or a ``ValueError`` saying why there is none."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    connection = BaseHook.get_connection(conn_id)
    try:
        hook = connection.get_hook(hook_params=hook_params)
    except (AirflowException, ImportError) as err:
        raise ValueError(
            f"Connection {conn_id!r} has type {connection.conn_type!r}, for which no usable hook is installed "
            f"({err}); BrainToSqlOperator needs a SQL database connection whose provider is installed"
        ) from err
    if not isinstance(hook, DbApiHook):
        raise ValueError(
            f"Connection {conn_id!r} (type {connection.conn_type!r}) gives a {type(hook).__name__}, which is not a "
            "common-sql DbApiHook: BrainToSqlOperator needs a SQL database connection "
            "(postgres, sqlite, duckdb, snowflake, redshift, bigquery, mysql, ...)"
        )
    return hook


#: The ``AssetAlias`` a load declares unless told otherwise (``{conn_id}``: the warehouse connection).
DEFAULT_ASSET_ALIAS = "brain_to_sql:{conn_id}"


#: Connection types whose database takes session-level advisory locks (``pg_try_advisory_lock``).
ADVISORY_LOCK_TYPES = frozenset({"postgres", "postgresql"})

#: How long a load waits for other loads of the same table to have their success recorded, before it reports
#: its own anyway (with a warning): the wait is a report's round trip per load ahead of it, not a load.
EVENT_LOCK_TIMEOUT = 120.0


def event_lock_key(asset_uri: str) -> int:
    """The advisory lock (a signed 64-bit key) that serializes the reports of loads emitting ``asset_uri``."""
    return int.from_bytes(hashlib.sha256(f"brain_to_sql:{asset_uri}".encode()).digest()[:8], "big", signed=True)


def _sql_alias(asset_alias: str | None, conn_id: Any) -> str | None:
    """The alias a load through ``conn_id`` declares; ``None`` if there is none or the connection is not known
    (not a string: a mapped argument)."""
    if not asset_alias or "{conn_id}" not in asset_alias:
        return asset_alias or None
    return asset_alias.replace("{conn_id}", conn_id) if isinstance(conn_id, str) else None


class BrainToSqlOperator(BaseOperator):
    """Load Brain transcripts into two tables of any SQL database with a common-sql connection.

    ``transcripts`` gets one row per asset (asset_id, source, duration, transcript, mean_confidence,
    word_count, created_at, completed_at, loaded_at, dag_id, task_id, run_id; times in UTC; the last three say
    which task submitted the asset, from its metadata) and ``transcript_words`` one row per
    word (asset_id, word_index, word, start_s, end_s, confidence). Both are created if missing (and older
    tables get the newer columns). Loading
    an asset again replaces its rows in one transaction, so reruns and retries never duplicate rows, and
    a load that fails half-way leaves the previous rows intact; with ``replace_by_source`` (the default)
    a new asset of the same audio (a rerun that transcribed the file again) also replaces the old one's
    rows. On PostgreSQL the rows go in by ``COPY``, on DuckDB by ``INSERT ... SELECT UNNEST``, elsewhere
    by ``executemany``, in batches of ``batch_size``. The assets are fetched (and checked) before the
    database is touched, so very large batches are best split with ``.partial().expand()``.

    .. code-block:: python

        transcribe = BrainTranscribeOperator.partial(task_id="transcribe").expand(s3_uri=audio_files)
        BrainToSqlOperator(task_id="load", asset_ids=transcribe.output, conn_id="warehouse")

    **Assets.** Each load that writes rows emits an Airflow asset event for each table, named by its URI:
    ``postgres://host:5432/database/schema/table`` on PostgreSQL (the postgres provider's form, schema
    ``public`` unless the table names one), ``file:///path/to/warehouse.db/table`` on SQLite and DuckDB,
    ``{conn_type}://host[:port]/database/[schema/]table`` elsewhere (see ``transfers.lineage``). The URI depends
    on the connection, which a DAG file should not read when it is parsed, so the operator declares an
    ``AssetAlias`` (``asset_alias``, default ``brain_to_sql:{conn_id}``) and resolves the tables' assets
    through it when it runs, as Airflow's docs advise for outlets known only at run time. The events carry
    counts in ``extra`` (``assets``, ``transcript_rows``, ``word_rows``, ``skipped``), never text. A
    downstream DAG schedules on the table::

        with DAG("report", schedule=[Asset("postgres://db.example.com:5432/analytics/public/transcripts")]): ...
        # or schedule=[brain_table_asset("warehouse", "transcripts")], which reads the connection when parsed,
        # or schedule=[AssetAlias("brain_to_sql:warehouse")]: after every load through that connection.

    ``outlets=[Asset(...)]`` declared on the task get the same ``extra`` on their events (and no second
    event through the alias). On PostgreSQL a load holds an advisory lock per table from the end of its load
    until its success is recorded, so that loads writing a new table together do not race in Airflow's
    api-server, which creates the table's asset on the first event (see ``_hold_event_lock``).
    Lineage: OpenLineage sees the source audio (``s3://bucket`` / key, or the
    URL) as inputs and both tables, with their columns, as outputs.

    :param asset_ids: one asset id or a list; items may also be the transcribe operator's summaries
        (mappings with ``asset_id``) or ``DeepgramTranscribeOperator``'s references (read from their object store).
        Templated, and mappable with ``.partial().expand(asset_ids=...)``.
    :param conn_id: any connection whose hook is a common-sql ``DbApiHook`` (postgres, sqlite, duckdb,
        snowflake, ...). A DuckDB file admits one writing process at a time: give mapped loads into one
        ``max_active_tis_per_dag=1`` (or a one-slot pool).
    :param table: the transcripts table (optionally ``schema.table``).
    :param words_table: the words table; ``None`` to load transcripts only (and not fetch word timings).
    :param brain_conn_id: the Brain connection.
    :param skip_unfinished: skip assets that are not done, with a warning, instead of failing on them.
    :param create_tables: create the tables if missing (``CREATE TABLE IF NOT EXISTS``).
    :param batch_size: rows per ``executemany`` (or ``UNNEST``) call on databases without ``COPY``.
    :param replace_by_source: an asset replaces the rows of older assets of the same source (the same
        S3 object, URL or file), so rerunning a DAG over the same audio keeps one row per file.
    :param hook_params: extra keyword arguments for the database hook.
    :param asset_alias: the ``AssetAlias`` this task declares as an outlet (``brain_to_sql:{conn_id}`` by
        default), through which each load emits an asset event for each table; ``None`` for no alias.
    :param phrases: phrases to search the assets for (one, or a list; templated or from XCom, as
        ``BrainSearchOperator`` takes them). Their hits go to ``hits_table`` (asset_id, hit_index, source, phrase,
        start_s, end_s, confidence, loaded_at), replacing all of the loaded assets' earlier hits, in the same
        transaction; that table gets an asset event too. ``None`` (the default): no search, no hits table.
    :param hits_table: the hits table (optionally ``schema.table``).
    :param min_confidence: hits below this confidence (the matched words' mean, in [0, 1]) are not loaded.
    :return: a summary: ``{"assets": ..., "transcript_rows": ..., "word_rows": ..., "skipped": [...], ...}``.
    """

    template_fields: Sequence[str] = ("asset_ids", "table", "words_table", "phrases", "hits_table")
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        asset_ids: Any,
        conn_id: str,
        table: str = "transcripts",
        words_table: str | None = "transcript_words",
        brain_conn_id: str = BrainHook.default_conn_name,
        skip_unfinished: bool = False,
        create_tables: bool = True,
        batch_size: int = 10_000,
        replace_by_source: bool = True,
        hook_params: dict[str, Any] | None = None,
        asset_alias: str | None = DEFAULT_ASSET_ALIAS,
        phrases: Any = None,
        hits_table: str = "transcript_hits",
        min_confidence: float = 0.0,
        **kwargs: Any,
    ) -> None:
        asset_alias = _sql_alias(asset_alias, conn_id)
        kwargs["outlets"] = with_alias(kwargs.get("outlets"), asset_alias)
        super().__init__(**kwargs)
        self.asset_alias = asset_alias
        self.replace_by_source = replace_by_source
        self.asset_ids = asset_ids
        self.conn_id = conn_id
        self.table = table
        self.words_table = words_table
        self.brain_conn_id = brain_conn_id
        self.skip_unfinished = skip_unfinished
        self.create_tables = create_tables
        self.batch_size = batch_size
        self.hook_params = hook_params
        self.phrases = phrases
        self.hits_table = hits_table
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)):
            raise ValueError(f"min_confidence must be a number in [0, 1], not {min_confidence!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], not {min_confidence}")
        self.min_confidence = float(min_confidence)
        # What the last run wrote, for the OpenLineage listener (which asks the same operator object on complete).
        self._lineage_tables: list[tuple[TableLocation, TableSchema, ColumnTypes]] = []
        self._lineage_sources: list[str | None] = []
        # The warehouse session holding this load's asset-event locks until its success is recorded.
        self._event_lock_connection: Any = None

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``BaseOperator.partial``, with the load's ``AssetAlias`` among the mapped task's outlets at parse time."""
        alias = _sql_alias(kwargs.get("asset_alias", DEFAULT_ASSET_ALIAS), kwargs.get("conn_id"))
        return partial_with_alias(cls, kwargs, alias)

    def execute(self, context: Context) -> dict[str, Any]:
        phrases = None if self.phrases is None else normalize_phrases(self.phrases)
        db_hook = get_db_hook(self.conn_id, self.hook_params)
        loader = TranscriptLoader(
            db_hook,
            table=self.table,
            words_table=self.words_table,
            batch_size=self.batch_size,
            replace_by_source=self.replace_by_source,
            hits_table=self.hits_table if phrases is not None else None,
        )
        # Fetch (and check) everything before touching the database: an unfinished asset fails the task
        # without a write, and the transaction stays short.
        brain = BrainHook(brain_conn_id=self.brain_conn_id)
        fetched = fetch_transfer_assets(
            self.asset_ids,
            brain_conn_id=self.brain_conn_id,
            times=bool(self.words_table),
            skip_unfinished=self.skip_unfinished,
            log=self.log,
        )
        hits = None
        if phrases is not None:
            if any("deepgram_request_id" in asset.metadata for asset in fetched.done):
                raise ValueError("phrases searches Brain's index: Deepgram results cannot be searched for hits")
            hits = search_hits(brain, phrases, fetched.done, min_confidence=self.min_confidence)
        if self.create_tables:
            loader.create_tables()
        result = loader.load(fetched.done, hits=hits)
        through_alias = self._record_writes(context, loader, fetched.done, result, skipped=len(fetched.skipped))
        self._hold_event_lock(db_hook, through_alias)
        summary = {
            "table": loader.table,
            "words_table": loader.words_table,
            "assets": result.assets,
            "transcript_rows": result.transcript_rows,
            "word_rows": result.word_rows,
            "skipped": sorted(fetched.skipped),
            "method": result.method,
        }
        if loader.hits_table:
            summary.update(hits_table=loader.hits_table, hit_rows=result.hit_rows)
        return summary

    def _record_writes(
        self, context: Context, loader: TranscriptLoader, assets: list[BrainAsset], result: LoadResult, skipped: int
    ) -> list[str]:
        """Asset events for the tables written (with counts) and what OpenLineage will be told on complete.

        Returns the URIs of the assets whose events go through the task's ``AssetAlias``."""
        connection = BaseHook.get_connection(self.conn_id)
        database = (self.hook_params or {}).get("database")
        tables = [(loader.table, TRANSCRIPTS)]
        if loader.words_table:
            tables.append((loader.words_table, TRANSCRIPT_WORDS))
        if loader.hits_table:
            tables.append((loader.hits_table, TRANSCRIPT_HITS))
        located = [(table_location(connection, table, database=database), schema) for table, schema in tables]
        self._lineage_tables = [(where, schema, loader.types) for where, schema in located if where]
        self._lineage_sources = [replacement_source(asset) for asset in assets]
        if not result.assets:
            return []
        extra = {
            "assets": result.assets,
            "transcript_rows": result.transcript_rows,
            "word_rows": result.word_rows,
            "skipped": skipped,
        }
        if loader.hits_table:
            extra["hit_rows"] = result.hit_rows
        written = [where.asset() for where, _, _ in self._lineage_tables]
        emit_asset_events(context, self.outlets, written, extra)
        if context.get("outlet_events") is None or not any(isinstance(o, AssetAlias) for o in self.outlets):
            return []
        declared = {outlet.uri for outlet in self.outlets if isinstance(outlet, Asset)}
        return [asset.uri for asset in written if asset.uri not in declared]

    def _hold_event_lock(self, db_hook: DbApiHook, asset_uris: Sequence[str]) -> None:
        """Hold the warehouse's advisory lock of each table whose event goes through the alias until this task's
        success is recorded: the reports of loads of one table then reach Airflow one at a time.

        Airflow (3.1 to 3.3.2 at least) creates a table's asset, and links it to the alias, inside the request that
        marks the first task reporting an event for it successful. Two such requests at once both insert the same
        row; the second fails on the unique index, and the api-server marks its task ``failed``, whatever its
        retries. The task runner reports success after ``execute`` returns and runs the success callbacks only once
        the api-server has answered, so the lock taken here, released by a success callback (or when the task's
        process ends and its connection with it), spans the report: the next load's report finds the asset and
        its link in place. Only PostgreSQL warehouses have such a lock; a load elsewhere reports unlocked.
        """
        if not asset_uris or (getattr(db_hook, "conn_type", None) or "").lower() not in ADVISORY_LOCK_TYPES:
            return
        connection = db_hook.get_conn()
        connection.autocommit = True
        if not self._take_advisory_locks(connection, sorted({event_lock_key(uri) for uri in asset_uris})):
            self.log.warning(
                "Other loads of %s held its asset-event lock for %.0f s: reporting without it",
                ", ".join(asset_uris),
                EVENT_LOCK_TIMEOUT,
            )
            connection.close()
            return
        self._event_lock_connection = connection
        callbacks = list(self.on_success_callback or [])
        if self._release_event_lock not in callbacks:
            self.on_success_callback = [*callbacks, self._release_event_lock]

    @staticmethod
    def _take_advisory_locks(connection: Any, keys: Sequence[int]) -> bool:
        """Take each lock, in this order (the same for every load: no deadlock); ``False`` past the timeout."""
        deadline = time.time() + EVENT_LOCK_TIMEOUT
        cursor = connection.cursor()
        try:
            for key in keys:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                while not cursor.fetchone()[0]:
                    if time.time() >= deadline:
                        return False
                    time.sleep(0.05)
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            return True
        finally:
            cursor.close()

    def _release_event_lock(self, context: Any = None) -> None:
        """A success callback: the task's success (and its asset events) is recorded; let the next load report."""
        connection, self._event_lock_connection = self._event_lock_connection, None
        if connection is not None and not connection.closed:
            connection.close()  # ends the session: its advisory locks go with it

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source audio in, both tables (with their columns) out."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(
            inputs=source_datasets(self._lineage_sources),
            outputs=[where.dataset(schema, types) for where, schema, types in self._lineage_tables],
        )
