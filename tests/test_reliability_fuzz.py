"""Bad input: hypothesis drives every public entry point with random arguments.

Vectors (NaN, inf, overflowing, wrong shapes, dtypes and nesting, empty, huge),
ids (non-str, empty, huge, duplicated), metadata (deep nesting, huge strings,
sets, bytes, objects, tuples, NaN, huge ints, non-str keys), filters (valid
and malformed) and text queries. Every call either succeeds or raises one of
the documented exceptions (a :class:`vjson.VJsonError` subclass), and a call
that raised leaves the database exactly as it was (ids, vectors bit for bit,
metadata, texts, counts). At the end ``verify()`` is clean.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vjson
from conftest import LONG

# numpy warns when a float64 such as 1e39 is cast to float32 on the way to InvalidVectorError
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning",
                                        "ignore:invalid value encountered in cast:RuntimeWarning")

DIM = 6
EXAMPLES = 600 if LONG else 120
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# ---------------------------------------------------------------- strategies

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
any_float = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e39, -1e300, 1e-45, -0.0])


class Opaque:
    pass


def vectors_strategy():
    good_one = st.lists(finite, min_size=DIM, max_size=DIM)
    shapes = st.sampled_from([(DIM,), (1, DIM), (3, DIM), (0, DIM), (DIM - 1,), (DIM + 1,), (2, DIM + 2),
                              (0,), (), (2, 3, DIM), (1, 1)])
    dtypes = st.sampled_from(["float32", "float64", "float16", "int8", "int64", "uint8", "bool", "complex64",
                              "object", "U3"])

    @st.composite
    def arrays(draw):
        shape = draw(shapes)
        dtype = draw(dtypes)
        n = int(np.prod(shape)) if shape else 1
        vals = draw(st.lists(any_float if draw(st.booleans()) else finite, min_size=n, max_size=n))
        try:
            return np.array(vals, dtype=np.float64).reshape(shape).astype(dtype)
        except (ValueError, OverflowError, TypeError):
            return np.array(vals).reshape(shape)

    ragged = st.lists(st.lists(finite, min_size=0, max_size=DIM + 2), min_size=0, max_size=3)
    junk = st.sampled_from([None, "vector", b"\x00" * 24, {"x": 1}, {1, 2}, 3.5, [None] * DIM, ["1"] * DIM,
                            [[1.0] * DIM, None], object()])
    return good_one | arrays() | ragged | junk | st.lists(any_float, min_size=DIM, max_size=DIM)


json_leaf = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | any_float
             | st.text(max_size=20) | st.sampled_from(["x" * 100_000, "\x00", "\ud800"[:0] + "é" * 10]))
non_json = st.sampled_from([{1, 2}, b"bytes", Opaque(), (1, 2), complex(1, 2), frozenset(), bytearray(b"x"),
                            np.int64(3), np.float32(1.5), np.array([1, 2])])


def deep(depth: int):
    doc: object = 1
    for _ in range(depth):
        doc = {"d": doc}
    return doc


metadata_values = st.recursive(json_leaf | non_json,
                               lambda kids: st.lists(kids, max_size=3)
                               | st.dictionaries(st.text(max_size=5) | st.integers(0, 3) | st.none(), kids,
                                                 max_size=3),
                               max_leaves=12)
metadata_strategy = (st.none() | st.dictionaries(st.text(max_size=6), metadata_values, max_size=4)
                     | st.sampled_from([deep(10), deep(63), deep(64), deep(65), deep(200)])
                     | non_json | st.lists(st.integers(), max_size=2) | st.text(max_size=3))

valid_id = st.text(min_size=1, max_size=12) | st.sampled_from(["r1", "r2", "r3", "new"])
ids_one = st.one_of(valid_id, valid_id, valid_id,
                    st.sampled_from(["", "x" * 100_000, "\x00"]) | st.integers() | st.none() | st.binary(max_size=4)
                    | st.just(Opaque()))

field = st.sampled_from(["a", "b", "n", "tags", "nested.k", "", "$a", "a..b", "missing"])
operators = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains",
                             "$size", "$not", "$regex", "$foo", "", "eq"])
filter_value = json_leaf | non_json | st.lists(json_leaf, max_size=3)


@st.composite
def filters_strategy(draw, depth=0):
    kind = draw(st.integers(0, 6 if depth < 2 else 3))
    if kind == 0:
        return {draw(field): draw(filter_value)}
    if kind == 1:
        return {draw(field): {draw(operators): draw(filter_value | st.booleans() | st.integers(-1, 3))}}
    if kind == 2:
        return draw(st.sampled_from([{}, None, [], "a", 3, {"$and": []}, {"$or": {}}, {"a": {"$in": 3}},
                                     {"a": {"$eq": 1, "b": 2}}, {"$not": []}, {1: 2}, {"a": {"$size": -1}}]))
    if kind == 3:
        return {"n": {"$gte": draw(st.integers(-5, 50)), "$lt": draw(st.integers(-5, 50))}}
    op = draw(st.sampled_from(["$and", "$or", "$nor", "$not"]))
    subs = draw(st.lists(filters_strategy(depth + 1), min_size=0, max_size=3))
    return {op: subs if op != "$not" else (subs[0] if subs else {})}


text_query = st.text(max_size=30) | st.sampled_from(['"unclosed', "a AND", "NOT x", "-x", "(", "title:x",
                                                     "x^", "*", "", "  ", "row:1", "foo:bar", "a OR OR b"])


# ---------------------------------------------------------------- the database under test

def snapshot(db: vjson.VectorDB) -> dict:
    recs = db.get_batch(db.ids()) if len(db) else []
    return {"records": {r.id: (r.vector.tobytes(), repr(r.metadata), r.text) for r in recs},
            "len": len(db), "count": db.count()}


@pytest.fixture(scope="module", params=["l2", "cosine"])
def db(tmp_path_factory, request):
    path = tmp_path_factory.mktemp(f"fuzz-{request.param}") / "db"
    database = vjson.VectorDB(path, dimension=DIM, metric=request.param)
    rng = np.random.default_rng(0)
    database.insert_batch([f"r{i}" for i in range(30)], rng.normal(size=(30, DIM)) + 0.1,
                          [{"a": i % 3, "n": i, "tags": ["x", "y"][: i % 3], "nested": {"k": i % 2}}
                           for i in range(30)],
                          [f"word{i % 5} common text" for i in range(30)])
    yield database
    report = database.verify()
    database.close()
    assert report["ok"], report["problems"]


OUTCOMES: dict[str, int] = {}


def refill(db: vjson.VectorDB) -> None:
    """Keep enough records around that deletes by filter and searches stay meaningful."""
    if len(db) < 20:
        start = OUTCOMES.get("refills", 0) * 100 + 1000
        OUTCOMES["refills"] = OUTCOMES.get("refills", 0) + 1
        rng = np.random.default_rng(start)
        db.insert_batch([f"r{i}" for i in range(start, start + 30)], rng.normal(size=(30, DIM)) + 0.1,
                        [{"a": i % 3, "n": i % 40, "tags": ["x"] * (i % 3)} for i in range(30)],
                        [f"word{i % 5} common text" for i in range(30)])


def attempt(db: vjson.VectorDB, call) -> object:
    """Run `call`; a VJsonError must leave the database unchanged; anything else fails."""
    refill(db)
    before = snapshot(db)
    try:
        out = call()
        OUTCOMES["ok"] = OUTCOMES.get("ok", 0) + 1
        return out
    except vjson.VJsonError as exc:
        OUTCOMES[type(exc).__name__] = OUTCOMES.get(type(exc).__name__, 0) + 1
        after = snapshot(db)
        assert after == before, "a call that raised changed the database"
        return None
    except Exception as exc:  # noqa: BLE001 - the finding itself
        raise AssertionError(f"undocumented exception {type(exc).__name__}: {exc!s:.300}") from exc


# ---------------------------------------------------------------- writes

@SETTINGS
@given(rid=ids_one, vector=vectors_strategy(), metadata=metadata_strategy,
       text=st.none() | st.text(max_size=20) | st.integers() | st.binary(max_size=3))
def test_insert(db, rid, vector, metadata, text):
    attempt(db, lambda: db.insert(rid, vector, metadata, text))


@SETTINGS
@given(ids=st.lists(ids_one, max_size=4) | ids_one, vectors=vectors_strategy(),
       metadatas=st.none() | st.lists(metadata_strategy, max_size=4) | metadata_strategy,
       texts=st.none() | st.lists(st.none() | st.text(max_size=8) | st.integers(), max_size=4) | st.text(max_size=3))
def test_insert_batch(db, ids, vectors, metadatas, texts):
    attempt(db, lambda: db.insert_batch(ids, vectors, metadatas, texts))


@SETTINGS
@given(rid=ids_one | st.sampled_from([f"r{i}" for i in range(30)]), metadata=metadata_strategy,
       merge=st.booleans() | st.none() | st.integers())
def test_update_metadata(db, rid, metadata, merge):
    attempt(db, lambda: db.update_metadata(rid, metadata, merge=merge))


@SETTINGS
@given(ids=st.none() | ids_one | st.lists(ids_one | st.sampled_from(["r1", "r2", "r3"]), max_size=3),
       flt=st.none() | filters_strategy())
def test_delete(db, ids, flt):
    attempt(db, lambda: db.delete(ids, filter=flt) if flt is not None else db.delete(ids))


# ---------------------------------------------------------------- reads

@SETTINGS
@given(vector=vectors_strategy(), k=st.integers(-2, 50) | st.sampled_from([0, None, 1.5, "3", True, 2**70]),
       flt=st.none() | filters_strategy(), ef=st.none() | st.integers(-1, 300) | st.sampled_from([0, 2.5]),
       include=st.sampled_from([("metadata",), ("vector", "text"), (), "metadata", ("bogus",), ["text"]]))
def test_search(db, vector, k, flt, ef, include):
    out = attempt(db, lambda: db.search(vector, k=k, filter=flt, ef_search=ef, include=include))
    if out is not None:
        assert len(out) <= k and len({h.id for h in out}) == len(out)
        assert all(h.id in db for h in out)
        assert all(math.isfinite(h.distance) for h in out)


@SETTINGS
@given(vectors=vectors_strategy(), k=st.integers(-1, 12), flt=st.none() | filters_strategy())
def test_batch_search(db, vectors, k, flt):
    attempt(db, lambda: db.batch_search(vectors, k=k, filter=flt))


@SETTINGS
@given(flt=filters_strategy() | st.none() | st.integers(), limit=st.none() | st.integers(-1, 5) | st.just("2"))
def test_get_and_count_by_filter(db, flt, limit):
    got = attempt(db, lambda: db.get(filter=flt, limit=limit))
    n = attempt(db, lambda: db.count(flt))
    if got is not None and n is not None and limit is None:
        assert len(got) == n


@SETTINGS
@given(ids=st.lists(ids_one | st.sampled_from(["r1", "r2"]), max_size=3) | ids_one)
def test_get_batch_and_lookups(db, ids):
    attempt(db, lambda: db.get_batch(ids))
    attempt(db, lambda: db.get(ids))
    attempt(db, lambda: db.get_metadata(ids))
    attempt(db, lambda: ids in db)


@SETTINGS
@given(query=text_query | st.integers() | st.none(), k=st.integers(-1, 20), flt=st.none() | filters_strategy(),
       syntax=st.booleans())
def test_text_search(db, query, k, flt, syntax):
    out = attempt(db, lambda: db.text_search(query, k=k, filter=flt, syntax=syntax))
    if out is not None:
        assert len(out) <= k and all(h.id in db for h in out)


@SETTINGS
@given(vector=vectors_strategy(), query=text_query | st.integers(), k=st.integers(-1, 15),
       flt=st.none() | filters_strategy(), fusion=st.sampled_from(["rrf", "weighted", "bogus", None]),
       alpha=st.floats(-1, 2) | st.sampled_from([math.nan, math.inf]),
       rrf_k=st.floats(-10, 100) | st.sampled_from([0, math.nan]))
def test_hybrid_search(db, vector, query, k, flt, fusion, alpha, rrf_k):
    out = attempt(db, lambda: db.hybrid_search(vector, query, k=k, filter=flt, fusion=fusion, alpha=alpha,
                                               rrf_k=rrf_k))
    if out is not None:
        assert len(out) <= k and all(h.id in db for h in out)
        assert all(math.isfinite(h.score) for h in out), out


def test_the_database_is_still_sound(db, capsys):
    """After all the fuzzing above (module scope), the database verifies and searches."""
    with capsys.disabled():
        print(f"\n[fuzz] {db.metric}: {len(db)} records left; call outcomes so far {dict(sorted(OUTCOMES.items()))}")
    report = db.verify()
    assert report["ok"], report["problems"]
    if len(db):
        rid = db.ids()[0]
        assert db.search(db.get(rid).vector, k=1, ef_search=500)[0].id == rid
