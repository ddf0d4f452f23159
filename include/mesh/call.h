/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — the call API: one logical request to a configured service.
 *
 * A call picks an endpoint of the service (route, subset/split, load
 * balancer), takes a pooled mTLS connection to it or dials one, and at the
 * end reports how the try went.  The outcome feeds the load balancer
 * (least-request and latency EWMA), outlier detection, the circuit breakers
 * and metrics; a clean connection goes back to the pool.
 *
 * The API is protocol-agnostic: the library moves no bytes for you in
 * mesh_call_begin()/mesh_call_end(); you speak your protocol over
 * mesh_call_conn() and tell the library the outcome and, if your protocol
 * has one, a status code (HTTP-like: 5xx are server errors, 502-504 gateway
 * errors; map other protocols onto that, e.g. gRPC UNAVAILABLE -> 503).
 *
 * Three levels:
 *   - mesh_call_begin() / mesh_call_end(): one try, you handle retries;
 *   - mesh_call_do(): the library runs your one-try function under the
 *     service's retry policy, backoff, retry budget and deadlines;
 *   - mesh_call_request(): the library writes a request buffer and reads the
 *     response until your framing function says it is complete; on top of
 *     retries it can hedge (send to a second endpoint after a delay, first
 *     complete answer wins).
 *
 * Threading: every function taking a mesh_t is thread-safe.  A mesh_call_t
 * and its connection belong to the thread that began it until it is ended.
 * Options are plain data: build them on one thread, then share read-only.
 * Callbacks run on the calling thread, synchronously; they may use the
 * connection they are given and any thread-safe libmesh function, but must
 * not end the call or close the connection.
 */
#ifndef MESH_CALL_H
#define MESH_CALL_H

#include <stddef.h>
#include <mesh/export.h>
#include <mesh/error.h>
#include <mesh/trace.h>
#include <mesh/cancel.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;
typedef struct mesh_conn mesh_conn_t;
typedef struct mesh_call mesh_call_t;
typedef struct mesh_call_opts mesh_call_opts_t;

/** How one try ended.  Values are stable. */
typedef enum mesh_call_outcome {
  /** A complete response arrived and the connection is at a message
   *  boundary: it goes back to the pool.  The status code says whether the
   *  response itself was an error. */
  MESH_CALL_OK = 0,
  /** A complete response arrived, but the connection must not be reused
   *  (the protocol closes it, or bytes were left unread). */
  MESH_CALL_OK_CLOSE = 1,
  /** No connection (reported by the library itself; rarely by you). */
  MESH_CALL_CONNECT_FAILURE = 2,
  /** The connection was reset or closed before the response ended. */
  MESH_CALL_RESET = 3,
  /** No (complete) response within the per-try timeout. */
  MESH_CALL_TIMEOUT = 4,
  /** The response was malformed. */
  MESH_CALL_PROTOCOL_ERROR = 5,
  /** You abandoned the try (shutdown, a lost hedge): says nothing about
   *  the endpoint and is not counted as a failure. */
  MESH_CALL_CANCELLED = 6
} mesh_call_outcome_t;

/* ---- options (opaque builder, typed setters) ------------------------------ */

/** New options with everything taken from the service's config.
 *  @return NULL when out of memory.  Free with mesh_call_opts_free(). */
MESH_EXTERN mesh_call_opts_t *mesh_call_opts_new(void);
/** NULL is a no-op. */
MESH_EXTERN void mesh_call_opts_free(mesh_call_opts_t *o);
/** Key for hash-based load balancing (ring_hash, maglev); copied, at most
 *  1024 bytes.  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_call_opts_set_hash_key(mesh_call_opts_t *o,
                                            const void *key, size_t len);
/** Route the call to a named subset of the service (its `subsets` config),
 *  bypassing the weighted split; NULL clears.  Copied.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM.  A name that is
 *  not configured fails the call with MESH_ERR_NOT_FOUND. */
MESH_EXTERN int mesh_call_opts_set_subset(mesh_call_opts_t *o,
                                          const char *subset);
/** Overall deadline of the call from its start, retries included (ms > 0;
 *  0 = none; replaces `timeouts.overall_ms`).
 *  @return MESH_OK or MESH_ERR_INVALID_ARG (negative). */
MESH_EXTERN int mesh_call_opts_set_deadline(mesh_call_opts_t *o,
                                            int timeout_ms);
/** Per-try timeout (ms; 0 = none; replaces `timeouts.per_try_ms`). */
MESH_EXTERN int mesh_call_opts_set_per_try_timeout(mesh_call_opts_t *o,
                                                   int timeout_ms);
/** Connect + handshake timeout of a new connection (ms > 0; replaces
 *  `timeouts.connect_ms`). */
MESH_EXTERN int mesh_call_opts_set_connect_timeout(mesh_call_opts_t *o,
                                                   int timeout_ms);
/** Retries after the first try (0..100; replaces `retry.num_retries`).
 *  0 turns retries off for a call that must not be repeated. */
MESH_EXTERN int mesh_call_opts_set_max_retries(mesh_call_opts_t *o,
                                               int retries);
/** 0 turns the service's hedging off for this call (non-idempotent
 *  requests); 1 keeps the config.  Default 1. */
MESH_EXTERN int mesh_call_opts_set_hedging(mesh_call_opts_t *o, int on);
/** Comma-separated ALPN list ("h2,http/1.1": at most 8 names of 1-255
 *  bytes, the rule of mesh_dial_opts_set_alpn()); NULL resets to the
 *  config's `tls.alpn`; copied.  A call with its own
 *  ALPN always gets a new connection, closed at the end (never pooled, as
 *  pooled ones negotiated the config's ALPN). */
MESH_EXTERN int mesh_call_opts_set_alpn(mesh_call_opts_t *o,
                                        const char *alpn);

/** The parent of the call's span (e.g. extracted from the request being
 *  served with mesh_trace_extract()); copied.  Without one the call starts
 *  a new trace, subject to sampling.  NULL clears it. */
MESH_EXTERN int mesh_call_opts_set_trace_parent(mesh_call_opts_t *o,
                                                const mesh_trace_ctx_t *ctx);

/** A cancel token (include/mesh/cancel.h) the call observes: once fired,
 *  a retry backoff in progress ends at once and the call returns
 *  MESH_ERR_CLOSED ("cancelled") instead of trying again.  Borrowed: it
 *  must outlive every call made with these options; NULL clears.  This is
 *  how the Go binding's context and Python's Ctrl-C stop a call.
 *  @return MESH_OK or MESH_ERR_INVALID_ARG (o NULL). */
MESH_EXTERN int mesh_call_opts_set_cancel(mesh_call_opts_t *o,
                                          mesh_cancel_t *cancel);

/* ---- one try ------------------------------------------------------------------ */

/** Begin a call: pick an endpoint of `service` and get a connection to it
 *  (pooled, else dialed).  Connect failures are retried on other endpoints
 *  as the service's retry policy allows (nothing was sent yet).
 *  @param m        the context.
 *  @param service  a service name from the config (copied as needed); with
 *                  an "xds" section, another name is subscribed from the
 *                  control plane on first use (docs/config/xds.md).
 *  @param opts     may be NULL (config defaults); read, not kept.
 *  @param out      receives the call; end it with mesh_call_end().
 *  @param st       optional detail on failure.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_UNKNOWN_SERVICE,
 *          MESH_ERR_CLOSED (mesh_free() has begun), MESH_ERR_DISCOVERY (the
 *          source failed and no endpoint set is known),
 *          MESH_ERR_NO_ENDPOINTS, MESH_ERR_CIRCUIT_OPEN (max_requests,
 *          max_pending_requests or max_connections reached),
 *          MESH_ERR_RETRY_BUDGET, MESH_ERR_DEADLINE, or the last dial
 *          error (MESH_ERR_CONNECT, MESH_ERR_TIMEOUT, MESH_ERR_TLS,
 *          MESH_ERR_PEER_ID, MESH_ERR_CERT_*, ...). */
MESH_EXTERN int mesh_call_begin(mesh_t *m, const char *service,
                                const mesh_call_opts_t *opts,
                                mesh_call_t **out, mesh_status_t *st);

/** The connection of the call.  Borrowed: valid until mesh_call_end(); do
 *  not close it.  Its blocking I/O timeouts are set to the time left of the
 *  try.  NULL for a NULL call. */
MESH_EXTERN mesh_conn_t *mesh_call_conn(mesh_call_t *call);

/** Milliseconds left in the current try (per-try timeout and overall
 *  deadline, whichever ends first); -1 when neither is set. */
MESH_EXTERN int mesh_call_remaining_ms(const mesh_call_t *call);

/** "ip:port" of the endpoint this try went to.  Borrowed, valid until the
 *  call ends. */
MESH_EXTERN const char *mesh_call_endpoint(const mesh_call_t *call);

/** The trace context of this try's span ("mesh.try", a child of the
 *  call's "mesh.call"), to send along with the request
 *  (mesh_trace_inject()).  @return MESH_OK or MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_call_trace_context(const mesh_call_t *call,
                                        mesh_trace_ctx_t *out);

/** 0 for the first try, then 1, 2, ... for retries and hedges. */
MESH_EXTERN int mesh_call_attempt(const mesh_call_t *call);

/** End the call: report the outcome, release breakers, return the
 *  connection to the pool (MESH_CALL_OK only) or close it, free the call.
 *  NULL is a no-op.
 *  @param outcome      a mesh_call_outcome_t.
 *  @param status_code  your protocol's status (0 = none; HTTP-like).
 *  @return MESH_OK, or MESH_ERR_INVALID_ARG for an unknown outcome (the
 *          call is still ended, counted as a protocol error). */
MESH_EXTERN int mesh_call_end(mesh_call_t *call, int outcome,
                              int status_code);

/* ---- the retry helper ------------------------------------------------------------ */

/** One try of your request over conn.  Write the request, read the
 *  response, set *status_code if your protocol has one (leave 0 otherwise).
 *  @return a mesh_call_outcome_t (>= 0), or a negative mesh code: the
 *          connection errors MESH_ERR_RESET, MESH_ERR_PEER_CLOSED,
 *          MESH_ERR_CLOSED, MESH_ERR_TLS, MESH_ERR_IO count as
 *          MESH_CALL_RESET and MESH_ERR_TIMEOUT as MESH_CALL_TIMEOUT, so a
 *          negative result of mesh_conn_read()/mesh_conn_write() may be
 *          returned as is; any other negative code stops the call with that
 *          code, without retry.  Careful: a read's 0 (EOF) is not
 *          MESH_CALL_OK (also 0) -- an EOF before the response ended is
 *          MESH_CALL_RESET. */
typedef int (*mesh_call_try_fn)(mesh_call_t *call, mesh_conn_t *conn,
                                int *status_code, void *user);

/** Run fn under the service's retry policy: each try gets a call (another
 *  endpoint on retries when there is one), with exponential backoff and
 *  full jitter between tries, the retry budget, the per-try timeout and the
 *  overall deadline.  No hedging (fn is opaque and blocking).  Nor is a
 *  try sent again when its reused pooled connection turns out closed by
 *  the peer (as mesh_http_call() does for idempotent methods): fn may not
 *  be safe to run twice, so that is a MESH_CALL_RESET like any other, and
 *  the policy's retry_on decides ("reset"); a service whose peers close
 *  idle connections can also set pool.check_after_ms to 0.
 *  @param user  passed to fn; the library does not touch it.
 *  @return MESH_OK when the last try got a response whose status is not an
 *          error; MESH_ERR_UPSTREAM when it is (5xx or a listed retriable
 *          status, after retries); MESH_ERR_RETRY_BUDGET when a wanted retry
 *          was refused by the budget; MESH_ERR_DEADLINE; otherwise the last
 *          try's error or any mesh_call_begin() error. */
MESH_EXTERN int mesh_call_do(mesh_t *m, const char *service,
                             const mesh_call_opts_t *opts, mesh_call_try_fn fn,
                             void *user, mesh_status_t *st);

/* ---- the request/response helper (with hedging) -------------------------------- */

/** Is the response complete?  Called with all bytes received so far (from
 *  the start of the response) after each read.
 *  @return 0: need more bytes; n > 0: complete, the response is the first n
 *          bytes (set *status_code if your protocol has one); negative: the
 *          bytes are malformed (MESH_CALL_PROTOCOL_ERROR). */
typedef long (*mesh_call_frame_fn)(const void *buf, size_t len,
                                   int *status_code, void *user);

/** Send req and read the response, under the retry policy and, when the
 *  service has `hedge`, hedging: after `hedge.delay_ms` without a complete
 *  response the request also goes to another endpoint, up to
 *  `hedge.max_attempts` in flight; the first complete response wins, the
 *  others are abandoned.  Runs on the calling thread (poll), no threads.
 *  @param req, req_len   the request, sent as is on each attempt.
 *  @param frame, user    framing of the response (required).
 *  @param resp, resp_cap caller's buffer for the winning response.
 *  @param resp_len       receives its length (may be NULL).
 *  @param status_code    receives its status (may be NULL; 0 = none).
 *  @return as mesh_call_do(), plus MESH_ERR_BUFFER when a response does not
 *          fit in resp_cap (treated as a protocol error of that try). */
MESH_EXTERN int mesh_call_request(mesh_t *m, const char *service,
                                  const mesh_call_opts_t *opts,
                                  const void *req, size_t req_len,
                                  mesh_call_frame_fn frame, void *user,
                                  void *resp, size_t resp_cap,
                                  size_t *resp_len, int *status_code,
                                  mesh_status_t *st);

#ifdef __cplusplus
}
#endif
#endif /* MESH_CALL_H */
