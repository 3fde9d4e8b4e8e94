"""Starting a transcribe task in the triggerer (``start_from_trigger``): which tasks can, and how.

Airflow 3.3 can defer a task straight from the scheduler to a trigger, rendering the trigger's templated
arguments per task instance. A ``BrainTranscribeOperator`` can use it when nothing in its job needs a worker:
an S3 object it presigns, or a URL. What a worker must do (upload a local file, stream an S3 object, look for
an asset to reuse with ``reuse_existing``) or what Airflow cannot resolve per map index in the triggerer keeps
the task on today's path, with the reason logged. Whether a task does is decided in ``start_choice.py``.

Per-index values: the triggerer builds ``start_trigger_args`` once per task, not per map index, so the
expanded source is a template the triggerer renders for each index. Two forms resolve without a worker:
a literal list (``task.expand_input.value[...]``) and the list an unmapped upstream task returned
(``ti.xcom_pull(..., map_indexes=-1)``; without ``map_indexes`` the pull hangs in the triggerer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

TRIGGER_CLASS = "airflow_provider_brain.triggers.transcribe.BrainTranscribeTrigger"
#: Operator arguments the trigger takes, by the same names.
TRIGGER_ARGUMENTS = (
    "s3_uri",
    "s3_bucket",
    "s3_key",
    "audio_url",
    "metadata",
    "brain_conn_id",
    "aws_conn_id",
    "presigned_url_expires",
    "wait_for_completion",
    "poll_interval",
    "timeout",
    "times",
    "return_transcript",
    "cancel_on_kill",
)
#: Sources a mapped task may expand over and still start in the triggerer.
EXPANDABLE_SOURCES = ("s3_uri", "s3_bucket", "s3_key", "audio_url")
#: Airflow stops a trigger this long after the task's own timeout (a safety net for a render that never ends).
TRIGGER_TIMEOUT_MARGIN = timedelta(minutes=10)
DEFAULT_TIMEOUT = 3600.0


def triggerer_can_start_tasks() -> bool:
    """Whether this Airflow renders a start-from-trigger task's templated arguments in the triggerer (3.3+).

    A capability check: ``BaseTrigger.render_template_fields`` is what renders them.
    """
    try:
        from airflow.triggers.base import BaseTrigger, StartTriggerArgs  # noqa: F401
    except ImportError:
        return False
    return callable(getattr(BaseTrigger, "render_template_fields", None))


def blocker(arguments: Mapping[str, Any]) -> str | None:
    """Why a task with these operator arguments cannot start in the triggerer; ``None`` if it can."""
    if not triggerer_can_start_tasks():
        return "this Airflow cannot start a task in the triggerer with templated arguments (Airflow 3.3 can)"
    if arguments.get("local_path"):
        return "local_path names a file on a worker, which only a worker can upload"
    if arguments.get("s3_transfer", "presign") == "stream":
        return "s3_transfer='stream' streams the object through a worker"
    if arguments.get("reuse_existing"):
        return "reuse_existing looks for an asset of the object's version (HeadObject, GET /assets) in a worker"
    return None


def start_trigger_args(arguments: Mapping[str, Any], per_index: Mapping[str, str] | None = None) -> Any:
    """``StartTriggerArgs`` for ``BrainTranscribeTrigger`` from the operator's arguments.

    :param arguments: the operator's arguments (templated ones still as templates).
    :param per_index: templates for expanded arguments, rendered by the triggerer for each map index.
    """
    from airflow.triggers.base import StartTriggerArgs

    kwargs = {name: arguments[name] for name in TRIGGER_ARGUMENTS if arguments.get(name) is not None}
    kwargs.update(per_index or {})
    timeout = float(arguments.get("timeout") or DEFAULT_TIMEOUT)
    return StartTriggerArgs(
        trigger_cls=TRIGGER_CLASS,
        trigger_kwargs=kwargs,
        next_method="execute_complete",
        timeout=timedelta(seconds=timeout) + TRIGGER_TIMEOUT_MARGIN,
    )


def per_index_templates(mapped: Any) -> tuple[dict[str, str] | None, str | None]:
    """Templates that give each map index of ``mapped`` its audio source, or ``(None, why not)``."""
    # Private, but the only way to tell which argument a mapped task expands over; pinned per release by
    # tests/provider/test_airflow_internals.py.
    from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    expand_input = mapped.expand_input
    if not isinstance(expand_input, DictOfListsExpandInput):
        return None, "expand_kwargs() is resolved per map index only in a worker"
    names = list(expand_input.value)
    if len(names) != 1 or names[0] not in EXPANDABLE_SOURCES:
        return None, (
            f"it expands over {', '.join(names)}; the triggerer resolves one expanded audio source "
            f"({', '.join(EXPANDABLE_SOURCES)})"
        )
    if mapped.get_closest_mapped_task_group() is not None:
        return None, "it sits in a mapped task group"
    name, value = names[0], expand_input.value[names[0]]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {name: _per_index(f"task.expand_input.value[{json.dumps(name)}]")}, None
    if isinstance(value, PlainXComArg):
        upstream = value.operator
        if isinstance(upstream, MappedOperator) or upstream.get_closest_mapped_task_group() is not None:
            return None, f"its {name} comes from the mapped task {upstream.task_id!r}"
        task_ids, key = json.dumps(upstream.task_id), json.dumps(value.key)
        return {name: _per_index(f"ti.xcom_pull(task_ids={task_ids}, key={key}, map_indexes=-1)")}, None
    return None, f"its {name} is a {type(value).__name__}, which only a worker resolves per map index"


def _per_index(sequence: str) -> str:
    """A template picking this task instance's item of the Jinja expression ``sequence``."""
    return "{{ " + sequence + "[ti.map_index] }}"
