"""The seed guide's ``curl`` commands, run verbatim with ``curl``: only the host, USER:PASS and the file
paths are filled in, as a user following the guide would."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from typing import Any

from tests.local.conftest import MAX_FILE_WER, check_done_asset, wait_done, wer

if shutil.which("curl") is None:  # The seed guide's commands are the acceptance tests: never skip them.
    raise RuntimeError("curl is not installed: run scripts/setup.sh (apt-get install curl)")

GUIDE_HOST = "https://brain.deepgram.com"


def run_guide_command(command: str, server: Any, **fill: str) -> Any:
    """Run one of the guide's commands with the host and placeholders replaced; return parsed JSON."""
    command = command.replace(GUIDE_HOST, server.url).replace("USER:PASS", f"{server.user}:{server.password}")
    for placeholder, value in fill.items():
        command = command.replace(placeholder, value)
    result = subprocess.run(shlex.split(command), capture_output=True, timeout=180, check=True)
    return json.loads(result.stdout)


LOCAL_UPLOAD = (
    "curl -u USER:PASS -X POST -T /path/to/file.mp3 -H 'Content-type: application/octet-stream' "
    "https://brain.deepgram.com/speech:recognize"
)
GET_ASSET = "curl -u USER:PASS https://brain.deepgram.com/assets/05e36324fca6c919"
GET_TIMES = "curl -u USER:PASS https://brain.deepgram.com/assets/05e36324fca6c919?times=true"
LIST_ASSETS = "curl -u USER:PASS https://brain.deepgram.com/assets"
ASYNC_UPLOAD = (
    "curl -u USER:PASS -X POST -T /path/to/file.mp3 -H 'Content-type: application/octet-stream' "
    "https://brain.deepgram.com/speech:recognize?async=true"
)
REMOTE_UPLOAD = (
    'curl -u USER:PASS -d \'{"audio": {"url": "https://my.domain.com/path/to/media.mp3"}, '
    '"config": {"async": true}}\' https://brain.deepgram.com/speech:recognize'
)


def test_local_upload_then_get_times_and_list(brain_server, speech, client):
    mp3 = speech.file(0, fmt="mp3")
    asset = run_guide_command(LOCAL_UPLOAD, brain_server, **{"/path/to/file.mp3": str(mp3)})
    check_done_asset(asset)
    assert wer(speech.sentences[0], asset["transcript"]) <= MAX_FILE_WER

    asset_id = asset["asset_id"]
    again = run_guide_command(GET_ASSET, brain_server, **{"05e36324fca6c919": asset_id})
    assert again["transcript"] == asset["transcript"]
    assert "words" not in again

    timed = run_guide_command(GET_TIMES, brain_server, **{"05e36324fca6c919": asset_id})
    check_done_asset(timed, with_words=True)

    listing = run_guide_command(LIST_ASSETS, brain_server)
    assert asset_id in [item["asset_id"] for item in listing["results"]]


def test_async_upload(brain_server, speech, client):
    mp3 = speech.file(1, fmt="mp3")
    queued = run_guide_command(ASYNC_UPLOAD, brain_server, **{"/path/to/file.mp3": str(mp3)})
    assert queued["status"] == "processing"
    done = wait_done(client, queued["asset_id"])
    check_done_asset(done)
    assert wer(speech.sentences[1], done["transcript"]) <= MAX_FILE_WER


def test_remote_upload(brain_server, speech, media_server, client):
    url = media_server.serve("guide-media.mp3", speech.file(2, fmt="mp3"))
    queued = run_guide_command(REMOTE_UPLOAD, brain_server, **{"https://my.domain.com/path/to/media.mp3": url})
    assert queued["status"] == "processing"
    done = wait_done(client, queued["asset_id"])
    check_done_asset(done)
    assert wer(speech.sentences[2], done["transcript"]) <= MAX_FILE_WER
