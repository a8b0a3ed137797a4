# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, embedsignature=True
"""vjson._core: the native HNSW index, SIMD distance kernels and exact k-NN.

The graph is C data (graph.pxd) searched and built by nogil functions
(hnsw.pxi) under a C reader-writer lock, so Python threads search in parallel.
This module adds the Python face: input validation, numpy in and out, and the
file format (index_file.pxi).
"""

import os
import platform
import warnings

import numpy as np

from libc.math cimport INFINITY, ceil, cos, fabs, floor, isfinite, log, nearbyint, pow, sqrt
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.types cimport off_t
from posix.unistd cimport close as close_fd, pread, usleep
from posix.mman cimport MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap
cdef extern from *:
    """
    #include <sys/mman.h>
    #ifndef MADV_HUGEPAGE  /* Linux only: back a mapping with huge pages where possible */
    #define MADV_HUGEPAGE 0
    #endif
    """
    int MADV_HUGEPAGE
    int madvise(void *addr, size_t length, int advice) nogil

from graph cimport *
from heap cimport Heap, HeapItem, heap_free, heap_pop, heap_push, heap_reserve
from labelmap cimport LABEL_EMPTY, LABELMAP_MIN_SLOTS, LabelSlot, labelmap_erase, labelmap_find, labelmap_put
from native cimport *

from vjson.errors import (
    CorruptionError,
    DatabaseClosedError,
    DimensionMismatchError,
    FormatVersionError,
    InvalidInputError,
    InvalidVectorError,
    RecordNotFoundError,
)

cdef extern from *:
    int __atomic_add_fetch(int *p, int v, int order) noexcept nogil
    int __atomic_sub_fetch(int *p, int v, int order) noexcept nogil
    int __atomic_load_n(const int *p, int order) noexcept nogil
    enum:
        __ATOMIC_ACQUIRE
        __ATOMIC_RELEASE
    void __builtin_prefetch(const void *p) noexcept nogil
    int __builtin_ctz(unsigned int x) noexcept nogil
    int __builtin_popcount(unsigned int x) noexcept nogil

include "distance.pxi"
include "hnsw.pxi"
include "graph_edit.pxi"
include "index_file.pxi"

#: The label reported for "no result" in padded batch output (2**64 - 1);
#: it is therefore not a valid label.
NO_LABEL = 0xFFFFFFFFFFFFFFFF

_METRICS = {"l2": METRIC_L2, "ip": METRIC_IP, "cosine": METRIC_COSINE}
_METRIC_NAMES = {v: k for k, v in _METRICS.items()}
#: Storage kinds by name (None: float32, as before quantization existed).
_KINDS = {None: KIND_FLOAT32, "float32": KIND_FLOAT32, "float16": KIND_FLOAT16, "int8": KIND_INT8,
          "binary": KIND_BINARY}
_KIND_NAMES = {KIND_FLOAT32: None, KIND_FLOAT16: "float16", KIND_INT8: "int8", KIND_BINARY: "binary"}
#: Candidates rescored per result when a search does not say (measured on
#: wordnet 80k x 384: the smallest that keeps recall@10 within 0.01 of float32).
DEFAULT_OVERSAMPLE = {KIND_FLOAT32: 1.0, KIND_FLOAT16: 1.0, KIND_INT8: 2.0, KIND_BINARY: 8.0}
# rows of a training sample: enough for ranges at 0.1 % tails, cheap to sort
_TRAIN_ROWS = 20000
_SIMD_LEVELS = {"scalar": VJ_SIMD_SCALAR, "avx2": VJ_SIMD_AVX2, "avx512": VJ_SIMD_AVX512, "neon": VJ_SIMD_NEON}


# ---------------------------------------------------------------- SIMD control

def _simd_available():
    return [name for name, level in _SIMD_LEVELS.items() if vj_simd_supported(level)]


def simd_info():
    """Which distance kernels run: ``{"active", "best", "available", "env"}``."""
    if not vj_simd_ready:
        vj_simd_init()
    return {
        "active": vj_simd_name(vj_active.level).decode(),
        "best": vj_simd_name(vj_cpu_best_level()).decode(),
        "available": _simd_available(),
        "env": os.environ.get("VJSON_SIMD"),
    }


def set_simd(str name):
    """Force a kernel family: "scalar", "avx2", "avx512", "neon", or "auto" (the best).

    Meant for tests and diagnosis; raises InvalidInputError when the CPU lacks it.
    """
    if name == "auto":
        vj_simd_set(vj_cpu_best_level())
        return
    if name not in _SIMD_LEVELS:
        raise InvalidInputError(f"unknown SIMD level {name!r}; choose from {sorted(_SIMD_LEVELS)} or 'auto'")
    if vj_simd_set(_SIMD_LEVELS[name]) != 0:
        raise InvalidInputError(
            f"this CPU ({platform.machine()}) does not support the {name} kernels; "
            f"available: {', '.join(_simd_available())}")


def _choose_simd_at_import():
    """Pick the kernels once, at import: VJSON_SIMD if this CPU can run it, else the best.

    Never fails the import: a request the CPU cannot honour, or a CPU with no
    SIMD kernels at all, is a RuntimeWarning and the portable path is used.
    """
    best = vj_simd_name(vj_cpu_best_level()).decode()
    request = os.environ.get("VJSON_SIMD")
    chosen = best
    if request is not None and request != "auto":
        if request not in _SIMD_LEVELS:
            warnings.warn(f"vjson: VJSON_SIMD={request!r} is not a kernel family (choose from "
                          f"{', '.join(_SIMD_LEVELS)} or auto); vjson uses its {best} kernels",
                          RuntimeWarning, stacklevel=2)
        elif not vj_simd_supported(_SIMD_LEVELS[request]):
            warnings.warn(f"vjson: VJSON_SIMD={request!r}: this CPU ({platform.machine()}) cannot run the "
                          f"{request} kernels; vjson uses its {best} kernels", RuntimeWarning, stacklevel=2)
        else:
            chosen = request
    elif best == "scalar":
        warnings.warn(f"vjson: this CPU ({platform.machine()}) has none of vjson's SIMD kernels (AVX2+FMA, "
                      "AVX-512, NEON); distances use the portable scalar code, which is slower. "
                      "Set VJSON_SIMD=scalar to silence this.", RuntimeWarning, stacklevel=2)
    vj_simd_set(_SIMD_LEVELS[chosen])


_choose_simd_at_import()


def default_threads():
    """The number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- input checks

cdef object as_matrix(object data, size_t dim, str what="vectors"):
    """A C-contiguous float32 (n, dim) view of data (no copy if it already is)."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorError(f"{what} must be numeric arrays: {exc}") from None
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise InvalidVectorError(f"{what} must be numeric, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidVectorError(f"{what} must be 1-D or 2-D, got {array.ndim}-D")
    if <size_t> array.shape[1] != dim:
        raise DimensionMismatchError(f"{what} have dimension {array.shape[1]}, the index has {dim}")
    with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused right after
        return np.ascontiguousarray(array, dtype=np.float32)


# Above this squared norm, float32 L2 distances and dot products could overflow
# to inf (|a - b|^2 <= 4 max(|a|^2, |b|^2) < FLT_MAX): such vectors are refused
# under "l2" and "ip". Cosine vectors are scaled to unit length, so any size works.
cdef double MAX_SQUARED_NORM = 1e37
#: Under "l2" and "ip", vectors with a larger squared norm are refused.
SQUARED_NORM_LIMIT = MAX_SQUARED_NORM

cdef enum:
    ROW_OK = 0
    ROW_NOT_FINITE = 1
    ROW_ZERO = 2
    ROW_TOO_LARGE = 3


cdef inline int row_problem(const float *v, size_t dim, int metric) noexcept nogil:
    """What is wrong with one vector for this metric (ROW_OK when nothing)."""
    cdef size_t j
    cdef double sq = 0.0
    for j in range(dim):
        if not isfinite(v[j]):
            return ROW_NOT_FINITE
        sq += <double> v[j] * v[j]
    if metric == METRIC_COSINE:
        return ROW_ZERO if sq == 0.0 else ROW_OK
    return ROW_TOO_LARGE if sq > MAX_SQUARED_NORM else ROW_OK


cdef Py_ssize_t first_bad_row(const float[:, ::1] rows, int metric, int *problem) noexcept nogil:
    """Index of the first row with a problem (and which, in `problem`), or -1."""
    cdef Py_ssize_t i
    for i in range(rows.shape[0]):
        problem[0] = row_problem(&rows[i, 0], rows.shape[1], metric)
        if problem[0] != ROW_OK:
            return i
    return -1


cdef object check_rows(object matrix, int metric, str what="vectors"):
    cdef const float[:, ::1] rows = matrix
    cdef Py_ssize_t bad = -1
    cdef int problem = ROW_OK
    if rows.shape[0] > 0 and rows.shape[1] > 0:
        with nogil:
            bad = first_bad_row(rows, metric, &problem)
    if problem == ROW_NOT_FINITE:
        raise InvalidVectorError(f"{what}[{bad}] holds NaN or infinite values")
    if problem == ROW_ZERO:
        raise InvalidVectorError(f"{what}[{bad}] is all zeros: a cosine vector needs a direction")
    if problem == ROW_TOO_LARGE:
        raise InvalidVectorError(f"{what}[{bad}] is too large (squared norm above {MAX_SQUARED_NORM:.0e}): "
                                 "its float32 distances would overflow")


cdef object as_labels(object labels, Py_ssize_t n):
    try:
        array = np.asarray(labels)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"labels must be integers: {exc}") from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InvalidInputError(f"labels must be a 1-D sequence of integers, got {array.dtype} of shape {array.shape}")
    if n >= 0 and array.shape[0] != n:
        raise InvalidInputError(f"got {array.shape[0]} labels for {n} vectors")
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        raise InvalidInputError("labels must be non-negative")
    array = np.ascontiguousarray(array, dtype=np.uint64)
    if array.size and (array == np.uint64(NO_LABEL)).any():
        raise InvalidInputError("label 2**64-1 is reserved")
    return array


cdef object as_bitset(object allowed):
    """A packed little-endian uint8 bitset over labels from a bool mask, or as given."""
    if allowed is None:
        return None
    array = np.asarray(allowed)
    if array.ndim != 1:
        raise InvalidInputError("allowed must be a 1-D bool mask over labels or a packed uint8 bitset")
    if array.dtype == np.bool_:
        return np.packbits(array, bitorder="little")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    raise InvalidInputError(f"allowed must be a bool mask or a packed uint8 bitset, got {array.dtype}")


cdef size_t popcount(const uint8_t[::1] bits) noexcept nogil:
    cdef size_t i, total = 0
    for i in range(<size_t> bits.shape[0]):
        total += <size_t> __builtin_popcount(bits[i])
    return total


# ---------------------------------------------------------------- exact k-NN

cdef struct ScanJob:
    const float *data
    size_t n
    const float *queries
    size_t dim
    size_t k
    vj_dist_fn dist
    int64_t *ids
    float *distances
    Heap *heaps

cdef void scan_task(void *ctx, size_t item, int worker) noexcept nogil:
    cdef ScanJob *job = <ScanJob *> ctx
    cdef Heap *h = &job.heaps[worker]
    cdef const float *q = job.queries + item * job.dim
    cdef size_t i, n
    h.size = 0
    for i in range(job.n):
        offer(h, job.k, job.dist(q, job.data + i * job.dim, job.dim), <uint32_t> i)
    n = h.size
    for i in range(n, job.k):
        job.ids[item * job.k + i] = -1
        job.distances[item * job.k + i] = INFINITY
    while n > 0:
        n -= 1
        job.ids[item * job.k + n] = h.items[0].node
        job.distances[item * job.k + n] = h.items[0].key
        heap_pop(h)


def brute_force_knn(data, queries, int k=10, str metric="l2", num_threads=None):
    """Exact k nearest rows of ``data`` for each query: ``(ids int64, distances float32)``, each (m, k).

    Distances match the index: squared L2, or 1 - dot for "ip" and "cosine"
    (cosine normalises copies of both sides). Rows of fewer than k results are
    padded with id -1 and distance inf. Runs across threads without the GIL.
    """
    if metric not in _METRICS:
        raise InvalidInputError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
    base = np.asarray(data)
    if base.ndim != 2:
        raise InvalidVectorError("data must be a 2-D array")
    if base.shape[0] >= 0xFFFFFFFF:
        raise InvalidInputError("data has too many rows")
    cdef size_t dim = base.shape[1]
    base = as_matrix(base, dim, "data")
    qs = as_matrix(queries, dim, "queries")
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}")
    check_rows(base, METRIC_L2, "data")
    check_rows(qs, METRIC_L2, "queries")
    if _METRICS[metric] == METRIC_COSINE:
        base = _normalised(base)
        qs = _normalised(qs)
    cdef int threads = _thread_count(num_threads)
    ids = np.empty((qs.shape[0], k), dtype=np.int64)
    dists = np.empty((qs.shape[0], k), dtype=np.float32)
    cdef const float[:, ::1] bv = base
    cdef const float[:, ::1] qv = qs
    cdef int64_t[:, ::1] iv = ids
    cdef float[:, ::1] dv = dists
    cdef ScanJob job
    cdef int t
    if qs.shape[0] == 0 or base.shape[0] == 0:
        ids.fill(-1)
        dists.fill(np.inf)
        return ids, dists
    job.data = &bv[0, 0]
    job.n = bv.shape[0]
    job.queries = &qv[0, 0]
    job.dim = dim
    job.k = k
    job.dist = metric_kernel(_METRICS[metric])
    job.ids = &iv[0, 0]
    job.distances = &dv[0, 0]
    job.heaps = <Heap *> calloc(threads, sizeof(Heap))
    if job.heaps == NULL:
        raise MemoryError()
    try:
        for t in range(threads):
            if heap_reserve(&job.heaps[t], k + 1) != 0:
                raise MemoryError()
        with nogil:
            vj_parallel_for(qv.shape[0], threads, scan_task, &job)
    finally:
        for t in range(threads):
            heap_free(&job.heaps[t])
        free(job.heaps)
    return ids, dists


def normalise(vectors):
    """Rows scaled to unit length, as the index stores them under "cosine":
    a new (n, dim) float32 array (a zero row raises InvalidVectorError)."""
    array = np.asarray(vectors)
    # (no negative indexes here: this module is compiled with wraparound=False)
    matrix = as_matrix(array, array.shape[array.ndim - 1] if array.ndim else 0)
    check_rows(matrix, METRIC_COSINE)
    out = np.empty_like(matrix)
    cdef const float[:, ::1] src = matrix
    cdef float[:, ::1] dst = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(src.shape[0]):
            normalise_into(&src[i, 0], &dst[i, 0], src.shape[1])
    return out


def _normalised(matrix):
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


cdef int _thread_count(object num_threads) except -1:
    if num_threads is None:
        return default_threads()
    if not isinstance(num_threads, int) or num_threads < 1:
        raise InvalidInputError(f"num_threads must be a positive int, got {num_threads!r}")
    return min(<int> num_threads, VJ_MAX_THREADS)


def _kernel_distance(a, b, str metric="l2"):
    """Distance of two vectors with the active kernels (for tests)."""
    av = np.ascontiguousarray(a, dtype=np.float32).ravel()
    bv = np.ascontiguousarray(b, dtype=np.float32).ravel()
    if av.shape != bv.shape:
        raise DimensionMismatchError("vectors differ in length")
    cdef const float[::1] x = av
    cdef const float[::1] y = bv
    cdef vj_dist_fn dist = metric_kernel(_METRICS[metric])
    if x.shape[0] == 0:
        return 0.0 if metric == "l2" else 1.0
    return dist(&x[0], &y[0], x.shape[0])


def _code_distance(query, code, str kind, str metric="l2"):
    """The kernel of a compact kind on one prepared query and one raw code (for tests):
    float16: float32 query vs float16 code (l2 or 1 - dot); int8: plain dot of a
    float32 query and uint8 codes; binary: Hamming distance of packed bits."""
    q = np.ascontiguousarray(query)
    c = np.ascontiguousarray(code)
    cdef const uint8_t[::1] qb = q.view(np.uint8).ravel()
    cdef const uint8_t[::1] cb = c.view(np.uint8).ravel()
    cdef size_t dim
    cdef vj_code_fn fn
    if not vj_simd_ready:
        vj_simd_init()
    if kind == "float16":
        dim = c.size
        fn = vj_active.l2sq_f16 if metric == "l2" else vj_active.ipdist_f16
    elif kind == "int8":
        dim = c.size
        fn = vj_active.dot_u8
    elif kind == "binary":
        dim = 8 * qb.shape[0]
        fn = vj_active.hamming
    else:
        raise InvalidInputError(f"unknown kind {kind!r}")
    if dim == 0:
        return 0.0
    return fn(&qb[0], &cb[0], dim)


def _checksum(data, uint64_t seed=0):
    """The 64-bit checksum the index file uses (for tests and the file format)."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    if view.shape[0] == 0:
        return vj_checksum64(NULL, 0, seed)
    return vj_checksum64(&view[0], view.shape[0], seed)


# ---------------------------------------------------------------- bitsets

cdef class Bitset:
    """An immutable allow-set over labels, packed little-endian (bit i of byte
    b is label 8b + i), with its population count computed once.

    ``Bitset(mask)`` takes a bool mask over labels or an already packed uint8
    array (then `count` may be given to skip counting). Searches read it
    without conversion, which matters when one set serves many queries.
    """

    cdef readonly object array
    cdef readonly size_t count
    cdef const uint8_t *data
    cdef size_t nbytes

    def __cinit__(self, mask, count=None):
        packed = as_bitset(mask)
        if packed is None:
            raise InvalidInputError("a Bitset needs a mask")
        if not packed.flags.writeable:
            packed = packed.copy()
        packed.flags.writeable = False
        cdef const uint8_t[::1] view = packed
        self.array = packed
        self.nbytes = view.shape[0]
        self.data = &view[0] if self.nbytes > 0 else NULL
        if count is None or np.asarray(mask).dtype == np.bool_:
            with nogil:
                self.count = popcount(view) if self.nbytes > 0 else 0
        else:
            self.count = <size_t> count

    def __len__(self):
        return self.count

    def __contains__(self, label):
        return isinstance(label, (int, np.integer)) and 0 <= label and bitset_has(self.data, self.nbytes, label)

    def to_mask(self, size_t n):
        """A bool mask over labels [0, n)."""
        return np.unpackbits(self.array, count=min(n, 8 * self.nbytes), bitorder="little").view(bool).copy() \
            if n <= 8 * self.nbytes else np.concatenate(
                [np.unpackbits(self.array, bitorder="little").view(bool), np.zeros(n - 8 * self.nbytes, bool)])


# ---------------------------------------------------------------- the index

cdef class _Call:
    """One call running on an index's graph, so close() frees the graph only
    once none is left. A method keeps it in a local variable: Cython releases
    locals on every exit path (return or raise), and that ends the call."""

    cdef HNSWIndex index

    def __dealloc__(self):
        if self.index is not None:
            self.index._inflight -= 1


cdef class HNSWIndex:
    """An HNSW graph over float32 vectors with uint64 labels.

    ``HNSWIndex(dim, metric="l2", M=16, ef_construction=200, capacity=1024,
    seed=100, ef_search=64)``. Metrics: "l2" (squared Euclidean), "ip"
    (distance 1 - dot) and "cosine" (vectors normalised on the way in, then
    "ip"). Capacity grows on demand. Searches run in parallel from many Python
    threads and beside inserts: an insert takes the index exclusively only to
    place each chunk's nodes (microseconds per node) and links them while
    searches go on; deletes take it exclusively, briefly. close() waits for
    running calls.

    With ``external_vectors=True`` the index keeps only the graph: node i's
    vector is row i of a float32 array the owner attaches with
    :meth:`attach_vectors` (and re-attaches when it moves), and rows are
    linked with :meth:`add_stored`. Labels are then row numbers. This is how
    the database stores each vector once, in its memory-mapped vector file.

    ``filter_links`` (default True) keeps 2 * M more links per node on level
    0: its nearest neighbours that the diversity heuristic left out. Only
    filtered searches read them, and walk the allowed ones only, so a filter
    keeping 1-33 % of the labels costs about what no filter does (2 * M + 1
    more u32 per node: 132 bytes at M=16; False builds the plain hnswlib-sized graph).

    ``quantization`` picks what the graph walk reads: None (float32), "float16",
    "int8" (per-dimension ranges learnt from the first rows added, or from
    :meth:`train`) or "binary" (one bit per dimension around the learnt means,
    Hamming distance; for "cosine"/"ip" embeddings of >= 256 dimensions). The compact codes stay in
    RAM; with attached float32 vectors the best ``k * oversample`` candidates
    are measured again exactly (``rescore``). A standalone compact index keeps
    only codes: its distances are the codes', and it cannot rescore.
    """

    cdef Graph *g
    # Calls between begin() and their _Call's end (changed under the GIL), and
    # whether close() has begun: it refuses new calls, waits for these, then frees.
    cdef int _inflight
    cdef bint _closing
    cdef const float[:, ::1] _attached  # keeps the attached rows' buffer alive
    cdef bint _trained                  # a compact kind's parameters are learnt
    cdef size_t _trained_rows           # ... from this many rows (_TRAIN_ROWS: final)
    cdef public size_t exact_limit
    cdef size_t _ef_search
    cdef uint64_t _seed

    def __cinit__(self, int dim, str metric="l2", int M=16, int ef_construction=200,
                  size_t capacity=1024, uint64_t seed=100, int ef_search=64,
                  bint external_vectors=False, quantization=None, bint filter_links=True):
        if dim <= 0 or dim > 65536:
            raise InvalidInputError(f"dim must be in [1, 65536], got {dim}")
        if metric not in _METRICS:
            raise InvalidInputError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
        if M < 2 or M > 2048:
            raise InvalidInputError(f"M must be in [2, 2048], got {M}")
        if ef_construction < 1:
            raise InvalidInputError(f"ef_construction must be positive, got {ef_construction}")
        if ef_search < 1:
            raise InvalidInputError(f"ef_search must be positive, got {ef_search}")
        if not isinstance(quantization, (str, type(None))) or quantization not in _KINDS:
            raise InvalidInputError(f"quantization must be None or one of "
                                    f"{sorted(k for k in _KINDS if k)}, got {quantization!r}")
        if quantization == "binary" and metric == "l2":
            raise InvalidInputError("binary codes keep only directions: use them with 'cosine' or 'ip'")
        self.g = new_graph(dim, _METRICS[metric], M, ef_construction, seed, external_vectors,
                           _KINDS[quantization], filter_links)
        if self.g == NULL:
            raise MemoryError()
        self._ef_search = ef_search
        self._seed = seed
        self.exact_limit = 0  # chosen per search from the live count unless set
        if capacity > 0 and grow_nodes(self.g, capacity) != 0:
            raise MemoryError()

    def __dealloc__(self):
        if self.g != NULL:
            if self.g.vector_fd >= 0:
                close_fd(self.g.vector_fd)
            free_graph(self.g)
            self.g = NULL

    cdef inline Graph *open_graph(self) except NULL:
        """The graph, for reading a field under the GIL (the GIL keeps close() out)."""
        if self.g == NULL or self._closing:
            raise DatabaseClosedError("the index is closed")
        return self.g

    cdef _Call begin(self):
        """Start a call that may release the GIL or run Python code while using
        the graph: close() waits for it. Keep the result in a local variable."""
        if self.g == NULL or self._closing:
            raise DatabaseClosedError("the index is closed")
        cdef _Call call = _Call.__new__(_Call)
        call.index = self
        self._inflight += 1
        return call

    cdef inline Graph *readable_graph(self) except NULL:
        """The graph, once its vectors are reachable (external ones attached); inside a call."""
        cdef Graph *g = self.open_graph()
        if g.external_vectors and g.count > 0 and g.vectors == NULL:
            raise InvalidInputError("attach_vectors() first: this index reads its vectors from an array")
        return g

    # ---- settings and counts
    @property
    def dim(self):
        return self.open_graph().dim

    @property
    def metric(self):
        return _METRIC_NAMES[self.open_graph().metric]

    @property
    def M(self):
        return self.open_graph().M

    @property
    def quantization(self):
        """The storage kind the walk reads: None (float32), "float16", "int8" or "binary"."""
        return _KIND_NAMES[self.open_graph().kind]

    @property
    def code_size(self):
        """Bytes per vector the graph walk reads (its code)."""
        return self.open_graph().code_size

    @property
    def ram_bytes_per_vector(self):
        """Bytes per node the graph walk reads: its level-0 record and its code
        (float32: the vector, in the record or the attached array). Upper levels,
        about 1/M of the nodes, come on top."""
        cdef Graph *g = self.open_graph()
        in_records = not g.external_vectors and g.kind == KIND_FLOAT32
        return g.record_size + (0 if in_records else g.code_size)

    @property
    def trained(self):
        """Whether the storage kind is ready to encode (float32 and float16 always are)."""
        return kind_param_count(self.open_graph().kind, self.g.dim) == 0 or self._trained

    def train(self, sample):
        """Learn a compact kind's parameters from sample rows (int8: per-dimension
        ranges; binary: per-dimension means). Only on an empty index: the codes of
        stored rows would change under the graph. Float kinds need none."""
        cdef Graph *g = self.open_graph()
        if g.count > 0:
            raise InvalidInputError("train() needs an empty index (compact a database to retrain)")
        matrix = as_matrix(sample, g.dim, "sample")
        check_rows(matrix, g.metric, "sample")
        if matrix.shape[0] == 0:
            raise InvalidInputError("train() needs at least one row")
        if g.metric == METRIC_COSINE:
            matrix = normalise(matrix)
        self._learn(matrix)
        self._trained_rows = _TRAIN_ROWS  # a sample given on purpose is kept

    @property
    def trained_rows(self):
        """How many rows the compact kind's parameters were learnt from (0: not yet).
        An external-vectors index learns again from every row each time its rows
        double, until it has learnt from a full sample (or train() gave one)."""
        self.open_graph()
        return self._trained_rows if self._trained else 0

    cdef void _learn(self, matrix) except *:
        cdef Graph *g = self.g
        cdef size_t count = kind_param_count(g.kind, g.dim), i
        if count == 0:
            return
        cdef const float[::1] pv = self._fit(matrix)
        for i in range(count):
            g.quant_params[i] = pv[i]
        self._trained = True
        self._trained_rows = min(<size_t> matrix.shape[0], <size_t> _TRAIN_ROWS)

    cdef void _retrain(self, size_t rows) except *:
        """Learn the parameters again from the first `rows` attached rows and encode
        every node with them: the first rows of a database are often far too few
        to learn int8 ranges or binary thresholds from (a first insert of one row
        left recall@10 at 0.01). Under the write lock: searches wait."""
        cdef Graph *g = self.g
        cdef size_t count = kind_param_count(g.kind, g.dim), node
        cdef const float[::1] pv = self._fit(np.asarray(self._attached)[:rows])
        with nogil:
            pthread_mutex_lock(&g.writer)
            vj_write_lock(&g.rw)
            memcpy(g.quant_params, &pv[0], count * sizeof(float))
            for node in range(g.count):
                encode_row(g, node_vector(g, node), <char *> node_code(g, node))
                mark_code_changed(g, node)
            vj_rw_unlock(&g.rw)
            pthread_mutex_unlock(&g.writer)
        self._trained_rows = min(rows, <size_t> _TRAIN_ROWS)

    cdef object _fit(self, matrix):
        """The compact kind's parameters (float32) learnt from sample rows."""
        cdef Graph *g = self.g
        if matrix.shape[0] > _TRAIN_ROWS:  # a fixed sample, so a build replays
            pick = np.random.default_rng(len(matrix)).choice(matrix.shape[0], _TRAIN_ROWS, replace=False)
            matrix = matrix[np.sort(pick)]
        sample = np.asarray(matrix, dtype=np.float64)
        if g.kind == KIND_INT8:
            # ranges from the 0.1 % tails: a few outliers must not waste the 256 levels
            lo, hi = (np.quantile(sample, [0.001, 0.999], axis=0) if sample.shape[0] >= 1000
                      else (sample.min(axis=0), sample.max(axis=0)))
            step = (hi - lo) / 255.0
            step[step <= 0] = 1e-12
            params = np.concatenate([lo, step]).astype(np.float32)
        else:
            params = sample.mean(axis=0).astype(np.float32)
        return params

    @property
    def quantization_params(self):
        """A copy of the learnt parameters (int8: lo then step per dimension; binary:
        thresholds), or None when the kind has none or is not trained yet."""
        cdef Graph *g = self.open_graph()
        cdef size_t count = kind_param_count(g.kind, g.dim)
        if count == 0 or not self._trained:
            return None
        return np.asarray(<float[:count]> g.quant_params).copy()

    @property
    def filter_links(self):
        """Whether level 0 keeps filter links: 2 * M more of each node's nearest,
        walked only by filtered searches (which then stay fast at 1-33 % selectivity)."""
        return self.open_graph().E > 0

    @property
    def ef_construction(self):
        return self.open_graph().ef_construction

    @property
    def ef_search(self):
        """Beam width of searches (default 64); at least k is used."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, int value):
        if value < 1:
            raise InvalidInputError(f"ef_search must be positive, got {value}")
        self._ef_search = value

    @property
    def capacity(self):
        return self.open_graph().capacity

    @property
    def element_count(self):
        """Node slots in use, live and deleted."""
        return self.open_graph().count

    @property
    def deleted_count(self):
        return self.open_graph().n_deleted

    @property
    def max_level(self):
        return self.open_graph().max_level

    @property
    def closed(self):
        return self.g == NULL or self._closing

    def __len__(self):
        return self.open_graph().label_count

    def __contains__(self, label):
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        cdef bint found
        if not isinstance(label, (int, np.integer)) or label < 0 or label >= NO_LABEL:
            return False
        cdef uint64_t key = label
        with nogil:
            vj_read_lock(&g.rw)
            found = find_node(g, key) >= 0
            vj_rw_unlock(&g.rw)
        return found

    def __repr__(self):
        if self.g == NULL:
            return "HNSWIndex(closed)"
        kind = "" if self.g.kind == KIND_FLOAT32 else f", quantization={self.quantization!r}"
        return (f"HNSWIndex(dim={self.g.dim}, metric={self.metric!r}, M={self.g.M}, "
                f"ef_construction={self.g.ef_construction}{kind}, size={self.g.label_count})")

    def __enter__(self):
        self.open_graph()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Free the graph once running calls have finished (an insert stops at its
        next chunk); calls starting meanwhile or later raise DatabaseClosedError."""
        cdef Graph *g
        if self.g == NULL:
            return
        self._closing = True
        # Calls hold no lock while they validate or build results, so waiting
        # for the write lock is not enough: wait for every call to end.
        while self._inflight > 0 and self.g != NULL:
            with nogil:
                usleep(200)
        g = self.g
        if g == NULL:  # another thread's close() finished meanwhile
            return
        self.g = NULL
        if g.vector_fd >= 0:
            close_fd(g.vector_fd)
        self._attached = None  # lets the owner unmap its vectors
        free_graph(g)

    def resize(self, size_t capacity):
        """Reserve room for `capacity` nodes (never shrinks)."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        cdef int rc
        with nogil:
            pthread_mutex_lock(&g.writer)
            vj_write_lock(&g.rw)
            rc = grow_nodes(g, capacity)
            vj_rw_unlock(&g.rw)
            pthread_mutex_unlock(&g.writer)
        if rc != 0:
            raise MemoryError()

    # ---- writes
    def add(self, vectors, labels, num_threads=None):
        """Insert vectors under labels; a label already present gets the new vector.

        Within one call the last occurrence of a repeated label wins. The batch
        is validated whole before anything changes (dimension, NaN/inf, labels).
        Runs on `num_threads` threads (default: all CPUs) without the GIL, in
        chunks, so concurrent searches wait at most one chunk.
        """
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        if g.external_vectors:
            raise InvalidInputError("this index reads its vectors from an attached array: use add_stored()")
        matrix = as_matrix(vectors, g.dim)
        keys = as_labels(labels, matrix.shape[0])
        check_rows(matrix, g.metric)
        if matrix.shape[0] == 0:
            return
        # last occurrence wins: keep the final index of each label, in input order
        _, last_rev = np.unique(keys[::-1], return_index=True)
        if last_rev.shape[0] != keys.shape[0]:
            keep = np.sort(keys.shape[0] - 1 - last_rev)
            matrix = matrix[keep]
            keys = keys[keep]
        if g.kind != KIND_FLOAT32:
            if g.metric == METRIC_COSINE:  # codes are of the unit vectors
                matrix = normalise(matrix)
            self._check_codable(matrix)
            if not self.trained:
                self._learn(matrix)
        cdef const float[:, ::1] rows = matrix
        self.insert(&rows[0, 0], keys, num_threads)

    cdef void _check_codable(self, matrix) except *:
        if self.g.kind == KIND_FLOAT16 and matrix.size and float(np.abs(matrix).max()) > 65504.0:
            raise InvalidVectorError("a value exceeds float16's range (65504): use another quantization")

    def attach_vectors(self, vectors):
        """Point an external-vectors index at its rows: a C-contiguous float32
        (rows, dim) array, used in place (no copy) and kept alive by the index.

        Call again whenever the array moves (a memory map that grew); it must
        hold at least every node's row. Searches running meanwhile finish on
        the old array first. Under "cosine" the rows must be unit vectors.
        """
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        cdef const float[:, ::1] view
        if not g.external_vectors:
            raise InvalidInputError("this index keeps its vectors in its records; "
                                    "create it with external_vectors=True to attach an array")
        try:
            view = vectors
        except (TypeError, ValueError, BufferError) as exc:
            raise InvalidVectorError(f"attached vectors must be a C-contiguous float32 2-D array ({exc})") from None
        if <size_t> view.shape[1] != g.dim:
            raise DimensionMismatchError(f"attached vectors have dimension {view.shape[1]}, the index {g.dim}")
        cdef size_t rows = view.shape[0]
        cdef char *base = <char *> &view[0, 0] if rows > 0 else NULL
        with nogil:
            pthread_mutex_lock(&g.writer)
            vj_write_lock(&g.rw)
            if rows >= g.count:
                g.vectors = base
                g.vector_rows = rows
                if g.kind == KIND_FLOAT32:
                    g.codes = base
            vj_rw_unlock(&g.rw)
            pthread_mutex_unlock(&g.writer)
        if rows < g.count:
            raise InvalidInputError(f"the attached array holds {rows} rows, the index {g.count} nodes")
        self._attached = view  # only now may the previous array go

    def rescore_from_file(self, int fd):
        """Let rescoring read float32 rows with pread from the file open as `fd`
        (row i at byte ``i * 4 * dim``: the attached array's file) rather than
        through the attached memory map. The index keeps its own duplicate of
        the descriptor; -1 goes back to the map."""
        cdef Graph *g = self.open_graph()
        cdef int mine = os.dup(fd) if fd >= 0 else -1
        cdef int old
        with nogil:
            vj_write_lock(&g.rw)
            old = g.vector_fd
            g.vector_fd = mine
            vj_rw_unlock(&g.rw)
        if old >= 0:
            close_fd(old)

    @property
    def external_vectors(self):
        """True when vectors live in an attached array rather than in the index."""
        return bool(self.open_graph().external_vectors)

    def add_stored(self, labels, num_threads=None):
        """Link rows of the attached array into the graph (external vectors).

        Each label is a row number: either a node already present (re-linked,
        for a row whose vector changed) or the next new node, so new rows come
        in order with no gaps. Validated whole before anything changes.
        """
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        if not g.external_vectors:
            raise InvalidInputError("add_stored() links attached rows; this index takes vectors with add()")
        keys = as_labels(labels, -1)
        if keys.shape[0] == 0:
            return
        _, first = np.unique(keys, return_index=True)
        if first.shape[0] != keys.shape[0]:
            keys = keys[np.sort(first)]
        cdef size_t count = g.count
        if int(keys.max()) >= g.vector_rows:
            raise InvalidInputError(f"row {int(keys.max())} is past the attached array's {g.vector_rows} rows")
        fresh = keys[keys >= count]
        if not np.array_equal(fresh, np.arange(count, count + fresh.shape[0], dtype=np.uint64)):
            raise InvalidInputError(f"new rows must follow the last node ({count}) in order, without gaps")
        rows = np.asarray(self._attached)[keys.astype(np.intp)]
        check_rows(rows, g.metric)
        if g.metric == METRIC_COSINE:
            if not np.all(np.abs(np.einsum("ij,ij->i", rows, rows) - 1.0) < 1e-3):
                raise InvalidVectorError("cosine rows of an attached array must be unit vectors (use normalise())")
        if g.kind != KIND_FLOAT32:
            self._check_codable(rows)
            if not self.trained:
                self._learn(rows)
            elif self._trained_rows < _TRAIN_ROWS and count + fresh.shape[0] >= 2 * self._trained_rows:
                self._retrain(count + fresh.shape[0])
        self.insert(NULL, keys, num_threads)

    cdef void insert(self, const float *rows, object keys, object num_threads) except *:
        """Place and link a validated batch in chunks (inside a call).

        Each chunk's nodes are placed under the write lock (microseconds per
        node), then linked under the read lock, so searches run on beside the
        linking. By default linking leaves one CPU to searches seen lately.
        """
        cdef Graph *g = self.g
        cdef int threads = _thread_count(num_threads)
        if num_threads is None and threads > 1 and now_ns() - g.last_search_ns < SEARCHES_RECENT_NS:
            threads -= 1
        cdef size_t chunk = 256 * <size_t> threads
        cdef size_t start = 0, n, total = keys.shape[0]
        cdef const uint64_t[::1] ids = keys
        cdef uint32_t *nodes = <uint32_t *> malloc(min(chunk, total) * sizeof(uint32_t))
        cdef Scratch **scratch = <Scratch **> calloc(threads, sizeof(Scratch *))
        cdef int rc = 0
        if nodes == NULL or scratch == NULL:
            free(nodes)
            free(scratch)
            raise MemoryError()
        try:
            with nogil:
                pthread_mutex_lock(&g.writer)
                while start < total and rc == 0:
                    if self._closing:  # close() is waiting: the rest would be freed unused
                        rc = -3
                        break
                    n = min(chunk, total - start)
                    vj_write_lock(&g.rw)
                    rc = place_chunk(g, rows, &ids[0], start, n, nodes)
                    if rc == 0:
                        __atomic_add_fetch(&g.linking, 1, __ATOMIC_RELEASE)
                    vj_rw_unlock(&g.rw)
                    if rc == 0:
                        vj_read_lock(&g.rw)
                        rc = link_chunk(g, nodes, n, scratch, threads)
                        __atomic_sub_fetch(&g.linking, 1, __ATOMIC_RELEASE)
                        vj_rw_unlock(&g.rw)
                    start += chunk
                pthread_mutex_unlock(&g.writer)
        finally:
            free(nodes)
            free(scratch)
        if rc == -2:
            raise InvalidInputError("rows changed under a concurrent add_stored(); the batch was cut short")
        if rc == -3:
            raise DatabaseClosedError("the index was closed during the insert; the batch was cut short")
        if rc != 0:
            raise MemoryError("out of memory while inserting")

    def delete(self, labels):
        """Mark labels deleted: they leave results at once and their slots are reused.

        Every label must be present (else RecordNotFoundError, and nothing is
        deleted). Returns the number deleted.
        """
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        keys = np.unique(as_labels(labels, -1))
        cdef const uint64_t[::1] ids = keys
        cdef Py_ssize_t i, missing = -1
        cdef int64_t node
        if keys.shape[0] == 0:
            return 0
        with nogil:
            pthread_mutex_lock(&g.writer)
            vj_write_lock(&g.rw)
            for i in range(ids.shape[0]):
                if find_node(g, ids[i]) < 0:
                    missing = i
                    break
            if missing < 0:
                for i in range(ids.shape[0]):
                    node = find_node(g, ids[i])
                    node_flags(g, node)[0] |= FLAG_DELETED
                    mark_changed(g, node)
                    g.n_deleted += 1
                    if not g.labels_are_nodes:
                        labelmap_erase(g.labels, g.label_slots, ids[i])
                    g.label_count -= 1
                    if not g.external_vectors:  # there a node is its vector's row: never reused
                        push_free(g, <uint32_t> node)
            vj_rw_unlock(&g.rw)
            pthread_mutex_unlock(&g.writer)
        if missing >= 0:
            raise RecordNotFoundError(f"label {int(keys[missing])} is not in the index")
        return keys.shape[0]

    # ---- reads
    def search(self, query, k=10, ef_search=None, allowed=None, allowed_count=None, rescore=None,
               oversample=None):
        """The k nearest labels to one query: ``(labels uint64, distances float32)``, ascending.

        `allowed` restricts results to labels set in a bool mask over labels,
        a packed little-endian uint8 bitset, or a :class:`Bitset`; the graph is
        still walked through other nodes. Fewer than k come back only when
        fewer than k live (allowed) labels exist. With a packed bitset, its
        population count may be passed as `allowed_count` to save a pass over it.

        Compact kinds: `rescore` (default: whenever float32 vectors are attached)
        measures the best ``k * oversample`` candidates of the walk again from
        the float32 vectors; `oversample` (>= 1) defaults per kind
        (DEFAULT_OVERSAMPLE). Without rescoring, distances are the codes'.
        """
        cdef _Call call = self.begin()
        cdef size_t n = _positive(k, "k")
        # no more results than labels: a huge k must not allocate a huge array
        n = max(<size_t> 1, min(n, self.open_graph().label_count))
        out_labels = np.empty(n, dtype=np.uint64)
        out_dists = np.empty(n, dtype=np.float32)
        cdef uint64_t[::1] lv = out_labels
        cdef float[::1] dv = out_dists
        cdef Py_ssize_t found = self.knn_one(query, n, ef_search, allowed, allowed_count, rescore, oversample,
                                             &lv[0], &dv[0])
        if found == <Py_ssize_t> n:
            return out_labels, out_dists
        return out_labels[:found], out_dists[:found]

    def search_results(self, query, k, ef_search, Bitset allowed, object names, object metadata,
                       object texts, bint similarity, rescore=None, oversample=None):
        """search() fused with building SearchResult objects for row labels:
        the database's hot path, with no intermediate arrays.

        `names[label]` is the id; `metadata`/`texts` (or None) the fields to attach.
        """
        cdef _Call call = self.begin()
        cdef uint64_t labels_buf[64]
        cdef float dists_buf[64]
        cdef uint64_t *labels = labels_buf
        cdef float *dists = dists_buf
        cdef Py_ssize_t found
        cdef size_t n = _positive(k, "k")
        n = max(<size_t> 1, min(n, self.open_graph().label_count))
        if n > 64:
            labels = <uint64_t *> malloc(n * sizeof(uint64_t))
            dists = <float *> malloc(n * sizeof(float))
            if labels == NULL or dists == NULL:
                free(labels)
                free(dists)
                raise MemoryError()
        try:
            found = self.knn_one(query, n, ef_search, allowed, None, rescore, oversample, labels, dists)
            return make_results(names, metadata, texts, labels, dists, found, similarity)
        finally:
            if n > 64:
                free(labels)
                free(dists)

    cdef size_t candidate_pool(self, size_t k, object rescore, object oversample, bint *exact) except 0:
        """How many candidates the walk keeps for k results, and whether they are rescored."""
        cdef Graph *g = self.g
        cdef bint can = g.kind != KIND_FLOAT32 and g.vectors != NULL
        cdef double factor
        if rescore is None:
            exact[0] = can
        elif rescore is True or rescore is False:
            if rescore and g.kind != KIND_FLOAT32 and not can:
                raise InvalidInputError("rescore=True needs the float32 vectors: this index keeps only codes")
            exact[0] = rescore and can  # float32: already exact
        else:
            raise InvalidInputError(f"rescore must be True, False or None, got {rescore!r}")
        if oversample is None:
            factor = DEFAULT_OVERSAMPLE[g.kind]
        elif (isinstance(oversample, bool) or not isinstance(oversample, (int, float, np.integer, np.floating))
              or not 1.0 <= oversample <= 1000.0):
            raise InvalidInputError(f"oversample must be a number in [1, 1000], got {oversample!r}")
        else:
            factor = oversample
        if not exact[0]:
            return k
        return <size_t> ceil(k * factor)

    cdef Py_ssize_t knn_one(self, object query, size_t k, object ef_search, object allowed,
                            object allowed_count, object rescore, object oversample, uint64_t *labels,
                            float *dists) except -1:
        """Validate one query and search it; returns how many results were written (inside a call)."""
        cdef Graph *g = self.readable_graph()
        cdef bint exact = False
        cdef size_t pool = self.candidate_pool(k, rescore, oversample, &exact)
        cdef size_t ef = self._ef_search if ef_search is None else _positive(ef_search, "ef_search")
        cdef const float[::1] qv
        cdef Bitset bits
        try:  # the common case, a float32 1-D array: no conversion, no copy
            qv = query
            fast = qv.shape[0] == g.dim
        except (TypeError, ValueError, BufferError):
            fast = False
        if not fast:
            q = as_matrix(query, g.dim, "query")
            if q.shape[0] != 1:
                raise InvalidVectorError(f"search takes one query, got {q.shape[0]}; use search_batch")
            qv = q[0]
        if row_problem(&qv[0], g.dim, g.metric) != ROW_OK:
            check_rows(np.asarray(qv).reshape(1, -1), g.metric, "query")
        cdef const uint8_t *bptr = NULL
        cdef size_t nbytes = 0, count = 0
        if allowed is not None:
            bits = allowed if type(allowed) is Bitset else Bitset(allowed, allowed_count)
            if bits.count == 0:
                return 0
            bptr = bits.data
            nbytes = bits.nbytes
            count = bits.count
        cdef Py_ssize_t found
        cdef Scratch *s
        cdef Query prepared
        cdef const float *qp = &qv[0]
        with nogil:
            g.last_search_ns = now_ns()
            vj_read_lock(&g.rw)
            s = scratch_acquire(g)
            if s == NULL:
                found = -1
            else:
                if g.metric == METRIC_COSINE:
                    normalise_into(qp, s.query, g.dim)
                    qp = s.query
                prepare_query(g, qp, s.prepared, &prepared)
                found = knn_search(g, s, &prepared, qp if exact else NULL, k, pool, ef, bptr, nbytes, count,
                                   self.exact_cutoff(max(ef, pool)), labels, dists)
                scratch_release(g, s)
            vj_rw_unlock(&g.rw)
        if found < 0:
            raise MemoryError()
        return found

    def search_batch(self, queries, k=10, ef_search=None, allowed=None, num_threads=None,
                     allowed_count=None, rescore=None, oversample=None):
        """k nearest labels for each query row: ``(labels (m, k) uint64, distances (m, k) float32)``.

        Runs across threads without the GIL. Rows with fewer than k results are
        padded with label ``NO_LABEL`` (2**64-1) and distance inf. `rescore` and
        `oversample` as in :meth:`search`.
        """
        cdef _Call call = self.begin()
        cdef Graph *g = self.readable_graph()
        cdef size_t ef = self._ef_search if ef_search is None else _positive(ef_search, "ef_search")
        k = _positive(k, "k")
        cdef bint exact = False
        cdef size_t pool = self.candidate_pool(k, rescore, oversample, &exact)
        q = as_matrix(queries, g.dim, "queries")
        check_rows(q, g.metric, "queries")
        cdef Bitset bits = None
        if allowed is not None:
            bits = allowed if type(allowed) is Bitset else Bitset(allowed, allowed_count)
        cdef int threads = _thread_count(num_threads)
        out_labels = np.full((q.shape[0], k), NO_LABEL, dtype=np.uint64)
        out_dists = np.full((q.shape[0], k), np.inf, dtype=np.float32)
        if q.shape[0] == 0 or (bits is not None and bits.count == 0):
            return out_labels, out_dists
        cdef const float[:, ::1] qv = q
        cdef uint64_t[:, ::1] lv = out_labels
        cdef float[:, ::1] dv = out_dists
        cdef SearchJob job
        cdef int t
        memset(&job, 0, sizeof(job))
        if bits is not None:
            job.allowed = bits.data
            job.allowed_bytes = bits.nbytes
            job.allowed_count = bits.count
        job.graph = g
        job.queries = &qv[0, 0]
        job.k = k
        job.pool = pool
        job.rescore = exact
        job.ef = ef
        job.exact_limit = self.exact_cutoff(max(ef, pool)) if bits is not None else 0
        job.labels = &lv[0, 0]
        job.distances = &dv[0, 0]
        if threads > q.shape[0]:
            threads = q.shape[0]
        job.scratch = <Scratch **> calloc(threads, sizeof(Scratch *))
        if job.scratch == NULL:
            raise MemoryError()
        with nogil:
            g.last_search_ns = now_ns()
            vj_read_lock(&g.rw)
            for t in range(threads):
                job.scratch[t] = scratch_acquire(g)
                if job.scratch[t] == NULL:
                    job.failed = 1
            if not job.failed:
                vj_parallel_for(qv.shape[0], threads, search_task, &job)
            for t in range(threads):
                if job.scratch[t] != NULL:
                    scratch_release(g, job.scratch[t])
            vj_rw_unlock(&g.rw)
        free(job.scratch)
        if job.failed:
            raise MemoryError()
        return out_labels, out_dists

    cdef size_t exact_cutoff(self, size_t ef) noexcept nogil:
        # Up to this many allowed labels a filtered search scans them exactly.
        # Measured on 80k x 384 (benchmarks/README.md): a two-hop graph walk
        # costs about 1.5 * ef * M0 distances whatever the filter, and below
        # ~4 % selectivity the allowed nodes are too sparse for it to keep its
        # recall, so the scan wins below either bound.
        if self.exact_limit > 0:
            return self.exact_limit
        return max(self.g.label_count // 25, (3 * ef * self.g.M0) // 2)

    def get_vectors(self, labels):
        """Stored vectors for labels, (n, dim) float32 (normalised under cosine);
        a standalone compact index returns its codes decoded (approximate)."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.readable_graph()
        keys = as_labels(labels, -1)
        out = np.empty((keys.shape[0], g.dim), dtype=np.float32)
        cdef const uint64_t[::1] ids = keys
        cdef float[:, ::1] ov = out
        cdef Py_ssize_t i, missing = -1
        cdef int64_t node
        with nogil:
            vj_read_lock(&g.rw)
            for i in range(ids.shape[0]):
                node = find_node(g, ids[i])
                if node < 0:
                    missing = i
                    break
                if g.vectors != NULL:
                    memcpy(&ov[i, 0], node_vector(g, node), g.dim * sizeof(float))
                else:  # a standalone compact index: what its code holds
                    decode_code(g, node_code(g, node), &ov[i, 0])
            vj_rw_unlock(&g.rw)
        if missing >= 0:
            raise RecordNotFoundError(f"label {int(keys[missing])} is not in the index")
        return out

    def labels(self):
        """Every live label, in node order, as uint64."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        out = np.empty(len(self), dtype=np.uint64)
        cdef uint64_t[::1] ov = out
        cdef size_t node, n = 0
        with nogil:
            vj_read_lock(&g.rw)
            for node in range(g.count):
                if not node_deleted(g, node) and n < <size_t> ov.shape[0]:
                    ov[n] = node_label(g, node)
                    n += 1
            vj_rw_unlock(&g.rw)
        return out[:n]

    # ---- persistence (index_file.pxi)
    def save(self, path, bint durable=True, bint pack=False):
        """Write the index to `path` atomically (temp file, fsync, rename, fsync folder).

        Level 0 is saved as records that loading maps in place; `pack` (external
        vectors only) saves it packed instead: a third of the bytes, unpacked at load."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        with nogil:  # no change meanwhile (linking included); searches go on
            pthread_mutex_lock(&g.writer)
            vj_read_lock(&g.rw)
        try:
            write_index_file(self, os.fspath(path), durable, pack)
        finally:
            with nogil:
                vj_rw_unlock(&g.rw)
                pthread_mutex_unlock(&g.writer)

    def track_changes(self):
        """From now on, note which nodes change, for patch(): relative to the graph as it is now."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        cdef uint8_t *fresh
        with nogil:
            pthread_mutex_lock(&g.writer)
            vj_read_lock(&g.rw)
        try:
            fresh = <uint8_t *> calloc(max(g.capacity, 1), 1)
            if fresh == NULL:
                raise MemoryError()
            free(g.changed)
            g.changed = fresh
            g.changed_base = g.count
        finally:
            with nogil:
                vj_rw_unlock(&g.rw)
                pthread_mutex_unlock(&g.writer)

    @property
    def patch_nodes(self):
        """Nodes a patch() would hold now (added or changed since track_changes()), or None
        when this graph cannot be patched (see index_file.pxi)."""
        cdef Graph *g = self.open_graph()
        if not patchable(g):
            return None
        return patch_entries(g)

    @property
    def patch_is_wide(self):
        """Whether loading the patch() of now would read the base's level 0 whole rather
        than map it (see wide_patch): at a million nodes that read is most of an open."""
        cdef Graph *g = self.open_graph()
        return patchable(g) and wide_patch(patch_entries(g), g.changed_base)

    def patch(self):
        """What changed since track_changes() (or since the base file and patch it was loaded
        from), as bytes for load(base, patch=...); None when this graph cannot be patched."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        with nogil:
            pthread_mutex_lock(&g.writer)
            vj_read_lock(&g.rw)
        try:
            return pack_patch(self) if patchable(g) else None
        finally:
            with nogil:
                vj_rw_unlock(&g.rw)
                pthread_mutex_unlock(&g.writer)

    @staticmethod
    def load(path, bint verify=False, ef_search=64, patch=None):
        """Open a saved index. The graph block is memory-mapped, not parsed.

        Opening checks the header, every section's bounds and the checksums of
        the small sections; a truncated or corrupted file raises
        CorruptionError. `verify=True` also checksums the level-0 block (all
        vectors and links), which reads the whole file. Without it, a damaged
        link can never make a search leave the graph (links are bounds-checked).
        `patch` (bytes of patch()) is applied after: its nodes checked whole.
        """
        if patch is not None and not isinstance(patch, bytes):
            raise InvalidInputError("patch must be bytes")
        return read_index_file(os.fspath(path), verify, ef_search, patch)

    def _level0_lists(self, uint64_t label):
        """(links, filter links) of label's node on level 0, as node ids (for tests)."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        cdef int64_t node
        cdef uint32_t *lst
        with nogil:  # no change meanwhile, as in check()
            pthread_mutex_lock(&g.writer)
            vj_read_lock(&g.rw)
        try:
            node = find_node(g, label)
            if node < 0:
                raise RecordNotFoundError(f"label {label} is not in the index")
            lst = node_links(g, node, 0)
            links = [lst[j] for j in range(1, min(lst[0], g.M0) + 1)]
            near = []
            if g.E > 0:
                lst = node_near(g, node)
                near = [lst[j] for j in range(1, min(lst[0], g.E) + 1)]
        finally:
            with nogil:
                vj_rw_unlock(&g.rw)
                pthread_mutex_unlock(&g.writer)
        return np.array(links, dtype=np.uint32), np.array(near, dtype=np.uint32)

    def check(self):
        """Walk the whole structure and return a report; raises CorruptionError on a broken invariant."""
        cdef _Call call = self.begin()
        cdef Graph *g = self.g
        with nogil:  # no change meanwhile (linking included); searches go on
            pthread_mutex_lock(&g.writer)
            vj_read_lock(&g.rw)
        try:
            return check_graph(g)
        finally:
            with nogil:
                vj_rw_unlock(&g.rw)
                pthread_mutex_unlock(&g.writer)


cdef int64_t SEARCHES_RECENT_NS = 200_000_000  # a search within 0.2 s: readers are active

cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t> ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef size_t _positive(object value, str name) except 0:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 0x7FFFFFFF:
        raise InvalidInputError(f"{name} must be an int in [1, 2**31 - 1], got {value!r}")
    return value


cdef object check_graph(Graph *g):
    """Structural invariants: lists in range, labels and nodes agree, entry point valid."""
    cdef size_t node, j, n, links_total = 0, near_total = 0, live = 0
    cdef int level
    cdef uint32_t *links
    cdef int64_t found
    problems = []
    for node in range(g.count):
        for level in range(g.levels[node] + 1):
            links = node_links(g, node, level)
            if links == NULL:
                problems.append(f"node {node} lacks its level-{level} list")
                continue
            n = links[0]
            if n > max_links(g, level):
                problems.append(f"node {node} level {level}: {n} links exceed {max_links(g, level)}")
                continue
            links_total += n
            for j in range(1, n + 1):
                if links[j] >= g.count or g.levels[links[j]] < level:
                    problems.append(f"node {node} level {level}: link to invalid node {links[j]}")
        if g.E > 0:
            links = node_near(g, node)
            if links[0] > g.E:
                problems.append(f"node {node}: {links[0]} filter links exceed {g.E}")
            else:
                near_total += links[0]
                for j in range(1, links[0] + 1):
                    if links[j] >= g.count:
                        problems.append(f"node {node}: filter link to invalid node {links[j]}")
        if not node_deleted(g, node):
            live += 1
            found = find_node(g, node_label(g, node))
            if found != <int64_t> node:
                problems.append(f"node {node}: its label {node_label(g, node)} maps to {found}")
        if len(problems) > 20:
            break
    if live != g.label_count:
        problems.append(f"{live} live nodes but {g.label_count} labels")
    if g.count > 0 and (g.entry_point < 0 or <size_t> g.entry_point >= g.count
                        or g.levels[g.entry_point] != g.max_level):
        problems.append(f"entry point {g.entry_point} (max level {g.max_level}) is invalid")
    if problems:
        raise CorruptionError("index check failed: " + "; ".join(problems[:20]))
    return {"nodes": g.count, "live": live, "deleted": g.n_deleted, "links": links_total,
            "filter_links": near_total, "max_level": g.max_level, "reusable_slots": g.n_free}


# ---------------------------------------------------------------- results

cdef class SearchResult:
    """One hit, best first in its list.

    ``distance`` is the index distance (squared L2, or 1 - similarity for
    "cosine"/"ip"; None for a text-only hit); ``score`` is higher-is-better:
    the similarity for "cosine"/"ip", minus the distance for "l2", BM25 for
    text search and the fused score for hybrid search. ``metadata``, ``text``
    and ``vector`` are filled when the search's ``include`` names them.
    (A C type so that building ten of them per query costs next to nothing.)
    """

    cdef public object id
    cdef public object distance
    cdef public object score
    cdef public object metadata
    cdef public object text
    cdef public object vector

    def __init__(self, id, distance, score, metadata=None, text=None, vector=None):
        self.id = id
        self.distance = distance
        self.score = score
        self.metadata = metadata
        self.text = text
        self.vector = vector

    _FIELDS = ("id", "distance", "score", "metadata", "text", "vector")

    def as_dict(self):
        """The fields as a dict (hybrid results add their per-side ranks and scores)."""
        out = {name: getattr(self, name) for name in SearchResult._FIELDS}
        out.update({name: getattr(self, name) for cls in type(self).__mro__
                    for name in cls.__dict__.get("__slots__", ())})
        return out

    def __repr__(self):
        parts = [f"id={self.id!r}", f"score={self.score:.4f}"]
        if self.distance is not None:
            parts.append(f"distance={self.distance:.4f}")
        if self.metadata is not None:
            parts.append(f"metadata={self.metadata!r:.60}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self):
        return (type(self), (self.id, self.distance, self.score, self.metadata, self.text, self.vector))


class _Undecoded:
    """Marks a row whose stored JSON has not been decoded yet."""

    __slots__ = ()

    def __repr__(self):
        return "UNDECODED"


#: The placeholder of a lazily decoded row in a row list (see ``row_value``).
UNDECODED = _Undecoded()


cdef inline object plain_rows(object rows):
    """The list behind a row sequence: itself, or a lazy one's ``values``; else None."""
    if rows is None or type(rows) is list:
        return rows
    values = getattr(rows, "values", None)
    return values if type(values) is list else None


cdef inline object row_value(object rows, object values, uint64_t row):
    """rows[row], straight from the plain list when it holds the decoded value."""
    cdef object v
    if values is not None and row < <uint64_t> len(<list> values):
        v = (<list> values)[row]
        if v is not UNDECODED:
            return v
    return rows[row]


cdef list make_results(object names, object metadata, object texts, const uint64_t *labels,
                       const float *distances, Py_ssize_t n, bint similarity):
    cdef Py_ssize_t i
    cdef float d
    cdef SearchResult res
    cdef list out = []
    cdef object meta_values = plain_rows(metadata), text_values = plain_rows(texts)
    cdef object id_values = plain_rows(names)
    for i in range(n):
        d = distances[i]
        res = SearchResult.__new__(SearchResult)
        res.id = row_value(names, id_values, labels[i])
        res.distance = d
        res.score = (1.0 - d) if similarity else -d
        res.metadata = row_value(metadata, meta_values, labels[i]) if metadata is not None else None
        res.text = row_value(texts, text_values, labels[i]) if texts is not None else None
        out.append(res)
    return out


def build_results(object names, object metadata, object texts, const uint64_t[::1] labels,
                  const float[::1] distances, bint similarity):
    """SearchResult per (label, distance) with ``names[label]`` as id;
    `metadata`/`texts` (sequences indexed by label, or None) give the fields to attach."""
    if labels.shape[0] == 0:
        return []
    return make_results(names, metadata, texts, &labels[0], &distances[0], labels.shape[0], similarity)
