"""The docs (docs/, ``make docs``): the code they quote exists, and Sphinx builds them without a warning.

The how-to pages include example DAG code between ``# [START howto_...]`` / ``# [END howto_...]`` markers; a
marker renamed or dropped in a DAG would otherwise show up only when someone builds the docs.
"""

from __future__ import annotations

import re
import subprocess
import sys
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
