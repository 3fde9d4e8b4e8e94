"""Audio minutes per DAG: assets submitted by the transcribe operator of two DAGs carry their task in their metadata,
the loader writes it into ``transcripts`` of a real PostgreSQL (a table created by an older release gets the columns
added), and the README's query reads the audio per DAG back."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.providers.postgres.hooks.postgres import PostgresHook

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator
from airflow_provider_brain.transfers.sql_loader import TranscriptLoader
from tests.fixtures.connections import brain_connection_json
from tests.transfers.test_sql_tables import PINNED_DDL

README = Path(__file__).parents[2] / "README.md"
#: Which clips each DAG transcribes.
CLIPS = {"calls_daily": [0, 1], "support_hourly": [2]}


def readme_query() -> str:
    text = README.read_text()
    block = re.search(r"\[START audio_minutes_per_dag\] -->\s*```sql\n(.*?)```", text, re.S)
    assert block, "the README shows the audio minutes query between its markers"
    return block.group(1)


def context(dag_id: str) -> dict:
    ti = SimpleNamespace(
        dag_id=dag_id, run_id="manual__1", task_id="transcribe", map_index=-1, try_number=1, xcom_push=lambda **_: None
    )
    return {"ti": ti, "dag_run": None}


@pytest.fixture
def fresh_table(postgres_connection):
    """A ``transcripts`` table as an older release created it (no dag_id, task_id, run_id), dropped afterwards."""
    hook = PostgresHook(postgres_conn_id=postgres_connection)
    hook.run(["DROP TABLE IF EXISTS transcript_words", "DROP TABLE IF EXISTS transcripts", *PINNED_DDL["postgresql"]])
    yield hook
    hook.run(["DROP TABLE IF EXISTS transcript_words", "DROP TABLE IF EXISTS transcripts"])


def test_audio_minutes_per_dag_from_the_readme_query(brain_server, speech, monkeypatch, fresh_table):
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", brain_connection_json(brain_server.url, *brain_server.auth))
    submitted: dict[str, list[str]] = {}
    for dag_id, clips in CLIPS.items():
        for clip in clips:
            operator = BrainTranscribeOperator(task_id="transcribe", local_path=str(speech.file(clip)))
            submitted.setdefault(dag_id, []).append(operator.submit_job(context(dag_id))["asset_id"])
    hook = BrainHook()
    ids = [a for ids in submitted.values() for a in ids]
    settled = hook.wait_for_assets(ids, poll_interval=0.5, timeout=300)
    assert all(settled[a].is_done for a in ids)
    assets = [hook.get_asset(a) for a in ids]
    assert {a.metadata["dag_id"] for a in assets} == set(CLIPS)
    assert {(a.metadata["task_id"], a.metadata["run_id"]) for a in assets} == {("transcribe", "manual__1")}

    loader = TranscriptLoader(fresh_table)
    loader.create_tables()
    loader.load(assets)
    rows = fresh_table.get_records(readme_query())

    expected = {d: sum(settled[a].duration for a in submitted[d]) / 60 for d in CLIPS}
    assert {dag_id: minutes for dag_id, _day, minutes in rows} == pytest.approx(expected)
    assert len(rows) == len(CLIPS) and all(minutes > 0 for *_, minutes in rows)
    assert fresh_table.get_records("SELECT DISTINCT task_id, run_id FROM transcripts") == [("transcribe", "manual__1")]
