"""Full-text and hybrid search through the database, and the text index's recovery."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import vjson
from vjson import fusion

DIM = 8
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a fox runs through the forest at night",
    "dogs are running in the park",
    "the cat sleeps on the warm mat",
    "quantum computing with superconducting qubits",
    "brown bears fish for salmon in the river",
    "the lazy afternoon sun over the river",
    "running shoes for marathon training",
]


@pytest.fixture
def db(tmp_path):
    rng = np.random.default_rng(0)
    database = vjson.VectorDB(tmp_path / "db", dimension=DIM, metric="cosine")
    database.insert_batch([f"d{i}" for i in range(len(TEXTS))], rng.normal(size=(len(TEXTS), DIM)),
                          [{"i": i, "animal": i in (0, 1, 2, 3, 5)} for i in range(len(TEXTS))], TEXTS)
    yield database
    database.close()


def ids(results):
    return [r.id for r in results]


class TestTextSearch:
    def test_syntax_terms_phrases_boolean_and_stemming(self, db):
        assert set(ids(db.text_search("fox"))) == {"d0", "d1"}
        assert ids(db.text_search('"lazy dog"', syntax=True)) == ["d0"]
        assert set(ids(db.text_search("fox AND forest", syntax=True))) == {"d1"}
        assert set(ids(db.text_search("fox AND NOT forest", syntax=True))) == {"d0"}
        assert set(ids(db.text_search("salmon OR qubits", syntax=True))) == {"d4", "d5"}
        assert set(ids(db.text_search("run"))) >= {"d1", "d2", "d7"}  # runs, running -> run

    def test_results_carry_score_metadata_text(self, db):
        hit = db.text_search("quantum")[0]
        assert hit.id == "d4" and hit.score > 0 and hit.distance is None
        assert hit.metadata == {"i": 4, "animal": False} and hit.text == TEXTS[4]

    def test_syntax_error_is_query_error(self, db):
        with pytest.raises(vjson.QueryError):
            db.text_search('"unbalanced', syntax=True)
        assert ids(db.text_search('"unbalanced', syntax=False)) == []

    @pytest.mark.parametrize("query", [
        "", "   ", '"', '"unbalanced', "(", "a)", "fox AND", "AND", "OR OR", "NOT", "NOT fox", "-fox", "+fox -",
        "fox^", "fox^2", "title:fox", "row:1", "*", "fox~", "[1 TO", "c++", "no man's land", "\\", "\\\"",
        "fox\x00dog", "日本語のテキスト", "éàü ß", "emoji 🦊", "\t\n", "a" * 500, "fox " * 200,
    ])
    def test_plain_text_never_raises(self, db, query):
        hits = db.text_search(query, k=5)
        assert len(hits) <= 5 and all(h.id in db for h in hits)

    def test_plain_operators_are_words(self, db):
        # "NOT fox" and "-fox" are the word fox (and "not"), never an exclusion
        assert set(ids(db.text_search("NOT fox"))) == {"d0", "d1"}
        assert set(ids(db.text_search("-fox"))) == {"d0", "d1"}
        # "fox AND forest" is an OR: every row with either word, the one with both first
        hits = ids(db.text_search("fox AND forest"))
        assert hits[0] == "d1" and set(hits) == {"d0", "d1"}

    def test_hyphenated_query_finds_its_words_apart(self, db):
        # no row holds "lazy-fox" as a phrase; rows with either word are found,
        # the one holding both words (apart) first
        hits = ids(db.text_search("lazy-fox"))
        assert hits[0] == "d0" and set(hits) == {"d0", "d1", "d6"}
        # and the syntax path keeps the old meaning: a required phrase, which no row holds
        assert ids(db.text_search("lazy-fox", syntax=True)) == []

    def test_phrase_bonus_adds_but_is_not_required(self, tmp_path, monkeypatch):
        from vjson import text_index

        monkeypatch.setattr(text_index, "PHRASE_BOOST", 0.5)
        # same words, same lengths: only the phrase can order them
        with vjson.VectorDB(tmp_path / "p", dimension=2) as pdb:
            pdb.insert_batch(["apart", "phrase", "one"], np.ones((3, 2)),
                             texts=["dog sleeps all lazy", "all lazy dog sleeps", "a lazy cat naps"])
            assert ids(pdb.text_search("lazy dog")) == ["phrase", "apart", "one"]

    def test_filter_applies(self, db):
        assert set(ids(db.text_search("the", filter={"animal": True}))) <= {"d0", "d1", "d2", "d3", "d5"}
        assert ids(db.text_search("river", filter={"i": {"$gt": 5}})) == ["d6"]

    def test_upsert_and_delete_reflected_at_once(self, db):
        db.insert("d4", np.ones(DIM), text="classical mechanics")
        assert ids(db.text_search("quantum")) == []
        assert ids(db.text_search("mechanics")) == ["d4"]
        db.delete(["d0"])
        assert ids(db.text_search("fox")) == ["d1"]
        db.insert("new", np.ones(DIM), text="a fox again")
        assert set(ids(db.text_search("fox"))) == {"d1", "new"}

    def test_survives_reopen_and_compact(self, tmp_path, db):
        db.delete(["d1"])
        db.compact()
        assert ids(db.text_search("fox")) == ["d0"]
        db.close()
        with vjson.open(tmp_path / "db") as again:
            assert ids(again.text_search("fox")) == ["d0"]
            assert set(ids(again.text_search("run"))) >= {"d2", "d7"}


class TestHybrid:
    def test_fused_scores_are_rrf_of_both_sides(self, db):
        q = db.get("d5").vector
        hits = db.hybrid_search(q, "brown", k=5, rrf_k=60)
        vec = db.search(q, k=100)
        txt = db.text_search("brown", k=100)
        as_rows = lambda results: [int(r.id[1:]) for r in results]  # noqa: E731
        expect = fusion.rrf([as_rows(vec), as_rows(txt)], k=60)
        assert as_rows(hits) == [h.row for h in expect][:5]
        top = hits[0]
        assert top.id == "d5" and top.vector_rank == 1 and top.text_rank is not None
        assert top.score == pytest.approx(1 / 61 + 1 / (60 + top.text_rank))

    def test_weighted_fusion_and_alpha_extremes(self, db):
        q = db.get("d3").vector
        only_vector = db.hybrid_search(q, "fox", k=3, fusion="weighted", alpha=1.0)
        assert ids(only_vector)[0] == "d3"
        only_text = db.hybrid_search(q, "fox", k=2, fusion="weighted", alpha=0.0)
        assert only_text[0].id == db.text_search("fox")[0].id and only_text[0].score == pytest.approx(1.0)
        # min-max scaling puts the weaker of two text hits at 0, like a vector-only hit
        assert only_text[0].vector_rank is None or only_text[0].text_rank == 1
        with pytest.raises(vjson.InvalidInputError):
            db.hybrid_search(q, "fox", fusion="max")

    def test_filter_on_both_sides(self, db):
        q = db.get("d4").vector
        hits = db.hybrid_search(q, "river lazy", k=8, filter={"animal": False})
        assert hits and all(not h.metadata["animal"] for h in hits)

    def test_plain_text_with_apostrophes(self, db):
        db.hybrid_search(db.get("d0").vector, "no man's land", k=3)  # no QueryError


class TestTextRecovery:
    def test_missing_text_folder_is_rebuilt_with_a_warning(self, tmp_path, db, caplog):
        db.close()
        shutil.rmtree(tmp_path / "db" / "text-0")
        with vjson.open(tmp_path / "db") as again:
            assert set(ids(again.text_search("fox"))) == {"d0", "d1"}
        assert any("text index" in r.message for r in caplog.records)

    def test_corrupted_text_folder_is_rebuilt(self, tmp_path, db):
        db.close()
        folder = tmp_path / "db" / "text-0"
        (folder / "meta.json").write_text("{ garbage")
        with vjson.open(tmp_path / "db") as again:
            assert set(ids(again.text_search("fox"))) == {"d0", "d1"}

    def test_crash_between_log_and_text_commit_catches_up(self, tmp_path):
        """The child commits to our log, then dies before tantivy commits."""
        path = tmp_path / "db"
        code = f"""
import os, sys, numpy as np, vjson
from vjson.text_index import TextIndex
db = vjson.VectorDB(sys.argv[1], dimension={DIM})
db.insert('a', np.ones({DIM}), text='alpha words here')
TextIndex.commit = lambda self, marker=None: os.kill(os.getpid(), 9)
db.insert('b', np.ones({DIM}), text='beta words here')
"""
        run = subprocess.run([sys.executable, "-c", code, str(path)])
        assert run.returncode == -signal.SIGKILL
        with vjson.open(path) as db:
            assert ids(db.text_search("beta")) == ["b"]
            assert ids(db.text_search("alpha")) == ["a"]
            assert len(db) == 2
