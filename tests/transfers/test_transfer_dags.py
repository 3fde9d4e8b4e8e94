"""The transfers in a real Airflow DAG run: XCom of a mapped task, mapping, templated fields."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.transfers.brain_to_sql import get_db_hook
from tests.fixtures.connections import brain_connection_json

DAG_FILE = Path(__file__).parent / "dags" / "transfer_dags.py"


def test_transcribe_then_load_sql_and_s3(
    airflow_cli, brain_server, s3_server, s3_bucket, speech, tmp_path, monkeypatch
):
    shutil.copy(DAG_FILE, airflow_cli.dags_folder / DAG_FILE.name)
    client = s3_server.client()
    keys = [f"audio/clip-{i}.wav" for i in range(3)]
    for i, key in enumerate(keys):
        client.upload_file(str(speech.file(i)), s3_bucket, key)
    warehouse = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")})
    env = {
        "AIRFLOW_CONN_BRAIN_DEFAULT": brain_connection_json(brain_server.url, *brain_server.auth),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "AIRFLOW_CONN_WAREHOUSE": warehouse,
        "BRAIN_TEST_BUCKET": s3_bucket,
        "BRAIN_TEST_KEYS": ",".join(keys),
    }

    result = airflow_cli.run("dags", "test", "brain_transfers", extra_env=env, check=False)

    output = result.stdout + result.stderr
    finished = [line for line in output.splitlines() if "DagRun Finished" in line]
    assert result.returncode == 0 and finished and "state=success" in finished[-1], output[-6000:]
    assert "XCom not found" not in output  # the mapped XCom was read in one slice, not item by item

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse)
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", env["AIRFLOW_CONN_BRAIN_DEFAULT"])
    db = get_db_hook("warehouse")
    rows = db.get_records("SELECT asset_id, source, word_count FROM transcripts ORDER BY source")
    assert [row[1] for row in rows] == [f"s3://{s3_bucket}/{key}" for key in keys]
    hook = BrainHook()
    assets = {row[0]: hook.get_asset(row[0], times=True) for row in rows}
    assert all(asset.is_done and asset.word_count == row[2] for row, asset in zip(rows, assets.values()))
    word_rows = db.get_records("SELECT COUNT(*) FROM transcript_words")[0][0]
    assert word_rows == sum(asset.word_count for asset in assets.values())

    stored = {item["Key"] for item in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    # One document per audio file, named after it (replace_by_source, the default).
    assert {f"transcripts/s3/{s3_bucket}/{key}.json" for key in keys} <= stored
    (batch_key,) = [key for key in stored if key.startswith("batches/")]
    assert batch_key.endswith(".jsonl") and "{{" not in batch_key
    lines = client.get_object(Bucket=s3_bucket, Key=batch_key)["Body"].read().decode().splitlines()
    documents = [json.loads(line) for line in lines]
    assert sorted(d["asset_id"] for d in documents) == sorted(assets)
    assert all(len(d["words"]) == d["word_count"] for d in documents)
