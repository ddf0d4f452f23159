/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: per-service discovery state, the sources behind it
 * (static, file, DNS, etcd) and service registration.
 *
 * Threads: every source runs on the worker loop (m->loop).  Publishing a
 * new endpoint set happens there too (or in init, before the loop starts);
 * readers on any thread take the current snapshot lock-free through
 * mesh__disc_snapref().  Counters are atomics; the last error text is
 * guarded by the state's mutex. */
#ifndef MESH_DISCOVERY_DISCOVERY_H
#define MESH_DISCOVERY_DISCOVERY_H

#include <cjson/cJSON.h>

#include "core/core.h"
#include "endpoint/endpoint.h"
#include "telemetry/telemetry.h"

/* ---- limits on untrusted input (files, etcd values, DNS answers) ---------*/
#define MESH__DISC_MAX_ENDPOINTS 100000 /* per service */
#define MESH__DISC_MAX_LABELS 64        /* per endpoint */
#define MESH__DISC_MAX_LABEL_KEY 128
#define MESH__DISC_MAX_LABEL_VALUE 256
#define MESH__DISC_MAX_LOCALITY 128     /* region, zone, subzone */
#define MESH__DISC_MAX_WEIGHT 1000000
#define MESH__DISC_MAX_PRIORITY 65535
#define MESH__DISC_MAX_FILE (64u << 20) /* bytes */
#define MESH__DISC_MAX_HOSTNAME 253

enum mesh__disc_type {
  MESH__DISC_NONE = -1,
  MESH__DISC_STATIC = 0,
  MESH__DISC_FILE = 1,
  MESH__DISC_DNS = 2,
  MESH__DISC_ETCD = 3,
  MESH__DISC_XDS = 4, /* endpoints pushed by the xds part (src_xds.c) */
};

struct mesh__disc_watch;
typedef struct mesh__disc_resolver mesh__disc_resolver_t;

/* One source implementation: start on init, stop at fini (the loop is no
 * longer running then). */
typedef struct mesh__disc_source {
  const char *name; /* "static", "file", "dns", "etcd" (for logs) */
  int (*start)(struct mesh__disc_svc *d, mesh_status_t *st);
  void (*stop)(struct mesh__disc_svc *d);
} mesh__disc_source_t;

/** Counters and state of one service's discovery (a copy). */
typedef struct mesh__disc_stats {
  uint64_t updates;       /* endpoint sets published (changes only) */
  uint64_t errors;        /* failed refreshes: the last good set was kept */
  uint64_t version;       /* version of the current snapshot (0: none) */
  size_t endpoints;       /* hosts in the current snapshot */
  bool stale;             /* the latest refresh failed */
  int64_t last_update_ms; /* monotonic ms of the last publish, 0: never */
  int64_t last_error_ms;  /* monotonic ms of the last error, 0: never */
  char last_error[256];   /* text of the last error ("" if none) */
  const char *source;     /* static string: source type name */
} mesh__disc_stats_t;

/* What one computed mesh_endpoints{health} gauge reads. */
typedef struct mesh__disc_gauge {
  struct mesh__disc_svc *d;
  int health; /* enum mesh__health */
} mesh__disc_gauge_t;

typedef struct mesh__disc_svc {
  mesh_t *m;
  mesh__service_t *svc;
  const cJSON *cfg;                  /* the "discovery" object, borrowed */
  int type;                          /* enum mesh__disc_type */
  const mesh__disc_source_t *source; /* NULL for MESH__DISC_NONE */
  void *src;                         /* the source's own state */

  mesh__snapref_t ref;
  mesh__snapshot_t *last; /* writer's reference to the published snapshot */
  uint64_t version;

  /* readiness: set after the first answer, good or bad */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic bool ready;
  int first_rc;

  _Atomic uint64_t n_updates, n_errors;
  _Atomic int64_t last_update_ms, last_error_ms;
  _Atomic bool stale;
  char last_error[256]; /* guarded by mu */

  /* mesh_discovery_updates_total, mesh_discovery_errors_total and
   * mesh_endpoints{health} of this service (NULL: no discovery source) */
  mesh__metric_t *m_updates, *m_errors;
  mesh__metric_t *m_endpoints[4]; /* by enum mesh__health */
  mesh__disc_gauge_t gauges[4];   /* what those computed gauges read */

  /* hostnames in static, file and etcd endpoints (resolve.c); NULL until
   * a set holds one.  Loop thread only. */
  mesh__disc_resolver_t *resolver;

  struct mesh__disc_watch *watches; /* loop thread only */
  bool notifying;                   /* inside a callback round */
  int64_t reprepare_timer;
} mesh__disc_svc_t;

/* ---- the per-service "discovery" key (registered in core/parts.c) ------- */
extern const mesh__svc_part_t mesh__disc_part;
/* ---- the top-level "register" key -------------------------------------- */
extern const mesh__part_t mesh__register_part;

/** Registration state of m (for metrics): false when m registers nothing. */
bool mesh__register_state(mesh_t *m, bool *registered, uint64_t *errors);

/** Wait until the service's discovery has given its first answer.
 *  Returns at once when it has (or in external-loop mode, where waiting
 *  on the caller's thread would starve the loop it drives).
 *  @return MESH_OK (a snapshot is published, possibly empty),
 *          MESH_ERR_DISCOVERY (the first answer was an error and no set
 *          exists), MESH_ERR_TIMEOUT, MESH_ERR_INVALID_ARG. */
int mesh__disc_wait_ready(mesh__service_t *svc, int timeout_ms);
/** The publication point pickers read (NULL if svc has no state). */
mesh__snapref_t *mesh__disc_snapref(mesh__service_t *svc);
/** Copy the counters; MESH_ERR_INVALID_ARG if svc has no state. */
int mesh__disc_stats(mesh__service_t *svc, mesh__disc_stats_t *out);

/* ---- for sources (loop thread) ------------------------------------------ */

/** Take eps (borrowed for the call) as the source's answer.  Hostnames in
 *  it are resolved first (resolve.c): the set is published once each has
 *  an answer, and again as their addresses change.  A set of IP literals
 *  is published at once (mesh__disc_publish_set).
 *  @return MESH_OK (published, unchanged or waiting for names),
 *          MESH_ERR_NOMEM (reported; the last good set stays). */
int mesh__disc_apply(mesh__disc_svc_t *d, const mesh__ep_t *eps, size_t n);
/** Publish eps, whose addresses are IP literals, as the service's endpoint
 *  set (unless unchanged): builds the snapshot, lets lb prepare it,
 *  publishes, notifies watchers, marks ready.  settle: this answer ends a
 *  failure (clears the stale flag).  On failure the last good set stays
 *  and the error is counted. */
int mesh__disc_publish_set(mesh__disc_svc_t *d, const mesh__ep_t *eps,
                           size_t n, bool settle);
/** Publish the current hosts again in a new snapshot, prepared anew by lb
 *  (after mesh__lb_reconfigure: a new split or policy takes effect while
 *  picks in flight finish on the snapshot they hold).  Loop thread.
 *  @return MESH_OK (also when nothing is published yet), MESH_ERR_NOMEM or
 *  lb's error (reported; the current set stays). */
int mesh__disc_republish(mesh__disc_svc_t *d);
/** Record a failed refresh: log event=discovery_error, count, keep the set,
 *  and mark the first answer given (dials stop waiting). */
void mesh__disc_error(mesh__disc_svc_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Record a successful refresh that did not change the set. */
void mesh__disc_ok(mesh__disc_svc_t *d);
/** Exponential backoff with +-20% jitter: base * 2^attempt capped at max. */
int64_t mesh__disc_backoff(int64_t base_ms, int64_t max_ms, unsigned attempt);
/** Quote a value for a log line (k="v" with \" and \\ escaped, control
 *  bytes as '?'); always NUL-terminates out. */
void mesh__disc_quote(char *out, size_t size, const char *s);

/* ---- endpoint JSON (epjson.c): validation of untrusted input ------------ */

/** Is s an IPv4/IPv6 literal or an RFC 1123 hostname (<= 253 bytes)? */
bool mesh__disc_valid_address(const char *s);
/** Split "host:port", "[v6]:port" (or a bare v6 literal with a port after
 *  the last colon is NOT accepted: use brackets) into host and port.
 *  @return MESH_OK or MESH_ERR_PARSE with a reason in err. */
int mesh__disc_split_hostport(const char *s, char *host, size_t hostlen,
                              uint16_t *port, char *err, size_t errlen);
/** Validate one endpoint object {"address","port","weight","priority",
 *  "locality","labels","health"}; fills *e borrowing strings from v.
 *  Errors go to c with JSON paths under path.  @return true when valid. */
bool mesh__ep_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                    mesh__ep_t *e);
/** Validate the attribute keys of an endpoint (weight, priority, locality,
 *  labels, health) found in obj, leniently: other keys are ignored (used
 *  for etcd Metadata written by other clients).  Fills those fields of e. */
bool mesh__ep_parse_attrs(mesh__cfg_t *c, const cJSON *obj, const char *path,
                          mesh__ep_t *e);
/** Validate an array of endpoint objects (at most
 *  MESH__DISC_MAX_ENDPOINTS); *out is malloc'd (caller frees), borrowing
 *  from arr.  @return MESH_OK, MESH_ERR_PARSE (errors reported to c),
 *  MESH_ERR_NOMEM. */
int mesh__ep_parse_list(mesh__cfg_t *c, const cJSON *arr, const char *path,
                        mesh__ep_t **out, size_t *n);

/** Validate one etcd value in the naming package's layout
 *  {"Op":0|1,"Addr":"host:port","Metadata":...}.  On success *doc owns the
 *  parsed value, ep borrows from it and from host; *deleted is true for
 *  Op 1.  Metadata, when an object, may carry weight, priority, locality,
 *  labels and health (other keys are ignored).
 *  @return MESH_OK or MESH_ERR_PARSE with the reason in err. */
int mesh__etcd_parse_endpoint(const char *val, size_t len, cJSON **doc,
                              mesh__ep_t *ep, char *host, size_t hostlen,
                              bool *deleted, char *err, size_t errlen);

/* ---- hostnames in static, file and etcd endpoints (resolve.c) ---------- */

/** Does eps hold an address that is not an IP literal? */
bool mesh__disc_has_hostname(const mesh__ep_t *eps, size_t n);
/** Take eps (copied) as the source's set and resolve its hostnames with
 *  the service's "resolver" settings.  @return MESH_OK or MESH_ERR_NOMEM
 *  (reported; the last good set stays). */
int mesh__resolver_update(mesh__disc_svc_t *d, const mesh__ep_t *eps,
                          size_t n);
/** The source's set holds no hostname any more: stop resolving. */
void mesh__resolver_release(mesh__disc_svc_t *d);
/** Stop and free (fini; lookups in flight are cancelled). */
void mesh__resolver_free(mesh__disc_svc_t *d);
/** Validate the optional "resolver" key of a static/file/etcd discovery
 *  object v: {"servers","min_ttl_ms","max_ttl_ms","timeout_ms"}. */
void mesh__disc_check_resolver(mesh__cfg_t *c, const cJSON *v,
                               const char *path);

/* ---- one name kept resolved in the background (dnsname.c) --------------
 * As Envoy's LOGICAL_DNS cluster resolves its endpoint (used by xds for
 * LOGICAL_DNS clusters).  Created, read and freed on the loop thread (or
 * in init, before the loop starts); answers arrive on the loop thread and
 * on_change runs there, never inside mesh__dnsname_new. */

/* Envoy's Cluster.DnsLookupFamily, same values. */
enum mesh__dns_family {
  MESH__DNS_AUTO = 0,         /* IPv6 addresses, else IPv4 */
  MESH__DNS_V4_ONLY = 1,
  MESH__DNS_V6_ONLY = 2,
  MESH__DNS_V4_PREFERRED = 3, /* IPv4 addresses, else IPv6 */
  MESH__DNS_ALL = 4,          /* IPv4 then IPv6 */
};

typedef struct mesh__dnsname_opts {
  const char *name;     /* a hostname or an IP literal (copied) */
  int family;           /* enum mesh__dns_family */
  int64_t refresh_ms;   /* from one answer to the next query */
  bool respect_ttl;     /* refresh after the answer's TTL (0: refresh_ms) */
  int64_t fail_base_ms, fail_max_ms; /* backoff after failed queries */
  const cJSON *resolver; /* {"servers", "timeout_ms"} (mesh__dnsname_check;
                          * borrowed for the name's life), NULL: system */
  const char *what;     /* names resolver in errors ("xds.logical_dns") */
  void (*on_change)(void *user); /* the state or the first address changed */
  void *user;
} mesh__dnsname_opts_t;

enum mesh__dnsname_state {
  MESH__DNSNAME_PENDING = 0, /* no answer yet */
  MESH__DNSNAME_OK = 1,      /* addresses known */
  MESH__DNSNAME_NONE = 2,    /* NXDOMAIN or no address of the family */
};

typedef struct mesh__dnsname_info {
  int state;                    /* enum mesh__dnsname_state */
  char addr[46];                /* the first address (state OK), text */
  size_t naddrs;                /* addresses of the last good answer */
  char err[200];                /* the last failure ("" after an answer) */
  unsigned failures;            /* consecutive failed queries */
  uint64_t queries;             /* queries answered (good or bad) */
} mesh__dnsname_info_t;

typedef struct mesh__dnsname mesh__dnsname_t;

/** Validate obj's "servers" and "timeout_ms" (other keys refused). */
void mesh__dnsname_check(mesh__cfg_t *c, const cJSON *obj, const char *path);
/** Start resolving o->name on m's loop (the first query at the loop's next
 *  turn).  @return MESH_OK, MESH_ERR_NOMEM, or the channel's error. */
int mesh__dnsname_new(mesh_t *m, const mesh__dnsname_opts_t *o,
                      mesh__dnsname_t **out, mesh_status_t *st);
/** What is known now (loop thread). */
void mesh__dnsname_get(const mesh__dnsname_t *n, mesh__dnsname_info_t *out);
/** Stop (a query in flight is cancelled; on_change is not called). */
void mesh__dnsname_free(mesh__dnsname_t *n);

/* ---- sources ---------------------------------------------------------- */
extern const mesh__disc_source_t mesh__disc_static;
extern const mesh__disc_source_t mesh__disc_file;
extern const mesh__disc_source_t mesh__disc_dns;
extern const mesh__disc_source_t mesh__disc_etcd;
extern const mesh__disc_source_t mesh__disc_xds;

void mesh__disc_check_static(mesh__cfg_t *c, const cJSON *v, const char *path);
void mesh__disc_check_file(mesh__cfg_t *c, const cJSON *v, const char *path);
void mesh__disc_check_dns(mesh__cfg_t *c, const cJSON *v, const char *path);
void mesh__disc_check_etcd(mesh__cfg_t *c, const cJSON *v, const char *path);
void mesh__disc_check_xds(mesh__cfg_t *c, const cJSON *v, const char *path);
/** The xDS cluster a service of type "xds" takes its endpoints from: its
 *  "cluster" key, else the service's name. */
const char *mesh__disc_xds_cluster(const mesh__service_t *svc);

/** Register discovery's views with telemetry ("endpoints"; views.c);
 *  called from the "register" part's init, which runs for every context. */
void mesh__disc_register_views(mesh_t *m);

/* What a public mesh_endpoints_t holds (discovery.c, endpoints.c). */
struct mesh_endpoints {
  mesh__snapshot_t *s; /* NULL: no answer yet */
};

#endif /* MESH_DISCOVERY_DISCOVERY_H */
