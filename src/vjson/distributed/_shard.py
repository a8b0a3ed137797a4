"""One shard: a Ray actor owning one VectorDB folder on its node's disk.

The actor is threaded (``max_concurrency`` > 1): VectorDB is thread-safe, so
searches run beside writes. When Ray restarts a dead actor, the constructor
runs again and reopens the folder; VectorDB's crash recovery replays its log,
so every write the shard acknowledged is there.
"""

from __future__ import annotations

import inspect
import os
import socket
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vjson.database import MANIFEST, VectorDB
from vjson.distributed._bm25 import rescore
from vjson.distributed._columns import Columns
from vjson.errors import InvalidInputError, NotADatabaseError, RecordNotFoundError, VJsonError
from vjson.results import SearchResult
from vjson.text_index import TextIndex

#: VectorDB methods a driver may call through :meth:`VectorShard.call`
FORWARDED = frozenset({
    "insert_batch", "get", "get_batch", "update_metadata", "count", "search", "batch_search", "text_search",
    "compact", "flush", "verify", "ids",
})

#: VectorDB.text_search's default query syntax, used when a caller gives none
TEXT_SYNTAX_DEFAULT: bool = inspect.signature(VectorDB.text_search).parameters["syntax"].default


def _syntax(syntax: bool | None) -> bool:
    return TEXT_SYNTAX_DEFAULT if syntax is None else bool(syntax)


class VectorShard:
    """Shard `index` of a collection: ``VectorDB(folder, **options)``.

    ``create`` is honoured only by the first construction: a restarted actor
    (``was_current_actor_reconstructed``) must find its folder, so a shard
    rescheduled onto a node without its data reports that instead of
    silently starting empty.
    """

    def __init__(self, folder: str, index: int, options: dict[str, Any], create: bool) -> None:
        import ray

        self.index = index
        self.folder = Path(folder)
        with warnings.catch_warnings():  # Ray's property warns about an API it calls itself
            warnings.simplefilter("ignore", DeprecationWarning)
            self.restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        self._db: VectorDB | None = None
        self._error: Exception | None = None
        try:
            if (self.restarted or not create) and not (self.folder / MANIFEST).exists():
                raise NotADatabaseError(f"shard {index}: {self.folder} holds no vjson database on node "
                                        f"{socket.gethostname()} (was the shard's node or disk lost?)")
            self._db = VectorDB(self.folder, **options)
        except Exception as exc:  # noqa: BLE001 - reported by every call, so the driver sees the error itself
            self._error = exc

    def _open_db(self) -> VectorDB:
        if self._db is None:
            assert self._error is not None
            raise self._error
        return self._db

    def info(self) -> dict[str, Any]:
        """Where this shard runs (the layout records the node) and how it is."""
        import ray

        db = self._open_db()
        return {"index": self.index, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                "restarted": self.restarted, "records": len(db)}

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method not in FORWARDED:
            raise VJsonError(f"shards do not forward {method!r}")
        return getattr(self._open_db(), method)(*args, **kwargs)

    def search_columns(self, queries: Any, k: int, filter: dict | None, ef_search: int | None,
                       include: Sequence[str], num_threads: int | None) -> Columns:
        """VectorDB.batch_search, answered as columns (see Columns): a batch
        of results crosses to the driver as a few arrays and lists, not as
        one pickled object per hit."""
        return Columns.of(self._open_db().batch_search(queries, k, filter, ef_search, include, num_threads),
                          include)

    def set_ef_search(self, value: int) -> None:
        self._open_db().ef_search = value

    def missing(self, ids: Sequence[str]) -> list[str]:
        db = self._open_db()
        return [i for i in ids if i not in db]

    def contains(self, id: str) -> bool:
        return id in self._open_db()

    def delete_present(self, ids: Sequence[str]) -> int:
        """Delete those of `ids` still stored: idempotent, so a retry after a
        crash neither fails nor deletes twice (the driver checked existence)."""
        db = self._open_db()
        present = [i for i in ids if i in db]
        if not present:
            return 0
        try:
            return db.delete(present)
        except RecordNotFoundError:  # deleted meanwhile by another caller: delete what is left
            return db.delete([i for i in present if i in db]) if any(i in db for i in present) else 0

    def delete_where(self, filter: dict) -> int:
        return self._open_db().delete(filter=filter)

    def hybrid_candidates(self, vector: Any, text: str, depth: int, text_depth: int, filter: dict | None,
                          ef_search: int | None, include: Sequence[str], syntax: bool, stats: dict[str, Any] | None,
                          local: dict[str, Any] | None) -> tuple[list[SearchResult], list[SearchResult]]:
        """Both sides' `depth` best hits (text scored with the collection's
        statistics), for the driver to merge globally and then fuse."""
        db = self._open_db()
        # ef_search None: search()'s own beam for `depth` results (widened with k), as VectorDB.hybrid_search
        vector_hits = db.search(vector, depth, filter, ef_search, include)
        return vector_hits, self.text_candidates(text, depth, text_depth, filter, include, syntax, stats, local)

    def text_statistics(self, query: Any, syntax: bool | None) -> dict[str, Any] | None:
        """BM25 statistics of `query` here (round one of a DFS text search); None without a text index."""
        text = self._text_index()
        if not isinstance(query, str):
            raise InvalidInputError(f"text query must be str, got {type(query).__name__}")
        if text is None:
            return None
        return text.bm25_statistics(query, syntax=_syntax(syntax))

    def text_candidates(self, query: str, k: int, depth: int, filter: dict | None, include: Sequence[str],
                        syntax: bool | None, stats: dict[str, Any] | None,
                        local: dict[str, Any] | None) -> list[SearchResult]:
        """This shard's `depth` best text hits, rescored with the collection's
        statistics (round two), best `k` first. `local`: this shard's own
        statistics from round one."""
        db = self._open_db()
        hits = db.text_search(query, depth, filter, include, syntax=_syntax(syntax))
        text = self._text_index()
        if stats is None or local is None or text is None or not hits:
            return hits[:k]
        ids = db._current().ids  # noqa: SLF001 - rows of the hits, to ask the text index about them
        rows = {h.id: ids.get(h.id) for h in hits}
        trees = text.explain(query, [r for r in rows.values() if r is not None], syntax=_syntax(syntax))
        for hit in hits:
            tree = trees.get(rows[hit.id])  # type: ignore[arg-type]
            if tree is not None:
                # keep the exact-form factor plain text search applied on top of BM25
                local_bm25 = float(tree["value"])
                factor = hit.score / local_bm25 if local_bm25 > 0 else 1.0
                hit.score = rescore(tree, stats, local) * factor
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def _text_index(self) -> TextIndex | None:
        return self._open_db()._current().text  # noqa: SLF001 - the statistics hook lives there

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
