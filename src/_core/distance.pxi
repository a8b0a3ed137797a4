# The distance layer: the only code that knows how a node's vector is stored.
#
# The graph (hnsw.pxi) never calls a kernel itself. It turns a float32 vector
# into a Query once (prepare_query, or prepare_node for a node's own code while
# building) and then asks node_distance(g, q, node) for every node it meets.
# The Graph's (metric, kind) pair is the descriptor that decides which kernel
# runs and how a code is read, so a new metric or storage kind changes this
# file (and a kernel in simd.h), not the graph walk.

cdef struct Query:
    const void *data       # the prepared query, in the layout the kind's kernel reads
    int kind
    vj_dist_fn f32         # float32 codes: the metric's float kernel


cdef inline const char *node_code(const Graph *g, size_t node) noexcept nogil:
    return g.codes + node * g.code_stride

cdef inline void prefetch_code(const Graph *g, size_t node) noexcept nogil:
    """Ask for every cache line of a node's code (the first is usually in flight)."""
    cdef const char *p = node_code(g, node)
    cdef size_t offset
    for offset in range(64, g.code_size, 64):
        __builtin_prefetch(p + offset)

cdef inline vj_dist_fn metric_kernel(int metric) noexcept nogil:
    """The float32 kernel of a metric (cosine rows are unit vectors: inner product)."""
    if not vj_simd_ready:
        vj_simd_init()
    return vj_active.l2sq if metric == METRIC_L2 else vj_active.ipdist

cdef inline void prepare_query(const Graph *g, const float *vector, float *buffer, Query *q) noexcept nogil:
    """q measures from `vector` (already normalised under cosine); `buffer` holds
    what the kind needs (dim + 16 floats) and must outlive q."""
    q.kind = g.kind
    q.f32 = metric_kernel(g.metric)
    q.data = vector

cdef inline void prepare_node(const Graph *g, size_t node, float *buffer, Query *q) noexcept nogil:
    """q measures from a node already in the graph (its code), as while building."""
    q.kind = g.kind
    q.f32 = metric_kernel(g.metric)
    q.data = node_code(g, node)

cdef inline float node_distance(const Graph *g, const Query *q, size_t node) noexcept nogil:
    """The distance the graph walk uses between q and a node."""
    return q.f32(<const float *> q.data, <const float *> node_code(g, node), g.dim)
