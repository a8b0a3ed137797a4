"""Full-text (BM25) index over database rows, built on the ``tantivy`` package.

The database gives every record a dense integer *row* (in ``[0, 2**63)``; it
never reuses one for different text: an upsert writes a new row and deletes the
old one). This module keeps a tantivy index of ``(row, text)`` pairs in one
folder and answers BM25 queries with row numbers, so the database never sees
tantivy's own document addresses.

Layout of the folder
--------------------
It is a plain tantivy index (``meta.json`` plus segment files). The schema has
three fields:

* ``row``    i64, indexed and fast: the database row. Indexed so that deletes
  and the "allowed rows" filter can address a document by an exact integer
  term (never by a tokenised text field); fast so a hit's row is read from a
  column without touching the document store. It is i64, not u64, because
  ``IndexWriter.delete_documents_by_term`` turns a Python int into an i64 term
  and silently deletes nothing on a u64 field. Valid rows are therefore
  ``0 <= row <= 2**63 - 1`` (the results are int64 anyway).
* ``text``   text, tokenised with the chosen tokenizer, positions recorded (for
  phrase queries), not stored: the database owns the text.
* ``marker`` u64, fast only: see *commit markers* below.

The tokenizer is part of the schema tantivy writes into ``meta.json``, so the
folder records it itself. Reopening with another tokenizer raises
:class:`~vjson.errors.InvalidInputError` naming the recorded one; pass
``tokenizer=None`` to adopt whatever the folder was built with.

tantivy facts this module is written around
-------------------------------------------
* One writer per folder: tantivy takes an OS lock file; a second writer, in this
  process or another, fails with ``LockBusy``. We keep one long-lived writer per
  :class:`TextIndex` and report ``LockBusy`` as
  :class:`~vjson.errors.DatabaseLockedError`. The lock dies with the process.
* Visibility: the reader uses the *manual* reload policy and :meth:`commit`
  reloads it, so a search issued after ``commit()`` returns sees the commit.
* A commit is atomic and durable; documents added since the last commit are lost
  if the process dies. :meth:`close` does not commit (it rolls pending changes
  back). We never use the writer's context manager: it commits even when the
  block raises.
* ``delete_all_documents`` does not drop documents added earlier in the same
  uncommitted batch, so :meth:`rebuild` rolls back first.
* A search with ``limit=0`` panics in tantivy; we never issue one.
* tantivy does not verify its checksums when it opens an index, and a damaged
  file can surface later as a Rust panic (``pyo3_runtime.PanicException``,
  which derives from ``BaseException``). Panics and tantivy errors are turned
  into :class:`~vjson.errors.CorruptionError` on reads and
  :class:`~vjson.errors.StorageError` on writes (the last commit is intact;
  close and reopen); :meth:`TextIndex.check` verifies every file's CRC32
  footer on demand.

Corruption policy
-----------------
Opening a folder that tantivy cannot read raises
:class:`~vjson.errors.CorruptionError`. A folder that does not exist (or holds
no index files at all) is created empty, unless ``create=False`` is passed, in
which case it too raises :class:`~vjson.errors.CorruptionError`. The database's
recovery path is therefore::

    if not TextIndex.is_healthy(path):      # full check, CRC32 of every file
        ti = TextIndex.recreate(path, tokenizer, rows, texts)

(:meth:`TextIndex.recreate` wipes the folder, refusing if it holds anything
but tantivy files, and indexes the given rows in one commit.) ``read_only=True``
opens an existing index without the writer lock, for read-only databases.

Commit markers
--------------
``commit(marker=n)`` stores the integer ``n`` in the same atomic tantivy commit
as the documents (as one reserved document whose row is ``-1``; it has no
text, is never returned by :meth:`search`, :meth:`rows` or :meth:`count`).
After a crash, :attr:`marker` tells the database which of its own commits the
text index already holds, so it knows where to start replaying. Replaying is
safe anyway: :meth:`add` and :meth:`delete` are idempotent. The reserved
document counts in tantivy's BM25 statistics (one extra empty document), which
shifts scores by a negligible amount.

Queries
-------
:meth:`search` takes tantivy's query language over the text field: terms,
``"phrases"``, ``AND``/``OR``/``NOT``, ``+must``/``-mustnot``, ``term^2``
boosts, ``*`` (all documents). Terms are OR-ed by default. The keyword ``NOT``
(outside quotes) is rewritten to the ``-`` prefix before parsing: tantivy's own
grammar turns ``a AND NOT b`` into ``a AND (NOT b)``, whose inner query matches
nothing, so the whole query would silently return no results; with the rewrite
it means "a and not b", as in Lucene. A query made only of exclusions
(``-foo``, ``NOT foo``) is rejected by tantivy and raises
:class:`~vjson.errors.QueryError`, as does any syntax error; the message
carries tantivy's own. An empty or whitespace-only query returns no results.
The hidden ``row`` field is queryable too (``row:42``, ``row:[10 TO 20]``);
harmless.

Plain text (``search(text, syntax=False)``, what the database does by
default) has no syntax at all: it is analysed with the index's own tokenizer
(:func:`analyzer`, the same chain tantivy applies to the documents) and every
token becomes a term of one OR query, so BM25 ranks rows holding more and
rarer tokens first. Rows holding the tokens as a phrase may get a bonus
(:data:`PHRASE_BOOST`, off by default); a phrase is never required, so
``haskell-postgresql-simple`` finds "PostgreSQL bindings for Haskell". (The
query parser would turn that word into a required phrase, Lucene's old "auto
phrase" behaviour, which Lucene dropped by default.) Plain text never raises
:class:`~vjson.errors.QueryError`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from vjson.errors import (
    CorruptionError,
    DatabaseClosedError,
    DatabaseLockedError,
    InvalidInputError,
    QueryError,
    ReadOnlyError,
    StorageError,
    VJsonError,
)

__all__ = ["EXACT_FORM_WEIGHT", "PHRASE_BOOST", "TOKENIZERS", "TextIndex", "analyzer", "escape_query"]

#: Tokenizer names tantivy (the Python package, pinned version) registers out of
#: the box. ``default`` splits on whitespace and punctuation, drops tokens longer
#: than 40 bytes and lowercases; ``<lang>_stem`` does the same and applies the
#: Snowball stemmer of that language; ``raw`` indexes the whole text as one
#: token; ``whitespace`` splits on whitespace only and keeps case.
TOKENIZERS: tuple[str, ...] = (
    "en_stem",
    "default",
    "raw",
    "whitespace",
    "ar_stem",
    "da_stem",
    "de_stem",
    "el_stem",
    "es_stem",
    "fi_stem",
    "fr_stem",
    "hu_stem",
    "it_stem",
    "nl_stem",
    "no_stem",
    "pt_stem",
    "ro_stem",
    "ru_stem",
    "sv_stem",
    "ta_stem",
    "tr_stem",
)

# Snowball languages of the ``<lang>_stem`` tokenizers.
_STEM_LANGUAGES = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "fi": "finnish", "fr": "french", "hu": "hungarian", "it": "italian",
    "nl": "dutch", "no": "norwegian", "pt": "portuguese", "ro": "romanian", "ru": "russian",
    "sv": "swedish", "ta": "tamil", "tr": "turkish",
}
_MAX_TOKEN_BYTES = 40

#: Weight of a whole-phrase match added to a plain query of several tokens
#: (relative to the OR of its terms); 0 adds none. Off by default: on
#: WordNet's 2,000 judged queries 0.25-2 moved recall@10 by at most +0.003 and
#: nDCG@10 by -0.003..+0.004, and the sharded collection's global-statistics
#: rescoring (vjson.distributed) does not model a boosted phrase.
PHRASE_BOOST = 0.0

#: Plain text over a stemming tokenizer ranks rows holding the query's words
#: as written above rows holding only another form of them: a row's BM25 score
#: is multiplied by 1 + EXACT_FORM_WEIGHT x the share of the query's distinct
#: words it holds unstemmed ("operate" before "operation"; both stem to
#: "oper"). Chosen on the even half of WordNet's 2,000 judged one-word queries
#: and checked on the odd half (benchmarks/bench_hybrid.py --exact-weights):
#: text recall@10 on the odd half 0.266 -> 0.288 (polysemous), 0.236 -> 0.256
#: (one sense); 0.5 gained less, 2 no more than 0.002. 0 turns it off.
EXACT_FORM_WEIGHT = 1.0

_ANALYZERS: dict[str, Any] = {}


def analyzer(tokenizer: str) -> Any:
    """A ``tantivy.TextAnalyzer`` producing the tokens tantivy indexes under
    the tokenizer name (one of :data:`TOKENIZERS`).

    tantivy registers its named tokenizers inside the index and does not hand
    them out, so this builds the same chains: ``raw`` (the whole text),
    ``whitespace`` (split on whitespace, case kept), ``default`` (split on
    non-alphanumerics, drop tokens over 40 bytes, lowercase) and ``<lang>_stem``
    (``default`` then the Snowball stemmer). The tests check them against the
    tokens of tantivy's own query parser for every name.
    """
    built = _ANALYZERS.get(tokenizer)
    if built is not None:
        return built
    _check_tokenizer(tokenizer)
    if tokenizer == "raw":
        chain = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
    elif tokenizer == "whitespace":
        chain = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace())
    else:
        chain = (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(_MAX_TOKEN_BYTES))
            .filter(tantivy.Filter.lowercase())
        )
        if tokenizer != "default":
            chain = chain.filter(tantivy.Filter.stemmer(_STEM_LANGUAGES[tokenizer.split("_")[0]]))
    built = _ANALYZERS[tokenizer] = chain.build()
    return built


ROW_FIELD = "row"
TEXT_FIELD = "text"
MARKER_FIELD = "marker"
#: Rows are returned as int64, so valid rows are ``0 <= row <= MAX_ROW``.
MAX_ROW = 2**63 - 1
#: The reserved row of the commit-marker document (never a valid row).
_MARKER_ROW = -1
_U64_MAX = 2**64 - 1

# Planning a filtered search (measured on 80,000 WordNet glosses, tantivy 0.27):
# * pushing the allowed rows into the query costs ~2.5 us per allowed row (a
#   Should-of-TermQuery for small sets; a TermSetQuery, which has a fixed cost of
#   ~0.3 ms, for larger ones), whatever the query;
# * over-fetching costs the query itself plus ~0.1 us per hit read (tantivy
#   top-k, row fast field, numpy mask). With n allowed rows out of N and no
#   correlation between filter and query, k allowed hits need ~k*N/n hits.
# So a plan is priced in "hits read": pushdown = n * _FILTER_ROW_COST, a round
# of over-fetching = its depth. Over-fetching starts at twice the expected
# depth and grows by _OVERFETCH_GROWTH until k allowed hits are found, the
# matches run out (then the result is exact), or pushdown becomes cheaper than
# the next round (a filter correlated with bad scores).
_FILTER_ROW_COST = 25
_TERM_QUERY_FILTER_MAX = 128
_OVERFETCH_GROWTH = 4
# Ranking exact forms (EXACT_FORM_WEIGHT) reads k + max(k, _EXACT_FORM_DEPTH)
# hits first and at most max(_EXACT_FORM_MAX_DEPTH, 4k).
_EXACT_FORM_DEPTH = 20
_EXACT_FORM_MAX_DEPTH = 400

# tantivy file footer: [body][json {"version": ..., "crc": crc32(body)}][u32 json length][u32 magic]
_FOOTER_MAGIC = 1337
_SEGMENT_EXTENSIONS = ("term", "idx", "pos", "fieldnorm", "fast", "store")
_SEGMENT_FILE = re.compile(r"^[0-9a-f]{32}(\.\d+)?\.[a-z]+$")


def _is_panic(exc: BaseException) -> bool:
    # pyo3 turns Rust panics into pyo3_runtime.PanicException (a BaseException
    # subclass that cannot be imported by name).
    return type(exc).__name__ == "PanicException"


@contextmanager
def _tantivy_errors(path: Path, action: str, write: bool = False) -> Iterator[None]:
    """Translate tantivy failures inside the block into vjson exceptions.

    A lock conflict becomes DatabaseLockedError; any other tantivy error or
    Rust panic becomes StorageError in a write (the last commit is intact;
    close and reopen the index) and CorruptionError in a read.
    """
    try:
        yield
    except (KeyboardInterrupt, SystemExit, GeneratorExit, VJsonError):
        raise
    except BaseException as exc:
        msg = str(exc)
        if "LockBusy" in msg:
            raise DatabaseLockedError(
                f"text index {str(path)!r} is locked by another writer "
                f"(another TextIndex in this or another process): {msg}"
            ) from exc
        if _is_panic(exc) or isinstance(exc, (ValueError, OSError)):
            cls = StorageError if write else CorruptionError
            raise cls(f"text index {str(path)!r}: {action} failed: {msg}") from exc
        raise


def _build_schema(tokenizer: str) -> Any:
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field(ROW_FIELD, stored=False, indexed=True, fast=True)
    sb.add_unsigned_field(MARKER_FIELD, stored=False, indexed=False, fast=True)
    sb.add_text_field(
        TEXT_FIELD, stored=False, tokenizer_name=tokenizer, index_option="position"
    )
    return sb.build()


def _check_tokenizer(tokenizer: object) -> str:
    if not isinstance(tokenizer, str) or tokenizer not in TOKENIZERS:
        raise InvalidInputError(
            f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}"
        )
    return tokenizer


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        raw = (path / "meta.json").read_bytes()
    except OSError as exc:
        raise CorruptionError(f"text index {str(path)!r}: cannot read meta.json: {exc}") from exc
    try:
        meta = json.loads(raw.decode("utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("segments"), list):
            raise ValueError("no segment list")
        return meta
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptionError(
            f"text index {str(path)!r}: meta.json is not valid: {exc}"
        ) from exc


def _recorded_tokenizer(path: Path, meta: dict[str, Any]) -> str:
    """The tokenizer of the text field in a folder's schema; CorruptionError if not ours."""
    try:
        fields = {f["name"]: f for f in meta["schema"]}
        if fields[ROW_FIELD]["type"] != "i64" or fields[TEXT_FIELD]["type"] != "text":
            raise KeyError("field types")
        if MARKER_FIELD not in fields:
            raise KeyError(MARKER_FIELD)
        tok = fields[TEXT_FIELD]["options"]["indexing"]["tokenizer"]
        if not isinstance(tok, str):
            raise TypeError("tokenizer is not a string")
        return tok
    except (KeyError, TypeError) as exc:
        raise CorruptionError(
            f"text index {str(path)!r}: meta.json does not hold a vjson text-index schema ({exc})"
        ) from exc


def _verify_footer(file: Path) -> None:
    """Check one tantivy file's footer and CRC32; CorruptionError on any mismatch."""
    try:
        with open(file, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 8:
                raise CorruptionError(f"{str(file)!r} is truncated ({size} bytes)")
            fh.seek(size - 8)
            json_len, magic = struct.unpack("<II", fh.read(8))
            if magic != _FOOTER_MAGIC or json_len > size - 8:
                raise CorruptionError(f"{str(file)!r} has no valid tantivy footer")
            body_len = size - 8 - json_len
            fh.seek(body_len)
            try:
                footer = json.loads(fh.read(json_len).decode("utf-8"))
                expected = int(footer["crc"])
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptionError(f"{str(file)!r} has an unreadable footer: {exc}") from exc
            fh.seek(0)
            crc = 0
            remaining = body_len
            while remaining:
                chunk = fh.read(min(remaining, 1 << 20))
                if not chunk:
                    raise CorruptionError(f"{str(file)!r} is shorter than its footer says")
                crc = zlib.crc32(chunk, crc)
                remaining -= len(chunk)
    except OSError as exc:
        raise CorruptionError(f"cannot read {str(file)!r}: {exc}") from exc
    if crc != expected:
        raise CorruptionError(
            f"{str(file)!r} failed its checksum (crc32 {crc:#010x}, footer says {expected:#010x})"
        )


def escape_query(text: str) -> str:
    """Turn plain user text into a query that matches its words, with no syntax.

    Every whitespace-separated word becomes a quoted phrase (``"man's"``), and
    the phrases are OR-ed, so operators, quotes, apostrophes, colons and the
    like lose their meaning: ``escape_query("no man's land")`` is
    ``"no" "man's" "land"`` and never raises :class:`~vjson.errors.QueryError`.
    A word the tokenizer splits (``sou'-west``) must match as a phrase. For
    plain text, prefer ``TextIndex.search(text, syntax=False)``: it needs no
    phrase at all.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
    return " ".join(
        '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"' for word in text.split()
    )


def _rewrite_not(query: str) -> str:
    """Turn the keyword ``NOT`` (outside quotes) into the ``-`` prefix.

    ``a AND NOT b`` becomes ``a AND -b``. Phrases in double or single quotes and
    backslash-escaped characters are left alone.
    """
    out: list[str] = []
    i, n = 0, len(query)
    quote: str | None = None
    boundary = True  # the previous character was the start, unescaped whitespace or "("
    while i < n:
        c = query[i]
        if c == "\\" and i + 1 < n:
            out.append(query[i : i + 2])
            i += 2
            boundary = False
            continue
        if quote is not None:
            if c == quote:
                quote = None
            out.append(c)
            i += 1
            continue
        was_boundary, boundary = boundary, c.isspace() or c == "("
        if c in "\"'":
            quote = c
        elif was_boundary and query.startswith("NOT", i):
            j = i + 3
            if j < n and query[j].isspace():
                while j < n and query[j].isspace():
                    j += 1
                if j < n and query[j] not in "-+)":
                    out.append("-")
                    i = j
                    continue
        out.append(c)
        i += 1
    return "".join(out)


def _exact_form_finder(words: set[str]) -> Any:
    """A function listing which of `words` (lowercase tokens) occur in a
    lowercased text as whole tokens: the default tokenizer splits on every
    character that is not alphanumeric, which ``[^\\W_]`` matches."""
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])").findall


def _as_rows(rows: object, what: str = "rows") -> np.ndarray:
    """Validate a 1-D sequence of row numbers; returns an int64 array."""
    try:
        arr = np.asarray(rows)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{what} must be a 1-D sequence of integers: {exc}") from exc
    if arr.ndim != 1:
        raise InvalidInputError(f"{what} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind == "O":
        # Python ints too large for int64 (or mixed objects) land here.
        if not all(isinstance(r, (int, np.integer)) and not isinstance(r, bool) for r in arr):
            raise InvalidInputError(f"{what} must be integers")
        if any(r < 0 or r > MAX_ROW for r in arr):
            raise InvalidInputError(f"{what} must lie in [0, 2**63 - 1]")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{what} must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u":
        if int(arr.max()) > MAX_ROW:
            raise InvalidInputError(f"{what} must lie in [0, 2**63 - 1]")
    elif int(arr.min()) < 0:
        raise InvalidInputError(f"{what} must be non-negative, got {int(arr.min())}")
    return arr.astype(np.int64, copy=False)


def _as_texts(texts: object, n: int) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError("texts must be a sequence of strings, not a single string")
    try:
        out = list(texts)  # type: ignore[call-overload]
    except TypeError as exc:
        raise InvalidInputError(f"texts must be a sequence of strings: {exc}") from exc
    if len(out) != n:
        raise InvalidInputError(f"got {n} rows but {len(out)} texts")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInputError(f"texts[{i}] is {type(t).__name__}, expected str")
    return out


def _text_doc(row: int, text: str) -> Any:
    doc = tantivy.Document()
    doc.add_integer(ROW_FIELD, row)
    doc.add_text(TEXT_FIELD, text)
    return doc


_EMPTY_RESULT_ROWS = np.empty(0, dtype=np.int64)
_EMPTY_RESULT_SCORES = np.empty(0, dtype=np.float32)


def _empty_result() -> tuple[np.ndarray, np.ndarray]:
    return _EMPTY_RESULT_ROWS.copy(), _EMPTY_RESULT_SCORES.copy()


# A term in the Debug form of a parsed query or an explanation: Term(field=2, type=Str, "fox")
_DEBUG_TERM = re.compile(r'Term\(field=\d+, type=Str, "((?:[^"\\]|\\.)*)"\)')

_DEBUG_PHRASE = re.compile(r"phrase_terms: \[(.*?)\], slop")


def debug_terms(text: str) -> list[str]:
    """The text terms named in tantivy's Debug output (a parsed query, an explanation's context)."""
    return [re.sub(r"\\(.)", r"\1", t) for t in _DEBUG_TERM.findall(text)]


def _find_detail(node: dict[str, Any], name: str) -> float | None:
    """The value of the first explanation node whose description starts with `name`."""
    if str(node.get("description", "")).startswith(name):
        return float(node["value"])
    for child in node.get("details") or ():
        found = _find_detail(child, name)
        if found is not None:
            return found
    return None


class TextIndex:
    """A BM25 index of ``(row, text)`` pairs in one folder.

    Thread-safety: writes (:meth:`add`, :meth:`delete`, :meth:`commit`,
    :meth:`rebuild`, :meth:`close`) are serialised by an internal lock; searches
    may run from any number of threads at the same time as writes and see the
    last commit. Only one writable :class:`TextIndex` may have a folder open at
    a time (across processes too): a second one raises
    :class:`~vjson.errors.DatabaseLockedError`. Read-only instances take no
    lock; they see the commits that existed when they were opened or last
    :meth:`reload`-ed.

    Args:
        path: the index folder; created if missing (see ``create``).
        tokenizer: one of :data:`TOKENIZERS`, or ``None`` to use the one the
            folder was built with (``"en_stem"`` for a new folder).
        create: create a missing/empty folder (default). With ``False`` a
            missing index raises :class:`~vjson.errors.CorruptionError`.
        verify: check every file's CRC32 before opening (reads the whole index).
        read_only: open without a writer (no lock; write methods raise
            :class:`~vjson.errors.ReadOnlyError`); the index must exist.
        writer_heap_bytes: tantivy writer memory budget (documents are flushed
            to a segment when it fills).
        writer_threads: tantivy indexing threads.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        tokenizer: str | None = "en_stem",
        *,
        create: bool = True,
        verify: bool = False,
        read_only: bool = False,
        writer_heap_bytes: int = 64_000_000,
        writer_threads: int = 1,
    ) -> None:
        if tokenizer is not None:
            _check_tokenizer(tokenizer)
        if not isinstance(writer_threads, int) or writer_threads < 1:
            raise InvalidInputError("writer_threads must be a positive integer")
        if not isinstance(writer_heap_bytes, int) or writer_heap_bytes < 15_000_000 * writer_threads:
            raise InvalidInputError("writer_heap_bytes must be at least 15,000,000 per thread")
        self._path = Path(os.fspath(path))
        self._lock = threading.RLock()
        # (commit version, its average text length): BM25 statistics of a query matching nothing here
        self._avgdl_of: tuple[Any, float | None] = (None, None)
        self._closed = True
        self._dirty = False
        self._writer: Any = None
        self._index: Any = None
        self._read_only = bool(read_only)

        meta_path = self._path / "meta.json"
        if meta_path.exists():
            meta = _read_meta(self._path)
            recorded = _recorded_tokenizer(self._path, meta)
            if tokenizer is None:
                tokenizer = recorded
            elif tokenizer != recorded:
                raise InvalidInputError(
                    f"text index {str(self._path)!r} was built with tokenizer {recorded!r}, "
                    f"not {tokenizer!r}; open it with tokenizer={recorded!r} (or None), "
                    "or rebuild it with TextIndex.recreate()"
                )
            _check_tokenizer(tokenizer)
            if verify:
                self.check(self._path)
        else:
            if self._path.exists() and not self._path.is_dir():
                raise CorruptionError(f"text index path {str(self._path)!r} is not a directory")
            leftovers = self._foreign_or_segment_files()
            if leftovers:
                raise CorruptionError(
                    f"text index {str(self._path)!r} has no meta.json but holds files "
                    f"({', '.join(sorted(leftovers)[:5])}...)"
                )
            if not create or read_only:
                raise CorruptionError(f"no text index at {str(self._path)!r}")
            if tokenizer is None:
                tokenizer = "en_stem"
            self._path.mkdir(parents=True, exist_ok=True)

        self._tokenizer: str = tokenizer
        self._schema = _build_schema(tokenizer)
        with _tantivy_errors(self._path, "opening the index"):
            if read_only:
                index = tantivy.Index.open(str(self._path))
                if index.schema != self._schema:
                    raise CorruptionError(
                        f"text index {str(self._path)!r} does not have the vjson text-index schema"
                    )
            else:
                index = tantivy.Index(self._schema, str(self._path), reuse=True)
            index.config_reader(reload_policy="Manual")
        writer = None
        if not read_only:
            with _tantivy_errors(self._path, "creating the writer", write=True):
                writer = index.writer(writer_heap_bytes, writer_threads)
                # A writer killed mid-commit can leave files of the next opstamp
                # behind (a segment's .del file), and committing the same
                # opstamp again then fails on them: drop what no commit uses.
                writer.garbage_collect_files()
        try:
            with _tantivy_errors(self._path, "opening a reader"):
                index.reload()
                index.searcher().num_docs  # noqa: B018 - touches every segment
        except BaseException:
            if writer is not None:
                self._release(writer, rollback=True)
            raise
        self._index = index
        self._writer = writer
        self._closed = False

    # ------------------------------------------------------------------ helpers

    def _foreign_or_segment_files(self) -> list[str]:
        """Non-bookkeeping files in a folder that has no meta.json."""
        if not self._path.is_dir():
            return []
        return [n for n in os.listdir(self._path) if not n.startswith(".")]

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"text index {str(self._path)!r} is closed")

    def _live_index(self) -> Any:
        # Read paths take no lock: grab the index once so a concurrent close()
        # yields DatabaseClosedError rather than an AttributeError.
        index = self._index
        if index is None or self._closed:
            raise DatabaseClosedError(f"text index {str(self._path)!r} is closed")
        return index

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ReadOnlyError(f"text index {str(self._path)!r} is open read-only")

    @staticmethod
    def _release(writer: Any, rollback: bool) -> None:
        try:
            if rollback:
                writer.rollback()
        finally:
            writer.wait_merging_threads()

    def _marker_hit(self, searcher: Any) -> Any | None:
        query = tantivy.Query.term_query(self._schema, ROW_FIELD, _MARKER_ROW)
        hits = searcher.search(query, 1, count=False).hits
        return hits[0][1] if hits else None

    # -------------------------------------------------------------- properties

    @property
    def path(self) -> Path:
        return self._path

    @property
    def tokenizer(self) -> str:
        return self._tokenizer

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def marker(self) -> int | None:
        """The marker of the last commit that carried one (see :meth:`commit`), or None."""
        index = self._live_index()
        with _tantivy_errors(self._path, "reading the commit marker"):
            searcher = index.searcher()
            addr = self._marker_hit(searcher)
            if addr is None:
                return None
            value = searcher.fast_field_values(MARKER_FIELD, [addr])[0]
        return None if value is None else int(value)

    # ------------------------------------------------------------------ writes

    def add(self, rows: Sequence[int] | np.ndarray, texts: Sequence[str]) -> None:
        """Index ``texts[i]`` under ``rows[i]``; visible after :meth:`commit`.

        A row already present (committed or pending) is replaced, never
        duplicated; within one call the last occurrence of a row wins.
        """
        arr = _as_rows(rows)
        docs = _as_texts(texts, len(arr))
        with self._lock:
            self._check_writable()
            if not len(arr):
                return
            self._dirty = True
            with _tantivy_errors(self._path, "adding documents", write=True):
                writer = self._writer
                for row, text in zip(arr.tolist(), docs):
                    # A delete only affects documents added before it, so
                    # delete-then-add keeps exactly the new version.
                    writer.delete_documents_by_term(ROW_FIELD, row)
                    writer.add_document(_text_doc(row, text))

    def delete(self, rows: Sequence[int] | np.ndarray) -> None:
        """Remove rows (absent rows are ignored); visible after :meth:`commit`."""
        arr = _as_rows(rows)
        with self._lock:
            self._check_writable()
            if not len(arr):
                return
            self._dirty = True
            with _tantivy_errors(self._path, "deleting documents", write=True):
                for row in arr.tolist():
                    self._writer.delete_documents_by_term(ROW_FIELD, row)

    def commit(self, marker: int | None = None) -> None:
        """Durably commit pending changes and make them visible to searches.

        ``marker`` (an integer in ``[0, 2**64 - 1]``), if given, is stored in
        the same atomic commit and read back by :attr:`marker`.
        """
        if marker is not None:
            if isinstance(marker, bool) or not isinstance(marker, (int, np.integer)):
                raise InvalidInputError("marker must be an integer")
            marker = int(marker)
            if not 0 <= marker <= _U64_MAX:
                raise InvalidInputError("marker must lie in [0, 2**64 - 1]")
        with self._lock:
            self._check_writable()
            with _tantivy_errors(self._path, "committing", write=True):
                if marker is not None:
                    doc = tantivy.Document()
                    doc.add_integer(ROW_FIELD, _MARKER_ROW)
                    doc.add_unsigned(MARKER_FIELD, marker)
                    self._writer.delete_documents_by_term(ROW_FIELD, _MARKER_ROW)
                    self._writer.add_document(doc)
                    self._dirty = True
                if self._dirty:
                    self._writer.commit()
                    self._dirty = False
                self._index.reload()

    def reload(self) -> None:
        """Make searches see the latest commit (needed only by a read-only
        index following another process's writes; :meth:`commit` reloads)."""
        with self._lock:
            self._check_open()
            with _tantivy_errors(self._path, "reloading"):
                self._index.reload()

    def rollback(self) -> None:
        """Discard every change since the last commit."""
        with self._lock:
            self._check_writable()
            with _tantivy_errors(self._path, "rolling back", write=True):
                self._writer.rollback()
            self._dirty = False

    def rebuild(
        self,
        rows: Sequence[int] | np.ndarray,
        texts: Sequence[str],
        marker: int | None = None,
    ) -> None:
        """Replace the whole content by ``(rows, texts)`` in one atomic commit.

        Pending uncommitted changes are discarded. If the process dies before
        this returns, the folder keeps its previous committed state.
        """
        arr = _as_rows(rows)
        docs = _as_texts(texts, len(arr))
        unique = len(np.unique(arr)) == len(arr)
        with self._lock:
            self._check_writable()
            try:
                with _tantivy_errors(self._path, "rebuilding", write=True):
                    writer = self._writer
                    # delete_all_documents keeps documents added earlier in the
                    # same batch: roll those back first.
                    writer.rollback()
                    writer.delete_all_documents()
                    self._dirty = True
                    for row, text in zip(arr.tolist(), docs):
                        if not unique:  # last occurrence wins, as in add()
                            writer.delete_documents_by_term(ROW_FIELD, row)
                        writer.add_document(_text_doc(row, text))
                self.commit(marker)
            except BaseException:
                try:
                    self._writer.rollback()
                    self._dirty = False
                except BaseException:  # pragma: no cover - best effort
                    pass
                raise

    # ------------------------------------------------------------------- reads

    def count(self) -> int:
        """Number of live (committed) documents."""
        index = self._live_index()
        with _tantivy_errors(self._path, "counting"):
            searcher = index.searcher()
            n = int(searcher.num_docs)
            if n and self._marker_hit(searcher) is not None:
                n -= 1
        return n

    def rows(self) -> np.ndarray:
        """All live (committed) rows, ascending, as int64."""
        index = self._live_index()
        with _tantivy_errors(self._path, "listing rows"):
            searcher = index.searcher()
            n = int(searcher.num_docs)
            if n == 0:
                return np.empty(0, dtype=np.int64)
            hits = searcher.search(tantivy.Query.all_query(), n, count=False).hits
            values = searcher.fast_field_values(ROW_FIELD, [addr for _, addr in hits])
        out = np.array([_MARKER_ROW if v is None else v for v in values], dtype=np.int64)
        out = out[out >= 0]
        out.sort()
        return out

    def search(
        self, query: str, k: int = 10, allowed: np.ndarray | None = None, *, syntax: bool = True,
        texts: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 search; returns ``(rows int64, scores float32)``, best first, at most ``k``.

        ``query`` is tantivy's query language, or with ``syntax=False`` plain
        text: an OR of its tokens with a phrase bonus, never a QueryError (see
        the module notes).

        ``allowed`` is a boolean mask indexed by row: only rows with
        ``allowed[row]`` true are returned (rows ``>= len(allowed)`` are not),
        and ``k`` results come back whenever ``k`` allowed documents match.
        A small allowed set is pushed into the tantivy query as a row filter;
        a large one is applied to over-fetched hits, with the depth grown until
        ``k`` allowed hits are found, the matches run out, or the filter becomes
        the cheaper plan.

        ``texts`` (the stored text of each row, indexable by row; the index
        does not store text) lets plain text over a stemming tokenizer rank
        rows holding the query's words as written first (see
        :data:`EXACT_FORM_WEIGHT`); the scores returned are then the boosted ones.
        """
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InvalidInputError(f"k must be an integer, got {type(k).__name__}")
        k = int(k)
        if k < 0:
            raise InvalidInputError(f"k must be >= 0, got {k}")
        mask: np.ndarray | None = None
        if allowed is not None:
            mask = np.asarray(allowed)
            if mask.dtype != np.bool_ or mask.ndim != 1:
                raise InvalidInputError(
                    "allowed must be a 1-D boolean mask over rows "
                    f"(got dtype {mask.dtype}, shape {mask.shape})"
                )
        index = self._live_index()
        if k == 0 or not query.strip():
            return _empty_result()
        if syntax:
            try:
                parsed = index.parse_query(_rewrite_not(query), [TEXT_FIELD])
            except ValueError as exc:
                raise QueryError(f"invalid full-text query {query!r}: {exc}") from exc
        else:
            parsed = self._plain_query(query)
            if parsed is None:
                return _empty_result()
        if texts is not None and not syntax and EXACT_FORM_WEIGHT > 0 and self._tokenizer.endswith("_stem"):
            with _tantivy_errors(self._path, "analysing the query"):
                words = set(analyzer("default").analyze(query))
            if words:
                return self._search_exact_forms(index, parsed, k, mask, words, texts)
        return self._search_parsed(index, parsed, k, mask)

    def _search_exact_forms(self, index: Any, parsed: Any, k: int, mask: np.ndarray | None,
                            words: set[str], texts: Any) -> tuple[np.ndarray, np.ndarray]:
        """The best k by BM25 x (1 + EXACT_FORM_WEIGHT x share of `words` a row
        holds as written). Hits are read in BM25 order, deeper until no unread
        row could still enter the top k (its boosted score is at most the
        lowest BM25 read x the largest factor) or the depth cap is reached."""
        find = _exact_form_finder(words)
        top = 1.0 + EXACT_FORM_WEIGHT
        share: dict[int, float] = {}
        depth = k + max(k, _EXACT_FORM_DEPTH)
        cap = max(depth, _EXACT_FORM_MAX_DEPTH, 4 * k)
        while True:
            rows, scores = self._search_parsed(index, parsed, depth, mask)
            factor = np.empty(len(rows), dtype=np.float32)
            for i, row in enumerate(rows.tolist()):
                f = share.get(row)
                if f is None:
                    text = texts[row]
                    lower = text.lower() if isinstance(text, str) else ""
                    # (most hits hold only other forms: a substring test rules them out cheaply)
                    held = find(lower) if any(w in lower for w in words) else ()
                    f = share[row] = 1.0 + EXACT_FORM_WEIGHT * len(words.intersection(held)) / len(words)
                factor[i] = f
            boosted = scores * factor
            order = np.argsort(-boosted, kind="stable")[:k]
            if (len(rows) < depth or depth >= cap
                    or (len(order) == k and boosted[order[-1]] >= scores[-1] * top)):
                return rows[order], boosted[order]
            depth = min(depth * _OVERFETCH_GROWTH, cap)

    def _search_parsed(self, index: Any, parsed: Any, k: int,
                       mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        with _tantivy_errors(self._path, "searching"):
            searcher = index.searcher()
            if mask is None:
                return self._collect(searcher, parsed, k, None)[0]
            # a popcount: listing the rows costs 40x more, and only the pushdown needs them
            n_allowed = int(np.count_nonzero(mask))
            if n_allowed == 0:
                return _empty_result()
            n_live = max(int(searcher.num_docs), 1)
            pushdown_cost = n_allowed * _FILTER_ROW_COST
            # Twice the depth expected to hold k allowed hits if the filter is
            # independent of the query (see the cost notes at the top).
            depth = min(n_live, math.ceil(2.0 * k * n_live / n_allowed) + k)
            while pushdown_cost > depth:
                result, exhausted = self._collect(searcher, parsed, depth, mask, k)
                if len(result[0]) >= k or exhausted:
                    return result
                if depth >= n_live:  # pragma: no cover - depth n_live always exhausts
                    break
                depth = min(depth * _OVERFETCH_GROWTH, n_live)
            return self._search_pushdown(searcher, parsed, k, np.flatnonzero(mask))

    def _plain_query(self, text: str) -> Any | None:
        """OR of the text's distinct tokens, plus a boosted phrase of all of them;
        None when the text has no token."""
        with _tantivy_errors(self._path, "analysing the query"):
            tokens = analyzer(self._tokenizer).analyze(text)
        if not tokens:
            return None
        terms = [
            (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, TEXT_FIELD, t))
            for t in dict.fromkeys(tokens)
        ]
        if len(tokens) > 1 and PHRASE_BOOST > 0:
            phrase = tantivy.Query.phrase_query(self._schema, TEXT_FIELD, tokens)
            terms.append((tantivy.Occur.Should, tantivy.Query.boost_query(phrase, PHRASE_BOOST)))
        return tantivy.Query.boolean_query(terms)

    def _search_pushdown(
        self, searcher: Any, parsed: Any, k: int, allowed_rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = allowed_rows.tolist()
        if len(rows) <= _TERM_QUERY_FILTER_MAX:
            row_filter = tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, tantivy.Query.term_query(self._schema, ROW_FIELD, r)) for r in rows]
            )
        else:
            row_filter = tantivy.Query.term_set_query(self._schema, ROW_FIELD, rows)
        # A constant score of 0 keeps the BM25 score of the text query unchanged.
        combined = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, parsed),
                (tantivy.Occur.Must, tantivy.Query.const_score_query(row_filter, 0.0)),
            ]
        )
        return self._collect(searcher, combined, k, None)[0]

    def _collect(
        self,
        searcher: Any,
        query: Any,
        depth: int,
        mask: np.ndarray | None,
        k: int | None = None,
    ) -> tuple[tuple[np.ndarray, np.ndarray], bool]:
        """Run ``query`` to ``depth`` hits (+1 for the marker document) and keep
        at most ``k`` (default ``depth``) hits whose row passes ``mask``.
        Returns the result and whether the matches were exhausted."""
        k = depth if k is None else k
        limit = depth + 1
        hits = searcher.search(query, limit, count=False).hits
        exhausted = len(hits) < limit
        if not hits:
            return _empty_result(), exhausted
        values = searcher.fast_field_values(ROW_FIELD, [addr for _, addr in hits])
        rows = np.array([_MARKER_ROW if v is None else v for v in values], dtype=np.int64)
        scores = np.array([s for s, _ in hits], dtype=np.float32)
        keep = rows >= 0  # drops the marker document
        if mask is not None:
            keep &= rows < len(mask)
            keep[keep] = mask[rows[keep]]
        rows = rows[keep][:k]
        scores = scores[keep][:k]
        return (rows, scores), exhausted

    # ------------------------------------------------- statistics across indexes

    def bm25_statistics(self, query: str, *, syntax: bool = True) -> dict[str, Any]:
        """The corpus statistics BM25 scores `query` with here, so several
        indexes (the shards of a collection) can score with their sums, as
        Elasticsearch's DFS mode does: ``{"docs": N, "avgdl": float or None,
        "df": {term: documents holding it}, "phrases": [[term, ...], ...]}``
        (a phrase scores with the sum of its terms' idf). ``docs`` counts what tantivy
        counts, one internal marker document included; ``avgdl`` is None when
        the index holds no text (tantivy reports it only in explanations).
        """
        index = self._live_index()
        parsed = self._parse(query, syntax)
        with _tantivy_errors(self._path, "reading statistics"):
            searcher = index.searcher()
            terms = sorted(set(debug_terms(repr(parsed))))
            df = {t: int(searcher.doc_freq(TEXT_FIELD, t)) for t in terms}
            hits = searcher.search(parsed, 1, count=False).hits
            if hits:
                avgdl = _find_detail(json.loads(parsed.explain(searcher, hits[0][1]).to_json()), "avgdl")
            else:  # nothing matches here: the average of this commit, found once
                addr = self._marker_hit(searcher)
                version = (int(searcher.num_docs),
                           None if addr is None else searcher.fast_field_values(MARKER_FIELD, [addr])[0])
                if self._avgdl_of[0] != version:
                    self._avgdl_of = (version, self._probe_avgdl(searcher))
                avgdl = self._avgdl_of[1]
            phrases = [debug_terms(p) for p in _DEBUG_PHRASE.findall(repr(parsed))]
            return {"docs": int(searcher.num_docs), "avgdl": avgdl, "df": df, "phrases": phrases}

    def _probe_avgdl(self, searcher: Any) -> float | None:
        common = searcher.terms_with_prefix(TEXT_FIELD, "", limit=1)  # walks the term dictionary
        if not common:
            return None
        probe = tantivy.Query.term_query(self._schema, TEXT_FIELD, common[0][0])
        hits = searcher.search(probe, 1, count=False).hits
        return _find_detail(json.loads(probe.explain(searcher, hits[0][1]).to_json()), "avgdl") if hits else None

    def explain(self, query: str, rows: Sequence[int] | np.ndarray, *,
                syntax: bool = True) -> dict[int, dict[str, Any]]:
        """Tantivy's score explanation (``{"value", "description", "details",
        "context"}``, nested) of each of `rows` that matches `query`."""
        wanted = _as_rows(rows).tolist()
        index = self._live_index()
        parsed = self._parse(query, syntax)
        if not wanted:
            return {}
        with _tantivy_errors(self._path, "explaining"):
            searcher = index.searcher()
            only = tantivy.Query.boolean_query([
                (tantivy.Occur.Must, parsed),
                (tantivy.Occur.Must, tantivy.Query.const_score_query(
                    tantivy.Query.term_set_query(self._schema, ROW_FIELD, wanted), 0.0)),
            ])
            hits = searcher.search(only, len(wanted), count=False).hits
            values = searcher.fast_field_values(ROW_FIELD, [addr for _, addr in hits])
            return {int(row): json.loads(parsed.explain(searcher, addr).to_json())
                    for row, (_, addr) in zip(values, hits) if row is not None}

    def _parse(self, query: str, syntax: bool = True) -> Any:
        """The query search() runs for `query` (tantivy syntax, or plain text)."""
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
        if not syntax:
            plain = self._plain_query(query)
            return tantivy.Query.empty_query() if plain is None else plain
        try:
            return self._live_index().parse_query(_rewrite_not(query), [TEXT_FIELD])
        except ValueError as exc:
            raise QueryError(f"invalid full-text query {query!r}: {exc}") from exc

    # ------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Release the writer lock. Uncommitted changes are discarded."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer, self._writer = self._writer, None
            self._index = None
            if writer is not None:
                with _tantivy_errors(self._path, "closing", write=True):
                    self._release(writer, rollback=self._dirty)
            self._dirty = False

    def __enter__(self) -> TextIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"TextIndex({str(self._path)!r}, tokenizer={self._tokenizer!r}, {state})"

    # ------------------------------------------------------ folder-level tools

    @staticmethod
    def check(path: str | os.PathLike[str], *, checksums: bool = True) -> None:
        """Raise :class:`~vjson.errors.CorruptionError` unless ``path`` holds a
        readable vjson text index.

        Checks ``meta.json`` and its schema, that every file of every live
        segment is present and (with ``checksums``) matches its CRC32 footer,
        then opens the index read-only and reads every row. Does not need the
        writer lock, so it can run while the index is open for writing; if a
        concurrent commit or merge changes ``meta.json`` during the check, the
        check is repeated (up to three times).
        """
        p = Path(os.fspath(path))
        for attempt in range(3):
            before = TextIndex._meta_bytes(p)
            try:
                TextIndex._check_once(p, checksums)
                return
            except CorruptionError:
                if attempt == 2 or before is None or TextIndex._meta_bytes(p) == before:
                    raise

    @staticmethod
    def _meta_bytes(p: Path) -> bytes | None:
        try:
            return (p / "meta.json").read_bytes()
        except OSError:
            return None

    @staticmethod
    def _check_once(p: Path, checksums: bool) -> None:
        if not (p / "meta.json").is_file():
            raise CorruptionError(f"no text index at {str(p)!r} (meta.json missing)")
        meta = _read_meta(p)
        tokenizer = _recorded_tokenizer(p, meta)
        if tokenizer not in TOKENIZERS:
            raise CorruptionError(f"text index {str(p)!r} uses unknown tokenizer {tokenizer!r}")
        try:
            names = set(os.listdir(p))
        except OSError as exc:
            raise CorruptionError(f"cannot list {str(p)!r}: {exc}") from exc
        for seg in meta["segments"]:
            try:
                seg_id = str(seg["segment_id"]).replace("-", "")
                deletes = seg.get("deletes")
                files = [f"{seg_id}.{ext}" for ext in _SEGMENT_EXTENSIONS]
                if deletes:
                    files.append(f"{seg_id}.{int(deletes['opstamp'])}.del")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise CorruptionError(f"text index {str(p)!r}: bad segment entry in meta.json") from exc
            for name in files:
                if name not in names:
                    raise CorruptionError(f"text index {str(p)!r}: segment file {name} is missing")
                if checksums:
                    _verify_footer(p / name)
        with _tantivy_errors(p, "reading"):
            index = tantivy.Index.open(str(p))
            index.config_reader(reload_policy="Manual")
            index.reload()
            searcher = index.searcher()
            n = int(searcher.num_docs)
            if n:
                hits = searcher.search(tantivy.Query.all_query(), n, count=False).hits
                searcher.fast_field_values(ROW_FIELD, [a for _, a in hits])
                searcher.fast_field_values(MARKER_FIELD, [a for _, a in hits])

    @staticmethod
    def is_healthy(path: str | os.PathLike[str], *, checksums: bool = True) -> bool:
        """True when :meth:`check` passes (False for a missing folder too)."""
        try:
            TextIndex.check(path, checksums=checksums)
        except CorruptionError:
            return False
        return True

    @staticmethod
    def remove(path: str | os.PathLike[str]) -> None:
        """Delete a text-index folder (healthy or not).

        Refuses (:class:`~vjson.errors.InvalidInputError`) when the folder holds
        anything that is not a tantivy file, so a wrong path cannot wipe
        unrelated data. The caller must not have the index open.
        """
        p = Path(os.fspath(path))
        if not p.exists():
            return
        if not p.is_dir():
            raise InvalidInputError(f"{str(p)!r} is not a directory")
        foreign = [
            n
            for n in os.listdir(p)
            if not (n == "meta.json" or n.startswith(".") or _SEGMENT_FILE.match(n))
            or (p / n).is_dir()
        ]
        if foreign:
            raise InvalidInputError(
                f"refusing to remove {str(p)!r}: it holds non-index entries "
                f"({', '.join(sorted(foreign)[:5])})"
            )
        shutil.rmtree(p)

    @classmethod
    def recreate(
        cls,
        path: str | os.PathLike[str],
        tokenizer: str = "en_stem",
        rows: Sequence[int] | np.ndarray = (),
        texts: Sequence[str] = (),
        *,
        marker: int | None = None,
        **kwargs: Any,
    ) -> TextIndex:
        """Wipe the folder (see :meth:`remove`), create a new index holding
        ``(rows, texts)``, commit it and return it open."""
        _check_tokenizer(tokenizer)
        arr = _as_rows(rows)
        docs = _as_texts(texts, len(arr))
        cls.remove(path)
        index = cls(path, tokenizer, **kwargs)
        try:
            index.rebuild(arr, docs, marker=marker)
        except BaseException:
            index.close()
            raise
        return index
