"""The ``vjson`` command line."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import vjson


def demo(args: argparse.Namespace) -> int:
    """Build an index over clustered vectors, then search it plainly and with a filter."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(50, 64))
    which = rng.integers(0, 50, size=20_000)
    data = (centres[which] + rng.normal(size=(20_000, 64))).astype(np.float32)
    print(f"vjson {vjson.__version__}: SIMD kernels {vjson.simd_info()['active']}, {vjson.default_threads()} threads")
    index = vjson.HNSWIndex(64, "l2", M=16, ef_construction=200)
    start = time.perf_counter()
    index.add(data, np.arange(len(data)))
    print(f"indexed {len(index):,} vectors in {time.perf_counter() - start:.2f}s")
    queries = data[:200] + rng.normal(0, 0.1, size=(200, 64)).astype(np.float32)
    truth, _ = vjson.brute_force_knn(data, queries, 10)
    labels, _ = index.search_batch(queries, 10, ef_search=64)
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(labels, truth)])
    print(f"recall@10 against brute force: {recall:.3f}")
    found, dists = index.search(queries[0], 5)
    print("nearest 5 to query 0:", ", ".join(f"{int(l)} ({d:.2f})" for l, d in zip(found, dists)))
    same_cluster = which == which[found[0]]
    allowed = ~same_cluster
    found, dists = index.search(queries[0], 5, allowed=allowed)
    print("nearest 5 outside its cluster:", ", ".join(f"{int(l)} ({d:.2f})" for l, d in zip(found, dists)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vjson", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="index and search a small data set").set_defaults(run=demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except vjson.VJsonError as exc:
        print(f"vjson: error: {exc}", file=sys.stderr)
        return 1
