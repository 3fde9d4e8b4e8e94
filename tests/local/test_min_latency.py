"""``--min-latency``: assets stay processing as long as a busy real service would keep them, holding no slot."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.brain import start_brain_server
from tests.local.conftest import wait_done, wer

LATENCY = 6.0
FILES = 4


@pytest.mark.alone  # Asserts when the assets finish: another worker's load would slow the one recogniser.
def test_assets_wait_out_the_latency_without_holding_the_recogniser(tmp_path, speech):
    # Synthesised first: in a session where no earlier test made them, text2wave between the submissions would
    # take seconds of the latency the statuses below are read within.
    bodies = [speech.file(index).read_bytes() for index in range(FILES)]
    server = start_brain_server(tmp_path / "data", workers=1, extra_args=["--min-latency", str(LATENCY)])
    try:
        with server.client(timeout=120) as client:
            started = time.monotonic()
            ids = []
            for body in bodies:
                answer = client.post("/speech:recognize", params={"async": "true"}, content=body)
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["asset_id"])
            # A URL that cannot be fetched fails, but no sooner than the latency either.
            refused = client.post(
                "/speech:recognize", json={"audio": {"url": "http://127.0.0.1:9/gone.wav"}, "config": {"async": True}}
            )
            assert refused.status_code == 200, refused.text
            # Recognition takes about a second a file here: without the latency these would be done (or
            # failed) well before it; with it, none is.
            time.sleep(LATENCY - 2.5)
            statuses = [client.get(f"/assets/{i}").json()["status"] for i in [*ids, refused.json()["asset_id"]]]
            assert statuses == ["processing"] * (FILES + 1)
            done = [wait_done(client, asset_id, timeout=60) for asset_id in ids]
            elapsed = time.monotonic() - started
            assert wait_done(client, refused.json()["asset_id"], timeout=60)["status"] == "failed"
    finally:
        server.stop()
    # The latency runs from submission beside recognition: the one recogniser is free while assets wait,
    # so all finish soon after the latency (had each held it, the last would finish after FILES x LATENCY).
    assert LATENCY - 1.5 <= elapsed < LATENCY + 4, elapsed
    for index, asset in enumerate(done):
        assert asset["status"] == "done"
        assert wer(speech.text([index]), asset["transcript"]) <= 0.4


def test_a_negative_latency_is_refused(tmp_path):
    from airflow_provider_brain.local.cli import main

    try:
        main(["serve", "--data-dir", str(tmp_path), "--user", "u", "--password", "p", "--min-latency", "-1"])
    except SystemExit as exc:
        assert "--min-latency" in str(exc)
    else:
        raise AssertionError("a negative --min-latency was accepted")
