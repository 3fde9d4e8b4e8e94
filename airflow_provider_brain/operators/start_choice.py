"""Where a transcribe task starts: in a worker, or in the triggerer (``start_from_trigger``), and why.

``trigger_start`` knows how a task starts in the triggerer and which sources cannot; this module decides it for
one ``BrainTranscribeOperator`` (at ``__init__``) or one mapped task (at ``expand()``), and says in the task's
log why a task asked to start in the triggerer runs in a worker instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_provider_brain.operators import trigger_start

log = logging.getLogger(__name__)

#: Why a task whose arguments allow it still runs in a worker: Airflow chose so.
STARTED_BY_AIRFLOW = (
    "Airflow started it in a worker (`airflow dags test` ignores start_from_trigger, and a mapped expansion the "
    "triggerer cannot resolve per index is started in a worker: see the DAG processor's log)"
)


def choose(task: Any, asked: bool) -> None:
    """Set ``start_from_trigger`` (and ``start_trigger_args``) of an operator from its arguments.

    :param asked: the operator's ``start_from_trigger`` argument.
    """
    task._start_from_trigger_asked = asked
    task.start_from_trigger = asked and trigger_start.blocker(vars(task)) is None
    if task.start_from_trigger:
        task.start_trigger_args = trigger_start.start_trigger_args(vars(task))


def say_where_it_runs(task: Any) -> None:
    """In a task that runs in a worker though it was asked to start in the triggerer, log why (from ``execute``)."""
    if task._start_from_trigger_asked:
        why = trigger_start.blocker(vars(task)) or STARTED_BY_AIRFLOW
        task.log.info("start_from_trigger=True, but this task runs in a worker: %s", why)


def choose_mapped(mapped: Any) -> None:
    """Give a mapped ``BrainTranscribeOperator`` asked to ``start_from_trigger`` its ``start_trigger_args``,
    or turn the request off, with a warning in the DAG processor's log, where it cannot be honoured."""
    arguments = dict(mapped.partial_kwargs)
    if not arguments.get("start_from_trigger"):
        return
    value = getattr(mapped.expand_input, "value", None)
    expanded = set(value) if isinstance(value, Mapping) else set()
    reason = trigger_start.blocker({**arguments, **dict.fromkeys(expanded & {"local_path"}, True)})
    templates: dict[str, str] | None = None
    if reason is None:
        templates, reason = trigger_start.per_index_templates(mapped)
    if reason is not None:
        log.warning("%s: start_from_trigger is off, the task runs in a worker: %s", mapped.task_id, reason)
        mapped.start_from_trigger = False
        return
    mapped.start_trigger_args = trigger_start.start_trigger_args(arguments, templates)
    mapped.start_from_trigger = True
