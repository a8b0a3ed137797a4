"""Read-only handles that follow the writer.

A read-only VectorDB checks before every read call whether the writer has
committed anything since it last looked: one ``stat`` of the manifest and one
``fstat`` of the log (about a microsecond each), no parsing. Then:

- the log grew: the new frames (from the last offset read) are applied to the
  generation in memory, as replay on open does, and published in one step;
- the manifest changed (a checkpoint or compaction): the new checkpoint is
  opened under a lease (vjson._leases) and replaces the old generation, whose
  files stay valid for calls still running on it.

A frame is committed once it is whole in the log, so a read call sees every
write whose call returned before it started.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from vjson import _leases
from vjson._generation import Generation, attach_vectors, link_rows
from vjson._opening import _replay
from vjson.errors import CorruptionError, StorageError, VJsonError
from vjson.storage import RecordLog

log = logging.getLogger("vjson")

Stamp = tuple[int, int, int, int]


def manifest_stamp(path: str) -> Stamp:
    """Identity of the manifest file: atomic_write replaces it, so any commit changes it."""
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns


def leased_manifest(folder: Path, manifest_path: str, read_manifest: Callable[[], dict]
                    ) -> tuple[dict, _leases.Lease | None, Stamp]:
    """The current manifest, with a lease on its checkpoint taken before anything it names is opened."""
    for _ in range(1000):
        stamp = manifest_stamp(manifest_path)
        m = read_manifest()
        lease = _leases.take(folder, m["checkpoint"])
        if manifest_stamp(manifest_path) == stamp:
            return m, lease, stamp
        if lease is not None:  # the writer moved on meanwhile: the lease may be of deleted files
            lease.release()
    raise StorageError(0, f"{folder}: the manifest kept changing while this reader opened it")


def apply_new_frames(gen: Generation, record_log: RecordLog, seq: int) -> int:
    """Apply the log frames written since `record_log.size` to gen; returns the new last sequence number."""
    gen.vectors.refresh()  # the writer wrote the rows before the frame naming them
    ids = gen.ids
    start = record_log.size
    seq, frames, touched, added = _replay(record_log, gen.vectors, gen.row_ids, gen.row_meta, gen.row_text,
                                          ids, seq, start)
    if not frames:
        return seq
    born = np.concatenate(added) if added else np.empty(0, dtype=np.int64)
    if len(born):
        attach_vectors(gen.graph, gen.vectors)
        link_rows(gen.graph, gen.vectors, born)
    dead = [r for r in touched if ids.get(gen.row_ids[r]) != r]  # type: ignore[arg-type]
    gen.follow_metadata(touched)
    gen.publish(born, dead)
    if gen.text is not None:
        reload_text(gen)
    return seq


def follow_text(gen: Generation, seen: Stamp | None) -> Stamp | None:
    """Before a text search: reload the text index if the writer committed to it since `seen`.

    The writer commits texts just after the log frame of the same call, so a
    reader may apply the frame before the texts land: this check (a stat of
    tantivy's meta.json, which every commit replaces) catches up.
    """
    assert gen.text is not None
    try:
        stamp = manifest_stamp(str(gen.text.path / "meta.json"))
    except FileNotFoundError:
        return seen
    if stamp != seen:
        reload_text(gen)
    return stamp


def reload_text(gen: Generation) -> None:
    """Point the text index at the writer's latest commit.

    Tantivy may delete merged segment files between our reading its meta.json
    and opening them: try again, then keep the previous searcher.
    """
    assert gen.text is not None
    for attempt in range(5):
        try:
            gen.text.reload()
            return
        except (CorruptionError, VJsonError) as exc:
            if attempt == 4:
                log.warning("%s: could not follow the text index (%s); text search lags", gen.text.path, exc)
