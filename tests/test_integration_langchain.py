"""VJson beyond LangChain's standard suite: filters, scores, MMR, retrievers, hybrid."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

import vjson  # noqa: E402
from vjson.errors import InvalidInputError, InvalidMetadataError  # noqa: E402
from vjson.integrations.langchain import VJson, VJsonRetriever  # noqa: E402

DIM = 16
TEXTS = ["red apples and pears", "green pears", "stock markets fell", "markets rallied", "apples in autumn",
         "the bank raised rates"]
METAS = [{"kind": "fruit", "n": 0}, {"kind": "fruit", "n": 1}, {"kind": "finance", "n": 2},
         {"kind": "finance", "n": 3}, {"kind": "fruit", "n": 4}, {"kind": "finance", "n": 5}]


@pytest.fixture
def embedding():
    return DeterministicFakeEmbedding(size=DIM)


@pytest.fixture
def store(tmp_path, embedding):
    s = VJson.from_texts(TEXTS, embedding, METAS, ids=[f"d{i}" for i in range(len(TEXTS))], path=tmp_path / "db")
    yield s
    s.close()


def _exact(embedding, query, metric="cosine", allowed=None):
    """Ids by exact distance, computed here with numpy."""
    m = np.array(embedding.embed_documents(TEXTS), dtype=np.float64)
    q = np.array(embedding.embed_query(query), dtype=np.float64)
    if metric == "cosine":
        d = 1 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))
    elif metric == "l2":
        d = ((m - q) ** 2).sum(axis=1)
    else:
        d = 1 - m @ q
    order = np.argsort(d, kind="stable")
    return [f"d{i}" for i in order if allowed is None or i in allowed], np.sort(d)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_scores_are_exact_distances_and_relevance_is_in_unit_range(tmp_path, embedding, metric):
    store = VJson.from_texts(TEXTS, embedding, METAS, ids=[f"d{i}" for i in range(len(TEXTS))],
                             path=tmp_path / "db", metric=metric)
    ids, dists = _exact(embedding, "apples", metric)
    got = store.similarity_search_with_score("apples", k=6)
    assert [d.id for d, _ in got] == ids
    assert np.allclose([s for _, s in got], dists, atol=1e-4)
    rel = store.similarity_search_with_relevance_scores("apples", k=6)
    scores = [s for _, s in rel]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    store.close()


def test_filters_on_every_search(store, embedding):
    fruit = {"kind": "fruit"}
    ids, _ = _exact(embedding, "markets", allowed={0, 1, 4})
    assert [d.id for d in store.similarity_search("markets", k=6, filter=fruit)] == ids
    assert [d.id for d, _ in store.similarity_search_with_score("markets", k=6, filter=fruit)] == ids
    assert {d.id for d in store.max_marginal_relevance_search("markets", k=2, filter=fruit)} <= {"d0", "d1", "d4"}
    assert [d.id for d in store.similarity_search("x", k=6, filter={"n": {"$gte": 4}})] != []
    assert {d.id for d in store.similarity_search("x", k=6, filter={"n": {"$gte": 4}})} == {"d4", "d5"}
    assert {d.id for d in store.full_text_search("markets", k=6, filter={"n": 3})} == {"d3"}
    assert {d.id for d in store.hybrid_search("markets", k=6, filter={"kind": "finance"})} <= {"d2", "d3", "d5"}


def test_documents_keep_text_metadata_types_and_ids(tmp_path, embedding):
    meta = {"i": 1, "f": 2.5, "b": True, "none": None, "list": [1, "a", 2.0], "obj": {"x": {"y": [True]}}}
    store = VJson(tmp_path / "db", embedding)
    store.add_documents([Document(page_content="typed", metadata=meta, id="t")])
    (doc,) = store.get_by_ids(["t"])
    assert doc == Document(page_content="typed", metadata=meta, id="t")
    assert type(doc.metadata["i"]) is int and type(doc.metadata["f"]) is float and doc.metadata["b"] is True
    doc.metadata["list"].append("mutated")  # a copy: the stored record is unchanged
    assert store.get_by_ids(["t"])[0].metadata == meta
    with pytest.raises(InvalidMetadataError):
        store.add_texts(["bad"], [{"x": object()}])
    assert len(store.db) == 1  # nothing stored by the failed call
    # texts land in the record's text: full-text search finds them
    assert store.db.get("t").text == "typed" and store.full_text_search("typed")[0].id == "t"
    store.close()


def test_mmr_trades_similarity_for_diversity(tmp_path, embedding):
    store = VJson(tmp_path / "db", embedding)
    texts = ["apples"] * 3 + ["pears", "markets"]
    store.add_texts(texts, ids=["a1", "a2", "a3", "p", "m"])
    q = embedding.embed_query("apples")
    plain = store.max_marginal_relevance_search_by_vector(q, k=3, fetch_k=5, lambda_mult=1.0)
    assert plain[0].page_content == "apples" and [d.page_content for d in plain] == ["apples"] * 3
    diverse = store.max_marginal_relevance_search("apples", k=3, fetch_k=5, lambda_mult=0.3)
    assert [d.page_content for d in diverse].count("apples") == 1  # duplicates are not picked twice
    with pytest.raises(InvalidInputError):
        store.max_marginal_relevance_search("apples", lambda_mult=2.0)
    store.close()


def test_retrievers(store, embedding):
    ids, dists = _exact(embedding, "apples")
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 2}).invoke("apples")] == ids[:2]
    assert isinstance(store.as_retriever(), VJsonRetriever)
    relevance = [1 - d / 2 for d in dists]  # the documented cosine relevance
    threshold = float((relevance[1] + relevance[2]) / 2)
    thresholded = store.as_retriever(search_type="similarity_score_threshold",
                                     search_kwargs={"score_threshold": threshold, "k": 6}).invoke("apples")
    assert [d.id for d in thresholded] == ids[:2]
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 6}).invoke("apples")
    assert len(mmr) == 3 and mmr[0].id == ids[0]
    hybrid = store.as_retriever(search_type="hybrid", search_kwargs={"k": 2, "fusion": "weighted", "alpha": 0.0})
    assert hybrid.invoke("markets")[0].id in {"d2", "d3"}
    assert [d.id for d in asyncio.run(hybrid.ainvoke("markets"))] == [d.id for d in hybrid.invoke("markets")]
    assert [d.id for d in store.search("markets", "hybrid", k=2, fusion="weighted", alpha=0.0)] == [d.id for d in hybrid.invoke("markets")]
    with pytest.raises(ValueError):
        store.as_retriever(search_type="nonsense")


def test_delete_by_ids_and_filter(store):
    assert store.delete(["d0", "unknown", "d0"]) is True
    assert "d0" not in store.db and len(store.db) == 5
    store.delete(filter={"kind": "finance"})
    assert sorted(store.db.ids()) == ["d1", "d4"]
    with pytest.raises(InvalidInputError):
        store.delete()


def test_async_search_and_add(tmp_path, embedding):
    store = VJson(tmp_path / "db", embedding)

    async def run():
        ids = await store.aadd_texts(TEXTS, METAS)
        assert len(set(ids)) == len(TEXTS)
        sync = store.similarity_search_with_score("apples", k=3, filter={"kind": "fruit"})
        got = await store.asimilarity_search_with_score("apples", k=3, filter={"kind": "fruit"})
        assert [(d.id, round(s, 5)) for d, s in got] == [(d.id, round(s, 5)) for d, s in sync]
        assert ([d.id for d in await store.asimilarity_search("apples", k=2)]
                == [d.id for d in store.similarity_search("apples", k=2)])
        assert len(await store.amax_marginal_relevance_search("apples", k=2)) == 2
        await store.adelete(ids[:2])
        assert len(await store.aget_by_ids(ids)) == len(TEXTS) - 2

    asyncio.run(run())
    store.close()


def test_construction(tmp_path, embedding):
    empty = VJson(tmp_path / "lazy", embedding)
    assert empty.db is None and empty.similarity_search("x") == [] and empty.get_by_ids(["x"]) == []
    empty.add_texts(["one"])
    assert empty.db.dimension == DIM
    empty.close()
    reopened = VJson(tmp_path / "lazy", embedding)  # an existing database opens at once
    assert len(reopened.db) == 1
    reopened.close()
    sized = VJson(tmp_path / "sized", embedding, dimension=DIM, metric="l2")
    assert sized.db is not None and sized.db.metric == "l2"
    sized.close()
    db = vjson.VectorDB(tmp_path / "open", dimension=DIM)
    with VJson(db=db, embedding=embedding) as wrapped:
        wrapped.add_texts(["x"])
    assert not db.closed and len(db) == 1  # the caller owns it
    db.close()
    docs = [Document(page_content="p", metadata={"a": 1}, id="p"), Document(page_content="q")]
    built = VJson.from_documents(docs, embedding, path=tmp_path / "docs")
    assert [d.page_content for d in built.get_by_ids(["p"])] == ["p"] and len(built.db) == 2
    built.close()
    with pytest.raises(InvalidInputError, match="exactly one"):
        VJson(embedding=embedding)
    with pytest.raises(InvalidInputError, match="needs an embedding"):
        VJson(tmp_path / "x")
    with pytest.raises(InvalidInputError, match="ids"):
        VJson(tmp_path / "y", embedding).add_texts(["a", "b"], ids=["only-one"])


def test_first_writes_from_two_threads_create_one_database(tmp_path, embedding):
    store = VJson(tmp_path / "db", embedding, dimension=None)
    barrier = threading.Barrier(2)
    errors = []

    def write(i):
        try:
            barrier.wait()
            store.add_texts([f"text {i}"], ids=[f"t{i}"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(store.db.ids()) == ["t0", "t1"]
    store.close()
    reopened = VJson(tmp_path / "db", embedding)
    assert sorted(reopened.db.ids()) == ["t0", "t1"]
    reopened.close()
