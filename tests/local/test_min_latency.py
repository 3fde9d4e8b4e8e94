"""``--min-latency``: assets stay processing as long as a busy real service would keep them, holding no slot."""

from __future__ import annotations

import time

from tests.fixtures.brain import start_brain_server
from tests.local.conftest import wait_done, wer

LATENCY = 6.0


def test_assets_wait_out_the_latency_without_holding_the_recogniser(tmp_path, speech):
    server = start_brain_server(tmp_path / "data", workers=1, extra_args=["--min-latency", str(LATENCY)])
    try:
        with server.client(timeout=120) as client:
            started = time.monotonic()
            ids = []
            for index in (0, 1, 2):
                with open(speech.file(index), "rb") as audio:
                    answer = client.post("/speech:recognize", params={"async": "true"}, content=audio.read())
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["asset_id"])
            # Recognition takes about a second a file here: without the latency the three would be done
            # well before it; with it, none is.
            time.sleep(LATENCY - 2.5)
            statuses = [client.get(f"/assets/{asset_id}").json()["status"] for asset_id in ids]
            assert statuses == ["processing"] * 3
            done = [wait_done(client, asset_id, timeout=60) for asset_id in ids]
            elapsed = time.monotonic() - started
    finally:
        server.stop()
    # The latency runs from submission, beside recognition, not after it: all three finish soon after it.
    assert LATENCY - 1.5 <= elapsed < 2 * LATENCY, elapsed
    for index, asset in enumerate(done):
        assert wer(speech.text([index]), asset["transcript"]) <= 0.4


def test_a_negative_latency_is_refused(tmp_path):
    from airflow_provider_brain.local.cli import main

    try:
        main(["serve", "--data-dir", str(tmp_path), "--user", "u", "--password", "p", "--min-latency", "-1"])
    except SystemExit as exc:
        assert "--min-latency" in str(exc)
    else:
        raise AssertionError("a negative --min-latency was accepted")
