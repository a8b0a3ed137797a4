"""Fusion of several rankings of the same rows into one (hybrid search).

Pure functions, no I/O. Inputs are lists or arrays of row ids, best first,
optionally with each side's raw scores. Each fused hit keeps every side's rank
and raw score, so callers can show *why* a row came out where it did.

* :func:`rrf` (reciprocal rank fusion): ``score(row) = sum_i w_i / (k + rank_i)``
  over the rankings that contain the row, ranks starting at 1. It uses ranks
  only, so the sides' score scales do not matter.
* :func:`weighted`: min-max normalises each side's scores to ``[0, 1]`` (best
  = 1, worst = 0; distances are flipped), then
  ``score = alpha * vector + (1 - alpha) * text``; a side that does not
  contain the row contributes 0.

Conventions shared by both:

* A row listed twice in one input counts once, at its first (best) position;
  its rank is that position, 1-based.
* The output holds every row of every input, best first. Ties are broken by
  the row's best single rank over the sides, then by the smaller row id, so the
  order is fully deterministic.
* Sums are computed with :func:`math.fsum` (correctly rounded), so a row's
  score does not depend on the order in which sides are listed.
* Invalid arguments raise :class:`~vjson.errors.InvalidInputError`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from vjson.errors import InvalidInputError

__all__ = ["FusedHit", "rrf", "weighted"]


class FusedHit(NamedTuple):
    """One fused result.

    ``ranks[i]`` is the row's 1-based rank in input ``i`` (``None`` if absent);
    ``scores[i]`` is its raw score there (``None`` if absent or not given).
    For :func:`weighted`, index 0 is the vector side and index 1 the text side.
    """

    row: int
    score: float
    ranks: tuple[int | None, ...]
    scores: tuple[float | None, ...]


def _is_int(x: object) -> bool:
    return isinstance(x, (numbers.Integral, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x: object) -> bool:
    return isinstance(x, (numbers.Real, np.floating, np.integer)) and not isinstance(
        x, (bool, np.bool_)
    )


def _row_list(rows: object, what: str) -> list[int]:
    if isinstance(rows, (str, bytes)) or rows is None:
        raise InvalidInputError(f"{what} must be a sequence of integer row ids")
    if isinstance(rows, np.ndarray):
        if rows.ndim != 1:
            raise InvalidInputError(f"{what} must be 1-D, got shape {rows.shape}")
        if rows.size and rows.dtype.kind not in "iu":
            raise InvalidInputError(f"{what} must hold integers, got dtype {rows.dtype}")
        return rows.tolist()  # Python ints already
    try:
        items = list(rows)  # type: ignore[call-overload]
    except TypeError as exc:
        raise InvalidInputError(f"{what} must be a sequence of integer row ids") from exc
    for i, r in enumerate(items):
        if not _is_int(r):
            raise InvalidInputError(f"{what}[{i}] is {r!r}, expected an integer row id")
    return [int(r) for r in items]


def _score_list(scores: object, n: int, what: str) -> list[float]:
    if isinstance(scores, (str, bytes)) or scores is None:
        raise InvalidInputError(f"{what} must be a sequence of numbers")
    if isinstance(scores, np.ndarray):
        if scores.ndim != 1:
            raise InvalidInputError(f"{what} must be 1-D, got shape {scores.shape}")
        if scores.size and scores.dtype.kind not in "iuf":
            raise InvalidInputError(f"{what} must be numeric, got dtype {scores.dtype}")
        if len(scores) != n:
            raise InvalidInputError(f"{what} has {len(scores)} scores for {n} rows")
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise InvalidInputError(f"{what}[{bad}] is {scores[bad]}, expected a finite number")
        return [float(s) for s in scores.astype(np.float64).tolist()]
    else:
        try:
            items = list(scores)  # type: ignore[call-overload]
        except TypeError as exc:
            raise InvalidInputError(f"{what} must be a sequence of numbers") from exc
        for i, s in enumerate(items):
            if not _is_real(s):
                raise InvalidInputError(f"{what}[{i}] is {s!r}, expected a number")
        out = [float(s) for s in items]
    if len(out) != n:
        raise InvalidInputError(f"{what} has {len(out)} scores for {n} rows")
    for i, s in enumerate(out):
        if not math.isfinite(s):
            raise InvalidInputError(f"{what}[{i}] is {s}, expected a finite number")
    return out


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if not _is_int(limit) or int(limit) < 0:  # type: ignore[call-overload]
        raise InvalidInputError(f"limit must be a non-negative integer or None, got {limit!r}")
    return int(limit)  # type: ignore[call-overload]


def _first_positions(rows: list[int]) -> dict[int, int]:
    """row -> index of its first occurrence."""
    pos: dict[int, int] = {}
    for i, r in enumerate(rows):
        pos.setdefault(r, i)
    return pos


def _finish(
    rows: dict[int, tuple[float, list[int | None], list[float | None]]],
    limit: int | None,
) -> list[FusedHit]:
    def key(item: tuple[int, tuple[float, list[int | None], list[float | None]]]):
        row, (score, ranks, _) = item
        best = min(r for r in ranks if r is not None)
        return (-score, best, row)

    ordered = sorted(rows.items(), key=key)
    if limit is not None:
        ordered = ordered[:limit]
    return [
        FusedHit(row, score, tuple(ranks), tuple(raw)) for row, (score, ranks, raw) in ordered
    ]


def rrf(
    rankings: Sequence[Sequence[int] | np.ndarray],
    k: float = 60,
    weights: Sequence[float] | None = None,
    *,
    scores: Sequence[Sequence[float] | np.ndarray | None] | None = None,
    limit: int | None = None,
) -> list[FusedHit]:
    """Reciprocal rank fusion of ``rankings`` (each a list of row ids, best first).

    ``score(row) = sum_i weights[i] / (k + rank_i(row))`` over the rankings
    holding the row, ``rank`` starting at 1. ``k >= 0`` (60 is the usual
    choice; smaller values favour the top ranks more). ``weights`` default to
    1; they must be finite and ``>= 0``. ``scores``, if given, is parallel to
    ``rankings`` (each entry a list of raw scores aligned with its ranking, or
    ``None``); they do not affect the fusion, they are only reported in
    :attr:`FusedHit.scores`. ``limit`` keeps the best ``limit`` hits.
    """
    if isinstance(rankings, (str, bytes)) or rankings is None:
        raise InvalidInputError("rankings must be a sequence of rankings")
    try:
        sides = list(rankings)
    except TypeError as exc:
        raise InvalidInputError("rankings must be a sequence of rankings") from exc
    if not _is_real(k) or not math.isfinite(float(k)) or float(k) < 0:  # type: ignore[arg-type]
        raise InvalidInputError(f"k must be a finite number >= 0, got {k!r}")
    kf = float(k)  # type: ignore[arg-type]
    n = len(sides)
    if weights is None:
        w = [1.0] * n
    else:
        if isinstance(weights, (str, bytes)):
            raise InvalidInputError("weights must be a sequence of numbers")
        w_items = list(weights)
        if len(w_items) != n:
            raise InvalidInputError(f"got {len(w_items)} weights for {n} rankings")
        for i, x in enumerate(w_items):
            if not _is_real(x) or not math.isfinite(float(x)) or float(x) < 0:
                raise InvalidInputError(f"weights[{i}] is {x!r}, expected a finite number >= 0")
        w = [float(x) for x in w_items]
    if scores is not None:
        if isinstance(scores, (str, bytes)):
            raise InvalidInputError("scores must be a sequence (one entry per ranking)")
        score_sides = list(scores)
        if len(score_sides) != n:
            raise InvalidInputError(f"got {len(score_sides)} score lists for {n} rankings")
    else:
        score_sides = [None] * n
    lim = _check_limit(limit)

    row_lists = [_row_list(r, f"rankings[{i}]") for i, r in enumerate(sides)]
    raw_lists = [
        None if s is None else _score_list(s, len(row_lists[i]), f"scores[{i}]")
        for i, s in enumerate(score_sides)
    ]
    positions = [_first_positions(rows) for rows in row_lists]

    union: dict[int, None] = {}
    for rows in row_lists:
        union.update(dict.fromkeys(rows))
    fused: dict[int, tuple[float, list[int | None], list[float | None]]] = {}
    for row in union:
        ranks: list[int | None] = []
        raw: list[float | None] = []
        terms: list[float] = []
        for i in range(n):
            p = positions[i].get(row)
            if p is None:
                ranks.append(None)
                raw.append(None)
                continue
            rank = p + 1
            ranks.append(rank)
            raw_i = raw_lists[i]
            raw.append(None if raw_i is None else raw_i[p])
            terms.append(w[i] / (kf + rank))
        fused[row] = (math.fsum(terms), ranks, raw)
    return _finish(fused, lim)


def weighted(
    score_lists: Sequence[tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray, bool]],
    alpha: float,
    *,
    limit: int | None = None,
) -> list[FusedHit]:
    """Convex combination of min-max normalised scores of two sides.

    ``score_lists`` is ``[(rows, scores, higher_is_better) for the vector side,
    (rows, scores, higher_is_better) for the text side]``, each best first
    (e.g. ``(ids, distances, False)`` and ``(rows, bm25, True)``). Each side's
    scores are mapped to ``[0, 1]``: ``(s - min) / (max - min)`` when higher is
    better, ``(max - s) / (max - min)`` when lower is better; a side whose
    scores are all equal (or that has one hit) maps them all to 1. Then
    ``score = alpha * vector + (1 - alpha) * text`` with ``alpha`` in
    ``[0, 1]``; a side missing the row contributes 0. Either side may be empty.
    """
    if isinstance(alpha, (bool, np.bool_)) or not _is_real(alpha):
        raise InvalidInputError(f"alpha must be a number in [0, 1], got {alpha!r}")
    a = float(alpha)
    if not (0.0 <= a <= 1.0):  # also rejects NaN
        raise InvalidInputError(f"alpha must lie in [0, 1], got {alpha!r}")
    if isinstance(score_lists, (str, bytes)) or score_lists is None:
        raise InvalidInputError("score_lists must be [(rows, scores, higher_is_better)] * 2")
    sides = list(score_lists)
    if len(sides) != 2:
        raise InvalidInputError(
            f"weighted fusion takes exactly two sides (vector, text), got {len(sides)}"
        )
    lim = _check_limit(limit)
    side_weights = (a, 1.0 - a)

    parsed: list[tuple[dict[int, int], list[float], list[float]]] = []
    for i, side in enumerate(sides):
        try:
            rows_in, scores_in, higher = side
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"score_lists[{i}] must be a (rows, scores, higher_is_better) tuple"
            ) from exc
        if not isinstance(higher, (bool, np.bool_)):
            raise InvalidInputError(f"score_lists[{i}]: higher_is_better must be a bool")
        rows = _row_list(rows_in, f"score_lists[{i}] rows")
        raw = _score_list(scores_in, len(rows), f"score_lists[{i}] scores")
        first = _first_positions(rows)
        kept = [raw[p] for p in first.values()]
        norm = [0.0] * len(raw)
        if kept:
            lo, hi = min(kept), max(kept)
            span = hi - lo
            for p in first.values():
                if span == 0.0:
                    norm[p] = 1.0
                elif higher:
                    norm[p] = (raw[p] - lo) / span
                else:
                    norm[p] = (hi - raw[p]) / span
        parsed.append((first, raw, norm))

    union: dict[int, None] = {}
    for first, _, _ in parsed:
        union.update(dict.fromkeys(first))
    fused: dict[int, tuple[float, list[int | None], list[float | None]]] = {}
    for row in union:
        ranks: list[int | None] = []
        raw_out: list[float | None] = []
        terms: list[float] = []
        for (first, raw, norm), wgt in zip(parsed, side_weights):
            at = first.get(row)
            if at is None:
                ranks.append(None)
                raw_out.append(None)
                continue
            ranks.append(at + 1)
            raw_out.append(raw[at])
            terms.append(wgt * norm[at])
        fused[row] = (math.fsum(terms), ranks, raw_out)
    return _finish(fused, lim)
