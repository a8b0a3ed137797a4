"""The public API is typed: mypy passes on the package sources."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_clean():
    pytest.importorskip("mypy")
    if not (ROOT / "src" / "vjson").is_dir():
        pytest.skip("no source tree beside the tests")
    run = subprocess.run([sys.executable, "-m", "mypy", "src/vjson"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_py_typed_marker_is_installed():
    import vjson

    package = Path(vjson.__file__).parent
    assert (package / "py.typed").exists() and (package / "_core.pyi").exists()
