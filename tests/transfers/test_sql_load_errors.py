"""A database refusing a load: the error names the table, the assets and the driver's error, never a row's values.

PostgreSQL quotes the row it rejects (``DETAIL: Failing row contains (...)``, ``CONTEXT: COPY transcripts, line 2:
"..."``): passed on as it is, that message would put a transcript in the task log. Each test makes the database
refuse a row holding a distinctive phrase, checks the driver's own error did quote it (so the check can fail), and
that nothing the user sees does.
"""

from __future__ import annotations

import json
import traceback
import uuid

import pytest

from airflow_provider_brain.models import Asset, AssetStatus, Word
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator, get_db_hook
from airflow_provider_brain.transfers.sql_loader import BrainLoadError, TranscriptLoader

SECRET = "the patient said her secret diagnosis aloud"
SECRET_WORD = "hypochondriasis"


@pytest.fixture(params=["postgres", "postgres-psycopg2", "sqlite", "duckdb"])
def backend(request, tmp_path, monkeypatch) -> str:
    """An empty database as connection ``warehouse``; returns its kind."""
    if request.param.startswith("postgres"):
        import psycopg

        server = request.getfixturevalue("postgres_server")
        dbname = f"e_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {dbname}")
        conn = json.loads(server.connection_json()) | {"schema": dbname}
        if request.param == "postgres-psycopg2":
            from airflow.providers.postgres.hooks import postgres

            monkeypatch.setattr(postgres, "USE_PSYCOPG3", False)
    elif request.param == "sqlite":
        conn = {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
    else:
        conn = {"conn_type": "duckdb", "host": str(tmp_path / "warehouse.duckdb")}
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(conn))
    return request.param


def create_guarded_tables(loader: TranscriptLoader) -> None:
    """The loader's tables, with checks that refuse long transcripts and long words."""
    transcripts, words = loader.ddl()
    guarded = [
        transcripts.replace(
            "transcript TEXT,", "transcript TEXT CONSTRAINT short_transcript CHECK (length(transcript) < 30),"
        ),
        words.replace("word TEXT,", "word TEXT CONSTRAINT short_word CHECK (length(word) < 12),"),
    ]
    assert guarded != [transcripts, words]
    hook = loader.hook
    for statement in guarded:
        hook.run(statement)


def asset(index: int, transcript: str) -> Asset:
    words = tuple(Word(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(transcript.split()))
    return Asset(
        asset_id=f"{index:016x}",
        status=AssetStatus.DONE,
        transcript=transcript,
        confidence=(0.9,) * len(words),
        words=words,
        duration=5.0,
    )


def everything_said(err: BaseException, caplog, capsys) -> str:
    """The error, its traceback as Airflow prints it (with any chained error) and every log line."""
    captured = capsys.readouterr()
    return "\n".join([str(err), repr(err), *traceback.format_exception(err), caplog.text, captured.out, captured.err])


def count(table: str) -> int:
    return int(get_db_hook("warehouse").get_records(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_a_refused_transcript_is_not_quoted(backend, caplog, capsys):
    caplog.set_level("DEBUG")
    loader = TranscriptLoader(get_db_hook("warehouse"))
    create_guarded_tables(loader)
    loader.load([asset(1, "short and fine")])
    good, bad = asset(2, "also fine"), asset(3, SECRET)

    with pytest.raises(BrainLoadError) as caught:
        loader.load([good, bad])

    err = caught.value
    said = everything_said(err, caplog, capsys)
    assert SECRET not in said
    message = str(err)
    assert "failed while writing transcripts" in message and err.table == "transcripts"
    assert "Loading 2 Brain asset(s) (0000000000000002, 0000000000000003)" in message
    assert err.asset_ids == [good.asset_id, bad.asset_id]
    if backend.startswith("postgres"):
        # PostgreSQL says which row broke which constraint: the message passes that on, by name.
        assert "(SQLSTATE 23514) at row 2 (asset 0000000000000003)" in message
        assert "constraint short_transcript" in message
        # The hazard is real: the driver's own message quoted the transcript.
        assert SECRET in str(err.__context__)
    elif backend == "sqlite":
        assert "sqlite3.IntegrityError (SQLITE_CONSTRAINT_CHECK)" in message
    else:
        assert "ConstraintException" in message
    assert err.__cause__ is None and err.__suppress_context__
    # Rolled back: the earlier load's row stands alone.
    assert count("transcripts") == 1 and count("transcript_words") == 3


def test_a_refused_word_names_its_asset(backend, caplog, capsys):
    caplog.set_level("DEBUG")
    loader = TranscriptLoader(get_db_hook("warehouse"), batch_size=2)
    create_guarded_tables(loader)
    first, second = asset(1, "one two three"), asset(2, f"short {SECRET_WORD} too")

    with pytest.raises(BrainLoadError) as caught:
        loader.load([first, second])

    err = caught.value
    assert SECRET_WORD not in everything_said(err, caplog, capsys)
    assert "failed while writing transcript_words" in str(err) and err.table == "transcript_words"
    if backend.startswith("postgres"):
        # Row 5 of the words COPY: the second word of the second asset.
        assert "at row 5 (asset 0000000000000002)" in str(err) and "constraint short_word" in str(err)
        assert SECRET_WORD in str(err.__context__)
    assert count("transcripts") == 0 and count("transcript_words") == 0


def test_the_operator_fails_without_quoting_the_transcripts(backend, brain_assets, brain_conn, caplog, capsys):
    """The path a DAG takes: real transcripts from the Brain server, refused by the warehouse's own check."""
    caplog.set_level("DEBUG")
    create_guarded_tables(TranscriptLoader(get_db_hook("warehouse")))
    transcripts = [a.transcript for a in brain_assets.done]
    assert all(t and len(t) >= 30 for t in transcripts)

    operator = BrainToSqlOperator(
        task_id="load", conn_id="warehouse", asset_ids=brain_assets.done_ids, create_tables=False
    )
    with pytest.raises(BrainLoadError) as caught:
        operator.execute(context={})

    said = everything_said(caught.value, caplog, capsys)
    for transcript in transcripts:
        assert transcript not in said
    assert "failed while writing transcripts" in str(caught.value)
    assert all(asset_id in str(caught.value) for asset_id in brain_assets.done_ids)


def test_a_connection_error_keeps_its_message(monkeypatch):
    """No row was sent yet: the driver's message (host, port, reason) is what the user needs, and is kept."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "x", "schema": "x"}),
    )
    loader = TranscriptLoader(get_db_hook("warehouse"))

    with pytest.raises(Exception) as caught:
        loader.load([asset(1, "fine")])

    assert not isinstance(caught.value, BrainLoadError)
    assert str(port) in str(caught.value)
