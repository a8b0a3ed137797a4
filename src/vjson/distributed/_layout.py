"""The collection's layout file and the routing of ids to shards (no Ray here).

``root/name/LAYOUT.json`` records how many shards there are, the settings they
were created with and the node each shard's folder lives on, so a new driver
reattaches to the same folders. It is written once at creation (and when a
reattach finds the shards on other nodes), atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from vjson.errors import CorruptionError, FormatVersionError, InvalidInputError
from vjson.storage import atomic_write

LAYOUT = "LAYOUT.json"
LAYOUT_FORMAT = 1
#: the routing function's name, stored in the layout: changing it would strand records
ROUTING = "blake2b-64-mod-n"


def shard_of(id: str, shards: int) -> int:
    """The shard that owns `id`: a hash stable across processes, machines and
    Python versions (unlike ``hash()``, which is salted per process)."""
    digest = hashlib.blake2b(id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def shard_folder(collection: Path, index: int) -> Path:
    return collection / f"shard-{index}"


def read_layout(collection: Path) -> dict[str, Any] | None:
    """The stored layout, or None when the collection does not exist yet."""
    path = collection / LAYOUT
    if not path.exists():
        return None
    try:
        layout = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CorruptionError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(layout, dict) or not isinstance(layout.get("format"), int):
        raise CorruptionError(f"{path}: not a vjson layout")
    if layout["format"] > LAYOUT_FORMAT:
        raise FormatVersionError(f"{path}: written by a newer vjson (layout format {layout['format']})")
    missing = [key for key in ("shards", "dimension", "metric", "options", "routing", "nodes") if key not in layout]
    if missing:
        raise CorruptionError(f"{path}: damaged layout (missing {missing})")
    if layout["routing"] != ROUTING:
        raise CorruptionError(f"{path}: unknown routing {layout['routing']!r} (this vjson routes by {ROUTING})")
    return layout


def write_layout(collection: Path, layout: dict[str, Any]) -> None:
    collection.mkdir(parents=True, exist_ok=True)
    atomic_write(collection / LAYOUT, orjson.dumps(layout, option=orjson.OPT_INDENT_2))


def new_layout(shards: int, dimension: int, metric: str, options: dict[str, Any]) -> dict[str, Any]:
    return {"format": LAYOUT_FORMAT, "shards": shards, "dimension": dimension, "metric": metric,
            "options": options, "routing": ROUTING, "nodes": [None] * shards}


def check_reattach(layout: dict[str, Any], collection: Path, shards: int | None, dimension: int | None,
                   metric: str | None) -> None:
    """A reattach may restate the stored settings but not contradict them (as VectorDB does)."""
    for key, given in (("shards", shards), ("dimension", dimension), ("metric", metric)):
        if given is not None and given != layout[key]:
            raise InvalidInputError(f"{collection} stores {key} {layout[key]!r}, not {given!r}")
