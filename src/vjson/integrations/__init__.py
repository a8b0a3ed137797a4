"""Adapters that let frameworks use a vjson database as their vector store.

Each submodule imports its framework, so ``import vjson`` (and this package)
never does:

- ``vjson.integrations.langchain.VJson``: a LangChain ``VectorStore``
  (``pip install 'vjson[langchain]'``);
- ``vjson.integrations.llama_index.VJsonVectorStore``: a LlamaIndex vector
  store (``pip install 'vjson[llama-index]'``).

See docs/integrations.md.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import orjson


def require(module: str, extra: str, integration: str) -> ModuleType:
    """Import a framework module, or raise an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{integration} needs {module.split('.')[0]}, which is not installed: "
                          f"pip install 'vjson[{extra}]'") from exc


def copy_metadata(metadata: dict | None) -> dict:
    """A private deep copy of stored metadata, so callers may mutate what they get."""
    return {} if not metadata else orjson.loads(orjson.dumps(metadata))
