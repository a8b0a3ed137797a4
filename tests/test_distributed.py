"""vjson.distributed.ShardedVectorDB against one VectorDB holding the same data.

One local Ray cluster (127.0.0.1, 2 CPUs) is started once for the session;
the tests never reach another host. Shards reserve 0.25 CPU, so two collections of three fit at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import vjson
from tests.conftest import clustered

# Ray turns 127.0.0.1 into this machine's network address unless local-only
# mode is on: keep every Ray process, and the second driver below, on loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

N, DIM = 2000, 16
SHARD_CPUS = 0.25
SYLLABLES = ("ka", "lo", "mi", "nu", "po", "ri", "su", "te")
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("bax", "cor", "dun", "fel", "gim", "hox", "jup", "lev")]


@pytest.fixture(scope="session")
def cluster():
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), f"the test cluster must stay on loopback, got {address}"
    yield address
    ray.shutdown()


def make_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    vectors = clustered(n, DIM, seed=seed)
    ids = [f"doc-{i}" for i in range(n)]
    metas = [{"g": int(i % 5), "x": float(rng.random()), "tags": ["even" if i % 2 == 0 else "odd"]} for i in range(n)]
    ranks = np.minimum(rng.zipf(1.2, size=(n, 40)), len(WORDS)) - 1
    lengths = rng.integers(3, 40, size=n)
    texts = [" ".join(WORDS[j] for j in ranks[i, :lengths[i]]) for i in range(n)]
    return ids, vectors, metas, texts


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    db = vjson.VectorDB(tmp_path_factory.mktemp("single") / "db", DIM, "l2")
    db.insert_batch(*data)
    yield db
    db.close()


@pytest.fixture(scope="module", params=[2, 3], ids=["2shards", "3shards"])
def sharded(request, cluster, data, tmp_path_factory):
    from vjson.distributed import ShardedVectorDB

    db = ShardedVectorDB("coll", tmp_path_factory.mktemp("sharded"), DIM, "l2", shards=request.param,
                         shard_cpus=SHARD_CPUS)
    db.insert_batch(*data)
    yield db
    db.close()


def exact_topk(vectors, queries, k, rows=None):
    rows = np.arange(len(vectors)) if rows is None else np.asarray(rows)
    d = ((queries[:, None, :].astype(np.float64) - vectors[rows][None, :, :]) ** 2).sum(-1)
    return rows[np.argsort(d, axis=1, kind="stable")[:, :k]]


def assert_same_ranking(a, b, score=lambda r: r.score):
    """Same scores, and the same ids wherever the score is not tied with the last one kept."""
    sa, sb = np.array([score(r) for r in a]), np.array([score(r) for r in b])
    assert len(sa) == len(sb) and np.allclose(sa, sb, rtol=1e-4, atol=1e-6), (a, b)
    if len(a):
        last = sa[-1]
        strict = lambda hits: {r.id for r in hits if not np.isclose(score(r), last, rtol=1e-4, atol=1e-6)}  # noqa: E731
        assert strict(a) == strict(b)


# ---------------------------------------------------------------------------- packaging


def test_import_vjson_never_imports_ray():
    code = "import vjson, sys; print([m for m in ('ray', 'vjson.distributed') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_ray_names_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["ray"] = None  # what an environment without Ray looks like to import
        try:
            import vjson.distributed
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "vjson[ray]" in out


def test_routing_is_stable_across_processes(cluster):
    from vjson.distributed import shard_of

    ids = [f"id-{i}" for i in range(200)] + ["é", "日本", "x" * 300]
    code = "import json, sys; from vjson.distributed._layout import shard_of; " \
           "print(json.dumps([shard_of(i, 7) for i in json.loads(sys.stdin.read())]))"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(ids), capture_output=True, text=True,
                         check=True, env=env).stdout
    assert json.loads(out) == [shard_of(i, 7) for i in ids]
    assert set(json.loads(out)) == set(range(7))  # and it spreads


# ---------------------------------------------------------------------------- reads agree


def test_records_live_on_their_routed_shard(sharded, data):
    ids = data[0][:50]
    for rid in ids:
        owner = sharded.shard_of(rid)
        held = [ray.get(a.contains.remote(rid)) for a in sharded.actors]
        assert held == [i == owner for i in range(sharded.shards)]
    sizes = [ray.get(a.call.remote("count")) for a in sharded.actors]
    assert sum(sizes) == N and min(sizes) > N / sharded.shards / 2


def test_exact_search_identical(sharded, single, data):
    _, vectors, metas, _ = data
    queries = clustered(30, DIM, seed=7)
    for flt in (None, {"g": 2}, {"x": {"$lt": 0.3}}):
        truth = exact_topk(vectors, queries, 10, None if flt is None else
                           [i for i, m in enumerate(metas) if (m["g"] == 2 if "g" in flt else m["x"] < 0.3)])
        got = sharded.batch_search(queries, 10, filter=flt, ef_search=N)
        want = single.batch_search(queries, 10, filter=flt, ef_search=N)
        for q, (a, b) in enumerate(zip(got, want)):
            assert [r.id for r in a] == [r.id for r in b] == [f"doc-{i}" for i in truth[q]]
            assert np.allclose([r.distance for r in a], [r.distance for r in b], rtol=1e-5)
            one = sharded.search(queries[q], 10, filter=flt, ef_search=N)
            assert [r.id for r in one] == [r.id for r in a]
    every = ["metadata", "text", "vector"]
    for a, b in zip(sharded.batch_search(queries[:3], 5, include=every, ef_search=N),
                    single.batch_search(queries[:3], 5, include=every, ef_search=N)):
        assert [(r.id, r.metadata, r.text, r.score) for r in a] == [(r.id, r.metadata, r.text, r.score) for r in b]
        assert all(np.array_equal(x.vector, y.vector) for x, y in zip(a, b))
    assert [r.metadata for r in sharded.batch_search(queries[:2], 3, include=[], ef_search=N)[0]] == [None] * 3
    hit = sharded.search(queries[0], 3, include=["metadata", "text", "vector"], ef_search=N)[0]
    ref = single.get(hit.id)
    assert hit.metadata == ref.metadata and hit.text == ref.text and np.array_equal(hit.vector, ref.vector)


def test_ann_recall_within_001(sharded, single, data):
    vectors = data[1]
    queries = clustered(200, DIM, seed=11)
    truth = exact_topk(vectors, queries, 10)

    def recall(results):
        return np.mean([len({int(r.id[4:]) for r in res} & set(t.tolist())) / 10 for res, t in zip(results, truth)])

    r_sharded = recall(sharded.batch_search(queries, 10, ef_search=10))
    r_single = recall(single.batch_search(queries, 10, ef_search=10))
    assert r_sharded >= r_single - 0.01, (r_sharded, r_single)


def test_counts_filters_and_gets(sharded, single, data):
    ids, _, metas, _ = data
    assert len(sharded) == sharded.count() == N
    for flt, expect in (({"g": 3}, lambda m: m["g"] == 3), ({"tags": "odd", "x": {"$gte": 0.5}},
                                                            lambda m: "odd" in m["tags"] and m["x"] >= 0.5)):
        want = {ids[i] for i, m in enumerate(metas) if expect(m)}
        assert sharded.count(flt) == single.count(flt) == len(want)
        assert {r.id for r in sharded.get(filter=flt)} == want
        assert len(sharded.get(filter=flt, limit=7)) == 7
    assert sharded.get("doc-17") == single.get("doc-17")
    picked = ["doc-5", "doc-1999", "doc-0", "doc-5"]
    assert sharded.get_batch(picked) == single.get_batch(picked)
    assert "doc-3" in sharded and "nope" not in sharded and 3 not in sharded
    assert sorted(sharded.ids()) == sorted(single.ids()) == sorted(ids)


TEXT_QUERIES = [" ".join(WORDS[j] for j in q) for q in ([0], [1, 2], [5, 40], [63], [10, 11, 12], [30], [2, 60])]


def test_text_search_scores_with_global_statistics(sharded, single):
    for query in TEXT_QUERIES:
        for flt in (None, {"g": 1}):
            got = sharded.text_search(query, 10, filter=flt, syntax=False)
            assert got, query
            assert_same_ranking(got, single.text_search(query, 10, filter=flt, syntax=False))
    phrase = f'"{WORDS[0]} {WORDS[1]}"'
    assert_same_ranking(sharded.text_search(phrase, 10, syntax=True), single.text_search(phrase, 10, syntax=True))


def rrf_reference(vector_hits, text_hits, k, rrf_k=10):
    """Reciprocal rank fusion written out: sum of 1 / (rrf_k + rank) over the sides holding an id."""
    fused: dict[str, float] = {}
    for hits in (vector_hits, text_hits):
        for rank, hit in enumerate(hits, 1):
            fused[hit.id] = fused.get(hit.id, 0.0) + 1 / (rrf_k + rank)
    return sorted(fused.values(), reverse=True)[:k]


def test_hybrid_fuses_after_the_global_merge(sharded, single, data):
    rng = np.random.default_rng(3)
    queries = clustered(40, DIM, seed=3)
    compared = 0
    for vector in queries:
        text = " ".join(WORDS[j] for j in rng.choice(40, 3, replace=False))
        vector_hits = sharded.search(vector, 20, ef_search=N)
        text_hits = sharded.text_search(text, 20, syntax=False)
        got = sharded.hybrid_search(vector, text, 10, candidates=20, ef_search=N)
        assert np.allclose([r.score for r in got], rrf_reference(vector_hits, text_hits, 10))
        # against one database: where BM25 ties leave the text ranks undefined, either order is right
        reference = [h.score for h in single.text_search(text, 20, syntax=False)]
        if len(reference) > 1 and np.min(-np.diff(reference)) < 1e-4 * reference[0]:
            continue
        compared += 1
        for fusion in ("rrf", "weighted"):
            got = sharded.hybrid_search(vector, text, 10, fusion=fusion, candidates=20, ef_search=N)
            want = single.hybrid_search(vector, text, 10, fusion=fusion, candidates=20, ef_search=N)
            assert_same_ranking(got, want)
            assert {(r.id, r.vector_rank, r.text_rank) for r in got if r.score > got[-1].score + 1e-9} == \
                   {(r.id, r.vector_rank, r.text_rank) for r in want if r.score > want[-1].score + 1e-9}
    assert compared >= 3, compared


def test_hybrid_takes_the_single_database_default_candidates(sharded, single):
    """No `candidates`: each side gathers max(2k, 200) hits, as VectorDB.hybrid_search
    does. Weighted fusion normalises over the candidates, so their number shows in the scores."""
    rng = np.random.default_rng(5)
    differs = 0
    for vector in clustered(8, DIM, seed=5):
        text = " ".join(WORDS[j] for j in rng.choice(40, 2, replace=False))

        def scores(db, **kw):
            return [(r.id, round(r.score, 5)) for r in db.hybrid_search(vector, text, 10, fusion="weighted",
                                                                         ef_search=N, **kw)]
        got = scores(sharded)
        assert got == scores(sharded, candidates=200)
        assert [s for _, s in got] == pytest.approx([s for _, s in scores(single)], abs=1e-4)
        differs += got != scores(sharded, candidates=100)
    assert differs >= 1  # the old default (100) gives other scores


# ---------------------------------------------------------------------------- writes agree


def test_same_writes_same_contents(cluster, tmp_path):
    from vjson.distributed import ShardedVectorDB

    ids, vectors, metas, texts = make_data(300, seed=5)
    single = vjson.VectorDB(tmp_path / "single", DIM, "l2")
    with ShardedVectorDB("w", tmp_path, DIM, "l2", shards=3, shard_cpus=SHARD_CPUS) as sharded:
        rng = np.random.default_rng(1)
        for db in (single, sharded):
            db.insert_batch(ids, vectors, metas, texts)
            db.insert_batch(["doc-1", "doc-1", "new"], vectors[:3] + 1, [{"v": 1}, {"v": 2}, None], None)  # last wins
            db.insert("doc-2", vectors[9], {"g": 9}, "replaced text")
            db.update_metadata("doc-3", {"extra": True}, merge=True)
            db.update_metadata("doc-4", None)
        assert sharded.delete(["doc-5", "doc-6", "doc-5"]) == single.delete(["doc-5", "doc-6", "doc-5"]) == 2
        assert sharded.delete(filter={"g": 4}) == single.delete(filter={"g": 4})
        assert sharded.delete(filter={"g": 999}) == 0
        sharded.flush()
        sharded.compact()
        assert sorted(sharded.ids()) == sorted(single.ids())
        assert sharded.get_batch(single.ids()) == single.get_batch(single.ids())
        assert sharded.verify()["ok"]
        q = rng.normal(size=DIM).astype(np.float32)
        assert [r.id for r in sharded.search(q, 10, ef_search=400)] == [r.id for r in single.search(q, 10,
                                                                                                      ef_search=400)]
    single.close()


def bad_calls(v):
    return [
        ("insert wrong dimension", lambda db: db.insert("a", v[:3])),
        ("insert bad id", lambda db: db.insert("", v)),
        ("insert id not str", lambda db: db.insert(5, v)),
        ("insert NaN", lambda db: db.insert("a", np.full(DIM, np.nan))),
        ("batch length mismatch", lambda db: db.insert_batch(["a", "b"], np.stack([v]))),
        ("bad metadata", lambda db: db.insert("a", v, {"k": object()})),
        ("bad text", lambda db: db.insert("a", v, None, 5)),
        ("get missing", lambda db: db.get("missing")),
        ("get both", lambda db: db.get("a", filter={"g": 1})),
        ("get neither", lambda db: db.get()),
        ("get_batch missing", lambda db: db.get_batch(["doc-1", "missing"])),
        ("update missing", lambda db: db.update_metadata("missing", {})),
        ("delete missing", lambda db: db.delete(["doc-1", "missing"])),
        ("delete neither", lambda db: db.delete()),
        ("bad filter", lambda db: db.count({"g": {"$regex": "x"}})),
        ("search k=0", lambda db: db.search(v, 0)),
        ("search bad include", lambda db: db.search(v, include=["nope"])),
        ("search wrong dim", lambda db: db.search(v[:2])),
        ("batch_search wrong dim", lambda db: db.batch_search(np.zeros((2, 3)))),
        ("text syntax", lambda db: db.text_search('"unbalanced', syntax=True)),
        ("text not str", lambda db: db.text_search(5)),
        ("hybrid fusion", lambda db: db.hybrid_search(v, "kakabax", fusion="max")),
        ("hybrid alpha", lambda db: db.hybrid_search(v, "kakabax", fusion="weighted", alpha=2)),
    ]


def test_bad_input_same_errors_nothing_changes(sharded, single):
    v = clustered(1, DIM, seed=9)[0]
    for what, call in bad_calls(v):
        errors = []
        for db in (single, sharded):
            with pytest.raises(vjson.VJsonError) as info:
                call(db)
            errors.append(info.value)
        assert type(errors[0]) is type(errors[1]), what
        assert str(errors[0]).replace(str(single.path), "") == str(errors[1]).replace(str(single.path), ""), what
    assert len(sharded) == N and "a" not in sharded


def test_settings_errors(cluster, tmp_path):
    from vjson.distributed import ShardedVectorDB

    with pytest.raises(vjson.InvalidInputError, match="needs a dimension"):
        ShardedVectorDB("c", tmp_path)
    with pytest.raises(vjson.InvalidInputError, match="metric"):
        ShardedVectorDB("c", tmp_path, 4, "hamming", shards=2, shard_cpus=SHARD_CPUS)
    with pytest.raises(vjson.InvalidInputError, match="shards"):
        ShardedVectorDB("c", tmp_path, 4, shards=0)
    with pytest.raises(vjson.InvalidInputError, match="name"):
        ShardedVectorDB("../c", tmp_path, 4)
    with pytest.raises(TypeError, match="unexpected"):
        ShardedVectorDB("c", tmp_path, 4, shards=2, colour="red")
    with pytest.raises(vjson.ShardUnavailableError, match="CPUs"):
        ShardedVectorDB("c", tmp_path, 4, shards=5, shard_cpus=1)
    assert not (tmp_path / "c" / "LAYOUT.json").exists()


# ---------------------------------------------------------------------------- layout and reattach

SECOND_DRIVER = """
import sys, numpy as np, ray
ray.init(address=sys.argv[1], log_to_driver=False)
from vjson.distributed import ShardedVectorDB
db = ShardedVectorDB("coll", sys.argv[2])          # no dimension, no shard count: the layout has them
assert db.shards == 3 and db.dimension == 8 and db.metric == "ip", (db.shards, db.dimension, db.metric)
assert len(db) == 100 and db.get("r-42").metadata == {"i": 42}, len(db)
db.insert("from-second-driver", np.ones(8, dtype=np.float32), {"by": "second"})
db.close()
print("ok")
"""


def test_reattach_from_a_second_driver(cluster, tmp_path):
    from vjson.distributed import ShardedVectorDB

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(100, 8)).astype(np.float32) * 0.1
    db = ShardedVectorDB("coll", tmp_path, 8, "ip", shards=3, shard_cpus=SHARD_CPUS, ef_search=32)
    db.insert_batch([f"r-{i}" for i in range(100)], vectors, [{"i": i} for i in range(100)])
    db.close()
    with pytest.raises(vjson.DatabaseClosedError):
        len(db)
    layout = json.loads((tmp_path / "coll" / "LAYOUT.json").read_text())
    assert layout["shards"] == 3 and len(layout["nodes"]) == 3
    assert sorted(p.name for p in (tmp_path / "coll").iterdir()) == ["LAYOUT.json", "shard-0", "shard-1",
                                                                      "shard-2"]
    out = subprocess.run([sys.executable, "-c", SECOND_DRIVER, cluster, str(tmp_path)], capture_output=True,
                         text=True, timeout=240)
    assert out.stdout.strip().endswith("ok"), out.stderr[-3000:]
    with pytest.raises(vjson.InvalidInputError, match="shards"):
        ShardedVectorDB("coll", tmp_path, shards=2)
    with pytest.raises(vjson.InvalidInputError, match="dimension"):
        ShardedVectorDB("coll", tmp_path, 9)
    with ShardedVectorDB("coll", tmp_path, 8) as again:
        assert len(again) == 101 and again.get("from-second-driver").metadata == {"by": "second"}
        assert again.ef_search == 64  # per-open settings are not stored
        again.ef_search = 100
        assert again.ef_search == 100
        with ShardedVectorDB("coll", tmp_path, read_only=True, shard_cpus=0.1) as reader:  # beside the writer
            assert len(reader) == 101 and reader.get("r-7").metadata == {"i": 7}
            with pytest.raises(vjson.ReadOnlyError):
                reader.insert("nope", np.ones(8, dtype=np.float32))
        assert json.loads((tmp_path / "coll" / "LAYOUT.json").read_text())["shard_cpus"] == SHARD_CPUS


# ---------------------------------------------------------------------------- faults


def test_killed_shard_comes_back_with_every_acknowledged_write(cluster, tmp_path):
    from vjson.distributed import ShardedVectorDB

    db = ShardedVectorDB("f", tmp_path, DIM, "l2", shards=2, shard_cpus=SHARD_CPUS)
    victim = db.actors[1]
    before = ray.get(victim.info.remote())
    acknowledged: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []
    started = threading.Event()
    rng = np.random.default_rng(2)

    def writer():
        try:
            for b in range(60):
                ids = [f"w-{b}-{i}" for i in range(20)]
                vecs = rng.normal(size=(20, DIM)).astype(np.float32)
                db.insert_batch(ids, vecs, [{"b": b}] * 20)
                acknowledged.update(zip(ids, vecs))
                if b == 5:
                    started.set()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert started.wait(120)
    ray.kill(victim, no_restart=False)  # mid-workload: the writer keeps going
    assert thread.is_alive()  # batches remain, so writes cross the restart
    reads = 0
    while thread.is_alive():  # reads keep working through the restart too
        assert db.count() >= 0
        reads += 1
    thread.join()
    assert not errors, errors
    after = ray.get(victim.info.remote())
    assert after["restarted"] and after["pid"] != before["pid"]
    assert len(db) == len(acknowledged) == 1200
    stored = db.get_batch(list(acknowledged), include=["vector"])
    assert all(np.array_equal(r.vector, acknowledged[r.id]) for r in stored)
    db.close()


def test_dead_shard_raises_shard_unavailable(cluster, tmp_path):
    from vjson.distributed import ShardedVectorDB

    db = ShardedVectorDB("d", tmp_path, DIM, "l2", shards=2, shard_cpus=SHARD_CPUS, retry_timeout=1.0)
    db.insert_batch([f"x-{i}" for i in range(50)], clustered(50, DIM))
    pid = ray.get(db.actors[0].info.remote())["pid"]
    ray.kill(db.actors[0], no_restart=True)  # gone for good
    _wait_for_exit(pid)  # ray.kill returns at once: a call made now could still reach the actor
    start = time.monotonic()
    with pytest.raises(vjson.ShardUnavailableError, match="shard 0"):
        db.count()
    assert time.monotonic() - start < 30
    assert issubclass(vjson.ShardUnavailableError, vjson.VJsonError)
    with pytest.raises(vjson.ShardUnavailableError):
        db.close()
    with ShardedVectorDB("d", tmp_path) as again:  # its folder is intact: a new actor reopens it
        assert len(again) == 50


def _wait_for_exit(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"shard process {pid} still runs {timeout} s after ray.kill")


def test_restarted_shard_refuses_to_start_empty(cluster, tmp_path):
    """A shard whose folder is gone (its disk lost) says so instead of silently serving nothing."""
    import shutil

    from vjson.distributed import ShardedVectorDB

    db = ShardedVectorDB("lost", tmp_path, DIM, "l2", shards=2, shard_cpus=SHARD_CPUS, retry_timeout=5.0)
    db.insert_batch([f"x-{i}" for i in range(40)], clustered(40, DIM))
    shutil.rmtree(tmp_path / "lost" / "shard-1")
    pid = ray.get(db.actors[1].info.remote())["pid"]
    ray.kill(db.actors[1], no_restart=False)
    _wait_for_exit(pid)  # ray.kill returns at once: a call made now could still reach the old actor
    with pytest.raises(vjson.NotADatabaseError, match="shard 1.*holds no vjson database"):
        db.count()
    assert not (tmp_path / "lost" / "shard-1").exists()
    db.close()
