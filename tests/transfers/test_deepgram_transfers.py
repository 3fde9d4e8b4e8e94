"""Deepgram results through the transfers in a real DAG run: ``DeepgramTranscribeOperator`` deferred over S3 files
(moto), then ``BrainToSqlOperator`` (PostgreSQL) and ``BrainToS3Operator(output_format="srt")`` given its output
through ``asset_ids``; the same files through Brain beside it. One row and one caption file per file, each the
same as the Brain path's for the same audio (the same recogniser serves both dialects)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from pathlib import Path

import pytest

from airflow_provider_brain.transfers.brain_to_sql import get_db_hook
from airflow_provider_brain.transfers.deepgram_results import DeepgramResultMissing, fetch_transfer_assets
from tests.fixtures.connections import brain_connection_json
from tests.operators.test_transcribe_dags import assert_succeeded

DAG_FILE = Path(__file__).parent / "dags" / "deepgram_transfer_dags.py"
TIMING = re.compile(r"^\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}$")


def srt_text(body: str) -> tuple[list[str], int]:
    """An SRT file's text lines (cue numbers and timings left out) and its number of cues."""
    lines = [line for line in body.splitlines() if line.strip()]
    cues = sum(1 for line in lines if TIMING.match(line))
    return [line for line in lines if not TIMING.match(line) and not line.isdigit()], cues


def test_deepgram_results_load_like_brain_assets(
    airflow_cli, brain_server, s3_server, s3_bucket, speech, postgres_connection, postgres_server, monkeypatch
):
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    keys = [f"audio/clip-{i}.wav" for i in (0, 1, 2)]
    for i, key in zip((0, 1, 2), keys, strict=True):
        client.upload_file(str(speech.file(i)), s3_bucket, key)
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_DEEPGRAM_DEFAULT": json.dumps(
            {"conn_type": "deepgram", "host": brain_server.url, "password": brain_server.password}
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "AIRFLOW_CONN_WAREHOUSE_PG": postgres_server.connection_json(),
        "BRAIN_TEST_BUCKET": s3_bucket,
        "BRAIN_TEST_KEYS": ",".join(keys),
        "BRAIN_TEST_TABLE_SUFFIX": suffix,
    }
    result = airflow_cli.run("dags", "test", "deepgram_and_brain_transfers", extra_env=env, check=False)
    output = result.stdout + result.stderr
    assert_succeeded(result.returncode, output)
    assert "running trigger in line" in output.lower() and "Read 3 of 3 Deepgram result(s)" in output

    db = get_db_hook(postgres_connection)
    sources = [f"s3://{s3_bucket}/{key}" for key in keys]
    rows = {}
    for path in ("dg", "brain"):
        got = db.get_records(
            f"SELECT source, asset_id, word_count, duration, dag_id, task_id FROM {path}_transcripts_{suffix} "
            "ORDER BY source"
        )
        assert [row[0] for row in got] == sources  # one row per file
        rows[path] = got
    for dg, brain in zip(rows["dg"], rows["brain"], strict=True):
        uuid.UUID(dg[1])  # the Deepgram request id
        assert dg[2] == brain[2] > 0 and dg[3] == pytest.approx(brain[3], abs=0.05)
        assert (dg[4], dg[5]) == ("deepgram_and_brain_transfers", "deepgram")
    for path in ("dg", "brain"):
        words = db.get_records(
            f"SELECT t.source, w.word FROM {path}_words_{suffix} w JOIN {path}_transcripts_{suffix} t "
            "USING (asset_id) ORDER BY t.source, w.word_index"
        )
        rows[path + "_words"] = words
    assert rows["dg_words"] == rows["brain_words"] and len(rows["dg_words"]) == sum(r[2] for r in rows["dg"])

    listed = {item["Key"] for item in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    for key in keys:  # one caption file per audio file, named after it, with the same cues and text
        dg_key, brain_key = (f"captions-{p}/s3/{s3_bucket}/{key}.srt" for p in ("dg", "brain"))
        assert {dg_key, brain_key} <= listed
        dg_text, dg_cues = srt_text(client.get_object(Bucket=s3_bucket, Key=dg_key)["Body"].read().decode())
        brain_text, brain_cues = srt_text(client.get_object(Bucket=s3_bucket, Key=brain_key)["Body"].read().decode())
        assert dg_text == brain_text and dg_cues == brain_cues >= 1
    assert len([k for k in listed if k.startswith("captions-dg/")]) == len(keys)


def test_a_missing_result_fails_or_is_skipped(aws_connection, s3_bucket):
    log = logging.getLogger("test")
    ref = {"deepgram_result": f"s3://{s3_bucket}/nowhere/x.json", "store_conn_id": aws_connection, "request_id": "r1"}
    with pytest.raises(DeepgramResultMissing, match="r1's result is not at s3://"):
        fetch_transfer_assets([ref], brain_conn_id="unused", times=True, skip_unfinished=False, log=log)
    # The string a template renders without native types is read the same way.
    fetched = fetch_transfer_assets(str([ref]), brain_conn_id="unused", times=True, skip_unfinished=True, log=log)
    assert fetched.done == [] and fetched.skipped == {"r1": "result missing"}
