/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the call layer's structures, shared by call.c (one try,
 * the call API), call_opts.c (mesh_call_opts_*), dial.c (mesh_dial),
 * calldo.c (mesh_call_do) and hedge.c (mesh_call_request). */
#ifndef MESH_RESILIENCE_CALL_H
#define MESH_RESILIENCE_CALL_H

#include "lb/lb.h"
#include "telemetry/telemetry.h"
#include "resilience/resilience.h"
#include "tls/tls.h"

/* The call's own settings over the one connection options struct (core.h:
 * struct mesh_dial_opts) that holds what both builders share, validated by
 * the same core/opts.c setters: hash key, ALPN, trace parent. */
struct mesh_call_opts {
  mesh_dial_opts_t conn; /* hash key, alpn, trace parent (owned) */
  int deadline_ms;    /* -1: config */
  int per_try_ms;     /* -1: config */
  int connect_ms;     /* -1: config */
  int max_retries;    /* -1: config */
  int hedging;        /* 0 turns the service's hedging off */
  char *subset;       /* named subset, or NULL for the split */
  mesh_cancel_t *cancel; /* borrowed; NULL none */
  bool mux;           /* internal: the caller speaks through shared sessions
                         (HTTP/2) when the pool has one (mesh__call_mux) */
  bool replay;        /* internal: the request may be sent again
                         (mesh__call_opts_set_replay) */
  bool has_retry;     /* internal: retry replaces the service's retry_on,
                         codes and backoff (mesh__call_opts_set_retry) */
  mesh__retry_cfg_t retry;
};

#define MESH__CALL_AVOID_MAX 16

/* One logical call: the policy in effect and what happened so far.  Lives
 * on the caller's stack (helpers) or inside a mesh_call_t (begin/end). */
typedef struct mesh__callx {
  mesh_t *m;
  mesh__service_t *svc;
  mesh__res_svc_t *rs;
  int64_t start_ms;
  int64_t start_ns;           /* for the duration histogram */
  int64_t deadline_ms;        /* overall, monotonic; 0 none */
  const mesh_cancel_t *cancel; /* borrowed from the options; NULL none */
  int64_t per_try_ms;         /* 0 none */
  int64_t connect_ms;
  mesh__cb_cfg_t cb;          /* breaker thresholds in force at the start */
  mesh__breakers_t *br;       /* the counters the call's tries take from:
                                 its group's (a reference) or the service's */
  char *grp;                  /* the group the call is bound to (owned), or
                                 NULL: the service's settings */
  uint32_t max_retries;
  mesh__retry_cfg_t retry;    /* which outcomes to retry, backoff: the
                                 service's, or the options' own */
  bool hedge;
  const char *subset;         /* borrowed from the options */
  const void *hash_key;       /* borrowed from the options */
  size_t hash_key_len;
  const char *alpn;           /* borrowed; NULL: config's */
  bool mux;                   /* shared sessions wanted (options' mux) */
  bool replay;                /* a stale pooled try may be sent again */
  bool fresh;                 /* the next try dials, never pooled (set by a
                                 stale-connection replay, once per call) */
  uint32_t tries;             /* tries that got a connection */
  uint32_t retries;           /* retries (and hedges) started */
  mesh__host_t *avoid[MESH__CALL_AVOID_MAX]; /* references held */
  size_t navoid;
  mesh__host_t *last;         /* endpoint of the latest try (reference) */
  int last_rc;
  char last_msg[sizeof(((mesh_status_t *)0)->message)];
  mesh__span_t span;          /* "mesh.call" */
  mesh_trace_ctx_t parent;    /* copy of the options' parent */
} mesh__callx_t;

/* One try. */
struct mesh_call {
  mesh__callx_t *x;
  mesh__callx_t own;          /* x == &own for mesh_call_begin() */
  mesh__snapshot_t *snap;     /* the snapshot picked from (reference) */
  mesh__host_t *host;         /* reference; lb_begin() done */
  mesh_conn_t *conn;
  bool holds_request, holds_retry, holds_conn;
  bool poolable;              /* negotiated the config's ALPN */
  bool reused;                /* came from the pool */
  void *mux;                  /* a shared session instead of conn */
  const mesh__mux_ops_t *mux_ops;
  bool mux_pooled;            /* mux is counted in the host's pool */
  bool mux_dialer;            /* the host's pool waits for this try's
                                 connection (mesh__call_mux_dialed) */
  int attempt;
  mesh__span_t span;          /* "mesh.try" */
  int64_t try_start_ns;
  int64_t try_deadline_ms;    /* 0 none */
};

/** Everything from the service's config (call_opts.c). */
void mesh__call_opts_defaults(mesh_call_opts_t *o);

int mesh__callx_init(mesh__callx_t *x, mesh_t *m, const char *service,
                     const mesh_call_opts_t *o, mesh_status_t *st);
void mesh__callx_fini(mesh__callx_t *x);
/** ms left before the overall deadline (0 when past), -1 without one. */
int64_t mesh__callx_left(const mesh__callx_t *x, int64_t now);
/** Check max retries, deadline and budget for one more try; on MESH_OK the
 *  budget slot is taken (*slot true) and the caller owns it. */
int mesh__callx_may_retry(mesh__callx_t *x, bool *slot, mesh_status_t *st);
/** Sleep the jittered backoff of retry x->retries, or MESH_ERR_DEADLINE. */
int mesh__callx_backoff(mesh__callx_t *x, mesh_status_t *st);
/* Every function below needs a non-NULL st (the public entry points
 * substitute a local one): messages of failed tries are kept in x. */

/** Start a try on c (c->x set): requests breaker, pick, pooled or new
 *  connection, connect failures retried per policy.  retry_slot: the caller
 *  passes a budget slot it took (kept until the try ends).
 *  @return MESH_OK (or WANT_* for a non-blocking dial); on error c holds
 *          nothing. */
int mesh__call_acquire(mesh_call_t *c, bool retry_slot,
                       const mesh_dial_opts_t *dopts, mesh_status_t *st);
/** Release what a try holds except its connection: breaker slots, the
 *  picked endpoint (kept in x->last) and the snapshot. */
void mesh__call_release(mesh_call_t *c);
/** Set c's try deadline and the connection's I/O timeouts from it. */
void mesh__call_arm(mesh_call_t *c);
/** End the try: report the outcome, pool or close, release everything. */
void mesh__call_finish(mesh_call_t *c, int outcome, int status);
/** Does this error say something about the endpoint (so it is reported to
 *  outlier detection and worth a connect retry elsewhere)? */
bool mesh__call_host_fault(int rc);
/** Record the error of the try that just ended, for the final message. */
void mesh__callx_remember(mesh__callx_t *x, int rc, const char *msg);
/** Count the finished call in the metrics (result rc). */
void mesh__callx_done(mesh__callx_t *x, int rc);
/** Add h to the endpoints later tries avoid. */
void mesh__callx_avoid(mesh__callx_t *x, mesh__host_t *h);

/** The shared session of the try (NULL: use the connection). */
void *mesh__call_mux(mesh_call_t *c);
/** The try's fresh connection became a shared session (which now owns the
 *  connection and its unit of the connections breaker): offer it to the
 *  host's pool for later calls; the try uses it from now on (c->conn is
 *  NULL).  The session is released or closed when the try ends. */
void mesh__call_adopt_mux(mesh_call_t *c, void *sess,
                          const mesh__mux_ops_t *ops);

/** The calls made with o retry on r's retry_on/codes with r's backoff
 *  instead of the service's (a route's retry policy from a control plane:
 *  xds through http); NULL goes back to the service's.  Copied. */
void mesh__call_opts_set_retry(mesh_call_opts_t *o, const mesh__retry_cfg_t *r);
/** Let the calls made with o use shared sessions (the HTTP layer). */
void mesh__call_opts_set_mux(mesh_call_opts_t *o, bool on);
/** The request of the calls made with o is replayable (the HTTP layer, for
 *  idempotent methods): mesh_call_do() sends it once more, at once, on a
 *  newly dialed connection when a try on a reused pooled connection ended
 *  in EOF/reset before any byte of the response (the peer closed the idle
 *  connection).  That replay is not a retry: no retry count, budget,
 *  backoff, or outlier/picker report.  Off by default: an application's
 *  try function is opaque and may not be safe to run twice. */
void mesh__call_opts_set_replay(mesh_call_opts_t *o, bool on);
/** The try's dial is over (adopted, failed, or plain: not HTTP/2, never
 *  shared): other callers waiting for it in mesh__pool_mux_get() look
 *  again.  Idempotent; the call layer also does it when the try ends. */
void mesh__call_mux_dialed(mesh_call_t *c, bool plain);

/** Map a try function's return to an outcome; MESH_OK, or the code that
 *  stops the call (MESH_ERR_INVALID_ARG for an unknown outcome value). */
int mesh__call_map_try(int r, int *outcome);
/** The error code a failed try stands for; its message goes to x. */
int mesh__call_try_error(mesh__callx_t *x, const char *endpoint, int outcome,
                         int status, const char *detail);

/** Dial a configured service by name: pick, pool, breakers, then TLS
 *  (dial.c; mesh_dial() of a name).  opts->service labels the metrics. */
int mesh__dial_service(mesh_t *m, mesh__service_t *svc,
                       const mesh_dial_opts_t *opts, mesh_conn_t **out,
                       mesh_status_t *st);

#endif /* MESH_RESILIENCE_CALL_H */
