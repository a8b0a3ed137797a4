"""Segmented checkpoints (manifest format 4): what a close writes, and that every
record survives cycles of open / change / close, checked against a model kept
here in plain Python."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import vjson
from vjson import _checkpoint
from vjson._segments import plan_merge

DIM = 8
DATA = Path(__file__).parent / "data"


class Model:
    """What the database must hold: id -> (vector, metadata, text)."""

    def __init__(self, min_recall: float = 0.95) -> None:
        self.records: dict[str, tuple[np.ndarray, dict | None, str | None]] = {}
        self.min_recall = min_recall  # (codes walk a little less exactly: oversample 2 of 5 results)

    def check(self, db: vjson.VectorDB, rng: np.random.Generator) -> None:
        assert len(db) == len(self.records)
        assert sorted(db.ids()) == sorted(self.records)
        for rid, (vec, meta, text) in self.records.items():
            rec = db.get(rid)
            assert rec.id == rid and rec.metadata == meta and rec.text == text, rid
            np.testing.assert_allclose(rec.vector, vec / np.linalg.norm(vec), rtol=1e-5, atol=1e-6)
        assert rid_absent(db, "never-there")
        ids = list(self.records)
        if not ids:
            return
        matrix = np.stack([self.records[i][0] for i in ids])
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        hits = 0
        for q in rng.normal(size=(10, DIM)).astype(np.float32):
            qn = q / np.linalg.norm(q)
            truth = {ids[j] for j in np.argsort(-(matrix @ qn))[:5]}
            hits += len(truth & {r.id for r in db.search(q, 5, ef_search=200)})
        assert hits >= self.min_recall * 10 * min(5, len(ids))
        for g in range(3):
            want = sorted(i for i, (_, m, _) in self.records.items() if m is not None and m.get("g") == g)
            assert sorted(r.id for r in db.get(filter={"g": g})) == want
            assert db.count({"g": g}) == len(want)
        with_text = [i for i, (_, _, t) in self.records.items() if t is not None and "alpha" in t]
        found = {r.id for r in db.text_search("alpha", k=max(1, len(self.records)))}
        assert found == set(with_text)


def rid_absent(db: vjson.VectorDB, rid: str) -> bool:
    with pytest.raises(vjson.RecordNotFoundError):
        db.get(rid)
    return rid not in db


def change(db: vjson.VectorDB, model: Model, rng: np.random.Generator, step: int) -> None:
    """A random mix of inserts, replacements, deletes and metadata updates, applied to both."""
    n_new = int(rng.integers(1, 40))
    new_ids = [f"s{step}-{i}" for i in range(n_new)]
    existing = list(model.records)
    replaced = list(rng.choice(existing, size=min(len(existing), int(rng.integers(0, 6))), replace=False))
    batch = new_ids + replaced
    vecs = rng.normal(size=(len(batch), DIM)).astype(np.float32)
    metas = [{"g": int(rng.integers(0, 3)), "step": step} if rng.random() < 0.8 else None for _ in batch]
    texts = [f"alpha {step}" if rng.random() < 0.3 else (f"beta {step}" if rng.random() < 0.5 else None)
             for _ in batch]
    db.insert_batch(batch, vecs, metas, texts)
    for rid, v, m, t in zip(batch, vecs, metas, texts):
        model.records[rid] = (v, m, t)
    existing = list(model.records)
    for rid in rng.choice(existing, size=min(len(existing), int(rng.integers(0, 8))), replace=False).tolist():
        meta = {"g": int(rng.integers(0, 3)), "updated": step}
        db.update_metadata(rid, meta)
        model.records[rid] = (model.records[rid][0], meta, model.records[rid][2])
    existing = list(model.records)
    gone = rng.choice(existing, size=min(len(existing) - 1, int(rng.integers(0, 5))), replace=False).tolist()
    if gone:
        db.delete(gone)
        for rid in gone:
            del model.records[rid]


@pytest.mark.parametrize("seed, quantization", [(0, None), (1, None), (2, "int8"), (3, "float16")])
def test_open_change_close_cycles_keep_every_record(tmp_path, seed, quantization):
    rng = np.random.default_rng(seed)
    path = tmp_path / "db"
    model = Model(0.95 if quantization is None else 0.9)
    patched = 0
    with vjson.VectorDB(path, dimension=DIM, quantization=quantization) as db:
        change(db, model, rng, 0)
    for step in range(1, 14):
        with vjson.VectorDB(path) as db:
            model.check(db, rng)
            change(db, model, rng, step)
            if step == 7:
                db.compact()
            if step % 5 == 0:
                db.flush()  # a checkpoint mid-session, then more changes
                change(db, model, rng, 100 + step)
        m = json.loads((path / "MANIFEST.json").read_text())
        assert m["format"] == 4 and m["snapshot"] is None and m["segments"]
        patched += bool(m.get("graph_patch"))
        assert sum(s["rows"] for s in m["segments"]) == m["rows"]
        assert len(m["segments"]) <= 1 + int(np.log2(max(m["rows"], 2)))
        names = set(p.name for p in path.iterdir())
        assert {s["file"] for s in m["segments"]} <= names
        assert not [n for n in names if n.startswith("segment-") and n not in {s["file"] for s in m["segments"]}]
    with vjson.VectorDB(path) as db:
        model.check(db, rng)
        assert db.verify()["ok"], db.verify()
    with vjson.VectorDB(path, read_only=True) as db:
        model.check(db, rng)
    assert patched >= 1  # (quantized graphs too: their patches carry the new codes)


def test_merging_keeps_each_segment_bigger_than_the_newer_ones():
    assert plan_merge([1000, 10]) == 2
    assert plan_merge([1000, 10, 10]) == 1
    assert plan_merge([100, 50, 60]) == 0
    assert plan_merge([5]) == 1
    sizes: list[int] = []
    for _ in range(200):  # steady small inserts: few segments, each bigger than the rest after it
        sizes.append(7)
        start = plan_merge(sizes)
        sizes = sizes[:start] + ([sum(sizes[start:])] if start < len(sizes) else [])
        assert all(sizes[i] > sum(sizes[i + 1:]) for i in range(len(sizes) - 1))
    assert len(sizes) <= 1 + int(np.log2(sum(sizes)))


def written_since(path: Path, before: set[str]) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in path.iterdir() if p.is_file() and p.name not in before}


def test_a_close_after_a_small_change_writes_little_row_data(tmp_path):
    n = 20000
    rng = np.random.default_rng(5)
    path = tmp_path / "db"
    with vjson.VectorDB(path, dimension=DIM, metric="l2") as db:
        db.insert_batch([f"id{i}" for i in range(n)], rng.normal(size=(n, DIM)).astype(np.float32),
                        [{"g": i % 3, "pad": "x" * 40} for i in range(n)])
    full = {p.name: p.stat().st_size for p in path.iterdir() if p.is_file()}
    base_segment = sum(size for name, size in full.items() if name.startswith("segment-"))
    assert base_segment > n * 40  # the ids and metadata of every row

    def close_after(action) -> dict[str, int]:
        before = {p.name for p in path.iterdir()}
        with vjson.VectorDB(path) as db:
            action(db)
        return written_since(path, before)

    # 20 inserts: a segment of those rows only
    wrote = close_after(lambda db: db.insert_batch([f"new{i}" for i in range(20)],
                                                   rng.normal(size=(20, DIM)).astype(np.float32),
                                                   [{"g": 1, "pad": "y" * 40}] * 20))
    segments = {k: v for k, v in wrote.items() if k.startswith("segment-")}
    assert len(segments) == 1 and sum(segments.values()) < 20 * 200
    graph_file = next(p.stat().st_size for p in path.glob("graph-*.vjx"))
    assert not any(k.endswith(".vjx") for k in wrote)  # a patch: the new nodes and those they link to
    assert 0 < sum(v for k, v in wrote.items() if k.endswith(".vjp")) < graph_file / 20
    assert not any(k.startswith("filters-") for k in wrote)  # re-indexed at open instead
    delta = sum(v for k, v in wrote.items() if k.startswith("delta-"))
    assert delta < n // 8 + 4096  # the live bits, the vector checksums, nothing per row

    # 30 metadata updates: no segment, a delta holding them
    def update(db):
        for i in range(30):
            db.update_metadata(f"id{i * 7}", {"g": 2, "updated": True})
    wrote = close_after(update)
    assert not any(k.startswith("segment-") or k.endswith(".vjx") for k in wrote)
    assert not any(k.startswith("filters-") for k in wrote)
    assert sum(v for k, v in wrote.items() if k.startswith("delta-")) < n // 8 + 4096 + 30 * 64

    # 30 deletes: no segment, no filter file
    wrote = close_after(lambda db: db.delete([f"id{i}" for i in range(1000, 1030)]))
    assert not any(k.startswith(("segment-", "filters-")) for k in wrote)

    g = {f"id{i}": i % 3 for i in range(n)}
    g.update({f"new{i}": 1 for i in range(20)})
    g.update({f"id{i * 7}": 2 for i in range(30)})
    for i in range(1000, 1030):
        g.pop(f"id{i}")
    with vjson.VectorDB(path) as db:
        assert len(db) == len(g)
        assert db.get("id7").metadata == {"g": 2, "updated": True}
        assert db.get("new3").metadata == {"g": 1, "pad": "y" * 40}
        assert "id1005" not in db and "new19" in db
        for value in range(3):
            assert db.count({"g": value}) == sum(1 for v in g.values() if v == value)
        assert db.count({"updated": True}) == 30
        assert db.verify()["ok"]


def test_a_big_graph_is_saved_whole_rather_than_given_a_wide_patch(tmp_path, monkeypatch):
    """A wide patch (1 node in 64 or more) would make opening read all of level 0: from
    WHOLE_GRAPH_NODES on the close saves the graph whole instead; a narrow one stays a patch."""
    n = 4000
    rng = np.random.default_rng(8)
    path = tmp_path / "db"
    data = rng.normal(size=(n + 241, DIM)).astype(np.float32)
    with vjson.VectorDB(path, dimension=DIM, metric="l2") as db:
        db.insert_batch([f"id{i}" for i in range(n)], data[:n])

    def session(action) -> dict:
        with vjson.VectorDB(path) as db:
            action(db)
            wide = db._gen.graph.patch_is_wide
        m = json.loads((path / "MANIFEST.json").read_text())
        m["wide"] = wide
        return m

    monkeypatch.setattr(_checkpoint, "WHOLE_GRAPH_NODES", 1000)
    def delete_and_insert_one(db):
        db.delete([f"id{i}" for i in range(0, 50, 10)])
        db.insert("solo", data[n + 240])
        assert 0 < db._gen.graph.patch_nodes < n / 64

    m = session(delete_and_insert_one)
    assert not m["wide"] and m["graph_patch"] and m["graph"] == "graph-1.vjx"
    m = session(lambda db: db.insert_batch([f"id{i}" for i in range(n, n + 200)], data[n:n + 200]))
    assert m["wide"] and m["graph_patch"] is None and m["graph"] != "graph-1.vjx"
    monkeypatch.setattr(_checkpoint, "WHOLE_GRAPH_NODES", 10 ** 9)  # a small graph: the patch stays
    m = session(lambda db: db.insert_batch([f"id{i}" for i in range(n + 200, n + 240)], data[n + 200:n + 240]))
    assert m["wide"] and m["graph_patch"]
    live = [i for i in range(n + 240) if i % 10 or i >= 50]
    with vjson.VectorDB(path, read_only=True) as db:
        assert len(db) == len(live) + 1 and "id10" not in db and "id4239" in db
        assert db.search(data[n + 240], k=1)[0].id == "solo"
        for i in (1, n + 7, n + 239):
            assert db.search(data[i], k=1)[0].id == f"id{i}"
        assert db.verify()["ok"]


def test_the_filter_file_is_rewritten_once_enough_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(_checkpoint, "FILTERS_REWRITE_FRACTION", 0.1)
    rng = np.random.default_rng(2)
    path = tmp_path / "db"
    with vjson.VectorDB(path, dimension=DIM) as db:
        db.insert_batch([f"a{i}" for i in range(500)], rng.normal(size=(500, DIM)).astype(np.float32),
                        [{"g": i % 3} for i in range(500)])
    first = json.loads((path / "MANIFEST.json").read_text())["filters"]
    for step in range(8):
        with vjson.VectorDB(path) as db:
            for i in range(10):
                db.update_metadata(f"a{step * 10 + i}", {"g": 5})
        m = json.loads((path / "MANIFEST.json").read_text())
        if step < 4:  # 10..40 of 500 changed: named again
            assert m["filters"] == first
        with vjson.VectorDB(path) as db:
            assert db.count({"g": 5}) == 10 * (step + 1)
    assert m["filters"] != first  # past 50 (10%): rewritten


def test_a_database_of_manifest_format_3_opens_and_is_upgraded(tmp_path):
    """tests/data/db-format3 was written by the build before segmented checkpoints:
    300 rows (rows r0..r299 from db-format3.vectors.npy[:300], metadata {"i", "even",
    "tag"}, texts "text number {i} word{i % 7}"), r0, r4, .. r36 deleted, r1, r5, ..
    r37 given {"i", "even": False, "tag": "updated"}, r290..r299 replaced by rows
    300..309 ({"i", "replaced": True}, "replaced {i}"), then a close; then, in the
    log only (the process died): n0..n19 from rows 310..329 ({"i": 1000 + i}, no
    text), r2 and r3 deleted, r5 given {"i": 5, "late": True}."""
    folder = tmp_path / "old"
    shutil.copytree(DATA / "db-format3", folder)
    vecs = np.load(DATA / "db-format3.vectors.npy")
    want: dict[str, tuple[int, dict, str | None]] = {}
    for i in range(300):
        want[f"r{i}"] = (i, {"i": i, "even": i % 2 == 0, "tag": ["a", "b", "c"][i % 3]}, f"text number {i} word{i % 7}")
    for i in range(0, 40, 4):
        del want[f"r{i}"]
    for i in range(1, 40, 4):
        want[f"r{i}"] = (i, {"i": i, "even": False, "tag": "updated"}, want[f"r{i}"][2])
    for k, i in enumerate(range(290, 300)):
        want[f"r{i}"] = (300 + k, {"i": i, "replaced": True}, f"replaced {i}")
    for i in range(20):
        want[f"n{i}"] = (310 + i, {"i": 1000 + i}, None)
    del want["r2"], want["r3"]
    want["r5"] = (5, {"i": 5, "late": True}, want["r5"][2])

    def check(db: vjson.VectorDB) -> None:
        assert len(db) == len(want) == 308
        for rid, (row, meta, text) in want.items():
            rec = db.get(rid)
            assert rec.metadata == meta and rec.text == text, rid
            np.testing.assert_allclose(rec.vector, vecs[row] / np.linalg.norm(vecs[row]), rtol=1e-5, atol=1e-6)
        assert "r0" not in db and "r2" not in db
        names = list(want)
        matrix = np.stack([vecs[want[i][0]] for i in names])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        for q in vecs[330:340]:
            truth = [names[j] for j in np.argsort(-(matrix @ (q / np.linalg.norm(q))))[:5]]
            assert [r.id for r in db.search(q, 5, ef_search=300)] == truth
        assert db.count({"tag": "updated"}) == 9  # r5 was updated again
        assert {r.id for r in db.text_search("replaced", k=50)} == {f"r{i}" for i in range(290, 300)}

    with vjson.VectorDB(folder, read_only=True) as db:  # a reader leaves it as it is
        check(db)
    assert json.loads((folder / "MANIFEST.json").read_text())["format"] == 3
    with vjson.VectorDB(folder) as db:
        check(db)
        db.insert("later", vecs[335], {"i": -1}, "alpha")
        want["later"] = (335, {"i": -1}, "alpha")
        want.pop("r7")
        db.delete("r7")
    m = json.loads((folder / "MANIFEST.json").read_text())
    assert m["format"] == 4 and m["snapshot"] is None and len(m["segments"]) == 1
    assert not list(folder.glob("snapshot-*"))
    with vjson.VectorDB(folder) as db:
        check(db)
        assert db.verify()["ok"], db.verify()


def test_writes_without_texts_need_no_text_resync_at_open(tmp_path, monkeypatch):
    """The text index's own marker lags behind writes without texts; the checkpoint's
    text_seq says it is complete, so a clean open does not compare it with every row."""
    from vjson import _opening

    path = tmp_path / "db"
    rng = np.random.default_rng(9)
    with vjson.VectorDB(path, dimension=DIM) as db:
        db.insert_batch(["t1", "t2"], rng.normal(size=(2, DIM)).astype(np.float32), texts=["alpha one", "beta"])
    with vjson.VectorDB(path) as db:
        db.insert_batch([f"p{i}" for i in range(50)], rng.normal(size=(50, DIM)).astype(np.float32))
        db.update_metadata("t1", {"g": 1})

    def no_resync(*args, **kwargs):
        raise AssertionError("a clean open resynced the text index")
    monkeypatch.setattr(_opening, "resync_text", no_resync)
    with vjson.VectorDB(path) as db:
        assert [r.id for r in db.text_search("alpha")] == ["t1"] and len(db) == 52
    monkeypatch.undo()
    db = vjson.VectorDB(path)
    db.insert("t3", rng.normal(size=DIM).astype(np.float32), text="alpha three")
    db._release_files()  # dies before its checkpoint: the text index is checked against the log's rows
    db._closed = True
    with vjson.VectorDB(path) as db:
        assert sorted(r.id for r in db.text_search("alpha")) == ["t1", "t3"]
