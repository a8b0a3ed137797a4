"""Writing a checkpoint: files in proportion to what changed since the last one.

A checkpoint writes (see vjson._segments for the row data files):

- a segment for the rows added since the last checkpoint, merged with the
  newest older segments while those are not bigger than what follows them
  (so each row is rewritten O(log n) times); a new generation (compaction, or
  a database of manifest format 3) writes one segment of all its rows;
- the delta: live rows, metadata changed in older segments, the rows changed
  since the filter index file;
- the filter index file only when the rows changed since it was written
  exceed a fraction of it (opening re-indexes the rest);
- the graph: a patch of the nodes added or changed since the graph file was
  saved, while those stay below a fraction of it (and, for a big graph, while
  opening can map its file rather than read it); else the whole file.

It returns the new manifest; the caller makes it current (the commit point)
after writing the lease that names its files, and then, if the graph was saved
whole, restarts the graph's change tracking (patches are relative to the file
the committed manifest names, so not before: a checkpoint may still fail).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from vjson import _core, storage
from vjson._generation import Generation, raw_json
from vjson._segments import CheckpointRows, Delta, delta_name, plan_merge, segment_name, write_segment
from vjson.storage import atomic_write, storage_error, sync_folder, write_blob

#: Rewrite the filter index file once the rows changed since it was written
#: (re-indexed at every open) exceed this fraction of it.
FILTERS_REWRITE_FRACTION = 0.1
#: Save the whole graph once a patch would hold more than this fraction of its nodes.
GRAPH_PATCH_FRACTION = 0.3
#: From this many nodes on, a graph whose patch would be wide (opening it reads
#: all of level 0 rather than mapping it) is saved whole instead: at a million
#: nodes that read is ~100 ms of an open, a full save ~250 ms of a close, and
#: every later open maps the file. (1% inserts rewrite the lists of 14% of the
#: nodes; 0.1% of 2%: both wide.) Below it a wide patch opens in milliseconds.
WHOLE_GRAPH_NODES = 250_000
#: Fold the metadata changed in older segments into a merged segment once
#: they exceed this fraction of the rows (the delta holds them meanwhile).
DELTA_FOLD_FRACTION = 0.05


def write(path: Path, m: dict, gen: Generation, seq: int, format_version: int
          ) -> tuple[dict, CheckpointRows, bool]:
    """Write checkpoint m["checkpoint"] + 1 of gen; returns its manifest, what its files hold and
    whether the graph was saved whole."""
    c = m["checkpoint"] + 1
    rows = len(gen.row_ids)
    same = gen.number == m.get("generation", 0) and m.get("segments") is not None
    before = gen.checkpoint if same else CheckpointRows()
    gen.vectors.sync()
    graph, graph_patch = _write_graph(path, m, gen, c, same)
    crcs = gen.checksum_vectors(rows)
    visible = gen.view.mask()

    # Row data: keep the older segments, rewrite the newest ones with the new rows.
    kept = list(before.segments)
    sizes = [s["rows"] for s in kept] + ([rows - before.rows] if rows > before.rows else [])
    start = plan_merge(sizes)
    if len(before.meta_changed) > DELTA_FOLD_FRACTION * rows:
        start = 0
    rewritten = rows  # rows from here on are in a segment written now, with their current metadata
    if start < len(kept) or rows > before.rows:
        row0 = kept[start]["row0"] if start < len(kept) else before.rows
        kept = kept[:start]
        name = segment_name(c, row0)
        live = visible[row0:rows].tolist()
        nbytes = write_segment(path / name, row0, [gen.row_ids[r] if keep else None
                                                   for r, keep in zip(range(row0, rows), live)],
                               [raw_json(gen.row_meta, r) if keep else b"null"
                                for r, keep in zip(range(row0, rows), live)],
                               [raw_json(gen.row_text, r) if keep else b"null"
                                for r, keep in zip(range(row0, rows), live)])
        kept.append({"file": name, "row0": row0, "rows": rows - row0, "bytes": nbytes})
        rewritten = row0
    meta_changed = {r for r in before.meta_changed if r < rewritten and visible[r]}

    # The filter index: rewritten once enough changed since, else named again.
    changed = len(before.filters_touched) + rows - before.filters_rows
    filters = m.get("filters") if same else None
    if filters is None or changed > FILTERS_REWRITE_FRACTION * max(before.filters_rows, 1):
        filters = f"filters-{c}.vjm"
        dump = io.BytesIO()
        gen.dump_filters(dump)
        atomic_write(path / filters, dump.getvalue())
        filters_rows, touched = rows, set()
    else:
        filters_rows, touched = before.filters_rows, before.filters_touched
    delta = Delta(rows, crcs, filters_rows, np.packbits(visible, bitorder="little"),
                  {r: gen.row_meta[r] for r in sorted(meta_changed)}, np.array(sorted(touched), dtype=np.int64))
    delta.write(path / delta_name(c))

    log = f"log-{c}.vjl"
    (path / log).touch()
    sync_folder(path)  # the new files' names are durable before a manifest names them
    new = dict(m)
    new.update(checkpoint=c, generation=gen.number, rows=rows, seq=seq, format=format_version,
               vectors=gen.vectors.path.name, text=gen.text.path.name if gen.text is not None else m.get("text", "text"),
               log=log, snapshot=None, graph=graph, graph_patch=graph_patch, filters=filters, segments=kept,
               delta=delta_name(c), snapshot_bytes=sum(s["bytes"] for s in kept),
               external_vectors=gen.graph.external_vectors,
               # Every write call applies its texts before it returns: the text index
               # holds every text up to seq (its own marker may lag: writes without
               # texts commit nothing to it), so opening need not compare it with the rows.
               text_seq=seq if gen.text is not None else None)
    return new, CheckpointRows(kept, filters_rows, meta_changed, touched), graph_patch is None


def _write_graph(path: Path, m: dict, gen: Generation, c: int, same: bool) -> tuple[str, str | None]:
    """A patch on the current graph file (its name kept), or the whole graph: (graph, graph_patch)."""
    graph = gen.graph
    nodes = graph.patch_nodes
    if (same and m.get("graph") and nodes is not None and nodes <= GRAPH_PATCH_FRACTION * len(graph)
            and not (len(graph) >= WHOLE_GRAPH_NODES and graph.patch_is_wide)):
        patch = graph.patch()
        if patch is not None:
            name = f"graph-{c}.vjp"
            write_blob(path / name, patch)
            return m["graph"], name
    name = f"graph-{c}.vjx"
    _save_graph(graph, path / name)
    return name, None


def _save_graph(graph: _core.HNSWIndex, path: Path) -> None:
    """Save the graph file and sync it through vjson.storage.fs (so faults can be injected)."""
    try:
        graph.save(path, durable=False)
        fd = os.open(path, os.O_RDONLY)
        try:
            storage.fs.fsync(fd)  # (looked up now: tests replace storage.fs)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, f"writing {path}") from exc
