/* SPDX-License-Identifier: Apache-2.0 */
/* Maglev (Eisenbud et al., NSDI 2016, listing 1), built like Envoy's
 * MaglevTable so the same key maps to the same host:
 *  - hosts ordered by their hash key ("ip:port", see ring_hash.c);
 *  - offset = xxHash64(key, seed 0) % M, skip = xxHash64(key, seed 1) %
 *    (M - 1) + 1, permutation(j) = (offset + skip * j) % M;
 *  - weighted filling: normalized weights; in round r a host takes a slot
 *    when r * w >= its running target, which then grows by max_w
 *    (Envoy's exact arithmetic, in doubles);
 *  - a request hash h reads table[h % M].
 * An unusable host is skipped by reading the next slots, (h + k) % M; Envoy
 * rebuilds the table without it.
 * Build cost: about M ln M slot probes, see fill(). */
#include "lb/lb.h"

#include <stdlib.h>
#include <string.h>

/* Hot state of one host while the table fills: 24 bytes, so the 1,000 or
 * so hosts of a large pool stay in L1/L2 (the keys, up to 320 bytes each,
 * are only needed to hash and sort). */
typedef struct entry {
  uint32_t idx;
  uint32_t skip;   /* < m */
  uint32_t inv;    /* skip^-1 mod m (0: none, m not prime; NO_INV: not
                      computed yet: only hosts with a turn in the tail
                      need it, and Euclid's divides cost ~0.1 ms for
                      1,000 hosts) */
  uint32_t pos;    /* (offset + skip * next) % m, advanced incrementally */
  double weight, target;
} entry_t;

/* The hosts' keys, packed: key i is text + off[i] (NUL-terminated).  A
 * fixed 320-byte slot per host made a 320 KB array for 1,000 hosts: fresh
 * pages on every build, and a sort that walked all of them. */
typedef struct keys {
  char *text;
  uint32_t *off;
} keys_t;

/* A host to sort: the key's first 8 bytes big-endian (zero-padded after
 * the NUL, so they order as strcmp does), then the whole key on a tie:
 * most comparisons read no key text. */
typedef struct sortkey {
  uint64_t pre;
  uint32_t i;
} sortkey_t;

static uint64_t key_prefix(const char *key, size_t len) {
  uint64_t v = 0;
  for (size_t j = 0; j < 8; j++)
    v = v << 8 | (j < len ? (unsigned char)key[j] : 0u);
  return v;
}

static int cmp_key(const void *a, const void *b, void *arg) {
  const keys_t *k = arg;
  const sortkey_t *x = a, *y = b;
  if (x->pre != y->pre)
    return x->pre < y->pre ? -1 : 1;
  int c = strcmp(k->text + k->off[x->i], k->text + k->off[y->i]);
  if (c)
    return c;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* a^-1 mod m by extended Euclid; 0 when gcd(a, m) != 1. */
static uint32_t inverse(uint64_t a, uint32_t m) {
  int64_t t = 0, nt = 1, r = m, nr = (int64_t)(a % m);
  while (nr) {
    int64_t q = r / nr, x = t - q * nt, y = r - q * nr;
    t = nt;
    nt = x;
    r = nr;
    nr = y;
  }
  if (r != 1)
    return 0;
  return (uint32_t)(t < 0 ? t + m : t);
}

#define NO_INV UINT32_MAX /* inv < m <= UINT32_MAX */

/* Hosts with a positive weight, sorted by key, with their permutations. */
static entry_t *entries(const mesh__lb_pool_t *p, const double *norm,
                        uint32_t m, uint32_t *ne, double *max_w) {
  size_t n = p->n ? p->n : 1, cap = n * 24, used = 0;
  entry_t *e = calloc(n, sizeof *e);
  keys_t keys = {malloc(cap), malloc(n * sizeof *keys.off)};
  sortkey_t *order = malloc(n * sizeof *order);
  uint64_t *offset = malloc(n * sizeof *offset);
  uint64_t *skip = malloc(n * sizeof *skip);
  if (!e || !keys.text || !keys.off || !order || !offset || !skip)
    goto fail;
  uint32_t k = 0;
  *max_w = 0.0;
  for (uint32_t i = 0; i < p->n; i++) {
    if (norm[i] <= 0)
      continue;
    char key[320];
    size_t len = mesh__lb_host_key(p->hosts[i], key, sizeof key);
    if (len == 0)
      continue;
    if (used + len + 1 > cap) {
      char *t = realloc(keys.text, cap * 2 + len + 1);
      if (!t)
        goto fail;
      keys.text = t;
      cap = cap * 2 + len + 1;
    }
    memcpy(keys.text + used, key, len + 1);
    keys.off[i] = (uint32_t)used;
    used += len + 1;
    offset[i] = mesh__xxh64(key, len, 0) % m;
    skip[i] = mesh__xxh64(key, len, 1) % (m - 1) + 1;
    order[k++] = (sortkey_t){key_prefix(key, len), i};
    if (norm[i] > *max_w)
      *max_w = norm[i];
  }
  qsort_r(order, k, sizeof *order, cmp_key, &keys);
  for (uint32_t j = 0; j < k; j++) {
    uint32_t i = order[j].i;
    e[j] = (entry_t){.idx = i, .skip = (uint32_t)skip[i],
                     .inv = NO_INV,
                     .pos = (uint32_t)offset[i], .weight = norm[i]};
  }
  *ne = k;
  goto out;
fail:
  free(e);
  e = NULL;
out:
  free(keys.text);
  free(keys.off);
  free(order);
  free(offset);
  free(skip);
  return e;
}

/* The last TAIL free slots are found without walking: slot f is step
 * j = (f - pos) * skip^-1 mod m of the walk from pos, so the next free slot
 * is the free f with the least j (the one a walk stops at).  The walk's
 * expected m / F probes with F slots left cost more than the F
 * multiplications per turn this takes once F < ~sqrt(m): for m = 65537 the
 * last 256 slots take a sixth of all probes.  The mod is Barrett's
 * (a multiply, not a divide): that is what moves the break-even up. */
#ifndef MESH__MAGLEV_TAIL
#define MESH__MAGLEV_TAIL 256u
#endif
#define TAIL MESH__MAGLEV_TAIL

typedef struct tail {
  uint32_t n, slot[TAIL];
  uint64_t mu; /* floor(2^64 / m), Barrett's constant */
} tail_t;

/* x mod m for any x < 2^64: q is floor(x / m) or one less. */
static inline uint64_t mod_m(uint64_t x, uint32_t m, uint64_t mu) {
#ifdef __SIZEOF_INT128__
  uint64_t q = (uint64_t)(((unsigned __int128)x * mu) >> 64);
  uint64_t r = x - q * m;
  return r >= m ? r - m : r;
#else /* no 128-bit product: the divide */
  (void)mu;
  return x % m;
#endif
}

static uint32_t tail_take(tail_t *t, uint32_t m, const entry_t *x) {
  uint32_t best = 0;
  uint64_t bj = UINT64_MAX;
  for (uint32_t k = 0; k < t->n; k++) {
    uint64_t d = t->slot[k] >= x->pos ? t->slot[k] - x->pos
                                      : t->slot[k] + m - x->pos;
    uint64_t j = mod_m(d * x->inv, m, t->mu);
    if (j < bj) {
      bj = j;
      best = k;
    }
  }
  uint32_t c = t->slot[best];
  t->slot[best] = t->slot[--t->n];
  return c;
}

/* Next free slot of x's walk: step through the byte map, or, in the tail,
 * invert the walk (t->n != 0 once the tail's free slots are listed). */
static uint32_t next_free(const uint8_t *taken, uint32_t m, tail_t *t,
                          entry_t *x) {
  if (t->n && x->inv == NO_INV)
    x->inv = inverse(x->skip, m);
  if (t->n && x->inv)
    return tail_take(t, m, x);
  uint32_t c = x->pos, s = x->skip;
  while (taken[c]) {
    c += s;
    if (c >= m)
      c -= m;
  }
  for (uint32_t k = 0; k < t->n; k++) /* a walked turn in the tail */
    if (t->slot[k] == c) {
      t->slot[k] = t->slot[--t->n];
      break;
    }
  return c;
}

/* Each host walks its permutation (offset + skip * j) % m to its next
 * free slot.  The walk is the whole cost (about m ln m probes, ~765,000
 * for m = 65537), so the position advances by one addition and the
 * "taken" test is one byte load from an m-byte map (fits L2; a bitmap
 * needs two more instructions per probe, a tenth of the build). */
static int fill(uint32_t *table, uint32_t m, entry_t *e, uint32_t ne,
                double max_w) {
  uint8_t *taken = calloc(m, 1);
  if (!taken)
    return MESH_ERR_NOMEM;
  tail_t tail = {.mu = UINT64_MAX / m};
  bool listed = false;
  /* Equal weights (the common case): every host takes its turn in every
   * round (r * w >= (r - 1) * w), so the weight test is skipped. */
  bool uniform = true;
  for (uint32_t i = 0; i < ne; i++)
    uniform = uniform && e[i].weight == max_w;
  uint64_t filled = 0;
  for (uint64_t round = 1; filled < m; round++) {
    for (uint32_t i = 0; i < ne && filled < m; i++) {
      entry_t *x = &e[i];
      if (!uniform) {
        if ((double)round * x->weight < x->target)
          continue;
        x->target += max_w;
      }
      if (!listed && m - filled <= TAIL) {
        for (uint32_t c = 0; c < m; c++)
          if (!taken[c])
            tail.slot[tail.n++] = c;
        listed = true;
      }
      uint32_t c = next_free(taken, m, &tail, x);
      taken[c] = 1;
      table[c] = x->idx;
      c += x->skip;
      x->pos = c >= m ? c - m : c;
      filled++;
    }
  }
  free(taken);
  return MESH_OK;
}

int mesh__maglev_build(mesh__lb_pool_t *p, const double *norm,
                       uint32_t table_size) {
  if (p->n == 0 || table_size < 2)
    return MESH_OK;
  uint32_t ne = 0;
  double max_w = 0;
  entry_t *e = entries(p, norm, table_size, &ne, &max_w);
  if (!e)
    return MESH_ERR_NOMEM;
  if (ne == 0) {
    free(e);
    return MESH_OK;
  }
  p->table = malloc(sizeof *p->table * table_size);
  if (!p->table || fill(p->table, table_size, e, ne, max_w) != MESH_OK) {
    free(p->table);
    p->table = NULL;
    free(e);
    return MESH_ERR_NOMEM;
  }
  p->table_size = table_size;
  free(e);
  return MESH_OK;
}

mesh__host_t *mesh__maglev_pick(const mesh__lb_pool_t *p, uint64_t hash,
                                const mesh__lb_ctx_t *ctx, int64_t now_ms,
                                bool need_usable, bool need_fresh) {
  if (!p->table)
    return NULL;
  uint64_t at = hash % p->table_size;
  for (uint32_t k = 0; k < p->table_size; k++) {
    mesh__host_t *h = p->hosts[p->table[(at + k) % p->table_size]];
    if (mesh__lb_acceptable(h, ctx, now_ms, need_usable, need_fresh))
      return h;
  }
  return NULL;
}
