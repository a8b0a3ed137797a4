/* A fast 64-bit checksum for the index file's sections.
 *
 * Four independent multiply-rotate lanes over 32-byte blocks (the structure of
 * the xxHash family), so hashing runs near memory bandwidth and a multi-GB
 * graph can be verified in well under a second. It detects corruption; it is
 * not a cryptographic hash.
 */
#ifndef VJ_CHECKSUM_H
#define VJ_CHECKSUM_H

#include <stdint.h>
#include <string.h>

#define VJ_P1 0x9E3779B185EBCA87ULL
#define VJ_P2 0xC2B2AE3D27D4EB4FULL
#define VJ_P3 0x165667B19E3779F9ULL

static inline uint64_t vj_rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t vj_lane(uint64_t acc, uint64_t v) {
    acc += v * VJ_P2;
    return vj_rotl64(acc, 31) * VJ_P1;
}

static inline uint64_t vj_read64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t vj_checksum64(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = (const unsigned char *)data;
    const unsigned char *end = p + len;
    uint64_t a = seed + VJ_P1 + VJ_P2, b = seed + VJ_P2, c = seed, d = seed - VJ_P1;
    while (p + 32 <= end) {
        a = vj_lane(a, vj_read64(p));
        b = vj_lane(b, vj_read64(p + 8));
        c = vj_lane(c, vj_read64(p + 16));
        d = vj_lane(d, vj_read64(p + 24));
        p += 32;
    }
    uint64_t h = vj_rotl64(a, 1) + vj_rotl64(b, 7) + vj_rotl64(c, 12) + vj_rotl64(d, 18);
    h += (uint64_t)len;
    while (p + 8 <= end) { h ^= vj_lane(0, vj_read64(p)); h = vj_rotl64(h, 27) * VJ_P1 + VJ_P3; p += 8; }
    while (p < end) { h ^= (uint64_t)(*p) * VJ_P3; h = vj_rotl64(h, 11) * VJ_P1; p++; }
    h ^= h >> 33; h *= VJ_P2; h ^= h >> 29; h *= VJ_P3; h ^= h >> 32;
    return h;
}

#endif /* VJ_CHECKSUM_H */
