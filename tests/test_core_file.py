"""Save/load round trips and damaged files: always a clear error, never a crash."""

import os
import subprocess
import sys

import numpy as np
import pytest

import vjson
from conftest import clustered


@pytest.fixture
def saved(tmp_path):
    data = clustered(1500, 20, 2)
    index = vjson.HNSWIndex(20, "cosine", seed=3)
    index.add(data, np.arange(1500) * 2)
    index.delete(np.arange(0, 300, 2))
    path = tmp_path / "graph.vjx"
    index.save(path)
    return index, data, path


def test_round_trip_gives_identical_results(saved):
    index, data, path = saved
    loaded = vjson.HNSWIndex.load(path, verify=True)
    assert (loaded.dim, loaded.metric, loaded.M, len(loaded)) == (20, "cosine", 16, len(index))
    np.testing.assert_array_equal(index.search_batch(data[:100], 10)[0], loaded.search_batch(data[:100], 10)[0])
    np.testing.assert_array_equal(np.sort(index.labels()), np.sort(loaded.labels()))
    loaded.check()


def test_loaded_index_accepts_writes_without_touching_the_file(saved):
    index, data, path = saved
    before = path.read_bytes()
    loaded = vjson.HNSWIndex.load(path)
    loaded.add(clustered(500, 20, 9), np.arange(10_000, 10_500))  # grows past the mapped block
    loaded.delete([400, 402])
    assert len(loaded) == len(index) + 500 - 2
    loaded.check()
    assert path.read_bytes() == before
    assert len(vjson.HNSWIndex.load(path)) == len(index)


def test_empty_index_round_trip(tmp_path):
    vjson.HNSWIndex(5).save(tmp_path / "e.vjx")
    loaded = vjson.HNSWIndex.load(tmp_path / "e.vjx")
    assert len(loaded) == 0 and len(loaded.search(np.ones(5, np.float32), 3)[0]) == 0
    loaded.add(np.eye(5, dtype=np.float32), np.arange(5))
    assert loaded.search(np.eye(5, dtype=np.float32)[2], 1)[0][0] == 2


@pytest.mark.parametrize("keep", [0, 7, 100, 255, 70_000, -1000, -1])
def test_truncated_file_raises(saved, tmp_path, keep):
    _, _, path = saved
    raw = path.read_bytes()
    cut = tmp_path / "cut.vjx"
    cut.write_bytes(raw[:keep] if keep >= 0 else raw[:keep])
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(cut)


def flip(raw: bytes, offset: int) -> bytes:
    b = bytearray(raw)
    b[offset] ^= 0x10
    return bytes(b)


def test_bit_flips_in_checked_sections_raise(saved, tmp_path):
    _, _, path = saved
    raw = path.read_bytes()
    header = 256
    labels_offset = int.from_bytes(raw[136:144], "little")
    upper_offset = int.from_bytes(raw[160:168], "little")
    targets = list(range(0, header, 7)) + [labels_offset + 5, labels_offset + 4000, upper_offset + 3, len(raw) - 2]
    for offset in targets:
        bad = tmp_path / f"flip{offset}.vjx"
        bad.write_bytes(flip(raw, offset))
        with pytest.raises(vjson.CorruptionError):
            vjson.HNSWIndex.load(bad)


def test_level0_flips_caught_by_verify_and_never_crash(saved, tmp_path):
    """Without verify a damaged record may give odd distances, but links are bounds-checked."""
    _, data, path = saved
    raw = path.read_bytes()
    level0 = 65536
    rng = np.random.default_rng(0)
    script = (
        "import sys, numpy as np, vjson\n"
        "idx = vjson.HNSWIndex.load(sys.argv[1])\n"
        "q = np.random.default_rng(1).normal(size=(50, 20)).astype(np.float32)\n"
        "idx.search_batch(q, 10); [idx.search(x, 5) for x in q]\n"
        "idx.add(q, np.arange(90000, 90050)); idx.search_batch(q, 10)\n"
    )
    for i, offset in enumerate(rng.integers(level0, level0 + 1500 * 224, 12)):
        bad = tmp_path / f"l0_{i}.vjx"
        b = bytearray(raw)
        b[offset:offset + 4] = (2**32 - 7).to_bytes(4, "little")  # a huge link id or count
        bad.write_bytes(bytes(b))
        with pytest.raises(vjson.CorruptionError):
            vjson.HNSWIndex.load(bad, verify=True)
        run = subprocess.run([sys.executable, "-c", script, str(bad)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr  # no segfault


def test_newer_format_version_is_refused(saved, tmp_path):
    _, _, path = saved
    raw = bytearray(path.read_bytes())
    raw[8:12] = (99).to_bytes(4, "little")
    bad = tmp_path / "new.vjx"
    bad.write_bytes(bytes(raw))
    with pytest.raises(vjson.FormatVersionError):
        vjson.HNSWIndex.load(bad)


def test_not_an_index(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(tmp_path / "x.txt")
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        vjson.HNSWIndex.load(tmp_path / "missing.vjx")


def test_save_is_atomic_replace(saved, tmp_path):
    index, _, path = saved
    index.add(clustered(10, 20, 11), np.arange(50_000, 50_010))
    index.save(path)
    assert not [p for p in os.listdir(path.parent) if ".tmp-" in p]
    assert len(vjson.HNSWIndex.load(path)) == len(index)
