"""Storage kinds (float16, int8, binary): kernels against numpy on every SIMD path,
recall against brute force per kind and metric, rescoring, persistence, old
databases, and the options' validation."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import clustered, recall_at_k

import vjson
from vjson import _core

KINDS = ["float16", "int8", "binary"]
METRICS = ["l2", "ip", "cosine"]
OLD_DB = Path(__file__).parent / "data" / "db-before-quantization"
# index_file.pxi's header (formats 4 and 5): ..., kind, params_bytes, codes_offset, codes_bytes, codes_hash, params_hash
HEADER = struct.Struct("<8s" + "I" * 9 + "iq" + "Q" * 16 + "II" + "IIQQQQ")



def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Independent numpy brute force (float64)."""
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "l2":
        d = (q ** 2).sum(1)[:, None] - 2 * q @ b.T + (b ** 2).sum(1)[None, :]
    else:
        d = 1.0 - q @ b.T
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def embedding_like(n: int, dim: int, seed: int, latent: int = 24) -> np.ndarray:
    """Unit vectors with low-dimensional structure, as text embeddings have (binary
    codes need it: on isotropic noise sign patterns say little about neighbours)."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1234).normal(size=(latent, dim))  # the same space for every seed
    x = rng.normal(size=(n, latent)) @ mix + 0.3 * rng.normal(size=(n, dim))
    return _core.normalise(x.astype(np.float32))


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize("dim", [1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 384, 1000])
def test_float16_kernels_match_numpy(simd_path, dim):
    rng = np.random.default_rng(dim)
    for _ in range(3):
        q = rng.normal(size=dim).astype(np.float32)
        code = rng.normal(size=dim).astype(np.float16)
        x = code.astype(np.float64)
        expect_l2 = float(np.sum((q - x) ** 2))
        expect_ip = 1.0 - float(np.dot(q, x))
        assert _core._code_distance(q, code, "float16", "l2") == pytest.approx(expect_l2, rel=1e-4, abs=1e-4)
        assert _core._code_distance(q, code, "float16", "ip") == pytest.approx(expect_ip, rel=1e-4, abs=1e-3)


def test_float16_kernel_reads_subnormals_and_infinities(simd_path):
    code = np.array([6e-8, -3e-5, 65504, -0.0, 1e-7, 2.0, -2.0, 0.5] * 3, dtype=np.float16)
    q = np.zeros(code.size, dtype=np.float32)
    expect = float(np.sum(code.astype(np.float64) ** 2))
    assert _core._code_distance(q, code, "float16", "l2") == pytest.approx(expect, rel=1e-5)
    inf = np.array([np.inf] + [0] * 20, dtype=np.float16)
    assert _core._code_distance(np.zeros(21, np.float32), inf, "float16", "l2") == np.inf


@pytest.mark.parametrize("dim", [1, 7, 15, 16, 17, 31, 32, 33, 100, 384, 1000, 4096])
def test_int8_kernel_matches_numpy(simd_path, dim):
    # the kernel takes an int16 query within +-limit, so that no sum leaves int32
    limit = min(32767, (2**31 - 1) // (255 * dim))
    rng = np.random.default_rng(dim + 1)
    q = rng.integers(-limit, limit + 1, size=dim).astype(np.int16)
    code = rng.integers(0, 256, size=dim).astype(np.uint8)
    code[:3] = 255  # the top of the range must not be read as signed
    q[:2] = -limit  # nor the bottom of the query's
    expect = int(np.dot(q.astype(np.int64), code.astype(np.int64)))
    assert _core._code_distance(q, code, "int8") == pytest.approx(expect, rel=1e-7, abs=0.5)
    worst = np.full(dim, limit, np.int16)  # the largest sum the limit allows
    assert _core._code_distance(worst, np.full(dim, 255, np.uint8), "int8") == pytest.approx(255 * limit * dim, rel=1e-7)


@pytest.mark.parametrize("words", [1, 2, 3, 4, 5, 6, 7, 16])
def test_hamming_kernel_matches_numpy(simd_path, words):
    rng = np.random.default_rng(words)
    a = rng.integers(0, 2**63, size=words, dtype=np.uint64)
    b = rng.integers(0, 2**63, size=words, dtype=np.uint64)
    expect = int(np.unpackbits((a ^ b).view(np.uint8)).sum())
    assert _core._code_distance(a, b, "binary") == expect


# ---------------------------------------------------------------- codes

def test_int8_codes_decode_within_half_a_step():
    data = clustered(2000, 24, 3)
    index = vjson.HNSWIndex(24, "l2", quantization="int8")
    index.add(data, np.arange(len(data)))
    params = index.quantization_params
    lo, step = params[:24], params[24:]
    # the trained range: the sample's 0.1 % tails, computed here independently
    np.testing.assert_allclose(lo, np.quantile(data.astype(np.float64), 0.001, axis=0), rtol=1e-5, atol=1e-5)
    decoded = index.get_vectors(np.arange(len(data)))
    inside = (data >= lo) & (data <= lo + 255 * step)
    err = np.abs(decoded - data)
    assert np.all(err[inside] <= np.broadcast_to(step / 2 + 1e-5, data.shape)[inside])
    assert inside.mean() > 0.99


def test_float16_codes_round_like_numpy():
    data = clustered(500, 16, 4)
    index = vjson.HNSWIndex(16, "l2", quantization="float16")
    index.add(data, np.arange(len(data)))
    np.testing.assert_array_equal(index.get_vectors(np.arange(len(data))), data.astype(np.float16).astype(np.float32))


def test_binary_codes_are_signs_around_the_means():
    data = clustered(500, 64, 5)
    index = vjson.HNSWIndex(64, "ip", quantization="binary")
    index.add(data, np.arange(len(data)))
    means = data.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(index.quantization_params, means, rtol=1e-4, atol=1e-4)
    decoded = index.get_vectors(np.arange(len(data)))
    np.testing.assert_array_equal(decoded > index.quantization_params, data > index.quantization_params)


# ---------------------------------------------------------------- recall

def external_index(data: np.ndarray, metric: str, kind: str | None) -> vjson.HNSWIndex:
    rows = _core.normalise(data) if metric == "cosine" else data
    index = vjson.HNSWIndex(data.shape[1], metric, quantization=kind, external_vectors=True,
                            capacity=len(data))
    index.attach_vectors(rows)
    index.add_stored(np.arange(len(data)))
    return index


# recall@10 with rescoring (default oversample) at ef 64; binary codes carry far
# less, and are meant for >= 256-d, hence its own dimension and bound
RESCORED_FLOOR = {"float16": 0.9, "int8": 0.9, "binary": 0.9}


@pytest.mark.parametrize("kind, metric", [(k, m) for k in KINDS for m in METRICS if (k, m) != ("binary", "l2")])
def test_recall_with_rescoring_against_brute_force(kind, metric):
    dim = 256 if kind == "binary" else 32
    if kind == "binary":
        data, queries = embedding_like(3000, dim, 7), embedding_like(100, dim, 8)
    else:
        data, queries = clustered(3000, dim, 7), clustered(100, dim, 8)
    if metric == "ip":  # inner product on vectors of similar norms, as embeddings are
        data = _core.normalise(data) * np.float32(1.5)
        queries = _core.normalise(queries)
    truth = exact_knn(data, queries, 10, metric)
    index = external_index(data, metric, kind)
    found, dists = index.search_batch(queries, 10, ef_search=64)
    got = recall_at_k(found.astype(np.int64), truth)
    # as good as float32 on the same data, up to a margin for the build's thread timing
    float32 = recall_at_k(external_index(data, metric, None).search_batch(queries, 10, ef_search=64)[0]
                          .astype(np.int64), truth)
    assert got >= RESCORED_FLOOR[kind] and got >= float32 - 0.03
    # rescored distances are the exact float32 ones
    rows = _core.normalise(data) if metric == "cosine" else data
    q = _core.normalise(queries) if metric == "cosine" else queries
    picked = rows[found[:, 0].astype(np.int64)].astype(np.float64)
    expect = ((picked - q) ** 2).sum(1) if metric == "l2" else 1.0 - (picked * q).sum(1)
    np.testing.assert_allclose(dists[:, 0], expect, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["float16", "int8"])
def test_recall_of_codes_alone(kind, metric):
    """A standalone compact index (codes only, no rescoring) finds nearly what float32 finds."""
    data = clustered(3000, 32, 9)
    queries = clustered(100, 32, 10)
    if metric == "ip":
        data, queries = _core.normalise(data) * np.float32(1.5), _core.normalise(queries)
    truth = exact_knn(data, queries, 10, metric)
    recall = {}
    for name in (None, kind):
        index = vjson.HNSWIndex(32, metric, quantization=name)
        index.add(data, np.arange(len(data)))
        found, _ = index.search_batch(queries, 10, ef_search=64)
        recall[name] = recall_at_k(found.astype(np.int64), truth)
    assert recall[None] >= 0.9
    assert recall[kind] >= recall[None] - (0.02 if kind == "float16" else 0.08)


def test_rescoring_moves_results_only_toward_the_exact_ones():
    data = embedding_like(4000, 256, 11)
    queries = embedding_like(100, 256, 12)
    truth = exact_knn(data, queries, 10, "cosine")
    rows = _core.normalise(data)
    q = _core.normalise(queries)
    for kind in KINDS:
        index = external_index(data, "cosine", kind)
        for i in range(len(queries)):
            # one beam (ef >= the pool) for both, so they walk the same graph path
            plain, _ = index.search(q[i], 10, ef_search=80, rescore=False)
            rescored, dists = index.search(q[i], 10, ef_search=80, rescore=True, oversample=4)
            right = set(truth[i].tolist())
            # every true neighbour the codes found survives rescoring
            assert right & set(plain.tolist()) <= right & set(rescored.tolist())
            # and rank by rank the rescored list is at least as close, exactly measured
            exact_plain = np.sort(1.0 - rows[plain.astype(np.int64)] @ q[i])
            assert np.all(dists <= exact_plain + 1e-5)
        plain_all, _ = index.search_batch(q, 10, ef_search=80, rescore=False)
        rescored_all, _ = index.search_batch(q, 10, ef_search=80, rescore=True, oversample=4)
        assert recall_at_k(rescored_all.astype(np.int64), truth) >= recall_at_k(plain_all.astype(np.int64), truth)


def exact_top_of_candidates(rows: np.ndarray, q: np.ndarray, candidates: np.ndarray, k: int, metric: str):
    """The best k of `candidates` by the exact distance (float64, numpy)."""
    c = candidates[candidates != _core.NO_LABEL].astype(np.int64)
    x = rows[c].astype(np.float64)
    if metric == "l2":
        d = ((x - q.astype(np.float64)) ** 2).sum(1)
    else:
        d = 1.0 - x @ q.astype(np.float64)
    order = np.argsort(d, kind="stable")[:k]
    return c[order], d[order]


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("narrow", [False, True])
def test_int8_rescoring_returns_the_exact_best_of_its_candidates(metric, narrow):
    """Rescoring skips rows its error bound rules out; the answer must be what
    measuring every candidate gives. `narrow` trains the ranges on a shrunken
    sample, so that most rows have clipped dimensions (the bound's second term);
    l2 rows with large norms check the rounding slack."""
    data = embedding_like(3000, 64, 31)
    if metric == "l2":
        data = data * 40.0
    rows = _core.normalise(data) if metric == "cosine" else data
    index = vjson.HNSWIndex(64, metric, quantization="int8", external_vectors=True, capacity=len(data))
    index.attach_vectors(rows)
    index.train((rows[:2000] * 0.5) if narrow else rows[:2000])
    index.add_stored(np.arange(len(data)))
    queries = embedding_like(60, 64, 32) * (40.0 if metric == "l2" else 1.0)
    q = _core.normalise(queries) if metric == "cosine" else queries
    for k, oversample in ((10, 2), (10, 6), (3, 10)):
        pool = k * oversample
        for i in range(len(q)):
            # ef >= the pool: both calls walk the same beam and keep the same candidates
            candidates, _ = index.search(q[i], pool, ef_search=100, rescore=False)
            found, dists = index.search(q[i], k, ef_search=100, rescore=True, oversample=oversample)
            want, want_d = exact_top_of_candidates(rows, q[i], candidates, k, metric)
            np.testing.assert_allclose(dists, want_d, rtol=2e-4, atol=2e-4)
            # ids agree except where two exact distances tie within float32 rounding
            differ = found.astype(np.int64) != want
            assert np.all(np.abs(dists[differ] - want_d[differ]) <= 2e-4 * (1 + np.abs(want_d[differ])))


FORMAT4 = Path(__file__).parent / "data" / "int8-format4"


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_format4_int8_index_loads_rescores_and_saves_as_format5(metric, tmp_path):
    """int8 files of index format 4 (4-byte code heads, written by the vjson that
    introduced quantization: tests/data/int8-format4) load into today's layout."""
    raw = (FORMAT4 / f"int8-format4-{metric}.vjx").read_bytes()
    assert HEADER.unpack_from(raw)[1] == 4
    data = np.load(FORMAT4 / f"int8-format4-{metric}.npy")
    rows = _core.normalise(data) if metric == "cosine" else data
    loaded = vjson.HNSWIndex.load(FORMAT4 / f"int8-format4-{metric}.vjx", verify=True)
    loaded.attach_vectors(rows)
    assert loaded.quantization == "int8" and len(loaded) == len(data) and loaded.check()["live"] == len(data)
    decoded = loaded.get_vectors(np.arange(len(data)))
    params = loaded.quantization_params
    inside = (rows >= params[:24]) & (rows <= params[:24] + 255 * params[24:])
    assert np.all(np.abs(decoded - rows)[inside] <= np.broadcast_to(params[24:] / 2 + 1e-5, rows.shape)[inside])
    queries = rows[:40] + 0.01
    if metric == "cosine":
        queries = _core.normalise(queries)
    truth = exact_knn(data, queries, 10, metric)
    for i in range(len(queries)):
        candidates, _ = loaded.search(queries[i], 40, ef_search=60, rescore=False)
        found, dists = loaded.search(queries[i], 10, ef_search=60, rescore=True, oversample=4)
        want, want_d = exact_top_of_candidates(rows, queries[i], candidates, 10, metric)
        np.testing.assert_allclose(dists, want_d, rtol=1e-4, atol=1e-4)
    found_all, _ = loaded.search_batch(queries, 10, ef_search=60)
    assert recall_at_k(found_all.astype(np.int64), truth) >= 0.95
    loaded.save(tmp_path / "again.vjx")
    assert HEADER.unpack_from((tmp_path / "again.vjx").read_bytes())[1] >= 5  # (with error bounds)
    again = vjson.HNSWIndex.load(tmp_path / "again.vjx", verify=True)
    again.attach_vectors(rows)
    np.testing.assert_array_equal(again.search_batch(queries, 10, ef_search=60)[0], found_all)


def test_filtered_search_with_codes_respects_the_filter():
    data = clustered(3000, 32, 13)
    index = external_index(data, "l2", "int8")
    allowed = np.zeros(3000, bool)
    allowed[::7] = True
    found, _ = index.search_batch(data[:50], 10, ef_search=64, allowed=allowed)
    assert allowed[found.astype(np.int64)].all()
    truth = exact_knn(data[allowed], data[:50], 10, "l2")
    assert recall_at_k(found.astype(np.int64), np.flatnonzero(allowed)[truth]) >= 0.9


# ---------------------------------------------------------------- persistence

@pytest.mark.parametrize("kind", KINDS)
def test_index_file_round_trip(kind, tmp_path):
    data = clustered(1500, 64, 14)
    index = vjson.HNSWIndex(64, "cosine", quantization=kind)
    index.add(data, np.arange(0, 3000, 2))  # labels that are not node ids
    index.delete([10, 20])
    index.save(tmp_path / "i.vjx")
    loaded = vjson.HNSWIndex.load(tmp_path / "i.vjx", verify=True)
    assert loaded.quantization == kind and len(loaded) == len(index)
    if kind != "float16":
        np.testing.assert_array_equal(loaded.quantization_params, index.quantization_params)
    np.testing.assert_array_equal(loaded.search_batch(data[:50], 10)[0], index.search_batch(data[:50], 10)[0])
    loaded.add(data[:10] + 1, np.arange(5000, 5010))  # grows past the mapped codes
    assert 5003 in loaded and loaded.check()["live"] == len(index) + 10


@pytest.mark.parametrize("kind", KINDS)
def test_external_index_file_round_trip(kind, tmp_path):
    data = clustered(1500, 64, 15)
    index = external_index(data, "ip", kind)
    index.save(tmp_path / "e.vjx")
    raw = (tmp_path / "e.vjx").read_bytes()
    loaded = vjson.HNSWIndex.load(tmp_path / "e.vjx", verify=True)
    loaded.attach_vectors(data)
    np.testing.assert_array_equal(loaded.search_batch(data[:50], 10)[0], index.search_batch(data[:50], 10)[0])
    # a flipped code byte is caught by verify's checksum
    codes_offset, codes_bytes = HEADER.unpack_from(raw)[-4:-2]
    assert codes_bytes == 1500 * index.code_size and codes_offset % 65536 == 0
    damaged = bytearray(raw)
    damaged[codes_offset + 100] ^= 1
    (tmp_path / "d.vjx").write_bytes(bytes(damaged))
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(tmp_path / "d.vjx", verify=True)


def test_damaged_quantization_parameters_are_refused(tmp_path):
    data = clustered(500, 16, 16)
    index = vjson.HNSWIndex(16, "l2", quantization="int8")
    index.add(data, np.arange(500))
    index.save(tmp_path / "q.vjx")
    raw = bytearray((tmp_path / "q.vjx").read_bytes())
    raw[-3] ^= 0x40  # the parameters are the file's last bytes
    (tmp_path / "q.vjx").write_bytes(bytes(raw))
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(tmp_path / "q.vjx")


@pytest.mark.parametrize("kind", KINDS)
def test_database_reopens_with_its_kind(kind, tmp_path):
    data = clustered(800, 256, 17)
    ids = [f"v{i}" for i in range(800)]
    with vjson.VectorDB(tmp_path / "db", 256, "cosine", quantization=kind) as db:
        db.insert_batch(ids[:600], data[:600])
        before = [r.id for r in db.search(data[5], 10)]
    with vjson.VectorDB(tmp_path / "db") as db:  # from the checkpoint
        assert db.quantization == kind
        assert [r.id for r in db.search(data[5], 10)] == before
        db.insert_batch(ids[600:], data[600:])
        db.flush()
    with vjson.VectorDB(tmp_path / "db", quantization=kind) as db:  # checkpoint + replayed rows
        truth = exact_knn(data, data[700:720], 10, "cosine")
        found = [[int(r.id[1:]) for r in db.search(v, 10)] for v in data[700:720]]
        assert recall_at_k(np.array(found), truth) >= 0.9
        hit = db.search(data[3], 1)[0]
        assert hit.id == "v3" and hit.distance == pytest.approx(0.0, abs=1e-5)  # rescored: exact


def test_compact_retrains_int8_on_the_live_rows(tmp_path):
    rng = np.random.default_rng(18)
    small = rng.uniform(0, 1, size=(300, 8)).astype(np.float32)
    wide = rng.uniform(0, 10, size=(300, 8)).astype(np.float32)
    with vjson.VectorDB(tmp_path / "db", 8, "l2", quantization="int8") as db:
        db.insert_batch([f"s{i}" for i in range(300)], small)  # trains on these
        db.insert_batch([f"w{i}" for i in range(100)], wide[:100])  # (too few to learn again: 400 < 2 x 300)
        lo, step = np.split(db._current().graph.quantization_params, 2)
        assert np.all(lo + 255 * step < 1.01)
        db.delete([f"s{i}" for i in range(300)])
        db.compact()
        lo, step = np.split(db._current().graph.quantization_params, 2)
        assert np.all(lo + 255 * step > 9.0)
        found = [r.id for r in db.search(wide[7], 5)]
        assert found[0] == "w7"


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_a_database_grown_from_one_row_learns_its_codes_again(kind, tmp_path):
    """Ranges (int8) or thresholds (binary) learnt from a first insert of one row fit
    nothing after it: the codes are learnt again each time the rows double, so a
    database filled row by row, then in batches, finds what one built at once does."""
    dim = 128
    base = embedding_like(4000, dim, seed=21)
    queries = embedding_like(100, dim, seed=22)
    truth = exact_knn(base, queries, 10, "cosine")
    recalls = {}
    for way in ("grown", "at once"):
        with vjson.VectorDB(tmp_path / way, dim, quantization=kind) as db:
            if way == "grown":
                for i in range(40):
                    db.insert(str(i), base[i])
                for start in range(40, 4000, 660):
                    db.insert_batch([str(i) for i in range(start, min(start + 660, 4000))], base[start:start + 660])
                assert db._current().graph.trained_rows >= 2000  # learnt again from most rows
            else:
                db.insert_batch([str(i) for i in range(4000)], base)
            found = np.array([[int(r.id) for r in db.search(q, 10)] for q in queries])
            recalls[way] = recall_at_k(found, truth)
        with vjson.VectorDB(tmp_path / way) as db:  # and the codes learnt again were saved
            again = np.array([[int(r.id) for r in db.search(q, 10)] for q in queries])
            assert recall_at_k(again, truth) >= recalls[way] - 0.02
    assert recalls["grown"] >= recalls["at once"] - 0.03, recalls
    if kind == "int8":
        assert recalls["grown"] >= 0.95, recalls


# ---------------------------------------------------------------- a database from before

def test_database_from_before_quantization_opens_and_searches(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(OLD_DB, folder)
    vectors = np.load(OLD_DB.parent / "db-before-quantization.vectors.npy")
    live = [i for i in range(330) if not (i < 50 and i % 5 == 0)]
    with vjson.VectorDB(folder) as db:
        assert db.quantization is None and len(db) == len(live)
        truth = exact_knn(vectors[live], vectors[live][:30], 10, "cosine")
        found = [[live.index(int(r.id[1:])) for r in db.search(v, 10)] for v in vectors[live][:30]]
        assert recall_at_k(np.array(found), truth) >= 0.99
        assert db.get("r301").metadata == {"i": 301, "even": False}
        assert db.count({"even": True}) == sum(1 for i in live if i % 2 == 0)
        db.insert("new", vectors[0] + 0.5)
    with vjson.VectorDB(folder) as db:  # written back by this version, read again
        assert len(db) == len(live) + 1 and db.search(vectors[0] + 0.5, 1)[0].id == "new"


# ---------------------------------------------------------------- bad options

def test_bad_options_raise(tmp_path):
    with pytest.raises(vjson.InvalidInputError):
        vjson.VectorDB(tmp_path / "a", 8, quantization="int4")
    assert not (tmp_path / "a" / "MANIFEST.json").exists()
    for bad in ("int4", 8, "INT8", ""):
        with pytest.raises(vjson.InvalidInputError):
            vjson.HNSWIndex(8, quantization=bad)
    data = clustered(200, 8, 19)
    with vjson.VectorDB(tmp_path / "b", 8, "l2", quantization="int8") as db:
        db.insert_batch([str(i) for i in range(200)], data)
        for oversample in (0, -1, 0.5, float("nan"), "2", True, 1e9):
            with pytest.raises(vjson.InvalidInputError):
                db.search(data[0], 5, oversample=oversample)
            with pytest.raises(vjson.InvalidInputError):
                db.batch_search(data[:2], 5, oversample=oversample)
        with pytest.raises(vjson.InvalidInputError):
            db.search(data[0], 5, rescore="yes")
        assert db.search(data[0], 5, oversample=1)[0].id == "0"
    with pytest.raises(vjson.InvalidInputError):  # another kind than the stored one
        vjson.VectorDB(tmp_path / "b", quantization="binary")
    index = vjson.HNSWIndex(8, "l2", quantization="int8")
    index.add(data, np.arange(200))
    with pytest.raises(vjson.InvalidInputError):  # codes only: nothing to rescore from
        index.search(data[0], 5, rescore=True)
    with pytest.raises(vjson.InvalidInputError):
        index.train(data)  # not on a filled index
    with pytest.raises(vjson.InvalidInputError):  # binary codes keep directions only
        vjson.HNSWIndex(256, "l2", quantization="binary")
    with pytest.raises(vjson.InvalidVectorError):
        vjson.HNSWIndex(4, "l2", quantization="float16").add(np.full((1, 4), 1e6, np.float32), [0])
