/* NEON (AdvSIMD) distance kernels for 64-bit Arm: Apple Silicon, Graviton,
 * Ampere, Raspberry Pi 4/5 under a 64-bit OS.
 *
 * Included by simd.h on __aarch64__ only. AdvSIMD is part of the AArch64 base
 * architecture (every ARMv8-A core has it), so these need no target attribute
 * and no feature probe; simd.h still lists them as their own level so that
 * VJSON_SIMD and set_simd() treat every CPU the same way.
 *
 * Same contract as the scalar kernels: any length n, any float-aligned
 * pointer (vld1q_f32 has no alignment requirement beyond the element), and no
 * read past a[n-1] / b[n-1]: the last n % 4 elements go through a scalar loop.
 * The compact-kind kernels at the end use simd_codes.h (vj_half_to_float for
 * their tails), which simd.h includes first.
 * No SVE variant: the SVE cores shipping today have no more FMA throughput
 * than their NEON units for these loops (docs/release.md).
 */
#ifndef VJ_SIMD_NEON_H
#define VJ_SIMD_NEON_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

/* Four 4-wide accumulators: a NEON FMA has ~4 cycles of latency and most
 * cores issue two a cycle, so fewer chains would leave the units idle. */
static float vj_l2sq_neon(const float *a, const float *b, size_t n) {
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f);
    float32x4_t acc2 = vdupq_n_f32(0.f), acc3 = vdupq_n_f32(0.f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        float32x4_t d1 = vsubq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        float32x4_t d2 = vsubq_f32(vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        float32x4_t d3 = vsubq_f32(vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
        acc0 = vfmaq_f32(acc0, d0, d0);
        acc1 = vfmaq_f32(acc1, d1, d1);
        acc2 = vfmaq_f32(acc2, d2, d2);
        acc3 = vfmaq_f32(acc3, d3, d3);
    }
    for (; i + 4 <= n; i += 4) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        acc0 = vfmaq_f32(acc0, d0, d0);
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) { float d = a[i] - b[i]; s += d * d; }
    return s;
}

static float vj_ipdist_neon(const float *a, const float *b, size_t n) {
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f);
    float32x4_t acc2 = vdupq_n_f32(0.f), acc3 = vdupq_n_f32(0.f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        acc2 = vfmaq_f32(acc2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        acc3 = vfmaq_f32(acc3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) s += a[i] * b[i];
    return 1.0f - s;
}

/* ---- compact storage kinds (simd_codes.h): float16, int8 and binary codes ---- */

/* float16 -> float32 is part of AArch64's base FP (FCVTL), no extension needed. */
static inline float32x4_t vj_neon_half4(const uint16_t *c) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(c)));
}

static float vj_l2sq_f16_neon(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f);
    float32x4_t acc2 = vdupq_n_f32(0.f), acc3 = vdupq_n_f32(0.f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(q + i), vj_neon_half4(c + i));
        float32x4_t d1 = vsubq_f32(vld1q_f32(q + i + 4), vj_neon_half4(c + i + 4));
        float32x4_t d2 = vsubq_f32(vld1q_f32(q + i + 8), vj_neon_half4(c + i + 8));
        float32x4_t d3 = vsubq_f32(vld1q_f32(q + i + 12), vj_neon_half4(c + i + 12));
        acc0 = vfmaq_f32(acc0, d0, d0);
        acc1 = vfmaq_f32(acc1, d1, d1);
        acc2 = vfmaq_f32(acc2, d2, d2);
        acc3 = vfmaq_f32(acc3, d3, d3);
    }
    for (; i + 4 <= n; i += 4) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(q + i), vj_neon_half4(c + i));
        acc0 = vfmaq_f32(acc0, d0, d0);
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) { float d = q[i] - vj_half_to_float(c[i]); s += d * d; }
    return s;
}

static float vj_ipdist_f16_neon(const void *query, const void *code, size_t n) {
    const float *q = (const float *)query;
    const uint16_t *c = (const uint16_t *)code;
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f);
    float32x4_t acc2 = vdupq_n_f32(0.f), acc3 = vdupq_n_f32(0.f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(q + i), vj_neon_half4(c + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(q + i + 4), vj_neon_half4(c + i + 4));
        acc2 = vfmaq_f32(acc2, vld1q_f32(q + i + 8), vj_neon_half4(c + i + 8));
        acc3 = vfmaq_f32(acc3, vld1q_f32(q + i + 12), vj_neon_half4(c + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        acc0 = vfmaq_f32(acc0, vld1q_f32(q + i), vj_neon_half4(c + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) s += q[i] * vj_half_to_float(c[i]);
    return 1.0f - s;
}

/* 16 codes a step: bytes widened to int16, multiplied by the int16 query and
 * accumulated in int32 (vmlal_s16), exact under vj_u8_query_limit */
static float vj_dot_u8_neon(const void *query, const void *code, size_t n) {
    const int16_t *q = (const int16_t *)query;
    const uint8_t *c = (const uint8_t *)code;
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0), acc2 = vdupq_n_s32(0), acc3 = vdupq_n_s32(0);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint8x16_t bytes = vld1q_u8(c + i);
        int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(bytes)));
        int16x8_t hi = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(bytes)));
        int16x8_t q0 = vld1q_s16(q + i), q1 = vld1q_s16(q + i + 8);
        acc0 = vmlal_s16(acc0, vget_low_s16(lo), vget_low_s16(q0));
        acc1 = vmlal_s16(acc1, vget_high_s16(lo), vget_high_s16(q0));
        acc2 = vmlal_s16(acc2, vget_low_s16(hi), vget_low_s16(q1));
        acc3 = vmlal_s16(acc3, vget_high_s16(hi), vget_high_s16(q1));
    }
    int32_t s = vaddvq_s32(vaddq_s32(vaddq_s32(acc0, acc1), vaddq_s32(acc2, acc3)));
    for (; i < n; i++) s += q[i] * c[i];
    return (float)s;
}

/* CNT counts the bits of each byte; pairs of byte counts accumulate into 16-bit
 * lanes (at most 16 per 128-bit block, so 4,095 blocks fit), flushed to 32-bit
 * lanes every 2,048 blocks. */
static float vj_hamming_neon(const void *query, const void *code, size_t n) {
    const uint64_t *a = (const uint64_t *)query, *b = (const uint64_t *)code;
    size_t words = (n + 63) / 64, i = 0;
    uint32x4_t total = vdupq_n_u32(0);
    while (i + 2 <= words) {
        uint16x8_t acc = vdupq_n_u16(0);
        size_t block = 0;
        for (; i + 2 <= words && block < 2048; i += 2, block++) {
            uint8x16_t x = veorq_u8(vld1q_u8((const uint8_t *)(a + i)), vld1q_u8((const uint8_t *)(b + i)));
            acc = vpadalq_u8(acc, vcntq_u8(x));
        }
        total = vpadalq_u16(total, acc);
    }
    uint64_t s = vaddvq_u32(total);
    for (; i < words; i++) s += (uint64_t)__builtin_popcountll(a[i] ^ b[i]);
    return (float)s;
}

#endif /* VJ_SIMD_NEON_H */
