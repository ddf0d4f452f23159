/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: authorization.
 *
 *   cidr.c    IP blocks (v4/v6) parse and match
 *   policy.c  the policy model and its JSON parser (immutable, refcounted sets)
 *   fields.c  building its fields: strings, IP blocks, ports
 *   eval.c    pure evaluation: attributes in, decision and policy name out
 *   opa.c     the external authorizer: OPA Data API over libcurl, TTL cache
 *   authz.c   the part: config, reload, counters, callback, enforcement hooks
 *
 * Semantics are Istio's AuthorizationPolicy (security/v1beta1): CUSTOM
 * first, then DENY, then ALLOW; no ALLOW policy means allow; with any ALLOW
 * policy a request matching none is denied.  A rule matches when at least one
 * `from`, one `to` and all `when` entries match; absent lists match all; a
 * policy without rules never matches. */
#ifndef MESH_AUTHZ_AUTHZ_H
#define MESH_AUTHZ_AUTHZ_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/core.h"
#include "telemetry/telemetry.h"

/* ---- IP blocks (cidr.c) --------------------------------------------------- */

typedef struct mesh__cidr {
  uint8_t family; /* 4 or 6 */
  uint8_t bits;   /* prefix length */
  uint8_t addr[16];
} mesh__cidr_t;

/** Parse "203.0.113.4", "203.0.113.0/24", "2001:db8::/32" (a single address
 *  is a /32 or /128).  Host bits beyond the prefix are ignored, as Envoy does.
 *  @return MESH_OK or MESH_ERR_PARSE. */
int mesh__cidr_parse(const char *s, mesh__cidr_t *out);
/** Does the address fall in the block?  IPv4-mapped IPv6 addresses
 *  (::ffff:a.b.c.d, from dual-stack sockets) match IPv4 blocks. */
bool mesh__cidr_match(const mesh__cidr_t *c, const struct sockaddr *sa);
/** Parse an IP literal into a sockaddr (port 0).  @return MESH_OK or
 *  MESH_ERR_PARSE. */
int mesh__ip_parse(const char *s, struct sockaddr_storage *out);
/** Format the address of sa (no port) into buf.  "" when unknown. */
void mesh__ip_format(const struct sockaddr *sa, char *buf, size_t len);

/* ---- request attributes ---------------------------------------------------
 * What a decision is made from.  Every string is NUL-terminated and borrowed
 * (from the HTTP layer's buffer, or owned copies for the public builder).
 * The public mesh_authz_request_t is this struct. */

typedef struct mesh__az_hdr {
  const char *name;
  const char *value;
} mesh__az_hdr_t;

#define MESH__AZ_NS_MAX 256

struct mesh_authz_request {
  const char *principal;        /* peer SPIFFE ID, "" without mTLS */
  char ns[MESH__AZ_NS_MAX];     /* namespace from /ns/<ns>/..., "" if none */
  struct sockaddr_storage src;  /* peer address (family 0: unknown) */
  int port;                     /* destination (local) port, -1 unknown */
  bool http;                    /* the HTTP attributes below are present */
  const char *method;
  const char *path;             /* normalized, without query */
  const char *target;           /* as sent (with query): OPA's original_path
                                   and the query of its path */
  const char *host;
  const mesh__az_hdr_t *hdrs;
  size_t nhdrs;
  /* request authentication (authn's verified JWT, set by the HTTP layer):
   * "iss/sub" or NULL/"" without a token, and the token's claims */
  const char *req_principal;
  const cJSON *jwt_claims;
  /* storage of the public builder (mesh_authz_request_new) */
  char *own[6];
  int path_norm;                /* builder: the mode r->path was made with */
  mesh__az_hdr_t *own_hdrs;
  size_t own_cap;
};

/** Reset r to "nothing known" (port -1). */
void mesh__az_req_init(mesh_authz_request_t *r);
/** Set the principal (borrowed) and derive the namespace from it. */
void mesh__az_req_set_principal(mesh_authz_request_t *r, const char *id);
/** First value of a header (case-insensitive name), or NULL. */
const char *mesh__az_req_header(const mesh_authz_request_t *r,
                                const char *name);
/** Every value of header `name` (case-insensitive) in h[0..n), in order:
 *  the first `cap` go to values (may be NULL); returns how many there are.
 *  Behind mesh_authz_request_header_values and
 *  mesh_http_request_header_values. */
size_t mesh__az_hdr_values(const mesh__az_hdr_t *h, size_t n,
                           const char *name, const char **values, size_t cap);
/** The normalized path of target with mode, malloc'd (caller frees); ""
 *  when target is not a path (%00, bad %XX, authority-form); NULL when out
 *  of memory. */
char *mesh__az_req_normalize(const char *target, int mode);
/** Was r made by the public builder (its path normalized by it)? */
bool mesh__az_req_built(const mesh_authz_request_t *r);

/* ---- the policy model (policy.c) ------------------------------------------ */

enum mesh__az_match_kind {
  MESH__AZ_EXACT = 0,
  MESH__AZ_PREFIX,   /* "abc*" */
  MESH__AZ_SUFFIX,   /* "*abc" */
  MESH__AZ_PRESENCE, /* "*": any non-empty value */
};

typedef struct mesh__az_str {
  uint8_t kind;
  bool icase; /* hosts match case-insensitively */
  char *s;    /* without the '*' */
  size_t n;
} mesh__az_str_t;

typedef struct mesh__az_strs {
  mesh__az_str_t *v;
  size_t n;
} mesh__az_strs_t;

typedef struct mesh__az_cidrs {
  mesh__cidr_t *v;
  size_t n;
} mesh__az_cidrs_t;

typedef struct mesh__az_ports {
  int *v;
  size_t n;
} mesh__az_ports_t;

/* An absent list (n == 0) places no constraint. */
typedef struct mesh__az_source {
  mesh__az_strs_t principals, not_principals;
  mesh__az_strs_t namespaces, not_namespaces;
  mesh__az_cidrs_t ip_blocks, not_ip_blocks;
  mesh__az_strs_t request_principals, not_request_principals; /* HTTP only */
} mesh__az_source_t;

typedef struct mesh__az_operation {
  mesh__az_strs_t hosts, not_hosts;
  mesh__az_strs_t methods, not_methods;
  mesh__az_strs_t paths, not_paths;
  mesh__az_ports_t ports, not_ports;
} mesh__az_operation_t;

enum mesh__az_cond_key {
  MESH__AZ_K_HEADER = 0,   /* request.headers[Name] (HTTP only) */
  MESH__AZ_K_SOURCE_IP,    /* source.ip */
  MESH__AZ_K_REMOTE_IP,    /* remote.ip: the peer address (no XFF trust) */
  MESH__AZ_K_SOURCE_NS,    /* source.namespace */
  MESH__AZ_K_SOURCE_PRINCIPAL, /* source.principal */
  MESH__AZ_K_DEST_PORT,    /* destination.port */
  MESH__AZ_K_REQ_PRINCIPAL, /* request.auth.principal (HTTP only) */
  MESH__AZ_K_REQ_AUDIENCES, /* request.auth.audiences */
  MESH__AZ_K_REQ_PRESENTER, /* request.auth.presenter */
  MESH__AZ_K_REQ_CLAIMS,    /* request.auth.claims[a][b]... */
};

#define MESH__AZ_CLAIM_DEPTH 8

typedef struct mesh__az_cond {
  int key;
  char *header; /* MESH__AZ_K_HEADER */
  char *claim[MESH__AZ_CLAIM_DEPTH]; /* MESH__AZ_K_REQ_CLAIMS: the path */
  size_t nclaim;
  mesh__az_strs_t values, not_values;
  mesh__az_cidrs_t ips, not_ips;
  mesh__az_ports_t ports, not_ports;
} mesh__az_cond_t;

typedef struct mesh__az_rule {
  mesh__az_source_t *from;
  size_t nfrom;
  mesh__az_operation_t *to;
  size_t nto;
  mesh__az_cond_t *when;
  size_t nwhen;
} mesh__az_rule_t;

enum mesh__az_action {
  MESH__AZ_ALLOW = 0,
  MESH__AZ_DENY,
  MESH__AZ_AUDIT,
  MESH__AZ_CUSTOM,
};

enum mesh__az_provider {
  MESH__AZ_PROVIDER_OPA = 0,
  MESH__AZ_PROVIDER_CALLBACK,
};

typedef struct mesh__az_policy {
  char *name;
  int action;
  int provider; /* CUSTOM only */
  mesh__az_rule_t *rules;
  size_t nrules;
  /* mesh_authz_decisions_total{action,policy} series, registered by the
   * part before the set is published (NULL in sets built for checks) */
  mesh__metric_t *m_allow, *m_deny, *m_dry_run;
} mesh__az_policy_t;

/* Where the connection-level check may not decide yet. */
enum mesh__az_protocol {
  MESH__AZ_PROTO_HTTP = 0, /* HTTP follows: HTTP parts checked per request */
  MESH__AZ_PROTO_TCP,      /* no HTTP: Istio's TCP semantics at accept */
};

typedef struct mesh__az_opa_cfg {
  char *url;
  int64_t timeout_ms;
  int64_t cache_ttl_ms;
  int64_t cache_size;
  bool fail_open;
} mesh__az_opa_cfg_t;

/* An immutable set of policies: built once, read by any thread, freed when
 * the last reference goes. */
typedef struct mesh__authz_set {
  _Atomic uint32_t refs;
  uint64_t generation;
  mesh__az_policy_t *policies;
  size_t n;
  size_t nallow, ndeny, ncustom, naudit;
  bool dry_run;
  int protocol;
  bool have_opa;
  mesh__az_opa_cfg_t opa;
  int path_norm;        /* enum mesh__path_norm */
  bool path_norm_given; /* the section named it (a reload must agree) */
  /* decisions no policy made (policy="") */
  mesh__metric_t *m_allow, *m_deny, *m_dry_run;
} mesh__authz_set_t;

/* ---- building fields (fields.c, used by policy.c) --------------------------- */

typedef struct mesh__az_bctx {
  mesh__cfg_t *c;
  bool oom; /* an allocation failed: the build reports MESH_ERR_NOMEM */
} mesh__az_bctx_t;

/* What a string list holds: decides its checks and case rules. */
enum mesh__az_str_ctx {
  MESH__AZS_PLAIN = 0,
  MESH__AZS_PRINCIPAL, /* "spiffe://" stripped */
  MESH__AZS_PATH,      /* must start with "/" (or be a suffix / "*") */
  MESH__AZS_METHOD,    /* an HTTP token */
  MESH__AZS_HOST,      /* case-insensitive */
  MESH__AZS_NAMESPACE, /* no "/" */
};

/** calloc (at least one element) / copy of s[0..n); NULL and b->oom set
 *  when out of memory. */
void *mesh__az_zalloc(mesh__az_bctx_t *b, size_t n, size_t size);
char *mesh__az_dupn(mesh__az_bctx_t *b, const char *s, size_t n);
/** out = "base.key[i]" (or "base[i]" when key is NULL), truncated quietly
 *  at MESH__PATH_MAX like every config path. */
void mesh__az_idx_path(char *out, const char *base, const char *key, int i);
/** Read obj[key] (an array of strings; absent: empty list) into out with
 *  the checks of ctx; each bad entry is reported with its path. */
void mesh__az_strs_build(mesh__az_bctx_t *b, const cJSON *obj,
                         const char *path, const char *key, int ctx,
                         mesh__az_strs_t *out);
void mesh__az_strs_free(mesh__az_strs_t *s);
/** Read obj[key] (IPs or CIDR blocks) into out. */
void mesh__az_cidrs_build(mesh__az_bctx_t *b, const cJSON *obj,
                          const char *path, const char *key,
                          mesh__az_cidrs_t *out);
/** Read obj[key] (ports as numbers or strings) into out. */
void mesh__az_ports_build(mesh__az_bctx_t *b, const cJSON *obj,
                          const char *path, const char *key,
                          mesh__az_ports_t *out);

/** Validate an "authz" section (path is its JSON path) and, when out is
 *  non-NULL and there was no error, build the set (refs = 1).  Errors go to
 *  c with their JSON paths; all of them are reported.
 *  @return MESH_OK, MESH_ERR_CONFIG or MESH_ERR_NOMEM. */
int mesh__authz_set_build(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                          mesh__authz_set_t **out);
void mesh__authz_set_ref(mesh__authz_set_t *s);
void mesh__authz_set_unref(mesh__authz_set_t *s);

/* ---- request authentication attributes (reqauth.c) ------------------------ */

/** Parse a "request.auth.*" condition key into w (key, claim path).
 *  @return the MESH__AZ_K_REQ_* key, or -1 (not such a key, or a bad claim
 *  path: empty, unbalanced brackets, deeper than MESH__AZ_CLAIM_DEPTH). */
int mesh__az_reqauth_key(mesh__az_bctx_t *b, const char *k,
                         mesh__az_cond_t *w);
/** Does a request.auth.* condition hold?  As Istio: a claim that is a
 *  string matches a value, a list of strings when any element does; other
 *  claim types and absent claims match no value (so notValues hold). */
bool mesh__az_reqauth_match(const mesh__az_cond_t *w,
                            const mesh_authz_request_t *r);

/* ---- evaluation (eval.c) -------------------------------------------------- */

enum mesh__az_stage {
  /* At accept, HTTP will follow: rules that depend on HTTP attributes are
   * left to the request check (a DENY needing them does not deny yet; an
   * ALLOW needing them keeps the connection open).  CUSTOM waits too. */
  MESH__AZ_STAGE_CONN = 0,
  /* A full request: every attribute known. */
  MESH__AZ_STAGE_REQUEST,
  /* Istio's TCP semantics (no HTTP at all): in DENY and CUSTOM rules an
   * HTTP-only field counts as matched, in ALLOW rules as not matched. */
  MESH__AZ_STAGE_TCP,
};

enum mesh__az_decision {
  MESH__AZ_DECIDE_ALLOW = 0,
  MESH__AZ_DECIDE_DENY,
};

typedef struct mesh__authz_result {
  int decision;
  const mesh__az_policy_t *decider; /* NULL: a default decision */
  const char *policy;  /* deciding policy name, "" when none (borrowed) */
  const char *reason;  /* static text */
  /* CUSTOM policies that matched, first per provider (NULL: none).  The
   * caller asks the provider; a deny from it wins over `decision`. */
  const mesh__az_policy_t *custom[2];
  const char *audit;   /* first matching AUDIT policy or NULL */
} mesh__authz_result_t;

/** Decide.  Pure: no I/O, no allocation, no locks.  s may be NULL (no
 *  policies: allow). */
void mesh__authz_eval(const mesh__authz_set_t *s,
                      const mesh_authz_request_t *r, int stage,
                      mesh__authz_result_t *out);

/** String match with Istio's forms (exact, "abc*", "*abc", "*"). */
bool mesh__az_str_match(const mesh__az_str_t *m, const char *v);
/** Principal match: both pattern and value may carry "spiffe://". */
bool mesh__az_principal_match(const mesh__az_str_t *m, const char *id);
/** Istio's source.namespace / namespaces match: the regular expression
 *  ANY "/ns/" NS "/" ANY (ANY is ".*"; each "*" of the pattern is ".*"
 *  too) over the whole principal, so every "/ns/" segment of the SPIFFE
 *  ID counts, not only the first. */
bool mesh__az_ns_match(const mesh__az_str_t *m, const char *principal);

/* ---- external authorizer (opa.c) ------------------------------------------ */

typedef struct mesh__opa mesh__opa_t;

int mesh__opa_new(mesh__opa_t **out);
void mesh__opa_free(mesh__opa_t *o);
/** Drop every cached decision (on reload). */
void mesh__opa_flush(mesh__opa_t *o);
/** Serialize the request as an OPA input document {"input": {...}}.
 *  @return a malloc'd string or NULL (out of memory). */
char *mesh__opa_input(const mesh_authz_request_t *r, const char *self_id);
/** Interpret a Data API response body: {"result": true} or
 *  {"result": {"allow": true}} allow; false, undefined (no "result") or any
 *  other shape deny.  @return 1 allow, 0 deny, MESH_ERR_PARSE. */
int mesh__opa_parse_result(const char *body, size_t len);

/* Outcome of one external check. */
enum mesh__opa_outcome {
  MESH__OPA_ALLOW = 0,
  MESH__OPA_DENY,
  MESH__OPA_ERROR, /* unreachable, timeout, bad status or body */
};

/** Ask OPA (through the cache).  Blocking, at most cfg->timeout_ms.
 *  *cached is set when the answer came from the cache; err (may be NULL)
 *  receives the reason of an error. */
int mesh__opa_check(mesh__opa_t *o, const mesh__az_opa_cfg_t *cfg,
                    uint64_t generation, const mesh_authz_request_t *r,
                    const char *self_id, bool *cached, mesh_status_t *err);

/* ---- the part (authz.c) --------------------------------------------------- */

extern const mesh__part_t mesh__authz_part;

/** Connection-level check, called by the accept path after the handshake:
 *  principal, peer IP and local port against the current policies.  With
 *  "protocol": "http" (the default) rules needing HTTP attributes are left
 *  to the per-request check; with "tcp" this is the whole decision.
 *  Counts and logs the decision.  Any thread; no lock on the fast path.
 *  @param peer_id   the verified SPIFFE ID, "" or NULL for a plaintext peer
 *  @param peer      the peer address (NULL: unknown)
 *  @param local_port the port the connection was accepted on (-1 unknown)
 *  @return MESH_OK (go on) or MESH_ERR_DENIED (close it; detail in st). */
int mesh__authz_check_conn(mesh_t *m, const char *peer_id,
                           const struct sockaddr *peer, int local_port,
                           mesh_status_t *st);

/** Request-level check (the HTTP server calls it for each request): the
 *  full evaluation, then the CUSTOM providers.  Counts and logs.
 *  @return MESH_OK or MESH_ERR_DENIED (policy name in st). */
int mesh__authz_check_request(mesh_t *m, const mesh_authz_request_t *r,
                              mesh_status_t *st);

/** Set (doc non-NULL: an "authz" section's JSON, built and checked as
 *  one) or clear (doc NULL) the external policy set: a part above (xds,
 *  the server Listener's RBAC filter) hands its policy down; authz never
 *  calls up.  A request the configured set allows is then judged by the
 *  external set too (one version of each); denials answer, count and log
 *  as the configured set's do.  origin names the source in the log line.
 *  Any thread; published lock-free for readers.
 *  @return MESH_OK, MESH_ERR_CONFIG (doc refused: st, nothing changed),
 *          MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG (no authz part). */
int mesh__authz_set_external(mesh_t *m, const cJSON *doc, const char *origin,
                             mesh_status_t *st);

/** Is authorization configured at all (a set with policies, or an
 *  external set)? */
bool mesh__authz_active(mesh_t *m);

/** The path normalization every protocol part applies to a request before
 *  authorization, routing and the handler (authz.path_normalization, fixed
 *  for the life of the context; the default without an authz part).  Any
 *  thread, lock-free. */
int mesh__authz_path_norm(mesh_t *m);

#endif /* MESH_AUTHZ_AUTHZ_H */
