#!/usr/bin/env python3
"""ShardedVectorDB on a local Ray cluster (1, 2, 4 shards) against one local VectorDB.

Measures, on the same synthetic data (``--n`` x 128 clustered, squared L2):

* insert throughput: the data goes in ``--chunk``-record batches, each chunk
  into every engine in turn (order rotated per chunk), so machine noise hits
  all engines alike;
* batch-search QPS: ``batch_search`` of the 1,000 queries (k=10, ef 64),
  ``--reps`` interleaved passes, median;
* single-query latency: ``search`` one query per call, p50 / p99 over
  ``--latency-queries`` per pass, interleaved; the difference to the local
  VectorDB is the scatter-gather overhead per call;
* recall@10 against exact brute force;
* memory: each shard actor's RSS and its folder's size, per vector.

All shards share this machine's cores: on 2 cores more shards cannot be
faster; the point is the per-call overhead and how it scales.

    python benchmarks/bench_distributed.py                  # 200k x 128
    python benchmarks/bench_distributed.py --n 50000 --json /tmp/out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vjson  # noqa: E402
from _data import make_synthetic, recall_at_k  # noqa: E402
from _report import fmt, git_state, log, median  # noqa: E402


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    import psutil
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep Ray on loopback (it rewrites 127.0.0.1 otherwise)
    import ray

    from vjson.distributed import ShardedVectorDB

    shard_counts = [int(s) for s in args.shards.split(",")]
    log(f"data: synthetic {args.n:,} x 128 (l2), 1,000 queries; machine shared, {os.cpu_count()} cores")
    ds = make_synthetic(n=args.n, n_queries=1000, dim=128)
    ids = [str(i) for i in range(args.n)]
    total_shards = sum(shard_counts)
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    root = Path(tempfile.mkdtemp(prefix="vjson-bench-distributed-"))
    options = {"M": 16, "ef_construction": args.ef_construction, "durability": "flush"}
    engines: dict[str, object] = {"local": vjson.VectorDB(root / "local", 128, "l2", **options)}
    for s in shard_counts:
        engines[f"{s} shard{'s' if s > 1 else ''}"] = ShardedVectorDB(
            f"s{s}", root, 128, "l2", shards=s, shard_cpus=1.8 / total_shards, **options)
    names = list(engines)

    # ---- insert, chunk by chunk, engines rotated
    spent = dict.fromkeys(names, 0.0)
    for c, start in enumerate(range(0, args.n, args.chunk)):
        stop = min(args.n, start + args.chunk)
        order = names[c % len(names):] + names[:c % len(names)]
        for name in order:
            t0 = time.perf_counter()
            engines[name].insert_batch(ids[start:stop], ds.base[start:stop])  # type: ignore[attr-defined]
            spent[name] += time.perf_counter() - t0
    insert = {name: args.n / spent[name] for name in names}
    log("insert (records/s): " + ", ".join(f"{n} {fmt(insert[n])}" for n in names))

    # ---- batch QPS and single-query latency, interleaved passes
    qps: dict[str, list[float]] = {n: [] for n in names}
    lat: dict[str, list[float]] = {n: [] for n in names}
    found: dict[str, np.ndarray] = {}
    lq = ds.queries[:args.latency_queries]
    for rep in range(args.reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            db = engines[name]
            t0 = time.perf_counter()
            res = db.batch_search(ds.queries, 10)  # type: ignore[attr-defined]
            qps[name].append(len(ds.queries) / (time.perf_counter() - t0))
            found[name] = np.array([[int(r.id) for r in row] for row in res])
            for q in lq:
                t0 = time.perf_counter()
                db.search(q, 10)  # type: ignore[attr-defined]
                lat[name].append((time.perf_counter() - t0) * 1e3)
    results = {"n": args.n, "dim": 128, "shards": shard_counts, "reps": args.reps, "git": git_state(),
               "machine": f"shared, {os.cpu_count()} cores, Ray local (num_cpus=2)", "engines": {}}
    base_p50 = float(np.percentile(lat["local"], 50))
    log(f"{'engine':>10} {'insert/s':>9} {'x local':>7} {'batch QPS':>9} {'x local':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'overhead ms':>11} {'recall@10':>9}")
    for name in names:
        p50, p99 = (float(np.percentile(lat[name], p)) for p in (50, 99))
        row = {"insert_per_s": insert[name], "insert_x_local": insert[name] / insert["local"],
               "batch_qps": median(qps[name]), "batch_qps_x_local": median(qps[name]) / median(qps["local"]),
               "p50_ms": p50, "p99_ms": p99, "overhead_p50_ms": p50 - base_p50,
               "recall_at_10": recall_at_k(found[name], ds.gt, 10)}
        results["engines"][name] = row
        log(f"{name:>10} {fmt(row['insert_per_s']):>9} {row['insert_x_local']:7.2f} {fmt(row['batch_qps']):>9} "
            f"{row['batch_qps_x_local']:7.2f} {p50:7.2f} {p99:7.2f} {row['overhead_p50_ms']:11.2f} "
            f"{row['recall_at_10']:9.4f}")

    # ---- memory per shard
    for name in names[1:]:
        db = engines[name]
        per = []
        for i, actor in enumerate(db.actors):  # type: ignore[attr-defined]
            info = ray.get(actor.info.remote())
            rss = psutil.Process(info["pid"]).memory_info().rss
            disk = folder_bytes(root / f"s{db.shards}" / f"shard-{i}")  # type: ignore[attr-defined]
            per.append({"records": info["records"], "rss_bytes": rss, "folder_bytes": disk})
        results["engines"][name]["shard_memory"] = per
        log(f"{name}: per shard " + "; ".join(
            f"{p['records']:,} rec, RSS {p['rss_bytes'] / 2**20:,.0f} MiB, folder {p['folder_bytes'] / 2**20:,.0f} MiB "
            f"({p['folder_bytes'] / max(p['records'], 1):,.0f} B/vector)" for p in per))
    idle = ShardedVectorDB("idle", root, 128, "l2", shards=1, shard_cpus=0.1)
    results["empty_shard_rss_bytes"] = psutil.Process(ray.get(idle.actors[0].info.remote())["pid"]).memory_info().rss
    log(f"an empty shard actor's RSS: {results['empty_shard_rss_bytes'] / 2**20:,.0f} MiB")
    idle.close()
    for db in engines.values():
        db.close()  # type: ignore[attr-defined]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
