"""Operator extra links: from a task's page in the Airflow UI to the Brain asset it made."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

#: XCom key holding the asset's API URL (no credentials, no presigned query string).
ASSET_URL_XCOM_KEY = "brain_asset_url"


class BrainAssetLink(BaseOperatorLink):
    """Link to the asset JSON (``GET /assets/{asset_id}``) of the task's transcription."""

    name = "Brain asset"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=ASSET_URL_XCOM_KEY, ti_key=ti_key)
        return str(url) if url else ""
