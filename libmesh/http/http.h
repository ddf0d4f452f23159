/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the HTTP/1.1 layer.
 *
 *   parse.c    strict parser of heads (no I/O, no allocation): parse.h
 *   body.c     body framing (Content-Length, chunked, EOF): parse.h
 *   message.c  request/response objects and their serialization
 *   io.c       byte transports: a mesh connection, or a plain socket
 *   client.c   one exchange: write a request, read a response
 *   server.c   the serving loop with per-request authorization
 *   route.c    the "http" section and per-service "routes": match, pick
 *   fault.c    fault injection decisions (pure)
 *   call.c     mesh_http_call: route, fault, call layer, trace headers
 */
#ifndef MESH_HTTP_HTTP_H
#define MESH_HTTP_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "authn/authn.h"
#include "authz/authz.h"
#include "core/core.h"
#include "http/h2.h"
#include "http/parse.h"
#include "telemetry/telemetry.h"

/* ---- transports (io.c) ---------------------------------------------------- */

/* Blocking byte I/O bounded by an absolute deadline (mesh__now_ms() clock;
 * 0: the transport's own timeouts).  read: bytes (> 0), 0 at EOF, or a
 * negative mesh code.  write: all bytes or a negative mesh code. */
typedef struct mesh__http_io {
  long (*read)(void *ctx, void *buf, size_t n, int64_t deadline_ms);
  int (*write)(void *ctx, const void *buf, size_t n, int64_t deadline_ms);
  void *ctx;
} mesh__http_io_t;

void mesh__http_io_conn(mesh__http_io_t *io, mesh_conn_t *c);
/** A plain TCP socket (blocking or not); fd is borrowed.  Used by tests
 *  and by applications bridging to plain HTTP backends. */
void mesh__http_io_fd(mesh__http_io_t *io, int *fd);

/* ---- messages (message.c) -------------------------------------------------- */

struct mesh_http_request {
  const char *method;
  const char *target;      /* server: normalized path + "?" + query as sent */
  const char *orig_target; /* server: as sent; built: NULL (target is) */
  const char *path;        /* normalized path, no query */
  mesh__az_hdr_t *hdrs;
  size_t nhdrs, cap;
  /* Fields sent more than once, each with its values joined by "," (what
   * policies and routes match): one entry per such name. */
  mesh__az_hdr_t *joined;
  size_t njoined, jcap;
  const char *body;
  size_t body_len;
  int timeout_ms;
  bool borrowed;       /* server view: strings point into its buffer */
  const char *peer_id; /* server side */
};

struct mesh_http_response {
  int status;
  mesh__az_hdr_t *hdrs; /* owned strings */
  size_t nhdrs, cap;
  char *body;           /* owned, NUL-terminated */
  size_t body_len;
};

/** Append a header to an owned list (copies).  Checks token / value. */
int mesh__http_hdrs_add(mesh__az_hdr_t **v, size_t *n, size_t *cap,
                        const char *name, size_t nlen, const char *value,
                        size_t vlen);
void mesh__http_hdrs_free(mesh__az_hdr_t *v, size_t n);
const char *mesh__http_hdrs_get(const mesh__az_hdr_t *v, size_t n,
                                const char *name);
/** The value a policy or a route sees for `name`: the joined entry when the
 *  field was repeated, else the only value (NULL when absent). */
const char *mesh__http_hdr_value(const mesh__az_hdr_t *v, size_t n,
                                 const mesh__az_hdr_t *joined, size_t nj,
                                 const char *name);
/** Fields the library writes itself (framing, connection management). */
bool mesh__http_reserved_header(const char *name);
/** Standard reason phrase ("" when unknown). */
const char *mesh__http_reason(int status);

/* A growable byte buffer for serializing heads. */
typedef struct mesh__hbuf {
  char *p;
  size_t n, cap;
  bool oom;
} mesh__hbuf_t;

void mesh__hbuf_add(mesh__hbuf_t *b, const void *s, size_t n);
void mesh__hbuf_str(mesh__hbuf_t *b, const char *s);
void mesh__hbuf_fmt(mesh__hbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mesh__hbuf_free(mesh__hbuf_t *b);

/* ---- settings (the "http" section, route.c) -------------------------------- */

typedef struct mesh__http_settings {
  mesh__http_limits_t lim;
  int64_t idle_timeout_ms;    /* server: wait for the next request */
  int64_t request_timeout_ms; /* server: a whole request once begun */
  mesh__h2_settings_t h2;     /* "http2": every HTTP/2 session the context
                                 makes (clients, servers, gRPC) */
} mesh__http_settings_t;

/** "http.http2" (h2_config.c): keepalive with gRPC's names, semantics and
 *  defaults, and the session limits.  Unknown keys are errors. */
void mesh__h2_settings_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                             mesh__h2_settings_t *s);
/** gRPC's defaults over mesh__h2_settings_default(). */
void mesh__h2_settings_config_default(mesh__h2_settings_t *s);

void mesh__http_settings_default(mesh__http_settings_t *s);
/** The context's settings (defaults when m is NULL or has no section). */
const mesh__http_settings_t *mesh__http_settings(mesh_t *m);

/* ---- faults (fault.c) ------------------------------------------------------ */

typedef struct mesh__fault {
  bool delay;
  int64_t delay_ms;
  double delay_pct;   /* 0..100 */
  bool abort;
  int abort_status;
  double abort_pct;   /* 0..100 */
} mesh__fault_t;

/** Validate / read a route's "fault" object. */
void mesh__fault_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                       mesh__fault_t *out);
/** Decide for one request from two uniform draws in [0, 1).  Pure.
 *  @param delay_ms receives the delay to apply (0: none)
 *  @param status   receives the abort status (0: no abort) */
void mesh__fault_decide(const mesh__fault_t *f, double u_delay,
                        double u_abort, int64_t *delay_ms, int *status);

/* ---- routes (route.c) -------------------------------------------------------- */

enum mesh__rt_hdr_kind {
  MESH__RT_EXACT = 0,
  MESH__RT_PREFIX,
  MESH__RT_PRESENT,
  MESH__RT_ABSENT,
};

typedef struct mesh__rt_hdr {
  char *name;
  int kind;
  char *value; /* EXACT / PREFIX */
} mesh__rt_hdr_t;

typedef struct mesh__rt_dest {
  char *service; /* never NULL once built */
  char *subset;  /* NULL: all endpoints */
  uint32_t weight;
} mesh__rt_dest_t;

enum mesh__rt_path_kind {
  MESH__RT_PATH_ANY = 0,
  MESH__RT_PATH_EXACT,
  MESH__RT_PATH_PREFIX,
};

typedef struct mesh__route {
  char *name;
  char **hosts;       /* top-level routes: the names they apply to */
  size_t nhosts;      /* 0: every call */
  int path_kind;
  char *path;
  char **methods;
  size_t nmethods;
  mesh__rt_hdr_t *hdrs;
  size_t nhdrs;
  mesh__rt_dest_t *dests;
  size_t ndests;
  uint64_t total_weight;
  int64_t timeout_ms; /* 0: none */
  int retries;        /* -1: the service's policy */
  bool has_fault;
  mesh__fault_t fault;
} mesh__route_t;

typedef struct mesh__routes {
  mesh__route_t *v;
  size_t n;
} mesh__routes_t;

/* What a route matches on. */
typedef struct mesh__rt_input {
  const char *host;   /* the name passed to mesh_http_call() */
  const char *method;
  const char *path; /* normalized, no query */
  const mesh__az_hdr_t *hdrs;
  size_t nhdrs;
  const mesh__az_hdr_t *joined; /* repeated fields, joined with "," */
  size_t njoined;
} mesh__rt_input_t;

/** Parse a "routes" array.  owner: the service a per-service list belongs
 *  to (the default destination), NULL for the top-level list (then each
 *  route must name its service).  out may be NULL to validate only. */
void mesh__routes_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                        const char *owner, mesh__routes_t *out);
void mesh__routes_free(mesh__routes_t *r);
/** First route that matches (NULL: none).  Pure, no allocation. */
const mesh__route_t *mesh__routes_match(const mesh__routes_t *t,
                                        const mesh__rt_input_t *in);
/** Choose a destination by weight from a uniform draw u in [0, 1). */
const mesh__rt_dest_t *mesh__route_pick(const mesh__route_t *r, double u);

/* ---- routes from a protocol above (the xds part sets the hook) --------------
 * A service whose routes come from a control plane (RDS) is routed per
 * request by the part that owns them: http and grpc ask through this hook
 * with the request's path and headers and get back a decision copied out
 * of one version of the route table (nothing held afterwards).  The hook
 * is set once by that part's init, before any call, and never changed. */

typedef struct mesh__xroute_in {
  const char *path; /* "/a/b" (HTTP, no query) or "/pkg.Svc/Method" (gRPC) */
  /* The value of a request header (lowercase name), repeated fields joined
   * with ","; NULL when absent. */
  const char *(*header)(void *user, const char *name);
  void *user;
  bool grpc;
} mesh__xroute_in_t;

#define MESH__XROUTE_NAME 128
typedef struct mesh__xroute {
  char subset[MESH__XROUTE_NAME]; /* the cluster's subset; "": whole service */
  char cluster[MESH__XROUTE_NAME];
  char route[64];          /* the route's name, for logs */
  int64_t timeout_ms;      /* 0: none (A31: max_stream_duration or timeout) */
  int retries;             /* retries after the first try (0: none) */
  unsigned retry_on;       /* MESH__RETRY_* (resilience.h), HTTP semantics */
  int codes[8];            /* retriable_status_codes (HTTP) */
  size_t ncodes;
  uint32_t grpc_codes;     /* bit per retriable gRPC status (A44) */
  int64_t base_ms, max_ms; /* retry backoff; 0: 25 ms and 10 x base */
  int64_t per_try_ms;      /* retry_policy.per_try_timeout (HTTP); 0 none */
  char hash_key[256];      /* A42: what the hash policies produced */
  size_t hash_len;         /* 0: no key (a random pick for ring hash) */
  int64_t delay_ms;        /* fault decided for this request: 0 none */
  int abort_http;          /* 0: no abort */
  int abort_grpc;          /* -1: no abort */
} mesh__xroute_t;

/** @return MESH_OK with *out filled; 1 when the service is not routed by
 *  the hook's owner (the caller goes on as before); or a negative code
 *  that fails the call, st saying why: MESH_ERR_NOT_FOUND "no route"
 *  when no route matches (gRPC reports UNAVAILABLE, as gRPC does; HTTP
 *  returns the error, as Envoy answers 404), MESH_ERR_NO_ENDPOINTS while
 *  the route table has not arrived.  Any thread, lock-free. */
typedef int (*mesh__xroute_fn)(mesh_t *m, const char *service,
                               const mesh__xroute_in_t *in,
                               mesh__xroute_t *out, mesh_status_t *st);

/** Set by the xds part's init (NULL: none); read by http and grpc. */
void mesh__http_set_xroute(mesh_t *m, mesh__xroute_fn fn);
/** Ask the hook (1 when there is none). */
int mesh__http_xroute(mesh_t *m, const char *service,
                      const mesh__xroute_in_t *in, mesh__xroute_t *out,
                      mesh_status_t *st);
/** Decide once more for a call whose decision named cluster (subset) was
 *  and whose pick then failed with MESH_ERR_NOT_FOUND (the decision went
 *  stale: two route updates since).  HTTP and gRPC calls alike.
 *  @return MESH_OK with *out naming another cluster and no fault (faults
 *  are decided once, with the first decision), or MESH_ERR_NOT_FOUND: no
 *  hook, was empty, the hook failed or named was again (the caller keeps
 *  the pick's error). */
int mesh__http_xroute_again(mesh_t *m, const char *service,
                            const mesh__xroute_in_t *in, const char *was,
                            mesh__xroute_t *out);

/* mesh_http_requests_total{service,code} series, registered on first use
 * of each code ([0]: "error", a request that got no response). */
#define MESH__HTTP_CODES 600

struct mesh__http_codes {
  _Atomic(mesh__metric_t *) c[MESH__HTTP_CODES];
};

struct mesh__http_svc {
  mesh__routes_t routes;
  char *jwt_aud; /* services.<name>.jwt_svid.audience, NULL: none */
  /* allocated at the service's first counted request: 4.8 KB that most
   * of thousands of services (etcd, gRPC-only) never need */
  _Atomic(struct mesh__http_codes *) by_code;
};

struct mesh__http {
  mesh__http_settings_t set;
  mesh__routes_t routes;
  mesh__xroute_fn xroute; /* routes from above (xds), or NULL */
  _Atomic uint64_t faults_delayed, faults_aborted;
  _Atomic(mesh__metric_t *) inbound[MESH__HTTP_CODES];
  /* client keepalive times raised by "too_many_pings" (h2_backoff.c) */
  _Atomic(struct mesh__h2_ka_table *) ka;
};

struct mesh__h2_ka_table;
/** NULL is a no-op. */
void mesh__h2_ka_free(struct mesh__h2_ka_table *t);

/** Count one request of service (NULL: served inbound) that ended with
 *  code (an HTTP status; 0 or out of range: "error").  Lock-free once the
 *  series exists. */
void mesh__http_count(mesh_t *m, mesh__service_t *svc, int code);

extern const mesh__part_t mesh__http_part;
extern const mesh__svc_part_t mesh__routes_svc_part;
extern const mesh__svc_part_t mesh__jwt_svc_part; /* jwt_attach.c */

/** "authorization: Bearer <JWT-SVID>" for calls to svc when its config has
 *  "jwt_svid" (*value malloc'd, "Bearer ..."), from identity's provider
 *  (the Workload API's cache).  @return MESH_OK (*value NULL: the service
 *  carries none), or the provider's error with the service named in st. */
int mesh__http_jwt_header(mesh_t *m, const mesh__service_t *svc, char **value,
                          mesh_status_t *st);

/* ---- client (client.c) ------------------------------------------------------ */

/** Write req (with Host and any extra fields) and read the response.
 *  @param reusable  set when the connection may carry another request.
 *  @return as mesh_http_exchange(). */
int mesh__http_exchange_io(const mesh__http_io_t *io, const char *host,
                           const mesh_http_request_t *req,
                           const mesh__az_hdr_t *extra, size_t nextra,
                           const mesh__http_limits_t *lim,
                           int64_t deadline_ms, mesh_http_response_t **out,
                           bool *reusable, mesh_status_t *st);

/* ---- server (server.c) ------------------------------------------------------ */

/* Who is on the other end, for authorization and the handler. */
typedef struct mesh__http_peer {
  const char *peer_id;          /* "" for plaintext */
  struct sockaddr_storage addr; /* family 0: unknown */
  int local_port;               /* -1 unknown */
} mesh__http_peer_t;

int mesh__http_serve_io(mesh_t *m, const mesh__http_io_t *io,
                        const mesh__http_peer_t *peer,
                        mesh_http_handler_fn handler, void *user,
                        mesh_status_t *st);

/* ---- inbound security (guard.c) -------------------------------------------- */

/** Authenticate (authn) then authorize (authz) one request; ar is the
 *  request view both protocols build once per request (its req_principal
 *  and jwt_claims are filled here, borrowed from an).  hdrs[0..*nhdrs)
 *  (capacity cap) are the request's header fields: after a verified token
 *  they are edited in place by mesh__http_authn_headers() before authz
 *  runs, and ar->hdrs/nhdrs follow.  an is reset first and keeps the
 *  verdict (free it with mesh__authn_result_free when the request is
 *  done).  @return 0 (go on), 401 (token refused) or 403 (denied by
 *  policy); st gets the reason. */
int mesh__http_guard(mesh_t *m, mesh_authz_request_t *ar, mesh__az_hdr_t *hdrs,
                     size_t *nhdrs, size_t cap, mesh__authn_result_t *an,
                     mesh_status_t *st);
/** The handler's header view after authentication: drops the token header
 *  (forward_original_token false) and fields replaced by
 *  output_claim_to_headers, then appends those (while n < cap).
 *  @return the new count. */
size_t mesh__http_authn_headers(const mesh__authn_result_t *an,
                                mesh__az_hdr_t *v, size_t n, size_t cap);

/* HTTP/2 sessions and streams (h2*.c): part of the surface (grpc). */
#include "http/h2.h"

#endif /* MESH_HTTP_HTTP_H */
