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


def _ndcg_and_recall(found: list[int], relevant: set[int], k: int = 10) -> tuple[float, float]:
    dcg = sum(1.0 / np.log2(i + 2) for i, r in enumerate(found[:k]) if r in relevant)
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal, len(set(found[:k]) & relevant) / min(len(relevant), k)


def _plain_bm25_runs(texts: list[str], queries: list[str], depth: int) -> list[list[int]]:
    """Okapi BM25 (k1 0.9, b 0.4, Lucene idf) over lowercased word tokens, no stemming."""
    token = re.compile(r"(?u)\b\w\w+\b")
    docs = [token.findall(t.lower()) for t in texts]
    lengths = np.array([len(d) for d in docs], dtype=np.float64)
    postings: dict[str, dict[int, int]] = {}
    for row, toks in enumerate(docs):
        for t in toks:
            postings.setdefault(t, {}).setdefault(row, 0)
            postings[t][row] += 1
    norm = 0.9 * (1 - 0.4 + 0.4 * lengths / lengths.mean())
    out = []
    for q in queries:
        score: dict[int, float] = {}
        for t in set(token.findall(q.lower())):
            rows = postings.get(t, {})
            idf = np.log(1 + (len(docs) - len(rows) + 0.5) / (len(rows) + 0.5))
            for row, tf in rows.items():
                score[row] = score.get(row, 0.0) + idf * tf * 1.9 / (tf + norm[row])
        out.append([r for r, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))[:depth]])
    return out


@pytest.mark.skipif(not (WORDNET / "hybrid_queries.jsonl").exists(), reason="../shared/data/wordnet is absent")
def test_hybrid_beats_both_sides_and_plain_rrf_on_wordnet(tmp_path):
    """On WordNet's judged one-word queries, hybrid_search at its defaults beats
    text_search, search and a plain RRF (k=60, top 100 of each) of plain BM25
    with exact vector search, on recall@10 and nDCG@10, for each query kind.
    Short run: a fifth of the queries over the rows they judge plus a random
    20,000 others; VJSON_LONG_TESTS=1: all 2,000 queries over the 80,000 rows."""
    import json

    base = np.load(WORDNET / "base.f16.npy").astype(np.float32)
    texts = [json.loads(line)["text"] for line in open(WORDNET / "texts.jsonl", encoding="utf-8")]
    queries = [json.loads(line) for line in open(WORDNET / "hybrid_queries.jsonl", encoding="utf-8")]
    qv = np.load(WORDNET / "hybrid_queries.f16.npy").astype(np.float32)
    keep = np.arange(len(queries)) if LONG else np.arange(0, len(queries), 5)
    queries, qv = [queries[i] for i in keep], qv[keep]
    rows = np.arange(len(base))
    if not LONG:
        judged = {r for q in queries for r in q["relevant_ids"]}
        others = np.random.default_rng(11).permutation(len(base))[:20_000]
        rows = np.array(sorted(judged | set(others.tolist())))
    base, texts = base[rows], [texts[r] for r in rows]
    new_row = {int(r): i for i, r in enumerate(rows)}
    relevant = [{new_row[r] for r in q["relevant_ids"]} for q in queries]
    words = [q["query"] for q in queries]
    with vjson.VectorDB(tmp_path / "db", dimension=base.shape[1], metric="cosine") as db:
        db.insert_batch([str(i) for i in range(len(base))], base, None, texts)
        runs = {
            "hybrid": [[int(h.id) for h in db.hybrid_search(v, w, 10)] for v, w in zip(qv, words)],
            "text": [[int(h.id) for h in db.text_search(w, 10)] for w in words],
            "vector": [[int(h.id) for h in db.search(v, 10)] for v in qv],
        }
    exact, _ = vjson.brute_force_knn(base, qv, 100, "cosine")
    bm25 = _plain_bm25_runs(texts, words, 100)
    fused = []
    for b, e in zip(bm25, np.asarray(exact, dtype=np.int64).tolist()):
        score: dict[int, float] = {}
        for ranking in (b, e):
            for rank, row in enumerate(ranking):
                score[row] = score.get(row, 0.0) + 1.0 / (60 + rank + 1)
        fused.append([r for r, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))[:10]])
    runs["plain RRF"] = fused
    for kind in ("polysemous", "monosemous"):
        idx = [i for i, q in enumerate(queries) if q["kind"] == kind]
        means = {name: np.mean([_ndcg_and_recall(run[i], relevant[i]) for i in idx], axis=0)
                 for name, run in runs.items()}
        for other in ("text", "vector", "plain RRF"):
            assert means["hybrid"][0] > means[other][0], (kind, "nDCG@10", other, means)
            assert means["hybrid"][1] > means[other][1], (kind, "recall@10", other, means)


@pytest.mark.skipif(not (WORDNET / "texts.jsonl").exists(), reason="../shared/data/wordnet is absent")
def test_filtered_recall_on_wordnet_metadata(tmp_path):
    """Filters on WordNet's part of speech (a category the vectors know about:
    ~21 %, 9 % and 6 % of the rows) walk two hops, the last two with the deeper
    beam; recall@k against exact filtered search of the held-out glosses stays
    >= 0.95."""
    import json

    n = 80_000 if LONG else 20_000
    base = np.load(WORDNET / "base.f16.npy")[:n].astype(np.float32)
    queries = np.load(WORDNET / "queries.f16.npy").astype(np.float32)[:: 1 if LONG else 5]
    with open(WORDNET / "texts.jsonl", encoding="utf-8") as f:
        kinds = np.array([json.loads(line)["pos"] for _, line in zip(range(n), f)])
    with _db_with(tmp_path, base, [{"pos": str(p)} for p in kinds]) as db:
        # at 20,000 rows these filters would be scanned exactly: make the graph walk them
        db._current().graph.exact_limit = 100
        for pos in (("v", "s"), ("s",), ("a",)):
            rows = np.flatnonzero(np.isin(kinds, pos))
            flt = {"pos": {"$in": list(pos)}}
            assert db.count(flt) == len(rows)
            for k in (1, 10):
                ids, _ = vjson.brute_force_knn(base[rows], queries, k, "cosine")
                truth = rows[np.asarray(ids, dtype=np.int64)]
                found = np.array([[int(r.id) for r in db.search(q, k, flt)] for q in queries])
                assert recall_at_k(found, truth) >= 0.95, (pos, k, len(rows) / n)


@pytest.mark.skipif(not (WORDNET / "texts.jsonl").exists(), reason="../shared/data/wordnet is absent")
def test_filtered_recall_of_one_word_queries_on_wordnet(tmp_path):
    """The one-word queries' embeddings sit among many near-equal glosses: at
    default settings, filtered recall@10 against exact filtered search stays
    >= 0.95 at every selectivity WordNet's categories give from 70 % to 5.7 %
    (one-hop walks above 1/3, two-hop below), on the first 40,000 rows.
    Short run: every 4th query; VJSON_LONG_TESTS=1: all 2,000."""
    import json

    n = 40_000
    base = np.load(WORDNET / "base.f16.npy")[:n].astype(np.float32)
    queries = np.load(WORDNET / "hybrid_queries.f16.npy").astype(np.float32)[:: 1 if LONG else 4]
    with open(WORDNET / "texts.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(n), f)]
    pos = np.array([d["pos"] for d in docs])
    lex = np.array([d["lexname"] for d in docs])
    half = ["adj.all", "noun.artifact", "noun.person", "noun.plant", "noun.animal", "noun.act"]
    cases = [({"pos": "n"}, pos == "n"),                                 # ~70 %
             ({"lexname": {"$in": half}}, np.isin(lex, half)),           # ~50 %
             ({"pos": {"$in": ["v", "s"]}}, np.isin(pos, ["v", "s"])),   # ~21 %
             ({"lexname": "adj.all"}, lex == "adj.all"),                 # ~12 %
             ({"pos": "v"}, pos == "v"),                                 # ~12 %
             ({"lexname": "noun.person"}, lex == "noun.person"),         # ~9 %
             ({"pos": "a"}, pos == "a"),                                 # ~6 %
             ({"lexname": "noun.act"}, lex == "noun.act")]               # ~5.7 %
    metas = [{"pos": str(p), "lexname": str(x)} for p, x in zip(pos, lex)]
    with _db_with(tmp_path, base, metas) as db:
        # at 40,000 rows the smaller sets would be scanned exactly: make the graph walk them
        db._current().graph.exact_limit = 100
        for flt, mask in cases:
            rows = np.flatnonzero(mask)
            assert db.count(flt) == len(rows)
            ids, _ = vjson.brute_force_knn(base[rows], queries, 10, "cosine")
            truth = rows[np.asarray(ids, dtype=np.int64)]
            found = np.array([[int(r.id) for r in db.search(q, 10, flt)] for q in queries])
            assert found.shape == truth.shape
            assert mask[found].all()
            assert recall_at_k(found, truth) >= 0.95, (flt, len(rows) / n)
