"""Real recognition through the API: Festival speech in, transcripts within measured WER bounds out."""

from __future__ import annotations

import pytest
import soundfile

from tests.local.conftest import MAX_FILE_WER, MAX_SET_WER, check_done_asset, wait_done, wer

OCTET = {"Content-Type": "application/octet-stream"}


def upload(client, path, content_type="application/octet-stream", **params):
    response = client.post(
        "/speech:recognize", content=path.read_bytes(), headers={"Content-Type": content_type}, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("voice", ["slt", "kal"])
def test_sync_upload_transcribes_every_sentence(client, speech, voice):
    references, hypotheses = [], []
    for index, sentence in enumerate(speech.sentences):
        asset = upload(client, speech.file(index, voice=voice))
        check_done_asset(asset)
        assert wer(sentence, asset["transcript"]) <= MAX_FILE_WER, (sentence, asset["transcript"])
        timed = client.get(f"/assets/{asset['asset_id']}", params={"times": "true"}).json()
        check_done_asset(timed, with_words=True)
        references.append(sentence)
        hypotheses.append(asset["transcript"])
    assert wer(" ".join(references), " ".join(hypotheses)) <= MAX_SET_WER


@pytest.mark.parametrize(
    ("fmt", "rate", "channels", "content_type"),
    [
        ("mp3", None, 1, "audio/mpeg"),
        ("wav", 44100, 2, "audio/wav"),
        ("flac", 22050, 1, "audio/flac"),
        ("ogg", 48000, 2, "application/octet-stream"),
        ("mp3", 44100, 2, "application/octet-stream"),
    ],
)
def test_formats_rates_and_channels(client, speech, fmt, rate, channels, content_type):
    path = speech.file(0, voice="slt", fmt=fmt, rate=rate, channels=channels)
    asset = upload(client, path, content_type)
    check_done_asset(asset)
    assert wer(speech.sentences[0], asset["transcript"]) <= MAX_FILE_WER, asset["transcript"]
    # Duration is the media's, whatever its rate: within 50 ms of what the file says (MP3 pads a frame).
    assert asset["duration"] == pytest.approx(soundfile.info(str(path)).duration, abs=0.06)
    # The original bytes come back unchanged.
    content = client.get(f"/assets/{asset['asset_id']}/content")
    assert content.status_code == 200
    assert content.content == path.read_bytes()


def test_long_audio_is_cut_into_utterances_without_losing_words(client, speech):
    # 8 sentences with pauses: about 40 s, so the recognizer cuts it at least once (every <= 30 s).
    indices = [0, 1, 2, 3, 4, 5, 0, 1]
    path = speech.joined(indices, voice="kal", pause=1.0)
    asset = upload(client, path)
    timed = client.get(f"/assets/{asset['asset_id']}", params={"times": "true"}).json()
    check_done_asset(timed, with_words=True)
    assert timed["duration"] > 35
    assert wer(speech.text(indices), timed["transcript"]) <= MAX_SET_WER, timed["transcript"]
    # Words are spread over the whole file, not only its first utterance.
    assert timed["words"][-1]["end"] > timed["duration"] - 3


def test_async_upload_then_poll(client, speech):
    path = speech.file(3, voice="kal")
    response = client.post("/speech:recognize", params={"async": "true"}, content=path.read_bytes(), headers=OCTET)
    assert response.status_code == 200
    queued = response.json()
    assert queued == {"asset_id": queued["asset_id"], "status": "processing"}
    done = wait_done(client, queued["asset_id"], times=True)
    check_done_asset(done, with_words=True)
    assert wer(speech.sentences[3], done["transcript"]) <= MAX_FILE_WER
