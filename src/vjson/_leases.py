"""Leases: a read-only process's claim on the files of one checkpoint.

``lease-C`` (C: the checkpoint number) lists the files the manifest of
checkpoint C names. The writer creates it before switching the manifest to C.
A reader takes a *shared* flock on it before opening those files and keeps it
while it uses checkpoint C. The writer removes the files of a superseded
checkpoint only once it gets an *exclusive* non-blocking flock on its lease;
while any reader holds it, the files stay and the writer tries again at its
next checkpoint (or open). The OS drops flocks when a process dies, so a
crashed reader never pins files.

A reader reads the manifest, takes the lease it names, then reads the
manifest again: if it moved on meanwhile (the writer may have deleted the
files between the two steps), it lets go and starts over.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import orjson

from vjson.storage import atomic_write

PREFIX = "lease-"


def lease_path(folder: Path, checkpoint: int) -> Path:
    return folder / f"{PREFIX}{checkpoint}"


def write_lease(folder: Path, checkpoint: int, names: list[str]) -> None:
    """Writer: record which files checkpoint `checkpoint` uses (before the manifest names it).

    Not synced: leases matter only to live readers, and a power cut ends them all.
    """
    atomic_write(lease_path(folder, checkpoint), orjson.dumps(sorted(n for n in names if n)), durable=False)


class Lease:
    """A shared lock on one checkpoint's lease file; released explicitly or with the process."""

    def __init__(self, fd: int, checkpoint: int) -> None:
        self._fd = fd
        self.checkpoint = checkpoint

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1

    def __del__(self) -> None:
        self.release()


def take(folder: Path, checkpoint: int) -> Lease | None:
    """Reader: a shared lease on `checkpoint`, or None if it has no lease file.

    None means the writer has already retired the checkpoint (the caller
    re-reads the manifest) or the database predates leases.
    """
    try:
        fd = os.open(lease_path(folder, checkpoint), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        # Blocks only while the writer holds it exclusively, i.e. is deleting
        # a retired checkpoint: a moment.
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        raise
    return Lease(fd, checkpoint)


def leased_files(folder: Path, current: int) -> set[str]:
    """Writer: the files that live readers still lease, freeing every lease nobody holds.

    A free lease is unlinked while the writer holds it exclusively, so a reader
    that opened it just before blocks until then, and afterwards finds the
    manifest has moved on.
    """
    keep: set[str] = set()
    for name in os.listdir(folder):
        if not name.startswith(PREFIX):
            continue
        try:
            checkpoint = int(name[len(PREFIX):])
        except ValueError:
            continue
        if checkpoint == current:
            continue
        try:
            fd = os.open(folder / name, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                try:
                    names = orjson.loads(os.pread(fd, 1 << 20, 0))
                except orjson.JSONDecodeError:
                    names = []
                keep.update(n for n in names if isinstance(n, str))
                continue
            try:
                os.unlink(folder / name)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
    return keep
