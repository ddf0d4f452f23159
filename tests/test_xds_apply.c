/* SPDX-License-Identifier: Apache-2.0 */
/* xds/apply.c: what the ADS cache holds, applied to discovery, lb and
 * resilience.  A service following a listener gets its route's weighted
 * clusters as a split (picks counted per cluster), CDS settings (lb policy,
 * breakers, outlier detection, connect timeout) become the live settings,
 * an incomplete state (a cluster without CDS/EDS) is not applied, a NACKed
 * route changes nothing; and picks and live-settings readers on other
 * threads while the config flips 200 times see whole versions only (run
 * under TSan by scripts/test.d/tsan.sh). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "mesh/mesh.h"
#include "discovery/discovery.h"
#include "lb/lb.h"
#include "resilience/resilience.h"
#include "telemetry/telemetry.h"
#include "xds/proto/base.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds_vec.h"

#define LDS_T "type.googleapis.com/envoy.config.listener.v3.Listener"
#define RDS_T "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define CDS_T "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_T "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define HCM_T "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_T "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
#define BOOT "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", \"channel_creds\": " \
             "[{\"type\": \"insecure\"}]}], \"node\": {\"id\": \"n\"}}"
#define EP(a, p) "lb_endpoints { endpoint { address { socket_address { address: \"" a \
                 "\" port_value: " #p " } } } }"

/* One response of type url carrying the resources (text of message type),
 * encoded (protoc) into *out. */
static void encode(const char *url, const char *type, const char *const *res, size_t n,
                   uint8_t **out, size_t *outlen) {
  static int version;
  size_t cap = 65536;
  char *text = malloc(cap);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  version++;
  size_t o = (size_t)snprintf(text, cap, "version_info: \"%d\" nonce: \"n%d\" type_url: \"%s\" ",
                              version, version, url);
  for (size_t i = 0; i < n; i++) {
    char *any = xv_any(url, type, res[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    o += (size_t)snprintf(text + o, cap - o, "resources { %s } ", any);
    free(any);
  }
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, out, outlen), 0);
  free(text);
}

/* Feed encoded bytes; drain the requests the session wants sent. */
static int feed_raw(mesh_t *m, const uint8_t *b, size_t len, mesh_status_t *st) {
  int rc = mesh__xds_feed(m, b, len, st);
  uint8_t *q;
  size_t ql;
  while (mesh__xds_next_request(m, &q, &ql) == MESH_OK)
    free(q);
  return rc;
}

static int feed(mesh_t *m, const char *url, const char *type, const char *const *res,
                size_t n, mesh_status_t *st) {
  uint8_t *b;
  size_t len;
  encode(url, type, res, n, &b, &len);
  int rc = feed_raw(m, b, len, st);
  free(b);
  return rc;
}

static int feed1(mesh_t *m, const char *url, const char *type, const char *res) {
  mesh_status_t st;
  int rc = feed(m, url, type, &res, 1, &st);
  if (rc)
    fprintf(stderr, "\nfeed %s: %s\n", type, st.message);
  return rc;
}

static void listener(mesh_t *m) {
  char *router = xv_any(ROUTER_T, "Router", "");
  char hcm[4096];
  snprintf(hcm, sizeof hcm, "rds { config_source { ads {} } route_config_name: \"web-routes\" } "
           "http_filters { name: \"router\" typed_config { %s } }", router);
  free(router);
  char *h = xv_any(HCM_T, "HttpConnectionManager", hcm);
  char lis[8192];
  snprintf(lis, sizeof lis, "name: \"web\" api_listener { api_listener { %s } }", h);
  free(h);
  CU_ASSERT_EQUAL(feed1(m, LDS_T, "Listener", lis), MESH_OK);
}

static void route_bytes(int w1, int w2, const char *c2, uint8_t **b, size_t *len) {
  char r[1024];
  snprintf(r, sizeof r, "name: \"web-routes\" virtual_hosts { name: \"v\" domains: \"*\" "
           "routes { match { prefix: \"/\" } route { weighted_clusters { "
           "clusters { name: \"v1\" weight { value: %d } } clusters { name: \"%s\" "
           "weight { value: %d } } } } } }", w1, c2, w2);
  const char *res = r;
  encode(RDS_T, "RouteConfiguration", &res, 1, b, len);
}

/* Both clusters in one CDS response (state of the world). */
static void cluster_bytes(int max_requests, uint8_t **b, size_t *len) {
  char c[2][512];
  for (int i = 0; i < 2; i++)
    snprintf(c[i], sizeof c[i], "name: \"v%d\" type: EDS eds_cluster_config { eds_config "
             "{ ads {} } } lb_policy: LEAST_REQUEST connect_timeout { seconds: 2 } "
             "outlier_detection { consecutive_5xx { value: 3 } } circuit_breakers { "
             "thresholds { max_requests { value: %d } max_pending_requests { value: %d } } }",
             i + 1, max_requests, max_requests);
  const char *res[] = {c[0], c[1]};
  encode(CDS_T, "Cluster", res, 2, b, len);
}

static void route(mesh_t *m, int w1, int w2, const char *c2, int want) {
  uint8_t *b;
  size_t len;
  mesh_status_t st;
  route_bytes(w1, w2, c2, &b, &len);
  CU_ASSERT_EQUAL(feed_raw(m, b, len, &st), want);
  free(b);
}

static void clusters(mesh_t *m, int max_requests) {
  uint8_t *b;
  size_t len;
  mesh_status_t st;
  cluster_bytes(max_requests, &b, &len);
  CU_ASSERT_EQUAL(feed_raw(m, b, len, &st), MESH_OK);
  free(b);
}

/* Picks of n calls per cluster label: [0] v1, [1] v2, [2] other/failed. */
static void picks(mesh_t *m, int n, int out[3]) {
  mesh__service_t *svc = mesh__service_find(m, "web");
  mesh__snapshot_t *snap = mesh__snap_acquire(mesh__disc_snapref(svc));
  out[0] = out[1] = out[2] = 0;
  for (int i = 0; i < n; i++) {
    mesh__host_t *h = NULL;
    const char *c = mesh__lb_pick(svc, snap, NULL, &h) == MESH_OK
                        ? mesh__host_label(h, MESH__XDS_CLUSTER_LABEL) : NULL;
    out[c && !strcmp(c, "v1") ? 0 : c && !strcmp(c, "v2") ? 1 : 2]++;
  }
  mesh__snap_release(snap);
}

static mesh_t *setup(void) {
  mesh_t *m;
  mesh_status_t st;
  int rc = mesh_new("{\"xds\": {\"bootstrap\": " BOOT "}, \"services\": {\"web\": "
                    "{\"discovery\": {\"type\": \"xds\", \"listener\": \"web\"}}}}", &m, &st);
  if (rc)
    fprintf(stderr, "\nmesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  return m;
}

static void test_mesh__xds_apply_split(void) {
  mesh_t *m = setup();
  mesh__service_t *svc = mesh__service_find(m, "web");
  listener(m);
  route(m, 90, 10, "v2", MESH_OK);
  clusters(m, 7);
  CU_ASSERT_EQUAL(feed1(m, EDS_T, "ClusterLoadAssignment", "cluster_name: \"v1\" endpoints { "
                        EP("127.0.0.1", 8001) " " EP("127.0.0.1", 8002) " }"), MESH_OK);
  /* v2 has no endpoints yet: nothing is applied */
  mesh__snapshot_t *s = mesh__snap_acquire(mesh__disc_snapref(svc));
  CU_ASSERT(s == NULL || s->n == 0);
  mesh__snap_release(s);
  cJSON *v = mesh__view_render(m, "xds");
  const char *pending = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(
      cJSON_GetObjectItem(v, "services"), "web"), "pending"));
  CU_ASSERT(pending && strstr(pending, "\"v2\": waiting for EDS"));
  cJSON_Delete(v);
  CU_ASSERT_EQUAL(feed1(m, EDS_T, "ClusterLoadAssignment", "cluster_name: \"v2\" endpoints { "
                        EP("127.0.0.1", 8003) " }"), MESH_OK);
  int c[3];
  picks(m, 10000, c);
  /* binomial n = 10000, p = 0.1: sd 30 */
  CU_ASSERT(c[1] >= 850 && c[1] <= 1150);
  CU_ASSERT_EQUAL(c[2], 0);
  /* CDS settings are the live ones */
  s = mesh__snap_acquire(mesh__disc_snapref(svc));
  CU_ASSERT_EQUAL(((mesh__lb_state_t *)s->lb)->policy, MESH__LB_LEAST_REQUEST);
  uint64_t v0 = s->version;
  mesh__snap_release(s);
  mesh__res_live_t *l = mesh__res_live_acquire((mesh__res_svc_t *)svc->res);
  CU_ASSERT_EQUAL(l->cb.max_requests, 7);
  CU_ASSERT(l->od.enabled);
  CU_ASSERT_EQUAL(l->od.consecutive_5xx, 3);
  CU_ASSERT_EQUAL(l->connect_ms, 2000);
  mesh__res_live_release(l);
  /* 0/100: same hosts, a new snapshot with the new split */
  route(m, 0, 100, "v2", MESH_OK);
  picks(m, 2000, c);
  CU_ASSERT_EQUAL(c[1], 2000);
  s = mesh__snap_acquire(mesh__disc_snapref(svc));
  CU_ASSERT(s->version > v0);
  CU_ASSERT_EQUAL(s->n, 3);
  mesh__snap_release(s);
  /* a route naming a cluster not known yet: the state in force stays */
  route(m, 50, 50, "v3", MESH_OK);
  picks(m, 2000, c);
  CU_ASSERT_EQUAL(c[1], 2000);
  /* a NACKed route (all weights 0) changes nothing either */
  route(m, 0, 0, "v2", MESH_ERR_CONFIG);
  picks(m, 2000, c);
  CU_ASSERT_EQUAL(c[1], 2000);
  /* back to v1/v2: v2 left the subscription with the v3 route, so its
   * CDS and EDS come again before anything applies; the breakers changed */
  route(m, 0, 100, "v2", MESH_OK);
  clusters(m, 11);
  l = mesh__res_live_acquire((mesh__res_svc_t *)svc->res);
  CU_ASSERT_EQUAL(l->cb.max_requests, 7);
  mesh__res_live_release(l);
  CU_ASSERT_EQUAL(feed1(m, EDS_T, "ClusterLoadAssignment", "cluster_name: \"v2\" endpoints { "
                        EP("127.0.0.1", 8003) " }"), MESH_OK);
  l = mesh__res_live_acquire((mesh__res_svc_t *)svc->res);
  CU_ASSERT_EQUAL(l->cb.max_requests, 11);
  mesh__res_live_release(l);
  mesh_free(m);
}

/* ---- readers on other threads while the config flips ---------------------- */
typedef struct reader {
  mesh_t *m;
  _Atomic bool *stop;
  int torn, bad, rounds;
} reader_t;

static void *read_loop(void *arg) {
  reader_t *r = arg;
  mesh__service_t *svc = mesh__service_find(r->m, "web");
  while (!atomic_load(r->stop) || r->rounds < 100) {
    mesh__res_live_t *l = mesh__res_live_acquire((mesh__res_svc_t *)svc->res);
    /* CDS always sets both to the same value: a mix would differ */
    r->torn += l->cb.max_requests != l->cb.max_pending_requests;
    mesh__res_live_release(l);
    mesh__snapshot_t *s = mesh__snap_acquire(mesh__disc_snapref(svc));
    mesh__host_t *h = NULL;
    if (s && s->n && (mesh__lb_pick(svc, s, NULL, &h) != MESH_OK ||
                      !mesh__host_label(h, MESH__XDS_CLUSTER_LABEL)))
      r->bad++;
    mesh__snap_release(s);
    r->rounds++;
  }
  return NULL;
}

static void test_mesh__xds_apply_threads(void) {
  mesh_t *m = setup();
  listener(m);
  route(m, 90, 10, "v2", MESH_OK);
  clusters(m, 5);
  CU_ASSERT_EQUAL(feed1(m, EDS_T, "ClusterLoadAssignment", "cluster_name: \"v1\" endpoints { "
                        EP("127.0.0.1", 8001) " }"), MESH_OK);
  CU_ASSERT_EQUAL(feed1(m, EDS_T, "ClusterLoadAssignment", "cluster_name: \"v2\" endpoints { "
                        EP("127.0.0.1", 8002) " }"), MESH_OK);
  _Atomic bool stop = false;
  reader_t r[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    r[i] = (reader_t){m, &stop, 0, 0, 0};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, read_loop, &r[i]), 0);
  }
  /* encoded once: the same bytes again are accepted (versions are opaque) */
  uint8_t *rb[2], *cb[2];
  size_t rl[2], cl[2];
  for (int k = 0; k < 2; k++) {
    route_bytes(k ? 10 : 90, k ? 90 : 10, "v2", &rb[k], &rl[k]);
    cluster_bytes(5 + k, &cb[k], &cl[k]);
  }
  mesh_status_t st;
  for (int i = 0; i < 200; i++) {
    CU_ASSERT_EQUAL(feed_raw(m, rb[i % 2], rl[i % 2], &st), MESH_OK);
    CU_ASSERT_EQUAL(feed_raw(m, cb[i % 2], cl[i % 2], &st), MESH_OK);
  }
  for (int k = 0; k < 2; k++) {
    free(rb[k]);
    free(cb[k]);
  }
  atomic_store(&stop, true);
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(r[i].torn, 0);
    CU_ASSERT_EQUAL(r[i].bad, 0);
    CU_ASSERT(r[i].rounds >= 100);
  }
  mesh_free(m);
}

static void collect(const char *msg, void *user) {
  char *buf = user;
  if (!*buf)
    snprintf(buf, 512, "%s", msg);
}

static void test_mesh__xds_apply_config(void) {
  static const struct { const char *disc, *msg; } vec[] = {
      {"\"cluster\": \"c\", \"listener\": \"l\"",
       "services.w.discovery.listener: give \"cluster\" or \"listener\", not both"},
      {"\"listener\": \"\"", "services.w.discovery.listener: must not be empty"},
      {"\"listener\": 3", "services.w.discovery.listener"},
      {"\"listener\": \"l\"", NULL},
  };
  for (size_t i = 0; i < sizeof vec / sizeof *vec; i++) {
    char json[512], err[512] = "";
    snprintf(json, sizeof json, "{\"xds\": {\"bootstrap\": " BOOT "}, \"services\": "
             "{\"w\": {\"discovery\": {\"type\": \"xds\", %s}}}}", vec[i].disc);
    int n = mesh_config_check(json, collect, err);
    CU_ASSERT_EQUAL(n > 0, vec[i].msg != NULL);
    if (vec[i].msg && !strstr(err, vec[i].msg))
      fprintf(stderr, "\nconfig %zu: \"%s\" (want \"%s\")\n", i, err, vec[i].msg);
    CU_ASSERT(!vec[i].msg || strstr(err, vec[i].msg));
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_apply", NULL, NULL);
  CU_add_test(s, "mesh__xds_apply_split", test_mesh__xds_apply_split);
  CU_add_test(s, "mesh__xds_apply_threads", test_mesh__xds_apply_threads);
  CU_add_test(s, "mesh__xds_apply_config", test_mesh__xds_apply_config);
}

int main(void) { return th_run_suites("test_xds_apply", add); }
