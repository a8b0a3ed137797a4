#!/usr/bin/env python3
"""vjson's HNSW against hnswlib, FAISS (IndexHNSWFlat) and usearch on the same data.

Every engine builds the same vectors with M=16, ef_construction=200, then an
ef_search sweep measures, per engine and ef:

* recall@10 against exact ground truth;
* single-thread queries per second, one query per call as a user calls it
  (vjson ``idx.search(q, 10)``, hnswlib ``knn_query(q, 10)`` after
  ``set_num_threads(1)``, faiss ``index.search(q[None], 10)`` under
  ``omp_set_num_threads(1)``, usearch ``index.search(q, 10)``); the engines run
  interleaved over the same query list and the median of ``--reps`` passes is kept;
* batch throughput with all threads (vjson ``search_batch``, hnswlib
  ``knn_query(Q)``, faiss ``search(Q)``, usearch ``search(Q)``), median of ``--reps``.

Besides: build time with 1 thread and with all threads, index size on disk,
load time, the QPS each engine reaches at recall@10 = 0.95 (interpolated on the
sweep) with the ratio vjson/peer, and the build-time ratio vjson/peer.

    python benchmarks/compare_peers.py --quick
    python benchmarks/compare_peers.py --dataset both --json out.json --plot out.png

A peer that is not installed (or fails) is skipped with a message.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402

M = 16
EF_CONSTRUCTION = 200
K = 10
SEED = 100
DEFAULT_EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]
ALL_ENGINES = ["vjson", "hnswlib", "faiss", "usearch"]
VERIFY_EF = 64  # ef at which a loaded index must answer like the one saved


def log(msg: str) -> None:
    print(msg, flush=True)


def _pkg_version(name: str, module=None) -> str:
    v = getattr(module, "__version__", None) if module is not None else None
    if v:
        return str(v)
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "?"


def _path_size(path: str) -> int:
    if os.path.isdir(path):
        return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return os.path.getsize(path)


def _normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-30), dtype=np.float32)


# --------------------------------------------------------------------------- engines
#
# Each adapter owns one built index. `single(Q, out)` is the timed loop of
# one-query calls (written per engine, so no wrapper call sits between the loop
# and the library); `batch(Q, threads)` one call over all queries.

class Engine:
    name = "?"
    module_name = "?"
    file_name = "index.bin"

    def __init__(self, metric: str, dim: int, threads: int):
        self.metric, self.dim, self.threads = metric, dim, threads
        self.index = None

    # prepare the query matrix the way this engine is fed (outside any timing)
    def prep_queries(self, Q: np.ndarray) -> np.ndarray:
        return Q

    def build(self, base: np.ndarray, threads: int):
        raise NotImplementedError

    def set_ef(self, ef: int) -> None:
        raise NotImplementedError

    def single(self, Q: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def batch(self, Q: np.ndarray, threads: int) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: str) -> None:
        raise NotImplementedError

    def load(self, path: str):
        """Return a new adapter holding the loaded index."""
        raise NotImplementedError

    def enter_single_thread(self) -> None:
        pass

    def close(self) -> None:
        self.index = None


class VJsonEngine(Engine):
    name = module_name = "vjson"
    file_name = "index.vjson"

    def __init__(self, metric, dim, threads):
        super().__init__(metric, dim, threads)
        import vjson
        self.mod = vjson
        self.version = _pkg_version("vjson", vjson)

    def build(self, base, threads):
        idx = self.mod.HNSWIndex(self.dim, metric=self.metric, M=M,
                                 ef_construction=EF_CONSTRUCTION,
                                 capacity=base.shape[0], seed=SEED)
        idx.add(base, np.arange(base.shape[0], dtype=np.uint64), num_threads=threads)
        self.index = idx

    def set_ef(self, ef):
        self.index.ef_search = ef

    def single(self, Q, out):
        search = self.index.search
        for i in range(Q.shape[0]):
            out[i] = search(Q[i], K)[0]

    def batch(self, Q, threads):
        return self.index.search_batch(Q, K, num_threads=threads)[0]

    def save(self, path):
        self.index.save(path)

    def load(self, path):
        new = VJsonEngine(self.metric, self.dim, self.threads)
        new.index = self.mod.HNSWIndex.load(path)
        return new

    def close(self):
        if self.index is not None:
            try:
                self.index.close()
            except Exception:
                pass
        self.index = None


class HnswlibEngine(Engine):
    name = module_name = "hnswlib"
    file_name = "index.hnswlib"

    def __init__(self, metric, dim, threads):
        super().__init__(metric, dim, threads)
        import hnswlib
        self.mod = hnswlib
        self.version = _pkg_version("hnswlib", hnswlib)
        self.space = {"cosine": "cosine", "l2": "l2", "ip": "ip"}[metric]

    def build(self, base, threads):
        p = self.mod.Index(space=self.space, dim=self.dim)
        p.init_index(max_elements=base.shape[0], M=M, ef_construction=EF_CONSTRUCTION,
                     random_seed=SEED)
        p.add_items(base, np.arange(base.shape[0]), num_threads=threads)
        self.index = p

    def enter_single_thread(self):
        self.index.set_num_threads(1)

    def set_ef(self, ef):
        self.index.set_ef(ef)

    def single(self, Q, out):
        knn = self.index.knn_query
        for i in range(Q.shape[0]):
            out[i] = knn(Q[i], K)[0][0]

    def batch(self, Q, threads):
        # explicit count: after set_num_threads(1) the default would be 1
        return self.index.knn_query(Q, K, num_threads=threads)[0]

    def save(self, path):
        self.index.save_index(path)

    def load(self, path):
        new = HnswlibEngine(self.metric, self.dim, self.threads)
        p = self.mod.Index(space=self.space, dim=self.dim)
        p.load_index(path)
        new.index = p
        return new


class FaissEngine(Engine):
    name = module_name = "faiss"
    file_name = "index.faiss"

    def __init__(self, metric, dim, threads):
        super().__init__(metric, dim, threads)
        import faiss
        self.mod = faiss
        self.version = _pkg_version("faiss-cpu", faiss)
        # cosine = inner product over unit vectors (normalised here; the other
        # engines normalise internally). Build timing includes that step.
        self.cosine = metric == "cosine"
        self.faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def prep_queries(self, Q):
        return _normalized(Q) if self.cosine else Q

    def build(self, base, threads):
        self.mod.omp_set_num_threads(threads)
        try:
            data = _normalized(base) if self.cosine else base
            index = self.mod.IndexHNSWFlat(self.dim, M, self.faiss_metric)
            index.hnsw.efConstruction = EF_CONSTRUCTION
            index.add(data)
        finally:
            self.mod.omp_set_num_threads(1)
        self.index = index

    def enter_single_thread(self):
        self.mod.omp_set_num_threads(1)

    def set_ef(self, ef):
        self.index.hnsw.efSearch = ef

    def single(self, Q, out):
        search = self.index.search
        for i in range(Q.shape[0]):
            out[i] = search(Q[i:i + 1], K)[1][0]

    def batch(self, Q, threads):
        self.mod.omp_set_num_threads(threads)
        try:
            return self.index.search(Q, K)[1]
        finally:
            self.mod.omp_set_num_threads(1)

    def save(self, path):
        self.mod.write_index(self.index, path)

    def load(self, path):
        new = FaissEngine(self.metric, self.dim, self.threads)
        new.index = self.mod.read_index(path)
        return new


class USearchEngine(Engine):
    name = module_name = "usearch"
    file_name = "index.usearch"

    def __init__(self, metric, dim, threads):
        super().__init__(metric, dim, threads)
        import usearch
        from usearch.index import Index
        self.Index = Index
        self.version = _pkg_version("usearch", usearch)
        self.umetric = {"cosine": "cos", "l2": "l2sq", "ip": "ip"}[metric]

    def build(self, base, threads):
        # dtype f32 explicitly: usearch's default storage may be bf16
        index = self.Index(ndim=self.dim, metric=self.umetric, dtype="f32",
                           connectivity=M, expansion_add=EF_CONSTRUCTION)
        index.add(np.arange(base.shape[0], dtype=np.uint64), base, threads=threads)
        self.index = index

    def set_ef(self, ef):
        self.index.expansion_search = ef

    def single(self, Q, out):
        search = self.index.search
        for i in range(Q.shape[0]):
            out[i] = search(Q[i], K).keys

    def batch(self, Q, threads):
        return self.index.search(Q, K, threads=threads).keys

    def save(self, path):
        self.index.save(path)

    def load(self, path):
        new = USearchEngine(self.metric, self.dim, self.threads)
        index = self.Index.restore(path)
        if index is None:
            raise RuntimeError(f"usearch could not restore {path}")
        new.index = index
        return new


ENGINE_CLASSES = {"vjson": VJsonEngine, "hnswlib": HnswlibEngine,
                  "faiss": FaissEngine, "usearch": USearchEngine}


def available_engines(names: List[str]) -> Dict[str, type]:
    """The engines whose module imports; the others are reported and skipped."""
    ok = {}
    modules = {"vjson": "vjson", "hnswlib": "hnswlib", "faiss": "faiss", "usearch": "usearch.index"}
    for name in names:
        try:
            __import__(modules[name])
        except Exception as exc:  # ImportError, or a broken binary wheel
            log(f"[skip] {name}: not importable ({type(exc).__name__}: {exc})")
            continue
        ok[name] = ENGINE_CLASSES[name]
    return ok


# --------------------------------------------------------------------------- timing

def _timed(fn: Callable[[], object]):
    """(seconds, result) of one call, garbage collector paused."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        res = fn()
        return time.perf_counter() - t0, res
    finally:
        if was:
            gc.enable()


def _rate(fn: Callable[[], object], m: int, min_time: float):
    """(queries/second, last result): `fn` answers m queries; it is repeated until
    at least `min_time` seconds have passed, so short passes still time well."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        calls = 0
        t0 = time.perf_counter()
        while True:
            res = fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                return calls * m / elapsed, res
    finally:
        if was:
            gc.enable()


def qps_at_target(sweep: List[dict], key: str, target: float) -> dict:
    """QPS at recall = target on the sweep (sorted by ef).

    Interpolated linearly in recall and geometrically in QPS between the last
    point below the target and the first point at or above it. If the lowest ef
    already reaches it, that point's QPS is reported (a lower bound of the
    QPS at exactly the target)."""
    pts = [(p["recall"], p[key], p["ef"]) for p in sorted(sweep, key=lambda p: p["ef"])
           if p.get(key)]
    for i, (r, q, ef) in enumerate(pts):
        if r >= target:
            if i == 0:
                return {"qps": q, "ef": ef, "how": "lowest ef swept already reaches it (lower bound)"}
            r0, q0, ef0 = pts[i - 1]
            if r <= r0:  # non-monotone step: take the point that reaches it
                return {"qps": q, "ef": ef, "how": "first ef reaching it"}
            t = (target - r0) / (r - r0)
            return {"qps": math.exp(math.log(q0) + t * (math.log(q) - math.log(q0))),
                    "ef": ef0 + t * (ef - ef0), "how": f"interpolated between ef {ef0} and {ef}"}
    return {"qps": None, "ef": None,
            "how": f"not reached (best recall {max((p[0] for p in pts), default=float('nan')):.4f})"}


# --------------------------------------------------------------------------- one data set

def run_dataset(ds: _data.Dataset, engine_classes: Dict[str, type], args) -> dict:
    threads = args.threads
    log(f"\n=== {ds.describe()} ===")
    m = ds.queries.shape[0]
    result = {"name": ds.name, "n": ds.n, "dim": ds.dim, "metric": ds.metric,
              "queries": m, "info": ds.info, "engines": {}, "skipped": {}}
    engines: Dict[str, Engine] = {}
    queries: Dict[str, np.ndarray] = {}
    tmp_root = tempfile.mkdtemp(prefix="vjson_peers_")
    try:
        # ---- build (1 thread, then all threads; the latter is kept), save, load
        for name, cls in engine_classes.items():
            rec = {}
            eng = None
            try:
                eng = cls(ds.metric, ds.dim, threads)
                rec["version"] = eng.version
                if not args.skip_build_1t:
                    dt, _ = _timed(lambda: eng.build(ds.base, 1))
                    rec["build_1t_s"] = dt
                    eng.close()
                    log(f"  {name:8s} build 1 thread   {dt:8.2f} s")
                dt, _ = _timed(lambda: eng.build(ds.base, threads))
                rec["build_all_s"] = dt
                log(f"  {name:8s} build {threads} threads  {dt:8.2f} s")

                folder = os.path.join(tmp_root, name)
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, eng.file_name)
                dt, _ = _timed(lambda: eng.save(path))
                rec["save_s"] = dt
                rec["size_bytes"] = _path_size(path)
                loads = []
                loaded = None
                for _ in range(args.load_reps):
                    if loaded is not None:
                        loaded.close()
                        loaded = None
                        gc.collect()
                    dt, loaded = _timed(lambda: eng.load(path))
                    loads.append(dt)
                rec["load_s"] = statistics.median(loads)
                # the loaded index must answer like the saved one
                qv = eng.prep_queries(ds.queries[: min(m, 100)])
                eng.set_ef(VERIFY_EF)
                loaded.set_ef(VERIFY_EF)
                a = np.asarray(eng.batch(qv, threads), dtype=np.int64)
                b = np.asarray(loaded.batch(qv, threads), dtype=np.int64)
                same = float(np.mean(np.all(a == b, axis=1)))
                rec["load_same_results"] = same
                loaded.close()
                del loaded
                shutil.rmtree(folder, ignore_errors=True)
                log(f"  {name:8s} size {rec['size_bytes'] / 2**20:8.1f} MiB, load "
                    f"{rec['load_s'] * 1e3:8.1f} ms, loaded index answers identically on "
                    f"{same:.0%} of {qv.shape[0]} queries")
                eng.enter_single_thread()
                engines[name] = eng
                queries[name] = eng.prep_queries(ds.queries)
                rec["sweep"] = []
                result["engines"][name] = rec
            except Exception as exc:
                msg = f"{type(exc).__name__}: {exc}"
                log(f"  [skip] {name}: failed ({msg})")
                result["skipped"][name] = msg
                if eng is not None:
                    try:
                        eng.close()
                    except Exception:
                        pass
        if not engines:
            return result

        # ---- warm-up: one pass per engine (pages in the graph, warms caches)
        outs = {n: np.full((m, K), -1, dtype=np.int64) for n in engines}
        for name, eng in engines.items():
            eng.set_ef(64)
            eng.single(queries[name], outs[name])

        # ---- single-thread sweep, engines interleaved and rotated between passes
        names = list(engines)
        for ei, ef in enumerate(args.ef):
            rates = {n: [] for n in names}
            for rep in range(args.reps):
                shift = (rep + ei) % len(names)
                for name in names[shift:] + names[:shift]:
                    eng = engines[name]
                    eng.set_ef(ef)
                    out = outs[name]
                    out.fill(-1)
                    qps, _ = _rate(lambda: eng.single(queries[name], out), m, args.min_time)
                    rates[name].append(qps)
            # batch throughput with all threads, same interleaving
            brates = {n: [] for n in names}
            bout = {}
            for rep in range(args.reps):
                shift = (rep + ei) % len(names)
                for name in names[shift:] + names[:shift]:
                    eng = engines[name]
                    eng.set_ef(ef)
                    qps, res = _rate(lambda: eng.batch(queries[name], threads), m, args.min_time)
                    brates[name].append(qps)
                    bout[name] = res
            line = [f"  ef {ef:4d}:"]
            for name in names:
                rec_single = _data.recall_at_k(outs[name], ds.gt, K)
                rec_batch = _data.recall_at_k(np.asarray(bout[name]).astype(np.int64), ds.gt, K)
                point = {"ef": ef, "recall": rec_single, "recall_batch": rec_batch,
                         "qps_1t": statistics.median(rates[name]),
                         "qps_1t_runs": rates[name],
                         "qps_batch": statistics.median(brates[name]),
                         "qps_batch_runs": brates[name]}
                result["engines"][name]["sweep"].append(point)
                line.append(f"{name} {rec_single:.3f}/{point['qps_1t']:,.0f}")
            log("  ".join(line))

        # ---- QPS at the target recall, and ratios
        tgt = args.target_recall
        for name, rec in result["engines"].items():
            rec["at_target"] = {"recall": tgt,
                                "single": qps_at_target(rec["sweep"], "qps_1t", tgt),
                                "batch": qps_at_target(rec["sweep"], "qps_batch", tgt)}
        ratios = {}
        v = result["engines"].get("vjson")
        if v is not None:
            for name, rec in result["engines"].items():
                if name == "vjson":
                    continue
                r = {}
                for mode in ("single", "batch"):
                    a, b = v["at_target"][mode]["qps"], rec["at_target"][mode]["qps"]
                    r[f"qps_{mode}_at_target"] = (a / b) if a and b else None
                for key in ("build_1t_s", "build_all_s", "size_bytes", "load_s"):
                    a, b = v.get(key), rec.get(key)
                    r[key] = (a / b) if a and b else None
                ratios[name] = r
        result["ratios_vjson_over_peer"] = ratios
        return result
    finally:
        for eng in engines.values():
            eng.close()
        shutil.rmtree(tmp_root, ignore_errors=True)


# --------------------------------------------------------------------------- report

def _fmt(x, spec="{:,.0f}", none="-"):
    return none if x is None else spec.format(x)


def print_report(res: dict, threads: int, target: float) -> None:
    eng = res["engines"]
    print(f"\n### {res['name']}: {res['n']:,} x {res['dim']}-d {res['metric']}, "
          f"{res['queries']:,} queries, M={M}, ef_construction={EF_CONSTRUCTION}, k={K}")
    for name, why in res.get("skipped", {}).items():
        print(f"  (skipped {name}: {why})")
    if not eng:
        return
    print()
    hdr = (f"{'engine':9s} {'version':>9s} {'build 1T s':>11s} {'build ' + str(threads) + 'T s':>11s} "
           f"{'size MiB':>9s} {'load ms':>9s} {'reload ok':>9s}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in eng.items():
        print(f"{name:9s} {r['version'][:9]:>9s} {_fmt(r.get('build_1t_s'), '{:.2f}'):>11s} "
              f"{_fmt(r.get('build_all_s'), '{:.2f}'):>11s} {r['size_bytes'] / 2**20:9.1f} "
              f"{r['load_s'] * 1e3:9.1f} {r['load_same_results']:9.0%}")

    print()
    hdr = (f"{'engine':9s} {'ef':>5s} {'recall@10':>10s} {'QPS 1 thread':>13s} "
           f"{'QPS batch ' + str(threads) + 'T':>14s}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in eng.items():
        for p in r["sweep"]:
            flag = "" if abs(p["recall"] - p["recall_batch"]) < 1e-9 else f"  (batch recall {p['recall_batch']:.4f})"
            print(f"{name:9s} {p['ef']:5d} {p['recall']:10.4f} {p['qps_1t']:13,.0f} "
                  f"{p['qps_batch']:14,.0f}{flag}")
        print()

    print(f"At recall@10 = {target}:")
    hdr = (f"{'engine':9s} {'ef':>6s} {'QPS 1T':>9s} {'QPS batch':>10s} "
           f"{'vjson/peer 1T':>14s} {'vjson/peer batch':>17s}  note")
    print(hdr)
    print("-" * len(hdr))
    ratios = res.get("ratios_vjson_over_peer", {})
    for name, r in eng.items():
        s, b = r["at_target"]["single"], r["at_target"]["batch"]
        rr = ratios.get(name, {})
        print(f"{name:9s} {_fmt(s['ef'], '{:.0f}'):>6s} {_fmt(s['qps']):>9s} {_fmt(b['qps']):>10s} "
              f"{_fmt(rr.get('qps_single_at_target'), '{:.2f}x'):>14s} "
              f"{_fmt(rr.get('qps_batch_at_target'), '{:.2f}x'):>17s}  {s['how']}")
    if ratios:
        print()
        print("Build time vjson/peer (lower is faster for vjson):")
        for name, rr in ratios.items():
            print(f"  vs {name:8s} 1 thread {_fmt(rr.get('build_1t_s'), '{:.2f}x'):>7s}   "
                  f"{threads} threads {_fmt(rr.get('build_all_s'), '{:.2f}x'):>7s}   "
                  f"size {_fmt(rr.get('size_bytes'), '{:.2f}x')}")


def write_plot(results: List[dict], path: str, target: float) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"[plot] matplotlib is not installed: skipping {path} (pip install matplotlib)")
        return
    results = [r for r in results if r["engines"]]
    if not results:
        log("[plot] nothing to plot")
        return
    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 5), squeeze=False)
    colors = {"vjson": "tab:red", "hnswlib": "tab:blue", "faiss": "tab:green", "usearch": "tab:purple"}
    for ax, res in zip(axes[0], results):
        for name, r in res["engines"].items():
            rec = [p["recall"] for p in r["sweep"]]
            ax.plot(rec, [p["qps_1t"] for p in r["sweep"]], "o-", color=colors.get(name),
                    label=f"{name} (1 thread)")
            ax.plot([p["recall_batch"] for p in r["sweep"]], [p["qps_batch"] for p in r["sweep"]],
                    "s--", color=colors.get(name), alpha=0.6, label=f"{name} (batch)")
        ax.axvline(target, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries / second")
        ax.set_title(f"{res['name']}: {res['n']:,} x {res['dim']}-d {res['metric']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    log(f"[plot] wrote {path}")


# --------------------------------------------------------------------------- main

def _int_list(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Compare vjson's HNSW with hnswlib, FAISS IndexHNSWFlat and usearch "
                    f"(M={M}, ef_construction={EF_CONSTRUCTION}, recall@{K}).")
    ap.add_argument("--dataset", choices=["wordnet", "synthetic", "both"], default="both")
    ap.add_argument("--n", type=int, default=None,
                    help="base vectors per data set (default: wordnet all 80,000; synthetic 200,000)")
    ap.add_argument("--queries", type=int, default=None, help="queries per data set (default 1000)")
    ap.add_argument("--engines", default=",".join(ALL_ENGINES),
                    help="comma list among " + ",".join(ALL_ENGINES) + " (default: all)")
    ap.add_argument("--ef", type=_int_list, default=DEFAULT_EFS,
                    help="ef_search sweep, comma list (default " + ",".join(map(str, DEFAULT_EFS)) + ")")
    ap.add_argument("--reps", type=int, default=None, help="timed passes per point, median kept (default 3)")
    ap.add_argument("--min-time", type=float, default=None,
                    help="each timed pass repeats its queries until this many seconds (default 0.2; quick 0.1)")
    ap.add_argument("--load-reps", type=int, default=3, help="loads timed per engine, median kept")
    ap.add_argument("--threads", type=int, default=None,
                    help="'all threads' count for builds and batches (default: vjson.default_threads())")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--skip-build-1t", action="store_true", help="skip the single-thread builds")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10,000 vectors, 200 queries, 2 passes of >= 0.1 s")
    ap.add_argument("--data-dir", default=None,
                    help="shared data folder holding wordnet/ (default $VJSON_DATA or <repo>/../shared/data)")
    ap.add_argument("--synthetic-seed", type=int, default=42)
    ap.add_argument("--json", metavar="OUT.json", default=None, help="write every number here")
    ap.add_argument("--plot", metavar="OUT.png", default=None, help="recall-vs-QPS plot (needs matplotlib)")
    args = ap.parse_args(argv)

    if args.quick:
        args.n = args.n or 10_000
        args.queries = args.queries or 200
        args.reps = args.reps or 2
        args.min_time = 0.1 if args.min_time is None else args.min_time
    args.min_time = 0.2 if args.min_time is None else args.min_time
    args.reps = args.reps or 3
    args.queries = args.queries or 1000
    args.ef = sorted(set(args.ef))
    if not args.ef or min(args.ef) < 1:
        ap.error("--ef needs positive integers")
    names = [e.strip().lower() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in names if e not in ALL_ENGINES]
    if bad:
        ap.error(f"unknown engine(s) {bad}; choose among {ALL_ENGINES}")
    args.engine_names = list(dict.fromkeys(names))
    return args


def machine_info(threads: int) -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "threads_used": threads, "numpy": np.__version__}
    try:
        import vjson
        info["vjson_simd"] = vjson.simd_info()
    except Exception:
        pass
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is None:
        try:
            import vjson
            args.threads = int(vjson.default_threads())
        except Exception:
            args.threads = os.cpu_count() or 1
    engine_classes = available_engines(args.engine_names)
    if not engine_classes:
        _data.die("no engine is available")
    if "vjson" not in engine_classes:
        log("[note] vjson is not among the engines: no vjson/peer ratios")

    wanted = ["wordnet", "synthetic"] if args.dataset == "both" else [args.dataset]
    data_dir = _data.resolve_data_dir(args.data_dir)
    if "wordnet" in wanted:
        try:
            _data._wordnet_folder(data_dir)
        except _data.DataMissing as exc:
            _data.die(str(exc))

    info = machine_info(args.threads)
    log(f"machine: {info['cpu']}, {info['cpus_usable']} usable CPUs, 'all threads' = {args.threads}")
    log(f"engines: {', '.join(engine_classes)}; ef sweep {args.ef}; median of {args.reps} "
        f"passes (each >= {args.min_time} s) per point")

    results = []
    for name in wanted:
        t0 = time.perf_counter()
        if name == "wordnet":
            ds = _data.load_wordnet(data_dir, n=args.n, n_queries=args.queries, k=K)
        else:
            ds = _data.make_synthetic(n=args.n or 200_000, n_queries=args.queries,
                                      seed=args.synthetic_seed, k=K)
        log(f"loaded {ds.describe()} in {time.perf_counter() - t0:.1f} s (gt: {ds.info.get('gt')})")
        results.append(run_dataset(ds, engine_classes, args))
        del ds
        gc.collect()

    for res in results:
        print_report(res, args.threads, args.target_recall)

    if args.json:
        out = {"benchmark": "compare_peers", "params": {"M": M, "ef_construction": EF_CONSTRUCTION,
                                                         "k": K, "ef_sweep": args.ef, "reps": args.reps,
                                                         "min_time_s": args.min_time,
                                                         "target_recall": args.target_recall,
                                                         "quick": args.quick, "seed": SEED},
               "machine": info, "datasets": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
        log(f"\n[json] wrote {args.json}")
    if args.plot:
        write_plot(results, args.plot, args.target_recall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
