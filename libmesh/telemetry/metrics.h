/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the metrics registry.
 *
 * Every part instruments itself through this API.  Registration (looking a
 * series up by name and label set) takes the registry lock and may
 * allocate; do it once, at init or when an object (service, host) is
 * created, and keep the handle.  Updates through a handle are lock-free
 * atomics that never allocate: safe on the hot path from any thread.
 *
 * Naming (checked at registration; a bad name returns NULL and logs):
 *   - names match [a-zA-Z_:][a-zA-Z0-9_:]* and start with "mesh_";
 *   - counters end in "_total" (Prometheus convention; promtool lints it);
 *   - use base units: seconds, bytes ("_seconds", "_bytes").
 * The names reserved for each part are listed in docs/config/observe.md.
 *
 * Labels are given as "k1=v1,k2=v2".  Keys match [a-zA-Z_][a-zA-Z0-9_]* and
 * do not start with "__"; a value runs to the next unescaped ',' ("\," and
 * "\\" escape).  Every series of one metric must use the same label keys in
 * the same order.  NULL or "" means no labels.
 *
 * A NULL handle is accepted by every update function and does nothing, so
 * instrumentation never needs to check for registration failures.
 * Handles stay valid until the context is freed (mesh_free).
 *
 * Example:
 *   mesh__metric_t *ok = mesh__counter(m, "mesh_calls_total",
 *       "Calls by service and outcome.", "service=payments,outcome=ok");
 *   mesh__counter_add(ok, 1);
 */
#ifndef MESH_TELEMETRY_METRICS_H
#define MESH_TELEMETRY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct mesh__metric mesh__metric_t;
typedef struct mesh__metrics mesh__metrics_t;

enum mesh__metric_type {
  MESH__METRIC_COUNTER = 0,
  MESH__METRIC_GAUGE = 1,
  MESH__METRIC_HISTOGRAM = 2,
};

/** Upper bounds (seconds) for latency histograms, Envoy-like spread from
 *  0.5 ms to 10 s; MESH__LATENCY_NBUCKETS entries. */
#define MESH__LATENCY_NBUCKETS 14
extern const double mesh__latency_buckets[MESH__LATENCY_NBUCKETS];

/** Most buckets a histogram may have (excluding +Inf). */
#define MESH__HIST_MAX_BUCKETS 32

/** A counter series: monotonically increasing integer.
 *  @return the handle (the same one for the same name and labels), or NULL
 *          on a bad name/labels, a type clash, or out of memory. */
mesh__metric_t *mesh__counter(mesh_t *m, const char *name, const char *help,
                              const char *labels_kv);

/** A gauge series: a value that goes up and down (stored as a double). */
mesh__metric_t *mesh__gauge(mesh_t *m, const char *name, const char *help,
                            const char *labels_kv);

/** A gauge computed at scrape time by fn(user).  fn runs on the thread that
 *  renders the exposition (usually the worker) with the registry lock
 *  held: it must be quick and must not register metrics.  user must stay
 *  valid until mesh_free() (the registry is freed last). */
typedef double (*mesh__gauge_fn)(void *user);
mesh__metric_t *mesh__gauge_func(mesh_t *m, const char *name,
                                 const char *help, const char *labels_kv,
                                 mesh__gauge_fn fn, void *user);

/** Make a computed gauge read NaN from now on: call before freeing the
 *  object its fn reads.  NULL is a no-op. */
void mesh__gauge_func_detach(mesh__metric_t *g);

/** A histogram series with fixed upper bounds (strictly increasing, finite,
 *  at most MESH__HIST_MAX_BUCKETS; +Inf is implicit).  NULL bounds means
 *  the latency buckets: "metrics.latency_buckets" from the config, else
 *  mesh__latency_buckets.  All series of one name share the first bounds
 *  registered; a later registration with different bounds fails. */
mesh__metric_t *mesh__histogram(mesh_t *m, const char *name, const char *help,
                                const char *labels_kv, const double *bounds,
                                size_t nbounds);

/* ---- hot path: lock-free, no allocation, NULL-safe --------------------- */

void mesh__counter_add(mesh__metric_t *c, uint64_t n);
void mesh__gauge_set(mesh__metric_t *g, double v);
void mesh__gauge_add(mesh__metric_t *g, double delta);
void mesh__histogram_observe(mesh__metric_t *h, double v);

/* ---- reading (tests, admin) --------------------------------------------- */

/** Current value of a counter or gauge (a gauge_func is evaluated);
 *  a histogram's count.  0 for NULL. */
double mesh__metric_value(mesh__metric_t *x);
/** Histogram sum of observations (0 for others). */
double mesh__histogram_sum(mesh__metric_t *h);

/* ---- registry lifecycle (telemetry/metrics.c) ------------------------------ */

/** The context's registry, created on first use (any part may register
 *  before the observe parts run their init).  NULL only on OOM / m NULL. */
mesh__metrics_t *mesh__metrics_get(mesh_t *m);
/** Free the registry and every handle.  Called once by mesh_free() through
 *  the observe part's fini, after every other part is gone. */
void mesh__metrics_free(mesh__metrics_t *r);

/** Render the Prometheus text exposition format (version 0.0.4) into a
 *  malloc'd NUL-terminated buffer (observe/prometheus.c).
 *  @return MESH_OK or MESH_ERR_NOMEM. */
int mesh__metrics_render(mesh_t *m, char **out, size_t *len);

#endif /* MESH_TELEMETRY_METRICS_H */
