"""Concurrency: real threads against one VectorDB object, and other processes.

* 8 reader threads (plain, filtered, full-text and hybrid searches) with no
  writer: every result equals the single-threaded reference, exactly.
* 4 writer threads: per-thread ids (the final state is exactly each thread's
  own last write) and shared ids written by every thread; for a shared id the
  final state must be the effect of an operation that could have come last in
  some serial order consistent with real time (its call ended after every
  other thread's last call on that id started), checked against time stamps
  taken around each acknowledged call. Counts, contents and verify() exact.
* 6 readers + 2 writers for a bounded time: a reader never sees part of a
  batch (count / get / filtered search of a batch tag are 0 or the whole
  batch), never sees an id whose delete had returned before the read began,
  and no call raises.
* Reads during a long write (a large insert_batch, then compact()): the
  longest single search is far shorter than the write; numbers are printed.
* Processes: a read-only opener in another process sees committed data; a
  second writer process gets DatabaseLockedError.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import vjson
from conftest import LONG, clustered

DIM = 32


def run_threads(targets, timeout=120):
    """Start threads on a barrier, join them, re-raise the first exception of any."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(fn):
        def body():
            try:
                barrier.wait()
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return body

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


WORDS = ["alpha", "bravo", "delta", "gamma", "omega", "sigma", "kappa", "theta"]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("conc") / "db"
    n = 4000
    data = clustered(n, DIM, seed=3)
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS, 4)) + f" item{i}" for i in range(n)]
    db = vjson.VectorDB(path, dimension=DIM, metric="cosine")
    db.insert_batch([f"r{i}" for i in range(n)], data, [{"c": i % 10, "big": i > n // 2} for i in range(n)], texts)
    db.delete([f"r{i}" for i in range(0, n, 7)])
    yield db, data
    db.close()


def test_parallel_readers_equal_single_threaded_reference(filled):
    db, data = filled
    queries = clustered(60 if LONG else 30, DIM, seed=4)  # 8 readers overlap either way; the long run checks more
    calls = []
    for i, q in enumerate(queries):
        calls.append(("search", lambda q=q: db.search(q, k=10)))
        calls.append(("filtered", lambda q=q, i=i: db.search(q, k=10, filter={"c": i % 10, "big": True})))
        calls.append(("hybrid", lambda q=q, i=i: db.hybrid_search(q, WORDS[i % 8], k=10, filter={"c": {"$lt": 5}})))
        calls.append(("text", lambda i=i: db.text_search(f"{WORDS[i % 8]} {WORDS[(i + 3) % 8]}", k=10)))
    batch_q = queries[:16]
    calls.append(("batch", lambda: db.batch_search(batch_q, k=5, num_threads=2)))

    def key(res):
        if isinstance(res, list) and res and isinstance(res[0], list):
            return [key(r) for r in res]
        return [(r.id, getattr(r, "distance", None), round(float(r.score), 5)) for r in res]

    reference = [key(fn()) for _, fn in calls]
    assert all(reference), "every reference call returns something"
    mismatches = []
    rounds = 3 if not LONG else 20

    def reader(seed):
        def body():
            order = np.random.default_rng(seed).permutation(len(calls))
            for _ in range(rounds):
                for j in order:
                    got = key(calls[j][1]())
                    if got != reference[j]:
                        mismatches.append((calls[j][0], j))
        return body

    started = time.perf_counter()
    run_threads([reader(s) for s in range(8)])
    took = time.perf_counter() - started
    print(f"8 readers x {rounds * len(calls)} calls in {took:.2f}s")
    assert not mismatches, f"{len(mismatches)} results differ from the reference, e.g. {mismatches[:5]}"


def test_writers_final_state_is_a_serial_order(tmp_path):
    db = vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="l2")
    n_threads, ops_per_thread = 4, (400 if LONG else 120)
    shared = [f"s{i}" for i in range(12)]
    # per thread: {own id: expected final (value tag) or None}, and a log of shared-id ops
    own_final: list[dict] = [dict() for _ in range(n_threads)]
    shared_log: list[list[tuple]] = [list() for _ in range(n_threads)]  # (id, start, end, value or None)
    clock = time.perf_counter

    def vec(tag: int) -> np.ndarray:
        return np.random.default_rng(tag).normal(size=DIM).astype(np.float32)

    def writer(t):
        def body():
            rng = np.random.default_rng(100 + t)
            own = [f"t{t}-{i}" for i in range(40)]
            for step in range(ops_per_thread):
                tag = (t + 1) * 1_000_000 + step
                r = rng.random()
                if r < 0.35:  # a batch of own ids (inserts and upserts)
                    ids = list(rng.choice(own, size=int(rng.integers(1, 8)), replace=False))
                    db.insert_batch(ids, np.stack([vec(tag)] * len(ids)), [{"tag": tag, "t": t}] * len(ids))
                    for rid in ids:
                        own_final[t][rid] = tag
                elif r < 0.5:  # delete own ids that exist (by this thread's own bookkeeping)
                    live = [i for i, v in own_final[t].items() if v is not None]
                    if live:
                        ids = list(rng.choice(live, size=min(len(live), int(rng.integers(1, 4))), replace=False))
                        assert db.delete(ids) == len(ids)
                        for rid in ids:
                            own_final[t][rid] = None
                elif r < 0.6:
                    live = [i for i, v in own_final[t].items() if v is not None]
                    if live:
                        rid = str(rng.choice(live))
                        db.update_metadata(rid, {"tag": own_final[t][rid], "t": t, "touched": step}, merge=True)
                elif r < 0.9:  # upsert shared ids, one batch, one value
                    ids = list(rng.choice(shared, size=int(rng.integers(1, 4)), replace=False))
                    start = clock()
                    db.insert_batch(ids, np.stack([vec(tag)] * len(ids)), [{"tag": tag, "t": t}] * len(ids))
                    end = clock()
                    for rid in ids:
                        shared_log[t].append((rid, start, end, tag))
                else:  # delete a shared id; absent is a clean RecordNotFoundError that changes nothing
                    rid = str(rng.choice(shared))
                    start = clock()
                    try:
                        db.delete([rid])
                    except vjson.RecordNotFoundError:
                        continue
                    end = clock()
                    shared_log[t].append((rid, start, end, None))
        return body

    run_threads([writer(t) for t in range(n_threads)])

    # own ids: exact
    expected: dict[str, int] = {}
    for t in range(n_threads):
        for rid, tag in own_final[t].items():
            if tag is not None:
                expected[rid] = tag
    # shared ids: the final state must be the effect of a possible last operation
    for rid in shared:
        ops = [(t, s, e, v) for t in range(n_threads) for (i, s, e, v) in shared_log[t] if i == rid]
        if not ops:
            assert rid not in db
            continue
        last_per_thread = {}
        for t, s, e, v in ops:
            last_per_thread[t] = (s, e, v)
        candidates = []
        for t, (s, e, v) in last_per_thread.items():
            later_start = max((s2 for t2, (s2, _, _) in last_per_thread.items() if t2 != t), default=-1.0)
            if e >= later_start:  # nobody else's last op on rid started after this one ended
                candidates.append(v)
        have = db.get(rid).metadata["tag"] if rid in db else None
        assert have in candidates, f"{rid}: final {have} is not a possible last write ({candidates})"
        if have is not None:
            expected[rid] = have
    # contents, counts, indexes
    assert sorted(db.ids()) == sorted(expected)
    assert len(db) == db.count() == len(expected) == db.count({"tag": {"$exists": True}})
    for rid, tag in expected.items():
        rec = db.get(rid)
        assert rec.metadata["tag"] == tag
        np.testing.assert_array_equal(rec.vector, vec(tag))
    for t in range(n_threads):
        assert db.count({"t": t}) == sum(1 for rid in expected if db.get_metadata(rid)["t"] == t)
    report = db.verify()
    assert report["ok"], report["problems"]
    db.close()
    with vjson.open(tmp_path / "db") as again:
        assert sorted(again.ids()) == sorted(expected)
        assert all(again.get_metadata(rid)["tag"] == tag for rid, tag in expected.items())


def test_mixed_readers_and_writers(tmp_path):
    db = vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="cosine")
    batch = 16
    base = clustered(400, DIM, seed=9)
    db.insert_batch([f"base{i}" for i in range(400)], base, [{"batch": "base"}] * 400)
    published: list[str] = []          # tags whose insert_batch returned
    delete_started: set[str] = set()   # tags whose delete was called
    deleted: set[str] = set()          # tags whose delete returned
    stop = threading.Event()
    duration = 6.0 if LONG else 2.0
    stats = {"reads": 0, "batches": 0, "deletes": 0}
    lock = threading.Lock()

    def writer(w):
        def body():
            rng = np.random.default_rng(w)
            i = 0
            while not stop.is_set():
                tag = f"w{w}b{i}"
                i += 1
                vecs = clustered(batch, DIM, seed=w * 100_000 + i)
                db.insert_batch([f"{tag}:{j}" for j in range(batch)], vecs,
                                [{"batch": tag, "j": j, "w": w} for j in range(batch)],
                                [f"batch {tag} word{j}" for j in range(batch)])
                with lock:
                    published.append(tag)
                    stats["batches"] += 1
                if rng.random() < 0.4:
                    mine = [t for t in published if t.startswith(f"w{w}b") and t not in delete_started]
                    if mine:
                        victim = mine[int(rng.integers(len(mine)))]
                        with lock:
                            delete_started.add(victim)
                        assert db.delete([f"{victim}:{j}" for j in range(batch)]) == batch
                        with lock:
                            deleted.add(victim)
                            stats["deletes"] += 1
                elif rng.random() < 0.3:
                    live = [t for t in published if t.startswith(f"w{w}b") and t not in delete_started]
                    if live:
                        tag2 = live[-1]
                        db.update_metadata(f"{tag2}:0", {"batch": tag2, "j": 0, "w": w, "seen": i})
        return body

    def reader(r):
        def body():
            rng = np.random.default_rng(1000 + r)
            while not stop.is_set():
                with lock:
                    if not published:
                        continue
                    tag = published[int(rng.integers(len(published)))]
                    gone_before = tag in deleted
                    dead_before = set(deleted)
                kind = r % 3
                if kind == 0:
                    got = db.count({"batch": tag})
                elif kind == 1:
                    recs = db.get(filter={"batch": tag})
                    assert all(rec.metadata["batch"] == tag for rec in recs)
                    got = len(recs)
                else:
                    hits = db.search(base[int(rng.integers(400))], k=batch + 10, filter={"batch": tag})
                    assert all(h.id.startswith(tag + ":") for h in hits)
                    got = len(hits)
                with lock:
                    started_after = tag in delete_started
                assert got in (0, batch), f"saw {got} of the {batch} records of batch {tag}"
                if gone_before:
                    assert got == 0, f"batch {tag} visible after its delete returned"
                if not started_after:
                    assert got == batch, f"batch {tag} incomplete before any delete of it"
                # plain searches never return a record whose delete had returned
                for h in db.search(base[int(rng.integers(400))], k=20):
                    assert h.id.split(":")[0] not in dead_before, f"deleted {h.id} returned"
                with lock:
                    stats["reads"] += 1
        return body

    def enough() -> bool:
        with lock:
            return stats["reads"] > 50 and stats["batches"] > 5 and stats["deletes"] > 0

    def timer():
        # Run for `duration`, then on until the mix has done enough of each kind of
        # call to mean something: a loaded CI machine may need longer. A writer
        # starved for the whole cap still fails the assertion below.
        t0 = time.monotonic()
        time.sleep(duration)
        while not enough() and time.monotonic() - t0 < duration + 60:
            time.sleep(0.1)
        stop.set()

    t_start = time.monotonic()
    run_threads([writer(0), writer(1)] + [reader(r) for r in range(6)] + [timer])
    print(f"mixed 6 readers + 2 writers for {time.monotonic() - t_start:.1f}s: {stats}")
    assert stats["reads"] > 50 and stats["batches"] > 5 and stats["deletes"] > 0
    live_tags = [t for t in published if t not in deleted]
    assert len(db) == 400 + batch * len(live_tags)
    for t in live_tags[:20]:
        assert db.count({"batch": t}) == batch
    report = db.verify()
    assert report["ok"], report["problems"]
    db.close()


def test_reads_during_a_long_write(tmp_path, capsys):
    n0, n_big = 2000, (60_000 if LONG else 20_000)
    db = vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="l2", ef_construction=100)
    db.insert_batch([f"a{i}" for i in range(n0)], clustered(n0, DIM, seed=1))
    big = clustered(n_big, DIM, seed=2)
    queries = clustered(64, DIM, seed=3)
    latencies: list[float] = []
    stop = threading.Event()
    phase = {"name": "idle"}
    per_phase: dict[str, list[float]] = {}

    def reader():
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            hits = db.search(queries[i % 64], k=10)
            dt = time.perf_counter() - t
            assert hits
            latencies.append(dt)
            per_phase.setdefault(phase["name"], []).append(dt)
            i += 1

    def writer():
        time.sleep(0.2)
        phase["name"] = "insert_batch"
        t = time.perf_counter()
        db.insert_batch([f"b{i}" for i in range(n_big)], big)
        durations["insert_batch"] = time.perf_counter() - t
        db.delete([f"b{i}" for i in range(0, n_big, 2)])
        phase["name"] = "compact"
        t = time.perf_counter()
        db.compact()
        durations["compact"] = time.perf_counter() - t
        phase["name"] = "after"
        time.sleep(0.1)
        stop.set()

    durations: dict[str, float] = {}
    run_threads([reader, reader, writer])
    lines = []
    for name in ("insert_batch", "compact"):
        lat = per_phase.get(name, [])
        assert len(lat) >= 5, f"searches made no progress during {name}: {len(lat)}"
        worst = max(lat)
        lines.append(f"{name}: took {durations[name] * 1000:.0f} ms; {len(lat)} searches ran meanwhile, "
                     f"longest {worst * 1000:.1f} ms, median {np.median(lat) * 1000:.2f} ms")
        assert worst < durations[name] / 4, lines[-1]
    with capsys.disabled():
        print("\n[concurrency] reads during long writes: " + "; ".join(lines))
    assert len(db) == n0 + n_big // 2
    db.close()


READER = """
import sys, vjson
try:
    db = vjson.VectorDB(sys.argv[1], read_only=sys.argv[2] == "ro")
except vjson.DatabaseLockedError:
    print("LOCKED"); sys.exit(0)
rec = db.get("k7")
print(len(db), rec.metadata["n"], db.search(rec.vector, k=1)[0].id)
"""


def test_other_processes(tmp_path):
    path = tmp_path / "db"
    with vjson.VectorDB(path, dimension=DIM, metric="l2") as db:
        db.insert_batch([f"k{i}" for i in range(50)], clustered(50, DIM, seed=5), [{"n": i} for i in range(50)])
        db.update_metadata("k7", {"n": 77})  # committed in the log, not checkpointed
        ro = subprocess.run([sys.executable, "-c", READER, str(path), "ro"], capture_output=True, text=True,
                            timeout=60)
        assert ro.returncode == 0, ro.stderr
        assert ro.stdout.split() == ["50", "77", "k7"]
        rw = subprocess.run([sys.executable, "-c", READER, str(path), "rw"], capture_output=True, text=True,
                            timeout=60)
        assert rw.returncode == 0, rw.stderr
        assert rw.stdout.strip() == "LOCKED"
