"""Opening a database: the checkpoint, then the log written after it.

The manifest names the checkpoint's files: a snapshot of every row's id,
metadata and text, the HNSW graph (memory-mapped, not rebuilt) and the filter
index. Only the log frames after the checkpoint are replayed: their rows are
added to the graph and the indexes, their deletes and updates applied. The
text index records the last log sequence number it holds and is brought up
to date from the rows; a missing or damaged one is rebuilt with a warning.
"""

from __future__ import annotations

import builtins
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vjson import _core
from vjson._logformat import decode_record, is_unsynced
from vjson._generation import Generation, JsonRows, attach_vectors, link_rows, update_metadata
from vjson._idmap import IdMap, IdRows
from vjson._segments import CheckpointRows, Delta, Segment
from vjson.errors import CorruptionError
from vjson.metadata_index import MetadataIndex
from vjson.storage import RecordLog, VectorFile, read_blob, read_blobs

log = logging.getLogger("vjson")


class Opened:
    """What opening yields: the generation, the open log, the last sequence number, frames replayed."""

    def __init__(self, generation: Generation, record_log: RecordLog, seq: int, replayed: int) -> None:
        self.generation = generation
        self.log = record_log
        self.seq = seq
        self.replayed = replayed


def open_generation(path: Path, m: dict, durable: bool, read_only: bool, ef_search: int,
                    max_elements: int | None) -> Opened:
    dim, metric = m["dimension"], m["metric"]
    vectors = VectorFile(path / m["vectors"], dim, durable, read_only)
    record_log = None
    try:
        record_log = RecordLog(path / m["log"], durable, read_only)
        if m.get("segments") is not None:
            rows = _segmented_rows(path, m)
        else:
            rows = _snapshot_rows(path, m)
        graph = _open_graph(path, m, ef_search, max_elements)
        touched: set[int] = set()
        seq, replayed = m["seq"], 0
        ids, live_bits = rows.ids, rows.live_bits
        if record_log.size > 0:  # writes after the checkpoint: replay needs the id map now
            if ids is None:
                ids = dict(zip(rows.row_ids, range(len(rows.row_ids))))
                ids.pop(None, None)  # type: ignore[call-overload]
            seq, replayed, touched, added = _replay(record_log, vectors, rows.row_ids, rows.row_meta,
                                                    rows.row_text, ids, seq)
            if added:
                new = np.concatenate(added)
                attach_vectors(graph, vectors)
                link_rows(graph, vectors, new)
            live_bits = ids.live_bits(len(rows.row_ids)) if isinstance(ids, IdMap) else None
        if ids is None and live_bits is None:  # no checkpoint and no log: a new database
            ids = {}
        if rows.checkpoint is not None:
            metadata: Any = _lazy_metadata(path, m, rows, ids, live_bits, touched)
            rows.checkpoint.changed(sorted(touched))
        else:
            metadata = _open_metadata(path, m, rows.row_ids, rows.row_meta, ids, touched)
        generation = Generation(m.get("generation", 0), vectors, graph, metric, rows.row_ids, rows.row_meta,
                                rows.row_text, ids, metadata, None, rows.vector_crcs, live_bits, crc_rows=m["rows"],
                                checkpoint=rows.checkpoint)
        generation.text = _open_text(path, m, generation, seq, read_only)
        return Opened(generation, record_log, seq, replayed)
    except FileNotFoundError as exc:
        vectors.close()
        if record_log is not None:
            record_log.close()
        raise CorruptionError(f"{exc.filename}: missing (the manifest names it)") from None
    except BaseException:
        vectors.close()
        if record_log is not None:
            record_log.close()
        raise


class _Rows:
    """A checkpoint's rows as opened: ids, metadata, texts, the id map (or None:
    built on first use), live rows, vector checksums, what its files hold."""

    def __init__(self, row_ids: Any, row_meta: Any, row_text: Any, ids: Any, live_bits: np.ndarray | None,
                 vector_crcs: list[int], checkpoint: CheckpointRows | None = None) -> None:
        self.row_ids, self.row_meta, self.row_text = row_ids, row_meta, row_text
        self.ids, self.live_bits, self.vector_crcs = ids, live_bits, vector_crcs
        self.checkpoint = checkpoint


def _snapshot_rows(path: Path, m: dict) -> _Rows:
    """A checkpoint of manifest format 3 (one snapshot file), or none yet."""
    if m["snapshot"] is None:
        return _Rows([], [], [], None, None, [])
    snap = path / m["snapshot"]
    head, ids_json, meta_blob, meta_offs, text_blob, text_offs, live_raw = _snapshot_frames(snap)
    row_ids = orjson.loads(ids_json)
    if head["rows"] != m["rows"] or not isinstance(row_ids, list) or len(row_ids) != m["rows"]:
        raise CorruptionError(f"{snap}: row counts disagree with the manifest")
    return _Rows(row_ids, JsonRows.decode(meta_blob, meta_offs, m["rows"], f"{snap} (metadata)"),
                 JsonRows.decode(text_blob, text_offs, m["rows"], f"{snap} (texts)"), None,
                 np.frombuffer(live_raw, dtype=np.uint8), head["vector_crcs"])


def _segmented_rows(path: Path, m: dict) -> _Rows:
    """A checkpoint of manifest format 4: its segments mapped, its delta read (vjson._segments)."""
    n = m["rows"]
    segments = [Segment(path / s["file"], s["row0"], s["rows"]) for s in m["segments"]]
    delta = Delta.read(path / m["delta"], n)
    row_ids = IdRows(segments, n)
    row_meta = JsonRows([(s.row0, *s.meta) for s in segments], n)
    row_text = JsonRows([(s.row0, *s.text) for s in segments], n)
    for row, value in delta.meta.items():
        row_meta[row] = value
    live_bits = np.zeros((n + 7) // 8 + 1, dtype=np.uint8)  # (writable: the view's bitset takes it)
    live_bits[:len(delta.live)] = delta.live
    ids = IdMap(segments, row_ids, live_bits[:len(delta.live)], _core.Bitset(live_bits.copy()).count)
    held = CheckpointRows(m["segments"], delta.filters_rows, delta.meta, delta.touched.tolist())
    return _Rows(row_ids, row_meta, row_text, ids, live_bits, delta.vector_crcs, held)


def _lazy_metadata(path: Path, m: dict, rows: _Rows, ids: Any, live_bits: np.ndarray | None,
                   touched: set[int]) -> Any:
    """What loads the filter index on first use: the file, then the rows changed since it was written."""
    held = rows.checkpoint
    assert held is not None
    n = len(rows.row_ids)
    changed = sorted(held.filters_touched | touched | set(range(held.filters_rows, n)))
    assert live_bits is not None  # (an IdMap always gives them)
    bits = np.unpackbits(live_bits, bitorder="little")
    gone = [r for r in changed if not bits[r]]
    live = [r for r in changed if bits[r]]
    row_meta, name = rows.row_meta, m.get("filters")

    def load() -> MetadataIndex:
        if name is None:
            index = MetadataIndex(documents=row_meta)
        else:
            with builtins.open(path / name, "rb") as f:
                index = MetadataIndex.load(f, documents=row_meta)
        drop = [r for r in gone if r < index.n_rows]
        if drop:
            index.remove_many(drop)
        if live:
            index.set_many(live, [row_meta[r] for r in live])
        return index

    if name is not None and not (path / name).exists():
        raise CorruptionError(f"{path / name}: missing (the manifest names it)")
    return load


def _open_graph(path: Path, m: dict, ef_search: int, max_elements: int | None) -> _core.HNSWIndex:
    if m["graph"] is None:
        return _core.HNSWIndex(m["dimension"], m["metric"], m["M"], m["ef_construction"],
                               capacity=max_elements or 1024, ef_search=ef_search,
                               external_vectors=m.get("external_vectors", False),
                               quantization=m.get("quantization"))
    patch = read_blob(path / m["graph_patch"], self_checked=True) if m.get("graph_patch") else None
    graph = _core.HNSWIndex.load(path / m["graph"], ef_search=ef_search, patch=patch)
    if patch is None:  # (a patched graph tracks its changes from its base file already)
        graph.track_changes()
    if graph.external_vectors != m.get("external_vectors", False):
        raise CorruptionError(f"{path / m['graph']}: its vector layout disagrees with the manifest")
    if graph.quantization != m.get("quantization"):
        raise CorruptionError(f"{path / m['graph']}: stores {graph.quantization!r} codes, "
                              f"the manifest says {m.get('quantization')!r}")
    if len(graph) != m["rows"] or graph.dim != m["dimension"]:
        raise CorruptionError(f"{path / m['graph']}: holds {len(graph)} vectors of dimension {graph.dim}, "
                              f"the manifest says {m['rows']} of {m['dimension']}")
    if max_elements:
        graph.resize(max_elements)
    return graph


def _replay(record_log: RecordLog, vectors: VectorFile, row_ids: list, row_meta: list, row_text: list,
            ids: dict[str, int], seq: int, start: int = 0) -> tuple[int, int, set[int], list[np.ndarray]]:
    """Apply the frames after the checkpoint (from byte `start` of the log) to the row lists and id map.

    Returns the last sequence number, the frame count, the rows whose record
    changed (for the filter index) and the new rows (for the graph).
    """
    added: list[np.ndarray] = []
    touched: set[int] = set()
    frames = 0
    for offset, payload in record_log.frames(start=start):
        rec = decode_record(payload, f"{record_log.path} (byte {offset})")
        before = seq
        op, seq = rec["op"], rec["seq"]
        frames += 1
        if op == "put":
            row0, n = rec["row"], len(rec["ids"])
            if row0 != len(row_ids):
                raise CorruptionError(f"{record_log.path}: rows out of order (expected {len(row_ids)}, got {row0})")
            try:
                block = vectors.view(row0 + n)[row0:row0 + n]
                if zlib.crc32(block.data) != rec["crc"]:
                    raise CorruptionError(f"{vectors.path}: rows {row0}..{row0 + n - 1} fail their checksum")
            except CorruptionError as exc:
                if not is_unsynced(payload):
                    raise
                # Written under durability="flush": nothing ordered the vector
                # file before the log, and a power cut kept the record but not
                # its rows. It was never synced: it and what follows are lost.
                log.warning("%s: dropping unsynced records from byte %d (%s): a power cut under "
                            "durability='flush'", record_log.path, offset, exc)
                record_log.drop_tail(offset)
                frames, seq = frames - 1, before
                break
            row_ids.extend(rec["ids"])
            row_meta.extend(rec["meta"] if rec["meta"] is not None else [None] * n)
            row_text.extend(rec["text"] if rec["text"] is not None else [None] * n)
            for i, rid in enumerate(rec["ids"]):
                old = ids.get(rid)
                if old is not None:
                    touched.add(old)
                ids[rid] = row0 + i
            rows = np.arange(row0, row0 + n, dtype=np.int64)
            touched.update(rows.tolist())
            added.append(rows)
        elif op in ("del", "meta"):
            for i, rid in enumerate(rec["ids"]):
                if rid not in ids:
                    raise CorruptionError(f"{record_log.path}: record {seq} names unknown id {rid!r}")
                row = ids.pop(rid) if op == "del" else ids[rid]
                if op == "meta":
                    row_meta[row] = rec["meta"][i]
                touched.add(row)
    return seq, frames, touched, added


def _open_metadata(path: Path, m: dict, row_ids: list, row_meta: Any, ids: dict[str, int] | None,
                   touched: set[int]) -> MetadataIndex:
    """The checkpoint's filter index plus the rows the log changed, or a full rebuild."""
    if m.get("filters") is None:  # never checkpointed: everything came from the log
        assert ids is not None or not row_ids
        index = MetadataIndex(documents=row_meta)  # no second copy: the rows keep them
        live = sorted((ids or {}).values())
        index.set_many(live, [row_meta[r] for r in live])
        return index
    with builtins.open(path / m["filters"], "rb") as f:
        index = MetadataIndex.load(f, documents=row_meta)
    if not touched or ids is None:
        return index
    update_metadata(index, row_ids, row_meta, ids, touched)
    return index



def _snapshot_frames(path: Path) -> tuple[dict, bytes, bytes, bytes, bytes, bytes, bytes]:
    frames = read_blobs(path)
    if len(frames) != 7:
        raise CorruptionError(f"{path}: expected 7 sections, found {len(frames)}")
    try:
        head = orjson.loads(frames[0])
        head["rows"], head["vector_crcs"]  # noqa: B018 - both must be there
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise CorruptionError(f"{path}: unreadable header") from None
    return head, frames[1], frames[2], frames[3], frames[4], frames[5], frames[6]


def _open_text(path: Path, m: dict, gen: Generation, seq: int, read_only: bool) -> Any:
    """Open the text index at the generation's state; rebuild or resync it when needed."""
    from vjson.text_index import TextIndex

    folder = path / m.get("text", "text")
    tokenizer = m["tokenizer"]
    if read_only:
        try:
            return TextIndex(folder, tokenizer, read_only=True)
        except CorruptionError as exc:
            log.warning("%s: text index unreadable (%s); text search is off for this reader", folder, exc)
            return None
    if not (folder / "meta.json").exists() and seq > 0:
        log.warning("%s: text index missing; rebuilding it from the stored texts", folder)
        return rebuild_text(folder, tokenizer, gen.row_text, gen.visible_rows(), seq)
    try:
        text = TextIndex(folder, tokenizer)
        marker = text.marker
    except CorruptionError as exc:  # a second writer (DatabaseLockedError) propagates
        log.warning("%s: text index unusable (%s); rebuilding it from the stored texts", folder, exc)
        return rebuild_text(folder, tokenizer, gen.row_text, gen.visible_rows(), seq)
    known = m.get("text_seq")
    if known is not None and (marker is None or marker < known):
        # The checkpoint found it complete up to then; writes without texts
        # since its last commit left its own marker behind.
        marker = known
    if marker != seq:
        resync_text(text, gen.row_text, gen.visible_rows(), seq)
    return text


def rebuild_text(folder: Path, tokenizer: str, row_text: Any, live: np.ndarray, seq: int) -> Any:
    """A new text index of the texts of the `live` rows (ascending)."""
    from vjson.text_index import TextIndex

    rows = [row for row in live.tolist() if row_text[row] is not None]
    return TextIndex.recreate(folder, tokenizer, rows, [row_text[r] for r in rows], marker=seq)


def resync_text(text: Any, row_text: Any, rows: np.ndarray, seq: int) -> None:
    """Make the text index hold exactly the texts of the live `rows` (idempotent; after a crash)."""
    have = set(text.rows().tolist())
    live = [(row, row_text[row]) for row in rows.tolist() if row_text[row] is not None]
    stale = sorted(have - {row for row, _ in live})
    missing = [(row, t) for row, t in live if row not in have]
    if stale:
        text.delete(stale)
    if missing:
        text.add([r for r, _ in missing], [t for _, t in missing])
    text.commit(seq)
