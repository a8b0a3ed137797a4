"""Search results as columns, the form they cross between processes in.

Pickling a SearchResult per hit dominates a batch search's transfer; a
shard's answer to a batch is instead flat columns (ids, distances, scores,
and the included fields) with per-query offsets, and the driver builds
SearchResult objects only for the hits it keeps after the merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from vjson.results import SearchResult


class Columns:
    """Hits of a batch of queries: query q's are ``offsets[q]:offsets[q+1]``."""

    __slots__ = ("ids", "distances", "scores", "offsets", "metadata", "text", "vectors")

    def __init__(self, ids: list[Any], distances: np.ndarray, scores: np.ndarray, offsets: np.ndarray,
                 metadata: list[Any] | None, text: list[Any] | None, vectors: np.ndarray | None) -> None:
        self.ids = ids
        self.distances = distances
        self.scores = scores
        self.offsets = offsets
        self.metadata = metadata
        self.text = text
        self.vectors = vectors

    @classmethod
    def of(cls, results: Sequence[Sequence[SearchResult]], include: Sequence[str]) -> Columns:
        flat = [hit for hits in results for hit in hits]
        offsets = np.zeros(len(results) + 1, dtype=np.int64)
        np.cumsum([len(hits) for hits in results], out=offsets[1:])
        vectors = None
        if "vector" in include:
            vectors = np.stack([cast(np.ndarray, h.vector) for h in flat]) if flat else np.empty((0, 0), dtype=np.float32)
        return cls([h.id for h in flat], np.array([h.distance for h in flat], dtype=np.float64),
                   np.array([h.score for h in flat], dtype=np.float64), offsets,
                   [h.metadata for h in flat] if "metadata" in include else None,
                   [h.text for h in flat] if "text" in include else None, vectors)

    def hit(self, i: int) -> SearchResult:
        return SearchResult(self.ids[i], float(self.distances[i]), float(self.scores[i]),
                            None if self.metadata is None else self.metadata[i],
                            None if self.text is None else self.text[i],
                            None if self.vectors is None else self.vectors[i])


def merge_nearest(parts: Sequence[Columns], k: int) -> list[list[SearchResult]]:
    """Per query, the k smallest distances over every shard's columns (ties: shard order)."""
    queries = len(parts[0].offsets) - 1
    out = []
    for q in range(queries):
        spans = [(p, int(p.offsets[q]), int(p.offsets[q + 1])) for p in parts]
        dists = np.concatenate([p.distances[a:b] for p, a, b in spans])
        owner = np.concatenate([np.full(b - a, s, dtype=np.int64) for s, (_, a, b) in enumerate(spans)])
        local = np.concatenate([np.arange(a, b, dtype=np.int64) for _, a, b in spans])
        best = np.argsort(dists, kind="stable")[:k]
        out.append([parts[int(owner[i])].hit(int(local[i])) for i in best])
    return out
