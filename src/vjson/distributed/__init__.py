"""A vjson collection sharded over a Ray cluster, with the VectorDB API.

``ShardedVectorDB(name, root, dimension, metric, shards=N)`` runs N Ray actors
(``VectorShard``), each owning one :class:`~vjson.VectorDB` in
``root/name/shard-i`` on its node's disk. Writes are routed by a stable hash of
the id; reads scatter to every shard and merge by score. Design, atomicity
and faults: docs/distributed.md.

Needs Ray: ``pip install 'vjson[ray]'``. ``import vjson`` never imports this.
"""

from __future__ import annotations

try:
    import ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError("vjson.distributed needs Ray: install the extra with pip install 'vjson[ray]'") from exc

from vjson.distributed._collection import ShardedVectorDB
from vjson.distributed._layout import shard_of
from vjson.distributed._shard import VectorShard

__all__ = ["ShardedVectorDB", "VectorShard", "shard_of"]
