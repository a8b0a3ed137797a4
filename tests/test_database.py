"""The database: CRUD, upserts, persistence, compaction, locking and bad input."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest

import vjson
from conftest import clustered, recall_at_k

DIM = 16


def ids(n, start=0):
    return [f"r{i}" for i in range(start, start + n)]


@pytest.fixture
def db(tmp_path):
    database = vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="l2")
    yield database
    database.close()


def snapshot(database):
    """Everything a database holds, for before/after comparisons."""
    out = {}
    for rid in database:
        rec = database.get(rid)
        out[rid] = (rec.vector.tobytes(), rec.metadata, rec.text)
    return out


class TestCrud:
    def test_insert_get_search(self, db):
        data = clustered(200, DIM, 1)
        db.insert_batch(ids(200), data, [{"n": i} for i in range(200)], [f"text {i}" for i in range(200)])
        assert len(db) == 200 and db.count() == 200 and "r5" in db and "x" not in db
        rec = db.get("r5")
        np.testing.assert_array_equal(rec.vector, data[5])
        assert rec.metadata == {"n": 5} and rec.text == "text 5"
        hits = db.search(data[17], k=3)
        assert hits[0].id == "r17" and hits[0].distance == pytest.approx(0, abs=1e-4)
        assert hits[0].metadata == {"n": 17} and hits[0].text == "text 17"
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)

    def test_list_of_lists_and_single_insert(self, db):
        db.insert_batch(["a", "b"], [[0.0] * DIM, [1.0] * DIM])
        db.insert("c", [2.0] * DIM, {"k": "v"})
        assert len(db) == 3 and db.get_metadata("c") == {"k": "v"} and db.get_metadata("a") is None

    def test_upsert_replaces_and_last_wins_within_batch(self, db):
        v = np.eye(DIM, dtype=np.float32)
        db.insert_batch(["a", "b"], v[:2], [{"x": 1}, {"x": 2}])
        db.insert_batch(["a", "c", "a"], v[2:5], [{"x": 3}, {"x": 4}, {"x": 5}])
        assert len(db) == 3
        np.testing.assert_array_equal(db.get("a").vector, v[4])
        assert db.get_metadata("a") == {"x": 5}
        assert [h.id for h in db.search(v[2], k=3)].count("a") == 1, "an id appears once in results"
        assert db.search(v[4], k=1)[0].id == "a"

    def test_get_batch_and_ids_and_iteration(self, db):
        db.insert_batch(ids(10), clustered(10, DIM, 2))
        recs = db.get_batch(["r3", "r1"])
        assert [r.id for r in recs] == ["r3", "r1"]
        assert sorted(db) == sorted(ids(10)) and db.ids() == ids(10)

    def test_update_metadata_replace_and_merge(self, db):
        db.insert("a", np.ones(DIM), {"x": 1, "y": 2})
        db.update_metadata("a", {"x": 9}, merge=True)
        assert db.get_metadata("a") == {"x": 9, "y": 2}
        db.update_metadata("a", {"z": 0})
        assert db.get_metadata("a") == {"z": 0}
        db.update_metadata("a", None)
        assert db.get_metadata("a") is None

    def test_delete(self, db):
        data = clustered(50, DIM, 3)
        db.insert_batch(ids(50), data)
        assert db.delete(["r1", "r2"]) == 2
        assert db.delete("r3") == 1
        assert len(db) == 47 and "r1" not in db
        found = {h.id for h in db.search(data[1], k=50)}
        assert not found & {"r1", "r2", "r3"} and len(found) == 47

    def test_unknown_ids_raise_consistently(self, db):
        db.insert("a", np.ones(DIM))
        for call in (lambda: db.get("zz"), lambda: db.get_metadata("zz"), lambda: db.get_batch(["a", "zz"]),
                     lambda: db.update_metadata("zz", {}), lambda: db.delete(["a", "zz"])):
            with pytest.raises(vjson.RecordNotFoundError):
                call()
        assert "a" in db, "a failed delete removes nothing"
        with pytest.raises(KeyError):  # also a KeyError, as Python code expects
            db.get("zz")

    def test_search_k_larger_than_size_and_include(self, db):
        db.insert_batch(ids(5), clustered(5, DIM, 4), [{"i": i} for i in range(5)])
        hits = db.search(np.zeros(DIM), k=50, include=["vector"])
        assert len(hits) == 5 and hits[0].metadata is None and hits[0].vector.shape == (DIM,)
        assert db.search(np.zeros(DIM), k=1, include=[])[0].metadata is None

    def test_batch_search_matches_single(self, db):
        data = clustered(500, DIM, 5)
        db.insert_batch(ids(500), data)
        queries = clustered(20, DIM, 6)
        batch = db.batch_search(queries, k=5)
        for q, hits in zip(queries, batch):
            assert [h.id for h in hits] == [h.id for h in db.search(q, k=5)]

    def test_repeated_filter_sees_every_write(self, db):
        """Filtered searches are cached per view: any write must show in the next one."""
        db.insert_batch(ids(50), clustered(50, DIM, 30), [{"g": i % 2} for i in range(50)])
        q = np.zeros(DIM, np.float32)
        first = {h.id for h in db.search(q, k=50, filter={"g": 1})}
        assert len(first) == 25 and db.count({"g": 1}) == 25
        db.update_metadata("r0", {"g": 1})  # no new rows: only the metadata changes
        assert "r0" in {h.id for h in db.search(q, k=50, filter={"g": 1})}
        db.delete(["r1"])
        assert "r1" not in {h.id for h in db.search(q, k=50, filter={"g": 1})}
        db.insert("new", np.ones(DIM), {"g": 1})
        assert {h.id for h in db.search(q, k=50, filter={"g": 1})} == first - {"r1"} | {"r0", "new"}

    def test_empty_database(self, db):
        assert db.search(np.zeros(DIM), k=3) == [] and len(db) == 0
        assert db.batch_search(np.zeros((2, DIM)), k=3) == [[], []]


class TestPersistence:
    def test_close_reopen_same_results(self, tmp_path):
        path = tmp_path / "db"
        data = clustered(1000, DIM, 7)
        queries = clustered(30, DIM, 8)
        with vjson.VectorDB(path, dimension=DIM, metric="l2") as db:
            db.insert_batch(ids(1000), data, [{"i": i} for i in range(1000)])
            db.delete(["r0"])
            db.update_metadata("r1", {"i": -1})
            before = [[h.id for h in hits] for hits in db.batch_search(queries, k=10)]
            content = snapshot(db)
        with vjson.open(path) as db:
            assert db.dimension == DIM and db.metric == "l2"
            assert [[h.id for h in hits] for hits in db.batch_search(queries, k=10)] == before
            assert snapshot(db) == content

    def test_reopen_without_close_replays_the_log(self, tmp_path):
        """A process that dies never checkpoints: the log alone must restore everything."""
        path = tmp_path / "db"
        data = clustered(300, DIM, 9)
        code = (
            "import sys, os, numpy as np, vjson\n"
            "db = vjson.VectorDB(sys.argv[1], dimension=%d, metric='l2')\n"
            "data = np.load(sys.argv[2])\n"
            "db.insert_batch(['r%%d' %% i for i in range(300)], data, [{'i': i} for i in range(300)])\n"
            "db.delete(['r5']); db.update_metadata('r6', {'i': 'six'})\n"
            "os._exit(0)\n" % DIM)
        np.save(tmp_path / "d.npy", data)
        import subprocess
        import sys
        subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "d.npy")], check=True)
        with vjson.open(path) as db:
            assert len(db) == 299 and "r5" not in db and db.get_metadata("r6") == {"i": "six"}
            np.testing.assert_array_equal(db.get("r7").vector, data[7])
            assert db.search(data[7], k=1)[0].id == "r7"

    def test_stored_settings_win_and_conflicts_raise(self, tmp_path):
        path = tmp_path / "db"
        vjson.VectorDB(path, dimension=8, metric="ip", M=8).close()
        with vjson.VectorDB(path) as db:
            assert (db.dimension, db.metric) == (8, "ip")
        with pytest.raises(vjson.InvalidInputError):
            vjson.VectorDB(path, dimension=9)
        with pytest.raises(vjson.InvalidInputError):
            vjson.VectorDB(path, metric="l2")

    def test_recall_through_the_database(self, tmp_path):
        data = clustered(3000, 32, 10)
        queries = clustered(100, 32, 11)
        with vjson.VectorDB(tmp_path / "db", dimension=32, metric="cosine") as db:
            db.insert_batch(ids(3000), data)
            hits = db.batch_search(queries, k=10, ef_search=100)
        truth, _ = vjson.brute_force_knn(data, queries, 10, "cosine")
        found = np.array([[int(h.id[1:]) for h in row] for row in hits])
        assert recall_at_k(found, truth) >= 0.97


class TestCompact:
    def test_compact_drops_dead_rows_and_keeps_content(self, tmp_path):
        path = tmp_path / "db"
        data = clustered(600, DIM, 12)
        with vjson.VectorDB(path, dimension=DIM, metric="l2") as db:
            db.insert_batch(ids(600), data, [{"i": i} for i in range(600)], [f"t{i}" for i in range(600)])
            db.insert_batch(ids(100), data[100:200] + 1)  # 100 upserts
            db.delete(ids(100, 300))
            content = snapshot(db)
            size_before = os.path.getsize(path / db._manifest["vectors"])
            db.compact()
            assert snapshot(db) == content and len(db) == 500
            assert db._gen.graph.element_count == 500, "retired rows are gone from the graph"
            assert db.search(data[450], k=1)[0].id == "r450"
            assert db.count({"i": {"$gte": 550}}) == 50
        with vjson.open(path) as db:
            assert snapshot(db) == content
            assert os.path.getsize(path / db._manifest["vectors"]) <= size_before

    def test_crash_during_compaction_leaves_the_old_state(self, tmp_path, monkeypatch):
        path = tmp_path / "db"
        db = vjson.VectorDB(path, dimension=DIM, metric="l2")
        db.insert_batch(ids(100), clustered(100, DIM, 13))
        db.delete(ids(10))
        content = snapshot(db)
        from vjson import _checkpoint

        def boom(*a, **k):
            raise OSError(5, "injected")
        monkeypatch.setattr(_checkpoint, "atomic_write", boom)  # writing the new filter index fails
        with pytest.raises(OSError):
            db.compact()
        monkeypatch.undo()
        db._release_files()  # simulate the process dying here
        db._closed = True
        with vjson.open(path) as again:
            assert snapshot(again) == content
            assert not [n for n in os.listdir(path) if n.startswith("vectors-1")], "stray files are removed"


class TestLocking:
    def test_second_writer_refused_reader_allowed(self, tmp_path):
        path = tmp_path / "db"
        with vjson.VectorDB(path, dimension=DIM) as db:
            db.insert("a", np.ones(DIM))
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(1) as pool:
                assert pool.apply(_try_open, (str(path), False)) == "DatabaseLockedError"
                assert pool.apply(_try_open, (str(path), True)) == "1 records"
        # released on close: a new writer may open
        with ctx.Pool(1) as pool:
            assert pool.apply(_try_open, (str(path), False)) == "1 records"

    def test_read_only_refuses_writes(self, tmp_path):
        path = tmp_path / "db"
        vjson.VectorDB(path, dimension=DIM).close()
        with vjson.VectorDB(path, read_only=True) as db:
            with pytest.raises(vjson.ReadOnlyError):
                db.insert("a", np.ones(DIM))


def _try_open(path, read_only):
    try:
        with vjson.VectorDB(path, read_only=read_only) as db:
            return f"{len(db)} records"
    except vjson.VJsonError as exc:
        return type(exc).__name__


class TestBadInput:
    """Each bad call raises our error and leaves the database exactly as it was."""

    @pytest.fixture
    def filled(self, db):
        db.insert_batch(ids(20), clustered(20, DIM, 14), [{"i": i} for i in range(20)])
        return db

    BAD_CALLS = [
        ("wrong dimension", lambda db: db.insert("x", np.ones(DIM + 1)), vjson.DimensionMismatchError),
        ("nan", lambda db: db.insert("x", np.full(DIM, np.nan)), vjson.InvalidVectorError),
        ("inf in batch", lambda db: db.insert_batch(["x", "y"], np.r_[np.ones((1, DIM)), np.full((1, DIM), np.inf)]),
         vjson.InvalidVectorError),
        ("strings", lambda db: db.insert("x", ["a"] * DIM), vjson.InvalidVectorError),
        ("distances would overflow", lambda db: db.insert("x", np.full(DIM, 2.0**62)), vjson.InvalidVectorError),
        ("query would overflow", lambda db: db.search(np.full(DIM, 2.0**62)), vjson.InvalidVectorError),
        ("queries would overflow", lambda db: db.batch_search(np.full((2, DIM), 2.0**62)), vjson.InvalidVectorError),
        ("int id", lambda db: db.insert(5, np.ones(DIM)), vjson.InvalidIdError),
        ("empty id", lambda db: db.insert("", np.ones(DIM)), vjson.InvalidIdError),
        ("id list with None", lambda db: db.insert_batch(["a", None], np.ones((2, DIM))), vjson.InvalidIdError),
        ("metadata list", lambda db: db.insert("x", np.ones(DIM), [1, 2]), vjson.InvalidMetadataError),
        ("metadata set", lambda db: db.insert("x", np.ones(DIM), {"s": {1, 2}}), vjson.InvalidMetadataError),
        ("metadata nan", lambda db: db.insert("x", np.ones(DIM), {"f": float("nan")}), vjson.InvalidMetadataError),
        ("metadata int key", lambda db: db.insert("x", np.ones(DIM), {1: "a"}), vjson.InvalidMetadataError),
        ("length mismatch", lambda db: db.insert_batch(["a", "b"], np.ones((3, DIM))), vjson.InvalidInputError),
        ("metadatas mismatch", lambda db: db.insert_batch(["a"], np.ones((1, DIM)), [{}, {}]),
         vjson.InvalidInputError),
        ("text not str", lambda db: db.insert("x", np.ones(DIM), text=5), vjson.InvalidInputError),
        ("k zero", lambda db: db.search(np.ones(DIM), k=0), vjson.InvalidInputError),
        ("query dim", lambda db: db.search(np.ones(3)), vjson.DimensionMismatchError),
        ("update unknown", lambda db: db.update_metadata("nope", {}), vjson.RecordNotFoundError),
        ("bad include", lambda db: db.search(np.ones(DIM), include=["everything"]), vjson.InvalidInputError),
    ]

    @pytest.mark.parametrize("name,call,error", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
    def test_bad_call_changes_nothing(self, filled, name, call, error):
        before = snapshot(filled)
        with pytest.raises(error):
            call(filled)
        assert snapshot(filled) == before
        filled.insert("after", np.ones(DIM))  # still usable
        assert "after" in filled

    def test_deep_nesting_refused(self, filled):
        doc = {}
        inner = doc
        for _ in range(100):
            inner["a"] = {}
            inner = inner["a"]
        with pytest.raises(vjson.InvalidMetadataError):
            filled.insert("x", np.ones(DIM), doc)

    def test_closed_database_raises(self, filled):
        filled.close()
        for call in (lambda: filled.search(np.ones(DIM)), lambda: filled.insert("a", np.ones(DIM)),
                     lambda: len(filled), lambda: filled.get("r1"), lambda: filled.count()):
            with pytest.raises(vjson.DatabaseClosedError):
                call()
        filled.close()  # idempotent

    def test_not_a_database(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(vjson.NotADatabaseError):
            vjson.VectorDB(tmp_path / "file", dimension=4)
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "notes.txt").write_text("x")
        with pytest.raises(vjson.NotADatabaseError):
            vjson.VectorDB(tmp_path / "other", dimension=4)
        with pytest.raises(vjson.NotADatabaseError):
            vjson.open(tmp_path / "missing")
        with pytest.raises(vjson.InvalidInputError):
            vjson.VectorDB(tmp_path / "new")  # creating needs a dimension

    def test_newer_format_refused(self, tmp_path):
        path = tmp_path / "db"
        vjson.VectorDB(path, dimension=4).close()
        import orjson

        manifest = orjson.loads((path / "MANIFEST.json").read_bytes())
        manifest["format"] = 99
        (path / "MANIFEST.json").write_bytes(orjson.dumps(manifest))
        with pytest.raises(vjson.FormatVersionError):
            vjson.open(path)


class TestSeedAlias:
    def test_pyvectordb(self, tmp_path):
        db = vjson.PyVectorDB(str(tmp_path / "db"), 8, 1000, 100)
        db.insert("a", np.ones(8), {"k": 1})
        db.insert_batch(["b", "c"], np.eye(8)[:2])
        assert db.count() == 3 and len(db) == 3
        assert db.search(np.ones(8), 1)[0].id == "a"
        assert len(db.batch_search(np.eye(8)[:2], 2)) == 2
        assert db.get_metadata("a") == {"k": 1}
        db.delete(["b"])
        db.compact()
        assert len(db) == 2
        db.close()


class TestVerify:
    def test_healthy_database_verifies(self, tmp_path):
        path = tmp_path / "db"
        with vjson.VectorDB(path, dimension=DIM) as db:
            db.insert_batch(ids(5000), clustered(5000, DIM, 20), [{"i": i} for i in range(5000)],
                            [f"t {i}" for i in range(5000)])
            db.flush()
            db.insert_batch(ids(10, 9000), clustered(10, DIM, 21))
            db.delete(["r1"])
            report = db.verify()
            assert report["ok"], report["problems"]
            assert report["records"] == 5009 and "vector checksums" in report["checked"]
            db.compact()
            assert db.verify()["ok"]

    @pytest.mark.parametrize("target", ["vectors", "graph", "segment", "delta", "filters"])
    def test_flipped_byte_is_reported(self, tmp_path, target):
        path = tmp_path / "db"
        db = vjson.VectorDB(path, dimension=DIM)
        db.insert_batch(ids(300), clustered(300, DIM, 22), [{"i": i} for i in range(300)])
        db.flush()
        name = db._manifest["segments"][0]["file"] if target == "segment" else db._manifest[target]
        raw = bytearray((path / name).read_bytes())
        offset = {"vectors": 4 * DIM * 17 + 3, "graph": 65536 + 200, "segment": 40, "delta": 40,
                  "filters": len(raw) // 2}[target]
        raw[offset] ^= 0x40
        (path / name).write_bytes(bytes(raw))
        report = db.verify()
        assert not report["ok"] and any(name in p or target in p for p in report["problems"]), report
        db.close()


class TestLazyRows:
    def test_json_rows_round_trip_and_damage(self):
        from vjson._generation import JsonRows

        values = [{"a": 1}, None, "text", [1, 2], {"b": {"c": True}}]
        blob, offsets = JsonRows.encode(values, [True, True, True, False, True])
        rows = JsonRows.decode(blob, offsets, 5, "test")
        assert [rows[i] for i in range(5)] == [{"a": 1}, None, "text", None, {"b": {"c": True}}]
        rows[0] = {"a": 2}
        rows.extend(["new"])
        assert len(rows) == 6 and rows[0] == {"a": 2} and rows[5] == "new"
        again = JsonRows.decode(*JsonRows.encode(rows, [True] * 6), 6, "test")
        assert list(again) == [{"a": 2}, None, "text", None, {"b": {"c": True}}, "new"]
        with pytest.raises(vjson.CorruptionError):
            JsonRows.decode(blob, offsets, 4, "test")
        with pytest.raises(vjson.CorruptionError):
            JsonRows.decode(blob[:-1], offsets, 5, "test")
        assert len(offsets) == 4 * 6, "offsets take 4 bytes a row below 4 GiB of JSON"
        wide = np.frombuffer(offsets, "<u4").astype("<u8").tobytes()  # as checkpoints before them wrote
        assert list(JsonRows.decode(blob, wide, 5, "test")) == [{"a": 1}, None, "text", None, {"b": {"c": True}}]

    def test_a_column_of_nulls_takes_no_space(self):
        from vjson._generation import JsonRows

        assert JsonRows.encode([None] * 1000, [True] * 1000) == (b"", b"")
        assert JsonRows.encode([{"gone": 1}, None], [False, True]) == (b"", b"")
        rows = JsonRows.decode(b"", b"", 1000, "test")
        assert len(rows) == 1000 and rows[999] is None and rows[0] is None
        rows[3] = {"set": True}
        rows.extend([{"new": 1}])
        assert JsonRows.decode(*JsonRows.encode(rows, [True] * 1001), 1001, "test")[3] == {"set": True}
        with pytest.raises(vjson.CorruptionError):
            JsonRows.decode(b"null", b"", 1, "test")

    def test_reopened_rows_decode_on_demand_and_update(self, tmp_path):
        path = tmp_path / "db"
        with vjson.VectorDB(path, dimension=DIM) as db:
            db.insert_batch(ids(100), clustered(100, DIM, 40), [{"i": i} for i in range(100)],
                            [f"text {i}" for i in range(100)])
        with vjson.open(path) as db:
            hit = db.search(db.get("r7").vector, k=1)[0]
            assert hit.id == "r7" and hit.metadata == {"i": 7} and hit.text == "text 7"
            db.update_metadata("r8", {"i": -8})
            db.insert("r9", np.ones(DIM), {"i": 99})
        with vjson.open(path) as db:
            assert db.get_metadata("r8") == {"i": -8} and db.get_metadata("r9") == {"i": 99}
            assert db.get("r50").text == "text 50" and db.count({"i": {"$lt": 0}}) == 1


class TestVectorStorage:
    def test_cosine_vectors_come_back_unit_length(self, tmp_path):
        data = clustered(50, DIM, 20) * 3
        with vjson.VectorDB(tmp_path / "db", dimension=DIM) as db:  # cosine, the default
            db.insert_batch(ids(50), data)
            got = db.get("r7").vector
            np.testing.assert_allclose(got, data[7] / np.linalg.norm(data[7]), rtol=1e-6, atol=1e-7)
            hit = db.search(data[7] * 10, k=1, include=["vector"])[0]
            assert hit.id == "r7" and hit.distance == pytest.approx(0, abs=1e-5)
            np.testing.assert_array_equal(hit.vector, got)

    def test_each_vector_is_stored_once(self, tmp_path):
        path = tmp_path / "db"
        with vjson.VectorDB(path, dimension=128, metric="l2") as db:
            db.insert_batch(ids(3000), clustered(3000, 128, 21))
            db.flush()
            graph = path / db._manifest["graph"]
        # the graph file holds links (288-byte records with the filter links, and two
        # 64 KiB-aligned sections), not a second copy of 512-byte rows
        assert graph.stat().st_size < 2 * 65536 + 3000 * 300
        assert os.path.getsize(path / "vectors-0.f32") == 3000 * 512

    def test_growing_vector_file_while_threads_search(self, tmp_path):
        """Each growth of the vector file moves its mapping; searches never see a stale one."""
        import threading

        data = clustered(12_000, 64, 22)
        with vjson.VectorDB(tmp_path / "db", dimension=64, metric="l2", durability="flush") as db:
            db.insert_batch(ids(200), data[:200])
            stop = threading.Event()
            errors: list = []

            def reader() -> None:
                while not stop.is_set():
                    try:
                        hit = db.search(data[150], k=1)[0]
                        if hit.id != "r150":
                            errors.append(hit.id)
                    except Exception as exc:  # noqa: BLE001 - reported below
                        errors.append(repr(exc))

            threads = [threading.Thread(target=reader) for _ in range(2)]
            for t in threads:
                t.start()
            for start in range(200, 12_000, 200):  # 1 MiB holds 4,096 rows of 256 B: it grows twice
                db.insert_batch(ids(200, start), data[start:start + 200])
            stop.set()
            for t in threads:
                t.join()
            assert errors == []
            assert db.search(data[11_999], k=1)[0].id == "r11999"

    def test_format_1_database_opens_and_compact_upgrades_it(self, tmp_path):
        """A database whose graph keeps its own vectors (format 1) still works; compact moves it to format 2's
        layout. (Its manifest says format 4 once a writer opened it: files older vjson cannot read.)"""
        import orjson

        path = tmp_path / "db"
        data = clustered(300, DIM, 23) + 2
        vjson.VectorDB(path, dimension=DIM).close()
        manifest = orjson.loads((path / "MANIFEST.json").read_bytes())
        manifest.update(format=1, external_vectors=False)
        (path / "MANIFEST.json").write_bytes(orjson.dumps(manifest))
        with vjson.VectorDB(path) as db:
            assert not db._gen.graph.external_vectors
            db.insert_batch(ids(300), data)
            np.testing.assert_array_equal(db.get("r3").vector, data[3])  # format 1 kept vectors as given
        with vjson.open(path) as db:
            assert db._manifest["format"] == 4 and not db._gen.graph.external_vectors
            assert db.search(data[42], k=1)[0].id == "r42"
            db.compact()
            assert db._manifest["format"] == 4 and db._gen.graph.external_vectors
        with vjson.open(path) as db:
            assert db._gen.graph.external_vectors and len(db) == 300
            assert db.search(data[42], k=1)[0].id == "r42"
            np.testing.assert_allclose(db.get("r3").vector, data[3] / np.linalg.norm(data[3]), rtol=1e-6)


def test_first_insert_after_a_clean_reopen_with_texts(tmp_path):
    """A clean open defers the id map; the first insert built it after adding its
    rows, reading the old view past its end (IndexError when the rows were a multiple of 8)."""
    data = clustered(17, DIM, 31)
    with vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="l2") as db:
        db.insert_batch(ids(16), data[:16], texts=[f"text {i}" for i in range(16)])
    with vjson.VectorDB(tmp_path / "db") as db:
        db.insert_batch(["r3", "new"], data[15:17])  # an upsert and a new id
        assert len(db) == 17 and sorted(db.ids()) == sorted(ids(16) + ["new"])
        np.testing.assert_array_equal(db.get("r3").vector, data[15])
    with vjson.VectorDB(tmp_path / "db") as db:
        assert len(db) == 17 and db.verify()["ok"]


def test_vector_checksums_after_a_partial_block_fills(tmp_path):
    """A checkpoint with a partial last block of 4,096 rows, then one after the block
    filled: the old partial checksum was reused as the full block's (verify() failed)."""
    data = clustered(4_200, DIM, 37)
    with vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="l2") as db:
        db.insert_batch(ids(4_000), data[:4_000])
        db.flush()
        db.insert_batch(ids(200, 4_000), data[4_000:])
        db.flush()
        assert db.verify()["ok"], db.verify()
    with vjson.VectorDB(tmp_path / "db") as db:
        report = db.verify()
        assert report["ok"], report


class TestLoneSurrogates:
    """A str holding a lone surrogate has no UTF-8 form: orjson raised a bare TypeError."""

    BAD = "a\ud800"

    @pytest.fixture
    def db(self, tmp_path):
        with vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="l2") as db:
            db.insert_batch(["x", "y"], clustered(2, DIM, 41), [{"k": 1}, None], ["hello", None])
            yield db

    def _unchanged(self, db):
        assert sorted(db.ids()) == ["x", "y"] and db.get_metadata("x") == {"k": 1}
        assert db.verify()["ok"]

    def test_ids(self, db):
        vec = clustered(1, DIM, 42)[0]
        calls = {
            "insert": lambda: db.insert(self.BAD, vec),
            "insert_batch": lambda: db.insert_batch(["z", self.BAD], np.stack([vec, vec])),
            "get": lambda: db.get(self.BAD),
            "get_batch": lambda: db.get_batch(["x", self.BAD]),
            "get_metadata": lambda: db.get_metadata(self.BAD),
            "delete": lambda: db.delete(["x", self.BAD]),
            "delete one": lambda: db.delete(self.BAD),
            "update_metadata": lambda: db.update_metadata(self.BAD, {"k": 2}),
        }
        for name, call in calls.items():
            with pytest.raises(vjson.InvalidIdError, match="lone surrogate"):
                call()
        self._unchanged(db)

    def test_texts_and_metadata(self, db):
        vec = clustered(1, DIM, 43)[0]
        with pytest.raises(vjson.InvalidInputError, match="lone surrogate"):
            db.insert("z", vec, text=self.BAD)
        with pytest.raises(vjson.InvalidInputError, match="lone surrogate"):
            db.insert_batch(["z", "w"], np.stack([vec, vec]), texts=["fine", self.BAD])
        for meta, where in [({"k": self.BAD}, "k"), ({self.BAD: 1}, "top"), ({"a": {"b": [1, "\udfff"]}}, r"a\.b\[1\]")]:
            with pytest.raises(vjson.InvalidMetadataError, match=rf"at {where} holds a lone surrogate"):
                db.insert("z", vec, meta)
            with pytest.raises(vjson.InvalidMetadataError, match="lone surrogate"):
                db.update_metadata("x", meta)
        self._unchanged(db)
        db.insert("z", vec, {"k": "caf\u00e9 \U0001f600"}, "na\u00efve")  # real non-ASCII text is fine
        assert db.get("z").metadata == {"k": "caf\u00e9 \U0001f600"} and db.get("z").text == "na\u00efve"
