"""A plain Okapi BM25 over whitespace-free word tokens, as a reference for vjson's text search.

Tokens are what scikit-learn's ``CountVectorizer`` produces by default
(lowercased runs of two or more word characters, ``(?u)\\b\\w\\w+\\b``; no
stemming, no stop words). Scores are Okapi BM25 with Lucene's idf,
``log(1 + (N - df + 0.5) / (df + 0.5))``, and ``k1 = 0.9``, ``b = 0.4`` (the
Anserini defaults). A query is the set of its distinct tokens, OR-ed; ties go
to the smaller row. Pure numpy, no dependency: it is the baseline, not the
system under test.
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

import numpy as np

TOKEN = re.compile(r"(?u)\b\w\w+\b")


def tokens(text: str) -> List[str]:
    return TOKEN.findall(text.lower())


class PlainBM25:
    def __init__(self, texts: Sequence[str], k1: float = 0.9, b: float = 0.4) -> None:
        vocab: Dict[str, int] = {}
        doc_terms: List[np.ndarray] = []
        doc_tfs: List[np.ndarray] = []
        lengths = np.zeros(len(texts), dtype=np.float64)
        for i, text in enumerate(texts):
            toks = tokens(text)
            lengths[i] = len(toks)
            ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), dtype=np.int64, count=len(toks))
            uniq, tf = np.unique(ids, return_counts=True)
            doc_terms.append(uniq)
            doc_tfs.append(tf)
        terms = np.concatenate(doc_terms) if doc_terms else np.empty(0, np.int64)
        tfs = np.concatenate(doc_tfs).astype(np.float64) if doc_tfs else np.empty(0)
        docs = np.repeat(np.arange(len(texts)), [len(t) for t in doc_terms])
        order = np.argsort(terms, kind="stable")  # postings grouped by term, docs ascending
        self._docs = docs[order]
        self._ptr = np.searchsorted(terms[order], np.arange(len(vocab) + 1))
        n = len(texts)
        df = np.diff(self._ptr).astype(np.float64)
        self._idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        norm = k1 * (1.0 - b + b * lengths / max(lengths.mean(), 1e-9))
        tf_sorted = tfs[order]
        # the per-posting BM25 weight, precomputed: idf * tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl))
        self._weight = tf_sorted * (k1 + 1.0) / (tf_sorted + norm[self._docs])
        self._vocab = vocab
        self.n = n

    def search(self, query: str, k: int) -> np.ndarray:
        """Top-k rows (int64), best first; fewer when fewer rows hold a query token."""
        scores = np.zeros(self.n)
        hit = False
        for t in set(tokens(query)):
            tid = self._vocab.get(t)
            if tid is None:
                continue
            lo, hi = self._ptr[tid], self._ptr[tid + 1]
            scores[self._docs[lo:hi]] += self._idf[tid] * self._weight[lo:hi]
            hit = True
        if not hit:
            return np.empty(0, dtype=np.int64)
        cand = np.flatnonzero(scores)
        if len(cand) > k:  # keep every row tied with the k-th score, so ties resolve by row
            kth = -np.partition(-scores[cand], k - 1)[k - 1]
            cand = cand[scores[cand] >= kth]
        # best score first, then smaller row
        order = np.lexsort((cand, -scores[cand]))
        return cand[order][:k].astype(np.int64)
