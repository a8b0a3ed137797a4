"""Real threads: parallel searches, searches during inserts, and the GIL released."""

import threading
import time

import numpy as np

import vjson
from conftest import batch_inserter, clustered


def test_parallel_searches_match_serial():
    data = clustered(3000, 32, 1)
    index = vjson.HNSWIndex(32)
    index.add(data, np.arange(3000))
    queries = clustered(400, 32, 2)
    expected = index.search_batch(queries, 10, num_threads=1)[0]
    results = [None] * 8

    def worker(t):
        results[t] = np.stack([index.search(q, 10)[0] for q in queries[t::8]])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(8):
        np.testing.assert_array_equal(results[t], expected[t::8])


def test_searches_while_another_thread_inserts():
    base = clustered(2000, 16, 3)
    extra = clustered(6000, 16, 4)
    index = vjson.HNSWIndex(16)
    index.add(base, np.arange(2000))
    errors = []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                labels, dists = index.search(base[7], 10)
                assert len(labels) == 10 and labels[0] == 7
                valid = (labels < 2000) | ((labels >= 10_000) & (labels < 16_000))
                assert valid.all() and (np.diff(dists) >= 0).all()
        except Exception as exc:
            errors.append(exc)

    writer = batch_inserter(index, extra, 10_000, errors, done)
    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(index) == 8000
    index.check()


def test_search_batch_releases_the_gil():
    """A Python thread keeps ticking while a long native search runs."""
    data = clustered(20000, 64, 5)
    index = vjson.HNSWIndex(64, ef_construction=40)
    index.add(data, np.arange(20000))
    queries = clustered(4000, 64, 6)
    ticks = 0
    running = threading.Event()

    def ticker():
        nonlocal ticks
        running.wait()
        while running.is_set():
            ticks += 1
            time.sleep(0)

    th = threading.Thread(target=ticker)
    th.start()
    running.set()
    start = time.perf_counter()
    index.search_batch(queries, 10, ef_search=200, num_threads=1)
    elapsed = time.perf_counter() - start
    running.clear()
    th.join()
    assert elapsed > 0.05
    assert ticks > 100, f"only {ticks} ticks in {elapsed:.2f}s: the GIL was held"
