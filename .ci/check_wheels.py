"""Check the release wheels' tags before they are published.

    python .ci/check_wheels.py DIR        # every *.whl and *.tar.gz in DIR

Each wheel must carry a platform tag that the release promises to support, and
nothing newer: manylinux at most glibc 2.28 (the manylinux_2_28 image the release
builds in; a wheel tagged above it was built elsewhere, e.g. linux_x86_64 or
manylinux_2_34 from a developer's machine), musllinux at most 1.2, macOS at most
11.0. Every one of the six platforms (manylinux and musllinux x86_64/aarch64,
macOS x86_64/arm64) must have a wheel for the same CPython versions, and there
must be one sdist. Standard library only; exits 1 naming each problem.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

PLATFORMS = {  # family -> (tag pattern, newest allowed (major, minor))
    "manylinux x86_64": (re.compile(r"manylinux_(\d+)_(\d+)_x86_64"), (2, 28)),
    "manylinux aarch64": (re.compile(r"manylinux_(\d+)_(\d+)_aarch64"), (2, 28)),
    "musllinux x86_64": (re.compile(r"musllinux_(\d+)_(\d+)_x86_64"), (1, 2)),
    "musllinux aarch64": (re.compile(r"musllinux_(\d+)_(\d+)_aarch64"), (1, 2)),
    "macOS x86_64": (re.compile(r"macosx_(\d+)_(\d+)_x86_64"), (11, 0)),
    "macOS arm64": (re.compile(r"macosx_(\d+)_(\d+)_arm64"), (11, 0)),
}
# legacy aliases auditwheel adds next to the PEP 600 tags (glibc 2.17 and 2.5/2.12)
LEGACY = {"manylinux2014_x86_64", "manylinux2014_aarch64", "manylinux2010_x86_64", "manylinux1_x86_64"}
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def check(names: list[str]) -> list[str]:
    problems: list[str] = []
    pythons: dict[str, set[str]] = defaultdict(set)
    for name in names:
        m = WHEEL_NAME.match(name)
        if m is None:
            problems.append(f"{name}: not a wheel file name")
            continue
        if not m["py"].startswith("cp") or m["abi"] != m["py"]:
            problems.append(f"{name}: expected a CPython-specific wheel (cpXY-cpXY), got {m['py']}-{m['abi']}")
        family = None
        for tag in m["plat"].split("."):
            if tag in LEGACY:
                continue
            for fam, (pattern, newest) in PLATFORMS.items():
                t = pattern.fullmatch(tag)
                if t:
                    if (int(t[1]), int(t[2])) > newest:
                        problems.append(f"{name}: {tag} is newer than the release allows "
                                        f"({'.'.join(map(str, newest))}): built outside the release image?")
                    family = fam
                    break
            else:
                problems.append(f"{name}: platform tag {tag} is not one the release builds")
        if family:
            pythons[family].add(m["py"])
    everyone = set().union(*pythons.values()) if pythons else set()
    for fam in PLATFORMS:
        missing = everyone - pythons.get(fam, set())
        if not pythons.get(fam):
            problems.append(f"no wheel for {fam}")
        elif missing:
            problems.append(f"{fam}: no wheel for {', '.join(sorted(missing))}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[1])
    wheels = sorted(p.name for p in folder.glob("*.whl"))
    sdists = sorted(p.name for p in folder.glob("*.tar.gz"))
    problems = check(wheels)
    if len(sdists) != 1:
        problems.append(f"expected one sdist, found {sdists}")
    if problems:
        print(f"{folder}: {len(wheels)} wheels, {len(sdists)} sdists")
        for p in problems:
            print("  " + p)
        return 1
    print(f"{folder}: {len(wheels)} wheels for {len(PLATFORMS)} platforms, 1 sdist, tags within the release's")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
