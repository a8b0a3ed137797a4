"""The write-ahead log's on-disk format: frames, and the records inside them.

This module is the only one that knows how a log file is laid out. Writing
(:func:`encode_frame`), opening, replay, ``verify()``, the CLI's statistics
and read-only followers all go through :func:`scan` / :func:`scan_file`.

A frame (format 2, every frame written since vjson's database format 3)::

    [4s magic b"VJF\\xff"][u32 payload length][u32 crc32(payload)]
    [u32 crc32(the 12 bytes before)][payload]

The header checksum covers the length, so a damaged length is detected
instead of being followed. The magic's last byte, 0xff, never occurs in the
UTF-8 JSON of a record, so after damage the next frame is found by searching
for the magic: any whole, checksummed frame after a damaged one proves the
damage is in committed data (:class:`CorruptionError`), never a torn tail.
Only a damaged or partial *final* frame is a torn tail: an append a crash cut
short, which was never acknowledged.

Legacy frames (vjson database formats 1 and 2) are ``[u32 length][u32
crc32(payload)][payload]``; their length is at most 2**31, so its top byte is
never 0xff and a frame's first four bytes tell the two apart. A log may start
with legacy frames and continue with new ones (a newer vjson appending to an
older database's log); once a new frame is seen, every later one must be new.

Records are JSON objects with ``"op"`` ("put", "del" or "meta") and ``"seq"``
(the write's sequence number, one more per record); see the ``encode_*``
functions for their fields. A record written without fsync (the database's
``durability="flush"``) ends with ``"u":1`` (:func:`mark_unsynced`).

Unsynced records change what damage means: a power cut may keep a later
sector of the log and lose an earlier one, since nothing ordered them. So
damage whose nearest whole frame before it (or, with none before it, after
it) holds an unsynced record is a torn tail too: those writes were never
promised to survive a power cut.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from vjson.errors import CorruptionError, InvalidInputError

FRAME_MAGIC = b"VJF\xff"
_HEADER = struct.Struct("<4sIII")  # magic, payload length, payload crc, header crc
HEADER_SIZE = _HEADER.size
_LEGACY = struct.Struct("<II")     # payload length, payload crc
#: The largest payload one frame holds (one write call's record).
MAX_PAYLOAD = 1 << 31


class Frame(NamedTuple):
    """A whole, checksummed frame: where it starts and ends in the file, and its payload."""

    offset: int
    end: int
    payload: bytes


class Scan(NamedTuple):
    """What :func:`scan` found from its start offset.

    `end` is the offset just past the last whole frame: where the next append
    goes, and where a follower's next scan starts. `torn` says why the bytes
    from `end` to the end of the data are not a frame (None when there are
    none): a partial or damaged final frame, which a writer truncates.
    """

    frames: list[Frame]
    end: int
    torn: str | None


def encode_frame(payload: bytes) -> bytes:
    """The frame holding `payload`; InvalidInputError if it exceeds :data:`MAX_PAYLOAD`."""
    if len(payload) > MAX_PAYLOAD:
        raise InvalidInputError(f"one write's log record would be {len(payload):,} bytes, more than a "
                                f"log frame holds ({MAX_PAYLOAD:,}): split the batch")
    head = struct.pack("<4sII", FRAME_MAGIC, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def _frame_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """(payload start, end) of a whole new-format frame at `pos` whose checksums hold, else None."""
    if pos + HEADER_SIZE > len(data):
        return None
    magic, length, crc, head_crc = _HEADER.unpack_from(data, pos)
    if magic != FRAME_MAGIC or zlib.crc32(data[pos:pos + 12]) != head_crc:
        return None
    end = pos + HEADER_SIZE + length
    if end > len(data) or zlib.crc32(data[pos + HEADER_SIZE:end]) != crc:
        return None
    return pos + HEADER_SIZE, end


def _legacy_frame_at(data: bytes, pos: int) -> tuple[int, int] | None:
    if pos + _LEGACY.size > len(data):
        return None
    length, crc = _LEGACY.unpack_from(data, pos)
    end = pos + _LEGACY.size + length
    if length == 0 or length > MAX_PAYLOAD or end > len(data) or zlib.crc32(data[pos + _LEGACY.size:end]) != crc:
        return None  # (no record is empty: zeros are where a power cut lost an append)
    return pos + _LEGACY.size, end


def _next_frame(data: bytes, after: int) -> int:
    """Offset of the first whole new-format frame starting after `after`, or -1."""
    pos = data.find(FRAME_MAGIC, after + 1)
    while pos >= 0:
        if _frame_at(data, pos) is not None:
            return pos
        pos = data.find(FRAME_MAGIC, pos + 1)
    return -1


def _unsynced_near(data: bytes, frames: list[Frame], after: int) -> bool:
    """Whether the damage lies right after (or, first in the scan, right before) an unsynced record."""
    if frames:
        return is_unsynced(frames[-1].payload)
    found = _frame_at(data, after)
    return found is not None and is_unsynced(data[found[0]:found[1]])


def _damage(data: bytes, pos: int) -> str:
    """Why the bytes at `pos` are not a whole frame (for messages)."""
    size = len(data)
    if data[pos:pos + 4] == FRAME_MAGIC or (size - pos < 4 and FRAME_MAGIC.startswith(data[pos:])):
        if pos + HEADER_SIZE > size:
            return "partial frame header"
        magic, length, _, head_crc = _HEADER.unpack_from(data, pos)
        if zlib.crc32(data[pos:pos + 12]) != head_crc:
            return "frame header checksum mismatch"
        if pos + HEADER_SIZE + length > size:
            return "frame runs past the end"
        return "frame checksum mismatch"
    if pos + _LEGACY.size > size:
        return "partial frame header"
    length, _ = _LEGACY.unpack_from(data, pos)
    if length > MAX_PAYLOAD or pos + _LEGACY.size + length > size:
        return "frame runs past the end"
    return "frame checksum mismatch"


def scan(data: bytes, start: int = 0, committed: int = 0, name: str = "log", base: int = 0) -> Scan:
    """Every whole frame of `data` from offset `start`.

    `base` is the file offset of ``data[0]`` (a follower that read only the
    bytes past what it already applied), so offsets in the result are file
    offsets. `committed` is a file offset known to be whole (from a manifest,
    or a length the writer acknowledged): damage before it is corruption.
    Damage followed by any whole frame raises CorruptionError naming `name`;
    damage with nothing whole after it is a torn tail (``Scan.torn``).
    """
    frames: list[Frame] = []
    pos = start - base
    size = len(data)
    legacy_allowed = True
    while pos < size:
        found = _frame_at(data, pos)
        if found is not None:
            legacy_allowed = False
        elif legacy_allowed:
            found = _legacy_frame_at(data, pos)
        if found is None:
            why = _damage(data, pos)
            after = _next_frame(data, pos)
            if after >= 0 and _unsynced_near(data, frames, after):
                after = -1  # a power cut's reordering of unsynced appends, not corruption
            if after >= 0:
                raise CorruptionError(f"{name}: {why} at byte {base + pos}, followed by a whole frame at byte "
                                      f"{base + after}: committed records are damaged")
            if base + pos < committed:
                raise CorruptionError(f"{name}: {why} at byte {base + pos}, inside committed data "
                                      f"(the first {committed} bytes)")
            return Scan(frames, base + pos, why)
        payload_start, end = found
        frames.append(Frame(base + pos, base + end, data[payload_start:end]))
        pos = end
    return Scan(frames, base + pos, None)


def scan_file(path: str | os.PathLike[str], start: int = 0, committed: int = 0) -> Scan:
    """:func:`scan` of a log file's bytes from file offset `start` (a follower's
    last ``Scan.end``) to its current end; nothing before `start` is read."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    return scan(data, start, committed, str(path), base=start)


# ---------------------------------------------------------------- records

def encode_put(seq: int, row: int, ids: list[str], metas: list | None, texts: list | None, crc: int) -> bytes:
    """Rows [row, row + len(ids)) were written to the vector file (crc32 of their bytes: `crc`)."""
    return orjson.dumps({"op": "put", "row": row, "ids": ids, "meta": metas, "text": texts, "crc": crc, "seq": seq})


def encode_delete(seq: int, ids: list[Any]) -> bytes:
    return orjson.dumps({"op": "del", "ids": ids, "seq": seq})


def encode_metadata(seq: int, ids: list[str], metas: list) -> bytes:
    return orjson.dumps({"op": "meta", "ids": ids, "meta": metas, "seq": seq})


_UNSYNCED = b',"u":1}'


def mark_unsynced(record: bytes) -> bytes:
    """The same record marked as appended without fsync (see the module's docstring)."""
    return record[:-1] + _UNSYNCED


def is_unsynced(payload: bytes) -> bool:
    return payload.endswith(_UNSYNCED)


_FIELDS = {"put": ("row", "ids", "meta", "text", "crc"), "del": ("ids",), "meta": ("ids", "meta")}


def decode_record(payload: bytes, where: str = "log") -> dict[str, Any]:
    """The record of a frame, its op and fields checked; CorruptionError if unreadable."""
    try:
        rec = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise CorruptionError(f"{where}: unreadable record") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("seq"), int):
        raise CorruptionError(f"{where}: unreadable record")
    fields = _FIELDS.get(rec.get("op"))  # type: ignore[arg-type]
    if fields is None:
        raise CorruptionError(f"{where}: unknown record type {rec.get('op')!r}")
    if any(f not in rec for f in fields) or not isinstance(rec["ids"], list):
        raise CorruptionError(f"{where}: record {rec['seq']} lacks its fields")
    return rec


def records(path: Path, start: int = 0, committed: int = 0) -> tuple[list[dict[str, Any]], Scan]:
    """Decoded records of a log file from `start`, with the scan they came from."""
    found = scan_file(path, start, committed)
    return [decode_record(f.payload, f"{path} (byte {f.offset})") for f in found.frames], found
