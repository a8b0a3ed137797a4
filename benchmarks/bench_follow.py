"""What following the writer costs a read-only handle per read call.

A read-only handle stats the manifest and the log before every read call
(vjson._following). This compares, in one process with passes interleaved
(writer handle, reader handle, reader, writer, ...), the per-call time of
``get`` and ``search`` on a reader with the same calls on the writer's own
handle (which checks nothing), and times ``refresh()`` alone (the check with
nothing new). Prints medians and the reader/writer ratio.

    python benchmarks/bench_follow.py [--rows 20000] [--dim 64] [--passes 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

import vjson


def per_call(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--passes", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    path = tempfile.mkdtemp(prefix="vjson-bench-follow-")
    writer = vjson.VectorDB(path, dimension=args.dim, metric="l2")
    vecs = rng.normal(size=(args.rows, args.dim)).astype(np.float32)
    writer.insert_batch([f"r{i}" for i in range(args.rows)], vecs)
    reader = vjson.VectorDB(path, read_only=True)
    query = vecs[7]
    calls = {
        "refresh": (lambda db: db.refresh, 20000),
        "get": (lambda db: (lambda: db.get("r7", include=["metadata"])), 20000),
        "search k=10": (lambda db: (lambda: db.search(query, k=10)), 2000),
    }
    results: dict[tuple[str, str], list[float]] = {}
    for p in range(args.passes):
        order = [("writer", writer), ("reader", reader)]
        if p % 2:
            order.reverse()
        for who, db in order:
            for name, (make, n) in calls.items():
                results.setdefault((name, who), []).append(per_call(make(db), n))
    print(f"{args.rows} x {args.dim}, {args.passes} interleaved passes (shared machine: compare ratios)")
    for name in calls:
        w = statistics.median(results[(name, "writer")])
        r = statistics.median(results[(name, "reader")])
        print(f"{name:12s} writer {w:8.2f} us  reader {r:8.2f} us  reader - writer {r - w:+7.2f} us  ratio {r / w:5.2f}")
    reader.close()
    writer.close()


if __name__ == "__main__":
    main()
