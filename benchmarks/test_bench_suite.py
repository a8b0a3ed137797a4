"""pytest-benchmark suite for the database layer: a few minutes, saveable and comparable.

Run it explicitly (``testpaths`` keeps it out of the plain ``python -m pytest`` run)::

    python -m pytest benchmarks/test_bench_suite.py --benchmark-only
    python -m pytest benchmarks/test_bench_suite.py --benchmark-only --benchmark-save=base
    python -m pytest benchmarks/test_bench_suite.py --benchmark-only --benchmark-compare=0001

What is measured (groups):

* ``insert``: ``insert_batch`` of 1, 100 and 5,000 128-d vectors into a
  database already holding 10,000 (durability "sync", the default);
* ``search``: one ``db.search(q, k=10)`` call, and ``batch_search`` of 200
  queries, on WordNet (the first ``VJSON_BENCH_N`` rows, default 20,000);
* ``filtered``: ``db.search(q, k=10, filter=F)`` at about 70% and 1% selectivity;
* ``text``: ``text_search`` (plain words) and ``hybrid_search`` (RRF) with the
  hybrid queries' words;
* ``open``: ``vjson.open`` of a checkpointed database of ``VJSON_BENCH_OPEN_N``
  (default 100,000) x 128 vectors with small metadata;
* ``maintenance``: ``compact()`` of 20,000 records after deleting a quarter of
  them, and a checkpoint (``flush()``); the latter carries the storage bytes
  per vector of each file in ``extra_info``.

The WordNet benchmarks skip when ``../shared/data/wordnet`` (or ``$VJSON_DATA``)
is absent; the synthetic ones always run. Rates derived from the timings
(vectors/s, queries/s) and recall or selectivity go to ``extra_info``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import vjson  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402

N_WORDNET = int(os.environ.get("VJSON_BENCH_N", "20000"))
N_OPEN = int(os.environ.get("VJSON_BENCH_OPEN_N", "100000"))
DIM = 128
K = 10
PREFILL = 10_000


def _median_s(benchmark) -> float | None:
    """The median of the timed rounds (None when benchmarking is disabled)."""
    stats = getattr(benchmark, "stats", None)
    inner = getattr(stats, "stats", None)
    return getattr(inner, "median", None)


def _wordnet_dir() -> Path:
    try:
        return _data._wordnet_folder(_data.resolve_data_dir(None))
    except _data.DataMissing as exc:
        pytest.skip(str(exc).split(". ")[0])


def _small_meta(i: int) -> dict:
    return {"pos": "nvsar"[i % 5], "n_words": 3 + i % 29, "lemmas": [f"word{i % 997}", f"term{i % 389}"]}


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def synthetic():
    """30,000 + 200 clustered 128-d vectors (squared L2)."""
    return _data.make_synthetic(n=30_000, n_queries=200, dim=DIM, seed=42, k=K)


@pytest.fixture(scope="module")
def wordnet_db(tmp_path_factory):
    """A reopened database of the first N_WORDNET WordNet rows with metadata and
    texts, the queries, their exact ground truth, and the hybrid query words."""
    import orjson
    folder = _wordnet_dir()
    ds = _data.load_wordnet(folder, n=N_WORDNET, n_queries=200, k=K)
    metas, texts = [], []
    with open(folder / "texts.jsonl", "rb") as f:
        for line in itertools.islice(f, ds.n):
            doc = orjson.loads(line)
            doc.pop("id", None)
            texts.append(doc.pop("text"))
            metas.append(doc)
    hq = [orjson.loads(line) for line in open(folder / "hybrid_queries.jsonl", "rb")][:200]
    hv = np.ascontiguousarray(np.load(folder / "hybrid_queries.f16.npy")[:200], dtype=np.float32)
    path = tmp_path_factory.mktemp("wordnet") / "db"
    db = vjson.VectorDB(path, dimension=ds.dim, metric="cosine")
    ids = [str(i) for i in range(ds.n)]
    for s in range(0, ds.n, 5000):
        db.insert_batch(ids[s:s + 5000], ds.base[s:s + 5000], metas[s:s + 5000], texts[s:s + 5000])
    db.close()
    db = vjson.open(path)
    yield {"db": db, "ds": ds, "words": [q["query"] for q in hq], "word_vectors": hv}
    db.close()


@pytest.fixture(scope="module")
def open_db_path(tmp_path_factory):
    """A checkpointed database of N_OPEN x 128 vectors with small metadata."""
    path = tmp_path_factory.mktemp("open") / "db"
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((200, DIM)).astype(np.float32)
    db = vjson.VectorDB(path, dimension=DIM, metric="l2", durability="flush", max_elements=N_OPEN)
    for s in range(0, N_OPEN, 10_000):
        e = min(N_OPEN, s + 10_000)
        X = centres[rng.integers(0, 200, e - s)] + 0.7 * rng.standard_normal((e - s, DIM), dtype=np.float32)
        db.insert_batch([str(i) for i in range(s, e)], X.astype(np.float32), [_small_meta(i) for i in range(s, e)])
    db.close()
    return path


@pytest.fixture(scope="module")
def template_db(tmp_path_factory, synthetic):
    """20,000 synthetic records with small metadata and a short text, a quarter
    of them deleted, closed (checkpointed): copied afresh for each round."""
    path = tmp_path_factory.mktemp("template") / "db"
    n = 20_000
    db = vjson.VectorDB(path, dimension=DIM, metric="l2")
    ids = [str(i) for i in range(n)]
    db.insert_batch(ids, synthetic.base[:n], [_small_meta(i) for i in range(n)],
                    [f"record {i} about word{i % 997} and term{i % 389}" for i in range(n)])
    db.close()
    sizes = {}
    for entry in path.iterdir():
        if entry.is_dir():
            sizes[entry.name + "/"] = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        else:
            sizes[entry.name] = entry.stat().st_size
    db = vjson.open(path)
    db.delete(ids[::4])
    db.close()
    return {"path": path, "n": n, "sizes_before_delete": sizes}


class _Holder:
    """Keeps the database a round opened, so the next setup can close it."""

    def __init__(self):
        self.db = None

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None


# --------------------------------------------------------------------------- insert

@pytest.mark.benchmark(group="insert")
@pytest.mark.parametrize("batch", [1, 100, 5000])
def test_insert(benchmark, tmp_path, synthetic, batch):
    X = synthetic.base
    rounds = {1: 200, 100: 40, 5000: 3}[batch]
    assert PREFILL + rounds * batch <= X.shape[0]
    ids = [str(i) for i in range(X.shape[0])]
    db = vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="l2")
    try:
        db.insert_batch(ids[:PREFILL], X[:PREFILL])
        nxt = [PREFILL]

        def setup():
            s = nxt[0]
            nxt[0] = s + batch
            return (ids[s:s + batch], X[s:s + batch]), {}

        benchmark.pedantic(db.insert_batch, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
        med = _median_s(benchmark)
        benchmark.extra_info.update(batch=batch, prefill=PREFILL, durability="sync",
                                    vectors_per_s=(batch / med) if med else None)
        assert len(db) == nxt[0]
    finally:
        db.close()


# --------------------------------------------------------------------------- search

@pytest.mark.benchmark(group="search")
def test_search_single(benchmark, wordnet_db):
    db, ds = wordnet_db["db"], wordnet_db["ds"]
    found = np.array([[int(r.id) for r in db.search(q, K)] for q in ds.queries])
    queries = itertools.cycle(list(ds.queries))
    benchmark(lambda: db.search(next(queries), K))
    benchmark.extra_info.update(n=ds.n, ef_search=db.ef_search,
                                recall_at_10=_data.recall_at_k(found, ds.gt, K))


@pytest.mark.benchmark(group="search")
def test_search_batch(benchmark, wordnet_db):
    db, ds = wordnet_db["db"], wordnet_db["ds"]
    Q = ds.queries
    benchmark.pedantic(db.batch_search, args=(Q, K), rounds=5, iterations=1, warmup_rounds=1)
    med = _median_s(benchmark)
    benchmark.extra_info.update(n=ds.n, queries=Q.shape[0], threads=vjson.default_threads(),
                                queries_per_s=(Q.shape[0] / med) if med else None)


@pytest.mark.benchmark(group="filtered")
@pytest.mark.parametrize("flt", [{"pos": "n"}, {"lexname": "noun.object"}], ids=["pos=n~70pct", "noun.object~1pct"])
def test_search_filtered(benchmark, wordnet_db, flt):
    db, ds = wordnet_db["db"], wordnet_db["ds"]
    queries = itertools.cycle(list(ds.queries))
    benchmark(lambda: db.search(next(queries), K, filter=flt))
    benchmark.extra_info.update(filter=flt, selectivity=db.count(flt) / len(db))


@pytest.mark.benchmark(group="text")
def test_text_search(benchmark, wordnet_db):
    db = wordnet_db["db"]
    words = itertools.cycle(wordnet_db["words"])
    benchmark(lambda: db.text_search(next(words), K, syntax=False))


@pytest.mark.benchmark(group="text")
def test_hybrid_search(benchmark, wordnet_db):
    db = wordnet_db["db"]
    pairs = itertools.cycle(list(zip(wordnet_db["word_vectors"], wordnet_db["words"])))

    def one():
        v, w = next(pairs)
        return db.hybrid_search(v, w, K, fusion="rrf")
    benchmark(one)


# --------------------------------------------------------------------------- open, maintenance

@pytest.mark.benchmark(group="open")
def test_open(benchmark, open_db_path):
    held = _Holder()

    def do_open():
        held.db = vjson.open(open_db_path)

    try:
        benchmark.pedantic(do_open, setup=held.close, rounds=5, iterations=1, warmup_rounds=1)
        assert len(held.db) == N_OPEN
    finally:
        held.close()
    benchmark.extra_info.update(n=N_OPEN, dim=DIM, page_cache="warm")


@pytest.mark.benchmark(group="maintenance")
def test_compact(benchmark, tmp_path, template_db):
    held = _Holder()
    copies = itertools.count()

    def setup():
        held.close()
        dst = tmp_path / f"copy{next(copies)}"
        shutil.copytree(template_db["path"], dst)
        held.db = vjson.open(dst)
        return (), {}

    try:
        benchmark.pedantic(lambda: held.db.compact(), setup=setup, rounds=3, iterations=1, warmup_rounds=0)
        assert len(held.db) == template_db["n"] - len(range(0, template_db["n"], 4))
    finally:
        held.close()
    benchmark.extra_info.update(records=template_db["n"], deleted=len(range(0, template_db["n"], 4)))


@pytest.mark.benchmark(group="maintenance")
def test_checkpoint_and_storage(benchmark, tmp_path, template_db):
    dst = tmp_path / "db"
    shutil.copytree(template_db["path"], dst)
    db = vjson.open(dst)
    try:
        benchmark.pedantic(db.flush, rounds=3, iterations=1, warmup_rounds=0)
    finally:
        db.close()
    n = template_db["n"]
    sizes = template_db["sizes_before_delete"]

    def kind(name):  # 'graph-1.vjx' -> 'graph', 'text-0/' -> 'text/'
        if name.endswith("/"):
            return name[:-1].split("-")[0] + "/"
        return name.split("-")[0] if "-" in name else name

    per_file = {}
    for name, size in sizes.items():
        per_file[kind(name)] = per_file.get(kind(name), 0) + size / n
    total = sum(sizes.values()) / n
    benchmark.extra_info.update(records=n, dim=DIM, metadata="small (pos, n_words, lemmas[2])",
                                text="short (~6 words)", bytes_per_vector=total,
                                bytes_per_vector_beyond_raw=total - DIM * 4,
                                bytes_per_vector_by_file={k: round(v, 1) for k, v in sorted(per_file.items())})
