/* SPDX-License-Identifier: Apache-2.0 */
/* One publication point for an immutable, refcounted object (a key set, a
 * bundle set): readers take a reference without a lock and never see a
 * half-built object; a writer swaps the pointer and waits until no reader
 * can still be between "load" and "ref" on the old one.  The same epoch
 * scheme as endpoint's snapshots and authz's policy sets, for any type. */
#include <sched.h>

#include "core/core.h"

void mesh__pub_init(mesh__pub_t *p) {
  atomic_init(&p->cur, NULL);
  atomic_init(&p->epoch, 0);
  atomic_init(&p->readers[0], 0);
  atomic_init(&p->readers[1], 0);
  pthread_mutex_init(&p->wmu, NULL);
}

void mesh__pub_fini(mesh__pub_t *p) { pthread_mutex_destroy(&p->wmu); }

void *mesh__pub_acquire(mesh__pub_t *p, void (*ref)(void *obj)) {
  for (;;) {
    uint32_t e = atomic_load(&p->epoch);
    atomic_fetch_add(&p->readers[e & 1], 1);
    if (atomic_load(&p->epoch) != e) {
      atomic_fetch_sub(&p->readers[e & 1], 1);
      continue;
    }
    void *o = atomic_load(&p->cur);
    if (o)
      ref(o);
    atomic_fetch_sub(&p->readers[e & 1], 1);
    return o;
  }
}

void *mesh__pub_peek(mesh__pub_t *p) { return atomic_load(&p->cur); }

void *mesh__pub_swap(mesh__pub_t *p, void *obj) {
  pthread_mutex_lock(&p->wmu);
  void *old = atomic_exchange(&p->cur, obj);
  uint32_t e = atomic_fetch_add(&p->epoch, 1);
  /* readers that entered before the flip may still ref old: let them */
  for (unsigned spins = 0; atomic_load(&p->readers[e & 1]) != 0; spins++)
    if (spins > 64)
      sched_yield();
  pthread_mutex_unlock(&p->wmu);
  return old;
}
