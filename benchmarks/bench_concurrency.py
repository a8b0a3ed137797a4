#!/usr/bin/env python3
"""Threads against one ``vjson.VectorDB``: read scaling and mixed read/write throughput.

Sections:

* ``read``: queries/s of ``db.search(q, k)`` (one query per call, SearchResult
  objects with metadata, as users get them) from 1 and 2 Python threads for
  ``--seconds`` each; the ratio is the parallel speed-up (the target on a
  2-core machine is >= 1.7x: searches release the GIL in the native core).
  Filtered searches (``filter={"bucket": ...}``, ~10 % of the records) too.
* ``mixed``: R reader threads searching while W writer threads upsert
  batches of ``--write-batch`` records (and delete some) for ``--seconds``:
  read queries/s, written records/s, and the longest single search.
* ``rdw`` (read during write): one thread searching, alone ("idle") or while
  one thread inserts continuously in batches of 10, 100 or 1,000. Passes of
  ``--rdw-seconds`` are interleaved (idle, 10, 100, 1000, 1000, 100, 10, idle,
  ... for ``--rdw-rounds``) so load from elsewhere hits every setting alike;
  reports the median queries/s, the p99 latency over all passes, the ratio to
  idle (target >= 0.5 with p99 < 5 ms on 2 cores) and the records/s written.
  The issue's setting: ``--dataset synthetic --n 50000 --sections rdw``.

Data: WordNet (``../shared/data/wordnet``, 384-d cosine; ``--data-dir`` or
``$VJSON_DATA``) when present, else a synthetic clustered set
(``--dataset synthetic``). ``--n`` records (default 20,000) are inserted
into a fresh database in a temporary folder.

    python benchmarks/bench_concurrency.py
    python benchmarks/bench_concurrency.py --n 80000 --seconds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS thread per Python thread in the baseline
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vjson  # noqa: E402
from _data import DataMissing, load_wordnet, make_synthetic, resolve_data_dir  # noqa: E402


def load(args) -> tuple[str, np.ndarray, np.ndarray, str]:
    if args.dataset in ("auto", "wordnet"):
        try:
            ds = load_wordnet(resolve_data_dir(args.data_dir), n=args.n + args.pool, n_queries=1000)
            return "wordnet", ds.base, ds.queries, ds.metric
        except DataMissing as exc:
            if args.dataset == "wordnet":
                raise SystemExit(str(exc))
    ds = make_synthetic(n=args.n + args.pool, n_queries=1000, dim=128)
    return "synthetic", ds.base, ds.queries, ds.metric


def run_threads(n: int, seconds: float, body) -> list:
    """Run body(i, stop) on n threads for `seconds`; returns their return values."""
    stop = threading.Event()
    out = [None] * n
    barrier = threading.Barrier(n + 1)

    def wrap(i):
        barrier.wait()
        out[i] = body(i, stop)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return out


def reader(db, queries, k, flt_fn=None):
    def body(i, stop):
        j = i * 997
        count = 0
        worst = 0.0
        t0 = time.perf_counter()
        while not stop.is_set():
            q = queries[j % len(queries)]
            t = time.perf_counter()
            db.search(q, k=k, filter=flt_fn(j) if flt_fn else None)
            worst = max(worst, time.perf_counter() - t)
            j += 1
            count += 1
        return count, time.perf_counter() - t0, worst
    return body


def read_during_write(db, queries, pool, args, rows, results) -> None:
    """One searching thread, idle or beside one thread inserting batches continuously."""
    settings = ["idle", 10, 100, 1000]
    order = []
    for r in range(args.rdw_rounds):
        order += settings if r % 2 == 0 else settings[::-1]
    qps: dict = {s: [] for s in settings}
    lat: dict = {s: [] for s in settings}
    wrote: dict = {s: 0 for s in settings}
    serial = [0]
    for setting in order:
        stop = threading.Event()
        barrier = threading.Barrier(3 if setting != "idle" else 2)
        out: dict = {}

        def search_loop():
            times = []
            j = 0
            barrier.wait()
            t0 = time.perf_counter()
            while not stop.is_set():
                t = time.perf_counter()
                db.search(queries[j % len(queries)], k=args.k)
                times.append(time.perf_counter() - t)
                j += 1
            out["rate"] = len(times) / (time.perf_counter() - t0)
            out["times"] = times

        def insert_loop(batch=setting):
            rng = np.random.default_rng(serial[0])
            n = 0
            barrier.wait()
            while not stop.is_set():
                pick = rng.integers(0, len(pool), batch)
                serial[0] += 1
                db.insert_batch([f"rdw{serial[0]}-{i}" for i in range(batch)], pool[pick],
                                [{"bucket": int(p % 10)} for p in pick])
                n += batch
            out["written"] = n

        threads = [threading.Thread(target=search_loop)]
        if setting != "idle":
            threads.append(threading.Thread(target=insert_loop))
        for t in threads:
            t.start()
        barrier.wait()
        time.sleep(args.rdw_seconds)
        stop.set()
        for t in threads:
            t.join()
        qps[setting].append(out["rate"])
        lat[setting].extend(out["times"])
        wrote[setting] += out.get("written", 0)
    idle = float(np.median(qps["idle"]))
    for setting in settings:
        rate = float(np.median(qps[setting]))
        p99 = float(np.percentile(lat[setting], 99)) * 1000
        wps = wrote[setting] / (args.rdw_seconds * args.rdw_rounds)
        label = "read during write: idle" if setting == "idle" else f"read during write: batch {setting}"
        note = f"p99 {p99:.2f} ms, x{rate / idle:.2f} of idle" + (f", {wps:,.0f} records/s written"
                                                                   if setting != "idle" else "")
        rows.append((label, "1R" if setting == "idle" else "1R+1W", f"{rate:,.0f} q/s", note))
        results[f"rdw/{setting}"] = {"qps": round(rate), "p99_ms": round(p99, 3), "ratio": round(rate / idle, 3),
                                     "records_per_s": round(wps), "passes": [round(q) for q in qps[setting]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("auto", "wordnet", "synthetic"), default="auto")
    ap.add_argument("--data-dir")
    ap.add_argument("--n", type=int, default=20_000, help="records in the database")
    ap.add_argument("--pool", type=int, default=5_000, help="extra vectors the writers upsert")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--write-batch", type=int, default=100)
    ap.add_argument("--sections", default="read,mixed,rdw")
    ap.add_argument("--rdw-seconds", type=float, default=2.0)
    ap.add_argument("--rdw-rounds", type=int, default=2)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()

    name, vectors, queries, metric = load(args)
    base, pool = vectors[:args.n], vectors[args.n:]
    tmp = Path(tempfile.mkdtemp(prefix="vjson-bench-conc-"))
    results: dict = {"dataset": name, "n": len(base), "dim": int(base.shape[1]), "metric": metric,
                     "cores": os.cpu_count(), "simd": vjson.simd_info(), "ef_search": args.ef, "k": args.k}
    rows = []
    try:
        db = vjson.VectorDB(tmp / "db", dimension=base.shape[1], metric=metric, ef_search=args.ef,
                            durability="flush")
        t = time.perf_counter()
        for s in range(0, len(base), 5000):
            db.insert_batch([f"r{i}" for i in range(s, min(s + 5000, len(base)))], base[s:s + 5000],
                            [{"bucket": i % 10} for i in range(s, min(s + 5000, len(base)))])
        results["build_seconds"] = round(time.perf_counter() - t, 2)
        print(f"{name}: {len(base):,} x {base.shape[1]}-d {metric}, built in {results['build_seconds']}s; "
              f"{os.cpu_count()} cores, simd {vjson.simd_info()}, ef_search {args.ef}, k {args.k}")
        for q in queries[:200]:  # warm up caches and the page cache
            db.search(q, k=args.k)

        if "read" in args.sections:
            # what the machine gives two threads right now: a GIL-free numpy baseline (other load on
            # shared cores lowers every ratio below; compare the search ratios with this one)
            mat = np.random.default_rng(0).random((256, 256))

            def burn(i, stop):
                count = 0
                t0 = time.perf_counter()
                while not stop.is_set():
                    mat @ mat
                    count += 1
                return count, time.perf_counter() - t0, 0.0

            base_rate = {t: sum(c for c, _, _ in out) / max(s for _, s, _ in out)
                         for t in (1, 2) for out in [run_threads(t, min(args.seconds, 2.0), burn)]}
            base_ratio = base_rate[2] / base_rate[1]
            rows.append(("machine baseline (numpy, no GIL)", "2 vs 1", "", f"x{base_ratio:.2f} vs 1 thread"))
            results["baseline_ratio"] = round(base_ratio, 3)
            for label, flt in (("search", None), ("filtered search (10%)", lambda j: {"bucket": j % 10})):
                qps = {}
                for threads in (1, 2):
                    out = run_threads(threads, args.seconds, reader(db, queries, args.k, flt))
                    qps[threads] = sum(c for c, _, _ in out) / max(s for _, s, _ in out)
                ratio = qps[2] / qps[1]
                rows.append((label, "1 thread", f"{qps[1]:,.0f} q/s", ""))
                rows.append((label, "2 threads", f"{qps[2]:,.0f} q/s", f"x{ratio:.2f} vs 1 thread"))
                results[f"read/{label}"] = {"qps_1": round(qps[1]), "qps_2": round(qps[2]), "ratio": round(ratio, 3)}

        if "mixed" in args.sections:
            for n_readers, n_writers in ((1, 1), (2, 1), (6, 2)):
                written = [0] * n_writers

                def body(i, stop, n_readers=n_readers, written=written):
                    if i < n_readers:
                        return reader(db, queries, args.k)(i, stop)
                    w = i - n_readers
                    rng = np.random.default_rng(w)
                    t0 = time.perf_counter()
                    while not stop.is_set():
                        pick = rng.integers(0, len(pool), args.write_batch)
                        ids = [f"w{w}-{p}" for p in pick]
                        db.insert_batch(ids, pool[pick], [{"bucket": int(p % 10)} for p in pick])
                        written[w] += len(ids)
                        if rng.random() < 0.2:
                            live = [x for x in dict.fromkeys(ids) if x in db]
                            db.delete(live[:10])
                    return None, time.perf_counter() - t0, 0.0

                out = run_threads(n_readers + n_writers, args.seconds, body)
                reads = out[:n_readers]
                qps = sum(c for c, _, _ in reads) / max(s for _, s, _ in reads)
                worst = max(wst for _, _, wst in reads)
                wps = sum(written) / args.seconds
                label = f"mixed {n_readers}R+{n_writers}W"
                rows.append((label, "reads", f"{qps:,.0f} q/s", f"longest search {worst * 1000:.1f} ms"))
                rows.append((label, "writes", f"{wps:,.0f} records/s", f"batches of {args.write_batch}"))
                results[label] = {"read_qps": round(qps), "write_records_per_s": round(wps),
                                  "longest_search_ms": round(worst * 1000, 2)}
        if "rdw" in args.sections:
            read_during_write(db, queries, pool, args, rows, results)
        db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(("workload", "threads", "throughput", "note"), widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
