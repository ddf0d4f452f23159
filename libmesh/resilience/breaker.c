/* SPDX-License-Identifier: Apache-2.0 */
/* Circuit breakers: per-service atomic counters with exact limits.
 *
 * Envoy checks a limit and increments in two steps, so racing workers can
 * overshoot by one each; a compare-and-swap loop costs the same here and
 * never lets a counter pass its limit. */
#include <stdlib.h>

#include "resilience/resilience.h"

bool mesh__breaker_take(_Atomic int64_t *ctr, int64_t max,
                        _Atomic uint64_t *ov) {
  int64_t cur = atomic_load_explicit(ctr, memory_order_relaxed);
  for (;;) {
    if (cur >= max) {
      if (ov)
        atomic_fetch_add_explicit(ov, 1, memory_order_relaxed);
      return false;
    }
    if (atomic_compare_exchange_weak_explicit(ctr, &cur, cur + 1,
                                              memory_order_acq_rel,
                                              memory_order_relaxed))
      return true;
  }
}

void mesh__breaker_give(_Atomic int64_t *ctr) {
  int64_t cur = atomic_load_explicit(ctr, memory_order_relaxed);
  while (cur > 0 &&
         !atomic_compare_exchange_weak_explicit(ctr, &cur, cur - 1,
                                                memory_order_acq_rel,
                                                memory_order_relaxed)) {
  }
}

mesh__breakers_t *mesh__breakers_new(void) {
  mesh__breakers_t *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->heap = true;
  atomic_init(&b->refs, 1);
  b->sr_mean = b->sr_threshold = -1;
  return b;
}

void mesh__breakers_ref(mesh__breakers_t *b) {
  if (b && b->heap)
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void mesh__breakers_unref(mesh__breakers_t *b) {
  if (b && b->heap &&
      atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    free(b->mx);
    free(b);
  }
}

void mesh__breakers_conn_closed(void *user) {
  mesh__breakers_t *b = user;
  if (b)
    mesh__breaker_give(&b->connections);
}
