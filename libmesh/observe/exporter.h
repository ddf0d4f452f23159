/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the observe part, the high, read-only layer on top of
 * every other part: span exporters (OTLP/HTTP JSON, Zipkin) plugged into the
 * tracer as sinks, Prometheus text, the admin endpoint.  Nothing in the
 * library calls it; it registers its config sections in core/parts.c. */
#ifndef MESH_OBSERVE_EXPORTER_H
#define MESH_OBSERVE_EXPORTER_H

#include "telemetry/telemetry.h"

/* ---- exporters (observe/exporter.c) ------------------------------------- */

typedef struct mesh__exporter mesh__exporter_t;
struct mesh__tracer;

/** Encode a batch into a request body (malloc'd).  @return MESH_OK or
 *  MESH_ERR_NOMEM. */
typedef int (*mesh__encode_fn)(const struct mesh__tracer *t,
                               struct mesh_span *const *spans, size_t n,
                               char **body, size_t *len);

typedef struct mesh__export_cfg {
  const char *name;         /* "otlp", "zipkin": metric label */
  const char *url;          /* full URL to POST to */
  const char *content_type;
  const cJSON *headers;     /* object of extra headers, or NULL */
  int64_t timeout_ms;
  int64_t max_batch, max_delay_ms, queue_size;
  int64_t backoff_initial_ms, backoff_max_ms, max_attempts;
  mesh__encode_fn encode;
} mesh__export_cfg_t;

int mesh__exporter_new(mesh_t *m, struct mesh__tracer *t,
                       const mesh__export_cfg_t *cfg, mesh__exporter_t **out,
                       mesh_status_t *st);
/** Queue a finished span (takes a reference).  Any thread, never blocks
 *  on I/O; a full queue drops the span and counts it. */
void mesh__exporter_push(mesh__exporter_t *e, struct mesh_span *r);
/** Flush what is queued and wait (at most the export timeout, capped at
 *  5 s) for it to be delivered; then free.  Called after the worker has
 *  stopped.  NULL is a no-op. */
void mesh__exporter_free(mesh__exporter_t *e);

int mesh__otlp_encode(const struct mesh__tracer *t,
                      struct mesh_span *const *spans, size_t n, char **body,
                      size_t *len);
int mesh__zipkin_encode(const struct mesh__tracer *t,
                        struct mesh_span *const *spans, size_t n, char **body,
                        size_t *len);

/** The exporter as a tracer sink (push and free through e). */
mesh__span_sink_t mesh__exporter_sink(mesh__exporter_t *e);

#endif /* MESH_OBSERVE_EXPORTER_H */
