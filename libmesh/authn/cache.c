/* SPDX-License-Identifier: Apache-2.0 */
/* The verified-token cache: "this token's signature verified with key set
 * S", keyed by the SHA-256 of the token, so that a client presenting the
 * same token again skips the signature check (an ES256 verification is
 * about 1 ms on Mbed TLS 2.28; Envoy's jwt_authn has the same cache as
 * jwt_cache_config).  Only the signature is cached: the claims (exp, nbf,
 * aud) are checked on every request, and an entry is only good for the
 * exact key set it verified with, so a new JWKS or JWT bundle (a rotated
 * key) is a miss and the token is verified again against the new set.
 *
 * Bounded: a fixed array of slots, direct-mapped by hash (a new token
 * evicts whatever sat in its slot).  Lock-free: each slot is a seqlock
 * (Boehm, "Can seqlocks get along with programming language memory
 * models?", 2012) whose fields are all atomics; a reader that races a
 * writer sees a changed sequence and treats it as a miss, and a writer
 * that finds the slot being written skips it. */
#include <stdlib.h>
#include <string.h>

#include "authn/authn.h"
#include "telemetry/telemetry.h"

typedef struct cslot {
  _Atomic uint32_t seq; /* odd: being written */
  _Atomic uint64_t h[4];
  _Atomic uint64_t serial; /* the key set's; 0: empty */
  _Atomic int64_t until;   /* Unix seconds after which the entry is stale */
} cslot_t;

struct mesh__jwt_cache {
  size_t mask;
  _Atomic uint64_t hits, misses, evictions;
  /* mesh_authn_token_cache_{hits,misses,evictions}_total, or NULL */
  mesh__metric_t *m_hits, *m_misses, *m_evictions;
  cslot_t slot[];
};

mesh__jwt_cache_t *mesh__jwt_cache_new(size_t slots) {
  size_t n = 1;
  while (n < slots && n < (1u << 20))
    n <<= 1;
  mesh__jwt_cache_t *c = calloc(1, sizeof *c + n * sizeof(cslot_t));
  if (c)
    c->mask = n - 1;
  return c;
}

void mesh__jwt_cache_free(mesh__jwt_cache_t *c) { free(c); }

static uint64_t word(const uint8_t *h, int i) {
  uint64_t w;
  memcpy(&w, h + 8 * i, 8);
  return w;
}

bool mesh__jwt_cache_hit(mesh__jwt_cache_t *c, const uint8_t h[32],
                         uint64_t serial, int64_t now_s) {
  if (!c || serial == 0)
    return false;
  cslot_t *s = &c->slot[word(h, 0) & c->mask];
  uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
  bool same = !(s1 & 1);
  for (int i = 0; i < 4; i++)
    same &= atomic_load_explicit(&s->h[i], memory_order_relaxed) == word(h, i);
  same &= atomic_load_explicit(&s->serial, memory_order_relaxed) == serial;
  same &= atomic_load_explicit(&s->until, memory_order_relaxed) >= now_s;
  atomic_thread_fence(memory_order_acquire);
  same &= atomic_load_explicit(&s->seq, memory_order_relaxed) == s1;
  atomic_fetch_add_explicit(same ? &c->hits : &c->misses, 1,
                            memory_order_relaxed);
  mesh__counter_add(same ? c->m_hits : c->m_misses, 1);
  return same;
}

void mesh__jwt_cache_put(mesh__jwt_cache_t *c, const uint8_t h[32],
                         uint64_t serial, int64_t until_s, int64_t now_s) {
  if (!c || serial == 0)
    return;
  cslot_t *s = &c->slot[word(h, 0) & c->mask];
  uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_relaxed);
  if ((s1 & 1) || !atomic_compare_exchange_strong_explicit(
                      &s->seq, &s1, s1 + 1, memory_order_relaxed,
                      memory_order_relaxed))
    return; /* another writer has it: one entry less, never a torn one */
  atomic_thread_fence(memory_order_release);
  /* an eviction: the slot held another token's entry, still good */
  bool other = false;
  for (int i = 0; i < 4; i++)
    other |= atomic_load_explicit(&s->h[i], memory_order_relaxed) != word(h, i);
  if (other && atomic_load_explicit(&s->serial, memory_order_relaxed) != 0 &&
      atomic_load_explicit(&s->until, memory_order_relaxed) >= now_s) {
    atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
    mesh__counter_add(c->m_evictions, 1);
  }
  for (int i = 0; i < 4; i++)
    atomic_store_explicit(&s->h[i], word(h, i), memory_order_relaxed);
  atomic_store_explicit(&s->serial, serial, memory_order_relaxed);
  atomic_store_explicit(&s->until, until_s, memory_order_relaxed);
  atomic_store_explicit(&s->seq, s1 + 2, memory_order_release);
}

void mesh__jwt_cache_stats(mesh__jwt_cache_t *c, uint64_t *hits,
                           uint64_t *misses, uint64_t *evictions) {
  *hits = c ? atomic_load(&c->hits) : 0;
  *misses = c ? atomic_load(&c->misses) : 0;
  *evictions = c ? atomic_load(&c->evictions) : 0;
}

void mesh__jwt_cache_metrics(mesh__jwt_cache_t *c, mesh_t *m) {
  if (!c)
    return;
  c->m_hits = mesh__counter(m, "mesh_authn_token_cache_hits_total",
                            "Verified-token cache lookups that found the "
                            "token verified with the current key set (no "
                            "signature check).", NULL);
  c->m_misses = mesh__counter(m, "mesh_authn_token_cache_misses_total",
                              "Verified-token cache lookups that did not "
                              "(the signature was checked).", NULL);
  c->m_evictions = mesh__counter(m, "mesh_authn_token_cache_evictions_total",
                                 "Verified-token cache entries still good "
                                 "that a new token's entry replaced (the "
                                 "cache is too small for the tokens in use: "
                                 "authn.token_cache_size).", NULL);
}
