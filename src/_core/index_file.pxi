# The index file: a checksummed header, then sections.
#
#   [header, 256 bytes] ... [level-0 records] ... [label table] [upper lists] [free slots]
#   ... [codes] [quantization parameters]          (format 4, compact kinds only)
#
# The level-0 records and the label table start on 64 KiB boundaries (a
# multiple of every common page size) and load by mmap (MAP_PRIVATE: edits
# after loading stay in memory), so opening costs the same for ten vectors or
# ten million. With external vectors (format 3) the records hold no vectors
# (the owner attaches them after loading) and level 0 is saved packed instead:
# see pack_level0. While every label is its node's id the label table is
# written empty. The upper lists (about 1/M of the nodes) and the free-slot list
# are small and parsed with full validation. Every section has a checksum;
# the header's own checksum covers its first 248 bytes.
# Format 4 adds the storage kind: a compact kind's codes (count * code_size
# bytes, on a 64 KiB boundary, memory-mapped like the records) and its learnt
# parameters (float32) follow the free slots; files of formats 2 and 3 have
# zeros there and load as float32. Format 5 int8 codes carry their error
# bounds (distance.pxi); format 4 int8 codes load into that layout in memory.
# Format 6 says in a header flag whether level 0 is packed: files of external
# vectors are saved as records again by default (mapped at load, so a database
# of a million rows opens in milliseconds), packed on request (save(pack=True)).
# Format 7 adds filter links (graph.pxd): `near_links` (E) slots after each
# level-0 list, in the records and, packed, as a second count and list per
# node. Graphs without them still write format 6, which older builds read.

import struct as _struct

_MAGIC = b"VJHNSW\x00\x01"
FORMAT_VERSION = 7  # 2: identity labels without a table; 3: packed level 0 (external vectors); 4: kinds;
                    # 5: int8 codes carry their error bounds (a 16-byte head);
                    # 6: a flag says whether level 0 is packed (external vectors save it unpacked again)
                    # 7: filter links (near_links > 0)
_NEAR_LINKS_SINCE = 7
_PACKED_SINCE = 3
_PACKED_FLAG_SINCE = 6
_KINDS_SINCE = 4
_INT8_BOUNDS_SINCE = 5
_SECTION_ALIGN = 65536
_HEADER_SIZE = 256
_HEADER_FIELDS = (
    ("magic", "8s"), ("version", "I"), ("header_size", "I"),
    ("dim", "I"), ("metric", "I"), ("M", "I"), ("M0", "I"),
    ("ef_construction", "I"), ("record_size", "I"), ("vec_offset", "I"), ("max_level", "i"),
    ("entry_point", "q"), ("count", "Q"), ("n_deleted", "Q"), ("label_count", "Q"), ("rng", "Q"),
    ("level0_offset", "Q"), ("level0_bytes", "Q"), ("level0_hash", "Q"),
    ("labels_offset", "Q"), ("labels_bytes", "Q"), ("labels_hash", "Q"),
    ("upper_offset", "Q"), ("upper_bytes", "Q"), ("upper_hash", "Q"),
    ("free_offset", "Q"), ("free_bytes", "Q"), ("free_hash", "Q"),
    ("labels_are_nodes", "I"), ("external_vectors", "I"),
    ("kind", "I"), ("params_bytes", "I"), ("codes_offset", "Q"), ("codes_bytes", "Q"), ("codes_hash", "Q"),
    ("params_hash", "Q"), ("level0_packed", "I"), ("near_links", "I"),
)
_HEADER = _struct.Struct("<" + "".join(f for _, f in _HEADER_FIELDS))
_HEADER_HASHED = _HEADER_SIZE - 8
assert _HEADER.size <= _HEADER_HASHED


cdef object raw_view(const void *ptr, size_t nbytes):
    """A zero-copy buffer over C memory (valid while the graph lives)."""
    if nbytes == 0:
        return b""
    return <const char[:nbytes]> ptr


cdef uint64_t section_hash(const void *ptr, size_t nbytes) noexcept nogil:
    return vj_checksum64(ptr, nbytes, 0x766A736F6E)  # "vjson"


cdef bytes pack_upper(Graph *g):
    """[u32 node][u32 level][level * (M+1) u32] for every node above level 0."""
    cdef size_t node, total = 0, pos = 0, words
    for node in range(g.count):
        if g.levels[node] > 0:
            total += 2 + <size_t> g.levels[node] * (g.M + 1)
    out = bytearray(total * 4)
    if total == 0:
        return bytes(out)
    cdef uint32_t[::1] view = memoryview(out).cast("I")
    for node in range(g.count):
        if g.levels[node] > 0:
            words = <size_t> g.levels[node] * (g.M + 1)
            view[pos] = <uint32_t> node
            view[pos + 1] = g.levels[node]
            memcpy(&view[pos + 2], g.upper[node], words * 4)
            pos += 2 + words
    return bytes(out)


# ---------------------------------------------------------------- packed level 0
# A graph whose vectors live elsewhere saves level 0 packed: a deleted bit and
# a link count per node, then only the links in use, each in the fewest bytes
# that hold any node id (2 below 65,536 nodes, 3 below 16.7 million), in list
# order. That is about a third of the fixed-width records, which loading
# unpacks into fresh memory, checking every count and id on the way.

cdef inline size_t id_width(size_t count) noexcept nogil:
    return 2 if count <= 0x10000 else (3 if count <= 0x1000000 else 4)

cdef inline size_t count_width(size_t M0) noexcept nogil:
    return 1 if M0 <= 0xFF else 2

cdef inline size_t node_lists(size_t E) noexcept nogil:
    """Lists per node in a packed level 0: the links, and the filter links when there are any."""
    return 2 if E > 0 else 1

cdef bytes pack_level0(Graph *g):
    cdef size_t count = g.count, width = id_width(g.count), cw = count_width(g.M0)
    cdef size_t lists = node_lists(g.E), node, j, n, li, links = 0
    cdef size_t head = (count + 7) // 8 + count * cw * lists
    cdef uint32_t *lst
    for node in range(count):
        links += node_links(g, node, 0)[0] + (node_near(g, node)[0] if g.E else 0)
    out = bytearray(head + links * width)
    if not out:
        return b""
    cdef uint8_t[::1] view = out
    cdef uint8_t *p = &view[0]
    cdef uint8_t *bits = p
    cdef uint8_t *counts = p + (count + 7) // 8
    cdef uint8_t *dst = p + head
    cdef uint32_t v
    with nogil:
        for node in range(count):
            if node_deleted(g, node):
                bits[node >> 3] |= <uint8_t> (1 << (node & 7))
            for li in range(lists):
                lst = node_links(g, node, 0) if li == 0 else node_near(g, node)
                n = lst[0]
                counts[(node * lists + li) * cw] = <uint8_t> n
                if cw == 2:
                    counts[(node * lists + li) * cw + 1] = <uint8_t> (n >> 8)
                for j in range(1, n + 1):
                    v = lst[j]
                    dst[0] = <uint8_t> v
                    dst[1] = <uint8_t> (v >> 8)
                    if width > 2:
                        dst[2] = <uint8_t> (v >> 16)
                    if width > 3:
                        dst[3] = <uint8_t> (v >> 24)
                    dst += width
    return bytes(out)

cdef struct UnpackJob:
    Graph *g
    const uint8_t *src
    size_t count
    const uint64_t *starts     # chunk i unpacks nodes [starts[i], starts[i + 1])
    const uint64_t *offsets    # ... whose links begin at src + offsets[i]
    int64_t *bad               # per chunk: the first broken node, or -1
    uint64_t *deleted          # per chunk: deleted nodes seen


cdef void unpack_task(void *ctx, size_t item, int worker) noexcept nogil:
    """Fill the records of one chunk of nodes from a packed section (zeroed block).

    The caller has checked that the counts add up to the section's length, so
    a chunk never reads past its links; here every count and id is checked."""
    cdef UnpackJob *job = <UnpackJob *> ctx
    cdef Graph *g = job.g
    cdef size_t count = job.count, width = id_width(count), cw = count_width(g.M0), node, j, n, li
    cdef size_t lists = node_lists(g.E), c
    cdef const uint8_t *bits = job.src
    cdef const uint8_t *counts = job.src + (count + 7) // 8
    cdef const uint8_t *pos = job.src + job.offsets[item]
    cdef uint32_t *lst
    cdef uint32_t v
    job.bad[item] = -1
    job.deleted[item] = 0
    for node in range(job.starts[item], job.starts[item + 1]):
        (<uint64_t *> node_record(g, node))[0] = node
        if (bits[node >> 3] >> (node & 7)) & 1:
            node_flags(g, node)[0] = FLAG_DELETED
            job.deleted[item] += 1
        for li in range(lists):
            c = (node * lists + li) * cw
            n = counts[c] if cw == 1 else counts[c] | (<size_t> counts[c + 1] << 8)
            if n > (g.M0 if li == 0 else g.E):
                job.bad[item] = <int64_t> node
                return
            lst = node_links(g, node, 0) if li == 0 else node_near(g, node)
            lst[0] = <uint32_t> n
            for j in range(1, n + 1):
                v = pos[0] | (<uint32_t> pos[1] << 8)
                if width > 2:
                    v |= <uint32_t> pos[2] << 16
                if width > 3:
                    v |= <uint32_t> pos[3] << 24
                if v >= count:
                    job.bad[item] = <int64_t> node
                    return
                lst[j] = v
                pos += width


cdef void write_index_file(HNSWIndex index, str path, bint durable, bint pack=False) except *:
    """Level 0 is written as records, which loading maps in place (so opening costs
    the same for any size; links are bounds-checked where they are followed, and
    checksummed by verify), or with `pack` (external vectors only) packed, about a
    third of the bytes, which loading unpacks and checks whole."""
    cdef Graph *g = index.g
    cdef bint packed = g.external_vectors and pack
    cdef size_t codes_bytes = g.count * g.code_size if g.kind != KIND_FLOAT32 else 0
    level0 = pack_level0(g) if packed else raw_view(g.level0, g.count * g.record_size)
    cdef size_t level0_bytes = len(level0)
    upper = pack_upper(g)
    free_list = bytes(raw_view(g.free_nodes, g.n_free * 4))
    params = (bytes(raw_view(g.quant_params, kind_param_count(g.kind, g.dim) * sizeof(float)))
              if index._trained else b"")
    fields = {
        "magic": _MAGIC, "version": FORMAT_VERSION if g.E else _NEAR_LINKS_SINCE - 1,
        "header_size": _HEADER_SIZE, "near_links": g.E,
        "dim": g.dim, "metric": g.metric, "M": g.M, "M0": g.M0,
        "ef_construction": g.ef_construction, "record_size": g.record_size,
        "vec_offset": g.vec_offset, "max_level": g.max_level, "entry_point": g.entry_point,
        "count": g.count, "n_deleted": g.n_deleted, "label_count": g.label_count, "rng": g.rng,
        "labels_are_nodes": int(g.labels_are_nodes), "external_vectors": int(g.external_vectors),
        "kind": g.kind, "params_bytes": len(params), "level0_packed": int(packed),
    }
    # identity labels need no table: write an empty one of the minimum size
    labels = (bytes(raw_view(g.labels, g.label_slots * sizeof(LabelSlot))) if not g.labels_are_nodes
              else (b"\xff" * 8 + b"\0" * 8) * LABELMAP_MIN_SLOTS)
    fields["level0_offset"] = _SECTION_ALIGN
    fields["level0_bytes"] = level0_bytes
    fields["labels_offset"] = _align(_SECTION_ALIGN + level0_bytes)
    fields["labels_bytes"] = len(labels)
    fields["upper_offset"] = fields["labels_offset"] + fields["labels_bytes"]
    fields["upper_bytes"] = len(upper)
    fields["free_offset"] = fields["upper_offset"] + len(upper)
    fields["free_bytes"] = len(free_list)
    fields["codes_offset"] = _align(fields["free_offset"] + len(free_list))
    fields["codes_bytes"] = codes_bytes
    cdef uint64_t codes_hash
    with nogil:
        codes_hash = section_hash(g.codes if codes_bytes else NULL, codes_bytes)
    fields["codes_hash"] = codes_hash
    fields["params_hash"] = _checksum_bytes(params)
    if packed:
        fields["level0_hash"] = _checksum_bytes(level0)
    else:
        with nogil:
            h0 = section_hash(g.level0, level0_bytes)
        fields["level0_hash"] = h0
    fields["labels_hash"] = _checksum_bytes(labels)
    fields["upper_hash"] = _checksum_bytes(upper)
    fields["free_hash"] = _checksum_bytes(free_list)
    head = _HEADER.pack(*(fields[name] for name, _ in _HEADER_FIELDS))
    head = head.ljust(_HEADER_HASHED, b"\0")
    head += _struct.pack("<Q", _checksum_bytes(head))

    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(head)
            f.seek(fields["level0_offset"])
            f.write(level0)
            f.seek(fields["labels_offset"])
            f.write(labels)
            f.write(upper)
            f.write(free_list)
            f.seek(fields["codes_offset"])
            if codes_bytes:
                f.write(raw_view(g.codes, codes_bytes))
            f.write(params)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _align(n):
    return (n + _SECTION_ALIGN - 1) // _SECTION_ALIGN * _SECTION_ALIGN


def _checksum_bytes(data):
    cdef const uint8_t[::1] view = data
    if view.shape[0] == 0:
        return section_hash(NULL, 0)
    return section_hash(&view[0], view.shape[0])


cdef object read_header(str path, object f):
    head = f.read(_HEADER_SIZE)
    if len(head) < 8 or head[:8] != _MAGIC:
        raise CorruptionError(f"{path}: not a vjson index file (bad magic)")
    if len(head) < _HEADER_SIZE:
        raise CorruptionError(f"{path}: truncated header")
    fields = dict(zip((name for name, _ in _HEADER_FIELDS), _HEADER.unpack_from(head)))
    if fields["version"] > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path}: written by a newer vjson (index format {fields['version']}, "
            f"this version reads up to {FORMAT_VERSION})")
    if _struct.unpack_from("<Q", head, _HEADER_HASHED)[0] != _checksum_bytes(head[:_HEADER_HASHED]):
        raise CorruptionError(f"{path}: header checksum mismatch")
    return fields


cdef void check_header(str path, dict h, size_t file_size) except *:
    def bad(what):
        raise CorruptionError(f"{path}: {what}")
    if not 1 <= h["dim"] <= 65536 or h["metric"] not in _METRIC_NAMES or not 2 <= h["M"] <= 2048:
        bad("invalid parameters in header")
    if h["M0"] != 2 * h["M"] or h["ef_construction"] < 1:
        bad("invalid link limits in header")
    if h["near_links"] not in (0, h["M0"]) or h["near_links"] and h["version"] < _NEAR_LINKS_SINCE:
        bad("invalid filter links in header")
    if h["external_vectors"] not in (0, 1) or h["labels_are_nodes"] not in (0, 1):
        bad("invalid flags in header")
    if h["external_vectors"] and not h["labels_are_nodes"]:
        bad("external vectors need every label to be its node")
    if h["kind"] not in _KIND_NAMES:
        bad("unknown storage kind")
    in_records = not h["external_vectors"] and h["kind"] == KIND_FLOAT32
    vec_offset = vector_offset(h["M0"], h["near_links"], in_records)
    record_size = record_bytes(h["M0"], h["near_links"], h["dim"], in_records)
    if h["vec_offset"] != vec_offset or h["record_size"] != record_size:
        bad("record layout does not match the parameters")
    count = h["count"]
    if count >= 0xFFFFFFFF or h["n_deleted"] > count or h["label_count"] != count - h["n_deleted"]:
        bad("inconsistent node counts")
    if count == 0 and h["entry_point"] != -1 or count > 0 and not 0 <= h["entry_point"] < count:
        bad("invalid entry point")
    if not -1 <= h["max_level"] <= MAX_LEVEL:
        bad("invalid max level")
    slots = h["labels_bytes"] // sizeof(LabelSlot)
    if (h["labels_bytes"] % sizeof(LabelSlot) or slots < LABELMAP_MIN_SLOTS or slots & (slots - 1)
            or h["label_count"] * 2 > slots and not h["labels_are_nodes"]):
        bad("invalid label table size")
    code_size = (kind_code_size(h["kind"], h["dim"]) if h["version"] >= _INT8_BOUNDS_SINCE
                 else kind_code_size_v4(h["kind"], h["dim"]))
    code_bytes = h["count"] * code_size if h["kind"] != KIND_FLOAT32 else 0
    if h["codes_bytes"] != code_bytes or h["params_bytes"] not in (0, 4 * kind_param_count(h["kind"], h["dim"])):
        bad("the code section does not match the counts")
    if kind_param_count(h["kind"], h["dim"]) and h["params_bytes"] == 0 and h["count"] > 0:
        bad("codes without their quantization parameters")
    if h["codes_offset"] % _SECTION_ALIGN or (h["codes_bytes"] + h["params_bytes"] and
                                              h["codes_offset"] + h["codes_bytes"] + h["params_bytes"] > file_size):
        bad("truncated: the codes section ends past the end of the file")
    if h["version"] >= _PACKED_FLAG_SINCE and h["level0_packed"] not in (0, 1):
        bad("invalid flags in header")
    if level0_packed(h) and not h["external_vectors"]:
        bad("a packed level 0 needs external vectors")
    if level0_packed(h):
        if count and h["level0_bytes"] < (count + 7) // 8 + count * count_width(h["M0"]) * node_lists(h["near_links"]):
            bad("section sizes do not match the counts")
    elif h["level0_bytes"] != count * h["record_size"]:
        bad("section sizes do not match the counts")
    if h["free_bytes"] % 4 or h["upper_bytes"] % 4:
        bad("section sizes do not match the counts")
    if h["free_bytes"] // 4 > h["n_deleted"]:
        bad("more free slots than deleted nodes")
    for name in ("level0", "labels"):
        if h[name + "_offset"] % _SECTION_ALIGN:
            bad(f"{name} section is misaligned")
    for name in ("level0", "labels", "upper", "free"):
        if h[name + "_offset"] < _HEADER_SIZE or h[name + "_offset"] + h[name + "_bytes"] > file_size:
            bad(f"truncated: the {name} section ends past the end of the file")


def level0_packed(dict h):
    """Whether the file's level 0 is packed (pack_level0) rather than fixed-width records."""
    if h["version"] >= _PACKED_FLAG_SINCE:
        return h["level0_packed"] == 1
    return h["version"] >= _PACKED_SINCE and h["external_vectors"] == 1


cdef void *map_section(str path, int fd, size_t offset, size_t nbytes) except NULL:
    cdef void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, offset)
    if p == MAP_FAILED:
        raise OSError(f"{path}: cannot map {nbytes} bytes")
    return p


cdef enum:
    READ_SPLIT_BYTES = 16 << 20  # a section this big is read on all cores


cdef struct ReadJob:
    int fd
    char *dst
    size_t offset, nbytes, parts
    int failed


cdef void read_task(void *ctx, size_t item, int worker) noexcept nogil:
    """Read part `item` of a section (page-aligned parts, which together cover it) into its place."""
    cdef ReadJob *job = <ReadJob *> ctx
    cdef size_t step = ((job.nbytes // job.parts) | 4095) + 1  # (> nbytes / parts)
    cdef size_t start = min(item * step, job.nbytes), end = min(start + step, job.nbytes)
    cdef Py_ssize_t got
    while start < end:
        got = pread(job.fd, job.dst + start, end - start, <off_t> (job.offset + start))
        if got <= 0:
            job.failed = 1
            return
        start += got


cdef void *map_with_room(str path, int fd, size_t offset, size_t nbytes, size_t room,
                         bint read=False) except NULL:
    """A file section mapped (MAP_PRIVATE) over the start of `room` anonymous bytes, so that
    a patch's new nodes fit after it without copying what the file holds; or, with `read`,
    read into them: a patch writing into most pages of the section would otherwise take a
    copy-on-write fault per page (measured at 1M nodes: 36,000 faults, 250 ms, against one
    sequential read)."""
    cdef void *block = map_anonymous(room)
    cdef ReadJob job
    cdef int threads = default_threads() if nbytes >= READ_SPLIT_BYTES else 1
    if block == NULL:
        raise MemoryError()
    if read:
        madvise(block, room, MADV_HUGEPAGE)  # (where the kernel has them: 512x fewer faults)
        job.fd, job.dst, job.offset, job.nbytes, job.failed = fd, <char *> block, offset, nbytes, 0
        job.parts = 4 * <size_t> threads
        with nogil:  # (in parts on all cores: clearing the pages and copying them is most of it)
            vj_parallel_for(job.parts, threads, read_task, &job)
        if job.failed:
            munmap(block, room)
            raise OSError(f"{path}: cannot read {nbytes} bytes")
    elif mmap(block, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, offset) == MAP_FAILED:
        munmap(block, room)
        raise OSError(f"{path}: cannot map {nbytes} bytes")
    return block


cdef size_t patch_growth(str path, object patch, size_t base) except? 0:
    """How many nodes a patch adds to a graph of `base` nodes (its header, checked again when applied)."""
    parsed = patch_header(patch) if isinstance(patch, bytes) else None
    if parsed is None:
        return 0
    fields = parsed[0]
    return fields[1] - base if fields[0] == base and base <= fields[1] < 0xFFFFFFFF else 0


cdef enum:
    WIDE_PATCH_SHARE = 64  # a patch of 1 node in this many of its base is wide


cdef inline bint wide_patch(size_t entries, size_t base) noexcept nogil:
    """Whether a patch of `entries` nodes rewrites nodes on enough pages of level 0 that
    reading it whole (on all cores) beats a copy-on-write fault per page (about 28 records
    a page: 1 node in 64 touches a third of the pages; measured at 1M nodes, reading wins
    from about 1 in 80)."""
    return base > 0 and entries * WIDE_PATCH_SHARE >= base


cdef bint patch_is_wide(object patch, size_t base) except -1:
    parsed = patch_header(patch) if isinstance(patch, bytes) else None
    return parsed is not None and wide_patch(parsed[0][7], base)


cdef object read_index_file(str path, bint verify, object ef_search, object patch=None):
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise CorruptionError(f"{path}: is a folder, not an index file") from None
    with f:
        h = read_header(path, f)
        check_header(path, h, os.fstat(f.fileno()).st_size)
        f.seek(h["upper_offset"])
        upper = f.read(h["upper_bytes"])
        f.seek(h["free_offset"])
        free_list = f.read(h["free_bytes"])
        if _checksum_bytes(upper) != h["upper_hash"] or _checksum_bytes(free_list) != h["free_hash"]:
            raise CorruptionError(f"{path}: checksum mismatch in the upper-level or free-slot section")
        index = HNSWIndex(h["dim"], _METRIC_NAMES[h["metric"]], h["M"], h["ef_construction"],
                          capacity=0, ef_search=ef_search, external_vectors=h["external_vectors"] == 1,
                          quantization=_KIND_NAMES[h["kind"]], filter_links=h["near_links"] > 0)
        reserve = patch_growth(path, patch, h["count"])
        wide = patch_is_wide(patch, h["count"])
        attach_sections(index, path, f.fileno(), h, upper, free_list, verify, reserve, wide)
        attach_codes(index, path, f.fileno(), h, verify, reserve)
    if patch is not None:
        apply_patch(index, path, patch, prefault=not wide and not level0_packed(h))
    return index


cdef void attach_sections(HNSWIndex index, str path, int fd, dict h, bytes upper,
                          bytes free_list, bint verify, size_t reserve=0, bint read_level0=False) except *:
    """`reserve`: room for that many more nodes (a patch's), so that it need not move level 0;
    `read_level0`: read the records rather than map them (a patch will write most pages)."""
    cdef Graph *g = index.g
    cdef size_t count = h["count"], i, cap = h["count"] + reserve
    g.rng = h["rng"]
    g.labels_are_nodes = h["labels_are_nodes"] == 1
    g.levels = <uint8_t *> calloc(cap + 1, 1)
    g.upper = <uint32_t **> calloc(cap + 1, sizeof(uint32_t *))
    g.node_locks = <unsigned char *> calloc(cap + 1, 1)
    if g.levels == NULL or g.upper == NULL or g.node_locks == NULL:
        raise MemoryError()
    if g.E > 0:  # (the filter links' last distances: measured again when first needed)
        g.near_worst = <float *> calloc(cap + 1, sizeof(float))
        if g.near_worst == NULL:
            raise MemoryError()
    g.capacity = count
    if count > 0 and level0_packed(h):
        unpack_into(g, path, fd, h, reserve)
        g.capacity = cap
    elif count > 0 and (reserve > 0 or read_level0):
        g.level0 = <char *> map_with_room(path, fd, h["level0_offset"], h["level0_bytes"], cap * g.record_size,
                                          read_level0)
        g.level0_bytes = cap * g.record_size
        g.level0_from_file = True
        g.count = count  # from here on free_graph releases what is attached
        g.capacity = cap
        point_at_records(g)
    elif count > 0:
        g.level0 = <char *> map_section(path, fd, h["level0_offset"], h["level0_bytes"])
        g.level0_bytes = h["level0_bytes"]
        g.level0_from_file = True
        g.count = count  # from here on free_graph releases what is attached
        point_at_records(g)
    munmap(g.labels, g.labels_bytes)
    g.labels = <LabelSlot *> map_section(path, fd, h["labels_offset"], h["labels_bytes"])
    g.labels_bytes = h["labels_bytes"]
    g.label_slots = h["labels_bytes"] // sizeof(LabelSlot)
    g.labels_from_file = True
    g.label_count = h["label_count"]
    g.n_deleted = h["n_deleted"]
    g.entry_point = h["entry_point"]
    g.max_level = h["max_level"]
    if section_hash(g.labels, g.labels_bytes) != h["labels_hash"]:
        raise CorruptionError(f"{path}: checksum mismatch in the label table")
    if verify and g.level0_from_file and count and section_hash(g.level0, h["level0_bytes"]) != h["level0_hash"]:
        raise CorruptionError(f"{path}: checksum mismatch in the level-0 records")
    parse_upper(g, path, upper)
    cdef const uint32_t[::1] free_view
    if free_list:
        free_view = memoryview(free_list).cast("I")
        for i in range(<size_t> free_view.shape[0]):
            if free_view[i] >= count or push_free(g, free_view[i]) != 0:
                raise CorruptionError(f"{path}: invalid free-slot list")
    if count > 0 and g.levels[g.entry_point] != g.max_level:
        raise CorruptionError(f"{path}: entry point is not on the top level")


cdef void attach_codes(HNSWIndex index, str path, int fd, dict h, bint verify, size_t reserve=0) except *:
    """Map a compact kind's codes (checksummed with `verify`) and load its parameters;
    `reserve`: room for that many more codes (a patch's)."""
    cdef Graph *g = index.g
    cdef size_t nbytes = h["codes_bytes"], i
    if h["kind"] == KIND_FLOAT32:
        return
    params = os.pread(fd, h["params_bytes"], h["codes_offset"] + nbytes) if h["params_bytes"] else b""
    if len(params) != h["params_bytes"] or _checksum_bytes(params) != h["params_hash"]:
        raise CorruptionError(f"{path}: checksum mismatch in the quantization parameters")
    if params:
        pv = np.frombuffer(params, dtype=np.float32)
        if not np.all(np.isfinite(pv)):
            raise CorruptionError(f"{path}: invalid quantization parameters")
        for i in range(<size_t> pv.shape[0]):
            g.quant_params[i] = pv[i]
        index._trained = True
        index._trained_rows = min(<size_t> h["count"], <size_t> _TRAIN_ROWS)  # (not saved: about right)
    if nbytes == 0:
        return
    if reserve and h["version"] >= _INT8_BOUNDS_SINCE:
        g.codes = <char *> map_with_room(path, fd, h["codes_offset"], nbytes, nbytes + reserve * g.code_size)
        g.codes_bytes = nbytes + reserve * g.code_size
    else:
        g.codes = <char *> map_section(path, fd, h["codes_offset"], nbytes)
        g.codes_bytes = nbytes
    g.code_stride = g.code_size
    if verify and section_hash(g.codes, nbytes) != h["codes_hash"]:
        raise CorruptionError(f"{path}: checksum mismatch in the codes")
    if h["kind"] == KIND_INT8 and h["version"] < _INT8_BOUNDS_SINCE:
        widen_int8_heads(g, reserve)


cdef void widen_int8_heads(Graph *g, size_t reserve) except *:
    """Format 4 int8 codes ([f32 norm][bytes]) into today's layout, in memory.
    Their error bounds are unknown (infinite): rescoring reads every candidate
    of theirs, as it did, until compact() encodes them again."""
    cdef size_t old_size = kind_code_size_v4(KIND_INT8, g.dim), node
    cdef size_t nbytes = (g.count + reserve) * g.code_size  # (room for a patch's new codes)
    cdef char *block = <char *> map_anonymous(nbytes if nbytes > 0 else 1)
    cdef float *head
    if block == NULL:
        raise MemoryError("widening the int8 codes of a format 4 index")
    for node in range(g.count):
        head = <float *> (block + node * g.code_size)
        memset(head, 0, g.code_size)
        head[0] = (<const float *> (g.codes + node * old_size))[0]
        head[1] = INFINITY
        head[2] = INFINITY
        memcpy(block + node * g.code_size + INT8_HEAD, g.codes + node * old_size + INT8_HEAD_V4, g.dim)
    munmap(g.codes, g.codes_bytes)
    g.codes = block
    g.codes_bytes = nbytes if nbytes > 0 else 1
    g.code_stride = g.code_size


cdef void unpack_into(Graph *g, str path, int fd, dict h, size_t reserve=0) except *:
    """Read a packed level 0 (checksummed, every link checked) into fresh records, on all cores."""
    cdef size_t count = h["count"], nbytes = h["level0_bytes"], cw = count_width(g.M0), lists = node_lists(g.E)
    cdef size_t head = (count + 7) // 8 + count * cw * lists
    packed = os.pread(fd, nbytes, h["level0_offset"])
    if len(packed) != nbytes or _checksum_bytes(packed) != h["level0_hash"]:
        raise CorruptionError(f"{path}: checksum mismatch in the level-0 links")
    counts = np.frombuffer(packed, dtype=np.uint8 if cw == 1 else "<u2", count=count * lists,
                           offset=(count + 7) // 8).reshape(count, lists)
    ends = np.cumsum(counts.sum(axis=1, dtype=np.uint64), dtype=np.uint64)
    if head + int(ends[-1]) * id_width(count) != nbytes:
        raise CorruptionError(f"{path}: the level-0 link counts do not match the section's length")
    # threads only pay off for big graphs (and each open would start them)
    cdef int threads = default_threads() if count >= 65536 else 1
    cdef size_t chunks = min(count, 8 * <size_t> threads)
    starts = np.linspace(0, count, chunks + 1).astype(np.uint64)
    offsets = head + np.concatenate(([0], ends))[starts[:-1].astype(np.intp)] * np.uint64(id_width(count))
    bad = np.empty(chunks, dtype=np.int64)
    deleted = np.empty(chunks, dtype=np.uint64)
    g.level0 = <char *> map_anonymous((count + reserve) * g.record_size)
    if g.level0 == NULL:
        raise MemoryError()
    g.level0_bytes = (count + reserve) * g.record_size
    g.level0_from_file = False
    g.count = count  # from here on free_graph releases what is attached
    cdef const uint8_t[::1] src = packed
    cdef const uint64_t[::1] sv = starts
    cdef const uint64_t[::1] ov = np.ascontiguousarray(offsets, dtype=np.uint64)
    cdef int64_t[::1] bv = bad
    cdef uint64_t[::1] dv = deleted
    cdef UnpackJob job
    job.g = g
    job.src = &src[0]
    job.count = count
    job.starts = &sv[0]
    job.offsets = &ov[0]
    job.bad = &bv[0]
    job.deleted = &dv[0]
    with nogil:
        vj_parallel_for(chunks, threads, unpack_task, &job)
    broken = bad[bad >= 0]
    if broken.size:
        raise CorruptionError(f"{path}: invalid level-0 links (node {int(broken[0])})")
    if int(deleted.sum()) != h["n_deleted"]:
        raise CorruptionError(f"{path}: {int(deleted.sum())} deleted nodes, the header says {h['n_deleted']}")


cdef void parse_upper(Graph *g, str path, bytes upper) except *:
    """Rebuild the upper-level lists, validating every count and link."""
    if not upper:
        return
    cdef const uint32_t[::1] w = memoryview(upper).cast("I")
    cdef size_t pos = 0, total = w.shape[0], node, level, words, lv, j, n
    cdef uint32_t *lists
    while pos < total:
        if pos + 2 > total:
            raise CorruptionError(f"{path}: truncated upper-level entry")
        node = w[pos]
        level = w[pos + 1]
        words = level * (g.M + 1)
        if node >= g.count or level < 1 or level > MAX_LEVEL or g.upper[node] != NULL or pos + 2 + words > total:
            raise CorruptionError(f"{path}: invalid upper-level entry for node {node}")
        lists = <uint32_t *> malloc(words * 4)
        if lists == NULL:
            raise MemoryError()
        memcpy(lists, &w[pos + 2], words * 4)
        g.upper[node] = lists
        g.levels[node] = <uint8_t> level
        pos += 2 + words
    for node in range(g.count):
        for lv in range(1, g.levels[node] + 1):
            lists = node_links(g, node, lv)
            n = lists[0]
            if n > g.M:
                raise CorruptionError(f"{path}: node {node} has {n} links on level {lv}")
            for j in range(1, n + 1):
                if lists[j] >= g.count or g.levels[lists[j]] < lv:
                    raise CorruptionError(f"{path}: node {node} links to invalid node {lists[j]}")


# ---------------------------------------------------------------- graph patches
# What changed since a graph file was saved, so that a checkpoint after a few
# inserts need not rewrite the whole file: the nodes added since and the nodes
# whose lists or flags changed (marked by mark_changed while tracking), each
# with its level, flags, level-0 list and upper lists, and, for a compact kind,
# its code where that was written since (every new node's). Loading the base
# file, then the patch, gives the graph as it was when the patch was made. Only
# for graphs whose labels are their nodes, with external vectors and no free
# slots (the database's graphs); others are saved whole.
#
#   [magic 8][header: _PATCH fields][u64 header hash] then per node:
#   [u32 node][u32 level][u32 flags][u32 n][n u32 links]([u32 m][m u32 filter links])[level * (M + 1) u32]
#
# (the filter links in every entry of a graph that has them, PATCH_HAS_NEAR in its flags)
# Version 2 (compact kinds; float32 graphs still write version 1, which older
# builds read) adds to the header the kind, the code size, whether the kind was
# trained and the bytes of its parameters; the body starts with those
# parameters, and an entry whose flags carry PATCH_HAS_CODE ends with its code
# (padded to 4 bytes). A patch's parameters must equal its base's when the base
# was trained: codes are only comparable under one set.

_PATCH_MAGIC = b"VJPATCH\x01"
_PATCH_MAGIC_2 = b"VJPATCH\x02"
_PATCH = _struct.Struct("<QQQQqiQQQQ")  # base count, count, n_deleted, label_count, entry point,
                                        # max level, rng, entries, body bytes, body hash
_PATCH_2 = _struct.Struct("<QQQQqiQQQQIIII")  # ... then kind, code size, trained, parameter bytes

cdef enum:
    PATCH_HAS_CODE = 0x80000000  # in an entry's flags: its code follows its lists
    PATCH_HAS_NEAR = 0x40000000  # ... its filter links follow its level-0 list
    PATCH_LOOKAHEAD = 8          # entries whose records apply_patch fetches ahead
    PREFAULT_MIN_NODES = 1024    # fewer patched nodes take their faults in apply_patch's loop


cdef bint patchable(Graph *g) noexcept nogil:
    return g.changed != NULL and g.external_vectors and g.labels_are_nodes and g.n_free == 0


cdef size_t patch_entries(Graph *g) noexcept nogil:
    cdef size_t node, n = g.count - g.changed_base
    for node in range(g.changed_base):
        n += g.changed[node] != 0
    return n


cdef inline bint entry_has_code(Graph *g, size_t node) noexcept nogil:
    return g.kind != KIND_FLOAT32 and (node >= g.changed_base or g.changed[node] & CHANGED_CODE)


cdef bytes pack_patch(HNSWIndex index):
    cdef Graph *g = index.g
    cdef size_t node, words = 0, entries = 0, pos = 0, lw
    cdef size_t code_words = (g.code_size + 3) // 4 if g.kind != KIND_FLOAT32 else 0
    cdef size_t n_params = kind_param_count(g.kind, g.dim) if index._trained else 0
    for node in range(g.count):
        if node >= g.changed_base or g.changed[node]:
            entries += 1
            words += 4 + node_links(g, node, 0)[0] + <size_t> g.levels[node] * (g.M + 1)
            if g.E:
                words += 1 + node_near(g, node)[0]
            if entry_has_code(g, node):
                words += code_words
    body = bytearray((n_params + words) * 4)
    cdef uint32_t[::1] w
    cdef uint32_t *lst
    if n_params + words:
        w = memoryview(body).cast("I")
        if n_params:
            memcpy(&w[0], g.quant_params, n_params * 4)
            pos = n_params
        for node in range(g.count):
            if node >= g.changed_base or g.changed[node]:
                lst = node_links(g, node, 0)
                w[pos] = <uint32_t> node
                w[pos + 1] = g.levels[node]
                w[pos + 2] = (node_flags(g, node)[0] | (PATCH_HAS_CODE if entry_has_code(g, node) else 0)
                              | (PATCH_HAS_NEAR if g.E else 0))
                w[pos + 3] = lst[0]
                memcpy(&w[pos + 4], lst + 1, lst[0] * 4)
                pos += 4 + lst[0]
                if g.E:
                    lst = node_near(g, node)
                    memcpy(&w[pos], lst, (lst[0] + 1) * 4)
                    pos += 1 + lst[0]
                lw = <size_t> g.levels[node] * (g.M + 1)
                if lw:
                    memcpy(&w[pos], g.upper[node], lw * 4)
                    pos += lw
                if entry_has_code(g, node):
                    memcpy(&w[pos], node_code(g, node), g.code_size)
                    pos += code_words
    body = bytes(body)
    fields = (g.changed_base, g.count, g.n_deleted, g.label_count, g.entry_point, g.max_level,
              g.rng, entries, len(body), _checksum_bytes(body))
    if g.kind == KIND_FLOAT32:
        magic, head = _PATCH_MAGIC, _PATCH.pack(*fields)
    else:
        magic, head = _PATCH_MAGIC_2, _PATCH_2.pack(*fields, g.kind, g.code_size, index._trained, n_params * 4)
    return magic + head + _struct.pack("<Q", _checksum_bytes(head)) + body


cdef object patch_header(bytes data):
    """(fields of _PATCH_2, bytes of magic and header) of a patch, or None when it is not one."""
    magic = data[:len(_PATCH_MAGIC)]
    if magic == _PATCH_MAGIC and len(data) >= len(magic) + _PATCH.size + 8:
        return _PATCH.unpack_from(data, len(magic)) + (KIND_FLOAT32, 0, 0, 0), len(magic) + _PATCH.size
    if magic == _PATCH_MAGIC_2 and len(data) >= len(magic) + _PATCH_2.size + 8:
        return _PATCH_2.unpack_from(data, len(magic)), len(magic) + _PATCH_2.size
    return None


cdef inline size_t entry_words(const uint32_t *entry, size_t M, size_t code_words, size_t room) noexcept nogil:
    """The words of the patch entry at `entry`, of `room` words to the body's end (its
    counts as written: apply_patch checks them)."""
    cdef size_t words = (4 + <size_t> entry[3] + <size_t> entry[1] * (M + 1)
                         + (code_words if entry[2] & PATCH_HAS_CODE else 0))
    if entry[2] & PATCH_HAS_NEAR:
        words += 1 + (<size_t> entry[4 + entry[3]] if 4 + <size_t> entry[3] < room else 0)
    return words


cdef struct TouchJob:
    Graph *g
    const uint32_t *nodes
    size_t count, parts


cdef void touch_task(void *ctx, size_t item, int worker) noexcept nogil:
    """Take the copy-on-write faults of the records of part `item` of the nodes."""
    cdef TouchJob *job = <TouchJob *> ctx
    cdef size_t k, end = job.count * (item + 1) // job.parts
    for k in range(job.count * item // job.parts, end):
        vj_touch_for_write(node_record(job.g, job.nodes[k]), job.g.record_size)


cdef void prefault_records(Graph *g, const uint32_t[::1] w, size_t pos, size_t entries,
                           size_t base, size_t code_words) except *:
    """Take, on all cores, the copy-on-write faults of the mapped records that the patch
    entries from word `pos` on will write: one at a time in apply_patch's loop they were
    most of opening a 1M graph after 0.08% inserts (13,000 nodes, 11,000 faults, 40 ms)."""
    cdef size_t total = w.shape[0], k, n = 0
    entries = min(entries, (total - pos) // 4)  # (an entry is 4 words or more: a header claiming more is bad)
    nodes = np.empty(entries, dtype=np.uint32)
    cdef uint32_t[::1] nv = nodes
    for k in range(entries):  # the base's nodes come first (stops at a bad entry: apply_patch reports it)
        if pos + 4 > total or w[pos] >= base:
            break
        nv[n] = w[pos]
        n += 1
        pos += entry_words(&w[pos], g.M, code_words, total - pos)
    if n < PREFAULT_MIN_NODES:  # (starting threads would cost more)
        return
    cdef int threads = default_threads()
    cdef TouchJob job
    job.g, job.nodes, job.count, job.parts = g, &nv[0], n, 8 * <size_t> threads
    with nogil:
        vj_parallel_for(job.parts, threads, touch_task, &job)


cdef void apply_patch(HNSWIndex index, str path, bytes data, bint prefault=False) except *:
    """Bring a graph just loaded from its base file to the state a patch records;
    `prefault`: its level 0 is mapped from the file (see prefault_records)."""
    cdef Graph *g = index.g
    def bad(what):
        raise CorruptionError(f"{path}: {what}")
    parsed = patch_header(data)
    if parsed is None:
        bad("not a vjson graph patch")
    fields, n_fixed = parsed
    if _struct.unpack_from("<Q", data, n_fixed)[0] != _checksum_bytes(data[len(_PATCH_MAGIC):n_fixed]):
        bad("header checksum mismatch")
    base, count, n_deleted, label_count, entry, max_level, rng, entries, nbytes, body_hash = fields[:10]
    kind, code_size, trained, params_bytes = fields[10:]
    body = memoryview(data)[n_fixed + 8:]  # (a view: a patch can be many megabytes)
    if len(body) != nbytes or nbytes % 4 or _checksum_bytes(body) != body_hash:
        bad("checksum mismatch or truncated")
    if base != g.count or count < base or count >= 0xFFFFFFFF or not g.external_vectors or not g.labels_are_nodes:
        bad(f"patches a graph of {base} nodes, the file holds {g.count}")
    if kind != g.kind or (kind != KIND_FLOAT32 and code_size != g.code_size):
        bad("patches a graph of another storage kind")
    if n_deleted > count or label_count != count - n_deleted or not -1 <= max_level <= MAX_LEVEL:
        bad("inconsistent counts")
    if count > 0 and not 0 <= entry < count or count == 0 and entry != -1:
        bad("invalid entry point")
    cdef size_t n_params = kind_param_count(g.kind, g.dim)
    if trained > 1 or params_bytes != (n_params * 4 if trained else 0) or params_bytes > nbytes:
        bad("invalid quantization parameters")
    cdef bint new_params = False  # learnt again since the base: then every code must be here
    if trained and n_params:
        params = np.frombuffer(body, dtype=np.float32, count=n_params)
        if not np.all(np.isfinite(params)):
            bad("invalid quantization parameters")
        new_params = not index._trained or params.tobytes() != bytes(<char[:n_params * 4]> <char *> g.quant_params)
    elif index._trained and n_params and count > base:
        bad("its new codes were written without quantization parameters")
    if count > g.capacity and grow_nodes(g, count) != 0:
        raise MemoryError()
    if g.changed == NULL:
        g.changed = <uint8_t *> calloc(max(g.capacity, 1), 1)
        if g.changed == NULL:
            raise MemoryError()
    g.changed_base = base
    cdef const uint32_t[::1] w = memoryview(body).cast("I") if nbytes else None
    cdef size_t pos = params_bytes // 4, total = nbytes // 4, node, level, flags, n, lw, k, nw
    cdef size_t c_base = base, c_count = count, c_entries = entries  # (C loops below)
    cdef size_t code_words = (g.code_size + 3) // 4 if g.kind != KIND_FLOAT32 else 0, cw
    cdef int64_t deleted = g.n_deleted
    cdef size_t next_new = c_base, base_codes = 0, j, ahead = pos, a
    cdef bint upper_changed = False
    cdef uint32_t *lst
    if prefault and nbytes:
        prefault_records(g, w, pos, c_entries, c_base, code_words)
    for k in range(c_entries + PATCH_LOOKAHEAD):
        # Touch the record PATCH_LOOKAHEAD entries ahead: the entries are in node
        # order but far apart, and each first touch was a miss to memory.
        if ahead + 4 <= total:
            a = w[ahead]
            if a < g.capacity:
                __builtin_prefetch(node_record(g, a))
            ahead += entry_words(&w[ahead], g.M, code_words, total - ahead)
        if k < PATCH_LOOKAHEAD:
            continue
        if pos + 4 > total:
            bad("truncated entry")
        node, level, flags, n = w[pos], w[pos + 1], w[pos + 2], w[pos + 3]
        lw = level * (g.M + 1)
        cw = code_words if flags & PATCH_HAS_CODE else 0
        if (flags & PATCH_HAS_NEAR != 0) != (g.E > 0):
            bad(f"invalid entry for node {node}: its filter links do not match the graph's")
        nw = 1 + w[pos + 4 + n] if g.E and pos + 4 + n < total else (1 if g.E else 0)  # (m checked below)
        flags &= ~(<size_t> (PATCH_HAS_CODE | PATCH_HAS_NEAR))
        if (node >= c_count or level > MAX_LEVEL or flags & ~(<size_t> FLAG_DELETED) or n > g.M0
                or nw > g.E + 1 or pos + 4 + n + nw + lw + cw > total
                or (node >= c_base and cw == 0 and code_words)):
            bad(f"invalid entry for node {node}")
        if node >= c_base:
            if node != next_new:
                bad("new nodes out of order")
            next_new += 1
            if place_new_node(g, node, level) != 0:
                raise MemoryError()
            (<uint64_t *> node_record(g, node))[0] = node
            g.count = node + 1  # from here on free_graph releases it
        elif level != g.levels[node] or g.changed[node]:
            bad(f"invalid entry for node {node}")
        else:
            deleted -= node_deleted(g, node)
            base_codes += cw != 0
        deleted += flags & FLAG_DELETED
        g.changed[node] = CHANGED_LISTS | (CHANGED_CODE if cw else 0)
        node_flags(g, node)[0] = <uint32_t> flags
        for j in range(pos + 4, pos + 4 + n):  # (checked here, in the patch, not again in the records)
            if w[j] >= c_count:
                bad(f"node {node} links to invalid node {w[j]}")
        lst = node_links(g, node, 0)
        lst[0] = <uint32_t> n
        if n:
            memcpy(lst + 1, &w[pos + 4], n * 4)
        pos += 4 + n
        if nw:
            for j in range(pos + 1, pos + nw):
                if w[j] >= c_count:
                    bad(f"node {node} has a filter link to invalid node {w[j]}")
            memcpy(node_near(g, node), &w[pos], nw * 4)
            g.near_worst[node] = 0.0  # (measured again when first needed)
            pos += nw
        if lw:
            memcpy(g.upper[node], &w[pos], lw * 4)
            upper_changed = True
        if cw:
            memcpy(<char *> node_code(g, node), &w[pos + lw], g.code_size)
        pos += lw + cw
    if pos != total or next_new != c_count:
        bad("entries do not match the counts")
    if new_params and base_codes != c_base:
        bad("its quantization parameters are not its base's")
    for node in range(c_count if upper_changed else 0):  # every upper link of a patched node
        if not g.changed[node]:
            continue
        for level in range(1, g.levels[node] + 1):
            lst = node_links(g, node, level)
            if lst[0] > g.M:
                bad(f"node {node} has {lst[0]} links on level {level}")
            for k in range(1, lst[0] + 1):
                if lst[k] >= c_count or g.levels[lst[k]] < level:
                    bad(f"node {node} links to invalid node {lst[k]}")
    if deleted != <int64_t> n_deleted:
        bad("the deleted flags disagree with the header")
    g.n_deleted, g.label_count, g.entry_point, g.max_level, g.rng = n_deleted, label_count, entry, max_level, rng
    if count > 0 and g.levels[g.entry_point] != g.max_level:
        bad("entry point is not on the top level")
    if new_params:  # a base saved empty, or learnt again since (every code re-encoded)
        memcpy(g.quant_params, &w[0], n_params * 4)
        index._trained = True
        index._trained_rows = min(c_count, <size_t> _TRAIN_ROWS)
