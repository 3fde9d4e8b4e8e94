"""The end of a transcribe task's life: its deadline, Airflow's own timeout of a deferred task, and a user ending
it, each of which gives up the asset (``cancel_on_kill`` deletes it, so Brain stops working on audio nobody
waits for). A mixin of ``BrainTranscribeOperator``, kept apart from how the task submits and waits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin

from airflow_provider_brain.exceptions import BrainDeadlinePassed, BrainError, BrainNotFound
from airflow_provider_brain.hooks.cancel import delete_quietly
from airflow_provider_brain.models import parse_api_time

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_brain.hooks.brain import BrainHook

#: How long a task whose deadline passed spends reading its asset (only to say how long it waited) before it
#: cancels the asset and fails.
GIVE_UP_FETCH_SECONDS = 15.0


class TaskEnd(ResumableJobMixin, BaseOperator):
    """Giving up an asset at a task's end: the base of ``BrainTranscribeOperator``, which sets ``timeout``,
    ``cancel_on_kill`` and the asset it waits for, and gives the ``hook``."""

    timeout: float
    cancel_on_kill: bool
    _owns_asset: bool
    _asset_id: str | None

    @property
    def hook(self) -> BrainHook:
        raise NotImplementedError

    def _gone(self, asset_id: str) -> bool:
        try:
            self.hook.get_asset(asset_id)
        except BrainNotFound:
            return True
        return False

    # ------------------------------------------------------------------ the end of a task's life

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's own timeout of a deferred task (``execution_timeout``) also gives the asset up."""
        try:
            from airflow.sdk.exceptions import TaskDeferralTimeout
        except ImportError:  # Airflow before 3.2
            from airflow.exceptions import TaskDeferralTimeout  # type: ignore[no-redef]

        self._owns_asset = bool((next_kwargs or {}).get("owned", True))
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            ti = context["ti"]
            asset_id = ti.xcom_pull(task_ids=ti.task_id, key="asset_id", map_indexes=ti.map_index)
            if not asset_id:
                raise
            self._give_up(str(asset_id), None)

    def _give_up(self, asset_id: str, end_time: float | None) -> NoReturn:
        """Fail on a deadline, naming the asset and how long it has been processing; with ``cancel_on_kill``
        delete it first, so Brain stops working on audio nobody waits for."""
        try:
            created = parse_api_time(
                self.hook.get_asset(asset_id, deadline=time.time() + GIVE_UP_FETCH_SECONDS).created
            )
        except BrainError as err:
            # Only the message's "waited" needs the asset: an outage here must neither skip the cancel nor
            # turn the deadline, which is never retried, into a retryable error.
            self.log.warning("Could not read Brain asset %s to say how long it waited: %s", asset_id, err)
            created = None
        waited = time.time() - created.timestamp() if created else self.timeout
        self._cancel(asset_id, "its deadline passed")
        raise BrainDeadlinePassed(asset_id, self.timeout, waited)

    def on_kill(self) -> None:
        """A user ended the task while it waited in the worker (or ``execution_timeout`` passed): cancel its asset."""
        if self._asset_id:
            self._cancel(self._asset_id, "the task was killed")

    def _cancel(self, asset_id: str, why: str) -> None:
        if self.cancel_on_kill and self._owns_asset:
            delete_quietly(self.hook, self.log, asset_id, why)
