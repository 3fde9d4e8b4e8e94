"""brain_s3_phrase_alerts end to end: moto S3, the local Brain server recognising Festival speech, a PostgreSQL
warehouse and a real Airflow (``airflow dags test``), run twice."""

from __future__ import annotations

import json
import sqlite3
import textwrap

import psycopg2
import pytest

from tests.example_dags.test_example_dags import EXAMPLES, ExampleRun, dagbag  # noqa: F401 - the fixture
from tests.fixtures.connections import brain_connection_json

#: call-0 .. call-3: two sentences each (tests/fixtures/speech.py). "played in the park" is said in call-0 and
#: call-2, "call me back" in call-1 and call-3, "a purple elephant" in none.
RECORDINGS = ([0, 1], [2, 3], [4, 0], [5, 2])
PHRASES = ["Played in the park", "call me back", "a purple elephant"]


@pytest.fixture
def phrase_run(airflow_cli, brain_server, s3_server, s3_bucket, speech, postgres_server):
    client = s3_server.client()
    for i, indices in enumerate(RECORDINGS):
        client.upload_file(str(speech.joined(indices)), s3_bucket, f"calls/call-{i}.wav")
    client.put_object(Bucket=s3_bucket, Key="calls/notes.txt", Body=b"not audio")
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "AIRFLOW_CONN_BRAIN_WAREHOUSE": postgres_server.connection_json(),
    }
    return ExampleRun(airflow_cli, env)


def file_of(source: str) -> str:
    return source.rsplit("/", 1)[1]


def hit_rows(postgres_server, bucket: str) -> list[tuple]:
    """This bucket's hit rows, with the duration of their transcript: (asset_id, hit_index, file, phrase, start_s,
    end_s, confidence, loaded_at, duration)."""
    with psycopg2.connect(postgres_server.dsn) as db, db.cursor() as cur:
        cur.execute(
            "SELECT h.asset_id, h.hit_index, h.source, h.phrase, h.start_s, h.end_s, h.confidence, h.loaded_at,"
            " t.duration FROM transcript_hits h JOIN transcripts t ON t.asset_id = h.asset_id"
            " WHERE h.source LIKE %s ORDER BY h.source, h.hit_index",
            (f"s3://{bucket}/%",),
        )
        return [(r[0], r[1], file_of(r[2]), *r[3:]) for r in cur.fetchall()]


def last_run_xcoms(run: ExampleRun) -> tuple[str, dict]:
    with sqlite3.connect(run.cli.home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = 'brain_s3_phrase_alerts' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = 'brain_s3_phrase_alerts' AND run_id = ?"
            " AND key = 'return_value' AND map_index = -1",
            (run_id,),
        ).fetchall()
    values = {}
    for task_id, value in rows:
        decoded = json.loads(value)
        values[task_id] = json.loads(decoded) if isinstance(decoded, str) else decoded
    return run_id, values


def test_phrase_alerts_end_to_end_and_idempotent(phrase_run, postgres_server, s3_bucket, brain_server, speech):
    conf = {"bucket": s3_bucket, "prefix": "calls/", "phrases": PHRASES}
    output = phrase_run.test("brain_s3_phrase_alerts", conf)

    rows = hit_rows(postgres_server, s3_bucket)
    found = {(file, phrase) for _, _, file, phrase, *_ in rows}
    assert found == {
        ("call-0.wav", "Played in the park"),
        ("call-2.wav", "Played in the park"),
        ("call-1.wav", "call me back"),
        ("call-3.wav", "call me back"),
    }
    assert len(rows) == 4  # each said once in each of those files
    with brain_server.client() as client:
        for asset_id, index, file, phrase, start, end, confidence, loaded_at, duration in rows:
            assert index == 0 and loaded_at is not None
            assert 0.0 <= start < end <= duration + 1e-6 and 0.0 < confidence <= 1.0
            # The hit spans the phrase's words as Brain timed them.
            words = client.get(f"/assets/{asset_id}", params={"times": "true"}).json()["words"]
            wanted = phrase.lower().split()
            spoken = [w["word"] for w in words]
            at = next(i for i in range(len(spoken)) if spoken[i : i + len(wanted)] == wanted)
            assert (start, end) == (words[at]["start"], words[at + len(wanted) - 1]["end"])

    run_id, xcoms = last_run_xcoms(phrase_run)
    assert xcoms["files_per_phrase"] == {
        "Played in the park": [f"s3://{s3_bucket}/calls/call-0.wav", f"s3://{s3_bucket}/calls/call-2.wav"],
        "call me back": [f"s3://{s3_bucket}/calls/call-1.wav", f"s3://{s3_bucket}/calls/call-3.wav"],
        "a purple elephant": [],
    }
    summary = xcoms["search"]
    assert summary["phrases"] == {"Played in the park": 2, "call me back": 2, "a purple elephant": 0}
    assert summary["hits"] == 4 and summary["searched_assets"] == 4 and len(summary["assets"]) == 4
    assert xcoms["load_hits"]["hit_rows"] == 4 and xcoms["load_hits"]["hits_table"] == "transcript_hits"
    # Counts and ids in XCom and the logs, never what was said.
    said = [speech.text([i]) for i in range(6)]
    assert not any(sentence[:20] in json.dumps(xcoms) for sentence in said)
    assert "Phrase 1 of 3 (18 characters): 2 hit(s) in 2 asset(s)" in output
    assert "Searched 4 Brain asset(s) for 3 phrase(s): 4 hit(s) in 4 asset(s)" in output
    assert not any(sentence[:20] in output for sentence in said)

    # The load emitted an asset event for the hits table, with counts.
    with sqlite3.connect(phrase_run.cli.home / "airflow.db") as db:
        events = db.execute(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
            " WHERE e.source_dag_id = 'brain_s3_phrase_alerts' AND e.source_run_id = ?",
            (run_id,),
        ).fetchall()
    extras = {uri.rsplit("/", 1)[1]: json.loads(extra) for uri, extra in events}
    assert set(extras) == {"transcripts", "transcript_hits"}
    assert extras["transcript_hits"]["hit_rows"] == 4 and extras["transcript_hits"]["assets"] == 4

    # Same files again: new assets, the same hit rows (replaced, not added).
    phrase_run.test("brain_s3_phrase_alerts", conf)
    again = hit_rows(postgres_server, s3_bucket)
    assert {r[0] for r in again}.isdisjoint(r[0] for r in rows), "the rerun made new assets"

    def stable(table):
        return sorted((file, index, phrase, start, end) for _, index, file, phrase, start, end, *_ in table)

    assert stable(again) == stable(rows)
    # Recognition of the same audio gives confidences that differ a little between runs (0.821 against 0.833 was
    # seen in CI): the rows' places are the same, their confidences close.
    assert [r[6] for r in sorted(again, key=lambda r: r[2])] == pytest.approx(
        [r[6] for r in sorted(rows, key=lambda r: r[2])], abs=0.05
    )


def test_readme_quotes_the_dags_search_snippet_and_the_shape(dagbag):  # noqa: F811
    dag_text = (EXAMPLES / "brain_s3_phrase_alerts.py").read_text()
    start = dag_text.index("# [START howto_operator_brain_search]\n") + len("# [START howto_operator_brain_search]\n")
    snippet = textwrap.dedent(dag_text[start : dag_text.index("    # [END howto_operator_brain_search]")]).rstrip()
    assert "BrainSearchOperator(" in snippet and "phrases=wanted" in snippet
    readme = (EXAMPLES.parent / "README.md").read_text()
    assert f"```python\n{snippet}\n```" in readme
    dag = dagbag.dags["brain_s3_phrase_alerts"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "list_audio": ["audio_uris"],
        "audio_uris": ["transcribe"],
        "transcribe": ["files_per_phrase", "load_hits", "search"],
        "phrases": ["load_hits", "search"],
        "search": ["files_per_phrase", "load_hits"],
        "load_hits": ["files_per_phrase"],
        "files_per_phrase": [],
    }
