"""Tests of vjson.fusion: reciprocal rank fusion and weighted score fusion.

Expected scores are worked out by hand in the comments, so the arithmetic is
checked against numbers that do not come from the code under test.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vjson.errors import InvalidInputError
from vjson.fusion import FusedHit, rrf, weighted


def rows_of(hits: list[FusedHit]) -> list[int]:
    return [h.row for h in hits]


# --------------------------------------------------------------------- rrf


def test_rrf_hand_computed_k0() -> None:
    # k = 0: score = sum 1/rank.
    #   row 1: A rank 1            -> 1
    #   row 2: A rank 2            -> 1/2
    #   row 3: A rank 3, B rank 1  -> 1/3 + 1 = 4/3
    #   row 4: B rank 2            -> 1/2
    # 2 and 4 tie at 1/2 with the same best rank (2): smaller row id first.
    hits = rrf([[1, 2, 3], [3, 4]], k=0)
    assert rows_of(hits) == [3, 1, 2, 4]
    assert [h.score for h in hits] == pytest.approx([4 / 3, 1.0, 0.5, 0.5], abs=1e-15)
    assert hits[0].ranks == (3, 1)
    assert hits[1].ranks == (1, None)
    assert hits[3].ranks == (None, 2)
    assert all(h.scores == (None, None) or None in h.scores for h in hits)


def test_rrf_hand_computed_k60() -> None:
    # A = [10, 20, 30], B = [20, 40], k = 60
    #   20: 1/61 + 1/62 ; 10: 1/61 ; 40: 1/62 ; 30: 1/63
    hits = rrf([[10, 20, 30], [20, 40]])
    assert rows_of(hits) == [20, 10, 40, 30]
    expected = {20: 1 / 61 + 1 / 62, 10: 1 / 61, 40: 1 / 62, 30: 1 / 63}
    for h in hits:
        assert h.score == pytest.approx(expected[h.row], rel=1e-15)


def test_rrf_weights() -> None:
    # weights (2, 1), k = 1, A = [7, 8], B = [8, 9]
    #   7: 2/2 = 1 ; 8: 2/3 + 1/2 = 7/6 ; 9: 1/3
    hits = rrf([[7, 8], [8, 9]], k=1, weights=[2, 1])
    assert rows_of(hits) == [8, 7, 9]
    assert [h.score for h in hits] == pytest.approx([7 / 6, 1.0, 1 / 3], rel=1e-15)
    # A zero weight removes a side's influence but keeps its rows (score 0).
    hits = rrf([[7, 8], [9]], k=1, weights=[1, 0])
    assert rows_of(hits) == [7, 8, 9]
    assert hits[2].score == 0.0 and hits[2].ranks == (None, 1)


def test_rrf_tie_broken_by_best_rank_then_row() -> None:
    # k = 0. Row 100: A rank 2 -> 1/2. Row 50: A rank 3 + B rank 6 -> 1/3 + 1/6 = 1/2.
    # Equal scores; row 100's best rank (2) beats row 50's (3) although 50 < 100.
    a = [1, 100, 50]
    b = [11, 12, 13, 14, 15, 50]
    hits = rrf([a, b], k=0)
    by_row = {h.row: h for h in hits}
    assert by_row[100].score == by_row[50].score == 0.5
    order = rows_of(hits)
    assert order.index(100) < order.index(50)
    # And with equal best ranks, the smaller row id wins.
    hits = rrf([[5, 9], [9, 5]], k=0)
    assert hits[0].score == hits[1].score
    assert rows_of(hits) == [5, 9]


def test_rrf_duplicates_count_once_at_first_position() -> None:
    # k = 0, A = [5, 5, 6]: row 5 has rank 1 (once), row 6 keeps its position 3.
    hits = rrf([[5, 5, 6]], k=0)
    assert rows_of(hits) == [5, 6]
    assert hits[0].score == 1.0 and hits[0].ranks == (1,)
    assert hits[1].score == pytest.approx(1 / 3) and hits[1].ranks == (3,)


def test_rrf_empty_and_one_sided() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []
    hits = rrf([[4, 2], []], k=0)
    assert rows_of(hits) == [4, 2]
    assert [h.ranks for h in hits] == [(1, None), (2, None)]
    hits = rrf([[], np.array([3, 1], dtype=np.int64)], k=0)
    assert rows_of(hits) == [3, 1]
    assert all(isinstance(h.row, int) for h in hits)


def test_rrf_reports_raw_scores_and_limit() -> None:
    hits = rrf(
        [[1, 2], [2, 3]],
        k=0,
        scores=[[0.1, 0.2], None],
        limit=2,
    )
    # 2: 1/2 + 1 = 1.5 ; 1: 1 ; 3: 1/2 (cut by limit)
    assert rows_of(hits) == [2, 1]
    assert hits[0].scores == (0.2, None)
    assert hits[1].scores == (0.1, None)
    assert rrf([[1, 2]], limit=0) == []


def test_rrf_side_order_does_not_change_scores() -> None:
    a, b, c = [1, 2, 3, 4], [4, 3, 9], [9, 8, 1, 2]
    fwd = {h.row: h.score for h in rrf([a, b, c], k=3)}
    rev = {h.row: h.score for h in rrf([c, b, a], k=3)}
    assert fwd == rev  # exact equality: fsum is correctly rounded


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": -1},
        {"k": float("nan")},
        {"k": float("inf")},
        {"k": True},
        {"k": "60"},
        {"weights": [1.0]},
        {"weights": [1.0, -0.5]},
        {"weights": [1.0, float("nan")]},
        {"weights": "ab"},
        {"limit": -1},
        {"limit": 2.5},
        {"scores": [[1.0, 2.0]]},
        {"scores": [[1.0], None]},
        {"scores": [[1.0, float("nan")], None]},
    ],
)
def test_rrf_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        rrf([[1, 2], [2]], **kwargs)


@pytest.mark.parametrize(
    "rankings",
    [
        "12",
        None,
        [[1, 2.5]],
        [["a"]],
        [[True, 2]],
        [np.array([[1, 2]])],
        [np.array([1.0, 2.0])],
        [5],
    ],
)
def test_rrf_rejects_bad_rankings(rankings: object) -> None:
    with pytest.raises(InvalidInputError):
        rrf(rankings)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 30), max_size=12), max_size=4),
    st.integers(0, 100),
)
def test_rrf_properties(rankings: list[list[int]], k: int) -> None:
    hits = rrf(rankings, k=k)
    union = {r for ranking in rankings for r in ranking}
    assert sorted(rows_of(hits)) == sorted(union)  # every row once
    for h in hits:
        exact = Fraction(0)
        for side, ranking in enumerate(rankings):
            if h.row in ranking:
                rank = ranking.index(h.row) + 1
                assert h.ranks[side] == rank
                if k + rank > 0:
                    exact += Fraction(1, k + rank)
            else:
                assert h.ranks[side] is None
        assert h.score == pytest.approx(float(exact), rel=1e-12)
    keys = [(-h.score, min(r for r in h.ranks if r is not None), h.row) for h in hits]
    assert keys == sorted(keys)


# ---------------------------------------------------------------- weighted


def test_weighted_hand_computed() -> None:
    # vector side: distances 0.1, 0.3, 0.5 (lower better) -> normalised 1, 0.5, 0
    # text side:   bm25 8, 2 (higher better)               -> normalised 1, 0
    # alpha 0.25:
    #   1: 0.25*1            = 0.25
    #   2: 0.25*0.5          = 0.125
    #   3: 0.25*0 + 0.75*1   = 0.75
    #   4: 0.75*0            = 0
    vec = ([1, 2, 3], [0.1, 0.3, 0.5], False)
    txt = ([3, 4], [8.0, 2.0], True)
    hits = weighted([vec, txt], alpha=0.25)
    assert rows_of(hits) == [3, 1, 2, 4]
    assert [h.score for h in hits] == pytest.approx([0.75, 0.25, 0.125, 0.0], abs=1e-12)
    by_row = {h.row: h for h in hits}
    assert by_row[3].ranks == (3, 1) and by_row[3].scores == (0.5, 8.0)
    assert by_row[1].ranks == (1, None) and by_row[1].scores == (0.1, None)
    assert by_row[4].ranks == (None, 2) and by_row[4].scores == (None, 2.0)


def test_weighted_higher_is_better_on_vector_side() -> None:
    # similarities 0.9, 0.7, 0.5 (higher better) -> 1, 0.5, 0 ; alpha = 1: text ignored.
    # Rows 3 and 9 tie at 0: 9's best rank is 1 (text side), 3's is 3 -> 9 first.
    hits = weighted([([1, 2, 3], [0.9, 0.7, 0.5], True), ([9], [3.0], True)], alpha=1.0)
    assert rows_of(hits) == [1, 2, 9, 3]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-12)


def test_weighted_alpha_extremes() -> None:
    vec = ([1, 2], [0.0, 1.0], False)
    txt = ([2, 1], [5.0, 1.0], True)
    # alpha = 0: text only -> 2 (1.0) then 1 (0.0)
    assert rows_of(weighted([vec, txt], alpha=0)) == [2, 1]
    # alpha = 1: vector only -> 1 (1.0) then 2 (0.0)
    assert rows_of(weighted([vec, txt], alpha=1)) == [1, 2]
    # alpha = 0.5: both 0.5, tie -> best rank (both 1) -> row id
    hits = weighted([vec, txt], alpha=0.5)
    assert [h.score for h in hits] == [0.5, 0.5]
    assert rows_of(hits) == [1, 2]


def test_weighted_constant_scores_and_single_hit_normalise_to_one() -> None:
    # vector: a single hit -> 1 ; text: all equal -> all 1. alpha = 0.4
    #   7: 0.4*1 + 0.6*1 = 1 ; 8: 0.6 ; 9: 0.6 (tie: 8 and 9 both text rank... 8 is rank 1)
    hits = weighted([([7], [0.42], False), ([8, 7, 9], [2.0, 2.0, 2.0], True)], alpha=0.4)
    assert rows_of(hits) == [7, 8, 9]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.6, 0.6], abs=1e-12)


def test_weighted_empty_sides() -> None:
    assert weighted([([], [], False), ([], [], True)], alpha=0.5) == []
    hits = weighted([([], [], False), ([3, 4], [9.0, 1.0], True)], alpha=0.5)
    # text only: 3 -> 0.5*1 ; 4 -> 0.5*0
    assert rows_of(hits) == [3, 4]
    assert [h.score for h in hits] == pytest.approx([0.5, 0.0])
    assert hits[0].ranks == (None, 1)
    hits = weighted([(np.array([5, 6]), np.array([0.2, 0.4], dtype=np.float32), False),
                     ([], [], True)], alpha=0.5)
    assert rows_of(hits) == [5, 6]
    assert [h.score for h in hits] == pytest.approx([0.5, 0.0])


def test_weighted_duplicates_keep_first() -> None:
    # text side lists row 1 twice; the second (5.0) is ignored, so normalisation
    # is over {10.0, 0.0}: 1 -> 1, 2 -> 0. alpha = 0: text only.
    hits = weighted([([], [], False), ([1, 2, 1], [10.0, 0.0, 5.0], True)], alpha=0.0)
    assert rows_of(hits) == [1, 2]
    assert hits[0].scores == (None, 10.0) and hits[0].ranks == (None, 1)
    assert [h.score for h in hits] == pytest.approx([1.0, 0.0])


def test_weighted_limit() -> None:
    hits = weighted([([1, 2, 3], [3.0, 2.0, 1.0], True), ([], [], True)], alpha=1, limit=2)
    assert rows_of(hits) == [1, 2]


@pytest.mark.parametrize("alpha", [-0.01, 1.01, float("nan"), float("inf"), True, "0.5", None])
def test_weighted_rejects_bad_alpha(alpha: object) -> None:
    with pytest.raises(InvalidInputError):
        weighted([([1], [1.0], True), ([1], [1.0], True)], alpha=alpha)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sides",
    [
        [([1], [1.0], True)],
        [([1], [1.0], True)] * 3,
        [([1, 2], [1.0], True), ([], [], True)],
        [([1], [float("nan")], True), ([], [], True)],
        [([1], [float("inf")], True), ([], [], True)],
        [([1], [1.0], "yes"), ([], [], True)],
        [([1], [1.0]), ([], [], True)],
        [([1.5], [1.0], True), ([], [], True)],
        [([1], ["x"], True), ([], [], True)],
    ],
)
def test_weighted_rejects_bad_sides(sides: list) -> None:
    with pytest.raises(InvalidInputError):
        weighted(sides, alpha=0.5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.floats(-100, 100)), max_size=10),
    st.lists(st.tuples(st.integers(0, 20), st.floats(0, 50)), max_size=10),
    st.floats(0, 1),
)
def test_weighted_properties(vec: list, txt: list, alpha: float) -> None:
    hits = weighted(
        [([r for r, _ in vec], [s for _, s in vec], False), ([r for r, _ in txt], [s for _, s in txt], True)],
        alpha=alpha,
    )
    assert sorted(rows_of(hits)) == sorted({r for r, _ in vec} | {r for r, _ in txt})
    for h in hits:
        assert -1e-12 <= h.score <= 1 + 1e-12
        assert not math.isnan(h.score)
    keys = [(-h.score, min(r for r in h.ranks if r is not None), h.row) for h in hits]
    assert keys == sorted(keys)
