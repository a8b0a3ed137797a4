"""Child process for the kill -9 tests (tests/test_reliability_crash.py).

Usage: ``python crash_worker.py PATH SEED DIM DURABILITY [MAX_OPS [MIX [METRIC]]]``

METRIC is the database's metric when the worker creates it (``l2`` by default).

MIX is ``all`` (default) or a comma-separated list of: ``nocompact``
(compact() replaced by flush()), ``compact`` (every operation is a
compact()), ``flush`` (every operation is a flush(), a checkpoint),
``notextupserts`` (a write that replaces existing ids carries no
texts).

Opens (or creates) the database at PATH and runs a random, seeded sequence of
operations on it until killed (or until MAX_OPS). Around every call it writes
one line to stdout, flushed at once:

* ``I <json>`` (intent) just *before* the call: the operation and all its
  arguments, so the parent knows the one operation that may be in flight;
* ``A <n>`` (acknowledged) just *after* the call returned.

The parent never trusts this process's view of the database: it rebuilds the
expected state from these lines alone. Vectors are not printed; they are a
pure function of an integer key (:func:`vector_for`), shared with the parent.
"""

from __future__ import annotations

import json
import sys

import numpy as np

GROUPS = 6          # metadata "g" takes values 0..GROUPS-1 (used by delete(filter=...))
TARGET_SIZE = 300   # the worker leans towards deletes above this many records
WORDS = ["river", "stone", "cloud", "amber", "violet", "harbor", "signal", "forest"]


def vector_for(key: int, dim: int) -> np.ndarray:
    """The vector of a write: distinct per key, identical in worker and parent."""
    return np.random.default_rng(key).normal(0.0, 1.0, dim).astype(np.float32)


def unique_word(key: int) -> str:
    """A token no other text contains (letters only, so no tokenizer splits or stems it)."""
    letters = "bcdfghjklmnpqrstvwxz"
    out = []
    key += 1
    while key:
        key, r = divmod(key, len(letters))
        out.append(letters[r])
    return "zq" + "".join(out) + "zq"


def text_for(key: int, rng: np.random.Generator) -> str:
    shared = " ".join(rng.choice(WORDS, size=3))
    return f"{shared} {unique_word(key)}"


class Plan:
    """Draws the next operation from the seed and the ids the database holds."""

    def __init__(self, seed: int, live: list[str], mix: str = "all") -> None:
        self.mix = set(mix.split(","))
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.live = list(live)
        self.live_set = set(live)
        self.counter = 0

    def _key(self) -> int:
        self.counter += 1
        return self.seed * 1_000_000 + self.counter

    def _new_id(self) -> str:
        return f"s{self.seed}n{self.counter}"

    def _some_existing(self, n: int) -> list[str]:
        n = min(n, len(self.live))
        idx = self.rng.choice(len(self.live), size=n, replace=False)
        return [self.live[i] for i in idx]

    def _record(self, rid: str, batch: str | None) -> dict:
        key = self._key()
        meta = {"g": int(self.rng.integers(GROUPS)), "v": key % 1000}
        if batch is not None:
            meta["batch"] = batch
        if self.rng.random() < 0.3:
            meta["nested"] = {"k": [int(self.rng.integers(5)), "x"]}
        text = text_for(key, self.rng) if self.rng.random() < 0.25 else None
        return {"id": rid, "key": key, "meta": meta, "text": text}

    def next(self) -> dict:
        rng = self.rng
        big = len(self.live) > TARGET_SIZE
        r = rng.random()
        if not self.live or r < 0.22:
            kind = "insert"
        elif r < 0.50:
            kind = "insert_batch"
        elif r < 0.60:
            kind = "upsert"
        elif r < 0.72:
            kind = "update_metadata"
        elif r < (0.93 if big else 0.86):
            kind = "delete"
        elif r < 0.90:
            kind = "delete_filter"
        elif r < 0.95:
            kind = "flush"
        else:
            kind = "compact"
        if kind == "delete_filter" and not big:
            kind = "delete" if self.live else "insert"
        if "compact" in self.mix:
            kind = "compact"
        elif "flush" in self.mix:
            kind = "flush"
        elif "nocompact" in self.mix and kind == "compact":
            kind = "flush"
        op: dict = {"op": kind}
        if kind in ("insert", "upsert"):
            rid = self._some_existing(1)[0] if kind == "upsert" else self._new_id()
            op["records"] = [self._record(rid, None)]
            self.counter += 1
        elif kind == "insert_batch":
            n = int(rng.integers(2, 40))
            tag = f"b{self.seed}x{self.counter}"
            n_old = int(rng.integers(0, min(n, len(self.live)) + 1)) if self.live else 0
            rids = self._some_existing(n_old) + [None] * (n - n_old)
            recs = []
            for rid in rids:
                if rid is None:
                    rid = self._new_id()
                recs.append(self._record(rid, tag))
            if rng.random() < 0.2 and len(recs) > 1:  # a repeated id within the batch: the last wins
                dup = dict(self._record(recs[0]["id"], tag))
                recs.append(dup)
            op["records"] = recs
            op["batch"] = tag
        if "notextupserts" in self.mix and any(r["id"] in self.live_set for r in op.get("records", [])):
            for rec in op["records"]:
                rec["text"] = None
        if kind == "update_metadata":
            op["id"] = self._some_existing(1)[0]
            op["merge"] = bool(rng.random() < 0.5)
            op["meta"] = {"g": int(rng.integers(GROUPS)), "u": self._key() % 1000}
        elif kind == "delete":
            op["ids"] = self._some_existing(int(rng.integers(1, 6)))
        elif kind == "delete_filter":
            op["filter"] = {"g": int(rng.integers(GROUPS))}
        return op

    def applied(self, op: dict, deleted: list[str] | None = None) -> None:
        """Track the live ids (only to draw valid operations)."""
        if op["op"] in ("insert", "upsert", "insert_batch"):
            for rec in op["records"]:
                if rec["id"] not in self.live_set:
                    self.live_set.add(rec["id"])
                    self.live.append(rec["id"])
        elif op["op"] in ("delete", "delete_filter"):
            gone = set(op["ids"] if deleted is None else deleted)
            self.live_set -= gone
            self.live = [i for i in self.live if i not in gone]


def run(op: dict, db, dim: int) -> list[str] | None:
    kind = op["op"]
    if kind in ("insert", "upsert"):
        rec = op["records"][0]
        db.insert(rec["id"], vector_for(rec["key"], dim), rec["meta"], rec["text"])
    elif kind == "insert_batch":
        recs = op["records"]
        db.insert_batch([r["id"] for r in recs], np.stack([vector_for(r["key"], dim) for r in recs]),
                        [r["meta"] for r in recs], [r["text"] for r in recs])
    elif kind == "update_metadata":
        db.update_metadata(op["id"], op["meta"], merge=op["merge"])
    elif kind == "delete":
        db.delete(op["ids"])
    elif kind == "delete_filter":
        # which ids go is decided by the database; the parent recomputes it from its model
        before = {rid for rid in db.ids()}
        db.delete(filter=op["filter"])
        return sorted(before - set(db.ids()))
    elif kind == "flush":
        db.flush()
    elif kind == "compact":
        db.compact()
    else:
        raise ValueError(kind)
    return None


def main(argv: list[str]) -> int:
    import vjson

    path, seed, dim, durability = argv[0], int(argv[1]), int(argv[2]), argv[3]
    max_ops = int(argv[4]) if len(argv) > 4 else 10**9
    mix = argv[5] if len(argv) > 5 else "all"
    metric = argv[6] if len(argv) > 6 else "l2"
    out = sys.stdout
    db = vjson.VectorDB(path, dimension=dim, metric=metric, M=8, ef_construction=64, durability=durability)
    plan = Plan(seed, db.ids(), mix)
    out.write("R\n")  # ready: opened, about to start
    out.flush()
    for n in range(max_ops):
        op = plan.next()
        out.write("I " + json.dumps(op, separators=(",", ":")) + "\n")
        out.flush()
        deleted = run(op, db, dim)
        out.write(f"A {n}\n")
        out.flush()
        plan.applied(op, deleted)
    db.close()
    out.write("DONE\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
