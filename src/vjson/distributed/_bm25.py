"""BM25 with a collection's global statistics (DFS): no Ray here.

Each shard's tantivy index scores with its own document count, document
frequencies and average length, so the same record would score differently
on different shards. The driver first sums every shard's statistics for the
query; each shard then rescores its candidates from tantivy's explanation of
their scores, replacing the idf and length-normalisation factors of every
term by the global ones. Sums and products above the terms are recomputed;
anything else (a constant score) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vjson.text_index import debug_terms


def merge_statistics(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One index's statistics from the shards': document counts and
    frequencies add up; each shard counts one marker document, one index
    would count one; the average length weighs each shard by its documents."""
    docs = sum(p["docs"] for p in parts) - (len(parts) - 1)
    known = [p for p in parts if p["avgdl"] is not None]
    mean = sum(p["avgdl"] * p["docs"] for p in known) / max(sum(p["docs"] for p in known), 1)
    tokens = sum((p["avgdl"] if p["avgdl"] is not None else mean) * p["docs"] for p in parts)
    df: dict[str, int] = {}
    phrases = {tuple(phrase) for p in parts for phrase in p.get("phrases", ())}
    for p in parts:
        for term, n in p["df"].items():
            df[term] = df.get(term, 0) + n
    return {"docs": max(docs, 1), "avgdl": tokens / max(docs, 1) if known else None, "df": df,
            "phrases": sorted(phrases)}


def idf(docs: int, n: int) -> float:
    return math.log(1 + (docs - n + 0.5) / (n + 0.5))


def rescore(node: dict[str, Any], stats: dict[str, Any], local: dict[str, Any]) -> float:
    """The score of an explanation tree under the collection's `stats`
    (merge_statistics); `local` are this shard's own (to tell which phrase a
    phrase's term node stands for: the one whose local idf it shows)."""
    children = node.get("details") or []
    if str(node.get("description", "")).startswith("TermQuery") and stats["avgdl"] is not None:
        terms = debug_terms(" ".join(node.get("context") or ()))
        if not terms:
            terms = _phrase_of(node, local)
        if terms and all(t in stats["df"] for t in terms):
            return math.prod(_term_factor(c, stats, local, terms) for c in children)
    if not children:
        return float(node["value"])
    old = [float(c["value"]) for c in children]
    new = [rescore(c, stats, local) for c in children]
    value = float(node["value"])
    if math.isclose(value, math.fsum(old), rel_tol=1e-4, abs_tol=1e-6):
        return math.fsum(new)
    if math.isclose(value, math.prod(old), rel_tol=1e-4, abs_tol=1e-6):
        return math.prod(new)
    return value


def _phrase_of(node: dict[str, Any], local: dict[str, Any]) -> list[str]:
    shown = next((float(c["value"]) for c in node.get("details") or ()
                  if str(c.get("description", "")).startswith("idf")), None)
    for phrase in local.get("phrases", ()):
        if shown is not None and all(t in local["df"] for t in phrase) and math.isclose(
                shown, math.fsum(idf(local["docs"], local["df"][t]) for t in phrase), rel_tol=1e-4):
            return list(phrase)
    return []


def _term_factor(node: dict[str, Any], stats: dict[str, Any], local: dict[str, Any], terms: list[str]) -> float:
    description = str(node.get("description", ""))
    if description.startswith("idf"):
        return math.fsum(idf(stats["docs"], stats["df"][t]) for t in terms)
    if description.startswith("freq /"):
        part = {str(c["description"]).split(",")[0]: float(c["value"]) for c in node.get("details") or ()}
        freq, k1, b, dl = part["freq"], part["k1"], part["b"], part["dl"]
        return freq / (freq + k1 * (1 - b + b * dl / stats["avgdl"]))
    return rescore(node, stats, local)  # (K1+1), a boost: unchanged by the statistics
