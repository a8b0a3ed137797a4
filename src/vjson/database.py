"""The database: a folder of records (id, vector, metadata, text) with vector,
filtered, full-text and hybrid search.

On disk (see README, "On-disk format"):

- ``MANIFEST.json``: settings and which files are current, replaced atomically.
  It changes only at checkpoints and compaction: it is the commit point for those.
- ``vectors-G.f32``: every row's float32 vector, appended, memory-mapped.
- ``log-C.vjl``: CRC-framed records of every write since checkpoint C. A write
  call appends one frame: it is the commit point of that call, so a batch is
  all-or-nothing after a crash.
- ``snapshot-C.vjs`` and ``graph-C.vjx``: the records and the HNSW graph as of
  checkpoint C; opening maps the graph and replays only the log after it.
- ``text/``: the tantivy index, kept in step with the log (it records the last
  log sequence number it holds and catches up on open).
- ``LOCK``: the writer's advisory lock.

Rows are append-only: an upsert writes a new row and retires the old one, so a
crash can never leave a half-overwritten record. Graph labels are rows. Retired
rows stay in the graph (searches route through them but never return them:
they are absent from the view) until ``compact()`` drops them.

Readers never wait for writers: a write builds its rows off to the side and then
publishes a new *view* (a bitset of the visible rows) by swapping one reference.
A search uses the view it started with, so it never sees part of a batch.
"""

from __future__ import annotations

import builtins
import io
import logging
import os
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from vjson import _core
from vjson.errors import (
    CorruptionError,
    DatabaseClosedError,
    FormatVersionError,
    InvalidInputError,
    NotADatabaseError,
    ReadOnlyError,
    RecordNotFoundError,
    VJsonError,
)
from vjson.filters import CompiledFilter, compile_filter
from vjson.metadata_index import MetadataIndex
from vjson.results import HybridResult, Record, SearchResult
from vjson.storage import (
    FileLock,
    RecordLog,
    VectorFile,
    atomic_write,
    read_blob,
    write_blob,
)
from vjson.validation import (
    check_id,
    check_ids,
    check_ids_for_lookup,
    check_k,
    check_metadata,
    check_optional_list,
    check_text,
    check_vector,
    check_vectors,
)

log = logging.getLogger("vjson")
builtins_open = builtins.open  # this module defines open()

FORMAT_VERSION = 1
CRC_BLOCK = 4096  # rows per vector checksum kept in the snapshot
MANIFEST = "MANIFEST.json"
METRICS = ("cosine", "l2", "ip")
DURABILITY = ("sync", "flush")
INCLUDE_ALL = ("metadata", "text", "vector")
_DEFAULT_INCLUDE = ("metadata", "text")


class View(NamedTuple):
    """What readers see: the visible rows (a packed bitset with its count) out of `rows`."""

    visible: _core.Bitset
    rows: int

    @property
    def bits(self) -> np.ndarray:
        return self.visible.array

    @property
    def count(self) -> int:
        return self.visible.count


def _set_bits(bits: np.ndarray, rows: np.ndarray) -> None:
    np.bitwise_or.at(bits, rows >> 3, np.left_shift(1, rows & 7).astype(np.uint8))


def _clear_bits(bits: np.ndarray, rows: np.ndarray) -> None:
    np.bitwise_and.at(bits, rows >> 3, ~np.left_shift(1, rows & 7).astype(np.uint8))


class VectorDB:
    """An embedded vector database in a folder.

    ``VectorDB(path, dimension=None, metric="cosine", M=16, ef_construction=200,
    max_elements=None, read_only=False, durability="sync", ef_search=64,
    tokenizer="en_stem")`` creates the folder (``dimension`` required) or opens
    an existing database, whose stored settings then win; a conflicting
    ``dimension`` or ``metric`` raises :class:`InvalidInputError`.

    Durability: with ``"sync"`` (default) every write call that returns has
    been fsynced: it survives a killed process and a power loss. With
    ``"flush"`` writes reach the operating system but are not fsynced: they
    survive the process being killed, but a power loss or OS crash may lose the
    last writes (never corrupting what was synced before).

    Errors: unknown ids raise :class:`RecordNotFoundError` everywhere (get,
    update, delete), and a failing call changes nothing. One process may write
    a database at a time (:class:`DatabaseLockedError` for a second);
    ``read_only=True`` opens alongside a writer and sees what was committed
    when it opened (call :meth:`refresh` to catch up).

    Thread-safe: searches run in parallel with each other and with writes;
    writes are serialised.
    """

    def __init__(self, path: str | os.PathLike[str], dimension: int | None = None, metric: str = "cosine",
                 M: int = 16, ef_construction: int = 200, max_elements: int | None = None,
                 read_only: bool = False, durability: str = "sync", ef_search: int = 64,
                 tokenizer: str = "en_stem") -> None:
        self._closed = True
        self._lock_file: FileLock | None = None
        self.path = Path(os.fspath(path))
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")
        if durability not in DURABILITY:
            raise InvalidInputError(f"durability must be one of {DURABILITY}, got {durability!r}")
        if dimension is not None and (isinstance(dimension, bool) or not isinstance(dimension, int)
                                      or not 1 <= dimension <= 65536):
            raise InvalidInputError(f"dimension must be an int in [1, 65536], got {dimension!r}")
        if max_elements is not None and (not isinstance(max_elements, int) or max_elements < 0):
            raise InvalidInputError(f"max_elements must be a non-negative int, got {max_elements!r}")
        check_k(ef_search)
        self.read_only = read_only
        self.durability = durability
        self._durable = durability == "sync"
        self._ef_search = int(ef_search)
        self._write_lock = threading.RLock()
        self._filter_lock = threading.Lock()

        if self.path.exists() and not self.path.is_dir():
            raise NotADatabaseError(f"{self.path} is a file, not a vjson database folder")
        manifest_path = self.path / MANIFEST
        if read_only:
            if not manifest_path.exists():
                raise NotADatabaseError(f"{self.path} does not hold a vjson database")
        else:
            if not manifest_path.exists() and self.path.exists() and any(
                    p.name != "LOCK" for p in self.path.iterdir()):
                raise NotADatabaseError(f"{self.path} is a folder without a vjson manifest: not a database")
            if not manifest_path.exists() and dimension is None:
                raise InvalidInputError(f"{self.path} holds no database yet: creating one needs a dimension")
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_file = FileLock(self.path / "LOCK", exclusive=True)
            try:
                if not manifest_path.exists():
                    self._create(dimension, metric, M, ef_construction, tokenizer)
            except BaseException:
                self._release_files()
                raise
        try:
            self._open(dimension, metric, max_elements)
        except BaseException:
            self._release_files()
            raise
        self._closed = False

    # ------------------------------------------------------------------ opening

    def _create(self, dimension: int, metric: str, M: int, ef_construction: int, tokenizer: str) -> None:
        _core.HNSWIndex(dimension, metric, M, ef_construction, capacity=0)  # validates
        from vjson.text_index import TOKENIZERS

        if tokenizer not in TOKENIZERS:
            raise InvalidInputError(f"tokenizer must be one of {sorted(TOKENIZERS)}, got {tokenizer!r}")
        manifest = {
            "format": FORMAT_VERSION, "dimension": dimension, "metric": metric, "M": M,
            "ef_construction": ef_construction, "tokenizer": tokenizer,
            "checkpoint": 0, "vectors": "vectors-0.f32", "log": "log-0.vjl",
            "snapshot": None, "graph": None, "rows": 0, "seq": 0,
        }
        (self.path / "vectors-0.f32").touch()
        (self.path / "log-0.vjl").touch()
        # the manifest last: until it exists the folder is not a database
        atomic_write(self.path / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))

    def _read_manifest(self) -> dict:
        path = self.path / MANIFEST
        try:
            manifest = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise CorruptionError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(manifest, dict) or "format" not in manifest:
            raise CorruptionError(f"{path}: not a vjson manifest")
        if manifest["format"] > FORMAT_VERSION:
            raise FormatVersionError(f"{path}: written by a newer vjson (format {manifest['format']}, "
                                     f"this version reads up to {FORMAT_VERSION})")
        return manifest

    def _open(self, dimension: int | None, metric: str, max_elements: int | None) -> None:
        m = self._read_manifest()
        if dimension is not None and dimension != m["dimension"]:
            raise InvalidInputError(f"{self.path} stores dimension {m['dimension']}, not {dimension}")
        explicit_metric = metric != "cosine"
        if explicit_metric and metric != m["metric"]:
            raise InvalidInputError(f"{self.path} stores metric {m['metric']!r}, not {metric!r}")
        self._manifest = m
        self.dimension: int = m["dimension"]
        self.metric: str = m["metric"]
        self._vectors = VectorFile(self.path / m["vectors"], self.dimension, self._durable, self.read_only)
        self._log = RecordLog(self.path / m["log"], self._durable, self.read_only)
        self._seq: int = m["seq"]
        self._row_ids: list[str | None] = []
        self._row_meta: list[dict | None] = []
        self._row_text: list[str | None] = []
        self._ids: dict[str, int] = {}
        self._vector_crcs: list[int] = []  # crc32 per CRC_BLOCK rows, as of the checkpoint
        self._load_snapshot(m)
        self._graph = self._load_graph(m, max_elements)
        self._metadata = MetadataIndex()
        touched: set[int] = set()
        replayed = self._replay(m, touched)
        self._load_metadata_index(m, touched)
        self._text = None
        self._open_text()
        self._publish_all()
        self._dirty = replayed > 0
        if not self.read_only:
            self._remove_stray_files(m)

    def _load_snapshot(self, m: dict) -> None:
        if m["snapshot"] is None:
            return
        snap = orjson.loads(read_blob(self.path / m["snapshot"]))
        ids, meta, text = snap["ids"], snap["meta"], snap["text"]
        if not len(ids) == len(meta) == len(text) == m["rows"]:
            raise CorruptionError(f"{self.path / m['snapshot']}: row counts disagree with the manifest")
        self._row_ids, self._row_meta, self._row_text = ids, meta, text
        self._ids = {rid: row for row, rid in enumerate(ids) if rid is not None}
        self._vector_crcs = snap.get("vector_crcs", [])

    def _load_graph(self, m: dict, max_elements: int | None) -> _core.HNSWIndex:
        if m["graph"] is None:
            graph = _core.HNSWIndex(self.dimension, self.metric,
                                    m["M"], m["ef_construction"], capacity=max_elements or 1024,
                                    ef_search=self._ef_search)
        else:
            graph = _core.HNSWIndex.load(self.path / m["graph"], ef_search=self._ef_search)
            if len(graph) != m["rows"]:
                raise CorruptionError(f"{self.path / m['graph']}: holds {len(graph)} vectors, "
                                      f"the manifest says {m['rows']} rows")
            if max_elements:
                graph.resize(max_elements)
        return graph

    def _replay(self, m: dict, touched: set[int]) -> int:
        """Apply the log written since the checkpoint; returns how many frames.

        `touched` collects every row whose record changed, for the metadata index.
        """
        added: list[np.ndarray] = []
        dead: list[int] = []
        frames = 0
        for _, payload in self._log.frames():
            try:
                rec = orjson.loads(payload)
                op = rec["op"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise CorruptionError(f"{self._log.path}: unreadable record") from None
            frames += 1
            self._seq = rec["seq"]
            if op == "put":
                rows = self._apply_put_maps(rec["row"], rec["ids"], rec["meta"], rec["text"], dead)
                vectors = self._vectors.view(rows[-1] + 1)[rows[0]:rows[-1] + 1]
                if zlib.crc32(vectors.tobytes()) != rec["crc"]:
                    raise CorruptionError(f"{self._vectors.path}: rows {rows[0]}..{rows[-1]} fail their checksum")
                added.append(rows)
            elif op == "del":
                for rid in rec["ids"]:
                    if rid not in self._ids:
                        raise CorruptionError(f"{self._log.path}: deletes unknown id {rid!r}")
                    dead.append(self._ids.pop(rid))
            elif op == "meta":
                for rid, doc in zip(rec["ids"], rec["meta"]):
                    if rid not in self._ids:
                        raise CorruptionError(f"{self._log.path}: updates unknown id {rid!r}")
                    self._row_meta[self._ids[rid]] = doc
                    touched.add(self._ids[rid])
            else:
                raise CorruptionError(f"{self._log.path}: unknown record type {op!r}")
        touched.update(dead)
        for rows in added:
            touched.update(rows.tolist())
        if added:
            rows = np.concatenate(added)
            self._graph.add(self._vectors.view(int(rows[-1]) + 1)[rows], rows)
        return frames

    def _apply_put_maps(self, row0: int, ids: list[str], metas: list | None, texts: list | None,
                        dead: list[int]) -> np.ndarray:
        """Give ids their new rows in the id maps; retired rows go to `dead`."""
        n = len(ids)
        if row0 != len(self._row_ids):
            raise CorruptionError(f"{self._log.path}: rows out of order (expected {len(self._row_ids)}, got {row0})")
        self._row_ids.extend(ids)
        self._row_meta.extend(metas if metas is not None else [None] * n)
        self._row_text.extend(texts if texts is not None else [None] * n)
        for i, rid in enumerate(ids):
            old = self._ids.get(rid)
            if old is not None:
                dead.append(old)
            self._ids[rid] = row0 + i
        return np.arange(row0, row0 + n, dtype=np.int64)

    def _load_metadata_index(self, m: dict, touched: set[int]) -> None:
        """The checkpoint's filter index plus the rows the log changed, or a full rebuild."""
        name = m.get("filters")
        if name is None:
            self._rebuild_metadata_index()
            return
        with builtins_open(self.path / name, "rb") as f:
            self._metadata = MetadataIndex.load(f)
        if not touched:
            return
        rows = sorted(touched)
        gone = [r for r in rows if self._ids.get(self._row_ids[r]) != r and r < self._metadata.n_rows]
        live = [r for r in rows if self._ids.get(self._row_ids[r]) == r]
        if gone:
            self._metadata.remove_many(gone)
        if live:
            self._metadata.set_many(live, [self._row_meta[r] for r in live])

    def _rebuild_metadata_index(self) -> None:
        rows = np.fromiter(self._ids.values(), dtype=np.int64, count=len(self._ids))
        rows.sort()
        self._metadata.set_many(rows, [self._row_meta[r] for r in rows])

    def _open_text(self) -> None:
        """Open the text index and bring it up to the log; rebuild it when damaged."""
        from vjson.text_index import TextIndex

        folder = self.path / "text"
        tokenizer = self._manifest["tokenizer"]
        if self.read_only:
            try:
                self._text = TextIndex(folder, tokenizer, read_only=True)
            except CorruptionError as exc:
                log.warning("%s: text index unreadable (%s); text search is off for this reader", folder, exc)
            return
        if not (folder / "meta.json").exists() and self._seq > 0:
            log.warning("%s: text index missing; rebuilding it from the stored texts", folder)
            self._rebuild_text()
            return
        try:
            self._text = TextIndex(folder, tokenizer)
            marker = self._text.marker
        except CorruptionError as exc:  # DatabaseLockedError and the like propagate
            log.warning("%s: text index unusable (%s); rebuilding it from the stored texts", folder, exc)
            self._rebuild_text()
            return
        if marker != self._seq:
            self._resync_text()

    def _rebuild_text(self) -> None:
        from vjson.text_index import TextIndex

        if self._text is not None:
            try:
                self._text.close()
            except VJsonError:
                pass
            self._text = None
        rows = [row for row in sorted(self._ids.values()) if self._row_text[row] is not None]
        self._text = TextIndex.recreate(self.path / "text", self._manifest["tokenizer"], rows,
                                        [self._row_text[r] for r in rows], marker=self._seq)

    def _resync_text(self) -> None:
        """Make the text index hold exactly the live texts (idempotent, used after a crash)."""
        assert self._text is not None
        live = [(row, self._row_text[row]) for row in self._ids.values() if self._row_text[row] is not None]
        have = set(self._text.rows().tolist())
        want = {row for row, _ in live}
        stale = sorted(have - want)
        missing = [(row, text) for row, text in live if row not in have]
        if stale:
            self._text.delete(stale)
        if missing:
            self._text.add([r for r, _ in missing], [t for _, t in missing])
        self._text.commit(self._seq)

    def _publish_all(self) -> None:
        n = len(self._row_ids)
        bits = np.zeros((n + 7) // 8 + 1, dtype=np.uint8)
        rows = np.fromiter(self._ids.values(), dtype=np.int64, count=len(self._ids))
        if len(rows):
            _set_bits(bits, rows)
        self._view = View(_core.Bitset(bits, len(rows)), n)

    def _remove_stray_files(self, m: dict) -> None:
        """Files of an interrupted checkpoint or compaction (never referenced by the manifest)."""
        keep = {MANIFEST, "LOCK", "text", m["vectors"], m["log"], m["snapshot"], m["graph"], m.get("filters")}
        for name in os.listdir(self.path):
            if name not in keep and (name.split("-")[0] in ("vectors", "log", "snapshot", "graph", "filters")
                                     or name.startswith(".")):
                try:
                    (self.path / name).unlink()
                except OSError:
                    pass

    # ------------------------------------------------------------------ basics

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"the database at {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"the database at {self.path} is open read-only")

    def __enter__(self) -> VectorDB:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        self._check_open()
        return self._view.count

    def __contains__(self, id: object) -> bool:
        self._check_open()
        return isinstance(id, str) and id in self._ids

    def __iter__(self) -> Iterator[str]:
        self._check_open()
        return iter(list(self._ids))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._view.count} records"
        return f"VectorDB({str(self.path)!r}, dimension={getattr(self, 'dimension', '?')}, metric={getattr(self, 'metric', '?')!r}, {state})"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ef_search(self) -> int:
        """The default beam width of searches (higher: better recall, slower)."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = check_k(value)

    def count(self, filter: dict | None = None) -> int:
        """Live records, in O(1); or how many match `filter`."""
        self._check_open()
        if filter is None:
            return self._view.count
        return int(self._filter_mask(filter, self._view).sum())

    # ------------------------------------------------------------------ writes

    def insert(self, id: str, vector: Any, metadata: dict | None = None, text: str | None = None) -> None:
        """Insert one record; an existing id is replaced (upsert)."""
        check_id(id)
        self.insert_batch([id], check_vector(vector, self._dimension_or_raise())[None], [metadata], [text])

    def _dimension_or_raise(self) -> int:
        self._check_open()
        return self.dimension

    def insert_batch(self, ids: Sequence[str], vectors: Any, metadatas: Sequence[dict | None] | None = None,
                     texts: Sequence[str | None] | None = None) -> None:
        """Insert records atomically: after a crash all of them are there or none.

        `vectors` is a 2-D numpy array or a list of lists. An id that already
        exists is replaced; a repeated id within the batch: the last one wins.
        """
        self._check_writable()
        ids = check_ids(ids)
        matrix = check_vectors(vectors, self.dimension)
        if matrix.shape[0] != len(ids):
            raise InvalidInputError(f"got {len(ids)} ids for {matrix.shape[0]} vectors")
        metas = check_optional_list(metadatas, len(ids), "metadatas")
        if metas is not None:
            metas = [check_metadata(m) for m in metas]
        txts = check_optional_list(texts, len(ids), "texts")
        if txts is not None:
            txts = [check_text(t) for t in txts]
        if self.metric == "cosine":
            zero = ~matrix.any(axis=1)
            if zero.any():
                from vjson.errors import InvalidVectorError
                raise InvalidVectorError(f"vectors[{int(np.flatnonzero(zero)[0])}] is all zeros: "
                                         "a cosine vector needs a direction")
        if not ids:
            return
        keep = _last_occurrences(ids)
        if keep is not None:
            ids = [ids[i] for i in keep]
            matrix = matrix[keep]
            metas = None if metas is None else [metas[i] for i in keep]
            txts = None if txts is None else [txts[i] for i in keep]
        if metas is not None and all(m is None for m in metas):
            metas = None
        if txts is not None and all(t is None for t in txts):
            txts = None
        with self._write_lock:
            self._check_writable()
            row0 = len(self._row_ids)
            self._vectors.write(row0, matrix)
            frame = {"op": "put", "seq": self._seq + 1, "row": row0, "ids": ids, "meta": metas, "text": txts,
                     "crc": zlib.crc32(matrix)}
            self._log.append(orjson.dumps(frame))
            self._seq += 1
            self._dirty = True
            dead: list[int] = []
            rows = self._apply_put_maps(row0, ids, metas, txts, dead)
            self._graph.add(matrix, rows)
            with self._filter_lock:
                if dead:
                    self._metadata.remove_many(dead)
                self._metadata.set_many(rows, metas if metas is not None else [None] * len(ids))
            self._publish(rows, dead)
            self._update_text(rows, txts, dead)
            self._maybe_checkpoint()

    def _publish(self, born: np.ndarray, dead: Sequence[int]) -> None:
        old = self._view
        n = len(self._row_ids)
        nbytes = (n + 7) // 8 + 1
        bits = np.zeros(max(nbytes, len(old.bits)), dtype=np.uint8)
        bits[:len(old.bits)] = old.bits
        if len(born):
            _set_bits(bits, born)
        if len(dead):
            _clear_bits(bits, np.asarray(dead, dtype=np.int64))
        self._view = View(_core.Bitset(bits, len(self._ids)), n)

    def _update_text(self, born: np.ndarray, texts: list | None, dead: Sequence[int]) -> None:
        if self._text is None:
            return
        stale = [r for r in dead if self._row_text[r] is not None]
        fresh = [(int(r), t) for r, t in zip(born, texts)] if texts is not None else []
        fresh = [(r, t) for r, t in fresh if t is not None]
        if not stale and not fresh:
            return
        if stale:
            self._text.delete(stale)
        if fresh:
            self._text.add([r for r, _ in fresh], [t for _, t in fresh])
        self._text.commit(self._seq)

    def delete(self, ids: Sequence[str] | str | None = None, *, filter: dict | None = None) -> int:
        """Delete records by id (every id must exist, else nothing is deleted) or by filter.

        Returns how many were deleted.
        """
        self._check_writable()
        if (ids is None) == (filter is None):
            raise InvalidInputError("delete takes ids or filter=, exactly one of them")
        with self._write_lock:
            self._check_writable()
            if filter is not None:
                rows = np.flatnonzero(self._filter_mask(filter, self._view))
                targets = [self._row_ids[r] for r in rows]
            else:
                targets = list(dict.fromkeys(check_ids_for_lookup(ids)))
                missing = [t for t in targets if t not in self._ids]
                if missing:
                    raise RecordNotFoundError(f"no record with id {missing[0]!r} ({len(missing)} missing); nothing deleted")
            if not targets:
                return 0
            self._log.append(orjson.dumps({"op": "del", "seq": self._seq + 1, "ids": targets}))
            self._seq += 1
            self._dirty = True
            dead = [self._ids.pop(t) for t in targets]
            with self._filter_lock:
                self._metadata.remove_many(dead)
            self._publish(np.empty(0, dtype=np.int64), dead)
            self._update_text(np.empty(0, dtype=np.int64), None, dead)
            return len(dead)

    def update_metadata(self, id: str, metadata: dict | None, merge: bool = False) -> None:
        """Replace a record's metadata, or with ``merge=True`` update its top-level keys."""
        self._check_writable()
        check_id(id)
        metadata = check_metadata(metadata)
        with self._write_lock:
            self._check_writable()
            row = self._row_or_raise(id)
            if merge:
                merged = dict(self._row_meta[row] or {})
                merged.update(metadata or {})
                metadata = merged
            self._log.append(orjson.dumps({"op": "meta", "seq": self._seq + 1, "ids": [id], "meta": [metadata]}))
            self._seq += 1
            self._dirty = True
            self._row_meta[row] = metadata
            with self._filter_lock:
                self._metadata.set(row, metadata)
            self._maybe_checkpoint()

    # ------------------------------------------------------------------ reads

    def _row_or_raise(self, id: str) -> int:
        row = self._ids.get(id)
        if row is None:
            raise RecordNotFoundError(f"no record with id {id!r}")
        return row

    def get(self, id: str | None = None, *, filter: dict | None = None, limit: int | None = None,
            include: Sequence[str] = INCLUDE_ALL) -> Any:
        """``get(id)``: that record (RecordNotFoundError if absent).
        ``get(filter=..., limit=None)``: every matching record (up to `limit`), in insertion order."""
        self._check_open()
        if id is not None:
            if filter is not None:
                raise InvalidInputError("get takes an id or filter=, not both")
            return self.get_batch([check_id(id)])[0]
        if filter is None:
            raise InvalidInputError("get needs an id or filter=")
        if limit is not None:
            check_k(limit)
        rows = np.flatnonzero(self._filter_mask(filter, self._view))
        if limit is not None:
            rows = rows[:limit]
        return self._records(rows.tolist(), include)

    def get_batch(self, ids: Sequence[str], include: Sequence[str] = INCLUDE_ALL) -> list[Record]:
        """Records for ids, in order; RecordNotFoundError if any is absent."""
        self._check_open()
        ids = check_ids(ids)
        return self._records([self._row_or_raise(i) for i in ids], include)

    def _records(self, rows: list[int], include: Sequence[str]) -> list[Record]:
        include = _check_include(include)
        vectors = self._vectors.read(rows) if "vector" in include and rows else None
        return [Record(self._row_ids[r], vectors[i] if vectors is not None else None,
                       self._row_meta[r] if "metadata" in include else None,
                       self._row_text[r] if "text" in include else None) for i, r in enumerate(rows)]

    def get_metadata(self, id: str) -> dict | None:
        self._check_open()
        return self._row_meta[self._row_or_raise(check_id(id))]

    def ids(self) -> list[str]:
        """Every live id, in insertion order of their current versions."""
        self._check_open()
        rows = sorted(self._ids.values())
        return [self._row_ids[r] for r in rows]

    # ------------------------------------------------------------------ search

    def _filter_mask(self, filter: dict | CompiledFilter, view: View) -> np.ndarray:
        """Bool mask over rows [0, view.rows) of live records matching filter."""
        compiled = filter if isinstance(filter, CompiledFilter) else compile_filter(filter)
        with self._filter_lock:
            mask = self._metadata.evaluate(compiled, view.rows)
        mask = mask[:view.rows]
        live = np.unpackbits(view.bits, count=view.rows, bitorder="little").view(bool)
        return mask & live

    def _allowed(self, filter: dict | None, view: View) -> _core.Bitset:
        """The rows a search may return: the view's, narrowed by the filter."""
        if filter is None:
            return view.visible
        return _core.Bitset(self._filter_mask(filter, view))

    def search(self, vector: Any, k: int = 10, filter: dict | None = None, ef_search: int | None = None,
               include: Sequence[str] = _DEFAULT_INCLUDE) -> list[SearchResult]:
        """The k nearest records to `vector`, best first, optionally among those matching `filter`.

        Fewer than k come back only when fewer than k records (match). `include`
        names what each result carries besides id/distance/score: any of
        "metadata", "text", "vector".
        """
        if self._closed:
            raise DatabaseClosedError(f"the database at {self.path} is closed")
        if type(k) is not int or k < 1:
            check_k(k)
        if include is not _DEFAULT_INCLUDE:
            include = _check_include(include)
        view = self._view
        allowed = view.visible if filter is None else self._allowed(filter, view)
        if "vector" in include:
            rows, dists = self._graph.search(vector, k, ef_search or self._ef_search, allowed)
            return self._results(rows, dists, include)
        # the core validates the query (dimension, dtype, NaN), converts it only
        # if it must, and builds the results in the same call
        return self._graph.search_results(vector, k, ef_search or self._ef_search, allowed, self._row_ids,
                                          self._row_meta if "metadata" in include else None,
                                          self._row_text if "text" in include else None, self.metric != "l2")

    def batch_search(self, vectors: Any, k: int = 10, filter: dict | None = None, ef_search: int | None = None,
                     include: Sequence[str] = _DEFAULT_INCLUDE, num_threads: int | None = None
                     ) -> list[list[SearchResult]]:
        """One result list per query row, computed across threads without the GIL."""
        self._check_open()
        k = check_k(k)
        queries = check_vectors(vectors, self.dimension, "queries")
        include = _check_include(include)
        view = self._view
        rows, dists = self._graph.search_batch(queries, k, ef_search or self._ef_search,
                                               self._allowed(filter, view), num_threads)
        out = []
        for r, d in zip(rows, dists):
            n = int(np.searchsorted(r == _core.NO_LABEL, True)) if r[-1] == _core.NO_LABEL else len(r)
            out.append(self._results(r[:n], d[:n], include))
        return out

    def _results(self, rows: np.ndarray, dists: np.ndarray, include: tuple[str, ...]) -> list[SearchResult]:
        out = _core.build_results(self._row_ids, self._row_meta if "metadata" in include else None,
                                  self._row_text if "text" in include else None, rows, dists,
                                  self.metric != "l2")
        if "vector" in include and out:
            for res, vec in zip(out, self._vectors.read(rows)):
                res.vector = vec
        return out

    def _text_hits(self, query: str, depth: int, filter: dict | None, view: View,
                   syntax: bool) -> tuple[np.ndarray, np.ndarray]:
        from vjson.text_index import escape_query

        if self._text is None:
            raise VJsonError(f"{self.path}: the text index is not available in this reader")
        if not isinstance(query, str):
            raise InvalidInputError(f"text query must be str, got {type(query).__name__}")
        mask = (np.unpackbits(view.bits, count=view.rows, bitorder="little").view(bool)
                if filter is None else self._filter_mask(filter, view))
        text_query = query if syntax else escape_query(query)
        try:
            return self._text.search(text_query, depth, allowed=mask)
        except CorruptionError as exc:
            if self.read_only:
                raise
            with self._write_lock:  # damaged under us: rebuild from the stored texts, retry once
                log.warning("%s: text index damaged (%s); rebuilding it", self.path / "text", exc)
                self._rebuild_text()
            return self._text.search(text_query, depth, allowed=mask)

    def text_search(self, query: str, k: int = 10, filter: dict | None = None,
                    include: Sequence[str] = _DEFAULT_INCLUDE, syntax: bool = True) -> list[SearchResult]:
        """BM25 full-text search over the records' text, best first.

        `query` uses tantivy's syntax (terms, "phrases", AND/OR/NOT, +/-); a
        syntax error raises QueryError. ``syntax=False`` treats it as plain
        words. Results carry ``score`` (BM25) and no distance.
        """
        self._check_open()
        k = check_k(k)
        include = _check_include(include)
        view = self._view
        rows, scores = self._text_hits(query, k, filter, view, syntax)
        out = [SearchResult(self._row_ids[r], None, float(sc)) for r, sc in zip(rows.tolist(), scores.tolist())]
        self._fill(out, rows.tolist(), include)
        return out

    def hybrid_search(self, vector: Any, text: str, k: int = 10, filter: dict | None = None,
                      fusion: str = "rrf", rrf_k: float = 60, alpha: float = 0.5, candidates: int = 100,
                      ef_search: int | None = None, include: Sequence[str] = _DEFAULT_INCLUDE,
                      syntax: bool = False) -> list[HybridResult]:
        """Vector and full-text search fused into one ranking.

        Each side retrieves `candidates` hits (under `filter`, if given); then
        ``fusion="rrf"`` sums 1 / (rrf_k + rank) over the sides, and
        ``fusion="weighted"`` combines min-max normalised scores as
        ``alpha * vector + (1 - alpha) * text``. Each result reports its fused
        ``score`` and each side's rank and raw score. `text` is plain words
        unless ``syntax=True`` (tantivy query syntax).
        """
        from vjson import fusion as fuse

        self._check_open()
        k = check_k(k)
        candidates = check_k(candidates)
        include = _check_include(include)
        if fusion not in ("rrf", "weighted"):
            raise InvalidInputError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        view = self._view
        depth = max(candidates, k)
        vrows, vdists = self._graph.search(vector, depth, max(ef_search or self._ef_search, depth),
                                           self._allowed(filter, view))
        trows, tscores = self._text_hits(text, depth, filter, view, syntax)
        if fusion == "rrf":
            hits = fuse.rrf([vrows.tolist(), trows.tolist()], k=rrf_k,
                            scores=[vdists.tolist(), tscores.tolist()], limit=k)
        else:
            hits = fuse.weighted([(vrows.tolist(), vdists.tolist(), False), (trows.tolist(), tscores.tolist(), True)],
                                 alpha, limit=k)
        out = [HybridResult(self._row_ids[h.row], h.score, h.ranks[0], h.scores[0], h.ranks[1], h.scores[1])
               for h in hits]
        self._fill(out, [h.row for h in hits], include)
        return out

    def _fill(self, results: list, rows: list[int], include: tuple[str, ...]) -> None:
        if "metadata" in include:
            for res, r in zip(results, rows):
                res.metadata = self._row_meta[r]
        if "text" in include:
            for res, r in zip(results, rows):
                res.text = self._row_text[r]
        if "vector" in include and rows:
            for res, vec in zip(results, self._vectors.read(rows)):
                res.vector = vec

    # ------------------------------------------------------------------ durability

    def flush(self) -> None:
        """Checkpoint: save the graph and a snapshot, start a fresh log.

        Not needed for durability (every write call is already committed), but
        it makes the next open fast: only the log after the checkpoint is replayed.
        """
        self._check_writable()
        with self._write_lock:
            self._checkpoint()

    def _maybe_checkpoint(self) -> None:
        # Bound replay work on open: checkpoint when the log outgrows the snapshot.
        if self._log.size > max(64 << 20, 2 * self._manifest.get("snapshot_bytes", 0)):
            self._checkpoint()

    def _checkpoint(self, vectors: str | None = None) -> None:
        m = dict(self._manifest)
        c = m["checkpoint"] + 1
        rows = len(self._row_ids)
        names = {"log": f"log-{c}.vjl", "snapshot": f"snapshot-{c}.vjs", "graph": f"graph-{c}.vjx",
                 "filters": f"filters-{c}.vjm"}
        self._vectors.sync()
        self._graph.save(self.path / names["graph"], durable=True)
        live_ids = [rid if self._ids.get(rid) == row else None for row, rid in enumerate(self._row_ids)]
        self._vector_crcs = self._block_crcs(rows)
        snapshot = orjson.dumps({
            "vector_crcs": self._vector_crcs,
            "ids": live_ids,
            "meta": [meta if live_ids[i] is not None else None for i, meta in enumerate(self._row_meta)],
            "text": [t if live_ids[i] is not None else None for i, t in enumerate(self._row_text)],
        })
        write_blob(self.path / names["snapshot"], snapshot)
        dump = io.BytesIO()
        with self._filter_lock:
            self._metadata.dump(dump)
        atomic_write(self.path / names["filters"], dump.getvalue())
        (self.path / names["log"]).touch()
        m.update(names, checkpoint=c, rows=rows, seq=self._seq, snapshot_bytes=len(snapshot))
        if vectors is not None:
            m["vectors"] = vectors
        atomic_write(self.path / MANIFEST, orjson.dumps(m, option=orjson.OPT_INDENT_2))
        old = self._manifest
        self._manifest = m
        self._log.close()
        self._log = RecordLog(self.path / names["log"], self._durable)
        self._dirty = False
        for key in ("log", "snapshot", "graph", "vectors", "filters"):
            if old.get(key) and old[key] != m[key]:
                try:
                    (self.path / old[key]).unlink()
                except OSError:
                    pass

    def _block_crcs(self, rows: int) -> list[int]:
        """crc32 of each CRC_BLOCK rows of vectors (the last block partial); reuses full blocks."""
        keep = min(len(self._vector_crcs), rows // CRC_BLOCK)
        crcs = list(self._vector_crcs[:keep])
        view = self._vectors.view(rows)
        for start in range(keep * CRC_BLOCK, rows, CRC_BLOCK):
            crcs.append(zlib.crc32(view[start:start + CRC_BLOCK]))
        return crcs

    def verify(self) -> dict[str, Any]:
        """Check every checksum on disk and the invariants between the indexes.

        Reads everything (the whole graph file included). Returns a report:
        ``{"ok": bool, "problems": [...], "records": n, "rows": n, "checked": [...]}``;
        it does not raise for what it finds.
        """
        self._check_open()
        problems: list[str] = []
        checked: list[str] = []

        def attempt(what: str, check: Any) -> Any:
            try:
                result = check()
                checked.append(what)
                return result
            except (VJsonError, OSError, ValueError, KeyError) as exc:
                problems.append(f"{what}: {exc}")
                return None

        with self._write_lock:
            m = self._manifest
            view = self._view
            rows = len(self._row_ids)
            if m["snapshot"]:
                attempt("snapshot checksum", lambda: read_blob(self.path / m["snapshot"]))
            if m.get("filters"):
                def load_filters() -> None:
                    with builtins_open(self.path / m["filters"], "rb") as f:
                        MetadataIndex.load(f)
                attempt("filter index checksum", load_filters)
            if m["graph"]:
                attempt("graph file checksums", lambda: _core.HNSWIndex.load(self.path / m["graph"], verify=True).close())
            attempt("graph structure", self._graph.check)

            def log_frames() -> None:
                reader = RecordLog(self._log.path, durable=False, read_only=True)
                try:
                    for _, payload in reader.frames(committed=self._log.size):
                        rec = orjson.loads(payload)
                        if rec["op"] == "put":
                            n = len(rec["ids"])
                            block = self._vectors.view(rec["row"] + n)[rec["row"]:rec["row"] + n]
                            if zlib.crc32(block) != rec["crc"]:
                                raise CorruptionError(f"{self._vectors.path}: rows {rec['row']}..{rec['row'] + n - 1} "
                                                      "fail their checksum")
                finally:
                    reader.close()
            attempt("log checksums", log_frames)

            def vector_blocks() -> None:
                covered = m["rows"]
                view_rows = self._vectors.view(covered)
                for i, crc in enumerate(self._vector_crcs):
                    block = view_rows[i * CRC_BLOCK:min((i + 1) * CRC_BLOCK, covered)]
                    if zlib.crc32(block) != crc:
                        raise CorruptionError(f"{self._vectors.path}: rows {i * CRC_BLOCK}.. fail their checksum")
            attempt("vector checksums", vector_blocks)

            def cross_checks() -> None:
                live = np.fromiter(self._ids.values(), dtype=np.int64, count=len(self._ids))
                visible = np.unpackbits(view.bits, count=view.rows, bitorder="little").view(bool)
                if view.count != len(live) or not visible[live].all() or int(visible.sum()) != len(live):
                    raise CorruptionError("the visible rows differ from the live ids")
                if self._graph.element_count != rows or (len(live) and live.max() >= rows):
                    raise CorruptionError(f"graph holds {self._graph.element_count} rows, the records {rows}")
                for rid, row in self._ids.items():
                    if self._row_ids[row] != rid:
                        raise CorruptionError(f"id {rid!r} maps to row {row}, which belongs to {self._row_ids[row]!r}")
                with self._filter_lock:
                    if self._metadata.n_live != len(live):
                        raise CorruptionError(f"the filter index holds {self._metadata.n_live} records, not {len(live)}")
                if self._text is not None:
                    want = sorted(int(r) for r in live if self._row_text[r] is not None)
                    have = self._text.rows().tolist()
                    if have != want:
                        raise CorruptionError(f"the text index holds {len(have)} texts, the records {len(want)}")
            attempt("cross-index invariants", cross_checks)
            if self._text is not None:
                from vjson.text_index import TextIndex
                attempt("text index checksums", lambda: TextIndex.check(self._text.path))
        return {"ok": not problems, "problems": problems, "records": view.count, "rows": rows, "checked": checked}

    def compact(self) -> None:
        """Rewrite storage without deleted and replaced records, and rebuild the graph.

        Builds a new generation beside the current one and switches the
        manifest atomically: a crash during compaction leaves the database as
        it was. Searches keep running meanwhile; writes wait.
        """
        self._check_writable()
        with self._write_lock:
            live = np.asarray(sorted(self._ids.values()), dtype=np.int64)
            gen = int(self._manifest["vectors"].split("-")[1].split(".")[0]) + 1
            name = f"vectors-{gen}.f32"
            vectors = VectorFile(self.path / name, self.dimension, durable=False)
            for start in range(0, len(live), 65536):
                part = live[start:start + 65536]
                vectors.write(start, self._vectors.read(part))
            vectors.sync()
            graph = _core.HNSWIndex(self.dimension, self.metric, self._manifest["M"],
                                    self._manifest["ef_construction"], capacity=max(len(live), 16),
                                    ef_search=self._ef_search)
            if len(live):
                graph.add(vectors.view(len(live)), np.arange(len(live), dtype=np.uint64))
            old_vectors, old_graph = self._vectors, self._graph
            row_ids = [self._row_ids[r] for r in live]
            row_meta = [self._row_meta[r] for r in live]
            row_text = [self._row_text[r] for r in live]
            # switch the in-memory state, then make it durable with a checkpoint
            self._vectors, self._graph = vectors, graph
            self._vector_crcs = []  # the old file's checksums say nothing about the new one
            self._row_ids, self._row_meta, self._row_text = row_ids, row_meta, row_text
            self._ids = {rid: i for i, rid in enumerate(row_ids)}
            self._metadata = MetadataIndex()
            self._rebuild_metadata_index()
            self._publish_all()
            vectors.durable = self._durable
            self._checkpoint(vectors=name)
            old_vectors.close()
            del old_graph  # searches still holding it keep it alive until they finish
            if self._text is not None:
                rows = [i for i, t in enumerate(row_text) if t is not None]
                self._text.rebuild(rows, [row_text[i] for i in rows], marker=self._seq)

    def close(self) -> None:
        """Checkpoint if anything changed, then release files and the writer lock. Idempotent."""
        if self._closed:
            return
        with self._write_lock:
            if self._closed:
                return
            try:
                if not self.read_only and self._dirty:
                    self._checkpoint()
            finally:
                self._closed = True
                self._release_files()

    def _release_files(self) -> None:
        for name in ("_text", "_log", "_vectors", "_graph"):
            obj = getattr(self, name, None)
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - closing must release the rest
                    log.exception("closing %s", name)
        if self._lock_file is not None:
            self._lock_file.release()
            self._lock_file = None

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:  # noqa: BLE001
                pass


def _last_occurrences(ids: list[str]) -> list[int] | None:
    """Indices keeping the last occurrence of each id, or None when all are distinct."""
    last = {rid: i for i, rid in enumerate(ids)}
    if len(last) == len(ids):
        return None
    return sorted(last.values())


def _check_include(include: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(include, str):
        include = (include,)
    out = tuple(include)
    for name in out:
        if name not in INCLUDE_ALL:
            raise InvalidInputError(f"include takes {INCLUDE_ALL}, got {name!r}")
    return out


def open(path: str | os.PathLike[str], **kwargs: Any) -> VectorDB:  # noqa: A001 - vjson.open reads well
    """Open an existing database (NotADatabaseError if there is none)."""
    if not (Path(os.fspath(path)) / MANIFEST).exists():
        raise NotADatabaseError(f"{path} does not hold a vjson database")
    return VectorDB(path, **kwargs)


class PyVectorDB(VectorDB):
    """The seed system's API, as a thin alias: ``PyVectorDB(path, dimension, max_elements, ef_construction)``."""

    def __init__(self, path: str | os.PathLike[str], dimension: int | None = None, max_elements: int | None = None,
                 ef_construction: int = 200, **kwargs: Any) -> None:
        super().__init__(path, dimension=dimension, max_elements=max_elements, ef_construction=ef_construction,
                         **kwargs)

    def search(self, vector: Any, k: int = 10, *args: Any, **kwargs: Any) -> list[SearchResult]:  # noqa: D102
        return super().search(vector, k, *args, **kwargs)
