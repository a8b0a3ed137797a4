"""Shared fixtures: small deterministic data sets and the real data, when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import vjson

DATA_DIR = Path(os.environ.get("VJSON_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
WORDNET = DATA_DIR / "wordnet"
LONG = os.environ.get("VJSON_LONG_TESTS") == "1"


@pytest.fixture(params=vjson.simd_info()["available"])
def simd_path(request):
    """Each kernel family this CPU runs, forced for the test, then back to the best."""
    vjson.set_simd(request.param)
    assert vjson.simd_info()["active"] == request.param
    yield request.param
    vjson.set_simd("auto")


def clustered(n: int, dim: int, seed: int = 0, centres: int = 20) -> np.ndarray:
    """Gaussian-mixture vectors: realistic neighbourhoods, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, size=(centres, dim))
    which = rng.integers(0, centres, size=n)
    return (means[which] + rng.normal(0, 1, size=(n, dim))).astype(np.float32)


def batch_inserter(index, rows: np.ndarray, first_label: int, errors: list, done, start=None, batch: int = 500):
    """A thread target adding `rows` to `index` in batches (labels from `first_label`),
    after `start` (a barrier) if given; it records an exception in `errors` and sets
    `done` when it ends, so readers beside it know when to stop."""
    def insert():
        try:
            if start is not None:
                start.wait()
            for first in range(0, len(rows), batch):
                labels = np.arange(first_label + first, first_label + min(first + batch, len(rows)))
                index.add(rows[first:first + batch], labels, num_threads=2)
        except Exception as exc:  # pragma: no cover - reported by the test
            errors.append(exc)
        finally:
            done.set()
    return insert


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(map(int, f[:k])) & set(map(int, t))) / k for f, t in zip(found, truth)]))


@pytest.fixture(scope="session")
def wordnet():
    """(base, queries, ground truth top-100) of the real 384-d data, or skip."""
    if not (WORDNET / "base.f16.npy").exists():
        pytest.skip("../shared/data/wordnet is absent")
    base = np.load(WORDNET / "base.f16.npy").astype(np.float32)
    queries = np.load(WORDNET / "queries.f16.npy").astype(np.float32)
    gt = np.load(WORDNET / "gt_cosine_top100.i32.npy")
    return base, queries, gt



@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """asyncio_mode=auto for the test modules that ask for it (``ASYNC_AUTO = True``),
    such as the LangChain standard suite, whose async tests carry no marker. The
    rest of the suite keeps pytest-asyncio's strict mode. (trylast: this wrapper
    runs inside pytest-asyncio's, which then sees the marker.)"""
    import inspect

    outcome = yield
    if not getattr(getattr(collector, "module", None), "ASYNC_AUTO", False):
        return
    items = outcome.get_result()
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(getattr(item, "obj", None)):
            item.add_marker(pytest.mark.asyncio)
