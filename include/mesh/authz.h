/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — authorization: Istio AuthorizationPolicy semantics, an
 * application callback authorizer and an external OPA authorizer.
 *
 * Policies come from the "authz" config section (docs/config/authz.md):
 * CUSTOM policies are asked first, then DENY, then ALLOW; with no ALLOW
 * policy a request is allowed, with any it is denied unless one matches.
 * The library enforces them itself at accept (principal, peer IP, port) and
 * for each request served by mesh_http_serve() (method, path, host,
 * headers).  Applications with their own protocol describe a request with
 * mesh_authz_request_* and call mesh_authz_check().
 */
#ifndef MESH_AUTHZ_H
#define MESH_AUTHZ_H

#include <stddef.h>
#include <stdint.h>
#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;
typedef struct mesh_conn mesh_conn_t;

/** The attributes of one request.  Opaque; built by the application with
 *  mesh_authz_request_new() or handed (borrowed) to a callback. */
typedef struct mesh_authz_request mesh_authz_request_t;

/* ---- describing a request ---------------------------------------------- */

/** A request with nothing known yet.  @return NULL when out of memory. */
MESH_EXTERN mesh_authz_request_t *mesh_authz_request_new(void);
/** Free a request made by mesh_authz_request_new().  NULL is a no-op. */
MESH_EXTERN void mesh_authz_request_free(mesh_authz_request_t *r);
/** Take the peer SPIFFE ID, peer address and local port of a connection.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_authz_request_set_conn(mesh_authz_request_t *r,
                                            const mesh_conn_t *c);
/** Peer SPIFFE ID ("spiffe://td/ns/x/sa/y"; "" for none).  Copied.  The
 *  namespace is taken from its path (/ns/<namespace>/...).
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_authz_request_set_principal(mesh_authz_request_t *r,
                                                 const char *spiffe_id);
/** Peer IP address literal ("10.0.0.7", "::1").
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (not an IP literal). */
MESH_EXTERN int mesh_authz_request_set_source_ip(mesh_authz_request_t *r,
                                                 const char *ip);
/** Destination (local) port, 0-65535.  @return MESH_OK, MESH_ERR_INVALID_ARG */
MESH_EXTERN int mesh_authz_request_set_port(mesh_authz_request_t *r,
                                            int port);
/** Mark the request as HTTP with its method, request target (path and
 *  query; it is normalized for matching) and host.  Copied.  For an
 *  absolute-form target ("http://h/x") the target's authority is the host
 *  and `host` is ignored (RFC 9112 3.2.2), as in mesh_http_serve().
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_HTTP_PARSE (target is
 *          not a path), MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_authz_request_set_http(mesh_authz_request_t *r,
                                            const char *method,
                                            const char *target,
                                            const char *host);
/** Add a request header (repeat for repeated fields).  Copied.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_authz_request_add_header(mesh_authz_request_t *r,
                                              const char *name,
                                              const char *value);

/* ---- reading a request (in callbacks too); results are borrowed ------- */

/** Peer SPIFFE ID, "" when none. */
MESH_EXTERN const char *mesh_authz_request_principal(
    const mesh_authz_request_t *r);
/** Namespace from the SPIFFE ID, "" when none. */
MESH_EXTERN const char *mesh_authz_request_namespace(
    const mesh_authz_request_t *r);
/** Peer IP into buf ("" when unknown).  @return MESH_OK, MESH_ERR_BUFFER. */
MESH_EXTERN int mesh_authz_request_source_ip(const mesh_authz_request_t *r,
                                             char *buf, size_t len);
/** Destination port, -1 when unknown. */
MESH_EXTERN int mesh_authz_request_port(const mesh_authz_request_t *r);
/** HTTP method, normalized path (no query) and host; NULL for non-HTTP. */
MESH_EXTERN const char *mesh_authz_request_method(
    const mesh_authz_request_t *r);
MESH_EXTERN const char *mesh_authz_request_path(const mesh_authz_request_t *r);
MESH_EXTERN const char *mesh_authz_request_host(const mesh_authz_request_t *r);
/** First value of a header (name case-insensitive), NULL when absent.
 *  Policies match a repeated field with all its values joined by ","
 *  (Envoy's rule); mesh_authz_request_header_values() gives each one. */
MESH_EXTERN const char *mesh_authz_request_header(
    const mesh_authz_request_t *r, const char *name);
/** Every value of a header, one per field, in order: fills
 *  values[0..cap) with borrowed pointers (valid while r is, and in a
 *  callback only during the call) and returns how many there are (may
 *  exceed cap; values may be NULL with cap 0 to count).  Same thread rule
 *  as r.  @return the number of values (0: absent, or r/name NULL). */
MESH_EXTERN size_t mesh_authz_request_header_values(
    const mesh_authz_request_t *r, const char *name, const char **values,
    size_t cap);

/* ---- deciding ---------------------------------------------------------- */

#define MESH_AUTHZ_ALLOW 0
#define MESH_AUTHZ_DENY 1

/** An application authorizer, used by CUSTOM policies with
 *  "provider": "callback".  Called on the thread that checks the request
 *  (the accept or serving thread), possibly from several at once: it must
 *  be thread-safe and must not call mesh_free() or mesh_authz_*() setters.
 *  @param req     the request (borrowed, valid during the call)
 *  @param policy  name of the CUSTOM policy that matched
 *  @return MESH_AUTHZ_ALLOW or MESH_AUTHZ_DENY (anything else denies). */
typedef int (*mesh_authz_fn)(const mesh_authz_request_t *req,
                             const char *policy, void *user);

/** Install (or with fn NULL remove) the callback authorizer.  With none
 *  installed, CUSTOM "callback" policies deny.  Thread-safe.
 *  @return MESH_OK or MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_authz_set_callback(mesh_t *m, mesh_authz_fn fn,
                                        void *user);

/** Check a request against the current policies (CUSTOM providers
 *  included); counted and logged like the library's own checks.  A request
 *  without HTTP attributes is judged with Istio's TCP semantics.
 *  Thread-safe; may block up to the OPA timeout.
 *  @return MESH_OK (allowed, or dry-run), MESH_ERR_DENIED (policy name and
 *          reason in st), MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_authz_check(mesh_t *m, const mesh_authz_request_t *req,
                                 mesh_status_t *st);

/** Replace the policies without a restart.  json is the text of an "authz"
 *  section, e.g. {"policies": [...], "dry_run": false}.  It is validated in
 *  full first; on any error nothing changes.  In-flight checks finish with
 *  the old set.  Thread-safe.
 *  @return MESH_OK, MESH_ERR_CONFIG (first error with its path in st),
 *          MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_authz_reload(mesh_t *m, const char *json,
                                  mesh_status_t *st);

/** Read a decision counter.  Names: "allow", "deny" (enforced decisions,
 *  connection and request checks together), "conn_deny" (of which at
 *  accept), "dry_run_deny" (denials reported but not enforced),
 *  "custom_deny" (denials by a CUSTOM provider), "opa_error",
 *  "opa_cache_hit", "audit", "reload", "reload_error".
 *  @return MESH_OK or MESH_ERR_NOT_FOUND (unknown name). Thread-safe. */
MESH_EXTERN int mesh_authz_counter(mesh_t *m, const char *name,
                                   uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* MESH_AUTHZ_H */
