/* SPDX-License-Identifier: Apache-2.0 */
/* LOGICAL_DNS clusters from xDS (gRFC A37; libmesh/xds/logical_dns.c and
 * libmesh/discovery/dnsname.c): the CDS decoder's table of good and bad
 * resources, the ADS session with an aggregate holding a LOGICAL_DNS
 * child, and a context whose services reach LOGICAL_DNS clusters (IP
 * literals and "localhost": answered without a DNS server; the end-to-end
 * test tests/xds/test_xds_ldns.sh runs dnsmasq). */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "mesh/mesh.h"
#include "discovery/discovery.h"
#include "lb/lb.h"
#include "telemetry/telemetry.h"
#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds_vec.h"

#define CDS_T "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_T "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define AGG_T "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"

/* load_assignment with one endpoint at address a, port p */
#define LA(a, p) "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { " \
  "endpoint { address { socket_address { address: \"" a "\" port_value: " #p " } } } } } } "
#define DNS "name: \"d\" type: LOGICAL_DNS "

typedef struct vec {
  const char *name, *text;
  int rc;
  const char *msg; /* in the error; for a good one: the host */
  int port, family;
  int64_t refresh_ms;
  bool respect;
  int64_t fail_base, fail_max;
} vec_t;

static const vec_t vecs[] = {
    /* good */
    {"defaults", DNS LA("web.example", 8080), MESH_OK, "web.example", 8080,
     MESH__DNS_AUTO, 5000, false, 5000, 50000},
    {"every knob", DNS LA("api.test", 443) "dns_refresh_rate { nanos: 250000000 } "
     "dns_lookup_family: V4_ONLY respect_dns_ttl: true dns_failure_refresh_rate { "
     "base_interval { seconds: 1 } max_interval { seconds: 4 } }", MESH_OK, "api.test",
     443, MESH__DNS_V4_ONLY, 250, true, 1000, 4000},
    {"v6 only", DNS LA("h.test", 1) "dns_lookup_family: V6_ONLY", MESH_OK, "h.test", 1,
     MESH__DNS_V6_ONLY, 5000, false, 5000, 50000},
    {"v4 preferred", DNS LA("h.test", 65535) "dns_lookup_family: V4_PREFERRED", MESH_OK,
     "h.test", 65535, MESH__DNS_V4_PREFERRED, 5000, false, 5000, 50000},
    {"all", DNS LA("h.test", 9) "dns_lookup_family: ALL dns_refresh_rate { seconds: 2 }",
     MESH_OK, "h.test", 9, MESH__DNS_ALL, 2000, false, 2000, 20000},
    {"ip literal", DNS LA("127.0.0.5", 9), MESH_OK, "127.0.0.5", 9, MESH__DNS_AUTO, 5000,
     false, 5000, 50000},
    {"failure base only", DNS LA("h.test", 9) "dns_failure_refresh_rate { base_interval "
     "{ nanos: 100000000 } }", MESH_OK, "h.test", 9, MESH__DNS_AUTO, 5000, false, 100, 1000},
    {"with lb and timeout", DNS LA("h.test", 9) "lb_policy: LEAST_REQUEST connect_timeout "
     "{ seconds: 2 }", MESH_OK, "h.test", 9, MESH__DNS_AUTO, 5000, false, 5000, 50000},
    /* bad */
    {"no load_assignment", DNS, MESH_ERR_CONFIG,
     "cluster \"d\": LOGICAL_DNS: load_assignment is required"},
    {"no endpoint", DNS "load_assignment { cluster_name: \"d\" }", MESH_ERR_CONFIG,
     "exactly one locality with exactly one endpoint (found 0 in 0)"},
    {"two endpoints", DNS "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { "
     "endpoint { address { socket_address { address: \"a.test\" port_value: 1 } } } } "
     "lb_endpoints { endpoint { address { socket_address { address: \"b.test\" port_value: "
     "1 } } } } } }", MESH_ERR_CONFIG, "(found 2 in 1)"},
    {"two localities", DNS "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { "
     "endpoint { address { socket_address { address: \"a.test\" port_value: 1 } } } } } "
     "endpoints { priority: 1 lb_endpoints { endpoint { address { socket_address { address: "
     "\"b.test\" port_value: 1 } } } } } }", MESH_ERR_CONFIG, "(found 2 in 2)"},
    {"empty locality", DNS "load_assignment { cluster_name: \"d\" endpoints { } }",
     MESH_ERR_CONFIG, "(found 0 in 1)"},
    {"no hostname", DNS LA("", 80), MESH_ERR_CONFIG, "socket_address.address: the hostname "
     "is missing"},
    {"no address", DNS "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { "
     "endpoint { } } } }", MESH_ERR_CONFIG, "endpoint.address: a socket_address is required"},
    {"pipe", DNS "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { "
     "endpoint { address { pipe { path: \"/x\" } } } } } }", MESH_ERR_CONFIG,
     "a socket_address is required"},
    {"no port", DNS "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { "
     "endpoint { address { socket_address { address: \"h.test\" } } } } } }", MESH_ERR_CONFIG,
     "socket_address.port_value 0: out of 1..65535"},
    {"port too big", DNS LA("h.test", 65536), MESH_ERR_CONFIG, "port_value 65536: out of"},
    {"bad hostname", DNS LA("bad host!", 80), MESH_ERR_CONFIG,
     "address \"bad host!\": not a hostname or IP address"},
    {"named port", DNS "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { "
     "endpoint { address { socket_address { address: \"h.test\" named_port: \"http\" } } } "
     "} } }", MESH_ERR_UNSUPPORTED, "named_port"},
    {"unknown family", DNS LA("h.test", 80) "dns_lookup_family: 7", MESH_ERR_UNSUPPORTED,
     "dns_lookup_family 7: not supported"},
    {"zero refresh", DNS LA("h.test", 80) "dns_refresh_rate { }", MESH_ERR_CONFIG,
     "dns_refresh_rate: must be at least 1ms"},
    {"negative refresh", DNS LA("h.test", 80) "dns_refresh_rate { seconds: -1 }",
     MESH_ERR_CONFIG, "dns_refresh_rate: must be at least 1ms"},
    {"failure no base", DNS LA("h.test", 80) "dns_failure_refresh_rate { max_interval { "
     "seconds: 1 } }", MESH_ERR_CONFIG, "dns_failure_refresh_rate.base_interval: required"},
    {"failure max <= base", DNS LA("h.test", 80) "dns_failure_refresh_rate { base_interval "
     "{ seconds: 2 } max_interval { seconds: 2 } }", MESH_ERR_CONFIG,
     "max_interval: must be greater than base_interval"},
    {"resolvers", DNS LA("h.test", 80) "dns_resolvers { }", MESH_ERR_UNSUPPORTED,
     "dns_resolvers, dns_resolution_config and typed_dns_resolver_config are not supported"},
    {"tcp lookups", DNS LA("h.test", 80) "use_tcp_for_dns_lookups: true", MESH_ERR_UNSUPPORTED,
     "use_tcp_for_dns_lookups is not supported"},
    {"typed resolver", DNS LA("h.test", 80) "typed_dns_resolver_config { }",
     MESH_ERR_UNSUPPORTED, "typed_dns_resolver_config are not supported"},
    {"unhealthy", DNS "load_assignment { cluster_name: \"d\" endpoints { lb_endpoints { "
     "health_status: UNHEALTHY endpoint { address { socket_address { address: \"h.test\" "
     "port_value: 1 } } } } } }", MESH_ERR_UNSUPPORTED, "health_status 2"},
    {"policy", DNS "load_assignment { cluster_name: \"d\" policy { } endpoints { "
     "lb_endpoints { endpoint { address { socket_address { address: \"h.test\" port_value: "
     "1 } } } } } }", MESH_ERR_UNSUPPORTED,
     "load_assignment.policy is not supported"},
    {"eds with load_assignment", "name: \"e\" type: EDS " LA("h.test", 80),
     MESH_ERR_UNSUPPORTED, "load_assignment: inline endpoints are not supported"},
    {"strict dns", "name: \"s\" type: STRICT_DNS " LA("h.test", 80), MESH_ERR_UNSUPPORTED,
     "type STRICT_DNS: only EDS, LOGICAL_DNS and aggregate"},
};

static void test_decode_table(void) {
  for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++) {
    const vec_t *v = &vecs[i];
    uint8_t *b;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(xv_encode("Cluster", v->text, &b, &len), 0);
    mesh__xds_cds_t *c = NULL;
    mesh_status_t st = {0};
    int rc = mesh__xds_decode_cds(b, len, &c, &st);
    free(b);
    bool ok = rc == v->rc;
    if (ok && rc == MESH_OK)
      ok = c->kind == MESH__XDS_CLUSTER_LOGICAL_DNS && !c->eds_name && !c->nchildren &&
           strcmp(c->dns.host, v->msg) == 0 && c->dns.port == v->port &&
           c->dns.family == v->family && c->dns.refresh_ms == v->refresh_ms &&
           c->dns.respect_ttl == v->respect && c->dns.fail_base_ms == v->fail_base &&
           c->dns.fail_max_ms == v->fail_max;
    else if (ok)
      ok = !c && strstr(st.message, v->msg) != NULL;
    if (!ok)
      fprintf(stderr, "\nvector \"%s\": rc %d (want %d) message \"%s\" (want \"%s\")\n",
              v->name, rc, v->rc, rc ? st.message : "", v->msg);
    CU_ASSERT(ok);
    mesh__xds_cds_free(c);
  }
  /* the last two: the cluster's lb and connect timeout are read as for EDS */
  uint8_t *b;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(xv_encode("Cluster", vecs[7].text, &b, &len), 0);
  mesh__xds_cds_t *c;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh__xds_decode_cds(b, len, &c, &st), MESH_OK);
  const cJSON *lb = cJSON_GetObjectItem(c->svc, "lb");
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(lb, "policy")),
                         "least_request");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(c->svc, "timeouts"),
                                      "connect_ms")->valueint, 2000);
  mesh__xds_cds_free(c);
  free(b);
  /* Endpoint.hostname names the host (Envoy's hostname for the host) */
  CU_ASSERT_EQUAL_FATAL(xv_encode("Cluster", DNS "load_assignment { cluster_name: \"d\" "
                                  "endpoints { lb_endpoints { endpoint { hostname: \"sni.test\" "
                                  "address { socket_address { address: \"h.test\" port_value: "
                                  "5 } } } } } }", &b, &len), 0);
  CU_ASSERT_EQUAL_FATAL(mesh__xds_decode_cds(b, len, &c, &st), MESH_OK);
  CU_ASSERT_STRING_EQUAL(c->dns.ep_hostname, "sni.test");
  mesh__xds_cds_free(c);
  free(b);
}

/* ---- the session ------------------------------------------------------------*/

static char *agg(const char *name, const char *children) {
  char cfg[512] = "";
  size_t o = 0;
  for (const char *p = children; *p;) {
    size_t n = strcspn(p, ",");
    o += (size_t)snprintf(cfg + o, sizeof cfg - o, "clusters: \"%.*s\" ", (int)n, p);
    p += n + (p[n] == ',');
  }
  char *any = xv_any(AGG_T, "AggregateClusterConfig", cfg);
  char *out = malloc(4096);
  snprintf(out, 4096, "name: \"%s\" cluster_type { name: \"envoy.clusters.aggregate\" "
           "typed_config { %s } }", name, any);
  free(any);
  return out;
}

static char *eds(const char *name) {
  char *out = malloc(256);
  snprintf(out, 256, "name: \"%s\" type: EDS eds_cluster_config { eds_config { ads {} } }",
           name);
  return out;
}

static char *ldns(const char *name, const char *host, int port, const char *more) {
  char *out = malloc(1024);
  snprintf(out, 1024, "name: \"%s\" type: LOGICAL_DNS dns_refresh_rate { nanos: 100000000 } "
           "load_assignment { cluster_name: \"%s\" endpoints { lb_endpoints { endpoint { "
           "address { socket_address { address: \"%s\" port_value: %d } } } } } } %s",
           name, name, host, port, more);
  return out;
}

static char *text_of(const char *url, const char *type, char *const *res, size_t n) {
  static int version;
  size_t cap = 65536;
  char *text = malloc(cap);
  int o = snprintf(text, cap, "version_info: \"%d\" nonce: \"n%d\" type_url: \"%s\" ",
                   version, version, url);
  version++;
  for (size_t i = 0; i < n; i++) {
    char *any = xv_any(url, type, res[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    o += snprintf(text + o, cap - (size_t)o, "resources { %s } ", any);
    free(any);
  }
  return text;
}

static int respond(mesh__xds_ads_t *a, const char *url, const char *type,
                   char *const *res, size_t n, mesh_status_t *st) {
  char *text = text_of(url, type, res, n);
  uint8_t *b;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &len), 0);
  free(text);
  int rc = mesh__xds_ads_on_response(a, b, len, st);
  free(b);
  return rc;
}

static void drain(mesh__xds_ads_t *a) {
  uint8_t *b;
  size_t n;
  while (mesh__xds_ads_next_request(a, &b, &n) == MESH_OK)
    free(b);
}

static void free_all(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
}

/* agg = [p (EDS), d (LOGICAL_DNS)]: accepted by the graph check; p's EDS
 * is subscribed, nothing for d; without resolvers d waits for DNS. */
static void test_session_aggregate(void) {
  mesh__xds_ads_t *a = mesh__xds_ads_new(NULL, NULL);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "agg"), MESH_OK);
  drain(a);
  char *cds[] = {agg("agg", "p,d"), eds("p"), ldns("d", "h.test", 80, "")};
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(respond(a, CDS_T, "Cluster", cds, 3, &st), MESH_OK);
    drain(a);
  }
  const mesh__xds_cds_t *d = mesh__xds_ads_cached(a, MESH__XDS_T_CDS, "d");
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_EQUAL(d->kind, MESH__XDS_CLUSTER_LOGICAL_DNS);
  CU_ASSERT_EQUAL(mesh__xds_ads_status(a, MESH__XDS_T_EDS, "p"), MESH__XDS_REQUESTED);
  CU_ASSERT_EQUAL(mesh__xds_ads_status(a, MESH__XDS_T_EDS, "d"), -1);
  size_t ncds = mesh__xds_ads_ncds(a);
  CU_ASSERT_EQUAL(ncds, 3);
  char *e[] = {strdup("cluster_name: \"p\" endpoints { lb_endpoints { endpoint { address { "
                      "socket_address { address: \"127.0.0.1\" port_value: 81 } } } } }")};
  CU_ASSERT_EQUAL(respond(a, EDS_T, "ClusterLoadAssignment", e, 1, &st), MESH_OK);
  mesh__ep_t *eps;
  size_t n;
  const mesh__xds_cds_t *first;
  char note[256];
  CU_ASSERT_EQUAL(mesh__xds_agg_flatten(a, NULL, "agg", &eps, &n, &first, note, sizeof note),
                  MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NOT_NULL(strstr(note, "cluster \"d\": waiting for DNS (h.test)"));
  /* a bad LOGICAL_DNS update is NACKed; the cached d stays */
  char *bad[] = {agg("agg", "p,d"), eds("p"), ldns("d", "h.test", 0, "")};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "Cluster", bad, 3, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "cluster \"d\": load_assignment"));
  CU_ASSERT_EQUAL(mesh__xds_ads_status(a, MESH__XDS_T_CDS, "d"), MESH__XDS_NACKED);
  d = mesh__xds_ads_cached(a, MESH__XDS_T_CDS, "d");
  CU_ASSERT_EQUAL(d->dns.port, 80);
  free_all(cds, 3);
  free_all(bad, 3);
  free_all(e, 1);
  mesh__xds_ads_free(a);
}

/* ---- a context ------------------------------------------------------------*/

static int feed(mesh_t *m, const char *url, const char *type, char *const *res,
                size_t n, mesh_status_t *st) {
  char *text = text_of(url, type, res, n);
  uint8_t *b;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &len), 0);
  free(text);
  int rc = mesh__xds_feed(m, b, len, st);
  free(b);
  return rc;
}

typedef struct want {
  mesh_t *m;
  const char *svc, *addr;
  int port;
} want_t;

/* Every one of 20 picks goes to addr:port (addr NULL: the set is empty). */
static bool picks_at(void *arg) {
  const want_t *w = arg;
  mesh__service_t *svc = mesh__service_find(w->m, w->svc);
  mesh__snapshot_t *snap = mesh__snap_acquire(mesh__disc_snapref(svc));
  bool ok = snap != NULL;
  if (ok && !w->addr)
    ok = snap->n == 0;
  for (int i = 0; ok && w->addr && i < 20; i++) {
    mesh__host_t *h = NULL;
    ok = mesh__lb_pick(svc, snap, NULL, &h) == MESH_OK && h->port == w->port &&
         strcmp(h->address, w->addr) == 0;
  }
  mesh__snap_release(snap);
  return ok;
}

#define BOOT "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", \"channel_creds\": " \
             "[{\"type\": \"insecure\"}]}], \"node\": {\"id\": \"n\"}}"
#define EP_P(h) "cluster_name: \"p\" endpoints { lb_endpoints { health_status: " h \
  " endpoint { address { socket_address { address: \"127.0.0.1\" port_value: 8101 } } } } }"

/* "web" reaches agg = [p, d]; "solo" the LOGICAL_DNS cluster s.  IP
 * literals and "localhost" need no DNS server. */
static void test_context(void) {
  mesh_t *m;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"xds\": {\"bootstrap\": " BOOT ", \"logical_dns\": "
                                 "{\"servers\": [\"127.0.0.1:1\"], \"timeout_ms\": 500}}, "
                                 "\"services\": {\"web\": {\"discovery\": {\"type\": \"xds\", "
                                 "\"cluster\": \"agg\"}}, \"solo\": {\"discovery\": {\"type\": "
                                 "\"xds\", \"cluster\": \"s\"}}}}", &m, &st), MESH_OK);
  char *cds[] = {agg("agg", "p,d"), eds("p"), ldns("d", "127.0.0.7", 8301, ""),
                 ldns("s", "localhost", 8302, "dns_lookup_family: V4_ONLY")};
  for (int i = 0; i < 2; i++)
    CU_ASSERT_EQUAL(feed(m, CDS_T, "Cluster", cds, 4, &st), MESH_OK);
  want_t solo = {m, "solo", "127.0.0.1", 8302};
  CU_ASSERT(th_wait_for(picks_at, &solo, TH_CAP_MS, "solo at localhost:8302"));
  /* p healthy: p; p unhealthy: the DNS child (A37 failover); back */
  char *e[] = {strdup(EP_P("HEALTHY"))};
  CU_ASSERT_EQUAL(feed(m, EDS_T, "ClusterLoadAssignment", e, 1, &st), MESH_OK);
  want_t web = {m, "web", "127.0.0.1", 8101};
  CU_ASSERT(th_wait_for(picks_at, &web, TH_CAP_MS, "web at p"));
  free(e[0]);
  e[0] = strdup(EP_P("UNHEALTHY"));
  CU_ASSERT_EQUAL(feed(m, EDS_T, "ClusterLoadAssignment", e, 1, &st), MESH_OK);
  web = (want_t){m, "web", "127.0.0.7", 8301};
  CU_ASSERT(picks_at(&web));
  mesh__service_t *svc = mesh__service_find(m, "web");
  mesh__snapshot_t *snap = mesh__snap_acquire(mesh__disc_snapref(svc));
  CU_ASSERT_EQUAL(snap->n, 2);
  for (size_t i = 0; i < snap->n; i++)
    if (snap->hosts[i]->port == 8301)
      CU_ASSERT_EQUAL(snap->hosts[i]->priority, 1);
  mesh__snap_release(snap);
  /* s moves to another port: a new resolver, the new host */
  free(cds[3]);
  cds[3] = ldns("s", "127.0.0.9", 8303, "");
  CU_ASSERT_EQUAL(feed(m, CDS_T, "Cluster", cds, 4, &st), MESH_OK);
  solo = (want_t){m, "solo", "127.0.0.9", 8303};
  CU_ASSERT(th_wait_for(picks_at, &solo, TH_CAP_MS, "solo at 127.0.0.9:8303"));
  /* a bad one (more than one endpoint) is NACKed: s stays in force */
  free(cds[3]);
  cds[3] = strdup("name: \"s\" type: LOGICAL_DNS load_assignment { cluster_name: \"s\" "
                  "endpoints { lb_endpoints { endpoint { address { socket_address { address: "
                  "\"a.test\" port_value: 1 } } } } lb_endpoints { endpoint { address { "
                  "socket_address { address: \"b.test\" port_value: 1 } } } } } }");
  CU_ASSERT_EQUAL(feed(m, CDS_T, "Cluster", cds, 4, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "exactly one endpoint"));
  CU_ASSERT(picks_at(&solo));
  /* the view shows the resolvers */
  cJSON *v = mesh__view_render(m, "xds");
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  const cJSON *ld = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "logical_dns"), "s");
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(ld, "address")),
                         "127.0.0.9");
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(ld, "state")), "resolved");
  cJSON_Delete(v);
  free_all(cds, 4);
  free_all(e, 1);
  mesh_free(m);
}

/* The section's "logical_dns" key is checked with its path. */
static void test_config(void) {
  static const struct { const char *cfg, *msg; } bad[] = {
      {"{\"servers\": \"x\"}", "xds.logical_dns.servers"},
      {"{\"timeout_ms\": \"5s\"}", "xds.logical_dns.timeout_ms"},
      {"{\"min_ttl_ms\": 5}", "xds.logical_dns.min_ttl_ms"},
      {"[]", "xds.logical_dns"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"xds\": {\"bootstrap\": " BOOT ", \"logical_dns\": %s}}",
             bad[i].cfg);
    mesh_t *m = NULL;
    mesh_status_t st = {0};
    CU_ASSERT_EQUAL(mesh_new(cfg, &m, &st), MESH_ERR_CONFIG);
    if (!strstr(st.message, bad[i].msg))
      fprintf(stderr, "\nconfig %s: \"%s\" (want \"%s\")\n", bad[i].cfg, st.message,
              bad[i].msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, bad[i].msg));
    mesh_free(m);
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_ldns", NULL, NULL);
  CU_add_test(s, "decode_table", test_decode_table);
  CU_add_test(s, "session_aggregate", test_session_aggregate);
  CU_add_test(s, "context", test_context);
  CU_add_test(s, "config", test_config);
}

int main(void) { return th_run_suites("test_xds_ldns", add); }
