"""MongoDB-style metadata filters: validation, compilation and a plain evaluator.

A filter is a JSON object such as ``{"genre": "jazz", "year": {"$gte": 1990}}``.
:func:`compile_filter` validates it once and returns an immutable
:class:`CompiledFilter` whose :meth:`CompiledFilter.matches` tests one metadata
dict.  :class:`vjson.metadata_index.MetadataIndex` evaluates the same compiled
tree over many rows at once with numpy; both follow the rules written down in
``docs/filters.md``, which this module is the executable form of.

Summary of the semantics (see the document for the full rules):

* dotted paths walk nested objects only (``"author.country"``); they never step
  into arrays, and a path through a non-object is missing;
* a condition on a scalar matches a field holding that scalar, or an array with
  at least one element that satisfies it (MongoDB); ``$eq`` with an array or
  object value also matches an identical (deeply equal) field value or element;
* ints and floats compare as numbers (compared as float64: ``1 == 1.0``),
  booleans are not numbers, comparisons across types are simply false;
* ``null`` equality (``{"f": None}``) matches null, an array containing null, or
  a missing field (MongoDB);
* negations (``$ne``, ``$nin``, ``$not``, ``$nor``, ``$exists: false``) match
  records where the field is missing;
* ``$contains`` matches an array with an element equal to the value, or a string
  field containing the value as a substring; ``$icontains`` the latter ignoring
  case;
* ``$type`` tests the JSON type of the field's value itself (an array is
  ``"array"``, whatever its elements).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import FilterError, InvalidMetadataError

__all__ = [
    "CompiledFilter",
    "compile_filter",
    "json_equal",
    "resolve_path",
    "MISSING",
    # node classes (the compiled tree)
    "MatchAll",
    "And",
    "Or",
    "Nor",
    "Not",
    "Field",
    "Eq",
    "Cmp",
    "In",
    "Exists",
    "Contains",
    "IContains",
    "Size",
    "Type",
    "CondNot",
    "CondAnd",
]

# --------------------------------------------------------------------------
# JSON value classes and comparison helpers (shared with the metadata index)
# --------------------------------------------------------------------------

NULL, BOOL, NUM, STR, ARR, OBJ = range(6)
_CLASS_NAMES = ("null", "bool", "number", "string", "array", "object")


class _Missing:
    """Sentinel for a path that does not resolve in a document."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def json_class(v: Any) -> int:
    """The JSON class of a metadata value (NULL, BOOL, NUM, STR, ARR or OBJ).

    Plain Python JSON types and their subclasses are accepted (tuples count as
    arrays); anything else raises :class:`InvalidMetadataError`.
    """
    t = type(v)
    if t is str:
        return STR
    if t is int or t is float:
        return NUM
    if t is bool:
        return BOOL
    if v is None:
        return NULL
    if t is list:
        return ARR
    if t is dict:
        return OBJ
    if isinstance(v, bool):  # pragma: no cover - bool cannot be subclassed
        return BOOL
    if isinstance(v, (int, float)):
        return NUM
    if isinstance(v, str):
        return STR
    if isinstance(v, (list, tuple)):
        return ARR
    if isinstance(v, dict):
        return OBJ
    raise InvalidMetadataError(
        f"metadata values must be JSON (None, bool, int, float, str, list, dict); "
        f"got {type(v).__name__}"
    )


def to_float(v: Any) -> float:
    """A number as float64; ints too large for a float become +-inf."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def json_equal(a: Any, b: Any) -> bool:
    """Deep JSON equality: numbers compare as float64, bools are not numbers,
    arrays compare element-wise in order, objects by key set and values
    (key order does not matter)."""
    ca = json_class(a)
    if ca != json_class(b):
        return False
    if ca == NUM:
        return to_float(a) == to_float(b)
    if ca == ARR:
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if ca == OBJ:
        if len(a) != len(b):
            return False
        for k, x in a.items():
            if k not in b or not json_equal(x, b[k]):
                return False
        return True
    return bool(a == b)  # null, bool, string


def resolve_path(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path (already split) or :data:`MISSING`.

    Only objects are walked; an intermediate value that is not an object
    (including arrays) makes the path missing.
    """
    cur = doc
    for comp in path:
        if not isinstance(cur, dict):
            return MISSING
        try:
            cur = cur[comp]
        except KeyError:
            return MISSING
    return cur


# --------------------------------------------------------------------------
# The compiled tree
# --------------------------------------------------------------------------
#
# Filter-level nodes (MatchAll, And, Or, Nor, Not, Field) have
# ``matches(doc) -> bool``.  Field conditions (Eq, Cmp, In, Exists, Contains,
# Size, CondNot, CondAnd) have ``test(value) -> bool`` where ``value`` is the
# resolved field value or MISSING.  The nodes are frozen; the values inside
# them are private deep copies made at compile time.


class _Cond:
    __slots__ = ()

    def test(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Eq(_Cond):
    """``$eq`` (and implicit equality)."""

    value: Any

    def test(self, value: Any) -> bool:
        target = self.value
        if value is MISSING:
            return target is None
        if json_equal(value, target):
            return True
        if json_class(value) == ARR:
            return any(json_equal(e, target) for e in value)
        return False


_CMP_FUNCS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


@dataclass(frozen=True)
class Cmp(_Cond):
    """``$gt``/``$gte``/``$lt``/``$lte`` against a number or a string."""

    op: str
    value: Any

    def _one(self, x: Any) -> bool:
        fn = _CMP_FUNCS[self.op]
        if isinstance(self.value, str):
            return json_class(x) == STR and bool(fn(x, self.value))
        return json_class(x) == NUM and bool(fn(to_float(x), to_float(self.value)))

    def test(self, value: Any) -> bool:
        if value is MISSING:
            return False
        if json_class(value) == ARR:
            return any(self._one(e) for e in value)
        return self._one(value)


@dataclass(frozen=True)
class In(_Cond):
    """``$in``: equality with any of the values (so ``None`` in the list also
    matches a missing field)."""

    values: tuple

    def test(self, value: Any) -> bool:
        return any(Eq(v).test(value) for v in self.values)


@dataclass(frozen=True)
class Exists(_Cond):
    flag: bool

    def test(self, value: Any) -> bool:
        return (value is not MISSING) == self.flag


@dataclass(frozen=True)
class Contains(_Cond):
    """``$contains``: an array element equal to the value, or (for a string
    value) a string field containing it as a substring."""

    value: Any

    def test(self, value: Any) -> bool:
        if value is MISSING:
            return False
        c = json_class(value)
        if c == ARR:
            return any(json_equal(e, self.value) for e in value)
        if c == STR and isinstance(self.value, str):
            return self.value in value
        return False


@dataclass(frozen=True)
class IContains(_Cond):
    """``$icontains``: a string field containing the value, ignoring case
    (both sides lowered with ``str.lower``). Arrays never match."""

    value: str

    def test(self, value: Any) -> bool:
        if value is MISSING or json_class(value) != STR:
            return False
        return self.value.lower() in value.lower()


TYPE_NAMES = dict(zip(_CLASS_NAMES, range(6)))


@dataclass(frozen=True)
class Type(_Cond):
    """``$type``: the field is present and its value (not its elements) has one
    of the JSON classes (NULL, BOOL, NUM, STR, ARR, OBJ)."""

    classes: frozenset

    def test(self, value: Any) -> bool:
        return value is not MISSING and json_class(value) in self.classes


@dataclass(frozen=True)
class Size(_Cond):
    n: int

    def test(self, value: Any) -> bool:
        return value is not MISSING and json_class(value) == ARR and len(value) == self.n


@dataclass(frozen=True)
class CondNot(_Cond):
    """Negation of a field condition (``$ne``, ``$nin``, ``$not``); true when
    the field is missing unless the inner condition matches missing fields."""

    cond: _Cond
    op: str = "$not"

    def test(self, value: Any) -> bool:
        return not self.cond.test(value)


@dataclass(frozen=True)
class CondAnd(_Cond):
    """Several operators in one field object; each is tested independently
    (for arrays, different elements may satisfy different operators)."""

    conds: tuple

    def test(self, value: Any) -> bool:
        return all(c.test(value) for c in self.conds)


class _Node:
    __slots__ = ()

    def matches(self, doc: dict) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class MatchAll(_Node):
    """The empty filter ``{}``."""

    def matches(self, doc: dict) -> bool:
        return True


@dataclass(frozen=True)
class And(_Node):
    children: tuple

    def matches(self, doc: dict) -> bool:
        return all(c.matches(doc) for c in self.children)


@dataclass(frozen=True)
class Or(_Node):
    children: tuple

    def matches(self, doc: dict) -> bool:
        return any(c.matches(doc) for c in self.children)


@dataclass(frozen=True)
class Nor(_Node):
    children: tuple

    def matches(self, doc: dict) -> bool:
        return not any(c.matches(doc) for c in self.children)


@dataclass(frozen=True)
class Not(_Node):
    """Top-level ``{"$not": {<filter>}}``."""

    child: _Node

    def matches(self, doc: dict) -> bool:
        return not self.child.matches(doc)


@dataclass(frozen=True)
class Field(_Node):
    """A condition on one field; ``name`` is the dotted path, ``path`` its parts."""

    name: str
    path: tuple
    cond: _Cond

    def matches(self, doc: dict) -> bool:
        return self.cond.test(resolve_path(doc, self.path))


class CompiledFilter:
    """A validated, immutable filter.  Build it with :func:`compile_filter`.

    ``root`` is the compiled tree; ``fields`` the set of dotted paths the
    filter reads.  Instances can be reused across queries and threads.
    """

    __slots__ = ("root", "fields")

    root: _Node
    fields: frozenset

    def __init__(self, root: _Node) -> None:
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "fields", frozenset(_collect_fields(root)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("CompiledFilter is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CompiledFilter is immutable")

    def matches(self, doc: dict | None) -> bool:
        """Whether one metadata dict matches (``None`` counts as ``{}``)."""
        if doc is None:
            doc = {}
        elif not isinstance(doc, dict):
            raise InvalidMetadataError(f"metadata must be a dict or None, got {type(doc).__name__}")
        return self.root.matches(doc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompiledFilter) and self.root == other.root

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CompiledFilter({self.root!r})"


def _collect_fields(node: _Node) -> list[str]:
    if isinstance(node, Field):
        return [node.name]
    if isinstance(node, (And, Or, Nor)):
        out: list[str] = []
        for c in node.children:
            out.extend(_collect_fields(c))
        return out
    if isinstance(node, Not):
        return _collect_fields(node.child)
    return []


# --------------------------------------------------------------------------
# Validation / compilation
# --------------------------------------------------------------------------

_LOGIC_LIST_OPS = ("$and", "$or", "$nor")
_FIELD_OPS = frozenset(
    ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not", "$contains",
     "$icontains", "$size", "$type"]
)


def _tn(v: Any) -> str:
    return "None" if v is None else type(v).__name__


def _in(loc: str) -> str:
    return f" (in {loc})" if loc else ""


def _at(loc: str) -> str:
    return f"at {loc}" if loc else "at top level"


def _child_loc(loc: str, part: str) -> str:
    return f"{loc}.{part}" if loc else part


def compile_filter(flt: Any) -> CompiledFilter:
    """Validate a filter dict and compile it (a :class:`CompiledFilter` is
    returned unchanged).  Raises :class:`FilterError` naming the bad part."""
    if isinstance(flt, CompiledFilter):
        return flt
    return CompiledFilter(_parse_filter(flt, ""))


def _parse_filter(flt: Any, loc: str) -> _Node:
    if not isinstance(flt, dict):
        raise FilterError(f"a filter must be an object (dict) {_at(loc)}, got {_tn(flt)}")
    parts: list[_Node] = []
    for key, val in flt.items():
        if not isinstance(key, str):
            raise FilterError(f"filter keys must be strings {_at(loc)}, got {_tn(key)} {key!r}")
        if key.startswith("$"):
            if key in _LOGIC_LIST_OPS:
                parts.append(_parse_logic(key, val, loc))
            elif key == "$not":
                sub = _child_loc(loc, "$not")
                if not isinstance(val, dict):
                    raise FilterError(f"$not {_at(loc)} needs a filter object, got {_tn(val)}")
                parts.append(Not(_parse_filter(val, sub)))
            elif key in _FIELD_OPS:
                raise FilterError(
                    f"{key} {_at(loc)} needs a field: write {{\"<field>\": {{\"{key}\": ...}}}}"
                )
            else:
                raise FilterError(f"unknown operator {key} {_at(loc)}")
        else:
            path = _parse_path(key, loc)
            parts.append(Field(key, path, _parse_field_value(key, val, loc)))
    if not parts:
        return MatchAll()
    if len(parts) == 1:
        return parts[0]
    return And(tuple(parts))


def _parse_logic(op: str, val: Any, loc: str) -> _Node:
    if not isinstance(val, (list, tuple)):
        raise FilterError(f"{op} {_at(loc)} needs a non-empty list of filter objects, got {_tn(val)}")
    if not val:
        raise FilterError(f"{op} {_at(loc)} needs a non-empty list of filter objects, got an empty list")
    children = []
    for i, item in enumerate(val):
        sub = _child_loc(loc, f"{op}[{i}]")
        if not isinstance(item, dict):
            raise FilterError(f"{op} {_at(loc)} needs a list of filter objects; item {i} is {_tn(item)}")
        children.append(_parse_filter(item, sub))
    cls = {"$and": And, "$or": Or, "$nor": Nor}[op]
    return cls(tuple(children))


def _parse_path(key: str, loc: str) -> tuple[str, ...]:
    if key == "":
        raise FilterError(f"empty field name {_at(loc)}")
    parts = tuple(key.split("."))
    for p in parts:
        if p == "":
            raise FilterError(f"field '{key}' {_at(loc)} has an empty path component")
        if p.startswith("$"):
            raise FilterError(f"field '{key}' {_at(loc)}: a path component cannot start with '$'")
    return parts


def _is_operator_object(val: Any) -> bool:
    return isinstance(val, dict) and any(isinstance(k, str) and k.startswith("$") for k in val)


def _parse_field_value(field: str, val: Any, loc: str) -> _Cond:
    if _is_operator_object(val):
        return _parse_op_object(field, val, loc, "")
    # implicit equality; an object without $-keys is an exact object match
    return Eq(_value(val, field, "the value", loc))


def _parse_op_object(field: str, obj: dict, loc: str, inside: str) -> _Cond:
    for k in obj:
        if not (isinstance(k, str) and k.startswith("$")):
            raise FilterError(
                f"field '{field}'{inside}{_in(loc)} mixes operators and plain keys ({k!r}); "
                "use dot notation for nested fields"
            )
    conds = [_parse_op(field, op, arg, loc) for op, arg in obj.items()]
    return conds[0] if len(conds) == 1 else CondAnd(tuple(conds))


def _parse_op(field: str, op: str, arg: Any, loc: str) -> _Cond:
    where = f"at '{field}'{_in(loc)}"
    if op == "$eq":
        return Eq(_value(arg, field, op, loc))
    if op == "$ne":
        return CondNot(Eq(_value(arg, field, op, loc)), "$ne")
    if op in _CMP_FUNCS:
        v = _value(arg, field, op, loc)
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise FilterError(f"{op} {where} needs a number or a string, got {_tn(arg)}")
        return Cmp(op, v)
    if op in ("$in", "$nin"):
        if not isinstance(arg, (list, tuple)):
            raise FilterError(f"{op} {where} needs a list, got {_tn(arg)}")
        vals = tuple(_value(v, field, op, loc) for v in arg)
        cond = In(vals)
        return cond if op == "$in" else CondNot(cond, "$nin")
    if op == "$exists":
        if not isinstance(arg, (bool, np.bool_)):
            raise FilterError(f"$exists {where} needs true or false, got {_tn(arg)}")
        return Exists(bool(arg))
    if op == "$size":
        if isinstance(arg, (bool, np.bool_)) or not isinstance(arg, (int, np.integer)):
            raise FilterError(f"$size {where} needs a non-negative int, got {_tn(arg)}")
        if arg < 0:
            raise FilterError(f"$size {where} needs a non-negative int, got {int(arg)}")
        return Size(int(arg))
    if op == "$contains":
        return Contains(_value(arg, field, op, loc))
    if op == "$icontains":
        if not isinstance(arg, str):
            raise FilterError(f"$icontains {where} needs a string, got {_tn(arg)}")
        return IContains(str(arg))
    if op == "$type":
        names = [arg] if isinstance(arg, str) else arg
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
            raise FilterError(f"$type {where} needs a type name or a non-empty list of them, got {_tn(arg)}")
        unknown = [n for n in names if n not in TYPE_NAMES]
        if unknown:
            raise FilterError(f"$type {where}: unknown type {unknown[0]!r} (one of {', '.join(_CLASS_NAMES)})")
        return Type(frozenset(TYPE_NAMES[n] for n in names))
    if op == "$not":
        if not isinstance(arg, dict) or not arg or not _is_operator_object(arg):
            got = "an empty object" if arg == {} else (
                "an object without operators" if isinstance(arg, dict) else _tn(arg))
            raise FilterError(f"$not {where} needs an object of operators, got {got}")
        return CondNot(_parse_op_object(field, arg, loc, " inside $not"), "$not")
    if op in _LOGIC_LIST_OPS:
        raise FilterError(f"{op} is not allowed inside field '{field}'{_in(loc)}; use it at the top level")
    raise FilterError(f"unknown operator {op} {where}")


def _value(v: Any, field: str, op: str, loc: str) -> Any:
    """Validate a filter value (JSON types, no NaN) and return a private copy."""
    t = type(v)
    if v is None or t is bool or t is str or t is int:
        return v
    if t is float:
        if math.isnan(v):
            raise FilterError(f"NaN is not allowed in {op} at '{field}'{_in(loc)}")
        return v
    if t is list or t is tuple:
        return [_value(x, field, op, loc) for x in v]
    if t is dict:
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise FilterError(
                    f"object keys in {op} at '{field}'{_in(loc)} must be strings, got {_tn(k)}"
                )
            out[str(k)] = _value(x, field, op, loc)
        return out
    # subclasses and numpy scalars
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _value(float(v), field, op, loc)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (list, tuple, dict)):
        return _value(list(v) if not isinstance(v, dict) else dict(v), field, op, loc)
    raise FilterError(f"unsupported value of type {_tn(v)} in {op} at '{field}'{_in(loc)}")
