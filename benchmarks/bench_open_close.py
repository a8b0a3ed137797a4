"""What opening and closing a large database costs, and how that scales with what changed.

Builds (once, kept at --db) an N-row database (default 1,000,000 x 32-d, l2,
small metadata, no text), then per case copies that folder (a warm copy: the
page cache holds it) and measures, as the median of --passes:

- ``open``: ``VectorDB(path)`` of the clean copy, then its ``first search``
  and ``first get(id)``;
- ``close`` after nothing changed, after 0.05%, 0.1% and 1% inserts, after 1,000
  metadata updates and after 1,000 deletes (the change itself is not timed),
  and ``open`` of the folder each close left.

A folder built by an older vjson is brought to the current format first (one
insert, then a close, which rewrites everything once); the copies start from
that. Results go to --out as a small JSON (commit, machine, versions).

    python benchmarks/bench_open_close.py [--rows 1000000] [--dim 32] [--passes 5] [--quantization int8]
        [--db /tmp/vjson-open-close-1000000x32] [--out benchmarks/results/open-close-1m.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vjson  # noqa: E402
from _report import git_state, log  # noqa: E402

#: Inserts as 1 row in this many: 0.05% patches the graph file (its open maps the
#: file and copies the pages the patch writes); from 0.1% on, the patch would be
#: wide at 1M rows and the close saves the graph whole (vjson._checkpoint).
INSERTS = {"insert 0.05%": 2000, "insert 0.1%": 1000, "insert 1%": 100}
CASES = ("nothing", *INSERTS, "1,000 metadata updates", "1,000 deletes")


def build(path: Path, rows: int, dim: int, quantization: str | None = None) -> None:
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    db = vjson.VectorDB(path, dimension=dim, metric="l2", durability="flush", quantization=quantization)
    step = 50_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        db.insert_batch([f"id{i}" for i in range(start, start + n)],
                        rng.normal(size=(n, dim)).astype(np.float32),
                        [{"g": i % 10, "n": i} for i in range(start, start + n)])
        log(f"  built {start + n:,} rows ({time.perf_counter() - t:.0f} s)")
    db.close()


def manifest_format(path: Path) -> int:
    return json.loads((path / "MANIFEST.json").read_text())["format"]


def fresh_copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    os.sync()  # a fresh copy's pages are dirty: a close's fsyncs would write the whole copy
    return dst


def change(db: vjson.VectorDB, case: str, rows: int, dim: int, rng: np.random.Generator) -> None:
    if case in INSERTS:
        n = max(1, rows // INSERTS[case])
        db.insert_batch([f"new{i}" for i in range(n)], rng.normal(size=(n, dim)).astype(np.float32),
                        [{"g": 99, "n": i} for i in range(n)])
    elif "metadata" in case:
        for i in rng.choice(rows, 1000, replace=False).tolist():
            db.update_metadata(f"id{i}", {"g": 42, "n": i})
    elif "deletes" in case:
        db.delete([f"id{i}" for i in rng.choice(rows, 1000, replace=False).tolist()])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None, help="where the per-case copies go")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--label", default="", help="a name for this build in the output (e.g. main)")
    ap.add_argument("--quantization", default=None, help="the database's kind (default float32)")
    args = ap.parse_args()
    kind = f"-{args.quantization}" if args.quantization else ""
    base = args.db or Path(f"/tmp/vjson-open-close-{args.rows}x{args.dim}{kind}")
    work = args.work or Path(f"{base}-work-{os.getpid()}")
    if not (base / "MANIFEST.json").exists():
        log(f"building {args.rows:,} x {args.dim} at {base}")
        build(base, args.rows, args.dim, args.quantization)
    src = base
    if manifest_format(base) < vjson.database.FORMAT_VERSION:
        src = Path(f"{base}-format{vjson.database.FORMAT_VERSION}")
        if not (src / "MANIFEST.json").exists():
            log(f"bringing {base} to format {vjson.database.FORMAT_VERSION} at {src}")
            fresh_copy(base, src)
            db = vjson.VectorDB(src)
            db.insert("upgrade", np.zeros(args.dim, dtype=np.float32))
            db.close()
    rng = np.random.default_rng(1)
    query = rng.normal(size=args.dim).astype(np.float32)
    times: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds * 1000)

    for p in range(args.passes):
        folder = fresh_copy(src, work)
        t, db = timed(lambda: vjson.VectorDB(folder))
        note("open", t)
        note("first search", timed(lambda: db.search(query, k=10))[0])
        note("first get(id)", timed(lambda: db.get(f"id{args.rows // 2}"))[0])
        db.close()
        order = list(CASES) if p % 2 == 0 else list(reversed(CASES))
        for case in order:
            folder = fresh_copy(src, work)
            db = vjson.VectorDB(folder)
            change(db, case, args.rows, args.dim, rng)
            note(f"close after {case}", timed(db.close)[0])
            t, db = timed(lambda: vjson.VectorDB(folder))
            note(f"open after {case}", t)
            note(f"first search after {case}", timed(lambda: db.search(query, k=10))[0])
            db.close()
        log(f"  pass {p + 1}/{args.passes} done")
    shutil.rmtree(work, ignore_errors=True)
    medians = {name: round(statistics.median(v), 2) for name, v in times.items()}
    log(f"{args.rows:,} x {args.dim}, median of {args.passes} passes (ms), warm page cache")
    for name, ms in medians.items():
        log(f"  {name:<40} {ms:>10.1f}")
    if args.out:
        result = {"benchmark": "open-close", "label": args.label, "rows": args.rows, "dim": args.dim,
                  "quantization": args.quantization,
                  "passes": args.passes, "ms": medians, **git_state(), "vjson": vjson.__version__,
                  "python": platform.python_version(), "machine": platform.machine(),
                  "cpus": os.cpu_count(), "platform": platform.platform()}
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        runs = previous.get("runs", {}) if isinstance(previous, dict) else {}
        runs[args.label or "current"] = result
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
