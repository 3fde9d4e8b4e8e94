"""BrainToSqlOperator against real databases: PostgreSQL (server started by the suite), SQLite and DuckDB files."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.models import parse_api_time
from airflow_provider_brain.transfers import brain_to_sql, sql_loader
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator, TranscriptLoader, get_db_hook
from airflow_provider_brain.transfers.common import BrainAssetsNotDone
from airflow_provider_brain.transfers.sql_tables import ADDED_TRANSCRIPT_COLUMNS
from tests.fixtures.faults import Fault

#: "postgres" goes through psycopg 3 (what PostgresHook picks when it is installed), "postgres-psycopg2" through
#: psycopg2 (``copy_expert`` of a streamed text COPY).
BACKENDS = ["postgres", "postgres-psycopg2", "sqlite", "duckdb"]


@dataclass
class Warehouse:
    backend: str
    conn_id: str

    def records(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in get_db_hook(self.conn_id).get_records(sql)]

    def transcripts(self, table: str = "transcripts", *, added: bool = True) -> dict[str, dict[str, Any]]:
        """The rows of ``table``; ``added=False`` for a table without the later-added columns (a DBA's)."""
        columns = [c for c in brain_to_sql.TRANSCRIPT_COLUMNS if added or c not in ADDED_TRANSCRIPT_COLUMNS]
        rows = self.records(f"SELECT {', '.join(columns)} FROM {table} ORDER BY asset_id")
        return {row[0]: dict(zip(columns, row)) for row in rows}

    def words(self, asset_id: str, table: str = "transcript_words") -> list[tuple[Any, ...]]:
        return self.records(
            f"SELECT word_index, word, start_s, end_s, confidence FROM {table} "
            f"WHERE asset_id = '{asset_id}' ORDER BY word_index"
        )

    def count(self, table: str) -> int:
        return int(self.records(f"SELECT COUNT(*) FROM {table}")[0][0])


@pytest.fixture(params=BACKENDS)
def warehouse(request, tmp_path, monkeypatch) -> Warehouse:
    """An empty database of each kind, reachable as connection ``warehouse``."""
    if request.param.startswith("postgres"):
        import psycopg

        server = request.getfixturevalue("postgres_server")
        dbname = f"w_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {dbname}")
        conn = json.loads(server.connection_json()) | {"schema": dbname}
        if request.param == "postgres-psycopg2":
            from airflow.providers.postgres.hooks import postgres

            monkeypatch.setattr(postgres, "USE_PSYCOPG3", False)
            monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(conn))
            assert type(get_db_hook("warehouse").get_conn()).__module__.startswith("psycopg2")
    elif request.param == "sqlite":
        conn = {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
    else:
        import airflow.providers.duckdb  # noqa: F401 - a dev dependency: fail, never skip, when it is missing

        conn = {"conn_type": "duckdb", "host": str(tmp_path / "warehouse.duckdb")}
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(conn))
    return Warehouse(request.param, "warehouse")


def run(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("task_id", f"load_{uuid.uuid4().hex[:6]}")
    kwargs.setdefault("conn_id", "warehouse")
    return BrainToSqlOperator(**kwargs).execute(context={})


def assert_matches(warehouse: Warehouse, asset, row: dict[str, Any]) -> None:
    """The rows of one asset say exactly what the server says about it."""
    assert row["source"] == asset.metadata.get("source")
    assert row["transcript"] == asset.transcript
    assert row["word_count"] == asset.word_count == len(asset.transcript.split())
    assert row["duration"] == pytest.approx(asset.duration)
    assert row["mean_confidence"] == pytest.approx(asset.mean_confidence)
    assert row["loaded_at"] is not None and row["created_at"] is not None and row["completed_at"] is not None
    words = warehouse.words(asset.asset_id)
    assert [w[0] for w in words] == list(range(len(asset.words)))
    assert [w[1] for w in words] == [w.word for w in asset.words] == asset.transcript.split()
    assert [w[2] for w in words] == pytest.approx([w.start for w in asset.words])
    assert [w[3] for w in words] == pytest.approx([w.end for w in asset.words])
    assert [w[4] for w in words] == pytest.approx([w.confidence for w in asset.words])


def test_load_creates_tables_and_writes_every_asset_and_word(warehouse, brain_assets, brain_conn):
    summary = run(asset_ids=brain_assets.done_ids)

    total_words = sum(asset.word_count for asset in brain_assets.done)
    assert summary == {
        "table": "transcripts",
        "words_table": "transcript_words",
        "assets": 2,
        "transcript_rows": 2,
        "word_rows": total_words,
        "skipped": [],
        "method": {"postgres": "copy", "postgres-psycopg2": "copy", "duckdb": "unnest", "sqlite": "executemany"}[
            warehouse.backend
        ],
    }
    rows = warehouse.transcripts()
    assert sorted(rows) == sorted(brain_assets.done_ids)
    for asset in brain_assets.done:
        assert_matches(warehouse, asset, rows[asset.asset_id])
    assert warehouse.count("transcript_words") == total_words


def test_accepts_the_transcribe_operators_summaries_and_duplicates(warehouse, brain_assets, brain_conn):
    summaries = [{"asset_id": a.asset_id, "status": "done", "duration": a.duration} for a in brain_assets.done]

    summary = run(asset_ids=summaries + summaries[:1])

    assert summary["assets"] == 2
    assert warehouse.count("transcripts") == 2


def test_reload_replaces_rows_without_duplicates(warehouse, brain_assets, brain_conn, speech):
    hook = BrainHook()
    edited = hook.submit_file(speech.file(2), metadata={"source": "s3://audio/edited.wav"})
    ids = [edited.asset_id, *brain_assets.done_ids]
    run(asset_ids=ids)
    first = warehouse.transcripts()
    words_before = warehouse.count("transcript_words")

    hook.update_asset(edited.asset_id, transcript="call me back", metadata={"source": "s3://audio/corrected.wav"})
    run(asset_ids=ids)

    rows = warehouse.transcripts()
    assert sorted(rows) == sorted(ids)
    assert warehouse.count("transcripts") == 3
    current = hook.get_asset(edited.asset_id, times=True)
    assert rows[edited.asset_id]["transcript"] == "call me back"
    assert rows[edited.asset_id]["source"] == "s3://audio/corrected.wav"
    assert rows[edited.asset_id]["word_count"] == 3
    assert [w[1] for w in warehouse.words(edited.asset_id)] == [w.word for w in current.words]
    for asset_id in brain_assets.done_ids:  # untouched assets: same content, newer loaded_at
        assert {k: v for k, v in rows[asset_id].items() if k != "loaded_at"} == {
            k: v for k, v in first[asset_id].items() if k != "loaded_at"
        }
        assert str(rows[asset_id]["loaded_at"]) > str(first[asset_id]["loaded_at"])
    unchanged_words = sum(a.word_count for a in brain_assets.done)
    assert warehouse.count("transcript_words") == unchanged_words + len(current.words)
    assert words_before == unchanged_words + edited.word_count


@pytest.mark.parametrize("replace_by_source", [True, False])
def test_a_new_asset_of_the_same_source_replaces_the_old_one(
    warehouse, brain_assets, brain_conn, speech, replace_by_source
):
    """A rerun of the DAG transcribes the same file into a new asset: by default it takes the old one's place."""
    hook = BrainHook()
    source = {"source": f"s3://audio/rerun-{uuid.uuid4().hex[:8]}.wav"}
    first = hook.submit_file(speech.file(4), metadata=source)
    run(asset_ids=[first.asset_id, *brain_assets.done_ids], replace_by_source=replace_by_source)
    second = hook.submit_file(speech.file(4), metadata=source)

    run(asset_ids=[second.asset_id], replace_by_source=replace_by_source)

    rows = warehouse.transcripts()
    of_source = sorted(asset_id for asset_id, row in rows.items() if row["source"] == source["source"])
    expected = [second.asset_id] if replace_by_source else sorted([first.asset_id, second.asset_id])
    assert of_source == expected
    assert set(brain_assets.done_ids) <= set(rows)  # other sources untouched
    assert (warehouse.words(first.asset_id) == []) is replace_by_source
    assert len(warehouse.words(second.asset_id)) == second.word_count


def test_two_assets_of_one_file_in_a_batch_load_as_one_row(warehouse, brain_conn, speech):
    """A cleared task's old asset and the new one in one batch: only the newest stands for the file."""
    hook = BrainHook()
    source = {"source": f"s3://audio/twice-{uuid.uuid4().hex[:8]}.wav"}
    older = hook.submit_file(speech.file(2), metadata=source)
    newer = hook.submit_file(speech.file(2), metadata=source)
    assert parse_api_time(newer.created) > parse_api_time(older.created)  # millisecond stamps: strictly newer

    run(asset_ids=[newer.asset_id, older.asset_id])

    rows = warehouse.transcripts()
    assert [asset_id for asset_id, row in rows.items() if row["source"] == source["source"]] == [newer.asset_id]
    assert warehouse.words(older.asset_id) == []
    assert len(warehouse.words(newer.asset_id)) == newer.word_count


@pytest.mark.parametrize("failure", ["duplicate_key", "python_error"])
def test_failure_half_way_leaves_previous_rows_intact(warehouse, brain_assets, brain_conn, monkeypatch, failure):
    ids = brain_assets.done_ids
    run(asset_ids=ids)
    before_rows = warehouse.transcripts()
    before_words = {asset_id: warehouse.words(asset_id) for asset_id in ids}

    real_word_rows = sql_loader._word_rows

    def failing_word_rows(assets):
        # Some good rows reach the database first, then the load breaks.
        last = None
        for index, row in enumerate(real_word_rows(assets)):
            yield row
            last = row
            if index == 5:
                break
        if failure == "duplicate_key":
            yield last  # the same (asset_id, word_index) again: the database itself rejects it
        else:
            raise RuntimeError("worker lost half-way")

    monkeypatch.setattr(sql_loader, "_word_rows", failing_word_rows)
    with pytest.raises(Exception) as excinfo:
        run(asset_ids=ids)
    if failure == "python_error":
        assert "worker lost half-way" in str(excinfo.value)

    assert warehouse.transcripts() == before_rows
    assert {asset_id: warehouse.words(asset_id) for asset_id in ids} == before_words


def test_unfinished_assets_fail_by_name_and_write_nothing(warehouse, brain_assets, brain_conn):
    ids = [brain_assets.done_ids[0], brain_assets.processing_id, brain_assets.failed_id]

    with pytest.raises(BrainAssetsNotDone) as excinfo:
        run(asset_ids=ids)

    message = str(excinfo.value)
    assert f"{brain_assets.processing_id} (processing)" in message
    assert f"{brain_assets.failed_id} (failed" in message
    assert brain_assets.done_ids[0] not in message
    assert "skip_unfinished=True" in message
    assert excinfo.value.assets.keys() == {brain_assets.processing_id, brain_assets.failed_id}
    # Checked before any write: not even the tables were created.
    with pytest.raises(Exception):
        warehouse.count("transcripts")


def test_skip_unfinished_loads_the_done_ones(warehouse, brain_assets, brain_conn, caplog):
    ids = [brain_assets.processing_id, *brain_assets.done_ids, brain_assets.failed_id]

    summary = run(asset_ids=ids, skip_unfinished=True)

    assert summary["assets"] == 2
    assert summary["skipped"] == sorted([brain_assets.processing_id, brain_assets.failed_id])
    assert sorted(warehouse.transcripts()) == sorted(brain_assets.done_ids)


@pytest.mark.parametrize("skip_unfinished", [True, False])
def test_a_failure_reason_quoting_a_presigned_url_loses_its_signature(
    brain_assets, brain_conn, fault_proxy, caplog, capsys, tmp_path, monkeypatch, skip_unfinished
):
    """A real service's reason may quote the URL it could not download: no signature reaches a load's log or error."""
    brain_conn(url=fault_proxy.url)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}))
    failed = brain_assets.failed_id
    url = "https://calls.s3.amazonaws.com/a.wav?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=5ecret5ignature"
    answer = {"asset_id": failed, "status": "failed", "error": f"could not download {url}: 403 Forbidden"}
    fault_proxy.add(Fault("status", status=200, body=json.dumps(answer).encode(), path_prefix=f"/assets/{failed}"))
    caplog.set_level("DEBUG")

    if skip_unfinished:
        summary = run(asset_ids=[failed], skip_unfinished=True)
        assert summary["skipped"] == [failed]
        said = caplog.text + "".join(capsys.readouterr())
    else:
        with pytest.raises(BrainAssetsNotDone) as excinfo:
            run(asset_ids=[failed])
        said = str(excinfo.value) + caplog.text + "".join(capsys.readouterr())
    assert "could not download https://calls.s3.amazonaws.com/a.wav?<redacted>" in said
    assert "5ecret5ignature" not in said and "AKIAEXAMPLE" not in said


def test_custom_table_names_and_transcripts_only(warehouse, brain_assets, brain_conn):
    summary = run(asset_ids=brain_assets.done_ids, table="brain_calls", words_table=None)

    assert summary["word_rows"] == 0 and summary["words_table"] is None
    assert sorted(warehouse.transcripts("brain_calls")) == sorted(brain_assets.done_ids)
    with pytest.raises(Exception):
        warehouse.count("transcript_words")


def test_transcript_is_never_logged(warehouse, brain_assets, brain_conn, caplog, capsys):
    caplog.set_level("DEBUG")
    run(asset_ids=brain_assets.done_ids)
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err  # Airflow's task loggers write through structlog
    assert "Loaded 2 Brain asset(s)" in logged
    for asset in brain_assets.done:
        assert asset.transcript not in logged


def test_nulls_and_awkward_text_survive_every_load_path(warehouse):
    """No timings, no source, an empty transcript, and text a COPY or CSV path must escape."""
    from airflow_provider_brain.models import Asset, AssetStatus

    bare = Asset(
        asset_id="00000000000000aa",
        status=AssetStatus.DONE,
        transcript="one two three",
        confidence=(0.5, 0.75, 1.0),
        duration=2.0,
    )
    empty = Asset(asset_id="00000000000000bb", status=AssetStatus.DONE, transcript="", duration=0.5)
    awkward_text = "back\\slash \\N 'quote' \"dq\" ünïcødé,comma"
    awkward = Asset(
        asset_id="00000000000000cc",
        status=AssetStatus.DONE,
        transcript=awkward_text,
        confidence=(0.9,) * 5,
        metadata={"source": "s3://b/with\ttab\nnewline\r"},
        created="2026-11-25T10:00:00+01:00",
    )
    loader = TranscriptLoader(get_db_hook(warehouse.conn_id), batch_size=2)
    loader.create_tables()

    result = loader.load([bare, empty, awkward])

    assert (result.transcript_rows, result.word_rows) == (3, 8)
    rows = warehouse.transcripts()
    assert rows[bare.asset_id]["source"] is None and rows[bare.asset_id]["created_at"] is None
    assert rows[bare.asset_id]["mean_confidence"] == pytest.approx(0.75)
    assert rows[empty.asset_id]["word_count"] == 0 and rows[empty.asset_id]["mean_confidence"] is None
    assert rows[empty.asset_id]["transcript"] == ""
    assert warehouse.words(bare.asset_id) == [
        (0, "one", None, None, 0.5),
        (1, "two", None, None, 0.75),
        (2, "three", None, None, 1.0),
    ]
    assert rows[awkward.asset_id]["transcript"] == awkward_text
    assert rows[awkward.asset_id]["source"] == "s3://b/with\ttab\nnewline\r"
    assert str(rows[awkward.asset_id]["created_at"]).startswith("2026-11-25 09:00:00")
    assert [w[1] for w in warehouse.words(awkward.asset_id)] == awkward_text.split()


def test_existing_tables_with_their_own_column_types(warehouse, brain_assets, brain_conn):
    """A DBA's tables (wider or narrower types, extra columns) are loaded as they are: create_tables=False."""
    ddl = [
        "CREATE TABLE calls (asset_id VARCHAR(16) PRIMARY KEY, source VARCHAR(500), duration REAL, transcript TEXT, "
        "mean_confidence REAL, word_count BIGINT, created_at TIMESTAMP, completed_at TIMESTAMP, loaded_at TIMESTAMP, "
        "note VARCHAR(20) DEFAULT 'n/a')",
        "CREATE TABLE call_words (asset_id VARCHAR(16), word_index BIGINT, word VARCHAR(200), start_s REAL, "
        "end_s REAL, confidence NUMERIC(6, 4), PRIMARY KEY (asset_id, word_index))",
    ]
    hook = get_db_hook(warehouse.conn_id)
    for statement in ddl:
        hook.run(statement)

    summary = run(asset_ids=brain_assets.done_ids, table="calls", words_table="call_words", create_tables=False)

    assert summary["word_rows"] == sum(a.word_count for a in brain_assets.done)
    rows = warehouse.transcripts("calls", added=False)  # Without dag_id, task_id, run_id: left out of the load.
    assert sorted(rows) == sorted(brain_assets.done_ids)
    for asset in brain_assets.done:
        words = warehouse.words(asset.asset_id, table="call_words")
        assert [w[1] for w in words] == [w.word for w in asset.words]
        assert [float(w[4]) for w in words] == pytest.approx([w.confidence for w in asset.words], abs=1e-4)
    assert warehouse.records("SELECT DISTINCT note FROM calls") == [("n/a",)]


def test_concurrent_loads_of_different_assets_all_land(warehouse):
    """Mapped tasks start together: their CREATE TABLE IF NOT EXISTS race, and their loads must not clash."""
    from concurrent.futures import ThreadPoolExecutor

    from airflow_provider_brain.models import Asset, AssetStatus

    # Threads of one process, here. (Separate processes cannot share a DuckDB file for writing at all:
    # mapped loads into DuckDB need max_active_tis_per_dag=1 or a pool of one slot.)

    def load(index: int) -> int:
        asset = Asset(asset_id=f"{index:016x}", status=AssetStatus.DONE, transcript="a b c d", confidence=(0.5,) * 4)
        loader = TranscriptLoader(get_db_hook(warehouse.conn_id))
        loader.create_tables()
        return loader.load([asset]).word_rows

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(load, range(6))) == [4] * 6

    assert warehouse.count("transcripts") == 6 and warehouse.count("transcript_words") == 24
