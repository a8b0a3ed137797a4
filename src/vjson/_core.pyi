"""Type stub of ``vjson._core``, the native module built from ``src/_core/_core.pyx``.

The native HNSW index, SIMD distance kernels, exact k-NN and the C result type.
Keep in step with the ``.pyx``: every public name there has its signature here.
"""

import os
from typing import Any

import numpy as np
import numpy.typing as npt

#: The label reported for "no result" in padded batch output (2**64 - 1).
NO_LABEL: int
#: The version of the index file format this build writes and reads.
FORMAT_VERSION: int
#: Candidates rescored per result by default, per storage kind code (0 float32,
#: 1 float16, 2 int8, 3 binary).
DEFAULT_OVERSAMPLE: dict[int, float]

# ---------------------------------------------------------------- SIMD control

def simd_info() -> dict[str, Any]:
    """Which distance kernels run: ``{"active", "best", "available", "env"}``."""

def set_simd(name: str) -> None:
    """Force a kernel family: "scalar", "avx2", "avx512", "neon", or "auto" (the best)."""

def default_threads() -> int:
    """The number of CPUs this process may run on."""

# ---------------------------------------------------------------- exact k-NN

def brute_force_knn(
    data: npt.ArrayLike,
    queries: npt.ArrayLike,
    k: int = 10,
    metric: str = "l2",
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact k nearest rows of ``data`` for each query: ``(ids, distances)``, each (m, k).

    Rows with fewer than k results are padded with id -1 and distance inf.
    """

#: Placeholder of a row not decoded yet in a lazily decoded row list.
UNDECODED: object
#: Under "l2" and "ip", vectors with a larger squared norm are refused (distances would overflow).
SQUARED_NORM_LIMIT: float

def normalise(vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length, as stored under "cosine" (a zero row raises)."""

def _kernel_distance(a: npt.ArrayLike, b: npt.ArrayLike, metric: str = "l2") -> float: ...
def _code_distance(query: npt.ArrayLike, code: npt.ArrayLike, kind: str, metric: str = "l2") -> float: ...
def _checksum(data: bytes | bytearray | memoryview, seed: int = 0) -> int: ...

# ---------------------------------------------------------------- allow-sets

class Bitset:
    """An immutable allow-set over labels, packed little-endian, with its population count."""

    def __init__(self, mask: npt.ArrayLike, count: int | None = None) -> None: ...
    @property
    def array(self) -> npt.NDArray[np.uint8]:
        """The packed bits (read-only)."""
    @property
    def count(self) -> int:
        """How many labels are set."""
    def __len__(self) -> int: ...
    def __contains__(self, label: object) -> bool: ...
    def to_mask(self, n: int) -> npt.NDArray[np.bool_]:
        """A bool mask over labels [0, n)."""

#: What ``allowed=`` takes: a bool mask over labels, a packed uint8 bitset, or a Bitset.
_Allowed = npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | Bitset

# ---------------------------------------------------------------- the index

class HNSWIndex:
    """An HNSW graph over float32 vectors with uint64 labels.

    Metrics: "l2" (squared Euclidean), "ip" (1 - dot) and "cosine". Searches
    run in parallel from many threads without the GIL.
    """

    #: Below this many allowed labels a filtered search scans exactly (0: automatic).
    exact_limit: int

    def __init__(
        self,
        dim: int,
        metric: str = "l2",
        M: int = 16,
        ef_construction: int = 200,
        capacity: int = 1024,
        seed: int = 100,
        ef_search: int = 64,
        external_vectors: bool = False,
        quantization: str | None = None,
    ) -> None: ...
    @property
    def quantization(self) -> str | None:
        """The storage kind the walk reads: None (float32), "float16", "int8" or "binary"."""
    @property
    def code_size(self) -> int:
        """Bytes per vector the graph walk reads (its code)."""
    @property
    def ram_bytes_per_vector(self) -> int:
        """Bytes per node the graph walk reads: its level-0 record and its code."""
    @property
    def trained(self) -> bool:
        """Whether the storage kind is ready to encode."""
    @property
    def trained_rows(self) -> int:
        """How many rows the compact kind's parameters were learnt from (0: not yet)."""
    @property
    def quantization_params(self) -> npt.NDArray[np.float32] | None:
        """The learnt parameters (int8: lo then step per dimension; binary: thresholds)."""
    def train(self, sample: npt.ArrayLike) -> None:
        """Learn a compact kind's parameters from sample rows (empty index only)."""
    def rescore_from_file(self, fd: int) -> None:
        """Rescoring preads float32 row i at byte i * 4 * dim of this file (-1: the map)."""
    @property
    def external_vectors(self) -> bool:
        """True when node i's vector is row i of an attached array."""
    def attach_vectors(self, vectors: npt.NDArray[np.float32]) -> None:
        """Point an external-vectors index at its rows (used in place; re-attach when they move)."""
    def add_stored(self, labels: npt.ArrayLike, num_threads: int | None = None) -> None:
        """Link attached rows: existing nodes or the next new ones, in order."""
    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def M(self) -> int: ...
    @property
    def ef_construction(self) -> int: ...
    @property
    def ef_search(self) -> int:
        """Beam width of searches (default 64); at least k is used."""
    @ef_search.setter
    def ef_search(self, value: int) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def element_count(self) -> int:
        """Node slots in use, live and deleted."""
    @property
    def deleted_count(self) -> int: ...
    @property
    def max_level(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def __contains__(self, label: object) -> bool: ...
    def __enter__(self) -> HNSWIndex: ...
    def __exit__(self, *exc: object) -> None: ...
    def close(self) -> None:
        """Free the graph (waiting for running searches)."""
    def resize(self, capacity: int) -> None:
        """Reserve room for `capacity` nodes (never shrinks)."""
    def add(self, vectors: npt.ArrayLike, labels: npt.ArrayLike, num_threads: int | None = None) -> None:
        """Insert vectors under labels; a label already present gets the new vector."""
    def delete(self, labels: npt.ArrayLike) -> int:
        """Mark labels deleted; returns how many. Every label must be present."""
    def search(
        self,
        query: npt.ArrayLike,
        k: int = 10,
        ef_search: int | None = None,
        allowed: _Allowed | None = None,
        allowed_count: int | None = None,
        rescore: bool | None = None,
        oversample: float | None = None,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        """The k nearest labels to one query: ``(labels, distances)``, ascending."""
    def search_results(
        self,
        query: npt.ArrayLike,
        k: int,
        ef_search: int | None,
        allowed: Bitset | None,
        names: Any,
        metadata: list[Any] | None,
        texts: list[Any] | None,
        similarity: bool,
        rescore: bool | None = None,
        oversample: float | None = None,
    ) -> list[SearchResult]:
        """search() fused with building SearchResult objects (``names[label]`` is the id)."""
    def search_batch(
        self,
        queries: npt.ArrayLike,
        k: int = 10,
        ef_search: int | None = None,
        allowed: _Allowed | None = None,
        num_threads: int | None = None,
        allowed_count: int | None = None,
        rescore: bool | None = None,
        oversample: float | None = None,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        """k nearest labels per query row, (m, k) each, padded with NO_LABEL and inf."""
    def get_vectors(self, labels: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Stored vectors for labels, (n, dim) float32 (normalised under cosine)."""
    def labels(self) -> npt.NDArray[np.uint64]:
        """Every live label, in node order."""
    def save(self, path: str | os.PathLike[str], durable: bool = True, pack: bool = False) -> None:
        """Write the index to `path` atomically."""
    def track_changes(self) -> None:
        """Note which nodes change from now on, for patch()."""
    @property
    def patch_nodes(self) -> int | None:
        """Nodes a patch() would hold now, or None if this graph cannot be patched."""
    @property
    def patch_is_wide(self) -> bool:
        """Whether loading the patch() of now would read the base's level 0 whole."""
    def patch(self) -> bytes | None:
        """What changed since track_changes() (or the base file it was loaded from)."""
    @staticmethod
    def load(path: str | os.PathLike[str], verify: bool = False, ef_search: int = 64,
             patch: bytes | None = None) -> HNSWIndex:
        """Open a saved index; the graph block is memory-mapped, not parsed."""
    def check(self) -> dict[str, int]:
        """Walk the whole structure; raises CorruptionError on a broken invariant."""

# ---------------------------------------------------------------- results

class SearchResult:
    """One hit: ``id``, ``distance`` (None for a text-only hit), higher-is-better
    ``score``, and ``metadata``/``text``/``vector`` when asked for."""

    id: Any
    distance: float | None
    score: float
    metadata: dict[str, Any] | None
    text: str | None
    vector: npt.NDArray[np.float32] | None

    def __init__(
        self,
        id: Any,
        distance: float | None,
        score: float,
        metadata: dict[str, Any] | None = None,
        text: str | None = None,
        vector: npt.NDArray[np.float32] | None = None,
    ) -> None: ...
    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (hybrid results add their per-side ranks and scores)."""
    def __reduce__(self) -> tuple[Any, ...]: ...

def build_results(
    names: Any,
    metadata: list[Any] | None,
    texts: list[Any] | None,
    labels: npt.NDArray[np.uint64],
    distances: npt.NDArray[np.float32],
    similarity: bool,
) -> list[SearchResult]:
    """SearchResult per (label, distance) with ``names[label]`` as id."""
