/* libmesh internal: the observe part (metrics, tracing, admin).
 *
 * Other parts include "observe/metrics.h" to count things and
 * "observe/span.h" to open spans; this header holds the part's own state. */
#ifndef MESH_OBSERVE_OBSERVE_H
#define MESH_OBSERVE_OBSERVE_H

#include "core/core.h"
#include "observe/metrics.h"

struct mesh__tracer;   /* observe/span.c */
struct mesh__exporter; /* observe/exporter.c */

/* Well-known series the observe part owns (see docs/config/observe.md). */
typedef struct mesh__observe_metrics {
  mesh__metric_t *svid_expires_in;    /* gauge func */
  mesh__metric_t *spans_started;      /* counter, sampled spans */
  mesh__metric_t *spans_unsampled;    /* counter */
  mesh__metric_t *admin_requests;     /* counter */
} mesh__observe_metrics_t;

struct mesh__observe {
  mesh__metrics_t *metrics;           /* created on first use */
  struct mesh__tracer *tracer;        /* NULL until the tracing part init */
  mesh__observe_metrics_t std;
  /* "metrics.latency_buckets": used when a histogram passes NULL bounds */
  double latency_bounds[MESH__HIST_MAX_BUCKETS];
  size_t nlatency; /* 0: mesh__latency_buckets */
};

/** The context's observe state, created on first use by any thread
 *  (lock-free publication).  NULL only when m is NULL or on OOM. */
struct mesh__observe *mesh__observe_get(mesh_t *m);

/** Shortest round-tripping decimal for v; NaN, +Inf, -Inf spelled as
 *  Prometheus wants them.  buf >= 32 bytes. */
void mesh__fmt_double(char *buf, size_t len, double v);


#endif /* MESH_OBSERVE_OBSERVE_H */
