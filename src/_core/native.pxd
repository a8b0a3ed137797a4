# Declarations of the small C headers the core is built on.
from libc.stdint cimport int32_t, uint16_t, uint64_t

cdef extern from "simd.h" nogil:
    ctypedef float (*vj_dist_fn)(const float *a, const float *b, size_t n)
    ctypedef float (*vj_code_fn)(const void *query, const void *code, size_t dim)
    ctypedef struct vj_kernels:
        int level
        vj_dist_fn l2sq
        vj_dist_fn ipdist
        vj_code_fn l2sq_f16
        vj_code_fn ipdist_f16
        vj_code_fn dot_u8
        vj_code_fn hamming
    vj_kernels vj_active
    int vj_simd_ready
    int VJ_SIMD_SCALAR, VJ_SIMD_AVX2, VJ_SIMD_AVX512, VJ_SIMD_NEON
    int vj_simd_supported(int level)
    int vj_cpu_best_level()
    const char *vj_simd_name(int level)
    int vj_simd_set(int level)
    void vj_simd_init()
    float vj_half_to_float(uint16_t h)
    int32_t vj_u8_query_limit(size_t dim)
    uint16_t vj_float_to_half(float f)
    float vj_l2sq_scalar(const float *a, const float *b, size_t n)
    float vj_ipdist_scalar(const float *a, const float *b, size_t n)

cdef extern from "rwlock.h" nogil:
    ctypedef struct vj_rwlock:
        pass
    int vj_rwlock_init(vj_rwlock *l)
    void vj_rwlock_destroy(vj_rwlock *l)
    void vj_read_lock(vj_rwlock *l)
    void vj_write_lock(vj_rwlock *l)
    void vj_rw_unlock(vj_rwlock *l)
    void vj_spin_lock(unsigned char *flag)
    void vj_spin_unlock(unsigned char *flag)

cdef extern from "parallel.h" nogil:
    ctypedef void (*vj_task_fn)(void *ctx, size_t item, int worker) noexcept nogil
    void vj_parallel_for(size_t n, int nthreads, vj_task_fn fn, void *ctx)
    int VJ_MAX_THREADS

cdef extern from "checksum.h" nogil:
    uint64_t vj_checksum64(const void *data, size_t length, uint64_t seed)

cdef extern from "pages.h" nogil:
    void vj_touch_for_write(void *p, size_t n)
