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
    """Per query, the k smallest distances over every shard's columns (ties: shard order).

    Vectorised over the batch: each shard's hits are laid out as a (queries x
    its most hits) matrix padded with +inf, the shards' matrices side by side,
    and one stable argsort per row picks the winners.
    """
    queries = len(parts[0].offsets) - 1
    dists, where = [], []
    for s, part in enumerate(parts):
        counts = np.diff(part.offsets)
        width = int(counts.max()) if queries else 0
        d = np.full((queries, width), np.inf)
        at = np.full((queries, width), -1, dtype=np.int64)
        rows = np.repeat(np.arange(queries), counts)
        cols = np.arange(len(part.distances)) - np.repeat(part.offsets[:-1], counts)
        d[rows, cols] = part.distances
        at[rows, cols] = np.arange(len(part.distances)) * len(parts) + s  # hit index and shard, in one number
        dists.append(d)
        where.append(at)
    best = np.argsort(np.hstack(dists), axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(np.hstack(where), best, axis=1).tolist()
    n = len(parts)
    return [[parts[c % n].hit(c // n) for c in row if c >= 0] for row in chosen]
