"""Disk faults and on-disk corruption.

Faults: every write system call of vjson goes through ``vjson.storage.fs``. A
scripted workload (insert_batch with texts, single inserts and upserts,
update_metadata, delete by id and by filter, flush, compact, close) is run
once per N, with the N-th call raising ``OSError(ENOSPC)`` or ``OSError(EIO)``,
for every N. Each time:

* the failing call raises StorageError (an OSError subclass; never a bare or
  foreign exception);
* the database in memory holds the state before the call or after it, never
  a mix;
* it stays usable (a following write succeeds and is acknowledged) or
  refuses writes with a VJsonError;
* reopened (after a clean close, or after "dying": the object abandoned with
  its files released), it holds exactly what it held in memory, including the
  write acknowledged after the fault, and passes ``verify()`` and the search
  checks of the crash suite.

A "sticky" variant keeps the disk full from the N-th call on: writes must
keep failing cleanly, reads keep working, and nothing committed is lost.

Corruption: each file of a closed database is truncated or has bytes
flipped; opening it and searching runs in a subprocess, which must not die of
a signal, and must end in a clear VJsonError at open, a problem reported by
``verify()``, or exactly the right contents and results (a repair such as
the text index being rebuilt, or damage in unused bytes). Damage at the end of
the log is the one case that may open as an *older* consistent state: a torn
last frame is what a crash during an append leaves, and is dropped by design.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vjson
from conftest import LONG
from crash_worker import run as run_op
from crash_worker import unique_word, vector_for
from test_reliability_crash import DIM, _scripted_ops, apply, check_database, copy_folder, expected_state, state_of
from vjson import storage

FS_CALLS = ("write", "pwrite", "fsync", "truncate", "replace")


class Injector:
    """Counts calls to vjson.storage.fs and fails from the `fail_at`-th on (once, or for good)."""

    def __init__(self, monkeypatch, fail_at: int | None = None, err: int = errno.ENOSPC, sticky: bool = False):
        self.calls = 0
        self.fail_at = fail_at
        self.err = err
        self.sticky = sticky
        self.fired = 0
        self.enabled = True
        for name in FS_CALLS:
            monkeypatch.setattr(storage.fs, name, self._wrap(name, getattr(storage.fs, name)))

    def _wrap(self, name, fn):
        def call(*args, **kwargs):
            if self.enabled:
                self.calls += 1
                if self.fail_at is not None and (self.calls == self.fail_at
                                                 or (self.sticky and self.calls > self.fail_at)):
                    self.fired += 1
                    raise OSError(self.err, f"{os.strerror(self.err)} (injected into fs.{name})")
            return fn(*args, **kwargs)
        return call


def _base(tmp_path_factory) -> tuple[Path, dict]:
    """A database with a checkpoint, a non-empty log, texts and dead rows; closed by "dying"."""
    base = tmp_path_factory.mktemp("fault-base") / "db"
    model: dict = {}
    db = vjson.VectorDB(base, dimension=DIM, metric="l2", M=8, ef_construction=64)
    recs = [{"id": f"p{i}", "key": 90_000 + i, "meta": {"g": i % 6, "v": i},
             "text": f"stone {unique_word(90_000 + i)}" if i % 2 else None} for i in range(60)]
    # ends with a write that commits the text index, so that opening a copy has nothing to resync
    for op in ({"op": "insert_batch", "records": recs}, {"op": "flush"},
               {"op": "update_metadata", "id": "p7", "merge": True, "meta": {"u": 1}},
               {"op": "delete", "ids": ["p0", "p5"]}):
        run_op(op, db, DIM)
        model = apply(model, op)
    db._release_files()
    db._closed = True
    return base, model


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return _base(tmp_path_factory)


def _workload() -> list[dict]:
    """The crash suite's scripted workload without new texts: every text write costs a tantivy
    commit (slow), and tantivy's own writes cannot be injected anyway. The base database's
    texts still go through deletes, upserts and compaction."""
    ops = _scripted_ops()
    for op in ops:
        for rec in op.get("records", []):
            rec["text"] = None
    ops.append({"op": "close"})
    return ops


GROUPS_OF_OPS = {"writes": ("insert", "insert_batch", "upsert", "update_metadata", "delete", "delete_filter"),
                 "flush": ("flush",), "compact": ("compact",), "close": ("close",)}


def _run_with_fault(tmp: Path, base: tuple[Path, dict], monkeypatch, fail_at: int, err: int, sticky: bool,
                    exit_mode: str) -> tuple[str, int]:
    """One run; returns (what happened, ops completed). Raises AssertionError on a violation."""
    path = tmp / "db"
    copy_folder(base[0], path)
    model = base[1]
    db = vjson.VectorDB(path)
    inj = Injector(monkeypatch, fail_at, err, sticky)
    outcome = "no fault"
    done = 0
    try:
        for op in _workload():
            before = model
            after = apply(model, op) if op["op"] != "close" else model
            try:
                if op["op"] == "close":
                    db.close()
                else:
                    run_op(op, db, DIM)
            except vjson.StorageError as exc:
                assert inj.fired, f"StorageError without an injected fault: {exc}"
                assert isinstance(exc, OSError) and exc.errno == err, exc
                outcome = f"{op['op']} failed"
            except Exception as exc:  # noqa: BLE001 - anything else is a finding
                raise AssertionError(f"{op['op']} raised {type(exc).__name__} (not StorageError) "
                                     f"for an injected {errno.errorcode[err]}: {exc}") from exc
            else:
                model = after
                done += 1
                if not inj.fired:
                    continue
                outcome = f"fault absorbed during {op['op']}"  # e.g. a failed unlink of an old file
            # --- the failing call (or the first call after the fault fired) ---
            if op["op"] == "close":
                if not db.closed:
                    # close() failed: the caller may retry once the disk has room again
                    inj.enabled = False
                    db.close()
                break
            have = state_of(db)
            if have == expected_state(after):
                model = after
            else:
                assert have == expected_state(before), \
                    f"after a failed {op['op']} the database holds neither the old nor the new state"
                model = before
            if sticky:
                with pytest.raises(vjson.VJsonError):
                    db.insert("probe", vector_for(7, DIM), {"g": 0}, "probe text")
                assert state_of(db) == expected_state(model), "a refused write changed the database"
                inj.enabled = False
            else:
                inj.enabled = False
                probe = {"op": "insert", "records": [{"id": "probe", "key": 7, "meta": {"g": 0},
                                                      "text": None}]}
                try:
                    run_op(probe, db, DIM)
                    model = apply(model, probe)
                    outcome += ", next write ok"
                except vjson.VJsonError:
                    outcome += ", next write refused"
            if exit_mode == "close":
                db.close()
            break
    finally:
        inj.enabled = False
        if not db.closed:
            db._release_files()  # "die"
            db._closed = True
    with vjson.VectorDB(path) as again:
        assert state_of(again) == expected_state(model), \
            f"reopened after '{outcome}' ({exit_mode}): not the acknowledged state"
        check_database(again, model, set(), set(), np.random.default_rng(fail_at))
    return outcome, done


def _calls_by_op(tmp: Path, base, monkeypatch) -> list[str]:
    """The kind of operation each write call of the workload belongs to (index 0 = call 1)."""
    path = tmp / "count"
    copy_folder(base[0], path)
    db = vjson.VectorDB(path)
    inj = Injector(monkeypatch)
    kinds: list[str] = []
    for op in _workload():
        if op["op"] == "close":
            db.close()
        else:
            run_op(op, db, DIM)
        kinds += [op["op"]] * (inj.calls - len(kinds))
    monkeypatch.undo()
    return kinds


def _fault_matrix(tmp_path, base, monkeypatch, group: str, sticky: bool, capsys) -> None:
    kinds = _calls_by_op(tmp_path, base, monkeypatch)
    assert len(kinds) > 50
    calls = [n for n in range(1, len(kinds) + 1) if kinds[n - 1] in GROUPS_OF_OPS[group]]
    assert calls
    if sticky and not LONG:
        calls = calls[::3] if len(calls) > 6 else calls
    variants = [(errno.ENOSPC, "die"), (errno.EIO, "close")]
    outcomes: dict[str, int] = {}
    failures = []
    runs = 0
    for n in calls:
        for j, (err, exit_mode) in enumerate(variants):
            if sticky:
                if j:
                    continue
            elif j and not LONG and n % 3:
                continue  # CI: the "die" variant for every call, the "close" one for every third
            runs += 1
            tmp = tmp_path / f"n{n}-{j}"
            tmp.mkdir()
            with monkeypatch.context() as mp:
                try:
                    outcome, _ = _run_with_fault(tmp, base, mp, n, err, sticky, exit_mode)
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                except AssertionError as exc:
                    failures.append(f"call {n} ({kinds[n - 1]}, {errno.errorcode[err]}, {exit_mode}): "
                                    f"{str(exc)[:300]}")
                except vjson.VJsonError as exc:
                    failures.append(f"call {n} ({kinds[n - 1]}, {errno.errorcode[err]}, {exit_mode}): reopening "
                                    f"raised {type(exc).__name__}: {str(exc)[:300]}")
    with capsys.disabled():
        print(f"\n[faults] {group}{' (disk stays full)' if sticky else ''}: {runs} runs over {len(calls)} write "
              f"calls: {len(failures)} violations; outcomes {dict(sorted(outcomes.items()))}")
    assert not failures, "\n".join(failures[:8])


@pytest.mark.parametrize("group", [
    "writes",
    "flush",
    "compact",
    "close"])
def test_fault_at_every_write_call(tmp_path, base, monkeypatch, group, capsys):
    """ENOSPC / EIO at the N-th write call, for every N falling in this group's operations;
    the disk recovers at once (the next write is attempted and must be kept if acknowledged)."""
    _fault_matrix(tmp_path, base, monkeypatch, group, False, capsys)


@pytest.mark.parametrize("group", list(GROUPS_OF_OPS))
def test_disk_stays_full(tmp_path, base, monkeypatch, group, capsys):
    """From the N-th call on every write fails: the failing call and the next write raise a
    VJsonError, reads still work and show no change, and after space returns (and the
    process "dies") nothing committed is missing."""
    _fault_matrix(tmp_path, base, monkeypatch, group, True, capsys)


# ---------------------------------------------------------------- corruption

CHILD = r"""
import json, sys, logging, numpy as np
sys.path.insert(0, sys.argv[1])
import vjson
from crash_worker import vector_for, unique_word
logging.disable(logging.CRITICAL)
cases = json.loads(open(sys.argv[2]).read())
DIM = int(sys.argv[3])
for case in cases:
    print("START " + case["name"], flush=True)
    out = {"name": case["name"]}
    try:
        db = vjson.VectorDB(case["path"])
    except vjson.VJsonError as exc:
        out["open"] = type(exc).__name__ + ": " + str(exc)[:200]
    except BaseException as exc:
        out["open_foreign"] = type(exc).__name__ + ": " + str(exc)[:200]
    else:
        try:
            report = db.verify()
            out["verify_ok"] = report["ok"]
            out["problems"] = report["problems"][:3]
            ids = db.ids()
            recs = db.get_batch(ids)
            out["state"] = {r.id: [r.vector.astype(float).tolist(), r.metadata, r.text] for r in recs}
            out["search"] = [[h.id for h in db.search(vector_for(k, DIM), k=5, ef_search=200)]
                             for k in case["queries"]]
            out["text"] = [[h.id for h in db.text_search(w, k=5)] for w in case["words"]]
            out["count"] = [db.count({"g": g}) for g in range(6)]
        except vjson.VJsonError as exc:
            out["read_error"] = type(exc).__name__ + ": " + str(exc)[:200]
        except BaseException as exc:
            out["read_foreign"] = type(exc).__name__ + ": " + str(exc)[:200]
        finally:
            db._release_files()
            db._closed = True
    print("RESULT " + json.dumps(out), flush=True)
"""


def _mutations(size: int, rng) -> list[tuple[str, object]]:
    muts: list[tuple[str, object]] = [("truncate-0", 0), ("truncate-half", size // 2), ("truncate-1", size - 1)]
    if size:
        positions = {0, min(size - 1, 8), size // 3, size // 2, (2 * size) // 3, max(0, size - 5)}
        positions |= {int(p) for p in rng.integers(0, size, 2)}
        muts += [(f"flip@{p}", p) for p in sorted(positions)]
    return muts


def _damage(path: Path, kind: str, arg) -> None:
    if kind.startswith("truncate"):
        os.truncate(path, int(arg))
    else:
        raw = bytearray(path.read_bytes())
        raw[int(arg)] ^= 0x5A
        path.write_bytes(bytes(raw))


def _corruption_db(tmp: Path) -> tuple[Path, dict, list[dict]]:
    path = tmp / "clean"
    model: dict = {}
    ops = []
    recs = [{"id": f"c{i}", "key": 70_000 + i, "meta": {"g": i % 6},
             "text": f"amber {unique_word(70_000 + i)}" if i % 2 else None} for i in range(150)]
    ops.append({"op": "insert_batch", "records": recs})
    ops.append({"op": "delete", "ids": [f"c{i}" for i in range(0, 30, 3)]})
    ops.append({"op": "flush"})  # segment, delta, graph and filters of checkpoint 1
    ops.append({"op": "insert_batch", "records": [
        {"id": f"c{i}", "key": 80_000 + i, "meta": {"g": 1}, "text": f"amber {unique_word(80_000 + i)}"}
        for i in range(140, 160)]})
    ops.append({"op": "update_metadata", "id": "c31", "merge": False, "meta": {"g": 5}})
    ops.append({"op": "delete", "ids": ["c33"]})
    db = vjson.VectorDB(path, dimension=DIM, metric="l2", M=8, ef_construction=64)
    history = [model]
    for op in ops:
        run_op(op, db, DIM)
        model = apply(model, op)
        history.append(model)
    db._release_files()  # keep the log non-empty: "closed" by dying
    db._closed = True
    return path, model, history




def _kind(rel: Path) -> str:
    return "text" if rel.parts[0].startswith("text") else rel.name.split("-")[0].split(".")[0]


@pytest.mark.parametrize("kind", [
    "MANIFEST",
    "vectors", "log", "segment", "delta", "graph", "filters", "text"])
def test_corruption_of_every_file(tmp_path, capsys, kind):
    rng = np.random.default_rng(11)
    clean, model, history = _corruption_db(tmp_path)
    all_files = sorted(p.relative_to(clean) for p in clean.rglob("*")
                       if p.is_file() and p.name != "LOCK" and not p.name.endswith(".lock"))
    assert {_kind(f) for f in all_files} >= {"MANIFEST", "vectors", "log", "segment", "delta", "graph",
                                             "filters", "text"}, all_files
    files = [f for f in all_files if _kind(f) == kind]
    keys = [k for k, _, _ in model.values()]
    queries = [int(k) for k in rng.choice(keys, 6, replace=False)]
    words = [unique_word(k) for k, _, t in model.values() if t is not None][:6] + [unique_word(70_000)]

    def reference(m: dict) -> dict:
        ref_state = {rid: [vector_for(k, DIM).astype(float).tolist(), meta, text] for rid, (k, meta, text) in m.items()}
        return ref_state

    cases = []
    if kind == "text" and not LONG:  # CI: the bookkeeping files and one segment's files
        sizes: dict[str, int] = {}
        for f in files:
            if f.suffix not in (".json", ""):
                sizes[f.stem] = sizes.get(f.stem, 0) + (clean / f).stat().st_size
        biggest = max(sizes, key=lambda stem: (sizes[stem], stem))
        files = [f for f in files if f.suffix == ".json" or f.stem == biggest]
    for rel in files:
        size = (clean / rel).stat().st_size
        muts = _mutations(size, rng)
        if kind == "text" and not LONG:
            muts = [muts[0], muts[1]] + muts[-3:]
        for how, arg in muts:
            name = f"{rel}:{how}"
            dst = tmp_path / f"case{len(cases)}"
            copy_folder(clean, dst)
            _damage(dst / rel, how, arg)
            cases.append({"name": name, "path": str(dst), "file": str(rel), "queries": queries, "words": words})

    # reference answers from the undamaged database, through the same child code
    clean_copy = tmp_path / "clean-copy"
    copy_folder(clean, clean_copy)
    ref = _run_children([{"name": "clean", "path": str(clean_copy), "file": "", "queries": queries,
                          "words": words}], tmp_path)["clean"]
    assert ref.get("verify_ok") and ref["state"] == reference(model), ref.get("problems")

    results = _run_children(cases, tmp_path)
    bad = []
    verdicts: dict[str, int] = {}
    older_states = [reference(m) for m in history[:-1]]
    for case in cases:
        r = results[case["name"]]
        if "signal" in r:
            bad.append(f"{case['name']}: the process died of signal {r['signal']}")
            continue
        if "open_foreign" in r or "read_foreign" in r:
            bad.append(f"{case['name']}: a non-vjson exception: {r.get('open_foreign') or r.get('read_foreign')}")
            continue
        if "open" in r:
            verdict = "error at open"
        elif "read_error" in r:
            verdict = "error on read"
        elif not r["verify_ok"]:
            verdict = "verify() reports it"
        elif all(r[key] == ref[key] for key in ("state", "search", "text", "count")):
            verdict = "correct (repaired or harmless)"
        elif case["file"].startswith("log-") and r["state"] in older_states:
            verdict = "older consistent state (torn log tail)"
        else:
            diff = [key for key in ("state", "search", "text", "count") if r[key] != ref[key]]
            bad.append(f"{case['name']}: opened, verify() ok, but wrong {diff}")
            continue
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    with capsys.disabled():
        print(f"\n[corruption] {kind}: {len(cases)} damaged copies of {len(files)} file(s): {dict(sorted(verdicts.items()))}; "
              f"{len(bad)} bad")
    assert not bad, "\n".join(bad[:12])




def test_graph_write_failure_is_a_storage_error(tmp_path):
    """A checkpoint whose graph file cannot be written (here: its temp path is taken by a
    folder, as good as a full disk) must raise StorageError and keep the database usable."""
    path = tmp_path / "db"
    with vjson.VectorDB(path, dimension=4, metric="l2") as db:
        db.insert("a", [1.0, 0, 0, 0])
        blocker = path / f"graph-{db._manifest['checkpoint'] + 1}.vjx.tmp-{os.getpid()}"
        blocker.mkdir()
        try:
            with pytest.raises(vjson.StorageError):
                db.flush()
        finally:
            blocker.rmdir()
        db.insert("b", [0, 1.0, 0, 0])
    with vjson.open(path) as again:
        assert sorted(again.ids()) == ["a", "b"]


def test_missing_log_file_is_an_error(tmp_path):
    """Minimal reproduction: the log named by the manifest is gone (lost by a bad copy, a
    backup tool or a user). Opening must raise CorruptionError, not silently drop writes."""
    path = tmp_path / "db"
    db = vjson.VectorDB(path, dimension=4, metric="l2")
    db.insert("a", [1.0, 0, 0, 0])
    db.flush()
    db.insert("b", [0, 1.0, 0, 0])  # in the log only
    db._release_files()
    db._closed = True
    (path / db._manifest["log"]).unlink()
    with pytest.raises(vjson.CorruptionError):
        vjson.VectorDB(path).close()


def _run_children(cases: list[dict], tmp: Path) -> dict[str, dict]:
    """Run the open/search child over the cases; a case that kills the child is recorded
    with its signal and the child restarts after it."""
    results: dict[str, dict] = {}
    todo = list(cases)
    tests_dir = str(Path(__file__).parent)
    while todo:
        arg_file = tmp / "cases.json"
        arg_file.write_text(json.dumps(todo))
        proc = subprocess.run([sys.executable, "-c", CHILD, tests_dir, str(arg_file), str(DIM)],
                              capture_output=True, text=True, timeout=600)
        started = None
        for line in proc.stdout.splitlines():
            if line.startswith("START "):
                started = line[6:]
            elif line.startswith("RESULT "):
                r = json.loads(line[7:])
                results[r["name"]] = r
                started = None
        done = {c["name"] for c in todo if c["name"] in results}
        if proc.returncode != 0:
            if started is None:
                raise AssertionError(f"the child failed outside a case (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
            results[started] = {"name": started, "signal": -proc.returncode if proc.returncode < 0 else None,
                                "stderr": proc.stderr[-500:]}
            done.add(started)
        todo = [c for c in todo if c["name"] not in done]
    return results
