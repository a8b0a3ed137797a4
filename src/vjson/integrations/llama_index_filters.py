"""LlamaIndex ``MetadataFilters`` compiled into vjson filters.

The target semantics are LlamaIndex's own reference evaluator,
``llama_index.core.vector_stores.utils.build_metadata_filter_fn`` (what
``SimpleVectorStore`` uses), which compares with Python operators:

- a missing key and a ``None`` value are the same, and match only ``!=`` and
  ``nin``; ``is_empty`` matches missing, ``None``, ``""`` and ``[]``;
- ``==``, ``in`` and the orderings compare the value as a whole: a list never
  equals one of its elements (vjson's ``$eq`` would match it), hence the
  ``$type`` guards below;
- ``contains``, ``any`` and ``all`` are Python's ``in``: a substring of a
  string, an element of a list, a key of an object.

Where the reference raises TypeError (ordering a string against a number,
``contains`` on a number, ...) the vjson filter is simply false. Booleans are
not numbers in vjson: ``True`` does not equal ``1`` here, while it does in
Python. Filter values that make the reference raise on every record (an
ordering against a list or None, ``in`` with a non-list, ``text_match`` with a
non-string) raise :class:`FilterError` instead. Nested ``MetadataFilters`` are
compiled recursively (the reference evaluator rejects them).

This module reads filters by duck typing (``filters``/``condition``,
``key``/``operator``/``value``) and never imports LlamaIndex.
"""

from __future__ import annotations

from typing import Any

from vjson.errors import FilterError

__all__ = ["to_vjson_filter"]

_PRESENT = ["bool", "number", "string", "array", "object"]  # present and not null


def to_vjson_filter(filters: Any) -> dict:
    """The vjson filter dict equivalent to a LlamaIndex ``MetadataFilters`` (or None: ``{}``)."""
    if filters is None:
        return {}
    return _group(filters, "filters")


def _group(group: Any, where: str) -> dict:
    items = list(group.filters or [])
    if not items:
        return {}  # the reference: an empty list matches everything, whatever the condition
    parts = [_group(f, f"{where}[{i}]") if hasattr(f, "filters") else _leaf(f, f"{where}[{i}]")
             for i, f in enumerate(items)]
    condition = _enum_value(group.condition) if group.condition is not None else "and"
    if condition == "and":
        return parts[0] if len(parts) == 1 else {"$and": parts}
    if condition == "or":
        return {"$or": parts}
    if condition == "not":
        return {"$nor": parts}
    raise FilterError(f"{where}: unknown filter condition {condition!r}")


def _enum_value(x: Any) -> str:
    return str(getattr(x, "value", x))


def _type_of(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    raise FilterError(f"unsupported filter value {v!r} ({type(v).__name__})")


def _nothing(key: str) -> dict:
    return {key: {"$in": []}}


def _holds(key: str, x: Any) -> dict:
    """Python's ``x in field``: a substring, a list element or (for a str x) an object key."""
    cond: dict = {key: {"$contains": x}}
    if isinstance(x, str) and x and "." not in x and not x.startswith("$"):
        return {"$or": [cond, {f"{key}.{x}": {"$exists": True}}]}
    return cond


def _eq(key: str, v: Any) -> dict:
    if v is None:
        return _nothing(key)  # the reference: None matches only != and nin
    if isinstance(v, (list, tuple)):
        return {key: {"$eq": list(v), "$type": "array", "$size": len(v)}}
    return {key: {"$eq": v, "$type": _type_of(v)}}


def _in(key: str, v: Any, op: str, where: str) -> dict:
    if not isinstance(v, (list, tuple)):
        raise FilterError(f"{where}: {op} at {key!r} needs a list, got {type(v).__name__}")
    if not v:
        return _nothing(key)
    return {key: {"$in": list(v), "$type": sorted({_type_of(x) for x in v})}}


def _leaf(f: Any, where: str) -> dict:
    key, op, v = f.key, _enum_value(f.operator), f.value
    if not isinstance(key, str) or not key or "." in key or key.startswith("$"):
        raise FilterError(f"{where}: the key {key!r} cannot be filtered on (empty, dotted or starting with $)")
    if op == "==":
        return _eq(key, v)
    if op == "!=":
        return {"$not": _eq(key, v)}
    if op in (">", ">=", "<", "<="):
        if v is None or isinstance(v, (bool, list, tuple)):
            raise FilterError(f"{where}: {op} at {key!r} needs a number or a string, got {v!r}")
        vop = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}[op]
        return {key: {vop: v, "$type": _type_of(v)}}
    if op == "in":
        return _in(key, v, op, where)
    if op == "nin":
        return {"$not": _in(key, v, op, where)}
    if op == "contains":
        return _holds(key, v)
    if op in ("text_match", "text_match_insensitive"):
        if not isinstance(v, str):
            raise FilterError(f"{where}: {op} at {key!r} needs a string, got {type(v).__name__}")
        if op == "text_match":
            return {key: {"$contains": v, "$type": "string"}}
        return {key: {"$icontains": v}}
    if op in ("any", "all"):
        if not isinstance(v, (list, tuple)):
            raise FilterError(f"{where}: {op} at {key!r} needs a list, got {type(v).__name__}")
        if not v:  # any([]) is False; all([]) is True for every present, non-None value
            return _nothing(key) if op == "any" else {key: {"$type": _PRESENT}}
        return {"$or" if op == "any" else "$and": [_holds(key, x) for x in v]}
    if op == "is_empty":
        return {"$or": [{key: {"$exists": False}}, {key: {"$type": "null"}},
                        {key: {"$eq": "", "$type": "string"}}, {key: {"$size": 0}}]}
    raise FilterError(f"{where}: unknown filter operator {op!r}")
