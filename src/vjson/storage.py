"""Files on disk: the one place vjson writes, so tests can make any write fail.

- :func:`atomic_write`: temp file, fsync, rename, fsync of the folder.
- :class:`RecordLog`: an append-only log of CRC-framed records.
- :class:`VectorFile`: fixed-size float32 rows, memory-mapped for reads.
- :class:`FileLock`: the one-writer-per-database advisory lock.

Every write, fsync and rename goes through :data:`fs`, whose functions the
fault-injection tests replace to raise ENOSPC or EIO at a chosen call.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from vjson import _logformat
from vjson.errors import CorruptionError, DatabaseClosedError, DatabaseLockedError, StorageError


class _FileSystem:
    """The write-side system calls, as replaceable methods."""

    def write(self, fd: int, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data).cast("B")
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def replace(self, src: str | Path, dst: str | Path) -> None:
        os.replace(src, dst)


fs = _FileSystem()


def storage_error(exc: OSError, what: str, replaced: bool = False) -> StorageError:
    err = StorageError(exc.errno, f"{what}: {exc.strerror or exc}")
    err.__cause__ = exc
    err.replaced = replaced  # type: ignore[attr-defined]
    return err


def open_existing(path: Path, flags: int) -> int:
    """Open a file the manifest names; its absence is damage, not a fresh start."""
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise CorruptionError(f"{path}: missing (the manifest names it)") from None


def fsync_dir(folder: str | Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fs.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so the names created in it survive a power cut (StorageError if it fails)."""
    try:
        fsync_dir(folder)
    except OSError as exc:
        raise storage_error(exc, f"syncing the folder {folder}") from exc


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file.

    A failure after the rename (syncing the folder) raises StorageError with
    ``replaced=True``: the new file is in place, only its durability is unsure,
    and the caller must treat the switch as made.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    replaced = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fs.write(fd, data)
            if durable:
                fs.fsync(fd)
        finally:
            os.close(fd)
        fs.replace(tmp, path)
        replaced = True
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        if not replaced:
            try:
                tmp.unlink()
            except OSError:
                pass
        raise storage_error(exc, f"writing {path}", replaced) from exc


# ---------------------------------------------------------------- the log

class RecordLog:
    """The write-ahead log file: frames appended in order (format: vjson._logformat).

    A frame is written with one write call and is committed once it is on
    disk whole; a torn frame at the end (a crash mid-append) is dropped on
    open. A bad frame followed by more whole frames is corruption, reported
    with the file name, never skipped.
    """

    def __init__(self, path: Path, durable: bool, read_only: bool = False, create: bool = False) -> None:
        self.path = path
        self.durable = durable
        self.read_only = read_only
        if create:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        else:
            self._fd = open_existing(path, os.O_RDONLY if read_only else os.O_RDWR)
        self.size = os.fstat(self._fd).st_size

    def frames(self, committed: int = 0, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield (offset, payload) of every whole frame from byte `start`, truncating a torn tail.

        `committed` is a length known to be whole (from the manifest): damage
        before it is always corruption. A read-only log stops before a torn
        tail instead of cutting it (a writer may be appending right now); a
        follower passes the end of what it has applied as `start` and reads
        only the frames after it.
        """
        found = _logformat.scan_file(self.path, start, committed)
        for frame in found.frames:
            yield frame.offset, frame.payload
        if found.torn is not None and not self.read_only:
            self._truncate(found.end)
        self.size = found.end

    def drop_tail(self, offset: int) -> None:
        """Forget the log from `offset` (a tail a power cut garbled); a writer cuts it off."""
        if self.read_only:
            self.size = offset
        else:
            self._truncate(offset)

    def file_size(self) -> int:
        """The log's size on disk now (a follower compares it with `size`, what it has read)."""
        fd = self._fd
        return os.fstat(fd).st_size if fd >= 0 else -1  # closed: a follower switched logs meanwhile

    def _truncate(self, size: int) -> None:
        try:
            fs.truncate(self._fd, size)
            if self.durable:
                fs.fsync(self._fd)
        except OSError as exc:
            raise storage_error(exc, f"dropping the torn tail of {self.path}") from exc
        self.size = size

    def append(self, payload: bytes) -> None:
        """Write one frame; when this returns (durable: and is synced) it is committed.

        InvalidInputError, with nothing written, if the payload exceeds the frame limit."""
        frame = _logformat.encode_frame(payload)
        try:
            fs.pwrite(self._fd, frame, self.size)
            if self.durable:
                fs.fsync(self._fd)
        except OSError as exc:
            # Cut off whatever part of the frame reached the file, so the
            # next append starts clean; the reopen logic would drop it anyway.
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                pass
            raise storage_error(exc, f"appending to {self.path}") from exc
        self.size += len(frame)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# ---------------------------------------------------------------- vectors

class VectorFile:
    """Rows of `dim` float32 values; written with pwrite, read through mmap.

    The file grows in chunks (doubling, at least 1 MiB) so appends rarely
    resize it; rows past the committed count are garbage a crash may leave,
    and are overwritten by the next append.
    """

    GROW_MIN = 1 << 20

    def __init__(self, path: Path, dim: int, durable: bool, read_only: bool = False, create: bool = False) -> None:
        self.path = path
        self.dim = dim
        self.row_bytes = 4 * dim
        self.durable = durable
        if create:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        else:
            self._fd = open_existing(path, os.O_RDONLY if read_only else os.O_RDWR)
        self.file_size = os.fstat(self._fd).st_size
        self._map: mmap.mmap | None = None
        # Told the new rows whenever the mapping moves: a graph reading its
        # vectors from this file re-attaches (an old mapping lives on while
        # anything still holds a view of it).
        self.on_remap: Callable[[np.ndarray], None] | None = None
        self._remap()

    def _remap(self) -> None:
        """Map the file at its current size, then swap the new mapping in.

        A concurrent get() sees the old mapping or the new one, never none;
        the old one is not closed here but unmapped when the last view of it
        is released (a reader may have just taken it).
        """
        self._map = mmap.mmap(self._fd, self.file_size, prot=mmap.PROT_READ) if self.file_size > 0 else None
        if self._map is not None and self.on_remap is not None:
            self.on_remap(self.view())

    def fileno(self) -> int:
        """The open file's descriptor (rows at byte ``row * row_bytes``)."""
        return self._fd

    def refresh(self) -> None:
        """Pick up growth by another process (read-only openers)."""
        size = os.fstat(self._fd).st_size
        if size != self.file_size:
            self.file_size = size
            self._remap()

    def capacity_rows(self) -> int:
        return self.file_size // self.row_bytes

    def write(self, row: int, vectors: np.ndarray) -> None:
        """Write rows [row, row + len(vectors)); the caller commits them in the log."""
        end = (row + len(vectors)) * self.row_bytes
        try:
            if end > self.file_size:
                new_size = max(end, 2 * self.file_size, self.GROW_MIN)
                new_size = -(-new_size // self.row_bytes) * self.row_bytes
                fs.truncate(self._fd, new_size)
                self.file_size = new_size
                self._remap()
            fs.pwrite(self._fd, np.ascontiguousarray(vectors, dtype=np.float32).data, row * self.row_bytes)
            if self.durable:
                fs.fsync(self._fd)
        except OSError as exc:
            raise storage_error(exc, f"writing vectors to {self.path}") from exc

    def read(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """A copy of the given rows, (n, dim) float32."""
        view = self.view()
        return np.array(view[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def view(self, n_rows: int | None = None) -> np.ndarray:
        """A read-only (n_rows, dim) view of the mapping (default: every mapped
        row); it keeps that mapping alive however the file grows meanwhile."""
        mapping = self._map  # read once: a concurrent growth swaps in another
        if self._fd < 0:
            raise DatabaseClosedError(f"{self.path}: closed")
        mapped = len(mapping) // self.row_bytes if mapping is not None else 0
        if n_rows is None:
            n_rows = mapped
        if n_rows > mapped:
            raise CorruptionError(f"{self.path}: holds {mapped} rows, {n_rows} are committed")
        if n_rows == 0 or mapping is None:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.frombuffer(mapping, dtype=np.float32, count=n_rows * self.dim).reshape(n_rows, self.dim)

    def trim(self, rows: int) -> None:
        """Give back the growth slack past `rows` (on close: the file is final until reopened)."""
        size = rows * self.row_bytes
        if size < self.file_size:
            try:
                fs.truncate(self._fd, size)
            except OSError as exc:
                raise storage_error(exc, f"trimming {self.path}") from exc
            self.file_size = size
            self._remap()

    def sync(self) -> None:
        try:
            fs.fsync(self._fd)
        except OSError as exc:
            raise storage_error(exc, f"syncing {self.path}") from exc

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # a caller still holds a view; the map closes when it is released
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# ---------------------------------------------------------------- blobs

_FRAME = struct.Struct("<II")  # payload length, CRC32 of payload

def write_blob(path: Path, payload: bytes, durable: bool = True) -> None:
    """One CRC-framed payload in its own file, replaced atomically."""
    atomic_write(path, _FRAME.pack(len(payload), zlib.crc32(payload)) + payload, durable)


def write_blobs(path: Path, payloads: list[bytes], durable: bool = True) -> None:
    """Several CRC-framed payloads in one file, replaced atomically."""
    atomic_write(path, b"".join(_FRAME.pack(len(p), zlib.crc32(p)) + p for p in payloads), durable)


def read_blobs(path: Path) -> list[bytes]:
    """The payloads of write_blobs; CorruptionError if any frame is damaged or cut."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        if pos + _FRAME.size > len(data):
            raise CorruptionError(f"{path}: truncated")
        length, crc = _FRAME.unpack_from(data, pos)
        payload = data[pos + _FRAME.size:pos + _FRAME.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            raise CorruptionError(f"{path}: checksum mismatch or truncated at byte {pos}")
        out.append(payload)
        pos += _FRAME.size + length
    return out


def read_blob(path: Path, self_checked: bool = False) -> bytes:
    """The payload of write_blob; CorruptionError if it is damaged or cut.

    `self_checked`: the payload carries checksums of its own that its reader
    checks (a graph patch), so only its length is checked here: a second CRC
    pass over a patch of many megabytes was a fifth of a database's open.
    """
    with open(path, "rb") as f:  # (read past the frame: no copy of the payload)
        head = f.read(_FRAME.size)
        payload = f.read()
    if len(head) < _FRAME.size:
        raise CorruptionError(f"{path}: truncated")
    length, crc = _FRAME.unpack(head)
    if len(payload) != length or (not self_checked and zlib.crc32(payload) != crc):
        raise CorruptionError(f"{path}: checksum mismatch or truncated")
    return payload


# ---------------------------------------------------------------- lock

class FileLock:
    """An advisory lock (flock) that the OS drops when the process dies: no stale locks."""

    def __init__(self, path: Path, exclusive: bool) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = -1
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DatabaseLockedError(
                    f"{path.parent}: another process has this database open for writing") from None
            raise

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
