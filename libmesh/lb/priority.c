/* SPDX-License-Identifier: Apache-2.0 */
/* Priority levels, failover and panic: Envoy's LoadBalancerBase arithmetic.
 *
 *  health(p)  = min(100, overprovisioning * healthy(p) / hosts(p))
 *               (overprovisioning 140 = Envoy's factor 1.4)
 *  total      = min(100, sum of health)
 *  load(p)    = the highest levels take min(left, health(p) * 100 / total)
 *               until 100 is used up; rounding leftovers go to the first
 *               level with health
 *  panic(p)   = total < 100 and 100 * healthy(p) / hosts(p) < threshold;
 *               a panicking level picks among all its hosts, usable or not
 *  all levels in panic: load by host count instead of health.
 *
 * Healthy means mesh__host_usable() now.  The numbers live in a per-set
 * "health view": two buffers of atomics and a sequence counter per buffer
 * (a seqlock).  A refresher writes the idle buffer and flips; readers check
 * the counter after deciding and redo the decision if it moved. */
#include "lb/lb.h"

#include <stdlib.h>

int mesh__lb_view_alloc(mesh__lb_set_t *s) {
  uint32_t slots = 0;
  for (uint32_t l = 0; l < s->nlevel; l++) {
    s->lv[l].slot = slots;
    slots += MESH__LB_LEVEL_SLOTS + s->lv[l].nloc;
  }
  s->nslots = slots ? slots : 1;
  s->scratch = malloc(sizeof *s->scratch * 2 * (s->nlevel ? s->nlevel : 1));
  if (!s->scratch)
    return MESH_ERR_NOMEM;
  for (int b = 0; b < 2; b++) {
    s->view[b] = malloc(sizeof *s->view[b] * s->nslots);
    if (!s->view[b])
      return MESH_ERR_NOMEM;
    for (uint32_t i = 0; i < s->nslots; i++)
      atomic_init(&s->view[b][i], 0);
    atomic_init(&s->seq[b], 0);
  }
  atomic_init(&s->cur, 0);
  atomic_init(&s->view_ms, 0);
  atomic_flag_clear(&s->busy);
  return MESH_OK;
}

static uint32_t count_usable(const mesh__lb_pool_t *p, int64_t now_ms) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < p->n; i++)
    k += mesh__host_usable(p->hosts[i], now_ms);
  return k;
}

static void put(_Atomic uint64_t *v, uint32_t i, uint64_t x) {
  atomic_store_explicit(&v[i], x, memory_order_relaxed);
}

/* Loads when every level panics: by host count (Envoy's
 * recalculateLoadInTotalPanic). */
static void loads_total_panic(const mesh__lb_set_t *s, _Atomic uint64_t *v) {
  uint64_t left = 100;
  for (uint32_t l = 0; l < s->nlevel; l++) {
    uint64_t load = 100ull * s->lv[l].pool.n / s->nhosts;
    put(v, s->lv[l].slot + MESH__LB_SLOT_LOAD, load);
    left -= load;
  }
  put(v, s->lv[0].slot + MESH__LB_SLOT_LOAD,
      atomic_load(&v[s->lv[0].slot + MESH__LB_SLOT_LOAD]) + left);
}

/* Loads by health (Envoy's distributeLoad, healthy hosts only: libmesh has
 * no "degraded" state). */
static void loads_by_health(const mesh__lb_set_t *s, _Atomic uint64_t *v,
                            const uint32_t *health, uint32_t total) {
  uint64_t left = 100;
  int32_t first = -1;
  for (uint32_t l = 0; l < s->nlevel; l++) {
    if (first < 0 && health[l] > 0)
      first = (int32_t)l;
    uint64_t load = (uint64_t)health[l] * 100 / total;
    if (load > left)
      load = left;
    put(v, s->lv[l].slot + MESH__LB_SLOT_LOAD, load);
    left -= load;
  }
  if (left && first >= 0) {
    uint32_t i = s->lv[first].slot;
    put(v, i, atomic_load(&v[i]) + left);
  }
}

/* Fill buffer v for the state of the hosts at now_ms.  s->scratch is the
 * refresher's own (serialized by s->busy). */
static void compute(const mesh__lb_state_t *st, mesh__lb_set_t *s,
                    _Atomic uint64_t *v, int64_t now_ms) {
  uint32_t *health = s->scratch, *healthy = s->scratch + s->nlevel;
  uint32_t total = 0;
  for (uint32_t l = 0; l < s->nlevel; l++) {
    const mesh__lb_pool_t *p = &s->lv[l].pool;
    healthy[l] = count_usable(p, now_ms);
    uint64_t h = (uint64_t)st->overprovisioning * healthy[l] / p->n;
    health[l] = h > 100 ? 100 : (uint32_t)h;
    total += health[l];
  }
  if (total > 100)
    total = 100;
  bool all_panic = s->nlevel > 0;
  for (uint32_t l = 0; l < s->nlevel; l++) {
    const mesh__lb_pool_t *p = &s->lv[l].pool;
    bool panic = total < 100 && 100.0 * healthy[l] / p->n < (double)st->panic;
    put(v, s->lv[l].slot + MESH__LB_SLOT_PANIC, panic);
    all_panic = all_panic && panic;
    mesh__lb_view_localities(st, &s->lv[l], v + s->lv[l].slot, l == 0, panic,
                             healthy[l], now_ms);
  }
  if (s->nlevel == 0)
    return;
  if (all_panic)
    loads_total_panic(s, v);
  else if (total == 0) /* panic disabled, nothing healthy: Envoy sends to P=0 */
    for (uint32_t l = 0; l < s->nlevel; l++)
      put(v, s->lv[l].slot + MESH__LB_SLOT_LOAD, l == 0 ? 100 : 0);
  else
    loads_by_health(s, v, health, total);
}

void mesh__lb_view_compute(const mesh__lb_state_t *st, mesh__lb_set_t *s,
                           int64_t now_ms) {
  uint32_t b = 1 - atomic_load_explicit(&s->cur, memory_order_relaxed);
  uint32_t q = atomic_load_explicit(&s->seq[b], memory_order_relaxed);
  atomic_store_explicit(&s->seq[b], q + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  compute(st, s, s->view[b], now_ms);
  atomic_store_explicit(&s->seq[b], q + 2, memory_order_release);
  atomic_store_explicit(&s->cur, b, memory_order_release);
  atomic_store_explicit(&s->view_ms, now_ms, memory_order_relaxed);
}

void mesh__lb_view_maybe_refresh(const mesh__lb_state_t *st, mesh__lb_set_t *s,
                                 int64_t now_ms) {
  int64_t at = atomic_load_explicit(&s->view_ms, memory_order_relaxed);
  int64_t age = now_ms - at;
  if (age < MESH__LB_VIEW_REFRESH_MS && age > -MESH__LB_VIEW_REFRESH_MS)
    return;
  /* One refresher; the others go on with the current view. */
  if (atomic_flag_test_and_set_explicit(&s->busy, memory_order_acquire))
    return;
  if (atomic_load_explicit(&s->view_ms, memory_order_relaxed) == at)
    mesh__lb_view_compute(st, s, now_ms);
  atomic_flag_clear_explicit(&s->busy, memory_order_release);
}

uint32_t mesh__lb_view_begin(const mesh__lb_set_t *s, uint32_t *seq) {
  mesh__lb_set_t *m = (mesh__lb_set_t *)s; /* atomics: loads only */
  uint32_t b = atomic_load_explicit(&m->cur, memory_order_acquire);
  *seq = atomic_load_explicit(&m->seq[b], memory_order_acquire);
  return b;
}

bool mesh__lb_view_valid(const mesh__lb_set_t *s, uint32_t buf, uint32_t seq) {
  mesh__lb_set_t *m = (mesh__lb_set_t *)s;
  atomic_thread_fence(memory_order_acquire);
  return (seq & 1) == 0 &&
         atomic_load_explicit(&m->seq[buf], memory_order_relaxed) == seq;
}

uint32_t mesh__lb_choose_level(const mesh__lb_set_t *s, uint32_t buf,
                               uint64_t h) {
  uint64_t x = h % 100 + 1, cum = 0;
  for (uint32_t l = 0; l < s->nlevel; l++) {
    cum += mesh__lb_slot(s, buf, s->lv[l].slot + MESH__LB_SLOT_LOAD);
    if (x <= cum)
      return l;
  }
  return 0; /* a torn read; the caller re-reads */
}
