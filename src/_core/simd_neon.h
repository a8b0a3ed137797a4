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
 * No SVE variant: the SVE cores shipping today have no more FMA throughput
 * than their NEON units for these loops (docs/release.md).
 */
#ifndef VJ_SIMD_NEON_H
#define VJ_SIMD_NEON_H

#include <arm_neon.h>
#include <stddef.h>

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

#endif /* VJ_SIMD_NEON_H */
