"""HNSW index behaviour: recall against brute force, growth, delete/replace, filters, bad input."""

import numpy as np
import pytest

import vjson
from conftest import clustered, recall_at_k


def build(n=3000, dim=24, metric="l2", seed=0, **kw):
    data = clustered(n, dim, seed)
    if metric == "ip":
        # Maximum inner product is not a metric: on vectors of widely varying
        # norm every graph index loses recall (hnswlib alike). Typical IP use is
        # near-unit embeddings, which is what this tests.
        norms = np.linalg.norm(data, axis=1, keepdims=True)
        data = (data / norms * np.random.default_rng(seed).uniform(0.9, 1.0, (n, 1))).astype(np.float32)
    index = vjson.HNSWIndex(dim, metric, capacity=kw.pop("capacity", 16), **kw)
    index.add(data, np.arange(n))
    return index, data


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_recall_against_brute_force(metric):
    index, data = build(metric=metric)
    queries = clustered(100, 24, seed=99)
    if metric == "ip":
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth, _ = vjson.brute_force_knn(data, queries, 10, metric)
    labels, dists = index.search_batch(queries, 10, ef_search=100)
    assert recall_at_k(labels.astype(np.int64), truth) >= (0.93 if metric == "ip" else 0.97)
    assert np.all(np.diff(dists, axis=1) >= 0), "results come best first"


def test_single_search_equals_batch_row():
    index, data = build(n=1000)
    for q in data[:20]:
        one = index.search(q, 5)
        batch = index.search_batch(q[None], 5)
        np.testing.assert_array_equal(one[0], batch[0][0])


def test_growth_past_initial_capacity_keeps_every_vector():
    index, data = build(n=2000, capacity=8)
    assert index.capacity >= 2000 and len(index) == 2000
    assert index.check()["live"] == 2000
    labels, dists = index.search_batch(data[:200], 1)
    assert (labels[:, 0] == np.arange(200)).mean() > 0.99  # each point finds itself


def test_reproducible_with_one_thread():
    data = clustered(1500, 16, 5)
    results = []
    for _ in range(2):
        index = vjson.HNSWIndex(16, seed=7)
        index.add(data, np.arange(1500), num_threads=1)
        results.append(index.search_batch(data[:50], 10, num_threads=1)[0])
    np.testing.assert_array_equal(results[0], results[1])


def test_delete_excludes_and_reuses_slots():
    index, data = build(n=1000)
    gone = np.arange(0, 1000, 3)
    assert index.delete(gone) == len(gone)
    assert len(index) == 1000 - len(gone) and index.deleted_count == len(gone)
    assert 0 not in index and 1 in index
    labels, _ = index.search_batch(data[:100], 10)
    assert not np.isin(labels, gone).any()
    # new labels take the freed slots: no growth in nodes
    before = index.element_count
    fresh = clustered(100, 24, seed=8)
    index.add(fresh, np.arange(5000, 5100))
    assert index.element_count == before and index.deleted_count == len(gone) - 100
    found, _ = index.search_batch(fresh, 1)
    assert (found[:, 0] == np.arange(5000, 5100)).mean() > 0.95
    index.check()


def test_delete_unknown_label_raises_and_deletes_nothing():
    index, _ = build(n=100)
    with pytest.raises(vjson.RecordNotFoundError):
        index.delete([1, 2, 424242])
    assert len(index) == 100 and 1 in index


def test_replace_vector_of_existing_label():
    index, data = build(n=1000)
    target = data[500] + 0.0
    index.add(target[None], [7])  # label 7 now sits where 500 is
    assert len(index) == 1000
    np.testing.assert_allclose(index.get_vectors([7])[0], target)
    labels, _ = index.search(target, 2)
    assert set(labels.tolist()) == {7, 500}


def test_last_occurrence_wins_within_a_batch():
    index = vjson.HNSWIndex(4)
    vecs = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], np.float32)
    index.add(vecs, [5, 6, 5])
    assert len(index) == 2
    np.testing.assert_array_equal(index.get_vectors([5])[0], vecs[2])


class TestFilteredSearch:
    def setup_method(self):
        self.index, self.data = build(n=4000, dim=16)
        self.queries = clustered(50, 16, seed=4)

    @pytest.mark.parametrize("fraction", [0.5, 0.1, 0.01, 0.002])
    def test_never_disallowed_and_k_when_available(self, fraction):
        rng = np.random.default_rng(int(fraction * 1000))
        mask = rng.random(4000) < fraction
        mask[rng.integers(0, 4000, 12)] = True  # at least ~12 allowed
        labels, dists = self.index.search_batch(self.queries, 10, allowed=mask)
        assert mask[labels.astype(np.int64)].all()
        assert (labels != vjson.NO_LABEL).all(), "10 results whenever >= 10 are allowed"
        # exact: compare to brute force over the allowed subset
        ids = np.flatnonzero(mask)
        truth, _ = vjson.brute_force_knn(self.data[ids], self.queries, 10)
        assert recall_at_k(labels.astype(np.int64), ids[truth]) >= 0.9

    @pytest.mark.parametrize("fraction", [0.05, 0.1, 0.4])  # two-hop walk below 20 %, plain above
    def test_graph_walk_recall_under_filters(self, fraction):
        self.index.exact_limit = 1  # no exact scan: measure the walk itself
        mask = np.random.default_rng(7).random(4000) < fraction
        labels, _ = self.index.search_batch(self.queries, 10, ef_search=64, allowed=mask)
        assert mask[labels.astype(np.int64)].all()
        ids = np.flatnonzero(mask)
        truth, _ = vjson.brute_force_knn(self.data[ids], self.queries, 10)
        assert recall_at_k(labels.astype(np.int64), ids[truth]) >= 0.9

    def test_graph_path_with_exact_limit_disabled(self):
        self.index.exact_limit = 1  # force the graph walk even for small sets
        mask = np.zeros(4000, bool)
        mask[::50] = True  # 2 %
        labels, _ = self.index.search_batch(self.queries, 10, allowed=mask)
        assert mask[labels.astype(np.int64)].all() and (labels != vjson.NO_LABEL).all()

    def test_fewer_allowed_than_k(self):
        mask = np.zeros(4000, bool)
        mask[[3, 77, 1999]] = True
        labels, dists = self.index.search(self.queries[0], 10, allowed=mask)
        assert sorted(labels.tolist()) == [3, 77, 1999]
        batch, _ = self.index.search_batch(self.queries[:2], 10, allowed=mask)
        assert (batch[:, 3:] == vjson.NO_LABEL).all()

    def test_empty_and_full_masks(self):
        empty = np.zeros(4000, bool)
        assert len(self.index.search(self.queries[0], 5, allowed=empty)[0]) == 0
        full = np.ones(4000, bool)
        np.testing.assert_array_equal(self.index.search(self.queries[0], 5, allowed=full)[0],
                                      self.index.search(self.queries[0], 5)[0])

    def test_packed_bitset_equals_bool_mask(self):
        mask = np.random.default_rng(1).random(4000) < 0.3
        packed = np.packbits(mask, bitorder="little")
        a = self.index.search_batch(self.queries, 10, allowed=mask)[0]
        b = self.index.search_batch(self.queries, 10, allowed=packed)[0]
        np.testing.assert_array_equal(a, b)

    def test_deleted_and_filtered_together(self):
        mask = np.zeros(4000, bool)
        mask[:100] = True
        self.index.delete(np.arange(0, 100, 2))
        labels, _ = self.index.search_batch(self.queries, 10, allowed=mask)
        flat = labels.astype(np.int64)
        assert mask[flat].all() and (flat % 2 == 1).all()


class TestBadInput:
    def setup_method(self):
        self.index, self.data = build(n=200, dim=8)

    def test_wrong_dimension(self):
        with pytest.raises(vjson.DimensionMismatchError):
            self.index.add(np.zeros((2, 9), np.float32), [1000, 1001])
        with pytest.raises(vjson.DimensionMismatchError):
            self.index.search(np.zeros(7, np.float32))

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_refused_and_nothing_stored(self, bad):
        vecs = np.ones((3, 8), np.float32)
        vecs[2, 5] = bad
        with pytest.raises(vjson.InvalidVectorError):
            self.index.add(vecs, [900, 901, 902])
        assert len(self.index) == 200 and 900 not in self.index
        with pytest.raises(vjson.InvalidVectorError):
            self.index.search(vecs[2])

    def test_vectors_whose_distances_would_overflow_are_refused(self):
        huge = np.zeros((2, 8), np.float32)
        huge[1, 5] = 2.0**64  # finite, but its squared distance to anything is inf in float32
        with pytest.raises(vjson.InvalidVectorError, match="too large"):
            self.index.add(huge, [900, 901])
        assert len(self.index) == 200 and 900 not in self.index
        for call in (lambda: self.index.search(huge[1]), lambda: self.index.search_batch(huge)):
            with pytest.raises(vjson.InvalidVectorError, match="too large"):
                call()
        labels, dists = self.index.search(np.full(8, 1e18, np.float32), 3)  # large, still finite distances
        assert len(labels) == 3 and np.isfinite(dists).all()
        cosine = vjson.HNSWIndex(8, "cosine")  # scaled to unit length: any size works
        cosine.add(huge[1:] + 1, [7])
        assert cosine.search(huge[1], 1)[0][0] == 7

    def test_float64_and_non_contiguous_are_converted(self):
        q64 = self.data[3].astype(np.float64)
        assert self.index.search(q64, 1)[0][0] == 3
        strided = np.asfortranarray(self.data[:10])
        labels, _ = self.index.search_batch(strided[:, :], 1)
        assert (labels[:, 0] == np.arange(10)).all()
        assert self.index.search(self.data[::1][5, ::1], 1)[0][0] == 5

    def test_non_numeric_refused(self):
        for bad in (["a"] * 8, np.array([True] * 8), "hello", None):
            with pytest.raises(vjson.InvalidVectorError):
                self.index.search(bad)

    @pytest.mark.parametrize("k", [0, -1])
    def test_bad_k(self, k):
        with pytest.raises(vjson.InvalidInputError):
            self.index.search(self.data[0], k)

    def test_k_larger_than_size(self):
        labels, _ = self.index.search(self.data[0], 500)
        assert sorted(labels.tolist()) == list(range(200))

    def test_bad_labels(self):
        with pytest.raises(vjson.InvalidInputError):
            self.index.add(self.data[:2], [1])
        with pytest.raises(vjson.InvalidInputError):
            self.index.add(self.data[:2], [-1, 2])
        with pytest.raises(vjson.InvalidInputError):
            self.index.add(self.data[:1], [2**64 - 1])

    def test_cosine_zero_vector(self):
        index = vjson.HNSWIndex(4, "cosine")
        with pytest.raises(vjson.InvalidVectorError):
            index.add(np.zeros((1, 4), np.float32), [1])

    def test_bad_parameters(self):
        for kwargs in ({"dim": 0}, {"dim": 4, "metric": "hamming"}, {"dim": 4, "M": 1},
                       {"dim": 4, "ef_construction": 0}):
            with pytest.raises(vjson.InvalidInputError):
                vjson.HNSWIndex(**kwargs)
        with pytest.raises(vjson.InvalidInputError):
            self.index.ef_search = 0

    def test_closed_index_raises(self):
        self.index.close()
        with pytest.raises(vjson.DatabaseClosedError):
            self.index.search(self.data[0])
        with pytest.raises(vjson.DatabaseClosedError):
            len(self.index)
        self.index.close()  # idempotent

    def test_context_manager_closes(self):
        with vjson.HNSWIndex(3) as index:
            index.add(np.eye(3, dtype=np.float32), [0, 1, 2])
        assert index.closed
