"""Build and run simd_driver.c natively or, cross-compiled, under qemu-user.

Shared by tests/test_simd_driver.py and benchmarks/bench_kernels_qemu.py, so the
test and the measurement run the same binary built the same way. Standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
CORE_DIR = ROOT / "src" / "_core"
SOURCE = Path(__file__).resolve().parent / "simd_driver.c"
# The flags CMakeLists.txt gives the extension (-O3, no -march: portable baseline),
# plus warnings as errors so a kernel that only builds with warnings fails here.
FLAGS = ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Werror"]


@dataclass(frozen=True)
class Target:
    """A way to build the driver and run what it built."""
    name: str
    compiler: str
    extra_flags: Sequence[str]
    runner: Sequence[str]  # prefix of the command line, e.g. ["qemu-aarch64"]

    def missing(self) -> List[str]:
        tools = [self.compiler] + ([self.runner[0]] if self.runner else [])
        return [t for t in tools if shutil.which(t) is None]


def native_compiler() -> str:
    """The C compiler Python was built with, if present, else cc."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return cc if shutil.which(cc) else "cc"


def native() -> Target:
    return Target("native", native_compiler(), [], [])


def aarch64() -> Target:
    # static: no arm64 sysroot needed at run time; armv8-a is the AArch64 baseline
    return Target("aarch64", "aarch64-linux-gnu-gcc", ["-static", "-march=armv8-a"], ["qemu-aarch64"])


def x86_64_on(cpu: str) -> Target:
    """The native x86-64 build, run under qemu emulating an older CPU model."""
    return Target(f"x86_64/{cpu}", native_compiler(), [], ["qemu-x86_64", "-cpu", cpu])


def sources_present() -> bool:
    return SOURCE.is_file() and (CORE_DIR / "simd.h").is_file()


def build(target: Target, out_dir: Path) -> Path:
    """Compile the driver for `target` into out_dir; raises CalledProcessError with the log."""
    out = out_dir / f"simd_driver-{target.name.replace('/', '-')}"
    cmd = [target.compiler, *FLAGS, *target.extra_flags, "-I", str(CORE_DIR), str(SOURCE), "-o", str(out), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    return out


def run(target: Target, binary: Path, *args: str, simd_env: Optional[str] = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VJSON_SIMD"}
    if simd_env is not None:
        env["VJSON_SIMD"] = simd_env
    return subprocess.run([*target.runner, str(binary), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


_FIELD = re.compile(r"(\w+)=(\S+)")


def parse(stdout: str, tag: str) -> List[Dict[str, str]]:
    """The key=value fields of every output line starting with `tag` (RESULT, LEVELS, BENCH)."""
    rows = []
    for line in stdout.splitlines():
        if line.startswith(tag + " "):
            row = dict(_FIELD.findall(line))
            row["verdict"] = line.rsplit(" ", 1)[-1]
            rows.append(row)
    return rows
