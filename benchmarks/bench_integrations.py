#!/usr/bin/env python3
"""What the LangChain and LlamaIndex integrations cost on top of ``db.search``.

Two databases of the same clustered vectors (``--n`` x ``--dim``, cosine), one
filled through ``VJson.add_embeddings`` (LangChain documents: text + small
metadata), one through ``VJsonVectorStore.add`` (LlamaIndex nodes: text,
metadata and the node's JSON). For each, in one process with the passes
interleaved (each query runs through every case in turn, in a rotating order),
the median over ``--reps`` passes of the time per call of:

* ``db.search(q, k)`` with q a numpy array, and with q a list of floats (what
  the frameworks hand over: embedding models return lists);
* the integration's search on the same database: ``similarity_search_with_score_by_vector``
  (LangChain, no embedding call) or ``query(VectorStoreQuery(query_embedding=q))``
  (LlamaIndex), returning framework objects (``Document`` / ``TextNode``).

The same with a filter matching about 10% of the records (``{"g": 3}``,
MetadataFilters ``g == 3``). Reported: microseconds per call and the ratio to
``db.search`` with a list query.

    python benchmarks/bench_integrations.py --n 20000 --dim 128
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import git_state, log, median  # noqa: E402


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, size=(50, dim))
    return (means[rng.integers(0, 50, size=n)] + rng.normal(0, 1, size=(n, dim))).astype(np.float32)


def interleaved(cases: Dict[str, Callable[[object], object]], inputs: Dict[str, List[object]],
                reps: int) -> Dict[str, float]:
    """Median over passes of µs per call; within a pass every query runs through
    every case in turn (the order rotating), so load changes hit all cases alike."""
    names = list(cases)
    times: Dict[str, List[float]] = {n: [] for n in names}
    n_queries = len(next(iter(inputs.values())))
    for rep in range(reps):
        spent = dict.fromkeys(names, 0.0)
        for i in range(n_queries):
            shift = (i + rep) % len(names)
            for name in names[shift:] + names[:shift]:
                fn, q = cases[name], inputs[name][i]
                t0 = time.perf_counter()
                fn(q)
                spent[name] += time.perf_counter() - t0
        for name in names:
            times[name].append(spent[name] / n_queries * 1e6)
    return {n: median(t) for n, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()

    from langchain_core.embeddings import DeterministicFakeEmbedding
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery

    from vjson.integrations.langchain import VJson
    from vjson.integrations.llama_index import VJsonVectorStore

    vectors = clustered(args.n, args.dim)
    texts = [f"record {i} about topic {i % 97}" for i in range(args.n)]
    metas = [{"g": i % 10, "n": i} for i in range(args.n)]
    ids = [f"r{i}" for i in range(args.n)]
    rng = np.random.default_rng(1)
    qs = vectors[rng.integers(0, args.n, size=args.queries)] + rng.normal(0, 0.5, size=(args.queries, args.dim))
    arrays = [q.astype(np.float32) for q in qs]
    lists = [q.tolist() for q in arrays]
    k = args.k
    log(f"# bench_integrations {git_state()}  n={args.n} dim={args.dim} queries={args.queries} k={k} "
        f"reps={args.reps} (machine shared with other jobs: compare ratios, not absolute times)")

    work = Path(tempfile.mkdtemp(prefix="vjson-bench-integrations-"))
    try:
        lc = VJson(work / "lc", DeterministicFakeEmbedding(size=args.dim), durability="flush")
        for s in range(0, args.n, 5000):
            lc.add_embeddings(texts[s:s + 5000], vectors[s:s + 5000], metas[s:s + 5000], ids=ids[s:s + 5000])
        li = VJsonVectorStore(work / "li", dimension=args.dim, durability="flush")
        for s in range(0, args.n, 5000):
            li.add([TextNode(id_=ids[i], text=texts[i], metadata=metas[i], embedding=vectors[i].tolist())
                    for i in range(s, min(s + 5000, args.n))])
        lc_db, li_db = lc.db, li.client
        assert lc_db is not None and li_db is not None
        li_filter = MetadataFilters(filters=[MetadataFilter(key="g", value=3)])
        rows = []
        for label, flt, mf in (("no filter", None, None), ("filter g == 3 (10%)", {"g": 3}, li_filter)):
            cases = {
                "lc db.search(array)": lambda q, f=flt: lc_db.search(q, k, filter=f),
                "lc db.search(list)": lambda q, f=flt: lc_db.search(q, k, filter=f),
                "LangChain VJson": lambda q, f=flt: lc.similarity_search_with_score_by_vector(q, k, filter=f),
                "li db.search(array)": lambda q, f=flt: li_db.search(q, k, filter=f),
                "li db.search(list)": lambda q, f=flt: li_db.search(q, k, filter=f),
                "LlamaIndex VJsonVectorStore": lambda q, f=mf: li.query(
                    VectorStoreQuery(query_embedding=q, similarity_top_k=k, filters=f)),
            }
            inputs = {name: (arrays if "array" in name else lists) for name in cases}
            for fn, inp in zip(cases.values(), inputs.values()):  # warm: caches, filter masks
                fn(inp[0])
            got = interleaved(cases, inputs, args.reps)
            rows.append((label, got))
        log("")
        log("| case | db.search(array) µs | db.search(list) µs | integration µs | ratio to db.search(list) |")
        log("|---|---|---|---|---|")
        for label, got in rows:
            for tag, name in (("lc", "LangChain VJson"), ("li", "LlamaIndex VJsonVectorStore")):
                base = got[f"{tag} db.search(list)"]
                log(f"| {name}, {label} | {got[f'{tag} db.search(array)']:.1f} | {base:.1f} | {got[name]:.1f} "
                    f"| {got[name] / base:.2f} |")
        lc.close()
        li.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
