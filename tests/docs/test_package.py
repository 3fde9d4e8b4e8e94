"""The package as PyPI receives it: the sdist and the wheel build, and ``twine check --strict`` passes on both
(the README renders as the long description, and no metadata field PyPI needs is missing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_sdist_and_wheel_pass_twine_check_strict(tmp_path):
    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    assert uv, "uv is installed by scripts/setup.sh"
    built = subprocess.run(
        [uv, "build", "-q", "--sdist", "--wheel", "--python", sys.executable, "--out-dir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    dists = sorted(tmp_path.glob("airflow_provider_brain-*"), key=lambda d: d.suffix)
    assert [d.suffix for d in dists] == [".gz", ".whl"], dists
    checked = subprocess.run(
        [str(BIN / "twine"), "check", "--strict", *map(str, dists)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout
    with zipfile.ZipFile(dists[1]) as wheel:
        names = wheel.namelist()
    assert "airflow_provider_brain/py.typed" in names, "the wheel ships its type information"
    assert not any(name.startswith(("tests/", "example_dags/", "deploy/")) for name in names)
