# Label -> node map: open addressing with linear probing over one flat table of
# (key, value) slots, so a saved table loads by mmap without rebuilding.
# Empty slots hold LABEL_EMPTY (which is therefore not a valid label); deletion
# shifts the following run back, so there are no tombstones and lookups stay short.
from libc.stdint cimport uint64_t

cdef enum:
    LABELMAP_MIN_SLOTS = 16

cdef extern from *:
    """
    #define VJ_LABEL_EMPTY 0xFFFFFFFFFFFFFFFFULL
    """
    const uint64_t LABEL_EMPTY "VJ_LABEL_EMPTY"

cdef struct LabelSlot:
    uint64_t key
    uint64_t value


cdef inline uint64_t label_hash(uint64_t x) noexcept nogil:
    # splitmix64 finaliser: labels are often dense row numbers; spread them.
    x ^= x >> 30
    x *= 0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= 0x94D049BB133111EBULL
    x ^= x >> 31
    return x


cdef inline Py_ssize_t labelmap_find(const LabelSlot *slots, size_t nslots, uint64_t key) noexcept nogil:
    """Slot index holding key, or -1. nslots is a power of two."""
    cdef size_t mask = nslots - 1
    cdef size_t i = label_hash(key) & mask
    while True:
        if slots[i].key == key:
            return <Py_ssize_t> i
        if slots[i].key == LABEL_EMPTY:
            return -1
        i = (i + 1) & mask


cdef inline void labelmap_put(LabelSlot *slots, size_t nslots, uint64_t key, uint64_t value) noexcept nogil:
    """Insert or overwrite; the caller keeps the load factor below 1/2."""
    cdef size_t mask = nslots - 1
    cdef size_t i = label_hash(key) & mask
    while slots[i].key != LABEL_EMPTY and slots[i].key != key:
        i = (i + 1) & mask
    slots[i].key = key
    slots[i].value = value


cdef inline bint labelmap_erase(LabelSlot *slots, size_t nslots, uint64_t key) noexcept nogil:
    """Remove key; shift later members of its probe run back into the hole."""
    cdef size_t mask = nslots - 1
    cdef Py_ssize_t found = labelmap_find(slots, nslots, key)
    cdef size_t hole, j, home
    if found < 0:
        return False
    hole = <size_t> found
    j = hole
    while True:
        j = (j + 1) & mask
        if slots[j].key == LABEL_EMPTY:
            break
        home = label_hash(slots[j].key) & mask
        # Move slots[j] into the hole unless its home lies cyclically in (hole, j].
        if ((j > hole and (home <= hole or home > j)) or
                (j < hole and (home <= hole and home > j))):
            slots[hole] = slots[j]
            hole = j
    slots[hole].key = LABEL_EMPTY
    slots[hole].value = 0
    return True
