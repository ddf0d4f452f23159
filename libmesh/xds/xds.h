/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the xds part (protocols layer, above grpc): libmesh as
 * an xDS client (ADS, state of the world, v3), as proxyless gRPC is (gRFC
 * A27 and later).  This header is the part's whole surface.
 *
 * Decoding is pure: bytes of one resource in, libmesh structures out, no
 * I/O, no global state, so every decoder is unit-tested from vectors and
 * fuzzed.  A resource that says anything libmesh cannot honour is refused
 * (the caller NACKs it with the message): nothing is silently ignored.
 * The message names the resource and the field path, e.g.
 *   cluster "web": lb_policy: CLUSTER_PROVIDED is not supported
 *
 * Every decoder returns MESH_OK, MESH_ERR_PARSE (bytes are not the
 * message), MESH_ERR_UNSUPPORTED (a field libmesh cannot honour),
 * MESH_ERR_CONFIG (a value out of its rule) or MESH_ERR_NOMEM, with the
 * message in st. */
#ifndef MESH_XDS_XDS_H
#define MESH_XDS_XDS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "endpoint/endpoint.h"
#include "http/http.h"

#define MESH__XDS_TYPE_PREFIX "type.googleapis.com/"
#define MESH__XDS_LDS "type.googleapis.com/envoy.config.listener.v3.Listener"
#define MESH__XDS_RDS \
  "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define MESH__XDS_CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define MESH__XDS_EDS \
  "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

/* Resource types, in the order a client subscribes to them. */
typedef enum mesh__xds_type {
  MESH__XDS_T_LDS = 0,
  MESH__XDS_T_RDS,
  MESH__XDS_T_CDS,
  MESH__XDS_T_EDS,
  MESH__XDS_T_N_
} mesh__xds_type_t;

/** Type URL of t; NULL when out of range. */
const char *mesh__xds_type_url(mesh__xds_type_t t);
/** The type of a v3 type URL, or -1 (v2 and unknown URLs). */
int mesh__xds_type_of(const char *url);

/* ---- EDS: ClusterLoadAssignment -> endpoints ----------------------------*/
typedef struct mesh__xds_eds {
  char *name;              /* cluster_name: the EDS resource name */
  size_t n;
  mesh__ep_t *eps;         /* strings borrow from this object */
  /* "region/zone/subzone" -> weight when any locality states a weight
   * (lb.locality_weights), else NULL */
  cJSON *locality_weights;
  uint32_t overprovisioning;  /* percent; 140 when not stated */
  uint32_t npriorities;       /* highest priority + 1 */
  void *msg_;              /* the unpacked message, in arena_ (owned) */
  struct mesh__xds_arena *arena_;
  cJSON *labels_;          /* endpoint labels (owned), eps[i].labels */
} mesh__xds_eds_t;

int mesh__xds_decode_eds(const uint8_t *buf, size_t len, mesh__xds_eds_t **out,
                         mesh_status_t *st);
void mesh__xds_eds_free(mesh__xds_eds_t *e);

/* ---- CDS: Cluster -> service config -------------------------------------*/
typedef enum mesh__xds_cluster_kind {
  MESH__XDS_CLUSTER_EDS = 0,
  MESH__XDS_CLUSTER_AGGREGATE = 1,
  MESH__XDS_CLUSTER_LOGICAL_DNS = 2, /* gRFC A37 (logical_dns.c) */
} mesh__xds_cluster_kind_t;

/* A LOGICAL_DNS cluster's endpoint and how it is resolved. */
typedef struct mesh__xds_dns {
  char *host;             /* load_assignment's one socket_address */
  uint16_t port;
  int family;             /* dns_lookup_family (discovery's mesh__dns_family) */
  int64_t refresh_ms;     /* dns_refresh_rate, default 5000 */
  bool respect_ttl;       /* respect_dns_ttl */
  int64_t fail_base_ms, fail_max_ms; /* dns_failure_refresh_rate */
  char *ep_hostname;      /* Endpoint.hostname, or NULL */
} mesh__xds_dns_t;

typedef struct mesh__xds_cds {
  char *name;
  int kind;                /* mesh__xds_cluster_kind_t */
  char *eds_name;          /* EDS resource to watch (EDS kind) */
  char **children;         /* aggregate: clusters in priority order */
  size_t nchildren;
  mesh__xds_dns_t dns;     /* LOGICAL_DNS kind */
  /* The service's libmesh config as the "services.NAME" object would hold
   * it: "lb", "outlier_detection", "circuit_breakers", "timeouts"; already
   * checked by the parts that own those keys. */
  cJSON *svc;
  /* A29: certificate provider instances of the upstream TLS context, or
   * NULL (plaintext) */
  char *tls_cert_instance, *tls_ca_instance;
  /* A29: match_subject_alt_names on the server's URI SAN (tlsctx.c) */
  struct mesh__xds_san *san;
  size_t nsan;
} mesh__xds_cds_t;

/* One match_subject_alt_names entry; kind as tls's MESH__SAN_* (exact 0,
 * prefix 1, suffix 2, contains 3). */
typedef struct mesh__xds_san {
  int kind;
  bool ignore_case;
  char *value;
} mesh__xds_san_t;
void mesh__xds_san_free(mesh__xds_san_t *v, size_t n);
/** The context's bootstrap (part.c), NULL when xds is not configured. */
const struct mesh__xds_bootstrap *mesh__xds_boot_of(mesh_t *m);

int mesh__xds_decode_cds(const uint8_t *buf, size_t len, mesh__xds_cds_t **out,
                         mesh_status_t *st);
void mesh__xds_cds_free(mesh__xds_cds_t *c);

/* ---- RDS: RouteConfiguration -> routes ----------------------------------
 * A JSON document:
 * {"name": N, "virtual_hosts": [{"name", "domains": [..], "routes": [
 *   {"match": {"prefix"|"path"|"regex": S, "case_sensitive": B,
 *              "headers": [{"name", "exact"|"prefix"|"suffix"|"contains"|
 *                           "regex"|"present": V, "invert": B}],
 *              "fraction_ppm": N},
 *    "clusters": [{"name", "weight"}],       (one entry: no split)
 *    "timeout_ms": N, "retry": {...libmesh retry keys...,
 *                               "grpc_retry_on": [..]},
 *    "hash_policy": [{"header": H} | {"channel_id": true}, "terminal": B],
 *    "fault": {"delay_ms", "delay_ppm", "abort_http", "abort_grpc",
 *              "abort_ppm"}}]}]} */
int mesh__xds_decode_rds(const uint8_t *buf, size_t len, cJSON **out,
                         mesh_status_t *st);

/* ---- the route table applied per request (route.c) ----------------------*/

typedef struct mesh__xds_rtab mesh__xds_rtab_t;

/** Envoy's virtual host choice for host in a route JSON document (exact,
 *  longest "*.suffix", longest "prefix.*", "*"; case-insensitive); NULL
 *  when none matches. */
const cJSON *mesh__xds_vhost_pick(const cJSON *rc, const char *host);
/** Compile a virtual host's routes (the JSON of mesh__xds_decode_rds).
 *  fault: the listener's fault filter config (routes without their own
 *  override use it), or NULL.  labelled: the service's hosts carry their
 *  cluster as a subset (decisions name it).  channel: identifies the
 *  channel for A42's channel_id hash.  @return MESH_OK, MESH_ERR_CONFIG
 *  (a model the decoder would not make), MESH_ERR_NOMEM. */
int mesh__xds_rtab_build(const cJSON *vh, const cJSON *fault, bool labelled,
                         const void *channel, mesh__xds_rtab_t **out);
void mesh__xds_rtab_release(mesh__xds_rtab_t *t);
size_t mesh__xds_rtab_size(const mesh__xds_rtab_t *t);
/** Pure: the first route matching in's path and headers and its decision
 *  for one request from 4 uniform draws in [0, 1) (runtime fraction,
 *  weighted cluster, fault delay, fault abort).
 *  @return MESH_OK, or MESH_ERR_NOT_FOUND when no route matches. */
int mesh__xds_rtab_route(const mesh__xds_rtab_t *t, const mesh__xroute_in_t *in,
                         const double u[4], mesh__xroute_t *out);

/* Where one service's table is published (epoch scheme, as endpoint
 * snapshots): one writer, any number of lock-free readers. */
typedef struct mesh__xds_rtpub {
  _Atomic(mesh__xds_rtab_t *) cur;
  _Atomic uint32_t epoch;
  _Atomic uint32_t readers[2];
} mesh__xds_rtpub_t;

/** A reference to the current table (NULL: none); release it. */
mesh__xds_rtab_t *mesh__xds_rtab_acquire(mesh__xds_rtpub_t *p);
/** Replace the current table with t (taken; NULL clears). */
void mesh__xds_rtab_publish(mesh__xds_rtpub_t *p, mesh__xds_rtab_t *t);

/* ---- LDS: Listener ------------------------------------------------------*/

/* A CidrRange, address masked to len bits (family 4 or 6). */
typedef struct mesh__xds_cidr {
  uint8_t addr[16];
  int family;
  unsigned len;
} mesh__xds_cidr_t;

/* Transport of a server filter chain (A29 DownstreamTlsContext). */
typedef enum mesh__xds_chain_tls {
  MESH__XDS_CHAIN_PLAIN = 0,  /* no transport_socket: plaintext */
  MESH__XDS_CHAIN_TLS,        /* TLS, client certificate not required */
  MESH__XDS_CHAIN_MTLS,       /* require_client_certificate */
} mesh__xds_chain_tls_t;

/* Source type of a FilterChainMatch. */
#define MESH__XDS_SRC_ANY 0
#define MESH__XDS_SRC_LOCAL 1    /* SAME_IP_OR_LOOPBACK */
#define MESH__XDS_SRC_EXTERNAL 2

/* One filter chain of a server Listener (gRFC A36) and its match. */
typedef struct mesh__xds_fchain {
  char *name;              /* FilterChain.name ("" when unnamed) */
  /* A36: destination_port, server_names, application_protocols or a
   * transport_protocol other than "raw_buffer" set: never matches */
  bool never;
  mesh__xds_cidr_t *dst, *src; /* prefix_ranges, source_prefix_ranges */
  size_t ndst, nsrc;
  int source_type;         /* MESH__XDS_SRC_* */
  uint32_t *sports;        /* source_ports */
  size_t nsports;
  int tls;                 /* mesh__xds_chain_tls_t */
  char *cert_instance, *ca_instance; /* A29, NULL when plaintext */
} mesh__xds_fchain_t;

typedef struct mesh__xds_lds {
  char *name;
  bool server;             /* an inbound listener (no api_listener) */
  char *rds_name;          /* HCM.rds.route_config_name, or NULL */
  cJSON *route_config;     /* inline HCM.route_config (decoded), or NULL */
  cJSON *fault;            /* the HCM's fault filter config, or NULL */
  cJSON *rbac;             /* server: the authz policy model, or NULL */
  char *tls_cert_instance, *tls_ca_instance; /* server: A29 */
  bool require_client_cert;
  /* server (A36): filter_chains and default_filter_chain (NULL when
   * absent); every chain carries the same RBAC (l->rbac) */
  mesh__xds_fchain_t *chains;
  size_t nchains;
  mesh__xds_fchain_t *defchain;
  /* Listener.address (socket_address), "" when absent */
  char address[64];
  uint32_t port;
} mesh__xds_lds_t;

/** A36 filter chain match for one connection (pure, lds_fcm.c): the
 *  most specific of l's chains for destination dst and source src
 *  (destination prefix, source type, source prefix, source port, in
 *  that order), else the default chain, else NULL (close the
 *  connection). */
const mesh__xds_fchain_t *mesh__xds_fcm_pick(const mesh__xds_lds_t *l,
                                             const struct sockaddr *dst,
                                             const struct sockaddr *src);
/** The k-th certificate provider instance l names (every chain, cert
 *  and CA), NULL past the end. */
const char *mesh__xds_lds_instance(const mesh__xds_lds_t *l, size_t k);

int mesh__xds_decode_lds(const uint8_t *buf, size_t len, mesh__xds_lds_t **out,
                         mesh_status_t *st);
void mesh__xds_lds_free(mesh__xds_lds_t *l);

/* ---- bootstrap (gRPC's format) ------------------------------------------*/
typedef struct mesh__xds_server {
  char *uri;               /* server_uri */
  bool tls;                /* channel_creds: first supported of the list */
  /* "tls" config (gRFC A65); all NULL: the mesh identity's SVID and
   * bundle (the "identity" section) are the client certificate and trust */
  char *tls_ca_file, *tls_cert_file, *tls_key_file;
  bool ignore_resource_deletion; /* server_features */
} mesh__xds_server_t;

/* A file_watcher certificate provider instance (gRFC A29; the SPIFFE
 * trust bundle map file of A87). */
typedef struct mesh__xds_certprov {
  char *name;
  char *cert_file, *key_file, *ca_file;
  char *map_file;          /* spiffe_trust_bundle_map_file, or NULL */
  int64_t refresh_ms;      /* refresh_interval; 600 s when not given */
} mesh__xds_certprov_t;


typedef struct mesh__xds_bootstrap {
  mesh__xds_server_t *servers;
  size_t nservers;
  char *node_id, *node_cluster;
  char *region, *zone, *subzone;
  cJSON *node_metadata;    /* Struct as JSON, or NULL */
  mesh__xds_certprov_t *providers;
  size_t nproviders;
  char *server_listener_template; /* or NULL */
} mesh__xds_bootstrap_t;

/** Parse a bootstrap JSON document.  Errors go through c with paths under
 *  `path` ("xds.bootstrap.xds_servers[0].server_uri"); returns NULL when
 *  any was reported. */
mesh__xds_bootstrap_t *mesh__xds_bootstrap_parse(mesh__cfg_t *c,
                                                 const cJSON *doc,
                                                 const char *path);
/** Load the bootstrap: the `xds` section's "bootstrap" (a file name or an
 *  inline object), else $GRPC_XDS_BOOTSTRAP (file), else
 *  $GRPC_XDS_BOOTSTRAP_CONFIG (JSON text).  NULL with the error in c. */
mesh__xds_bootstrap_t *mesh__xds_bootstrap_load(mesh__cfg_t *c,
                                                const cJSON *section,
                                                const char *path);
void mesh__xds_bootstrap_free(mesh__xds_bootstrap_t *b);
/** The certificate provider instance called name in b, or NULL. */
const mesh__xds_certprov_t *mesh__xds_certprov_find(
    const mesh__xds_bootstrap_t *b, const char *name);
/** The "xds" certificate provider identity source (certprov.c): checks
 *  identity.certificate_provider against the bootstrap and hands the
 *  instance's files to identity (registered in core/parts.c after the
 *  Workload API source, before anything dials). */
extern const mesh__part_t mesh__xds_certprov_part;
/** The certificate provider instance the config's identity takes
 *  ("identity.source": "xds"; "default" unless
 *  identity.certificate_provider names one), or NULL (another source). */
const char *mesh__xds_identity_instance(const cJSON *root);

/* ---- helpers shared by the decoders (decode.c) --------------------------*/
/** Duration to ms (rounded up); MESH_ERR_CONFIG when negative or over
 *  INT32_MAX ms. */
int mesh__xds_duration_ms(const void *duration, int64_t *ms);
/** FractionalPercent to parts per million. */
uint32_t mesh__xds_fraction_ppm(const void *fractional_percent);
/** Run the per-service parts' checks over svc (a "services.NAME" object);
 *  the first error becomes st (MESH_ERR_CONFIG). */
int mesh__xds_check_svc(const cJSON *svc, const char *what, mesh_status_t *st);

#endif /* MESH_XDS_XDS_H */

/* ---- ADS state of the world: the protocol core, no I/O ------------------
 * One object per xDS server stream.  It holds the subscriptions (the roots
 * the application asked for, and the names their resources lead to: LDS ->
 * RDS -> CDS -> aggregate children -> EDS), the cache of the last good
 * resource of every name (fail static: nothing changes while the stream is
 * down), and per type the version and nonce to ACK or NACK.  The transport
 * (the gRPC bidi stream StreamAggregatedResources) feeds it response bytes
 * and sends the request bytes it produces; it does no I/O itself, so it is
 * unit-tested and fuzzed like the decoders.  Not thread-safe: one driver. */
typedef struct mesh__xds_ads mesh__xds_ads_t;

typedef enum mesh__xds_status {
  MESH__XDS_REQUESTED = 0,  /* subscribed, nothing received yet */
  MESH__XDS_ACKED,          /* the cached resource is the last one received */
  MESH__XDS_NACKED,         /* the last one received was refused: the cached
                               one (if any) stays in force */
  MESH__XDS_DOES_NOT_EXIST, /* LDS/CDS: absent from a full state response */
} mesh__xds_status_t;

/* What an accepted update publishes (called from mesh__xds_ads_on_response,
 * on the driver's thread; the objects are borrowed for the call).  Any
 * member may be NULL.  removed: a resource is gone (does not exist). */
typedef struct mesh__xds_sink {
  void (*lds)(void *user, const char *name, const mesh__xds_lds_t *l);
  void (*rds)(void *user, const char *name, const cJSON *routes);
  void (*cds)(void *user, const char *name, const mesh__xds_cds_t *c);
  void (*eds)(void *user, const char *name, const mesh__xds_eds_t *e);
  void (*removed)(void *user, mesh__xds_type_t t, const char *name);
  void *user;
} mesh__xds_sink_t;

/** A session for bootstrap b's node (copied).  NULL on OOM. */
mesh__xds_ads_t *mesh__xds_ads_new(const mesh__xds_bootstrap_t *b,
                                   const mesh__xds_sink_t *sink);
void mesh__xds_ads_free(mesh__xds_ads_t *a);
/** Subscribe a root (a listener for LDS, a cluster for CDS).  Idempotent.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (empty name, other type), NOMEM. */
int mesh__xds_ads_watch(mesh__xds_ads_t *a, mesh__xds_type_t t,
                        const char *name);
/** The next DiscoveryRequest to send (malloc'd bytes), or MESH_ERR_NOT_FOUND
 *  when nothing is due.  Call until NOT_FOUND after every watch, response
 *  and reconnect: subscriptions first in LDS, RDS, CDS, EDS order. */
int mesh__xds_ads_next_request(mesh__xds_ads_t *a, uint8_t **buf, size_t *len);
/** Feed one DiscoveryResponse.  Valid resources are accepted and published
 *  even when others of the same response are refused (gRFC A46); the
 *  response is then NACKed with every refusal in error_detail.
 *  @return MESH_OK (ACK due), MESH_ERR_CONFIG (NACK due, st has the
 *  error_detail), MESH_ERR_PARSE (not a DiscoveryResponse, or a
 *  type never subscribed: NACK due when the type is known). */
int mesh__xds_ads_on_response(mesh__xds_ads_t *a, const uint8_t *buf,
                              size_t len, mesh_status_t *st);
/** A new stream: every subscribed type is requested again with the last
 *  ACKed version and no nonce (the cache stays). */
void mesh__xds_ads_on_reconnect(mesh__xds_ads_t *a);
/** The cache as the admin view shows it: {"types": {"<type url>":
 *  {"version", "nonce", "resources": {name: {"status", "version",
 *  "last_update_ms", "error"}}}}, "updates", "nacks"}. */
cJSON *mesh__xds_ads_view(const mesh__xds_ads_t *a);
/** The cached (last good) decoded resource of type t named name: a
 *  mesh__xds_lds_t, route JSON (cJSON), mesh__xds_cds_t or mesh__xds_eds_t;
 *  NULL when none.  Borrowed until the next response or watch. */
const void *mesh__xds_ads_cached(const mesh__xds_ads_t *a, mesh__xds_type_t t,
                                 const char *name);
/** Counters: accepted updates and NACKed responses. */
void mesh__xds_ads_counts(const mesh__xds_ads_t *a, uint64_t *updates,
                          uint64_t *nacks);

/* ---- the context's session (part.c) -------------------------------------*/
typedef struct mesh__xds mesh__xds_t;
/** The "xds" top-level part (registered in core/parts.c). */
extern const mesh__part_t mesh__xds_part;
/** Feed one DiscoveryResponse to the context's session, on its loop thread
 *  (the transport's receive path; tests call it directly).  Accepted EDS
 *  updates are published into discovery before it returns.
 *  @return as mesh__xds_ads_on_response, or MESH_ERR_INVALID_ARG when xds
 *  is not configured. */
int mesh__xds_feed(mesh_t *m, const uint8_t *buf, size_t len,
                   mesh_status_t *st);
/** The next request the session wants sent (mesh__xds_ads_next_request). */
int mesh__xds_next_request(mesh_t *m, uint8_t **buf, size_t *len);
