"""``MANIFEST.json``: a database's settings and which of its files are current.

This module owns the manifest's schema: creating, reading (with validation),
writing (atomically: temp file, fsync, rename, fsync of the folder). The
manifest changes only at checkpoints and compactions (and once when a writer
first opens an older database): replacing it is their commit point.

Fields: ``format`` (the oldest vjson format able to read the folder),
``dimension``, ``metric``, ``M``, ``ef_construction``, ``tokenizer``;
``generation`` and ``checkpoint`` numbers; the current files ``vectors``,
``log``, ``snapshot``, ``graph``, ``filters`` (None before the first
checkpoint) and ``text``; ``rows`` and ``seq`` (rows and last log sequence
number the checkpoint holds); ``snapshot_bytes``; ``external_vectors`` (the
graph reads vectors from the vector file; False in format 1); ``quantization``
(what the graph walk reads: None or absent for float32, "float16", "int8",
"binary"). Format 4: ``segments`` (``[{"file", "row0", "rows", "bytes"}, ...]``,
the checkpoint's row data in contiguous ranges) and ``delta`` (what changed
in them since), in place of ``snapshot`` (None then); see vjson._segments;
``text_seq``: the text index held every text up to this log sequence number
at the checkpoint (None or absent: trust its own marker); ``graph_patch`` (None or absent: none): a patch file (``graph-C.vjp``) of
what changed in the graph since ``graph`` was saved (vjson._checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from vjson.errors import CorruptionError, FormatVersionError, NotADatabaseError
from vjson.storage import atomic_write

NAME = "MANIFEST.json"
#: 2: the graph reads vectors from the vector file (cosine rows stored unit-length);
#: 3: log frames carry a header checksum (vjson._logformat);
#: 4: segmented checkpoints (``segments`` and ``delta`` instead of ``snapshot``).
FORMAT_VERSION = 4
METRICS = ("cosine", "l2", "ip")
#: What the graph walk reads (None: the float32 vectors themselves); see HNSWIndex.
QUANTIZATIONS = (None, "float16", "int8", "binary")
#: The manifest fields naming files; any other file of these kinds in the folder is a leftover.
FILE_KINDS = ("vectors", "log", "snapshot", "graph", "filters", "text", "delta", "graph_patch")
#: Name prefixes of the database's files (segment files are listed under ``segments``).
_PREFIXES = FILE_KINDS + ("segment",)

_TYPES: dict[str, tuple[type, ...]] = {
    "dimension": (int,), "metric": (str,), "M": (int,), "ef_construction": (int,), "tokenizer": (str,),
    "checkpoint": (int,), "vectors": (str,), "log": (str,), "snapshot": (str, type(None)),
    "graph": (str, type(None)), "rows": (int,), "seq": (int,),
}


def new(dimension: int, metric: str, M: int, ef_construction: int, tokenizer: str,
        quantization: str | None = None) -> dict[str, Any]:
    """The manifest of an empty database (files vectors-0.f32, log-0.vjl, text-0)."""
    return {
        "format": FORMAT_VERSION, "dimension": dimension, "metric": metric, "M": M,
        "ef_construction": ef_construction, "tokenizer": tokenizer,
        "generation": 0, "checkpoint": 0, "vectors": "vectors-0.f32", "text": "text-0",
        "log": "log-0.vjl", "snapshot": None, "graph": None, "filters": None, "rows": 0, "seq": 0,
        "external_vectors": True, "quantization": quantization,
    }


def exists(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / NAME).exists()


def read(folder: Path) -> dict[str, Any]:
    """The folder's manifest, validated: NotADatabaseError if absent, CorruptionError
    if damaged, FormatVersionError if written by a newer vjson."""
    path = folder / NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotADatabaseError(f"{folder} does not hold a vjson database") from None
    return parse(raw, path)


def parse(raw: bytes, path: Path) -> dict[str, Any]:
    """Validate a manifest's bytes (read by the caller; `path` names it in errors)."""
    try:
        m = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorruptionError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(m, dict) or not isinstance(m.get("format"), int) or isinstance(m["format"], bool):
        raise CorruptionError(f"{path}: not a vjson manifest")
    if m["format"] > FORMAT_VERSION:
        raise FormatVersionError(f"{path}: written by a newer vjson (format {m['format']}, "
                                 f"this version reads up to {FORMAT_VERSION})")
    bad = [key for key, types in _TYPES.items()
           if key not in m or not isinstance(m[key], types) or isinstance(m[key], bool)]
    if not bad and m["metric"] not in METRICS:
        bad = ["metric"]
    if not bad and m.get("quantization") not in QUANTIZATIONS:
        bad = ["quantization"]
    if not bad and m["format"] >= 4 and not _segments_ok(m):
        bad = ["segments"]
    if bad:
        raise CorruptionError(f"{path}: damaged manifest (missing or invalid {bad})")
    return m


def _segments_ok(m: dict[str, Any]) -> bool:
    """Before its first checkpoint of format 4 (a new database, or one of format 3 a
    writer opened) neither; after, contiguous segments covering the rows, and a delta."""
    segments, delta = m.get("segments"), m.get("delta")
    if segments is None:
        return delta is None
    if not isinstance(segments, list) or not isinstance(delta, str) or m.get("snapshot") is not None:
        return False
    row = 0
    for s in segments:
        if (not isinstance(s, dict) or not isinstance(s.get("file"), str) or not s["file"].startswith("segment-")
                or s.get("row0") != row or not isinstance(s.get("rows"), int) or s["rows"] <= 0):
            return False
        row += s["rows"]
    return row == m["rows"]


def write(folder: Path, m: dict[str, Any], durable: bool = True) -> None:
    """Replace the manifest atomically (StorageError with ``replaced=True`` if only
    the final folder sync failed: the new manifest is then in place)."""
    atomic_write(folder / NAME, orjson.dumps(m, option=orjson.OPT_INDENT_2), durable)


def files(m: dict[str, Any]) -> set[str]:
    """The names of the files and folders the manifest makes current."""
    return {m[kind] for kind in FILE_KINDS if m.get(kind)} | {s["file"] for s in m.get("segments") or ()}


def is_leftover(name: str, m: dict[str, Any]) -> bool:
    """A file of the database's kinds (or a temp file) that `m` does not name:
    what an interrupted checkpoint or compaction leaves behind."""
    return name not in files(m) and (name.split("-")[0] in _PREFIXES or name.startswith("."))
