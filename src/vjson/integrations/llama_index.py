"""A LlamaIndex vector store over a vjson database: ``VJsonVectorStore``.

Each node is one record: the node id is the record id, the node's content
(without metadata) the record's text, and the record's metadata is the node's
metadata plus LlamaIndex's usual bookkeeping keys (``doc_id``,
``document_id`` and ``ref_doc_id`` hold the source document's id, ``_node_id``
the node's). The rest of the node (relationships, templates, ...) is kept as
JSON under ``$node`` and ``$node_type``: keys starting with ``$`` are stored
but not indexed, so they cost no filter-index memory.

``MetadataFilters`` are compiled into vjson filters
(:mod:`vjson.integrations.llama_index_filters`) and evaluated by the database
before the search, never after. Install with ``pip install 'vjson[llama-index]'``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from vjson.database import MANIFEST, VectorDB
from vjson.errors import InvalidInputError, RecordNotFoundError
from vjson.results import SearchResult
from vjson.integrations import require
from vjson.integrations.llama_index_filters import to_vjson_filter

require("llama_index.core", "llama-index", "vjson.integrations.llama_index")

from llama_index.core.bridge.pydantic import PrivateAttr  # noqa: E402
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings  # noqa: E402
from llama_index.core.schema import BaseNode, MetadataMode, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict  # noqa: E402

__all__ = ["VJsonVectorStore"]

MODES = ("default", "text_search", "hybrid", "mmr")
_NODE, _NODE_TYPE, _NODE_ID = "$node", "$node_type", "_node_id"
_TEXT_NODE = TextNode.class_name()


class VJsonVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store backed by a :class:`vjson.VectorDB`.

    ``VJsonVectorStore(path, dimension=None, metric="cosine", **options)``
    opens the database in `path` or creates it (`options` are
    :class:`~vjson.VectorDB`'s); without ``dimension`` a new database is
    created at the first ``add``, with the dimension of the first embedding.
    ``VJsonVectorStore(db=db)`` wraps an open database (the caller keeps
    owning it).

    Query modes: ``default`` (vector), ``text_search`` (BM25 over the nodes'
    text, plain words), ``hybrid`` (both fused: weighted by ``alpha``, 1 =
    vector only, when given, reciprocal rank fusion otherwise) and ``mmr``
    (``mmr_threshold`` trades similarity for diversity). ``filters``,
    ``doc_ids`` and ``node_ids`` restrict every mode (an empty list: no
    restriction, as LlamaIndex's retriever means it). Similarities are
    vjson's scores: cosine similarity, dot product, or minus the squared L2
    distance (BM25 or the fused score for text and hybrid).
    """

    stores_text: bool = True
    flat_metadata: bool = False

    _db: VectorDB | None = PrivateAttr(default=None)
    _owns_db: bool = PrivateAttr(default=True)
    _path: Any = PrivateAttr(default=None)
    _options: dict = PrivateAttr(default_factory=dict)
    _create_lock: Any = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, path: str | os.PathLike[str] | None = None, dimension: int | None = None,
                 metric: str = "cosine", *, db: VectorDB | None = None, **options: Any) -> None:
        super().__init__(stores_text=True)
        if (path is None) == (db is None):
            raise InvalidInputError("VJsonVectorStore takes a path or db=, exactly one of them")
        if db is not None and (options or dimension is not None or metric != "cosine"):
            raise InvalidInputError("database options apply to a path, not to an open db=")
        self._owns_db = db is None
        self._path = path
        self._options = dict(options, metric=metric)
        self._db = db
        if path is not None and (dimension is not None or os.path.exists(os.path.join(os.fspath(path), MANIFEST))):
            self._db = VectorDB(path, dimension=dimension, **self._options)

    @classmethod
    def class_name(cls) -> str:
        return "VJsonVectorStore"

    @property
    def client(self) -> VectorDB | None:
        """The database, or None until the first ``add`` creates it."""
        return self._db

    def close(self) -> None:
        """Close the database if this store opened it."""
        if self._db is not None and self._owns_db:
            self._db.close()

    # ------------------------------------------------------------------ writes

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store nodes (with their embeddings); an existing node id is replaced."""
        if not nodes:
            return []
        ids, vectors, metas, texts = [], [], [], []
        for node in nodes:
            if node.embedding is None:
                raise InvalidInputError(f"node {node.node_id!r} has no embedding: embed nodes before adding them")
            meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
            meta[_NODE] = meta.pop("_node_content")
            meta[_NODE_TYPE] = meta.pop("_node_type")
            meta[_NODE_ID] = node.node_id
            ids.append(node.node_id)
            vectors.append(node.embedding)
            metas.append(meta)
            # empty content stays out of the text index (reads give "" back either way)
            texts.append(node.get_content(metadata_mode=MetadataMode.NONE) or None)
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2:
            raise InvalidInputError("the nodes' embeddings differ in length")
        with self._create_lock:  # two first adds at once must not open the folder twice
            if self._db is None:
                self._db = VectorDB(self._path, dimension=matrix.shape[1], **self._options)
            db = self._db
        db.insert_batch(ids, matrix, metas, texts)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document `ref_doc_id` (none: no error)."""
        if self._db is not None:
            self._db.delete(filter={"ref_doc_id": ref_doc_id})

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        """Delete the nodes among `node_ids` that match `filters` (either may be
        None; both None deletes every node, as SimpleVectorStore does)."""
        if self._db is not None:
            self._db.delete(filter=self._filter(filters, node_ids=node_ids) or {})

    def clear(self) -> None:
        """Delete every node."""
        if self._db is not None:
            self._db.delete(filter={})

    # ------------------------------------------------------------------ reads

    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Stored nodes among `node_ids` (in that order; unknown ids skipped)
        matching `filters`, with their embeddings (unit length under cosine)."""
        db = self._db
        if db is None:
            return []
        include = ("metadata", "text", "vector")
        if node_ids is not None and filters is None:
            records = []
            for node_id in node_ids:
                try:
                    records.append(db.get(node_id, include=include))
                except RecordNotFoundError:
                    continue
        else:
            records = db.get(filter=self._filter(filters, node_ids=node_ids) or {}, include=include)
            if node_ids is not None:
                order = {n: i for i, n in enumerate(node_ids)}
                records.sort(key=lambda r: order[r.id])
        nodes = []
        for rec in records:
            node = _node(rec.metadata, rec.text)
            node.embedding = rec.vector.tolist()
            nodes.append(node)
        return nodes

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        mode = str(getattr(query.mode, "value", query.mode))
        if mode not in MODES:
            raise InvalidInputError(f"VJsonVectorStore supports the query modes {', '.join(MODES)}; "
                                    f"got {mode!r}")
        k = query.similarity_top_k
        # an empty doc_ids/node_ids list means no restriction: VectorStoreIndex's
        # retriever passes node_ids=[] to stores that keep the nodes themselves
        flt = self._filter(query.filters, doc_ids=query.doc_ids or None, node_ids=query.node_ids or None)
        db = self._db
        if db is None or len(db) == 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        if mode in ("text_search", "hybrid") and not query.query_str:
            raise InvalidInputError(f"query mode {mode!r} needs query_str")
        if mode != "text_search" and query.query_embedding is None:
            raise InvalidInputError(f"query mode {mode!r} needs query_embedding")
        hits: Sequence[SearchResult]
        if mode == "default":
            hits = db.search(query.query_embedding, k, filter=flt)
        elif mode == "text_search":
            hits = db.text_search(query.query_str, k, filter=flt, syntax=False)  # type: ignore[arg-type]
        elif mode == "hybrid":
            k = query.hybrid_top_k or k
            fusion = "rrf" if query.alpha is None else "weighted"
            alpha = 0.5 if query.alpha is None else query.alpha
            hits = db.hybrid_search(query.query_embedding, query.query_str, k,  # type: ignore[arg-type]
                                    filter=flt, fusion=fusion, alpha=alpha,
                                    candidates=max(100, k, query.sparse_top_k or 0))
        else:
            return self._mmr(db, query, flt, kwargs)
        return VectorStoreQueryResult(nodes=[_node(h.metadata, h.text) for h in hits],
                                      similarities=[float(h.score) for h in hits], ids=[h.id for h in hits])

    def _mmr(self, db: VectorDB, query: VectorStoreQuery, flt: dict | None,
             kwargs: dict) -> VectorStoreQueryResult:
        k = query.similarity_top_k
        fetch = max(k, int(kwargs.get("mmr_prefetch_k") or k * kwargs.get("mmr_prefetch_factor", 4)))
        hits = db.search(query.query_embedding, fetch, filter=flt, include=("metadata", "text", "vector"))
        if not hits:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        threshold = query.mmr_threshold if query.mmr_threshold is not None else kwargs.get("mmr_threshold")
        scores, picked = get_top_k_mmr_embeddings(
            list(map(float, query.query_embedding)),  # type: ignore[arg-type]
            [h.vector.tolist() for h in hits if h.vector is not None], similarity_top_k=k,
            embedding_ids=list(range(len(hits))), mmr_threshold=threshold)
        chosen = [hits[i] for i in picked]
        return VectorStoreQueryResult(nodes=[_node(h.metadata, h.text) for h in chosen],
                                      similarities=[float(s) for s in scores], ids=[h.id for h in chosen])

    def _filter(self, filters: MetadataFilters | None, doc_ids: list[str] | None = None,
                node_ids: list[str] | None = None) -> dict | None:
        parts = []
        compiled = to_vjson_filter(filters)
        if compiled:
            parts.append(compiled)
        if doc_ids is not None:
            parts.append({"ref_doc_id": {"$in": list(doc_ids)}})
        if node_ids is not None:
            parts.append({_NODE_ID: {"$in": list(node_ids)}})
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}

    # ------------------------------------------------------------------ async: the same calls in a thread
    # (searches release the GIL, so the event loop keeps running meanwhile)

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                            **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aget_nodes(self, node_ids: list[str] | None = None,
                         filters: MetadataFilters | None = None) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)


def _node(metadata: dict | None, text: str | None) -> BaseNode:
    meta = metadata or {}
    if _NODE not in meta:
        raise InvalidInputError("this record was not written by VJsonVectorStore: it holds no node")
    if meta.get(_NODE_TYPE) == _TEXT_NODE:
        # the common case, built in one validation (metadata_dict_to_node validates
        # again to set the text): this is most of a query's cost over db.search
        data = orjson.loads(meta[_NODE])
        if text is not None:
            data["text"] = text
        return TextNode.from_dict(data)
    return metadata_dict_to_node({"_node_content": meta[_NODE], "_node_type": meta.get(_NODE_TYPE)}, text)
