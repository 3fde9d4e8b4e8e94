"""Sphinx configuration of the provider's docs (``make docs``).

Nothing is fetched at build time: no intersphinx, no remote images. References to names outside this package
(Airflow, requests, httpx, the standard library) cannot be resolved without intersphinx, so nitpicky mode
checks only this package's own names; every ``:ref:``/``:doc:`` and ``literalinclude`` is checked by ``-W``.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# autodoc imports the provider, which imports Airflow: keep Airflow's home (its config, its SQLite file) out of
# the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="brain-docs-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from airflow_provider_brain import __version__  # noqa: E402

project = "airflow-provider-brain"
author = "airflow-provider-brain contributors"
copyright = "2026, airflow-provider-brain contributors"  # noqa: A001
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    # The whole reference (reference.md) is Markdown: the long form of what the README once held.
    "myst_parser",
]
myst_heading_anchors = 4

exclude_patterns = ["_build"]
# Fail on a page that no toctree includes, as on any other warning.
templates_path: list[str] = []

html_theme = "furo"
html_title = f"airflow-provider-brain {release}"
html_static_path: list[str] = []

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autoclass_content = "both"

# Nitpicky (-n): a reference into a module the API reference documents must resolve. Names outside the package
# (Airflow, requests, the standard library) have no inventory to resolve against without a network fetch, and the
# provider's internal modules (the hook's transport and listing layers, url_fields, ...) are not on these pages,
# so references into either are let through; the documented modules are read from api.rst.
DOCUMENTED_MODULES = re.findall(r"^\.\. automodule:: (\S+)$", (Path(__file__).parent / "api.rst").read_text(), re.M)
nitpicky = True
_documented = "|".join(map(re.escape, DOCUMENTED_MODULES))
nitpick_ignore_regex = [
    (r"py:.*", r"(?!airflow_provider_brain\.).*"),
    (r"py:.*", rf"(?!({_documented})\.\w+(\.\w+)?$)airflow_provider_brain\..*"),
    # Type variables (``Generic[HookT]`` in a class's bases) have no page of their own.
    (r"py:obj", r"airflow_provider_brain\..*\.[A-Z]\w*T"),
]
