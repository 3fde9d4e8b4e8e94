"""What ``BrainTranscribeOperator.partial()`` returns: an ``OperatorPartial`` that checks the expansion at parse time.

``expand()`` / ``expand_kwargs()`` on it check ``reuse_existing`` against the audio sources being expanded (a
bad combination fails the DAG file, naming it) and let a mapped ``start_from_trigger`` task start in the
triggerer (``start_choice.choose_mapped``).

``_expand`` and ``_expand_called`` are private to Airflow, but both ``expand()`` and ``expand_kwargs()`` end in
``_expand`` and no public hook says "a partial was expanded"; tests/provider/test_airflow_internals.py fails on
any supported release that changes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk.definitions.mappedoperator import OperatorPartial

from airflow_provider_brain.hooks.source_versions import check_reuse_existing
from airflow_provider_brain.operators import start_choice

#: The operator's audio source arguments (exactly one is given).
SOURCE_ARGUMENTS = ("s3_uri", "s3_bucket", "s3_key", "audio_url", "local_path")


class TriggerStartPartial(OperatorPartial):
    """``OperatorPartial`` whose ``expand()``/``expand_kwargs()`` check ``reuse_existing`` against the sources at
    parse time and let the mapped task start in the triggerer."""

    @classmethod
    def wrap(cls, partial: OperatorPartial) -> TriggerStartPartial:
        partial._expand_called = True  # Replaced by this one: no "never mapped" warning for it.
        return cls(operator_class=partial.operator_class, kwargs=partial.kwargs, params=partial.params)

    def _expand(self, expand_input: Any, *, strict: bool) -> Any:
        value = getattr(expand_input, "value", None)  # The expanded arguments (a dict), unless from expand_kwargs().
        given = [n for n, v in self.kwargs.items() if v] + (list(value) if isinstance(value, Mapping) else [])
        given = [name for name in given if name in SOURCE_ARGUMENTS]
        self._expand_called = True  # A bad argument fails the DAG file: no "never mapped" warning on top.
        check_reuse_existing(self.kwargs.get("reuse_existing"), given, "BrainTranscribeOperator")
        mapped = super()._expand(expand_input, strict=strict)
        start_choice.choose_mapped(mapped)
        return mapped
