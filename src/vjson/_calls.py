"""Calls in flight on a database, so close() frees nothing a running call uses.

A call enters the gate before it touches the database's files or indexes and
leaves when it returns or raises. ``close()`` shuts the gate (calls starting
from then on raise DatabaseClosedError), waits for the calls inside to leave,
and only then releases the files: no call ever runs on a closed mapping, a
freed graph or a closed text index.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vjson.errors import DatabaseClosedError

F = TypeVar("F", bound=Callable[..., Any])


class CallGate:
    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()  # a plain lock: this runs around every search
        self._inside = 0
        self._shut = False
        self._empty = threading.Event()  # set once shut with no call inside

    def enter(self) -> None:
        with self._lock:
            if self._shut:
                raise DatabaseClosedError(f"{self._what} is closed")
            self._inside += 1

    def leave(self) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._shut:
                self._empty.set()

    @property
    def shut(self) -> bool:
        return self._shut

    def shut_and_wait(self) -> None:
        """Refuse new calls, then wait until the running ones have left."""
        with self._lock:
            self._shut = True
            if self._inside == 0:
                self._empty.set()
        self._empty.wait()


def gated(method: F) -> F:
    """Run a VectorDB method inside its gate (``self._calls``)."""
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        gate = self._calls
        gate.enter()
        try:
            return method(self, *args, **kwargs)
        finally:
            gate.leave()
    return call  # type: ignore[return-value]
