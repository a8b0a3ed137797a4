"""LlamaIndex MetadataFilters on VJsonVectorStore equal LlamaIndex's own reference.

The reference is ``build_metadata_filter_fn`` as SimpleVectorStore runs it:
random nodes with random metadata go into both stores, random filters query
both, and the ids must be the same sets. Nested filters (which the reference
rejects) are checked against the reference applied leaf by leaf and combined
by the condition; a leaf where the reference raises TypeError (comparing
incomparable types) counts as not matching, as documented.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import LONG

pytest.importorskip("llama_index.core")

from llama_index.core.schema import TextNode  # noqa: E402
from llama_index.core.vector_stores import SimpleVectorStore  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

from vjson.errors import FilterError  # noqa: E402
from vjson.integrations.llama_index import VJsonVectorStore  # noqa: E402
from vjson.integrations.llama_index_filters import to_vjson_filter  # noqa: E402

DIM = 4
KEYS = ["a", "b", "tags"]
FILTER_KEYS = KEYS * 3 + ["missing"]
EXAMPLES = 2000 if LONG else 300

# small pools so that filters hit; no booleans (vjson does not equate True with 1: tested below)
INTS = st.sampled_from([-1, 0, 1, 2, 3])
FLOATS = st.sampled_from([0.5, 1.0, 2.5])
STRS = st.sampled_from(["", "a", "A", "ab", "Ba", "b", "x y"])
scalars = st.one_of(INTS, FLOATS, STRS)
values = st.one_of(
    st.none(), scalars, scalars,
    st.lists(STRS, max_size=3), st.lists(INTS, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "z"]), INTS, max_size=2),  # `contains` tests object keys
)
metadatas = st.one_of(st.dictionaries(st.sampled_from(KEYS), values, min_size=2, max_size=3),
                      st.dictionaries(st.sampled_from(KEYS), values, max_size=3))

OPS = list(FilterOperator)


@st.composite
def leaf_filters(draw):
    op = draw(st.sampled_from(OPS))
    key = draw(st.sampled_from(FILTER_KEYS))
    lists = st.one_of(st.lists(STRS, max_size=3), st.lists(INTS, max_size=3))
    if op in (FilterOperator.EQ, FilterOperator.NE):
        value = draw(st.one_of(st.none(), scalars, scalars, lists))
    elif op in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
        value = draw(scalars)
    elif op in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL):
        value = draw(lists)
    elif op == FilterOperator.CONTAINS:
        value = draw(st.one_of(STRS, INTS))
    elif op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        value = draw(STRS)
    else:  # IS_EMPTY
        value = None
    return MetadataFilter(key=key, operator=op, value=value)


conditions = st.sampled_from([FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT])
flat_filters = st.builds(MetadataFilters, filters=st.one_of(st.lists(leaf_filters(), min_size=1, max_size=3),
                                                          st.lists(leaf_filters(), max_size=0)), condition=conditions)
nested_filters = st.recursive(
    flat_filters,
    lambda inner: st.builds(MetadataFilters, filters=st.lists(st.one_of(leaf_filters(), inner), min_size=1,
                                                              max_size=3), condition=conditions),
    max_leaves=5,
)


def reference(filters, metadata):
    """The reference evaluator leaf by leaf, combined by the condition (also for nested groups)."""
    results = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            results.append(reference(f, metadata))
            continue
        fn = build_metadata_filter_fn(lambda _id: metadata, MetadataFilters(filters=[f]))
        try:
            results.append(fn("node"))
        except TypeError:  # the reference cannot compare these types: documented as no match
            results.append(False)
    if not results:
        return True
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return all(results)
    if condition == FilterCondition.OR:
        return any(results)
    return not any(results)


def _derived(metas, limit=24):
    """Single-operator filters built from values the metadata holds, so that they hit."""
    out = []
    for m in metas:
        for key, v in m.items():
            pool = [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, (int, float, str))]
            for x in pool[:2]:
                for op in OPS:
                    if op in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL):
                        value = [x]
                    elif op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
                        if not isinstance(x, str):
                            continue
                        value = x[:1].upper()
                    else:
                        value = x
                    out.append(MetadataFilters(filters=[MetadataFilter(key=key, operator=op, value=value)]))
            if isinstance(v, list):
                out.append(MetadataFilters(filters=[MetadataFilter(key=key, value=v)]))
    return out[:: max(1, len(out) // limit)]


def _share(expected, nodes):
    return "matches none" if not expected else "matches all" if len(expected) == len(nodes) else "matches some"


def _nodes(metas, seed=0):
    rng = np.random.default_rng(seed)
    # no text: these tests are about metadata, and skip the text index's commits
    return [TextNode(id_=f"n{i}", text="", metadata=m, embedding=rng.normal(size=DIM).tolist())
            for i, m in enumerate(metas)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = VJsonVectorStore(tmp_path_factory.mktemp("llama") / "db", dimension=DIM, durability="flush")
    yield s
    s.close()


PROP = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@PROP
@given(st.lists(metadatas, min_size=4, max_size=12), st.lists(flat_filters, min_size=1, max_size=4))
def test_flat_filters_equal_simple_vector_store(store, metas, filter_list):
    nodes = _nodes(metas)
    store.clear()
    store.add(nodes)
    simple = SimpleVectorStore()
    simple.add(nodes)
    q = nodes[0].embedding
    for filters in filter_list + _derived(metas):
        ours = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=len(nodes), filters=filters))
        try:
            theirs = simple.query(VectorStoreQuery(query_embedding=q, similarity_top_k=len(nodes), filters=filters))
        except TypeError:
            theirs = None  # the reference raised on some node: compared leaf by leaf below
        if theirs is not None:
            assert set(ours.ids) == set(theirs.ids), (filters, metas)
        expected = {n.node_id for n in nodes if reference(filters, n.metadata)}
        event(_share(expected, nodes))
        event("the reference raised" if theirs is None else "compared with SimpleVectorStore")
        assert set(ours.ids) == expected, (filters, metas)
        assert {n.node_id for n in store.get_nodes(filters=filters)} == expected


@settings(PROP, max_examples=EXAMPLES * 2 // 3)
@given(st.lists(metadatas, min_size=4, max_size=10), st.lists(nested_filters, min_size=1, max_size=3))
def test_nested_filters_equal_the_reference_per_leaf(store, metas, filter_list):
    nodes = _nodes(metas, seed=1)
    store.clear()
    store.add(nodes)
    leaves = [f.filters[0] for f in _derived(metas, limit=12)]
    conds = list(FilterCondition)
    combos = [MetadataFilters(filters=[leaves[i], MetadataFilters(filters=leaves[i + 1:i + 3], condition=conds[i % 3])],
                              condition=conds[(i + 1) % 3]) for i in range(0, len(leaves) - 2, 2)]
    for filters in filter_list + combos:
        expected = {n.node_id for n in nodes if reference(filters, n.metadata)}
        event(_share(expected, nodes))
        got = store.query(VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=len(nodes),
                                           filters=filters))
        assert set(got.ids) == expected, (filters, metas)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(metadatas, min_size=1, max_size=8), flat_filters)
def test_delete_nodes_by_filter_matches_the_reference(store, metas, filters):
    nodes = _nodes(metas, seed=2)
    store.clear()
    store.add(nodes)
    keep = {n.node_id for n in nodes if not reference(filters, n.metadata)}
    store.delete_nodes(filters=filters)
    assert set(store.client.ids()) == keep


def test_every_operator_and_condition_is_compiled():
    # a missing key matches only != and nin, whatever the operator
    nodes = _nodes([{}])
    for op in FilterOperator:
        value = None if op == FilterOperator.IS_EMPTY else (
            ["a"] if op in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL) else "a")
        flt = MetadataFilters(filters=[MetadataFilter(key="k", operator=op, value=value)])
        compiled = to_vjson_filter(flt)
        assert isinstance(compiled, dict) and compiled
        assert reference(flt, nodes[0].metadata) == (op in (FilterOperator.NE, FilterOperator.NIN,
                                                            FilterOperator.IS_EMPTY))
    for cond in FilterCondition:
        assert to_vjson_filter(MetadataFilters(filters=[MetadataFilter(key="k", value=1)], condition=cond))


def test_booleans_are_not_numbers(tmp_path):
    """The one deliberate difference: Python's True == 1 matches in the reference, not in vjson."""
    nodes = _nodes([{"flag": True}, {"flag": 1}])
    store = VJsonVectorStore(tmp_path / "db", dimension=DIM)
    store.add(nodes)
    flt = MetadataFilters(filters=[MetadataFilter(key="flag", value=1)])
    assert reference(flt, {"flag": True})
    assert [n.node_id for n in store.get_nodes(filters=flt)] == ["n1"]
    store.close()


@pytest.mark.parametrize("leaf,message", [
    (MetadataFilter(key="a.b", value=1), "cannot be filtered on"),
    (MetadataFilter(key="$a", value=1), "cannot be filtered on"),
    (MetadataFilter(key="a", operator=FilterOperator.GT, value=[1, 2]), "needs a number or a string"),
    (MetadataFilter(key="a", operator=FilterOperator.LT, value=None), "needs a number or a string"),
    (MetadataFilter(key="a", operator=FilterOperator.IN, value="abc"), "needs a list"),
    (MetadataFilter(key="a", operator=FilterOperator.ANY, value=3), "needs a list"),
    (MetadataFilter(key="a", operator=FilterOperator.TEXT_MATCH, value=3), "needs a string"),
])
def test_unsupported_filters_raise_filter_error(leaf, message):
    with pytest.raises(FilterError, match=message):
        to_vjson_filter(MetadataFilters(filters=[leaf]))
