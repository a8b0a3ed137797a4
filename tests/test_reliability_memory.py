"""Memory and handle leaks (Linux: reads /proc/self).

* A bounded-data loop of upserts, deletes, searches (plain, filtered, text)
  and periodic compaction: after a warm-up, resident memory stops growing
  (the live data never exceeds a fixed number of records, so any steady growth
  is a leak). A few seconds in CI, longer with VJSON_LONG_TESTS=1.
* Opening and closing a database 200 times (writer and read-only) leaks no
  file descriptors, no memory maps and no memory.
"""

from __future__ import annotations

import gc
import os
import sys
import time

import numpy as np
import pytest

import vjson
from conftest import LONG, clustered

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

DIM = 32


def _malloc_trim() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise, e.g. after tantivy's writer
    arenas), so that RSS tracks live memory instead of allocator high-water marks."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_mb() -> float:
    gc.collect()
    _malloc_trim()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def maps() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def test_rss_is_flat_in_a_long_write_search_loop(tmp_path, capsys):
    seconds = 40.0 if LONG else 4.0
    id_space = 3000
    pool = clustered(id_space, DIM, seed=1)
    queries = clustered(50, DIM, seed=2)
    rng = np.random.default_rng(0)
    db = vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="cosine", durability="flush")
    samples: list[tuple[float, float, int]] = []
    started = time.monotonic()
    i = 0
    ops = 0
    while time.monotonic() - started < seconds or len(samples) < 6:
        ids = rng.choice(id_space, size=200, replace=False)
        texts = [f"doc {j} tag{j % 7}" if k < 10 else None for k, j in enumerate(ids)]
        db.insert_batch([f"d{j}" for j in ids], pool[ids] + rng.normal(0, 0.01, (200, DIM)).astype(np.float32),
                        [{"g": int(j % 10), "s": "x" * int(j % 50)} for j in ids], texts)
        live = db.ids()
        if len(live) > 1500:
            db.delete(list(rng.choice(live, size=300, replace=False)))
        for q in queries[:10]:
            db.search(q, k=10)
            db.search(q, k=10, filter={"g": int(i % 10)})
        db.text_search(f"tag{i % 7}", k=5)
        db.get(filter={"g": 3}, limit=20)
        ops += 15
        i += 1
        if i % 8 == 0:
            db.compact()
        if i % 4 == 0:
            samples.append((time.monotonic() - started, rss_mb(), len(db)))
    db.close()
    n = len(samples)
    early = samples[n // 4:max(n // 2, n // 4 + 1)]  # after the first quarter's ramp-up
    warm = max(early, key=lambda s: s[1])
    last = samples[-1]
    tail = samples[-max(2, n // 4):]
    peak = max(s[1] for s in samples[n // 4:])
    # a leak lifts the floor of the last quarter above the peak of the early samples
    growth = min(s[1] for s in tail) - warm[1]
    with capsys.disabled():
        print(f"\n[memory] {i} rounds ({ops} calls, {i // 8} compactions) in {last[0]:.1f}s: RSS early peak "
              f"{warm[1]:.1f} MB, at the end {last[1]:.1f} MB (peak {peak:.1f}), {last[2]} live records; growth of the floor {growth:.1f} MB")
    assert growth < 16, f"RSS grew by {growth:.1f} MB with bounded data: {samples}"


def test_open_close_200_times_leaks_nothing(tmp_path, capsys):
    path = tmp_path / "db"
    with vjson.VectorDB(path, dimension=DIM) as db:
        db.insert_batch([f"r{i}" for i in range(500)], clustered(500, DIM, seed=3),
                        [{"i": i} for i in range(500)], [f"text {i}" for i in range(500)])
        db.flush()
        db.insert("tail", np.ones(DIM), {"i": -1}, "in the log")

    def cycle(n: int) -> None:
        for k in range(n):
            read_only = k % 4 == 3
            db = vjson.VectorDB(path, read_only=read_only)
            assert len(db) == 501
            db.search(np.ones(DIM), k=3)
            db.text_search("text", k=2)
            db.close()

    def settle(threads_before: int) -> float:
        """tantivy's threads end asynchronously, a little after close(): wait for them."""
        t = time.monotonic()
        while threads() > threads_before and time.monotonic() - t < 10:
            time.sleep(0.05)
        gc.collect()
        return time.monotonic() - t

    base_threads = threads()
    cycle(50)  # warm-up: imports, caches, allocator arenas, glibc's cache of thread stacks
    settle(base_threads)
    fd0, maps0, rss0 = fds(), maps(), rss_mb()
    cycle(200)
    waited = settle(base_threads)
    fd1, maps1, rss1 = fds(), maps(), rss_mb()
    assert threads() <= base_threads, f"threads left running: {base_threads} -> {threads()}"
    with capsys.disabled():
        print(f"\n[memory] 200 open/close: fds {fd0} -> {fd1}, maps {maps0} -> {maps1}, "
              f"RSS {rss0:.1f} -> {rss1:.1f} MB, threads back to {threads()} after {waited:.2f}s")
    assert fd1 - fd0 <= 1, f"file descriptors leaked: {fd0} -> {fd1}"
    assert maps1 - maps0 <= 8, f"memory maps leaked: {maps0} -> {maps1}"
    assert rss1 - rss0 < 40, f"RSS grew by {rss1 - rss0:.1f} MB over 200 open/close"
