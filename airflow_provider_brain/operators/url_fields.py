"""Templated URL fields whose secrets never reach Airflow's Rendered Template tab.

Airflow's task runner renders an operator's template fields and, straight away, sends their values to the API
server, which stores them (``rendered_task_instance_fields``) for the Rendered Template tab. It hides only what
the log masker knows, and a presigned URL's signature is unknown to it then (a batch of 1,000 URLs could not
register them anyway: each mask recompiles the masker's pattern). So an operator with this mixin swaps, right
after rendering, each field named in ``url_fields`` for its URLs with their secrets hidden (``***``), and keeps
the real value for itself: ``rendered_url(name)`` is what the task submits.

The swap happens in ``_do_render_template_fields``, the method both a plain task's ``render_template_fields`` and
a mapped task's (on the unmapped operator it makes for the map index) call; a deferred task resuming in a worker
is rendered again, so it gets the real URL back the same way. The method is private to Airflow, and no public
one runs between rendering and storing for both kinds of task: tests/provider/test_airflow_internals.py fails on
any supported release that changes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_brain.sources import hide_secrets_in_urls

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context
    from airflow.sdk.definitions._internal.templater import Templater

    _Base = Templater
else:
    _Base = object


class HidesUrlSecrets(_Base):
    """Mixin (before ``BaseOperator``) for operators with templated URL fields; see the module's docstring."""

    #: Template fields holding a URL or a list of URLs.
    url_fields: ClassVar[Sequence[str]] = ()

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Iterable[str],
        context: Context,
        jinja_env: jinja2.Environment,
        seen_oids: set[int],
    ) -> None:
        template_fields = list(template_fields)
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is not self:
            return
        for name in self.url_fields:
            if name in template_fields:
                self._hide_url_secrets(name)

    def _hide_url_secrets(self, name: str) -> None:
        value = getattr(self, name)
        shown = hide_secrets_in_urls(value)
        if shown == value:
            return
        real: dict[str, tuple[Any, Any]] = self.__dict__.setdefault("_real_url_fields", {})
        real[name] = (shown, value)
        setattr(self, name, shown)

    def rendered_url(self, name: str) -> Any:
        """The field ``name`` as rendered, secrets included: what the task must submit."""
        value = getattr(self, name)
        shown, real = self.__dict__.get("_real_url_fields", {}).get(name, (None, None))
        return real if shown is not None and value is shown else value
