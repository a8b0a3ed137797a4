"""External vectors (the graph reads row i of an attached array as node i) and
identity labels (no label table while every label is its node's id)."""

import struct
import threading

import numpy as np
import pytest

import vjson
from conftest import clustered, recall_at_k


def external(data: np.ndarray, metric: str = "l2", **kw) -> vjson.HNSWIndex:
    index = vjson.HNSWIndex(data.shape[1], metric, external_vectors=True, **kw)
    index.attach_vectors(data)
    index.add_stored(np.arange(len(data)))
    return index


def test_external_index_finds_what_an_inline_one_finds():
    data = clustered(3000, 24, 1)
    queries = clustered(100, 24, 2)
    inline = vjson.HNSWIndex(24, "l2", seed=5)
    inline.add(data, np.arange(len(data)), num_threads=1)
    ext = vjson.HNSWIndex(24, "l2", seed=5, external_vectors=True)
    ext.attach_vectors(data)
    ext.add_stored(np.arange(len(data)), num_threads=1)
    # same data, seed and single-threaded build: the very same graph
    np.testing.assert_array_equal(inline.search_batch(queries, 10)[0], ext.search_batch(queries, 10)[0])
    truth, _ = vjson.brute_force_knn(data, queries, 10)
    assert recall_at_k(ext.search_batch(queries, 10, ef_search=64)[0], truth) > 0.95
    np.testing.assert_array_equal(ext.get_vectors([7, 8]), data[7:9])
    ext.check()


def test_vectors_are_read_in_place_not_copied():
    data = clustered(500, 8, 3)
    index = external(data)
    target = data[123].copy()
    data[123] = data[0] + 50  # the graph sees the change: it holds no copy
    assert not np.array_equal(index.get_vectors([123])[0], target)
    np.testing.assert_array_equal(index.get_vectors([123])[0], data[123])


def test_cosine_rows_must_be_unit_length():
    data = clustered(200, 16, 4)
    index = vjson.HNSWIndex(16, "cosine", external_vectors=True)
    index.attach_vectors(data)
    with pytest.raises(vjson.InvalidVectorError, match="unit"):
        index.add_stored(np.arange(200))
    assert len(index) == 0
    unit = vjson._core.normalise(data)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-6)
    index.attach_vectors(unit)
    index.add_stored(np.arange(200))
    truth, _ = vjson.brute_force_knn(data, data[:20], 5, "cosine")
    assert recall_at_k(index.search_batch(data[:20], 5)[0], truth) > 0.95


def test_normalise_refuses_zero_and_nan_rows():
    with pytest.raises(vjson.InvalidVectorError, match="zeros"):
        vjson._core.normalise(np.zeros((2, 3), np.float32))
    with pytest.raises(vjson.InvalidVectorError, match="NaN"):
        vjson._core.normalise(np.array([[1, np.nan]], np.float32))
    assert vjson._core.normalise(np.array([3, 4], np.float32)).tolist() == [[0.6000000238418579, 0.800000011920929]]


def test_bad_use_is_refused_and_changes_nothing():
    data = clustered(300, 8, 5)
    index = external(data[:200])
    with pytest.raises(vjson.InvalidInputError, match="add_stored"):
        index.add(data[:5], np.arange(5))
    with pytest.raises(vjson.InvalidInputError, match="past the attached"):
        index.add_stored([200])  # the attached array has 200 rows
    index.attach_vectors(data)
    with pytest.raises(vjson.InvalidInputError, match="in order"):
        index.add_stored([201])  # a gap: row 200 is next
    with pytest.raises(vjson.InvalidInputError, match="in order"):
        index.add_stored([201, 200])  # out of order
    index.attach_vectors(data[:200])
    with pytest.raises(vjson.InvalidInputError, match="rows"):
        index.attach_vectors(data[:100])  # fewer rows than nodes
    with pytest.raises(vjson.DimensionMismatchError):
        index.attach_vectors(np.zeros((300, 9), np.float32))
    with pytest.raises(vjson.InvalidVectorError):
        index.attach_vectors(data[:, ::2].copy().astype(np.float64))
    with pytest.raises(vjson.InvalidVectorError):
        index.attach_vectors(np.asfortranarray(data))
    assert len(index) == 200 and index.element_count == 200
    np.testing.assert_array_equal(index.get_vectors([5]), data[5:6])  # still the first array
    inline = vjson.HNSWIndex(8)
    with pytest.raises(vjson.InvalidInputError, match="external_vectors"):
        inline.attach_vectors(data)
    with pytest.raises(vjson.InvalidInputError):
        inline.add_stored([0])


def test_rows_are_appended_and_relinked():
    data = clustered(400, 8, 6)
    index = external(data[:100])
    index.attach_vectors(data)  # the array grew (a remapped file does this)
    index.add_stored(np.arange(100, 400))
    assert len(index) == 400
    data[3] = data[399]  # a row rewritten in place and re-linked
    index.add_stored([3])
    found = set(index.search(data[399], 2)[0].tolist())
    assert found == {3, 399}
    index.check()


def test_deleted_rows_are_never_reused_and_come_back_in_place():
    data = clustered(300, 8, 7)
    index = external(data)
    index.delete(np.arange(0, 100))
    assert len(index) == 200 and index.check()["reusable_slots"] == 0
    assert not set(index.search_batch(data[:50], 10)[0].ravel().tolist()) & set(range(100))
    index.add_stored([5, 6])  # revived on their own nodes
    assert index.element_count == 300 and len(index) == 202
    assert index.search(data[5], 1)[0][0] == 5
    index.check()


def test_save_and_load_need_the_vectors_attached(tmp_path):
    data = clustered(1000, 12, 8)
    index = external(data)
    index.delete([10, 11])
    path = tmp_path / "g.vjx"
    index.save(path)
    # the file holds links only: about (12 + 4 * (M0 + 1) + 4 * (E + 1)) bytes per node, no vector
    assert path.stat().st_size < 65536 * 2 + 1000 * (16 + 4 * 66) + 20_000
    loaded = vjson.HNSWIndex.load(path, verify=True)
    assert loaded.external_vectors and len(loaded) == 998
    with pytest.raises(vjson.InvalidInputError, match="attach_vectors"):
        loaded.search(data[0], 3)
    loaded.attach_vectors(data)
    np.testing.assert_array_equal(index.search_batch(data[:50], 5)[0], loaded.search_batch(data[:50], 5)[0])
    loaded.check()


def test_reattaching_while_threads_search():
    """Searches running across a re-attach finish on the old array, then use the new one."""
    data = clustered(2000, 16, 9)
    index = external(data)
    truth = index.search_batch(data[:64], 5)[0]
    stop = threading.Event()
    errors: list = []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = index.search_batch(data[:64], 5, num_threads=1)[0]
                if not np.array_equal(got, truth):
                    errors.append("results changed")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(200):
        copy = np.array(data)  # a fresh buffer each time; the old one is freed once detached
        index.attach_vectors(copy)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------- identity labels

def test_identity_labels_need_no_table(tmp_path):
    data = clustered(5000, 8, 10)
    index = vjson.HNSWIndex(8)
    index.add(data, np.arange(5000))
    index.save(tmp_path / "a.vjx")
    records = 5000 * index_record_size(8)
    # no label table (it took 32 bytes per label before)
    assert (tmp_path / "a.vjx").stat().st_size < 2 * 65536 + records + 5000 * 4


def index_record_size(dim: int, M0: int = 32, filter_links: int = 32) -> int:
    vec_offset = -(-(12 + 4 * (M0 + 1) + 4 * (filter_links + 1 if filter_links else 0)) // 32) * 32
    return -(-(vec_offset + 4 * dim) // 32) * 32


@pytest.mark.parametrize("start", ["identity", "loaded"])
def test_leaving_identity_labels_keeps_every_label_findable(tmp_path, start):
    data = clustered(1200, 8, 11)
    index = vjson.HNSWIndex(8)
    index.add(data[:1000], np.arange(1000))
    index.delete(np.arange(0, 1000, 3))  # frees slots: the next new label takes one
    if start == "loaded":
        index.save(tmp_path / "i.vjx")
        index = vjson.HNSWIndex.load(tmp_path / "i.vjx")
    index.add(data[1000:1200], np.arange(5000, 5200))  # labels unlike their nodes
    live = sorted(set(range(1000)) - set(range(0, 1000, 3))) + list(range(5000, 5200))
    assert sorted(index.labels().tolist()) == live
    assert all(label in index for label in (1, 2, 5000, 5199)) and 3 not in index and 999 not in index and 998 in index
    vectors = np.vstack([data[:1000], data[1000:1200]])
    labels = np.concatenate([np.arange(1000), np.arange(5000, 5200)])
    np.testing.assert_allclose(index.get_vectors([5000, 1]), vectors[[1000, 1]])
    keep = np.isin(labels, live)
    truth, _ = vjson.brute_force_knn(vectors[keep], vectors[keep][:50], 5)
    found = index.search_batch(vectors[keep][:50], 5, ef_search=100)[0]
    assert recall_at_k(found, labels[keep][truth]) > 0.95
    index.check()
    index.save(tmp_path / "j.vjx")
    again = vjson.HNSWIndex.load(tmp_path / "j.vjx")
    assert sorted(again.labels().tolist()) == live and 3 not in again and 5100 in again


def test_a_deleted_label_comes_back_on_its_own_node():
    data = clustered(100, 4, 12)
    index = vjson.HNSWIndex(4)
    index.add(data, np.arange(100))
    index.delete([10, 20])
    index.add(data[[20]], [20])
    assert index.element_count == 100 and len(index) == 99 and index.check()["reusable_slots"] == 1
    index.add(data[[0]] + 1, [100])  # a new label takes the one free slot (node 10)
    assert index.element_count == 100 and 100 in index and 10 not in index
    index.check()


# ---------------------------------------------------------------- packed level 0 on disk

_HEADER = struct.Struct("<8s" + "I" * 9 + "iq" + "Q" * 16 + "II")  # index_file.pxi's header fields
_FIELDS = ("magic version header_size dim metric M M0 ef_construction record_size vec_offset max_level "
           "entry_point count n_deleted label_count rng level0_offset level0_bytes level0_hash labels_offset "
           "labels_bytes labels_hash upper_offset upper_bytes upper_hash free_offset free_bytes free_hash "
           "labels_are_nodes external_vectors").split()


def read_header(raw: bytes) -> dict:
    return dict(zip(_FIELDS, _HEADER.unpack_from(raw)))


def rewrite(raw: bytes, level0: bytes) -> bytes:
    """raw with a new level-0 section whose checksums are made right: damage the checks must catch by reading it."""
    h = read_header(raw)
    assert len(level0) == h["level0_bytes"]
    h["level0_hash"] = vjson._core._checksum(level0, 0x766A736F6E)
    head = _HEADER.pack(*(h[f] for f in _FIELDS)) + raw[_HEADER.size:248]  # (the later fields as they were)
    head += struct.pack("<Q", vjson._core._checksum(head, 0x766A736F6E))
    start = h["level0_offset"]
    return head + raw[256:start] + level0 + raw[start + len(level0):]


@pytest.fixture
def packed(tmp_path):
    data = clustered(3000, 8, 13)
    index = external(data)
    index.delete(np.arange(0, 3000, 10))
    path = tmp_path / "p.vjx"
    index.save(path, pack=True)
    return index, data, path


def test_packed_file_holds_only_the_links_in_use(packed):
    index, data, path = packed
    h = read_header(path.read_bytes())
    assert h["version"] == 7 and h["external_vectors"] == 1  # packed since 3, on request since 6
    assert path.read_bytes()[232:236] == (1).to_bytes(4, "little")  # the level0_packed flag
    lists = index.check()
    links = lists["links"] + lists["filter_links"]  # (all levels: level 0 holds most)
    # a deleted bit and two 1-byte counts per node, then 2 bytes per link below 65,536 nodes
    assert h["level0_bytes"] <= -(-3000 // 8) + 2 * 3000 + 2 * links
    assert h["level0_bytes"] < 3000 * (16 + 4 * 66) / 2.5
    loaded = vjson.HNSWIndex.load(path)
    loaded.attach_vectors(data)
    assert loaded.check()["deleted"] == 300
    np.testing.assert_array_equal(loaded.search_batch(data[:100], 10)[0], index.search_batch(data[:100], 10)[0])


def test_three_byte_ids_past_65536_nodes(tmp_path):
    n = 70_000
    data = np.random.default_rng(14).normal(size=(n, 4)).astype(np.float32)
    index = vjson.HNSWIndex(4, "l2", M=4, ef_construction=16, external_vectors=True)
    index.attach_vectors(data)
    index.add_stored(np.arange(n))
    index.save(tmp_path / "big.vjx", pack=True)
    h = read_header((tmp_path / "big.vjx").read_bytes())
    lists = index.check()
    assert h["level0_bytes"] > -(-n // 8) + 2 * n + 2 * ((lists["links"] + lists["filter_links"]) // 2)  # wider than 2 bytes a link
    loaded = vjson.HNSWIndex.load(tmp_path / "big.vjx")
    loaded.attach_vectors(data)
    assert loaded.check() == lists
    np.testing.assert_array_equal(loaded.search_batch(data[-50:], 5)[0], index.search_batch(data[-50:], 5)[0])


def test_damaged_packed_links_are_refused(packed, tmp_path):
    _, _, path = packed
    raw = path.read_bytes()
    h = read_header(raw)
    start, size = h["level0_offset"], h["level0_bytes"]
    level0 = raw[start:start + size]
    counts = -(-3000 // 8)
    cases = {
        "flip": raw[:start + 500] + bytes([raw[start + 500] ^ 1]) + raw[start + 501:],  # checksum catches it
        "count": rewrite(raw, level0[:counts + 6] + bytes([200]) + level0[counts + 7:]),  # more than M0 links
        "filter count": rewrite(raw, level0[:counts + 7] + bytes([200]) + level0[counts + 8:]),  # more than E
        "link": rewrite(raw, level0[:size - 2] + (65535).to_bytes(2, "little")),  # a node that does not exist
        "deleted bit": rewrite(raw, bytes([level0[0] ^ 2]) + level0[1:]),  # disagrees with the header's count
    }
    for name, bad in cases.items():
        (tmp_path / name).write_bytes(bad)
        with pytest.raises(vjson.CorruptionError):
            vjson.HNSWIndex.load(tmp_path / name)
    for keep in (100, start + 10, start + size - 1):
        (tmp_path / "cut").write_bytes(raw[:keep])
        with pytest.raises(vjson.CorruptionError):
            vjson.HNSWIndex.load(tmp_path / "cut")


def test_records_file_is_mapped_and_damage_is_found_by_verify(tmp_path):
    """Format 6 saves external-vector level 0 as records (the default): loading maps them,
    a damaged link never takes a search out of the graph, and verify=True finds it."""
    data = clustered(3000, 8, 15)
    index = external(data)
    index.delete(np.arange(0, 3000, 10))
    path = tmp_path / "r.vjx"
    index.save(path)
    raw = path.read_bytes()
    h = read_header(raw)
    assert h["version"] == 7 and raw[232:236] == bytes(4)  # not packed
    assert h["level0_bytes"] == 3000 * h["record_size"]
    loaded = vjson.HNSWIndex.load(path)
    loaded.attach_vectors(data)
    assert loaded.check()["deleted"] == 300
    np.testing.assert_array_equal(loaded.search_batch(data[:100], 10)[0], index.search_batch(data[:100], 10)[0])
    damaged = bytearray(raw)
    start = h["level0_offset"]
    for node in range(0, 3000, 7):  # every 7th node's first link points past the graph
        damaged[start + node * h["record_size"] + 16:start + node * h["record_size"] + 20] = (10**6).to_bytes(4, "little")
    (tmp_path / "d.vjx").write_bytes(bytes(damaged))
    broken = vjson.HNSWIndex.load(tmp_path / "d.vjx")
    broken.attach_vectors(data)
    rows, _ = broken.search_batch(data[:50], 10)
    assert rows.max() < 3000
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(tmp_path / "d.vjx", verify=True)


def _saved_base(tmp_path, n, base_rows, seed):
    """n clustered 8-d vectors, the first base_rows of them in an external-vector graph
    saved as base.vjx, which then tracks its changes (for patches)."""
    data = clustered(n, 8, seed)
    index = vjson.HNSWIndex(8, "l2", M=8, ef_construction=64, external_vectors=True)
    index.attach_vectors(data)
    index.add_stored(np.arange(base_rows))
    index.save(tmp_path / "base.vjx")
    index.track_changes()
    return data, index


def test_a_patch_on_its_base_file_gives_the_graph_back(tmp_path):
    """patch(): the nodes added or changed since the base file; load(base, patch=) rebuilds
    the graph exactly, and refuses a damaged patch or one of another base."""
    data, index = _saved_base(tmp_path, 4000, 3000, seed=16)
    assert index.patch_nodes == 0
    index.add_stored(np.arange(3000, 3100))
    index.delete(np.arange(0, 50, 5))
    changed = index.patch_nodes
    assert 100 < changed < 3100
    patch = index.patch()
    again = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=patch)
    again.attach_vectors(data)
    assert len(again) == len(index) and again.check() == index.check()
    np.testing.assert_array_equal(again.search_batch(data[:200], 10)[0], index.search_batch(data[:200], 10)[0])
    again.add_stored(np.arange(3100, 3200))  # the loaded graph keeps growing, and patching from its base
    assert again.patch_nodes > changed
    third = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=again.patch())
    third.attach_vectors(data)
    np.testing.assert_array_equal(third.search_batch(data[:200], 10)[0], again.search_batch(data[:200], 10)[0])
    damaged = bytearray(patch)
    damaged[len(patch) // 2] ^= 1
    for bad in (bytes(damaged), patch[:-4], b"VJPATCH\x01" + bytes(100)):
        with pytest.raises(vjson.CorruptionError):
            vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=bad)
    index.save(tmp_path / "other.vjx")  # a patch names the node count of its base
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(tmp_path / "other.vjx", patch=patch)


def test_a_narrow_patch_of_many_nodes_loads_as_the_graph_it_records(tmp_path):
    """A patch of under 1 node in 64 loads on a mapped base, its records' page faults taken
    ahead on all cores (from 1,024 nodes); a wider one reads level 0 whole. Both give the graph back."""
    base = 100_000
    data, index = _saved_base(tmp_path, base + 40, base, seed=21)
    gone = np.arange(0, base, 80)
    index.delete(gone)
    index.add_stored(np.arange(base, base + 20))  # (and the lists of the nodes they link to)
    assert 1024 < index.patch_nodes < base / 64 and not index.patch_is_wide
    narrow = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=index.patch())
    narrow.attach_vectors(data)
    assert narrow.check() == index.check()
    queries = data[base - 300:base + 20]
    labels = narrow.search_batch(queries, 10)[0]
    np.testing.assert_array_equal(labels, index.search_batch(queries, 10)[0])
    assert not np.isin(labels, gone).any()
    index.add_stored(np.arange(base + 20, base + 40))
    index.delete(np.setdiff1d(np.arange(1, base, 97), gone))
    assert (index.patch_nodes * 64 >= base) == index.patch_is_wide
    wide = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=index.patch())
    wide.attach_vectors(data)
    assert wide.check() == index.check()
    np.testing.assert_array_equal(wide.search_batch(queries, 10)[0], index.search_batch(queries, 10)[0])


def test_a_patch_with_correct_checksums_but_a_bad_link_is_refused(tmp_path):
    """Links are checked in the patch itself: one out of range on level 0 or above, its
    checksums made right again, is refused rather than followed by a search."""
    data, index = _saved_base(tmp_path, 3000, 2000, seed=17)
    index.add_stored(np.arange(2000, 3000))
    patch = index.patch()
    head = struct.Struct("<QQQQqiQQQQ")  # the version-1 header (float32)
    fields = list(head.unpack_from(patch, 8))
    body = bytearray(patch[8 + head.size + 8:])
    words = np.frombuffer(body, dtype="<u4")
    starts, pos = [], 0
    while pos < len(words):  # [node][level][flags][n][n links][m][m filter links][level * (M + 1) words]
        starts.append(pos)
        assert words[pos + 2] & 0x40000000  # (the filter links' flag)
        pos += 4 + int(words[pos + 3]) + 1 + int(words[pos + 4 + words[pos + 3]]) + int(words[pos + 1]) * 9
    assert pos == len(words) and len(starts) == fields[7]

    def reframed(word, value):
        b = bytearray(body)
        struct.pack_into("<I", b, 4 * word, value)
        fields[9] = vjson._core._checksum_bytes(bytes(b))
        h = head.pack(*fields)
        return patch[:8] + h + struct.pack("<Q", vjson._core._checksum_bytes(h)) + bytes(b)

    level0 = next(p for p in starts if words[p + 3] > 0)
    def upper_start(p):
        return p + 5 + int(words[p + 3]) + int(words[p + 4 + words[p + 3]])

    upper = next(p for p in starts if words[p + 1] > 0 and words[upper_start(p)] > 0)
    near = next(p for p in starts if words[p + 4 + words[p + 3]] > 0)
    vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=reframed(level0 + 4, int(words[level0 + 4])))  # unchanged: fine
    for word in (level0 + 4, upper_start(upper) + 1, near + 5 + int(words[near + 3])):
        with pytest.raises(vjson.CorruptionError, match="link to invalid node|links to invalid node"):
            vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=reframed(word, 3000 + 7))
    with pytest.raises(vjson.CorruptionError, match="invalid entry"):  # more filter links than E
        vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=reframed(near + 4 + int(words[near + 3]), 17))


@pytest.mark.parametrize("kind", ["float16", "int8", "binary"])
def test_a_patch_of_a_quantized_graph_carries_its_new_codes(tmp_path, kind):
    """A compact kind's patch holds the codes written since its base: the patched graph
    walks the same codes (equal distances without rescoring) and grows on from there."""
    dim = 64
    data = vjson._core.normalise(clustered(3000, dim, seed=3))
    index = vjson.HNSWIndex(dim, "cosine", M=8, ef_construction=64, external_vectors=True, quantization=kind)
    index.attach_vectors(data)
    index.add_stored(np.arange(2000))
    index.save(tmp_path / "base.vjx")
    index.track_changes()
    index.add_stored(np.arange(2000, 2300))
    index.delete(np.arange(0, 40, 4))
    assert 300 < index.patch_nodes < 2300
    patch = index.patch()
    assert patch[:8] == b"VJPATCH\x02"
    again = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=patch)
    again.attach_vectors(data)
    assert len(again) == len(index) and again.check() == index.check()
    if kind != "float16":  # (float16 learns nothing)
        np.testing.assert_array_equal(again.quantization_params, index.quantization_params)
    queries = data[2000:2300:3] + np.float32(0.01)
    for rescore in (False, True):
        mine = index.search_batch(queries, 10, rescore=rescore)
        theirs = again.search_batch(queries, 10, rescore=rescore)
        np.testing.assert_array_equal(theirs[0], mine[0])
        np.testing.assert_array_equal(theirs[1], mine[1])  # the same codes: the same distances
    new_rows = again.search_batch(data[2000:2300], 1)[0][:, 0]
    assert np.mean(new_rows == np.arange(2000, 2300)) > 0.9  # the new nodes' codes are theirs
    again.add_stored(np.arange(2300, 2400))  # and patching from the base goes on
    third = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=again.patch())
    third.attach_vectors(data)
    np.testing.assert_array_equal(third.search_batch(queries, 10, rescore=False)[1],
                                  again.search_batch(queries, 10, rescore=False)[1])


def test_a_patch_of_an_empty_base_carries_what_the_kind_learnt(tmp_path):
    """A base saved empty was not trained: the patch brings the int8 ranges learnt since."""
    data = vjson._core.normalise(clustered(1500, 32, seed=5))
    index = vjson.HNSWIndex(32, "cosine", M=8, ef_construction=64, external_vectors=True, quantization="int8")
    index.attach_vectors(data)
    index.save(tmp_path / "empty.vjx")
    index.track_changes()
    index.add_stored(np.arange(1500))
    again = vjson.HNSWIndex.load(tmp_path / "empty.vjx", patch=index.patch())
    again.attach_vectors(data)
    assert again.trained
    np.testing.assert_array_equal(again.quantization_params, index.quantization_params)
    np.testing.assert_array_equal(again.search_batch(data[:100], 5, rescore=False)[1],
                                  index.search_batch(data[:100], 5, rescore=False)[1])


def test_a_patch_is_refused_by_a_base_of_another_kind_or_training(tmp_path):
    data = vjson._core.normalise(clustered(1200, 32, seed=6))
    other = vjson._core.normalise(clustered(1200, 32, seed=7))

    def base(kind, rows, name):
        index = vjson.HNSWIndex(32, "cosine", M=8, ef_construction=64, external_vectors=True, quantization=kind)
        index.attach_vectors(rows)
        index.add_stored(np.arange(1000))
        index.save(tmp_path / name)
        index.track_changes()
        return index

    index = base("int8", data, "int8.vjx")
    index.add_stored(np.arange(1000, 1100))
    patch = index.patch()
    base("float16", data, "float16.vjx")
    base(None, data, "float32.vjx")
    trained_apart = base("int8", other, "other.vjx")
    assert not np.array_equal(trained_apart.quantization_params, index.quantization_params)
    for name in ("float16.vjx", "float32.vjx", "other.vjx"):  # same node count, other codes
        with pytest.raises(vjson.CorruptionError):
            vjson.HNSWIndex.load(tmp_path / name, patch=patch)
    damaged = bytearray(patch)
    damaged[-3] ^= 0x40  # inside the last node's code
    with pytest.raises(vjson.CorruptionError):
        vjson.HNSWIndex.load(tmp_path / "int8.vjx", patch=bytes(damaged))
    assert len(vjson.HNSWIndex.load(tmp_path / "int8.vjx", patch=patch)) == 1100


def test_a_patch_after_the_codes_were_learnt_again_carries_all_of_them(tmp_path):
    """Rows doubling since the base was learnt from: new parameters and every code
    re-encoded, all in the patch, so the base's old codes are all replaced."""
    data = vjson._core.normalise(clustered(2400, 32, seed=8))
    index = vjson.HNSWIndex(32, "cosine", M=8, ef_construction=64, external_vectors=True, quantization="int8")
    index.attach_vectors(data)
    index.add_stored(np.arange(1000))
    before = index.quantization_params
    index.save(tmp_path / "base.vjx")
    index.track_changes()
    index.add_stored(np.arange(1000, 2100))  # 2,100 rows >= 2 x 1,000: learnt again
    assert index.trained_rows == 2100 and not np.array_equal(index.quantization_params, before)
    assert index.patch_nodes == 2100
    again = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=index.patch())
    again.attach_vectors(data)
    np.testing.assert_array_equal(again.quantization_params, index.quantization_params)
    np.testing.assert_array_equal(again.search_batch(data[:300], 10, rescore=False)[1],
                                  index.search_batch(data[:300], 10, rescore=False)[1])
