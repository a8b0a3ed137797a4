"""Tests of vjson.text_index.TextIndex (tantivy BM25 index keyed by row)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

tantivy = pytest.importorskip("tantivy")

import vjson.text_index as text_index_module  # noqa: E402
from vjson.errors import (  # noqa: E402
    CorruptionError,
    DatabaseClosedError,
    DatabaseLockedError,
    InvalidInputError,
    QueryError,
    ReadOnlyError,
    VJsonError,
)
from vjson.text_index import TOKENIZERS, TextIndex, escape_query  # noqa: E402

HEAP = 15_000_000  # the smallest writer budget tantivy accepts; keeps tests light

CORPUS = {
    0: "the quick brown fox jumps over the lazy dog",
    1: "a quick brown dog runs in the park",
    2: "the cat sleeps all day",
    3: "brown bears fish in the river",
    4: "dogs and cats are running together",
}


def open_index(path: Path, tokenizer: str | None = "en_stem", **kw) -> TextIndex:
    return TextIndex(path, tokenizer, writer_heap_bytes=HEAP, **kw)


@pytest.fixture
def ti(tmp_path: Path):
    index = open_index(tmp_path / "text")
    index.add(list(CORPUS), list(CORPUS.values()))
    index.commit()
    yield index
    index.close()


def found(index: TextIndex, query: str, k: int = 100, allowed=None) -> set[int]:
    rows, _ = index.search(query, k, allowed)
    return set(rows.tolist())


# ------------------------------------------------------------------ queries


def test_terms_phrases_and_booleans(ti: TextIndex) -> None:
    assert found(ti, "fox") == {0}
    assert found(ti, "cat") == {2, 4}  # en_stem: "cats" -> "cat"
    assert found(ti, "fox OR cat") == {0, 2, 4}
    assert found(ti, "fox cat") == {0, 2, 4}  # terms are OR-ed by default
    assert found(ti, "quick AND dog") == {0, 1}
    assert found(ti, "brown AND NOT dog") == {3}
    assert found(ti, "NOT dog AND brown") == {3}
    assert found(ti, "brown NOT dog") == {3}
    assert found(ti, "brown AND NOT (fox OR bears)") == {1}
    assert found(ti, "(quick OR cat) AND NOT lazy") == {1, 2, 4}
    assert found(ti, "+brown -fox") == {1, 3}
    assert found(ti, '"brown fox"') == {0}
    assert found(ti, '"brown dog"') == {1}
    assert found(ti, '"fox brown"') == set()
    assert found(ti, "unicorn") == set()
    assert found(ti, "*") == set(CORPUS)


def test_stemming_and_tokenizer_choice(tmp_path: Path) -> None:
    stem = open_index(tmp_path / "stem")
    plain = open_index(tmp_path / "plain", "default")
    for index in (stem, plain):
        index.add(list(CORPUS), list(CORPUS.values()))
        index.commit()
    # "running" -> "run" matches "runs" (1) and "running" (4) only when stemming.
    assert found(stem, "running") == {1, 4}
    assert found(plain, "running") == {4}
    assert found(plain, "RUNNING") == {4}  # "default" lowercases
    stem.close()
    plain.close()


def test_results_are_bm25_ordered_typed_and_capped(ti: TextIndex) -> None:
    rows, scores = ti.search("brown", k=10)
    assert rows.dtype == np.int64 and scores.dtype == np.float32
    # Same term frequency, so the shorter document scores higher:
    # 3 (6 tokens) > 1 (8 tokens) > 0 (9 tokens).
    assert rows.tolist() == [3, 1, 0]
    assert np.all(np.diff(scores) < 0)
    rows2, scores2 = ti.search("brown", k=2)
    assert rows2.tolist() == [3, 1]
    np.testing.assert_array_equal(scores2, scores[:2])
    assert len(ti.search("brown", k=0)[0]) == 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a AND NOT b", "a AND -b"),
        ("NOT  (a OR b) c", "-(a OR b) c"),
        ('"a NOT b" NOT c', '"a NOT b" -c'),
        ("'a NOT b' AND NOT c", "'a NOT b' AND -c"),
        ("a\\ NOT b", "a\\ NOT b"),  # escaped space: "a NOT" is one literal
        ("NOTE aNOT NOT", "NOTE aNOT NOT"),
        ("a AND NOT -b", "a AND NOT -b"),
        ("not a", "not a"),  # lowercase is a term, not the operator
    ],
)
def test_not_keyword_rewrite(query: str, expected: str) -> None:
    assert text_index_module._rewrite_not(query) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no man's land", '"no" "man\'s" "land"'),
        ('say "hi"', '"say" "\\"hi\\""'),
        ("a AND NOT b", '"a" "AND" "NOT" "b"'),
        ("  ", ""),
    ],
)
def test_escape_query_text(text: str, expected: str) -> None:
    assert escape_query(text) == expected


def test_escaped_user_text_never_raises(ti: TextIndex) -> None:
    ti.add([10, 11], ["no man's land between trenches", "c++ and c: drive (backslash \\ here)"])
    ti.commit()
    assert ti.search(escape_query("man's"))[0].tolist() == [10]
    for text in ["(unclosed", '"open', "NOT", "\\", "*", "a:b:c", "$", "AND OR"]:
        ti.search(escape_query(text))  # no QueryError
    assert found(ti, escape_query("NOT fox")) == {0}  # NOT is a plain word here
    assert found(ti, escape_query("-fox")) == {0}  # not an exclusion
    assert found(ti, escape_query("c++")) == {11}
    assert found(ti, escape_query("title:fox")) == set()  # the phrase "title fox"
    assert found(ti, escape_query("lazy man's")) == {0, 10}
    with pytest.raises(InvalidInputError):
        escape_query(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_returns_nothing(ti: TextIndex, query: str) -> None:
    rows, scores = ti.search(query)
    assert rows.shape == (0,) and scores.shape == (0,)
    assert rows.dtype == np.int64 and scores.dtype == np.float32


@pytest.mark.parametrize(
    "query", ["(unclosed", '"open phrase', "quick AND", "-fox", "NOT fox", "title:fox", "a:b:c"]
)
def test_bad_query_raises_query_error(ti: TextIndex, query: str) -> None:
    with pytest.raises(QueryError) as info:
        ti.search(query)
    assert isinstance(info.value, InvalidInputError)
    assert query in str(info.value)
    assert str(info.value).split(": ", 1)[1]  # carries tantivy's message


def test_syntax_error_message_is_tantivys(ti: TextIndex) -> None:
    with pytest.raises(QueryError, match="Syntax Error"):
        ti.search("(unclosed")


def test_invalid_search_arguments(ti: TextIndex) -> None:
    with pytest.raises(InvalidInputError):
        ti.search(b"fox")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ti.search("fox", k=-1)
    with pytest.raises(InvalidInputError):
        ti.search("fox", k=2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ti.search("fox", allowed=np.array([0, 1]))  # row list instead of a mask
    with pytest.raises(InvalidInputError):
        ti.search("fox", allowed=np.ones((2, 3), dtype=bool))


# -------------------------------------------------------------- writes


def test_changes_visible_only_after_commit(tmp_path: Path) -> None:
    index = open_index(tmp_path / "t")
    index.add([7], ["hello world"])
    assert found(index, "hello") == set() and index.count() == 0
    index.commit()
    assert found(index, "hello") == {7} and index.count() == 1
    index.delete([7])
    assert found(index, "hello") == {7}
    index.commit()
    assert found(index, "hello") == set() and index.count() == 0
    index.add([7], ["hello again"])  # re-add a deleted row
    index.commit()
    assert found(index, "again") == {7}
    assert index.rows().tolist() == [7]
    index.close()


def test_add_is_idempotent_and_replaces(ti: TextIndex) -> None:
    ti.add([2], ["the cat sleeps all day"])  # replay of the same write
    ti.commit()
    assert ti.count() == 5
    assert ti.search("sleeps")[0].tolist() == [2]
    ti.add([2, 2], ["first version zebra", "second version giraffe"])  # last wins
    ti.add([3], ["replaced text about otters"])
    ti.commit()
    assert ti.count() == 5
    assert ti.rows().tolist() == [0, 1, 2, 3, 4]
    assert found(ti, "sleeps") == set() and found(ti, "zebra") == set()
    assert found(ti, "giraffe") == {2}
    assert found(ti, "river") == set() and found(ti, "otters") == {3}


def test_delete_is_idempotent(ti: TextIndex) -> None:
    ti.delete([1, 1, 999])
    ti.commit()
    ti.delete([1])
    ti.commit()
    assert ti.rows().tolist() == [0, 2, 3, 4]
    assert found(ti, "park") == set()


def test_rollback_discards_pending(ti: TextIndex) -> None:
    ti.add([10], ["pending giraffe"])
    ti.delete([0])
    ti.rollback()
    ti.commit()
    assert found(ti, "giraffe") == set() and 0 in ti.rows()


def test_large_rows_and_numpy_inputs(tmp_path: Path) -> None:
    index = open_index(tmp_path / "t")
    big = 2**63 - 1
    index.add(np.array([big, 0], dtype=np.uint64), np.array(["big one", "small one"]))
    index.commit()
    assert found(index, "big") == {big}
    index.delete(np.array([big], dtype=np.int64))
    index.commit()
    assert index.rows().tolist() == [0]
    index.close()


@pytest.mark.parametrize(
    ("rows", "texts"),
    [
        ([-1], ["x"]),
        ([2**63], ["x"]),
        ([1.5], ["x"]),
        ([True], ["x"]),
        (["1"], ["x"]),
        ([[1, 2]], ["x"]),
        ([1, 2], ["x"]),
        ([1], [b"x"]),
        ([1], "x"),
        ([1], [None]),
    ],
)
def test_add_rejects_bad_input(ti: TextIndex, rows, texts) -> None:
    with pytest.raises(InvalidInputError):
        ti.add(rows, texts)
    ti.commit()
    assert ti.count() == 5  # nothing half-written


def test_random_operations_match_a_model(tmp_path: Path) -> None:
    """Random adds, deletes, commits, rollbacks and reopens against a dict model."""
    rng = np.random.default_rng(7)
    words = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]
    path = tmp_path / "t"
    index = open_index(path)
    committed: dict[int, str] = {}
    pending: dict[int, str | None] = {}
    for step in range(150):
        op = rng.choice(["add", "add", "delete", "commit", "rollback", "reopen"])
        if op == "add":
            rows = rng.integers(0, 40, size=int(rng.integers(1, 6))).tolist()
            texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in rows]
            index.add(rows, texts)
            pending.update(zip(rows, texts))
        elif op == "delete":
            rows = rng.integers(0, 40, size=int(rng.integers(1, 4))).tolist()
            index.delete(rows)
            pending.update(dict.fromkeys(rows))
        elif op == "commit":
            index.commit(marker=step)
            for row, text in pending.items():
                if text is None:
                    committed.pop(row, None)
                else:
                    committed[row] = text
            pending.clear()
        elif op == "rollback":
            index.rollback()
            pending.clear()
        else:
            index.close()
            pending.clear()
            index = open_index(path)
        assert index.rows().tolist() == sorted(committed), step
        assert index.count() == len(committed)
        word = str(rng.choice(words))
        expected = {r for r, t in committed.items() if word in t.split()}
        assert found(index, word) == expected, (step, word)
    index.close()


# ----------------------------------------------------------- allowed mask


@pytest.fixture(scope="module")
def big_index(tmp_path_factory: pytest.TempPathFactory):
    """3,000 documents all containing "common", with varied BM25 scores."""
    path = tmp_path_factory.mktemp("big") / "text"
    index = open_index(path)
    n = 3000
    texts = [
        "common " * (1 + i % 3) + " ".join(f"filler{j}" for j in range(i % 17)) + (" rare" if i % 10 == 0 else "")
        for i in range(n)
    ]
    index.add(range(n), texts)
    index.commit()
    full_rows, full_scores = index.search("common", k=n)
    assert len(full_rows) == n
    yield index, n, full_rows, full_scores
    index.close()


def expected_topk(full_rows, full_scores, mask, k):
    keep = np.array([r < len(mask) and mask[r] for r in full_rows], dtype=bool)
    return full_rows[keep][:k], full_scores[keep][:k]


@pytest.mark.parametrize("n_allowed", [1, 3, 10, 40, 300, 600, 1500, 2990, 3000])
@pytest.mark.parametrize("k", [1, 10, 50])
def test_allowed_mask_random(big_index, n_allowed: int, k: int) -> None:
    index, n, full_rows, full_scores = big_index
    rng = np.random.default_rng(n_allowed * 100 + k)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, n_allowed, replace=False)] = True
    rows, scores = index.search("common", k=k, allowed=mask)
    assert mask[rows].all()  # never a disallowed row
    assert len(rows) == min(k, n_allowed)  # k whenever k allowed matches exist
    assert len(set(rows.tolist())) == len(rows)
    _, exp_scores = expected_topk(full_rows, full_scores, mask, k)
    # Same scores as filtering the full ranking (ties may swap equal-score rows).
    np.testing.assert_allclose(scores, exp_scores, rtol=1e-6)


@pytest.mark.parametrize("n_worst", [100, 600])
def test_allowed_mask_adversarial_correlation(big_index, monkeypatch, n_worst: int) -> None:
    """The allowed rows are exactly the worst-ranked matches: over-fetching finds
    none at first, and the search must still return the k best of them (by
    growing the depth until the matches run out, or by switching to a filter)."""
    index, n, full_rows, full_scores = big_index
    calls = []
    real = TextIndex._search_pushdown
    monkeypatch.setattr(
        TextIndex, "_search_pushdown", lambda self, *a: calls.append(1) or real(self, *a)
    )
    mask = np.zeros(n, dtype=bool)
    mask[full_rows[-n_worst:]] = True
    rows, scores = index.search("common", k=10, allowed=mask)
    assert len(rows) == 10 and mask[rows].all()
    np.testing.assert_allclose(scores, expected_topk(full_rows, full_scores, mask, 10)[1], rtol=1e-6)
    if n_worst == 100:
        assert calls  # over-fetching gave up and the filter was pushed down


def test_allowed_mask_plans(big_index, monkeypatch) -> None:
    index, n, _, _ = big_index
    calls = []
    real = TextIndex._search_pushdown
    monkeypatch.setattr(
        TextIndex, "_search_pushdown", lambda self, *a: calls.append(1) or real(self, *a)
    )
    # A large, uncorrelated allowed set is served by over-fetching alone.
    mask = np.ones(n, dtype=bool)
    mask[::2] = False
    rows, _ = index.search("common", k=10, allowed=mask)
    assert len(rows) == 10 and mask[rows].all() and not calls
    # A tiny allowed set is pushed into the query (Should-of-terms filter) ...
    mask = np.zeros(n, dtype=bool)
    mask[[5, 17]] = True
    assert set(index.search("common", k=10, allowed=mask)[0].tolist()) == {5, 17}
    assert len(calls) == 1


@pytest.mark.parametrize("n_allowed", [1, 50, 128, 129, 700])
def test_pushdown_filters_match_full_ranking(big_index, n_allowed: int) -> None:
    """Both filter forms (Should-of-terms up to 128 rows, term set above) keep
    the BM25 scores unchanged and return the best allowed rows."""
    index, n, full_rows, full_scores = big_index
    rng = np.random.default_rng(n_allowed)
    allowed_rows = np.sort(rng.choice(n, n_allowed, replace=False))
    mask = np.zeros(n, dtype=bool)
    mask[allowed_rows] = True
    searcher = index._index.searcher()
    parsed = index._index.parse_query("common", ["text"])
    rows, scores = index._search_pushdown(searcher, parsed, 20, allowed_rows)
    assert mask[rows].all() and len(rows) == min(20, n_allowed)
    np.testing.assert_allclose(scores, expected_topk(full_rows, full_scores, mask, 20)[1], rtol=1e-6)


def test_allowed_mask_fewer_matches_than_k(big_index) -> None:
    index, n, _, _ = big_index
    mask = np.zeros(n, dtype=bool)
    mask[:1000] = True  # "rare" is in every 10th document: 100 allowed matches
    rows, _ = index.search("rare", k=500, allowed=mask)
    assert sorted(rows.tolist()) == list(range(0, 1000, 10))
    rows, _ = index.search("rare", k=5, allowed=np.zeros(n, dtype=bool))
    assert len(rows) == 0


def test_allowed_mask_shorter_than_rows(big_index) -> None:
    index, _, _, _ = big_index
    mask = np.ones(50, dtype=bool)  # rows >= 50 are disallowed
    rows, _ = index.search("rare", k=100, allowed=mask)
    assert sorted(rows.tolist()) == [0, 10, 20, 30, 40]
    rows, _ = index.search("common", k=100, allowed=mask)
    assert sorted(rows.tolist()) == list(range(50))


# ------------------------------------------------ markers, count, rows


def test_commit_marker_is_invisible_and_persistent(tmp_path: Path) -> None:
    path = tmp_path / "t"
    index = open_index(path)
    assert index.marker is None
    index.add([1, 2], ["alpha", "beta"])
    index.commit(marker=41)
    index.commit(marker=2**64 - 1)
    assert index.marker == 2**64 - 1
    assert index.count() == 2 and index.rows().tolist() == [1, 2]
    assert found(index, "*") == {1, 2}
    mask = np.ones(3, dtype=bool)
    assert found(index, "*", allowed=mask) == {1, 2}
    with pytest.raises(InvalidInputError):
        index.commit(marker=-1)
    index.close()
    index = open_index(path)
    assert index.marker == 2**64 - 1 and index.count() == 2
    index.rebuild([5], ["gamma"])  # a rebuild without a marker clears it
    assert index.marker is None and index.rows().tolist() == [5]
    index.close()


# -------------------------------------------- lifecycle and persistence


def test_reopen_keeps_committed_and_drops_uncommitted(tmp_path: Path) -> None:
    path = tmp_path / "t"
    index = open_index(path)
    index.add([1, 2], ["alpha", "beta"])
    index.commit()
    index.add([3], ["gamma"])  # never committed
    index.close()
    index.close()  # idempotent
    with pytest.raises(DatabaseClosedError):
        index.search("alpha")
    with pytest.raises(DatabaseClosedError):
        index.add([4], ["delta"])
    with open_index(path) as index:
        assert index.rows().tolist() == [1, 2]
        assert found(index, "alpha") == {1} and found(index, "gamma") == set()


def test_read_only_instance(tmp_path: Path) -> None:
    path = tmp_path / "t"
    with pytest.raises(CorruptionError):
        open_index(path, read_only=True)  # never creates
    writer = open_index(path)
    writer.add([1], ["alpha"])
    writer.commit(marker=5)
    reader = open_index(path, None, read_only=True)  # no lock needed
    assert reader.read_only and reader.tokenizer == "en_stem"
    assert reader.rows().tolist() == [1] and reader.marker == 5
    for call in (
        lambda: reader.add([2], ["beta"]),
        lambda: reader.delete([1]),
        lambda: reader.commit(),
        lambda: reader.rollback(),
        lambda: reader.rebuild([], []),
    ):
        with pytest.raises(ReadOnlyError):
            call()
    writer.add([2], ["beta"])
    writer.commit()
    assert found(reader, "beta") == set()  # sees the state it was opened with ...
    reader.reload()
    assert found(reader, "beta") == {2}  # ... until reloaded
    reader.close()
    writer.close()


def test_one_writer_per_folder(tmp_path: Path) -> None:
    path = tmp_path / "t"
    first = open_index(path)
    with pytest.raises(DatabaseLockedError):
        open_index(path)
    first.close()
    second = open_index(path)  # the lock is released on close
    second.close()


def test_tokenizer_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "t"
    index = open_index(path, "whitespace")
    index.add([1], ["Hello World"])
    index.commit()
    index.close()
    with pytest.raises(InvalidInputError, match="whitespace"):
        open_index(path, "en_stem")
    index = open_index(path, None)  # adopt the recorded tokenizer
    assert index.tokenizer == "whitespace"
    assert found(index, "Hello") == {1} and found(index, "hello") == set()
    index.close()


@pytest.mark.parametrize("bad", ["simple", "EN_STEM", "", "en_stem ", 3, ["en_stem"]])
def test_unknown_tokenizer_rejected(tmp_path: Path, bad) -> None:
    with pytest.raises(InvalidInputError):
        TextIndex(tmp_path / "t", bad)
    assert not (tmp_path / "t").exists()


def test_every_listed_tokenizer_works(tmp_path: Path) -> None:
    for name in TOKENIZERS:
        with open_index(tmp_path / name, name) as index:
            index.add([1, 2], ["zebra", "other"])
            index.commit()
            assert index.search("zebra")[0].tolist() == [1], name


def test_create_false_and_stray_files(tmp_path: Path) -> None:
    with pytest.raises(CorruptionError):
        open_index(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "0123456789abcdef0123456789abcdef.term").write_bytes(b"junk")
    with pytest.raises(CorruptionError):
        open_index(stray)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(CorruptionError):
        open_index(not_a_dir)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import importlib.util, types
    # load vjson.text_index without running the package __init__ (it needs the native core)
    pkg = types.ModuleType("vjson"); pkg.__path__ = [os.path.join(sys.argv[1], "vjson")]
    sys.modules.setdefault("vjson", pkg)
    from vjson.text_index import TextIndex
    index = TextIndex(sys.argv[2], writer_heap_bytes=15_000_000)
    index.add(range(10), [f"committed doc {i}" for i in range(10)])
    index.commit(marker=1)
    index.add(range(10, 20), [f"uncommitted doc {i}" for i in range(10, 20)])
    index.delete([0])
    index.add([5], ["rewritten"])
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    if sys.argv[3] == "exit":
        os._exit(0)
    elif sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        sys.stdin.readline()  # hold the writer lock until told
    """
)


def _src_dir() -> str:
    return str(Path(text_index_module.__file__).resolve().parent.parent)


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_crash_loses_only_uncommitted_work(tmp_path: Path, how: str) -> None:
    path = tmp_path / "t"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, _src_dir(), str(path), how],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ready" in proc.stdout, proc.stderr
    if how == "kill":
        assert proc.returncode == -signal.SIGKILL
    assert TextIndex.is_healthy(path)
    with open_index(path) as index:  # the dead writer's lock is gone
        assert index.rows().tolist() == list(range(10))
        assert index.marker == 1
        assert found(index, "uncommitted") == set()
        assert found(index, "rewritten") == set()
        assert found(index, "committed") == set(range(10))


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "t"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, _src_dir(), str(path), "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLockedError):
            open_index(path)
        assert TextIndex.is_healthy(path)  # checking needs no lock
    finally:
        child.kill()
        child.wait(timeout=30)
    with open_index(path) as index:
        assert index.count() == 10


def test_searches_run_during_writes(tmp_path: Path) -> None:
    index = open_index(tmp_path / "t")
    index.add(range(100), ["steady text"] * 100)
    index.commit()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                rows, _ = index.search("steady", k=1000)
                assert set(range(100)) <= set(rows.tolist())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            index.add(range(100 + 10 * i, 110 + 10 * i), ["steady more"] * 10)
            index.commit()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert index.count() == 300
    index.close()


# ------------------------------------------------ rebuild and corruption


def test_rebuild_replaces_everything(ti: TextIndex) -> None:
    ti.add([99], ["pending change that rebuild must drop"])
    ti.rebuild([10, 11, 10], ["new zebra", "new giraffe", "new okapi"], marker=3)
    assert ti.rows().tolist() == [10, 11]
    assert found(ti, "fox") == set() and found(ti, "pending") == set()
    assert found(ti, "okapi") == {10} and found(ti, "zebra") == set()
    assert ti.marker == 3
    ti.rebuild([], [])
    assert ti.count() == 0


def _segment_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.name != "meta.json")


def _populated(path: Path) -> None:
    with open_index(path) as index:
        index.add(range(200), [f"document number {i} about topic{i % 7}" for i in range(200)])
        index.commit()
        index.delete(range(0, 200, 3))  # a delete bitset file too
        index.commit()


def test_check_passes_on_healthy_index(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _populated(path)
    assert any(p.suffix == ".del" for p in _segment_files(path))
    TextIndex.check(path)
    assert TextIndex.is_healthy(path)
    assert not TextIndex.is_healthy(tmp_path / "nothing")


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_segment_files_are_detected(tmp_path: Path, damage: str) -> None:
    base = tmp_path / "base"
    _populated(base)
    for victim in _segment_files(base):
        path = tmp_path / f"{damage}-{victim.name}"
        shutil.copytree(base, path)
        target = path / victim.name
        data = bytearray(target.read_bytes())
        if damage == "flip":
            # flip bytes in the middle of the body (before tantivy's JSON footer)
            footer_len = 8 + int.from_bytes(data[-8:-4], "little")
            body = len(data) - footer_len
            assert body > 0
            for i in range(body // 2, min(body // 2 + 8, body)):
                data[i] ^= 0xFF
            target.write_bytes(bytes(data))
        elif damage == "truncate":
            target.write_bytes(bytes(data[: len(data) // 2]))
        else:
            target.unlink()
        assert not TextIndex.is_healthy(path), victim.name
        with pytest.raises(CorruptionError):
            TextIndex.check(path)
        # Opening and searching never crashes the process or leaks a Rust panic:
        # either it works (tantivy does not checksum on open) or it raises a vjson error.
        try:
            with open_index(path, verify=False) as index:
                index.search("document topic3", k=50)
                index.rows()
        except VJsonError:
            pass
        with pytest.raises(CorruptionError):
            open_index(path, verify=True)


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"segments": []}', b"\xff\xfe"])
def test_damaged_meta_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "t"
    _populated(path)
    (path / "meta.json").write_bytes(content)
    assert not TextIndex.is_healthy(path)
    with pytest.raises(CorruptionError):
        open_index(path)
    index = TextIndex.recreate(path, "en_stem", [1, 2], ["fresh start", "second doc"], writer_heap_bytes=HEAP)
    assert index.rows().tolist() == [1, 2] and found(index, "fresh") == {1}
    index.close()
    assert TextIndex.is_healthy(path)


def test_missing_meta_json_with_segments_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _populated(path)
    (path / "meta.json").unlink()
    with pytest.raises(CorruptionError):
        open_index(path)
    assert not TextIndex.is_healthy(path)


def test_remove_refuses_foreign_folders(tmp_path: Path) -> None:
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(InvalidInputError):
        TextIndex.remove(foreign)
    assert (foreign / "thesis.txt").exists()
    with pytest.raises(InvalidInputError):
        TextIndex.recreate(foreign)
    path = tmp_path / "t"
    _populated(path)
    TextIndex.remove(path)
    assert not path.exists()
    TextIndex.remove(path)  # missing is fine


def test_files_of_a_commit_killed_half_way_do_not_block_the_next(tmp_path: Path) -> None:
    """A writer killed after writing a commit's files but before its meta.json left
    e.g. `<segment>.<opstamp>.del`; redoing that commit on reopen must not trip on it.
    (Found by the kill -9 loop.) Rebuilt here: the folder before the commit, plus the
    files the commit wrote and the bookkeeping that registered them."""
    import shutil

    path = tmp_path / "text"
    index = open_index(path)
    index.add(list(CORPUS), list(CORPUS.values()))
    index.commit()
    index.close()
    before = tmp_path / "before"
    shutil.copytree(path, before)
    index = open_index(path)
    index.delete([1])
    index.commit()
    index.close()
    written = set(os.listdir(path)) - set(os.listdir(before))
    assert any(name.endswith(".del") for name in written)
    for name in written | {".managed.json"}:  # meta.json stays the old one: the commit never happened
        shutil.copy(path / name, before / name)
    index = open_index(before)
    assert found(index, "park") == {1}
    index.delete([1])
    index.commit()  # the same opstamp again: its .del file name is taken
    assert found(index, "park") == set() and index.rows().tolist() == [0, 2, 3, 4]
    index.close()


# ------------------------------------------------------------ exact word forms

EXACT_CORPUS = {
    0: "operations of the operating room",  # only other forms of "operate" (stem "oper")
    1: "to operate a machine or vehicle",   # both query words as written, a longer text
    2: "machines",
    3: "operating machines",                # other forms of both, short
}


def _index_of(tmp_path: Path, corpus: dict[int, str]) -> TextIndex:
    index = open_index(tmp_path / "exact")
    index.add(list(corpus), list(corpus.values()))
    index.commit()
    return index


def test_exact_form_ranks_above_stemmed_form(tmp_path: Path) -> None:
    with _index_of(tmp_path, EXACT_CORPUS) as index:
        stemmed, _ = index.search("operate", 3, syntax=False)
        assert set(stemmed.tolist()) == {0, 1, 3} and stemmed[-1] == 1  # BM25 alone: the long row last
        rows, scores = index.search("operate", 4, syntax=False, texts=EXACT_CORPUS)
        assert rows[0] == 1 and set(rows.tolist()) == {0, 1, 3}
        assert list(scores) == sorted(scores, reverse=True)
        # case and punctuation around the word do not matter
        assert (index.search("Operate!", 4, syntax=False, texts=EXACT_CORPUS)[0].tolist()
                == rows.tolist())
        # the row holding both words as written beats the short one holding
        # other forms of both, which BM25 alone prefers
        both = index.search("operate machine", 4, syntax=False)[0]
        assert both[0] == 3
        assert index.search("operate machine", 4, syntax=False, texts=EXACT_CORPUS)[0][0] == 1
        # syntax=True and a weight of 0 keep plain BM25
        assert index.search("operate", 4, syntax=True, texts=EXACT_CORPUS)[0].tolist() == stemmed.tolist()


def test_exact_form_weight_zero_is_plain_bm25(tmp_path: Path, monkeypatch) -> None:
    with _index_of(tmp_path, EXACT_CORPUS) as index:
        monkeypatch.setattr(text_index_module, "EXACT_FORM_WEIGHT", 0.0)
        plain = index.search("operate", 4, syntax=False)
        boosted = index.search("operate", 4, syntax=False, texts=EXACT_CORPUS)
        assert plain[0].tolist() == boosted[0].tolist()
        assert np.allclose(plain[1], boosted[1])


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("filtered", [False, True])
def test_exact_form_ranking_matches_a_reference(tmp_path: Path, k: int, filtered: bool) -> None:
    """The boosted top k equals the reference computed from every match's BM25
    and the known exact-form rows, even when an exact-form row sits far below
    the first hits read (60 short stem-only rows ahead of it)."""
    corpus = {i: f"operations w{i}" for i in range(60)}
    corpus.update({100 + i: "one who would operate " + "filler " * i for i in range(5)})
    exact_rows = set(range(100, 105))
    allowed = None
    if filtered:
        allowed = np.zeros(200, dtype=bool)
        allowed[::2] = True
    with _index_of(tmp_path, corpus) as index:
        rows, scores = index.search("operate", 1000, allowed, syntax=False)  # every match, plain BM25
        assert set(rows.tolist()) & exact_rows and rows[0] not in exact_rows
        weight = text_index_module.EXACT_FORM_WEIGHT
        ref = sorted(zip(rows.tolist(), scores.tolist()),
                     key=lambda rs: -rs[1] * (1 + weight * (rs[0] in exact_rows)))[:k]
        got, got_scores = index.search("operate", k, allowed, syntax=False, texts=corpus)
        assert got.tolist() == [r for r, _ in ref]
        assert np.allclose(got_scores, [s * (1 + weight * (r in exact_rows)) for r, s in ref], rtol=1e-5)


@pytest.mark.parametrize("query", ["", "  ", '"', "c++ -x", "NOT", "日本語", "éÉ", "fox\x00", "(a) [b] {c}", "a" * 300])
def test_exact_forms_with_odd_queries_never_raise(ti: TextIndex, query: str) -> None:
    rows, scores = ti.search(query, 5, syntax=False, texts=CORPUS)
    assert len(rows) == len(scores) <= 5
