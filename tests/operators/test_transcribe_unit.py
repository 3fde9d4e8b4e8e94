"""BrainTranscribeOperator's construction-time checks, lineage and link: what a DAG author sees before any run."""

from __future__ import annotations

import pytest

from airflow_provider_brain.links import BrainAssetLink
from airflow_provider_brain.operators.transcribe import BrainTranscribeOperator, public_url


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"s3_uri": "s3://b/k", "audio_url": "https://x/a.wav"},
        {"local_path": "/a.wav", "s3_bucket": "b", "s3_key": "k"},
    ],
)
def test_exactly_one_source(kwargs):
    with pytest.raises(ValueError, match="exactly one audio source"):
        BrainTranscribeOperator(task_id="t", **kwargs)


def test_bucket_without_key_and_bad_transfer_mode():
    with pytest.raises(ValueError, match="s3_bucket and s3_key go together"):
        BrainTranscribeOperator(task_id="t", s3_bucket="b")
    with pytest.raises(ValueError, match="s3_transfer"):
        BrainTranscribeOperator(task_id="t", s3_uri="s3://b/k", s3_transfer="teleport")


def test_bad_s3_uri_is_named():
    op = BrainTranscribeOperator(task_id="t", s3_uri="https://b/k")
    with pytest.raises(ValueError, match="s3://bucket/key"):
        op.source


def test_source_never_carries_a_presigned_query_string():
    url = "https://bucket.s3.amazonaws.com/a.wav?X-Amz-Signature=abc123&X-Amz-Credential=AKIA"
    op = BrainTranscribeOperator(task_id="t", audio_url=url)
    assert op.source == "https://bucket.s3.amazonaws.com/a.wav"
    assert "Signature" not in public_url("https://user:pw@host:8443/p?sig=1") and "pw" not in public_url(
        "https://user:pw@host:8443/p?sig=1"
    )


def test_templated_fields_and_link():
    assert {"s3_uri", "audio_url", "local_path", "metadata"} <= set(BrainTranscribeOperator.template_fields)
    assert any(isinstance(link, BrainAssetLink) for link in BrainTranscribeOperator.operator_extra_links)


def test_openlineage_inputs():
    s3 = BrainTranscribeOperator(task_id="t", s3_uri="s3://calls/2026/a.wav").get_openlineage_facets_on_start()
    assert [(d.namespace, d.name) for d in s3.inputs] == [("s3://calls", "2026/a.wav")]
    url = BrainTranscribeOperator(task_id="t", audio_url="https://media.example.com/x/a.mp3?sig=secret")
    (dataset,) = url.get_openlineage_facets_on_start().inputs
    assert (dataset.namespace, dataset.name) == ("https://media.example.com", "/x/a.mp3")
    assert BrainTranscribeOperator(task_id="t", local_path="/a.wav").get_openlineage_facets_on_start().inputs == []


def test_a_stored_asset_of_another_source_is_stale():
    """A cleared mapped task whose index now names another file must not reuse the old asset."""
    op = BrainTranscribeOperator(task_id="t", s3_uri="s3://calls/new.wav")
    assert op.get_job_status({"asset_id": "0123456789abcdef", "source": "s3://calls/old.wav"}, {}) == "stale"
    assert not op.is_job_active("stale") and not op.is_job_succeeded("stale")
