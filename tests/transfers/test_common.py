"""How the transfers read ``asset_ids`` from whatever a DAG or an XCom hands them."""

from __future__ import annotations

import pytest

from airflow_provider_brain.models import Asset, AssetStatus
from airflow_provider_brain.transfers.common import normalize_asset_ids, parse_timestamp

A, B = "0123456789abcdef", "fedcba9876543210"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (A, [A]),
        ([A, B, A], [A, B]),
        ({"asset_id": A, "status": "done", "duration": 1.5}, [A]),
        ([{"asset_id": A}, {"asset_id": B}], [A, B]),
        (Asset(asset_id=B, status=AssetStatus.DONE), [B]),
        (f"['{A}', '{B}']", [A, B]),  # a list rendered by Jinja as text
        (f"[{{'asset_id': '{A}'}}]", [A]),
        ((x for x in [B, A]), [B, A]),
        ([], []),
        (None, []),
    ],
)
def test_normalize_asset_ids(value, expected):
    assert normalize_asset_ids(value) == expected


@pytest.mark.parametrize("value", ["../etc/passwd", "{{ ti.xcom_pull('t') }}", [A, 17], {"id": A}, "[unclosed"])
def test_bad_asset_ids_are_refused(value):
    with pytest.raises(ValueError):
        normalize_asset_ids(value)


def test_timestamps_become_naive_utc():
    assert str(parse_timestamp("2026-11-25T10:00:04Z")) == "2026-11-25 10:00:04"
    assert str(parse_timestamp("2026-11-25T12:00:04+02:00")) == "2026-11-25 10:00:04"
    assert parse_timestamp(None) is None and parse_timestamp("yesterday") is None
