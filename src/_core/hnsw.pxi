# HNSW (Malkov & Yashunin) over the C-level Graph: memory, search and insert.
# Everything here is nogil; the Python-facing class in _core.pyx validates
# input, takes the reader-writer lock and calls in.

# ---------------------------------------------------------------- records

cdef inline char *node_record(const Graph *g, size_t node) noexcept nogil:
    return g.level0 + node * g.record_size

cdef inline float *node_vector(const Graph *g, size_t node) noexcept nogil:
    return <float *> (g.vectors + node * g.vec_stride)

cdef inline void point_at_records(Graph *g) noexcept nogil:
    """With vectors inside the records, follow the level-0 block wherever it moves."""
    if not g.external_vectors and g.kind == KIND_FLOAT32:
        g.vectors = g.level0 + g.vec_offset
        g.vec_stride = g.record_size
    if g.kind == KIND_FLOAT32:  # the walk reads the float32 vectors themselves
        g.codes = g.vectors
        g.code_stride = g.vec_stride

cdef inline uint64_t node_label(const Graph *g, size_t node) noexcept nogil:
    return (<uint64_t *> (g.level0 + node * g.record_size + OFF_LABEL))[0]

cdef inline uint32_t *node_flags(const Graph *g, size_t node) noexcept nogil:
    return <uint32_t *> (g.level0 + node * g.record_size + OFF_FLAGS)

cdef inline bint node_deleted(const Graph *g, size_t node) noexcept nogil:
    return (node_flags(g, node)[0] & FLAG_DELETED) != 0

cdef inline uint32_t *node_links(const Graph *g, size_t node, int level) noexcept nogil:
    """The list [n][ids...] of node at level, or NULL when node has no such level."""
    if level == 0:
        return <uint32_t *> (g.level0 + node * g.record_size + OFF_LINKS)
    if level > g.levels[node] or g.upper[node] == NULL:
        return NULL
    return g.upper[node] + <size_t> (level - 1) * (g.M + 1)

cdef inline uint32_t *node_near(const Graph *g, size_t node) noexcept nogil:
    """node's filter links [m][ids...] (level 0, beside its list; only when g.E > 0)."""
    return <uint32_t *> (g.level0 + node * g.record_size + OFF_LINKS) + g.M0 + 1

cdef inline void prefetch_links(const Graph *g, size_t node, int level) noexcept nogil:
    cdef const char *p = <const char *> node_links(g, node, level)
    if p != NULL:
        __builtin_prefetch(p)
        __builtin_prefetch(p + 64)
        __builtin_prefetch(p + 128)

cdef inline size_t max_links(const Graph *g, int level) noexcept nogil:
    return g.M0 if level == 0 else g.M

cdef inline bint bitset_has(const uint8_t *bits, size_t nbytes, uint64_t label) noexcept nogil:
    if (label >> 3) >= nbytes:
        return False
    return (bits[label >> 3] >> (label & 7)) & 1


# ---------------------------------------------------------------- memory

cdef void *map_anonymous(size_t nbytes) noexcept nogil:
    cdef void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    return NULL if p == MAP_FAILED else p

cdef enum:
    # what g.changed notes per node since its base file (index_file.pxi's patches)
    CHANGED_LISTS = 1  # its lists or flags
    CHANGED_CODE = 2   # its compact code (a row encoded again)

cdef inline void mark_changed(Graph *g, size_t node) noexcept nogil:
    """Note that node's lists changed (for a graph patch, index_file.pxi)."""
    if g.changed != NULL:
        g.changed[node] |= CHANGED_LISTS

cdef inline void mark_code_changed(Graph *g, size_t node) noexcept nogil:
    if g.changed != NULL:
        g.changed[node] |= CHANGED_CODE

cdef int grow_nodes(Graph *g, size_t capacity) noexcept nogil:
    """Make room for `capacity` nodes; existing nodes keep their ids. -1 on OOM."""
    cdef size_t nbytes = capacity * g.record_size
    cdef char *block
    cdef uint8_t *levels
    cdef uint32_t **upper
    cdef unsigned char *locks
    cdef float *worst
    if capacity <= g.capacity:
        return 0
    block = <char *> map_anonymous(nbytes if nbytes > 0 else 1)
    if block == NULL:
        return -1
    levels = <uint8_t *> realloc(g.levels, capacity)
    if levels == NULL:
        munmap(block, nbytes)
        return -1
    g.levels = levels
    upper = <uint32_t **> realloc(g.upper, capacity * sizeof(uint32_t *))
    if upper == NULL:
        munmap(block, nbytes)
        return -1
    g.upper = upper
    locks = <unsigned char *> realloc(g.node_locks, capacity)
    if locks == NULL:
        munmap(block, nbytes)
        return -1
    g.node_locks = locks
    if g.E > 0:
        worst = <float *> realloc(g.near_worst, capacity * sizeof(float))
        if worst == NULL:
            munmap(block, nbytes)
            return -1
        g.near_worst = worst
        memset(g.near_worst + g.capacity, 0, (capacity - g.capacity) * sizeof(float))
    if g.changed != NULL:
        locks = <unsigned char *> realloc(g.changed, capacity)
        if locks == NULL:
            munmap(block, nbytes)
            return -1
        g.changed = locks
        memset(g.changed + g.capacity, 0, capacity - g.capacity)
    memset(g.levels + g.capacity, 0, capacity - g.capacity)
    memset(g.upper + g.capacity, 0, (capacity - g.capacity) * sizeof(uint32_t *))
    memset(g.node_locks + g.capacity, 0, capacity - g.capacity)
    if g.kind != KIND_FLOAT32 and grow_codes(g, capacity) != 0:
        munmap(block, nbytes)
        return -1
    if g.count > 0:
        memcpy(block, g.level0, g.count * g.record_size)
    if g.level0 != NULL:
        munmap(g.level0, g.level0_bytes)
    g.level0 = block
    g.level0_bytes = nbytes if nbytes > 0 else 1
    g.level0_from_file = False
    g.capacity = capacity
    point_at_records(g)
    return 0

cdef int grow_codes(Graph *g, size_t capacity) noexcept nogil:
    """The compact kinds' code block, grown to `capacity` codes. -1 on OOM."""
    cdef size_t nbytes = capacity * g.code_size
    cdef char *block = <char *> map_anonymous(nbytes if nbytes > 0 else 1)
    if block == NULL:
        return -1
    if g.count > 0:
        memcpy(block, g.codes, g.count * g.code_size)
    if g.codes != NULL:
        munmap(g.codes, g.codes_bytes)
    g.codes = block
    g.codes_bytes = nbytes if nbytes > 0 else 1
    g.code_stride = g.code_size
    return 0

cdef int grow_labels(Graph *g, size_t needed) noexcept nogil:
    """Keep the label table at most half full for `needed` labels. -1 on OOM."""
    cdef size_t slots = g.label_slots, i
    cdef LabelSlot *table
    if needed * 2 <= slots:
        return 0
    while needed * 2 > slots:
        slots *= 2
    table = <LabelSlot *> map_anonymous(slots * sizeof(LabelSlot))
    if table == NULL:
        return -1
    for i in range(slots):
        table[i].key = LABEL_EMPTY
        table[i].value = 0
    for i in range(g.label_slots):
        if g.labels[i].key != LABEL_EMPTY:
            labelmap_put(table, slots, g.labels[i].key, g.labels[i].value)
    munmap(g.labels, g.labels_bytes)
    g.labels = table
    g.label_slots = slots
    g.labels_bytes = slots * sizeof(LabelSlot)
    g.labels_from_file = False
    return 0

cdef int leave_identity_labels(Graph *g, size_t needed) noexcept nogil:
    """Start keeping a label table (a label is about to differ from its node). -1 on OOM.

    Built afresh from the live nodes: a table loaded with the file may be stale."""
    cdef size_t slots = LABELMAP_MIN_SLOTS, node
    cdef LabelSlot *table
    while needed * 2 > slots:
        slots *= 2
    table = <LabelSlot *> map_anonymous(slots * sizeof(LabelSlot))
    if table == NULL:
        return -1
    for node in range(slots):
        table[node].key = LABEL_EMPTY
        table[node].value = 0
    for node in range(g.count):
        if not node_deleted(g, node):
            labelmap_put(table, slots, node_label(g, node), <uint64_t> node)
    munmap(g.labels, g.labels_bytes)
    g.labels = table
    g.label_slots = slots
    g.labels_bytes = slots * sizeof(LabelSlot)
    g.labels_from_file = False
    g.labels_are_nodes = False
    return 0

cdef inline int64_t find_node(const Graph *g, uint64_t label) noexcept nogil:
    """The node holding label, or -1 (also for a table entry pointing out of range)."""
    if g.labels_are_nodes:
        if label < g.count and not node_deleted(g, label):
            return <int64_t> label
        return -1
    cdef Py_ssize_t slot = labelmap_find(g.labels, g.label_slots, label)
    if slot < 0 or g.labels[slot].value >= g.count:
        return -1
    return <int64_t> g.labels[slot].value

cdef inline uint64_t next_random(Graph *g) noexcept nogil:
    # splitmix64: tiny, fast, and good enough to draw levels.
    cdef uint64_t z
    g.rng += 0x9E3779B97F4A7C15ULL
    z = g.rng
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)

cdef inline int draw_level(Graph *g) noexcept nogil:
    # Exponentially decaying levels: P(level >= l) = M^-l.
    cdef double u = (<double> (next_random(g) >> 11) + 1.0) * (1.0 / 9007199254740992.0)
    cdef double lv = -log(u) * g.level_mult
    return <int> lv if lv < MAX_LEVEL else MAX_LEVEL


# ---------------------------------------------------------------- scratch pool

cdef Scratch *scratch_acquire(Graph *g) noexcept nogil:
    cdef Scratch *s = NULL
    pthread_mutex_lock(&g.pool_lock)
    if g.pool_size > 0:
        g.pool_size -= 1
        s = g.pool[g.pool_size]
    pthread_mutex_unlock(&g.pool_lock)
    if s == NULL:
        s = <Scratch *> calloc(1, sizeof(Scratch))
        if s == NULL:
            return NULL
        s.link_copy = <uint32_t *> malloc((g.M0 + 1) * sizeof(uint32_t))
        s.near_copy = <uint32_t *> malloc((g.E + 1) * sizeof(uint32_t))
        s.fresh = <uint32_t *> malloc((TWO_HOP_FRESH * g.M0 + 1) * sizeof(uint32_t))
        s.query = <float *> malloc(g.dim * sizeof(float))
        s.prepared = <float *> malloc((g.dim + 16) * sizeof(float))
        s.prepared_node = <float *> malloc((g.dim + 16) * sizeof(float))
        s.kept_prepared = <float *> malloc((g.M0 + 1) * (g.dim + 16) * sizeof(float))
        s.kept_queries = malloc((g.M0 + 1) * sizeof(Query))
        if (s.link_copy == NULL or s.near_copy == NULL or s.fresh == NULL or s.query == NULL or s.prepared == NULL
                or s.prepared_node == NULL or s.kept_prepared == NULL or s.kept_queries == NULL):
            scratch_free(s)
            return NULL
    if s.visited_size < g.count:
        free(s.visited)
        s.visited = <uint16_t *> calloc(g.capacity, sizeof(uint16_t))
        s.visited_size = g.capacity if s.visited != NULL else 0
        s.tag = 0
        if s.visited == NULL:
            scratch_free(s)
            return NULL
    return s

cdef void scratch_release(Graph *g, Scratch *s) noexcept nogil:
    cdef Scratch **grown
    pthread_mutex_lock(&g.pool_lock)
    if g.pool_size == g.pool_capacity:
        grown = <Scratch **> realloc(g.pool, (2 * g.pool_capacity + 4) * sizeof(Scratch *))
        if grown == NULL:
            pthread_mutex_unlock(&g.pool_lock)
            scratch_free(s)
            return
        g.pool = grown
        g.pool_capacity = 2 * g.pool_capacity + 4
    g.pool[g.pool_size] = s
    g.pool_size += 1
    pthread_mutex_unlock(&g.pool_lock)

cdef void scratch_free(Scratch *s) noexcept nogil:
    if s == NULL:
        return
    free(s.visited)
    free(s.link_copy)
    free(s.near_copy)
    free(s.fresh)
    free(s.query)
    free(s.prepared)
    free(s.prepared_node)
    free(s.kept_prepared)
    free(s.kept_queries)
    free(s.rows)
    heap_free(&s.candidates)
    heap_free(&s.results)
    heap_free(&s.sorted)
    heap_free(&s.selected)
    heap_free(&s.top)
    free(s)

cdef inline uint16_t scratch_new_search(Scratch *s) noexcept nogil:
    # A fresh tag marks "unvisited" for every node without clearing the array.
    s.tag += 1
    if s.tag == 0:
        memset(s.visited, 0, s.visited_size * sizeof(uint16_t))
        s.tag = 1
    s.candidates.size = 0
    s.results.size = 0
    return s.tag


# ---------------------------------------------------------------- search

cdef inline bint accept_result(const Graph *g, uint32_t node, const uint8_t *allowed,
                               size_t allowed_bytes, int64_t exclude) noexcept nogil:
    # Each test reads the node's record only when it has to: with no deletions
    # and labels equal to node ids (the database's case) none does.
    if <int64_t> node == exclude or (g.n_deleted != 0 and node_deleted(g, node)):
        return False
    if allowed == NULL:
        return True
    return bitset_has(allowed, allowed_bytes, node if g.labels_are_nodes else node_label(g, node))

cdef inline uint32_t *read_links(const Graph *g, Scratch *s, uint32_t node, int level,
                                 bint locked) noexcept nogil:
    """node's list at level; while inserting, a copy taken under the node's lock."""
    cdef uint32_t *links = node_links(g, node, level)
    cdef size_t n
    if links == NULL or not locked:
        return links
    vj_spin_lock(&g.node_locks[node])
    n = links[0]
    if n > max_links(g, level):
        n = max_links(g, level)
    memcpy(s.link_copy, links, (n + 1) * sizeof(uint32_t))
    vj_spin_unlock(&g.node_locks[node])
    s.link_copy[0] = <uint32_t> n
    return s.link_copy

cdef inline uint32_t *read_near(const Graph *g, Scratch *s, uint32_t node, bint locked) noexcept nogil:
    """node's filter links; while inserting, a copy taken under the node's lock."""
    cdef uint32_t *near = node_near(g, node)
    cdef size_t m
    if not locked:
        return near
    vj_spin_lock(&g.node_locks[node])
    m = near[0] if near[0] <= g.E else g.E
    memcpy(s.near_copy, near, (m + 1) * sizeof(uint32_t))
    vj_spin_unlock(&g.node_locks[node])
    s.near_copy[0] = <uint32_t> m
    return s.near_copy

cdef uint32_t greedy_descent(const Graph *g, Scratch *s, const Query *q, uint32_t node,
                             int top, int bottom, bint locked) noexcept nogil:
    """From `top` down to `bottom` (inclusive) walk to the closest node on each level."""
    cdef float best = node_distance(g, q, node), d
    cdef int level
    cdef bint moved
    cdef uint32_t *links
    cdef size_t j, n, count = g.count
    cdef uint32_t nb
    level = top
    while level >= bottom:
        moved = True
        while moved:
            moved = False
            links = read_links(g, s, node, level, locked)
            if links == NULL:
                break
            n = links[0]
            if n > g.M:
                n = g.M
            for j in range(1, n + 1):
                nb = links[j]
                if nb >= count or g.levels[nb] < level:
                    continue  # never follow a link that cannot be valid
                d = node_distance(g, q, nb)
                if d < best:
                    best = d
                    node = nb
                    moved = True
        level -= 1
    return node

# A two-hop expansion gathers up to TWO_HOP_FRESH * M0 allowed nodes. Measured on
# WordNet (benchmarks/bench_filters.py --defaults --word-queries): at 21 %
# selectivity, where the two-hop neighbourhood holds ~M0**2 * s = 200 allowed
# nodes, gathering 3 * M0 per expansion with a third of the beam reached the
# recall of M0 per expansion with the whole beam at ~0.7x the cost; below
# ~10 % the cap is rarely reached.
cdef enum:
    TWO_HOP_FRESH = 3
# Also measured there, and no better at equal recall (each only moved along the
# same recall/cost curve): queueing disallowed neighbours behind their parent's
# distance instead of looking through them at once, one hop only where most
# neighbours are allowed, reading only the first half of second-hop lists, and
# scoring the first hop before fetching the second (slower: less in flight).
# What does beat it is denser lists: gather_filtered below.

cdef size_t gather_two_hop(const Graph *g, Scratch *s, const uint32_t *links, size_t n, int level,
                           uint16_t tag, const uint8_t *allowed, size_t allowed_bytes) noexcept nogil:
    """Unseen allowed nodes among the neighbours, looking through disallowed
    neighbours to their own neighbours (two hops), into s.fresh (at most
    TWO_HOP_FRESH * M0).

    Under a selective filter most neighbours are disallowed: computing their
    distances is the whole cost of a filtered walk. Stepping over them to
    their neighbours keeps the walk on allowed nodes and computes distances
    only for those (the idea of ACORN, Patel et al., SIGMOD 2024).
    """
    cdef size_t j, j2, n2, fresh_n = 0, links_max = max_links(g, level), count = g.count
    cdef size_t limit = TWO_HOP_FRESH * links_max
    cdef uint32_t nb, nb2
    cdef const uint32_t *links2
    cdef const char *record
    for j in range(1, n + 1):  # the lists we may step into, fetched together
        nb = links[j]
        if nb < count and s.visited[nb] != tag:
            record = <const char *> node_links(g, nb, level)
            __builtin_prefetch(record)
            __builtin_prefetch(record + 64)
    for j in range(1, n + 1):
        nb = links[j]
        if nb >= count or s.visited[nb] == tag:
            continue
        s.visited[nb] = tag
        if accept_result(g, nb, allowed, allowed_bytes, -1):
            s.fresh[fresh_n] = nb
            fresh_n += 1
            __builtin_prefetch(node_code(g, nb))
        else:
            links2 = node_links(g, nb, level)
            n2 = links2[0] if links2[0] <= links_max else links_max
            for j2 in range(1, n2 + 1):
                nb2 = links2[j2]
                if nb2 < count and s.visited[nb2] != tag and accept_result(g, nb2, allowed, allowed_bytes, -1):
                    s.visited[nb2] = tag
                    s.fresh[fresh_n] = nb2
                    fresh_n += 1
                    __builtin_prefetch(node_code(g, nb2))
                    if fresh_n >= limit:
                        return fresh_n
        if fresh_n >= limit:
            break
    return fresh_n


# A graph with filter links (g.E > 0: each node's E nearest neighbours that its
# heuristic list left out, ACORN-gamma's denser lists, Patel et al. 2024) walks
# selective filters one hop over both lists, computing distances only for the
# allowed neighbours: at 6-21 % selectivity about 64 * s of them per node, the
# near ones the heuristic's spread-out list lacks. Only when fewer than
# FILTERED_FEW are allowed does it look through the disallowed heuristic
# neighbours (two hops), so sparse filters stay connected. Measured on WordNet
# 80k through the database (benchmarks/bench_filters.py --defaults
# --word-queries): 0.81-1.36x the unfiltered rate at recall@10 0.954-0.978 at
# 5.7-21 %, where the two-hop walk ran at 0.62-1.01x; with the walk forced at
# 0.9-3 % (where the exact scan serves 80k rows) 0.92-1.17x at 0.958-0.993.
cdef enum:
    FILTERED_FEW = 2

cdef size_t gather_filtered(const Graph *g, Scratch *s, const uint32_t *links, const uint32_t *near,
                            uint16_t tag, const uint8_t *allowed, size_t allowed_bytes) noexcept nogil:
    """Unseen allowed nodes among a level-0 node's links and filter links, into s.fresh;
    through its disallowed heuristic neighbours when fewer than FILTERED_FEW are."""
    cdef size_t j, j2, n2, fresh_n = 0, count = g.count, links_max = g.M0
    cdef size_t n = links[0] if links[0] <= links_max else links_max
    cdef size_t m = near[0] if near[0] <= g.E else g.E
    cdef size_t limit = TWO_HOP_FRESH * links_max
    cdef uint32_t nb, nb2
    cdef const uint32_t *links2
    cdef const char *record
    for j in range(1, n + m + 2):
        if j == n + 1:
            continue  # (near[0], the count)
        nb = links[j] if j <= n else near[j - n - 1]
        if nb < count and s.visited[nb] != tag and accept_result(g, nb, allowed, allowed_bytes, -1):
            s.visited[nb] = tag
            s.fresh[fresh_n] = nb
            fresh_n += 1
            __builtin_prefetch(node_code(g, nb))
    if fresh_n >= FILTERED_FEW:
        return fresh_n
    for j in range(1, n + 1):  # the lists we may step into, fetched together
        nb = links[j]
        if nb < count and s.visited[nb] != tag:
            record = <const char *> node_links(g, nb, 0)
            __builtin_prefetch(record)
            __builtin_prefetch(record + 64)
    for j in range(1, n + 1):
        nb = links[j]
        if nb >= count or s.visited[nb] == tag:
            continue
        s.visited[nb] = tag
        links2 = node_links(g, nb, 0)
        n2 = links2[0] if links2[0] <= links_max else links_max
        for j2 in range(1, n2 + 1):
            nb2 = links2[j2]
            if nb2 < count and s.visited[nb2] != tag and accept_result(g, nb2, allowed, allowed_bytes, -1):
                s.visited[nb2] = tag
                s.fresh[fresh_n] = nb2
                fresh_n += 1
                __builtin_prefetch(node_code(g, nb2))
                if fresh_n >= limit:
                    return fresh_n
    return fresh_n

# Filters differ in how clustered they are, not only in selectivity: on WordNet
# the 64 nearest neighbours of lexname=noun.person's rows (9.4 % of the rows)
# are 66 % allowed, those of pos=v's (11.8 %) 28 %. Inside a clustered filter
# every hop brings many allowed neighbours and the walk finds the near-equal
# ones without the full stretch, which only made it compute 1.3x the
# unfiltered walk's distances. So the walk measures the allowed share of its
# first CLUSTER_SAMPLES allowed nodes' lists and, above CLUSTERED_SHARE, scales
# the stretch's excess over 1 by CLUSTERED_SHARE / share. Through the database
# noun.person's one-word queries went from 0.79x to 0.98x the unfiltered rate
# at recall@10 0.967 (from 0.974); the other filters' recall moved <= 0.002.
cdef enum:
    CLUSTER_SAMPLES = 8
cdef float CLUSTERED_SHARE = 0.45

cdef inline void count_allowed(const Graph *g, const uint32_t *links, const uint32_t *near,
                               const uint8_t *allowed, size_t allowed_bytes, size_t *listed,
                               size_t *listed_allowed) noexcept nogil:
    """Add a level-0 node's links and filter links to `listed`, the allowed ones to `listed_allowed`."""
    cdef size_t j, count = g.count
    cdef size_t n = links[0] if links[0] <= g.M0 else g.M0
    cdef size_t m = near[0] if near[0] <= g.E else g.E
    cdef uint32_t nb
    for j in range(n + m):
        nb = links[j + 1] if j < n else near[j - n + 1]
        if nb < count:
            listed[0] += 1
            if accept_result(g, nb, allowed, allowed_bytes, -1):
                listed_allowed[0] += 1

cdef inline float clustered_stretch(float stretch, size_t listed, size_t listed_allowed) noexcept nogil:
    """The stretch for a filter whose nodes' lists are listed_allowed / listed allowed."""
    if listed == 0 or listed_allowed <= CLUSTERED_SHARE * listed:
        return stretch
    return 1.0 + (stretch - 1.0) * CLUSTERED_SHARE * listed / listed_allowed

cdef enum:
    # how search_layer gathers a node's neighbours
    WALK_PLAIN = 0      # every unseen neighbour
    WALK_TWO_HOP = 1    # allowed ones, through disallowed ones (gather_two_hop)
    WALK_FILTERED = 2   # allowed ones among the links and filter links (gather_filtered)

cdef enum:
    PREFETCH_AHEAD = 3

cdef int search_layer(const Graph *g, Scratch *s, const Query *q, uint32_t entry, size_t ef,
                      int level, const uint8_t *allowed, size_t allowed_bytes, int64_t exclude,
                      bint locked, int gather=WALK_PLAIN, size_t top_k=0, float stretch=0.0,
                      size_t budget=0) noexcept nogil:
    """Beam search of one level; s.results ends holding the best `ef` accepted nodes.

    Disallowed and deleted nodes are still walked through, so the graph stays
    navigable under a filter; they just never enter the results. Under
    selective filters (`gather` WALK_TWO_HOP or WALK_FILTERED, level 0) the
    walk steps over them instead of computing their distances. With `top_k` and `stretch` > 1 the walk also
    goes on through every node closer than stretch * (the top_k-th best
    distance so far) when that reaches past the beam's worst: queries whose
    top k sit among many near-equal neighbours (low contrast, e.g. one-word
    queries far from the data) walk further, the others as before; after
    `budget` expansions the walk ends as an unstretched one. -1 on OOM.
    """
    cdef uint16_t tag = scratch_new_search(s)
    cdef uint16_t *visited = s.visited
    cdef size_t count = g.count, n, j, limit = max_links(g, level), fresh_n
    cdef float d, bound, reach, far = -INFINITY
    cdef uint32_t current, nb
    cdef uint32_t *links
    cdef int rc = 0
    cdef bint stretched = top_k > 0 and stretch > 1.0
    cdef size_t expanded = 0, sampled = 0, listed = 0, listed_allowed = 0
    cdef const uint32_t *near
    s.top.size = 0

    d = node_distance(g, q, entry)
    visited[entry] = tag
    rc |= heap_push(&s.candidates, -d, entry)
    bound = INFINITY
    if accept_result(g, entry, allowed, allowed_bytes, exclude):
        rc |= heap_push(&s.results, d, entry)
        bound = d
        if stretched:
            rc |= heap_push(&s.top, d, entry)
    reach = bound  # bound, or the stretched k-th distance when that is further

    while s.candidates.size > 0:
        if stretched and expanded >= budget:
            # far from the data everything is near-equal: the stretched ball could
            # be most of the graph, so past the budget the walk ends as an unstretched one
            stretched = False
            reach = bound
        if -s.candidates.items[0].key > reach and s.results.size >= ef:
            break
        expanded += 1
        current = s.candidates.items[0].node
        heap_pop(&s.candidates)
        links = read_links(g, s, current, level, locked)
        if links == NULL:
            continue
        n = links[0]
        if n > limit:
            n = limit
        # Two passes: first pick the unseen neighbours and start fetching their
        # vectors, so the memory system works on several at once; then compute.
        # The kernels are memory-bound here (vectors stream from RAM).
        fresh_n = 0
        if gather == WALK_FILTERED:
            near = read_near(g, s, current, locked)
            if stretched and sampled < CLUSTER_SAMPLES and accept_result(g, current, allowed, allowed_bytes, -1):
                count_allowed(g, links, near, allowed, allowed_bytes, &listed, &listed_allowed)
                sampled += 1
                if sampled == CLUSTER_SAMPLES:
                    stretch = clustered_stretch(stretch, listed, listed_allowed)
                    if s.top.size >= top_k:
                        far = s.top.items[0].key * stretch
                        reach = far if far > bound else bound
            fresh_n = gather_filtered(g, s, links, near, tag, allowed, allowed_bytes)
        elif gather == WALK_TWO_HOP:
            fresh_n = gather_two_hop(g, s, links, n, level, tag, allowed, allowed_bytes)
        else:
            for j in range(1, n + 1):
                nb = links[j]
                if nb < count and visited[nb] != tag:
                    visited[nb] = tag
                    s.fresh[fresh_n] = nb
                    fresh_n += 1
                    __builtin_prefetch(node_code(g, nb))
        for j in range(PREFETCH_AHEAD if PREFETCH_AHEAD < fresh_n else fresh_n):
            prefetch_code(g, s.fresh[j])
        for j in range(fresh_n):
            nb = s.fresh[j]
            if j + PREFETCH_AHEAD < fresh_n:
                prefetch_code(g, s.fresh[j + PREFETCH_AHEAD])
            d = node_distance(g, q, nb)
            if s.results.size < ef or d < reach:
                rc |= heap_push(&s.candidates, -d, nb)
                if s.candidates.items[0].node == nb:
                    # nb is next to expand: start fetching its list now
                    prefetch_links(g, nb, level)
                    if gather == WALK_FILTERED:
                        __builtin_prefetch(<const char *> node_near(g, nb) + 64)
                        __builtin_prefetch(<const char *> node_near(g, nb) + 128)
                if (s.results.size < ef or d < bound) and accept_result(g, nb, allowed, allowed_bytes, exclude):
                    rc |= heap_push(&s.results, d, nb)
                    if s.results.size > ef:
                        heap_pop(&s.results)
                    bound = s.results.items[0].key
                    reach = bound
                    if stretched:
                        if s.top.size < top_k:
                            rc |= heap_push(&s.top, d, nb)
                        elif d < s.top.items[0].key:
                            heap_pop(&s.top)
                            rc |= heap_push(&s.top, d, nb)
                        if s.top.size >= top_k:
                            far = s.top.items[0].key * stretch
                        if far > reach:
                            reach = far
    return -1 if rc != 0 else 0

cdef size_t drain_results(const Graph *g, Scratch *s, size_t k, uint64_t *labels,
                          float *distances, bint walk_units=False) noexcept nogil:
    """Write the best k of s.results ascending; returns how many were written.
    `walk_units`: the keys are walk distances, reported in the metric's units."""
    cdef size_t n, i
    while s.results.size > k:
        heap_pop(&s.results)
    n = s.results.size
    i = n
    while i > 0:
        i -= 1
        labels[i] = node_label(g, s.results.items[0].node)
        distances[i] = reported_distance(g, s.results.items[0].key) if walk_units else s.results.items[0].key
        heap_pop(&s.results)
    return n

cdef inline void offer(Heap *h, size_t k, float d, uint32_t node) noexcept nogil:
    if h.size < k:
        heap_push(h, d, node)
    elif d < h.items[0].key:
        heap_pop(h)
        heap_push(h, d, node)

cdef int exact_scan(const Graph *g, Scratch *s, const Query *q, size_t k, const uint8_t *allowed,
                    size_t allowed_bytes) noexcept nogil:
    """Brute force over the live nodes (or only the allowed labels) into s.results. -1 on OOM."""
    cdef size_t node, b, bit
    cdef int64_t found
    cdef uint8_t byte
    s.results.size = 0
    if heap_reserve(&s.results, k + 1) != 0:
        return -1
    if allowed != NULL:
        for b in range(allowed_bytes):
            byte = allowed[b]
            while byte != 0:
                bit = <size_t> __builtin_ctz(byte)
                byte &= byte - 1
                if g.labels_are_nodes:
                    found = <int64_t> (b * 8 + bit) if b * 8 + bit < g.count else -1
                else:
                    found = find_node(g, b * 8 + bit)
                if found >= 0 and not node_deleted(g, <size_t> found):
                    offer(&s.results, k, node_distance(g, q, <size_t> found), <uint32_t> found)
    else:
        for node in range(g.count):
            if not node_deleted(g, node):
                offer(&s.results, k, node_distance(g, q, node), <uint32_t> node)
    return 0

cdef int rescore_results(const Graph *g, Scratch *s, const Query *walk, const float *q, size_t k) noexcept nogil:
    """Measure the candidates in s.results again, exactly, from their float32
    vectors, and keep the best k. -1 on OOM.

    Candidates go from the closest by their codes, and an int8 candidate whose
    code distance is further than its error bound (int8_error_bound) beyond
    the k-th exact distance so far cannot enter the top k: its row is not
    read. The result is the same as rescoring every candidate.
    """
    cdef vj_dist_fn dist = metric_kernel(g.metric)
    cdef size_t i, n = s.results.size, offset, row_bytes = g.dim * sizeof(float)
    cdef const char *row
    cdef float *grown
    cdef HeapItem *items
    cdef bint bounded = walk.kind == KIND_INT8
    if heap_reserve(&s.sorted, n + 1) != 0:
        return -1
    items = s.sorted.items
    i = n
    while s.results.size > 0:  # the max-heap pops worst first: fill from the end
        i -= 1
        items[i] = s.results.items[0]
        heap_pop(&s.results)
    if g.vector_fd >= 0 and s.rows_capacity < 1:  # one row at a time: each is measured as it arrives
        grown = <float *> realloc(s.rows, row_bytes)
        if grown == NULL:
            return -1
        s.rows = grown
        s.rows_capacity = 1
    elif g.vector_fd < 0:
        for i in range(n if n < 4 else 4):  # the rows may come from disk: ask for the first ones now
            __builtin_prefetch(node_vector(g, items[i].node))
    for i in range(n):
        if (bounded and s.results.size >= k and
                items[i].key - int8_error_bound(g, walk, items[i].node, items[i].key) > s.results.items[0].key):
            continue
        row = <const char *> node_vector(g, items[i].node)
        if g.vector_fd >= 0:
            # pread, not the memory map: a touched map counts in RSS, and the kernel maps
            # whole (large) folios around each row, so a few rows would map most of the file
            if pread(g.vector_fd, s.rows, row_bytes, <off_t> (items[i].node * row_bytes)) == <ssize_t> row_bytes:
                row = <const char *> s.rows
        else:
            if i + 1 < n:
                for offset in range(0, row_bytes, 64):
                    __builtin_prefetch(<const char *> node_vector(g, items[i + 1].node) + offset)
        offer(&s.results, k, dist(q, <const float *> row, g.dim), items[i].node)
    return 0

# Filters letting through less than 1/TWO_HOP_BELOW of the labels walk two hops.
cdef enum:
    TWO_HOP_BELOW = 3  # measured on WordNet: at 21 % the plain walk ran at 0.2-0.4x unfiltered

# A filtered walk also explores the nodes within STRETCH * its k-th best
# distance (search_layer's `stretch`). Measured on WordNet's one-word queries,
# which sit among many near-equal neighbours: recall@10 rose from 0.87-0.93 to
# >= 0.95 at 5.7-70 % selectivity while the held-out glosses, whose top 10
# stand out, walk about as far as before. Past ~1.10 (two hops) / ~1.12 (one
# hop) the explored ball grows fast (0.4x unfiltered at 1.15).
cdef float ONE_HOP_STRETCH = 1.10
cdef float TWO_HOP_STRETCH = 1.08
# Far from the data (a random query) nearly every node is within the stretch:
# stretched walks stop stretching after STRETCH_EXPANSIONS times the expansions
# of an unfiltered walk of ef (one hop; its filtered walk expands ~ef * s**0.35)
# or STRETCH_EXPANSIONS + 1 times the two-hop beam. Without it random Gaussian
# queries ran at 0.05-0.3x unfiltered, with it at 0.4-0.6x; the one-word
# queries' recall moved by <= 0.001.
cdef enum:
    STRETCH_EXPANSIONS = 3


cdef inline size_t filtered_beam(size_t ef, size_t k, size_t allowed_count, size_t label_count,
                                 size_t M0, bint two_hop) noexcept nogil:
    """The beam of a filtered walk that costs about what an unfiltered one of `ef` does.

    A plain walk keeps `ef` allowed results, so it explores about ef / s nodes
    at selectivity s: a beam of ef * s**1.35 explores less than the unfiltered
    walk and still finds more of the true top 10 (it computes the distance of
    every node on its way); the stretch spends the rest on the hard queries.
    A two-hop expansion computes distances for the allowed nodes within two
    hops, about M0**2 * s of them (up to TWO_HOP_FRESH * M0): the beam is
    ef * 2.2 / (s * M0) above ~10 % and 0.7 * ef below. Measured on 80k
    WordNet glosses and one-word queries (benchmarks/bench_filters.py
    --defaults --word-queries).
    """
    cdef double sel = <double> allowed_count / <double> label_count
    cdef double share
    cdef size_t beam
    if two_hop:
        share = 2.2 / (sel * <double> M0)
        beam = <size_t> (ef * (share if share < 0.7 else 0.7) + 0.5)
    else:
        beam = <size_t> (ef * pow(sel, 1.35) + 0.999)
    return beam if beam > k else k


# The stretch and beam (times ef) of a walk over filter links at 6 %, 12 % and
# 21 % selectivity (by_selectivity). Measured on WordNet 80k, interleaved passes
# against the unfiltered walk of the same graph at ef 94; the one-word queries
# set them. At 6 % and 12 % the stretch matters most: 1.19 and 1.17 with beams
# of 0.56 and 0.69 * ef (a beam up to 0.1 * ef longer with a stretch 0.02
# shorter lost up to 0.010 of recall@10). At 21 % the beam does: 0.64 * ef with
# 1.18 ran 1.01-1.10x faster than 0.52 * ef with 1.21 at the same recall
# (0.952-0.953), and 0.45 * ef lost 0.006 whatever the stretch. Ending the
# stretch after 3 beams instead of FILTERED_EXPANSIONS = 4 ran 1.2x faster but
# lost 0.013 at 6 % and 21 %; ending it when the top k had not changed for
# 1-1.5 beams, or after 20-28 * beam distances, or taking at most 14-24
# allowed neighbours per node, traded recall for speed no better.
cdef float FILTERED_STRETCH[3]
cdef float FILTERED_BEAM[3]
FILTERED_STRETCH[0], FILTERED_STRETCH[1], FILTERED_STRETCH[2] = 1.19, 1.17, 1.18
FILTERED_BEAM[0], FILTERED_BEAM[1], FILTERED_BEAM[2] = 0.56, 0.69, 0.64

cdef inline double by_selectivity(const float *at, double sel) noexcept nogil:
    """The value `at` gives for 6 %, 12 % and 21 % selectivity, linear between them, flat outside."""
    if sel <= 0.06:
        return at[0]
    if sel <= 0.12:
        return at[0] + (at[1] - at[0]) * (sel - 0.06) / 0.06
    if sel <= 0.21:
        return at[1] + (at[2] - at[1]) * (sel - 0.12) / 0.09
    return at[2]

cdef inline size_t filtered_links_beam(size_t ef, size_t k, double sel) noexcept nogil:
    """The beam of a walk over filter links, FILTERED_BEAM * ef: one hop gathers about
    4M * s allowed neighbours, near ones, so a short beam finds the top k."""
    cdef size_t beam = <size_t> (ef * by_selectivity(FILTERED_BEAM, sel) + 0.5)
    return beam if beam > k else k

# A stretched walk over filter links ends its stretch after this many times its beam of expansions.
cdef enum:
    FILTERED_EXPANSIONS = 4

cdef Py_ssize_t knn_search(Graph *g, Scratch *s, const Query *q, const float *exact, size_t k,
                           size_t pool, size_t ef, const uint8_t *allowed, size_t allowed_bytes,
                           size_t allowed_count, size_t exact_limit, uint64_t *labels,
                           float *distances) noexcept nogil:
    """k nearest live (and allowed) labels of q, ascending; -1 on OOM.

    The walk keeps the best `pool` (>= k) by the codes' distance; with `exact`
    (the float32 query) those are measured again from the float32 vectors and
    the best k kept (rescoring). Small allowed sets go straight to a scan;
    when the graph walk finds fewer than k although at least k exist, the
    scan supplies them.
    """
    cdef size_t available = g.label_count
    cdef uint32_t entry
    # An insert links nodes beside searches (under the read lock): read lists
    # under node locks then. Linking cannot start during this search (placing
    # nodes first takes the lock exclusively), so one look at the start holds.
    cdef bint locked = __atomic_load_n(&g.linking, __ATOMIC_ACQUIRE) != 0
    cdef bint two_hop
    cdef int gather
    cdef double sel
    cdef float stretch = 0.0  # unfiltered walks (and filters letting all through) as they were
    cdef size_t budget = 0
    if pool < k:
        pool = k
    if allowed != NULL and allowed_count < available:
        available = allowed_count
    if available == 0 or g.entry_point < 0 or k == 0:
        return 0
    if allowed != NULL and allowed_count <= exact_limit:
        if exact_scan(g, s, q, pool, allowed, allowed_bytes) != 0:
            return -1
    else:
        # The unfiltered descent is a good enough start for a filtered walk: on WordNet,
        # starting level 0 at the true nearest allowed node saved <= 3 % of the distances
        # under anti-correlated filters (part of speech at 6-21 %)
        entry = greedy_descent(g, s, q, <uint32_t> g.entry_point, g.max_level, 1, locked)
        two_hop = allowed != NULL and allowed_count * TWO_HOP_BELOW < g.label_count
        gather = WALK_PLAIN
        if allowed != NULL and allowed_count < g.label_count:
            sel = <double> allowed_count / <double> g.label_count
            if two_hop and g.E > 0:
                gather = WALK_FILTERED
                ef = filtered_links_beam(ef, pool, sel)
                stretch = <float> by_selectivity(FILTERED_STRETCH, sel)
                budget = FILTERED_EXPANSIONS * ef
            elif two_hop:
                gather = WALK_TWO_HOP
                ef = filtered_beam(ef, pool, allowed_count, g.label_count, g.M0, True)
                stretch = TWO_HOP_STRETCH
                budget = (STRETCH_EXPANSIONS + 1) * ef
            else:
                budget = STRETCH_EXPANSIONS * ef
                ef = filtered_beam(ef, pool, allowed_count, g.label_count, g.M0, False)
                stretch = ONE_HOP_STRETCH
        if search_layer(g, s, q, entry, ef if ef > pool else pool, 0, allowed, allowed_bytes, -1, locked,
                        gather, pool, stretch, budget) != 0:
            return -1
        while s.results.size > pool:
            heap_pop(&s.results)
        if s.results.size < k and s.results.size < available:
            if exact_scan(g, s, q, pool, allowed, allowed_bytes) != 0:
                return -1
    if exact != NULL and rescore_results(g, s, q, exact, k) != 0:
        return -1
    return <Py_ssize_t> drain_results(g, s, k, labels, distances, exact == NULL)


# ---------------------------------------------------------------- insert

cdef void sort_ascending(HeapItem *items, size_t n) noexcept nogil:
    # Insertion sort: lists here hold at most ef_construction + 1 items.
    cdef size_t i, j
    cdef HeapItem x
    for i in range(1, n):
        x = items[i]
        j = i
        while j > 0 and items[j - 1].key > x.key:
            items[j] = items[j - 1]
            j -= 1
        items[j] = x

cdef size_t select_neighbours(const Graph *g, Scratch *s, const HeapItem *candidates, size_t n, size_t m,
                              HeapItem *chosen) noexcept nogil:
    """The paper's heuristic: walking candidates from the closest, keep one only
    if it is closer to the base than to every neighbour already kept. This
    spreads links across directions instead of clustering them.

    Each kept neighbour is prepared as a query once, and measures the later
    candidates' codes: preparing each candidate instead (up to ef_construction
    of them, against at most m kept) made preparing int8 queries half of an
    int8 build."""
    cdef size_t i, j, kept = 0
    cdef bint diverse
    cdef Query *queries = <Query *> s.kept_queries
    for i in range(n):
        if kept >= m:
            break
        diverse = True
        for j in range(kept):
            if node_distance(g, &queries[j], candidates[i].node) < candidates[i].key:
                diverse = False
                break
        if diverse:
            chosen[kept] = candidates[i]
            prepare_node(g, candidates[i].node, s.kept_prepared + kept * (g.dim + 16), &queries[kept])
            kept += 1
    return kept

cdef int link_back(Graph *g, Scratch *s, uint32_t target, uint32_t node, int level) noexcept nogil:
    """Add node to target's list at level, pruning with the heuristic when full."""
    cdef uint32_t *links
    cdef size_t n, j, limit = max_links(g, level), kept
    cdef Query base
    vj_spin_lock(&g.node_locks[target])
    links = node_links(g, target, level)
    if links == NULL:
        vj_spin_unlock(&g.node_locks[target])
        return 0
    n = links[0]
    if n > limit:
        n = limit
    for j in range(1, n + 1):
        if links[j] == node:
            vj_spin_unlock(&g.node_locks[target])
            return 0
    mark_changed(g, target)
    if n < limit:
        links[n + 1] = node
        links[0] = <uint32_t> (n + 1)
        vj_spin_unlock(&g.node_locks[target])
        return 0
    if heap_reserve(&s.sorted, limit + 1) != 0 or heap_reserve(&s.selected, limit + 1) != 0:
        vj_spin_unlock(&g.node_locks[target])
        return -1
    prepare_node(g, target, s.prepared_node, &base)
    for j in range(n):
        s.sorted.items[j].node = links[j + 1]
        s.sorted.items[j].key = node_distance(g, &base, links[j + 1])
    s.sorted.items[n].node = node
    s.sorted.items[n].key = node_distance(g, &base, node)
    sort_ascending(s.sorted.items, n + 1)
    kept = select_neighbours(g, s, s.sorted.items, n + 1, limit, s.selected.items)
    for j in range(kept):
        links[j + 1] = s.selected.items[j].node
    links[0] = <uint32_t> kept
    if level == 0 and g.E > 0:
        # what the heuristic dropped is still among target's nearest: keep it as a filter link
        for j in range(n + 1):
            if not in_list(links, limit, s.sorted.items[j].node):
                near_insert(g, target, &base, s.sorted.items[j].node, s.sorted.items[j].key)
    vj_spin_unlock(&g.node_locks[target])
    return 0

cdef inline bint in_list(const uint32_t *lst, size_t limit, uint32_t node) noexcept nogil:
    """Whether node is in the list [n][ids...] (of at most `limit`)."""
    cdef size_t j, n = lst[0] if lst[0] <= limit else limit
    for j in range(1, n + 1):
        if lst[j] == node:
            return True
    return False

cdef void near_insert(Graph *g, uint32_t target, const Query *base, uint32_t node, float d) noexcept nogil:
    """Put node (at distance d) into target's filter links, which stay sorted by
    distance and keep the E nearest; under target's lock, `base` measuring from target.

    The positions are found by bisection (about log2(E) distances), and
    g.near_worst[target] keeps the last one's distance so that most offers
    are turned away without the lock (near_offer)."""
    cdef uint32_t *near = node_near(g, target)
    cdef size_t m = near[0] if near[0] <= g.E else g.E, lo = 0, hi, mid, j
    if node == target or in_list(near, g.E, node):
        return
    for j in range(1, m + 1):  # (a mapped file's lists are only checked where followed)
        if near[j] >= g.count:
            m = j - 1
            g.near_worst[target] = INFINITY
            break
    if m == g.E and g.near_worst[target] <= 0.0:  # not known yet (a loaded graph)
        g.near_worst[target] = node_distance(g, base, near[m])
    if m == g.E and d >= g.near_worst[target]:
        return
    hi = m
    while lo < hi:
        mid = (lo + hi) // 2
        if node_distance(g, base, near[mid + 1]) <= d:
            lo = mid + 1
        else:
            hi = mid
    if m == g.E:
        m -= 1  # the furthest leaves
    if lo > m:
        lo = m
    j = m
    while j > lo:
        near[j + 1] = near[j]
        j -= 1
    near[lo + 1] = node
    near[0] = <uint32_t> (m + 1)
    # Not mark_changed: a patch would then carry ~2.3x the nodes per insert. A
    # patch carries the filter links of the nodes it holds for other reasons;
    # the rest keep their base file's (older, valid, a little less near) until
    # the graph is next saved whole.
    if m + 1 == g.E:
        g.near_worst[target] = d if lo + 1 == g.E else node_distance(g, base, near[g.E])
    else:
        g.near_worst[target] = INFINITY  # room left: every offer is taken

cdef void near_offer(Graph *g, Scratch *s, uint32_t target, uint32_t node, float d) noexcept nogil:
    """Offer node, found at distance d from target while linking node, to target's filter links."""
    cdef Query base
    cdef float worst = g.near_worst[target]  # (read without the lock: only a first test)
    if worst > 0.0 and d >= worst:
        return
    vj_spin_lock(&g.node_locks[target])
    if not in_list(node_links(g, target, 0), g.M0, node):
        prepare_node(g, target, s.prepared_node, &base)
        near_insert(g, target, &base, node, d)
    vj_spin_unlock(&g.node_locks[target])

cdef int connect_level(Graph *g, Scratch *s, uint32_t node, int level) noexcept nogil:
    """Give node its links at level from s.results, and link back to them."""
    cdef size_t n = s.results.size, kept, j, offers = 0
    cdef uint32_t *links
    if heap_reserve(&s.sorted, n + 1) != 0 or heap_reserve(&s.selected, g.M0 + 1) != 0:
        return -1
    memcpy(s.sorted.items, s.results.items, n * sizeof(HeapItem))
    sort_ascending(s.sorted.items, n)
    kept = select_neighbours(g, s, s.sorted.items, n, g.M, s.selected.items)
    vj_spin_lock(&g.node_locks[node])
    mark_changed(g, node)
    links = node_links(g, node, level)
    for j in range(kept):
        links[j + 1] = s.selected.items[j].node
    links[0] = <uint32_t> kept
    if level == 0 and g.E > 0:
        set_near(g, node, links, s.sorted.items, n)
        # link_back may sort into s.sorted: keep the nearest candidates, ascending,
        # in s.results' items (level 0 is the last level: the heap is done with)
        offers = n if n < NEAR_OFFERS else NEAR_OFFERS
        memcpy(s.results.items, s.sorted.items, offers * sizeof(HeapItem))
        s.results.size = 0
    vj_spin_unlock(&g.node_locks[node])
    # link_back reuses s.selected: copy the chosen ids out first
    for j in range(kept):
        s.link_copy[j] = s.selected.items[j].node
    for j in range(kept):
        if link_back(g, s, s.link_copy[j], node, level) != 0:
            return -1
    if level == 0 and g.E > 0:
        # node is likely among the filter links of the candidates nearest to it
        for j in range(offers):
            near_offer(g, s, s.results.items[j].node, node, s.results.items[j].key)
    return 0

# A new node is offered to the filter links of its NEAR_OFFERS nearest
# candidates (its neighbours are mostly among theirs, and more of them go far).
cdef enum:
    NEAR_OFFERS = 64

cdef void set_near(Graph *g, uint32_t node, const uint32_t *links, const HeapItem *sorted_items,
                   size_t n) noexcept nogil:
    """node's filter links: its nearest candidates (ascending) that its list lacks."""
    cdef uint32_t *near = node_near(g, node)
    cdef size_t j, m = 0
    cdef float last = INFINITY
    for j in range(n):
        if m == g.E:
            break
        if not in_list(links, g.M0, sorted_items[j].node):
            near[m + 1] = sorted_items[j].node
            last = sorted_items[j].key
            m += 1
    near[0] = <uint32_t> m
    g.near_worst[node] = last if m == g.E else INFINITY

cdef int insert_node(Graph *g, Scratch *s, uint32_t node) noexcept nogil:
    """Link a node whose record (label, vector, level) is already written.

    Also re-links a node whose vector was replaced: it is excluded from its own
    candidate lists and its old lists are overwritten. -1 on OOM.
    """
    cdef int level = g.levels[node], top, lv
    cdef bint raises_top
    cdef int64_t entry
    cdef uint32_t current
    cdef Query q
    cdef int rc = 0
    prepare_node(g, node, s.prepared, &q)

    pthread_mutex_lock(&g.entry_lock)
    entry = g.entry_point
    top = g.max_level
    raises_top = level > top
    if not raises_top:
        pthread_mutex_unlock(&g.entry_lock)
    if entry < 0 or (entry == node and g.label_count <= 1):
        g.entry_point = node
        g.max_level = level
        if raises_top:
            pthread_mutex_unlock(&g.entry_lock)
        return 0

    current = <uint32_t> entry
    if top > level:
        current = greedy_descent(g, s, &q, current, top, level + 1, True)
    lv = level if level < top else top
    while lv >= 0:
        if search_layer(g, s, &q, current, g.ef_construction, lv, NULL, 0, node, True) != 0:
            rc = -1
            break
        if s.results.size > 0:
            current = closest_result(s)
            if connect_level(g, s, node, lv) != 0:
                rc = -1
                break
        lv -= 1

    if raises_top:
        g.entry_point = node
        g.max_level = level
        pthread_mutex_unlock(&g.entry_lock)
    return rc

cdef inline uint32_t closest_result(const Scratch *s) noexcept nogil:
    cdef size_t i, best = 0
    for i in range(1, s.results.size):
        if s.results.items[i].key < s.results.items[best].key:
            best = i
    return s.results.items[best].node


# ---------------------------------------------------------------- parallel jobs

cdef struct InsertJob:
    Graph *graph
    uint32_t *nodes
    Scratch **scratch
    int failed

cdef void insert_task(void *ctx, size_t item, int worker) noexcept nogil:
    cdef InsertJob *job = <InsertJob *> ctx
    if insert_node(job.graph, job.scratch[worker], job.nodes[item]) != 0:
        job.failed = 1

cdef struct SearchJob:
    Graph *graph
    const float *queries
    size_t k
    size_t pool            # candidates kept by the walk (>= k)
    bint rescore
    size_t ef
    const uint8_t *allowed
    size_t allowed_bytes
    size_t allowed_count
    size_t exact_limit
    uint64_t *labels
    float *distances
    Scratch **scratch
    int failed

cdef void search_task(void *ctx, size_t item, int worker) noexcept nogil:
    cdef SearchJob *job = <SearchJob *> ctx
    cdef Graph *g = job.graph
    cdef Scratch *s = job.scratch[worker]
    cdef const float *q = job.queries + item * g.dim
    cdef uint64_t *labels = job.labels + item * job.k
    cdef float *distances = job.distances + item * job.k
    cdef Py_ssize_t found, j
    cdef Query query
    if g.metric == METRIC_COSINE:
        normalise_into(q, s.query, g.dim)
        q = s.query
    prepare_query(g, q, s.prepared, &query)
    found = knn_search(g, s, &query, q if job.rescore else NULL, job.k, job.pool, job.ef,
                       job.allowed, job.allowed_bytes,
                       job.allowed_count, job.exact_limit, labels, distances)
    if found < 0:
        job.failed = 1
        found = 0
    for j in range(found, <Py_ssize_t> job.k):
        labels[j] = LABEL_EMPTY
        distances[j] = INFINITY

cdef inline void normalise_into(const float *src, float *dst, size_t dim) noexcept nogil:
    cdef double norm = 0.0
    cdef size_t i
    for i in range(dim):
        norm += <double> src[i] * src[i]
    norm = sqrt(norm)
    for i in range(dim):
        dst[i] = <float> (src[i] / norm) if norm > 0 else 0.0
