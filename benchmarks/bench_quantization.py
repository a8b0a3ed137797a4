#!/usr/bin/env python3
"""Quantized databases against float32, hnswlib and usearch, in one process.

Per data set (wordnet 80k x 384 cosine from ../shared/data, and a synthetic
clustered 384-d cosine set), every engine builds the same vectors (M=16,
ef_construction=200, all threads):

* ``vjson-float32`` / ``vjson-int8`` / ``vjson-binary``: a ``VectorDB`` with that
  ``quantization`` (rescoring on, default oversample), searched with ``db.search``;
* ``hnswlib``: float32 ``knn_query`` after ``set_num_threads(1)``;
* ``usearch-i8``: ``Index(dtype="i8")`` searched with ``threads=1``;
* ``vjson-binary@16`` (any kind, any factor): that database searched with
  ``oversample=16``, for the recall/QPS curve of a kind across oversamples.

An ef sweep measures recall@10 against exact ground truth and single-thread
QPS (one query per call), passes interleaved across engines (order reversed
every pass), median of ``--reps``. From the sweep: QPS at recall 0.95 and
ratios. Build time: ``--build-reps`` builds per engine on ``--build-n`` rows,
interleaved, medians. RSS: each database is opened in a fresh process that
runs 1,000 warm queries; its RSS (and the growth over the bare interpreter)
is reported. Results go to a small JSON file (``--json``) with the commit,
machine, library versions and how hnswlib was compiled;
``benchmarks/readme_tables.py`` turns it into the README tables and the plot.

    python benchmarks/bench_quantization.py --json benchmarks/results/quantization.json
    python benchmarks/bench_quantization.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402
from _report import git_state, log, median  # noqa: E402
from compare_peers import machine_info, qps_at_target  # noqa: E402

M, EF_CONSTRUCTION, K = 16, 200, 10
EFS = [10, 16, 24, 32, 48, 64, 96, 128]
KINDS = {"vjson-float32": None, "vjson-int8": "int8", "vjson-binary": "binary"}


# ---------------------------------------------------------------- engines

class VJsonDB:
    def __init__(self, kind, dim, folder, threads, oversample=None):
        self.kind, self.dim, self.folder, self.threads = kind, dim, folder, threads
        self.oversample = oversample
        self.db = None

    def build(self, base):
        import vjson
        shutil.rmtree(self.folder, ignore_errors=True)
        self.db = vjson.VectorDB(self.folder, self.dim, "cosine", M=M, ef_construction=EF_CONSTRUCTION,
                                 quantization=self.kind)
        self.db.insert_batch([str(i) for i in range(len(base))], base)

    def finish(self):
        """Checkpoint (the graph file), then reopen as a user would."""
        import vjson
        self.db.close()
        self.db = vjson.VectorDB(self.folder)

    def run(self, queries, ef, out):
        search, oversample = self.db.search, self.oversample
        for i in range(len(queries)):
            out[i] = [int(r.id) for r in search(queries[i], K, ef_search=ef, oversample=oversample)]

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None


class Hnswlib:
    def __init__(self, dim, threads):
        import hnswlib
        self.mod, self.dim, self.threads = hnswlib, dim, threads

    def build(self, base):
        self.index = self.mod.Index(space="cosine", dim=self.dim)
        self.index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
        self.index.set_num_threads(self.threads)
        self.index.add_items(base, np.arange(len(base)), num_threads=self.threads)

    def finish(self):
        self.index.set_num_threads(1)

    def run(self, queries, ef, out):
        self.index.set_ef(ef)
        knn = self.index.knn_query
        for i in range(len(queries)):
            out[i] = knn(queries[i], K)[0][0]

    def close(self):
        self.index = None


class UsearchI8:
    def __init__(self, dim, threads):
        from usearch.index import Index
        self.cls, self.dim, self.threads = Index, dim, threads

    def build(self, base):
        self.index = self.cls(ndim=self.dim, metric="cos", dtype="i8", connectivity=M,
                              expansion_add=EF_CONSTRUCTION)
        self.index.add(np.arange(len(base)), base, threads=self.threads)

    def finish(self):
        pass

    def run(self, queries, ef, out):
        self.index.expansion_search = ef
        search = self.index.search
        for i in range(len(queries)):
            out[i] = search(queries[i], K, threads=1).keys  # one thread, as hnswlib

    def close(self):
        self.index = None


def variant(name):
    """'vjson-binary@16' -> ('vjson-binary', 16.0): the same database searched with that oversample."""
    base, _, factor = name.partition("@")
    return base, float(factor) if factor else None


def make_engine(name, dim, workdir, threads):
    if "@" in name:
        base, factor = variant(name)
        return VJsonDB(KINDS[base], dim, Path(workdir) / base, threads, oversample=factor)
    if name in KINDS:
        return VJsonDB(KINDS[name], dim, Path(workdir) / name, threads)
    if name == "hnswlib":
        return Hnswlib(dim, threads)
    if name == "usearch-i8":
        return UsearchI8(dim, threads)
    raise SystemExit(f"unknown engine {name}")


# ---------------------------------------------------------------- provenance

def hnswlib_build_info() -> dict:
    """How the installed hnswlib was compiled: its wheel tag, the compiler's
    ident string and how many instructions use AVX (ymm) / AVX-512 (zmm)
    registers (hnswlib picks SIMD at compile time)."""
    import hnswlib
    so = hnswlib.__file__
    info = {"file": os.path.basename(so)}
    try:
        from importlib.metadata import distribution
        dist = distribution("hnswlib")
        info["version"] = dist.version
        wheel = dist.read_text("WHEEL") or ""
        info["wheel_tags"] = [line.split(": ", 1)[1] for line in wheel.splitlines() if line.startswith("Tag:")]
        direct = dist.read_text("direct_url.json")
        info["installed_from"] = json.loads(direct).get("url") if direct else "index (wheel or sdist)"
    except Exception as exc:  # noqa: BLE001 - provenance is best effort
        info["metadata_error"] = str(exc)
    try:
        comment = subprocess.run(["readelf", "-p", ".comment", so], capture_output=True, text=True, timeout=30).stdout
        info["compiler"] = sorted({line.split("]", 1)[1].strip() for line in comment.splitlines() if "]" in line})
        switches = subprocess.run(["readelf", "-p", ".GCC.command.line", so], capture_output=True, text=True,
                                  timeout=30).stdout
        info["recorded_switches"] = [s.split("]", 1)[1].strip() for s in switches.splitlines() if "]" in s][:40]
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", so], capture_output=True, text=True,
                             timeout=120).stdout
        info["instructions_with_ymm"] = dis.count("%ymm")
        info["instructions_with_zmm"] = dis.count("%zmm")
    except (OSError, subprocess.SubprocessError) as exc:
        info["inspect_error"] = str(exc)
    return info


def versions() -> dict:
    out = {}
    for name in ("vjson", "hnswlib", "usearch", "numpy"):
        try:
            from importlib.metadata import version
            out[name] = version(name)
        except Exception:  # noqa: BLE001 - not installed as a distribution (e.g. on PYTHONPATH)
            mod = sys.modules.get(name) or __import__(name)
            out[name] = getattr(mod, "__version__", "?")
    return out


# ---------------------------------------------------------------- measurements

RSS_SCRIPT = r"""
import json, sys, numpy as np, vjson
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
queries = np.load(sys.argv[2])
before = rss()
db = vjson.VectorDB(sys.argv[1], read_only=True)
for rep in range(int(sys.argv[4])):
    for q in queries:
        db.search(q, 10, ef_search=int(sys.argv[3]))
print(json.dumps({"rss": rss(), "rss_before_open": before}))
"""


def measure_rss(folder, queries_path, ef, passes):
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(folder), str(queries_path), str(ef), str(passes)],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    r["rss_growth"] = r["rss"] - r["rss_before_open"]
    return r


def folder_bytes(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def recall(found, gt):
    return float(np.mean([len(set(map(int, f)) & set(map(int, g[:K]))) / K for f, g in zip(found, gt)]))


def run_dataset(name, base, queries, gt, engines, args, workdir):
    log(f"\n=== {name}: {len(base):,} x {base.shape[1]} cosine, {len(queries)} queries ===")
    dim = base.shape[1]
    threads = args.threads
    res = {"name": name, "n": len(base), "dim": dim, "metric": "cosine", "queries": len(queries),
           "engines": {}, "build": {}}
    # build times: repeated and interleaved on a subset, medians
    sub = base[:min(args.build_n, len(base))]
    built_engines = [e for e in engines if "@" not in e]
    times = {e: [] for e in built_engines}
    for rep in range(args.build_reps):
        order = built_engines if rep % 2 == 0 else built_engines[::-1]
        for e in order:
            eng = make_engine(e, dim, workdir, threads)
            t0 = time.perf_counter()
            eng.build(sub)
            times[e].append(time.perf_counter() - t0)
            eng.close()
            log(f"  build {e} on {len(sub):,}: {times[e][-1]:.2f} s")
    res["build"] = {"rows": len(sub), "threads": threads, "reps": args.build_reps,
                    "median_s": {e: median(t) for e, t in times.items()}, "all_s": times}
    # full builds for the sweep
    live = {}
    for e in engines:
        eng = make_engine(e, dim, workdir, threads)
        if "@" in e:  # another oversample on a database built above (listed first)
            eng.db = live[variant(e)[0]].db
            live[e] = eng
            res["engines"][e] = {"sweep": [], "oversample": eng.oversample}
            continue
        t0 = time.perf_counter()
        eng.build(base)
        built = time.perf_counter() - t0
        eng.finish()
        live[e] = eng
        res["engines"][e] = {"build_full_s": built, "sweep": []}
        if e in KINDS:
            res["engines"][e]["disk_bytes_per_vector"] = folder_bytes(eng.folder) / len(base)
            res["engines"][e]["ram_bytes_per_vector"] = eng.db._current().graph.ram_bytes_per_vector
        log(f"  built {e} on {len(base):,} in {built:.1f} s")
    # the sweep: passes interleaved, order reversed every pass
    out = np.zeros((len(queries), K), dtype=np.int64)
    for ef in args.ef:
        qps = {e: [] for e in engines}
        rec = {}
        for e in engines:  # warm-up pass, which also gives the recall
            live[e].run(queries, ef, out)
            rec[e] = recall(out, gt)
        for rep in range(args.reps):
            for e in (engines if rep % 2 == 0 else engines[::-1]):
                t0 = time.perf_counter()
                live[e].run(queries, ef, out)
                qps[e].append(len(queries) / (time.perf_counter() - t0))
        line = []
        for e in engines:
            res["engines"][e]["sweep"].append({"ef": ef, "recall": rec[e], "qps_1t": median(qps[e])})
            line.append(f"{e} {rec[e]:.3f}/{median(qps[e]):,.0f}")
        log(f"  ef {ef:>3}: " + "  ".join(line))
    for e in engines:
        res["engines"][e]["at_target"] = qps_at_target(res["engines"][e]["sweep"], "qps_1t", args.target_recall)
    # memory: each database in a fresh process, after warm queries
    qpath = Path(workdir) / "queries.npy"
    np.save(qpath, queries)
    for e in engines:
        if "@" in e:
            live[e].db = None  # its database is the base engine's
    for e in engines:
        if e in KINDS:
            live[e].close()
            res["engines"][e]["rss"] = measure_rss(live[e].folder, qpath, args.rss_ef, args.rss_passes)
            log(f"  rss {e}: {res['engines'][e]['rss']}")
    for e in engines:
        live[e].close()
    res["ratios"] = ratios(res, args.target_recall)
    log(json.dumps(res["ratios"], indent=1))
    return res


def ratios(res, target):
    eng = res["engines"]
    q = {e: r["at_target"]["qps"] for e, r in eng.items()}
    out = {"target_recall": target}
    for e in eng:
        if e.startswith("vjson"):
            for peer in ("hnswlib", "usearch-i8", "vjson-float32"):
                if peer in q and peer != e and q[e] and q[peer]:
                    out[f"qps {e} / {peer}"] = q[e] / q[peer]
            b = res["build"]["median_s"]
            if "hnswlib" in b and e in b:
                out[f"build {e} / hnswlib"] = b[e] / b["hnswlib"]
    f32 = eng.get("vjson-float32", {}).get("rss")
    for e in ("vjson-int8", "vjson-binary"):
        if f32 and eng.get(e, {}).get("rss"):
            out[f"rss {e} / vjson-float32"] = eng[e]["rss"]["rss"] / f32["rss"]
            out[f"rss growth {e} / vjson-float32"] = eng[e]["rss"]["rss_growth"] / f32["rss_growth"]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=["wordnet", "synthetic", "both"], default="both")
    ap.add_argument("--synthetic-n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--engines", default="vjson-float32,vjson-int8,vjson-binary,hnswlib,usearch-i8",
                    help="engine names; KIND@F searches KIND's database with oversample F (e.g. vjson-binary@16)")
    ap.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=EFS)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build-n", type=int, default=20_000)
    ap.add_argument("--build-reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--rss-ef", type=int, default=64)
    ap.add_argument("--rss-passes", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true", help="20k rows, 200 queries, 1 build rep: a smoke run")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.synthetic_n, args.queries, args.build_n, args.build_reps, args.reps = 20_000, 200, 5000, 1, 1
    engines = args.engines.split(",")
    import vjson
    results = {"benchmark": "bench_quantization", "git": git_state(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
               time.gmtime()), "machine": machine_info(args.threads), "platform": platform.platform(),
               "versions": versions(), "hnswlib_build": hnswlib_build_info(),
               "params": {"M": M, "ef_construction": EF_CONSTRUCTION, "k": K, "reps": args.reps,
                          "oversample_default": {str(k): v for k, v in vjson._core.DEFAULT_OVERSAMPLE.items()},
                          "note": "machine shared with other jobs: compare ratios, not absolute rates"},
               "datasets": []}
    workdir = tempfile.mkdtemp(prefix="vjson-quant-")
    try:
        if args.dataset in ("wordnet", "both"):
            ds = _data.load_wordnet(_data.resolve_data_dir(args.data_dir), n_queries=args.queries)
            base = vjson._core.normalise(ds.base)
            results["datasets"].append(run_dataset("wordnet", base, vjson._core.normalise(ds.queries), ds.gt,
                                                   engines, args, workdir))
        if args.dataset in ("synthetic", "both"):
            ds = _data.make_synthetic(n=args.synthetic_n, n_queries=args.queries, dim=384)
            base, queries = vjson._core.normalise(ds.base), vjson._core.normalise(ds.queries)
            gt = _data.exact_knn(base, queries, K, "cosine")
            results["datasets"].append(run_dataset(f"synthetic-{args.synthetic_n // 1000}k", base, queries, gt,
                                                   engines, args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
        log(f"[json] wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
