# The distance layer: the only code that knows how a node's vector is stored.
#
# The graph (hnsw.pxi) never calls a kernel itself. It turns a float32 vector
# into a Query once (prepare_query, or prepare_node for a node's own code while
# building) and then asks node_distance(g, q, node) for every node it meets.
# The Graph's (metric, kind) pair is the descriptor that decides which kernel
# runs and how a code is read, so a new metric or storage kind changes this
# file (and a kernel in simd.h), not the graph walk.
#
# Storage kinds and their codes (one per node, code_size bytes):
#   float32  the vector itself (in the record, or the attached array)
#   float16  dim half floats
#   int8     [f32 |x'|^2, f32 clip, f32 |x - x'|, 0][u8 c[dim]]: x'_d = lo_d +
#            step_d * c_d, with per-dimension ranges trained on a sample
#            (quant_params = lo, step). `clip` (the error beyond half a step
#            in the dimensions clipped to the range, L1) and the residual's
#            norm bound how far a code's distance can be from the exact one,
#            so rescoring reads only rows that can still win
#            (int8_error_bound). Index format 4 had a 4-byte head (the norm
#            only); its codes load into this layout with unknown bounds.
#   binary   dim bits, bit d set when x_d > threshold_d (trained: the sample's
#            mean; quant_params = thresholds), in 64-bit words; Hamming distance
# The compact kinds keep their codes in a block of their own (g.codes); the
# float32 vectors, when there are any (an attached array), serve rescoring.

cdef struct Query:
    const void *data       # the prepared query, in the layout the kind's kernel reads
    int kind
    vj_dist_fn f32         # float32 codes: the metric's float kernel
    vj_code_fn code        # the other kinds' kernel
    float c0, c1, c2       # int8: distance = c0 + c1 * |x'|^2 + c2 * (data . c)
    float half_steps       # int8: sum |q_d| step_d / 2, the error of unclipped dimensions
    float q_max            # int8: max |q_d|, which scales a code's clipping error
    float q_norm2          # int8: |q|^2, for the rounding slack of l2 distances
    float q_norm           # int8: |q|, for the Cauchy-Schwarz bound of inner products
    float quant_slack      # int8: how far rounding the query to int16 can move a distance

cdef enum:
    INT8_HEAD = 16         # four floats before an int8 code's bytes (see above)
    INT8_HEAD_V4 = 4       # index format 4: the squared norm only


cdef inline size_t kind_code_size(int kind, size_t dim) noexcept nogil:
    if kind == KIND_FLOAT16:
        return 2 * dim
    if kind == KIND_INT8:
        return (INT8_HEAD + dim + 15) // 16 * 16
    if kind == KIND_BINARY:
        return (dim + 63) // 64 * 8
    return 4 * dim

cdef inline size_t kind_code_size_v4(int kind, size_t dim) noexcept nogil:
    """A code's size in index format 4 files (int8 had a shorter head)."""
    if kind == KIND_INT8:
        return (INT8_HEAD_V4 + dim + 15) // 16 * 16
    return kind_code_size(kind, dim)

cdef inline size_t kind_param_count(int kind, size_t dim) noexcept nogil:
    """Trained floats a kind needs (0: none)."""
    if kind == KIND_INT8:
        return 2 * dim
    if kind == KIND_BINARY:
        return dim
    return 0

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

cdef inline void prepare_int8(const Graph *g, const float *vector, float *buffer, Query *q) noexcept nogil:
    # q . x' = sum q_d lo_d + sum (q_d step_d) c_d. The kernel computes the
    # second sum on integers: w_d = q_d step_d is rounded to int16 as
    # scale * i_d (|i_d| within vj_u8_query_limit, so the sum is exact), and
    # the rounding, at most 255 sum |w_d - scale i_d| for codes <= 255, is
    # quant_slack (in distance units) for the rescoring bound.
    cdef const float *lo = g.quant_params
    cdef const float *step = g.quant_params + g.dim
    cdef int16_t *ints = <int16_t *> buffer  # written over `vector` when they alias: see below
    cdef double offset = 0.0, norm = 0.0, half_steps = 0.0, w_max = 0.0, scale, w, rounded, lost = 0.0
    cdef float v, q_max = 0.0
    cdef size_t d
    for d in range(g.dim):
        v = vector[d]
        offset += <double> v * lo[d]
        norm += <double> v * v
        half_steps += fabs(<double> v) * step[d]
        if fabs(v) > q_max:
            q_max = fabs(v)
        w = fabs(<double> v * step[d])
        if w > w_max:
            w_max = w
    scale = w_max / vj_u8_query_limit(g.dim) if w_max > 0.0 else 1.0
    # In place (prepare_node) the int16 of dimension d lands on bytes 2d, 2d+1,
    # which no later dimension's float (bytes 4d' >= 4d + 4) occupies.
    for d in range(g.dim):
        w = <double> vector[d] * step[d]
        rounded = nearbyint(w / scale)
        lost += fabs(w - scale * rounded)
        ints[d] = <int16_t> rounded
    q.half_steps = <float> (0.5 * half_steps)
    q.q_max = q_max
    q.q_norm2 = <float> norm
    q.q_norm = <float> sqrt(norm)
    if g.metric == METRIC_L2:  # |q - x'|^2 = |q|^2 - 2 q.x' + |x'|^2
        q.c0 = <float> (norm - 2.0 * offset)
        q.c1 = 1.0
        q.c2 = <float> (-2.0 * scale)
        q.quant_slack = <float> (2.0 * 255.0 * lost)
    else:
        q.c0 = <float> (1.0 - offset)
        q.c1 = 0.0
        q.c2 = <float> -scale
        q.quant_slack = <float> (255.0 * lost)

cdef inline void binarise(const Graph *g, const float *vector, uint64_t *bits) noexcept nogil:
    cdef size_t d
    memset(bits, 0, (g.dim + 63) // 64 * 8)
    for d in range(g.dim):
        if vector[d] > g.quant_params[d]:
            bits[d >> 6] |= (<uint64_t> 1) << (d & 63)

cdef inline void set_kernel(const Graph *g, Query *q) noexcept nogil:
    if not vj_simd_ready:
        vj_simd_init()
    q.kind = g.kind
    q.f32 = metric_kernel(g.metric)
    if g.kind == KIND_FLOAT16:
        q.code = vj_active.l2sq_f16 if g.metric == METRIC_L2 else vj_active.ipdist_f16
    elif g.kind == KIND_INT8:
        q.code = vj_active.dot_u8
    else:
        q.code = vj_active.hamming

cdef inline void prepare_query(const Graph *g, const float *vector, float *buffer, Query *q) noexcept nogil:
    """q measures from `vector` (already normalised under cosine); `buffer` holds
    what the kind needs (dim + 16 floats) and must outlive q."""
    set_kernel(g, q)
    q.data = vector
    if g.kind == KIND_INT8:
        prepare_int8(g, vector, buffer, q)
        q.data = buffer
    elif g.kind == KIND_BINARY:
        binarise(g, vector, <uint64_t *> buffer)
        q.data = buffer

cdef inline void decode_code(const Graph *g, const char *code, float *out) noexcept nogil:
    """A code back to float32 (binary: each bit as +1 / -1 around its threshold)."""
    cdef size_t d
    cdef const uint16_t *half
    cdef const uint8_t *bytes_
    cdef const uint64_t *bits
    if g.kind == KIND_FLOAT32:
        memcpy(out, code, g.dim * sizeof(float))
    elif g.kind == KIND_FLOAT16:
        half = <const uint16_t *> code
        for d in range(g.dim):
            out[d] = vj_half_to_float(half[d])
    elif g.kind == KIND_INT8:
        bytes_ = <const uint8_t *> (code + INT8_HEAD)
        for d in range(g.dim):
            out[d] = g.quant_params[d] + g.quant_params[g.dim + d] * bytes_[d]
    else:
        bits = <const uint64_t *> code
        for d in range(g.dim):
            out[d] = g.quant_params[d] + (1.0 if (bits[d >> 6] >> (d & 63)) & 1 else -1.0)

cdef inline void prepare_node(const Graph *g, size_t node, float *buffer, Query *q) noexcept nogil:
    """q measures from a node already in the graph (its code), as while building."""
    cdef const char *code = node_code(g, node)
    set_kernel(g, q)
    q.data = code
    if g.kind == KIND_FLOAT16:
        decode_code(g, code, buffer)
        q.data = buffer
    elif g.kind == KIND_INT8:
        decode_code(g, code, buffer)
        prepare_int8(g, buffer, buffer, q)  # element by element, so in place is fine
        q.data = buffer

cdef inline float node_distance(const Graph *g, const Query *q, size_t node) noexcept nogil:
    """The distance the graph walk uses between q and a node."""
    cdef const char *code = node_code(g, node)
    if q.kind == KIND_FLOAT32:
        return q.f32(<const float *> q.data, <const float *> code, g.dim)
    if q.kind == KIND_INT8:
        return q.c0 + q.c1 * (<const float *> code)[0] + q.c2 * q.code(q.data, code + INT8_HEAD, g.dim)
    return q.code(q.data, code, g.dim)

cdef inline float int8_error_bound(const Graph *g, const Query *q, size_t node, float d) noexcept nogil:
    """How much closer than its int8 walk distance `d` the exact distance of `node` can be.

    With r = x - x' (the code's residual): l2 by the triangle inequality,
    |q - x| >= |q - x'| - |r|. Inner products: |q.r| is at most |q| |r| and
    at most half_steps + q_max * clip (a rounded dimension is off by at most
    half a step, a clipped one by its part of `clip`). The slack covers
    float32 rounding in the kernels (relative 3e-5 of the terms' size, far
    above float32's error at any supported dimension).
    """
    cdef const float *head = <const float *> node_code(g, node)
    cdef float bound, root
    d -= q.quant_slack  # the distance with the query unrounded is at least this
    if g.metric == METRIC_L2:
        root = sqrt(d) if d > 0.0 else 0.0
        bound = d if root <= head[2] else d - (root - head[2]) * (root - head[2])
        return q.quant_slack + bound + 3e-5 * (q.q_norm2 + head[0] + fabs(d))
    bound = q.half_steps + q.q_max * head[1]
    if q.q_norm * head[2] < bound:
        bound = q.q_norm * head[2]
    return q.quant_slack + bound + 3e-5 * (1.0 + fabs(d) + q.q_norm * sqrt(head[0]))

cdef inline float reported_distance(const Graph *g, float d) noexcept nogil:
    """A walk distance in the metric's units (binary: estimated from the Hamming
    distance, as the angle between sign patterns: 1 - cos(pi h / dim))."""
    if g.kind != KIND_BINARY:
        return d
    return <float> (1.0 - cos(3.141592653589793 * d / g.dim))

cdef void encode_row(const Graph *g, const float *vector, char *code) noexcept nogil:
    """One float32 vector (normalised under cosine) into the kind's code."""
    cdef size_t d
    cdef uint16_t *half
    cdef uint8_t *bytes_
    cdef const float *lo
    cdef const float *step
    cdef double c, x, norm = 0.0, residual = 0.0, clip = 0.0, beyond
    memset(code, 0, g.code_size)
    if g.kind == KIND_FLOAT32:
        memcpy(code, vector, g.dim * sizeof(float))
    elif g.kind == KIND_FLOAT16:
        half = <uint16_t *> code
        for d in range(g.dim):
            half[d] = vj_float_to_half(vector[d])
    elif g.kind == KIND_INT8:
        lo = g.quant_params
        step = g.quant_params + g.dim
        bytes_ = <uint8_t *> (code + INT8_HEAD)
        for d in range(g.dim):
            c = floor((vector[d] - lo[d]) / step[d] + 0.5)
            c = 0.0 if c < 0.0 else (255.0 if c > 255.0 else c)
            bytes_[d] = <uint8_t> c
            x = lo[d] + step[d] * c
            norm += x * x
            residual += (vector[d] - x) * (vector[d] - x)
            beyond = fabs(vector[d] - x) - 0.5 * step[d]
            if beyond > 0.0:
                clip += beyond
        (<float *> code)[0] = <float> norm
        # rounded up, so that the stored bounds never understate the error
        (<float *> code)[1] = <float> (clip * (1.0 + 1e-6))
        (<float *> code)[2] = <float> (sqrt(residual) * (1.0 + 1e-6))
    else:
        binarise(g, vector, <uint64_t *> code)
