"""What searches and reads hand back."""

from __future__ import annotations

import numpy as np

from vjson._core import SearchResult

__all__ = ["SearchResult", "HybridResult", "Record"]


class HybridResult(SearchResult):
    """A hybrid hit: the fused ``score`` plus each side's 1-based rank and raw
    score (vector: the distance; text: BM25), None where that side missed it."""

    __slots__ = ("vector_rank", "vector_distance", "text_rank", "text_score")

    def __init__(self, id: str, score: float, vector_rank: int | None, vector_distance: float | None,
                 text_rank: int | None, text_score: float | None, metadata: dict | None = None,
                 text: str | None = None) -> None:
        super().__init__(id, vector_distance, score, metadata, text)
        self.vector_rank = vector_rank
        self.vector_distance = vector_distance
        self.text_rank = text_rank
        self.text_score = text_score

    def __repr__(self) -> str:
        return (f"HybridResult(id={self.id!r}, score={self.score:.4f}, vector_rank={self.vector_rank}, "
                f"text_rank={self.text_rank})")


class Record:
    """A stored record: id, vector (float32, as inserted), metadata and text.

    A field left out of a read's ``include`` is None.
    """

    __slots__ = ("id", "vector", "metadata", "text")

    def __init__(self, id: str, vector: np.ndarray | None, metadata: dict | None, text: str | None) -> None:
        self.id = id
        self.vector = vector
        self.metadata = metadata
        self.text = text

    def __repr__(self) -> str:
        dim = "dim=-" if self.vector is None else f"dim={len(self.vector)}"
        return f"Record(id={self.id!r}, {dim}, metadata={self.metadata!r:.60})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or (self.vector is None) != (other.vector is None):
            return False
        same_vector = self.vector is None or np.array_equal(self.vector, other.vector)  # type: ignore[arg-type]
        return (self.id == other.id and self.metadata == other.metadata and self.text == other.text
                and same_vector)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value
