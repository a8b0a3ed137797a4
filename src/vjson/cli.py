"""The ``vjson`` command line (also ``python -m vjson``).

Commands (``vjson COMMAND --help`` tells more):

``vjson demo [PATH]``
    Build a database from the WordNet sample shipped with the package and run
    vector, filtered, full-text and hybrid searches on it, with timings.
``vjson import PATH --vectors V.npy [--ids F | --id-field F] [--metadata M.jsonl] [--text-field F]``
    Bulk-load records, creating the database if needed.
``vjson search PATH (--vector JSON | --vector-file Q.npy [--row I] | --text QUERY) [--hybrid]``
    Search, optionally under ``--filter JSON``; ``--json`` for scripts.
``vjson info PATH``, ``vjson verify PATH``, ``vjson compact PATH``
    Settings, counts and sizes; a full checksum and invariant check; rewrite
    without deleted records.

Exit status: 0 on success; 1 when vjson reports an error (or ``verify`` finds
a problem); 2 for a usage error; 130 when interrupted. An error is one line
on stderr; ``--debug`` adds the traceback and debug logging.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np
import orjson

import vjson
from vjson.errors import InvalidInputError, NotADatabaseError, VJsonError

log = logging.getLogger("vjson")

#: Where the demo data set lives (package data; see demo_data/LICENSE-WordNet.txt).
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
MANIFEST = "MANIFEST.json"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line: reported as one line on stderr, exit status 2."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog  # None: the running command's name


class CliError(Exception):
    """A failure the command reports in one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')", self.prog)


# ---------------------------------------------------------------- formatting

def _count(n: int) -> str:
    return f"{n:,}"


def _size(n: int) -> str:
    """Bytes as B / KiB / MiB / GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:max(width - 3, 0)] + "..."


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 140))


def _to_json(value: Any) -> Any:
    """json.dumps default: numpy scalars and arrays to Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_to_json, ensure_ascii=False))


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


# ---------------------------------------------------------------- input helpers

def _parse_json(text: str, option: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{option}: not valid JSON ({exc})") from None


def _parse_filter(text: str | None) -> dict | None:
    if text is None:
        return None
    value = _parse_json(text, "--filter")
    if not isinstance(value, dict):
        raise UsageError(f"--filter must be a JSON object, got {type(value).__name__}")
    return value


def _load_npy(path: str | Path, what: str) -> np.ndarray:
    """A .npy array, memory-mapped when possible (never pickles)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise CliError(f"{what} {path}: not a numeric .npy file ({exc})") from None


def _jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line of a JSON-lines file."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield lineno, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise CliError(f"{path}:{lineno}: not valid JSON ({exc})") from None


def _check_jsonl_objects(path: str | Path) -> int:
    """Count the records of a metadata file, checking each is a JSON object or null."""
    n = 0
    for lineno, value in _jsonl(path):
        if value is not None and not isinstance(value, dict):
            raise CliError(f"{path}:{lineno}: expected a JSON object, got {type(value).__name__}")
        n += 1
    return n


def _read_ids(path: str | Path) -> list[str]:
    """One id per line (the line as it is, without its line break); blank lines are errors."""
    ids = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            rid = line.rstrip("\r\n")
            if not rid:
                raise CliError(f"{path}:{lineno}: empty id")
            ids.append(rid)
    return ids


def _open_existing(path: str, read_only: bool = True) -> vjson.VectorDB:
    """Open a database that must exist (NotADatabaseError otherwise)."""
    return vjson.open(path, read_only=read_only)


# ---------------------------------------------------------------- files on disk

def _manifest(folder: Path) -> dict[str, Any]:
    from vjson import _manifest as manifest

    return manifest.read(folder)


def _files(folder: Path) -> dict[str, dict[str, int]]:
    """Size of each file in the database folder; a subfolder counts as one entry."""
    out: dict[str, dict[str, int]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            size = disk = files = 0
            for root, _, names in os.walk(entry):
                for name in names:
                    st = os.stat(os.path.join(root, name))
                    size += st.st_size
                    disk += st.st_blocks * 512
                    files += 1
            out[entry.name + "/"] = {"bytes": size, "disk_bytes": disk, "files": files}
        else:
            st = entry.stat()
            out[entry.name] = {"bytes": st.st_size, "disk_bytes": st.st_blocks * 512, "files": 1}
    return out


def _log_stats(folder: Path, manifest: dict[str, Any]) -> dict[str, int]:
    """Records in the write-ahead log since the checkpoint, and the rows they added."""
    from vjson import _logformat

    path = folder / manifest["log"]
    if not path.exists():
        return {"records": 0, "rows_added": 0, "bytes": 0}
    recs, found = _logformat.records(path)
    rows = sum(len(rec["ids"]) for rec in recs if rec["op"] == "put")
    return {"records": len(recs), "rows_added": rows, "bytes": found.end}


def _graph_stats(folder: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Statistics of the checkpointed HNSW graph file (mapped, not read whole)."""
    name = manifest.get("graph")
    if not name:
        return None
    graph = vjson.HNSWIndex.load(folder / name)
    try:
        return {"file": name, "nodes": graph.element_count, "labels": len(graph),
                "deleted_slots": graph.deleted_count, "max_level": graph.max_level,
                "levels": graph.max_level + 1, "M": graph.M, "ef_construction": graph.ef_construction}
    finally:
        graph.close()


def _filter_stats(folder: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The metadata fields the checkpointed filter index holds, with how many records have each."""
    from vjson.metadata_index import NO_DOCUMENTS, MetadataIndex

    name = manifest.get("filters")
    if not name:
        return None
    with open(folder / name, "rb") as f:
        index = MetadataIndex.load(f, documents=NO_DOCUMENTS)  # field counts need no documents
    fields: dict[str, int | None] = {}
    for path in index.paths():
        try:
            fields[path] = index.count({path: {"$exists": True}})
        except VJsonError:  # a path the filter language cannot address
            fields[path] = None
    return {"file": name, "fields": fields}


def _text_stats(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    from vjson.text_index import TextIndex

    text = folder / manifest.get("text", "text")
    if not (text / "meta.json").exists():
        return {"documents": 0, "tokenizer": None}
    index = TextIndex(text, tokenizer=None, read_only=True)
    try:
        return {"documents": index.count(), "tokenizer": index.tokenizer}
    finally:
        index.close()


# ---------------------------------------------------------------- demo

class DemoData(NamedTuple):
    """The bundled WordNet sample: records, held-out gloss queries and keyword queries."""

    ids: list[str]
    vectors: np.ndarray          # (n, 384) float32
    texts: list[str]
    metadata: list[dict]
    queries: np.ndarray          # (20, 384) float32: held-out glosses
    query_texts: list[str]
    keywords: list[str]          # keyword queries (WordNet lemmas)
    keyword_vectors: np.ndarray  # (20, 384) float32
    relevant: list[set[str]]     # judged relevant ids of each keyword query


def load_demo_data(folder: Path = DEMO_DATA) -> DemoData:
    """Read the demo data set shipped in ``vjson/demo_data``."""
    try:
        records = [value for _, value in _jsonl(folder / "records.jsonl")]
        queries = [value for _, value in _jsonl(folder / "query_texts.jsonl")]
        keywords = [value for _, value in _jsonl(folder / "hybrid_queries.jsonl")]
        arrays = [np.load(folder / name, allow_pickle=False).astype(np.float32)
                  for name in ("base.f16.npy", "queries.f16.npy", "hybrid_queries.f16.npy")]
    except FileNotFoundError as exc:
        raise CliError(f"the demo data is missing from this installation ({exc.filename}); "
                       "reinstall vjson") from None
    return DemoData(
        ids=[r["id"] for r in records], vectors=arrays[0], texts=[r["text"] for r in records],
        metadata=[{k: v for k, v in r.items() if k not in ("id", "text")} for r in records],
        queries=arrays[1], query_texts=[q["text"] for q in queries],
        keywords=[q["query"] for q in keywords], keyword_vectors=arrays[2],
        relevant=[set(q["relevant"]) for q in keywords],
    )


def _print_hits(results: Sequence[Any], relevant: set[str] | None = None) -> None:
    width = _width()
    for r in results:
        meta = r.metadata or {}
        lemma = (meta.get("lemmas") or ["?"])[0]
        mark = "*" if relevant is not None and r.id in relevant else " "
        head = f"   {mark}{r.score:7.3f}  {r.id}  {meta.get('pos', '?')}  {_clip(lemma, 18):<18}  "
        print(head + _clip(r.text or "", width - len(head)))


def _timed(fn: Callable[[], Any], rounds: int = 1) -> tuple[Any, list[float]]:
    times = []
    result = None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, times


def _latency(samples: list[float]) -> str:
    arr = np.asarray(samples)
    return f"median {_duration(float(np.median(arr))):>9}   p95 {_duration(float(np.quantile(arr, 0.95))):>9}"


def _overlap(found: Sequence[str], want: Sequence[str] | set[str]) -> float:
    want = set(want)
    return len(set(found) & want) / max(len(want), 1)


def cmd_demo(args: argparse.Namespace) -> int:
    """``vjson demo [PATH]``: build and search a database of WordNet glosses."""
    data = load_demo_data()
    simd = vjson.simd_info()
    print(f"vjson {vjson.__version__} demo: {len(data.ids):,} WordNet 3.0 glosses, embedded with "
          f"all-MiniLM-L6-v2 ({data.vectors.shape[1]}-d, cosine)")
    print(f"SIMD kernels {simd['active']}, {vjson.default_threads()} threads")
    temporary = args.path is None
    folder = Path(tempfile.mkdtemp(prefix="vjson-demo-")) if temporary else Path(args.path)
    try:
        _run_demo(data, folder, temporary)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    return EXIT_OK


def _run_demo(data: DemoData, folder: Path, temporary: bool) -> None:
    note = "a temporary folder, removed at the end" if temporary else "kept"
    print(f"database: {folder} ({note})\n")

    db = vjson.VectorDB(folder, dimension=data.vectors.shape[1], metric="cosine")
    try:
        _, t_insert = _timed(lambda: db.insert_batch(data.ids, data.vectors, data.metadata, data.texts))
        n = len(db)
        _, t_close = _timed(db.close)
        db, t_open = _timed(lambda: vjson.open(folder))
        print("1. Insert")
        print(f"   db.insert_batch(ids, vectors, metadatas, texts): {len(data.ids):,} records in one atomic, "
              f"fsynced batch: {_duration(t_insert[0])} ({len(data.ids) / t_insert[0]:,.0f} records/s)")
        print(f"   db.close() (checkpoint: graph, row segments, filter index): {_duration(t_close[0])}; "
              f"vjson.open(path): {_duration(t_open[0])}; {n:,} records\n")
        _demo_queries(db, data)
    finally:
        db.close()
    _print_sizes(folder)
    if temporary:
        print("\nKeep a database to explore with 'vjson demo ./demo-db', then try:")
        target = "./demo-db"
    else:
        print("\nExplore it:")
        target = str(folder)
    print(f"   vjson info {target}\n"
          f"   vjson search {target} --text storm --filter '{{\"pos\": \"v\"}}'\n"
          f"   vjson verify {target}")


def _print_sizes(folder: Path) -> None:
    files = _files(folder)
    total = sum(f["bytes"] for f in files.values())
    parts = ", ".join(f"{name} {_size(f['bytes'])}" for name, f in files.items() if f["bytes"])
    print(f"On disk: {_size(total)} ({parts})")


def _demo_queries(db: vjson.VectorDB, data: DemoData) -> None:
    q = 0
    kw = data.keywords.index("storm") if "storm" in data.keywords else 0
    hy = data.keywords.index("beaver") if "beaver" in data.keywords else 1 % len(data.keywords)

    print("2. Vector search: the glosses nearest to a gloss that is not in the database")
    print(f"   query: \"{_clip(data.query_texts[q], _width() - 15)}\"")
    print("   db.search(vector, k=5)")
    _print_hits(db.search(data.queries[q], k=5))

    word = data.keywords[kw]
    print(f"\n3. Filtered vector search: the embedding of the word \"{word}\", verb senses only")
    print("   db.search(vector, k=5, filter={\"pos\": \"v\"})")
    _print_hits(db.search(data.keyword_vectors[kw], k=5, filter={"pos": "v"}), data.relevant[kw])

    print(f"\n4. Full-text search (BM25 over the glosses): \"{word}\"")
    print(f"   db.text_search(\"{word}\", k=5)")
    _print_hits(db.text_search(word, k=5, syntax=False), data.relevant[kw])

    word = data.keywords[hy]
    print(f"\n5. Hybrid search: \"{word}\", vector and BM25 fused by reciprocal rank   (* = a gloss of \"{word}\")")
    print(f"   db.hybrid_search(vector, \"{word}\", k=5)")
    _print_hits(db.hybrid_search(data.keyword_vectors[hy], word, k=5), data.relevant[hy])

    _demo_summary(db, data)


def _demo_summary(db: vjson.VectorDB, data: DemoData) -> None:
    k, rounds = 10, 5
    verbs = np.array([m.get("pos") == "v" for m in data.metadata])
    exact_all, _ = vjson.brute_force_knn(data.vectors, data.queries, k, metric="cosine")
    verb_rows = np.flatnonzero(verbs)
    exact_verbs, _ = vjson.brute_force_knn(data.vectors[verb_rows], data.queries, k, metric="cosine")
    ids = np.asarray(data.ids)
    same_set = len(db) == len(data.ids)

    plain: list[float] = []
    filtered: list[float] = []
    recall_plain: list[float] = []
    recall_filtered: list[float] = []
    for i, vec in enumerate(data.queries):
        res, t = _timed(lambda: db.search(vec, k=k), rounds)
        plain += t
        recall_plain.append(_overlap([r.id for r in res], ids[exact_all[i]].tolist()))
        res, t = _timed(lambda: db.search(vec, k=k, filter={"pos": "v"}), rounds)
        filtered += t
        recall_filtered.append(_overlap([r.id for r in res], ids[verb_rows[exact_verbs[i]]].tolist()))

    text_t: list[float] = []
    hybrid_t: list[float] = []
    found: dict[str, list[float]] = {"vector": [], "text": [], "hybrid": []}
    for word, vec, rel in zip(data.keywords, data.keyword_vectors, data.relevant):
        res, t = _timed(lambda: db.text_search(word, k=k, syntax=False), rounds)
        text_t += t
        found["text"].append(_overlap([r.id for r in res], rel))
        res, t = _timed(lambda: db.hybrid_search(vec, word, k=k), rounds)
        hybrid_t += t
        found["hybrid"].append(_overlap([r.id for r in res], rel))
        found["vector"].append(_overlap([r.id for r in db.search(vec, k=k)], rel))

    nq, nk = len(data.queries), len(data.keywords)
    print(f"\n6. Latency per query (k={k}; {nq} gloss queries, {nk} keyword queries, {rounds} rounds each)")
    exact = "   recall@10 against exact search {:.3f}"
    print(f"   vector            {_latency(plain)}" + (exact.format(np.mean(recall_plain)) if same_set else ""))
    print(f"   filtered pos=v    {_latency(filtered)}"
          + (exact.format(np.mean(recall_filtered)) if same_set else ""))
    print(f"   full text         {_latency(text_t)}")
    print(f"   hybrid            {_latency(hybrid_t)}")
    print(f"   Keyword queries, share of each word's glosses found in the top {k}: "
          + ", ".join(f"{name} {np.mean(v):.2f}" for name, v in found.items()))
    print("   (a tiny sample that holds every judged gloss: far easier than the full 80,000-gloss benchmark)\n")


# ---------------------------------------------------------------- import

def _ids_for(args: argparse.Namespace, n: int) -> list[str] | None:
    """Ids from --ids, or None when they come from --id-field or default to row numbers."""
    if args.ids is None:
        return None
    ids = _read_ids(args.ids)
    if len(ids) != n:
        raise CliError(f"{args.ids} holds {len(ids):,} ids for {n:,} vectors")
    return ids


def _split_record(args: argparse.Namespace, row: int, meta: dict | None) -> tuple[str | None, dict | None, str | None]:
    """(id from --id-field, metadata, text from --text-field) of one metadata line."""
    rid = text = None
    if args.id_field is not None:
        value = (meta or {}).get(args.id_field)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise CliError(f"row {row}: --id-field {args.id_field!r} must be a non-empty string or an int, "
                           f"got {value!r:.60}")
        rid = str(value)
    if args.text_field is not None and meta is not None and args.text_field in meta:
        meta = dict(meta)
        value = meta.pop(args.text_field)
        if value is not None and not isinstance(value, str):
            raise CliError(f"row {row}: --text-field {args.text_field!r} must be a string, got {type(value).__name__}")
        text = value
    return rid, meta, text


def cmd_import(args: argparse.Namespace) -> int:
    """``vjson import PATH --vectors V.npy ...``: bulk-load records in batches."""
    from tqdm import tqdm

    if args.id_field is not None and args.metadata is None:
        raise UsageError("--id-field needs --metadata")
    if args.text_field is not None and args.metadata is None:
        raise UsageError("--text-field needs --metadata")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be positive")
    vectors = _load_npy(args.vectors, "--vectors")
    if vectors.ndim != 2 or vectors.dtype.kind not in "fiu":
        raise CliError(f"--vectors {args.vectors}: need a 2-D numeric array, got {vectors.dtype} {vectors.shape}")
    n, dim = vectors.shape
    if args.dimension is not None and args.dimension != dim:
        raise CliError(f"--dimension {args.dimension}, but {args.vectors} holds {dim}-d vectors")
    ids = _ids_for(args, n)
    if args.metadata is not None:
        count = _check_jsonl_objects(args.metadata)
        if count != n:
            raise CliError(f"{args.metadata} holds {count:,} records for {n:,} vectors")

    folder = Path(args.path)
    creating = not (folder / MANIFEST).exists()
    if creating:
        db = vjson.VectorDB(folder, dimension=dim, metric=args.metric or "cosine", M=args.M,
                            ef_construction=args.ef_construction)
    else:
        db = vjson.VectorDB(folder)
    try:
        if args.metric is not None and args.metric != db.metric:
            raise InvalidInputError(f"{folder} stores metric {db.metric!r}, not {args.metric!r}")
        if db.dimension != dim:
            raise InvalidInputError(f"{folder} stores {db.dimension}-d vectors, {args.vectors} holds {dim}-d")
        before = len(db)
        metas_iter = (value for _, value in _jsonl(args.metadata)) if args.metadata is not None else None
        start_time = time.perf_counter()
        done = 0
        with tqdm(total=n, unit="rec", unit_scale=True, desc="importing", file=sys.stderr,
                  disable=not _progress_enabled(args), dynamic_ncols=True) as bar:
            for start in range(0, n, args.batch_size):
                stop = min(n, start + args.batch_size)
                batch_ids = ids[start:stop] if ids is not None else [str(i) for i in range(start, stop)]
                metas = texts = None
                if metas_iter is not None:
                    metas, texts = [], []
                    for row in range(start, stop):
                        rid, meta, text = _split_record(args, row, next(metas_iter))
                        if rid is not None:
                            batch_ids[row - start] = rid
                        metas.append(meta)
                        texts.append(text)
                try:
                    db.insert_batch(batch_ids, np.asarray(vectors[start:stop], dtype=np.float32), metas, texts)
                except VJsonError as exc:
                    done_note = f"rows 0..{start - 1} were imported" if start else "nothing was imported"
                    raise type(exc)(f"rows {start}..{stop - 1}: {exc} ({done_note})") from exc
                done = stop
                bar.update(stop - start)
        elapsed = time.perf_counter() - start_time
        after = len(db)
    finally:
        _, t_close = _timed(db.close)
    action = "created" if creating else "updated"
    print(f"imported {done:,} records in {_duration(elapsed)} ({done / max(elapsed, 1e-9):,.0f} records/s); "
          f"checkpoint {_duration(t_close[0])}")
    print(f"{action} {folder}: {after:,} records ({after - before:+,})")
    return EXIT_OK


# ---------------------------------------------------------------- search

def _query_vector(args: argparse.Namespace) -> np.ndarray | None:
    if args.row is not None and args.vector_file is None:
        raise UsageError("--row goes with --vector-file")
    if args.vector is not None:
        value = _parse_json(args.vector, "--vector")
        if not isinstance(value, list) or not value or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            raise UsageError("--vector must be a JSON list of numbers, like [0.1, 0.2]")
        return np.asarray(value, dtype=np.float32)
    if args.vector_file is not None:
        array = _load_npy(args.vector_file, "--vector-file")
        if array.ndim == 1:
            if args.row not in (None, 0):
                raise UsageError(f"{args.vector_file} holds one vector: --row must be 0")
            return np.asarray(array, dtype=np.float32)
        if array.ndim != 2:
            raise CliError(f"--vector-file {args.vector_file}: need a 1-D or 2-D array, got shape {array.shape}")
        row = 0 if args.row is None else args.row
        if not -array.shape[0] <= row < array.shape[0]:
            raise UsageError(f"--row {row} is outside {args.vector_file}'s {array.shape[0]} rows")
        return np.asarray(array[row], dtype=np.float32)
    return None


def _result_dict(result: Any) -> dict[str, Any]:
    out = result.as_dict()
    out.pop("vector", None)
    return {key: (value.item() if isinstance(value, np.generic) else value) for key, value in out.items()}


def cmd_search(args: argparse.Namespace) -> int:
    """``vjson search PATH ...``: vector, text or hybrid search, printed or as JSON."""
    flt = _parse_filter(args.filter)
    vector = _query_vector(args)
    text = args.text
    if args.hybrid and (vector is None or text is None):
        raise UsageError("--hybrid needs both a vector (--vector or --vector-file) and --text")
    if not args.hybrid and vector is not None and text is not None:
        raise UsageError("give --hybrid to combine a vector with --text")
    if vector is None and text is None:
        raise UsageError("give a query: --vector, --vector-file or --text")
    if args.k < 1:
        raise UsageError("-k must be positive")
    mode = "hybrid" if args.hybrid else "vector" if vector is not None else "text"

    db = _open_existing(args.path)
    try:
        if vector is not None and vector.shape[0] != db.dimension:
            raise UsageError(f"the query vector has {vector.shape[0]} values, the database's dimension "
                             f"is {db.dimension}")
        start = time.perf_counter()
        if mode == "hybrid":
            results: list[Any] = db.hybrid_search(vector, text, k=args.k, filter=flt, fusion=args.fusion,
                                                  ef_search=args.ef_search, syntax=args.syntax)
        elif mode == "vector":
            results = db.search(vector, k=args.k, filter=flt, ef_search=args.ef_search)
        else:
            results = db.text_search(text, k=args.k, filter=flt, syntax=args.syntax)
        elapsed = time.perf_counter() - start
    finally:
        db.close()

    if args.json:
        _print_json({"mode": mode, "k": args.k, "filter": flt, "text": text,
                     "elapsed_ms": round(elapsed * 1e3, 3), "results": [_result_dict(r) for r in results]})
        return EXIT_OK
    where = f", filter {json.dumps(flt)}" if flt is not None else ""
    print(f"{len(results)} result{'s' * (len(results) != 1)} ({mode} search, k={args.k}{where}) "
          f"in {_duration(elapsed)}")
    width = _width()
    for i, r in enumerate(results, 1):
        extra = ""
        if mode == "hybrid":
            ranks = [f"{side} #{rank}" if rank else f"{side} -" for side, rank in
                     (("vector", r.vector_rank), ("text", r.text_rank))]
            extra = f"  [{', '.join(ranks)}]"
        head = f"{i:>3}  {r.score:9.4f}  {r.id}{extra}"
        print(head)
        if r.text:
            print("     " + _clip(r.text, width - 5))
        if r.metadata is not None:
            print("     " + _clip(json.dumps(r.metadata, ensure_ascii=False, default=_to_json), width - 5))
    return EXIT_OK


# ---------------------------------------------------------------- info, verify, compact

def database_info(path: str | Path) -> dict[str, Any]:
    """Settings, counts, file sizes and index statistics of the database at `path`.

    Opens it read-only (alongside a writer, if any). The graph and filter
    statistics describe the last checkpoint; ``log`` counts what was written
    since.
    """
    folder = Path(path)
    with _open_existing(str(folder)) as db:
        records = len(db)
        graph_index = db._current().graph
        ram_per_vector = graph_index.ram_bytes_per_vector
        manifest = _manifest(folder)
        log_stats = _log_stats(folder, manifest)
        graph = _graph_stats(folder, manifest)
        filters = _filter_stats(folder, manifest)
        text = _text_stats(folder, manifest)
    rows = int(manifest.get("rows", 0)) + log_stats["rows_added"]
    files = _files(folder)
    total_bytes = sum(f["bytes"] for f in files.values())
    dim = int(manifest["dimension"])
    return {
        "path": str(folder.resolve()),
        "settings": {key: manifest.get(key) for key in
                     ("format", "dimension", "metric", "M", "ef_construction", "tokenizer",
                      "quantization")},
        "checkpoint": manifest.get("checkpoint"),
        "vectors": {
            "quantization": manifest.get("quantization") or "float32",
            # what searches keep in RAM per vector (graph record + code), what the
            # float32 vector takes on disk, and every file's share per stored row
            "ram_bytes_per_vector": ram_per_vector,
            "float32_bytes_per_vector": 4 * dim,
            "disk_bytes_per_vector": total_bytes / rows if rows else None,
        },
        "records": records,
        "rows": rows,
        "retired_rows": rows - records,
        "log": log_stats,
        "graph": graph,
        "filters": filters,
        "text": text,
        "files": files,
        "total_bytes": total_bytes,
        "disk_bytes": sum(f["disk_bytes"] for f in files.values()),
    }


def cmd_info(args: argparse.Namespace) -> int:
    """``vjson info PATH``: what the database holds and what it takes on disk."""
    info = database_info(args.path)
    if args.json:
        _print_json(info)
        return EXIT_OK
    s = info["settings"]
    print(f"database      {info['path']}")
    print(f"settings      dimension {s['dimension']}, metric {s['metric']}, M {s['M']}, "
          f"ef_construction {s['ef_construction']}, tokenizer {s['tokenizer']}, format {s['format']}")
    print(f"records       {_count(info['records'])} ({_count(info['rows'])} rows stored; "
          f"{_count(info['retired_rows'])} deleted or replaced, reclaimed by 'vjson compact')")
    v = info["vectors"]
    rescored = ", read only to rescore" if v["quantization"] != "float32" else ""
    per_row = f"; {v['disk_bytes_per_vector']:,.0f} B per row on disk in all" if v["disk_bytes_per_vector"] else ""
    print(f"vectors       {v['quantization']}: {v['ram_bytes_per_vector']:,} B per vector in RAM (graph and codes), "
          f"{v['float32_bytes_per_vector']:,} B float32 on disk{rescored}{per_row}")
    lg = info["log"]
    print(f"checkpoint    {info['checkpoint']}; {_count(lg['records'])} write records "
          f"({_count(lg['rows_added'])} rows, {_size(lg['bytes'])}) logged since")
    g = info["graph"]
    if g is None:
        print("graph         no checkpoint yet (built from the log when opened)")
    else:
        print(f"graph         {_count(g['nodes'])} nodes, {g['levels']} levels, M {g['M']}, "
              f"{_count(g['deleted_slots'])} free slots (as of the checkpoint)")
    f = info["filters"]
    if f is None:
        print("filter index  no checkpoint yet")
    else:
        fields = f["fields"]
        shown = ", ".join(f"{k} ({_count(v)})" if v is not None else k for k, v in list(fields.items())[:20])
        more = f", ... {len(fields) - 20} more" if len(fields) > 20 else ""
        print(f"filter index  {len(fields)} field{'s' * (len(fields) != 1)}" + (f": {shown}{more}" if fields else ""))
    t = info["text"]
    tokenizer = f", tokenizer {t['tokenizer']}" if t["tokenizer"] else ""
    print(f"text index    {_count(t['documents'])} documents{tokenizer}")
    print("files")
    for name, entry in info["files"].items():
        count = f" ({entry['files']} files)" if name.endswith("/") else ""
        print(f"  {name:<22}{_size(entry['bytes']):>12}{count}")
    print(f"  {'total':<22}{_size(info['total_bytes']):>12}  ({_size(info['disk_bytes'])} allocated)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """``vjson verify PATH``: every checksum and cross-index invariant; exit 1 when not ok."""
    start = time.perf_counter()
    try:
        db = _open_existing(args.path)
    except NotADatabaseError:
        raise
    except VJsonError as exc:  # damage that stops it from opening is a finding, not a crash
        report: dict[str, Any] = {"ok": False, "problems": [f"open: {exc}"], "records": None, "rows": None,
                                  "checked": []}
    else:
        try:
            report = db.verify()
        finally:
            db.close()
    report = {"path": str(Path(args.path).resolve()), **report,
              "elapsed_s": round(time.perf_counter() - start, 3)}
    if args.json:
        _print_json(report)
    else:
        for what in report["checked"]:
            print(f"  ok      {what}")
        for problem in report["problems"]:
            print(f"  FAILED  {problem}")
        if report["ok"]:
            print(f"ok: {len(report['checked'])} checks passed; {_count(report['records'])} records, "
                  f"{_count(report['rows'])} rows ({_duration(report['elapsed_s'])})")
        else:
            print(f"NOT OK: {len(report['problems'])} problem{'s' * (len(report['problems']) != 1)} "
                  f"in {report['path']}")
    return EXIT_OK if report["ok"] else EXIT_ERROR


class _Spinner:
    """Elapsed time on stderr while a long call runs (only on a terminal)."""

    def __init__(self, desc: str, enabled: bool) -> None:
        self.desc = desc
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Spinner:
        if self.enabled:
            from tqdm import tqdm

            bar = tqdm(total=None, desc=self.desc, bar_format="{desc}: {elapsed}", file=sys.stderr)

            def spin() -> None:
                while not self._stop.wait(0.25):
                    bar.refresh()
                bar.close()

            self._thread = threading.Thread(target=spin, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def cmd_compact(args: argparse.Namespace) -> int:
    """``vjson compact PATH``: drop deleted and replaced records, rebuild the graph."""
    folder = Path(args.path)
    db = _open_existing(str(folder), read_only=False)
    try:
        manifest = _manifest(folder)
        rows = int(manifest.get("rows", 0)) + _log_stats(folder, manifest)["rows_added"]
        records = len(db)
        before = sum(f["bytes"] for f in _files(folder).values())
        start = time.perf_counter()
        with _Spinner("compacting", _progress_enabled(args)):
            db.compact()
        elapsed = time.perf_counter() - start
    finally:
        db.close()
    after = sum(f["bytes"] for f in _files(folder).values())
    report = {"path": str(folder.resolve()), "records": records, "rows_before": rows,
              "rows_dropped": rows - records, "bytes_before": before, "bytes_after": after,
              "elapsed_s": round(elapsed, 3)}
    if args.json:
        _print_json(report)
    else:
        print(f"compacted {folder} in {_duration(elapsed)}: {_count(records)} records kept, "
              f"{_count(rows - records)} deleted or replaced rows dropped; {_size(before)} -> {_size(after)}")
    return EXIT_OK


# ---------------------------------------------------------------- the parser

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vjson`` command."""
    parser = _Parser(prog="vjson", description="vjson: an embedded vector database. "
                     "Build, search and check databases from the shell.",
                     epilog="Exit status: 0 ok, 1 error (or verify found a problem), 2 usage error.")
    parser.add_argument("--version", action="version", version=f"vjson {vjson.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str,
                description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description or help, parents=[common])
        p.set_defaults(run=run)
        return p

    p = command("demo", cmd_demo, "build a database of 1,200 WordNet glosses and search it",
                "Create a database from the WordNet 3.0 sample shipped with vjson (glosses embedded with "
                "all-MiniLM-L6-v2), then run vector, filtered, full-text and hybrid searches and time them.")
    p.add_argument("path", nargs="?", help="folder for the database (default: a temporary folder, removed after)")

    p = command("import", cmd_import, "bulk-load vectors, ids, metadata and texts",
                "Insert the rows of a .npy matrix as records, in atomic batches, creating the database if "
                "PATH holds none. An id already stored is replaced.")
    p.add_argument("path", metavar="PATH", help="database folder (created when it holds no database)")
    p.add_argument("--vectors", required=True, metavar="FILE.npy", help="(n, dimension) numeric array")
    ids = p.add_mutually_exclusive_group()
    ids.add_argument("--ids", metavar="FILE", help="text file with one id per line (default: row numbers 0..n-1)")
    ids.add_argument("--id-field", metavar="FIELD", help="take each id from this metadata field (str or int)")
    p.add_argument("--metadata", metavar="FILE.jsonl", help="one JSON object (or null) per vector, in order")
    p.add_argument("--text-field", metavar="FIELD",
                   help="move this metadata field into the record's text (for full-text search)")
    p.add_argument("--dimension", type=int, help="check the vectors have this dimension")
    p.add_argument("--metric", choices=("cosine", "l2", "ip"), help="when creating (default cosine)")
    p.add_argument("--M", type=int, default=16, dest="M", help="graph degree, when creating (default 16)")
    p.add_argument("--ef-construction", type=int, default=200, help="when creating (default 200)")
    p.add_argument("--batch-size", type=int, default=5000, help="records per atomic batch (default 5000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = command("search", cmd_search, "vector, full-text or hybrid search",
                "Search a database (opened read-only, so it works next to a running writer).")
    p.add_argument("path", metavar="PATH", help="database folder")
    vec = p.add_mutually_exclusive_group()
    vec.add_argument("--vector", metavar="JSON", help="the query vector as a JSON list")
    vec.add_argument("--vector-file", metavar="FILE.npy", help="a .npy file holding the query vector(s)")
    p.add_argument("--row", type=int, help="which row of --vector-file (default 0)")
    p.add_argument("--text", metavar="QUERY", help="full-text query (plain words unless --syntax)")
    p.add_argument("--hybrid", action="store_true", help="fuse a vector search with --text")
    p.add_argument("--fusion", choices=("rrf", "weighted"), default="rrf", help="hybrid fusion (default rrf)")
    p.add_argument("--syntax", action="store_true", help="read --text as tantivy query syntax (AND, OR, \"phrases\")")
    p.add_argument("--filter", metavar="JSON", help="metadata filter, e.g. '{\"pos\": \"v\"}' (see docs/filters.md)")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--ef-search", type=int, help="search beam width (default: the database's, 64)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("info", cmd_info, "settings, counts, sizes on disk and index statistics")
    p.add_argument("path", metavar="PATH", help="database folder")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("verify", cmd_verify, "check every checksum and invariant (exit 1 when not ok)")
    p.add_argument("path", metavar="PATH", help="database folder")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("compact", cmd_compact, "rewrite without deleted and replaced records, rebuild the graph")
    p.add_argument("path", metavar="PATH", help="database folder")
    p.add_argument("--no-progress", action="store_true", help="no spinner")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


@contextlib.contextmanager
def _cli_logging(debug: bool) -> Iterator[None]:
    """Show the library's warnings (or, with --debug, everything) on stderr for one command."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vjson: %(levelname)s: %(message)s"))
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)


def _error(prog: str, message: object) -> None:
    text = " ".join(str(message).split()) or type(message).__name__
    print(f"{prog}: error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises SystemExit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _error(exc.prog or "vjson", exc.message)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    prog = f"vjson {args.command}"
    with _cli_logging(args.debug):
        try:
            return int(args.run(args))
        except UsageError as exc:
            _error(exc.prog or prog, exc.message)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # e.g. piped into head: stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_ERROR
        except (VJsonError, CliError) as exc:
            if args.debug:
                traceback.print_exc()
            _error(prog, exc)
            return EXIT_ERROR
        except OSError as exc:
            if args.debug:
                traceback.print_exc()
            where = f"{exc.filename}: " if exc.filename else ""
            _error(prog, f"{where}{exc.strerror or exc}")
            return EXIT_ERROR
        except Exception as exc:  # noqa: BLE001 - a bug: say so, in one line unless --debug
            if args.debug:
                traceback.print_exc()
            _error(prog, f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            return EXIT_ERROR
