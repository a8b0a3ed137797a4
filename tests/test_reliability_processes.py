"""Read-only processes beside a writer process: they follow it, and its checkpoints never pull files from them.

The writer (this process) inserts batches, deletes, updates, checkpoints and
compacts; reader processes (tests/procs_worker.py, spawned) check on every
call that nothing raises, that counts never go backwards and that each batch
the writer acknowledged to them through a pipe is visible to their next call.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
import pytest

import vjson
from conftest import LONG
from procs_worker import DIM, KEEP, TEMP, batch_ids, batch_vectors, batch_word, reader

SECONDS = float(os.environ.get("VJSON_PROCS_SECONDS", 300 if LONG else 6))


def _write_batch(db: vjson.VectorDB, b: int) -> None:
    ids = batch_ids(b)
    metas = [{"kind": "keep" if i < KEEP else "temp", "b": b} for i in range(KEEP + TEMP)]
    texts = [f"{batch_word(b)} record {i}" for i in range(KEEP + TEMP)]
    db.insert_batch(ids, batch_vectors(b), metas, texts)


def _run(path, readers: int, seconds: float, reopen_every: int, capsys) -> None:
    ctx = mp.get_context("spawn")
    # "flush": what readers see does not depend on fsync, and it lets the writer go faster
    db = vjson.VectorDB(path, dimension=DIM, metric="l2", durability="flush")
    _write_batch(db, 0)
    pipes, procs = [], []
    for r in range(readers):
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=reader, args=(str(path), theirs, r, seconds, reopen_every))
        proc.start()
        ours.send(0)
        pipes.append(ours)
        procs.append(proc)
    for p in pipes:
        assert p.poll(120) and p.recv() == "ready"
    b, ops = 0, {"batches": 1, "deletes": 0, "updates": 0, "checkpoints": 0, "compactions": 0}
    deadline = time.monotonic() + seconds
    rng = np.random.default_rng(0)
    while time.monotonic() < deadline:
        b += 1
        _write_batch(db, b)
        ops["batches"] += 1
        if b % 2 == 0:  # retire older temps: deletes and upserts move rows under the readers
            old = int(rng.integers(0, b))
            gone = [i for i in batch_ids(old)[KEEP:] if i in db]
            if gone:
                db.delete(gone)
                ops["deletes"] += 1
        if b % 5 == 0:
            db.update_metadata(f"keep-{b}-0", {"kind": "keep", "b": b})  # same value: a log frame, no change
            ops["updates"] += 1
        if b % 3 == 0:
            db.flush()
            ops["checkpoints"] += 1
        if b % 10 == 0:
            db.compact()
            ops["compactions"] += 1
        for p in pipes:  # every call of batch b has returned: the readers' next calls must see it
            p.send(b)
    for p in pipes:
        p.send(None)
    results = []
    for p, proc in zip(pipes, procs):
        results.append(p.recv() if p.poll(120) else {"errors": 1, "messages": ["no report"], "opens": 0,
                                                     "calls": 0, "checks": 0})
        proc.join(60)
    db.close()
    total = {k: sum(r[k] for r in results) for k in ("opens", "calls", "checks", "errors")}
    with capsys.disabled():
        print(f"\n[processes] {readers} readers, {seconds:.0f} s: writer {ops}; readers {total}")
    assert all(proc.exitcode == 0 for proc in procs)
    messages = [m for r in results for m in r["messages"]]
    assert total["errors"] == 0, messages
    assert total["checks"] > 0 and total["opens"] >= readers


def test_readers_follow_a_writer_that_checkpoints_and_compacts(tmp_path, capsys):
    _run(tmp_path / "db", readers=3, seconds=SECONDS, reopen_every=20, capsys=capsys)


def test_reader_opening_during_checkpoints_never_finds_files_missing(tmp_path, capsys):
    """Regression: readers opened on every call while batches of 50 land and every third checkpoints
    (the issue: >100 of ~540 opens raised CorruptionError "missing (the manifest names it)")."""
    _run(tmp_path / "db", readers=2, seconds=min(SECONDS, 6) if not LONG else 60, reopen_every=1, capsys=capsys)


# ---------------------------------------------------------------- in one process, deterministic

def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def test_reader_sees_writes_committed_after_it_opened(tmp_path):
    """Regression: a read-only handle saw only what was committed when it opened."""
    path = tmp_path / "db"
    w = vjson.VectorDB(path, dimension=DIM, metric="l2")
    w.insert_batch(["a", "b"], _vectors(2, 1), [{"g": 1}, {"g": 2}], ["alpha one", "beta two"])
    r = vjson.VectorDB(path, read_only=True)
    assert len(r) == 2
    v = _vectors(3, 2)
    w.insert_batch(["c", "d", "e"], v, [{"g": 3}] * 3, ["gamma three", None, "delta"])
    assert len(r) == 5 and "c" in r and r.count({"g": 3}) == 3
    np.testing.assert_array_equal(r.get("d").vector, v[1])
    assert r.search(v[2], k=1)[0].id == "e"
    assert [h.id for h in r.text_search("gamma")] == ["c"]
    w.delete(["a"])
    w.update_metadata("b", {"g": 9})
    assert "a" not in r and len(r) == 4 and r.get_metadata("b") == {"g": 9} and r.count({"g": 9}) == 1
    assert r.text_search("alpha") == []
    w.insert("b", _vectors(1, 3)[0], {"g": 10}, "beta again")  # an upsert retires the old row
    assert len(r) == 4 and r.get_metadata("b") == {"g": 10} and [h.id for h in r.text_search("again")] == ["b"]
    w.flush()  # a checkpoint: new manifest, new log
    w.insert("f", _vectors(1, 4)[0], {"g": 11})
    assert len(r) == 5 and r.get_metadata("f") == {"g": 11}
    w.compact()  # a new generation: new vector file, graph and text folder
    w.insert("g", _vectors(1, 5)[0], None, "epsilon")
    assert len(r) == 6 and sorted(r.ids()) == sorted(w.ids())
    assert [h.id for h in r.text_search("epsilon")] == ["g"]
    for rid in w.ids():
        np.testing.assert_array_equal(r.get(rid).vector, w.get(rid).vector)
    r.refresh()
    w.refresh()  # on a writer: nothing to do
    r.close()
    w.close()


def test_writer_keeps_the_files_a_reader_leases(tmp_path):
    """A checkpoint keeps the files of the one a live reader uses, and removes them once it lets go."""
    path = tmp_path / "db"
    w = vjson.VectorDB(path, dimension=DIM, metric="l2")
    w.insert_batch(["a", "b"], _vectors(2, 1))
    w.flush()
    r = vjson.VectorDB(path, read_only=True)  # on checkpoint 1
    held = {"log-1.vjl", "segment-1-0.vjg", "delta-1.vjd", "graph-1.vjx", "filters-1.vjm"}
    assert held <= set(os.listdir(path))
    w.insert("c", _vectors(1, 2)[0])
    w.flush()
    w.flush()
    assert held <= set(os.listdir(path)), "the writer removed files a reader still leases"
    assert not {"log-2.vjl", "delta-2.vjd"} & set(os.listdir(path)), "an unleased checkpoint was kept"
    r.close()
    w.flush()
    from vjson import _manifest
    # (a segment stays while later checkpoints still name it)
    assert not (held - _manifest.files(w._manifest)) & set(os.listdir(path)), "files of a released lease were kept"
    assert "segment-1-0.vjg" in _manifest.files(w._manifest) and "log-1.vjl" not in os.listdir(path)
    # the same when the reader process dies without closing: its flock goes with it
    import subprocess
    import sys
    code = ("import os, sys, vjson; db = vjson.VectorDB(sys.argv[1], read_only=True); print(len(db), flush=True);"
            " os.kill(os.getpid(), 9)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "3"
    w.flush()
    assert {f for f in os.listdir(path) if f.startswith("lease-")} == {"lease-5"}
    w.close()


def test_a_reader_follows_a_restarted_writer(tmp_path):
    """The writer closes and reopens (its close checkpoints, its open removes stray files)."""
    path = tmp_path / "db"
    with vjson.VectorDB(path, dimension=DIM, metric="l2") as w:
        w.insert_batch(["a"], _vectors(1, 1))
    r = vjson.VectorDB(path, read_only=True)
    for i in range(3):
        with vjson.VectorDB(path) as w:
            w.insert(f"x{i}", _vectors(1, 10 + i)[0])
            assert len(r) == 2 + i
    assert len(r) == 4 and sorted(r.ids()) == ["a", "x0", "x1", "x2"]
    r.close()


@pytest.mark.parametrize("threads", [4])
def test_reader_threads_follow_together(tmp_path, threads):
    """Several threads of one read-only handle following at once: all see the write, none fails."""
    import threading
    path = tmp_path / "db"
    w = vjson.VectorDB(path, dimension=DIM, metric="l2")
    w.insert("a", _vectors(1, 1)[0])
    r = vjson.VectorDB(path, read_only=True)
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)
    done = threading.Event()

    def read() -> None:
        barrier.wait()
        try:
            while not done.is_set():
                n = len(r)
                r.search(_vectors(1, 0)[0], k=min(3, n))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    pool = [threading.Thread(target=read) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    for i in range(60):
        w.insert_batch([f"k{i}-{j}" for j in range(5)], _vectors(5, 100 + i))
        if i % 7 == 0:
            w.flush()
        if i % 20 == 19:
            w.compact()
        assert len(r) == 1 + 5 * (i + 1)
    done.set()
    for t in pool:
        t.join()
    assert not errors, errors
    r.close()
    w.close()
