"""The sweep example (``brain_s3_sweep``) end to end, and the event-driven example reusing what it transcribed.

Runs with ``airflow dags test`` on the local Brain server, moto S3 and a SQLite warehouse (the ``examples``
fixture of ``test_example_dags.py``: three audio files and a text file under ``incoming/``).
"""

from __future__ import annotations

import hashlib
import sqlite3

import jiwer

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.source_versions import SOURCE_VERSION_METADATA_KEY
from tests.example_dags.test_example_dags import (  # noqa: F401 - fixtures
    FILES,
    WER_BOUND,
    check_rows,
    dagbag,
    examples,
)


def test_sweep_example_shape(dagbag):  # noqa: F811
    dag = dagbag.dags["brain_s3_sweep"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "missing_audio": ["transcribe"],
        "transcribe": ["load_warehouse"],
        "load_warehouse": [],
    }
    assert dag.catchup is False and set(dag.params) >= {"bucket", "prefix"}


def test_the_sweep_transcribes_what_no_asset_holds_and_an_event_run_reuses_it(
    examples,  # noqa: F811
    brain_conn,
    s3_server,
    s3_bucket,
    speech,
):
    run, warehouse = examples
    conf = {"bucket": s3_bucket, "prefix": "incoming/", "min_age_seconds": 0, "batch_size": 2}
    output = run.test("brain_s3_sweep", conf)
    assert "3 audio files under" in output and "3 without a transcript" in output
    with sqlite3.connect(warehouse) as db:
        transcripts = db.execute("SELECT asset_id, source, duration, transcript FROM transcripts").fetchall()
        words = db.execute("SELECT asset_id, word_index, word, start_s, end_s FROM transcript_words").fetchall()
    check_rows(transcripts, words, speech, s3_bucket)

    client = s3_server.client()
    assets = {}
    for asset in BrainHook().list_assets(include_unfinished=True):
        source = asset.metadata.get("source", "")
        if source.startswith(f"s3://{s3_bucket}/"):
            assets.setdefault(source, []).append(asset)
    assert len(assets) == FILES and all(len(found) == 1 for found in assets.values())
    for source, (asset,) in assets.items():
        key = source.split("/", 3)[3]
        data = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        assert asset.metadata[SOURCE_VERSION_METADATA_KEY] == hashlib.md5(data).hexdigest()

    # One event run with two files (what test_event_triggered_manual_run proved with a run of its own, on a file
    # nothing had transcribed, is the second): a (late or repeated) notification for a file the sweep transcribed
    # reuses its asset; a new file (the same speech under another key) is transcribed and loaded.
    uri = f"s3://{s3_bucket}/incoming/call-0.wav"
    client.upload_file(str(speech.file(0)), s3_bucket, "late/call-0.wav")
    new_uri = f"s3://{s3_bucket}/late/call-0.wav"
    output = run.test("brain_s3_event_triggered", {"s3_uris": [uri, new_uri]})
    (swept,) = assets[uri]
    assert f"Reusing Brain asset {swept.asset_id}" in output
    again = [a for a in BrainHook().list_assets(include_unfinished=True) if a.metadata.get("source") == uri]
    assert [a.asset_id for a in again] == [swept.asset_id], "nothing submitted again"
    (fresh,) = [a for a in BrainHook().list_assets(include_unfinished=True) if a.metadata.get("source") == new_uri]
    assert f"Reusing Brain asset {fresh.asset_id}" not in output
    with sqlite3.connect(warehouse) as db:
        assert db.execute("SELECT asset_id FROM transcripts WHERE source = ?", (uri,)).fetchall() == [(swept.asset_id,)]
        loaded = db.execute("SELECT asset_id, transcript FROM transcripts WHERE source = ?", (new_uri,)).fetchall()
    assert [row[0] for row in loaded] == [fresh.asset_id], "one row for the new file, from its own asset"
    assert jiwer.wer(speech.text([0]).lower(), loaded[0][1]) <= WER_BOUND
