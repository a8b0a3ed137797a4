/* Test driver for the distance kernels of src/_core/simd.h, built on its own
 * (no Python) so the same source can run natively and, cross-compiled, under
 * qemu-user for another architecture (tests/test_simd_driver.py).
 *
 *   simd_driver check          every kernel of every level this CPU supports
 *                              against a double-precision reference
 *   simd_driver bench DIM N    ns per call of each supported level, N calls per pass
 *   simd_driver init           the level first use picks (VJSON_SIMD applies): "ACTIVE name"
 *
 * The kernels: l2sq and ipdist (float32), and the compact kinds' l2sq_f16,
 * ipdist_f16 (float16 codes), dot_u8 (int16 query, uint8 codes) and hamming (bit strings).
 * check prints one line per level and kernel:
 *   RESULT level=neon kernel=l2sq cases=8192 worst=0.0123 maxrel_vs_scalar=1.2e-07 PASS
 * where worst is the largest |error| / bound seen (must stay <= 1), and one line
 *   LEVELS best=neon supported=scalar,neon refused=avx2,avx512
 * It exits 0 only when every case of every supported level passed and every
 * unsupported level was refused by vj_simd_set().
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "simd.h"

#define MAX_DIM 1024
#define PAGE_FLOATS_MAX (1 << 16)

/* splitmix64: a fixed, portable stream, so native and qemu runs see the same inputs */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [-scale, scale) */
static float next_float(float scale) {
    return (float)(((double)(next_u64() >> 11) / 9007199254740992.0 * 2.0 - 1.0) * scale);
}

/* A buffer whose last float sits right before a PROT_NONE page, so a kernel
 * that reads one element past n faults instead of passing by luck. */
typedef struct { float *end; } guarded;

static guarded guarded_alloc(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = ((MAX_DIM + 16) * sizeof(float) + page - 1) / page * page;
    char *p = mmap(NULL, body + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p + body, page, PROT_NONE) != 0) {
        perror("mmap");
        exit(2);
    }
    guarded g = {(float *)(p + body)};
    return g;
}

/* The reference, computed independently of the kernels: double precision. */
static void reference(const float *a, const float *b, size_t n, double *l2, double *l2_abs,
                      double *dot, double *dot_abs) {
    double s = 0, sd = 0, sa = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
        sd += (double)a[i] * (double)b[i];
        sa += fabs((double)a[i] * (double)b[i]);
    }
    *l2 = s; *l2_abs = s; *dot = sd; *dot_abs = sa;
}

/* Worst-case float32 summation bound (Higham): |error| <= gamma_{n+1} * sum |term|,
 * gamma_k = k u / (1 - k u), u = 2^-24; the +1 covers the rounding of a - b.
 * Any order of summation and with or without FMA stays inside it. */
static double gamma_n(size_t n) {
    double u = ldexp(1.0, -24), k = (double)(n + 2);
    return k * u / (1.0 - k * u);
}

typedef struct { long cases; double worst; double maxrel_scalar; int failed; } tally;

static void account(tally *t, double err, double bound, double rel_scalar, const char *what,
                    const char *level, size_t n) {
    double ratio = bound > 0 ? err / bound : (err > 0 ? INFINITY : 0);
    t->cases++;
    if (ratio > t->worst) t->worst = ratio;
    if (rel_scalar > t->maxrel_scalar) t->maxrel_scalar = rel_scalar;
    if (!(ratio <= 1.0)) {
        if (t->failed < 5) fprintf(stderr, "FAIL level=%s kernel=%s n=%zu err/bound=%g\n", level, what, n, ratio);
        t->failed++;
    }
}

static double rel(double x, double y) {
    double m = fabs(x) > fabs(y) ? fabs(x) : fabs(y);
    return m > 0 ? fabs(x - y) / m : 0.0;
}

/* ---- the compact storage kinds' kernels (simd_codes.h) ---- */

/* float16 decoded independently of the core's converter: (1024 + m) 2^(e-25), m 2^-24 */
static double ref_half(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* a finite float16: exponents 0..30 at large scale, else around 1 (subnormals included) */
static uint16_t next_half(int wide) {
    uint64_t r = next_u64();
    int e = wide ? (int)(r % 31) : 9 + (int)(r % 8);
    if (r % 61 == 0) e = 0;
    return (uint16_t)(((r >> 8) & 1) << 15 | (uint64_t)e << 10 | ((r >> 16) & 1023));
}

static int popcount_ref(uint64_t x) {
    int c = 0;
    for (; x; x >>= 1) c += (int)(x & 1);
    return c;
}

static int check_codes(const char *name, const vj_kernels *k, guarded gq, guarded gc) {
    tally tl = {0, 0, 0, 0}, ti = {0, 0, 0, 0}, tu = {0, 0, 0, 0}, th = {0, 0, 0, 0};
    double u = ldexp(1.0, -24);
    rng_state = 0x5DEECE66Dull;
    for (size_t n = 1; n <= MAX_DIM; n++) {
        for (int place = 0; place < 3; place++) {
            /* place 0: both end at their guard page; 1, 2: unaligned starts */
            float *q = place == 0 ? gq.end - n : gq.end - MAX_DIM - 8 + (n + place) % 4;
            char *cend = (char *)gc.end;
            uint16_t *h = place == 0 ? (uint16_t *)cend - n : (uint16_t *)(cend - 4 * MAX_DIM - 64) + (n + place) % 8;
            uint8_t *b = place == 0 ? (uint8_t *)cend - n : (uint8_t *)(cend - 4 * MAX_DIM - 64) + (n * 7 + place) % 16;
            float scale = place == 2 ? 100.f : 1.f;
            for (size_t i = 0; i < n; i++) { q[i] = next_float(scale); h[i] = next_half(place == 2); }
            double l2 = 0, dot = 0, dabs = 0, g = gamma_n(n);
            for (size_t i = 0; i < n; i++) {
                double d = (double)q[i] - ref_half(h[i]);
                l2 += d * d; dot += (double)q[i] * ref_half(h[i]); dabs += fabs((double)q[i] * ref_half(h[i]));
            }
            double got = k->l2sq_f16(q, h, n);
            account(&tl, fabs(got - l2), g * l2, rel(got, vj_l2sq_f16_scalar(q, h, n)), "l2sq_f16", name, n);
            got = k->ipdist_f16(q, h, n);
            account(&ti, fabs(got - (1.0 - dot)), g * dabs + 2 * u * (1.0 + fabs(dot) + g * dabs),
                    rel(got, vj_ipdist_f16_scalar(q, h, n)), "ipdist_f16", name, n);

            /* int8: an int16 query within the limit (its extremes on place 2), bytes up to 255;
             * the sum is exact in int32, so only its conversion to float may round */
            int16_t *qi = place == 0 ? (int16_t *)gq.end - n : (int16_t *)q;  /* place 0: ends at the guard */
            int32_t lim = vj_u8_query_limit(n);
            for (size_t i = 0; i < n; i++) {
                b[i] = place == 2 ? 255 : (uint8_t)(next_u64() >> 56);
                qi[i] = place == 2 ? (int16_t)(i % 2 ? lim : -lim)
                                   : (int16_t)((int64_t)(next_u64() % (2 * (uint64_t)lim + 1)) - lim);
            }
            dot = 0;
            for (size_t i = 0; i < n; i++) dot += (double)qi[i] * b[i];
            got = k->dot_u8(qi, b, n);
            account(&tu, fabs(got - dot), 0.5 + u * fabs(dot), rel(got, vj_dot_u8_scalar(qi, b, n)), "dot_u8", name, n);

            /* binary: n bits in whole 64-bit words, zero-padded; counts must be exact (bound 0.5) */
            size_t words = (n + 63) / 64;
            uint64_t *wa = place == 0 ? (uint64_t *)gq.end - words : (uint64_t *)(gq.end - MAX_DIM) - 4 + place;
            uint64_t *wb = place == 0 ? (uint64_t *)gc.end - words : (uint64_t *)(cend - 4 * MAX_DIM) - 4 + 2 * place;
            uint64_t tail = n % 64 ? (1ull << (n % 64)) - 1 : ~0ull;
            int expect = 0;
            for (size_t w = 0; w < words; w++) {
                wa[w] = next_u64(); wb[w] = next_u64();
                if (w == words - 1) { wa[w] &= tail; wb[w] &= tail; }
                expect += popcount_ref(wa[w] ^ wb[w]);
            }
            got = k->hamming(wa, wb, n);
            account(&th, fabs(got - (double)expect), 0.5, rel(got, vj_hamming_scalar(wa, wb, n)), "hamming", name, n);
        }
    }
    /* bit strings long enough to pass the NEON kernel's 16-bit counter flush
     * (4,096 words), all ones against zeros so every lane counts its maximum,
     * then random; an odd number of bits, so the last word is padded */
    for (int pattern = 0; pattern < 2; pattern++) {
        size_t n = 64 * 4096 * 2 + 37, words = (n + 63) / 64;
        uint64_t *wa = calloc(words, 8), *wb = calloc(words, 8);
        uint64_t tail = (1ull << (n % 64)) - 1;
        long expect = 0;
        if (wa == NULL || wb == NULL) { perror("calloc"); exit(2); }
        for (size_t w = 0; w < words; w++) {
            wa[w] = pattern ? next_u64() : ~0ull;
            wb[w] = pattern ? next_u64() : 0;
            if (w == words - 1) { wa[w] &= tail; wb[w] &= tail; }
            expect += popcount_ref(wa[w] ^ wb[w]);
        }
        double got = k->hamming(wa, wb, n);
        account(&th, fabs(got - (double)expect), 0.5, rel(got, vj_hamming_scalar(wa, wb, n)), "hamming", name, n);
        free(wa);
        free(wb);
    }
    tally *all[4] = {&tl, &ti, &tu, &th};
    const char *names[4] = {"l2sq_f16", "ipdist_f16", "dot_u8", "hamming"};
    int failed = 0;
    for (int j = 0; j < 4; j++) {
        printf("RESULT level=%s kernel=%s cases=%ld worst=%.4f maxrel_vs_scalar=%.3g %s\n", name, names[j],
               all[j]->cases, all[j]->worst, all[j]->maxrel_scalar, all[j]->failed ? "FAIL" : "PASS");
        failed += all[j]->failed;
    }
    return failed;
}

static int check(void) {
    guarded ga = guarded_alloc(), gb = guarded_alloc();
    float *base_a = ga.end - MAX_DIM - 8, *base_b = gb.end - MAX_DIM - 8;
    int failed = 0;
    char supported[128] = "", refused[128] = "";

    for (int level = 0; level < VJ_SIMD_LEVELS; level++) {
        const char *name = vj_simd_name(level);
        if (!vj_simd_supported(level)) {
            /* refused, and the active kernels must stay what they were */
            vj_simd_set(VJ_SIMD_SCALAR);
            if (vj_simd_set(level) != -1 || vj_active.level != VJ_SIMD_SCALAR) {
                fprintf(stderr, "FAIL level=%s is unsupported but vj_simd_set accepted it\n", name);
                failed++;
            }
            strcat(refused[0] ? strcat(refused, ",") : refused, name);
            continue;
        }
        strcat(supported[0] ? strcat(supported, ",") : supported, name);
        if (vj_simd_set(level) != 0 || vj_active.level != level) {
            fprintf(stderr, "FAIL level=%s is supported but vj_simd_set refused it\n", name);
            failed++;
            continue;
        }
        vj_kernels k = vj_active;
        tally tl = {0, 0, 0, 0}, ti = {0, 0, 0, 0};
        rng_state = 0x9E3779B97F4A7C15ull;  /* the same inputs for every level */
        for (size_t n = 1; n <= MAX_DIM; n++) {
            /* placements: ending at the guard page (catches over-reads, any alignment),
             * and starting 0-3 floats past a 32-byte boundary */
            for (int place = 0; place < 3; place++) {
                float *a, *b;
                if (place == 0) { a = ga.end - n; b = gb.end - n; }
                else {
                    a = base_a + (n + place) % 4;
                    b = base_b + (n + 2 * place + 1) % 4;
                }
                float scale = place == 2 ? 1000.f : 1.f;
                for (size_t i = 0; i < n; i++) { a[i] = next_float(scale); b[i] = next_float(scale); }
                double l2, l2_abs, dot, dot_abs;
                reference(a, b, n, &l2, &l2_abs, &dot, &dot_abs);
                double g = gamma_n(n), u = ldexp(1.0, -24);

                double got_l2 = k.l2sq(a, b, n);
                account(&tl, fabs(got_l2 - l2), g * l2_abs, rel(got_l2, vj_l2sq_scalar(a, b, n)),
                        "l2sq", name, n);
                /* ipdist = 1 - dot: the subtraction adds one more rounding of size u(1 + |dot|) */
                double got_ip = k.ipdist(a, b, n);
                double bound_ip = g * dot_abs + 2 * u * (1.0 + fabs(dot) + g * dot_abs);
                account(&ti, fabs(got_ip - (1.0 - dot)), bound_ip, rel(got_ip, vj_ipdist_scalar(a, b, n)),
                        "ipdist", name, n);
            }
        }
        printf("RESULT level=%s kernel=l2sq cases=%ld worst=%.4f maxrel_vs_scalar=%.3g %s\n", name,
               tl.cases, tl.worst, tl.maxrel_scalar, tl.failed ? "FAIL" : "PASS");
        printf("RESULT level=%s kernel=ipdist cases=%ld worst=%.4f maxrel_vs_scalar=%.3g %s\n", name,
               ti.cases, ti.worst, ti.maxrel_scalar, ti.failed ? "FAIL" : "PASS");
        failed += tl.failed + ti.failed;
        failed += check_codes(name, &k, ga, gb);
    }
    printf("LEVELS best=%s supported=%s refused=%s\n", vj_simd_name(vj_cpu_best_level()), supported,
           refused[0] ? refused : "-");
    return failed ? 1 : 0;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* ns per call of each supported level; passes interleaved (a, b, b, a, ...)
 * so a noisy machine slows every level alike; the median pass is reported. */
static int bench(size_t dim, long calls) {
    enum { ROWS = 256, PASSES = 9 };
    float *data = malloc(sizeof(float) * dim * ROWS), *q = malloc(sizeof(float) * dim);
    for (size_t i = 0; i < dim * ROWS; i++) data[i] = next_float(1.f);
    for (size_t i = 0; i < dim; i++) q[i] = next_float(1.f);
    int levels[VJ_SIMD_LEVELS], nlev = 0;
    for (int level = 0; level < VJ_SIMD_LEVELS; level++)
        if (vj_simd_supported(level)) levels[nlev++] = level;
    double times[VJ_SIMD_LEVELS][2][PASSES];
    volatile float sink = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        for (int j = 0; j < nlev; j++) {
            int idx = pass % 2 ? nlev - 1 - j : j;
            vj_simd_set(levels[idx]);
            for (int kernel = 0; kernel < 2; kernel++) {
                vj_dist_fn f = kernel ? vj_active.ipdist : vj_active.l2sq;
                double t0 = now_ns();
                float s = 0;
                for (long c = 0; c < calls; c++) s += f(q, data + (size_t)(c % ROWS) * dim, dim);
                times[idx][kernel][pass] = (now_ns() - t0) / calls;
                sink += s;
            }
        }
    }
    double med[VJ_SIMD_LEVELS][2];
    for (int j = 0; j < nlev; j++)
        for (int kernel = 0; kernel < 2; kernel++) {
            qsort(times[j][kernel], PASSES, sizeof(double), cmp_double);
            med[j][kernel] = times[j][kernel][PASSES / 2];
        }
    for (int j = 0; j < nlev; j++)
        for (int kernel = 0; kernel < 2; kernel++)
            printf("BENCH level=%s kernel=%s dim=%zu ns_per_call=%.1f speedup_vs_scalar=%.2f\n",
                   vj_simd_name(levels[j]), kernel ? "ipdist" : "l2sq", dim, med[j][kernel],
                   med[0][kernel] / med[j][kernel]);
    free(data);
    free(q);
    return sink == 12345.f;  /* keeps the loop; practically always 0 */
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "check") == 0) return check();
    if (argc >= 2 && strcmp(argv[1], "init") == 0) {
        vj_simd_init();
        printf("ACTIVE %s\n", vj_simd_name(vj_active.level));
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "bench") == 0) return bench((size_t)atol(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: %s check | init | bench DIM CALLS\n", argv[0]);
    return 2;
}
