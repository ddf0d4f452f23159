/* SPDX-License-Identifier: Apache-2.0 */
/* Weighted random: Vose's alias method, O(1) per draw from one 64-bit
 * random value (high half picks the column, low half flips its coin).
 * Unusable hosts are rejected and redrawn, which keeps the remaining hosts
 * in their weight ratios; after 16 misses a scan from a random start
 * settles it.  Equal weights need no table. */
#include "lb/lb.h"

#include <stdlib.h>

int mesh__random_build(mesh__lb_pool_t *p) {
  if (p->equal || p->n < 2)
    return MESH_OK;
  uint32_t n = p->n;
  double *scaled = malloc(sizeof *scaled * n);
  uint32_t *small = malloc(sizeof *small * n), *large = malloc(sizeof *large * n);
  p->alias_prob = malloc(sizeof *p->alias_prob * n);
  p->alias = malloc(sizeof *p->alias * n);
  if (!scaled || !small || !large || !p->alias_prob || !p->alias) {
    free(scaled);
    free(small);
    free(large);
    return MESH_ERR_NOMEM; /* pool_fini frees the table */
  }
  uint32_t ns = 0, nl = 0;
  for (uint32_t i = 0; i < n; i++) {
    scaled[i] = (double)p->weight[i] * n / (double)p->total;
    if (scaled[i] < 1.0)
      small[ns++] = i;
    else
      large[nl++] = i;
  }
  while (ns > 0 && nl > 0) {
    uint32_t s = small[--ns], l = large[nl - 1];
    p->alias_prob[s] = (uint32_t)(scaled[s] * 4294967296.0);
    p->alias[s] = l;
    scaled[l] -= 1.0 - scaled[s];
    if (scaled[l] < 1.0) {
      nl--;
      small[ns++] = l;
    }
  }
  /* Leftovers are 1.0 up to rounding: always their own column. */
  while (nl > 0) {
    uint32_t l = large[--nl];
    p->alias_prob[l] = UINT32_MAX;
    p->alias[l] = l;
  }
  while (ns > 0) {
    uint32_t s = small[--ns];
    p->alias_prob[s] = UINT32_MAX;
    p->alias[s] = s;
  }
  free(scaled);
  free(small);
  free(large);
  return MESH_OK;
}

uint32_t mesh__random_index(const mesh__lb_pool_t *p, uint64_t r) {
  uint32_t i = mesh__lb_below(r, p->n);
  if (!p->alias)
    return i;
  return (uint32_t)r < p->alias_prob[i] ? i : p->alias[i];
}

/* One acceptable host by weighted rejection sampling; NULL after 16 misses
 * (the caller then scans).  Rejection keeps the remaining hosts in their
 * weight ratios. */
mesh__host_t *mesh__random_draw(const mesh__lb_pool_t *p,
                                const mesh__lb_ctx_t *ctx, int64_t now_ms,
                                bool need_usable, bool need_fresh,
                                uint32_t *idx) {
  for (int i = 0; i < 16; i++) {
    uint32_t k = mesh__random_index(p, mesh__lb_rand());
    if (mesh__lb_acceptable(p->hosts[k], ctx, now_ms, need_usable,
                            need_fresh)) {
      *idx = k;
      return p->hosts[k];
    }
  }
  return NULL;
}

mesh__host_t *mesh__random_pick(const mesh__lb_pool_t *p,
                                const mesh__lb_ctx_t *ctx, int64_t now_ms,
                                bool need_usable, bool need_fresh) {
  if (p->n == 0)
    return NULL;
  uint32_t k;
  mesh__host_t *h = mesh__random_draw(p, ctx, now_ms, need_usable, need_fresh, &k);
  return h ? h : mesh__lb_scan(p, ctx, now_ms, need_usable, need_fresh);
}
