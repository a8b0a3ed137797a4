"""Search quality at default settings: plain-text analysis, recall at every k,
filtered recall at every selectivity (all against independent references)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import vjson
from conftest import LONG, WORDNET, clustered, recall_at_k
from vjson.text_index import TOKENIZERS, analyzer

tantivy = pytest.importorskip("tantivy")

# no quotes, backslashes or control characters: they would be escaped in tantivy's repr
SAMPLES = [
    "Haskell-PostgreSQL-simple bindings",
    "utilities for aMule (command-line version)",
    "running runners ran; the RUNS",
    "sou'-sou'-west of Turk's-cap",
    "C++ and C# 3.14 x86_64 e-mail",
    "naïve café Straße ÉCOLE",
    "日本語 テキスト 한국어",
    "supercalifragilisticexpialidocious" * 2 + " short",
    "ab  cd   ef",
]
_TERM = re.compile(r'Term\(field=\d+, type=Str, "([^"]*)"\)')


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_analyzer_matches_the_index_tokenizer(tokenizer):
    """Our analyzer yields the tokens tantivy's own query parser gets from the
    tokenizer registered in an index under that name."""
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("text", tokenizer_name=tokenizer, index_option="position")
    index = tantivy.Index(sb.build())
    for text in SAMPLES:
        parsed = repr(index.parse_query('"' + text + '"', ["text"]))
        assert analyzer(tokenizer).analyze(text) == _TERM.findall(parsed), (tokenizer, text)


def _db_with(tmp_path, data, metas=None, name="db"):
    db = vjson.VectorDB(tmp_path / name, dimension=data.shape[1], metric="cosine")
    db.insert_batch([str(i) for i in range(len(data))], data, metas)
    return db


def test_recall_holds_at_large_k(tmp_path):
    both = clustered(4060, 24, seed=3)  # queries: held-out points of the same mixture
    data, queries = both[:4000], both[4000:]
    with _db_with(tmp_path, data) as db:
        for k in (1, 10, 50, 100, 200):
            truth, _ = vjson.brute_force_knn(data, queries, k, "cosine")
            found = np.array([[int(r.id) for r in db.search(q, k)] for q in queries])
            assert recall_at_k(found, truth) >= 0.95, k
            batch = db.batch_search(queries, k)
            assert [[r.id for r in row] for row in batch] == [[str(i) for i in f] for f in found]


@pytest.mark.parametrize("keep", [0.7, 0.5, 0.3, 0.2, 0.1, 0.05])
def test_filtered_recall_at_every_selectivity(tmp_path, keep):
    n = 5000
    both = clustered(n + 50, 24, seed=5)
    data, queries = both[:n], both[n:]
    rng = np.random.default_rng(7)
    bucket = rng.random(n)
    metas = [{"u": float(b)} for b in bucket]
    flt = {"u": {"$lt": keep}}
    rows = np.flatnonzero(bucket < keep)  # the filter's meaning, evaluated by numpy
    with _db_with(tmp_path, data, metas) as db:
        assert db.count(flt) == len(rows)
        for k in (10, 50):
            ids, _ = vjson.brute_force_knn(data[rows], queries, k, "cosine")
            truth = rows[np.asarray(ids, dtype=np.int64)]
            found = np.array([[int(r.id) for r in db.search(q, k, flt)] for q in queries])
            assert found.shape == truth.shape
            assert set(found.ravel().tolist()) <= set(rows.tolist())
            assert recall_at_k(found, truth) >= 0.95, (keep, k)


@pytest.mark.skipif(not (WORDNET / "base.f16.npy").exists(), reason="../shared/data/wordnet is absent")
def test_short_text_queries_on_wordnet(tmp_path):
    """The one-word queries' embeddings sit further from the glosses than the
    glosses from each other: recall@k against exact stays >= 0.95 at every k."""
    n = 80_000 if LONG else 12_000
    base = np.load(WORDNET / "base.f16.npy")[:n].astype(np.float32)
    queries = np.load(WORDNET / "hybrid_queries.f16.npy").astype(np.float32)[:: 1 if LONG else 8]
    with _db_with(tmp_path, base) as db:
        for k in (1, 10, 50, 100):
            truth, _ = vjson.brute_force_knn(base, queries, k, "cosine")
            rows, _ = db._current().graph.search_batch(queries, k, db._beam(None, k), db._current().view.visible)
            assert recall_at_k(rows.astype(np.int64), truth) >= 0.95, k
