"""Rebuild the demo data set from the full WordNet data (maintainers only).

    python src/vjson/demo_data/_build.py [../shared/data/wordnet]

Takes a deterministic sample of the 80,000 WordNet 3.0 glosses (embedded with
all-MiniLM-L6-v2, 384-d) described in ``../shared/data/README.md``: the exact
10 nearest neighbours of 20 held-out query glosses, the relevant glosses of 20
keyword queries, and random glosses up to ``ROWS``. Vectors are stored as
float16 ``.npy`` files, texts and metadata as JSON lines, next to the WordNet
licence. Not shipped in the wheel.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROWS = 1200
N_QUERIES = 20
N_HYBRID = 20
NEIGHBOURS = 10
FIELDS = ("pos", "lexname", "n_words", "lemmas")
SEED = 2


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def build(src: Path, out: Path) -> None:
    """Write the demo files into `out` from the full data set in `src`."""
    rng = np.random.default_rng(SEED)
    texts = _jsonl(src / "texts.jsonl")
    base = np.load(src / "base.f16.npy", mmap_mode="r")
    queries = np.load(src / "queries.f16.npy", mmap_mode="r")
    query_texts = _jsonl(src / "query_texts.jsonl")
    gt = np.load(src / "gt_cosine_top100.i32.npy")
    hybrid = _jsonl(src / "hybrid_queries.jsonl")
    hybrid_vecs = np.load(src / "hybrid_queries.f16.npy", mmap_mode="r")

    # held-out queries: mostly nouns, some verbs (for the {"pos": "v"} filter), a few others
    by_pos: dict[str, list[int]] = {}
    for i, q in enumerate(query_texts):
        if 20 <= len(q["text"]) <= 90:
            by_pos.setdefault("v" if q["pos"] == "v" else "n" if q["pos"] == "n" else "x", []).append(i)
    picked_q = np.concatenate([rng.choice(by_pos["n"], 11, replace=False), rng.choice(by_pos["v"], 6, replace=False),
                               rng.choice(by_pos["x"], 3, replace=False)])
    rng.shuffle(picked_q)
    # keyword queries: single plain words with 1-4 relevant glosses, half of them polysemous
    picked_h: list[int] = []
    for kind, want in (("polysemous", N_HYBRID // 2), ("monosemous", N_HYBRID - N_HYBRID // 2)):
        pool = [i for i, h in enumerate(hybrid) if h["kind"] == kind and h["query"].isalpha()
                and h["query"].islower() and 5 <= len(h["query"]) <= 10
                and 1 <= h["n_relevant"] <= 4]
        picked_h.extend(int(i) for i in rng.choice(pool, want, replace=False))

    rows = set(gt[picked_q, :NEIGHBOURS].ravel().tolist())
    for i in picked_h:
        rows.update(hybrid[i]["relevant_ids"])
    rest = np.setdiff1d(np.arange(len(texts)), np.fromiter(rows, dtype=np.int64))
    rows.update(rng.choice(rest, ROWS - len(rows), replace=False).tolist())
    order = sorted(rows)
    synset = {r: texts[r]["synset"] for r in order}

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "base.f16.npy", np.ascontiguousarray(base[order], dtype=np.float16))
    _write_jsonl(out / "records.jsonl",
                 [{"id": texts[r]["synset"], "text": texts[r]["text"], **{k: texts[r][k] for k in FIELDS}}
                  for r in order])
    np.save(out / "queries.f16.npy", np.ascontiguousarray(queries[picked_q], dtype=np.float16))
    _write_jsonl(out / "query_texts.jsonl",
                 [{"text": query_texts[i]["text"], "pos": query_texts[i]["pos"],
                   "lexname": query_texts[i]["lexname"]} for i in picked_q])
    np.save(out / "hybrid_queries.f16.npy", np.ascontiguousarray(hybrid_vecs[picked_h], dtype=np.float16))
    _write_jsonl(out / "hybrid_queries.jsonl",
                 [{"query": hybrid[i]["query"], "kind": hybrid[i]["kind"],
                   "relevant": [synset[r] for r in hybrid[i]["relevant_ids"]]} for i in picked_h])
    shutil.copyfile(src / "LICENSE-WordNet.txt", out / "LICENSE-WordNet.txt")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[3] / "shared" / "data" / "wordnet", here)
