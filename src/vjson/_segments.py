"""The row data of a checkpoint (manifest format 4): segment files and a delta file.

A checkpoint's rows are a list of *segments*, each holding a contiguous row
range, written once and never changed: a checkpoint after inserts writes only
a segment for the new rows. What changed since in older rows goes into the
checkpoint's small *delta* file. Segments are merged when there are too many
(see :func:`plan_merge`).

``segment-C-R.vjg`` (C: checkpoint, R: first row), CRC-framed payloads
(vjson.storage.write_blobs):

0. header: JSON ``{"row0": R, "rows": n}``
1. ids: UTF-8 bytes (none for a retired row), then row offsets (little-endian uint32, or uint64 past
   4 GiB; n + 1 of them) in frame 2
3. id hashes (vjson._idmap.id_hash), sorted, uint32; frame 4: the row (from
   R) of each, uint32: ``get(id)`` binary-searches them
5. metadata: JSON per row and offsets (frame 6), as vjson._generation.JsonRows
   encodes them (empty frames: every row null); 7, 8: texts, the same

``delta-C.vjd``, CRC-framed payloads:

0. header: JSON ``{"rows", "vector_crcs", "filters_rows"}``: rows in all,
   the vector file's block checksums, and how many rows the filter index file
   covers
1. the live rows (packed bits, little bit order)
2. metadata of older rows changed since their segment was written: JSON
   ``[[row, metadata], ...]``
3. rows whose record changed since the filter index file was written
   (uint64): opening re-indexes them (and the rows past ``filters_rows``)

Opening maps the segments and checks their structure (frame lengths, counts,
first and last offsets) without reading them whole; verify() checks every
checksum. The delta is small and read whole, checksums included.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vjson._idmap import id_hash
from vjson.errors import CorruptionError
from vjson.storage import read_blobs, write_blobs

_FRAME = struct.Struct("<II")  # vjson.storage's frame head: payload length, CRC32
SEGMENT_FRAMES = 9
DELTA_FRAMES = 4


def segment_name(checkpoint: int, row0: int) -> str:
    return f"segment-{checkpoint}-{row0}.vjg"


def delta_name(checkpoint: int) -> str:
    return f"delta-{checkpoint}.vjd"


def pack_rows(docs: list[bytes]) -> tuple[bytes, bytes]:
    """(blob, offsets) of per-row byte strings; two empty strings when every row is null."""
    if all(d == b"null" for d in docs):
        return b"", b""
    out = b"".join(docs)
    offsets = np.zeros(len(docs) + 1, dtype="<u4" if len(out) < 1 << 32 else "<u8")
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    return out, offsets.tobytes()


def write_segment(path: Path, row0: int, ids: list[str | None], metas: list[bytes], texts: list[bytes]) -> int:
    """Write a segment of rows [row0, row0 + len(ids)) (ids None for retired rows; metadata
    and texts as JSON bytes per row, b"null" for none), durably. Returns its size in bytes."""
    n = len(ids)
    encoded = [rid.encode("utf-8", "surrogatepass") if rid is not None else b"" for rid in ids]
    id_blob = b"".join(encoded)
    id_offs = np.zeros(n + 1, dtype="<u4" if len(id_blob) < 1 << 32 else "<u8")
    np.cumsum([len(e) for e in encoded], out=id_offs[1:])
    hashes = np.fromiter((id_hash(rid or "") for rid in ids), dtype="<u4", count=n)
    order = np.argsort(hashes, kind="stable").astype("<u4")
    frames = [orjson.dumps({"row0": row0, "rows": n}), id_blob, id_offs.tobytes(),
              hashes[order].tobytes(), order.tobytes(), *pack_rows(metas), *pack_rows(texts)]
    write_blobs(path, frames)
    return sum(_FRAME.size + len(f) for f in frames)


class Segment:
    """An open (memory-mapped) segment file."""

    def __init__(self, path: Path, row0: int, rows: int) -> None:
        self.path, self.row0, self.rows = path, row0, rows
        self.name = path.name
        with open(path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            self._map: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""
        try:
            self._parse(self._frames())
        except (ValueError, TypeError, KeyError):  # (orjson's errors are ValueErrors)
            raise CorruptionError(f"{path}: damaged segment") from None

    def _parse(self, frames: list[memoryview]) -> None:
        path, row0, rows = self.path, self.row0, self.rows
        head = orjson.loads(frames[0])
        if not isinstance(head, dict) or head.get("row0") != row0 or head.get("rows") != rows:
            raise CorruptionError(f"{path}: its header disagrees with the manifest (rows {row0}, {rows})")
        self.id_blob = frames[1]
        self.id_offs = self._checked_offsets(frames[1], frames[2], "ids")
        if self.id_offs is None and rows:
            raise CorruptionError(f"{path}: no ids")
        self.hashes = np.frombuffer(frames[3], dtype="<u4")
        self.order = np.frombuffer(frames[4], dtype="<u4")
        if len(self.hashes) != rows or len(self.order) != rows:
            raise CorruptionError(f"{path}: the id hash table does not match the rows")
        self.meta = (frames[5], self._checked_offsets(frames[5], frames[6], "metadata"))
        self.text = (frames[7], self._checked_offsets(frames[7], frames[8], "texts"))

    def _frames(self) -> list[memoryview]:
        """The payloads, as views of the mapping (lengths checked, checksums not: verify())."""
        data = memoryview(self._map) if self.size else memoryview(b"")
        out, pos = [], 0
        while pos < self.size:
            if pos + _FRAME.size > self.size:
                raise CorruptionError(f"{self.path}: truncated")
            length = _FRAME.unpack_from(data, pos)[0]
            if pos + _FRAME.size + length > self.size:
                raise CorruptionError(f"{self.path}: truncated at byte {pos}")
            out.append(data[pos + _FRAME.size:pos + _FRAME.size + length])
            pos += _FRAME.size + length
        if len(out) != SEGMENT_FRAMES:
            raise CorruptionError(f"{self.path}: expected {SEGMENT_FRAMES} sections, found {len(out)}")
        return out

    def _checked_offsets(self, blob: memoryview, raw: memoryview, what: str) -> np.ndarray | None:
        if not len(blob) and not len(raw):
            return None
        width = len(raw) // (self.rows + 1)
        if width not in (4, 8) or len(raw) != width * (self.rows + 1):
            raise CorruptionError(f"{self.path}: {what}: row offsets do not match the rows")
        offs = np.frombuffer(raw, dtype=f"<u{width}")
        if offs[0] != 0 or int(offs[-1]) != len(blob):
            raise CorruptionError(f"{self.path}: {what}: row offsets do not match the data")
        return offs

    def id_at(self, row: int) -> str | None:
        """Row's id (None: a retired row, whose id the segment does not keep)."""
        i = row - self.row0
        assert self.id_offs is not None
        a, b = int(self.id_offs[i]), int(self.id_offs[i + 1])
        if not a <= b <= len(self.id_blob):
            raise CorruptionError(f"{self.path}: damaged id offsets at row {row}")
        try:
            return bytes(self.id_blob[a:b]).decode("utf-8", "surrogatepass") if b > a else None
        except UnicodeDecodeError:
            raise CorruptionError(f"{self.path}: damaged id at row {row}") from None

    def rows_hashed(self, h: int) -> list[int]:
        """The rows (absolute) whose id hashes to h."""
        # numpy copies a table that is not 4-byte aligned (frames are packed) or a Python int
        # of another dtype before every search: 0.4-5 ms at 1M rows. Align it once, search a uint32.
        if not self.hashes.flags.aligned:
            self.hashes = self.hashes.copy()
        lo = int(self.hashes.searchsorted(np.uint32(h), "left"))
        hi = lo
        while hi < self.rows and self.hashes[hi] == h:
            hi += 1
        return [self.row0 + int(self.order[i]) for i in range(lo, hi) if self.order[i] < self.rows]

    def verify(self) -> None:
        """Every checksum, every offset, the hash table against the ids."""
        frames = read_blobs(self.path)
        if len(frames) != SEGMENT_FRAMES:
            raise CorruptionError(f"{self.path}: expected {SEGMENT_FRAMES} sections, found {len(frames)}")
        for blob, offs, what in ((self.id_blob, self.id_offs, "ids"), (self.meta[0], self.meta[1], "metadata"),
                                 (self.text[0], self.text[1], "texts")):
            if offs is not None and (np.diff(offs.astype(np.int64)) < 0).any():
                raise CorruptionError(f"{self.path}: {what}: row offsets go backwards")
        self.check_hash_table()

    def check_hash_table(self) -> None:
        """The sorted hash table holds exactly the hashes of the rows' ids, each row once."""
        ids = [self.id_at(self.row0 + i) for i in range(self.rows)]
        hashes = np.fromiter((id_hash(rid or "") for rid in ids), dtype="<u4", count=self.rows)
        if self.rows and (not np.array_equal(np.sort(self.order), np.arange(self.rows, dtype=self.order.dtype))
                          or not np.array_equal(hashes[self.order], self.hashes)):
            raise CorruptionError(f"{self.path}: the id hash table does not match the ids")


def plan_merge(sizes: list[int]) -> int:
    """Where to start merging segments (by their row counts, oldest first) so
    that each segment is bigger than all newer ones together; len(sizes) if no
    merge is due. Every row is thus rewritten O(log n) times."""
    start, newer = len(sizes), 0
    for i in range(len(sizes) - 1, -1, -1):
        if sizes[i] <= newer:
            start = i
        newer += sizes[i]
    return start if start < len(sizes) - 1 else len(sizes)


class Delta:
    """A checkpoint's delta file, read whole."""

    def __init__(self, rows: int, vector_crcs: list[int], filters_rows: int, live: np.ndarray,
                 meta: dict[int, Any], touched: np.ndarray) -> None:
        self.rows, self.vector_crcs, self.filters_rows = rows, vector_crcs, filters_rows
        self.live, self.meta, self.touched = live, meta, touched

    def write(self, path: Path) -> int:
        frames = [orjson.dumps({"rows": self.rows, "vector_crcs": self.vector_crcs,
                                "filters_rows": self.filters_rows}),
                  self.live.tobytes(),
                  orjson.dumps(sorted(self.meta.items(), key=lambda kv: kv[0])),
                  np.asarray(self.touched, dtype="<u8").tobytes()]
        write_blobs(path, frames)
        return sum(_FRAME.size + len(f) for f in frames)

    @classmethod
    def read(cls, path: Path, rows: int) -> Delta:
        frames = read_blobs(path)
        if len(frames) != DELTA_FRAMES:
            raise CorruptionError(f"{path}: expected {DELTA_FRAMES} sections, found {len(frames)}")
        try:
            head = orjson.loads(frames[0])
            meta = {int(r): v for r, v in orjson.loads(frames[2])}
            crcs, filters_rows = head["vector_crcs"], int(head["filters_rows"])
            ok = head["rows"] == rows and isinstance(crcs, list) and 0 <= filters_rows <= rows
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise CorruptionError(f"{path}: unreadable header or metadata") from None
        live = np.frombuffer(frames[1], dtype=np.uint8)
        touched = np.frombuffer(frames[3], dtype="<u8") if len(frames[3]) % 8 == 0 else None
        if (not ok or len(live) != (rows + 7) // 8 or touched is None
                or any(not 0 <= r < rows for r in meta) or (len(touched) and int(touched.max()) >= rows)):
            raise CorruptionError(f"{path}: disagrees with the manifest's {rows} rows")
        return cls(rows, crcs, filters_rows, live, meta, touched.astype(np.int64))


class CheckpointRows:
    """What the row data files of a generation's last checkpoint hold, and what
    changed since (kept by the generation, used by the next checkpoint).

    `segments` are the manifest's entries (``{"file", "row0", "rows", "bytes"}``),
    covering rows [0, self.rows); `meta_changed`: rows among those whose
    metadata changed since their segment was written; `filters_rows`: rows the
    filter index file covers, `filters_touched`: rows below that changed since
    it was written.
    """

    def __init__(self, segments: list[dict] | None = None, filters_rows: int = 0,
                 meta_changed: Any = (), filters_touched: Any = ()) -> None:
        self.segments = list(segments or [])
        self.rows = sum(s["rows"] for s in self.segments)
        self.filters_rows = filters_rows
        self.meta_changed: set[int] = set(meta_changed)
        self.filters_touched: set[int] = set(filters_touched)

    def changed(self, rows: Any, metadata: bool = True) -> None:
        """Rows whose record changed (a new metadata, or retired when not `metadata`)."""
        if isinstance(rows, np.ndarray) and (not len(rows) or int(rows.min()) >= max(self.rows, self.filters_rows)):
            return  # new rows: the next segment holds them, the filter index catches up from filters_rows
        for row in (rows.tolist() if isinstance(rows, np.ndarray) else rows):
            row = int(row)
            if row < self.filters_rows:
                self.filters_touched.add(row)
            if metadata and row < self.rows:
                self.meta_changed.add(row)
