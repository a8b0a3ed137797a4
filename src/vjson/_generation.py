"""One generation of a database's rows and the indexes over them.

Rows are numbered from 0 within a generation; ``compact()`` renumbers them by
building the next generation beside this one and swapping a single reference.
A reader takes the current generation once and uses only it, so a compaction
can never hand it row numbers from one generation and files from another.
Within a generation the writer appends rows and swaps in new *views*
(immutable bitsets of the visible rows): a reader that took a view sees
every write that published before it and nothing of any later one.
"""

from __future__ import annotations

import bisect
import logging
import threading
import weakref
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from vjson import _core
from vjson._core import UNDECODED
from vjson.errors import CorruptionError
from vjson.filters import CompiledFilter, compile_filter
from vjson.metadata_index import MetadataIndex
from vjson.results import Record
from vjson._segments import CheckpointRows
from vjson.storage import VectorFile

if TYPE_CHECKING:
    from vjson.text_index import TextIndex

log = logging.getLogger("vjson")

CRC_BLOCK = 4096  # rows per vector checksum kept in the snapshot


class View:
    """What readers see: the visible rows (a packed bitset with its count) out of `rows`. Immutable."""

    __slots__ = ("visible", "rows")

    def __init__(self, visible: _core.Bitset, rows: int) -> None:
        self.visible = visible
        self.rows = rows

    @property
    def count(self) -> int:
        return self.visible.count

    def mask(self) -> np.ndarray:
        """Bool mask over rows [0, rows)."""
        return self.visible.to_mask(self.rows)


def _set_bits(bits: np.ndarray, rows: np.ndarray) -> None:
    np.bitwise_or.at(bits, rows >> 3, np.left_shift(1, rows & 7).astype(np.uint8))


def attach_vectors(graph: _core.HNSWIndex, vectors: VectorFile) -> None:
    """Let a graph with external vectors read row i of the vector file as node i,
    now and after every growth of the file (which moves its mapping)."""
    if graph.external_vectors:
        vectors.on_remap = graph.attach_vectors
        if vectors.capacity_rows() > 0:
            graph.attach_vectors(vectors.view(vectors.capacity_rows()))
        if graph.quantization is not None:  # codes in RAM; the float32 rows only read to rescore
            graph.rescore_from_file(vectors.fileno())


def link_rows(graph: _core.HNSWIndex, vectors: VectorFile, rows: np.ndarray,
              matrix: np.ndarray | None = None) -> None:
    """Add rows already written to the vector file (`matrix`, if at hand) to the graph."""
    if graph.external_vectors:
        graph.add_stored(rows)
    else:  # a database from before format 2: the graph keeps its own copy
        graph.add(matrix if matrix is not None else vectors.view(int(rows[-1]) + 1)[rows], rows)


def update_metadata(index: MetadataIndex, row_ids: list, row_meta: Any, ids: dict[str, int],
                    touched: set[int]) -> None:
    """Bring the filter index up to date for rows the replayed log changed."""
    rows = sorted(touched)
    gone = [r for r in rows if ids.get(row_ids[r]) != r and r < index.n_rows]
    live = [r for r in rows if ids.get(row_ids[r]) == r]
    if gone:
        index.remove_many(gone)
    if live:
        index.set_many(live, [row_meta[r] for r in live])


def _clear_bits(bits: np.ndarray, rows: np.ndarray) -> None:
    np.bitwise_and.at(bits, rows >> 3, ~np.left_shift(1, rows & 7).astype(np.uint8))


class Generation:
    """Rows [0, n) of one generation: vectors, graph, per-row fields, id map, filter and text indexes.

    The writer (holding the database's write lock) appends and publishes;
    readers only read. ``row_ids[row]`` keeps the id of retired rows too, so a
    reader holding an older view can still name them.
    """

    def __init__(self, number: int, vectors: VectorFile, graph: _core.HNSWIndex, metric: str,
                 row_ids: Any, row_meta: Any, row_text: Any, ids: Any,
                 metadata: MetadataIndex | Callable[[], MetadataIndex],
                 text: TextIndex | None, vector_crcs: list[int], live_bits: np.ndarray | None = None,
                 crc_rows: int = 0, checkpoint: CheckpointRows | None = None) -> None:
        """`row_ids` is a list or IdRows, `row_meta`/`row_text` lists or
        JsonRows, and `ids` a dict, an IdMap or None (with `live_bits` the
        packed live rows): a clean open then defers the id map to first use,
        which a search never needs. `metadata` is the filter index or what
        loads it on first use. `vector_crcs` are the checkpoint's block
        checksums, over its first `crc_rows` rows; `checkpoint` what its row
        data files hold (None: nothing yet, the next checkpoint writes all)."""
        self.number = number
        self.vectors = vectors
        self.graph = graph
        self.similarity = metric != "l2"
        self.row_ids = row_ids
        self._lazy_lock = threading.Lock()
        self._row_meta = row_meta
        self._row_text = row_text
        self._ids = ids
        self._metadata = metadata  # or its loader, until first use (under _filter_lock)
        self.checkpoint = checkpoint if checkpoint is not None else CheckpointRows()
        attach_vectors(graph, vectors)
        # What closes with this generation; the graph first, as it maps the vectors.
        self._resources: list[Any] = [graph, vectors, text]
        self.vector_crcs = vector_crcs
        self._crc_rows = crc_rows
        self._filter_lock = threading.Lock()  # the filter index is not thread-safe
        self._metadata_version = 0  # bumped by every change of the filter index (keys the allowed cache)
        self._allowed_cache: dict[Any, tuple[View, int, _core.Bitset]] = {}
        self.view = self._full_view(live_bits)
        # Closed when the last reader lets go of a retired generation.
        self._finalizer = weakref.finalize(self, _close_quietly, self._resources)

    @property
    def text(self) -> TextIndex | None:
        """The full-text index of this generation's rows (None in a reader that could not open it)."""
        return self._resources[2]  # type: ignore[no-any-return]

    @text.setter
    def text(self, value: TextIndex | None) -> None:
        self._resources[2] = value

    def link(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        """Add rows (already written to the vector file as `vectors`) to the graph."""
        link_rows(self.graph, self.vectors, rows, vectors)

    # ------------------------------------------------------------------ lazily built state

    @property
    def ids(self) -> dict[str, int]:
        """id -> row of every live record."""
        ids = self._ids
        if ids is None:
            with self._lazy_lock:
                if self._ids is None:
                    live = self.view.mask()
                    self._ids = {rid: row for row, rid in enumerate(self.row_ids)  # type: ignore[misc]
                                 if live[row]}
                ids = self._ids
        return ids  # type: ignore[return-value]

    @property
    def row_meta(self) -> Any:
        """Per-row metadata (a list, or JsonRows decoding rows of a checkpoint on demand)."""
        return self._row_meta

    @property
    def row_text(self) -> Any:
        return self._row_text

    # ------------------------------------------------------------------ views

    def _full_view(self, live_bits: np.ndarray | None = None) -> View:
        n = len(self.row_ids)
        bits = np.zeros((n + 7) // 8 + 1, dtype=np.uint8)
        if live_bits is not None:
            if len(live_bits) > len(bits) or (len(live_bits) * 8 > n and np.unpackbits(
                    live_bits, bitorder="little")[n:].any()):
                raise CorruptionError(f"snapshot of generation {self.number}: live rows past the end")
            bits[:len(live_bits)] = live_bits
            return View(_core.Bitset(bits), n)
        rows = np.fromiter(self.ids.values(), dtype=np.int64, count=len(self.ids))
        if len(rows):
            _set_bits(bits, rows)
        return View(_core.Bitset(bits, len(rows)), n)

    def publish(self, born: np.ndarray, dead: Sequence[int]) -> None:
        """Make `born` rows visible and `dead` rows invisible, in one step for readers."""
        old = self.view
        n = len(self.row_ids)
        bits = np.zeros(max((n + 7) // 8 + 1, len(old.visible.array)), dtype=np.uint8)
        bits[:len(old.visible.array)] = old.visible.array
        if len(born):
            _set_bits(bits, born)
        if len(dead):
            _clear_bits(bits, np.asarray(dead, dtype=np.int64))
        self.view = View(_core.Bitset(bits, len(self.ids)), n)

    # ------------------------------------------------------------------ writer side

    def append_rows(self, ids: list[str], metas: list | None, texts: list | None) -> tuple[np.ndarray, list[int]]:
        """Give ids new rows; returns the rows and the rows they retire."""
        live = self.ids  # built before the rows grow: a lazy build reads the view's rows
        row0, n = len(self.row_ids), len(ids)
        self.row_ids.extend(ids)
        self.row_meta.extend(metas if metas is not None else [None] * n)
        self.row_text.extend(texts if texts is not None else [None] * n)
        dead = []
        for i, rid in enumerate(ids):
            old = live.get(rid)
            if old is not None:
                dead.append(old)
            live[rid] = row0 + i
        return np.arange(row0, row0 + n, dtype=np.int64), dead

    def _filters(self) -> MetadataIndex:
        """The filter index, loaded on first use (the caller holds _filter_lock)."""
        index = self._metadata
        if not isinstance(index, MetadataIndex):
            index = self._metadata = index()
        return index

    def index_metadata(self, rows: Sequence[int] | np.ndarray, metas: Sequence[dict | None]) -> None:
        """Set rows' metadata in the filter index (writer side)."""
        with self._filter_lock:
            self._filters().set_many(rows, metas)
            self._metadata_version += 1
        self.checkpoint.changed(rows)

    def unindex_metadata(self, rows: Sequence[int]) -> None:
        """Drop retired rows from the filter index (writer side)."""
        if not len(rows):
            return
        with self._filter_lock:
            self._filters().remove_many(rows)
            self._metadata_version += 1
        self.checkpoint.changed(rows, metadata=False)

    def follow_metadata(self, touched: set[int]) -> None:
        """A read-only follower applied log records: re-index the rows they changed."""
        with self._filter_lock:
            update_metadata(self._filters(), self.row_ids, self.row_meta, self.ids, touched)
            self._metadata_version += 1

    def dump_filters(self, fileobj: Any) -> None:
        """Write the filter index (its checkpoint file's contents) to `fileobj`."""
        with self._filter_lock:
            self._filters().dump(fileobj)

    def filter_index_live(self) -> int:
        """How many records the filter index holds (for verify())."""
        with self._filter_lock:
            return int(self._filters().n_live)

    def visible_rows(self) -> np.ndarray:
        """The rows of the current view, ascending (what live_rows() gives, without the id map)."""
        return np.flatnonzero(self.view.mask())

    def live_rows(self) -> np.ndarray:
        rows = np.fromiter(self.ids.values(), dtype=np.int64, count=len(self.ids))
        rows.sort()
        return rows

    def checksum_vectors(self, rows: int) -> list[int]:
        """crc32 per CRC_BLOCK rows of vectors [0, rows) (the last block partial), for
        the snapshot; blocks that were already full when last summed are reused."""
        keep = min(len(self.vector_crcs), min(self._crc_rows, rows) // CRC_BLOCK)
        crcs = list(self.vector_crcs[:keep])
        view = self.vectors.view(rows)
        for start in range(keep * CRC_BLOCK, rows, CRC_BLOCK):
            crcs.append(zlib.crc32(view[start:start + CRC_BLOCK].data))
        self.vector_crcs, self._crc_rows = crcs, rows
        return crcs

    # ------------------------------------------------------------------ reader side

    def filter_mask(self, flt: dict | CompiledFilter, view: View) -> np.ndarray:
        """Bool mask over rows [0, view.rows) of records visible in `view` matching `flt`."""
        return self.allowed(flt, view).to_mask(view.rows)

    def allowed(self, flt: dict | CompiledFilter | None, view: View) -> _core.Bitset:
        """The rows a search may return: the view's, narrowed by the filter.

        Remembered per (filter, view, metadata version), so repeated searches
        with one filter evaluate it once until something is written.
        """
        if flt is None:
            return view.visible
        key = _filter_key(flt)
        hit = self._allowed_cache.get(key) if key is not None else None
        if hit is not None and hit[0] is view and hit[1] == self._metadata_version:
            return hit[2]
        compiled = flt if isinstance(flt, CompiledFilter) else compile_filter(flt)
        with self._filter_lock:
            version = self._metadata_version
            mask = self._filters().evaluate(compiled, view.rows)
        packed = np.packbits(mask[:view.rows], bitorder="little")
        visible = view.visible.array
        np.bitwise_and(packed, visible[:len(packed)], out=packed)
        allowed = _core.Bitset(packed)
        if key is not None:
            if len(self._allowed_cache) >= 32:
                self._allowed_cache.clear()
            self._allowed_cache[key] = (view, version, allowed)
        return allowed

    def records(self, rows: list[int], include: tuple[str, ...]) -> list[Record]:
        vectors = self.vectors.read(rows) if "vector" in include and rows else None
        return [Record(self.row_ids[r], vectors[i] if vectors is not None else None,  # type: ignore[arg-type]
                       self.row_meta[r] if "metadata" in include else None,
                       self.row_text[r] if "text" in include else None) for i, r in enumerate(rows)]

    def fill(self, results: list, rows: list[int], include: tuple[str, ...]) -> None:
        """Attach the included fields to results for rows."""
        if "metadata" in include:
            for res, r in zip(results, rows):
                res.metadata = self.row_meta[r]
        if "text" in include:
            for res, r in zip(results, rows):
                res.text = self.row_text[r]
        if "vector" in include and rows:
            for res, vec in zip(results, self.vectors.read(rows)):
                res.vector = vec

    def close(self) -> None:
        self._finalizer()


class JsonRows:
    """Per-row JSON values of a checkpoint, decoded one row at a time on first
    read, followed by rows appended since (plain objects).

    The checkpoint's rows come in parts (a format 3 snapshot has one, a
    format 4 checkpoint one per segment): ``(row0, blob, offsets)``, row r of
    a part being ``blob[offsets[r - row0]:offsets[r - row0 + 1]]`` (offsets
    None: every row of the part is null). Opening a database of a million
    records thus parses no metadata or text; a search decodes only the rows
    it returns.
    """

    __slots__ = ("_parts", "_starts", "values")

    def __init__(self, parts: list[tuple[int, Any, np.ndarray | None]], rows: int) -> None:
        self._parts = parts
        self._starts = [p[0] for p in parts]
        # One slot per row: the value, or UNDECODED until first read. The search
        # hot path (vjson._core) reads this list directly.
        self.values: list[Any] = [UNDECODED] * rows
        for i, (row0, _, offs) in enumerate(parts):
            if offs is None:  # a part of nulls
                end = parts[i + 1][0] if i + 1 < len(parts) else rows
                self.values[row0:end] = [None] * (end - row0)

    @staticmethod
    def encode(values: Any, live: list[bool]) -> tuple[bytes, bytes]:
        """(blob, offsets) of the live rows' values (null elsewhere), as one part.

        Offsets are little-endian uint32 (uint64 past 4 GiB of JSON), one per
        row plus one; a column of nothing but nulls is stored as two empty
        strings. Rows never decoded are copied as they were.
        """
        from vjson._segments import pack_rows

        return pack_rows([raw_json(values, r) if keep else b"null" for r, keep in enumerate(live)])

    @classmethod
    def decode(cls, blob: bytes, offsets: bytes, rows: int, what: str) -> JsonRows:
        """The rows of a format 3 snapshot (one part)."""
        if not blob and not offsets:
            return cls([(0, b"", None)], rows)
        width = len(offsets) // (rows + 1)
        if width not in (4, 8) or len(offsets) != width * (rows + 1):
            raise CorruptionError(f"{what}: row offsets do not match the data")
        offs = np.frombuffer(offsets, dtype=f"<u{width}")
        if offs[0] != 0 or int(offs[-1]) != len(blob) or (np.diff(offs.astype(np.int64)) < 0).any():
            raise CorruptionError(f"{what}: row offsets do not match the data")
        return cls([(0, blob, offs)], rows)

    def __len__(self) -> int:
        return len(self.values)

    def _raw(self, row: int) -> Any:
        row0, blob, offs = self._parts[bisect.bisect_right(self._starts, row) - 1]
        assert offs is not None
        a, b = int(offs[row - row0]), int(offs[row - row0 + 1])
        if not a <= b <= len(blob):
            raise CorruptionError(f"damaged row offsets at row {row}")
        return blob[a:b]

    def __getitem__(self, row: int) -> Any:
        value = self.values[row]
        if value is UNDECODED:
            try:
                value = orjson.loads(self._raw(row))
            except orjson.JSONDecodeError:
                raise CorruptionError(f"checkpoint row {row}: its stored JSON is damaged") from None
            self.values[row] = value
        return value

    def raw(self, row: int) -> bytes:
        """Row's JSON bytes: copied as stored while never decoded."""
        value = self.values[row]
        return bytes(self._raw(row)) if value is UNDECODED else orjson.dumps(value)

    def __setitem__(self, row: int, value: Any) -> None:
        self.values[row] = value

    def extend(self, values: Any) -> None:
        self.values.extend(values)

    def __iter__(self) -> Any:
        return (self[r] for r in range(len(self)))


def raw_json(rows: Any, row: int) -> bytes:
    """Row's value as JSON bytes, from a JsonRows or a plain list."""
    return rows.raw(row) if isinstance(rows, JsonRows) else orjson.dumps(rows[row])


def _filter_key(flt: Any) -> Any:
    """A hashable identity for a filter, or None when it has none (it is then not cached)."""
    if isinstance(flt, CompiledFilter):
        return None
    try:
        return orjson.dumps(flt, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None


def _close_quietly(resources: list[Any]) -> None:
    for resource in resources:
        if resource is None:
            continue
        try:
            resource.close()
        except Exception:  # noqa: BLE001 - closing must release the rest
            log.debug("closing %r failed", resource, exc_info=True)
