/* SPDX-License-Identifier: Apache-2.0 */
/* LOGICAL_DNS clusters (gRFC A37, Envoy's LOGICAL_DNS): the decoder's part
 * (the one endpoint of load_assignment and the dns_* fields) and the
 * resolvers of the context's cached LOGICAL_DNS clusters, one each
 * (discovery's dnsname.c, on the loop thread: nothing is resolved on a
 * call's path).
 *
 * Semantics (docs/config/xds.md): Envoy's where gRPC and Envoy differ.
 * The cluster has one host: the FIRST address of the answer (Envoy's
 * LOGICAL_DNS; gRPC makes one endpoint of every address and picks the
 * first that connects, which libmesh's one-address-per-host model cannot
 * say).  Re-resolution every dns_refresh_rate (default 5 s), or after the
 * TTL with respect_dns_ttl; dns_lookup_family as Envoy.  NXDOMAIN / no
 * address: no host (gRPC's behaviour; Envoy keeps the last host), so an
 * aggregate fails over to its next cluster.  Other failures keep the
 * last address and retry with backoff (dns_failure_refresh_rate).
 *
 * Resolvers follow the CDS cache (mesh__xds_ldns_sync after every
 * response): one per cached LOGICAL_DNS cluster, restarted when its
 * host, port or dns settings change, freed when it leaves the cache.  An
 * answer that changes the first address calls back the part (changed),
 * through a loop timer so that it never runs inside the session lock. */
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery.h"
#include "xds/proto/cluster.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

#define DEFAULT_REFRESH_MS 5000 /* Envoy's dns_refresh_rate default */

/* ---- decoding ------------------------------------------------------------*/

static int dns_ms(const Meshxds__Duration *d, int64_t *ms, const char *f,
                  why_t *w) {
  if (mesh__xds_duration_ms(d, ms) || *ms < 1)
    return REFUSE(w, MESH_ERR_CONFIG, "%s: must be at least 1ms", f);
  return 0;
}

/* load_assignment: exactly one locality with exactly one endpoint (A37). */
static int dns_endpoint(const Meshxds__ClusterLoadAssignment *la,
                        mesh__xds_dns_t *d, why_t *w) {
  if (!la)
    return REFUSE(w, MESH_ERR_CONFIG, "LOGICAL_DNS: load_assignment is "
                  "required (the endpoint to resolve)");
  size_t n = 0;
  for (size_t i = 0; i < la->n_endpoints; i++)
    n += la->endpoints[i]->n_lb_endpoints;
  if (la->n_endpoints != 1 || n != 1)
    return REFUSE(w, MESH_ERR_CONFIG, "LOGICAL_DNS: load_assignment must "
                  "have exactly one locality with exactly one endpoint "
                  "(found %zu in %zu)", n, la->n_endpoints);
  if (la->policy)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "LOGICAL_DNS: load_assignment."
                  "policy is not supported");
  const Meshxds__LbEndpoint *lb = la->endpoints[0]->lb_endpoints[0];
  const Meshxds__Endpoint *ep = lb->endpoint;
  const char *at = "load_assignment.endpoints[0].lb_endpoints[0]";
  if (lb->health_status != MESHXDS__HEALTH_STATUS__UNKNOWN &&
      lb->health_status != MESHXDS__HEALTH_STATUS__HEALTHY)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "%s.health_status %d: a LOGICAL_DNS "
                  "endpoint is UNKNOWN or HEALTHY", at, (int)lb->health_status);
  if (!ep || !ep->address ||
      ep->address->address_case != MESHXDS__ADDRESS__ADDRESS_SOCKET_ADDRESS)
    return REFUSE(w, MESH_ERR_CONFIG, "%s.endpoint.address: a socket_address "
                  "is required", at);
  const Meshxds__SocketAddress *sa = ep->address->socket_address;
  if (sa->protocol != MESHXDS__SOCKET_ADDRESS__PROTOCOL__TCP ||
      (sa->named_port && *sa->named_port) ||
      (sa->resolver_name && *sa->resolver_name))
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "%s: socket_address protocol UDP, "
                  "named_port and resolver_name are not supported", at);
  if (!sa->address || !*sa->address)
    return REFUSE(w, MESH_ERR_CONFIG, "%s: socket_address.address: the "
                  "hostname is missing", at);
  if (!mesh__disc_valid_address(sa->address))
    return REFUSE(w, MESH_ERR_CONFIG, "%s: socket_address.address \"%.100s\": "
                  "not a hostname or IP address", at, sa->address);
  if (sa->port_value < 1 || sa->port_value > 65535)
    return REFUSE(w, MESH_ERR_CONFIG, "%s: socket_address.port_value %u: out "
                  "of 1..65535", at, sa->port_value);
  d->host = strdup(sa->address);
  d->port = (uint16_t)sa->port_value;
  if (ep->hostname && *ep->hostname && !(d->ep_hostname = strdup(ep->hostname)))
    return MESH_ERR_NOMEM;
  return d->host ? 0 : MESH_ERR_NOMEM;
}

int mesh__xds_cds_dns(const void *msg, mesh__xds_cds_t *c, why_t *w) {
  const Meshxds__Cluster *m = msg;
  mesh__xds_dns_t *d = &c->dns;
  c->kind = MESH__XDS_CLUSTER_LOGICAL_DNS;
  if (m->n_dns_resolvers || m->dns_resolution_config ||
      m->typed_dns_resolver_config)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "dns_resolvers, "
                  "dns_resolution_config and typed_dns_resolver_config are "
                  "not supported (libmesh resolves with xds.logical_dns)");
  if (m->use_tcp_for_dns_lookups)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "use_tcp_for_dns_lookups is not "
                  "supported");
  if ((int)m->dns_lookup_family < MESH__DNS_AUTO ||
      (int)m->dns_lookup_family > MESH__DNS_ALL)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "dns_lookup_family %d: not "
                  "supported", (int)m->dns_lookup_family);
  d->family = (int)m->dns_lookup_family;
  d->respect_ttl = m->respect_dns_ttl;
  d->refresh_ms = DEFAULT_REFRESH_MS;
  int rc = m->dns_refresh_rate
               ? dns_ms(m->dns_refresh_rate, &d->refresh_ms,
                        "dns_refresh_rate", w) : 0;
  const Meshxds__Cluster__RefreshRate *f = m->dns_failure_refresh_rate;
  d->fail_base_ms = d->refresh_ms;
  d->fail_max_ms = 10 * d->refresh_ms;
  if (!rc && f && !f->base_interval)
    rc = REFUSE(w, MESH_ERR_CONFIG, "dns_failure_refresh_rate.base_interval: "
                "required");
  if (!rc && f)
    rc = dns_ms(f->base_interval, &d->fail_base_ms,
                "dns_failure_refresh_rate.base_interval", w);
  d->fail_max_ms = 10 * d->fail_base_ms;
  if (!rc && f && f->max_interval) {
    rc = dns_ms(f->max_interval, &d->fail_max_ms,
                "dns_failure_refresh_rate.max_interval", w);
    if (!rc && d->fail_max_ms <= d->fail_base_ms)
      rc = REFUSE(w, MESH_ERR_CONFIG, "dns_failure_refresh_rate.max_interval: "
                  "must be greater than base_interval");
  }
  return rc ? rc : dns_endpoint(m->load_assignment, d, w);
}

/* ---- the resolvers ---------------------------------------------------------*/

typedef struct entry {
  char *cluster;
  mesh__xds_dns_t dns; /* what it resolves (host owned, ep_hostname NULL) */
  mesh__dnsname_t *name;
  char hostname[MESH__DISC_MAX_HOSTNAME + 1]; /* the host's hostname */
  char addr[46];                /* the address last applied */
  mesh__dnsname_info_t seen;   /* what the last apply saw (for the view) */
  struct mesh__xds_ldns *r;
} entry_t;

struct mesh__xds_ldns {
  mesh_t *m;
  const cJSON *resolver; /* xds.logical_dns (in m->config), or NULL */
  void (*changed)(mesh_t *m);
  entry_t **v;
  size_t n;
  int64_t timer; /* a change to apply (0: none) */
};

void mesh__xds_ldns_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "logical_dns");
  mesh__dnsname_check(c, cJSON_GetObjectItemCaseSensitive(cfg, "logical_dns"), p);
}

int mesh__xds_ldns_new(mesh_t *m, const cJSON *cfg, void (*changed)(mesh_t *),
                       mesh__xds_ldns_t **out) {
  mesh__xds_ldns_t *r = calloc(1, sizeof *r);
  if (!r)
    return MESH_ERR_NOMEM;
  r->m = m;
  r->changed = changed;
  r->resolver = cJSON_GetObjectItemCaseSensitive(cfg, "logical_dns");
  *out = r;
  return MESH_OK;
}

static void entry_free(entry_t *e) {
  if (!e)
    return;
  mesh__dnsname_free(e->name);
  free(e->dns.host);
  free(e->cluster);
  free(e);
}

static void on_timer(void *user) {
  mesh__xds_ldns_t *r = user;
  r->timer = 0;
  r->changed(r->m);
}

/* An answer changed an address: apply at the loop's next turn. */
static void on_change(void *user) {
  entry_t *e = user;
  mesh__xds_ldns_t *r = e->r;
  if (r->timer)
    return;
  int64_t t = mesh__loop_timer(r->m->loop, 0, on_timer, r);
  r->timer = t > 0 ? t : 0;
}

static bool same(const mesh__xds_dns_t *a, const mesh__xds_dns_t *b) {
  return strcmp(a->host, b->host) == 0 && a->port == b->port &&
         a->family == b->family && a->refresh_ms == b->refresh_ms &&
         a->respect_ttl == b->respect_ttl &&
         a->fail_base_ms == b->fail_base_ms && a->fail_max_ms == b->fail_max_ms;
}

static entry_t *entry_new(mesh__xds_ldns_t *r, const mesh__xds_cds_t *c) {
  entry_t *e = calloc(1, sizeof *e);
  if (!e || !(e->cluster = strdup(c->name)) ||
      !(e->dns.host = strdup(c->dns.host))) {
    entry_free(e);
    return NULL;
  }
  e->r = r;
  mesh__xds_dns_t h = c->dns;
  e->dns = (mesh__xds_dns_t){e->dns.host, h.port, h.family, h.refresh_ms,
                             h.respect_ttl, h.fail_base_ms, h.fail_max_ms,
                             NULL};
  mesh__strlcpy(e->hostname, h.ep_hostname ? h.ep_hostname : h.host,
                sizeof e->hostname);
  mesh__dnsname_opts_t o = {.name = h.host, .family = h.family,
                            .refresh_ms = h.refresh_ms,
                            .respect_ttl = h.respect_ttl,
                            .fail_base_ms = h.fail_base_ms,
                            .fail_max_ms = h.fail_max_ms, .resolver = r->resolver,
                            .what = "xds.logical_dns",
                            .on_change = on_change, .user = e};
  mesh_status_t st;
  if (mesh__dnsname_new(r->m, &o, &e->name, &st) != MESH_OK) {
    mesh__log(r->m, MESH_LOG_ERROR, "xds_logical_dns", "cluster=%s error=\"%s\"",
              c->name, st.message);
    entry_free(e);
    return NULL;
  }
  return e;
}

static entry_t *find(const mesh__xds_ldns_t *r, const char *cluster) {
  for (size_t i = 0; r && i < r->n; i++)
    if (r->v[i] && strcmp(r->v[i]->cluster, cluster) == 0) /* NULL: moved */
      return r->v[i];
  return NULL;
}

void mesh__xds_ldns_sync(mesh__xds_ldns_t *r, const mesh__xds_ads_t *a) {
  size_t nc = mesh__xds_ads_ncds(a);
  entry_t **v = r ? calloc(nc + 1, sizeof *v) : NULL;
  if (!v)
    return; /* the resolvers in force stay */
  size_t k = 0;
  for (size_t i = 0; i < nc; i++) {
    const mesh__xds_cds_t *c = mesh__xds_ads_cds_at(a, i);
    if (!c || c->kind != MESH__XDS_CLUSTER_LOGICAL_DNS)
      continue;
    entry_t *e = find(r, c->name);
    if (e && !same(&e->dns, &c->dns))
      e = NULL; /* changed: a new resolver (the old one is freed below) */
    else if (e) {
      for (size_t j = 0; j < r->n; j++)
        if (r->v[j] == e)
          r->v[j] = NULL; /* kept: moved to v */
      mesh__strlcpy(e->hostname, c->dns.ep_hostname ? c->dns.ep_hostname
                    : c->dns.host, sizeof e->hostname);
    }
    if (!e)
      e = entry_new(r, c);
    if (e)
      v[k++] = e;
  }
  for (size_t j = 0; j < r->n; j++)
    entry_free(r->v[j]);
  free(r->v);
  r->v = v;
  r->n = k;
}

int mesh__xds_ldns_endpoint(const mesh__xds_ldns_t *r,
                            const mesh__xds_cds_t *c, mesh__ep_t *ep,
                            size_t *n, char *note, size_t cap) {
  entry_t *e = find(r, c->name);
  mesh__dnsname_info_t in = {0};
  if (e && same(&e->dns, &c->dns)) {
    mesh__dnsname_get(e->name, &in);
    e->seen = in;
  }
  *n = 0;
  if (in.state == MESH__DNSNAME_PENDING) {
    snprintf(note, cap, "cluster \"%.100s\": waiting for DNS (%.100s)%s%.150s",
             c->name, c->dns.host, in.err[0] ? ": " : "", in.err);
    return MESH_ERR_NOT_FOUND;
  }
  if (in.state == MESH__DNSNAME_OK) {
    /* the address lives in e->name's info: copied to e for the caller */
    mesh__strlcpy(e->addr, in.addr, sizeof e->addr);
    memset(ep, 0, sizeof *ep);
    ep->address = e->addr;
    ep->hostname = e->hostname;
    ep->port = c->dns.port;
    ep->weight = 1;
    ep->health = MESH__HEALTH_UNKNOWN;
    *n = 1;
  }
  return MESH_OK;
}

/* v["logical_dns"]: each resolver's state (session lock held). */
void mesh__xds_ldns_view(const mesh__xds_ldns_t *r, cJSON *v) {
  if (!r || !r->n)
    return;
  cJSON *o = cJSON_AddObjectToObject(v, "logical_dns");
  static const char *const states[] = {"pending", "resolved", "no_address"};
  for (size_t i = 0; i < r->n; i++) {
    const entry_t *e = r->v[i];
    cJSON *x = cJSON_AddObjectToObject(o, e->cluster);
    cJSON_AddStringToObject(x, "host", e->dns.host);
    cJSON_AddNumberToObject(x, "port", e->dns.port);
    cJSON_AddStringToObject(x, "state", states[e->seen.state]);
    if (e->seen.state == MESH__DNSNAME_OK)
      cJSON_AddStringToObject(x, "address", e->seen.addr);
    if (e->seen.err[0])
      cJSON_AddStringToObject(x, "error", e->seen.err);
  }
}

void mesh__xds_ldns_free(mesh__xds_ldns_t *r) {
  if (!r)
    return;
  if (r->timer > 0)
    mesh__loop_timer_cancel(r->m->loop, r->timer);
  for (size_t i = 0; i < r->n; i++)
    entry_free(r->v[i]);
  free(r->v);
  free(r);
}
