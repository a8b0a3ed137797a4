# A binary max-heap of (distance, node) pairs in a growable C array.
#
# HNSW keeps two per search: the results (max-heap: the worst is on top, ready
# to be evicted) and the candidates (stored with negated distances, so the same
# max-heap pops the closest first). Inline, nogil, no Python objects.
from libc.stdint cimport uint32_t
from libc.stdlib cimport realloc, free

cdef struct HeapItem:
    float key
    uint32_t node

cdef struct Heap:
    HeapItem *items
    size_t size
    size_t capacity


cdef inline int heap_reserve(Heap *h, size_t capacity) noexcept nogil:
    """Grow the storage to hold `capacity` items; -1 when out of memory."""
    cdef HeapItem *grown
    if capacity <= h.capacity:
        return 0
    grown = <HeapItem *> realloc(h.items, capacity * sizeof(HeapItem))
    if grown == NULL:
        return -1
    h.items = grown
    h.capacity = capacity
    return 0


cdef inline void heap_free(Heap *h) noexcept nogil:
    free(h.items)
    h.items = NULL
    h.size = 0
    h.capacity = 0


cdef inline int heap_push(Heap *h, float key, uint32_t node) noexcept nogil:
    cdef size_t i, parent
    if h.size == h.capacity:
        if heap_reserve(h, 2 * h.capacity + 16) != 0:
            return -1
    i = h.size
    h.size += 1
    while i > 0:
        parent = (i - 1) >> 1
        if h.items[parent].key >= key:
            break
        h.items[i] = h.items[parent]
        i = parent
    h.items[i].key = key
    h.items[i].node = node
    return 0


cdef inline void heap_pop(Heap *h) noexcept nogil:
    """Remove the top (largest key) item; the heap must not be empty."""
    cdef size_t i = 0, child, n
    cdef HeapItem last
    h.size -= 1
    n = h.size
    if n == 0:
        return
    last = h.items[n]
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and h.items[child + 1].key > h.items[child].key:
            child += 1
        if h.items[child].key <= last.key:
            break
        h.items[i] = h.items[child]
        i = child
    h.items[i] = last
