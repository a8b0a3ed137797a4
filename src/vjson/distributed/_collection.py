"""The driver side: ShardedVectorDB routes writes, scatters reads and merges them."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from vjson import fusion as fuse
from vjson.database import _DEFAULT_INCLUDE, _HYBRID_CANDIDATES, INCLUDE_ALL, VectorDB, _check_include
from vjson.distributed._bm25 import merge_statistics
from vjson.distributed._columns import merge_nearest
from vjson.distributed._layout import check_reattach, new_layout, read_layout, shard_folder, shard_of, write_layout
from vjson.distributed._shard import VectorShard
from vjson.errors import (
    DatabaseClosedError,
    InvalidInputError,
    ReadOnlyError,
    RecordNotFoundError,
    ShardUnavailableError,
    VJsonError,
)
from vjson.results import HybridResult, Record, SearchResult
from vjson.validation import (
    MAX_K,
    check_id,
    check_batch,
    check_ids,
    check_ids_for_lookup,
    check_k,
    check_metadata,
    check_vector,
    check_vectors,
)

PLACEMENTS = ("SPREAD", "PACK", "STRICT_SPREAD", "STRICT_PACK")
#: VectorDB's own options (what the shards are opened with), besides path/dimension/metric
DB_OPTIONS = frozenset(inspect.signature(VectorDB.__init__).parameters) - {"self", "path", "dimension", "metric"}
_DB_DEFAULTS = {name: p.default for name, p in inspect.signature(VectorDB.__init__).parameters.items()}
#: options that apply to one opening only: a reattach may change them; the rest are stored
PER_OPEN = frozenset({"read_only", "durability", "ef_search", "max_elements"})

_RemoteShard = ray.remote(VectorShard)


class ShardedVectorDB:
    """A vjson collection split over ``shards`` Ray actors, with VectorDB's API.

    ``ShardedVectorDB(name, root, dimension=None, metric=None, shards=None,
    **VectorDB options)`` creates ``root/name`` (``dimension`` required; shards
    default to 1) or reattaches to it, when its layout file exists: the stored
    shard count, dimension and metric then win, and contradicting them raises
    :class:`InvalidInputError`. ``ray.init()`` must have been called (or Ray's
    auto-init applies). ``root`` must be the same path on every node: shard
    ``i`` lives in ``root/name/shard-i`` on the node it was first placed on,
    and a reattach places it there again.

    Placement: one placement group of ``shards`` bundles of ``shard_cpus``
    CPUs (default 1), strategy ``placement`` (default ``"SPREAD"``: over as
    many nodes as possible); both are stored, and a reattach may change them.
    Faults: Ray restarts a dead shard actor (``max_restarts``, -1:
    always) and it reopens its folder; every call is idempotent (writes are
    upserts routed by a stable id hash), so calls that hit a dead shard are
    retried until ``retry_timeout`` seconds have passed, then raise
    :class:`ShardUnavailableError`. Errors raised inside a shard reach the
    caller as the same vjson exception a VectorDB raises.
    """

    def __init__(self, name: str, root: str | Path, dimension: int | None = None, metric: str | None = None,
                 shards: int | None = None, *, placement: str | None = None, shard_cpus: float | None = None,
                 max_restarts: int = -1, retry_timeout: float = 60.0, start_timeout: float = 120.0,
                 max_concurrency: int = 4, **options: Any) -> None:
        self._closed = True
        self._actors: list[Any] = []
        self._group: Any = None
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
            raise InvalidInputError(f"name must be a folder name (no path separators), got {name!r}")
        if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or not shards >= 1):
            raise InvalidInputError(f"shards must be an int >= 1, got {shards!r}")
        if placement is not None and placement not in PLACEMENTS:
            raise InvalidInputError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        if shard_cpus is not None and (not isinstance(shard_cpus, (int, float)) or isinstance(shard_cpus, bool)
                                       or not shard_cpus > 0):
            raise InvalidInputError(f"shard_cpus must be a number > 0, got {shard_cpus!r}")
        for what, value in (("retry_timeout", retry_timeout), ("start_timeout", start_timeout)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise InvalidInputError(f"{what} must be a number >= 0, got {value!r}")
        unknown = sorted(set(options) - DB_OPTIONS)
        if unknown:
            raise TypeError(f"ShardedVectorDB got unexpected keyword arguments {unknown} "
                            f"(VectorDB options: {sorted(DB_OPTIONS)})")
        self.name = name
        self.path = Path(root) / name
        self._retry_timeout = float(retry_timeout)
        if not ray.is_initialized():
            ray.init()

        layout = read_layout(self.path)
        creating = layout is None
        if layout is None:
            if dimension is None:
                raise InvalidInputError(f"{self.path} holds no collection yet: creating one needs a dimension")
            stored = {k: v for k, v in options.items() if k not in PER_OPEN}
            layout = new_layout(shards or 1, dimension, metric or "cosine", stored)
        else:
            check_reattach(layout, self.path, shards, dimension, metric)
        # placement is stored too, but may change on a reattach (e.g. a bigger cluster)
        layout["placement"] = placement or layout.get("placement", "SPREAD")
        layout["shard_cpus"] = float(shard_cpus or layout.get("shard_cpus", 1.0))
        self.dimension: int = layout["dimension"]
        self.metric: str = layout["metric"]
        self._options = {**layout["options"], **options}
        self._read_only = bool(self._options.get("read_only", False))
        self._ef_search = int(self._options.get("ef_search", _DB_DEFAULTS["ef_search"]))
        n = layout["shards"]
        shard_options = dict(self._options, dimension=self.dimension, metric=self.metric)
        self._start(n, layout["nodes"], layout["placement"], layout["shard_cpus"], max_restarts, max_concurrency,
                    float(start_timeout), shard_options, creating)
        try:
            infos = self._ask({i: (lambda a: a.info.remote()) for i in range(n)}, retry=False)
        except BaseException:
            self._stop()
            raise
        address = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes()}
        nodes = [address[infos[i]["node_id"]] for i in range(n)]
        changed = nodes != layout["nodes"] or layout != read_layout(self.path)
        if creating or (changed and not self._read_only):  # a reader never rewrites the layout
            layout["nodes"] = nodes
            write_layout(self.path, layout)
        self._layout = layout
        self._closed = False

    # ------------------------------------------------------------------ actors

    def _start(self, n: int, nodes: list[str | None], placement: str, cpus: float, max_restarts: int,
               max_concurrency: int, timeout: float, options: dict[str, Any], create: bool) -> None:
        """One placement group bundle per shard, pinned to the node holding its folder if known."""
        alive = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
        bundles: list[dict[str, float]] = []
        for i, ip in enumerate(nodes):
            bundle = {"CPU": cpus}
            if ip is not None:
                if ip not in alive:
                    raise ShardUnavailableError(f"shard {i} of {self.path} lives on node {ip}, "
                                                f"which is not in the Ray cluster (alive: {sorted(alive)})")
                bundle[f"node:{ip}"] = 0.001  # Ray's per-node resource: places the bundle there
            bundles.append(bundle)
        total = ray.cluster_resources().get("CPU", 0.0)
        if n * cpus > total:
            raise ShardUnavailableError(f"{n} shards of {cpus} CPU need {n * cpus} CPUs; the Ray cluster has "
                                        f"{total} (lower shard_cpus, or add nodes)")
        self._group = placement_group(bundles, strategy=placement)
        ready, _ = ray.wait([self._group.ready()], timeout=timeout)
        if not ready:
            self._stop()
            raise ShardUnavailableError(
                f"the Ray cluster could not place {n} shards of {cpus} CPU ({placement}) within {timeout:.0f} s; "
                f"available: {ray.available_resources()} (lower shard_cpus, or add nodes)")
        for i in range(n):
            strategy = PlacementGroupSchedulingStrategy(placement_group=self._group, placement_group_bundle_index=i)
            actor = _RemoteShard.options(num_cpus=cpus, max_restarts=max_restarts, max_task_retries=0,
                                         max_concurrency=max_concurrency, scheduling_strategy=strategy)
            self._actors.append(actor.remote(str(shard_folder(self.path, i)), i, options, create))

    def _stop(self) -> None:
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
        if self._group is not None:
            remove_placement_group(self._group)
            self._group = None

    def _ask(self, calls: dict[int, Callable[[Any], Any]], retry: bool = True) -> dict[int, Any]:
        """Run ``calls[i](actor i)`` on every listed shard at once; gather the answers.

        An error raised inside a shard is re-raised as itself (the first, in
        shard order). A shard that is unavailable (its actor died) is asked
        again, with back-off, until ``retry_timeout``: every shard call is
        idempotent, so a repeat after a call that did happen changes nothing.
        """
        results: dict[int, Any] = {}
        pending = dict(calls)
        deadline = time.monotonic() + (self._retry_timeout if retry else 0.0)
        delay = 0.05
        while True:
            refs = {i: make(self._actors[i]) for i, make in pending.items()}
            try:  # the common case: every shard answers; one wait for all
                results.update(zip(refs, ray.get(list(refs.values()))))
                return results
            except (RayTaskError, RayActorError):
                pass  # find out which shard failed, and how
            failed: dict[int, BaseException] = {}
            error: BaseException | None = None
            for i in sorted(refs):
                try:
                    results[i] = ray.get(refs[i])
                except RayTaskError as exc:
                    error = error or _original(exc)
                except RayActorError as exc:
                    failed[i] = exc
            if error is not None:
                raise error
            if not failed:
                return results
            if time.monotonic() >= deadline:
                done = sorted(set(calls) - set(failed))
                first = min(failed)
                raise ShardUnavailableError(
                    f"shard {first} of {self.path} is unavailable ({type(failed[first]).__name__}); "
                    f"shards {done} answered: retrying the call is safe") from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            pending = {i: calls[i] for i in failed}

    def _all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """``VectorDB.method(*args, **kwargs)`` on every shard, answers in shard order."""
        self._check_open()
        out = self._ask({i: (lambda a: a.call.remote(method, *args, **kwargs)) for i in range(len(self._actors))})
        return [out[i] for i in range(len(self._actors))]

    def _on(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Any:
        self._check_open()
        return self._ask({shard: lambda a: a.call.remote(method, *args, **kwargs)})[shard]

    def _groups(self, ids: Sequence[str]) -> dict[int, list[int]]:
        """Positions of ids, by the shard that owns each."""
        n = len(self._actors)
        groups: dict[int, list[int]] = {}
        for pos, rid in enumerate(ids):
            groups.setdefault(shard_of(rid, n), []).append(pos)
        return groups

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"the sharded collection at {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ReadOnlyError(f"the sharded collection at {self.path} is open read-only")

    # ------------------------------------------------------------------ basics

    @property
    def shards(self) -> int:
        return len(self._layout["nodes"])

    @property
    def actors(self) -> list[Any]:
        """The shards' Ray actor handles, in shard order (for operators and tests)."""
        return list(self._actors)

    @property
    def nodes(self) -> list[str]:
        """The IP address of the node each shard's folder is on."""
        return list(self._layout["nodes"])

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ef_search(self) -> int:
        """The default beam width of every shard's searches."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._check_open()
        value = check_k(value)
        self._ask({i: (lambda a: a.set_ef_search.remote(value)) for i in range(len(self._actors))})
        self._ef_search = value

    def shard_of(self, id: str) -> int:
        """The shard that stores `id`."""
        return shard_of(check_id(id), len(self._actors))

    def __enter__(self) -> ShardedVectorDB:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, id: object) -> bool:
        self._check_open()
        if not isinstance(id, str) or not id:
            return False
        shard = shard_of(id, len(self._actors))
        return bool(self._ask({shard: lambda a: a.contains.remote(id)})[shard])

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._actors)} shards"
        return (f"ShardedVectorDB({self.name!r}, {str(self.path.parent)!r}, dimension={self.dimension}, "
                f"metric={self.metric!r}, {state})")

    def count(self, filter: dict | None = None) -> int:
        """Live records, or how many match `filter`: the sum over the shards."""
        return sum(self._all("count", filter))

    def ids(self) -> list[str]:
        """Every live id: shard by shard, each in the order its records were written."""
        return [rid for part in self._all("ids") for rid in part]

    # ------------------------------------------------------------------ writes

    def insert(self, id: str, vector: Any, metadata: dict | None = None, text: str | None = None) -> None:
        """Insert one record on its shard; an existing id is replaced (upsert)."""
        self._check_open()
        check_id(id)
        self.insert_batch([id], check_vector(vector, self.dimension, self.metric)[None], [metadata], [text])

    def insert_batch(self, ids: Sequence[str], vectors: Any, metadatas: Sequence[dict | None] | None = None,
                     texts: Sequence[str | None] | None = None) -> None:
        """Insert records, split by shard and sent to the shards in parallel.

        The whole batch is validated first, so bad input changes nothing.
        Each shard's part is atomic (all or nothing after a crash); the batch
        as a whole is not: a shard that fails leaves the others' parts in
        place. Upserts by id make retrying the call safe.
        """
        self._check_writable()
        ids, matrix, metas, txts = check_batch(ids, vectors, metadatas, texts, self.dimension, self.metric)
        if not ids:
            return
        calls: dict[int, Callable[[Any], Any]] = {}
        for shard, pos in self._groups(ids).items():
            part = (ids if len(pos) == len(ids) else [ids[p] for p in pos],
                    matrix if len(pos) == len(ids) else matrix[pos],
                    None if metas is None else [metas[p] for p in pos],
                    None if txts is None else [txts[p] for p in pos])
            calls[shard] = _calling("call", "insert_batch", *part)
        self._ask(calls)

    def update_metadata(self, id: str, metadata: dict | None, merge: bool = False) -> None:
        """Replace a record's metadata, or with ``merge=True`` update its top-level keys."""
        self._check_writable()
        check_id(id)
        self._on(shard_of(id, len(self._actors)), "update_metadata", id, check_metadata(metadata), merge)

    def delete(self, ids: Sequence[str] | str | None = None, *, filter: dict | None = None) -> int:
        """Delete records by id (every id must exist, else nothing is deleted) or by filter.

        Existence is checked on every shard before any deletes, so a missing id
        deletes nothing; the deletes then run per shard (each atomic). Returns
        how many were deleted.
        """
        self._check_writable()
        if (ids is None) == (filter is None):
            raise InvalidInputError("delete takes ids or filter=, exactly one of them")
        n = len(self._actors)
        if filter is not None:
            counts = self._ask({i: (lambda a: a.delete_where.remote(filter)) for i in range(n)})
            return sum(counts.values())
        targets = list(dict.fromkeys(check_ids_for_lookup(ids)))  # type: ignore[arg-type]
        if not targets:
            return 0
        parts = {shard: [targets[p] for p in pos] for shard, pos in self._groups(targets).items()}
        absent = self._ask({s: _calling("missing", part) for s, part in parts.items()})
        missing = [t for t in targets if t in set().union(*absent.values())]
        if missing:
            raise RecordNotFoundError(f"no record with id {missing[0]!r} ({len(missing)} missing); nothing deleted")
        deleted = self._ask({s: _calling("delete_present", part) for s, part in parts.items()})
        return sum(deleted.values())

    # ------------------------------------------------------------------ reads

    def get(self, id: str | None = None, *, filter: dict | None = None, limit: int | None = None,
            include: Sequence[str] = INCLUDE_ALL) -> Any:
        """``get(id)``: that record (RecordNotFoundError if absent).
        ``get(filter=..., limit=None)``: every matching record (up to `limit`),
        shard by shard, each shard's in the order they were written."""
        self._check_open()
        if id is not None:
            if filter is not None:
                raise InvalidInputError("get takes an id or filter=, not both")
            return self._on(shard_of(check_id(id), len(self._actors)), "get", id, include=include)
        if filter is None:
            raise InvalidInputError("get needs an id or filter=")
        parts = self._all("get", filter=filter, limit=limit, include=include)
        records: list[Record] = [r for part in parts for r in part]
        return records if limit is None else records[:limit]

    def get_batch(self, ids: Sequence[str], include: Sequence[str] = INCLUDE_ALL) -> list[Record]:
        """Records for ids, in order; RecordNotFoundError if any is absent."""
        self._check_open()
        ids = check_ids(ids)
        groups = self._groups(ids)
        answers = self._ask({s: _calling("call", "get_batch", [ids[p] for p in pos], include)
                             for s, pos in groups.items()})
        out: list[Record | None] = [None] * len(ids)
        for s, pos in groups.items():
            for p, record in zip(pos, answers[s]):
                out[p] = record
        return out  # type: ignore[return-value]

    def search(self, vector: Any, k: int = 10, filter: dict | None = None, ef_search: int | None = None,
               include: Sequence[str] = _DEFAULT_INCLUDE) -> list[SearchResult]:
        """The k nearest records: each shard's k nearest (filter applied there), merged by distance."""
        parts = self._all("search", vector, k, filter, ef_search, include)
        return _nearest([hit for part in parts for hit in part], k)

    def batch_search(self, vectors: Any, k: int = 10, filter: dict | None = None, ef_search: int | None = None,
                     include: Sequence[str] = _DEFAULT_INCLUDE, num_threads: int | None = None
                     ) -> list[list[SearchResult]]:
        """One result list per query row; the queries travel as one array to each shard."""
        self._check_open()
        k = check_k(k)
        include = _check_include(include)
        queries = ray.put(check_vectors(vectors, self.dimension, "queries", self.metric))
        n = len(self._actors)
        parts = self._ask({i: _calling("search_columns", queries, k, filter, ef_search, include, num_threads)
                           for i in range(n)})
        return merge_nearest([parts[i] for i in range(n)], k)

    def text_search(self, query: str, k: int = 10, filter: dict | None = None,
                    include: Sequence[str] = _DEFAULT_INCLUDE, syntax: bool | None = None) -> list[SearchResult]:
        """BM25 full-text search scored with the whole collection's statistics.

        Two rounds, as Elasticsearch's DFS query-then-fetch: every shard reports
        the query's document frequencies, document count and average length;
        then every shard rescores its best candidates with their sums, and the
        driver merges by score. `syntax` as in VectorDB.text_search (None: its
        default).
        """
        self._check_open()
        k = check_k(k)
        include = _check_include(include)
        n = len(self._actors)
        stats, local = self._text_statistics(query, syntax)
        depth = k if n == 1 else text_depth(k)
        hits = self._ask({i: _calling("text_candidates", query, k, depth, filter, include, syntax, stats, local[i])
                          for i in range(n)})
        return _best([h for i in range(n) for h in hits[i]], k)

    def _text_statistics(self, query: Any, syntax: bool | None) -> tuple[dict[str, Any] | None, list[Any]]:
        """Round one of a DFS text search: the query's BM25 statistics summed
        over all shards, and each shard's own (handed back to it in round two)."""
        n = len(self._actors)
        if n == 1:
            return None, [None]  # one shard's own statistics are the collection's
        parts = self._ask({i: (lambda a: a.text_statistics.remote(query, syntax)) for i in range(n)})
        local = [parts[i] for i in range(n)]
        return (None if any(p is None for p in local) else merge_statistics(local)), local

    def hybrid_search(self, vector: Any, text: str, k: int = 10, filter: dict | None = None,
                      fusion: str = "rrf", rrf_k: float = 10, alpha: float = 0.5, candidates: int | None = None,
                      ef_search: int | None = None, include: Sequence[str] = _DEFAULT_INCLUDE,
                      syntax: bool = False) -> list[HybridResult]:
        """VectorDB.hybrid_search over the collection: each side's `candidates`
        hits (default max(2k, 200), as VectorDB's) are gathered from every shard
        and merged first, then fused."""
        self._check_open()
        k = check_k(k)
        candidates = max(2 * k, _HYBRID_CANDIDATES) if candidates is None else check_k(candidates)
        include = _check_include(include)
        if fusion not in ("rrf", "weighted"):
            raise InvalidInputError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        depth = min(max(candidates, k), MAX_K)
        n = len(self._actors)
        stats, local = self._text_statistics(text, syntax)
        deeper = depth if n == 1 else text_depth(depth)
        answers = self._ask({i: _calling("hybrid_candidates", vector, text, depth, deeper, filter, ef_search, include,
                                         syntax, stats, local[i]) for i in range(n)})
        vector_hits = _nearest([h for i in range(n) for h in answers[i][0]], depth)
        text_hits = _best([h for i in range(n) for h in answers[i][1]], depth)
        hits_by_id: dict[str, SearchResult] = {}
        row_of: dict[str, int] = {}
        for hit in vector_hits + text_hits:
            hits_by_id.setdefault(hit.id, hit)
            row_of.setdefault(hit.id, len(row_of))
        vrows = [row_of[h.id] for h in vector_hits]
        trows = [row_of[h.id] for h in text_hits]
        vdists = [cast(float, h.distance) for h in vector_hits]  # vector hits always have one
        tscores = [h.score for h in text_hits]
        if fusion == "rrf":
            fused = fuse.rrf([vrows, trows], k=rrf_k, scores=[vdists, tscores], limit=k)
        else:
            fused = fuse.weighted([(vrows, vdists, False), (trows, tscores, True)], alpha, limit=k)
        ids = list(row_of)
        out = []
        for f in fused:
            source = hits_by_id[ids[f.row]]
            result = HybridResult(source.id, f.score, f.ranks[0], f.scores[0], f.ranks[1], f.scores[1],
                                  source.metadata, source.text)
            result.vector = source.vector
            out.append(result)
        return out

    # ------------------------------------------------------------------ durability

    def flush(self) -> None:
        """Checkpoint every shard (VectorDB.flush)."""
        self._check_writable()
        self._all("flush")

    def compact(self) -> None:
        """Compact every shard (VectorDB.compact), in parallel."""
        self._check_writable()
        self._all("compact")

    def verify(self) -> dict[str, Any]:
        """VectorDB.verify on every shard: ``{"ok", "problems", "records", "shards": [reports]}``."""
        reports = self._all("verify")
        return {"ok": all(r["ok"] for r in reports),
                "problems": [f"shard {i}: {p}" for i, r in enumerate(reports) for p in r["problems"]],
                "records": sum(r["records"] for r in reports), "shards": reports}

    def close(self) -> None:
        """Close every shard (each checkpoints), then stop the actors. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._ask({i: (lambda a: a.close.remote()) for i in range(len(self._actors))})
        finally:
            self._stop()


def _calling(method: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """A shard call, made when handed the actor (so a retry can make it again)."""
    return lambda actor: getattr(actor, method).remote(*args, **kwargs)


def _original(exc: RayTaskError) -> BaseException:
    """The exception raised inside the shard, as its own type (not Ray's wrapper)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, (RayTaskError, RayActorError)):
        return cause
    return VJsonError(f"a shard failed: {exc}")


def text_depth(k: int) -> int:
    """Candidates per shard for a text top-k: global statistics reorder a
    shard's hits a little (scores move by a few percent), so each rescores
    more than it returns."""
    return k + max(10, k // 2)


def _nearest(hits: list[SearchResult], k: int) -> list[SearchResult]:
    hits.sort(key=lambda h: h.distance if h.distance is not None else math.inf)
    return hits[:k]


def _best(hits: list[SearchResult], k: int) -> list[SearchResult]:
    hits.sort(key=lambda h: -h.score)
    return hits[:k]
