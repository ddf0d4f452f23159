/* SPDX-License-Identifier: Apache-2.0 */
/* Peak EWMA, as in Finagle and Linkerd (tower's PeakEwma + P2C):
 *   cost = rtt_estimate * (active + 1)
 * The estimate jumps to any latency above it (the peak), and otherwise
 * decays toward new observations with weight exp(-elapsed / 10 s); between
 * observations it also decays toward 0 when read, so an idle host's cost
 * falls and it gets probed again.  A host with no observation yet costs the
 * default RTT (30 ms, Linkerd's), so a new host is not flooded.
 *
 * Lock-free: the estimate and its timestamp are two atomics on the host;
 * reports update the estimate with a CAS loop and then the stamp.  A reader
 * can pair a new estimate with the previous stamp, which only makes the
 * decay a few microseconds longer or shorter.  Picks never write.
 *
 * Weights: candidates are drawn in proportion to weight and the lower cost
 * wins (ties to the first draw), so hosts of equal cost — an idle service
 * with no observations yet — split exactly by weight, and latency decides
 * otherwise.  Dividing the cost by the weight as well would count the
 * weight twice. */
#include "lb/lb.h"

#include <math.h>

static double decayed(double est, int64_t elapsed_ns) {
  if (elapsed_ns <= 0)
    return est;
  return est * exp(-(double)elapsed_ns / (double)MESH__LB_EWMA_DECAY_NS);
}

double mesh__ewma_cost(const mesh__host_t *h, int64_t now_ns) {
  mesh__host_t *m = (mesh__host_t *)h; /* atomics: loads only */
  uint64_t est = atomic_load_explicit(&m->ewma_ns, memory_order_relaxed);
  int64_t stamp = atomic_load_explicit(&m->ewma_stamp_ns, memory_order_relaxed);
  uint32_t act = atomic_load_explicit(&m->active_rq, memory_order_relaxed);
  double rtt = est == 0 ? (double)MESH__LB_EWMA_DEFAULT_RTT_NS
                        : decayed((double)est, now_ns - stamp);
  return rtt * ((double)act + 1.0);
}

void mesh__lb_report(mesh__host_t *h, int64_t latency_ns, bool ok) {
  if (!h)
    return;
  if (latency_ns < 0)
    latency_ns = 0;
  int64_t now = mesh__now_ns();
  uint64_t old = atomic_load_explicit(&h->ewma_ns, memory_order_relaxed);
  uint64_t next;
  do {
    int64_t stamp =
        atomic_load_explicit(&h->ewma_stamp_ns, memory_order_relaxed);
    double rtt = (double)latency_ns;
    if (!ok && rtt < (double)old)
      rtt = (double)old; /* a failure never makes a host look faster */
    if (old == 0 || rtt > (double)old) {
      next = (uint64_t)rtt;
    } else {
      double w = exp(-(double)(now - stamp) / (double)MESH__LB_EWMA_DECAY_NS);
      if (now - stamp <= 0)
        w = 1.0;
      next = (uint64_t)((double)old * w + rtt * (1.0 - w));
    }
    if (next == 0)
      next = 1; /* 0 means "no observation" */
  } while (!atomic_compare_exchange_weak_explicit(
      &h->ewma_ns, &old, next, memory_order_relaxed, memory_order_relaxed));
  atomic_store_explicit(&h->ewma_stamp_ns, now, memory_order_relaxed);
}


mesh__host_t *mesh__ewma_pick(const mesh__lb_pool_t *p, uint32_t choices,
                              const mesh__lb_ctx_t *ctx, int64_t now_ms,
                              bool need_usable, bool need_fresh) {
  if (p->n == 0)
    return NULL;
  uint32_t best;
  if (!mesh__random_draw(p, ctx, now_ms, need_usable, need_fresh, &best))
    return mesh__lb_scan(p, ctx, now_ms, need_usable, need_fresh);
  if (p->n == 1)
    return p->hosts[best];
  int64_t now_ns = mesh__now_ns();
  double best_cost = mesh__ewma_cost(p->hosts[best], now_ns);
  for (uint32_t c = 1; c < choices; c++) {
    uint32_t k;
    if (!mesh__random_draw(p, ctx, now_ms, need_usable, need_fresh, &k))
      continue;
    double cost = mesh__ewma_cost(p->hosts[k], now_ns);
    if (cost < best_cost) {
      best = k;
      best_cost = cost;
    }
  }
  return p->hosts[best];
}
