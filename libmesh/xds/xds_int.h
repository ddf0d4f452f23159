/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal, xds part only: what its decoders share. */
#ifndef MESH_XDS_XDS_INT_H
#define MESH_XDS_XDS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

/* The reason a resource is refused, built field path first. */
typedef struct why {
  char msg[300];
} why_t;

/* Format the reason into buf[cap] (cut if longer) and return code. */
int mesh__xds_refuse(char *buf, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define REFUSE(w, code, ...) \
  mesh__xds_refuse((w)->msg, sizeof (w)->msg, (code), __VA_ARGS__)

/* A29: the certificate provider instances of a CommonTlsContext (lds.c). */
int mesh__xds_tls_instances(const void *common, char **cert, char **ca,
                            bool need_ca, mesh__xds_san_t **san, size_t *nsan,
                            why_t *w);
/* match_subject_alt_names of a CertificateValidationContext (tlsctx.c):
 * regex refused; san NULL: any entry refused (a server context). */
int mesh__xds_sans(const void *validation_context, mesh__xds_san_t **san,
                   size_t *nsan, why_t *w);
/* A cluster's upstream TLS for the service that reaches it (tlsctx.c):
 * its instances' credentials and SAN matchers on the service's dials;
 * reloaded only when they change.  Loop thread. */
void mesh__xds_cluster_tls(mesh_t *m, const char *service,
                           const mesh__xds_cds_t *c);
/** The same without remembering a failure for retries (provwatch.c's
 *  retry of a pending cluster): MESH_OK, or why the instances' files did
 *  not load (in st; logged when loud). */
int mesh__xds_cluster_tls_load(mesh_t *m, const char *service,
                               const mesh__xds_cds_t *c, bool loud,
                               mesh_status_t *st);
/** The files of certificate provider instance inst changed, or failed
 *  last time (provwatch.c): new credentials for every service whose
 *  cluster names it; a failed load keeps the last good ones (logged when
 *  loud).  MESH_OK or the first failure (st). */
int mesh__xds_cluster_rotate(mesh_t *m, const char *inst, bool loud,
                             mesh_status_t *st);
/* A36 filter chains (lds_fcm.c): a FilterChainMatch into c; no two chains
 * of l matching the same connections; a chain's storage freed. */
int mesh__xds_fcm_decode(const void *match, mesh__xds_fchain_t *c, why_t *w);
int mesh__xds_fcm_check(const mesh__xds_lds_t *l, why_t *w);
void mesh__xds_fchain_fini(mesh__xds_fchain_t *c);
/* Deep copy (d fully written; nothing to free on failure). */
int mesh__xds_fchain_copy(mesh__xds_fchain_t *d, const mesh__xds_fchain_t *s);
/* A TLS generation of its own from the instances a TLS context names:
 * certificate and key from cert_inst, trust from ca_inst (NULL: cert_inst's
 * own) (provcreds.c).  MESH_OK, MESH_ERR_CONFIG (an instance absent or
 * lacking what it must hold), or the load's error (PEM, SVID, ...). */
struct mesh__tlsgen;
int mesh__xds_prov_gen(mesh_t *m, const mesh__xds_bootstrap_t *b,
                       const char *cert_inst, const char *ca_inst,
                       struct mesh__tlsgen **out, mesh_status_t *st);
/* The fault filter's config (gRFC A33) to {"delay_ms", ...} (rds.c). */
int mesh__xds_fault(const uint8_t *buf, size_t len, cJSON **out, why_t *w);
/* Decode a RouteConfiguration already unpacked (rds.c). */
int mesh__xds_route_config(const void *rc, cJSON **out, why_t *w);

/* Check doc with mesh_config_check(); the first error (its prefix strip
 * removed) becomes st as "what: error" (MESH_ERR_CONFIG). */
int mesh__xds_check_doc(const cJSON *doc, const char *strip, const char *what,
                        mesh_status_t *st);

/* A bump allocator for protobuf-c unpacking (decode.c). */
typedef struct mesh__xds_arena mesh__xds_arena_t;
mesh__xds_arena_t *mesh__xds_arena_new(void);
struct ProtobufCAllocator *mesh__xds_arena_allocator(mesh__xds_arena_t *a);
void mesh__xds_arena_free(mesh__xds_arena_t *a);

/* The ADS transport thread (stream.c). */
typedef struct mesh__xds_stream mesh__xds_stream_t;
int mesh__xds_stream_start(mesh_t *m, const mesh__xds_server_t *srv,
                           mesh__xds_stream_t **out,
                           mesh_status_t *st);
void mesh__xds_stream_stop(mesh__xds_stream_t *x);
/** gRPC target URI -> mesh__h2_dial_plain target. */
int mesh__xds_target(const char *uri, char *out, size_t cap);
/** Feed a response (buf taken) on the loop thread; waits for it, or for
 *  *stop (part.c). */
int mesh__xds_feed_async(mesh_t *m, uint8_t *buf, size_t len,
                         _Atomic bool *stop);
/** A new stream is open: the session resubscribes (part.c). */
void mesh__xds_reconnected(mesh_t *m);

/* A service fed by xDS (part.c, apply.c): its root (a cluster, or a
 * listener whose route may split among clusters) and what was applied. */
typedef struct mesh__xds_svc {
  char *name;
  char *cluster;           /* CDS root, or NULL */
  char *listener;          /* LDS root, or NULL */
  cJSON *lb_cfg, *res_cfg; /* the settings last applied, or NULL */
  mesh__xds_rtpub_t routes; /* listener services: the table per request */
  char **named;             /* clusters the table in force names */
  size_t nnamed;
  char note[256];          /* why the cache's state is not applied ("") */
} mesh__xds_svc_t;

/* Hosts of a split carry the cluster they came from under this label. */
#define MESH__XDS_CLUSTER_LABEL "xds.cluster"

/** Apply what the cache holds for s (apply.c); loop thread, session lock
 *  held.  Incomplete states are not applied (s->note says why). */
void mesh__xds_apply(mesh_t *m, const struct mesh__xds_ads *a,
                     mesh__xds_svc_t *s);
void mesh__xds_svc_fini(mesh__xds_svc_t *s);

/* The xDS-enabled server (server.c, gRFC A36/A41). */
typedef struct mesh__xds_srv mesh__xds_srv_t;
void mesh__xds_server_check(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                            const mesh__xds_bootstrap_t *b);
/** The template with its first "%s" replaced by addr (malloc'd). */
char *mesh__xds_server_name(const char *tmpl, const char *addr);
/** Subscribe the server Listener when the section names server_address;
 *  until it arrives, authz denies every request.  *name: the Listener's
 *  name (malloc'd) or NULL (no xDS server). */
int mesh__xds_server_start(mesh_t *m, mesh__xds_ads_t *ads,
                           const mesh__xds_bootstrap_t *b, const cJSON *cfg,
                           char **name, mesh__xds_srv_t **srv,
                           mesh_status_t *st);
/** An accepted server Listener: when its address matches server_address
 *  (A36), its filter chains choose each accepted connection's transport
 *  and its RBAC becomes authz's external set; otherwise not serving. */
void mesh__xds_server_on_lds(mesh_t *m, mesh__xds_srv_t *srv, const char *name,
                             const mesh__xds_lds_t *l);
void mesh__xds_server_free(mesh_t *m, mesh__xds_srv_t *srv);
/** The files of certificate provider instance inst changed, or failed
 *  last time (provwatch.c): a Listener refused because its instances did
 *  not load is applied if they now do; else new credentials for the
 *  chains in force that name it (new connections use them; a failed load
 *  keeps the last good ones, logged when loud).  MESH_OK or the failure
 *  (st). */
int mesh__xds_server_rotate(mesh_t *m, mesh__xds_srv_t *srv, const char *inst,
                            bool loud, mesh_status_t *st);
/* Rotation of the certificate provider instances (provwatch.c): every
 * bootstrap instance's files watched (the identity's own through its
 * on_change), a change rebuilds the chains' and services' credentials. */
typedef struct mesh__xds_pw mesh__xds_pw_t;
int mesh__xds_provwatch_start(mesh_t *m, const mesh__xds_bootstrap_t *b,
                              mesh__xds_pw_t **out, mesh_status_t *st);
void mesh__xds_provwatch_free(mesh_t *m, mesh__xds_pw_t *p);
/** A load of instance inst failed outside its watch: try it again at its
 *  next refresh_interval, changed or not.  Any thread. */
void mesh__xds_provwatch_retry(mesh_t *m, const char *inst);
/** Service's cluster c did not get its instances' credentials (c copied;
 *  retried every refresh_interval until they load), or c NULL: it did,
 *  or a newer update replaced it (nothing to retry). */
void mesh__xds_provwatch_pend(mesh_t *m, const char *service,
                              const mesh__xds_cds_t *c);
/** The context's provider watches, or NULL (part.c). */
mesh__xds_pw_t *mesh__xds_pw_of(mesh_t *m);
/** The context's server state, or NULL (part.c). */
mesh__xds_srv_t *mesh__xds_srv_of(mesh_t *m);

typedef struct mesh__xds_ldns mesh__xds_ldns_t; /* logical_dns.c */

/* ---- aggregate clusters (aggregate.c, ads_more.c; gRFC A37) ------------*/
/** c (accepted into the graph of the cached clusters all[0..n), in place
 *  of its cached version) makes no loop and no chain of more than 16
 *  clusters.  @return MESH_OK, MESH_ERR_CONFIG (st names the resource and
 *  where), MESH_ERR_NOMEM. */
int mesh__xds_agg_check(const mesh__xds_cds_t *c, const mesh__xds_cds_t **all,
                        size_t n, mesh_status_t *st);
/** The same for the session's cache (ads_more.c; called by ads.c). */
int mesh__xds_ads_agg_check(const struct mesh__xds_ads *a, const void *obj,
                            mesh_status_t *st);
/** Aggregate cluster name flattened: its EDS and LOGICAL_DNS leaves
 *  (resolved by dns, which may be NULL) depth first, each once, their
 *  endpoints as one priority list (leaf k after leaf k-1's
 *  priorities; *eps malloc'd, strings borrowed from the cache); *first:
 *  the first leaf (its settings are the aggregate's, A37).
 *  @return MESH_OK, MESH_ERR_NOT_FOUND (a leaf's CDS or EDS has not
 *  arrived: note says which), MESH_ERR_NOMEM. */
int mesh__xds_agg_flatten(const struct mesh__xds_ads *a,
                          const mesh__xds_ldns_t *dns, const char *name,
                          mesh__ep_t **eps, size_t *n,
                          const mesh__xds_cds_t **first, char *note,
                          size_t note_cap);

/* ---- LOGICAL_DNS clusters (logical_dns.c; gRFC A37) -------------------*/
/** A LOGICAL_DNS Cluster message (cds.c's discovery()): c->dns filled, or
 *  a refusal in w. */
int mesh__xds_cds_dns(const void *cluster, mesh__xds_cds_t *c, why_t *w);
/** The section's "logical_dns" key: {"servers", "timeout_ms"}. */
void mesh__xds_ldns_check(mesh__cfg_t *c, const cJSON *cfg, const char *path);
/** The context's resolvers (cfg: the xds section, may be NULL); changed
 *  runs on the loop thread, outside the session lock, when an answer
 *  changed a cluster's address. */
int mesh__xds_ldns_new(mesh_t *m, const cJSON *cfg, void (*changed)(mesh_t *),
                       mesh__xds_ldns_t **out);
/** One resolver per cached LOGICAL_DNS cluster (after every response). */
void mesh__xds_ldns_sync(mesh__xds_ldns_t *r, const struct mesh__xds_ads *a);
/** The host of LOGICAL_DNS cluster c: *n = 1 (ep, strings owned by r until
 *  the next sync), or 0 (the name has no address).  MESH_ERR_NOT_FOUND
 *  (note says why) before the first answer.  r may be NULL (pending). */
int mesh__xds_ldns_endpoint(const mesh__xds_ldns_t *r,
                            const mesh__xds_cds_t *c, mesh__ep_t *ep,
                            size_t *n, char *note, size_t cap);
void mesh__xds_ldns_view(const mesh__xds_ldns_t *r, cJSON *v);
void mesh__xds_ldns_free(mesh__xds_ldns_t *r);
/** The context's resolvers, or NULL (part.c). */
mesh__xds_ldns_t *mesh__xds_ldns_of(mesh_t *m);
/** The cached clusters, by index (NULL: subscribed, not received). */
size_t mesh__xds_ads_ncds(const struct mesh__xds_ads *a);
const mesh__xds_cds_t *mesh__xds_ads_cds_at(const struct mesh__xds_ads *a,
                                            size_t i);

/* ---- A27's does-not-exist timer (ads_more.c) ---------------------------*/
/** Resources requested more than timeout_ms ago (on this stream) and never
 *  received become DOES_NOT_EXIST.  @return how many did. */
size_t mesh__xds_ads_expire(struct mesh__xds_ads *a, int64_t now_ms,
                            int64_t timeout_ms);
/** A subscribed resource's mesh__xds_status_t, or -1 (not subscribed). */
int mesh__xds_ads_status(const struct mesh__xds_ads *a, mesh__xds_type_t t,
                         const char *name);

/* ---- names subscribed on first use (firstuse.c) -------------------------*/
typedef struct mesh__xds_fu mesh__xds_fu_t;
/** The section's first_use_max and resource_timeout_ms. */
void mesh__xds_fu_check(mesh__cfg_t *c, const cJSON *cfg, const char *path);
/** Set up first use (cfg NULL: no section, none) and the A27 timer; sets
 *  m->svc_resolve.  mu: the session lock, ads: the session. */
int mesh__xds_fu_new(mesh_t *m, const cJSON *cfg, pthread_mutex_t *mu,
                     struct mesh__xds_ads *ads, mesh__xds_fu_t **out);
void mesh__xds_fu_free(mesh__xds_fu_t *f);
/** The entry of a name subscribed on first use, or NULL.  Lock-free. */
mesh__xds_svc_t *mesh__xds_fu_find(mesh__xds_fu_t *f, const char *name);
/** After a response (session lock held): apply the entries when dirty,
 *  update their states, wake the waiters. */
void mesh__xds_fu_applied(mesh__xds_fu_t *f, bool dirty);
/** v["first_use"] (session lock held). */
void mesh__xds_fu_view(mesh__xds_fu_t *f, cJSON *v);
/** The context's first-use state, or NULL (part.c). */
mesh__xds_fu_t *mesh__xds_fu_of(mesh_t *m);

#define FAULT_URL \
  "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
#define FAULT_FILTER "envoy.filters.http.fault"

#endif /* MESH_XDS_XDS_INT_H */
