"""Tests of MetadataIndex: persistence, bulk writes, compaction, scale."""

from __future__ import annotations

import io
import random
import time

import numpy as np
import pytest

import vjson.metadata_index as mi
from vjson.errors import CorruptionError, FormatVersionError, InvalidInputError, InvalidMetadataError
from vjson.filters import compile_filter
from vjson.metadata_index import MetadataIndex

FILTERS = [
    {},
    {"pos": "n"},
    {"pos": {"$in": ["v", "adj"]}},
    {"n_words": {"$gte": 5}},
    {"$and": [{"pos": "n"}, {"n_words": {"$gte": 5}}]},
    {"score": {"$gt": 0.5, "$lte": 0.9}},
    {"tags": "t3"},
    {"tags": {"$contains": "t1"}},
    {"tags": {"$size": 2}},
    {"tags": {"$nin": ["t0", "t1"]}},
    {"src.lang": {"$ne": "en"}},
    {"src.lang": None},
    {"src": {"lang": "nl", "page": 3}},
    {"flag": True},
    {"flag": {"$exists": False}},
    {"title": {"$contains": "ab"}},
    {"title": {"$gt": "m"}},
    {"$or": [{"pos": "v"}, {"$not": {"score": {"$lt": 0.2}}}]},
    {"$nor": [{"tags": ["t0", "t1"]}, {"pos": None}]},
]


def make_doc(rng: random.Random, i: int) -> dict | None:
    if rng.random() < 0.05:
        return None
    d: dict = {"pos": rng.choice(["n", "v", "adj", None]), "n_words": rng.randint(0, 9)}
    if rng.random() < 0.7:
        d["score"] = rng.random()
    if rng.random() < 0.6:
        d["tags"] = [f"t{rng.randint(0, 4)}" for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.5:
        d["src"] = {"lang": rng.choice(["en", "nl", None]), "page": rng.randint(0, 4)}
    if rng.random() < 0.3:
        d["flag"] = rng.choice([True, False, 1, 0])
    if rng.random() < 0.4:
        d["title"] = "".join(rng.choice("abcmxyz") for _ in range(rng.randint(0, 6)))
    if rng.random() < 0.05:
        d["odd.key"] = {"$weird": [1, {"": None}]}
    return d


def reference(docs_by_row: dict, n: int, flt) -> np.ndarray:
    cf = compile_filter(flt)
    out = np.zeros(n, bool)
    for r, d in docs_by_row.items():
        out[r] = cf.matches(d)
    return out


def check_all(ix: MetadataIndex, model: dict, n: int) -> None:
    for flt in FILTERS:
        assert ix.evaluate(flt, n_rows=n).tolist() == reference(model, n, flt).tolist(), flt


def dumped(ix: MetadataIndex) -> bytes:
    buf = io.BytesIO()
    ix.dump(buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# dump / load
# ---------------------------------------------------------------------------


def test_dump_load_round_trip(tmp_path):
    rng = random.Random(1)
    ix = MetadataIndex()
    model = {}
    for i in range(3000):
        d = make_doc(rng, i)
        ix.set(i, d)
        model[i] = d
    for r in rng.sample(range(3000), 300):  # overwrites and removes before the dump
        d = make_doc(rng, r)
        ix.set(r, d)
        model[r] = d
    for r in rng.sample(range(3000), 200):
        ix.remove(r)
        model.pop(r, None)
    ix.set(3100, {"pos": "n", "n_words": 7})  # leaves a gap of never-set rows
    model[3100] = {"pos": "n", "n_words": 7}
    path = tmp_path / "meta.idx"
    with open(path, "wb") as f:
        ix.dump(f)
    with open(path, "rb") as f:
        jx = MetadataIndex.load(f)
    assert jx.n_rows == ix.n_rows == 3101
    assert jx.n_live == ix.n_live == len(model)
    for r in range(3105):
        assert jx.get(r) == model.get(r)
    check_all(jx, model, 3101)
    assert sorted(jx.paths()) == sorted(ix.paths())
    # the loaded index keeps working under writes
    for r in list(range(0, 3101, 7)):
        d = make_doc(rng, r)
        jx.set(r, d)
        model[r] = d
    jx.remove_many(list(range(1, 3101, 11)))
    for r in range(1, 3101, 11):
        model.pop(r, None)
    jx.set_many([3200, 3201], [{"pos": "v"}, None])
    model.update({3200: {"pos": "v"}, 3201: None})
    check_all(jx, model, 3205)
    # and a second round trip equals the first index's answers
    kx = MetadataIndex.load(io.BytesIO(dumped(jx)))
    check_all(kx, model, 3205)


def test_index_reading_its_owners_documents_filters_the_same_and_saves_smaller():
    rng = random.Random(5)
    docs = [make_doc(rng, i) for i in range(2000)]
    full, lean = MetadataIndex(), MetadataIndex(documents=docs)
    for ix in (full, lean):
        ix.set_many(list(range(2000)), docs)
        ix.remove_many(list(range(0, 2000, 9)))
    model = {r: d for r, d in enumerate(docs) if r % 9}
    check_all(lean, model, 2000)  # object and array equality read the owner's rows
    assert lean.get(1) == docs[1] and lean.get(9) is None
    lean_bytes, full_bytes = dumped(lean), dumped(full)
    assert len(lean_bytes) < len(full_bytes) - sum(len(str(d)) for d in model.values()) // 2
    with pytest.raises(InvalidInputError, match="documents"):
        MetadataIndex.load(io.BytesIO(lean_bytes))
    again = MetadataIndex.load(io.BytesIO(lean_bytes), documents=docs)
    assert not again.keep_documents
    check_all(again, model, 2000)
    docs[5] = {"pos": "zz"}
    again.set(5, docs[5])
    model[5] = docs[5]
    check_all(again, model, 2000)
    # an index saved with its documents lets go of them when given the owner's
    loaded = MetadataIndex.load(io.BytesIO(full_bytes), documents=docs)
    loaded.set(5, docs[5])
    check_all(loaded, model, 2000)
    assert len(dumped(loaded)) == len(dumped(again))


def test_rows_saved_in_4_bytes_and_files_with_8_byte_rows_still_load(monkeypatch):
    rng = random.Random(6)
    docs = {i: make_doc(rng, i) for i in range(1500)}
    ix = MetadataIndex()
    ix.set_many(list(docs), list(docs.values()))
    narrow = dumped(ix)
    monkeypatch.setattr(mi, "_U32_ROWS", 0)  # as files were written before
    wide = dumped(ix)
    assert len(narrow) < len(wide) - 4 * 1500
    for data in (narrow, wide):
        check_all(MetadataIndex.load(io.BytesIO(data)), docs, 1500)


def test_empty_index_round_trip():
    ix = MetadataIndex.load(io.BytesIO(dumped(MetadataIndex())))
    assert ix.n_rows == 0
    assert ix.evaluate({"a": 1}).shape == (0,)
    assert ix.evaluate({"a": {"$ne": 1}}, n_rows=3).tolist() == [False] * 3
    ix.set(1, {"a": 1})
    assert ix.evaluate({"a": 1}).tolist() == [False, True]


def _sample_dump() -> bytes:
    rng = random.Random(2)
    ix = MetadataIndex()
    ix.set_many(list(range(500)), [make_doc(rng, i) for i in range(500)])
    return dumped(ix)


def test_corrupted_dump_raises(tmp_path):
    data = _sample_dump()
    MetadataIndex.load(io.BytesIO(data))  # sanity: intact data loads
    cases = {
        "empty": b"",
        "magic": b"XXXXXXXX" + data[8:],
        "truncated_header": data[:30],
        "truncated_payload": data[:-10],
        "extra_bytes": data + b"\0",
        "header_flip": data[:25] + bytes([data[25] ^ 0x01]) + data[26:],
        "payload_flip": data[:-50] + bytes([data[-50] ^ 0x40]) + data[-49:],
        "payload_flip_middle": data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF])
        + data[len(data) // 2 + 1:],
        "hlen_huge": data[:8] + (2 ** 40).to_bytes(8, "little") + data[16:],
    }
    for name, bad in cases.items():
        with pytest.raises(CorruptionError):
            MetadataIndex.load(io.BytesIO(bad))
    # the message names the file
    p = tmp_path / "broken.idx"
    p.write_bytes(cases["payload_flip"])
    with open(p, "rb") as f, pytest.raises(CorruptionError, match="broken.idx"):
        MetadataIndex.load(f)


def _rewrite_header(data: bytes, edit) -> bytes:
    """Re-encode the header with valid checksums (simulates consistent-looking
    but wrong content, e.g. a bug or a newer writer)."""
    import json
    import zlib

    hlen = int.from_bytes(data[8:16], "little")
    header = json.loads(data[20: 20 + hlen])
    payload = bytearray(data[20 + hlen:])
    edit(header, payload)
    header["payload_len"] = len(payload)
    header["payload_crc"] = zlib.crc32(bytes(payload))
    hb = json.dumps(header).encode()
    return data[:8] + len(hb).to_bytes(8, "little") + zlib.crc32(hb).to_bytes(4, "little") + hb + bytes(payload)


def test_inconsistent_contents_raise_corruption():
    data = _sample_dump()

    def newer(h, p):
        h["version"] = 99

    with pytest.raises(FormatVersionError):
        MetadataIndex.load(io.BytesIO(_rewrite_header(data, newer)))

    def sect(h, name):
        return next(s for s in h["sections"] if s["name"] == name)

    def bad_row(h, p):
        s = sect(h, "p0.row")
        p[s["offset"]: s["offset"] + 8] = (10 ** 6).to_bytes(8, "little")

    def bad_kind(h, p):
        s = sect(h, "p0.kind")
        p[s["offset"]] = 0

    def missing_section(h, p):
        h["sections"] = [s for s in h["sections"] if s["name"] != "doc_off"]

    def bad_dtype(h, p):
        sect(h, "p1.row")["dtype"] = "<f8"

    def out_of_bounds(h, p):
        sect(h, "doc_blob")["count"] = len(p) * 2

    def bad_live(h, p):
        p[sect(h, "live")["offset"]] = 7

    def bad_strs(h, p):
        s = sect(h, "p0.strs")
        p[s["offset"]] = ord("{")

    for edit in (bad_row, bad_kind, missing_section, bad_dtype, out_of_bounds, bad_live, bad_strs):
        with pytest.raises(CorruptionError):
            MetadataIndex.load(io.BytesIO(_rewrite_header(data, edit)))


# ---------------------------------------------------------------------------
# bulk writes, overwrites, errors
# ---------------------------------------------------------------------------


def test_set_many_equals_repeated_set():
    rng = random.Random(3)
    rows = [rng.randrange(0, 800) for _ in range(1500)]  # with repeats: the last one wins
    docs = [make_doc(rng, r) for r in rows]
    a = MetadataIndex()
    for r, d in zip(rows, docs):
        a.set(r, d)
    b = MetadataIndex()
    b.set_many(rows, docs)
    c = MetadataIndex()  # in chunks, numpy row array
    for i in range(0, len(rows), 100):
        c.set_many(np.array(rows[i: i + 100], dtype=np.int32), docs[i: i + 100])
    model = dict(zip(rows, docs))
    n = max(rows) + 1
    for ix in (a, b, c):
        assert ix.n_rows == n and ix.n_live == len(model)
        check_all(ix, model, n)
        assert [ix.get(r) for r in range(n)] == [model.get(r) for r in range(n)]
    assert dumped(b) == dumped(c)


def test_failed_writes_leave_index_unchanged():
    ix = MetadataIndex()
    ix.set_many([0, 1], [{"a": 1}, {"a": "x"}])
    before = dumped(ix)
    with pytest.raises(InvalidMetadataError):
        ix.set_many([1, 2, 3], [{"a": 2}, {"a": {"b": object()}}, {"a": 3}])
    with pytest.raises(InvalidMetadataError):
        ix.set(0, {"a": [1, {2: 3}]})
    with pytest.raises(InvalidMetadataError):
        ix.set(0, {"z": 1, 5: 2})
    with pytest.raises(InvalidMetadataError):
        ix.set(0, ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidMetadataError):
        ix.set(0, {"a": np.float64(1.0) if False else b"bytes"})
    with pytest.raises(InvalidInputError):
        ix.set(-1, {"a": 1})
    with pytest.raises(InvalidInputError):
        ix.set("3", {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ix.set_many([1, 2], [{"a": 1}])
    with pytest.raises(InvalidInputError):
        ix.set_many([1.5], [{"a": 1}])
    with pytest.raises(InvalidInputError):
        ix.remove_many([-2])
    assert dumped(ix) == before
    assert ix.evaluate({"a": {"$exists": True}}).tolist() == [True, True]
    assert ix.evaluate({"a": {"$in": [2, 3, 1]}}).tolist() == [True, False]


def test_overwrite_remove_and_rows():
    ix = MetadataIndex()
    assert ix.n_rows == 0
    ix.set(5, {"g": "jazz", "t": ["a"]})
    assert ix.n_rows == 6
    ix.set(5, {"g": "rock"})  # replaces everything the row held
    assert ix.evaluate({"g": "jazz"}).sum() == 0
    assert ix.evaluate({"t": {"$exists": True}}).sum() == 0
    assert ix.evaluate({"g": "rock"}).tolist() == [False] * 5 + [True]
    ix.set(5, {"g": "rock"})  # repeated set of the same doc
    assert ix.count({"g": "rock"}) == 1
    ix.remove(5)
    ix.remove(5)  # idempotent
    ix.remove(100)  # beyond n_rows: no-op, n_rows unchanged
    assert ix.n_rows == 6 and ix.n_live == 0
    assert ix.count({}) == 0 and ix.count({"g": {"$ne": "x"}}) == 0
    assert ix.get(5) is None
    ix.set(5, {"g": "pop"})
    assert ix.count({"g": "pop"}) == 1 and ix.count({"g": "rock"}) == 0
    m = ix.evaluate({"g": {"$ne": "x"}}, n_rows=10)
    assert m.tolist() == [False] * 5 + [True] + [False] * 4
    assert ix.evaluate({}, n_rows=2).shape == (6,)  # never shorter than n_rows


def test_compaction_reclaims_dead_entries(monkeypatch):
    monkeypatch.setattr(mi, "_MIN_COMPACT", 64)
    ix = MetadataIndex()
    ix.set_many(list(range(100)), [{"s": f"v{i}", "tags": ["a", "b", "c"]} for i in range(100)])
    ix.count({})
    for rep in range(40):  # overwrite every row many times with new strings
        ix.set_many(list(range(100)), [{"s": f"r{rep}-{i}", "tags": [rep]} for i in range(100)])
        ix.count({"s": "x"})
    p = ix._paths["s"]
    assert p.n <= 4 * 100 + 64  # dead entries were dropped
    assert len(p.strs) <= 4 * 100 + 1024  # ... and unused strings
    assert ix.count({"s": "r39-7"}) == 1 and ix.count({"s": "v7"}) == 0
    assert ix.count({"tags": 39}) == 100 and ix.count({"tags": "a"}) == 0
    assert ix.count({"s": {"$gte": "r39-", "$lt": "r39-9"}}) == 89
    # removing most rows triggers compaction too, and drops empty paths
    ix.remove_many(list(range(100)))
    ix.set(0, {"other": 1})
    ix.count({})
    assert "s" not in ix._paths
    assert ix.count({"s": {"$exists": False}}) == 1


# ---------------------------------------------------------------------------
# scale: vectorised evaluation
# ---------------------------------------------------------------------------


def test_large_index_evaluates_vectorised(monkeypatch):
    n = 200_000
    rs = np.random.default_rng(0)
    pos = rs.choice(np.array(["n", "v", "adj", "adv"], dtype=object), n)
    n_words = rs.integers(0, 20, n)
    score = rs.random(n)
    tag_a = rs.integers(0, 50, n)
    docs = [
        {"pos": p, "n_words": int(w), "score": float(s), "tags": [f"t{t}", "all"], "meta": {"lang": "en"}}
        for p, w, s, t in zip(pos.tolist(), n_words.tolist(), score.tolist(), tag_a.tolist())
    ]
    ix = MetadataIndex()
    ix.set_many(np.arange(n), docs)
    ix.remove_many(np.arange(0, n, 10))  # dead rows must not match
    ix.set(1, {"pos": "n", "n_words": 100})
    alive = np.ones(n, bool)
    alive[::10] = False
    pos_n = (pos == "n") & alive
    pos_n[1] = True
    wide = n_words >= 5
    wide[1] = True

    # evaluation must not run per-record Python code: count calls of the
    # per-value helpers and of the fallback document access
    calls = {"n": 0}
    real_json_class, real_doc = mi.json_class, MetadataIndex._doc

    def counting_json_class(v):
        calls["n"] += 1
        return real_json_class(v)

    def counting_doc(self, row):
        calls["n"] += 1
        return real_doc(self, row)

    monkeypatch.setattr(mi, "json_class", counting_json_class)
    monkeypatch.setattr(MetadataIndex, "_doc", counting_doc)
    ix.count({})  # commit staged writes outside the timed part
    t0 = time.perf_counter()
    m = ix.evaluate({"$and": [{"pos": "n"}, {"n_words": {"$gte": 5}}]})
    assert np.array_equal(m, pos_n & wide)
    sc_mask = (score > 0.25) & (score <= 0.5) & alive
    sc_mask[1] = False
    assert np.array_equal(ix.evaluate({"score": {"$gt": 0.25, "$lte": 0.5}}), sc_mask)
    assert ix.count({"tags": "t7"}) == int(((tag_a == 7) & alive).sum()) - int(tag_a[1] == 7)
    assert ix.count({"tags": {"$ne": "all"}}) == 1
    assert ix.count({"pos": {"$in": ["v", "adv"]}}) == int((np.isin(pos, ["v", "adv"]) & alive).sum()) - int(
        pos[1] in ("v", "adv"))
    assert ix.count({"meta.lang": {"$exists": False}}) == 1
    assert ix.count({"pos": {"$gt": "b"}}) == int(((pos == "n") | (pos == "v")).__and__(alive).sum()) + (
        0 if pos[1] in ("n", "v") else 1)
    elapsed = time.perf_counter() - t0
    assert calls["n"] < 50, calls  # O(filter size), not O(rows)
    assert elapsed < 5.0  # generous: seconds would mean a per-row loop


def test_aligned_fast_path_stays_correct():
    ix = MetadataIndex()
    ix.set_many(range(6), [{"g": i % 3} for i in range(6)])
    ix.set(6, {"g": 0})
    ix.count({})
    assert ix._paths["g"].aligned  # entry i is row i
    assert ix.evaluate({"g": 0}).tolist() == [True, False, False, True, False, False, True]
    ix.remove(3)  # still aligned, the dead entry is masked by its generation
    assert ix.evaluate({"g": 0}).tolist() == [True, False, False, False, False, False, True]
    assert ix.evaluate({"g": {"$ne": 0}}, n_rows=8).tolist() == [False, True, True, False, True, True, False, False]
    ix.set(1, {"g": 0})  # a rewrite appends out of order: scatter path
    ix.count({})
    assert not ix._paths["g"].aligned
    assert ix.evaluate({"g": 0}).tolist() == [True, True, False, False, False, False, True]
    ix.set(3, {"g": 2})
    ix.compact()  # entries re-sorted by row: aligned again
    assert ix._paths["g"].aligned
    assert ix.evaluate({"g": {"$in": [0, 2]}}).tolist() == [True, True, True, True, False, True, True]
    ix.set(8, {"g": 0})  # a gap (row 7 never set) breaks alignment
    assert ix.evaluate({"g": 0}).tolist() == [True, True, False, False, False, False, True, False, True]
    assert not ix._paths["g"].aligned
    jx = MetadataIndex.load(io.BytesIO(dumped(ix)))
    assert jx.evaluate({"g": 0}).tolist() == ix.evaluate({"g": 0}).tolist()
