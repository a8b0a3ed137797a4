#!/usr/bin/env python3
"""The database layer (``vjson.VectorDB``) measured against hnswlib on the same data.

Four sections (``--sections``, default all):

* ``insert``: insert throughput (vectors/s) into a fresh database in batches of
  ``--batches`` (default 100 and 5,000) of 128-d clustered synthetic vectors,
  M=16, ef_construction=200: ``VectorDB`` with its durable default
  (``durability="sync"``), with ``durability="flush"``, the raw core
  ``vjson.HNSWIndex.add`` and hnswlib ``add_items``, all with the same thread
  count. Engines run interleaved, their order rotated between passes; the
  median of ``--reps`` passes is kept. The rate of each fifth of the run shows
  whether throughput holds up as the database grows.
* ``search``: single-thread queries/s of ``db.search(q, k=10)`` (one query per
  call, results as users get them: ``SearchResult`` objects with metadata)
  on WordNet (80,000 x 384 cosine) against hnswlib ``knn_query`` over an
  ef_search sweep, and the QPS each reaches at recall@10 = 0.95; then 2 Python
  threads calling ``db.search`` against 1 thread at the ef reaching 0.95.
* ``disk``: bytes per vector on disk beyond the raw float32 vector, per file,
  after ``close()`` (checkpointed), without metadata and with a small metadata
  object ``{"pos", "n_words", "lemmas"}``.
* ``reopen``: ``vjson.open(path)`` time of a database of ``--reopen-n``
  (default 1,000,000) x 128 vectors, and the time of the first queries after
  it; page cache warm, and "cold" (the folder's pages dropped with
  ``posix_fadvise(DONTNEED)`` before each open).

    python benchmarks/bench_database.py --quick
    python benchmarks/bench_database.py --sections insert,search --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402
from _report import fmt as _fmt, git_state, int_list as _int_list, log, median as _median, rate as _single_rate  # noqa: E402
from compare_peers import machine_info, qps_at_target  # noqa: E402

M = 16
EF_CONSTRUCTION = 200
K = 10
SEED = 100
SECTIONS = ["insert", "search", "disk", "reopen"]
DEFAULT_EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]










class _NoGC:
    """Garbage collector paused (after a collection) for a timed block."""

    def __enter__(self):
        gc.collect()
        self.was = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


def _dir_sizes(path: Path) -> Dict[str, int]:
    """Bytes per top-level entry of a folder (sub-folders summed)."""
    out = {}
    for entry in sorted(path.iterdir()):
        if entry.is_dir():
            out[entry.name + "/"] = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        else:
            out[entry.name] = entry.stat().st_size
    return out


def _file_kind(name: str) -> str:
    """'vectors-0.f32' -> 'vectors'; 'text-0/' -> 'text/'; 'MANIFEST.json' unchanged."""
    if name.endswith("/"):
        return name[:-1].split("-")[0] + "/"
    return name.split("-")[0] if "-" in name else name


# =========================================================================== insert

class _InsertEngine:
    name = "?"

    def __init__(self, dim: int, n: int, threads: int, tmp_root: str):
        self.dim, self.n, self.threads, self.tmp_root = dim, n, threads, tmp_root

    def start(self) -> None:
        """Create the empty target (untimed)."""

    def insert(self, s: int, e: int) -> None:
        raise NotImplementedError

    def finish(self) -> float:
        """Untimed clean-up; returns the seconds of any closing step worth reporting."""
        return 0.0


class _DBEngine(_InsertEngine):
    def __init__(self, dim, n, threads, tmp_root, durability, X, ids):
        super().__init__(dim, n, threads, tmp_root)
        self.durability = durability
        self.name = f"vjson db {durability}"
        self.X, self.ids = X, ids

    def start(self):
        import vjson
        self.folder = tempfile.mkdtemp(prefix="vjson_ins_", dir=self.tmp_root)
        self.db = vjson.VectorDB(os.path.join(self.folder, "db"), dimension=self.dim, metric="l2",
                                 M=M, ef_construction=EF_CONSTRUCTION, durability=self.durability)

    def insert(self, s, e):
        self.db.insert_batch(self.ids[s:e], self.X[s:e])

    def finish(self):
        t0 = time.perf_counter()
        self.db.close()
        dt = time.perf_counter() - t0
        self.db = None
        shutil.rmtree(self.folder, ignore_errors=True)
        return dt


class _CoreEngine(_InsertEngine):
    name = "vjson core HNSWIndex.add"

    def __init__(self, dim, n, threads, tmp_root, X):
        super().__init__(dim, n, threads, tmp_root)
        self.X = X
        self.labels = np.arange(n, dtype=np.uint64)

    def start(self):
        import vjson
        self.idx = vjson.HNSWIndex(self.dim, metric="l2", M=M, ef_construction=EF_CONSTRUCTION, seed=SEED)

    def insert(self, s, e):
        self.idx.add(self.X[s:e], self.labels[s:e], num_threads=self.threads)

    def finish(self):
        self.idx.close()
        self.idx = None
        return 0.0


class _HnswlibEngine(_InsertEngine):
    name = "hnswlib add_items"

    def __init__(self, dim, n, threads, tmp_root, X):
        super().__init__(dim, n, threads, tmp_root)
        import hnswlib
        self.mod = hnswlib
        self.X = X
        self.labels = np.arange(n, dtype=np.int64)

    def start(self):
        p = self.mod.Index(space="l2", dim=self.dim)
        p.init_index(max_elements=self.n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=SEED)
        self.p = p

    def insert(self, s, e):
        self.p.add_items(self.X[s:e], self.labels[s:e], num_threads=self.threads)

    def finish(self):
        self.p = None
        return 0.0


def run_insert(args, tmp_root: str) -> dict:
    n, dim = args.insert_n, 128
    log(f"\n=== insert: {n:,} x {dim}-d synthetic (l2), M={M}, ef_construction={EF_CONSTRUCTION}, "
        f"{args.threads} threads, batches {args.batches}, median of {args.reps} passes ===")
    t0 = time.perf_counter()
    ds = _data.make_synthetic(n=n, n_queries=1, dim=dim, seed=args.synthetic_seed, k=1)
    X = ds.base
    ids = [str(i) for i in range(n)]
    log(f"  data generated in {time.perf_counter() - t0:.1f} s")
    engines: List[_InsertEngine] = [
        _DBEngine(dim, n, args.threads, tmp_root, "sync", X, ids),
        _DBEngine(dim, n, args.threads, tmp_root, "flush", X, ids),
        _CoreEngine(dim, n, args.threads, tmp_root, X),
    ]
    try:
        engines.append(_HnswlibEngine(dim, n, args.threads, tmp_root, X))
    except ImportError as exc:
        log(f"  [skip] hnswlib: {exc}")
    segments = 5
    bounds = [round(n * i / segments) for i in range(segments + 1)]
    result = {"n": n, "dim": dim, "threads": args.threads, "batches": {}}
    for bi, B in enumerate(args.batches):
        per = {e.name: {"total_s": [], "segment_rates": [], "close_s": []} for e in engines}
        for rep in range(args.reps):
            shift = (rep + bi) % len(engines)
            for eng in engines[shift:] + engines[:shift]:
                eng.start()
                seg_t = [0.0] * segments
                seg_n = [0] * segments
                with _NoGC():
                    for s in range(0, n, B):
                        e = min(n, s + B)
                        t = time.perf_counter()
                        eng.insert(s, e)
                        dt = time.perf_counter() - t
                        # a batch counts in the fifth of the run where it starts
                        seg = min(segments - 1, int(np.searchsorted(bounds, s, side="right")) - 1)
                        seg_t[seg] += dt
                        seg_n[seg] += e - s
                close_s = eng.finish()
                total = sum(seg_t)
                rec = per[eng.name]
                rec["total_s"].append(total)
                rec["segment_rates"].append([seg_n[i] / seg_t[i] if seg_t[i] else None
                                             for i in range(segments)])
                rec["close_s"].append(close_s)
                log(f"  batch {B:6,d} pass {rep + 1}: {eng.name:26s} {n / total:10,.0f} vec/s")
        out = {}
        ref = None
        for name, rec in per.items():
            rate = n / _median(rec["total_s"])
            segs = [_median([r[i] for r in rec["segment_rates"] if r[i]]) for i in range(segments)]
            out[name] = {"vectors_per_s": rate, "passes_vectors_per_s": [n / t for t in rec["total_s"]],
                         "segment_vectors_per_s": segs, "close_s": _median(rec["close_s"])}
            if name.startswith("hnswlib"):
                ref = rate
        for name, r in out.items():
            r["ratio_vs_hnswlib"] = (r["vectors_per_s"] / ref) if ref else None
        result["batches"][str(B)] = out
    return result


def print_insert(res: dict) -> None:
    print(f"\n### Insert throughput: {res['n']:,} x {res['dim']}-d, {res['threads']} threads "
          f"(median of passes; ratio = engine / hnswlib)")
    hdr = (f"{'batch':>6s}  {'engine':26s} {'vectors/s':>10s} {'vs hnswlib':>10s}   "
           f"{'rate per fifth of the run (vectors/s)':40s}")
    print(hdr)
    print("-" * len(hdr))
    for B, engines in res["batches"].items():
        for name, r in engines.items():
            segs = " ".join(_fmt(s, "{:>7,.0f}") for s in r["segment_vectors_per_s"])
            extra = f"  (close {r['close_s']:.2f} s)" if name.startswith("vjson db") else ""
            print(f"{int(B):6,d}  {name:26s} {r['vectors_per_s']:10,.0f} "
                  f"{_fmt(r['ratio_vs_hnswlib'], '{:.2f}x'):>10s}   {segs}{extra}")
        print()


# =========================================================================== search

def _run_threads(call: Callable[[np.ndarray], object], Q: np.ndarray, nthreads: int,
                 duration: float) -> float:
    """Queries/s of `nthreads` Python threads each calling `call(q)` in a loop for
    about `duration` seconds (each thread starts at a different query)."""
    m = Q.shape[0]
    barrier = threading.Barrier(nthreads + 1)
    stop = threading.Event()
    counts = [0] * nthreads
    ends = [0.0] * nthreads
    chunk = 32

    def worker(t: int) -> None:
        i = (t * m) // nthreads
        c = 0
        barrier.wait()
        while not stop.is_set():
            for _ in range(chunk):
                call(Q[i])
                i += 1
                if i == m:
                    i = 0
            c += chunk
        counts[t] = c
        ends[t] = time.perf_counter()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    with _NoGC():
        barrier.wait()
        t0 = time.perf_counter()
        time.sleep(duration)
        stop.set()
        for th in threads:
            th.join()
    return sum(counts) / (max(ends) - t0)




def _load_wordnet_meta(data_dir: Path, n: int) -> Optional[List[dict]]:
    import orjson
    path = _data._wordnet_folder(data_dir) / "texts.jsonl"
    metas = []
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            doc = orjson.loads(line)
            doc.pop("id", None)
            doc.pop("text", None)
            metas.append(doc)
    return metas


def run_search(args, tmp_root: str) -> dict:
    import vjson
    data_dir = _data.resolve_data_dir(args.data_dir)
    ds = _data.load_wordnet(data_dir, n=args.search_n, n_queries=args.queries, k=K)
    log(f"\n=== search: {ds.describe()} (gt: {ds.info['gt']}), M={M}, ef_construction={EF_CONSTRUCTION} ===")
    n, m = ds.n, ds.queries.shape[0]
    metas = _load_wordnet_meta(data_dir, n)
    folder = tempfile.mkdtemp(prefix="vjson_search_", dir=tmp_root)
    path = os.path.join(folder, "db")
    res = {"dataset": ds.describe(), "n": n, "queries": m, "threads": args.threads}
    db = None
    try:
        t0 = time.perf_counter()
        db = vjson.VectorDB(path, dimension=ds.dim, metric="cosine", M=M, ef_construction=EF_CONSTRUCTION)
        ids = [str(i) for i in range(n)]
        for s in range(0, n, 5000):
            db.insert_batch(ids[s:s + 5000], ds.base[s:s + 5000], metas[s:s + 5000])
        db.close()
        res["db_build_s"] = time.perf_counter() - t0
        log(f"  vjson db built (batches of 5,000 with metadata, durability=sync) and closed in "
            f"{res['db_build_s']:.1f} s")
        db = vjson.open(path)  # searched as users search it: reopened, graph memory-mapped

        import hnswlib
        t0 = time.perf_counter()
        p = hnswlib.Index(space="cosine", dim=ds.dim)
        p.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=SEED)
        p.add_items(ds.base, np.arange(n), num_threads=args.threads)
        p.set_num_threads(1)
        res["hnswlib_build_s"] = time.perf_counter() - t0
        log(f"  hnswlib built in {res['hnswlib_build_s']:.1f} s")

        Q = ds.queries
        db_out: List[object] = [None] * m
        hn_out = np.zeros((m, K), dtype=np.int64)

        def db_loop():
            search = db.search
            for i in range(m):
                db_out[i] = search(Q[i], K)

        def hn_loop():
            knn = p.knn_query
            for i in range(m):
                hn_out[i] = knn(Q[i], K)[0][0]

        def db_recall():
            found = np.array([[int(r.id) for r in rs] + [-1] * (K - len(rs)) for rs in db_out])
            return _data.recall_at_k(found, ds.gt, K)

        engines = {"vjson db.search": (db_loop, db_recall, lambda ef: setattr(db, "ef_search", ef)),
                   "hnswlib knn_query": (hn_loop, lambda: _data.recall_at_k(hn_out, ds.gt, K), p.set_ef)}
        names = list(engines)
        # warm-up (pages in the memory-mapped graph)
        db.ef_search = 64
        p.set_ef(64)
        db_loop()
        hn_loop()
        sweep = {nm: [] for nm in names}
        for ei, ef in enumerate(args.ef):
            rates = {nm: [] for nm in names}
            for rep in range(args.search_reps):
                shift = (rep + ei) % len(names)
                for nm in names[shift:] + names[:shift]:
                    loop, _, set_ef = engines[nm]
                    set_ef(ef)
                    rates[nm].append(_single_rate(loop, m, args.min_time))
            line = [f"  ef {ef:4d}:"]
            for nm in names:
                loop, recall_fn, set_ef = engines[nm]
                rec = recall_fn()
                pt = {"ef": ef, "recall": rec, "qps_1t": _median(rates[nm]), "qps_1t_runs": rates[nm]}
                sweep[nm].append(pt)
                line.append(f"{nm} {rec:.4f} / {pt['qps_1t']:8,.0f} q/s")
            log("   ".join(line))
        res["sweep"] = sweep
        tgt = args.target_recall
        res["at_target"] = {nm: qps_at_target(sweep[nm], "qps_1t", tgt) for nm in names}
        a, b = res["at_target"]["vjson db.search"]["qps"], res["at_target"]["hnswlib knn_query"]["qps"]
        res["ratio_db_over_hnswlib_at_target"] = (a / b) if a and b else None

        # ---- 2 Python threads vs 1, at the first ef reaching the target (per engine)
        def first_ef(nm):
            for pt in sweep[nm]:
                if pt["recall"] >= tgt:
                    return pt["ef"]
            return max(args.ef)

        thr = {}
        db_ef = first_ef("vjson db.search")
        # the core index under the database, as a diagnostic: the reopened database's
        # own graph (memory-mapped, reading vectors from the vector file), called directly
        graph = db._gen.graph
        calls = {"vjson db.search": lambda q: db.search(q, K),
                 "hnswlib knn_query": lambda q: p.knn_query(q, K),
                 "vjson core search (db's graph)": lambda q: graph.search(q, K, db_ef)}
        # what 2 threads can get from the machine right now: a GIL-free C loop (hashlib
        # releases the GIL on large buffers), as a yardstick for the speed-ups
        blob = os.urandom(1 << 16)
        import hashlib
        calls["machine yardstick (sha256)"] = lambda q: hashlib.sha256(blob).digest()
        tnames = list(calls)
        for nm in tnames:
            thr[nm] = {"ef": first_ef(nm) if nm in sweep else (db_ef if "core" in nm else None),
                       "1": [], "2": []}
        db.ef_search = db_ef
        p.set_ef(thr["hnswlib knn_query"]["ef"])
        for rep in range(args.search_reps):
            order = tnames if rep % 2 == 0 else tnames[::-1]
            for nm in order:
                for t in ((1, 2) if rep % 2 == 0 else (2, 1)):
                    thr[nm][str(t)].append(_run_threads(calls[nm], Q, t, args.thread_time))
        for nm in tnames:
            one, two = _median(thr[nm]["1"]), _median(thr[nm]["2"])
            thr[nm].update(qps_1=one, qps_2=two, speedup=two / one)
            log(f"  threads at ef {_fmt(thr[nm]['ef'], '{:d}')}: {nm:30s} 1 thread {one:8,.0f} /s, "
                f"2 threads {two:8,.0f} /s, x{two / one:.2f}")
        res["threads"] = thr
        p = None
        return res
    finally:
        if db is not None:
            db.close()
        shutil.rmtree(folder, ignore_errors=True)


def print_search(res: dict, target: float) -> None:
    print(f"\n### Search through the database: {res['dataset']}, k={K}, 1 thread, one query per call")
    names = list(res["sweep"])
    hdr = f"{'ef':>5s}  " + "  ".join(f"{nm + ' recall':>24s} {'QPS':>8s}" for nm in names) + f"  {'QPS ratio':>9s}"
    print(hdr)
    print("-" * len(hdr))
    for i, ef in enumerate(p["ef"] for p in res["sweep"][names[0]]):
        pts = [res["sweep"][nm][i] for nm in names]
        ratio = pts[0]["qps_1t"] / pts[1]["qps_1t"] if len(pts) > 1 else None
        print(f"{ef:5d}  " + "  ".join(f"{pt['recall']:24.4f} {pt['qps_1t']:8,.0f}" for pt in pts)
              + f"  {_fmt(ratio, '{:.2f}x'):>9s}")
    print(f"\nAt recall@10 = {target} (interpolated on the sweep):")
    for nm, at in res["at_target"].items():
        print(f"  {nm:18s} {_fmt(at['qps'])} q/s at ef ~{_fmt(at['ef'], '{:.0f}')}  ({at['how']})")
    print(f"  ratio db.search / hnswlib: {_fmt(res['ratio_db_over_hnswlib_at_target'], '{:.2f}x')}")
    print("\nPython threads calling search (each engine at its first ef reaching the target; median of passes):")
    for nm, t in res["threads"].items():
        print(f"  {nm:30s} ef {_fmt(t['ef'], '{:d}'):>4s}: 1 thread {t['qps_1']:8,.0f} /s, "
              f"2 threads {t['qps_2']:8,.0f} /s, speed-up x{t['speedup']:.2f}")
    print("  (the yardstick is a GIL-free C loop: the speed-up 2 threads can get from the machine "
          "during this run)")


# =========================================================================== disk

def _small_meta(data_dir: Path, n: int) -> List[dict]:
    """{"pos", "n_words", "lemmas"} from WordNet rows (cycled), or synthetic look-alikes."""
    try:
        metas = _load_wordnet_meta(data_dir, min(n, 80_000))
        return [{"pos": d["pos"], "n_words": d["n_words"], "lemmas": d["lemmas"]}
                for d in (metas[i % len(metas)] for i in range(n))]
    except (_data.DataMissing, OSError):
        rng = np.random.default_rng(7)
        pos = np.array(["n", "v", "s", "a", "r"])[rng.choice(5, n, p=[0.7, 0.12, 0.09, 0.06, 0.03])]
        words = [f"w{i}" for i in range(5000)]
        return [{"pos": str(pos[i]), "n_words": int(rng.integers(1, 30)),
                 "lemmas": [words[j] + "ing" for j in rng.integers(0, 5000, int(rng.integers(1, 4)))]}
                for i in range(n)]


def run_disk(args, tmp_root: str) -> dict:
    import orjson
    import vjson
    n, dim = args.disk_n, 128
    log(f"\n=== disk: {n:,} x {dim}-d synthetic, size per file after close() (checkpointed) ===")
    ds = _data.make_synthetic(n=n, n_queries=1, dim=dim, seed=args.synthetic_seed, k=1)
    metas = _small_meta(_data.resolve_data_dir(args.data_dir), n)
    ids = [str(i) for i in range(n)]
    raw = dim * 4
    res = {"n": n, "dim": dim, "raw_vector_bytes": raw, "variants": {},
           "metadata_example": metas[0],
           "metadata_json_bytes_mean": float(np.mean([len(orjson.dumps(m)) for m in metas])),
           "id_bytes_mean": float(np.mean([len(i) for i in ids]))}
    for variant, md in (("no metadata", None), ("small metadata", metas)):
        folder = tempfile.mkdtemp(prefix="vjson_disk_", dir=tmp_root)
        path = Path(folder) / "db"
        try:
            db = vjson.VectorDB(path, dimension=dim, metric="l2", M=M, ef_construction=EF_CONSTRUCTION)
            for s in range(0, n, 5000):
                db.insert_batch(ids[s:s + 5000], ds.base[s:s + 5000], None if md is None else md[s:s + 5000])
            db.close()
            sizes = _dir_sizes(path)
            total = sum(sizes.values())
            res["variants"][variant] = {"files": sizes, "total_bytes": total,
                                        "bytes_per_vector": total / n,
                                        "beyond_raw_per_vector": total / n - raw}
            log(f"  {variant}: {total / n:,.1f} bytes/vector, {total / n - raw:,.1f} beyond the raw {raw} bytes")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    try:
        import hnswlib
        folder = tempfile.mkdtemp(prefix="vjson_disk_hnswlib_", dir=tmp_root)
        try:
            p = hnswlib.Index(space="l2", dim=dim)
            p.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=SEED)
            p.add_items(ds.base, np.arange(n), num_threads=args.threads)
            f = os.path.join(folder, "index.hnswlib")
            p.save_index(f)
            size = os.path.getsize(f)
            res["hnswlib"] = {"bytes": size, "bytes_per_vector": size / n, "beyond_raw_per_vector": size / n - raw}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except ImportError:
        pass
    return res


def print_disk(res: dict) -> None:
    n, raw = res["n"], res["raw_vector_bytes"]
    print(f"\n### Disk size after close(): {n:,} x {res['dim']}-d (raw float32 vector = {raw} bytes); "
          f"small metadata = e.g. {json.dumps(res['metadata_example'])[:80]} "
          f"(JSON {res['metadata_json_bytes_mean']:.0f} bytes on average), ids str(i) "
          f"({res['id_bytes_mean']:.1f} bytes)")
    variants = res["variants"]
    files = sorted({_file_kind(f) for v in variants.values() for f in v["files"]})
    hdr = f"{'file':14s}" + "".join(f"{v + ' B/vec':>22s}" for v in variants)
    print(hdr)
    print("-" * len(hdr))
    for kind in files:
        row = f"{kind:14s}"
        for v in variants.values():
            b = sum(sz for f, sz in v["files"].items() if _file_kind(f) == kind)
            row += f"{b / n:22,.1f}"
        print(row)
    print(f"{'total':14s}" + "".join(f"{v['bytes_per_vector']:22,.1f}" for v in variants.values()))
    print(f"{'beyond raw':14s}" + "".join(f"{v['beyond_raw_per_vector']:22,.1f}" for v in variants.values()))
    if "hnswlib" in res:
        h = res["hnswlib"]
        print(f"(hnswlib save_index of the same vectors: {h['bytes_per_vector']:,.1f} B/vector, "
              f"{h['beyond_raw_per_vector']:,.1f} beyond raw)")


# =========================================================================== reopen

def _drop_cache(folder: Path) -> None:
    """Ask the kernel to drop the folder's clean pages (best effort, no root needed)."""
    for f in folder.rglob("*"):
        if f.is_file():
            try:
                fd = os.open(f, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
            except (OSError, AttributeError):
                pass


def _warm_cache(folder: Path) -> None:
    """Read every file once, so a "warm" open after a cold pass is warm again."""
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def _build_reopen_db(path: Path, n: int, dim: int, seed: int) -> float:
    import vjson
    rng = np.random.default_rng([seed, 3])
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    pos = np.array(["n", "v", "s", "a", "r"])
    t0 = time.perf_counter()
    db = vjson.VectorDB(path, dimension=dim, metric="l2", M=M, ef_construction=EF_CONSTRUCTION,
                        durability="flush", max_elements=n)
    B = 10_000
    for s in range(0, n, B):
        e = min(n, s + B)
        c = rng.integers(0, 1000, e - s)
        X = (centres[c] + rng.standard_normal((e - s, dim), dtype=np.float32) * 0.75).astype(np.float32)
        p = rng.choice(5, e - s, p=[0.7, 0.12, 0.09, 0.06, 0.03])
        w = rng.integers(1, 40, e - s)
        db.insert_batch([str(i) for i in range(s, e)], X,
                        [{"pos": str(pos[a]), "n_words": int(b)} for a, b in zip(p, w)])
        if (s // B) % 10 == 9:
            el = time.perf_counter() - t0
            log(f"    {e:,} rows, {el:.0f} s ({e / el:,.0f} vec/s)")
    db.close()
    return time.perf_counter() - t0


def run_reopen(args, tmp_root: str) -> dict:
    import vjson
    n, dim = args.reopen_n, 128
    path = Path(args.reopen_dir or f"/tmp/vjson_bench_reopen_{n}x{dim}")
    log(f"\n=== reopen: {n:,} x {dim}-d database with small metadata at {path} ===")
    res = {"n": n, "dim": dim, "path": str(path)}
    manifest = path / "MANIFEST.json"
    reuse = False
    if manifest.exists() and not args.rebuild:
        try:
            reuse = json.loads(manifest.read_text()).get("rows") == n
        except (OSError, ValueError):
            reuse = False
    if reuse:
        log("  reusing the database built by an earlier run (--rebuild to build it again)")
        res["build_s"] = None
    else:
        if path.exists():
            shutil.rmtree(path)
        log("  building it (durability=flush, batches of 10,000); this takes a while at 1M rows")
        res["build_s"] = _build_reopen_db(path, n, dim, args.synthetic_seed)
        log(f"  built in {res['build_s']:.1f} s ({n / res['build_s']:,.0f} vec/s)")
    res["files"] = _dir_sizes(path)
    q = np.random.default_rng(5).standard_normal((64, dim)).astype(np.float32)
    modes = [("warm", False, False), ("warm, read_only", True, False), ("cold", False, True)]
    rec = {name: {"open_s": [], "first_query_s": [], "second_query_s": [], "next_62_queries_s": []}
           for name, _, _ in modes}
    for rep in range(args.reopen_reps):
        for name, ro, cold in modes:
            if cold:
                _drop_cache(path)
            else:
                _warm_cache(path)
            gc.collect()
            t0 = time.perf_counter()
            db = vjson.open(path, read_only=ro)
            t1 = time.perf_counter()
            db.search(q[0], K)
            t2 = time.perf_counter()
            db.search(q[1], K)
            t3 = time.perf_counter()
            for i in range(2, 64):
                db.search(q[i], K)
            t4 = time.perf_counter()
            db.close()
            r = rec[name]
            r["open_s"].append(t1 - t0)
            r["first_query_s"].append(t2 - t1)
            r["second_query_s"].append(t3 - t2)
            r["next_62_queries_s"].append(t4 - t3)
            log(f"  pass {rep + 1} {name:16s} open {1e3 * (t1 - t0):8.1f} ms, first query "
                f"{1e3 * (t2 - t1):7.2f} ms, second {1e3 * (t3 - t2):6.2f} ms")
    res["modes"] = {name: {k: _median(v) for k, v in r.items()} | {"runs": r} for name, r in rec.items()}
    if args.no_keep:
        shutil.rmtree(path, ignore_errors=True)
    else:
        log(f"  (the database stays at {path} for later runs: delete it by hand, or pass --no-keep)")
    return res


def print_reopen(res: dict) -> None:
    total = sum(res["files"].values())
    print(f"\n### Reopen: {res['n']:,} x {res['dim']}-d with small metadata, {total / 2**20:,.0f} MiB on disk "
          f"(median of passes)")
    hdr = f"{'mode':18s} {'vjson.open ms':>14s} {'1st query ms':>13s} {'2nd query ms':>13s} {'next 62 q, ms/q':>16s}"
    print(hdr)
    print("-" * len(hdr))
    for name, r in res["modes"].items():
        print(f"{name:18s} {1e3 * r['open_s']:14.1f} {1e3 * r['first_query_s']:13.2f} "
              f"{1e3 * r['second_query_s']:13.2f} {1e3 * r['next_62_queries_s'] / 62:16.3f}")
    print("files: " + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in res["files"].items()))


# =========================================================================== main



def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="vjson database benchmarks: insert, search, disk size, reopen.")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma list among {','.join(SECTIONS)} (default: all)")
    ap.add_argument("--insert-n", type=int, default=50_000, help="vectors inserted per pass (default 50,000)")
    ap.add_argument("--batches", type=_int_list, default=[100, 5000], help="batch sizes (default 100,5000)")
    ap.add_argument("--reps", type=int, default=3, help="insert passes per engine and batch size (median kept)")
    ap.add_argument("--search-n", type=int, default=None, help="WordNet base rows (default all 80,000)")
    ap.add_argument("--queries", type=int, default=1000, help="WordNet queries (default 1,000)")
    ap.add_argument("--ef", type=_int_list, default=DEFAULT_EFS, help="ef_search sweep")
    ap.add_argument("--search-reps", type=int, default=3, help="timed passes per search point (median kept)")
    ap.add_argument("--min-time", type=float, default=0.5, help="minimum seconds per timed search pass")
    ap.add_argument("--thread-time", type=float, default=1.0, help="seconds per 1- and 2-thread pass")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--disk-n", type=int, default=20_000, help="vectors for the disk-size section")
    ap.add_argument("--reopen-n", type=int, default=1_000_000, help="rows of the reopen database (default 1M)")
    ap.add_argument("--reopen-reps", type=int, default=5, help="opens timed per mode (median kept)")
    ap.add_argument("--reopen-dir", default=None,
                    help="where the reopen database lives (default /tmp/vjson_bench_reopen_<n>x128, reused "
                         "between runs when it holds --reopen-n rows)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the reopen database even if present")
    ap.add_argument("--no-keep", action="store_true", help="delete the reopen database at the end")
    ap.add_argument("--threads", type=int, default=None, help="insert threads (default vjson.default_threads())")
    ap.add_argument("--data-dir", default=None, help="shared data folder holding wordnet/")
    ap.add_argument("--synthetic-seed", type=int, default=42)
    ap.add_argument("--tmp", default=None, help="folder for temporary databases (default the system temp)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 5,000 inserts, 10,000 WordNet rows, 200 queries, 1 pass, reopen 20,000 rows")
    ap.add_argument("--json", metavar="OUT.json", default=None, help="write every number here")
    args = ap.parse_args(argv)
    if args.quick:
        args.insert_n = min(args.insert_n, 5000)
        args.reps = 1
        args.search_n = args.search_n or 10_000
        args.queries = min(args.queries, 200)
        args.ef = [16, 32, 64, 128]
        args.search_reps = 1
        args.min_time = 0.1
        args.thread_time = 0.3
        args.disk_n = min(args.disk_n, 5000)
        args.reopen_n = min(args.reopen_n, 20_000)
        args.reopen_reps = 2
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in args.sections if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose among {SECTIONS}")
    args.ef = sorted(set(args.ef))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import vjson
    if args.threads is None:
        args.threads = int(vjson.default_threads())
    if "search" in args.sections:
        try:
            _data._wordnet_folder(_data.resolve_data_dir(args.data_dir))
        except _data.DataMissing as exc:
            log(f"[skip] search section: {exc}")
            args.sections.remove("search")
    info = machine_info(args.threads)
    info["git"] = git_state()
    log(f"vjson at commit {info['git']['commit']}" + (" with uncommitted changes in src/" if info["git"]["src_dirty"] else ""))
    log(f"machine: {info['cpu']}, {info['cpus_usable']} usable CPUs, threads = {args.threads}, "
        f"simd {info.get('vjson_simd', {}).get('active')}")
    tmp_root = tempfile.mkdtemp(prefix="vjson_benchdb_", dir=args.tmp)
    results = {}
    try:
        if "insert" in args.sections:
            results["insert"] = run_insert(args, tmp_root)
        if "search" in args.sections:
            results["search"] = run_search(args, tmp_root)
        if "disk" in args.sections:
            results["disk"] = run_disk(args, tmp_root)
        if "reopen" in args.sections:
            results["reopen"] = run_reopen(args, tmp_root)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    print("\n(2 shared cores, other work running: compare numbers within one run; ratios are more "
          "meaningful than absolute rates)")
    if "insert" in results:
        print_insert(results["insert"])
    if "search" in results:
        print_search(results["search"], args.target_recall)
    if "disk" in results:
        print_disk(results["disk"])
    if "reopen" in results:
        print_reopen(results["reopen"])
    if args.json:
        out = {"benchmark": "bench_database", "params": {k: v for k, v in vars(args).items()},
               "machine": info, "results": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
        log(f"\n[json] wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
