"""The BM25 statistics hook of the text index and DFS rescoring (no Ray needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray")  # vjson.distributed imports it: skip before importing it

from vjson.distributed._bm25 import merge_statistics, rescore  # noqa: E402
from vjson.text_index import TextIndex, escape_query  # noqa: E402

WORDS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "granite", "heath"]


def corpus(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)), p=[.3, .2, .15, .1, .1, .07, .05, .03]))
            for _ in range(n)]


@pytest.fixture
def index(tmp_path):
    texts = corpus(300, 0)
    idx = TextIndex(tmp_path / "t", tokenizer="default")
    idx.add(range(len(texts)), texts)
    idx.commit(1)
    yield idx, texts
    idx.close()


def test_statistics_count_documents_and_terms(index):
    idx, texts = index
    stats = idx.bm25_statistics("amber OR fjord OR nowhere")
    assert stats["df"] == {"amber": sum("amber" in t.split() for t in texts),
                           "fjord": sum("fjord" in t.split() for t in texts), "nowhere": 0}
    # avgdl is tantivy's: tokens over the documents it counts
    assert stats["avgdl"] * stats["docs"] == pytest.approx(sum(len(t.split()) for t in texts), rel=1e-5)
    assert idx.bm25_statistics('"cobalt dune" heath')["phrases"] == [["cobalt", "dune"]]
    assert idx.bm25_statistics("nowhere")["avgdl"] == pytest.approx(stats["avgdl"])  # no match: still known


def test_rescoring_with_an_index_own_statistics_gives_its_scores(index):
    idx, _ = index
    for query in ("amber fjord", '"cobalt dune" heath', "granite^2 ember", "+basalt -amber"):
        rows, scores = idx.search(query, 20)
        assert len(rows)
        own = idx.bm25_statistics(query)
        trees = idx.explain(query, rows)
        assert sorted(trees) == sorted(rows.tolist())
        rescored = [rescore(trees[r], merge_statistics([own]), own) for r in rows.tolist()]
        assert np.allclose(rescored, scores, rtol=1e-5), query


def test_rescoring_with_summed_statistics_matches_one_index(tmp_path):
    """Two halves rescored with their merged statistics score like one index of the whole."""
    texts = corpus(400, 1)
    whole = TextIndex(tmp_path / "whole", tokenizer="default")
    halves = [TextIndex(tmp_path / f"half{i}", tokenizer="default") for i in range(2)]
    whole.add(range(len(texts)), texts)
    for i, half in enumerate(halves):
        rows = list(range(i, len(texts), 2))
        half.add(rows, [texts[r] for r in rows])
    for idx in (whole, *halves):
        idx.commit(1)
    for query in (escape_query("heath granite"), '"amber basalt" fjord'):
        parts = [h.bm25_statistics(query) for h in halves]
        merged = merge_statistics(parts)
        want = dict(zip(*(a.tolist() for a in whole.search(query, len(texts)))))
        for half, local in zip(halves, parts):
            rows, local_scores = half.search(query, len(texts))
            trees = half.explain(query, rows)
            got = {r: rescore(trees[r], merged, local) for r in rows.tolist()}
            assert got and all(got[r] == pytest.approx(want[r], rel=1e-5) for r in got), query
            assert not np.allclose(local_scores, [want[r] for r in rows.tolist()], rtol=1e-5)  # it did change
    for idx in (whole, *halves):
        idx.close()
