"""Vectorised evaluation of metadata filters over dense integer rows.

:class:`MetadataIndex` keeps, for every dotted path that occurs in the stored
metadata, a columnar *entry table*: one entry for the value a row holds at that
path, plus one entry per element when that value is an array.  Each entry has

``row``   int64   the row it belongs to
``gen``   uint32  the row's generation when the entry was written
``kind``  int8    1 null, 2 false, 3 true, 4 number, 5 string, 6 array,
                  7 object; +8 for array elements (9..15)
``num``   float64 the number (NaN otherwise)            - only if the path has numbers
``sc``    int32   code in the path's string dictionary (-1 otherwise) - only if strings
``alen``  int32   length of an array value/element (-1 otherwise)    - only if arrays

Filters are evaluated with numpy over these columns and scattered into a
boolean row mask (``mask[row[entry_ok]] = True``); no Python code runs per
record on that path.  While a path's table is *aligned* (entry i is row i: no
arrays, no gaps, no rewrites since the last compaction - the common case for a
field every record has) the entry mask is the row mask and the scatter is
skipped.  Overwriting or removing a row only bumps its generation
(``gen`` per row): entries whose ``gen`` differs from their row's are dead and
ignored, and are dropped by a vectorised compaction once they pile up.  Single
writes are staged in Python lists and committed to the numpy columns in one go
before the next evaluation, so ``set`` in a loop stays cheap.

Sparse paths cost memory only for the rows that have them.  Equality against an
array or object value is the one generic fallback: candidates are narrowed with
the columns (kind, array length, child paths) and then compared in Python,
looping only over the candidate rows.

The index is not thread-safe: evaluation may commit staged writes and compact,
so callers serialise access (the database holds its lock).
"""

from __future__ import annotations

import json
import zlib
from typing import IO, Any, Sequence

import numpy as np

from .errors import CorruptionError, FormatVersionError, InvalidInputError, InvalidMetadataError
from .filters import (
    ARR,
    BOOL,
    MISSING,
    NULL,
    NUM,
    OBJ,
    STR,
    And,
    Cmp,
    CompiledFilter,
    CondAnd,
    CondNot,
    Contains,
    Eq,
    Exists,
    Field,
    IContains,
    In,
    MatchAll,
    Nor,
    Not,
    Or,
    Size,
    Type,
    compile_filter,
    json_class,
    resolve_path,
    to_float,
)

__all__ = ["MetadataIndex"]

K_NULL, K_FALSE, K_TRUE, K_NUM, K_STR, K_ARR, K_OBJ = 1, 2, 3, 4, 5, 6, 7
ELEM = 8

_ALL, _VALUE, _ELEMS = 0, 1, 2  # which entries an equality looks at

_MAGIC = b"VJMETAIX"
_FORMAT_VERSION = 1
_MIN_COMPACT = 4096


class _Lazy:
    """Marker for a stored document not decoded yet (after load)."""

    __slots__ = ()


_LAZY = _Lazy()

#: Up to this many rows, saved entries name their row in 4 bytes (else 8).
_U32_ROWS = (1 << 32) - 1


class _NoDocuments:
    """A document source for readers that never need whole documents (field statistics)."""

    def __getitem__(self, row: int) -> Any:
        raise InvalidInputError("this index was loaded without its documents")


#: Pass as ``documents=`` to load an index only to count fields.
NO_DOCUMENTS: Any = _NoDocuments()
_SKIP = _Lazy()  # marks a metadata key that no filter can address
_BIG = 1 << 62  # ints below this convert to float64 directly


def _grow_array(a: np.ndarray, n_used: int, need: int, fill: Any) -> np.ndarray:
    cap = max(need, 2 * len(a), 16)
    out = np.empty(cap, dtype=a.dtype)
    out[:n_used] = a[:n_used]
    if fill is not None:
        out[n_used:] = fill
    return out


class _Path:
    """Entry table of one dotted path (see the module docstring)."""

    __slots__ = ("name", "parts", "n", "row", "gen", "kind", "num", "sc", "alen",
                 "strs", "_sidx", "_sarr", "pend", "_valid", "_valid_version", "aligned",
                 "children")

    def __init__(self, name: str) -> None:
        self.name = name
        self.parts = tuple(name.split("."))
        self.n = 0
        self.row = np.empty(0, np.int64)
        self.gen = np.empty(0, np.uint32)
        self.kind = np.empty(0, np.int8)
        self.num: np.ndarray | None = None
        self.sc: np.ndarray | None = None
        self.alen: np.ndarray | None = None
        self.strs: list[str] = []
        self._sidx: dict[str, int] | None = {}
        self._sarr: np.ndarray | None = None
        self.pend: list[tuple] = []  # staged (row, gen, kind, payload)
        self._valid: np.ndarray | None = None
        self._valid_version = -1
        # True while entry i belongs to row i for every entry (no elements, no
        # gaps, no re-writes): an entry mask is then directly a row mask
        self.aligned = True
        self.children: dict[Any, Any] = {}  # metadata key -> child _Path or _SKIP

    # -- string dictionary -------------------------------------------------
    def code(self, s: str) -> int:
        idx = self._sidx
        if idx is None:
            idx = self._sidx = {v: i for i, v in enumerate(self.strs)}
        c = idx.get(s)
        if c is None:
            c = idx[s] = len(self.strs)
            self.strs.append(s)
        return c

    def lookup(self, s: str) -> int | None:
        idx = self._sidx
        if idx is None:
            idx = self._sidx = {v: i for i, v in enumerate(self.strs)}
        return idx.get(s)

    def str_array(self) -> np.ndarray:
        a = self._sarr
        if a is None or len(a) != len(self.strs):
            a = np.empty(len(self.strs), dtype=object)
            a[:] = self.strs
            self._sarr = a
        return a

    # -- committing staged entries -----------------------------------------
    def _reserve(self, need: int) -> None:
        if need <= len(self.row):
            return
        n = self.n
        self.row = _grow_array(self.row, n, need, None)
        self.gen = _grow_array(self.gen, n, need, None)
        self.kind = _grow_array(self.kind, n, need, None)
        if self.num is not None:
            self.num = _grow_array(self.num, n, need, None)
        if self.sc is not None:
            self.sc = _grow_array(self.sc, n, need, None)
        if self.alen is not None:
            self.alen = _grow_array(self.alen, n, need, None)

    def flush(self) -> int:
        pend = self.pend
        if not pend:
            return 0
        self.pend = []
        a = np.array(pend, dtype=np.float64)
        m = len(a)
        n = self.n
        self._reserve(n + m)
        cap = len(self.row)
        sl = slice(n, n + m)
        self.row[sl] = a[:, 0]
        self.gen[sl] = a[:, 1]
        kind = a[:, 2].astype(np.int8)
        self.kind[sl] = kind
        if self.aligned:
            self.aligned = bool(
                a[0, 0] == n and a[-1, 0] == n + m - 1 and np.all(kind < ELEM)
                and np.array_equal(self.row[sl], np.arange(n, n + m)))
        base = kind & 7
        pay = a[:, 3]
        isnum = base == K_NUM
        if self.num is not None or isnum.any():
            if self.num is None:
                self.num = np.full(cap, np.nan)
            self.num[sl] = np.where(isnum, pay, np.nan)
        isstr = base == K_STR
        if self.sc is not None or isstr.any():
            if self.sc is None:
                self.sc = np.full(cap, -1, np.int32)
            self.sc[sl] = np.where(isstr, pay, -1)
        isarr = base == K_ARR
        if self.alen is not None or isarr.any():
            if self.alen is None:
                self.alen = np.full(cap, -1, np.int32)
            self.alen[sl] = np.where(isarr, pay, -1)
        self.n = n + m
        self._valid = None
        return m

    def take(self, idx: np.ndarray) -> None:
        """Keep only the entries at ``idx`` (compaction), ordered by row."""
        order = np.argsort(self.row[idx], kind="stable")
        idx = idx[order]
        self.row = self.row[idx].copy()
        self.gen = self.gen[idx].copy()
        self.kind = self.kind[idx].copy()
        if self.num is not None:
            self.num = self.num[idx].copy()
        if self.sc is not None:
            self.sc = self.sc[idx].copy()
        if self.alen is not None:
            self.alen = self.alen[idx].copy()
        self.n = len(idx)
        self._valid = None
        self.check_aligned()

    def check_aligned(self) -> None:
        n = self.n
        self.aligned = bool(
            (n == 0 or self.row[n - 1] == n - 1)
            and np.all(self.kind[:n] < ELEM)
            and np.array_equal(self.row[:n], np.arange(n)))

    def compact_strings(self) -> None:
        """Drop dictionary strings no live entry uses (when most are unused)."""
        if self.sc is None or len(self.strs) < 1024:
            return
        sc = self.sc[: self.n]
        used = np.unique(sc[sc >= 0])
        if len(used) * 2 > len(self.strs):
            return
        remap = np.full(len(self.strs) + 1, -1, np.int32)  # last slot: -1 -> -1
        remap[used] = np.arange(len(used), dtype=np.int32)
        self.sc = remap[sc]
        self.strs = [self.strs[i] for i in used.tolist()]
        self._sidx = None
        self._sarr = None


class MetadataIndex:
    """Per-path columnar indexes over metadata rows ``0..n_rows-1``.

    A row holds one metadata dict, or ``None`` (a record without metadata: all
    fields missing), or nothing (never set / removed: matches no filter).
    The stored dicts are kept by reference and must not be mutated afterwards.

    An owner that stores the documents anyway passes them as ``documents``
    (anything indexable by row, holding what was set for each live row): the
    index then neither keeps nor saves a copy, and reads rows from there
    (object and array equality need the whole value).
    """

    def __init__(self, documents: Any = None) -> None:
        self._source = documents
        self._n = 0
        self._live = np.zeros(0, bool)
        self._gen = np.zeros(0, np.uint32)
        self._docs: list[Any] = []
        self._paths: dict[str, _Path] = {}
        self._root: dict[Any, Any] = {}  # top-level key -> _Path or _SKIP
        self._n_live = 0
        self._n_invalidated = 0  # rows overwritten/removed since the last compaction
        self._n_entries = 0  # committed entries, live or dead
        self._entries_baseline = 0  # live entries after the last compaction
        self._n_pending = 0
        self._version = 0
        self._blob: bytes | None = None  # JSON of lazily decoded docs (after load)
        self._doc_off: np.ndarray | None = None

    # ------------------------------------------------------------------ rows
    @property
    def n_rows(self) -> int:
        """1 + the highest row ever set (the length of evaluation masks)."""
        return self._n

    @property
    def n_live(self) -> int:
        """Number of rows currently holding a record (dict or None)."""
        return self._n_live

    def __len__(self) -> int:
        return self._n_live

    @staticmethod
    def _check_row(row: Any) -> int:
        if isinstance(row, (bool, np.bool_)) or not isinstance(row, (int, np.integer)):
            raise InvalidInputError(f"row must be an int, got {type(row).__name__}")
        row = int(row)
        if row < 0:
            raise InvalidInputError(f"row must be non-negative, got {row}")
        return row

    def _reserve_rows(self, need: int) -> None:
        if need <= len(self._live):
            return
        n = self._n
        self._live = _grow_array(self._live, n, need, False)
        self._gen = _grow_array(self._gen, n, need, 0)
        self._docs.extend([None] * (len(self._live) - len(self._docs)))

    # --------------------------------------------------------------- writing
    def _child(self, children: dict, parent: _Path | None, key: Any) -> Any:
        """Slow path of :meth:`_walk` for a key not seen under ``parent`` yet."""
        if not isinstance(key, str):
            raise InvalidMetadataError(f"metadata keys must be strings, got {type(key).__name__} {key!r}")
        skey = str(key)
        if not skey or skey[0] == "$" or "." in skey:
            # unreachable from a filter: kept in the doc, not indexed
            children[key] = _SKIP
            return _SKIP
        name = skey if parent is None else f"{parent.name}.{skey}"
        p = self._paths.get(name)
        if p is None:
            p = self._paths[name] = _Path(name)
        children[key] = p
        return p

    def _rebuild_tree(self) -> None:
        """Recreate the key -> path lookup tree from ``self._paths``."""
        self._root = {}
        for p in list(self._paths.values()):
            p.children = {}
        for name in sorted(self._paths, key=lambda s: s.count(".")):
            parent_name, _, last = name.rpartition(".")
            if parent_name:
                parent = self._paths.get(parent_name)
                if parent is None:
                    parent = self._paths[parent_name] = _Path(parent_name)
                    self._attach(parent)
                parent.children[last] = self._paths[name]
            else:
                self._root[name] = self._paths[name]

    def _attach(self, p: _Path) -> None:
        parent_name, _, last = p.name.rpartition(".")
        if not parent_name:
            self._root[last] = p
            return
        parent = self._paths.get(parent_name)
        if parent is None:
            parent = self._paths[parent_name] = _Path(parent_name)
            self._attach(parent)
        parent.children[last] = p

    def _walk(self, obj: dict, children: dict, parent: _Path | None, row: int, gen: int) -> int:
        """Stage the entries of one object; returns how many were staged."""
        count = 0
        for key, val in obj.items():
            p = children.get(key)
            if p is None:
                p = self._child(children, parent, key)
            if p is _SKIP:
                _validate(val)
                continue
            t = type(val)
            if t is str:
                p.pend.append((row, gen, K_STR, p.code(val)))
            elif t is float:
                p.pend.append((row, gen, K_NUM, val))
            elif t is int:
                p.pend.append((row, gen, K_NUM, val if -_BIG < val < _BIG else to_float(val)))
            elif t is bool:
                p.pend.append((row, gen, K_TRUE if val else K_FALSE, 0))
            elif val is None:
                p.pend.append((row, gen, K_NULL, 0))
            elif t is dict:
                p.pend.append((row, gen, K_OBJ, 0))
                count += self._walk(val, p.children, p, row, gen)
            elif t is list:
                p.pend.append((row, gen, K_ARR, len(val)))
                count += self._elements(p, val, row, gen)
            else:
                c = json_class(val)  # raises for non-JSON values
                if c == BOOL:
                    p.pend.append((row, gen, K_TRUE if val else K_FALSE, 0))
                elif c == NUM:
                    p.pend.append((row, gen, K_NUM, to_float(val)))
                elif c == STR:
                    p.pend.append((row, gen, K_STR, p.code(str(val))))
                elif c == ARR:
                    p.pend.append((row, gen, K_ARR, len(val)))
                    count += self._elements(p, val, row, gen)
                else:  # OBJ subclass
                    p.pend.append((row, gen, K_OBJ, 0))
                    count += self._walk(val, p.children, p, row, gen)
            count += 1
        return count

    def _elements(self, p: _Path, arr: Sequence, row: int, gen: int) -> int:
        pend = p.pend
        for e in arr:
            t = type(e)
            if t is str:
                pend.append((row, gen, K_STR + ELEM, p.code(e)))
            elif t is int or t is float:
                pend.append((row, gen, K_NUM + ELEM, to_float(e)))
            elif t is bool:
                pend.append((row, gen, (K_TRUE if e else K_FALSE) + ELEM, 0))
            elif e is None:
                pend.append((row, gen, K_NULL + ELEM, 0))
            else:
                c = json_class(e)
                if c == BOOL:
                    pend.append((row, gen, (K_TRUE if e else K_FALSE) + ELEM, 0))
                elif c == NUM:
                    pend.append((row, gen, K_NUM + ELEM, to_float(e)))
                elif c == STR:
                    pend.append((row, gen, K_STR + ELEM, p.code(str(e))))
                elif c == ARR:
                    _validate(e)
                    pend.append((row, gen, K_ARR + ELEM, len(e)))
                else:
                    _validate(e)
                    pend.append((row, gen, K_OBJ + ELEM, 0))
        return len(arr)

    def _rollback(self, tags: set) -> None:
        """Drop staged entries whose (row, gen) is in ``tags`` (a failed batch)."""
        for p in self._paths.values():
            pend = p.pend
            while pend and (pend[-1][0], pend[-1][1]) in tags:
                pend.pop()

    def set(self, row: int, metadata: dict | None) -> None:
        """Store ``metadata`` (a dict or None) at ``row``, replacing what it held."""
        row = self._check_row(row)
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidMetadataError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        self._reserve_rows(row + 1)
        gen = (int(self._gen[row]) + 1) & 0xFFFFFFFF
        staged = 0
        if metadata is not None:
            try:
                staged = self._walk(metadata, self._root, None, row, gen)
            except BaseException:
                self._rollback({(row, gen)})
                raise
        if self._live[row]:
            self._n_invalidated += 1
        else:
            self._live[row] = True
            self._n_live += 1
        self._gen[row] = gen
        self._docs[row] = metadata if self.keep_documents else None
        if row >= self._n:
            self._n = row + 1
        self._version += 1
        self._n_pending += staged
        if self._n_pending > 65536:
            self._flush()

    def set_many(self, rows: Sequence[int] | np.ndarray, docs: Sequence[dict | None]) -> None:
        """Store many rows at once (same result as calling :meth:`set` in order;
        when a row repeats, the last doc wins).  All-or-nothing: if one doc is
        invalid nothing is stored."""
        rows_arr = self._check_rows(rows)
        docs = list(docs)
        if len(docs) != len(rows_arr):
            raise InvalidInputError(f"set_many got {len(rows_arr)} rows but {len(docs)} docs")
        if len(rows_arr) == 0:
            return
        for d in docs:
            if d is not None and not isinstance(d, dict):
                raise InvalidMetadataError(f"metadata must be a dict or None, got {type(d).__name__}")
        uniq, first_in_rev = np.unique(rows_arr[::-1], return_index=True)
        if len(uniq) != len(rows_arr):  # keep the last occurrence of each row
            keep = np.sort(len(rows_arr) - 1 - first_in_rev)
            rows_arr = rows_arr[keep]
            docs = [docs[i] for i in keep.tolist()]
        top = int(rows_arr.max()) + 1
        self._reserve_rows(top)
        gens = self._gen[rows_arr] + np.uint32(1)  # wraps modulo 2**32
        rlist = rows_arr.tolist()
        glist = gens.tolist()
        staged = 0
        walk = self._walk
        root = self._root
        try:
            for r, g, d in zip(rlist, glist, docs):
                if d is not None:
                    staged += walk(d, root, None, r, g)
        except BaseException:
            self._rollback(set(zip(rlist, glist)))
            raise
        was_live = self._live[rows_arr]
        n_over = int(was_live.sum())
        self._n_invalidated += n_over
        self._n_live += len(rlist) - n_over
        self._live[rows_arr] = True
        self._gen[rows_arr] = gens
        docs_list = self._docs
        if self.keep_documents:
            for r, d in zip(rlist, docs):
                docs_list[r] = d
        self._n = max(self._n, top)
        self._version += 1
        self._n_pending += staged
        if self._n_pending > 65536:
            self._flush()

    def _check_rows(self, rows: Any) -> np.ndarray:
        arr = np.asarray(rows)
        if arr.size == 0:
            return np.zeros(0, np.int64)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise InvalidInputError("rows must be a 1-D sequence of non-negative ints")
        arr = arr.astype(np.int64, copy=False)
        if arr.min() < 0:
            raise InvalidInputError(f"rows must be non-negative, got {int(arr.min())}")
        return arr

    def remove(self, row: int) -> None:
        """The row no longer holds a record and matches nothing."""
        row = self._check_row(row)
        if row >= self._n or not self._live[row]:
            return
        self._live[row] = False
        self._gen[row] = (int(self._gen[row]) + 1) & 0xFFFFFFFF
        self._docs[row] = None
        self._n_live -= 1
        self._n_invalidated += 1
        self._version += 1
        self._maybe_compact_after_remove()

    def remove_many(self, rows: Sequence[int] | np.ndarray) -> None:
        arr = self._check_rows(rows)
        arr = arr[arr < self._n]
        if len(arr) == 0:
            return
        arr = np.unique(arr)
        arr = arr[self._live[arr]]
        if len(arr) == 0:
            return
        self._live[arr] = False
        self._gen[arr] += np.uint32(1)
        docs = self._docs
        for r in arr.tolist():
            docs[r] = None
        self._n_live -= len(arr)
        self._n_invalidated += len(arr)
        self._version += 1
        self._maybe_compact_after_remove()

    def _maybe_compact_after_remove(self) -> None:
        if self._n_invalidated > max(self._n_live, _MIN_COMPACT):
            self._flush()

    # ------------------------------------------------------ commit / compact
    def _flush(self) -> None:
        """Commit staged entries to the numpy columns; compact if worthwhile."""
        if self._n_pending or any(p.pend for p in self._paths.values()):
            added = 0
            for p in self._paths.values():
                if p.pend:
                    added += p.flush()
            self._n_entries += added
            self._n_pending = 0
        if not self._n_invalidated:
            self._entries_baseline = self._n_entries
        elif (
            self._n_entries > 2 * self._entries_baseline + _MIN_COMPACT
            or self._n_invalidated > max(self._n_live, _MIN_COMPACT)
        ):
            self.compact()

    def compact(self) -> None:
        """Drop dead entries (of overwritten/removed rows) and unused strings."""
        for p in self._paths.values():
            if p.pend:
                self._n_entries += p.flush()
        self._n_pending = 0
        total = 0
        dropped = False
        for name in list(self._paths):
            p = self._paths[name]
            if p.n:
                keep = p.gen[: p.n] == self._gen[p.row[: p.n]]
                if not keep.all():
                    p.take(np.flatnonzero(keep))
                p.compact_strings()
            if p.n == 0:
                del self._paths[name]
                dropped = True
            total += p.n
        if dropped:
            self._rebuild_tree()
        self._n_entries = total
        self._entries_baseline = total
        self._n_invalidated = 0
        self._version += 1

    def _valid(self, p: _Path) -> np.ndarray | None:
        """Entry mask of live entries, or None when every entry is live."""
        if self._n_invalidated == 0:
            return None
        if p._valid is None or p._valid_version != self._version:
            p._valid = p.gen[: p.n] == self._gen[p.row[: p.n]]
            p._valid_version = self._version
        return p._valid

    @property
    def keep_documents(self) -> bool:
        """False when the documents are read from an owner's rows (and not saved)."""
        return self._source is None

    def use_documents(self, documents: Any) -> None:
        """Read documents from `documents` from now on, freeing the copies held."""
        self._source = documents
        self._docs = [None] * len(self._docs)
        self._blob = None
        self._doc_off = None

    # ---------------------------------------------------------------- reading
    def get(self, row: int) -> dict | None:
        """The stored metadata of ``row`` (None when absent or stored as None)."""
        row = self._check_row(row)
        if row >= self._n or not self._live[row]:
            return None
        return self._doc(row)

    def _doc(self, row: int) -> Any:
        if self._source is not None:
            return self._source[row]
        d = self._docs[row]
        if d is _LAZY:
            assert self._blob is not None and self._doc_off is not None
            a, b = int(self._doc_off[row]), int(self._doc_off[row + 1])
            try:
                d = json.loads(self._blob[a:b])
            except ValueError as e:
                raise CorruptionError(f"metadata index: stored document of row {row} is corrupt: {e}") from e
            self._docs[row] = d
        return d

    def __contains__(self, row: object) -> bool:
        return isinstance(row, (int, np.integer)) and 0 <= int(row) < self._n and bool(self._live[int(row)])

    def evaluate(self, flt: dict | CompiledFilter, n_rows: int | None = None) -> np.ndarray:
        """Boolean mask over rows of the records matching ``flt``; its length is
        ``max(n_rows, self.n_rows)`` (``self.n_rows`` when n_rows is None)."""
        cf = flt if isinstance(flt, CompiledFilter) else compile_filter(flt)
        self._flush()
        n = self._n if n_rows is None else max(int(n_rows), self._n)
        return _Evaluator(self, n).node(cf.root)

    def count(self, flt: dict | CompiledFilter) -> int:
        return int(np.count_nonzero(self.evaluate(flt)))

    def paths(self) -> list[str]:
        """The indexed dotted paths (for diagnostics)."""
        self._flush()
        return sorted(self._paths)

    def nbytes(self) -> int:
        """Approximate memory of the numpy columns."""
        self._flush()
        total = self._live.nbytes + self._gen.nbytes
        for p in self._paths.values():
            for a in (p.row, p.gen, p.kind, p.num, p.sc, p.alen):
                if a is not None:
                    total += a.nbytes
        return total

    # ------------------------------------------------------------ persistence
    def dump(self, fileobj: IO[bytes]) -> None:
        """Write the index (live entries, dictionaries and documents) to a
        binary file object.  Loading needs no pickle and no per-row parsing."""
        self._flush()
        n = self._n
        sections: list[tuple[str, np.ndarray]] = []
        live = self._live[:n]
        sections.append(("live", live.astype(np.uint8)))
        # documents: JSON per live row, empty for None / absent
        enc = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False).encode
        offs = np.zeros(n + 1 if self.keep_documents else 1, np.int64)
        chunks: list[bytes] = []
        pos = 0
        docs = self._docs
        for r in np.flatnonzero(live).tolist() if self.keep_documents else ():
            d = docs[r]
            if d is None:
                continue
            if d is _LAZY:
                assert self._blob is not None and self._doc_off is not None
                b = bytes(self._blob[int(self._doc_off[r]): int(self._doc_off[r + 1])])
            else:
                b = enc(d).encode("ascii")
            chunks.append(b)
            pos += len(b)
            offs[r + 1] = pos
        np.maximum.accumulate(offs, out=offs)
        sections.append(("doc_off", offs))
        sections.append(("doc_blob", np.frombuffer(b"".join(chunks), np.uint8)))
        path_meta: list[dict[str, Any]] = []
        for name in sorted(self._paths):
            p = self._paths[name]
            valid = self._valid(p)
            sel = np.arange(p.n) if valid is None else np.flatnonzero(valid)
            if len(sel) == 0:
                continue  # nothing live at this path
            sel = sel[np.argsort(p.row[sel], kind="stable")]  # canonical order: by row
            pre = f"p{len(path_meta)}."
            rows = p.row[sel]
            sections.append((pre + "row", rows.astype("<u4") if n <= _U32_ROWS else rows))  # 4 bytes an entry
            sections.append((pre + "kind", p.kind[sel]))
            cols = []
            strs: list[str] = []
            for cname in ("num", "sc", "alen"):
                col = getattr(p, cname)
                if col is None:
                    continue
                col = col[sel]
                if cname == "sc":
                    # canonical dictionary: only the strings in use, sorted
                    used = np.unique(col[col >= 0])
                    strs = [p.strs[i] for i in used.tolist()]
                    order = sorted(range(len(strs)), key=strs.__getitem__)
                    strs = [strs[i] for i in order]
                    remap = np.full(len(p.strs) + 1, -1, np.int32)
                    remap[used[order]] = np.arange(len(order), dtype=np.int32)
                    col = remap[col]
                    if not strs:
                        continue
                elif cname == "num" and not np.any((p.kind[sel] & 7) == K_NUM):
                    continue
                elif cname == "alen" and not np.any((p.kind[sel] & 7) == K_ARR):
                    continue
                cols.append(cname)
                sections.append((pre + cname, col))
            data = json.dumps(strs, ensure_ascii=True).encode("ascii")
            sections.append((pre + "strs", np.frombuffer(data, np.uint8)))
            path_meta.append({"name": name, "cols": cols})
        # layout
        sect_meta = []
        parts: list[bytes] = []
        off = 0
        for sname, arr in sections:
            arr = np.ascontiguousarray(arr)
            dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
            raw = arr.astype(dt, copy=False).tobytes()
            pad = (-off) % 8
            if pad:
                parts.append(b"\0" * pad)
                off += pad
            sect_meta.append({"name": sname, "dtype": dt.str, "offset": off, "count": int(arr.size)})
            parts.append(raw)
            off += len(raw)
        payload = b"".join(parts)
        header = json.dumps({
            "version": _FORMAT_VERSION,
            "n_rows": n,
            "payload_len": len(payload),
            "payload_crc": zlib.crc32(payload),
            "documents": self.keep_documents,
            "sections": sect_meta,
            "paths": path_meta,
        }, separators=(",", ":")).encode("utf-8")
        fileobj.write(_MAGIC)
        fileobj.write(len(header).to_bytes(8, "little"))
        fileobj.write(zlib.crc32(header).to_bytes(4, "little"))
        fileobj.write(header)
        fileobj.write(payload)

    @classmethod
    def load(cls, fileobj: IO[bytes], documents: Any = None) -> "MetadataIndex":
        """Read an index written by :meth:`dump`; raises CorruptionError
        (naming the file) when the data is damaged. An index saved without
        its documents needs their owner's rows as `documents`."""
        fname = getattr(fileobj, "name", "<stream>")
        try:
            data = fileobj.read()
        except OSError:
            raise
        try:
            index = cls._load_bytes(data)
        except CorruptionError as e:
            raise type(e)(f"{fname}: {e}") from e.__cause__
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeDecodeError) as e:
            raise CorruptionError(f"{fname}: metadata index is corrupt: {e}") from e
        if documents is not None:
            index.use_documents(documents)
        elif not index.keep_documents:
            raise InvalidInputError(f"{fname}: saved without its documents: pass them as documents=")
        return index

    @classmethod
    def _load_bytes(cls, data: bytes) -> "MetadataIndex":
        def bad(msg: str) -> CorruptionError:
            return CorruptionError(f"metadata index is corrupt: {msg}")

        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise bad("file object did not return bytes")
        data = bytes(data) if not isinstance(data, bytes) else data
        if len(data) < 20 or data[:8] != _MAGIC:
            raise bad("bad magic (not a vjson metadata index)")
        hlen = int.from_bytes(data[8:16], "little")
        hcrc = int.from_bytes(data[16:20], "little")
        if hlen > len(data) - 20:
            raise bad("truncated header")
        header_b = data[20: 20 + hlen]
        if zlib.crc32(header_b) != hcrc:
            raise bad("header checksum mismatch")
        header = json.loads(header_b)
        if not isinstance(header, dict):
            raise bad("header is not an object")
        version = header.get("version")
        if not isinstance(version, int):
            raise bad("missing format version")
        if version > _FORMAT_VERSION:
            raise FormatVersionError(
                f"metadata index format version {version} is newer than supported ({_FORMAT_VERSION})"
            )
        payload_b = data[20 + hlen:]
        if len(payload_b) != header["payload_len"]:
            raise bad(f"payload is {len(payload_b)} bytes, header says {header['payload_len']}")
        if zlib.crc32(payload_b) != header["payload_crc"]:
            raise bad("payload checksum mismatch")
        payload = bytearray(payload_b)  # writable buffer for the arrays
        del payload_b
        n = int(header["n_rows"])
        if n < 0:
            raise bad("negative row count")
        sections: dict[str, np.ndarray] = {}
        for s in header["sections"]:
            dt = np.dtype(str(s["dtype"]))
            off, count = int(s["offset"]), int(s["count"])
            if off < 0 or count < 0 or off + count * dt.itemsize > len(payload):
                raise bad(f"section {s['name']} out of bounds")
            sections[str(s["name"])] = np.frombuffer(payload, dtype=dt, count=count, offset=off)

        def sect(name: str, dtype: Any, count: int | None = None) -> np.ndarray:
            if name not in sections:
                raise bad(f"missing section {name}")
            a = sections[name]
            if a.dtype != np.dtype(dtype):
                raise bad(f"section {name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
            if count is not None and len(a) != count:
                raise bad(f"section {name} has {len(a)} items, expected {count}")
            return a

        keep_documents = header.get("documents", True)
        if not isinstance(keep_documents, bool):
            raise bad("invalid documents flag")
        self = cls(None if keep_documents else [])  # the owner calls use_documents()
        live_u8 = sect("live", np.uint8, n)
        if n and live_u8.max() > 1:
            raise bad("row liveness flags are not 0/1")
        live = live_u8.view(bool)
        offs = sect("doc_off", "<i8", n + 1 if keep_documents else 1)
        blob = sect("doc_blob", np.uint8)
        if offs[0] != 0 or offs[-1] != len(blob) or (n and np.any(np.diff(offs) < 0)):
            raise bad("document offsets are inconsistent")
        has_doc = np.diff(offs) > 0 if keep_documents else np.zeros(n, bool)
        if np.any(has_doc & ~live):
            raise bad("a removed row has a document")
        self._n = n
        self._live = live
        self._gen = np.zeros(n, np.uint32)
        docs = np.full(n, None, dtype=object)
        docs[has_doc] = _LAZY
        self._docs = docs.tolist()
        self._blob = blob.tobytes()
        self._doc_off = offs
        self._n_live = int(np.count_nonzero(live))
        total = 0
        for i, pm in enumerate(header["paths"]):
            name = pm["name"]
            if not isinstance(name, str) or not name or name in self._paths:
                raise bad(f"bad path name {name!r}")
            pre = f"p{i}."
            p = _Path(name)
            if pre + "row" not in sections:
                raise bad(f"missing section {pre}row")
            row = sect(pre + "row", "<u4" if sections[pre + "row"].dtype == np.dtype("<u4") else "<i8")
            row = row.astype(np.int64)  # (files before kept int64 rows)
            m = len(row)
            kind = sect(pre + "kind", np.int8, m)
            if m:
                if row.min() < 0 or row.max() >= n or not live[row].all():
                    raise bad(f"path {name!r} has entries for rows that hold no record")
                base = kind & 7
                if np.any((base == 0) | (kind < 0) | (kind > 15)):
                    raise bad(f"path {name!r} has invalid entry kinds")
            else:
                base = kind
            strs = json.loads(sect(pre + "strs", np.uint8).tobytes())
            if not isinstance(strs, list) or not all(isinstance(s, str) for s in strs):
                raise bad(f"path {name!r} has a bad string dictionary")
            cols = pm["cols"]
            p.row, p.kind, p.n = row, kind, m
            p.gen = np.zeros(m, np.uint32)
            p.num = sect(pre + "num", "<f8", m) if "num" in cols else None
            p.sc = sect(pre + "sc", "<i4", m) if "sc" in cols else None
            p.alen = sect(pre + "alen", "<i4", m) if "alen" in cols else None
            if m:
                for k, col, what in ((K_NUM, p.num, "num"), (K_STR, p.sc, "sc"), (K_ARR, p.alen, "alen")):
                    if col is None and np.any(base == k):
                        raise bad(f"path {name!r} lacks its {what} column")
                if p.sc is not None and (p.sc.min() < -1 or p.sc.max() >= len(strs)
                                         or np.any((base == K_STR) & (p.sc < 0))):
                    raise bad(f"path {name!r} has string codes out of range")
                if p.alen is not None and np.any((base == K_ARR) & (p.alen < 0)):
                    raise bad(f"path {name!r} has negative array lengths")
            p.strs = strs
            p._sidx = None
            p.check_aligned()
            self._paths[name] = p
            total += m
        for name in self._paths:
            parent_name = name.rpartition(".")[0]
            if parent_name and parent_name not in self._paths:
                raise bad(f"path {name!r} has no parent path")
            if any(not c or c[0] == "$" for c in name.split(".")):
                raise bad(f"bad path name {name!r}")
        self._rebuild_tree()
        self._n_entries = total
        self._entries_baseline = total
        return self


def _validate(v: Any) -> None:
    """Check that a (nested) value is JSON; raises InvalidMetadataError."""
    c = json_class(v)
    if c == ARR:
        for e in v:
            _validate(e)
    elif c == OBJ:
        for k, e in v.items():
            if not isinstance(k, str):
                raise InvalidMetadataError(f"metadata keys must be strings, got {type(k).__name__} {k!r}")
            _validate(e)


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------

# the value kinds of each JSON class (filters.NULL ... OBJ), for $type
_CLASS_KINDS = {NULL: (K_NULL,), BOOL: (K_FALSE, K_TRUE), NUM: (K_NUM,), STR: (K_STR,), ARR: (K_ARR,),
                OBJ: (K_OBJ,)}

_NP_CMP = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}


class _Evaluator:
    """Evaluates one compiled tree over an index to a row mask of length n."""

    __slots__ = ("idx", "n", "live")

    def __init__(self, idx: MetadataIndex, n: int) -> None:
        self.idx = idx
        self.n = n
        live = idx._live
        if n <= len(live):
            self.live = live[:n]
        else:
            self.live = np.zeros(n, bool)
            self.live[: idx._n] = live[: idx._n]

    def zeros(self) -> np.ndarray:
        return np.zeros(self.n, bool)

    # -- filter nodes ---------------------------------------------------------
    def node(self, nd: Any) -> np.ndarray:
        if isinstance(nd, Field):
            return self.cond(self.idx._paths.get(nd.name), nd, nd.cond)
        if isinstance(nd, And):
            m = self.node(nd.children[0])
            for c in nd.children[1:]:
                if not m.any():
                    break
                m &= self.node(c)
            return m
        if isinstance(nd, (Or, Nor)):
            m = self.node(nd.children[0])
            for c in nd.children[1:]:
                m |= self.node(c)
            if isinstance(nd, Nor):
                return self.live & ~m
            return m
        if isinstance(nd, Not):
            return self.live & ~self.node(nd.child)
        if isinstance(nd, MatchAll):
            return self.live.copy()
        raise TypeError(f"unknown filter node {nd!r}")  # pragma: no cover

    # -- field conditions -------------------------------------------------------
    def rows(self, p: _Path | None, entry_mask: np.ndarray | None) -> np.ndarray:
        """Row mask of the live entries selected by ``entry_mask``."""
        out = self.zeros()
        if p is None or entry_mask is None:
            return out
        valid = self.idx._valid(p)
        if valid is not None:
            entry_mask = entry_mask & valid
        if p.aligned:
            out[: p.n] = entry_mask
        else:
            out[p.row[: p.n].compress(entry_mask)] = True
        return out

    def exists(self, p: _Path | None) -> np.ndarray:
        if p is None:
            return self.zeros()
        return self.rows(p, p.kind[: p.n] < ELEM)

    def cond(self, p: _Path | None, fld: Field, c: Any) -> np.ndarray:
        if isinstance(c, Eq):
            return self.eq(p, fld, c.value, _ALL, c)
        if isinstance(c, Cmp):
            return self.rows(p, self.cmp_entries(p, c.op, c.value))
        if isinstance(c, CondNot):
            return self.live & ~self.cond(p, fld, c.cond)
        if isinstance(c, CondAnd):
            m = self.cond(p, fld, c.conds[0])
            for sub in c.conds[1:]:
                m &= self.cond(p, fld, sub)
            return m
        if isinstance(c, In):
            return self.in_(p, fld, c)
        if isinstance(c, Exists):
            ex = self.exists(p)
            return ex if c.flag else self.live & ~ex
        if isinstance(c, Contains):
            return self.contains(p, fld, c)
        if isinstance(c, IContains):
            return self.icontains(p, c.value)
        if isinstance(c, Type):
            if p is None or p.n == 0:
                return self.zeros()
            lut = np.zeros(16, bool)
            for cls in c.classes:
                lut[list(_CLASS_KINDS[cls])] = True
            return self.rows(p, lut[p.kind[: p.n]])  # value entries only: element kinds stay False
        if isinstance(c, Size):
            if p is None or p.alen is None:
                return self.zeros()
            return self.rows(p, (p.kind[: p.n] == K_ARR) & (p.alen[: p.n] == c.n))
        raise TypeError(f"unknown condition {c!r}")  # pragma: no cover

    def scalar_eq_entries(self, p: _Path | None, v: Any, which: int) -> np.ndarray | None:
        """Entries equal to a scalar v (None if there can be none)."""
        if p is None or p.n == 0:
            return None
        kind = p.kind[: p.n]
        c = json_class(v)
        if c == NUM:
            if p.num is None:
                return None
            m = p.num[: p.n] == to_float(v)
        elif c == STR:
            code = p.lookup(v)
            if code is None or p.sc is None:
                return None
            m = p.sc[: p.n] == code
        else:
            k = K_NULL if c == NULL else (K_TRUE if v else K_FALSE)
            if which == _ALL:
                return (kind == k) | (kind == k + ELEM)
            return kind == (k if which == _VALUE else k + ELEM)
        if which == _VALUE:
            m &= kind < ELEM
        elif which == _ELEMS:
            m &= kind >= ELEM
        return m

    def eq(self, p: _Path | None, fld: Field, v: Any, which: int, cond: Any) -> np.ndarray:
        c = json_class(v)
        if c in (ARR, OBJ):
            return self.compound(p, fld, v, which, cond)
        m = self.rows(p, self.scalar_eq_entries(p, v, which))
        if c == NULL and which == _ALL:
            m |= self.live & ~self.exists(p)  # null equality matches a missing field
        return m

    def in_(self, p: _Path | None, fld: Field, c: In) -> np.ndarray:
        nums: list[float] = []
        codes: list[int] = []
        kinds: list[int] = []
        compound: list[Any] = []
        null = False
        for v in c.values:
            jc = json_class(v)
            if jc == NUM:
                nums.append(to_float(v))
            elif jc == STR:
                code = p.lookup(v) if p is not None else None
                if code is not None:
                    codes.append(code)
            elif jc == BOOL:
                kinds += [K_TRUE, K_TRUE + ELEM] if v else [K_FALSE, K_FALSE + ELEM]
            elif jc == NULL:
                null = True
                kinds += [K_NULL, K_NULL + ELEM]
            else:
                compound.append(v)
        out = self.zeros()
        if p is not None and p.n:
            em = np.zeros(p.n, bool)
            if nums and p.num is not None:
                col = p.num[: p.n]
                if len(nums) <= 4:
                    for x in nums:
                        em |= col == x
                else:
                    em |= np.isin(col, np.array(nums))
            if codes and p.sc is not None:
                lut = np.zeros(len(p.strs) + 1, bool)  # last slot: code -1
                lut[codes] = True
                em |= lut[p.sc[: p.n]]
            if kinds:
                klut = np.zeros(16, bool)
                klut[kinds] = True
                em |= klut[p.kind[: p.n]]
            out = self.rows(p, em)
        for v in compound:
            out |= self.compound(p, fld, v, _ALL, Eq(v))
        if null:
            out |= self.live & ~self.exists(p)
        return out

    def cmp_entries(self, p: _Path | None, op: str, v: Any) -> np.ndarray | None:
        if p is None or p.n == 0:
            return None
        fn = _NP_CMP[op]
        if isinstance(v, str):
            if p.sc is None:
                return None
            code_ok = np.append(fn(p.str_array(), v).astype(bool), False)  # index -1 -> False
            return code_ok[p.sc[: p.n]]
        if p.num is None:
            return None
        return fn(p.num[: p.n], to_float(v))

    def contains(self, p: _Path | None, fld: Field, c: Contains) -> np.ndarray:
        v = c.value
        jc = json_class(v)
        if jc in (ARR, OBJ):
            return self.compound(p, fld, v, _ELEMS, c)
        em = self.scalar_eq_entries(p, v, _ELEMS)
        if jc == STR and p is not None and p.sc is not None and p.n:
            # substring test once per distinct string, not per row
            code_ok = np.fromiter((v in s for s in p.strs), bool, len(p.strs))
            code_ok = np.append(code_ok, False)
            sub = (p.kind[: p.n] == K_STR) & code_ok[p.sc[: p.n]]
            em = sub if em is None else (em | sub)
        return self.rows(p, em)

    def icontains(self, p: _Path | None, v: str) -> np.ndarray:
        """String values (not array elements) containing v, ignoring case."""
        if p is None or p.sc is None or not p.n:
            return self.zeros()
        low = v.lower()
        code_ok = np.append(np.fromiter((low in s.lower() for s in p.strs), bool, len(p.strs)), False)
        return self.rows(p, (p.kind[: p.n] == K_STR) & code_ok[p.sc[: p.n]])

    # -- fallback: equality with an array or object value ----------------------
    def compound(self, p: _Path | None, fld: Field, v: Any, which: int, cond: Any) -> np.ndarray:
        """Rows where the field (``which`` = _ALL: the value or an element;
        _ELEMS: an element) deep-equals the array/object ``v``.  Candidates are
        narrowed with the columns, then checked in Python with ``cond.test``."""
        out = self.zeros()
        if p is None or p.n == 0:
            return out
        kind = p.kind[: p.n]
        is_arr = json_class(v) == ARR
        if is_arr and p.alen is None:
            return out  # the path never held an array
        k = K_ARR if is_arr else K_OBJ
        cand = self.zeros()
        if which == _ALL:
            em = kind == k
            if is_arr:
                em &= p.alen[: p.n] == len(v)  # type: ignore[index]
            whole = self.rows(p, em)
            if is_arr:
                first = next((x for x in v if json_class(x) not in (ARR, OBJ)), MISSING)
                if first is not MISSING:  # the array must contain its first scalar
                    whole &= self.rows(p, self.scalar_eq_entries(p, first, _ELEMS))
            else:
                for key, x in v.items():
                    if not key or key[0] == "$" or "." in key:
                        continue  # not indexed
                    child = self.idx._paths.get(f"{p.name}.{key}")
                    if json_class(x) in (ARR, OBJ):
                        whole &= self.rows(child, None if child is None else child.kind[: child.n] == (
                            (K_ARR if json_class(x) == ARR else K_OBJ)))
                    else:
                        whole &= self.rows(child, self.scalar_eq_entries(child, x, _VALUE))
                    if not whole.any():
                        break
            cand |= whole
        em = kind == k + ELEM
        if is_arr:
            em &= p.alen[: p.n] == len(v)  # type: ignore[index]
        cand |= self.rows(p, em)
        idx = self.idx
        path = fld.path
        for r in np.flatnonzero(cand).tolist():
            if cond.test(resolve_path(idx._doc(r), path)):
                out[r] = True
        return out
