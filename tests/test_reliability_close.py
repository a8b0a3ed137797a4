"""Closing under load, remapping under readers, and the index lock's fairness.

Each race runs in a child process: the bugs these guard against crashed the
interpreter (SIGSEGV), which must fail one test, not the whole run. Threads
start on a barrier and the main thread closes while they are provably inside
calls (each records calls that finished and calls that ran into the close).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

import vjson
from conftest import LONG, clustered


def run_child(code: str, timeout: float = 300) -> str:
    """Run the race helpers below plus `code` in a child interpreter; its stdout."""
    source = _RACE_COMMON + textwrap.dedent(code)
    run = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"child exited {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    return run.stdout


ROUNDS = 40 if LONG else 8

_RACE_COMMON = """
import threading, sys, os, numpy as np, vjson
from vjson.errors import VJsonError, DatabaseClosedError
finished = closed = 0
other = []
lock = threading.Lock()

def hammer(barrier, ready, call):
    global finished, closed
    barrier.wait()
    while True:
        try:
            call()
            ready.set()  # in its loop: from now on the close() lands inside or between its calls
            with lock:
                finished += 1
        except DatabaseClosedError:
            with lock:
                closed += 1
            return
        except BaseException as exc:  # anything else is a failure
            with lock:
                other.append(repr(exc))
            ready.set()
            return

def data(n, dim):
    return np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)

def race(calls, close):
    barrier = threading.Barrier(len(calls) + 1)
    ready = [threading.Event() for _ in calls]
    threads = [threading.Thread(target=hammer, args=(barrier, e, c)) for e, c in zip(ready, calls)]
    for t in threads:
        t.start()
    barrier.wait()
    for e in ready:
        e.wait(60)
    close()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a thread hung after close()"
"""


def test_hnsw_index_close_while_searching_and_inserting(tmp_path):
    out = run_child(f"""
        N, DIM, ROUNDS = 20000, 64, {ROUNDS}
        DATA = data(N, DIM)
        base = vjson.HNSWIndex(DIM, "l2", M=8, ef_construction=40, capacity=N)
        base.add(DATA[:N - 2000], np.arange(N - 2000))
        path = {str(tmp_path / "index.vjx")!r}
        base.save(path)
        for r in range(ROUNDS):
            index = vjson.HNSWIndex.load(path)
            calls = [lambda: index.search_batch(DATA[:256], k=10, num_threads=2),
                     lambda: index.search(DATA[5], k=10),
                     lambda: index.get_vectors(np.arange(100)),
                     lambda: index.add(DATA[N - 2000:], np.arange(N - 2000, N), num_threads=1)]
            race(calls, index.close)
            assert index.closed
            try:
                index.search(DATA[0], k=1)
                raise SystemExit("a search after close() did not raise")
            except DatabaseClosedError:
                pass
        assert not other, other
        print(finished, closed)
    """)
    finished, closed = map(int, out.split())
    assert closed == 4 * ROUNDS  # every thread of every round was running when close() came
    assert finished > 0


def test_vector_db_close_while_reading(tmp_path):
    out = run_child(f"""
        N, DIM, ROUNDS = 20000, 64, {ROUNDS}
        DATA = data(N, DIM)
        import shutil
        src = {str(tmp_path / "src")!r}
        with vjson.VectorDB(src, dimension=DIM, metric="l2") as db:
            db.insert_batch([str(i) for i in range(N)], DATA, [{{"i": i % 7}} for i in range(N)],
                            [f"word{{i % 50}}" for i in range(N)])
        for r in range(ROUNDS):
            path = {str(tmp_path)!r} + f"/r{{r}}"
            shutil.copytree(src, path)
            db = vjson.VectorDB(path)
            db.insert_batch([f"x{{i}}" for i in range(100)], DATA[:100])  # dirty: close checkpoints
            calls = [lambda: db.batch_search(DATA[:64], k=10),
                     lambda: db.search(DATA[3], k=10, include=["vector", "metadata"]),
                     lambda: db.search(DATA[4], k=10, filter={{"i": 3}}),
                     lambda: db.get(str(r * 7 % N), include=["vector"]),
                     lambda: db.text_search("word3", k=5),
                     lambda: db.hybrid_search(DATA[9], "word9", k=5)]
            race(calls, db.close)
            shutil.rmtree(path)
        assert not other, other
        print(finished, closed)
    """)
    finished, closed = map(int, out.split())
    assert closed == 6 * ROUNDS and finished > 0


def test_vector_db_close_while_writing(tmp_path):
    out = run_child(f"""
        N, DIM, ROUNDS = 4000, 16, {ROUNDS}
        DATA = data(N, DIM)
        import itertools
        for r in range(ROUNDS):
            inserts, deletes = itertools.count(), itertools.count()
            db = vjson.VectorDB({str(tmp_path)!r} + f"/r{{r}}", dimension=DIM, metric="cosine")
            db.insert_batch([f"a{{i}}" for i in range(N)], DATA + 1)
            def insert():
                i = next(inserts)
                db.insert_batch([f"w{{i}}-{{j}}" for j in range(50)], DATA[:50] + 1, texts=["t"] * 50)
            calls = [insert, lambda: db.delete([f"a{{next(deletes)}}"]), lambda: db.flush(),
                     lambda: db.search(DATA[1] + 1, k=3)]
            race(calls, db.close)
            with vjson.VectorDB({str(tmp_path)!r} + f"/r{{r}}") as again:  # closed whole
                report = again.verify()
                assert report["ok"], report
        assert not other, other
        print(finished, closed)
    """)
    finished, closed = map(int, out.split())
    assert closed == 4 * ROUNDS and finished > 0


def test_reads_never_see_a_missing_mapping_while_the_vector_file_grows(tmp_path):
    """The vector file's remap built the new mapping after dropping the old one:
    a concurrent get() could read an empty view (IndexError)."""
    dim = 64  # the file starts at 1 MiB (4,096 rows) and doubles: 5 remaps below
    data = clustered(60_100, dim, seed=3)
    db = vjson.VectorDB(tmp_path / "db", dimension=dim, metric="l2", durability="flush")
    db.insert_batch([f"r{i}" for i in range(100)], data[:100])
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]
    barrier = threading.Barrier(3)

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        barrier.wait()
        while not stop.is_set():
            i = int(rng.integers(100))
            try:
                rec = db.get(f"r{i}", include=["vector"])
                np.testing.assert_array_equal(rec.vector, data[i])
                db.get_batch([f"r{j}" for j in range(0, 100, 9)], include=["vector"])
                reads[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    barrier.wait()
    size_before = db._gen.vectors.file_size
    try:
        for start in range(100, 60_100, 2_000):
            db.insert_batch([f"r{i}" for i in range(start, start + 2_000)], data[start:start + 2_000])
    finally:
        stop.set()
        for t in threads:
            t.join()
    size_after = db._gen.vectors.file_size
    db.close()
    assert not errors, errors[0]
    assert reads[0] > 0 and size_after >= 16 * size_before  # grown (and remapped) at least 4 times


def test_a_writer_gets_the_index_under_a_continuous_stream_of_readers():
    """Six reader threads overlap continuously (each search_batch holds the read
    lock for tens of ms, and some other reader is always inside); with a
    reader-preferring lock a writer waits as long as they keep coming. Here it
    must get in before any reader that started after it: no search that began
    after the add() began may end before it."""
    dim = 32
    data = clustered(6_000, dim, seed=5)
    index = vjson.HNSWIndex(dim, "l2", M=8, ef_construction=32, capacity=7_000)
    index.add(data[:5_000], np.arange(5_000))
    queries = data[:400]
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    stop = threading.Event()
    barrier = threading.Barrier(7)
    writer_times: list[float] = []

    def reader() -> None:
        barrier.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            index.search_batch(queries, k=10, ef_search=128, num_threads=1)
            with lock:
                spans.append((t0, time.perf_counter()))

    def writer() -> None:
        writer_times.append(time.perf_counter())
        index.add(data[5_000:5_001], [5_000], num_threads=1)  # one chunk: one exclusive section
        writer_times.append(time.perf_counter())

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    barrier.wait()
    try:
        time.sleep(0.5)  # the stream is flowing
        with lock:
            batch = float(np.median([b - a for a, b in spans]))
        w = threading.Thread(target=writer)
        w.start()
        w.join(max(3.0, 30 * batch))  # a starved writer gets in only once the readers stop
        time.sleep(2 * batch)
    finally:
        stop.set()
        for t in threads:
            t.join()
    w.join()
    t_request, t_done = writer_times
    overlapping = [s for s in spans if s[0] < t_request < s[1]]
    assert len(overlapping) >= 2, "the readers did not overlap when the writer came"
    overtook = [s for s in spans if t_request < s[0] and s[1] < t_done]
    assert not overtook, (f"{len(overtook)} searches started after the writer and finished before it "
                          f"(writer waited {t_done - t_request:.3f}s, a batch takes {batch:.3f}s)")
    assert 5_000 in index


CHAOS_ROUNDS = 12 if LONG else 3


def test_thread_chaos_every_error_is_ours(tmp_path):
    """Six threads call search, batch_search, get, insert, delete, flush, compact and
    (one of them, at a random moment) close on one database. No crash, no error
    that is not a VJsonError, and the database reopens whole after every round."""
    out = run_child(f"""
        import random, time
        from vjson.errors import RecordNotFoundError
        DIM, ROUNDS = 16, {CHAOS_ROUNDS}
        DATA = data(3000, DIM)
        calls_done = []
        for r in range(ROUNDS):
            path = {str(tmp_path)!r} + f"/r{{r}}"
            db = vjson.VectorDB(path, dimension=DIM, metric="cosine", M=8, ef_construction=32,
                                durability="flush")
            db.insert_batch([f"s{{i}}" for i in range(500)], DATA[:500] + 1, [{{"g": i % 5}} for i in range(500)],
                            [f"word{{i % 9}}" for i in range(500)])
            barrier = threading.Barrier(6)
            closer = random.Random(r).randrange(6)
            done = [0] * 6
            def chaos(t):
                rnd = random.Random(r * 100 + t)
                barrier.wait()
                deadline = time.monotonic() + rnd.uniform(0.5, 1.5)
                while True:
                    if t == closer and time.monotonic() > deadline:
                        db.close()
                        return
                    op = rnd.choice(["search", "search", "batch", "get", "insert", "delete", "flush",
                                     "compact", "text"])
                    i = rnd.randrange(3000)
                    try:
                        if op == "search":
                            db.search(DATA[i] + 1, k=5, filter={{"g": i % 5}} if i % 2 else None)
                        elif op == "batch":
                            db.batch_search(DATA[i:i + 20] + 1, k=3)
                        elif op == "get":
                            db.get(f"s{{i % 500}}", include=["vector", "metadata"])
                        elif op == "insert":
                            db.insert_batch([f"t{{t}}-{{i}}-{{j}}" for j in range(5)], DATA[i:i + 1].repeat(5, 0) + 1,
                                            [{{"g": j}} for j in range(5)], ["chaos text"] * 5)
                        elif op == "delete":
                            db.delete([f"s{{i % 500}}"])
                        elif op == "flush":
                            db.flush()
                        elif op == "compact":
                            db.compact()
                        else:
                            db.text_search("word3 OR chaos", k=5)
                        done[t] += 1
                    except RecordNotFoundError:
                        done[t] += 1  # a delete of an id another thread deleted first
                    except DatabaseClosedError:
                        return
                    except VJsonError as exc:
                        other.append("unexpected " + repr(exc))
                        return
                    except BaseException as exc:
                        other.append(repr(exc))
                        return
            threads = [threading.Thread(target=chaos, args=(t,)) for t in range(6)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
                assert not th.is_alive(), "a thread hung"
            calls_done.append(sum(done))
            with vjson.VectorDB(path) as again:
                report = again.verify()
                assert report["ok"], report
                assert again.count() >= 0 and again.search(DATA[0] + 1, k=1) is not None
        assert not other, other
        print(" ".join(map(str, calls_done)))
    """)
    done = list(map(int, out.split()))
    assert len(done) == CHAOS_ROUNDS and min(done) > 0
