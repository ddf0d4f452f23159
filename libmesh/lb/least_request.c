/* SPDX-License-Identifier: Apache-2.0 */
/* Least request, power of `choice_count` choices (default 2).
 *
 * Equal weights: Envoy's unweighted P2C exactly — draw candidates uniformly,
 * keep the one with the fewest active requests, ties to the first draw.
 *
 * Unequal weights: Envoy switches to an EDF schedule keyed by
 * weight / (active + 1)^bias (bias 1.0), which needs a mutable, per-thread
 * scheduler.  Lock-free here, we keep the same target — active requests in
 * proportion to weight — with P2C: candidates are drawn in proportion to
 * weight (alias table), and the one with the lower active / weight wins
 * (compared as a1 * w2 < a2 * w1, no division; ties to the first draw).
 * Dropping Envoy's "+1" is what makes an idle service split exactly by
 * weight: with no active requests every comparison ties and the weighted
 * first draw stands. */
#include "lb/lb.h"

static uint32_t active(const mesh__host_t *h) {
  return atomic_load_explicit(&((mesh__host_t *)h)->active_rq,
                              memory_order_relaxed);
}

/* Does candidate b beat the current best a? */
static bool better(const mesh__lb_pool_t *p, uint32_t b, uint32_t a) {
  uint64_t ab = active(p->hosts[b]), aa = active(p->hosts[a]);
  if (p->equal)
    return ab < aa;
  return ab * p->weight[a] < aa * p->weight[b];
}

mesh__host_t *mesh__lr_pick(const mesh__lb_pool_t *p, uint32_t choices,
                            const mesh__lb_ctx_t *ctx, int64_t now_ms,
                            bool need_usable, bool need_fresh) {
  if (p->n == 0)
    return NULL;
  uint32_t best = 0;
  mesh__host_t *h = mesh__random_draw(p, ctx, now_ms, need_usable, need_fresh, &best);
  if (!h)
    return mesh__lb_scan(p, ctx, now_ms, need_usable, need_fresh);
  for (uint32_t c = 1; c < choices; c++) {
    uint32_t k;
    if (mesh__random_draw(p, ctx, now_ms, need_usable, need_fresh, &k) && better(p, k, best))
      best = k;
  }
  return p->hosts[best];
}
