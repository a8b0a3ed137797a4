"""Filter links: 2 * M more of each node's nearest neighbours on level 0, which only
filtered walks read. Recall against exact filtered search, what the lists hold, and
that files, packed files and patches keep them (and old files load without them)."""

import numpy as np
import pytest

import vjson
from conftest import batch_inserter, clustered, recall_at_k


def exact_filtered(data, queries, rows, k, metric):
    ids, _ = vjson.brute_force_knn(np.ascontiguousarray(data[rows]), queries, k, metric)
    return rows[np.asarray(ids, dtype=np.int64)]


def bitset(rows, n):
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return np.packbits(mask, bitorder="little")


def filtered(index, queries, bits, count, k=10, ef=64):
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for i, q in enumerate(queries):
        labels, _ = index.search(q, k, ef, bits, count)
        out[i, :len(labels)] = labels
    return out


def test_filter_links_are_near_neighbours_the_heuristic_left_out():
    data = clustered(3000, 16, 31)
    index = vjson.HNSWIndex(16, "l2", M=8, ef_construction=64)
    index.add(data, np.arange(3000), num_threads=1)
    lists = index.check()
    assert index.filter_links
    assert lists["filter_links"] > 0.9 * 3000 * 16  # (E = 2 * M = 16 slots, nearly all in use)
    plain = vjson.HNSWIndex(16, "l2", M=8, ef_construction=64, filter_links=False)
    plain.add(data, np.arange(3000), num_threads=1)
    assert not plain.filter_links and plain.check()["filter_links"] == 0
    # the same seed and one thread build the same heuristic lists: unfiltered searches agree
    np.testing.assert_array_equal(plain.search_batch(data[:300], 10)[0], index.search_batch(data[:300], 10)[0])
    assert lists["links"] == plain.check()["links"]
    nearest, _ = vjson.brute_force_knn(data, data[:200], 49)  # (each node itself, then 48)
    within = []
    for node in range(200):
        links, near = index._level0_lists(node)
        assert len(near) == 16 and not set(near) & set(links) and node not in near
        d = ((data[near] - data[node]) ** 2).sum(axis=1)
        assert np.all(np.diff(d) >= -1e-4 * (1 + d[1:]))  # sorted by distance
        within.append(np.isin(near, nearest[node]).mean())
    # nearly all are among the 48 nearest (the lists' 32 slots hold 16 + 16)
    assert np.mean(within) > 0.9


def test_filtered_recall_holds_from_6_to_33_percent_with_and_without_filter_links():
    """Random filters and whole clusters (a filter correlated with the data), the walk
    forced below the exact cutoff; recall@10 of held-out rows against exact filtered
    search. (Smaller allowed sets, a few hundred here, go to the exact scan.)"""
    rng = np.random.default_rng(32)
    rows_all = clustered(20200, 24, 33, centres=50)
    data, queries = np.ascontiguousarray(rows_all[:20000]), np.ascontiguousarray(rows_all[20000:])
    cluster = np.argmin(((data[:, None, :2] - data[None, :50, :2]) ** 2).sum(-1), axis=1)
    indexes = {fl: vjson.HNSWIndex(24, "l2", filter_links=fl) for fl in (True, False)}
    for index in indexes.values():
        index.add(data, np.arange(len(data)))
        index.exact_limit = 10  # walk at every selectivity
    for share in (0.06, 0.12, 0.21, 0.32):
        for rows in (np.flatnonzero(rng.random(len(data)) < share),
                     np.flatnonzero(np.isin(cluster, rng.permutation(50)[:int(50 * share)]))):
            truth = exact_filtered(data, queries, rows, 10, "l2")
            bits = bitset(rows, len(data))
            for fl, index in indexes.items():
                found = filtered(index, queries, bits, len(rows))
                assert np.isin(found[found >= 0], rows).all()
                assert recall_at_k(found, truth) >= 0.95, (share, fl, len(rows))


def test_filtered_search_on_real_embeddings_keeps_its_recall(wordnet):
    """20,000 WordNet glosses (384-d) under their own metadata (part of speech, lexical
    file: filters correlated with the meaning, 3-21 %), for held-out glosses and for
    one-word queries (low contrast: many near-equal neighbours), the walk forced.
    noun.person is a clustered filter (two thirds of its rows' neighbours are people):
    the walk shortens its stretch there and must keep the recall."""
    from conftest import WORDNET
    import orjson
    base, queries, _ = wordnet
    data = vjson._core.normalise(base[:20000])
    sets = {"glosses": queries[:300],
            "one-word": np.load(WORDNET / "hybrid_queries.f16.npy")[:300].astype(np.float32)}
    with open(WORDNET / "texts.jsonl", "rb") as f:
        meta = [orjson.loads(line) for _, line in zip(range(20000), f)]
    pos = np.array([m["pos"] for m in meta])
    lexname = np.array([m["lexname"] for m in meta])
    index = vjson.HNSWIndex(384, "cosine")
    index.add(data, np.arange(len(data)))
    index.exact_limit = 10
    for name, rows in (("pos in v,s", np.flatnonzero(np.isin(pos, ["v", "s"]))),
                       ("adj.all", np.flatnonzero(lexname == "adj.all")),
                       ("pos=a", np.flatnonzero(pos == "a")),
                       ("noun.act", np.flatnonzero(lexname == "noun.act")),
                       ("noun.person", np.flatnonzero(lexname == "noun.person")),
                       ("pos=r", np.flatnonzero(pos == "r"))):
        for kind, q in sets.items():
            truth = exact_filtered(data, q, rows, 10, "cosine")
            assert recall_at_k(filtered(index, q, bitset(rows, len(data)), len(rows)), truth) >= 0.95, (name, kind)


@pytest.mark.parametrize("pack", [False, True])
def test_files_keep_the_filter_links(tmp_path, pack):
    data = clustered(4000, 8, 36)
    queries = clustered(100, 8, 37)
    index = vjson.HNSWIndex(8, "l2", M=8, ef_construction=64, external_vectors=True)
    index.attach_vectors(data)
    index.add_stored(np.arange(4000))
    index.delete(np.arange(0, 4000, 9))
    index.save(tmp_path / "g.vjx", pack=pack)
    loaded = vjson.HNSWIndex.load(tmp_path / "g.vjx", verify=True)
    loaded.attach_vectors(data)
    assert loaded.filter_links and loaded.check() == index.check()
    rows = np.arange(1, 4000, 7)
    bits = bitset(rows, 4000)
    for a, b in ((index, loaded), (loaded, index)):
        np.testing.assert_array_equal(filtered(a, queries, bits, len(rows)), filtered(b, queries, bits, len(rows)))
    for node in (5, 777, 3999):
        for a, b in zip(index._level0_lists(node), loaded._level0_lists(node)):
            np.testing.assert_array_equal(a, b)


def test_a_graph_without_filter_links_writes_format_6_and_loads_as_it_was(tmp_path):
    """Old files (format 6 and before) have no filter links: they load and search with the
    two-hop walk, and a graph built without them still writes a file older builds read."""
    data = clustered(3000, 8, 38)
    index = vjson.HNSWIndex(8, "l2", M=8, ef_construction=64, filter_links=False, external_vectors=True)
    index.attach_vectors(data)
    index.add_stored(np.arange(3000))
    for pack in (False, True):
        index.save(tmp_path / "old.vjx", pack=pack)
        raw = (tmp_path / "old.vjx").read_bytes()
        assert int.from_bytes(raw[8:12], "little") == 6 and raw[236:240] == bytes(4)
        loaded = vjson.HNSWIndex.load(tmp_path / "old.vjx", verify=True)
        loaded.attach_vectors(data)
        assert not loaded.filter_links and loaded.check() == index.check()
        rows = np.arange(0, 3000, 5)
        truth = exact_filtered(data, data[:100], rows, 10, "l2")
        assert recall_at_k(filtered(loaded, data[:100], bitset(rows, 3000), len(rows)), truth) >= 0.95
        assert len(loaded._level0_lists(7)[1]) == 0


def test_a_patch_carries_the_filter_links_of_its_nodes(tmp_path):
    """New nodes' filter links travel in the patch; the base's other nodes keep their
    file's (a patch does not grow by the filter links an insert touches), and filtered
    recall after loading base + patch is what it was in memory."""
    data = clustered(6000, 8, 39)
    queries = clustered(200, 8, 40)
    index = vjson.HNSWIndex(8, "l2", M=8, ef_construction=64, external_vectors=True)
    index.attach_vectors(data)
    index.add_stored(np.arange(4000))
    index.save(tmp_path / "base.vjx")
    index.track_changes()
    index.add_stored(np.arange(4000, 6000))
    again = vjson.HNSWIndex.load(tmp_path / "base.vjx", patch=index.patch())
    again.attach_vectors(data)
    assert again.filter_links and again.check()["links"] == index.check()["links"]
    rows = np.flatnonzero(np.arange(6000) % 8 == 3)
    truth = exact_filtered(data, queries, rows, 10, "l2")
    bits = bitset(rows, 6000)
    in_memory = recall_at_k(filtered(index, queries, bits, len(rows)), truth)
    loaded = recall_at_k(filtered(again, queries, bits, len(rows)), truth)
    assert in_memory >= 0.95 and loaded >= 0.95
    for node in (4000, 5000, 5999):  # the added nodes' own filter links came through whole
        np.testing.assert_array_equal(index._level0_lists(node)[1], again._level0_lists(node)[1])
    plain = vjson.HNSWIndex(8, "l2", M=8, ef_construction=64, external_vectors=True, filter_links=False)
    plain.attach_vectors(data)
    plain.add_stored(np.arange(4000))
    plain.track_changes()
    plain.add_stored(np.arange(4000, 6000))
    # a patch holds the nodes whose lists changed, not every filter link an insert touched
    assert index.patch_nodes < 1.3 * plain.patch_nodes


def test_filtered_searches_read_filter_links_while_another_thread_inserts():
    """Inserts rewrite filter links beside searches (copied under node locks while
    linking): every filtered result stays allowed, sorted and findable."""
    import threading
    base = clustered(3000, 16, 41)
    extra = clustered(6000, 16, 42)
    index = vjson.HNSWIndex(16, M=8)
    index.add(base, np.arange(3000))
    index.exact_limit = 10
    allowed = np.arange(0, 20_000, 5)  # every 5th label, old and new
    bits = bitset(allowed, 20_000)
    start = threading.Barrier(4)
    done = threading.Event()
    errors, during = [], []

    def reader(t):
        try:
            start.wait()
            n = hits = 0
            while not done.is_set():
                labels, dists = index.search(base[5 * (n % 600)], 10, 64, bits, len(allowed))
                assert len(labels) == 10 and np.isin(labels, allowed).all() and (np.diff(dists) >= 0).all()
                hits += labels[0] == 5 * (n % 600)  # (an allowed row finds itself)
                n += 1
            during.append((n, hits))
        except Exception as exc:
            errors.append(exc)

    writer = batch_inserter(index, extra, 10_000, errors, done, start)
    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(during) == 3 and min(n for n, _ in during) > 10  # the searches overlapped the inserts
    assert sum(h for _, h in during) >= 0.97 * sum(n for n, _ in during)
    assert len(index) == 9000 and index.check()["filter_links"] > 0
