"""Presigning S3 audio in a long-lived process: one hook per connection, and no masks that pile up."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from airflow_provider_brain import sources as audio_sources
from airflow_provider_brain.sources import (
    existing_s3_object,
    hide_secrets_in_urls,
    hide_url_secrets,
    mask_url_secrets,
    parse_s3_uri,
    presigned_get_url,
    shared_s3_hook,
)


@pytest.fixture(autouse=True)
def _no_shared_hooks():
    audio_sources._shared_s3_hooks.clear()
    yield
    audio_sources._shared_s3_hooks.clear()


def test_threads_presign_through_one_hook_per_connection(s3_server, s3_bucket, aws_connection):
    client = s3_server.client()
    for i in range(8):
        client.put_object(Bucket=s3_bucket, Key=f"clip-{i}.wav", Body=f"audio {i}".encode())

    def presign(i: int) -> tuple[int, str]:
        hook = shared_s3_hook(aws_connection)
        s3, version = existing_s3_object(aws_connection, s3_bucket, f"clip-{i}.wav", s3=hook)
        assert version.version == hashlib.md5(f"audio {i}".encode()).hexdigest()  # noqa: S324 - S3's ETag
        return id(s3), presigned_get_url(s3, s3_bucket, f"clip-{i}.wav", expires_in=60, mask=False)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(presign, range(8)))

    assert len({hook_id for hook_id, _ in results}) == 1
    assert [requests.get(url, timeout=10).content for _, url in results] == [f"audio {i}".encode() for i in range(8)]
    missing = f"missing.wav does not exist, or connection '{aws_connection}' may not read it"
    with pytest.raises(FileNotFoundError, match=missing):
        existing_s3_object(aws_connection, s3_bucket, "missing.wav", s3=shared_s3_hook(aws_connection))


def test_the_shared_hook_is_renewed_after_its_lifetime(aws_connection, monkeypatch):
    first = shared_s3_hook(aws_connection)
    assert shared_s3_hook(aws_connection) is first
    monkeypatch.setattr(audio_sources, "SHARED_S3_HOOK_SECONDS", 0.0)
    assert shared_s3_hook(aws_connection) is not first


def test_the_triggerer_registers_no_masks(s3_server, s3_bucket, aws_connection, monkeypatch):
    from airflow.providers.common.compat import sdk

    masked: list[str] = []
    monkeypatch.setattr(sdk, "mask_secret", masked.append)
    s3_server.client().put_object(Bucket=s3_bucket, Key="clip.wav", Body=b"audio")
    hook = shared_s3_hook(aws_connection)

    presigned_get_url(hook, s3_bucket, "clip.wav", expires_in=60, mask=False)
    assert masked == []
    # A task that presigns one file (the default) registers its secrets, and only those: each mask costs.
    url = presigned_get_url(hook, s3_bucket, "clip.wav", expires_in=60)
    params = dict(parse_qsl(urlsplit(url).query))
    signature = params.get("X-Amz-Signature") or params["Signature"]
    assert signature in masked and 1 <= len(masked) <= 3
    assert params.get("X-Amz-Date") not in masked and params.get("X-Amz-Expires", params.get("Expires")) not in masked


def test_a_url_without_secret_looking_parameters_has_its_query_masked(monkeypatch):
    from airflow.providers.common.compat import sdk

    masked: list[str] = []
    monkeypatch.setattr(sdk, "mask_secret", masked.append)
    mask_url_secrets("https://media.example.com/a.wav?x=0123456789abcdef&y=2")
    mask_url_secrets("https://media.example.com/b.wav")
    assert masked == ["x=0123456789abcdef&y=2"]


def test_an_s3_key_with_query_and_fragment_characters_is_kept_whole(s3_server, s3_bucket, aws_connection):
    key = "calls/take?2#b 100%.wav"
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=b"audio")
    bucket, parsed = parse_s3_uri(f"s3://{s3_bucket}/{key}")
    assert (bucket, parsed) == (s3_bucket, key)
    s3, version = existing_s3_object(aws_connection, bucket, parsed)
    assert (
        requests.get(presigned_get_url(s3, bucket, parsed, expires_in=60, mask=False), timeout=10).content == b"audio"
    )
    for bad in ("s3://", f"s3://{s3_bucket}", f"s3://{s3_bucket}/", f"https://{s3_bucket}/{key}"):
        with pytest.raises(ValueError, match="must look like s3://bucket/key"):
            parse_s3_uri(bad)


def test_hide_url_secrets_keeps_the_file_and_hides_signature_credential_and_token(s3_server, s3_bucket):
    import boto3
    from botocore.config import Config

    s3_server.client().put_object(Bucket=s3_bucket, Key="calls/a b.wav", Body=b"RIFF....")
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=s3_server.region,
        aws_access_key_id="AKIASECRETKEYID1",
        aws_secret_access_key=s3_server.secret_key,
        aws_session_token="FwoGZXIvYXdzEXAMPLESESSIONTOKEN",
        config=Config(signature_version="s3v4"),
    )
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "calls/a b.wav"})
    assert requests.get(url, timeout=10).status_code == 200  # a real, working presigned URL
    secrets = {k: v for k, v in parse_qsl(urlsplit(url).query) if k in ("X-Amz-Signature", "X-Amz-Credential")}
    assert len(secrets) == 2

    shown = hide_url_secrets(url)

    assert shown.startswith(f"{s3_server.endpoint_url}/{s3_bucket}/calls/a%20b.wav?")
    for value in [*secrets.values(), "AKIASECRETKEYID1", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"]:
        assert value not in shown
    hidden = dict(parse_qsl(urlsplit(shown).query))
    assert hidden["X-Amz-Signature"] == hidden["X-Amz-Credential"] == hidden["X-Amz-Security-Token"] == "***"
    assert hidden["X-Amz-Expires"] == "3600" and hidden["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    # Lists, and the text of a list a template rendered without native types.
    assert hide_secrets_in_urls([url, url]) == [shown, shown]
    assert hide_secrets_in_urls(str([url])) == str([shown])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://acct.blob.core.windows.net/c/a.wav?sv=2024&sig=Zm9vYmFy",
            "https://acct.blob.core.windows.net/c/a.wav?sv=2024&sig=***",
        ),
        ("https://user:hunter22@media.example/a.wav", "https://user:***@media.example/a.wav"),
        ("https://media.example/a.wav?k9x7opaque", "https://media.example/a.wav?***"),
        ("https://media.example/a.wav", "https://media.example/a.wav"),
        ("{{ ti.xcom_pull(task_ids='presign') }}", "{{ ti.xcom_pull(task_ids='presign') }}"),
    ],
)
def test_hide_url_secrets_forms(url, shown):
    assert hide_url_secrets(url) == shown
