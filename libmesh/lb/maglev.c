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
 * rebuilds the table without it. */
#include "lb/lb.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
  char key[320];
  uint32_t idx;
  uint64_t offset, skip, next, count;
  double weight, target;
} entry_t;

static int cmp_key(const void *a, const void *b) {
  const entry_t *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c)
    return c;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Hosts with a positive weight, sorted by key, with their permutations. */
static entry_t *entries(const mesh__lb_pool_t *p, const double *norm,
                        uint32_t m, uint32_t *ne, double *max_w) {
  entry_t *e = calloc(p->n ? p->n : 1, sizeof *e);
  if (!e)
    return NULL;
  uint32_t k = 0;
  *max_w = 0.0;
  for (uint32_t i = 0; i < p->n; i++) {
    if (norm[i] <= 0)
      continue;
    size_t len = mesh__lb_host_key(p->hosts[i], e[k].key, sizeof e[k].key);
    if (len == 0)
      continue;
    e[k].idx = i;
    e[k].offset = mesh__xxh64(e[k].key, len, 0) % m;
    e[k].skip = mesh__xxh64(e[k].key, len, 1) % (m - 1) + 1;
    e[k].weight = norm[i];
    if (norm[i] > *max_w)
      *max_w = norm[i];
    k++;
  }
  qsort(e, k, sizeof *e, cmp_key);
  *ne = k;
  return e;
}

static void fill(uint32_t *table, uint32_t m, entry_t *e, uint32_t ne,
                 double max_w) {
  for (uint32_t i = 0; i < m; i++)
    table[i] = UINT32_MAX;
  uint64_t filled = 0;
  for (uint64_t round = 1; filled < m; round++) {
    for (uint32_t i = 0; i < ne && filled < m; i++) {
      if ((double)round * e[i].weight < e[i].target)
        continue;
      e[i].target += max_w;
      uint64_t c = (e[i].offset + e[i].skip * e[i].next) % m;
      while (table[c] != UINT32_MAX) {
        e[i].next++;
        c = (e[i].offset + e[i].skip * e[i].next) % m;
      }
      table[c] = e[i].idx;
      e[i].next++;
      e[i].count++;
      filled++;
    }
  }
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
  if (!p->table) {
    free(e);
    return MESH_ERR_NOMEM;
  }
  fill(p->table, table_size, e, ne, max_w);
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
