#!/usr/bin/env python3
"""Hybrid (vector + full-text) search quality and speed on WordNet's hybrid queries.

The database holds WordNet's 80,000 glosses: the 384-d embedding (cosine) and
the gloss text of each row. The 2,000 queries of ``hybrid_queries.jsonl`` are
words (a reverse-dictionary task: the relevant rows are the glosses of the
synsets holding the word), half ``polysemous`` (several relevant rows), half
``monosemous`` (one). Each query is run as

* vector only: ``db.search(v, k=10)`` (at the database's ef_search, default 64),
  and an exact brute force as reference;
* text only: ``db.text_search(word, k=10)`` (plain text, the default; BM25),
  and ``syntax=True`` (tantivy's query language, the old default);
* the issue's reference, computed here: a plain Okapi BM25 (``_bm25.py``:
  sklearn tokens, k1 0.9, b 0.4) and a plain RRF (k=60, top 100 of each) of it
  with the exact vector search;
* hybrid RRF: ``db.hybrid_search(v, word, k=10, fusion="rrf")`` (defaults);
* hybrid weighted: ``fusion="weighted"`` with alpha 0.3 / 0.5 / 0.7
  (alpha weighs the vector side).

Reported per kind and overall: nDCG@10 (binary gains: 1 for a relevant row),
recall@10 = |top-10 ∩ relevant| / min(|relevant|, 10) and MRR@10, beside the
figures of ``hybrid_baseline.json`` (plain BM25, exact vector, RRF k=60 over the
top 100 of each), then single-thread queries/s of the vector, text and hybrid
calls, interleaved, median of ``--reps`` passes.

``--recall-k`` adds recall@k against exact search for k = 1, 10, 50, 100 at
the default beam (ef_search + 3k) and at the old fixed ef_search 64, for the
held-out glosses and for the one-word queries' embeddings, with the
queries/s of both (interleaved).

    python benchmarks/bench_hybrid.py --quick
    python benchmarks/bench_hybrid.py --json benchmarks/results/hybrid.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402
from _bm25 import PlainBM25  # noqa: E402
from _report import git_state, log, median as _median, rate as _rate  # noqa: E402
from compare_peers import machine_info  # noqa: E402

M = 16
EF_CONSTRUCTION = 200
K = 10
KINDS = ("polysemous", "monosemous")
ALPHAS = (0.3, 0.5, 0.7)








def _fmt(x, spec="{:.3f}", none="-"):
    return none if x is None or (isinstance(x, float) and x != x) else spec.format(x)


# --------------------------------------------------------------------------- metrics

_DISCOUNT = [1.0 / math.log2(i + 2) for i in range(K)]


def ndcg_at_k(found: List[int], relevant: set) -> float:
    """Binary-gain nDCG@10: DCG of the returned list over the DCG of an ideal one."""
    dcg = sum(_DISCOUNT[i] for i, r in enumerate(found[:K]) if r in relevant)
    ideal = sum(_DISCOUNT[:min(len(relevant), K)])
    return dcg / ideal if ideal else 0.0


def recall_at_k(found: List[int], relevant: set) -> float:
    """|top-10 ∩ relevant| / min(|relevant|, 10) (the baseline file's definition)."""
    return len(set(found[:K]) & relevant) / min(len(relevant), K)


def mrr_at_k(found: List[int], relevant: set) -> float:
    for i, r in enumerate(found[:K]):
        if r in relevant:
            return 1.0 / (i + 1)
    return 0.0


def score(runs: List[List[int]], queries: List[dict]) -> Dict[str, dict]:
    """Mean nDCG@10, recall@10 and MRR@10 per kind and overall."""
    acc = {kind: [] for kind in KINDS + ("overall",)}
    for found, q in zip(runs, queries):
        rel = q["_rel"]
        t = (ndcg_at_k(found, rel), recall_at_k(found, rel), mrr_at_k(found, rel))
        acc[q["kind"]].append(t)
        acc["overall"].append(t)
    out = {}
    for kind, rows in acc.items():
        if rows:
            a = np.asarray(rows)
            out[kind] = {"ndcg@10": float(a[:, 0].mean()), "recall@10": float(a[:, 1].mean()),
                         "mrr@10": float(a[:, 2].mean()), "n": len(rows)}
    return out


# --------------------------------------------------------------------------- data

def load(data_dir: Path, n_queries: int):
    import orjson
    folder = _data._wordnet_folder(data_dir)
    base = np.ascontiguousarray(np.load(folder / "base.f16.npy"), dtype=np.float32)
    texts = []
    with open(folder / "texts.jsonl", "rb") as f:
        for line in f:
            texts.append(orjson.loads(line)["text"])
    queries = []
    with open(folder / "hybrid_queries.jsonl", "rb") as f:
        for line in f:
            q = orjson.loads(line)
            q["_rel"] = set(q["relevant_ids"])
            queries.append(q)
    qv = np.ascontiguousarray(np.load(folder / "hybrid_queries.f16.npy"), dtype=np.float32)
    baseline = json.loads((folder / "hybrid_baseline.json").read_text())
    if n_queries < len(queries):
        # keep the kinds balanced: the first n/2 of each
        keep = []
        for kind in KINDS:
            keep += [i for i, q in enumerate(queries) if q["kind"] == kind][: n_queries // 2]
        keep.sort()
        queries = [queries[i] for i in keep]
        qv = np.ascontiguousarray(qv[keep])
    return base, texts, queries, qv, baseline


def baseline_table(baseline: dict) -> Dict[str, Dict[str, dict]]:
    """{method: {kind: {recall@10, mrr@10}}} with an n-weighted 'overall'."""
    out: Dict[str, Dict[str, dict]] = {}
    for key, v in baseline.items():
        kind, method = key.split("/", 1)
        out.setdefault(method, {})[kind] = {"recall@10": v.get("recall@10"), "mrr@10": v.get("mrr@10"),
                                            "n": v.get("n", 1)}
    for method, kinds in out.items():
        tot = sum(k["n"] for k in kinds.values())
        kinds["overall"] = {m: sum(k[m] * k["n"] for k in kinds.values()) / tot for m in ("recall@10", "mrr@10")}
    return out


# --------------------------------------------------------------------------- run



def run(args) -> dict:
    import vjson
    data_dir = _data.resolve_data_dir(args.data_dir)
    t0 = time.perf_counter()
    base, texts, queries, qv, baseline = load(data_dir, args.queries)
    n = base.shape[0]
    m = len(queries)
    log(f"loaded {n:,} glosses and {m:,} hybrid queries in {time.perf_counter() - t0:.1f} s")
    res = {"n": n, "queries": m, "per_kind_queries": {k: sum(q["kind"] == k for q in queries) for k in KINDS}}

    folder = tempfile.mkdtemp(prefix="vjson_hybrid_", dir=args.tmp)
    path = args.db or os.path.join(folder, "db")
    db = None
    try:
        t0 = time.perf_counter()
        if not (args.db and os.path.exists(path)):
            db = vjson.VectorDB(path, dimension=base.shape[1], metric="cosine", M=M,
                                ef_construction=EF_CONSTRUCTION, ef_search=args.ef)
            ids = [str(i) for i in range(n)]
            for s in range(0, n, 5000):
                db.insert_batch(ids[s:s + 5000], base[s:s + 5000], None, texts[s:s + 5000])
            db.close()
        res["build_s"] = time.perf_counter() - t0
        db = vjson.open(path, ef_search=args.ef)
        log(f"database with vectors and texts built, closed and reopened in {res['build_s']:.1f} s "
            f"(ef_search {args.ef})")

        words = [q["query"] for q in queries]
        methods: Dict[str, Callable[[int], list]] = {
            "vector": lambda i: db.search(qv[i], K),
            "text": lambda i: db.text_search(words[i], K),
            "text syntax=True": lambda i: db.text_search(words[i], K, syntax=True),
            "hybrid rrf": lambda i: db.hybrid_search(qv[i], words[i], K, fusion="rrf"),
            "hybrid rrf k=60": lambda i: db.hybrid_search(qv[i], words[i], K, fusion="rrf", rrf_k=60),
        }
        for a in args.alphas:
            methods[f"weighted a={a}"] = (lambda a: lambda i: db.hybrid_search(qv[i], words[i], K,
                                                                               fusion="weighted", alpha=a))(a)

        # ---- quality (one pass per method; failures are recorded, not fatal)
        runs: Dict[str, List[List[int]]] = {}
        failures: Dict[str, list] = {}
        failed_idx = set()
        for name, call in methods.items():
            out, bad = [], []
            for i in range(m):
                try:
                    out.append([int(r.id) for r in call(i)])
                except Exception as exc:  # a query the engine cannot take is a finding
                    bad.append({"query": words[i], "error": f"{type(exc).__name__}: {exc}"})
                    failed_idx.add(i)
                    out.append([])
            runs[name] = out
            if bad:
                failures[name] = bad
                log(f"  [!] {name}: {len(bad)} queries failed, e.g. {bad[0]}")
        exact100, _ = vjson.brute_force_knn(base, qv, 100, "cosine")
        exact100 = np.asarray(exact100, dtype=np.int64)
        exact = exact100[:, :K]
        runs["vector exact (brute force)"] = exact.tolist()
        bm25 = PlainBM25(texts)
        bm25_100 = [bm25.search(w, 100).tolist() for w in words]
        runs["plain BM25 (reference)"] = [r[:K] for r in bm25_100]
        runs["plain RRF (reference)"] = [plain_rrf([b, e.tolist()]) for b, e in zip(bm25_100, exact100)]
        quality = {name: score(r, queries) for name, r in runs.items()}
        # how close the ANN vector side is to exact on these (word) queries
        ann = np.array([r + [-1] * (K - len(r)) for r in runs["vector"]], dtype=np.int64)
        res["vector_ann_recall_vs_exact"] = _data.recall_at_k(ann, np.asarray(exact, dtype=np.int64), K)
        log(f"  vector side: recall@10 of db.search against the exact top 10 = "
            f"{res['vector_ann_recall_vs_exact']:.4f} (ef_search {args.ef})")
        res["quality"] = quality
        res["failures"] = failures
        res["baseline"] = baseline_table(baseline)

        # ---- targets: text >= plain BM25; hybrid > each side and > the plain RRF reference
        tgt = {}
        for kind in KINDS + ("overall",):
            row = {}
            for metric in ("recall@10", "ndcg@10"):
                hyb = quality["hybrid rrf"][kind][metric]
                others = {o: quality[o][kind][metric] for o in ("vector", "text", "plain RRF (reference)")}
                row[metric] = {"hybrid": hyb, **others, "met": all(hyb > v for v in others.values()),
                               "text_vs_plain_bm25": quality["text"][kind][metric]
                               - quality["plain BM25 (reference)"][kind][metric]}
            tgt[kind] = row
        res["targets"] = tgt

        if args.exact_weights:
            res["exact_sweep"] = run_exact_sweep(args, db, queries, qv, words, runs)

        # ---- speed: single thread, interleaved, over the queries every method took
        if args.quality_only:
            return res
        ok = [i for i in range(m) if i not in failed_idx]
        # the two retrievals a hybrid call makes (depth = candidates = 100), to see where its time goes
        methods["(vector k=100)"] = lambda i: db.search(qv[i], 100, ef_search=max(args.ef, 100))
        methods["(text k=100)"] = lambda i: db.text_search(words[i], 100, syntax=False)
        # the cost of the defaults against main's: plain BM25 text, 100 candidates, a vector beam of 100
        from vjson import text_index

        def as_main(call):
            def run_as_main(i):
                saved, text_index.EXACT_FORM_WEIGHT = text_index.EXACT_FORM_WEIGHT, 0.0
                try:
                    return call(i)
                finally:
                    text_index.EXACT_FORM_WEIGHT = saved
            return run_as_main
        methods["text (main: no exact forms)"] = as_main(lambda i: db.text_search(words[i], K))
        methods["hybrid (main: c=100, ef 100)"] = as_main(
            lambda i: db.hybrid_search(qv[i], words[i], K, candidates=100, ef_search=100))
        methods["hybrid rrf c=100"] = lambda i: db.hybrid_search(qv[i], words[i], K, candidates=100)
        order = list(methods)
        timed = {nm: [] for nm in order}
        for rep in range(args.reps):
            shift = rep % len(order)
            for nm in order[shift:] + order[:shift]:
                call = methods[nm]

                def loop(call=call):
                    for i in ok:
                        call(i)
                timed[nm].append(_rate(loop, len(ok), args.min_time))
        res["qps"] = {nm: {"qps_1t": _median(v), "runs": v} for nm, v in timed.items()}
        for nm, v in res["qps"].items():
            log(f"  {nm:28s} {v['qps_1t']:8,.0f} queries/s")
        if args.recall_k:
            res["recall_k"] = run_recall_k(args, db, base, qv, data_dir)
        return res
    finally:
        if db is not None:
            db.close()
        shutil.rmtree(folder, ignore_errors=True)


def run_exact_sweep(args, db, queries: List[dict], qv: np.ndarray, words: List[str],
                    runs: Dict[str, List[List[int]]]) -> dict:
    """Quality of text and hybrid search per exact-form weight
    (``text_index.EXACT_FORM_WEIGHT``) and hybrid candidate window, on the even
    half of the queries (to choose on) and the odd half (held out), beside the
    plain references. ``main-like`` is hybrid as main ran it: 100 candidates,
    the vector side walked with a beam of 100."""
    from vjson import text_index
    halves = {"even": [i for i in range(len(queries)) if i % 2 == 0],
              "odd": [i for i in range(len(queries)) if i % 2 == 1]}

    def by_half(run: List[List[int]]) -> dict:
        return {h: score([run[i] for i in idx], [queries[i] for i in idx]) for h, idx in halves.items()}

    out: Dict[str, dict] = {name: by_half(runs[name]) for name in ("plain BM25 (reference)", "plain RRF (reference)",
                                                                    "vector")}
    saved = text_index.EXACT_FORM_WEIGHT
    try:
        for w in args.exact_weights:
            text_index.EXACT_FORM_WEIGHT = w
            variants = {f"text W={w}": lambda i: db.text_search(words[i], K),
                        f"hybrid W={w} main-like": lambda i: db.hybrid_search(qv[i], words[i], K, candidates=100,
                                                                             ef_search=100)}
            for c in args.candidates:
                variants[f"hybrid W={w} c={c}"] = (lambda c: lambda i: db.hybrid_search(qv[i], words[i], K,
                                                                                       candidates=c))(c)
            for name, call in variants.items():
                out[name] = by_half([[int(r.id) for r in call(i)] for i in range(len(queries))])
                cells = [f"{h}/{kind} {out[name][h][kind]['recall@10']:.3f}/{out[name][h][kind]['ndcg@10']:.3f}"
                         for h in halves for kind in KINDS]
                log(f"  {name:28s} " + "  ".join(cells))
    finally:
        text_index.EXACT_FORM_WEIGHT = saved
    return out


def print_exact_sweep(sweep: dict) -> None:
    print("\nExact-form weight x candidate window, recall@10 / nDCG@10 on each half of the queries "
          "(even = to choose on, odd = held out):")
    cols = [(h, kind) for h in ("even", "odd") for kind in KINDS]
    print(f"{'method':30s}" + "".join(f"{h + ' ' + kind:>22s}" for h, kind in cols))
    for name, per in sweep.items():
        print(f"{name:30s}" + "".join(f"{per[h][kind]['recall@10']:>13.3f} / {per[h][kind]['ndcg@10']:.3f}"
                                      for h, kind in cols))


def plain_rrf(lists: List[List[int]], k: int = 60, depth: int = 100) -> List[int]:
    """The reference fusion: sum of 1 / (k + rank) over the top `depth` of each list."""
    score: Dict[int, float] = {}
    for ranking in lists:
        for rank, row in enumerate(ranking[:depth]):
            score[row] = score.get(row, 0.0) + 1.0 / (k + rank + 1)
    return [r for r, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))][:K]


def run_recall_k(args, db, base: np.ndarray, qv: np.ndarray, data_dir: Path) -> dict:
    """recall@k vs exact at the default beam and at the old fixed ef 64, with queries/s."""
    import vjson
    folder = _data._wordnet_folder(data_dir)
    held = np.ascontiguousarray(np.load(folder / "queries.f16.npy"), dtype=np.float32)[: args.recall_queries]
    held_gt = np.load(folder / "gt_cosine_top100.i32.npy")[: args.recall_queries].astype(np.int64)
    words = qv[: args.recall_queries]
    words_gt, _ = vjson.brute_force_knn(base, words, 100, "cosine")
    sets = {"held-out glosses": (held, held_gt), "one-word queries": (words, np.asarray(words_gt, np.int64))}
    out: Dict[str, dict] = {}
    for name, (Q, G) in sets.items():
        for k in (1, 10, 50, 100):
            calls = {"default": lambda i, k=k: db.search(Q[i], k), "ef 64": lambda i, k=k: db.search(Q[i], k, ef_search=64)}
            row = {}
            for label, call in calls.items():
                got = [[int(r.id) for r in call(i)] for i in range(len(Q))]
                row[label] = {"recall": float(np.mean([len(set(g) & set(G[i, :k].tolist())) / k
                                                       for i, g in enumerate(got)]))}
            rates: Dict[str, list] = {label: [] for label in calls}
            for rep in range(args.reps):
                for label in (list(calls) if rep % 2 == 0 else list(calls)[::-1]):
                    call = calls[label]
                    rates[label].append(_rate(lambda call=call: [call(i) for i in range(len(Q))], len(Q),
                                              args.min_time))
            for label in calls:
                row[label]["qps_1t"] = _median(rates[label])
            row["qps_ratio"] = row["default"]["qps_1t"] / row["ef 64"]["qps_1t"]
            out[f"{name} k={k}"] = row
            log(f"  {name:17s} k={k:3d}: recall default {row['default']['recall']:.4f} "
                f"(ef 64: {row['ef 64']['recall']:.4f}), speed {row['qps_ratio']:.2f}x of ef 64")
    return out


def print_report(res: dict) -> None:
    q = res["quality"]
    base = res["baseline"]
    print(f"\n### Hybrid search on WordNet: {res['n']:,} glosses, {res['queries']:,} queries "
          f"({', '.join(f'{k} {v}' for k, v in res['per_kind_queries'].items())}), k={K}")
    cols = KINDS + ("overall",)
    for metric in ("ndcg@10", "recall@10", "mrr@10"):
        print(f"\n{metric}:")
        hdr = f"{'method':28s}" + "".join(f"{c:>12s}" for c in cols)
        print(hdr)
        print("-" * len(hdr))
        for name, per in q.items():
            print(f"{name:28s}" + "".join(f"{_fmt(per.get(c, {}).get(metric)):>12s}" for c in cols))
        if metric != "ndcg@10":
            for method, per in base.items():
                print(f"{'baseline ' + method:28s}" + "".join(f"{_fmt(per.get(c, {}).get(metric)):>12s}" for c in cols))
    print(f"\n(db.search finds {res['vector_ann_recall_vs_exact']:.4f} of the exact top 10 of these word queries; "
          "the baseline's vector figures are exact)")
    print("\nTargets: text >= plain BM25; hybrid rrf > vector, text and the plain RRF reference")
    for kind, row in res["targets"].items():
        for metric, t in row.items():
            print(f"  {kind:11s} {metric:9s} hybrid {t['hybrid']:.4f} vs vector {t['vector']:.4f}, text "
                  f"{t['text']:.4f}, plain RRF {t['plain RRF (reference)']:.4f} -> {'met' if t['met'] else 'MISSED'}"
                  f";  text - plain BM25 {t['text_vs_plain_bm25']:+.4f}")
    if res.get("recall_k"):
        print("\nrecall@k against exact, default beam (ef_search + 3k) vs the old fixed ef 64, 1 thread:")
        for name, row in res["recall_k"].items():
            print(f"  {name:26s} default {row['default']['recall']:.4f}  ef 64 {row['ef 64']['recall']:.4f}  "
                  f"queries/s {row['qps_ratio']:.2f}x of ef 64")
    if res.get("exact_sweep"):
        print_exact_sweep(res["exact_sweep"])
    if res.get("failures"):
        print("\nFailed queries:")
        for name, bad in res["failures"].items():
            print(f"  {name}: {len(bad)}, e.g. " + "; ".join(f"{b['query']!r}: {b['error']}" for b in bad[:3]))
    if not res.get("qps"):
        return
    print("\nQueries/s, 1 thread, one query per call (median of passes):")
    for nm, v in res["qps"].items():
        print(f"  {nm:28s} {v['qps_1t']:8,.0f}   ({1e3 / v['qps_1t']:.3f} ms/query)")
    print("  (the k=100 rows are the candidate retrievals inside a hybrid call; the rest of its time is fusion)")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="vjson hybrid search quality (nDCG@10, recall@10, MRR@10) and "
                                             "speed on WordNet's hybrid queries.")
    ap.add_argument("--queries", type=int, default=2000, help="hybrid queries (default all 2,000; balanced kinds)")
    ap.add_argument("--alphas", type=lambda t: [float(x) for x in t.split(",") if x.strip()], default=list(ALPHAS),
                    help="weighted-fusion alphas (default 0.3,0.5,0.7)")
    ap.add_argument("--ef", type=int, default=64, help="the database's ef_search (default 64, its default)")
    ap.add_argument("--reps", type=int, default=3, help="timed passes per method (median kept)")
    ap.add_argument("--min-time", type=float, default=0.5, help="minimum seconds per timed pass")
    ap.add_argument("--recall-k", action="store_true",
                    help="also recall@k (k = 1, 10, 50, 100) vs exact at the default beam and at ef 64")
    ap.add_argument("--recall-queries", type=int, default=1000, help="queries per set for --recall-k")
    ap.add_argument("--exact-weights", type=lambda t: [float(x) for x in t.split(",") if x.strip()], default=[],
                    help="also text/hybrid quality per EXACT_FORM_WEIGHT (e.g. 0,0.5,1,2) on the even and odd "
                         "halves of the queries")
    ap.add_argument("--candidates", type=lambda t: [int(x) for x in t.split(",") if x.strip()], default=[100, 200],
                    help="hybrid candidate windows of --exact-weights (default 100,200)")
    ap.add_argument("--quality-only", action="store_true", help="skip the timed passes")
    ap.add_argument("--db", default=None,
                    help="keep the database here and reuse it on the next run (not deleted)")
    ap.add_argument("--data-dir", default=None, help="shared data folder holding wordnet/")
    ap.add_argument("--tmp", default=None, help="folder for the temporary database")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 queries, 1 pass of >= 0.1 s")
    ap.add_argument("--json", metavar="OUT.json", default=None, help="write every number here")
    args = ap.parse_args(argv)
    if args.quick:
        args.queries = min(args.queries, 200)
        args.reps = 1
        args.min_time = 0.1
        args.recall_queries = min(args.recall_queries, 100)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import vjson
    try:
        _data._wordnet_folder(_data.resolve_data_dir(args.data_dir))
    except _data.DataMissing as exc:
        _data.die(str(exc))
    info = machine_info(int(vjson.default_threads()))
    info["git"] = git_state()
    log(f"vjson at commit {info['git']['commit']}" + (" with uncommitted changes in src/" if info["git"]["src_dirty"] else ""))
    log(f"machine: {info['cpu']}, {info['cpus_usable']} usable CPUs")
    res = run(args)
    print("\n(2 shared cores, other work running: speed numbers are noisy; the quality numbers are exact)")
    print_report(res)
    if args.json:
        out = {"benchmark": "bench_hybrid", "params": vars(args), "machine": info, "results": res}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
        log(f"\n[json] wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
