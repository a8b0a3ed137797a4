"""A LangChain vector store over a vjson database: ``VJson``.

Each LangChain ``Document`` is one record: its id is the record id, its
``page_content`` the record's text (so full-text and hybrid search see it) and
its ``metadata`` the record's metadata, stored as JSON (types preserved).
``filter=`` on every search takes vjson's MongoDB-style filter dict
(docs/filters.md). Install with ``pip install 'vjson[langchain]'``.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from vjson.database import VectorDB
from vjson.errors import InvalidInputError, RecordNotFoundError
from vjson.integrations import copy_metadata, require

require("langchain_core", "langchain", "vjson.integrations.langchain")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever  # noqa: E402
from langchain_core.vectorstores.utils import maximal_marginal_relevance  # noqa: E402

__all__ = ["VJson", "VJsonRetriever"]

_SEARCH_FIELDS = ("metadata", "text")


class VJson(VectorStore):
    """LangChain ``VectorStore`` backed by a :class:`vjson.VectorDB`.

    ``VJson(path, embedding, **options)`` opens the database in `path` or
    creates it; `options` are :class:`~vjson.VectorDB`'s (``metric``, ``M``,
    ``durability``, ...). Without ``dimension`` a new database is created at
    the first write, with the dimension of the first embeddings.
    ``VJson(db=db, embedding=embedding)`` wraps an open database instead (the
    caller keeps owning it: ``close()`` then leaves it open).

    Scores: ``similarity_search_with_score`` returns vjson's distance (lower
    is closer: 1 - cosine, squared L2, or 1 - dot product); relevance scores
    (``similarity_search_with_relevance_scores``, the
    ``similarity_score_threshold`` retriever) map it into [0, 1], higher is
    closer: ``(1 + cos) / 2`` for cosine, ``1 / (1 + d)`` for L2, and the
    logistic of the dot product for ip.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, embedding: Embeddings | None = None, *,
                 db: VectorDB | None = None, **options: Any) -> None:
        if embedding is None:
            raise InvalidInputError("VJson needs an embedding (a langchain_core Embeddings)")
        if (path is None) == (db is None):
            raise InvalidInputError("VJson takes a path or db=, exactly one of them")
        if db is not None and options:
            raise InvalidInputError(f"database options {sorted(options)} apply to a path, not to an open db=")
        self.embedding = embedding
        self._owns_db = db is None
        self._path = path
        self._options = options
        self._db: VectorDB | None = db
        self._create_lock = threading.Lock()
        if db is None and (options.get("dimension") is not None or _holds_database(path)):  # type: ignore[arg-type]
            self._db = VectorDB(path, **options)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ the database

    @property
    def db(self) -> VectorDB | None:
        """The database, or None until the first write creates it."""
        return self._db

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    def _writable_db(self, dimension: int) -> VectorDB:
        with self._create_lock:  # two first writes at once must not open the folder twice
            if self._db is None:
                options = {k: v for k, v in self._options.items() if k != "dimension"}
                self._db = VectorDB(self._path, dimension=dimension, **options)  # type: ignore[arg-type]
            return self._db

    def close(self) -> None:
        """Close the database if this store opened it."""
        if self._db is not None and self._owns_db:
            self._db.close()

    def __enter__(self) -> VJson:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """Embed and store texts; returns their ids. Given ids are kept (a
        stored id is replaced), missing ones (None) are generated."""
        texts = list(texts)
        return self._insert(texts, self.embedding.embed_documents(texts) if texts else [], metadatas, ids)

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """``add_texts`` with the embedding model's async API; the write runs in a thread."""
        texts = list(texts)
        vectors = await self.embedding.aembed_documents(texts) if texts else []
        return await asyncio.to_thread(self._insert, texts, vectors, metadatas, ids)

    def add_embeddings(self, texts: Sequence[str], embeddings: Any, metadatas: list[dict] | None = None, *,
                       ids: list[str] | None = None) -> list[str]:
        """Store texts with embeddings computed elsewhere (no call to the model)."""
        return self._insert(list(texts), embeddings, metadatas, ids)

    def _insert(self, texts: list[str], vectors: Any, metadatas: list[dict] | None,
                ids: list[str] | None) -> list[str]:
        n = len(texts)
        if metadatas is not None and len(metadatas) != n:
            raise InvalidInputError(f"got {len(metadatas)} metadatas for {n} texts")
        if ids is not None and len(ids) != n:
            raise InvalidInputError(f"got {len(ids)} ids for {n} texts")
        out = [str(uuid.uuid4()) if ids is None or ids[i] is None else ids[i] for i in range(n)]
        if not n:
            return out
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != n:
            raise InvalidInputError(f"the embeddings of {n} texts have shape {matrix.shape}")
        metas = None if metadatas is None else [dict(m) if m else None for m in metadatas]
        self._writable_db(matrix.shape[1]).insert_batch(out, matrix, metas, texts)
        return out

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete by ids (unknown ids are skipped) or by ``filter=``; returns True."""
        flt = kwargs.pop("filter", None)
        if kwargs:
            raise InvalidInputError(f"delete takes ids or filter=, got {sorted(kwargs)}")
        if (ids is None) == (flt is None):
            raise InvalidInputError("delete takes ids or filter=, exactly one of them")
        db = self._db
        if db is None:
            return True
        if flt is not None:
            db.delete(filter=flt)
            return True
        while True:  # another thread may delete some of them between the check and the call
            known = [i for i in dict.fromkeys(ids) if i in db]  # type: ignore[arg-type]
            if not known:
                return True
            try:
                db.delete(known)
                return True
            except RecordNotFoundError:
                continue

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        return await asyncio.to_thread(self.delete, ids, **kwargs)

    # ------------------------------------------------------------------ reads

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents among `ids`, in their order; unknown ids are skipped."""
        db = self._db
        if db is None:
            return []
        out = []
        for id in ids:
            try:
                rec = db.get(id, include=_SEARCH_FIELDS)
            except RecordNotFoundError:
                continue
            out.append(_document(rec.id, rec.text, rec.metadata))
        return out

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await asyncio.to_thread(self.get_by_ids, ids)

    # ------------------------------------------------------------------ vector search

    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                          **kwargs: Any) -> list[Document]:
        return self.similarity_search_by_vector(self.embedding.embed_query(query), k, filter, **kwargs)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict | None = None,
                                    **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """Documents with vjson's distance (lower is closer)."""
        return self.similarity_search_with_score_by_vector(self.embedding.embed_query(query), k, filter, **kwargs)

    def similarity_search_with_score_by_vector(self, embedding: Any, k: int = 4, filter: dict | None = None,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        """Documents nearest to `embedding` with their distance; ``ef_search=`` passes through."""
        db = self._db
        if db is None or len(db) == 0:
            return []
        hits = db.search(embedding, k, filter=filter, ef_search=kwargs.get("ef_search"))
        return [(_document(h.id, h.text, h.metadata), float(h.distance)) for h in hits]  # type: ignore[arg-type]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        vector = await self.embedding.aembed_query(query)
        return await asyncio.to_thread(self.similarity_search_by_vector, vector, k, **kwargs)

    async def asimilarity_search_with_score(self, *args: Any, **kwargs: Any) -> list[tuple[Document, float]]:
        query, rest = (args[0], args[1:]) if args else (kwargs.pop("query"), ())
        vector = await self.embedding.aembed_query(query)
        return await asyncio.to_thread(self.similarity_search_with_score_by_vector, vector, *rest, **kwargs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        metric = self._db.metric if self._db is not None else self._options.get("metric", "cosine")
        return _RELEVANCE[metric]

    # ------------------------------------------------------------------ MMR

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: dict | None = None, **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(self.embedding.embed_query(query), k, fetch_k,
                                                            lambda_mult, filter, **kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: Any, k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: dict | None = None,
                                                **kwargs: Any) -> list[Document]:
        """Maximal marginal relevance among the `fetch_k` nearest: `lambda_mult`
        1 ranks by similarity alone, 0 by diversity alone."""
        db = self._db
        if db is None or len(db) == 0:
            return []
        if not 0 <= lambda_mult <= 1:
            raise InvalidInputError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")
        hits = db.search(embedding, max(fetch_k, k), filter=filter, ef_search=kwargs.get("ef_search"),
                         include=("metadata", "text", "vector"))
        if not hits:
            return []
        chosen = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float32),
                                            np.stack([h.vector for h in hits if h.vector is not None]), lambda_mult=lambda_mult, k=k)
        return [_document(hits[i].id, hits[i].text, hits[i].metadata) for i in chosen]

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        vector = await self.embedding.aembed_query(query)
        return await asyncio.to_thread(self.max_marginal_relevance_search_by_vector, vector, k, fetch_k,
                                       lambda_mult, **kwargs)

    # ------------------------------------------------------------------ full-text and hybrid

    def full_text_search(self, query: str, k: int = 4, filter: dict | None = None) -> list[Document]:
        """BM25 search over the documents' text (plain words; no embedding call)."""
        db = self._db
        if db is None:
            return []
        return [_document(h.id, h.text, h.metadata) for h in db.text_search(query, k, filter=filter, syntax=False)]

    def hybrid_search(self, query: str, k: int = 4, filter: dict | None = None, fusion: str = "rrf",
                      alpha: float = 0.5, candidates: int = 100, **kwargs: Any) -> list[Document]:
        """Vector and BM25 search fused (``VectorDB.hybrid_search``): ``fusion="rrf"``
        or ``"weighted"`` with ``alpha`` the vector side's weight."""
        return [doc for doc, _ in self.hybrid_search_with_score(query, k, filter, fusion, alpha, candidates,
                                                                **kwargs)]

    def hybrid_search_with_score(self, query: str, k: int = 4, filter: dict | None = None, fusion: str = "rrf",
                                 alpha: float = 0.5, candidates: int = 100,
                                 **kwargs: Any) -> list[tuple[Document, float]]:
        """``hybrid_search`` with each document's fused score (higher is better)."""
        db = self._db
        if db is None or len(db) == 0:
            return []
        hits = db.hybrid_search(self.embedding.embed_query(query), query, k, filter=filter, fusion=fusion,
                                alpha=alpha, candidates=candidates, ef_search=kwargs.get("ef_search"))
        return [(_document(h.id, h.text, h.metadata), float(h.score)) for h in hits]

    def search(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        if search_type == "hybrid":
            return self.hybrid_search(query, **kwargs)
        return super().search(query, search_type, **kwargs)

    async def asearch(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        if search_type == "hybrid":
            return await asyncio.to_thread(self.hybrid_search, query, **kwargs)
        return await super().asearch(query, search_type, **kwargs)

    def as_retriever(self, **kwargs: Any) -> VJsonRetriever:
        """A retriever: ``search_type`` "similarity" (default),
        "similarity_score_threshold", "mmr" or "hybrid"; ``search_kwargs`` go to the search."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return VJsonRetriever(vectorstore=self, tags=tags, **kwargs)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, path: str | os.PathLike[str] | None = None,
                   db: VectorDB | None = None, **kwargs: Any) -> VJson:
        """A store at `path` (or over `db`) holding `texts`."""
        store = cls(path, embedding, db=db, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                          ids: list[str] | None = None, **kwargs: Any) -> VJson:
        store = await asyncio.to_thread(cls, kwargs.pop("path", None), embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store


class VJsonRetriever(VectorStoreRetriever):
    """LangChain's vector store retriever plus ``search_type="hybrid"``."""

    allowed_search_types = ("similarity", "similarity_score_threshold", "mmr", "hybrid")

    def _get_relevant_documents(self, query: str, *, run_manager: Any, **kwargs: Any) -> list[Document]:
        if self.search_type == "hybrid":
            return self.vectorstore.hybrid_search(query, **(self.search_kwargs | kwargs))  # type: ignore[no-any-return]
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)  # type: ignore[no-any-return]

    async def _aget_relevant_documents(self, query: str, *, run_manager: Any, **kwargs: Any) -> list[Document]:
        if self.search_type == "hybrid":
            return await asyncio.to_thread(self.vectorstore.hybrid_search, query,  # type: ignore[no-any-return]
                                           **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager,  # type: ignore[no-any-return]
                                                      **kwargs)


def _document(id: str, text: str | None, metadata: dict | None) -> Document:
    return Document(page_content=text or "", metadata=copy_metadata(metadata), id=id)


def _holds_database(path: str | os.PathLike[str]) -> bool:
    from vjson.database import MANIFEST

    return os.path.exists(os.path.join(os.fspath(path), MANIFEST))


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# distance -> relevance in [0, 1], higher is closer (see the class docstring)
_RELEVANCE: dict[str, Callable[[float], float]] = {
    "cosine": lambda d: min(1.0, max(0.0, 1.0 - d / 2.0)),
    "l2": lambda d: 1.0 / (1.0 + max(d, 0.0)),
    "ip": lambda d: _logistic(1.0 - d),
}
