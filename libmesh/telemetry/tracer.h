/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the tracer's state, shared by span.c (spans), sampler.c,
 * and the read-only high part: observe/exporter.c (batches), export_*.c
 * (encoders), admin.c (recent spans) and observe.c (config).  Other parts
 * use telemetry.h only. */
#ifndef MESH_TELEMETRY_TRACER_H
#define MESH_TELEMETRY_TRACER_H

#include <cjson/cJSON.h>

#include "telemetry/telemetry.h"

/* ---- samplers (OpenTelemetry semantics) --------------------------------- */

enum mesh__sampler_type {
  MESH__SAMPLER_ALWAYS_ON = 0,
  MESH__SAMPLER_ALWAYS_OFF,
  MESH__SAMPLER_TRACEIDRATIO,
  MESH__SAMPLER_PB_ALWAYS_ON,
  MESH__SAMPLER_PB_ALWAYS_OFF,
  MESH__SAMPLER_PB_TRACEIDRATIO,
};
/* Config names, in enum order, NULL-terminated. */
extern const char *const mesh__sampler_names[];

enum mesh__parent {
  MESH__PARENT_NONE = 0,        /* root, or B3 ids with a deferred decision */
  MESH__PARENT_SAMPLED = 1,
  MESH__PARENT_NOT_SAMPLED = 2,
};

typedef struct mesh__sampler {
  int type;
  double ratio;
  uint64_t bound; /* traceidratio: sample when id63 < bound */
} mesh__sampler_t;

void mesh__sampler_init(mesh__sampler_t *s, int type, double ratio);
/** The decision for a span of trace tid whose parent is in state parent.
 *  Pure function: no I/O, no allocation. */
bool mesh__sampler_decide(const mesh__sampler_t *s, const uint8_t tid[16],
                          int parent);

/* ---- recorded spans ------------------------------------------------------ */

typedef struct mesh__attr {
  const char *key; /* borrowed literal */
  int type;        /* mesh_attr_type_t */
  char *s;
  int64_t i;
  double d;
} mesh__attr_t;

typedef struct mesh__event {
  const char *name; /* borrowed literal */
  uint64_t ts_ns;
} mesh__event_t;

/* Records come from the tracer's free list or malloc, never zeroed
 * (issue 19: zeroing ~1.2 KB per span was a tenth of its recording cost):
 * rec_new (span.c) sets every field below except the attrs/events arrays,
 * whose entries past nattrs/nevents are never read.  The name, attribute
 * values, status message and tracestate live in str[] while they fit
 * (span_rec.c), else on the heap. */
#define MESH__SPAN_STR_INLINE 320
#define MESH__SPAN_POOL_MAX 1024 /* free records kept per tracer */

struct mesh_span {
  _Atomic uint32_t refs;
  struct mesh__tracer *tracer; /* whose free list takes it back */
  struct mesh_span *next_free; /* on that list */
  char *name;
  int kind;   /* mesh_span_kind_t */
  int status; /* mesh_span_status_t */
  char *status_msg;
  uint8_t trace_id[16], span_id[8], parent_id[8];
  uint8_t flags;
  char *tracestate; /* NULL if none */
  uint64_t start_ns, end_ns; /* Unix ns */
  mesh__attr_t attrs[MESH__SPAN_MAX_ATTRS];
  size_t nattrs;
  uint32_t dropped_attrs;
  mesh__event_t events[MESH__SPAN_MAX_EVENTS];
  size_t nevents;
  uint32_t dropped_events;
  size_t str_used;
  char str[MESH__SPAN_STR_INLINE];
};

void mesh__span_rec_ref(struct mesh_span *r);
/** Drop a reference; the last one returns the record to its tracer's
 *  free list (or frees it).  Any thread. */
void mesh__span_rec_unref(struct mesh_span *r);
/** A record for t: from the free list, else malloc'd; not initialised but
 *  for tracer and str_used.  NULL without memory. */
struct mesh_span *mesh__span_rec_alloc(struct mesh__tracer *t);
/** Copy s into r's string space, else strdup; NULL without memory. */
char *mesh__span_rec_strdup(struct mesh_span *r, const char *s);
/** Free a string from mesh__span_rec_strdup (NULL is fine). */
void mesh__span_rec_strfree(struct mesh_span *r, char *p);

/* ---- recent spans for the admin page ----------------------------------- */

#define MESH__RECENT_SPANS 64

typedef struct mesh__recent {
  char trace_id[33], span_id[17], parent_id[17];
  char name[64];
  char target[96]; /* mesh.service, else server.address, else peer */
  char peer_id[128];
  char error[64];
  int kind, status;
  uint64_t start_ns, dur_ns;
} mesh__recent_t;

/* ---- sinks: where recorded spans go ---------------------------------------
 * The exporters (observe/exporter.c, the high part) plug in here when the
 * "tracing" section is set up; the tracer never calls them by name. */

typedef struct mesh__span_sink {
  /** Queue a finished span (takes a reference).  Any thread, never blocks
   *  on I/O. */
  void (*push)(void *ctx, struct mesh_span *r);
  /** Flush and free, after the worker has stopped. */
  void (*free)(void *ctx);
  void *ctx;
} mesh__span_sink_t;

/* ---- the tracer ---------------------------------------------------------- */

#define MESH__MAX_EXPORTERS 2 /* sinks */

struct mesh__tracer {
  mesh_t *m;
  mesh__sampler_t sampler;
  unsigned formats;    /* MESH_PROPAGATE_* */
  char *service_name;  /* resource service.name */
  _Atomic int consumers; /* > 0: record sampled spans */

  pthread_mutex_t hook_mu;
  mesh_span_hook on_start, on_end;
  void *hook_user;
  bool hooks_counted;

  mesh__span_sink_t exp[MESH__MAX_EXPORTERS];
  size_t nexp;

  /* The recent list holds a reference to each of the last spans; their
   * entries are formatted when read (mesh__tracer_recent), not per span. */
  pthread_mutex_t recent_mu;
  struct mesh_span *recent[MESH__RECENT_SPANS];
  size_t recent_next, recent_n;

  pthread_mutex_t pool_mu; /* free records (span_rec.c) */
  struct mesh_span *pool;
  size_t pool_n;

  mesh__metric_t *spans_sampled, *spans_unsampled;
};

/** The tracer or NULL if the tracing part is not set up. */
struct mesh__tracer *mesh__tracer_get(mesh_t *m);
/** Create the tracer with defaults (sampler parentbased_always_on,
 *  propagation tracecontext).  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__tracer_new(mesh_t *m, struct mesh__tracer **out);
void mesh__tracer_free(struct mesh__tracer *t);
/** Free the free list (mesh__tracer_free, once nothing holds a record). */
void mesh__span_pool_drain(struct mesh__tracer *t);
/** Copy the recent spans, newest first, into out (up to max). */
size_t mesh__tracer_recent(struct mesh__tracer *t, mesh__recent_t *out,
                           size_t max);

#endif /* MESH_TELEMETRY_TRACER_H */
