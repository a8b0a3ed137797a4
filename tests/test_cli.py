"""The ``vjson`` command line: every command through ``main([...])``, and through
``python -m vjson`` in a subprocess; exit codes, one-line errors, ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vjson
from vjson import cli

DIM = 8


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database built by ``vjson demo PATH`` (read, never changed, by the tests using it)."""
    path = tmp_path_factory.mktemp("demo") / "db"
    assert cli.main(["demo", str(path)]) == 0
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Inputs for ``vjson import``: 250 vectors, metadata with ids and texts, an ids file."""
    rng = np.random.default_rng(1)
    n = 250
    np.save(tmp_path / "v.npy", rng.normal(size=(n, DIM)).astype(np.float32))
    with open(tmp_path / "m.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            body = f"record {i} about {'cats' if i % 2 else 'dogs'}"
            f.write(json.dumps({"key": f"doc{i}", "group": i % 5, "body": body}) + "\n")
    (tmp_path / "ids.txt").write_text("".join(f"id{i}\n" for i in range(n)), encoding="utf-8")
    return {"vectors": tmp_path / "v.npy", "metadata": tmp_path / "m.jsonl", "ids": tmp_path / "ids.txt",
            "db": tmp_path / "db", "dir": tmp_path}


def import_all(capsys: pytest.CaptureFixture[str], files: dict[str, Path], *extra: str) -> tuple[int, str, str]:
    return run(capsys, "import", str(files["db"]), "--vectors", str(files["vectors"]), "--metadata",
               str(files["metadata"]), "--id-field", "key", "--text-field", "body", *extra)


# ---------------------------------------------------------------- the demo and its data

def test_demo_data_is_small_licensed_and_consistent() -> None:
    folder = cli.DEMO_DATA
    assert folder.parent == Path(cli.__file__).resolve().parent  # package data, not ../shared
    shipped = [p for p in folder.iterdir() if not p.name.startswith(("_", "."))]
    assert sum(p.stat().st_size for p in shipped) < 1_500_000
    assert "WordNet" in (folder / "LICENSE-WordNet.txt").read_text(encoding="utf-8")
    data = cli.load_demo_data()
    n = len(data.ids)
    assert 1000 <= n <= 2000 and len(set(data.ids)) == n
    assert data.vectors.shape == (n, 384) and data.vectors.dtype == np.float32
    assert len(data.texts) == len(data.metadata) == n
    assert {"pos", "lexname", "n_words", "lemmas"} <= set(data.metadata[0])
    assert data.queries.shape == (len(data.query_texts), 384) and len(data.query_texts) >= 10
    assert data.keyword_vectors.shape == (len(data.keywords), 384) and len(data.keywords) >= 10
    assert all(rel <= set(data.ids) for rel in data.relevant)  # every judged gloss is in the sample


def test_demo_prints_every_kind_of_search(capsys: pytest.CaptureFixture[str]) -> None:
    # into a temporary folder, removed afterwards
    code, out, err = run(capsys, "demo")
    assert code == 0, err
    for section in ("Insert", "Vector search", "Filtered vector search", "Full-text search",
                    "Hybrid search", "Latency"):
        assert section in out
    recalls = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if "against exact search" in line]
    assert len(recalls) == 2 and min(recalls) >= 0.95
    assert "beaver" in out and "storm" in out
    temp = next(line.split()[1] for line in out.splitlines() if line.startswith("database:"))
    assert not Path(temp).exists()  # the temporary database is removed


def test_demo_database_is_real(demo_db: Path) -> None:
    with vjson.open(demo_db, read_only=True) as db:
        assert len(db) == len(cli.load_demo_data().ids)
        verbs = db.count({"pos": "v"})
        assert 0 < verbs < len(db)
        hits = db.text_search("storm", k=3, syntax=False)
        assert hits and all("storm" in (h.text or "").lower() for h in hits)


# ---------------------------------------------------------------- info, verify

def test_info(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, "info", str(demo_db))
    n = len(cli.load_demo_data().ids)
    assert info["records"] == info["rows"] == n and info["retired_rows"] == 0
    assert info["settings"]["dimension"] == 384 and info["settings"]["metric"] == "cosine"
    assert info["graph"]["nodes"] == n and info["graph"]["levels"] >= 2
    assert info["filters"]["fields"]["pos"] == n and set(info["filters"]["fields"]) >= {"lexname", "lemmas"}
    assert info["text"]["documents"] == n
    assert "MANIFEST.json" in info["files"] and "text-0/" in info["files"]
    assert info["total_bytes"] == sum(f["bytes"] for f in info["files"].values())
    code, out, err = run(capsys, "info", str(demo_db))
    assert code == 0 and f"{n:,}" in out and "graph" in out and "pos" in out


def test_verify_ok_and_damaged(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert import_all(capsys, files)[0] == 0
    report = run_json(capsys, "verify", str(files["db"]))
    assert report["ok"] is True and report["problems"] == [] and report["records"] == 250
    code, out, _ = run(capsys, "verify", str(files["db"]))
    assert code == 0 and out.strip().splitlines()[-1].startswith("ok:")

    vectors = next(files["db"].glob("vectors-*.f32"))
    with open(vectors, "r+b") as f:
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, out, _ = run(capsys, "verify", str(files["db"]), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert any("vector" in p for p in report["problems"])
    code, out, _ = run(capsys, "verify", str(files["db"]))
    assert code == 1 and "FAILED" in out and "NOT OK" in out


def test_info_verify_of_a_non_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("info", "verify", "compact", "search"):
        extra = ["--text", "x"] if command == "search" else []
        code, out, err = run(capsys, command, str(tmp_path / "missing"), *extra)
        assert code == 1 and out == ""
        one_line_error(err, f"vjson {command}", "does not hold a vjson database")


# ---------------------------------------------------------------- import, compact

def test_import_creates_with_ids_metadata_and_text(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = import_all(capsys, files, "--metric", "l2", "--batch-size", "64")
    assert code == 0, err
    assert "imported 250 records" in out and "created" in out
    with vjson.open(files["db"], read_only=True) as db:
        assert len(db) == 250 and db.metric == "l2" and db.dimension == DIM
        rec = db.get("doc7")
        assert rec.text == "record 7 about cats"
        assert rec.metadata == {"key": "doc7", "group": 2}  # the text field moved out of the metadata
        np.testing.assert_array_equal(rec.vector, np.load(files["vectors"])[7])
        assert [h.id for h in db.text_search("dogs", k=300)] and db.count({"group": 0}) == 50


def test_import_ids_file_default_ids_and_upserts(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db_path = str(files["db"])
    assert run(capsys, "import", db_path, "--vectors", str(files["vectors"]), "--ids", str(files["ids"]))[0] == 0
    assert run(capsys, "import", db_path, "--vectors", str(files["vectors"]))[0] == 0  # ids 0..249
    code, out, _ = run(capsys, "import", db_path, "--vectors", str(files["vectors"]), "--ids", str(files["ids"]))
    assert code == 0 and "500 records (+0)" in out  # same ids again: replaced
    with vjson.open(db_path, read_only=True) as db:
        assert "id0" in db and "249" in db and len(db) == 500

    info = run_json(capsys, "info", db_path)
    assert info["records"] == 500 and info["rows"] == 750 and info["retired_rows"] == 250
    report = run_json(capsys, "compact", db_path)
    assert report["records"] == 500 and report["rows_dropped"] == 250
    assert report["bytes_after"] < report["bytes_before"]
    info = run_json(capsys, "info", db_path)
    assert info["rows"] == 500 and info["retired_rows"] == 0 and info["graph"]["nodes"] == 500
    code, out, _ = run(capsys, "compact", db_path)
    assert code == 0 and "500 records kept, 0 deleted" in out


def test_import_checks_inputs_before_writing(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db, vec, meta = str(files["db"]), str(files["vectors"]), files["metadata"]
    short = files["dir"] / "short.jsonl"
    short.write_text("".join(meta.read_text(encoding="utf-8").splitlines(keepends=True)[:10]), encoding="utf-8")
    code, _, err = run(capsys, "import", db, "--vectors", vec, "--metadata", str(short))
    assert code == 1
    one_line_error(err, "holds 10 records for 250 vectors")
    assert not files["db"].exists()  # nothing was created

    broken = files["dir"] / "broken.jsonl"
    lines = meta.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[5] = "{not json\n"
    broken.write_text("".join(lines), encoding="utf-8")
    code, _, err = run(capsys, "import", db, "--vectors", vec, "--metadata", str(broken))
    assert code == 1
    one_line_error(err, "broken.jsonl:6", "not valid JSON")

    code, _, err = run(capsys, "import", db, "--vectors", vec, "--dimension", "3")
    assert code == 1
    one_line_error(err, "--dimension 3")

    code, _, err = run(capsys, "import", db, "--vectors", str(files["dir"] / "nope.npy"))
    assert code == 1
    one_line_error(err, "nope.npy")
    assert not files["db"].exists()


def test_import_usage_errors(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db, vec = str(files["db"]), str(files["vectors"])
    for argv, words in [
        (["import", db], ["--vectors"]),
        (["import", db, "--vectors", vec, "--id-field", "key"], ["--id-field needs --metadata"]),
        (["import", db, "--vectors", vec, "--ids", "a", "--id-field", "b"], ["not allowed with"]),
        (["import", db, "--vectors", vec, "--batch-size", "0"], ["--batch-size"]),
        (["import", db, "--vectors", vec, "--metric", "hamming"], ["invalid choice"]),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        one_line_error(err, "vjson import", *words)


def test_import_into_an_existing_database_checks_its_settings(files: dict[str, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert import_all(capsys, files, "--metric", "l2")[0] == 0
    code, _, err = run(capsys, "import", str(files["db"]), "--vectors", str(files["vectors"]), "--metric", "cosine")
    assert code == 1
    one_line_error(err, "stores metric 'l2'")
    np.save(files["dir"] / "wide.npy", np.ones((3, DIM + 1), np.float32))
    code, _, err = run(capsys, "import", str(files["db"]), "--vectors", str(files["dir"] / "wide.npy"))
    assert code == 1
    one_line_error(err, f"{DIM}-d")


def test_import_failing_batch_reports_what_was_committed(files: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    vectors = np.load(files["vectors"])
    vectors[130, 2] = np.nan
    np.save(files["vectors"], vectors)
    code, _, err = run(capsys, "import", str(files["db"]), "--vectors", str(files["vectors"]), "--batch-size", "100")
    assert code == 1
    one_line_error(err, "rows 100..199", "rows 0..99 were imported")
    with vjson.open(files["db"], read_only=True) as db:
        assert len(db) == 100


# ---------------------------------------------------------------- search

def test_search_vector_text_hybrid(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = cli.load_demo_data()
    qfile = cli.DEMO_DATA / "queries.f16.npy"
    out = run_json(capsys, "search", str(demo_db), "--vector-file", str(qfile), "--row", "3", "-k", "4")
    assert out["mode"] == "vector" and len(out["results"]) == 4
    exact, _ = vjson.brute_force_knn(data.vectors, data.queries[3:4], 4, metric="cosine")
    assert len({r["id"] for r in out["results"]} & {data.ids[i] for i in exact[0]}) >= 3  # approximate search
    assert out["results"][0]["score"] >= out["results"][-1]["score"]
    assert {"id", "distance", "score", "metadata", "text"} <= set(out["results"][0])

    vector = json.dumps(data.queries[3].tolist())
    same = run_json(capsys, "search", str(demo_db), "--vector", vector, "-k", "4")
    assert [r["id"] for r in same["results"]] == [r["id"] for r in out["results"]]

    verbs = run_json(capsys, "search", str(demo_db), "--vector", vector, "--filter", '{"pos": "v"}', "-k", "5")
    assert len(verbs["results"]) == 5 and all(r["metadata"]["pos"] == "v" for r in verbs["results"])

    text = run_json(capsys, "search", str(demo_db), "--text", "storm", "--filter", '{"pos": "v"}')
    assert text["mode"] == "text" and text["results"]
    assert all("storm" in r["text"] and r["metadata"]["pos"] == "v" for r in text["results"])
    assert all(r["distance"] is None for r in text["results"])

    hfile = cli.DEMO_DATA / "hybrid_queries.f16.npy"
    row = data.keywords.index("beaver")
    hybrid = run_json(capsys, "search", str(demo_db), "--vector-file", str(hfile), "--row", str(row),
                      "--text", "beaver", "--hybrid", "-k", "5")
    assert hybrid["mode"] == "hybrid" and len(hybrid["results"]) == 5
    assert {"vector_rank", "text_rank"} <= set(hybrid["results"][0])
    assert set(r["id"] for r in hybrid["results"]) & data.relevant[row]

    code, out, _ = run(capsys, "search", str(demo_db), "--text", "storm", "-k", "2")
    assert code == 0 and out.startswith("2 results (text search, k=2)")
    code, out, _ = run(capsys, "search", str(demo_db), "--vector-file", str(hfile), "--row", str(row),
                       "--text", "beaver", "--hybrid", "-k", "3")
    assert code == 0 and "[vector #1" in out


@pytest.mark.parametrize("argv, words", [
    ([], ["give a query"]),
    (["--vector", "[1, 2]", "--text", "x"], ["--hybrid"]),
    (["--text", "x", "--hybrid"], ["--hybrid needs"]),
    (["--vector", "[1, 2"], ["--vector", "not valid JSON"]),
    (["--vector", '{"a": 1}'], ["JSON list of numbers"]),
    (["--text", "x", "--filter", "[1]"], ["--filter must be a JSON object"]),
    (["--text", "x", "--filter", "{pos: v}"], ["--filter", "not valid JSON"]),
    (["--text", "x", "--row", "1"], ["--row goes with --vector-file"]),
    (["--text", "x", "-k", "0"], ["-k must be positive"]),
    (["--vector", "[1, 2]", "--vector-file", "q.npy"], ["not allowed with"]),
    (["--vector", "[1, 2, 3]"], ["3 values", "dimension is 384"]),
    (["--vector-file", "QFILE", "--row", "999"], ["--row 999"]),
])
def test_search_usage_errors(demo_db: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                             words: list[str]) -> None:
    argv = [str(cli.DEMO_DATA / "queries.f16.npy") if a == "QFILE" else a for a in argv]
    code, out, err = run(capsys, "search", str(demo_db), *argv)
    assert code == 2 and out == ""
    one_line_error(err, "vjson search", *words)


def test_search_library_errors_exit_1(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", str(demo_db), "--text", "x", "--filter", '{"pos": {"$foo": 1}}')
    assert code == 1
    one_line_error(err, "vjson search", "unknown operator $foo")
    code, _, err = run(capsys, "search", str(demo_db), "--text", "AND (", "--syntax")
    assert code == 1
    one_line_error(err, "vjson search")


# ---------------------------------------------------------------- the command itself

def test_help_version_and_bad_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "demo" in out and "import" in out and "verify" in out
    code, out, _ = run(capsys, "search", "--help")
    assert code == 0 and "--hybrid" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and vjson.__version__ in out
    code, _, err = run(capsys)
    assert code == 2
    one_line_error(err, "COMMAND")
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    one_line_error(err, "invalid choice")


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "info", str(tmp_path / "missing"), "--debug")
    assert code == 1 and "Traceback" in err and "NotADatabaseError" in err
    code, _, err = run(capsys, "--debug", "info", str(tmp_path / "missing"))
    assert code == 1 and "Traceback" in err


def test_library_logging_is_shown_once_and_removed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import logging

    handlers = list(logging.getLogger("vjson").handlers)
    run(capsys, "info", str(tmp_path / "missing"))
    assert logging.getLogger("vjson").handlers == handlers


# ---------------------------------------------------------------- python -m vjson

def _python_m(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "vjson", *argv], capture_output=True, text=True, env=env,
                          timeout=120)


def test_subprocess_commands(demo_db: Path, files: dict[str, Path]) -> None:
    proc = _python_m("import", str(files["db"]), "--vectors", str(files["vectors"]), "--metadata",
                     str(files["metadata"]), "--id-field", "key", "--text-field", "body")
    assert proc.returncode == 0, proc.stderr
    assert "imported 250 records" in proc.stdout

    proc = _python_m("search", str(files["db"]), "--text", "cats", "-k", "3", "--filter", '{"group": 1}', "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert len(results) == 3 and all(r["metadata"]["group"] == 1 and "cats" in r["text"] for r in results)

    proc = _python_m("info", str(demo_db), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["records"] > 1000
    proc = _python_m("verify", str(files["db"]), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True
    proc = _python_m("compact", str(files["db"]))
    assert proc.returncode == 0 and "250 records kept" in proc.stdout

    proc = _python_m("info", str(files["dir"] / "missing"))
    assert proc.returncode == 1 and proc.stdout == ""
    one_line_error(proc.stderr, "does not hold a vjson database")
    proc = _python_m("search", str(demo_db), "--vector", "[1,")
    assert proc.returncode == 2
    one_line_error(proc.stderr, "--vector")


def test_subprocess_demo(tmp_path: Path) -> None:
    proc = _python_m("demo", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    assert "Hybrid search" in proc.stdout and proc.stderr == ""
    assert (tmp_path / "demo" / "MANIFEST.json").exists()
