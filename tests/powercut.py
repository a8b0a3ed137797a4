"""A power-cut simulator for one database folder, in the manner of SQLite's crash-test file layer.

:class:`PowerCutFS` replaces ``vjson.storage.fs`` (through which the database
does every write, truncate, rename and fsync, and syncs the files it lets the
core or tantivy write). It passes every call through and keeps what a power
cut could not take away:

* the *durable content* of each file (by inode), captured when it is fsynced;
* the *durable entries* of the database folder, captured when the folder is
  fsynced (what atomic_write does after its rename).

Before any call it can write a *crash image* (:meth:`PowerCutFS.crash_image`):
the folder as a power cut at that moment could leave it.

* Each entry created, renamed or removed since the last folder fsync is,
  independently, made or undone; a file renamed over keeps its old inode's
  durable content.
* Each file's content is its durable content with the sectors (512 B or
  4 KiB) that differ in the current content taken from either, at random
  (or all of one side); its length is the durable or the current one. An
  inode whose current content is gone (deleted) keeps only its durable content.
* A text index folder (tantivy syncs its own files) is copied as it is, or
  loses its meta.json, or is lost whole: the database must rebuild it.

The workload side (:func:`run_workload`) runs seeded random writes on a
model kept here, independently of the database, and takes images at random
calls; :func:`check_image` reopens an image and compares it with the states
the model allows: under ``durability="sync"`` every acknowledged call and
maybe the one in flight; under ``"flush"`` some prefix of the calls, no
shorter than the last acknowledged checkpoint.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import vjson
from vjson import storage

DIM = 6


class PowerCutFS(storage._FileSystem):
    """Records durable state of `folder` as the database writes it; calls `on_call` before each call."""

    def __init__(self, folder: Path, on_call: Any = None) -> None:
        self.folder = Path(folder)
        self.on_call = on_call
        self.calls = 0
        self.durable_data: dict[int, bytes] = {}
        self.durable_dir: dict[str, int] = {}
        # what is there when the simulation starts counts as durable
        self.durable_dir = self._listing()
        for name, ino in self.durable_dir.items():
            path = self.folder / name
            if path.is_file():
                self.durable_data[ino] = path.read_bytes()

    def _listing(self) -> dict[str, int]:
        return {e.name: e.inode() for e in os.scandir(self.folder)}

    def _tick(self) -> None:
        self.calls += 1
        # An inode in neither listing can never come back: forget it, lest a
        # new file given the same number inherit its durable content. (Files
        # are identified by inode: run on tmpfs, which does not reuse numbers
        # soon, so a file deleted and another created between two calls here
        # cannot be mistaken for each other; see scratch_root.)
        alive = set(self._listing().values()) | set(self.durable_dir.values())
        for ino in [i for i in self.durable_data if i not in alive]:
            del self.durable_data[ino]
        if self.on_call is not None:
            self.on_call(self)

    # -- the file system calls (real fsyncs are skipped: the simulation, not the disk, is under test)
    def write(self, fd: int, data: bytes | memoryview) -> None:
        self._tick()
        super().write(fd, data)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        self._tick()
        super().pwrite(fd, data, offset)

    def truncate(self, fd: int, size: int) -> None:
        self._tick()
        super().truncate(fd, size)

    def replace(self, src: str | Path, dst: str | Path) -> None:
        self._tick()
        super().replace(src, dst)

    def fsync(self, fd: int) -> None:
        self._tick()
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            if os.path.samestat(st, os.stat(self.folder)):
                self.durable_dir = self._listing()
            return
        with open(f"/proc/self/fd/{fd}", "rb") as f:  # works for write-only descriptors too
            self.durable_data[st.st_ino] = f.read()

    # -- the crash image
    def crash_image(self, dest: Path, rng: random.Random) -> dict[str, Any]:
        """Write the folder a power cut now could leave to `dest`; returns how it was chosen."""
        current = self._listing()
        by_inode = {ino: name for name, ino in current.items()}
        mode = rng.choice(("drop", "keep", "torn", "torn"))
        sector = rng.choice((512, 4096))
        dest.mkdir(parents=True)
        undone = 0
        for name in sorted(set(current) | set(self.durable_dir)):
            old, new = self.durable_dir.get(name), current.get(name)
            ino = new
            if old != new and rng.random() < 0.5:
                ino, undone = old, undone + 1
            if ino is None:
                continue
            live = by_inode.get(ino)
            if live is not None and (self.folder / live).is_dir():
                self._copy_text(self.folder / live, dest / name, rng)
                continue
            durable = self.durable_data.get(ino, b"")
            now = (self.folder / live).read_bytes() if live is not None else None
            data = durable if now is None else _tear(durable, now, mode, sector, rng)
            (dest / name).write_bytes(data)
        return {"mode": mode, "sector": sector, "undone": undone}

    @staticmethod
    def _copy_text(src: Path, dst: Path, rng: random.Random) -> None:
        fate = rng.random()
        if fate < 0.1:
            return  # lost whole
        dst.mkdir()
        for name in os.listdir(src):  # tantivy's threads may be adding and removing files meanwhile
            if name.endswith(".lock"):
                continue
            try:
                shutil.copyfile(src / name, dst / name)
            except (FileNotFoundError, IsADirectoryError):
                pass
        if fate < 0.2 and (dst / "meta.json").exists():
            (dst / "meta.json").unlink()


def _tear(old: bytes, new: bytes, mode: str, sector: int, rng: random.Random) -> bytes:
    """A file's content after a power cut: `old` is durable, `new` is what the OS had."""
    if old == new or mode == "drop":
        return old
    if mode == "keep":
        return new
    length = rng.choice((len(old), len(new)))
    a = np.zeros(length, dtype=np.uint8)
    b = np.zeros(length, dtype=np.uint8)
    a[:min(length, len(old))] = np.frombuffer(old, dtype=np.uint8)[:length]
    b[:min(length, len(new))] = np.frombuffer(new, dtype=np.uint8)[:length]
    sectors = -(-length // sector)
    take_new = np.random.default_rng(rng.getrandbits(32)).random(sectors) < 0.5
    mask = np.repeat(take_new, sector)[:length]
    return np.where(mask, b, a).tobytes()


def scratch_root(fallback: Path) -> Path:
    """Where to run: tmpfs (/dev/shm) when there is one, as its inode numbers are not reused soon."""
    import tempfile
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="vjson-powercut-", dir=shm))
    return fallback


# ---------------------------------------------------------------- workloads on a model

def vector_for(key: int) -> np.ndarray:
    return np.random.default_rng(key).normal(size=DIM).astype(np.float32)


def word_for(key: int) -> str:
    out, n = "", key + 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return "qz" + out + "k"


State = dict  # id -> (vector key, metadata, text)


@dataclass
class Cut:
    image: Path
    acked: int                 # calls that had returned
    durable_floor: int         # calls up to the last acknowledged checkpoint (durable under "flush" too)
    how: dict = field(default_factory=dict)


def run_workload(root: Path, seed: int, durability: str, ops: int, cut_chance: float
                 ) -> tuple[list[State], list[Cut]]:
    """Seeded random writes on a database under `root`/db with images at random calls.

    Returns the model's state after each call (states[j]: after j calls) and the images.
    """
    rng = random.Random(seed)
    path = root / "db"
    state: State = {}
    key = seed * 100_000
    with vjson.VectorDB(path, dimension=DIM, metric=rng.choice(("l2", "cosine"))) as db:
        for i in range(4):
            key += 1
            state[f"r{i}"] = (key, {"g": i % 3}, word_for(key))
            db.insert(f"r{i}", vector_for(key), {"g": i % 3}, word_for(key))
    states = [dict(state)]
    cuts: list[Cut] = []
    progress = {"acked": 0, "floor": 0}

    def maybe_cut(fs: PowerCutFS) -> None:
        if rng.random() < cut_chance:
            image = root / f"cut-{len(cuts)}"
            how = fs.crash_image(image, rng)
            cuts.append(Cut(image, progress["acked"], progress["floor"], how))

    fs = PowerCutFS(path, maybe_cut)
    saved, storage.fs = storage.fs, fs
    next_id = 4
    try:
        db = vjson.VectorDB(path, durability=durability)
        for step in range(ops):
            op = rng.choices(("insert", "delete", "meta", "flush", "compact", "reopen"),
                             weights=(50, 15, 10, 10, 5, 5))[0]
            if op == "insert":
                ids, vecs, metas, texts = [], [], [], []
                for _ in range(rng.randint(1, 4)):
                    if state and rng.random() < 0.3:
                        rid = rng.choice(sorted(state))
                    else:
                        rid, next_id = f"r{next_id}", next_id + 1
                    if rid in ids:
                        continue
                    key += 1
                    meta = {"g": rng.randrange(3), "k": key}
                    text = word_for(key) if rng.random() < 0.7 else None
                    ids.append(rid), vecs.append(vector_for(key)), metas.append(meta), texts.append(text)
                    state[rid] = (key, meta, text)
                db.insert_batch(ids, np.stack(vecs), metas, texts)
            elif op == "delete" and state:
                gone = rng.sample(sorted(state), min(len(state), rng.randint(1, 2)))
                db.delete(gone)
                for rid in gone:
                    del state[rid]
            elif op == "meta" and state:
                rid = rng.choice(sorted(state))
                meta = {"g": rng.randrange(3), "m": step}
                db.update_metadata(rid, meta)
                state[rid] = (state[rid][0], meta, state[rid][2])
            elif op == "flush":
                db.flush()
            elif op == "compact":
                db.compact()
            elif op == "reopen":
                db.close()  # a clean close checkpoints
                db = vjson.VectorDB(path, durability=durability)
            states.append(dict(state))
            progress["acked"] = len(states) - 1
            if op in ("flush", "compact", "reopen"):
                progress["floor"] = len(states) - 1
        maybe_cut_at_end = fs.crash_image(root / f"cut-{len(cuts)}", rng)
        cuts.append(Cut(root / f"cut-{len(cuts)}", progress["acked"], progress["floor"], maybe_cut_at_end))
        db.close()
    finally:
        storage.fs = saved
    return states, cuts


def read_state(db: vjson.VectorDB) -> State:
    ids = db.ids()
    recs = db.get_batch(ids, include=["metadata", "text", "vector"]) if ids else []
    return {r.id: (r.vector, r.metadata, r.text) for r in recs}


def matches(got: dict, want: State, metric: str) -> bool:
    if set(got) != set(want):
        return False
    for rid, (key, meta, text) in want.items():
        vec, gmeta, gtext = got[rid]
        expect = vector_for(key)
        if metric == "cosine":
            expect = expect / np.linalg.norm(expect)
        if gmeta != meta or gtext != text or not np.allclose(vec, expect, atol=1e-6):
            return False
    return True


def check_image(cut: Cut, states: list[State], durability: str) -> str | None:
    """None if the image reopens to an allowed state and stays usable; else what is wrong."""
    try:
        db = vjson.VectorDB(cut.image, durability=durability)
    except vjson.VJsonError as exc:
        return f"does not open: {type(exc).__name__}: {exc}"
    try:
        got = read_state(db)
        if durability == "sync":
            allowed = range(cut.acked, min(cut.acked + 1, len(states) - 1) + 1)
        else:
            allowed = range(cut.durable_floor, min(cut.acked + 1, len(states) - 1) + 1)
        hit = [j for j in allowed if matches(got, states[j], db.metric)]
        if not hit:
            near = max(range(len(states)), key=lambda j: len(set(states[j]) & set(got)) - len(set(states[j]) ^ set(got)))
            return (f"state matches none of calls {list(allowed)} (acked {cut.acked}); "
                    f"{len(got)} records, nearest call {near} ({matches(got, states[near], db.metric)})")
        want = states[hit[0]]
        for rid, (_, _, text) in sorted(want.items())[:3]:
            if text is not None and rid not in [h.id for h in db.text_search(text, k=5)]:
                return f"text search misses {rid}"
        report = db.verify()
        if not report["ok"]:
            return f"verify: {report['problems'][:3]}"
        db.insert("after-cut", vector_for(1), {"g": 0}, "aftercut")  # still writable
        db.close()
        db = vjson.VectorDB(cut.image, durability=durability)
        if len(db) != len(want) + ("after-cut" not in want):
            return "a write after recovery did not survive a reopen"
        return None
    except vjson.VJsonError as exc:
        return f"fails after opening: {type(exc).__name__}: {exc}"
    finally:
        db.close()
