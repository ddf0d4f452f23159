/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: telemetry, the low observability layer every part may
 * use (DESIGN.md "observe-low"): metric handles (metrics.h), span recording,
 * ids, sampling and propagation (span.h), and the registration API through
 * which each part contributes its own gauges (mesh__gauge_func) and admin
 * views (mesh__view_register).  This header is the part's whole surface to
 * the other parts.  Its last sections (tracer.h, trace_ctx.h,
 * metrics_impl.h, included at the end) are meant for the read-only high part
 * (observe/: admin endpoint, exporters, Prometheus text), which nothing
 * calls; the other parts use the API above them. */
#ifndef MESH_TELEMETRY_TELEMETRY_H
#define MESH_TELEMETRY_TELEMETRY_H

#include <cjson/cJSON.h>

#include "core/core.h"
#include "telemetry/metrics.h"
#include "telemetry/span.h"

struct mesh__tracer;   /* telemetry/tracer.h */
struct mesh__view;     /* telemetry/views.c */

/* Well-known series the telemetry layer owns (docs/config/observe.md). */
typedef struct mesh__observe_metrics {
  mesh__metric_t *spans_started;      /* counter, sampled spans */
  mesh__metric_t *spans_unsampled;    /* counter */
  mesh__metric_t *admin_requests;     /* counter */
} mesh__observe_metrics_t;

struct mesh__observe {
  mesh__metrics_t *metrics;           /* created on first use */
  _Atomic(struct mesh__tracer *) tracer; /* NULL until the tracing part init */
  mesh__observe_metrics_t std;
  /* "metrics.latency_buckets": used when a histogram passes NULL bounds */
  double latency_bounds[MESH__HIST_MAX_BUCKETS];
  size_t nlatency; /* 0: mesh__latency_buckets */
  pthread_mutex_t views_mu;
  struct mesh__view *views;           /* registered views, in order */
};

/** The context's observe state, created on first use by any thread
 *  (lock-free publication).  NULL only when m is NULL or on OOM. */
struct mesh__observe *mesh__observe_get(mesh_t *m);

/* ---- views: what a part shows on the admin endpoint ------------------------
 * A part registers, from its init, a named view that renders its state as a
 * JSON document when a reader (the admin endpoint) asks; the reader never
 * calls into the part directly.  render runs on the reader's thread (the
 * worker), must not block, and returns a new cJSON tree the caller frees
 * (NULL: out of memory).  user is borrowed and must outlive the context or
 * be removed with mesh__view_unregister(). */
typedef cJSON *(*mesh__view_fn)(mesh_t *m, void *user);

/** Register view name (a literal, e.g. "endpoints", "identity"); a second
 *  registration of a name replaces the first.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
int mesh__view_register(mesh_t *m, const char *name, mesh__view_fn render,
                        void *user);
/** Remove view name (no-op if absent). */
void mesh__view_unregister(mesh_t *m, const char *name);
/** Render view name: a new tree the caller frees, or NULL when no part
 *  registered it (or out of memory). */
cJSON *mesh__view_render(mesh_t *m, const char *name);
/** Internal to telemetry/: free o's views (at the context's end). */
void mesh__views_free(struct mesh__observe *o);

/* For the readers (observe/): the tracer's and the registry's internals. */
#include "telemetry/metrics_impl.h"
#include "telemetry/trace_ctx.h"
#include "telemetry/tracer.h"

#endif /* MESH_TELEMETRY_TELEMETRY_H */
