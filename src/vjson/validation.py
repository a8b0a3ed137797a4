"""Checks on what users hand the database, raising our own errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from vjson import _core
from vjson.errors import (
    DimensionMismatchError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidVectorError,
)

MAX_DEPTH = 64


def is_unicode(value: str) -> bool:
    """True unless `value` holds a lone surrogate ("a\\ud800"): such a str has no
    UTF-8 form, so it cannot be stored (JSON) or indexed (tantivy)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidIdError(f"ids must be str, got {type(value).__name__}: {value!r:.80}")
    if not value:
        raise InvalidIdError("ids must not be empty")
    if not is_unicode(value):
        raise InvalidIdError(f"id {value!r:.80} holds a lone surrogate: it has no UTF-8 form")
    return value


def check_ids(values: Any) -> list[str]:
    if isinstance(values, str):
        raise InvalidIdError("ids must be a sequence of str, not one str")
    try:
        ids = list(values)
    except TypeError:
        raise InvalidIdError(f"ids must be a sequence of str, got {type(values).__name__}") from None
    for value in ids:
        check_id(value)
    return ids


#: Under "l2" and "ip" a larger squared norm could overflow float32 distances
#: (the core's limit, checked here before anything is written). Cosine vectors
#: are scaled to unit length.
MAX_SQUARED_NORM: float = _core.SQUARED_NORM_LIMIT


def check_vectors(data: Any, dim: int, what: str = "vectors", metric: str | None = None) -> np.ndarray:
    """(n, dim) C-contiguous float32, finite (and not too large for `metric`'s
    distances, when given). A list of lists is accepted."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorError(f"{what} must be numeric: {exc}") from None
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise InvalidVectorError(f"{what} must be numeric, got {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidVectorError(f"{what} must be 2-D (n, {dim}), got shape {array.shape}")
    if array.shape[1] != dim:
        raise DimensionMismatchError(f"{what} have dimension {array.shape[1]}, the database has {dim}")
    with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused below
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise InvalidVectorError(f"{what}[{bad}] holds NaN or infinite values")
    if metric in ("l2", "ip") and array.size:
        squared = np.einsum("ij,ij->i", array, array, dtype=np.float64)
        if (squared > MAX_SQUARED_NORM).any():
            bad = int(np.flatnonzero(squared > MAX_SQUARED_NORM)[0])
            raise InvalidVectorError(f"{what}[{bad}] is too large (squared norm above {MAX_SQUARED_NORM:.0e}): "
                                     "its float32 distances would overflow")
    return array


def check_vector(data: Any, dim: int, metric: str | None = None) -> np.ndarray:
    array = check_vectors(data, dim, "vector", metric)
    if array.shape[0] != 1:
        raise InvalidVectorError(f"expected one vector of dimension {dim}, got shape {np.shape(data)}")
    return array[0]


def _check_json(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidMetadataError(f"metadata nests deeper than {MAX_DEPTH} levels at {path or 'top'}")
    if isinstance(value, str):
        if not is_unicode(value):
            raise InvalidMetadataError(f"metadata string at {path or 'top'} holds a lone surrogate: "
                                       "it has no UTF-8 form")
        return
    if value is None or isinstance(value, (bool, int)):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
            raise InvalidMetadataError(f"metadata integer at {path} does not fit 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(f"metadata at {path} is {value}: JSON has no NaN or infinity")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadataError(f"metadata keys must be str, got {key!r} at {path or 'top'}")
            if not is_unicode(key):
                raise InvalidMetadataError(f"metadata key {key!r:.80} at {path or 'top'} holds a lone surrogate: "
                                           "it has no UTF-8 form")
            _check_json(item, f"{path}.{key}" if path else key, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)
        return
    raise InvalidMetadataError(f"metadata at {path or 'top'} is a {type(value).__name__}, not a JSON value")


def check_metadata(value: Any) -> dict | None:
    """A JSON object (dict with str keys and JSON values) or None; returns a normalised copy."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidMetadataError(f"metadata must be a dict (a JSON object), got {type(value).__name__}")
    _check_json(value, "", 0)
    try:
        return orjson.loads(orjson.dumps(value))  # a private copy, tuples made lists
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidMetadataError(f"metadata is not serialisable: {exc}") from None


def check_text(value: Any) -> str | None:
    if value is None:
        return value
    if not isinstance(value, str):
        raise InvalidInputError(f"text must be str or None, got {type(value).__name__}")
    if not is_unicode(value):
        raise InvalidInputError(f"text {value!r:.80} holds a lone surrogate: it has no UTF-8 form")
    return value


def check_optional_list(values: Any, n: int, name: str) -> list | None:
    if values is None:
        return None
    if isinstance(values, (str, dict)):
        raise InvalidInputError(f"{name} must be a list with one entry per id")
    items = list(values)
    if len(items) != n:
        raise InvalidInputError(f"got {len(items)} {name} for {n} ids")
    return items


MAX_K = 2**31 - 1


def check_batch(ids: Any, vectors: Any, metadatas: Any, texts: Any, dim: int, metric: str
                ) -> tuple[list[str], np.ndarray, list | None, list | None]:
    """An insert batch validated whole: (ids, float32 matrix, metadatas, texts)."""
    ids = check_ids(ids)
    matrix = check_vectors(vectors, dim, metric=metric)
    if matrix.shape[0] != len(ids):
        raise InvalidInputError(f"got {len(ids)} ids for {matrix.shape[0]} vectors")
    metas = check_optional_list(metadatas, len(ids), "metadatas")
    if metas is not None:
        metas = [check_metadata(m) for m in metas]
    txts = check_optional_list(texts, len(ids), "texts")
    if txts is not None:
        txts = [check_text(t) for t in txts]
    if metric == "cosine":
        zero = ~matrix.any(axis=1)
        if zero.any():
            raise InvalidVectorError(f"vectors[{int(np.flatnonzero(zero)[0])}] is all zeros: "
                                     "a cosine vector needs a direction")
    return ids, matrix, metas, txts


def check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"{name} must be an int in [1, {MAX_K}], got {k!r}")
    return int(k)


def check_ids_for_lookup(values: Sequence[str] | str) -> list[str]:
    return [check_id(values)] if isinstance(values, str) else check_ids(values)
