/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — a small HTTP/1.1 layer over mesh connections.
 *
 * Client: mesh_http_call() sends a request to a service by name through the
 * routes of the "http" config (match on path, method, headers; a service,
 * a subset or weighted subsets), with fault injection, per-request
 * timeouts, retries on 5xx and resets through the service's retry policy,
 * and trace headers; mesh_http_exchange() sends one request over a
 * connection you hold (keep-alive: call it again on the same connection).
 *
 * Server: mesh_http_serve() reads requests from an accepted connection,
 * enforces the authorization policies per request (403 when denied),
 * calls your handler and writes its response, until the peer closes.
 *
 * Parsing is strict (RFC 9112): request smuggling forms (Content-Length
 * with Transfer-Encoding, differing Content-Lengths, bare CR or LF,
 * obs-fold, invalid tokens) are refused with 400 and the connection is
 * closed.  Heads are limited to 60 KiB and 100 fields, bodies to 1 MiB by
 * default (docs/config/http.md).
 *
 * Threading: every function taking a mesh_t is thread-safe; a connection,
 * a request and a response belong to one thread at a time.
 */
#ifndef MESH_HTTP_H
#define MESH_HTTP_H

#include <stddef.h>
#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;
typedef struct mesh_conn mesh_conn_t;
typedef struct mesh_http_request mesh_http_request_t;
typedef struct mesh_http_response mesh_http_response_t;

/* ---- requests ---------------------------------------------------------- */

/** A request for method (a token, e.g. "GET") and target (origin form,
 *  "/path?query").  Both copied.
 *  @return NULL on invalid arguments or when out of memory. */
MESH_EXTERN mesh_http_request_t *mesh_http_request_new(const char *method,
                                                       const char *target);
/** Free a request made by mesh_http_request_new().  NULL is a no-op. */
MESH_EXTERN void mesh_http_request_free(mesh_http_request_t *r);
/** Add a header field (repeat for repeated fields).  Copied.  Framing
 *  fields (Content-Length, Transfer-Encoding, Connection, Host) are set by
 *  the library and refused here.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (not a token / value with CR, LF
 *          or NUL / framing field), MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_http_request_add_header(mesh_http_request_t *r,
                                             const char *name,
                                             const char *value);
/** Set the body (copied; sent with Content-Length).
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_http_request_set_body(mesh_http_request_t *r,
                                           const void *body, size_t len);
/** Time budget of the whole request in ms, retries included (0: the
 *  route's or the service's).  @return MESH_OK or MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_http_request_set_timeout(mesh_http_request_t *r,
                                              int timeout_ms);

/* Reading a request: in a server handler (borrowed, valid during the
 * call) or one you built.  Strings are NUL-terminated.
 *
 * A served request is seen by the handler exactly as the authorization
 * policies saw it: one normalized path (authz.path_normalization,
 * docs/config/authz.md), the authority of an absolute-form target as its
 * Host, and repeated header fields joined with ",". */
MESH_EXTERN const char *mesh_http_request_method(const mesh_http_request_t *r);
/** Served: the normalized path followed by the query as sent
 *  ("/a/b?c=d" for "/x/../a//b?c=d"), what an Envoy sidecar forwards.
 *  Built: the target given to mesh_http_request_new(). */
MESH_EXTERN const char *mesh_http_request_target(const mesh_http_request_t *r);
/** The request target exactly as the client sent it (absolute-form
 *  included).  For a built request, the target given. */
MESH_EXTERN const char *mesh_http_request_original_target(
    const mesh_http_request_t *r);
/** The normalized path without the query: what policies and routes
 *  matched ("/a/b").  A built request's path is normalized with
 *  MERGE_SLASHES (mesh_http_call() matches routes with the context's
 *  mode). */
MESH_EXTERN const char *mesh_http_request_path(const mesh_http_request_t *r);
/** Value of a header (case-insensitive name), NULL when absent.  A field
 *  sent more than once gives all its values joined with "," in the order
 *  received ("mallory,bob"; an empty copy counts: "mallory,"), as Envoy's
 *  header matchers and authorization policies see it.  Borrowed: valid
 *  while r is (for a built request, until the next add_header). */
MESH_EXTERN const char *mesh_http_request_header(const mesh_http_request_t *r,
                                                 const char *name);
/** Every value of a header, one per field line, in the order received.
 *  Fills values[0..cap) with borrowed pointers (valid as for
 *  mesh_http_request_header()) and returns the total number of values,
 *  which may exceed cap: call again with a larger array.  values may be
 *  NULL with cap 0 to count.  Same thread rule as the request.
 *  @return the number of fields named `name` (0: absent, or r/name NULL). */
MESH_EXTERN size_t mesh_http_request_header_values(
    const mesh_http_request_t *r, const char *name, const char **values,
    size_t cap);
MESH_EXTERN size_t mesh_http_request_header_count(
    const mesh_http_request_t *r);
/** Header i (0-based).  @return MESH_OK or MESH_ERR_NOT_FOUND. */
MESH_EXTERN int mesh_http_request_header_at(const mesh_http_request_t *r,
                                            size_t i, const char **name,
                                            const char **value);
/** The body (decoded from chunked if it was); *len receives its length. */
MESH_EXTERN const void *mesh_http_request_body(const mesh_http_request_t *r,
                                               size_t *len);
/** Server side: the peer's SPIFFE ID ("" for a plaintext peer). */
MESH_EXTERN const char *mesh_http_request_peer_id(
    const mesh_http_request_t *r);

/** Normalize the path of a request target exactly as mesh_http_serve()
 *  does for m before its policies, routes and handler see it
 *  (authz.path_normalization; MERGE_SLASHES when m is NULL): for servers
 *  that do not use mesh_http_serve() (net/http in Go, http.server in
 *  Python) and want their handler to see the path the policy judged.  The
 *  query is dropped.  Thread-safe, no allocation.
 *  @param buf  receives the NUL-terminated path; len >= strlen(target) + 2
 *              always suffices.
 *  @return MESH_OK; MESH_ERR_HTTP_PARSE (%00, a "%" without two hex
 *          digits, not a path: answer 400); MESH_ERR_BUFFER;
 *          MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_http_path_normalize(mesh_t *m, const char *target,
                                         char *buf, size_t len);

/* ---- responses --------------------------------------------------------- */

/** A response with status 200 and no body (handlers receive one ready). */
MESH_EXTERN mesh_http_response_t *mesh_http_response_new(void);
/** NULL is a no-op.  Never free the response handed to a handler. */
MESH_EXTERN void mesh_http_response_free(mesh_http_response_t *r);
/** @return MESH_OK or MESH_ERR_INVALID_ARG (not 100..599). */
MESH_EXTERN int mesh_http_response_set_status(mesh_http_response_t *r,
                                              int status);
/** As mesh_http_request_add_header(). */
MESH_EXTERN int mesh_http_response_add_header(mesh_http_response_t *r,
                                              const char *name,
                                              const char *value);
/** Set the body (copied).  @return MESH_OK, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_http_response_set_body(mesh_http_response_t *r,
                                            const void *body, size_t len);
MESH_EXTERN int mesh_http_response_status(const mesh_http_response_t *r);
MESH_EXTERN const char *mesh_http_response_header(
    const mesh_http_response_t *r, const char *name);
MESH_EXTERN size_t mesh_http_response_header_count(
    const mesh_http_response_t *r);
MESH_EXTERN int mesh_http_response_header_at(const mesh_http_response_t *r,
                                             size_t i, const char **name,
                                             const char **value);
/** The body (NUL-terminated for convenience; *len excludes the NUL). */
MESH_EXTERN const void *mesh_http_response_body(const mesh_http_response_t *r,
                                                size_t *len);

/* ---- client -------------------------------------------------------------- */

/** One request/response over a connection you hold (a mesh_dial() or
 *  mesh_call_conn() connection).  Blocking, bounded by the request's
 *  timeout (0: the connection's own I/O timeouts).  1xx responses are
 *  skipped.
 *  @param host  the Host header value (NULL: "localhost").
 *  @param out   receives the response (free with mesh_http_response_free).
 *  @param keep_alive  optional: set to 1 when the connection is at a
 *               message boundary and may carry another request, else 0.
 *  @return MESH_OK (any status), MESH_ERR_HTTP_PARSE (malformed response),
 *          MESH_ERR_HTTP_TOO_LARGE, MESH_ERR_TIMEOUT, MESH_ERR_PEER_CLOSED
 *          (closed before a complete response), MESH_ERR_RESET, MESH_ERR_TLS,
 *          MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_http_exchange(mesh_conn_t *c, const char *host,
                                   const mesh_http_request_t *req,
                                   mesh_http_response_t **out,
                                   int *keep_alive, mesh_status_t *st);

/** Send a request to a service of the config by name: routes pick the
 *  destination service (and subset), faults may delay or abort it, the call
 *  layer picks an endpoint, pools connections, retries 5xx and resets per
 *  the retry policy within the timeout, and feeds outcomes to outlier
 *  detection and metrics.  Trace context is injected.
 *  @return MESH_OK with the final response in *out (whatever its status:
 *          an aborted fault or a 5xx after retries is a response too);
 *          MESH_ERR_UNKNOWN_SERVICE, MESH_ERR_NO_ENDPOINTS,
 *          MESH_ERR_CIRCUIT_OPEN, MESH_ERR_DEADLINE, MESH_ERR_TIMEOUT,
 *          MESH_ERR_RETRY_BUDGET, a connection or parse error of the last
 *          try, MESH_ERR_UNSUPPORTED (no call layer in this build). */
MESH_EXTERN int mesh_http_call(mesh_t *m, const char *service,
                               const mesh_http_request_t *req,
                               mesh_http_response_t **out, mesh_status_t *st);

/* ---- server -------------------------------------------------------------- */

/** Handle one request: fill resp (status 200 and no body by default).
 *  HTTP/1.1: runs on the thread that called mesh_http_serve(), one request
 *  after another.  HTTP/2: the streams of one connection are served
 *  concurrently, each request on a library thread of its own (at most
 *  http.http2.max_concurrent_streams at once per connection, 512 in the
 *  process), so the handler and what user points to must be thread-safe.
 *  It may not call mesh_http_serve() on the same connection.  If the
 *  client resets the stream or closes the connection meanwhile, the
 *  response is dropped.
 *  @return 0 to send resp; non-zero to send 500 instead. */
typedef int (*mesh_http_handler_fn)(const mesh_http_request_t *req,
                                    mesh_http_response_t *resp, void *user);

/** Serve requests on an accepted connection until the peer closes it, a
 *  request asks to close, or an error.  Each request is checked against
 *  the authorization policies first (403 "RBAC: access denied" when denied,
 *  the handler is not called).  The connection is not closed: the caller
 *  closes it.  Over HTTP/2 it returns once every handler it started has
 *  returned.
 *  @return MESH_OK (peer done), MESH_ERR_HTTP_PARSE (a malformed request
 *          was answered 400), MESH_ERR_HTTP_TOO_LARGE (431/413 sent),
 *          MESH_ERR_TIMEOUT (idle or slow peer), or a connection error. */
MESH_EXTERN int mesh_http_serve(mesh_t *m, mesh_conn_t *c,
                                mesh_http_handler_fn handler, void *user,
                                mesh_status_t *st);

#ifdef __cplusplus
}
#endif
#endif /* MESH_HTTP_H */
