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
  uint32_t pos;    /* (offset + skip * next) % m, advanced incrementally */
  double weight, target;
} entry_t;

typedef char host_key_t[320];

static int cmp_key(const void *a, const void *b, void *arg) {
  const host_key_t *keys = arg;
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  int c = strcmp(keys[x], keys[y]);
  if (c)
    return c;
  return x < y ? -1 : x > y;
}

/* Hosts with a positive weight, sorted by key, with their permutations. */
static entry_t *entries(const mesh__lb_pool_t *p, const double *norm,
                        uint32_t m, uint32_t *ne, double *max_w) {
  size_t n = p->n ? p->n : 1;
  entry_t *e = calloc(n, sizeof *e);
  host_key_t *keys = malloc(n * sizeof *keys);
  uint32_t *order = malloc(n * sizeof *order);
  uint64_t *offset = malloc(n * sizeof *offset);
  uint64_t *skip = malloc(n * sizeof *skip);
  if (!e || !keys || !order || !offset || !skip) {
    free(e);
    e = NULL;
    goto out;
  }
  uint32_t k = 0;
  *max_w = 0.0;
  for (uint32_t i = 0; i < p->n; i++) {
    if (norm[i] <= 0)
      continue;
    size_t len = mesh__lb_host_key(p->hosts[i], keys[i], sizeof keys[i]);
    if (len == 0)
      continue;
    offset[i] = mesh__xxh64(keys[i], len, 0) % m;
    skip[i] = mesh__xxh64(keys[i], len, 1) % (m - 1) + 1;
    order[k++] = i;
    if (norm[i] > *max_w)
      *max_w = norm[i];
  }
  qsort_r(order, k, sizeof *order, cmp_key, keys);
  for (uint32_t j = 0; j < k; j++) {
    uint32_t i = order[j];
    e[j] = (entry_t){.idx = i, .skip = (uint32_t)skip[i],
                     .pos = (uint32_t)offset[i], .weight = norm[i]};
  }
  *ne = k;
out:
  free(keys);
  free(order);
  free(offset);
  free(skip);
  return e;
}

/* Each host walks its permutation (offset + skip * j) % m to its next
 * free slot.  The walk is the whole cost (about m ln m probes), so the
 * position advances by one addition and the "taken" test reads a bitmap
 * of m bits that fits in L1 instead of the 4m-byte table. */
static int fill(uint32_t *table, uint32_t m, entry_t *e, uint32_t ne,
                double max_w) {
  uint64_t *taken = calloc((m + 63) / 64, sizeof *taken);
  if (!taken)
    return MESH_ERR_NOMEM;
  uint64_t filled = 0;
  for (uint64_t round = 1; filled < m; round++) {
    for (uint32_t i = 0; i < ne && filled < m; i++) {
      entry_t *x = &e[i];
      if ((double)round * x->weight < x->target)
        continue;
      x->target += max_w;
      uint32_t c = x->pos;
      while (taken[c >> 6] & (1ull << (c & 63))) {
        c += x->skip;
        if (c >= m)
          c -= m;
      }
      taken[c >> 6] |= 1ull << (c & 63);
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
