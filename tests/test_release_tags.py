"""The release's wheel tag check (.ci/check_wheels.py), on file names a release produces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "check_wheels.py"
if not SCRIPT.is_file():
    pytest.skip(".ci/check_wheels.py is not here (an sdist has no .ci)", allow_module_level=True)
_spec = importlib.util.spec_from_file_location("check_wheels", SCRIPT)
check_wheels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_wheels)

PLATFORM_TAGS = [
    "manylinux_2_27_x86_64.manylinux_2_28_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64.manylinux_2_28_aarch64",
    "musllinux_1_2_x86_64",
    "musllinux_1_2_aarch64",
    "macosx_10_13_x86_64",
    "macosx_11_0_arm64",
]


def release(pythons=("cp311", "cp312")) -> list[str]:
    return [f"vjson-0.1.0-{py}-{py}-{plat}.whl" for py in pythons for plat in PLATFORM_TAGS]


def test_a_complete_release_passes(tmp_path):
    assert check_wheels.check(release()) == []
    for name in release() + ["vjson-0.1.0.tar.gz"]:
        (tmp_path / name).touch()
    assert check_wheels.main(["check_wheels.py", str(tmp_path)]) == 0


def test_a_wheel_built_on_this_machine_is_refused():
    # what `pip wheel .` makes on Debian 12, before and after auditwheel repair
    for plat in ("linux_x86_64", "manylinux_2_34_x86_64"):
        problems = check_wheels.check(release() + [f"vjson-0.1.0-cp311-cp311-{plat}.whl"])
        assert len(problems) == 1 and plat in problems[0]


def test_a_missing_platform_or_python_is_reported():
    names = [n for n in release() if "musllinux_1_2_aarch64" not in n]
    assert check_wheels.check(names) == ["no wheel for musllinux aarch64"]
    names = [n for n in release() if not ("cp312" in n and "macosx_11_0_arm64" in n)]
    assert check_wheels.check(names) == ["macOS arm64: no wheel for cp312"]


def test_an_abi3_or_pure_wheel_is_not_what_the_release_builds():
    problems = check_wheels.check(release() + ["vjson-0.1.0-py3-none-any.whl"])
    assert any("CPython-specific" in p for p in problems) and any("any" in p for p in problems)


def test_no_sdist_fails(tmp_path):
    for name in release():
        (tmp_path / name).touch()
    assert check_wheels.main(["check_wheels.py", str(tmp_path)]) == 1
