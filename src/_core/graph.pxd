# The HNSW graph as plain C data, so every hot path runs without the GIL.
#
# Level-0 lives in one block of fixed-size records, one per node:
#   [u64 label][u32 flags][u32 n][u32 links[M0]] ([u32 m][u32 near[E]]) pad [f32 vector[dim]] pad
# The vector sits beside the links that lead away from it, so expanding a node
# touches one record. `links` are the heuristic's (spread across directions,
# what every walk reads); `near` (E > 0, "filter links") are more of the node's
# nearest neighbours that the heuristic left out, sorted by distance, which
# only filtered walks read (hnsw.pxi, gather_filtered). Saved files hold this
# block verbatim and map it back.
# With external vectors (the database's mode) records stop after the links and
# node i's vector is row i of an array the owner attaches (the database's
# memory-mapped vector file), so vectors are stored once, on disk and in RAM.
# Upper levels (few nodes) hold, per node, `level` lists of [u32 n][u32 links[M]].
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

from heap cimport Heap
from labelmap cimport LabelSlot
from native cimport vj_rwlock

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

cdef enum:
    METRIC_L2 = 0
    METRIC_IP = 1
    METRIC_COSINE = 2

cdef enum:
    # storage kinds: how the graph walk sees a vector (distance.pxi)
    KIND_FLOAT32 = 0
    KIND_FLOAT16 = 1
    KIND_INT8 = 2
    KIND_BINARY = 3

cdef enum:
    FLAG_DELETED = 1

cdef enum:
    OFF_LABEL = 0
    OFF_FLAGS = 8
    OFF_LINKS = 12        # the level-0 list: [n][links...]
    MAX_LEVEL = 64

cdef struct Scratch:
    # Per-thread search state, pooled and reused between calls.
    uint16_t *visited      # visited[node] == tag means seen in this search
    size_t visited_size
    uint16_t tag
    Heap candidates
    Heap results
    uint32_t *link_copy    # a neighbour list copied under its node lock
    uint32_t *near_copy    # ... and its filter links
    uint32_t *fresh        # the unvisited neighbours of the node being expanded
    Heap sorted            # results in ascending order, for neighbour selection
    Heap selected
    Heap top               # a filtered walk's best k so far (its stretched bound)
    float *query           # the normalised copy of a cosine query
    float *prepared        # the query in the storage kind's form (distance.pxi)
    float *prepared_node   # a node prepared as a query while building
    float *kept_prepared   # select_neighbours: each kept neighbour prepared as a query (M0 of them)
    void *kept_queries     # ... and their Query structs (distance.pxi)
    float *rows            # float32 rows read for rescoring
    size_t rows_capacity

cdef struct Graph:
    size_t dim
    int metric
    int kind               # storage kind of the codes the walk reads
    size_t M               # max links per node on upper levels
    size_t M0              # max links per node on level 0 (2 * M)
    size_t E               # filter links per node on level 0 (0: none, else M0)
    float *near_worst      # per node: distance to its last filter link (0: not known yet, INFINITY: room left)
    size_t ef_construction
    double level_mult      # 1 / ln(M): the level distribution's scale
    uint64_t rng           # level draws; one sequence per index, so builds replay

    size_t record_size
    size_t vec_offset      # where the vector sits in a record (0 with external vectors)
    char *vectors          # node i's float32 vector is at vectors + i * vec_stride
    size_t vec_stride
    char *codes            # what the graph walk reads: node i's code is at codes + i * code_stride
    size_t code_stride     # (float32 storage: the vectors themselves)
    size_t code_size       # bytes of one code
    size_t codes_bytes     # size of the compact kinds' own code block (mapped)
    float *quant_params    # what a kind learnt from a sample (distance.pxi), NULL until trained
    bint external_vectors  # vectors live in an attached array, not in the records
    size_t vector_rows     # rows of the attached array
    int vector_fd          # when >= 0, rescoring preads rows from this file instead of the array
    size_t capacity        # nodes the level-0 block can hold
    size_t count           # nodes ever allocated (live, deleted or reusable)
    size_t n_deleted
    char *level0
    size_t level0_bytes    # size of the level-0 mapping
    bint level0_from_file  # a MAP_PRIVATE view of a saved file

    uint8_t *levels        # top level of each node
    uint32_t **upper       # per node: its upper-level lists, or NULL
    unsigned char *node_locks
    uint8_t *changed       # per node: its lists changed since dirty_base was set (NULL: not tracked)
    size_t changed_base    # nodes of the file the changes are relative to

    LabelSlot *labels
    size_t label_slots     # a power of two, at least 2 * label_count
    size_t label_count     # live labels
    size_t labels_bytes
    bint labels_from_file

    bint labels_are_nodes  # every node's label is its id: no label table, bitsets index nodes
    uint32_t *free_nodes   # deleted nodes whose slots a new label may take
    size_t n_free
    size_t free_capacity

    int64_t entry_point    # -1 while empty
    int max_level
    pthread_mutex_t entry_lock
    # Searches hold `rw` shared. A change takes `writer` (one at a time), then
    # `rw` exclusively only for what moves memory or labels (placing nodes,
    # growing, deleting); linking placed nodes runs under `rw` shared, beside
    # searches, with `linking` > 0 so that searches read lists under node locks.
    vj_rwlock rw
    pthread_mutex_t writer
    int linking
    int64_t last_search_ns # when a search last started (CLOCK_MONOTONIC): inserts leave it a core

    Scratch **pool
    size_t pool_size
    size_t pool_capacity
    pthread_mutex_t pool_lock
