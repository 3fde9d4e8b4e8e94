"""The docs (docs/, ``make docs``): the code they quote exists, and Sphinx builds them without a warning.

The how-to pages include example DAG code between ``# [START howto_...]`` / ``# [END howto_...]`` markers; a
marker renamed or dropped in a DAG would otherwise show up only when someone builds the docs.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from airflow_provider_brain.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# A literalinclude directive and the indented option lines that follow it.
INCLUDE = re.compile(r"^(?P<indent> *)\.\. literalinclude:: *(?P<path>\S+)\n(?P<options>(?:(?P=indent) +:.*\n)*)", re.M)
OPTION = re.compile(r"^ +:(?P<name>[\w-]+):(?: +(?P<value>.*))?$", re.M)


def includes() -> list[tuple[Path, Path, dict[str, str]]]:
    """Every literalinclude of every page: (page, included file, options)."""
    found = []
    for page in sorted(DOCS.rglob("*.rst")):
        if "_build" in page.parts:
            continue
        for match in INCLUDE.finditer(page.read_text()):
            path = match["path"]
            # Sphinx reads "/x" from the docs' root and "x" from the page's folder.
            target = DOCS / path[1:] if path.startswith("/") else page.parent / path
            options = {m["name"]: (m["value"] or "").strip() for m in OPTION.finditer(match["options"])}
            found.append((page, target.resolve(), options))
    return found


def test_the_pages_include_example_code():
    pages = {page.relative_to(DOCS).as_posix() for page, _, _ in includes()}
    assert {
        "howto/transcribe.rst",
        "howto/batch.rst",
        "howto/search.rst",
        "howto/s3_events.rst",
        "howto/deepgram.rst",
    } <= pages


@pytest.mark.parametrize(
    ("page", "target", "options"),
    [pytest.param(*item, id=f"{item[0].relative_to(DOCS)}:{item[2].get('start-after', '')}") for item in includes()],
)
def test_every_included_marker_exists(page: Path, target: Path, options: dict[str, str]):
    """Each quoted file exists and holds the page's start-after and end-before markers, in that order, once each."""
    assert target.is_file(), f"{page.relative_to(DOCS)} includes {target}, which does not exist"
    text = target.read_text()
    start, end = options.get("start-after"), options.get("end-before")
    assert start and end, f"{page.relative_to(DOCS)} includes all of {target.name}: quote it between markers"
    for marker in (start, end):
        count = text.count(marker)
        assert count == 1, f"{page.relative_to(DOCS)}: marker {marker!r} is in {target.name} {count} times, not once"
    assert text.index(start) < text.index(end), f"{target.name}: {end!r} comes before {start!r}"
    assert text[text.index(start) + len(start) : text.index(end)].strip(), f"{target.name}: nothing between markers"


def test_how_to_guides_in_the_provider_metadata_are_pages():
    """The integration's how-to guides (Airflow's provider page links them) point at pages that exist."""
    guides = [g for i in get_provider_info()["integrations"] for g in i.get("how-to-guide", [])]
    assert guides
    for guide in guides:
        assert guide.startswith("/docs/") and guide.endswith(".rst"), guide
        assert (ROOT / guide.lstrip("/")).is_file(), f"how-to guide {guide} does not exist"


@pytest.mark.parametrize("connection", get_provider_info()["connection-types"], ids=lambda c: str(c["connection-type"]))
def test_every_connection_type_has_a_page(connection):
    """docs/connections/<type>.rst, in the connection types' toctree, names every field the form relabels and every
    extra the form has a field for, and shows the type's environment-variable JSON."""
    conn_type = connection["connection-type"]
    page = DOCS / "connections" / f"{conn_type}.rst"
    assert page.is_file(), f"connection type {conn_type!r} has no page {page.relative_to(ROOT)}"
    text = page.read_text()
    assert f".. _howto/connection:{conn_type}:" in text
    toctree = (DOCS / "connections" / "index.rst").read_text()
    assert re.search(rf"^ +{re.escape(conn_type)}$", toctree, re.M), f"{conn_type} is not in connections/index.rst"
    behaviour = connection.get("ui-field-behaviour", {})
    for field, label in behaviour.get("relabeling", {}).items():
        assert label in text, f"{page.name} does not name the {field} field as the form does ({label!r})"
    for extra in connection.get("conn-fields", {}):
        assert f"``{extra}``" in text, f"{page.name} does not describe the extra {extra!r}"
    assert f'"conn_type": "{conn_type}"' in text, f"{page.name} has no AIRFLOW_CONN_* JSON example"


def public_classes() -> dict[str, str]:
    """The provider's user-facing classes (named ``Brain...`` or ``Deepgram...``), by name: where each is defined.
    The local server (``local/``) is a program of its own, not an API."""
    package = ROOT / "airflow_provider_brain"
    found = {}
    for path in sorted(package.rglob("*.py")):
        if "local" in path.relative_to(package).parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == name and attr.startswith(("Brain", "Deepgram")):
                found[attr] = name
    return found


def inventory(html: Path) -> set[str]:
    """The Python objects a Sphinx build documents, by full name (its objects.inv)."""
    data = (html / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four text lines, then the zlib-compressed entries
        header_end = data.index(b"\n", header_end) + 1
    entries = zlib.decompress(data[header_end:]).decode().splitlines()
    return {line.split(" ", 1)[0] for line in entries if " py:" in line}


@pytest.mark.timeout(180)
def test_sphinx_builds_the_docs_without_a_warning(tmp_path):
    """What ``make docs`` runs: warnings are errors (-W), references are checked (-n); nothing is fetched."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-n",
            "-W",
            "--keep-going",
            "-q",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "\n".join(warnings) or result.stderr[-3000:]
    page = re.sub(r"<[^>]+>", "", (tmp_path / "html" / "howto" / "transcribe.html").read_text())
    assert "BrainTranscribeOperator.partial(" in page and "[START" not in page
    page = re.sub(r"<[^>]+>", "", (tmp_path / "html" / "howto" / "deepgram.html").read_text())
    assert "DeepgramTranscribeBatchOperator(" in page and "[START" not in page
    # Each public class has an API entry (under its own module's name, or the module that exports it).
    documented = {name.rsplit(".", 1)[1] for name in inventory(tmp_path / "html")}
    missing = sorted(f"{module}.{name}" for name, module in public_classes().items() if name not in documented)
    assert not missing, f"public classes with no entry in docs/api.rst: {missing}"
