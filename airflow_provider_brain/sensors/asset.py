"""Wait for a Brain asset that some other task submitted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, conf

from airflow_provider_brain import metrics
from airflow_provider_brain.exceptions import BrainAssetFailed, BrainError, BrainTimeout
from airflow_provider_brain.hooks.brain import BrainHook, is_retryable
from airflow_provider_brain.progress import WaitProgress
from airflow_provider_brain.triggers.asset import BrainAssetTrigger, raise_for_event

if TYPE_CHECKING:
    from airflow.sdk import Context


class BrainAssetSensor(BaseSensorOperator):
    """Succeed when a Brain asset is done; fail, with the server's reason, when it failed.

    Works in every sensor mode: ``poke`` (holds a worker slot), ``reschedule`` (frees it
    between pokes) and ``deferrable=True`` (the triggerer waits; no slot at all).

    .. code-block:: python

        submit = BrainTranscribeOperator(task_id="submit", s3_uri="s3://calls/a.wav", wait_for_completion=False)
        wait = BrainAssetSensor(
            task_id="wait", asset_id="{{ ti.xcom_pull(task_ids='submit', key='asset_id') }}", mode="reschedule"
        )

    :param asset_id: the asset to wait for (templated).
    :param brain_conn_id: the Brain connection.
    :param deferrable: wait in the triggerer.
    """

    template_fields: Sequence[str] = ("asset_id",)

    def __init__(
        self,
        *,
        asset_id: str,
        brain_conn_id: str = BrainHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.brain_conn_id = brain_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> BrainHook:
        return BrainHook(brain_conn_id=self.brain_conn_id)

    @cached_property
    def progress(self) -> WaitProgress:
        """The wait's counts in the log; in ``reschedule`` mode each poke is a process of its own, and logs."""
        return WaitProgress(self.log, 1)

    def poke(self, context: Context) -> bool:
        try:
            metrics.poll_requests(metrics.task_tags(context.get("ti")))
            asset = self.hook.get_asset(self.asset_id)
        except BrainError as err:
            if not is_retryable(err):
                raise
            self.log.warning("Checking Brain asset %s failed (%s); poking again later", self.asset_id, err)
            return False
        if asset.is_processing:
            self.progress.update(0, 0, force=self.mode == "reschedule")
            return False
        self.progress.final(int(asset.is_done), int(asset.is_failed))
        if asset.is_failed:
            raise BrainAssetFailed(asset.asset_id, asset.error or "")
        return True

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):  # Check once: no deferral for an asset that is already done.
            return None
        self.defer(
            trigger=BrainAssetTrigger(
                asset_id=self.asset_id,
                brain_conn_id=self.brain_conn_id,
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        try:
            asset_id = raise_for_event(event, timeout=self.timeout)
        except BrainTimeout as err:
            # As in poke and reschedule modes: a sensor timeout fails at once, without retries.
            raise AirflowSensorTimeout(str(err)) from err
        self.log.info("Brain asset %s is done", asset_id)
