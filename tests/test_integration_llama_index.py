"""VJsonVectorStore end to end: VectorStoreIndex, retrievers, query modes, async."""

from __future__ import annotations

import asyncio
import zlib

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding, MockEmbedding  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

import vjson  # noqa: E402
from vjson.errors import InvalidInputError  # noqa: E402
from vjson.integrations.llama_index import VJsonVectorStore  # noqa: E402

DIM = 32


class HashEmbedding(BaseEmbedding):
    """Deterministic bag-of-words embedding: texts sharing words are close."""

    def _embed(self, text: str) -> list[float]:
        v = np.zeros(DIM)
        for word in text.lower().split():
            v[zlib.crc32(word.encode()) % DIM] += 1.0
        v[0] += 0.01  # never all zeros
        return v.tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)


TEXTS = ["the quick brown fox jumps", "lazy dogs sleep all day", "a fox and a dog are friends",
         "stock markets fell sharply", "markets rallied on good news", "the dog chased the fox"]


def _nodes(embed=None):
    embed = embed or HashEmbedding()
    nodes = []
    for i, text in enumerate(TEXTS):
        node = TextNode(id_=f"n{i}", text=text, metadata={"topic": "animals" if i in (0, 1, 2, 5) else "finance",
                                                          "rank": i, "tags": ["t", f"t{i}"]})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i % 2}")
        node.embedding = embed.get_text_embedding(text)
        nodes.append(node)
    return nodes


@pytest.fixture
def store(tmp_path):
    s = VJsonVectorStore(tmp_path / "db")
    yield s
    s.close()


def _exact_order(nodes, query_vec, allowed=None):
    mat = np.array([n.embedding for n in nodes])
    q = np.asarray(query_vec)
    sims = mat @ q / (np.linalg.norm(mat, axis=1) * np.linalg.norm(q))
    order = np.argsort(-sims, kind="stable")
    return [nodes[i].node_id for i in order if allowed is None or nodes[i].node_id in allowed]


def test_index_round_trips_nodes_through_a_reopened_database(tmp_path):
    Settings.embed_model = MockEmbedding(embed_dim=8)
    docs = [Document(text=t, metadata={"i": i, "kind": "even" if i % 2 == 0 else "odd"}, doc_id=f"d{i}")
            for i, t in enumerate(TEXTS)]
    store = VJsonVectorStore(tmp_path / "db")
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))
    before = {n.node.node_id: n.node for n in index.as_retriever(similarity_top_k=10).retrieve("fox")}
    assert len(before) == len(docs)
    store.close()

    reopened = VJsonVectorStore(tmp_path / "db")  # the dimension comes from the stored database
    again = VectorStoreIndex.from_vector_store(reopened)
    after = {n.node.node_id: n.node for n in again.as_retriever(similarity_top_k=10).retrieve("fox")}
    assert after.keys() == before.keys()
    for node_id, node in after.items():
        original = before[node_id]
        assert node.get_content() == original.get_content()
        assert node.metadata == original.metadata
        assert node.ref_doc_id == original.ref_doc_id
        assert node.relationships == original.relationships
        assert node.start_char_idx == original.start_char_idx and node.end_char_idx == original.end_char_idx
    odd = again.as_retriever(similarity_top_k=10, filters=MetadataFilters(
        filters=[MetadataFilter(key="kind", value="odd")])).retrieve("fox")
    assert sorted(n.node.metadata["i"] for n in odd) == [1, 3, 5]
    # deleting a source document removes its nodes
    reopened.delete("d3")
    assert "d3" not in {n.node.ref_doc_id for n in again.as_retriever(similarity_top_k=10).retrieve("x")}
    reopened.close()


def test_default_mode_ranks_exactly_with_filters_doc_ids_and_node_ids(store):
    nodes = _nodes()
    assert store.add(nodes) == [n.node_id for n in nodes]
    q = HashEmbedding().get_query_embedding("fox dog")
    got = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=6))
    assert got.ids == _exact_order(nodes, q)
    assert [n.node_id for n in got.nodes] == got.ids and got.similarities == sorted(got.similarities, reverse=True)
    flt = MetadataFilters(filters=[MetadataFilter(key="topic", value="animals"),
                                   MetadataFilter(key="rank", operator=">", value=0)])
    got = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=6, filters=flt))
    assert got.ids == _exact_order(nodes, q, {"n1", "n2", "n5"})
    got = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=6, doc_ids=["doc1"]))
    assert got.ids == _exact_order(nodes, q, {"n1", "n3", "n5"})
    got = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=6, node_ids=["n0", "n4"], filters=flt))
    assert got.ids == []
    got = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=6, node_ids=["n0", "n4"]))
    assert got.ids == _exact_order(nodes, q, {"n0", "n4"})


def test_text_hybrid_and_mmr_modes(store):
    nodes = _nodes()
    store.add(nodes)
    embed = HashEmbedding()
    got = store.query(VectorStoreQuery(query_str="markets", mode=VectorStoreQueryMode.TEXT_SEARCH,
                                       similarity_top_k=5))
    assert set(got.ids) == {"n3", "n4"}  # the only texts holding the word
    got = store.query(VectorStoreQuery(query_str="markets", mode="text_search", similarity_top_k=5,
                                       filters=MetadataFilters(filters=[MetadataFilter(key="rank", value=4)])))
    assert got.ids == ["n4"]
    q = embed.get_query_embedding("fox")
    vector_only = store.query(VectorStoreQuery(query_embedding=q, query_str="markets", mode="hybrid", alpha=1.0,
                                               similarity_top_k=3))
    text_only = store.query(VectorStoreQuery(query_embedding=q, query_str="markets", mode="hybrid", alpha=0.0,
                                             similarity_top_k=1))
    best_text = store.query(VectorStoreQuery(query_str="markets", mode="text_search", similarity_top_k=1))
    assert vector_only.ids == _exact_order(nodes, q)[:3]
    assert text_only.ids == best_text.ids  # (min-max fusion scores the weakest text hit 0, like a miss)
    rrf = store.query(VectorStoreQuery(query_embedding=q, query_str="markets", mode="hybrid", similarity_top_k=6))
    assert set(rrf.ids) == {n.node_id for n in nodes}
    # MMR: threshold 1 is plain similarity; a low threshold trades it for diversity
    plain = store.query(VectorStoreQuery(query_embedding=q, mode="mmr", mmr_threshold=1.0, similarity_top_k=3))
    assert plain.ids == _exact_order(nodes, q)[:3]
    diverse = store.query(VectorStoreQuery(query_embedding=q, mode="mmr", mmr_threshold=0.1, similarity_top_k=3))
    assert diverse.ids[0] == plain.ids[0] and diverse.ids != plain.ids


def test_unsupported_mode_and_missing_inputs_raise(store):
    store.add(_nodes())
    with pytest.raises(InvalidInputError, match="query modes"):
        store.query(VectorStoreQuery(query_embedding=[0.0] * DIM, mode="svm"))
    with pytest.raises(InvalidInputError, match="needs query_str"):
        store.query(VectorStoreQuery(query_embedding=[1.0] * DIM, mode="hybrid"))
    with pytest.raises(InvalidInputError, match="needs query_embedding"):
        store.query(VectorStoreQuery(query_str="fox"))
    with pytest.raises(InvalidInputError, match="has no embedding"):
        store.add([TextNode(id_="x", text="no vector")])


def test_get_nodes_delete_nodes_and_clear(store):
    nodes = _nodes()
    store.add(nodes)
    got = store.get_nodes(node_ids=["n3", "missing", "n1"])
    assert [n.node_id for n in got] == ["n3", "n1"]
    assert got[0].get_content() == TEXTS[3] and got[0].metadata == nodes[3].metadata
    assert np.allclose(got[0].embedding, np.asarray(nodes[3].embedding) / np.linalg.norm(nodes[3].embedding))
    animals = MetadataFilters(filters=[MetadataFilter(key="topic", value="animals")])
    assert [n.node_id for n in store.get_nodes(node_ids=["n5", "n4", "n0"], filters=animals)] == ["n5", "n0"]
    store.delete_nodes(node_ids=["n0", "n4"], filters=animals)  # only n0 is both
    assert sorted(store.client.ids()) == ["n1", "n2", "n3", "n4", "n5"]
    store.delete_nodes(node_ids=["nope"])
    store.delete("doc1")  # n1, n3, n5
    assert sorted(store.client.ids()) == ["n2", "n4"]
    store.clear()
    assert len(store.client) == 0
    # re-adding an id replaces the node
    store.add(nodes[:2])
    changed = nodes[0].model_copy()
    changed.metadata = {"topic": "changed"}
    store.add([changed])
    assert len(store.client) == 2 and store.get_nodes(node_ids=["n0"])[0].metadata == {"topic": "changed"}


def test_async_forms(store):
    nodes = _nodes()

    async def run():
        await store.async_add(nodes)
        q = VectorStoreQuery(query_embedding=nodes[2].embedding, similarity_top_k=2)
        got = await store.aquery(q)
        assert got.ids == _exact_order(nodes, nodes[2].embedding)[:2]
        assert [n.node_id for n in await store.aget_nodes(node_ids=["n1"])] == ["n1"]
        await store.adelete_nodes(node_ids=["n1"])
        await store.adelete("doc0")
        assert sorted(store.client.ids()) == ["n3", "n5"]
        await store.aclear()
        assert len(store.client) == 0

    asyncio.run(run())


def test_over_an_open_database_and_lazy_creation(tmp_path):
    lazy = VJsonVectorStore(tmp_path / "lazy")
    assert lazy.client is None
    assert lazy.query(VectorStoreQuery(query_embedding=[1.0] * DIM)).ids == []
    lazy.add(_nodes())
    assert lazy.client.dimension == DIM and lazy.client.metric == "cosine"
    lazy.close()
    db = vjson.VectorDB(tmp_path / "open", dimension=DIM, metric="ip")
    store = VJsonVectorStore(db=db)
    store.add(_nodes())
    store.close()  # the caller owns db: still open
    assert len(db) == len(TEXTS)
    db.close()
    with pytest.raises(InvalidInputError, match="exactly one"):
        VJsonVectorStore()
    with pytest.raises(InvalidInputError, match="not to an open db"):
        VJsonVectorStore(db=db, dimension=3)
