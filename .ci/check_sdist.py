"""Check an sdist's contents against the source tree it was built from.

    python .ci/check_sdist.py dist/vjson-X.Y.Z.tar.gz [SOURCE_TREE]

It must hold everything a build from it needs (the Cython core, the build
files, the package with its typing files and demo data) and the tests, and no
build output, caches, virtual environments or databases. Standard library only.
Exits 1 naming each problem.
"""

from __future__ import annotations

import fnmatch
import sys
import tarfile
from pathlib import Path, PurePosixPath

# files of the source tree the sdist must carry (globs relative to the tree)
REQUIRED_GLOBS = [
    "pyproject.toml",
    "CMakeLists.txt",
    "README.md",
    "src/_core/*.pyx",
    "src/_core/*.pxd",
    "src/_core/*.pxi",
    "src/_core/*.h",
    "src/vjson/*.py",
    "src/vjson/integrations/*.py",
    "src/vjson/*.pyi",
    "src/vjson/py.typed",
    "src/vjson/demo_data/*",
    "tests/*.py",
    "tests/native/*",
    "tests/data/db-before-quantization/*",
    "tests/data/int8-format4/*",
    "tests/data/db-format3/*",
]
# must be present whatever the tree holds
MUST_HAVE = ["PKG-INFO", "pyproject.toml", "CMakeLists.txt", "README.md", "src/_core/_core.pyx",
             "src/vjson/__init__.py", "src/vjson/py.typed", "src/vjson/_core.pyi",
             "src/vjson/demo_data/base.f16.npy", "src/vjson/demo_data/records.jsonl", "tests/conftest.py"]
# build output, caches, environments and vjson databases: never in an sdist
FORBIDDEN_PARTS = {"build", "_skbuild", "dist", "__pycache__", ".git", ".pytest_cache", ".hypothesis",
                   ".mypy_cache", ".ruff_cache", ".benchmarks", "demo-db"}
FORBIDDEN_PART_GLOBS = [".venv*", "venv", "*.egg-info", "vjson-demo-*"]
FORBIDDEN_NAMES = ["*.so", "*.pyd", "*.dylib", "*.o", "*.a", "*.c", "*.cpp", "*.html", "*.pyc", "*.whl",
                   "*.tar.gz", "*.vjl", "*.vjx", "*.vjs", "*.vjm", "*.f32", "MANIFEST.json"]
# named on purpose, not build output or stray data: the kernels' hand-written test
# driver, the committed database in the format before quantization and the int8
# index files of format 4 that the compatibility tests open, and a database of manifest
# format 3 (before segmented checkpoints)
ALLOWED_GLOBS = ["tests/native/*.c", "tests/data/db-before-quantization/*", "tests/data/int8-format4/*",
                 "tests/data/db-format3/*"]
MAX_BYTES = 10 * 1024 * 1024  # the sdist is ~1.4 MB, most of it the demo data


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python .ci/check_sdist.py SDIST [SOURCE_TREE]", file=sys.stderr)
        return 2
    sdist = Path(argv[1])
    tree = Path(argv[2] if len(argv) == 3 else ".")
    problems: list[str] = []

    with tarfile.open(sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    tops = {PurePosixPath(n).parts[0] for n in names}
    if len(tops) != 1:
        print(f"{sdist}: expected one top-level folder, found {sorted(tops)}")
        return 1
    top = tops.pop()
    files = {str(PurePosixPath(*PurePosixPath(n).parts[1:])) for n in names}

    required = set(MUST_HAVE)
    for pattern in REQUIRED_GLOBS:
        required.update(p.relative_to(tree).as_posix() for p in tree.glob(pattern)
                        if p.is_file() and "__pycache__" not in p.parts)
    for name in sorted(required - files):
        problems.append(f"missing: {name}")

    for name in sorted(files):
        parts = PurePosixPath(name).parts
        dirs = parts[:-1]
        if name.startswith("benchmarks/results/") or any(d in FORBIDDEN_PARTS or any(fnmatch.fnmatch(d, g) for g in FORBIDDEN_PART_GLOBS) for d in dirs):
            problems.append(f"must not ship: {name}")
        elif (any(fnmatch.fnmatch(parts[-1], g) for g in FORBIDDEN_NAMES)
              and not any(fnmatch.fnmatch(name, g) for g in ALLOWED_GLOBS)):
            problems.append(f"must not ship (build output or data): {name}")

    size = sdist.stat().st_size
    if size > MAX_BYTES:
        problems.append(f"{size / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit: what was added?")

    if problems:
        print(f"{sdist.name} ({top}/, {len(files)} files):")
        for p in problems:
            print("  " + p)
        return 1
    print(f"{sdist.name}: {len(files)} files, {size / 2**20:.1f} MiB; sources, typing files, demo data "
          f"and tests present, no build output")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
