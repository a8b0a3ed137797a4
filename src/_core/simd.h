/* Distance kernels for float32 vectors (and, in simd_codes.h, for the compact
 * storage kinds), with runtime CPU dispatch.
 *
 * Built without -march=native: the AVX2+FMA and AVX-512 variants are compiled
 * with per-function target attributes and chosen at run time from CPUID, so one
 * binary runs everywhere and uses the widest unit the CPU has. On 64-bit Arm
 * the NEON kernels (simd_neon.h) take the same place. The environment
 * variable VJSON_SIMD (scalar|avx2|avx512|neon|auto) or vj_simd_set() forces a
 * path, which is how the tests cover every variant the CPU supports.
 *
 * Nothing here executes an instruction the CPU may lack before the check: the
 * wide kernels are only reached through vj_active, which vj_simd_set() fills
 * only with kernels vj_simd_supported() has confirmed.
 *
 * Distances: squared L2, and 1 - dot for inner product (cosine stores
 * normalised vectors and becomes inner product). Any length n is handled;
 * tails use masked loads (AVX-512) or a scalar loop.
 */
#ifndef VJ_SIMD_H
#define VJ_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define VJ_HAVE_X86_DISPATCH 1
#include <immintrin.h>
#else
#define VJ_HAVE_X86_DISPATCH 0
#endif

#if defined(__aarch64__)
#define VJ_HAVE_NEON 1
#else
#define VJ_HAVE_NEON 0
#endif

typedef float (*vj_dist_fn)(const float *a, const float *b, size_t n);

/* Level numbers are names, not an order: each CPU supports its own subset. */
enum { VJ_SIMD_SCALAR = 0, VJ_SIMD_AVX2 = 1, VJ_SIMD_AVX512 = 2, VJ_SIMD_NEON = 3, VJ_SIMD_LEVELS = 4 };

/* ---- scalar: four accumulators so the compiler can vectorise at baseline ---- */
static float vj_l2sq_scalar(const float *a, const float *b, size_t n) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
        float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0; s1 += d1 * d1; s2 += d2 * d2; s3 += d3 * d3;
    }
    for (; i < n; i++) { float d = a[i] - b[i]; s0 += d * d; }
    return (s0 + s1) + (s2 + s3);
}

static float vj_dot_scalar(const float *a, const float *b, size_t n) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static float vj_ipdist_scalar(const float *a, const float *b, size_t n) {
    return 1.0f - vj_dot_scalar(a, b, n);
}

#if VJ_HAVE_X86_DISPATCH
/* ---- AVX2 + FMA: two 8-wide accumulators hide the FMA latency ---- */
__attribute__((target("avx2,fma")))
static inline float vj_hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 0x55));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma")))
static float vj_l2sq_avx2(const float *a, const float *b, size_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        acc1 = _mm256_fmadd_ps(d1, d1, acc1);
    }
    if (i + 8 <= n) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        i += 8;
    }
    float s = vj_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) { float d = a[i] - b[i]; s += d * d; }
    return s;
}

__attribute__((target("avx2,fma")))
static float vj_ipdist_avx2(const float *a, const float *b, size_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    if (i + 8 <= n) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        i += 8;
    }
    float s = vj_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += a[i] * b[i];
    return 1.0f - s;
}

/* ---- AVX-512F: 16-wide, masked tail, no scalar loop ---- */
__attribute__((target("avx512f")))
static float vj_l2sq_avx512(const float *a, const float *b, size_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        acc1 = _mm512_fmadd_ps(d1, d1, acc1);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        acc1 = _mm512_fmadd_ps(d0, d0, acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

__attribute__((target("avx512f")))
static float vj_ipdist_avx512(const float *a, const float *b, size_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
    }
    return 1.0f - _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}
#endif /* VJ_HAVE_X86_DISPATCH */

#include "simd_codes.h"  /* float16, int8 and binary codes */
#if VJ_HAVE_NEON
#include "simd_neon.h"   /* after simd_codes.h: its code kernels use the float16 helpers */
#endif

/* ---- dispatch ---- */
typedef struct {
    int level;
    vj_dist_fn l2sq;
    vj_dist_fn ipdist;
    vj_code_fn l2sq_f16;    /* float32 query, float16 code */
    vj_code_fn ipdist_f16;
    vj_code_fn dot_u8;      /* int16 query, uint8 code */
    vj_code_fn hamming;     /* bits, bits */
} vj_kernels;

#define VJ_SCALAR_KERNELS {VJ_SIMD_SCALAR, vj_l2sq_scalar, vj_ipdist_scalar, vj_l2sq_f16_scalar, \
                           vj_ipdist_f16_scalar, vj_dot_u8_scalar, vj_hamming_scalar}

static vj_kernels vj_active = VJ_SCALAR_KERNELS;
static int vj_simd_ready = 0;

/* 1 when this CPU can run the kernels of `level` (CPUID on x86; AdvSIMD is
 * architectural on AArch64), else 0. */
static int vj_simd_supported(int level) {
    if (level == VJ_SIMD_SCALAR) return 1;
#if VJ_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    if (level == VJ_SIMD_AVX512) return __builtin_cpu_supports("avx512f") != 0;
    if (level == VJ_SIMD_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if VJ_HAVE_NEON
    if (level == VJ_SIMD_NEON) return 1;
#endif
    return 0;
}

static int vj_cpu_best_level(void) {
    if (vj_simd_supported(VJ_SIMD_AVX512)) return VJ_SIMD_AVX512;
    if (vj_simd_supported(VJ_SIMD_AVX2)) return VJ_SIMD_AVX2;
    if (vj_simd_supported(VJ_SIMD_NEON)) return VJ_SIMD_NEON;
    return VJ_SIMD_SCALAR;
}

static const char *vj_simd_name(int level) {
    switch (level) {
    case VJ_SIMD_AVX512: return "avx512";
    case VJ_SIMD_AVX2: return "avx2";
    case VJ_SIMD_NEON: return "neon";
    default: return "scalar";
    }
}

/* Select a kernel family; returns 0, or -1 when the CPU lacks it. */
static int vj_simd_set(int level) {
    if (level < VJ_SIMD_SCALAR || level >= VJ_SIMD_LEVELS || !vj_simd_supported(level)) return -1;
    vj_kernels k = VJ_SCALAR_KERNELS;  /* a kernel stays scalar where the CPU lacks its extension (f16c, popcnt) */
#if VJ_HAVE_X86_DISPATCH
    if (level == VJ_SIMD_AVX2 || level == VJ_SIMD_AVX512) {
        k.level = level; k.l2sq = vj_l2sq_avx2; k.ipdist = vj_ipdist_avx2; k.dot_u8 = vj_dot_u8_avx2;
        if (__builtin_cpu_supports("f16c")) { k.l2sq_f16 = vj_l2sq_f16_avx2; k.ipdist_f16 = vj_ipdist_f16_avx2; }
        if (__builtin_cpu_supports("popcnt")) k.hamming = vj_hamming_popcnt;
    }
    if (level == VJ_SIMD_AVX512) {
        k.l2sq = vj_l2sq_avx512; k.ipdist = vj_ipdist_avx512;
        if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) k.dot_u8 = vj_dot_u8_avx512bw;
        k.l2sq_f16 = vj_l2sq_f16_avx512; k.ipdist_f16 = vj_ipdist_f16_avx512;
    }
#endif
#if VJ_HAVE_NEON
    if (level == VJ_SIMD_NEON) {
        k.level = level; k.l2sq = vj_l2sq_neon; k.ipdist = vj_ipdist_neon;
        k.l2sq_f16 = vj_l2sq_f16_neon; k.ipdist_f16 = vj_ipdist_f16_neon;
        k.dot_u8 = vj_dot_u8_neon; k.hamming = vj_hamming_neon;
    }
#endif
    vj_active = k;
    vj_simd_ready = 1;
    return 0;
}

/* The level a VJSON_SIMD value names, or -1 ("auto", unset or unknown). */
static int vj_simd_level_named(const char *name) {
    int level;
    if (name == NULL) return -1;
    for (level = 0; level < VJ_SIMD_LEVELS; level++)
        if (strcmp(name, vj_simd_name(level)) == 0) return level;
    return -1;
}

/* First use: the best path, unless VJSON_SIMD asks for another (an unknown or
 * unsupported request falls back to the best available one; the Python module
 * warns about it at import). */
static void vj_simd_init(void) {
    int want = vj_simd_level_named(getenv("VJSON_SIMD"));
    if (want < 0 || !vj_simd_supported(want)) want = vj_cpu_best_level();
    vj_simd_set(want);
}

#endif /* VJ_SIMD_H */
