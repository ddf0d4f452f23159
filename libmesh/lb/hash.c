/* SPDX-License-Identifier: Apache-2.0 */
/* xxHash64 (XXH64, Yann Collet's algorithm and constants), the hash Envoy
 * uses for ring_hash and maglev placement and for header hash policies.
 * Same output as the reference implementation on every platform: input is
 * read as little-endian 64/32-bit lanes. */
#include "lb/lb.h"

static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P3 = 0x165667B19E3779F9ULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t P5 = 0x27D4EB2F165667C5ULL;

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t read64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static uint32_t read32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t round64(uint64_t acc, uint64_t lane) {
  acc += lane * P2;
  acc = rotl(acc, 31);
  return acc * P1;
}

static uint64_t merge(uint64_t acc, uint64_t v) {
  acc ^= round64(0, v);
  return acc * P1 + P4;
}

static uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

/* The 32-byte stripes of inputs of at least 32 bytes. */
static uint64_t stripes(const unsigned char **pp, const unsigned char *end,
                        uint64_t seed) {
  const unsigned char *p = *pp;
  uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
  do {
    v1 = round64(v1, read64(p));
    v2 = round64(v2, read64(p + 8));
    v3 = round64(v3, read64(p + 16));
    v4 = round64(v4, read64(p + 24));
    p += 32;
  } while (p + 32 <= end);
  *pp = p;
  uint64_t h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
  h = merge(h, v1);
  h = merge(h, v2);
  h = merge(h, v3);
  return merge(h, v4);
}

uint64_t mesh__xxh64(const void *data, size_t len, uint64_t seed) {
  static const unsigned char empty[1];
  const unsigned char *p = data ? data : empty;
  const unsigned char *end = p + (data ? len : 0);
  uint64_t h = len >= 32 ? stripes(&p, end, seed) : seed + P5;
  h += (uint64_t)(data ? len : 0);
  for (; p + 8 <= end; p += 8) {
    h ^= round64(0, read64(p));
    h = rotl(h, 27) * P1 + P4;
  }
  if (p + 4 <= end) {
    h ^= (uint64_t)read32(p) * P1;
    h = rotl(h, 23) * P2 + P3;
    p += 4;
  }
  for (; p < end; p++) {
    h ^= (uint64_t)*p * P5;
    h = rotl(h, 11) * P1;
  }
  return avalanche(h);
}
