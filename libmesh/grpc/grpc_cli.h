/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: a client call and its tries (client.c), shared with
 * the unary retry loop (unary.c). */
#ifndef MESH_GRPC_GRPC_CLI_H
#define MESH_GRPC_GRPC_CLI_H

#include "grpc/grpc.h"
#include "resilience/resilience.h"

#define MESH__GRPC_RBUF 16384

struct mesh_grpc_call_opts {
  int timeout_ms;              /* 0: configured */
  mesh_grpc_metadata_t *md;
  size_t max_recv;             /* 0: 4 MiB */
  bool retry;
};

struct mesh_grpc_call {
  mesh_t *m;
  char *path;                  /* "/pkg.Svc/Method" */
  char *authority;
  mesh_grpc_metadata_t *md;    /* request metadata (copied) */
  char *auth;                  /* "Bearer <JWT-SVID>": services.S.jwt_svid */
  size_t max_recv;
  int64_t deadline_ms;         /* absolute, 0 none */
  /* service calls: the call layer */
  bool via_service;
  mesh_call_opts_t *copts;     /* x borrows its alpn */
  mesh__callx_t x;
  mesh__callx_t *xp;           /* &x, or a hedged call's (shared) */
  pthread_mutex_t *xmu;        /* hedging: guards *xp across attempts */
  pthread_mutex_t *smu;        /* hedging: guards stream vs. cancel */
  bool have_x;
  mesh_call_t try_;
  bool have_try;
  mesh__grpc_svc_cfg_t cfg;    /* the service's "grpc" config, parsed */
  const mesh__grpc_method_cfg_t *mcfg; /* entry for path, or NULL */
  mesh__grpc_method_cfg_t xcfg; /* a control plane's route (xds): the
                                 method config mcfg points to then */
  bool preset;                 /* status decided before any try (no route,
                                 fault abort): the call makes no try */
  bool no_retry;               /* the options switched retries off */
  char xsubset[MESH__XROUTE_NAME]; /* the route decision's cluster ("": none
                                 or not routed by a control plane) */
  bool redecided;              /* decided once more (mesh__grpc_redecide) */
  /* the current try */
  mesh_conn_t *conn;           /* borrowed from the try (service) */
  mesh__h2_session_t *sess;    /* shared (the try's) unless own_sess */
  bool own_sess;               /* over our own dial: freed with the try */
  int transparent;             /* transparent retries of refused streams */
  mesh__h2_stream_t *stream;
  bool plaintext;
  int64_t try_deadline_ms;     /* absolute, 0 none */
  mesh__grpc_dec_t dec;
  uint8_t rbuf[MESH__GRPC_RBUF];
  size_t rlen, roff;
  bool sent_end, got_headers, eos, done;
  int outcome;                 /* enum mesh__outcome of the try */
  bool refused;                /* the server never processed the try */
  int pushback;                /* 1 delay in pushback_ms, 0 none, -1 stop */
  int64_t pushback_ms;
  _Atomic bool cancelled;
  /* results */
  int status;                  /* -1 until known */
  char *message;
  mesh_grpc_metadata_t *headers, *trailers;
  char peer_id[MESH_SPIFFE_ID_MAX + 1];
  int attempts;
  bool reported;               /* the try went back to the call layer */
  struct mesh__grpc_hs *hs;    /* a hedged streaming call (hstream.c) */
};

/** Allocate a call and resolve target (a service, or host:port) and the
 *  deadline.  @return MESH_OK or an error (nothing allocated). */
int mesh__grpc_call_new(mesh_t *m, const char *target, const char *method,
                        const mesh_grpc_call_opts_t *o, mesh_grpc_call_t **out,
                        mesh_status_t *st);
/** A control plane's route for the call (route.c): the decision for its
 *  path and metadata applied to c->copts and c->mcfg (cluster, A31
 *  deadline cutting *timeout, A44 retry, A42 hash key), its fault (A33)
 *  delayed here or preset.  @return MESH_OK (the call may be preset: no
 *  route is UNAVAILABLE, as gRPC), 1 when service is not routed so, or
 *  MESH_ERR_NOMEM. */
int mesh__grpc_route(mesh_grpc_call_t *c, const char *service,
                     int64_t *timeout, mesh_status_t *st);
/** Apply decision x as mesh__grpc_route does (no logical call bound). */
int mesh__grpc_route_apply(mesh_grpc_call_t *c, const mesh__xroute_t *x,
                           int64_t *timeout, mesh_status_t *st);
/** mesh__http_xroute_again for the call (its cluster c->xsubset). */
int mesh__grpc_route_again(mesh_grpc_call_t *c, const char *service,
                           mesh__xroute_t *x);
/** The first try of a routed call failed with rc: when its pick did not
 *  find the decided cluster (MESH_ERR_NOT_FOUND), decide once more from
 *  the table in force and bind the call to that cluster (faults are not
 *  decided again; the deadline is the call's).  @return MESH_OK: start
 *  the call again; rc (st as it was) when there is no other cluster or
 *  rc is not that; or the error of binding the call. */
int mesh__grpc_redecide(mesh_grpc_call_t *c, int rc, mesh_status_t *st);
/** Set the call's status before any try: the call makes none. */
void mesh__grpc_preset(mesh_grpc_call_t *c, int code, const char *msg);
/** Start one try: connection (call layer or dial), session, stream and
 *  request headers.  retry_slot: a budget slot the caller took.
 *  @return MESH_OK, or the error of getting a connection. */
int mesh__grpc_try_start(mesh_grpc_call_t *c, bool retry_slot,
                         mesh_status_t *st);
/** End the try: status from the error if none, outcome to the call layer,
 *  free stream and session.  Idempotent. */
void mesh__grpc_try_end(mesh_grpc_call_t *c);
/** One try of a unary call: start, send req, read the one response
 *  (*resp on OK), end.  @return MESH_OK with the try's status in c, or
 *  the error of getting a connection. */
int mesh__grpc_unary_try(mesh_grpc_call_t *c, bool slot, const void *req,
                         size_t len, void **resp, size_t *resp_len,
                         mesh_status_t *st);
/** A unary call under the method's hedgingPolicy (hedge.c).  @return as
 *  the retry loop: MESH_OK with the committed try's status in c. */
int mesh__grpc_hedged(mesh_grpc_call_t *c, const void *req, size_t len,
                      void **resp, size_t *resp_len, mesh_status_t *st);
/** May hedge i > 0 start (retryThrottling, then the retry budget under
 *  xmu)?  Counts the retry; *slot: a budget slot taken. */
int mesh__grpc_hedge_admit(mesh_grpc_call_t *c, pthread_mutex_t *xmu,
                           bool *slot);
/** A hedged try's call state: p's request, deadline and method config,
 *  sharing p's logical call (xp, guarded by xmu) and publishing its stream
 *  under smu; attempt i (grpc-previous-rpc-attempts: i).  NULL on OOM. */
mesh_grpc_call_t *mesh__grpc_hedge_child(mesh_grpc_call_t *p, int i,
                                         pthread_mutex_t *xmu,
                                         pthread_mutex_t *smu);
/** Is code in the method's nonFatalStatusCodes? */
bool mesh__grpc_hedge_non_fatal(const mesh_grpc_call_t *c, int code);
/** Set the call's status unless one is known. */
void mesh__grpc_set_status(mesh_grpc_call_t *c, int code, const char *msg);
/** Reset the per-try state for the next try. */
void mesh__grpc_try_reset(mesh_grpc_call_t *c);
/** Wait for the response headers of the current try (a trailers-only
 *  response or an HTTP error ends the try: c->done).  @return MESH_OK or
 *  the stream's error (status set). */
int mesh__grpc_read_headers(mesh_grpc_call_t *c, mesh_status_t *st);

/* ---- hedged streaming calls (hstream.c) ---------------------------------- */

/** Start a streaming call under the method's hedgingPolicy: the sent
 *  messages are kept and replayed on each hedge.  @return MESH_OK or an
 *  error (nothing started). */
int mesh__grpc_hs_start(mesh_grpc_call_t *c, mesh_status_t *st);
/** send / close_send (msg NULL) of a hedged call. */
int mesh__grpc_hs_send(mesh_grpc_call_t *c, const void *msg, size_t len,
                       mesh_status_t *st);
/** recv of a hedged call: waits for the commit, then reads the committed
 *  try.  @return as mesh_grpc_call_recv. */
int mesh__grpc_hs_recv(mesh_grpc_call_t *c, void **msg, size_t *len,
                       mesh_status_t *st);
/** The end of a hedged call: read the committed try to its status, stop
 *  and join every thread, results into c, the hedge state freed.  With
 *  cancel every try is cancelled first.  Idempotent. */
void mesh__grpc_hs_end(mesh_grpc_call_t *c, bool cancel);
/** Cancel every try of a hedged call (any thread). */
void mesh__grpc_hs_cancel(mesh_grpc_call_t *c);

/** Write one framed message; end ends our side.  @return as send. */
int mesh__grpc_write_msg(mesh_grpc_call_t *c, const void *msg, size_t len,
                         bool end, mesh_status_t *st);

#endif /* MESH_GRPC_GRPC_CLI_H */
