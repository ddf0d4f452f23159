/* SPDX-License-Identifier: Apache-2.0 */
/* The one pseudo-random generator of the library (xoshiro256**, seeded
 * through splitmix64) and the jittered exponential backoffs built on it.
 * For ids, jitter, picks and sampling percentages; never for secrets (keys
 * and serials come from mbedTLS's CTR-DRBG, identity/). */
#include "core/core.h"

#include <sys/random.h>

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void mesh__prng_seed(mesh__prng_t *p, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    p->s[i] = splitmix(&seed);
  p->ready = true;
}

static _Atomic uint64_t seed_salt;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mesh__prng_next(mesh__prng_t *p) {
  if (!p->ready) {
    /* The kernel's entropy when it answers; else the clock, a process-wide
     * counter and the state's address, so that threads started together
     * still diverge. */
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
      seed = (uint64_t)mesh__now_ns() ^ (uint64_t)(uintptr_t)p;
    seed ^= atomic_fetch_add(&seed_salt, 0x9E3779B97F4A7C15ULL);
    mesh__prng_seed(p, seed);
  }
  uint64_t *s = p->s;
  uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return r;
}

static _Thread_local mesh__prng_t thread_prng;

uint64_t mesh__rand64(void) { return mesh__prng_next(&thread_prng); }

/* ---- backoff ---------------------------------------------------------------- */

int64_t mesh__backoff_cap(int64_t base_ms, int64_t max_ms, uint32_t attempt) {
  int64_t d = base_ms;
  for (uint32_t i = 0; i < attempt && d < max_ms; i++)
    d *= 2;
  return d > max_ms ? max_ms : d;
}

int64_t mesh__backoff_ms(int64_t base_ms, int64_t max_ms, uint32_t retry,
                         uint64_t rnd) {
  if (base_ms <= 0)
    return 0;
  if (max_ms < base_ms)
    max_ms = base_ms;
  return (int64_t)(rnd % (uint64_t)mesh__backoff_cap(base_ms, max_ms, retry));
}

int64_t mesh__backoff_jitter(int64_t base_ms, int64_t max_ms, uint32_t attempt,
                             int pct, uint64_t rnd) {
  int64_t d = mesh__backoff_cap(base_ms > 0 ? base_ms : 1, max_ms, attempt);
  int64_t span = d * pct / 100;
  if (span > 0)
    d += (int64_t)(rnd % (uint64_t)(2 * span + 1)) - span;
  return d > 0 ? d : 1;
}
