"""Where a transcribe task starts: in a worker, or in the triggerer (``start_from_trigger``), and why.

``trigger_start`` knows how a task starts in the triggerer and which sources cannot; this module decides it for
one ``BrainTranscribeOperator`` (at ``__init__``) or one mapped task (at ``expand()``), and says in the task's
log why a task that asked for the triggerer, or would have started there by default, runs in a worker.

The default (``start_from_trigger=None``): on Airflow 3.3, a deferrable task starts in the triggerer when
``trigger_start.blocker`` finds nothing in its source and ``worker_only`` finds nothing a worker alone would
do for it: ``pre_execute``, ``post_execute`` and ``on_execute_callback`` (a task started in the triggerer
never runs them), a subclass's own job methods, outlets (their asset events are recorded by a worker), a
pool or per-task concurrency limit (a task started in the triggerer bypasses them), ``execution_timeout``
(counted from a worker's start), and the DAG's ``user_defined_macros``/``user_defined_filters`` (the
triggerer renders templates without them). ``True`` keeps what it always did (the source alone decides);
``False`` keeps the worker path.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_brain.operators import trigger_start

log = logging.getLogger(__name__)

#: Why a task whose arguments allow it still runs in a worker: Airflow chose so.
STARTED_BY_AIRFLOW = (
    "Airflow started it in a worker (`airflow dags test` ignores start_from_trigger, and a mapped expansion the "
    "triggerer cannot resolve per index is started in a worker: see the DAG processor's log)"
)
#: Where ``BrainTranscribeOperator`` is defined (see ``_provider_operator``).
TRANSCRIBE_MODULE = "airflow_provider_brain.operators.transcribe"
#: What the worker path runs and a task started in the triggerer does not: a subclass overriding one of these
#: has its own job, so by default it keeps the worker path.
WORKER_METHODS = (
    "execute",
    "pre_execute",
    "post_execute",
    "submit_job",
    "get_job_status",
    "poll_until_complete",
    "get_job_result",
    "execute_complete",
)
#: Hooks a DAG may give any task that run only in a worker, by their argument names.
WORKER_HOOKS = ("pre_execute", "post_execute", "on_execute_callback")
#: What the log says of a deferrable task that the default leaves in a worker.
DEFAULT_OFF = "this deferrable task runs in a worker, not started in the triggerer (the default on Airflow 3.3)"


def by_default(deferrable: bool) -> bool:
    """Whether a task that leaves ``start_from_trigger`` unset is one the default would start in the triggerer
    (before looking at what it does): deferrable, on an Airflow that can."""
    return bool(deferrable) and trigger_start.triggerer_can_start_tasks()


def worker_only(task: Any, operator_class: type, hooks: Mapping[str, Any]) -> str | None:
    """What a worker alone does for ``task`` (an operator or a mapped task), or ``None``.

    :param hooks: the task's ``pre_execute``, ``post_execute`` and ``on_execute_callback`` as given.
    """
    given = [name for name in WORKER_HOOKS if hooks.get(name)]
    if given:
        return f"it sets {', '.join(given)}, which only a worker runs"
    base = _provider_operator(operator_class)
    own = [m for m in WORKER_METHODS if getattr(operator_class, m) is not getattr(base, m)]
    if own:
        return f"{operator_class.__name__} has its own {', '.join(own)}, which only a worker runs"
    if getattr(task, "outlets", None):
        return "it has outlets, whose asset events only a worker records"
    if getattr(task, "pool", None) not in (None, BaseOperator.pool):
        return f"it runs in pool {task.pool!r}, whose limit a task started in the triggerer would bypass"
    limits = [n for n in ("max_active_tis_per_dag", "max_active_tis_per_dagrun") if getattr(task, n, None)]
    if limits:
        return f"it sets {', '.join(limits)}, which a task started in the triggerer would bypass"
    if getattr(task, "execution_timeout", None):
        return "it sets execution_timeout, which Airflow counts from a worker's start"
    dag = task.dag if task.has_dag() else None
    if dag is not None and (dag.user_defined_macros or dag.user_defined_filters):
        return "its DAG has user_defined_macros or user_defined_filters, which the triggerer renders templates without"
    return None


def choose(task: Any, asked: bool | None) -> None:
    """Set ``start_from_trigger`` (and ``start_trigger_args``) of an operator from its arguments.

    :param asked: the operator's ``start_from_trigger`` argument (``None``: the default).
    """
    task._start_from_trigger_asked = asked
    task._start_from_trigger_blocked = None
    if asked is None and by_default(task.deferrable):
        hooks = {"pre_execute": task._pre_execute_hook, "post_execute": task._post_execute_hook}
        task._start_from_trigger_blocked = trigger_start.blocker(vars(task)) or worker_only(
            task, type(task), {**hooks, "on_execute_callback": task.on_execute_callback}
        )
        start = task._start_from_trigger_blocked is None
    else:
        start = bool(asked) and trigger_start.blocker(vars(task)) is None
    task.start_from_trigger = start
    if start:
        task.start_trigger_args = trigger_start.start_trigger_args(vars(task))


def say_where_it_runs(task: Any) -> None:
    """In a task that runs in a worker though it asked to start in the triggerer, or would have by default, log
    why (from ``execute``). Silent for a task that asked for a worker, or is not deferrable, or before 3.3."""
    if task._start_from_trigger_asked:
        why = trigger_start.blocker(vars(task)) or STARTED_BY_AIRFLOW
        task.log.info("start_from_trigger=True, but this task runs in a worker: %s", why)
    elif task._start_from_trigger_asked is None and by_default(task.deferrable):
        task.log.info("%s: %s", DEFAULT_OFF, task._start_from_trigger_blocked or STARTED_BY_AIRFLOW)


def choose_mapped(mapped: Any) -> None:
    """Give a mapped ``BrainTranscribeOperator`` that asked to ``start_from_trigger`` (or leaves it to the default)
    its ``start_trigger_args``, or leave it in a worker, saying why in the DAG processor's log: a warning where a
    request cannot be honoured, an info line where the default does not apply."""
    arguments = dict(mapped.partial_kwargs)
    asked = arguments.get("start_from_trigger")
    if asked is None:
        deferrable = arguments.get("deferrable", _default_of(mapped.operator_class, "deferrable"))
        if not by_default(deferrable):
            return
    elif not asked:
        return
    value = getattr(mapped.expand_input, "value", None)
    expanded = set(value) if isinstance(value, Mapping) else set()
    reason = trigger_start.blocker({**arguments, **dict.fromkeys(expanded & {"local_path"}, True)})
    if reason is None and asked is None:
        reason = worker_only(mapped, mapped.operator_class, arguments)
    templates: dict[str, str] | None = None
    if reason is None:
        templates, reason = trigger_start.per_index_templates(mapped)
    if reason is not None:
        if asked:
            log.warning("%s: start_from_trigger is off, the task runs in a worker: %s", mapped.task_id, reason)
        else:
            log.info("%s: %s: %s", mapped.task_id, DEFAULT_OFF, reason)
        mapped.start_from_trigger = False
        return
    mapped.start_trigger_args = trigger_start.start_trigger_args(arguments, templates)
    mapped.start_from_trigger = True


def _provider_operator(operator_class: type) -> type:
    """``BrainTranscribeOperator`` itself, found in ``operator_class``'s ancestry by the module that defines it:
    this module sits below the operator's (the operator asks it where to start), so it does not import it."""
    return next(c for c in operator_class.__mro__ if c.__module__ == TRANSCRIBE_MODULE)


def _default_of(operator_class: type, name: str) -> Any:
    """The default of one of the operator's ``__init__`` arguments (``deferrable`` comes from the config)."""
    return inspect.signature(operator_class).parameters[name].default
