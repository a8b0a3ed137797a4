#!/usr/bin/env python3
"""Filtered vector search on WordNet with its real metadata, and filter evaluation at 1M rows.

Part 1, search (``db.search(q, k=10, filter=F)``, one query per call, 1 thread):
WordNet's 80,000 x 384 cosine vectors are inserted into a ``VectorDB`` with
their real metadata (``pos``, ``lexname``, ``n_words``, ``hypernym_depth``,
``tag_count``, ...). Filters are chosen at selectivities around 70%, 50%, 10%,
1% and 0.1%, two per class: one on a category (correlated with what the
vectors mean) and one mixing a range on a count (unrelated to meaning). For
each filter the exact filtered ground truth is a brute force
(``vjson.brute_force_knn``, cosine) over the matching rows, and the matching
rows are found with an independent evaluator (``CompiledFilter.matches`` per
document) and checked against ``db.count(F)``. An ef_search sweep measures
recall@10 and queries/s of every filter and of the unfiltered search,
interleaved (order rotated between passes, median of ``--reps``), then the QPS
each reaches at recall@10 = 0.95 and the ratio filtered / unfiltered, at the
same ef and at the same recall.

``--defaults`` adds the comparison users see: ``db.search(q, k=10, filter=F)``
at default settings against the unfiltered ``db.search(q, k=10)``, passes
interleaved (each filtered pass beside an unfiltered one, order reversed every
other round, median), for category filters on ``pos`` and ``lexname`` from
70% down to 0.03% selectivity, with recall@10 against exact filtered search.
``--skip-sweep`` leaves the ef sweep out.

Part 2, filter evaluation at scale: a ``MetadataIndex`` of ``--index-n``
(default 1,000,000) documents shaped like WordNet's metadata (real rows drawn
at random, each with a unique ``synset``) is built with ``set_many``; then the
median time of ``compile_filter``, ``MetadataIndex.evaluate`` and
``np.packbits`` (the bitset handed to the graph) is taken per filter.

    python benchmarks/bench_filters.py --quick
    python benchmarks/bench_filters.py --json benchmarks/results/filters.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402
from _report import fmt as _fmt, git_state, int_list as _int_list, log, median as _median, rate as _rate  # noqa: E402
from compare_peers import machine_info, qps_at_target  # noqa: E402

M = 16
EF_CONSTRUCTION = 200
K = 10
DEFAULT_EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]

# (target class, name, filter): one category filter and one range/combination per class
FILTERS = [
    ("~70%", "pos=n", {"pos": "n"}),
    ("~50%", "pos=n & n_words>=8", {"pos": "n", "n_words": {"$gte": 8}}),
    ("~50%", "n_words>=11", {"n_words": {"$gte": 11}}),
    ("~10%", "lexname=noun.artifact", {"lexname": "noun.artifact"}),
    ("~10%", "pos=n & n_words>=20", {"pos": "n", "n_words": {"$gte": 20}}),
    ("~1%", "lexname=noun.object", {"lexname": "noun.object"}),
    ("~1%", "pos=v & hypernym_depth>=5", {"pos": "v", "hypernym_depth": {"$gte": 5}}),
    ("~0.1%", "tag_count>=200", {"tag_count": {"$gte": 200}}),
    ("~0.1%", "lexname=verb.competition & 8<=n_words<12",
     {"lexname": "verb.competition", "n_words": {"$gte": 8, "$lt": 12}}),
]
_HALF = ["adj.all", "noun.artifact", "noun.person", "noun.plant", "noun.animal", "noun.act"]
# --defaults: category filters from 70% to 0.03% (pos / lexname), selectivity on WordNet's 80k
DEFAULT_FILTERS = [
    ("pos=n", {"pos": "n"}),                                       # 69.6%
    ("lexname in 6 largest nouns/adj", {"lexname": {"$in": _HALF}}),  # 50.3%
    ("pos in v,s", {"pos": {"$in": ["v", "s"]}}),                  # 20.9%
    ("lexname=adj.all", {"lexname": "adj.all"}),                   # 12.3%
    ("pos=v", {"pos": "v"}),                                       # 11.8%
    ("lexname=noun.person", {"lexname": "noun.person"}),           # 9.4%
    ("pos=a", {"pos": "a"}),                                       # 6.4%
    ("lexname=noun.act", {"lexname": "noun.act"}),                 # 5.7%
    ("pos=r", {"pos": "r"}),                                       # 3.0%
    ("lexname=noun.location", {"lexname": "noun.location"}),       # 2.7%
    ("lexname=noun.body", {"lexname": "noun.body"}),               # 1.7%
    ("lexname=noun.object", {"lexname": "noun.object"}),           # 1.3%
    ("lexname=noun.time", {"lexname": "noun.time"}),               # 0.87%
    ("lexname=noun.Tops", {"lexname": "noun.Tops"}),               # 0.03%
]
# extra shapes for the 1M evaluation timings
EVAL_ONLY = [
    ("", "lexname $in 3 values", {"lexname": {"$in": ["noun.person", "verb.motion", "adj.ppl"]}}),
    ("", "hypernym_depth $exists false", {"hypernym_depth": {"$exists": False}}),
    ("", "lemmas $contains 'bank'", {"lemmas": {"$contains": "bank"}}),
    ("", "$or of 2", {"$or": [{"pos": "r"}, {"is_instance": True, "n_words": {"$lt": 6}}]}),
]












def _median_time(fn: Callable[[], object], reps: int) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return _median(ts)


def load_meta(data_dir: Path, n: int) -> List[dict]:
    import orjson
    path = _data._wordnet_folder(data_dir) / "texts.jsonl"
    out = []
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            doc = orjson.loads(line)
            doc.pop("id", None)
            doc.pop("text", None)
            out.append(doc)
    return out


# =========================================================================== part 1

def run_search(args, ds: _data.Dataset, metas: List[dict], tmp_root: str) -> dict:
    import vjson
    from vjson.filters import compile_filter
    n, m = ds.n, ds.queries.shape[0]
    Q = ds.queries
    log(f"\n=== filtered search: {ds.describe()}, M={M}, ef_construction={EF_CONSTRUCTION}, k={K} ===")
    res = {"dataset": ds.describe(), "n": n, "queries": m, "filters": {}}

    # ---- matching rows (independent evaluator) and exact filtered ground truth
    t0 = time.perf_counter()
    filters = []
    for cls, name, flt in FILTERS:
        cf = compile_filter(flt)
        rows = np.array([i for i, d in enumerate(metas) if cf.matches(d)], dtype=np.int64)
        if rows.size < K:
            log(f"  [skip] {name}: only {rows.size} matching rows in the first {n:,}")
            continue
        gt = None
        if not args.skip_sweep:  # the sweep's ground truth (--defaults computes its own)
            ids, _ = vjson.brute_force_knn(np.ascontiguousarray(ds.base[rows]), Q, K, "cosine")
            gt = rows[np.asarray(ids, dtype=np.int64)]
        filters.append((cls, name, flt, rows, gt))
    log(f"  filtered ground truth for {len(filters)} filters in {time.perf_counter() - t0:.1f} s")

    folder = tempfile.mkdtemp(prefix="vjson_filters_", dir=tmp_root)
    path = args.db or os.path.join(folder, "db")
    db = None
    try:
        t0 = time.perf_counter()
        if args.db and os.path.exists(path):
            db = vjson.open(path)
            if len(db) != n:
                raise SystemExit(f"--db {path} holds {len(db):,} records, not {n:,}")
            log(f"  database at {path} reused")
        else:
            db = vjson.VectorDB(path, dimension=ds.dim, metric="cosine", M=M, ef_construction=EF_CONSTRUCTION)
            ids = [str(i) for i in range(n)]
            for s in range(0, n, 5000):
                db.insert_batch(ids[s:s + 5000], ds.base[s:s + 5000], metas[s:s + 5000])
            db.close()
            db = vjson.open(path)
        res["build_s"] = time.perf_counter() - t0
        log(f"  database built with metadata, closed and reopened in {res['build_s']:.1f} s")

        cases = [("all", "unfiltered", None, None, ds.gt)] + filters
        for cls, name, flt, rows, gt in filters:
            counted = db.count(flt)
            count_s = _median_time(lambda: db.count(flt), 7)
            compile_s = _median_time(lambda: compile_filter(flt), 7)
            res["filters"][name] = {"class": cls, "filter": flt, "matches": int(rows.size),
                                    "selectivity": rows.size / n, "db_count": counted,
                                    "db_count_agrees": counted == rows.size,
                                    "db_count_ms": 1e3 * count_s, "compile_ms": 1e3 * compile_s,
                                    "sweep": []}
            flag = "" if counted == rows.size else f"  <-- db.count says {counted}!"
            log(f"  {cls:6s} {name:42s} {rows.size:6,d} rows = {100 * rows.size / n:7.3f}%   "
                f"db.count {1e3 * count_s:6.2f} ms{flag}")
        res["unfiltered"] = {"sweep": []}

        if args.defaults:
            res["defaults"] = run_defaults(args, db, ds, metas)
        if args.skip_sweep:
            return res
        outs = {c[1]: [None] * m for c in cases}

        beam = [64]  # the swept ef, passed per call (the default beam would add 3k)

        def make_loop(name, flt):
            out = outs[name]

            def loop():
                search, ef = db.search, beam[0]
                for i in range(m):
                    out[i] = search(Q[i], K, flt, ef)
            return loop

        loops = {c[1]: make_loop(c[1], c[2]) for c in cases}
        # warm-up
        for c in cases:
            loops[c[1]]()
        names = [c[1] for c in cases]
        gts = {c[1]: c[4] for c in cases}
        for ei, ef in enumerate(args.ef):
            beam[0] = ef
            rates = {nm: [] for nm in names}
            for rep in range(args.reps):
                shift = (rep + ei) % len(names)
                for nm in names[shift:] + names[:shift]:
                    rates[nm].append(_rate(loops[nm], m, args.min_time))
            parts = []
            for nm in names:
                found = np.array([[int(r.id) for r in rs] + [-1] * (K - len(rs)) for rs in outs[nm]])
                rec = _data.recall_at_k(found, gts[nm], K)
                pt = {"ef": ef, "recall": rec, "qps_1t": _median(rates[nm]), "qps_1t_runs": rates[nm]}
                (res["unfiltered"] if nm == "unfiltered" else res["filters"][nm])["sweep"].append(pt)
                parts.append(f"{rec:.3f}/{pt['qps_1t']:,.0f}")
            log(f"  ef {ef:4d}: " + "  ".join(parts))

        tgt = args.target_recall
        if not args.skip_breakdown:
            res["breakdown"] = run_breakdown(args, db, path, ds, filters, res)
        un = res["unfiltered"]
        un["at_target"] = qps_at_target(un["sweep"], "qps_1t", tgt)
        for name, fr in res["filters"].items():
            fr["at_target"] = qps_at_target(fr["sweep"], "qps_1t", tgt)
            a, b = fr["at_target"]["qps"], un["at_target"]["qps"]
            fr["qps_ratio_at_target"] = (a / b) if a and b else None
            fr["qps_ratio_same_ef"] = [f["qps_1t"] / u["qps_1t"] for f, u in zip(fr["sweep"], un["sweep"])]
            fr["max_recall"] = max(p["recall"] for p in fr["sweep"])
            fr["recall_at_default_ef64"] = next((p["recall"] for p in fr["sweep"] if p["ef"] == 64), None)
        return res
    finally:
        if db is not None:
            db.close()
        shutil.rmtree(folder, ignore_errors=True)


def run_defaults(args, db, ds: _data.Dataset, metas: List[dict]) -> dict:
    """Filtered vs unfiltered db.search at default settings, passes interleaved,
    for each query set (held-out glosses; with --word-queries also the one-word
    queries' embeddings, which sit further from the base) and each k of --defaults-k."""
    import vjson
    from vjson.filters import compile_filter
    n = ds.n
    sets = {"held-out glosses": ds.queries}
    if args.word_queries:
        words = np.load(_data._wordnet_folder(_data.resolve_data_dir(args.data_dir)) / "hybrid_queries.f16.npy")
        sets["one-word queries"] = np.ascontiguousarray(words[: ds.queries.shape[0]], dtype=np.float32)
    log(f"\n  default settings (ef_search {db.ef_search}), filtered vs unfiltered, interleaved:")
    matching = {}
    for name, flt in DEFAULT_FILTERS:
        cf = compile_filter(flt)
        rows = np.array([i for i, d in enumerate(metas) if cf.matches(d)], dtype=np.int64)
        if rows.size >= max(args.defaults_k):
            matching[name] = (flt, rows)
    out = {}
    for set_name, Q in sets.items():
        m = Q.shape[0]
        for k in args.defaults_k:
            def run(flt, k=k, Q=Q):
                search = db.search
                return [search(Q[i], k, flt) for i in range(m)]

            def timed(flt) -> float:
                t0 = time.perf_counter()
                run(flt)
                return time.perf_counter() - t0

            run(None)  # warm-up
            for name, (flt, rows) in matching.items():
                ids, _ = vjson.brute_force_knn(np.ascontiguousarray(ds.base[rows]), Q, k, "cosine")
                gt = rows[np.asarray(ids, dtype=np.int64)]
                got = run(flt)
                found = np.array([[int(r.id) for r in rs] + [-1] * (k - len(rs)) for rs in got])
                recall = _data.recall_at_k(found, gt, k)
                filtered, unfiltered = [], []
                for rep in range(max(args.reps, 3)):
                    pair = [(filtered, flt), (unfiltered, None)]
                    for acc, f in (pair if rep % 2 == 0 else pair[::-1]):
                        acc.append(timed(f))
                ratio = _median(unfiltered) / _median(filtered)
                key = name if (set_name, k) == ("held-out glosses", K) else f"{set_name} k={k}: {name}"
                out[key] = {"filter": flt, "queries": set_name, "k": k, "selectivity": rows.size / n,
                            "recall": recall, "qps_ratio": ratio,
                            "filtered_qps_1t": m / _median(filtered), "unfiltered_qps_1t": m / _median(unfiltered)}
                log(f"    {set_name:16s} k={k:<3d} {name:32s} {100 * rows.size / n:6.2f}%  recall@{k} {recall:.4f}  "
                    f"filtered/unfiltered {ratio:.2f}x")
    return out


def print_defaults(res: dict) -> None:
    print("\nDefault settings, filtered / unfiltered queries/s (passes interleaved, median), recall@k vs exact:")
    print(f"{'queries':17s} {'k':>3s} {'filter':32s} {'selectivity':>11s} {'recall@k':>9s} {'QPS ratio':>9s}")
    for name, r in res.items():
        flt_name = name.split(": ", 1)[-1]
        print(f"{r.get('queries', 'held-out glosses'):17s} {r.get('k', K):3d} {flt_name:32s} "
              f"{100 * r['selectivity']:10.2f}% {r['recall']:9.4f} {r['qps_ratio']:8.2f}x")


def _first_ef(sweep: List[dict], target: float) -> int:
    for p in sweep:
        if p["recall"] >= target:
            return p["ef"]
    return sweep[-1]["ef"]


def run_breakdown(args, db, path: str, ds: _data.Dataset, filters, res: dict) -> dict:
    """Where a filtered query's time goes, at the first ef where the filter reaches the target.

    Microseconds per query (median of passes, interleaved): the database call with the
    filter as a dict and precompiled; ``db.count(F)`` (compile + evaluate + live mask,
    about the per-call filter step); the core index alone (the database's own graph,
    searched directly) with the bitset computed once; and the
    unfiltered database call at the same ef."""
    from vjson.filters import compile_filter
    graph = db._gen.graph  # the graph under the database (it reads the database's vector file)
    Q = ds.queries
    m = Q.shape[0]
    out = {}
    tgt = args.target_recall
    for cls, name, flt, rows, gt in filters:
        ef = _first_ef(res["filters"][name]["sweep"], tgt)
        mask = np.zeros(ds.n, dtype=bool)
        mask[rows] = True
        bits = np.packbits(mask, bitorder="little")
        count = int(rows.size)
        cf = compile_filter(flt)

        def db_dict():
            for i in range(m):
                db.search(Q[i], K, flt, ef)

        def db_compiled():
            for i in range(m):
                db.search(Q[i], K, cf, ef)

        def db_count():
            for i in range(m):
                db.count(flt)

        def core():
            for i in range(m):
                graph.search(Q[i], K, ef, bits, count)

        def unfiltered():
            for i in range(m):
                db.search(Q[i], K, None, ef)

        parts = {"db.search(filter=dict)": db_dict, "db.search(filter=compiled)": db_compiled,
                 "db.count(filter) only": db_count, "core search, bitset given": core,
                 "db.search unfiltered": unfiltered}
        names = list(parts)
        times = {nm: [] for nm in names}
        for rep in range(args.reps):
            shift = rep % len(names)
            for nm in names[shift:] + names[:shift]:
                times[nm].append(1e6 / _rate(parts[nm], m, args.min_time))
        out[name] = {"ef": ef, **{nm: _median(v) for nm, v in times.items()}}
        log(f"  breakdown {name:42s} ef {ef:3d}: " + ", ".join(f"{nm} {out[name][nm]:.0f} us" for nm in names))
    return out


def print_search(res: dict, target: float) -> None:
    print(f"\n### Filtered search: {res['dataset']}, k={K}, db.search(q, k=10, filter=F), 1 thread")
    print("\nFilters (matching rows by an independent evaluator; db.count = per-call filter cost: "
          "compile + evaluate + live mask):")
    hdr = f"{'class':6s} {'filter':42s} {'rows':>7s} {'selectivity':>11s} {'count ok':>8s} {'compile ms':>10s} {'db.count ms':>11s}"
    print(hdr)
    print("-" * len(hdr))
    for name, fr in res["filters"].items():
        print(f"{fr['class']:6s} {name:42s} {fr['matches']:7,d} {100 * fr['selectivity']:10.3f}% "
              f"{'yes' if fr['db_count_agrees'] else 'NO':>8s} {fr['compile_ms']:10.3f} {fr['db_count_ms']:11.3f}")

    names = ["unfiltered"] + list(res["filters"])
    sweeps = [res["unfiltered"]["sweep"]] + [fr["sweep"] for fr in res["filters"].values()]
    print("\nrecall@10 per ef (columns: filters in the order above, u = unfiltered):")
    short = ["u"] + [f"f{i + 1}" for i in range(len(names) - 1)]
    print(f"{'ef':>5s} " + " ".join(f"{s:>8s}" for s in short))
    for i, pt in enumerate(sweeps[0]):
        print(f"{pt['ef']:5d} " + " ".join(f"{sw[i]['recall']:8.4f}" for sw in sweeps))
    print("\nqueries/s per ef (median of passes):")
    print(f"{'ef':>5s} " + " ".join(f"{s:>8s}" for s in short))
    for i, pt in enumerate(sweeps[0]):
        print(f"{pt['ef']:5d} " + " ".join(f"{sw[i]['qps_1t']:8,.0f}" for sw in sweeps))
    print("\nfiltered QPS / unfiltered QPS at the same ef:")
    print(f"{'ef':>5s} " + " ".join(f"{s:>8s}" for s in short[1:]))
    for i, pt in enumerate(sweeps[0]):
        print(f"{pt['ef']:5d} " + " ".join(f"{sw[i]['qps_1t'] / pt['qps_1t']:8.2f}" for sw in sweeps[1:]))
    print(f"  (f1..f{len(names) - 1} = " + ", ".join(f"f{i + 1} {nm}" for i, nm in enumerate(names[1:])) + ")")

    if res.get("breakdown"):
        print(f"\nWhere the time goes (microseconds per query at each filter's first ef reaching {target}; "
              "core = the database's own graph searched directly, bitset computed once):")
        cols = ["db.search(filter=dict)", "db.search(filter=compiled)", "db.count(filter) only",
                "core search, bitset given", "db.search unfiltered"]
        heads = ["db dict", "db compiled", "db.count", "core+bits", "unfiltered"]
        hdr = f"{'filter':42s} {'ef':>4s} " + " ".join(f"{h:>11s}" for h in heads)
        print(hdr)
        print("-" * len(hdr))
        for name, b in res["breakdown"].items():
            print(f"{name:42s} {b['ef']:4d} " + " ".join(f"{b[c]:11.0f}" for c in cols))

    un = res["unfiltered"]["at_target"]
    print(f"\nAt recall@10 = {target} (interpolated; 'lower bound' = the lowest ef already reaches it):")
    hdr = f"{'class':6s} {'filter':42s} {'selectivity':>11s} {'best recall':>11s} {'ef':>5s} {'QPS':>8s} {'vs unfiltered':>13s}  how"
    print(hdr)
    print("-" * len(hdr))
    print(f"{'100%':6s} {'unfiltered':42s} {100.0:10.3f}% {max(p['recall'] for p in res['unfiltered']['sweep']):11.4f} "
          f"{_fmt(un['ef'], '{:.0f}'):>5s} {_fmt(un['qps']):>8s} {'1.00x':>13s}  {un['how']}")
    for name, fr in res["filters"].items():
        at = fr["at_target"]
        print(f"{fr['class']:6s} {name:42s} {100 * fr['selectivity']:10.3f}% {fr['max_recall']:11.4f} "
              f"{_fmt(at['ef'], '{:.0f}'):>5s} {_fmt(at['qps']):>8s} {_fmt(fr['qps_ratio_at_target'], '{:.2f}x'):>13s}  "
              f"{at['how']}")


# =========================================================================== part 2

def run_eval(args, metas: List[dict]) -> dict:
    from vjson.filters import compile_filter
    from vjson.metadata_index import MetadataIndex
    n = args.index_n
    log(f"\n=== filter evaluation: MetadataIndex of {n:,} documents shaped like WordNet's metadata ===")
    rng = np.random.default_rng(11)
    pick = rng.integers(0, len(metas), n)
    idx = MetadataIndex()
    t0 = time.perf_counter()
    chunk = 100_000
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        docs = []
        for r, j in zip(range(s, e), pick[s:e]):
            d = dict(metas[j])
            d["synset"] = f"{r:08d}-{d['pos']}"
            docs.append(d)
        idx.set_many(np.arange(s, e, dtype=np.int64), docs)
        del docs
    set_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx.evaluate({"pos": "n"}, n)  # commits the staged writes
    first_s = time.perf_counter() - t0
    log(f"  set_many of {n:,} documents: {set_s:.1f} s; first evaluate (commits staged writes) {first_s:.2f} s; "
        f"numpy columns {idx.nbytes() / 2**20:,.0f} MiB")
    res = {"n": n, "set_many_s": set_s, "first_evaluate_s": first_s, "nbytes": idx.nbytes(), "filters": {}}
    for cls, name, flt in FILTERS + EVAL_ONLY:
        compiled = compile_filter(flt)
        mask = idx.evaluate(compiled, n)
        t_compile, t_eval, t_pack, t_total = [], [], [], []
        gc.collect()
        gc.disable()  # no collection inside the timed calls (a collection per pass would chill the caches)
        for _ in range(args.eval_reps):
            t0 = time.perf_counter()
            cf = compile_filter(flt)
            t1 = time.perf_counter()
            mask = idx.evaluate(cf, n)
            t2 = time.perf_counter()
            bits = np.packbits(mask, bitorder="little")
            count = int(np.count_nonzero(mask))
            t3 = time.perf_counter()
            t_compile.append(t1 - t0)
            t_eval.append(t2 - t1)
            t_pack.append(t3 - t2)
            t_total.append(t3 - t0)
        gc.enable()
        del bits
        r = {"class": cls, "filter": flt, "matches": count, "selectivity": count / n,
             "compile_ms": 1e3 * _median(t_compile), "evaluate_ms": 1e3 * _median(t_eval),
             "packbits_ms": 1e3 * _median(t_pack), "total_ms": 1e3 * _median(t_total)}
        res["filters"][name] = r
        log(f"  {name:42s} {100 * count / n:7.3f}%  compile {r['compile_ms']:6.3f} ms  evaluate "
            f"{r['evaluate_ms']:7.2f} ms  packbits+count {r['packbits_ms']:5.2f} ms  total {r['total_ms']:7.2f} ms")
    return res


def print_eval(res: dict) -> None:
    print(f"\n### Filter compile + bitset at {res['n']:,} rows (median of passes); set_many {res['set_many_s']:.1f} s, "
          f"numpy columns {res['nbytes'] / 2**20:,.0f} MiB")
    hdr = (f"{'filter':42s} {'selectivity':>11s} {'compile ms':>10s} {'evaluate ms':>11s} "
           f"{'packbits ms':>11s} {'total ms':>9s}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in res["filters"].items():
        print(f"{name:42s} {100 * r['selectivity']:10.3f}% {r['compile_ms']:10.3f} {r['evaluate_ms']:11.2f} "
              f"{r['packbits_ms']:11.2f} {r['total_ms']:9.2f}")


# =========================================================================== main



def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="vjson filtered search on WordNet metadata, and filter "
                                             "evaluation time at 1M rows.")
    ap.add_argument("--n", type=int, default=None, help="WordNet base rows (default all 80,000)")
    ap.add_argument("--queries", type=int, default=1000, help="queries (default 1,000)")
    ap.add_argument("--ef", type=_int_list, default=DEFAULT_EFS, help="ef_search sweep")
    ap.add_argument("--reps", type=int, default=3, help="timed passes per point (median kept)")
    ap.add_argument("--min-time", type=float, default=0.3, help="minimum seconds per timed pass")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--index-n", type=int, default=1_000_000, help="documents in the evaluation index (default 1M)")
    ap.add_argument("--eval-reps", type=int, default=9, help="timed evaluations per filter (median kept)")
    ap.add_argument("--skip-search", action="store_true", help="only the 1M evaluation part")
    ap.add_argument("--skip-eval", action="store_true", help="only the search part")
    ap.add_argument("--skip-breakdown", action="store_true", help="skip the per-filter time breakdown")
    ap.add_argument("--defaults", action="store_true",
                    help="also filtered vs unfiltered at default settings, pos/lexname filters 70%%..0.03%%")
    ap.add_argument("--skip-sweep", action="store_true", help="leave the ef sweep out (with --defaults)")
    ap.add_argument("--word-queries", action="store_true",
                    help="--defaults also with the one-word queries' embeddings (hybrid_queries.f16.npy)")
    ap.add_argument("--defaults-k", type=_int_list, default=[K], help="k values of --defaults (default 10)")
    ap.add_argument("--db", default=None,
                    help="keep the database here and reuse it on the next run (same --n; not deleted)")
    ap.add_argument("--data-dir", default=None, help="shared data folder holding wordnet/")
    ap.add_argument("--tmp", default=None, help="folder for the temporary database")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10,000 rows, 200 queries, 4 ef values, 1 pass, 100,000-document index")
    ap.add_argument("--json", metavar="OUT.json", default=None, help="write every number here")
    args = ap.parse_args(argv)
    if args.quick:
        args.n = args.n or 10_000
        args.queries = min(args.queries, 200)
        args.ef = [16, 32, 64, 128]
        args.reps = 1
        args.min_time = 0.1
        args.index_n = min(args.index_n, 100_000)
        args.eval_reps = 3
    args.ef = sorted(set(args.ef))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import vjson
    data_dir = _data.resolve_data_dir(args.data_dir)
    try:
        _data._wordnet_folder(data_dir)
    except _data.DataMissing as exc:
        _data.die(str(exc))
    info = machine_info(int(vjson.default_threads()))
    info["git"] = git_state()
    log(f"vjson at commit {info['git']['commit']}" + (" with uncommitted changes in src/" if info["git"]["src_dirty"] else ""))
    log(f"machine: {info['cpu']}, {info['cpus_usable']} usable CPUs, simd {info.get('vjson_simd', {}).get('active')}")
    t0 = time.perf_counter()
    ds = _data.load_wordnet(data_dir, n=args.n, n_queries=args.queries, k=K)
    metas_all = load_meta(data_dir, 80_000)
    metas = metas_all[:ds.n]
    log(f"loaded {ds.describe()} and its metadata in {time.perf_counter() - t0:.1f} s (gt: {ds.info['gt']})")
    results = {}
    tmp_root = tempfile.mkdtemp(prefix="vjson_benchfilt_", dir=args.tmp)
    try:
        if not args.skip_search:
            results["search"] = run_search(args, ds, metas, tmp_root)
        if not args.skip_eval:
            results["evaluate"] = run_eval(args, metas_all)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    print("\n(2 shared cores, other work running: compare numbers within one run; ratios are more "
          "meaningful than absolute rates)")
    if "search" in results and results["search"].get("defaults"):
        print_defaults(results["search"]["defaults"])
    if "search" in results and not args.skip_sweep:
        print_search(results["search"], args.target_recall)
    if "evaluate" in results:
        print_eval(results["evaluate"])
    if args.json:
        out = {"benchmark": "bench_filters", "params": vars(args), "machine": info, "results": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
        log(f"\n[json] wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
