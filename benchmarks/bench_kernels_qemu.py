"""Distance kernels: each SIMD level against scalar, natively and for arm64 under qemu.

    python benchmarks/bench_kernels_qemu.py [--dims 128,384,1000] [--calls N]

Builds tests/native/simd_driver.c (tests/native/driver.py, the build the tests
use) natively and with gcc-aarch64-linux-gnu, and runs its `bench` mode: per
level and kernel, ns per call over 256 stored rows, 9 passes with the levels
interleaved (a, b, b, a, ...), median pass. Only ratios mean anything, and under
qemu they are not those of real arm64 silicon: qemu translates each NEON
instruction into several host instructions, while the scalar code's translation
is closer to native. The speed-up under qemu is a sanity check (NEON does less
work per element), not a performance claim.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _report import git_state, int_list, log  # noqa: E402
from native import driver  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int_list, default=[16, 128, 384, 1000])
    ap.add_argument("--calls", type=int, default=200_000, help="calls per pass (qemu runs get a tenth)")
    args = ap.parse_args()
    log(f"git {git_state()}; the machine is shared: compare ratios, not ns")
    with tempfile.TemporaryDirectory(prefix="vjson-bench-kernels-") as tmp:
        for target, calls in ((driver.native(), args.calls), (driver.aarch64(), args.calls // 10)):
            if target.missing():
                log(f"{target.name}: skipped, {', '.join(target.missing())} missing")
                continue
            binary = driver.build(target, Path(tmp))
            log(f"\n{target.name} ({' '.join(target.runner) or 'native'}), {calls} calls per pass")
            log(f"{'dim':>5} {'kernel':>7} " + " ".join(f"{'level':>8} {'ns/call':>9} {'x scalar':>8}" for _ in [0]))
            for dim in args.dims:
                out = driver.run(target, binary, "bench", str(dim), str(calls))
                if out.returncode != 0:
                    log(f"bench failed: {out.stderr}")
                    return 1
                for row in driver.parse(out.stdout, "BENCH"):
                    log(f"{dim:>5} {row['kernel']:>7} {row['level']:>8} {float(row['ns_per_call']):>9.1f} "
                        f"{float(row['speedup_vs_scalar']):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
