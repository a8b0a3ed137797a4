"""The distance kernels of src/_core/simd.h checked outside Python, on every CPU we can reach.

tests/native/simd_driver.c runs every kernel of every level the CPU supports (the
float32 ones and the float16 / uint8 / binary code ones of simd_codes.h) on
all lengths 1..1024 (placed at a guard page, so an over-read faults, and at
unaligned offsets) against a double-precision reference with a worst-case
float32 error bound. It is built:

- natively (the x86 levels of this machine, the same ones the extension sees);
- for arm64 with gcc-aarch64-linux-gnu and run under qemu-aarch64 (the NEON kernels);
- natively and run under qemu-x86_64 emulating a CPU without AVX (no SIGILL, the
  wide levels refused), and the installed extension imported there too.

The cross tests skip when the tools are absent (.ci/run installs them with apt).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys

import pytest

import vjson
from native import driver

pytestmark = pytest.mark.skipif(not driver.sources_present(), reason="the C sources (src/_core) are not here")

IS_X86_64 = platform.machine() in ("x86_64", "AMD64")
# qemu CPU models: no AVX at all; AVX2+FMA but no AVX-512 (TCG has no AVX-512)
CPU_NO_AVX = "Nehalem"
CPU_AVX2_ONLY = "Haswell"


def _build_or_skip(target: driver.Target, tmp_path_factory) -> str:
    missing = target.missing()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install gcc-aarch64-linux-gnu qemu-user)")
    try:
        return str(driver.build(target, tmp_path_factory.mktemp(target.name.replace("/", "-"))))
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"building the driver for {target.name} failed:\n{exc.stderr}")


@pytest.fixture(scope="module")
def native_binary(tmp_path_factory):
    return _build_or_skip(driver.native(), tmp_path_factory)


@pytest.fixture(scope="module")
def aarch64_binary(tmp_path_factory):
    return _build_or_skip(driver.aarch64(), tmp_path_factory)


def _check(target: driver.Target, binary) -> tuple[dict, dict]:
    out = driver.run(target, binary, "check")
    assert out.returncode == 0, f"{target.name}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    results = {(r["level"], r["kernel"]): r for r in driver.parse(out.stdout, "RESULT")}
    (levels,) = driver.parse(out.stdout, "LEVELS")
    return results, levels


# every kernel the driver checks, with its case count: lengths 1..1024 in three
# placements, and for hamming two more bit strings past NEON's counter flush
KERNEL_CASES = {"l2sq": 3 * 1024, "ipdist": 3 * 1024, "l2sq_f16": 3 * 1024, "ipdist_f16": 3 * 1024,
                "dot_u8": 3 * 1024, "hamming": 3 * 1024 + 2}


def _assert_passed(results: dict, level: str) -> None:
    assert {kernel for (lv, kernel) in results if lv == level} == set(KERNEL_CASES)
    for kernel, cases in KERNEL_CASES.items():
        row = results[(level, kernel)]
        assert row["verdict"] == "PASS" and int(row["cases"]) == cases, (level, kernel, row)
        assert float(row["worst"]) <= 1.0


def test_native_driver_passes_every_level_the_extension_uses(native_binary):
    results, levels = _check(driver.native(), native_binary)
    info = vjson.simd_info()
    # the driver and the extension compile the same header: they must see the same CPU
    assert levels["supported"].split(",") == info["available"]
    assert levels["best"] == info["best"]
    for level in info["available"]:
        _assert_passed(results, level)


def test_native_driver_env_choice_falls_back_to_best(native_binary):
    target = driver.native()
    best = vjson.simd_info()["best"]
    assert driver.run(target, native_binary, "init", simd_env="scalar").stdout.split() == ["ACTIVE", "scalar"]
    foreign = "neon" if IS_X86_64 else "avx2"
    assert driver.run(target, native_binary, "init", simd_env=foreign).stdout.split() == ["ACTIVE", best]
    assert driver.run(target, native_binary, "init", simd_env="nonsense").stdout.split() == ["ACTIVE", best]


def test_neon_kernels_under_qemu_aarch64(aarch64_binary):
    target = driver.aarch64()
    results, levels = _check(target, aarch64_binary)
    assert levels["supported"] == "scalar,neon" and levels["best"] == "neon"
    assert levels["refused"] == "avx2,avx512"
    _assert_passed(results, "scalar")
    _assert_passed(results, "neon")
    for kernel in ("l2sq", "l2sq_f16"):  # sums of squares: no cancellation, so close to scalar
        assert float(results[("neon", kernel)]["maxrel_vs_scalar"]) < 1e-4
    assert float(results[("neon", "hamming")]["worst"]) == 0.0  # exact counts
    # VJSON_SIMD on arm64: an x86 level falls back to NEON, scalar is honoured
    assert driver.run(target, aarch64_binary, "init", simd_env="avx2").stdout.split() == ["ACTIVE", "neon"]
    assert driver.run(target, aarch64_binary, "init", simd_env="scalar").stdout.split() == ["ACTIVE", "scalar"]


@pytest.mark.skipif(not IS_X86_64, reason="emulates older x86-64 CPUs")
def test_x86_driver_on_a_cpu_without_avx_refuses_the_wide_kernels(native_binary):
    target = driver.x86_64_on(CPU_NO_AVX)
    if target.missing():
        pytest.skip("qemu-x86_64 not installed (apt-get install qemu-user)")
    results, levels = _check(target, native_binary)  # a SIGILL would be a non-zero exit
    assert levels["supported"] == "scalar" and levels["best"] == "scalar"
    assert set(levels["refused"].split(",")) == {"avx2", "avx512", "neon"}
    _assert_passed(results, "scalar")
    assert driver.run(target, native_binary, "init", simd_env="avx2").stdout.split() == ["ACTIVE", "scalar"]
    # on an AVX2 CPU without AVX-512, asking for avx512 gets avx2. (Only "init" runs
    # here: qemu 7.2 emulates vfmadd231ss with a 16-byte read, which faults at the
    # driver's guard page although real CPUs read 4 bytes.)
    avx2_cpu = driver.x86_64_on(CPU_AVX2_ONLY)
    assert driver.run(avx2_cpu, native_binary, "init", simd_env="avx512").stdout.split() == ["ACTIVE", "avx2"]


@pytest.mark.skipif(not IS_X86_64, reason="x86 instruction encodings")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
def test_only_the_wide_kernels_contain_avx_instructions(native_binary):
    """Built as CMake builds the core (-O3, no -march), nothing outside the
    target-attributed kernels may be VEX/EVEX-encoded (v-prefixed mnemonics):
    the scalar path and the dispatch must run on any x86-64."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", native_binary], capture_output=True,
                             text=True, check=True).stdout
    functions_using_avx, function = set(), None
    for line in listing.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if head:
            function = head.group(1)
        elif re.match(r"^\s+[0-9a-f]+:\s+v[a-z0-9]+\s", line):
            functions_using_avx.add(function)
    assert {"vj_l2sq_avx2", "vj_ipdist_avx2", "vj_l2sq_avx512", "vj_ipdist_avx512", "vj_l2sq_f16_avx2",
            "vj_dot_u8_avx2", "vj_l2sq_f16_avx512"} <= functions_using_avx
    assert all(re.search(r"_(avx2|avx512|hsum256)", f) for f in functions_using_avx), functions_using_avx


def _python_under_qemu(cpu: str, simd_env: str | None) -> subprocess.CompletedProcess:
    code = (
        "import numpy as np, vjson\n"
        "rng = np.random.default_rng(0)\n"
        "data = rng.normal(size=(300, 37)).astype(np.float32)\n"
        "index = vjson.HNSWIndex(dim=37, metric='l2')\n"
        "index.add(data, np.arange(300, dtype=np.uint64))\n"
        "labels, _ = index.search(data[5], k=1)\n"
        "ids, _ = vjson.brute_force_knn(data, data[:3], 1)\n"
        "print(vjson.simd_info()['active'], int(labels[0]), ids.ravel().tolist())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VJSON_SIMD"}
    if simd_env is not None:
        env["VJSON_SIMD"] = simd_env
    return subprocess.run(["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.skipif(not IS_X86_64, reason="emulates older x86-64 CPUs")
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="qemu-x86_64 not installed (apt-get install qemu-user)")
@pytest.mark.parametrize("cpu, simd_env, active, message", [
    (CPU_NO_AVX, None, "scalar", "has none of vjson's SIMD kernels"),
    (CPU_NO_AVX, "avx2", "scalar", "cannot run the avx2 kernels; vjson uses its scalar kernels"),
    (CPU_AVX2_ONLY, "avx512", "avx2", "cannot run the avx512 kernels; vjson uses its avx2 kernels"),
])
def test_import_on_an_older_cpu_warns_and_works(cpu, simd_env, active, message):
    out = _python_under_qemu(cpu, simd_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [active, "5", "[0,", "1,", "2]"]
    assert "RuntimeWarning" in out.stderr and message in out.stderr
