/* SPDX-License-Identifier: Apache-2.0 */
/* Span records: a per-tracer free list and per-record string space.
 *
 * Issue 19 (export at 100% sampling): a record was calloc'd by the calling
 * thread, its name and attribute values strdup'd, and all of it freed by
 * the exporter's worker thread: ~1,200 instructions of malloc/free per
 * span, a third of what recording and export cost.  Now:
 * - the last reference (any thread) puts the record on its tracer's free
 *   list (a mutex-guarded stack, at most MESH__SPAN_POOL_MAX records) and
 *   the next span takes it from there;
 * - strings go into the record's own str[] while they fit (bump
 *   allocation; a replaced value's bytes are not reused), else strdup.
 * A reused record is re-initialised field by field in rec_new (span.c) and
 * attr_slot: nothing of the previous span is readable (tests/test_trace.c
 * "record reuse").  The pool is drained by mesh__tracer_free, after the
 * exporters and the recent list have dropped their references. */
#include "telemetry/telemetry.h"
#include "telemetry/tracer.h"

#include <stdlib.h>
#include <string.h>

void mesh__span_rec_ref(struct mesh_span *r) {
  atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

static bool in_rec(const struct mesh_span *r, const char *p) {
  return p >= r->str && p < r->str + sizeof r->str;
}

char *mesh__span_rec_strdup(struct mesh_span *r, const char *s) {
  size_t n = strlen(s) + 1;
  if (n <= sizeof r->str - r->str_used) {
    char *p = r->str + r->str_used;
    memcpy(p, s, n);
    r->str_used += n;
    return p;
  }
  return strdup(s);
}

void mesh__span_rec_strfree(struct mesh_span *r, char *p) {
  if (p && !in_rec(r, p))
    free(p);
}

struct mesh_span *mesh__span_rec_alloc(struct mesh__tracer *t) {
  pthread_mutex_lock(&t->pool_mu);
  struct mesh_span *r = t->pool;
  if (r) {
    t->pool = r->next_free;
    t->pool_n--;
  }
  pthread_mutex_unlock(&t->pool_mu);
  if (!r)
    r = malloc(sizeof *r); /* not zeroed: rec_new sets every field read */
  if (r) {
    r->tracer = t;
    r->str_used = 0;
  }
  return r;
}

void mesh__span_rec_unref(struct mesh_span *r) {
  if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < r->nattrs; i++)
    mesh__span_rec_strfree(r, r->attrs[i].s);
  mesh__span_rec_strfree(r, r->name);
  mesh__span_rec_strfree(r, r->status_msg);
  mesh__span_rec_strfree(r, r->tracestate);
  struct mesh__tracer *t = r->tracer;
  if (t) {
    pthread_mutex_lock(&t->pool_mu);
    bool keep = t->pool_n < MESH__SPAN_POOL_MAX;
    if (keep) {
      r->next_free = t->pool;
      t->pool = r;
      t->pool_n++;
    }
    pthread_mutex_unlock(&t->pool_mu);
    if (keep)
      return;
  }
  free(r);
}

void mesh__span_pool_drain(struct mesh__tracer *t) {
  pthread_mutex_lock(&t->pool_mu);
  struct mesh_span *r = t->pool;
  t->pool = NULL;
  t->pool_n = 0;
  pthread_mutex_unlock(&t->pool_mu);
  while (r) {
    struct mesh_span *next = r->next_free;
    free(r);
    r = next;
  }
}
