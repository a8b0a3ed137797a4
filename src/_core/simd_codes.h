/* Kernels for the compact storage kinds (float16, int8, binary), included by simd.h.
 *
 * One signature for all of them, vj_code_fn(query, code, dim): `query` is a
 * vector prepared once per search in the layout the kind wants (float32 for
 * float16 and int8 codes, packed bits for binary codes), `code` one node's code.
 *   float16: squared L2, or 1 - dot, of a float32 query and a float16 code
 *   int8:    the integer dot of an int16 query and uint8 codes, exact in int32
 *            as long as every |query_d| <= vj_u8_query_limit(dim) (the caller
 *            scales the query so, and folds in the scales and offsets: see
 *            distance.pxi); integer multiply-adds do in one instruction what a
 *            float query needs a widening, a conversion and an FMA for
 *   binary:  the Hamming distance of two bit strings of `dim` bits (zero-padded
 *            to 64-bit words)
 * Scalar versions are portable C; AVX2 (+F16C), AVX-512F and AVX-512BW versions carry
 * target attributes and are chosen at run time with the float32 kernels.
 */
#ifndef VJ_SIMD_CODES_H
#define VJ_SIMD_CODES_H

#include <stdint.h>

typedef float (*vj_code_fn)(const void *query, const void *code, size_t dim);

/* ---- portable float16 -> float32 (IEEE binary16, subnormals and inf/nan kept) ---- */
static inline float vj_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
    float out;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) { mant <<= 1; exp--; }
            bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* ---- float32 -> float16, rounding to nearest even (overflow becomes inf) ---- */
static inline uint16_t vj_float_to_half(float f) {
    uint32_t x, sign, mant, half, rem, shift, mid;
    int32_t exp;
    memcpy(&x, &f, sizeof x);
    sign = (x >> 16) & 0x8000u;
    mant = x & 0x7FFFFFu;
    if (((x >> 23) & 0xFFu) == 0xFFu) return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0u));
    exp = (int32_t)((x >> 23) & 0xFFu) - 127 + 15;
    if (exp >= 31) return (uint16_t)(sign | 0x7C00u);
    if (exp <= 0) {  /* a float16 subnormal, or zero */
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        shift = (uint32_t)(14 - exp);
        half = mant >> shift;
        rem = mant & ((1u << shift) - 1u);
        mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;  /* a carry rolls into the exponent */
    return (uint16_t)half;
}

static float vj_l2sq_f16_scalar(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    float s0 = 0.f, s1 = 0.f;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        float d0 = q[i] - vj_half_to_float(c[i]), d1 = q[i + 1] - vj_half_to_float(c[i + 1]);
        s0 += d0 * d0; s1 += d1 * d1;
    }
    for (; i < n; i++) { float d = q[i] - vj_half_to_float(c[i]); s0 += d * d; }
    return s0 + s1;
}

static float vj_ipdist_f16_scalar(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    float s0 = 0.f, s1 = 0.f;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        s0 += q[i] * vj_half_to_float(c[i]);
        s1 += q[i + 1] * vj_half_to_float(c[i + 1]);
    }
    for (; i < n; i++) s0 += q[i] * vj_half_to_float(c[i]);
    return 1.0f - (s0 + s1);
}

/* The largest |query_d| for which no partial sum of an int8 dot can leave int32:
 * every term is at most 255 |query_d|, and there are dim of them. */
static inline int32_t vj_u8_query_limit(size_t dim) {
    size_t limit = dim ? (size_t)INT32_MAX / (255u * dim) : 32767u;
    return limit < 32767u ? (int32_t)limit : 32767;
}

static float vj_dot_u8_scalar(const void *query, const void *code, size_t n) {
    const int16_t *q = (const int16_t *)query;
    const uint8_t *c = (const uint8_t *)code;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += q[i] * c[i]; s1 += q[i + 1] * c[i + 1];
        s2 += q[i + 2] * c[i + 2]; s3 += q[i + 3] * c[i + 3];
    }
    for (; i < n; i++) s0 += q[i] * c[i];
    return (float)((s0 + s1) + (s2 + s3));
}

static inline unsigned vj_popcount64_portable(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

static float vj_hamming_scalar(const void *query, const void *code, size_t n) {
    const uint64_t *a = (const uint64_t *)query, *b = (const uint64_t *)code;
    size_t words = (n + 63) / 64, i;
    unsigned s = 0;
    for (i = 0; i < words; i++) s += vj_popcount64_portable(a[i] ^ b[i]);
    return (float)s;
}

#if VJ_HAVE_X86_DISPATCH
/* ---- AVX2 + FMA + F16C ---- */
__attribute__((target("avx2,fma,f16c")))
static float vj_l2sq_f16_avx2(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i))));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8),
                                  _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i + 8))));
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        acc1 = _mm256_fmadd_ps(d1, d1, acc1);
    }
    if (i + 8 <= n) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i))));
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        i += 8;
    }
    float s = vj_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) { float d = q[i] - _cvtsh_ss(c[i]); s += d * d; }
    return s;
}

__attribute__((target("avx2,fma,f16c")))
static float vj_ipdist_f16_avx2(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i))), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8),
                               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i + 8))), acc1);
    }
    if (i + 8 <= n) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i))), acc0);
        i += 8;
    }
    float s = vj_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += q[i] * _cvtsh_ss(c[i]);
    return 1.0f - s;
}

/* 32 codes a step: widen the bytes to int16, multiply-add pairs into int32
 * (madd_epi16): half the work of a float32 query (widen, convert and FMA per
 * 8 codes). Also the AVX-512 level's kernel on CPUs without AVX-512BW. */
__attribute__((target("avx2")))
static float vj_dot_u8_avx2(const void *query, const void *code, size_t n) {
    const int16_t *q = (const int16_t *)query;
    const uint8_t *c = (const uint8_t *)code;
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i lo = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(c + i)));
        __m256i hi = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(c + i + 16)));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)(q + i))));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(q + i + 16))));
    }
    if (i + 16 <= n) {
        __m256i lo = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(c + i)));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)(q + i))));
        i += 16;
    }
    __m256i acc = _mm256_add_epi32(acc0, acc1);
    __m128i half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4E));
    half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0xB1));
    int32_t s = _mm_cvtsi128_si32(half);
    for (; i < n; i++) s += q[i] * c[i];
    return (float)s;
}

__attribute__((target("popcnt")))
static float vj_hamming_popcnt(const void *query, const void *code, size_t n) {
    const uint64_t *a = (const uint64_t *)query, *b = (const uint64_t *)code;
    size_t words = (n + 63) / 64, i = 0;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i + 4 <= words; i += 4) {
        s0 += (uint64_t)__builtin_popcountll(a[i] ^ b[i]);
        s1 += (uint64_t)__builtin_popcountll(a[i + 1] ^ b[i + 1]);
        s2 += (uint64_t)__builtin_popcountll(a[i + 2] ^ b[i + 2]);
        s3 += (uint64_t)__builtin_popcountll(a[i + 3] ^ b[i + 3]);
    }
    for (; i < words; i++) s0 += (uint64_t)__builtin_popcountll(a[i] ^ b[i]);
    return (float)((s0 + s1) + (s2 + s3));
}

/* ---- AVX-512F (cvtph_ps is part of it) ---- */
__attribute__((target("avx512f")))
static float vj_l2sq_f16_avx512(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i))));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 16),
                                  _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i + 16))));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        acc1 = _mm512_fmadd_ps(d1, d1, acc1);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i))));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) { float d = q[i] - vj_half_to_float(c[i]); s += d * d; }
    return s;
}

__attribute__((target("avx512f")))
static float vj_ipdist_f16_avx512(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i))), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16),
                               _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i + 16))), acc1);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i))), acc0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) s += q[i] * vj_half_to_float(c[i]);
    return 1.0f - s;
}

/* The same on AVX-512BW, 64 codes a step; the last < 32 through masked loads
 * (zeros there add nothing), so no scalar tail. */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static float vj_dot_u8_avx512bw(const void *query, const void *code, size_t n) {
    const int16_t *q = (const int16_t *)query;
    const uint8_t *c = (const uint8_t *)code;
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + i)));
        __m512i hi = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + i + 32)));
        acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(lo, _mm512_loadu_si512((const void *)(q + i))));
        acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(hi, _mm512_loadu_si512((const void *)(q + i + 32))));
    }
    if (i + 32 <= n) {
        __m512i lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + i)));
        acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(lo, _mm512_loadu_si512((const void *)(q + i))));
        i += 32;
    }
    if (i < n) {
        __mmask32 m = (__mmask32)((1ULL << (n - i)) - 1u);
        __m512i lo = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, c + i));
        acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(lo, _mm512_maskz_loadu_epi16(m, q + i)));
    }
    return (float)_mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

#endif /* VJ_HAVE_X86_DISPATCH */

#endif /* VJ_SIMD_CODES_H */
