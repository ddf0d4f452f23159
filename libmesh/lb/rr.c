/* SPDX-License-Identifier: Apache-2.0 */
/* Weighted round robin, smooth: the order Envoy's EDF scheduler produces
 * (host i's k-th turn has deadline k / w_i, earliest deadline first, ties
 * in host order), precomputed once per snapshot as one full cycle of
 * sum(w) / gcd(w) turns.  Picking is one atomic increment of a shared
 * cursor, so many threads share one smooth sequence without a lock.
 *
 * An unusable host does not pass its turn to its neighbour: the picker takes
 * the next turn of the shared sequence instead, so the remaining hosts keep
 * their weight ratios (a neighbour would otherwise get double share).
 * Equal weights skip the schedule: turn t is host t mod n. */
#include "lb/lb.h"

#include <stdlib.h>

static uint64_t gcd64(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* EDF heap entry: next deadline of host idx is k / w. */
typedef struct edf {
  uint64_t k, w;
  uint32_t idx;
} edf_t;

static bool edf_before(const edf_t *a, const edf_t *b) {
  uint64_t l = a->k * b->w, r = b->k * a->w; /* k/w compare, no division */
  if (l != r)
    return l < r;
  return a->idx < b->idx;
}

static void edf_down(edf_t *h, uint32_t n, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, m = i;
    if (l < n && edf_before(&h[l], &h[m]))
      m = l;
    if (l + 1 < n && edf_before(&h[l + 1], &h[m]))
      m = l + 1;
    if (m == i)
      return;
    edf_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* Reduce weights so one cycle fits MESH__LB_SCHED_MAX turns: divide by the
 * gcd, then scale down proportionally (each host keeps at least 1 turn). */
static uint64_t reduce_weights(const mesh__lb_pool_t *p, uint64_t *w) {
  uint64_t g = 0, total = 0;
  for (uint32_t i = 0; i < p->n; i++)
    g = gcd64(g, p->weight[i]);
  for (uint32_t i = 0; i < p->n; i++) {
    w[i] = p->weight[i] / (g ? g : 1);
    total += w[i];
  }
  if (total <= MESH__LB_SCHED_MAX)
    return total;
  uint64_t cap = MESH__LB_SCHED_MAX > p->n ? MESH__LB_SCHED_MAX : p->n;
  total = 0;
  for (uint32_t i = 0; i < p->n; i++) {
    double s = (double)w[i] * (double)cap / (double)p->total * (double)g;
    w[i] = s < 1.0 ? 1 : (uint64_t)s;
    total += w[i];
  }
  return total;
}

int mesh__rr_build(mesh__lb_pool_t *p) {
  if (p->equal || p->n < 2)
    return MESH_OK;
  uint64_t *w = malloc(sizeof *w * p->n);
  edf_t *heap = malloc(sizeof *heap * p->n);
  if (!w || !heap) {
    free(w);
    free(heap);
    return MESH_ERR_NOMEM;
  }
  uint64_t total = reduce_weights(p, w);
  p->sched = malloc(sizeof *p->sched * (size_t)total);
  if (!p->sched) {
    free(w);
    free(heap);
    return MESH_ERR_NOMEM;
  }
  for (uint32_t i = 0; i < p->n; i++)
    heap[i] = (edf_t){.k = 1, .w = w[i], .idx = i};
  for (uint32_t i = p->n / 2 + 1; i-- > 0;)
    edf_down(heap, p->n, i);
  for (uint64_t t = 0; t < total; t++) {
    p->sched[t] = heap[0].idx;
    heap[0].k++;
    edf_down(heap, p->n, 0);
  }
  p->nsched = (uint32_t)total;
  free(w);
  free(heap);
  return MESH_OK;
}

static mesh__host_t *turn(mesh__lb_pool_t *p) {
  /* 32-bit arithmetic: a 64-bit division costs more than the rest of the
   * turn; the wrap every 2^32 picks shifts the sequence once. */
  uint32_t t = (uint32_t)atomic_fetch_add_explicit(p->cursor, 1,
                                                   memory_order_relaxed);
  if (!p->sched)
    return p->hosts[t % p->n];
  return p->hosts[p->sched[t % p->nsched]];
}

mesh__host_t *mesh__rr_pick(mesh__lb_pool_t *p, const mesh__lb_ctx_t *ctx,
                            int64_t now_ms, bool need_usable, bool need_fresh) {
  if (p->n == 0)
    return NULL;
  /* Bounded: a full cycle when short, else enough turns that a miss means
   * most hosts are out, and the scan settles it. */
  uint32_t len = p->sched ? p->nsched : p->n;
  uint32_t tries = len < 64 ? len : 64;
  for (uint32_t i = 0; i < tries; i++) {
    mesh__host_t *h = turn(p);
    if (mesh__lb_acceptable(h, ctx, now_ms, need_usable, need_fresh))
      return h;
  }
  return mesh__lb_scan(p, ctx, now_ms, need_usable, need_fresh);
}
