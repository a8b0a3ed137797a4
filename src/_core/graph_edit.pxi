# Creating, freeing and filling the graph: every change of its nodes goes
# through here (hnsw.pxi links them, _core.pyx validates and locks).

# ---------------------------------------------------------------- lifecycle

cdef inline size_t list_words(size_t M0, size_t E) noexcept nogil:
    """u32 words of a record's level-0 lists: [n][M0 links], then [m][E filter links] when E > 0."""
    return M0 + 1 + (E + 1 if E > 0 else 0)

cdef inline size_t record_bytes(size_t M0, size_t E, size_t dim, bint vectors_in_records) noexcept nogil:
    """Bytes of a level-0 record: the lists, then the float32 vector when it lives there."""
    if not vectors_in_records:
        return round_up(OFF_LINKS + list_words(M0, E) * sizeof(uint32_t), 16)
    return round_up(round_up(OFF_LINKS + list_words(M0, E) * sizeof(uint32_t), 32) + dim * sizeof(float), 32)

cdef inline size_t vector_offset(size_t M0, size_t E, bint vectors_in_records) noexcept nogil:
    return round_up(OFF_LINKS + list_words(M0, E) * sizeof(uint32_t), 32) if vectors_in_records else 0

cdef Graph *new_graph(size_t dim, int metric, size_t M, size_t ef_construction, uint64_t seed,
                      bint external_vectors, int kind=KIND_FLOAT32, bint filter_links=True) noexcept:
    cdef Graph *g = <Graph *> calloc(1, sizeof(Graph))
    cdef size_t i
    if g == NULL:
        return NULL
    g.dim = dim
    g.metric = metric
    g.M = M
    g.M0 = 2 * M
    g.E = g.M0 if filter_links else 0
    g.ef_construction = ef_construction
    g.level_mult = 1.0 / log(<double> M)
    g.rng = seed
    g.external_vectors = external_vectors
    g.kind = kind
    # float32 vectors sit in the records unless attached; compact codes have a block of their own
    cdef bint in_records = not external_vectors and kind == KIND_FLOAT32
    g.vec_offset = vector_offset(g.M0, g.E, in_records)
    g.record_size = record_bytes(g.M0, g.E, dim, in_records)
    g.vec_stride = g.record_size if in_records else dim * sizeof(float)
    g.code_size = kind_code_size(kind, dim)
    g.code_stride = g.vec_stride if kind == KIND_FLOAT32 else g.code_size
    if kind_param_count(kind, dim) > 0:
        g.quant_params = <float *> calloc(kind_param_count(kind, dim), sizeof(float))
        if g.quant_params == NULL:
            free(g)
            return NULL
    g.entry_point = -1
    g.max_level = -1
    g.vector_fd = -1
    g.labels_are_nodes = True
    g.label_slots = LABELMAP_MIN_SLOTS
    g.labels_bytes = g.label_slots * sizeof(LabelSlot)
    g.labels = <LabelSlot *> map_anonymous(g.labels_bytes)
    if g.labels == NULL:
        free(g)
        return NULL
    for i in range(g.label_slots):
        g.labels[i].key = LABEL_EMPTY
    pthread_mutex_init(&g.entry_lock, NULL)
    pthread_mutex_init(&g.pool_lock, NULL)
    pthread_mutex_init(&g.writer, NULL)
    vj_rwlock_init(&g.rw)
    return g

cdef inline size_t round_up(size_t x, size_t to) noexcept nogil:
    return (x + to - 1) // to * to

cdef void free_graph(Graph *g) noexcept nogil:
    cdef size_t i
    for i in range(g.pool_size):
        scratch_free(g.pool[i])
    free(g.pool)
    if g.upper != NULL:
        for i in range(g.capacity):
            free(g.upper[i])
    free(g.upper)
    free(g.levels)
    free(g.node_locks)
    free(g.changed)
    free(g.near_worst)
    free(g.free_nodes)
    if g.level0 != NULL:
        munmap(g.level0, g.level0_bytes)
    if g.kind != KIND_FLOAT32 and g.codes != NULL:
        munmap(g.codes, g.codes_bytes)
    free(g.quant_params)
    if g.labels != NULL:
        munmap(g.labels, g.labels_bytes)
    pthread_mutex_destroy(&g.entry_lock)
    pthread_mutex_destroy(&g.pool_lock)
    pthread_mutex_destroy(&g.writer)
    vj_rwlock_destroy(&g.rw)
    free(g)

# ---------------------------------------------------------------- placing nodes

cdef int push_free(Graph *g, uint32_t node) noexcept nogil:
    cdef uint32_t *grown
    if g.n_free == g.free_capacity:
        grown = <uint32_t *> realloc(g.free_nodes, (2 * g.free_capacity + 16) * sizeof(uint32_t))
        if grown == NULL:
            return -1  # the slot is just not reused
        g.free_nodes = grown
        g.free_capacity = 2 * g.free_capacity + 16
    g.free_nodes[g.n_free] = node
    g.n_free += 1
    return 0

cdef int place_chunk(Graph *g, const float *rows, const uint64_t *ids, size_t start, size_t n,
                     uint32_t *nodes) noexcept nogil:
    """Give rows[start:start+n] their nodes (label, vector or code, level, empty lists)
    into nodes[0:n]; under the write lock, as it may move memory. link_chunk follows.

    With external vectors `rows` is unused (row i is the attached array's);
    compact kinds encode each row into its node's code here."""
    cdef size_t i, fresh = 0, needed
    cdef int64_t node
    cdef int level
    cdef uint64_t expected = g.count
    if g.external_vectors:  # checked again under the lock: rows exist, new ones in order
        for i in range(start, start + n):
            if ids[i] >= g.vector_rows:
                return -2
            if ids[i] >= g.count and find_node(g, ids[i]) < 0:
                if ids[i] != expected:
                    return -2
                expected += 1
    # room first, so nothing below can fail half-way
    for i in range(start, start + n):
        if find_node(g, ids[i]) < 0:
            fresh += 1
    needed = g.count + (fresh - g.n_free if fresh > g.n_free else 0)
    if needed > g.capacity and grow_nodes(g, max(needed, 2 * g.capacity)) != 0:
        return -1
    if not g.labels_are_nodes and grow_labels(g, g.label_count + fresh) != 0:
        return -1
    for i in range(start, start + n):
        node = find_node(g, ids[i])
        if node < 0:
            if g.labels_are_nodes and ids[i] < g.count:
                node = <int64_t> ids[i]  # a deleted label comes back to its own node
                take_free(g, <uint32_t> node)
                mark_changed(g, node)
                node_flags(g, node)[0] &= ~(<uint32_t> FLAG_DELETED)
                g.n_deleted -= 1
            elif g.n_free > 0:  # reuse a deleted slot: re-linked like an update
                g.n_free -= 1
                node = g.free_nodes[g.n_free]
                mark_changed(g, node)
                node_flags(g, node)[0] &= ~(<uint32_t> FLAG_DELETED)
                g.n_deleted -= 1
            else:
                node = g.count
                level = draw_level(g)
                if place_new_node(g, node, level) != 0:
                    return -1
                g.count += 1
            (<uint64_t *> node_record(g, node))[0] = ids[i]
            if g.labels_are_nodes and ids[i] != <uint64_t> node:
                if leave_identity_labels(g, g.label_count + fresh) != 0:
                    return -1
            if not g.labels_are_nodes:
                labelmap_put(g.labels, g.label_slots, ids[i], <uint64_t> node)
            g.label_count += 1
        if g.kind != KIND_FLOAT32:  # (standalone cosine rows come normalised)
            encode_row(g, node_vector(g, node) if g.external_vectors else rows + i * g.dim,
                       <char *> node_code(g, node))
            mark_code_changed(g, node)
        elif g.external_vectors:
            pass  # the caller's array already holds row `node`
        elif g.metric == METRIC_COSINE:
            normalise_into(rows + i * g.dim, node_vector(g, node), g.dim)
        else:
            memcpy(node_vector(g, node), rows + i * g.dim, g.dim * sizeof(float))
        nodes[i - start] = <uint32_t> node
    return 0

cdef int link_chunk(Graph *g, uint32_t *nodes, size_t n, Scratch **scratch, int threads) noexcept nogil:
    """Link placed nodes in parallel; under the read lock, beside searches (g.linking > 0)."""
    cdef int t, rc = 0
    cdef InsertJob job
    for t in range(threads):
        if scratch[t] != NULL and scratch[t].visited_size < g.count:
            scratch_release(g, scratch[t])  # too small now: re-acquire below
            scratch[t] = NULL
        if scratch[t] == NULL:
            scratch[t] = scratch_acquire(g)
            if scratch[t] == NULL:
                rc = -1
    if rc == 0:
        job.graph = g
        job.nodes = nodes
        job.scratch = scratch
        job.failed = 0
        vj_parallel_for(n, threads, insert_task, &job)
        rc = -1 if job.failed else 0
    for t in range(threads):
        if scratch[t] != NULL:
            scratch_release(g, scratch[t])
            scratch[t] = NULL
    return rc

cdef void take_free(Graph *g, uint32_t node) noexcept nogil:
    """Remove node from the free-slot list, if it is there."""
    cdef size_t i
    for i in range(g.n_free):
        if g.free_nodes[i] == node:
            g.free_nodes[i] = g.free_nodes[g.n_free - 1]
            g.n_free -= 1
            return

cdef int place_new_node(Graph *g, size_t node, int level) noexcept nogil:
    cdef char *record = node_record(g, node)
    memset(record, 0, g.record_size)
    if g.near_worst != NULL:
        g.near_worst[node] = 0.0
    g.levels[node] = <uint8_t> level
    g.upper[node] = NULL
    if level > 0:
        g.upper[node] = <uint32_t *> calloc(<size_t> level * (g.M + 1), sizeof(uint32_t))
        if g.upper[node] == NULL:
            return -1
    return 0
