"""Crash safety: a worker process is killed with SIGKILL at random moments.

``tests/crash_worker.py`` runs a seeded random sequence of writes (insert,
insert_batch, upserts, update_metadata, delete by id and by filter, texts,
flush and compact) and prints each operation before the call and an
acknowledgement after it returned. This test kills it at a random point
(between calls, inside a call, inside a checkpoint or a compaction, or while
it is still opening the database), reopens the database and checks it against
a model built only from those lines:

* every acknowledged operation is there, and the one operation in flight is
  there entirely or not at all (so no partial batch, no resurrected delete);
* exact contents (ids, vectors bit for bit, metadata, texts);
* ``verify()`` is clean;
* every live record is found by a search with its own vector, and every search
  result is a live id whose distance matches its current vector (no dead or
  stale row is ever returned);
* full-text search finds each live text by its unique word and no dead text;
* ``count(filter)`` and ``get(filter=...)`` agree with the model.

Then a new worker continues on the same database (several kills per database,
alternating ``durability="sync"`` and ``"flush"``: both promise to survive a
killed process). CI runs a few dozen kills; ``VJSON_CRASH_KILLS=N`` or
``VJSON_LONG_TESTS=1`` (2000 kills) run more. This proves safety against the
*process* dying, not against power loss (see docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vjson
from conftest import LONG
from crash_worker import GROUPS, unique_word, vector_for

WORKER = Path(__file__).with_name("crash_worker.py")
DIM = 8
KILLS = int(os.environ.get("VJSON_CRASH_KILLS", "2000" if LONG else "16"))
KILLS_PER_DB = 9
KILL_LOOP_MIX = os.environ.get("VJSON_CRASH_MIX", "all")


# ---------------------------------------------------------------- the model

def apply(model: dict, op: dict) -> dict:
    """The state after `op`: {id: (vector key, metadata, text)}. Returns a new dict."""
    out = dict(model)
    kind = op["op"]
    if kind in ("insert", "upsert", "insert_batch"):
        for rec in op["records"]:
            out[rec["id"]] = (rec["key"], rec["meta"], rec["text"])
    elif kind == "update_metadata":
        key, meta, text = out[op["id"]]
        new = dict(meta or {}) | op["meta"] if op["merge"] else dict(op["meta"])
        out[op["id"]] = (key, new, text)
    elif kind == "delete":
        for rid in op["ids"]:
            del out[rid]
    elif kind == "delete_filter":
        ((field, value),) = op["filter"].items()
        for rid in [r for r, (_, meta, _) in out.items() if (meta or {}).get(field) == value]:
            del out[rid]
    return out


def parse(lines: list[str]) -> tuple[list[dict], dict | None, bool]:
    """(acknowledged ops, the op in flight or None, whether the worker got past opening)."""
    acked: list[dict] = []
    pending = None
    ready = False
    for line in lines:
        if line == "R":
            ready = True
        elif line.startswith("I "):
            assert pending is None, "two intents without an acknowledgement"
            pending = json.loads(line[2:])
        elif line.startswith("A "):
            assert pending is not None
            acked.append(pending)
            pending = None
    return acked, pending, ready


class Vector:
    """A stored vector in a state: bit for bit under "l2"; under "cosine" (stored
    scaled to unit length by the core) equal to the unit vector within float32 rounding."""

    def __init__(self, values: np.ndarray, metric: str) -> None:
        self.values, self.metric = values, metric

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vector):
            return NotImplemented
        if self.metric == "cosine":
            return bool(np.allclose(self.values, other.values, rtol=0, atol=2e-6))
        return self.values.tobytes() == other.values.tobytes()

    def __repr__(self) -> str:
        return f"Vector({self.values!r})"


def expected_vector(key: int, metric: str) -> np.ndarray:
    v = vector_for(key, DIM)
    return (v / np.linalg.norm(v.astype(np.float64))).astype(np.float32) if metric == "cosine" else v


def distance(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    """The database's distance, computed here independently in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if metric == "cosine":
        return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.sum((a - b) ** 2))


def state_of(db: vjson.VectorDB) -> dict:
    recs = db.get_batch(db.ids()) if len(db) else []
    return {r.id: (Vector(r.vector, db.metric), r.metadata, r.text) for r in recs}


def expected_state(model: dict, metric: str = "l2") -> dict:
    return {rid: (Vector(expected_vector(key, metric), metric), meta, text)
            for rid, (key, meta, text) in model.items()}


def check_database(db: vjson.VectorDB, model: dict, dead_keys: set[int], dead_words: set[str], rng) -> None:
    """Everything beyond exact contents: indexes, search, text, filters."""
    report = db.verify()
    assert report["ok"], report["problems"]
    assert len(db) == db.count() == len(model)
    n = len(model)
    if n:
        ef = max(64, 2 * n)
        # every live record is found by its own vector; every hit is live and current
        for rid, (key, _, _) in model.items():
            q = vector_for(key, DIM)
            hits = db.search(q, k=min(3, n), ef_search=ef)
            assert hits and hits[0].distance <= 1e-6, (rid, hits[:1])
            assert rid in [h.id for h in hits if h.distance <= 1e-6], (rid, hits)
            for h in hits:
                assert h.id in model, f"search returned dead id {h.id!r}"
                want = distance(vector_for(model[h.id][0], DIM), q, db.metric)
                assert h.distance == pytest.approx(want, rel=1e-4, abs=1e-4), f"stale vector behind {h.id!r}"
        # vectors of deleted or replaced records never bring back their dead rows
        for key in rng.choice(sorted(dead_keys), size=min(20, len(dead_keys)), replace=False) if dead_keys else []:
            for h in db.search(vector_for(int(key), DIM), k=min(3, n), ef_search=ef):
                assert h.id in model and h.distance == pytest.approx(
                    distance(vector_for(model[h.id][0], DIM), vector_for(int(key), DIM), db.metric),
                    rel=1e-4, abs=1e-4)
    # full text: each live text found by its unique word, each dead text gone
    live_words = {}
    for rid, (key, _, text) in model.items():
        if text is not None:
            live_words[unique_word(key)] = rid
    sample = sorted(live_words)
    for word in rng.choice(sample, size=min(25, len(sample)), replace=False) if sample else []:
        assert [h.id for h in db.text_search(str(word), k=3)] == [live_words[word]], word
    gone = sorted(dead_words - set(live_words))
    for word in rng.choice(gone, size=min(15, len(gone)), replace=False) if gone else []:
        assert db.text_search(str(word), k=3) == [], f"dead text {word} is still found"
    assert db.text_search("river OR stone OR cloud OR amber OR violet OR harbor OR signal OR forest",
                          k=max(1, n + 5)).__len__() == sum(t is not None for _, _, t in model.values())
    # filters agree with the model
    for g in range(GROUPS):
        want = sorted(r for r, (_, m, _) in model.items() if (m or {}).get("g") == g)
        assert db.count({"g": g}) == len(want)
        assert sorted(r.id for r in db.get(filter={"g": g})) == want
    assert db.count({"nested.k": {"$size": 2}}) == sum("nested" in (m or {}) for _, m, _ in model.values())
    assert db.count({"u": {"$exists": True}}) == sum("u" in (m or {}) for _, m, _ in model.values())


def dead_of(before: dict, after: dict) -> tuple[set[int], set[str]]:
    """Vector keys and text words that `after` no longer holds."""
    keys = {k for rid, (k, _, _) in before.items() if after.get(rid, (None,))[0] != k}
    words = {unique_word(k) for rid, (k, _, t) in before.items() if t is not None and after.get(rid, (None,))[0] != k}
    return keys, words


# ---------------------------------------------------------------- one kill

def run_and_kill(path: Path, seed: int, durability: str, rng, log_file: Path,
                 mix: str = KILL_LOOP_MIX, metric: str = "l2") -> tuple[list[str], int, str]:
    """Start a worker, kill it at a random moment; returns (its stdout lines, return code, where)."""
    with open(log_file, "ab") as err:
        proc = subprocess.Popen([sys.executable, str(WORKER), str(path), str(seed), str(DIM), durability,
                                 str(10**9), mix, metric],
                                stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
    lines: list[str] = []
    where = ""
    try:
        mode = rng.random()
        if mode < 0.08:
            # while it starts and opens the database (replay, text resync, stray-file cleanup)
            time.sleep(rng.uniform(0.05, 0.3))
            where = "startup"
        else:
            target_acks = int(rng.integers(0, 16))
            target_kind = rng.choice(["any", "any", "compact", "flush", "flush", "insert_batch", "delete_filter"])
            if mix == "nocompact" and target_kind == "compact":
                target_kind = "any"
            # compaction and checkpoints take tens of ms: spread the kill over all of it
            scale = 0.08 if target_kind in ("compact", "flush") else float(rng.choice([0.0, 0.002, 0.02]))
            delay = scale * rng.random()
            acks = 0
            while True:
                line = proc.stdout.readline()
                if not line:
                    break  # exited by itself
                line = line.rstrip("\n")
                lines.append(line)
                if line.startswith("A "):
                    acks += 1
                elif line.startswith("I ") and acks >= target_acks:
                    kind = json.loads(line[2:])["op"]
                    if target_kind in ("any", kind) or acks > target_acks + 30:
                        time.sleep(delay)
                        where = f"{kind}+{delay * 1000:.1f}ms"
                        break
        proc.kill()
    finally:
        rc = proc.wait(10)
        lines.extend(proc.stdout.read().splitlines())
        proc.stdout.close()
    return lines, rc, where


def reopen_and_check(path: Path, model: dict, acked: list[dict], pending: dict | None, rng,
                     dead: tuple[set[int], set[str]]) -> tuple[dict, bool]:
    """Reopen after a kill; returns the model the database turned out to hold, and
    whether the op in flight had reached its commit point."""
    applied = False
    for op in acked:
        before = model
        model = apply(model, op)
        k, w = dead_of(before, model)
        dead[0].update(k)
        dead[1].update(w)
    db = vjson.VectorDB(path)
    try:
        have = state_of(db)
        without = expected_state(model, db.metric)
        if pending is not None and have != without:
            with_op = apply(model, pending)
            if have == expected_state(with_op, db.metric):
                k, w = dead_of(model, with_op)
                dead[0].update(k)
                dead[1].update(w)
                model = with_op
                applied = True
        if have != expected_state(model, db.metric):
            want = expected_state(model, db.metric)
            missing = sorted(set(want) - set(have))[:5]
            extra = sorted(set(have) - set(want))[:5]
            changed = sorted(r for r in set(want) & set(have) if want[r] != have[r])[:5]
            pytest.fail(f"after the kill the database holds neither the acknowledged state nor that plus "
                        f"the op in flight ({pending and pending['op']}): missing {missing}, "
                        f"extra {extra}, different {changed}")
        check_database(db, model, dead[0], dead[1], rng)
    finally:
        if rng.random() < 0.5:
            db.close()  # a clean close checkpoints
        else:
            db._release_files()  # or the checker "dies" too: the next open replays the log again
            db._closed = True
    return model, applied


def test_kill_9_loop(tmp_path, capsys):
    rng = np.random.default_rng(int(os.environ.get("VJSON_CRASH_SEED", "20240606")))
    started = time.monotonic()
    survived = 0
    acked_total = 0
    in_flight_applied = 0
    where_counts: dict[str, int] = {}
    log_file = tmp_path / "worker-stderr.log"
    db_index = 0
    metrics_seen: set[tuple[str, str]] = set()
    while survived < KILLS:
        path = tmp_path / f"db{db_index}"
        durability = "sync" if db_index % 2 == 0 else "flush"
        # l2 and cosine (stored unit-length: a different write path), each under both
        # durabilities over four databases; the short CI run covers l2+sync and cosine+flush
        metric = "cosine" if db_index % 4 in (1, 2) else "l2"
        metrics_seen.add((metric, durability))
        db_index += 1
        model: dict = {}
        dead: tuple[set[int], set[str]] = (set(), set())
        for _ in range(min(KILLS_PER_DB, KILLS - survived)):
            seed = int(rng.integers(1, 2**31))
            lines, rc, where = run_and_kill(path, seed, durability, rng, log_file, metric=metric)
            if rc not in (-9, 0):
                pytest.fail(f"worker failed by itself (rc {rc}):\n{log_file.read_text()[-3000:]}")
            acked, pending, ready = parse(lines)
            if not ready and not path.joinpath("MANIFEST.json").exists():
                continue  # killed before the database existed: nothing to check
            model, applied = reopen_and_check(path, model, acked, pending, rng, dead)
            in_flight_applied += applied
            acked_total += len(acked)
            kind = where.split("+")[0] if where else "exit"
            where_counts[kind] = where_counts.get(kind, 0) + 1
            survived += 1
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[crash] survived {survived} SIGKILLs over {db_index} databases in {elapsed:.1f}s; "
              f"{acked_total} acknowledged ops checked; in-flight op found applied {in_flight_applied} times; "
              f"kill points: {dict(sorted(where_counts.items()))}; metric/durability: {sorted(metrics_seen)}")
    assert survived == KILLS
    assert {m for m, _ in metrics_seen} == {"l2", "cosine"} or KILLS <= KILLS_PER_DB


def test_worker_runs_to_completion_and_reopens(tmp_path):
    """The worker itself is correct when nobody kills it (guards the harness)."""
    path = tmp_path / "db"
    out = subprocess.run([sys.executable, str(WORKER), str(path), "7", str(DIM), "sync", "30"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "DONE"
    acked, pending, ready = parse(lines)
    assert ready and pending is None and len(acked) == 30
    model: dict = {}
    for op in acked:
        model = apply(model, op)
    with vjson.open(path) as db:
        assert state_of(db) == expected_state(model)
        check_database(db, model, set(), set(), np.random.default_rng(0))


# ---------------------------------------------------------------- every crash point, deterministically

def folder_digest(folder: Path) -> str:
    import hashlib

    h = hashlib.sha1()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(folder)).encode() + b"\0" + file.read_bytes())
    return h.hexdigest()


def copy_folder(src: Path, dst: Path) -> None:
    """Copy a database folder as a crash would leave it (lock files are the OS's, not data;
    a file that vanishes while copying, like a tantivy temp file, is skipped)."""
    import shutil

    dst.mkdir()
    for entry in os.scandir(src):
        if entry.name == "LOCK" or entry.name.endswith(".lock"):
            continue
        try:
            if entry.is_dir():
                copy_folder(Path(entry.path), dst / entry.name)
            else:
                shutil.copy2(entry.path, dst / entry.name)
        except FileNotFoundError:
            pass


def _scripted_ops() -> list[dict]:
    """A short workload touching every write path, in the worker's op format."""
    rng = np.random.default_rng(5)
    key = iter(range(10_000, 20_000))

    def rec(rid, batch=None, text=True):
        k = next(key)
        meta = {"g": int(rng.integers(GROUPS)), "v": k % 1000}
        if batch:
            meta["batch"] = batch
        return {"id": rid, "key": k, "meta": meta, "text": f"river {unique_word(k)}" if text else None}

    return [
        {"op": "insert_batch", "batch": "b1", "records": [rec(f"a{i}", "b1", i % 3 == 0) for i in range(24)]},
        {"op": "insert", "records": [rec("solo")]},
        {"op": "insert_batch", "batch": "b2",
         "records": [rec(f"a{i}", "b2", i % 2 == 0) for i in range(0, 12, 2)] + [rec(f"c{i}", "b2") for i in range(4)]},
        {"op": "update_metadata", "id": "a3", "merge": True, "meta": {"g": 1, "u": 7}},
        {"op": "delete", "ids": ["a1", "a6", "solo"]},
        {"op": "flush"},
        {"op": "upsert", "records": [rec("a9", text=False)]},
        {"op": "delete_filter", "filter": {"g": 2}},
        {"op": "compact"},
        {"op": "insert_batch", "batch": "b3", "records": [rec(f"d{i}", "b3") for i in range(5)]},
        {"op": "update_metadata", "id": "d1", "merge": False, "meta": {"g": 0, "u": 1}},
        {"op": "delete", "ids": ["d2"]},
        {"op": "compact"},
        {"op": "insert", "records": [rec("last")]},
    ]


@pytest.mark.parametrize("variant", [
    "full", "notextupserts"])
def test_every_crash_point_of_a_scripted_workload(tmp_path, monkeypatch, capsys, variant):
    """Image the folder before and after every write system call and every text-index
    commit (what a kill -9 at that instant leaves behind), then open each image.

    Unlike the kill loop this reaches every crash point between two writes,
    including the narrow ones (e.g. between a compaction's manifest switch and
    its text-index rebuild, or between two text-index commits of one call)."""
    from crash_worker import run as run_op
    from vjson import storage, text_index

    import shutil

    path = tmp_path / "db"
    images: list[tuple[Path, int, str]] = []
    seen: set = set()
    current = {"op": -1}

    def image(label: str) -> None:
        if not (path / "MANIFEST.json").exists():
            return
        dst = tmp_path / f"img{len(images)}"
        copy_folder(path, dst)
        digest = (folder_digest(dst), current["op"])
        if digest in seen:  # the same bytes with the same op in flight: nothing new to check
            shutil.rmtree(dst)
            return
        seen.add(digest)
        images.append((dst, current["op"], label))

    def hooked(name, fn):
        def wrapper(*args, **kwargs):
            image(f"before {name}")
            out = fn(*args, **kwargs)
            image(f"after {name}")
            return out
        return wrapper

    for name in ("write", "pwrite", "fsync", "truncate", "replace"):
        monkeypatch.setattr(storage.fs, name, hooked(name, getattr(storage.fs, name)))
    for name in ("commit", "rebuild"):
        monkeypatch.setattr(text_index.TextIndex, name, hooked(f"text.{name}", getattr(text_index.TextIndex, name)))
    monkeypatch.setattr(text_index.TextIndex, "recreate",
                        staticmethod(hooked("text.recreate", text_index.TextIndex.recreate)))

    ops = _scripted_ops()
    if variant == "notextupserts":  # no write both adds texts and retires rows that had one
        live: set[str] = set()
        for op in ops:
            recs = op.get("records", [])
            if any(r["id"] in live for r in recs):
                for r in recs:
                    r["text"] = None
            live = set(apply({k: (0, None, None) for k in live}, op))
    t0 = time.monotonic()
    db = vjson.VectorDB(path, dimension=DIM, metric="l2", M=8, ef_construction=64, durability="flush")
    for i, op in enumerate(ops):
        current["op"] = i
        run_op(op, db, DIM)
    current["op"] = len(ops)  # close() checkpoints: no change of content
    db.close()
    monkeypatch.undo()
    t1 = time.monotonic()

    models = [{}]
    for op in ops:
        models.append(apply(models[-1], op))
    models.append(models[-1])
    sample = images
    failures = []
    rng = np.random.default_rng(1)
    for dst, i, label in sample:
        where = f"image {dst.name}: op {i} ({ops[i]['op'] if i < len(ops) else 'close'}), {label}"
        try:
            with vjson.VectorDB(dst) as again:
                have = state_of(again)
                candidates = [models[i], models[i + 1]] if i >= 0 else [models[0]]
                match = [m for m in candidates if have == expected_state(m)]
                if not match:
                    failures.append(f"{where}: contents match neither the state before nor after the op")
                    continue
                dead_keys, dead_words = set(), set()
                for a, b in zip(models[:i + 1], models[1:i + 2]):
                    k, w = dead_of(a, b)
                    dead_keys |= k
                    dead_words |= w
                check_database(again, match[-1], dead_keys, dead_words, rng)
        except (AssertionError, vjson.VJsonError) as exc:
            failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:300]}")
    with capsys.disabled():
        print(f"\n[crash] {variant}: {len(sample)} distinct crash images opened and checked "
              f"({t1 - t0:.1f}s imaging, {time.monotonic() - t1:.1f}s checking), {len(failures)} bad")
    assert not failures, "\n".join(failures[:10])



def _run_op_killed(path, op: str, delay: float | None) -> tuple[list[str], int, float]:
    """Run crash_worker's `op` (compact, flush) on the database at `path`; SIGKILL it
    `delay` seconds after it starts the operation (None: let it finish). Returns its
    output lines, exit code and how long the operation took when it finished."""
    proc = subprocess.Popen([sys.executable, str(WORKER), str(path), "1", str(DIM), "sync", "1", op],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    lines: list[str] = []
    took, t = 0.0, time.monotonic()
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("I "):
            t = time.monotonic()
            if delay is not None:
                time.sleep(delay)
                proc.kill()
        elif line.startswith("A "):
            took = time.monotonic() - t
    rc = proc.wait(10)
    proc.stdout.close()
    return lines, rc, took


def test_kill_during_compaction(tmp_path, capsys):
    """SIGKILL swept across a compaction (of a database with texts and dead rows, so rows
    are renumbered): every kill point must reopen to the same, fully consistent database."""
    from crash_worker import run as run_op

    base = tmp_path / "base"
    rng = np.random.default_rng(3)
    model: dict = {}
    with vjson.VectorDB(base, dimension=DIM, metric="l2", M=8, ef_construction=64) as db:
        recs = [{"id": f"r{i}", "key": 50_000 + i, "meta": {"g": i % GROUPS},
                 "text": f"river {unique_word(50_000 + i)}" if i % 3 else None} for i in range(240)]
        for op in ({"op": "insert_batch", "records": recs},
                   {"op": "delete", "ids": [f"r{i}" for i in range(0, 240, 3)] + ["r1", "r2"]}):
            run_op(op, db, DIM)
            model = apply(model, op)

    def attempt(name: str, delay: float | None) -> tuple[list[str], int, float]:
        path = tmp_path / name
        copy_folder(base, path)
        return _run_op_killed(path, "compact", delay)

    _, rc, duration = attempt("measure", None)
    assert rc == 0
    failures = []
    delays = np.linspace(0.0, 1.2 * duration, 8)
    for i, delay in enumerate(delays):
        lines, rc, _ = attempt(f"k{i}", float(delay))
        assert rc in (-9, 0)
        with vjson.VectorDB(tmp_path / f"k{i}") as db:
            try:
                assert state_of(db) == expected_state(model)
                check_database(db, model, set(), set(), rng)
            except AssertionError as exc:
                failures.append(f"kill {delay * 1000:.1f} ms into compact(): {str(exc)[:200]}")
    with capsys.disabled():
        print(f"\n[crash] compaction takes {duration * 1000:.0f} ms; {len(delays)} kills across it, "
              f"{len(failures)} left a bad database")
    assert not failures, "\n".join(failures)


def test_kill_during_an_incremental_checkpoint(tmp_path, capsys):
    """SIGKILL swept across a checkpoint that writes only what changed since the last
    one (a segment of new rows, a delta of updated metadata and deletes, the graph):
    every kill point must reopen to the same database, with every write."""
    from crash_worker import run as run_op

    base = tmp_path / "base"
    rng = np.random.default_rng(4)
    model: dict = {}
    db = vjson.VectorDB(base, dimension=DIM, metric="l2", M=8, ef_construction=64)
    first = [{"id": f"r{i}", "key": 60_000 + i, "meta": {"g": i % GROUPS},
              "text": f"river {unique_word(60_000 + i)}" if i % 4 == 0 else None} for i in range(2000)]
    later = [{"id": f"n{i}", "key": 70_000 + i, "meta": {"g": i % GROUPS}, "text": None} for i in range(300)]
    ops = [{"op": "insert_batch", "records": first}, {"op": "flush"},
           {"op": "insert_batch", "records": later},
           {"op": "delete", "ids": [f"r{i}" for i in range(0, 400, 7)]}]
    ops += [{"op": "update_metadata", "id": f"r{i}", "merge": False, "meta": {"g": 0, "u": i}}
            for i in range(1, 400, 9) if i % 7]
    for op in ops:
        run_op(op, db, DIM)
        model = apply(model, op)
    copy_folder(base, tmp_path / "open")  # as a kill would leave it: the changes only in the log
    db.close()

    def attempt(name: str, delay: float | None) -> tuple[int, float]:
        path = tmp_path / name
        copy_folder(tmp_path / "open", path)
        _, rc, took = _run_op_killed(path, "flush", delay)
        return rc, took

    rc, duration = attempt("measure", None)
    assert rc == 0
    m = json.loads((tmp_path / "measure" / "MANIFEST.json").read_text())
    assert len(m["segments"]) == 2 and m["segments"][1]["rows"] == 300  # incremental: the new rows only
    failures = []
    delays = np.linspace(0.0, 1.2 * duration, 8)
    for i, delay in enumerate(delays):
        rc, _ = attempt(f"k{i}", float(delay))
        assert rc in (-9, 0)
        with vjson.VectorDB(tmp_path / f"k{i}") as db:
            try:
                assert state_of(db) == expected_state(model)
                check_database(db, model, set(), set(), rng)
                assert db.verify()["ok"], db.verify()["problems"]
            except AssertionError as exc:
                failures.append(f"kill {delay * 1000:.1f} ms into flush(): {str(exc)[:200]}")
        with vjson.VectorDB(tmp_path / f"k{i}") as db:  # and once more, from what that close wrote
            if state_of(db) != expected_state(model):
                failures.append(f"kill {delay * 1000:.1f} ms into flush(): wrong after a second reopen")
    with capsys.disabled():
        print(f"\n[crash] an incremental checkpoint takes {duration * 1000:.0f} ms; {len(delays)} kills "
              f"across it, {len(failures)} left a bad database")
    assert not failures, "\n".join(failures)
