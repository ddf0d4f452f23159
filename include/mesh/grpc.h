/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — gRPC over HTTP/2 on the mesh's mutual TLS.
 *
 * The library moves bytes: a message is what your protobuf (or any) code
 * serializes; framing (the 5-byte length prefix), deadlines (grpc-timeout),
 * metadata (-bin keys base64), status and trailers are done here.
 *
 * Client: mesh_grpc_unary() for one request and one response, under the
 * service's gRPC retry policy (the "grpc" key of the service: gRPC's own
 * service-config JSON, docs/config/grpc.md) on top of the call layer's
 * retry budget, per-try timeouts, outlier detection and metrics.  The
 * streaming shapes (client, server, bidi) use mesh_grpc_call_start() then
 * send / close_send / recv / finish.  A target is a configured service
 * name (load balanced, resilient) or "host:port" (one connection).
 *
 * Server: a mesh_grpc_server_t holds handlers by full method name
 * ("/pkg.Service/Method") and serves accepted mesh connections (ALPN h2).
 * Every call is authorized first with the "authz" policies, as Istio
 * applies AuthorizationPolicy `paths` to gRPC: method POST, path
 * "/pkg.Service/Method".  A denied call ends PERMISSION_DENIED; an unknown
 * method UNIMPLEMENTED.
 *
 * Errors: functions return MESH_OK or a negative mesh code.  A call that
 * ended with a non-OK gRPC status returns MESH_ERR_GRPC_STATUS; the code
 * (0..16, gRPC's numbering) is mesh_grpc_call_status().
 *
 * Threading: functions taking a mesh_t or a server are thread-safe.  A
 * call (client or server side) belongs to one thread at a time, except
 * mesh_grpc_call_cancel(), which any thread may call while another uses
 * the call.  Handlers run on a thread of the server (one per call) and may
 * block.
 */
#ifndef MESH_GRPC_H
#define MESH_GRPC_H

#include <stddef.h>
#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;
typedef struct mesh_conn mesh_conn_t;
typedef struct mesh_listener mesh_listener_t;
typedef struct mesh_grpc_metadata mesh_grpc_metadata_t;
typedef struct mesh_grpc_call_opts mesh_grpc_call_opts_t;
typedef struct mesh_grpc_call mesh_grpc_call_t;
typedef struct mesh_grpc_server mesh_grpc_server_t;
typedef struct mesh_grpc_server_call mesh_grpc_server_call_t;

/** gRPC status codes (the values of grpc-status). */
typedef enum mesh_grpc_status {
  MESH_GRPC_OK = 0,
  MESH_GRPC_CANCELLED = 1,
  MESH_GRPC_UNKNOWN = 2,
  MESH_GRPC_INVALID_ARGUMENT = 3,
  MESH_GRPC_DEADLINE_EXCEEDED = 4,
  MESH_GRPC_NOT_FOUND = 5,
  MESH_GRPC_ALREADY_EXISTS = 6,
  MESH_GRPC_PERMISSION_DENIED = 7,
  MESH_GRPC_RESOURCE_EXHAUSTED = 8,
  MESH_GRPC_FAILED_PRECONDITION = 9,
  MESH_GRPC_ABORTED = 10,
  MESH_GRPC_OUT_OF_RANGE = 11,
  MESH_GRPC_UNIMPLEMENTED = 12,
  MESH_GRPC_INTERNAL = 13,
  MESH_GRPC_UNAVAILABLE = 14,
  MESH_GRPC_DATA_LOSS = 15,
  MESH_GRPC_UNAUTHENTICATED = 16
} mesh_grpc_status_t;

/** "UNAVAILABLE" for 14; "UNKNOWN_STATUS" outside 0..16.  Static. */
MESH_EXTERN const char *mesh_grpc_status_name(int code);

/** Free a message or buffer the library handed out.  NULL is a no-op. */
MESH_EXTERN void mesh_grpc_free(void *p);

/* ---- metadata ------------------------------------------------------------- */

/** An empty list.  @return NULL when out of memory. */
MESH_EXTERN mesh_grpc_metadata_t *mesh_grpc_metadata_new(void);
/** NULL is a no-op.  Never free a list the library lent you. */
MESH_EXTERN void mesh_grpc_metadata_free(mesh_grpc_metadata_t *md);
/** Add an ASCII entry (repeat a key for several values).  Copied.  Keys are
 *  lower case [0-9a-z_.-], not "grpc-*" nor a header the library writes
 *  (content-type, te, user-agent, ...); a key ending "-bin" takes any
 *  bytes: use mesh_grpc_metadata_add_bin().
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (reason in st), MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_grpc_metadata_add(mesh_grpc_metadata_t *md,
                                       const char *key, const char *value,
                                       mesh_status_t *st);
/** Add a binary entry; key must end in "-bin".  Copied; sent base64.
 *  @return as mesh_grpc_metadata_add(). */
MESH_EXTERN int mesh_grpc_metadata_add_bin(mesh_grpc_metadata_t *md,
                                           const char *key, const void *value,
                                           size_t len, mesh_status_t *st);
/** Number of entries (0 for NULL). */
MESH_EXTERN size_t mesh_grpc_metadata_count(const mesh_grpc_metadata_t *md);
/** Entry i: key, value and its length (binary values decoded; ASCII values
 *  NUL-terminated too).  Borrowed, valid while the list lives.
 *  @return MESH_OK, MESH_ERR_NOT_FOUND (i out of range). */
MESH_EXTERN int mesh_grpc_metadata_at(const mesh_grpc_metadata_t *md,
                                      size_t i, const char **key,
                                      const void **value, size_t *len);
/** First value of key (NULL when absent); *len may be NULL.  Borrowed. */
MESH_EXTERN const void *mesh_grpc_metadata_get(const mesh_grpc_metadata_t *md,
                                               const char *key, size_t *len);

/* ---- client call options -------------------------------------------------- */

/** Options with the defaults (the service's config).  NULL on OOM. */
MESH_EXTERN mesh_grpc_call_opts_t *mesh_grpc_call_opts_new(void);
/** NULL is a no-op. */
MESH_EXTERN void mesh_grpc_call_opts_free(mesh_grpc_call_opts_t *o);
/** Deadline of the call in ms from its start (sent as grpc-timeout), > 0;
 *  0 = the method's configured "timeout", else the service's
 *  timeouts.overall_ms.  @return MESH_OK, MESH_ERR_INVALID_ARG (< 0). */
MESH_EXTERN int mesh_grpc_call_opts_set_timeout(mesh_grpc_call_opts_t *o,
                                                int timeout_ms);
/** Request metadata (copied now; later changes to md are not seen).
 *  NULL clears.  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_grpc_call_opts_set_metadata(
    mesh_grpc_call_opts_t *o, const mesh_grpc_metadata_t *md);
/** Largest response message accepted, bytes (default 4 MiB, gRPC's);
 *  larger ones end the call RESOURCE_EXHAUSTED.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (0 or > 2 GiB). */
MESH_EXTERN int mesh_grpc_call_opts_set_max_recv(mesh_grpc_call_opts_t *o,
                                                 size_t bytes);
/** 0 turns retries off for this call (non-idempotent methods); 1 (the
 *  default) follows the method's retryPolicy. */
MESH_EXTERN int mesh_grpc_call_opts_set_retry(mesh_grpc_call_opts_t *o,
                                              int on);

/* ---- client calls ------------------------------------------------------------ */

/** One unary call: send req, receive one response.  Retried per the
 *  method's retryPolicy (retryable status codes, maxAttempts, backoff,
 *  server pushback via grpc-retry-pushback-ms), within the service's retry
 *  budget and the deadline; connect failures are retried by the call layer.
 *  @param target   a service name from the config or "host:port"; copied.
 *                  With an "xds" section, a name subscribed on first use
 *                  that the control plane says does not exist (listener,
 *                  route configuration, or a cluster its routes name) is
 *                  MESH_ERR_GRPC_STATUS with UNAVAILABLE, as gRPC.
 *  @param method   "/pkg.Service/Method"; copied.
 *  @param opts     may be NULL; read, not kept.
 *  @param resp     receives the response message (free with
 *                  mesh_grpc_free()); NULL on failure.
 *  @param done     optional: receives the finished call for its status,
 *                  message, metadata and peer (free with
 *                  mesh_grpc_call_free()); set also on MESH_ERR_GRPC_STATUS.
 *  @return MESH_OK (status OK), MESH_ERR_GRPC_STATUS (another status: the
 *          code in *done, and in st's message), MESH_ERR_INVALID_ARG,
 *          MESH_ERR_UNKNOWN_SERVICE, MESH_ERR_NO_ENDPOINTS,
 *          MESH_ERR_CIRCUIT_OPEN, MESH_ERR_RETRY_BUDGET, MESH_ERR_NOMEM, or a
 *          connection error when no try reached a server. */
MESH_EXTERN int mesh_grpc_unary(mesh_t *m, const char *target,
                                const char *method,
                                const mesh_grpc_call_opts_t *opts,
                                const void *req, size_t req_len, void **resp,
                                size_t *resp_len, mesh_grpc_call_t **done,
                                mesh_status_t *st);

/** Start a streaming call (any shape): pick an endpoint, connect, send the
 *  request headers.  Connect failures are retried by the call layer; once
 *  started the call is not retried (the messages are the application's).
 *  @return MESH_OK (*out set; free with mesh_grpc_call_free()), or an
 *          error as mesh_grpc_unary(). */
MESH_EXTERN int mesh_grpc_call_start(mesh_t *m, const char *target,
                                     const char *method,
                                     const mesh_grpc_call_opts_t *opts,
                                     mesh_grpc_call_t **out,
                                     mesh_status_t *st);
/** Send one message (copied).  Blocks while the peer's flow-control window
 *  is closed, up to the deadline.
 *  @return MESH_OK, MESH_ERR_CLOSED (half-closed already, or the call
 *          ended: then read its status with mesh_grpc_call_finish()),
 *          MESH_ERR_CANCELLED, MESH_ERR_DEADLINE, MESH_ERR_MSG_TOO_LARGE. */
MESH_EXTERN int mesh_grpc_call_send(mesh_grpc_call_t *call, const void *msg,
                                    size_t len, mesh_status_t *st);
/** Half-close: no more messages from us.  @return MESH_OK or as send. */
MESH_EXTERN int mesh_grpc_call_close_send(mesh_grpc_call_t *call,
                                          mesh_status_t *st);
/** Receive the next response message (free with mesh_grpc_free()).
 *  @return 1 (a message), 0 (the server ended the stream: call
 *          mesh_grpc_call_finish()), or MESH_ERR_CANCELLED,
 *          MESH_ERR_DEADLINE, MESH_ERR_MSG_TOO_LARGE, MESH_ERR_GRPC_PROTOCOL,
 *          MESH_ERR_RESET / MESH_ERR_PEER_CLOSED (connection lost). */
MESH_EXTERN int mesh_grpc_call_recv(mesh_grpc_call_t *call, void **msg,
                                    size_t *len, mesh_status_t *st);
/** Wait for the status (messages not read yet are discarded), report the
 *  outcome to the call layer.  Idempotent.
 *  @return MESH_OK (status OK) or MESH_ERR_GRPC_STATUS (the code from
 *          mesh_grpc_call_status(); transport failures become UNAVAILABLE,
 *          INTERNAL, DEADLINE_EXCEEDED or CANCELLED as gRPC reports them). */
MESH_EXTERN int mesh_grpc_call_finish(mesh_grpc_call_t *call,
                                      mesh_status_t *st);
/** Cancel: RST_STREAM CANCEL to the server; pending and later operations
 *  return MESH_ERR_CANCELLED; the status becomes CANCELLED.  Any thread.
 *  NULL is a no-op. */
MESH_EXTERN void mesh_grpc_call_cancel(mesh_grpc_call_t *call);
/** Free a call (cancels it if it has not finished).  NULL is a no-op. */
MESH_EXTERN void mesh_grpc_call_free(mesh_grpc_call_t *call);

/** The status code once finished (-1 before). */
MESH_EXTERN int mesh_grpc_call_status(const mesh_grpc_call_t *call);
/** The status message (grpc-message decoded), "" when none.  Borrowed. */
MESH_EXTERN const char *mesh_grpc_call_status_message(
    const mesh_grpc_call_t *call);
/** Response headers (initial metadata), NULL before they came.  Borrowed. */
MESH_EXTERN const mesh_grpc_metadata_t *mesh_grpc_call_headers(
    const mesh_grpc_call_t *call);
/** Trailers (trailing metadata), NULL before the status.  Borrowed. */
MESH_EXTERN const mesh_grpc_metadata_t *mesh_grpc_call_trailers(
    const mesh_grpc_call_t *call);
/** The server's SPIFFE ID ("" before connected).  Borrowed. */
MESH_EXTERN const char *mesh_grpc_call_peer_id(const mesh_grpc_call_t *call);
/** Tries made (1 without retries). */
MESH_EXTERN int mesh_grpc_call_attempts(const mesh_grpc_call_t *call);

/* ---- server -------------------------------------------------------------------- */

/** Handle one call.  Read requests with mesh_grpc_server_call_recv(), send
 *  responses with mesh_grpc_server_call_send(), then return the status
 *  (a mesh_grpc_status_t; set its message with
 *  mesh_grpc_server_call_set_message()).  Runs on a server thread, one per
 *  call; may block; must not free the call. */
typedef int (*mesh_grpc_handler_fn)(mesh_grpc_server_call_t *call,
                                    void *user);

/** A server with no methods.  @return MESH_OK, MESH_ERR_INVALID_ARG,
 *  MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_grpc_server_new(mesh_t *m, mesh_grpc_server_t **out,
                                     mesh_status_t *st);
/** Register fn for method ("/pkg.Service/Method", copied).  Before serving.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (malformed or already registered),
 *          MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_grpc_server_add_method(mesh_grpc_server_t *srv,
                                            const char *method,
                                            mesh_grpc_handler_fn fn,
                                            void *user, mesh_status_t *st);
/** Largest request message accepted (default 4 MiB).
 *  @return MESH_OK, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_grpc_server_set_max_recv(mesh_grpc_server_t *srv,
                                              size_t bytes);
/** Serve one accepted connection (takes it over: closed at the end) until
 *  the peer is done or mesh_grpc_server_shutdown().  Calls run on their own
 *  threads.  @return MESH_OK, MESH_ERR_UNSUPPORTED (ALPN is not h2 and the
 *  peer is not h2c), or the session's error. */
MESH_EXTERN int mesh_grpc_server_serve_conn(mesh_grpc_server_t *srv,
                                            mesh_conn_t *c,
                                            mesh_status_t *st);
/** Accept on l and serve each connection on its own thread until
 *  mesh_grpc_server_shutdown().  Handshake failures are logged and skipped.
 *  @return MESH_OK after shutdown, or an accept error. */
MESH_EXTERN int mesh_grpc_server_serve(mesh_grpc_server_t *srv,
                                       mesh_listener_t *l, mesh_status_t *st);
/** Stop: no new connections; open ones get GOAWAY and their calls finish.
 *  Any thread, also a handler.  Returns at once. */
MESH_EXTERN void mesh_grpc_server_shutdown(mesh_grpc_server_t *srv);
/** Shut down, wait for every call and connection thread, free.  Not from
 *  a handler.  NULL is a no-op. */
MESH_EXTERN void mesh_grpc_server_free(mesh_grpc_server_t *srv);

/* ---- inside a handler (the call is borrowed) ------------------------------------- */

/** "/pkg.Service/Method". */
MESH_EXTERN const char *mesh_grpc_server_call_method(
    const mesh_grpc_server_call_t *call);
/** The client's SPIFFE ID ("" for a plaintext peer). */
MESH_EXTERN const char *mesh_grpc_server_call_peer_id(
    const mesh_grpc_server_call_t *call);
/** Request metadata. */
MESH_EXTERN const mesh_grpc_metadata_t *mesh_grpc_server_call_metadata(
    const mesh_grpc_server_call_t *call);
/** ms left before the client's deadline (grpc-timeout); -1 without one. */
MESH_EXTERN int mesh_grpc_server_call_remaining_ms(
    const mesh_grpc_server_call_t *call);
/** 1 once the client cancelled or the deadline passed, else 0. */
MESH_EXTERN int mesh_grpc_server_call_cancelled(
    const mesh_grpc_server_call_t *call);
/** Next request message (free with mesh_grpc_free()).
 *  @return 1, 0 (the client half-closed), MESH_ERR_CANCELLED,
 *          MESH_ERR_DEADLINE, MESH_ERR_MSG_TOO_LARGE (the call then ends
 *          RESOURCE_EXHAUSTED whatever the handler returns), or a
 *          connection error. */
MESH_EXTERN int mesh_grpc_server_call_recv(mesh_grpc_server_call_t *call,
                                           void **msg, size_t *len,
                                           mesh_status_t *st);
/** Send response headers now with md (may be NULL); otherwise they go with
 *  the first message or the status.  Once.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (sent already), or as send. */
MESH_EXTERN int mesh_grpc_server_call_send_headers(
    mesh_grpc_server_call_t *call, const mesh_grpc_metadata_t *md,
    mesh_status_t *st);
/** Send one response message (copied).
 *  @return MESH_OK, MESH_ERR_CANCELLED, MESH_ERR_DEADLINE, a connection
 *          error. */
MESH_EXTERN int mesh_grpc_server_call_send(mesh_grpc_server_call_t *call,
                                           const void *msg, size_t len,
                                           mesh_status_t *st);
/** Trailing metadata to send with the status (copied; adds to earlier). */
MESH_EXTERN int mesh_grpc_server_call_add_trailers(
    mesh_grpc_server_call_t *call, const mesh_grpc_metadata_t *md,
    mesh_status_t *st);
/** The status message (copied; sent percent-encoded as grpc-message). */
MESH_EXTERN int mesh_grpc_server_call_set_message(
    mesh_grpc_server_call_t *call, const char *message);

#ifdef __cplusplus
}
#endif
#endif /* MESH_GRPC_H */
