"""The private Airflow internals the provider relies on, pinned (#23): each test fails the day a supported Airflow
release changes what the provider uses, instead of the provider breaking silently. They run on every release CI
tests (the floor suite runs tests/provider too).

Where each is used, and why no public API does the job:
- ``OperatorPartial._expand`` / ``_expand_called`` (operators/partial.py): ``expand()`` and ``expand_kwargs()``
  both end in ``_expand``, the one place to check the expanded sources at parse time and to set up a mapped
  ``start_from_trigger`` task; Airflow has no hook for "a partial was expanded".
- ``DictOfListsExpandInput`` (operators/trigger_start.py): the only way to tell which argument a mapped task
  expands over, so the triggerer can resolve each index's audio source.
- ``_do_render_template_fields`` (operators/url_fields.py): the one method a plain task's and a mapped task's
  rendering both call, right before the runner stores the rendered fields; the public ``render_template_fields``
  of a mapped task renders on another object.
"""

from __future__ import annotations

import inspect

from airflow.sdk import BaseOperator
from airflow.sdk.definitions.mappedoperator import MappedOperator, OperatorPartial


def test_operator_partial_expands_through_underscore_expand():
    signature = inspect.signature(OperatorPartial._expand)
    assert list(signature.parameters) == ["self", "expand_input", "strict"]
    assert signature.parameters["strict"].kind is inspect.Parameter.KEYWORD_ONLY
    source = inspect.getsource(OperatorPartial)
    assert "self._expand(DictOfListsExpandInput(" in source, "expand() no longer goes through _expand"
    assert "self._expand(ListOfDictsExpandInput(" in source, "expand_kwargs() no longer goes through _expand"
    assert "_expand_called" in source, "the 'never mapped' warning no longer reads _expand_called"


def test_dict_of_lists_expand_input_holds_the_expanded_arguments():
    from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput

    assert DictOfListsExpandInput({"s3_uri": ["s3://b/k"]}).value == {"s3_uri": ["s3://b/k"]}
    assert "expand_input" in {a.name for a in MappedOperator.__attrs_attrs__}


def test_rendering_goes_through_do_render_template_fields():
    signature = inspect.signature(BaseOperator._do_render_template_fields)
    assert list(signature.parameters) == ["self", "parent", "template_fields", "context", "jinja_env", "seen_oids"]
    assert "_do_render_template_fields" in inspect.getsource(BaseOperator.render_template_fields)
    assert "_do_render_template_fields" in inspect.getsource(MappedOperator.render_template_fields)


def test_the_provider_uses_what_is_pinned_here():
    """The other half of the pin: the provider's overrides still match the names above."""
    from airflow_provider_brain.operators.partial import TriggerStartPartial
    from airflow_provider_brain.operators.url_fields import HidesUrlSecrets

    assert "_expand" in vars(TriggerStartPartial)
    assert "_do_render_template_fields" in vars(HidesUrlSecrets)
    assert inspect.signature(TriggerStartPartial._expand).parameters.keys() == (
        inspect.signature(OperatorPartial._expand).parameters.keys()
    )
