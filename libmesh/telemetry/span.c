/* SPDX-License-Identifier: Apache-2.0 */
/* Spans: start/end in caller storage, sampling, recording of sampled spans,
 * hooks, the recent-spans list, hand-off to the sinks (exporters). */
#include "telemetry/telemetry.h"
#include "telemetry/trace_ctx.h"
#include "telemetry/tracer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- ids -------------------------------------------------------------------- */

/* Ids come from a stream of core's generator of their own per thread (the
 * inline step keeps an id at a few ns). */
static _Thread_local mesh__prng_t id_prng;

void mesh__random_id(uint8_t *out, size_t n) {
  for (;;) {
    uint64_t any = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* whole words: test them, not the bytes */
      uint64_t r = mesh__prng_next(&id_prng);
      memcpy(out + i, &r, 8);
      any |= r;
    }
    if (i < n) {
      uint64_t r = mesh__prng_next(&id_prng);
      memcpy(out + i, &r, n - i);
      any |= !mesh__is_zero(out + i, n - i);
    }
    if (any)
      return;
  }
}

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the tracer ------------------------------------------------------------- */

struct mesh__tracer *mesh__tracer_get(mesh_t *m) {
  if (!m)
    return NULL;
  struct mesh__observe *o = atomic_load_explicit(&m->observe, memory_order_acquire);
  return o ? o->tracer : NULL;
}

int mesh__tracer_new(mesh_t *m, struct mesh__tracer **out) {
  struct mesh__tracer *t = calloc(1, sizeof *t);
  if (!t)
    return MESH_ERR_NOMEM;
  t->m = m;
  mesh__sampler_init(&t->sampler, MESH__SAMPLER_PB_ALWAYS_ON, 1.0);
  t->formats = MESH_PROPAGATE_TRACECONTEXT;
  t->service_name = strdup(m && m->self_name ? m->self_name
                                             : "unknown_service");
  if (!t->service_name) {
    free(t);
    return MESH_ERR_NOMEM;
  }
  pthread_mutex_init(&t->hook_mu, NULL);
  pthread_mutex_init(&t->recent_mu, NULL);
  pthread_mutex_init(&t->pool_mu, NULL);
  const char *help = "Spans started, by sampling decision.";
  t->spans_sampled =
      mesh__counter(m, "mesh_trace_spans_total", help, "sampled=true");
  t->spans_unsampled =
      mesh__counter(m, "mesh_trace_spans_total", help, "sampled=false");
  *out = t;
  return MESH_OK;
}

void mesh__tracer_free(struct mesh__tracer *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->nexp; i++)
    t->exp[i].free(t->exp[i].ctx);
  for (size_t i = 0; i < t->recent_n; i++)
    mesh__span_rec_unref(t->recent[i]);
  mesh__span_pool_drain(t);
  pthread_mutex_destroy(&t->pool_mu);
  pthread_mutex_destroy(&t->hook_mu);
  pthread_mutex_destroy(&t->recent_mu);
  free(t->service_name);
  free(t);
}

int mesh_set_span_hooks(mesh_t *m, mesh_span_hook on_start,
                        mesh_span_hook on_end, void *user) {
  struct mesh__tracer *t = mesh__tracer_get(m);
  if (!t)
    return MESH_ERR_INVALID_ARG;
  pthread_mutex_lock(&t->hook_mu);
  t->on_start = on_start;
  t->on_end = on_end;
  t->hook_user = user;
  bool want = on_start || on_end;
  if (want != t->hooks_counted) {
    atomic_fetch_add(&t->consumers, want ? 1 : -1);
    t->hooks_counted = want;
  }
  pthread_mutex_unlock(&t->hook_mu);
  return MESH_OK;
}

unsigned mesh_trace_formats(mesh_t *m) {
  struct mesh__tracer *t = mesh__tracer_get(m);
  return t ? t->formats : MESH_PROPAGATE_TRACECONTEXT;
}

/* ---- records ------------------------------------------------------------------ */

/* mesh__span_rec_ref/_unref, the free list: span_rec.c */

static void call_hook(struct mesh__tracer *t, bool start,
                      const struct mesh_span *r) {
  pthread_mutex_lock(&t->hook_mu);
  mesh_span_hook fn = start ? t->on_start : t->on_end;
  void *user = t->hook_user;
  pthread_mutex_unlock(&t->hook_mu);
  if (fn)
    fn(r, user);
}

static struct mesh_span *rec_new(struct mesh__tracer *t, const mesh__span_t *sp,
                                 const char *name, mesh_span_kind_t kind) {
  struct mesh_span *r = mesh__span_rec_alloc(t); /* fields set below */
  if (!r)
    return NULL;
  atomic_store_explicit(&r->refs, 1, memory_order_relaxed);
  r->nattrs = r->nevents = 0;
  r->dropped_attrs = r->dropped_events = 0;
  r->status = MESH_SPAN_STATUS_UNSET;
  r->status_msg = NULL;
  r->end_ns = 0;
  r->name = mesh__span_rec_strdup(r, name ? name : "");
  r->tracestate = sp->tracestate && *sp->tracestate
                      ? mesh__span_rec_strdup(r, sp->tracestate)
                      : NULL;
  if (!r->name || (sp->tracestate && *sp->tracestate && !r->tracestate)) {
    mesh__span_rec_unref(r);
    return NULL;
  }
  r->kind = kind;
  memcpy(r->trace_id, sp->trace_id, 16);
  memcpy(r->span_id, sp->span_id, 8);
  memcpy(r->parent_id, sp->parent_id, 8);
  r->flags = (uint8_t)((sp->sampled ? MESH_TRACE_FLAG_SAMPLED : 0) |
                       (sp->random ? MESH_TRACE_FLAG_RANDOM : 0));
  r->start_ns = wall_ns();
  return r;
}

/* ---- start / end ----------------------------------------------------------- */

static int parent_state(const mesh__span_t *parent,
                        const mesh_trace_ctx_t *remote) {
  if (parent)
    return parent->sampled ? MESH__PARENT_SAMPLED : MESH__PARENT_NOT_SAMPLED;
  if (!remote)
    return MESH__PARENT_NONE;
  switch (remote->sampling) {
  case MESH_SAMPLING_ACCEPT:
  case MESH_SAMPLING_DEBUG:
    return MESH__PARENT_SAMPLED;
  case MESH_SAMPLING_DENY:
    return MESH__PARENT_NOT_SAMPLED;
  default: /* B3 deferred: the decision is ours */
    return MESH__PARENT_NONE;
  }
}

void mesh__span_start(mesh_t *m, mesh__span_t *sp, const char *name,
                      mesh_span_kind_t kind, const mesh__span_t *parent,
                      const mesh_trace_ctx_t *remote) {
  if (!sp)
    return;
  if (parent && !parent->started)
    parent = NULL;
  sp->rec = NULL;
  sp->m = m;
  sp->started = 1;
  sp->trace_id_64 = 0;
  sp->tracestate = "";
  sp->sampling = MESH_SAMPLING_DEFERRED;
  if (parent) {
    memcpy(sp->trace_id, parent->trace_id, 16);
    memcpy(sp->parent_id, parent->span_id, 8);
    sp->tracestate = parent->tracestate;
    sp->trace_id_64 = parent->trace_id_64;
    sp->random = parent->random;
    if (parent->sampling == MESH_SAMPLING_DEBUG)
      sp->sampling = MESH_SAMPLING_DEBUG;
  } else if (remote && remote->has_ids) {
    memcpy(sp->trace_id, remote->trace_id, 16);
    memcpy(sp->parent_id, remote->span_id, 8);
    sp->tracestate = remote->tracestate;
    sp->trace_id_64 = remote->trace_id_64;
    /* Level 2: kept with the trace-id, as the caller said */
    sp->random = (remote->flags & MESH_TRACE_FLAG_RANDOM) != 0;
    if (remote->sampling == MESH_SAMPLING_DEBUG)
      sp->sampling = MESH_SAMPLING_DEBUG;
  } else {
    mesh__random_id(sp->trace_id, 16);
    sp->random = 1; /* all 16 bytes from the PRNG (getrandom-seeded) */
    memset(sp->parent_id, 0, 8);
    if (remote && remote->sampling == MESH_SAMPLING_DEBUG)
      sp->sampling = MESH_SAMPLING_DEBUG;
  }
  mesh__random_id(sp->span_id, 8);
  struct mesh__tracer *t = mesh__tracer_get(m);
  int ps = parent_state(parent, remote);
  bool sampled = sp->sampling == MESH_SAMPLING_DEBUG ||
                 (t ? mesh__sampler_decide(&t->sampler, sp->trace_id, ps)
                    : ps == MESH__PARENT_SAMPLED);
  sp->sampled = sampled;
  if (sp->sampling != MESH_SAMPLING_DEBUG)
    sp->sampling = sampled ? MESH_SAMPLING_ACCEPT : MESH_SAMPLING_DENY;
  if (!t)
    return;
  mesh__counter_add(sampled ? t->spans_sampled : t->spans_unsampled, 1);
  if (!sampled || atomic_load_explicit(&t->consumers, memory_order_relaxed) <= 0)
    return;
  sp->rec = rec_new(t, sp, name, kind);
  if (sp->rec)
    call_hook(t, true, sp->rec);
}

/* Keys are literals: the same pointer is the usual match, strcmp the
 * rest (one literal may have copies in several objects). */
static inline bool key_eq(const char *a, const char *b) {
  return a == b || strcmp(a, b) == 0;
}

static const mesh__attr_t *attr_find(const struct mesh_span *r,
                                     const char *key) {
  for (size_t i = 0; i < r->nattrs; i++)
    if (key_eq(r->attrs[i].key, key))
      return &r->attrs[i];
  return NULL;
}

/* The admin page's recent list keeps a reference to the record; its entry
 * is formatted only when the page asks (was ~1,000 instructions per span
 * at the end of every span).  The record is immutable once ended. */
static void remember(struct mesh__tracer *t, struct mesh_span *r) {
  mesh__span_rec_ref(r);
  pthread_mutex_lock(&t->recent_mu);
  struct mesh_span *old =
      t->recent_n == MESH__RECENT_SPANS ? t->recent[t->recent_next] : NULL;
  t->recent[t->recent_next] = r;
  t->recent_next = (t->recent_next + 1) % MESH__RECENT_SPANS;
  if (t->recent_n < MESH__RECENT_SPANS)
    t->recent_n++;
  pthread_mutex_unlock(&t->recent_mu);
  mesh__span_rec_unref(old);
}

static void recent_entry(const struct mesh_span *r, mesh__recent_t *e) {
  memset(e, 0, sizeof *e);
  mesh__hex_encode(r->trace_id, 16, e->trace_id);
  mesh__hex_encode(r->span_id, 8, e->span_id);
  if (!mesh__is_zero(r->parent_id, 8))
    mesh__hex_encode(r->parent_id, 8, e->parent_id);
  mesh__strlcpy(e->name, r->name, sizeof e->name);
  static const char *const target_keys[] = {
      MESH__ATTR_SERVICE, MESH__ATTR_SERVER_ADDRESS, MESH__ATTR_CLIENT_ADDRESS,
      MESH__ATTR_PEER_ADDRESS};
  for (size_t i = 0; i < 4 && !e->target[0]; i++) {
    const mesh__attr_t *a = attr_find(r, target_keys[i]);
    if (a && a->type == MESH_ATTR_STRING)
      mesh__strlcpy(e->target, a->s, sizeof e->target);
  }
  const mesh__attr_t *a = attr_find(r, MESH__ATTR_PEER_SPIFFE_ID);
  if (a && a->type == MESH_ATTR_STRING)
    mesh__strlcpy(e->peer_id, a->s, sizeof e->peer_id);
  a = attr_find(r, MESH__ATTR_ERROR_TYPE);
  if (a && a->type == MESH_ATTR_STRING)
    mesh__strlcpy(e->error, a->s, sizeof e->error);
  e->kind = r->kind;
  e->status = r->status;
  e->start_ns = r->start_ns;
  e->dur_ns = r->end_ns > r->start_ns ? r->end_ns - r->start_ns : 0;
}

size_t mesh__tracer_recent(struct mesh__tracer *t, mesh__recent_t *out,
                           size_t max) {
  if (!t)
    return 0;
  pthread_mutex_lock(&t->recent_mu);
  size_t n = t->recent_n < max ? t->recent_n : max;
  for (size_t i = 0; i < n; i++) {
    size_t k = (t->recent_next + MESH__RECENT_SPANS - 1 - i) %
               MESH__RECENT_SPANS;
    recent_entry(t->recent[k], &out[i]);
  }
  pthread_mutex_unlock(&t->recent_mu);
  return n;
}

void mesh__span_end(mesh__span_t *sp) {
  if (!sp || !sp->started)
    return;
  sp->started = 0;
  struct mesh_span *r = sp->rec;
  sp->rec = NULL;
  if (!r)
    return;
  r->end_ns = wall_ns();
  if (r->end_ns < r->start_ns)
    r->end_ns = r->start_ns;
  struct mesh__tracer *t = mesh__tracer_get(sp->m);
  if (t && t == r->tracer) {
    call_hook(t, false, r);
    remember(t, r);
    for (size_t i = 0; i < t->nexp; i++)
      t->exp[i].push(t->exp[i].ctx, r);
  } else {
    /* Started before tracing_fini, ended after: the tracer (and its free
     * list) is gone, and nobody else holds the record: plain free. */
    r->tracer = NULL;
  }
  mesh__span_rec_unref(r);
}

/* ---- attributes, events, status ------------------------------------------- */

static mesh__attr_t *attr_slot(mesh__span_t *sp, const char *key) {
  struct mesh_span *r = sp ? sp->rec : NULL;
  if (!r || !key)
    return NULL;
  for (size_t i = 0; i < r->nattrs; i++) {
    if (key_eq(r->attrs[i].key, key)) {
      mesh__span_rec_strfree(r, r->attrs[i].s);
      r->attrs[i].s = NULL;
      return &r->attrs[i];
    }
  }
  if (r->nattrs == MESH__SPAN_MAX_ATTRS) {
    r->dropped_attrs++;
    return NULL;
  }
  mesh__attr_t *a = &r->attrs[r->nattrs++];
  a->key = key; /* the record is not zeroed: a whole, valid slot */
  a->type = MESH_ATTR_BOOL;
  a->s = NULL;
  a->i = 0;
  a->d = 0;
  return a;
}

void mesh__span_attr_str(mesh__span_t *sp, const char *key, const char *v) {
  mesh__attr_t *a = attr_slot(sp, key);
  if (!a)
    return;
  a->type = MESH_ATTR_STRING;
  a->s = mesh__span_rec_strdup(sp->rec, v ? v : "");
  if (!a->s) /* keep the slot valid */
    a->type = MESH_ATTR_BOOL;
}

void mesh__span_attr_int(mesh__span_t *sp, const char *key, int64_t v) {
  mesh__attr_t *a = attr_slot(sp, key);
  if (!a)
    return;
  a->type = MESH_ATTR_INT;
  a->i = v;
}

void mesh__span_attr_bool(mesh__span_t *sp, const char *key, bool v) {
  mesh__attr_t *a = attr_slot(sp, key);
  if (!a)
    return;
  a->type = MESH_ATTR_BOOL;
  a->i = v;
}

void mesh__span_attr_double(mesh__span_t *sp, const char *key, double v) {
  mesh__attr_t *a = attr_slot(sp, key);
  if (!a)
    return;
  a->type = MESH_ATTR_DOUBLE;
  a->d = v;
}

void mesh__span_event(mesh__span_t *sp, const char *name) {
  struct mesh_span *r = sp ? sp->rec : NULL;
  if (!r || !name)
    return;
  if (r->nevents == MESH__SPAN_MAX_EVENTS) {
    r->dropped_events++;
    return;
  }
  r->events[r->nevents].name = name;
  r->events[r->nevents].ts_ns = wall_ns();
  r->nevents++;
}

void mesh__span_status(mesh__span_t *sp, mesh_span_status_t code,
                       const char *msg) {
  struct mesh_span *r = sp ? sp->rec : NULL;
  if (!r)
    return;
  r->status = code;
  mesh__span_rec_strfree(r, r->status_msg);
  r->status_msg = NULL;
  if (code == MESH_SPAN_STATUS_ERROR && msg)
    r->status_msg = mesh__span_rec_strdup(r, msg);
}

void mesh__span_fail(mesh__span_t *sp, int code, const char *msg) {
  if (!mesh__span_recording(sp))
    return;
  mesh__span_attr_str(sp, MESH__ATTR_ERROR_TYPE, mesh_code_name(code));
  mesh__span_status(sp, MESH_SPAN_STATUS_ERROR,
                    msg && *msg ? msg : mesh_strerror(code));
}

/* ---- propagation ------------------------------------------------------------ */

void mesh__span_context(const mesh__span_t *sp, mesh_trace_ctx_t *out) {
  memcpy(out->trace_id, sp->trace_id, 16);
  memcpy(out->span_id, sp->span_id, 8);
  memcpy(out->parent_span_id, sp->parent_id, 8);
  out->flags = (uint8_t)((sp->sampled ? MESH_TRACE_FLAG_SAMPLED : 0) |
                         (sp->random ? MESH_TRACE_FLAG_RANDOM : 0));
  out->sampling = sp->sampling;
  out->has_ids = 1;
  out->trace_id_64 = sp->trace_id_64;
  mesh__strlcpy(out->tracestate, sp->tracestate ? sp->tracestate : "",
                sizeof out->tracestate);
}

int mesh__span_inject(const mesh__span_t *sp, mesh_trace_setter set,
                      void *user) {
  if (!sp || !sp->started || !set)
    return MESH_ERR_INVALID_ARG;
  mesh_trace_ctx_t ctx;
  mesh__span_context(sp, &ctx);
  return mesh_trace_inject(&ctx, mesh_trace_formats(sp->m), set, user);
}

/* ---- public accessors (for hooks) ------------------------------------------ */

const char *mesh_span_name(const mesh_span_t *s) { return s ? s->name : ""; }

mesh_span_kind_t mesh_span_kind(const mesh_span_t *s) {
  return s ? (mesh_span_kind_t)s->kind : MESH_SPAN_INTERNAL;
}

void mesh_span_context(const mesh_span_t *s, mesh_trace_ctx_t *out) {
  if (!out)
    return;
  memset(out, 0, sizeof *out);
  if (!s)
    return;
  memcpy(out->trace_id, s->trace_id, 16);
  memcpy(out->span_id, s->span_id, 8);
  memcpy(out->parent_span_id, s->parent_id, 8);
  out->flags = s->flags;
  out->sampling = (s->flags & MESH_TRACE_FLAG_SAMPLED) ? MESH_SAMPLING_ACCEPT
                                                       : MESH_SAMPLING_DENY;
  out->has_ids = 1;
  if (s->tracestate)
    mesh__strlcpy(out->tracestate, s->tracestate, sizeof out->tracestate);
}

uint64_t mesh_span_start_ns(const mesh_span_t *s) {
  return s ? s->start_ns : 0;
}

uint64_t mesh_span_end_ns(const mesh_span_t *s) { return s ? s->end_ns : 0; }

mesh_span_status_t mesh_span_status(const mesh_span_t *s,
                                    const char **message) {
  if (message)
    *message = s && s->status_msg ? s->status_msg : "";
  return s ? (mesh_span_status_t)s->status : MESH_SPAN_STATUS_UNSET;
}

size_t mesh_span_attr_count(const mesh_span_t *s) {
  return s ? s->nattrs : 0;
}

int mesh_span_attr(const mesh_span_t *s, size_t i, const char **key,
                   const char **str, int64_t *num, double *dbl) {
  if (!s || i >= s->nattrs)
    return MESH_ERR_NOT_FOUND;
  const mesh__attr_t *a = &s->attrs[i];
  if (key)
    *key = a->key;
  if (a->type == MESH_ATTR_STRING && str)
    *str = a->s;
  if ((a->type == MESH_ATTR_INT || a->type == MESH_ATTR_BOOL) && num)
    *num = a->i;
  if (a->type == MESH_ATTR_DOUBLE && dbl)
    *dbl = a->d;
  return a->type;
}

int mesh_span_attr_text(const mesh_span_t *s, const char *key, char *buf,
                        size_t len) {
  if (!s || !key || !buf || !len)
    return MESH_ERR_INVALID_ARG;
  const mesh__attr_t *a = attr_find(s, key);
  if (!a)
    return MESH_ERR_NOT_FOUND;
  int n;
  switch (a->type) {
  case MESH_ATTR_STRING:
    n = snprintf(buf, len, "%s", a->s);
    break;
  case MESH_ATTR_INT:
    n = snprintf(buf, len, "%lld", (long long)a->i);
    break;
  case MESH_ATTR_BOOL:
    n = snprintf(buf, len, "%s", a->i ? "true" : "false");
    break;
  default:
    mesh__fmt_double(buf, len, a->d);
    n = (int)strlen(buf);
    break;
  }
  if (n < 0 || (size_t)n >= len)
    return MESH_ERR_BUFFER;
  return n;
}
