"""vjson: an embedded vector database for Python.

The native core (``vjson._core``) is a from-scratch HNSW index with SIMD
distance kernels; searches run without the GIL, in parallel across threads.
"""

import logging

from vjson._core import (
    NO_LABEL,
    HNSWIndex,
    brute_force_knn,
    default_threads,
    set_simd,
    simd_info,
)
from vjson.database import PyVectorDB, VectorDB, open
from vjson.errors import (
    CorruptionError,
    DatabaseClosedError,
    DatabaseLockedError,
    DimensionMismatchError,
    FilterError,
    FormatVersionError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidVectorError,
    NotADatabaseError,
    QueryError,
    ReadOnlyError,
    RecordNotFoundError,
    ShardUnavailableError,
    StorageError,
    VJsonError,
)

from vjson.results import Record, SearchResult

# vjson logs to the "vjson" logger (warnings: a text index rebuilt, a file it could
# not close); the application decides what to show.
logging.getLogger("vjson").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "VectorDB", "PyVectorDB", "open", "Record", "SearchResult",
    "NO_LABEL", "HNSWIndex", "brute_force_knn", "default_threads", "set_simd", "simd_info",
    "CorruptionError", "DatabaseClosedError", "DatabaseLockedError", "DimensionMismatchError",
    "FilterError", "FormatVersionError", "InvalidIdError", "InvalidInputError",
    "InvalidMetadataError", "InvalidVectorError", "NotADatabaseError", "QueryError",
    "ReadOnlyError", "RecordNotFoundError", "ShardUnavailableError", "StorageError", "VJsonError",
]
