/* SPDX-License-Identifier: Apache-2.0 */
/* The endpoint model: reference-counted hosts, immutable snapshots, and the
 * lock-free publication point that pickers read on the hot path. */
#include "endpoint/endpoint.h"

#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hosts -------------------------------------------------------------- */

/* Fill h->sa when the address is an IP literal; hostnames stay unresolved. */
static void host_resolve_literal(mesh__host_t *h) {
  struct sockaddr_in *s4 = (struct sockaddr_in *)&h->sa;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->sa;
  if (inet_pton(AF_INET, h->address, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(h->port);
    h->salen = sizeof *s4;
    h->resolved = true;
  } else if (inet_pton(AF_INET6, h->address, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(h->port);
    h->salen = sizeof *s6;
    h->resolved = true;
  }
}

/* "addr:port" or "[v6]:port".  Built by hand: snprintf was a fifth of
 * the cost of building a 10,000-host snapshot.  Truncation only shortens
 * very long hostnames in logs and other parts' map keys; discovery itself
 * keys hosts by the full address. */
static void host_set_key(mesh__host_t *h) {
  char *k = h->key;
  size_t cap = sizeof h->key, o = 0;
  bool v6 = h->sa.ss_family == AF_INET6;
  char port[6];
  size_t pl = 0;
  for (unsigned p = h->port;; p /= 10) {
    port[pl++] = (char)('0' + p % 10);
    if (p < 10)
      break;
  }
  /* room for brackets, ':' , the port and the NUL */
  size_t room = cap - 1 - pl - 1 - (v6 ? 2 : 0);
  if (v6)
    k[o++] = '[';
  for (const char *a = h->address; *a && o < room + (v6 ? 1 : 0); a++)
    k[o++] = *a;
  if (v6)
    k[o++] = ']';
  k[o++] = ':';
  while (pl > 0)
    k[o++] = port[--pl];
  k[o] = '\0';
}

mesh__host_t *mesh__host_new(const char *address, uint16_t port) {
  if (!address)
    return NULL;
  mesh__host_t *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->address = strdup(address);
  if (!h->address) {
    free(h);
    return NULL;
  }
  atomic_init(&h->refs, 1);
  h->port = port;
  h->weight = 1;
  h->source_health = MESH__HEALTH_UNKNOWN;
  atomic_init(&h->hc_health, MESH__HEALTH_UNKNOWN);
  atomic_init(&h->ejected_until_ms, 0);
  atomic_init(&h->active_rq, 0);
  atomic_init(&h->ewma_ns, 0);
  atomic_init(&h->ewma_stamp_ns, 0);
  host_resolve_literal(h);
  host_set_key(h);
  return h;
}

void mesh__host_ref(mesh__host_t *h) {
  if (h)
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

static _Atomic(const mesh__host_state_ops_t *) state_ops;

void mesh__host_state_ops_set(const mesh__host_state_ops_t *ops) {
  atomic_store_explicit(&state_ops, ops, memory_order_release);
}

static void host_free(mesh__host_t *h) {
  /* State is only ever attached after its part registered the ops. */
  const mesh__host_state_ops_t *ops =
      atomic_load_explicit(&state_ops, memory_order_acquire);
  if (ops && h->res)
    ops->res_free(h->res);
  if (ops && h->pool)
    ops->pool_free(h->pool);
  for (size_t i = 0; i < h->nlabels; i++) {
    free(h->labels[i].key);
    free(h->labels[i].value);
  }
  free(h->labels);
  free(h->region);
  free(h->zone);
  free(h->subzone);
  free(h->hostname);
  free(h->address);
  free(h);
}

void mesh__host_unref(mesh__host_t *h) {
  if (!h)
    return;
  if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
    host_free(h);
}

const char *mesh__host_label(const mesh__host_t *h, const char *key) {
  if (!h || !key)
    return NULL;
  /* Labels are few; discovery keeps them sorted, but callers that build
   * hosts by hand may not, so scan. */
  for (size_t i = 0; i < h->nlabels; i++)
    if (h->labels[i].key && strcmp(h->labels[i].key, key) == 0)
      return h->labels[i].value;
  return NULL;
}

bool mesh__host_usable(const mesh__host_t *h, int64_t now_ms) {
  if (!h)
    return false;
  if (h->source_health == MESH__HEALTH_UNHEALTHY ||
      h->source_health == MESH__HEALTH_DRAINING)
    return false;
  int hc = atomic_load_explicit(&h->hc_health, memory_order_relaxed);
  if (hc == MESH__HEALTH_UNHEALTHY || hc == MESH__HEALTH_DRAINING)
    return false;
  int64_t until =
      atomic_load_explicit(&h->ejected_until_ms, memory_order_relaxed);
  return until == 0 || until <= now_ms;
}

/* ---- snapshots ----------------------------------------------------------- */

mesh__snapshot_t *mesh__snap_new(size_t n) {
  mesh__snapshot_t *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->hosts = calloc(n ? n : 1, sizeof *s->hosts);
  if (!s->hosts) {
    free(s);
    return NULL;
  }
  atomic_init(&s->refs, 1);
  return s;
}

void mesh__snap_ref(mesh__snapshot_t *s) {
  if (s)
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void mesh__snap_release(mesh__snapshot_t *s) {
  if (!s)
    return;
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (s->lb_free && s->lb)
    s->lb_free(s->lb);
  for (size_t i = 0; i < s->n; i++)
    mesh__host_unref(s->hosts[i]);
  free(s->hosts);
  free(s);
}

/* ---- the publication point ------------------------------------------------
 * Readers: announce in readers[epoch & 1], re-check that the epoch did not
 * move (else the writer may already be waiting on the other slot), load the
 * pointer and take a reference, then leave.  Writer: swap the pointer, flip
 * the epoch, wait until the old slot drains; after that no reader can still
 * hold the old pointer without a reference, so dropping ours is safe.
 * All operations are sequentially consistent: the argument relies on a
 * single total order of the counter increments, epoch flips and pointer
 * loads/stores. */

void mesh__snapref_init(mesh__snapref_t *r) {
  atomic_init(&r->cur, NULL);
  atomic_init(&r->epoch, 0);
  atomic_init(&r->readers[0], 0);
  atomic_init(&r->readers[1], 0);
  pthread_mutex_init(&r->wmu, NULL);
}

void mesh__snapref_fini(mesh__snapref_t *r) {
  if (!r)
    return;
  /* No reader may run concurrently with fini: the owner is shutting down. */
  mesh__snapshot_t *s = atomic_exchange(&r->cur, NULL);
  mesh__snap_release(s);
  pthread_mutex_destroy(&r->wmu);
}

mesh__snapshot_t *mesh__snap_acquire(mesh__snapref_t *r) {
  if (!r)
    return NULL;
  for (;;) {
    uint32_t e = atomic_load(&r->epoch);
    atomic_fetch_add(&r->readers[e & 1], 1);
    if (atomic_load(&r->epoch) != e) {
      /* A writer flipped between our load and our announcement. */
      atomic_fetch_sub(&r->readers[e & 1], 1);
      continue;
    }
    mesh__snapshot_t *s = atomic_load(&r->cur);
    if (s)
      atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    atomic_fetch_sub(&r->readers[e & 1], 1);
    return s;
  }
}

void mesh__snap_publish(mesh__snapref_t *r, mesh__snapshot_t *s) {
  if (!r)
    return;
  pthread_mutex_lock(&r->wmu);
  mesh__snapshot_t *old = atomic_exchange(&r->cur, s);
  uint32_t e = atomic_fetch_add(&r->epoch, 1);
  /* Readers in the old slot are inside a few instructions; a preempted one
   * can take longer, so yield rather than burn the core. */
  for (unsigned spins = 0; atomic_load(&r->readers[e & 1]) != 0; spins++)
    if (spins > 64)
      sched_yield();
  pthread_mutex_unlock(&r->wmu);
  mesh__snap_release(old);
}
