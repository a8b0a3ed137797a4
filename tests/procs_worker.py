"""Read-only processes for tests/test_reliability_processes.py.

:func:`reader` runs in its own process (multiprocessing, spawn) beside a
writer in the test process. The writer tells it, through a pipe, the number
of each batch whose write calls have returned; the reader checks on every
call that nothing fails, that what it sees never goes backwards, and that
every batch acknowledged before the call is visible to it.
"""

from __future__ import annotations

import random
import time
import traceback
from typing import Any

import numpy as np

DIM = 8
KEEP = 5    # records per batch never deleted ("kind": "keep")
TEMP = 5    # records per batch the writer deletes later ("kind": "temp")


def batch_vectors(b: int) -> np.ndarray:
    """The vectors of batch b, a pure function of b (shared by writer and readers)."""
    return np.random.default_rng(1000 + b).normal(size=(KEEP + TEMP, DIM)).astype(np.float32)


def batch_ids(b: int) -> list[str]:
    return [f"keep-{b}-{i}" for i in range(KEEP)] + [f"temp-{b}-{i}" for i in range(TEMP)]


def batch_word(b: int) -> str:
    # letters only, so no tokenizer splits or stems it differently
    out, n = "", b + 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return "zq" + out + "x"


def reader(path: str, conn: Any, seed: int, seconds: float, reopen_every: int) -> None:
    """Check invariants on every call until the writer sends None; send back counts and the first errors."""
    import vjson

    conn.send("ready")  # imports done: the writer starts its clock
    rng = random.Random(seed)
    stats = {"opens": 0, "calls": 0, "errors": 0, "checks": 0, "messages": []}
    acked = -1          # highest batch the writer acknowledged (all lower ones too)
    seen_keep = 0       # the most "keep" records a call saw: must never drop
    db = None
    deadline = time.monotonic() + seconds + 300  # only if the writer never says stop
    stopped = False

    def fail(msg: str) -> None:
        stats["errors"] += 1
        if len(stats["messages"]) < 5:
            stats["messages"].append(msg)

    while not stopped and time.monotonic() < deadline:
        try:
            if db is None or rng.random() < 1 / reopen_every:
                if db is not None:
                    db.close()
                db = None
                db = vjson.VectorDB(path, read_only=True)
                stats["opens"] += 1
            while conn.poll():
                msg = conn.recv()
                if msg is None:  # the writer is done; finish this call
                    stopped = True
                else:
                    acked = max(acked, msg)
            # Every batch acknowledged before this call started must be visible to it.
            b = rng.randint(0, acked) if acked >= 0 else -1
            what = rng.choice(("count", "get", "search", "text", "contains", "len"))
            stats["calls"] += 1
            if what == "count":
                keep = db.count({"kind": "keep"})
                if keep < seen_keep or keep < KEEP * (acked + 1):
                    fail(f"count(kind=keep) = {keep}, saw {seen_keep}, acked batches 0..{acked}")
                seen_keep = max(seen_keep, keep)
                stats["checks"] += 1
            elif what == "len":
                n = len(db)
                if n < KEEP * (acked + 1):
                    fail(f"len = {n} < {KEEP * (acked + 1)} (acked batches 0..{acked})")
                stats["checks"] += 1
            elif b >= 0 and what == "get":
                i = rng.randrange(KEEP)
                rec = db.get(f"keep-{b}-{i}")
                if rec.metadata != {"kind": "keep", "b": b} or not np.allclose(rec.vector, batch_vectors(b)[i]):
                    fail(f"keep-{b}-{i}: wrong record {rec.metadata}")
                stats["checks"] += 1
            elif b >= 0 and what == "contains":
                if f"keep-{b}-{rng.randrange(KEEP)}" not in db:
                    fail(f"batch {b} acknowledged but not in the reader")
                stats["checks"] += 1
            elif b >= 0 and what == "search":
                i = rng.randrange(KEEP)
                hits = db.search(batch_vectors(b)[i], k=1, filter={"b": b, "kind": "keep"})
                if not hits or hits[0].id != f"keep-{b}-{i}":
                    fail(f"search for keep-{b}-{i} found {[h.id for h in hits]}")
                stats["checks"] += 1
            elif b >= 0 and what == "text":
                hits = db.text_search(batch_word(b), k=20, filter={"kind": "keep"})
                if sorted(h.id for h in hits) != sorted(batch_ids(b)[:KEEP]):
                    fail(f"text search for batch {b} found {sorted(h.id for h in hits)}")
                stats["checks"] += 1
        except Exception as exc:  # noqa: BLE001 - every error is a finding
            fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
            db = None
    if db is not None:
        db.close()
    conn.send(stats)
