"""VectorDB.verify(): every checksum on disk and the invariants between indexes."""

from __future__ import annotations

import builtins
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vjson import _core, _logformat
from vjson._generation import CRC_BLOCK, Generation
from vjson._idmap import IdMap
from vjson._segments import Delta, Segment
from vjson.errors import CorruptionError, VJsonError
from vjson.metadata_index import MetadataIndex
from vjson.storage import read_blob, read_blobs


def verify(path: Path, manifest: dict, gen: Generation, log_path: Path, log_size: int) -> dict[str, Any]:
    """The caller holds the write lock, so nothing changes underneath."""
    problems: list[str] = []
    checked: list[str] = []

    def attempt(what: str, check: Callable[[], Any]) -> None:
        try:
            check()
            checked.append(what)
        except (VJsonError, OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{what}: {exc}")

    m = manifest
    if m["snapshot"]:
        attempt("snapshot checksum", lambda: read_blobs(path / m["snapshot"]))
    for seg in m.get("segments") or ():
        def check_segment(seg: dict = seg) -> None:
            Segment(path / seg["file"], seg["row0"], seg["rows"]).verify()
        attempt(f"segment {seg['file']}", check_segment)
    if m.get("delta"):
        attempt("delta checksum", lambda: Delta.read(path / m["delta"], m["rows"]))
    if isinstance(gen.ids, IdMap):
        attempt("id hash tables", gen.ids.check)
    if m.get("filters"):
        def load_filters() -> None:
            with builtins.open(path / m["filters"], "rb") as f:
                MetadataIndex.load(f, documents=gen.row_meta)
        attempt("filter index checksum", load_filters)
    if m["graph"]:
        def load_graph() -> None:
            patch = read_blob(path / m["graph_patch"]) if m.get("graph_patch") else None
            _core.HNSWIndex.load(path / m["graph"], verify=True, patch=patch).close()
        attempt("graph file checksums", load_graph)
    attempt("graph structure", gen.graph.check)
    attempt("log checksums", lambda: _check_log(log_path, log_size, gen))
    attempt("vector checksums", lambda: _check_vector_blocks(gen, m["rows"]))
    attempt("cross-index invariants", lambda: _check_cross(gen))
    if gen.text is not None:
        from vjson.text_index import TextIndex

        text_path = gen.text.path
        attempt("text index checksums", lambda: TextIndex.check(text_path))
    view = gen.view
    return {"ok": not problems, "problems": problems, "records": view.count, "rows": view.rows,
            "checked": checked}


def _check_log(log_path: Path, log_size: int, gen: Generation) -> None:
    recs, _ = _logformat.records(log_path, committed=log_size)
    for rec in recs:
        if rec["op"] == "put":
            row, n = rec["row"], len(rec["ids"])
            if zlib.crc32(gen.vectors.view(row + n)[row:row + n].data) != rec["crc"]:
                raise CorruptionError(f"{gen.vectors.path}: rows {row}..{row + n - 1} fail their checksum")


def _check_vector_blocks(gen: Generation, covered: int) -> None:
    rows = gen.vectors.view(covered)
    for i, crc in enumerate(gen.vector_crcs):
        if zlib.crc32(rows[i * CRC_BLOCK:min((i + 1) * CRC_BLOCK, covered)].data) != crc:
            raise CorruptionError(f"{gen.vectors.path}: rows {i * CRC_BLOCK}..{(i + 1) * CRC_BLOCK - 1} "
                                  "fail their checksum")


def _check_cross(gen: Generation) -> None:
    view = gen.view
    live = gen.live_rows()
    visible = view.mask()
    n = len(gen.row_ids)
    if view.count != len(live) or not visible[live].all() or int(visible.sum()) != len(live):
        raise CorruptionError("the visible rows differ from the live ids")
    if gen.graph.element_count != n:
        raise CorruptionError(f"the graph holds {gen.graph.element_count} rows, the records {n}")
    for rid, row in gen.ids.items():
        if gen.row_ids[row] != rid:
            raise CorruptionError(f"id {rid!r} maps to row {row}, which belongs to {gen.row_ids[row]!r}")
    indexed = gen.filter_index_live()
    if indexed != len(live):
        raise CorruptionError(f"the filter index holds {indexed} records, not {len(live)}")
    if gen.text is not None:
        want = sorted(int(r) for r in live if gen.row_text[r] is not None)
        have = np.asarray(gen.text.rows()).tolist()
        if have != want:
            extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
            raise CorruptionError(f"the text index disagrees with the records: {len(extra)} texts of retired or "
                                  f"unknown rows (e.g. {extra[:3]}), {len(missing)} missing (e.g. {missing[:3]})")
