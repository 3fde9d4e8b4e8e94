"""Object versions and the sweep: which S3 objects no Brain asset holds yet, found in one listing scan.

The 1,000-object sweep runs against moto's S3 and a local Brain server of its own, whose 990 "already
transcribed" assets are created in a few seconds: URL submissions carrying the objects' ``source`` and
``source_version``, whose media URL is a socket that never answers, on a server with one worker and
``--min-latency 600``, so they stay ``processing`` (a live asset holds its version as a done one does) and
cost the server no recognition.
"""

from __future__ import annotations

import hashlib
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_brain.hooks.brain import BrainHook
from airflow_provider_brain.hooks.source_versions import (
    SOURCE_VERSION_METADATA_KEY,
    S3Object,
    etag_version,
    list_s3_objects,
    sweep_batches,
    untranscribed,
    version_key,
    version_key_of,
)
from airflow_provider_brain.models import Asset, AssetStatus
from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator
from tests.fixtures.brain import start_brain_server
from tests.fixtures.connections import brain_connection_json

OBJECTS = 1000
MISSING = {i for i in range(OBJECTS) if i % 100 == 7}  # 10 objects no asset holds.


def body(i: int) -> bytes:
    return f"audio {i}".encode()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def access(server, method: str, path: str) -> int:
    """How many ``method path`` requests the server answered 200, from its access log."""
    return len(re.findall(rf"brain_local\.access: {method} {re.escape(path)} 200 ", server.log_text()))


def settled_count(server, method: str, path: str, at_least: int, timeout: float = 5.0) -> int:
    """The count once it reaches ``at_least`` (a log line lands just after its response) and a moment later."""
    deadline = time.monotonic() + timeout
    while access(server, method, path) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return access(server, method, path)


# ------------------------------------------------------------------ pure


def test_versions_are_etags_without_quotes_and_keys_keep_sources_apart():
    assert etag_version('"9b2cf535f27731c974343645a3985328"') == "9b2cf535f27731c974343645a3985328"
    assert etag_version("abc-3") == "abc-3"  # A multipart ETag, as notifications carry it.
    held = Asset("0123456789abcdef", AssetStatus.DONE, metadata={"source": "s3://b/a b.wav", "source_version": "e1"})
    assert version_key_of(held) == version_key("s3://b/a b.wav", "e1")
    assert version_key("s3://b/a", "b c") != version_key("s3://b/a b", "c")
    assert version_key_of(Asset("0123456789abcdef", AssetStatus.DONE, metadata={"source": "s3://b/a"})) is None


def test_sweep_batches_carry_each_files_version():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    objects = [S3Object("b", f"k{i}.wav", f"e{i}", when) for i in range(5)]
    batches = sweep_batches(objects, 2)
    assert [b["s3_uris"] for b in batches] == [
        ["s3://b/k0.wav", "s3://b/k1.wav"],
        ["s3://b/k2.wav", "s3://b/k3.wav"],
        ["s3://b/k4.wav"],
    ]
    assert batches[2]["file_metadata"] == {"s3://b/k4.wav": {SOURCE_VERSION_METADATA_KEY: "e4"}}
    assert sweep_batches([], 10) == []


def test_listing_keeps_audio_with_its_etag_and_leaves_young_files_to_the_events(s3_server, s3_bucket):
    client = s3_server.client()
    for key in ("in/a.wav", "in/B.MP3", "in/notes.txt", "in/sub/", "other/c.wav"):
        client.put_object(Bucket=s3_bucket, Key=key, Body=key.encode())
    s3 = S3Hook(aws_conn_id="aws_default")
    found = list_s3_objects(s3, s3_bucket, "in/", suffixes=(".wav", ".mp3"))
    assert [(o.uri, o.version) for o in found] == [
        (f"s3://{s3_bucket}/in/B.MP3", md5(b"in/B.MP3")),
        (f"s3://{s3_bucket}/in/a.wav", md5(b"in/a.wav")),
    ]
    assert list_s3_objects(s3, s3_bucket, "in/", suffixes=(".wav",), min_age=3600) == []


# ------------------------------------------------------------------ 1,000 objects, 990 transcribed


@pytest.fixture
def held_server(tmp_path):
    """A local Brain server whose URL submissions stay processing, and the URL of a socket that never answers."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    server = start_brain_server(
        tmp_path / "held", workers=1, extra_args=["--min-latency", "600", "--max-queue", "5000"]
    )
    try:
        yield server, f"http://127.0.0.1:{silent.getsockname()[1]}/held.wav"
    finally:
        server.stop()
        silent.close()


def test_a_sweep_of_1000_objects_of_which_990_are_transcribed_submits_exactly_10(
    held_server, s3_server, s3_bucket, monkeypatch
):
    server, silent_url = held_server
    monkeypatch.setenv("AIRFLOW_CONN_BRAIN_DEFAULT", brain_connection_json(server.url, *server.auth))
    client = s3_server.client()
    uris = [f"s3://{s3_bucket}/sweep/{i:04}.wav" for i in range(OBJECTS)]

    def put(i: int) -> None:
        client.put_object(Bucket=s3_bucket, Key=f"sweep/{i:04}.wav", Body=body(i))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(OBJECTS)))

    # 990 assets hold their object's version; one of the 10 missing has an asset of an older version only.
    held = [(uris[i], md5(body(i))) for i in range(OBJECTS) if i not in MISSING] + [(uris[7], md5(b"older"))]
    with server.client() as brain, ThreadPoolExecutor(4) as pool:

        def submit(item: tuple[str, str]) -> None:
            payload = {
                "audio": {"url": silent_url},
                "config": {"async": True},
                "metadata": {"source": item[0], SOURCE_VERSION_METADATA_KEY: item[1]},
            }
            brain.post("/speech:recognize", json=payload).raise_for_status()

        list(pool.map(submit, held))
    before = settled_count(server, "POST", "/speech:recognize", len(held))
    listings = access(server, "GET", "/assets")

    objects = list_s3_objects(S3Hook(aws_conn_id="aws_default"), s3_bucket, "sweep/", suffixes=(".wav",))
    assert len(objects) == OBJECTS
    missing = untranscribed(BrainHook(), objects)
    assert sorted(o.uri for o in missing) == sorted(uris[i] for i in MISSING)
    assert settled_count(server, "GET", "/assets", listings + 1) - listings <= 2, "one scan: pages of 1,000 assets"

    # The sweep DAG's batch task, up to its deferral: it submits the missing files, with their versions.
    (kwargs,) = sweep_batches(missing, 1000)
    batch = BrainTranscribeBatchOperator(task_id="transcribe", deferrable=True, **kwargs)
    ti = SimpleNamespace(
        dag_id="brain_s3_sweep",
        run_id="sweep-1",
        task_id="transcribe",
        map_index=0,
        try_number=1,
        xcom_push=lambda **_: None,
    )
    with pytest.raises(TaskDeferred):
        batch.execute({"ti": ti, "dag_run": None})
    assert settled_count(server, "POST", "/speech:recognize", before + len(MISSING)) - before == len(MISSING)

    recorded = {
        a.metadata["source"]: a.metadata.get(SOURCE_VERSION_METADATA_KEY)
        for a in BrainHook().list_assets(include_unfinished=True, page_size=1000)
        if a.metadata.get("airflow_idempotency_key", "").startswith("brain_s3_sweep/")
    }
    assert recorded == {uris[i]: md5(body(i)) for i in MISSING}
    assert untranscribed(BrainHook(), objects) == [], "the next sweep finds every version held"
