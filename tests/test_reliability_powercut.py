"""Simulated power loss (tests/powercut.py): the states a power cut could leave, reopened.

Killed processes (test_reliability_crash.py) keep every write in the page
cache; a power cut keeps only what was fsynced, and maybe some of the rest,
in any order and torn at sector boundaries. For random workloads and random
moments, reopening must never fail, must keep every call acknowledged under
durability="sync" and, under "flush", keep a prefix of the calls no shorter
than the last checkpoint.
"""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest

import vjson
from conftest import LONG
from powercut import PowerCutFS, check_image, run_workload, scratch_root
from vjson import storage

CUTS = int(os.environ.get("VJSON_POWERCUTS", 1000 if LONG else 60))


@pytest.mark.parametrize("durability", ["sync", "flush"])
def test_power_cuts(tmp_path, durability, capsys):
    root = scratch_root(tmp_path)
    survived, failures, seed = 0, [], 0
    hows: dict[str, int] = {}
    try:
        while survived + len(failures) < CUTS:
            seed += 1
            work = root / f"w{seed}"
            work.mkdir()
            states, cuts = run_workload(work, seed + (0 if durability == "sync" else 10_000), durability,
                                        ops=25, cut_chance=0.08)
            for cut in cuts:
                problem = check_image(cut, states, durability)
                hows[cut.how["mode"]] = hows.get(cut.how["mode"], 0) + 1
                if problem is None:
                    survived += 1
                else:
                    failures.append(f"seed {seed}, {cut.image.name} {cut.how}: {problem}")
            shutil.rmtree(work)
    finally:
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)
    with capsys.disabled():
        print(f"\n[powercut] {durability}: {survived} of {survived + len(failures)} simulated power cuts "
              f"survived over {seed} workloads (images: {hows})")
    assert not failures, failures[:5]


# ---------------------------------------------------------------- regressions the simulation found

DIM = 4


def _vecs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def test_upsert_right_after_a_clean_reopen_with_texts(tmp_path):
    """The id map built lazily after the rows had grown: IndexError on the first write after a clean open."""
    path = tmp_path / "db"
    with vjson.VectorDB(path, dimension=DIM, metric="l2") as db:
        db.insert_batch(["a", "b"], _vecs(2, 1), [{"g": 1}] * 2, ["one", "two"])
    with vjson.VectorDB(path) as db:
        db.insert_batch(["c", "a"], _vecs(2, 2), [{"g": 2}] * 2, ["three", "four"])
        assert sorted(db.ids()) == ["a", "b", "c"] and db.get_metadata("a") == {"g": 2}


def _durable_names_at_manifest_switch(path, action) -> set[str]:
    """The folder entries made durable when the manifest's rename (the commit point) happens."""
    seen: list[set[str]] = []
    original_replace = PowerCutFS.replace

    class Watch(PowerCutFS):
        def replace(self, src, dst):
            if os.path.basename(dst) == "MANIFEST.json":
                seen.append(set(self.durable_dir))
            original_replace(self, src, dst)

    path.mkdir(exist_ok=True)
    saved, storage.fs = storage.fs, Watch(path)
    try:
        action()
    finally:
        storage.fs = saved
    assert seen, "no manifest switch happened"
    return seen[-1]


def test_a_checkpoint_makes_its_new_log_durable_before_the_manifest_names_it(tmp_path):
    """A power cut could keep the new manifest but lose the new log's name: 'log-C missing' at open."""
    path = tmp_path / "db"
    db = vjson.VectorDB(path, dimension=DIM, metric="l2")
    db.insert("a", _vecs(1, 1)[0])
    durable = _durable_names_at_manifest_switch(path, db.flush)
    assert {"log-1.vjl", "segment-1-0.vjg", "delta-1.vjd", "graph-1.vjx", "filters-1.vjm"} <= durable
    db.close()


def test_creating_makes_the_first_files_durable_before_the_manifest(tmp_path):
    path = tmp_path / "db"
    durable = _durable_names_at_manifest_switch(
        path, lambda: vjson.VectorDB(path, dimension=DIM, metric="l2").close())
    assert {"vectors-0.f32", "log-0.vjl"} <= durable


def _three_writes(path, durability):
    db = vjson.VectorDB(path, dimension=DIM, metric="l2", durability=durability)
    db.flush()  # a checkpoint: the log after it holds only the three writes
    for i, rid in enumerate(["a", "b", "c"]):
        db.insert(rid, _vecs(1, 10 + i)[0])
    log_name = db._manifest["log"]
    db._gen.vectors.trim(3)
    db._release_files()  # as a power cut would: no closing checkpoint
    db._closed = True
    return path / log_name, path / "vectors-0.f32"


@pytest.mark.parametrize("durability", ["flush", "sync"])
def test_unsynced_vectors_lost_under_a_persisted_log_frame(tmp_path, durability):
    """Under "flush" the log and the vector file are not synced: a cut may keep a frame but not its rows.
    That write is then the lost tail (dropped); under "sync" the same damage is corruption."""
    log_path, vec_path = _three_writes(tmp_path / "db", durability)
    with open(vec_path, "r+b") as f:  # the last row never reached the disk
        f.seek(2 * 4 * DIM)
        f.write(b"\0" * 4 * DIM)
    if durability == "sync":
        with pytest.raises(vjson.CorruptionError, match="fail their checksum"):
            vjson.VectorDB(tmp_path / "db")
        return
    with vjson.VectorDB(tmp_path / "db", durability="flush") as db:
        assert sorted(db.ids()) == ["a", "b"]
        db.insert("d", _vecs(1, 20)[0])  # the dropped write's row is reused
    with vjson.VectorDB(tmp_path / "db") as db:
        assert sorted(db.ids()) == ["a", "b", "d"] and db.verify()["ok"]


@pytest.mark.parametrize("durability", ["flush", "sync"])
def test_a_damaged_unsynced_frame_before_a_whole_one(tmp_path, durability):
    """Under "flush" a cut may keep a later frame and tear an earlier one: a prefix survives, no error."""
    log_path, _ = _three_writes(tmp_path / "db", durability)
    from vjson._logformat import scan
    data = bytearray(log_path.read_bytes())
    second = scan(bytes(data)).frames[1]
    data[second.end - 3] ^= 0xFF  # a byte of the second write's record; the third stays whole
    log_path.write_bytes(bytes(data))
    if durability == "sync":
        with pytest.raises(vjson.CorruptionError, match="checksum"):
            vjson.VectorDB(tmp_path / "db")
        return
    with vjson.VectorDB(tmp_path / "db", durability="flush") as db:
        assert db.ids() == ["a"]


def test_a_zero_filled_log_tail_is_torn_not_corrupt(tmp_path):
    """A cut may persist a log's new length but not its bytes: zeros, which once parsed as an empty frame."""
    log_path, _ = _three_writes(tmp_path / "db", "sync")
    with open(log_path, "ab") as f:
        f.write(b"\0" * 600)
    with vjson.VectorDB(tmp_path / "db") as db:
        assert sorted(db.ids()) == ["a", "b", "c"]
        db.insert("d", _vecs(1, 30)[0])  # appended where the zeros were cut off
    with vjson.VectorDB(tmp_path / "db") as db:
        assert sorted(db.ids()) == ["a", "b", "c", "d"]


def test_the_simulator_loses_unsynced_writes(tmp_path):
    """The harness itself: a file never fsynced comes back empty in a "drop" image; a synced one whole."""
    folder = tmp_path / "f"
    folder.mkdir()
    fs = PowerCutFS(folder)
    fd = os.open(folder / "synced", os.O_RDWR | os.O_CREAT)
    fs.write(fd, b"x" * 5000)
    fs.fsync(fd)
    fs.write(fd, b"y" * 100)
    os.close(fd)
    fd = os.open(folder / "unsynced", os.O_RDWR | os.O_CREAT)
    fs.write(fd, b"z" * 100)
    os.close(fd)
    dfd = os.open(folder, os.O_RDONLY)
    fs.fsync(dfd)
    os.close(dfd)
    rng = random.Random(3)
    for i in range(40):
        img = tmp_path / f"img{i}"
        how = fs.crash_image(img, rng)
        synced, unsynced = (img / "synced").read_bytes(), (img / "unsynced").read_bytes()
        assert synced[:5000] == b"x" * 5000
        if how["mode"] == "drop":
            assert synced == b"x" * 5000 and unsynced == b""
        assert unsynced in (b"", b"z" * 100) or how["mode"] == "torn"
    fd = os.open(folder / "late", os.O_RDWR | os.O_CREAT)  # created after the last folder fsync
    os.close(fd)
    kept = set()
    for i in range(30):
        fs.crash_image(tmp_path / f"late{i}", rng)
        kept.add((tmp_path / f"late{i}" / "late").exists())
    assert kept == {True, False}, "a name not yet made durable must sometimes vanish, sometimes stay"


def test_an_incremental_checkpoint_makes_its_files_durable_before_the_manifest_names_them(tmp_path):
    """A checkpoint after a few changes writes a segment of the new rows, a delta and a graph
    patch: at the manifest's rename each is durable, by name and content (a power cut then
    keeps a manifest whose files are all there and whole)."""
    path = tmp_path / "db"
    db = vjson.VectorDB(path, dimension=DIM, metric="l2")
    db.insert_batch([f"a{i}" for i in range(300)], _vecs(300, 3), [{"g": i % 3} for i in range(300)])
    db.flush()
    db.insert_batch(["b1", "b2"], _vecs(2, 4), [{"g": 7}, None])
    db.update_metadata("a5", {"g": 9})
    db.delete(["a6"])
    contents: dict[str, bytes] = {}
    original_replace = PowerCutFS.replace

    class Watch(PowerCutFS):
        def replace(self, src, dst):
            if os.path.basename(dst) == "MANIFEST.json":
                for name, ino in self.durable_dir.items():
                    if ino in self.durable_data:
                        contents[name] = self.durable_data[ino]
            original_replace(self, src, dst)

    saved, storage.fs = storage.fs, Watch(path)
    try:
        db.flush()
    finally:
        storage.fs = saved
    m = db._manifest
    new = [m["segments"][-1]["file"], m["delta"], m["graph_patch"]]
    assert m["segments"][-1]["rows"] == 2 and m["graph_patch"] is not None, m
    for name in new:
        assert contents.get(name) == (path / name).read_bytes(), f"{name} not durable at the commit point"
    db.close()
    with vjson.VectorDB(path) as again:
        assert again.get("a5").metadata == {"g": 9} and "a6" not in again and again.get("b1").metadata == {"g": 7}
