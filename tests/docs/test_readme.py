"""The README is a landing page (#26): at most 150 lines, and every Python snippet in it is code the tests run,
found verbatim (dedented) in an example DAG or a test."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", text, re.S)


def dedented_sources() -> list[str]:
    files = sorted((ROOT / "example_dags").glob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    texts = [f.read_text() for f in files if f.name != Path(__file__).name]
    # A snippet quoted from inside a DAG's `with` block is indented there: compare dedented windows.
    return texts + [textwrap.dedent(t) for t in texts]


def found(snippet: str, sources: list[str]) -> bool:
    lines = snippet.splitlines()
    for text in sources:
        source_lines = text.splitlines()
        for start, line in enumerate(source_lines):
            if line.strip() != lines[0].strip():
                continue
            window = source_lines[start : start + len(lines)]
            if textwrap.dedent("\n".join(window)) == snippet:
                return True
    return False


def test_the_readme_fits_on_a_screen():
    assert len(README.read_text().splitlines()) <= 150


def test_every_python_snippet_is_tested_code():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2, "the README quotes the quick start and the search from the example DAGs"
    sources = dedented_sources()
    missing = [block.splitlines()[0] for block in blocks if not found(block, sources)]
    assert not missing, f"README snippets not found verbatim in example_dags/ or tests/: {missing}"


def test_the_two_commands_come_first():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)\n```", text, re.S)
    assert first_block and first_block.group(1).splitlines()[:2] == [
        "make demo   # installs what it needs, then: audio lands in S3 -> Brain transcribes it -> rows in a warehouse",
        "make test   # installs what it needs, then lint, types and the whole test suite (what CI runs)",
    ]
