"""The exceptions vjson raises.

Every error the library raises on purpose derives from :class:`VJsonError`, so
``except vjson.VJsonError`` catches them all. Where a built-in exception is the
natural category (a bad value, an unknown key) the class also derives from it,
so code written against plain Python conventions keeps working.
"""

from __future__ import annotations


class VJsonError(Exception):
    """Base class of every error raised by vjson."""


class InvalidInputError(VJsonError, ValueError):
    """An argument has the wrong type, shape or value."""


class DimensionMismatchError(InvalidInputError):
    """A vector's length differs from the index or database dimension."""


class InvalidVectorError(InvalidInputError):
    """A vector holds NaN or infinite values, or is not numeric."""


class InvalidIdError(InvalidInputError):
    """A record id is not a non-empty string."""


class InvalidMetadataError(InvalidInputError):
    """Metadata is not a JSON object or cannot be serialised."""


class FilterError(InvalidInputError):
    """A metadata filter is malformed; the message names the offending part."""


class QueryError(InvalidInputError):
    """A full-text query could not be parsed."""


class RecordNotFoundError(VJsonError, KeyError):
    """An id named in a get/update call is not stored."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the message
        return str(self.args[0]) if self.args else "record not found"


class DatabaseClosedError(VJsonError):
    """The database (or index) has been closed."""


class ReadOnlyError(VJsonError):
    """A write was attempted on a database opened read-only."""


class DatabaseLockedError(VJsonError):
    """Another process holds the database's writer lock."""


class NotADatabaseError(VJsonError):
    """The path exists but is not a vjson database."""


class CorruptionError(VJsonError):
    """Stored data failed a checksum or consistency check; the message names the file."""


class FormatVersionError(CorruptionError):
    """The file was written by a newer, unknown format version."""


class StorageError(VJsonError, OSError):
    """A write to disk failed (disk full, I/O error); the last commit is intact."""


class ShardUnavailableError(VJsonError):
    """A shard of a :class:`~vjson.distributed.ShardedVectorDB` did not answer
    (its actor died and did not come back in time, or its node is gone).

    For a write, the message says which shards applied their part; every
    write is an upsert or idempotent, so retrying the call is safe.
    """
