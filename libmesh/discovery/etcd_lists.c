/* SPDX-License-Identifier: Apache-2.0 */
/* The bound on concurrent etcd list (range) requests of one context.
 *
 * Every etcd-backed service lists its prefix at start, after a compaction
 * and after a failure.  With thousands of services started at once the
 * member answered them all together, the request timeout fired for most
 * and they retried together: 2,000 services took 104 s to their full
 * lists.  At most MESH__ETCD_MAX_LISTS lists of a context are in flight;
 * the others wait in a FIFO and start as slots free.  Watches are not
 * bounded (one long-lived stream per service, as before).
 *
 * Loop thread only (services start on the init thread before the worker
 * thread exists, and stop after it ended), so no lock. */
#include "discovery/etcd.h"

#include <stdlib.h>

struct mesh__etcd_lists {
  unsigned refs;     /* etcd sources of the context */
  unsigned inflight; /* lists holding a slot */
  bool draining;     /* inside drain(): a nested release only frees */
  mesh__etcd_waiter_t *head, *tail;
  struct mesh__etcd_cluster *clusters; /* etcd_watch.c */
};

struct mesh__etcd_cluster **mesh__etcd_lists_clusters(mesh_t *m) {
  return m->etcd_lists ? &m->etcd_lists->clusters : NULL;
}

int mesh__etcd_lists_ref(mesh_t *m) {
  if (!m->etcd_lists) {
    m->etcd_lists = calloc(1, sizeof *m->etcd_lists);
    if (!m->etcd_lists)
      return MESH_ERR_NOMEM;
  }
  m->etcd_lists->refs++;
  return MESH_OK;
}

/* Take the waiter out of the queue or give its slot back. */
static void withdraw(struct mesh__etcd_lists *l, mesh__etcd_waiter_t *w) {
  if (w->holding) {
    w->holding = false;
    l->inflight--;
  }
  if (!w->queued)
    return;
  mesh__etcd_waiter_t **pp = &l->head, *prev = NULL;
  while (*pp && *pp != w) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp) {
    *pp = w->next;
    if (l->tail == w)
      l->tail = prev;
  }
  w->next = NULL;
  w->queued = false;
}

void mesh__etcd_lists_unref(mesh_t *m, mesh__etcd_waiter_t *w) {
  struct mesh__etcd_lists *l = m->etcd_lists;
  if (!l)
    return;
  withdraw(l, w); /* teardown: starts nobody else */
  if (--l->refs == 0) {
    free(l);
    m->etcd_lists = NULL;
  }
}

/* Start queued waiters while slots are free.  A start that fails at once
 * releases its slot from inside (nested: only frees; this loop goes on). */
static void drain(struct mesh__etcd_lists *l) {
  if (l->draining)
    return;
  l->draining = true;
  while (l->head && l->inflight < MESH__ETCD_MAX_LISTS) {
    mesh__etcd_waiter_t *w = l->head;
    l->head = w->next;
    if (!l->head)
      l->tail = NULL;
    w->next = NULL;
    w->queued = false;
    w->holding = true;
    l->inflight++;
    w->start(w);
  }
  l->draining = false;
}

void mesh__etcd_lists_acquire(mesh_t *m, mesh__etcd_waiter_t *w) {
  struct mesh__etcd_lists *l = m->etcd_lists;
  if (w->holding || w->queued)
    return; /* already listing or waiting to */
  w->next = NULL;
  w->queued = true;
  if (l->tail)
    l->tail->next = w;
  else
    l->head = w;
  l->tail = w;
  drain(l);
}

void mesh__etcd_lists_release(mesh_t *m, mesh__etcd_waiter_t *w) {
  struct mesh__etcd_lists *l = m->etcd_lists;
  withdraw(l, w);
  drain(l);
}
