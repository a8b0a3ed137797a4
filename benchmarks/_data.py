"""Benchmark data sets shared by the scripts in ``benchmarks/``.

Two sources:

* ``wordnet``: real 384-d sentence embeddings (cosine) of WordNet glosses, read
  from the project's shared data folder (``../shared/data`` beside the repo,
  overridable with ``--data-dir`` or the ``VJSON_DATA`` environment variable).
  Its exact ground truth ships with it; a subset of the base gets its ground
  truth recomputed exactly.
* ``synthetic``: a clustered Gaussian mixture (squared L2), generated from a
  fixed seed, with exact ground truth from ``vjson.brute_force_knn``.

Every data set is a :class:`Dataset` whose vectors are C-contiguous float32 and
whose labels are the row numbers ``0..n-1``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

# repo root is benchmarks/..; the shared data sits beside the repo: <root>/../shared/data
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Dataset:
    name: str
    metric: str  # "cosine" | "l2" | "ip" (vjson spelling)
    base: np.ndarray  # (n, dim) float32, C-contiguous
    queries: np.ndarray  # (m, dim) float32, C-contiguous
    gt: np.ndarray  # (m, >=k) int64 exact neighbour rows, best first
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.base.shape[0])

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    def describe(self) -> str:
        return (f"{self.name}: {self.n:,} x {self.dim}-d {self.metric}, "
                f"{self.queries.shape[0]:,} queries")


class DataMissing(RuntimeError):
    """The data set's files are not where they were looked for."""


def resolve_data_dir(cli_value: Optional[str] = None) -> Path:
    """``--data-dir`` first, then ``$VJSON_DATA``, then ``<repo>/../shared/data``."""
    if cli_value:
        return Path(cli_value).expanduser()
    env = os.environ.get("VJSON_DATA")
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR


def _wordnet_folder(data_dir: Path) -> Path:
    # accept either the folder holding wordnet/ or the wordnet folder itself
    for cand in (data_dir / "wordnet", data_dir):
        if (cand / "base.f16.npy").is_file():
            return cand
    raise DataMissing(
        f"WordNet benchmark data not found under {data_dir} "
        f"(expected {data_dir / 'wordnet' / 'base.f16.npy'}). "
        "Point --data-dir or the VJSON_DATA environment variable at the shared data "
        "folder, or use --dataset synthetic.")


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact top-k rows (int64, best first): vjson's multi-threaded brute force,
    or a blocked numpy matmul when vjson is not importable."""
    try:
        import vjson
        ids, _ = vjson.brute_force_knn(base, queries, k, metric)
        return np.asarray(ids, dtype=np.int64)
    except ImportError:
        pass
    b, q = base, queries
    if metric == "cosine":
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    out = np.empty((q.shape[0], k), dtype=np.int64)
    bn = (b.astype(np.float64) ** 2).sum(1) if metric == "l2" else None
    for s in range(0, q.shape[0], 256):
        qb = q[s:s + 256].astype(np.float64)
        dots = qb @ b.T.astype(np.float64)
        d = (bn[None, :] - 2 * dots) if metric == "l2" else -dots
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable")
        out[s:s + 256] = np.take_along_axis(part, order, 1)
    return out


def load_wordnet(data_dir: Path, n: Optional[int] = None, n_queries: Optional[int] = None,
                 k: int = 10) -> Dataset:
    """WordNet glosses (all-MiniLM-L6-v2, 384-d, cosine): base, queries and exact gt.

    With ``n`` below the full 80,000 rows the first ``n`` rows are taken and the
    ground truth is recomputed exactly over them (the shipped one refers to the
    whole base)."""
    folder = _wordnet_folder(data_dir)
    base = np.load(folder / "base.f16.npy", mmap_mode="r")
    queries = np.load(folder / "queries.f16.npy")
    full_n = base.shape[0]
    n = full_n if n is None else min(int(n), full_n)
    m = queries.shape[0] if n_queries is None else min(int(n_queries), queries.shape[0])
    base = np.ascontiguousarray(base[:n], dtype=np.float32)
    queries = np.ascontiguousarray(queries[:m], dtype=np.float32)
    if n == full_n:
        gt = np.load(folder / "gt_cosine_top100.i32.npy")[:m, :k].astype(np.int64)
        gt_source = "gt_cosine_top100.i32.npy"
    else:
        gt = exact_knn(base, queries, k, "cosine")
        gt_source = "exact brute force over the subset"
    return Dataset("wordnet", "cosine", base, queries, gt,
                   info={"source": str(folder), "gt": gt_source,
                         "note": "WordNet 3.0 glosses, all-MiniLM-L6-v2 embeddings"})


def make_synthetic(n: int = 200_000, n_queries: int = 1000, dim: int = 128,
                   centres: int = 1000, seed: int = 42, k: int = 10,
                   spread: tuple = (0.5, 1.0)) -> Dataset:
    """A clustered Gaussian mixture under squared L2, fixed seed.

    Centres are N(0, 1) in ``dim`` dimensions; cluster weights are uneven
    (Dirichlet) and each cluster has its own spread (``spread``, default 0.5..1.0 per axis), so
    neighbouring clusters overlap and differ in density. The centres and the
    queries depend only on ``seed`` (not on ``n``): a smaller ``n`` is a
    subset-like draw of the same mixture, queried by the same queries."""
    rng_c = np.random.default_rng([seed, 0])
    mu = rng_c.standard_normal((centres, dim)).astype(np.float32)
    weights = rng_c.dirichlet(np.full(centres, 2.0))
    sigma = rng_c.uniform(spread[0], spread[1], size=centres).astype(np.float32)

    def draw(rng: np.random.Generator, count: int) -> np.ndarray:
        out = np.empty((count, dim), dtype=np.float32)
        for s in range(0, count, 50_000):
            e = min(count, s + 50_000)
            c = rng.choice(centres, size=e - s, p=weights)
            noise = rng.standard_normal((e - s, dim), dtype=np.float32)
            out[s:e] = mu[c] + noise * sigma[c, None]
        return out

    base = draw(np.random.default_rng([seed, 1]), int(n))
    queries = draw(np.random.default_rng([seed, 2]), int(n_queries))
    gt = exact_knn(base, queries, k, "l2")
    return Dataset("synthetic", "l2", base, queries, gt,
                   info={"gt": "exact brute force", "centres": centres, "seed": seed,
                         "spread": list(spread),
                         "note": "Gaussian mixture, uneven weights and spreads"})


def recall_at_k(found: np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    """Mean |found[:, :k] ∩ gt[:, :k]| / k over the queries."""
    found = np.asarray(found)[:, :k].astype(np.int64, copy=False)
    gt = np.asarray(gt)[:, :k].astype(np.int64, copy=False)
    hits = 0
    for f, g in zip(found, gt):
        hits += np.intersect1d(f, g, assume_unique=False).size
    return hits / (k * gt.shape[0])


def die(msg: str, code: int = 2) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(code)
