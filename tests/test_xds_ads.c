/* SPDX-License-Identifier: Apache-2.0 */
/* The ADS state-of-the-world core (libmesh/xds/ads.c) against scripted
 * response sequences: subscriptions that follow the resources (LDS -> RDS
 * -> CDS -> EDS, aggregates), ACK and NACK with version_info,
 * response_nonce and error_detail, the last good resource kept on a NACK
 * (gRFC A46 partial acceptance), removals, stream reconnects. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "xds/proto/base.pb-c.h"
#include "xds/xds.h"
#include "xds_vec.h"

#define CDS_T "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_T "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define LDS_T "type.googleapis.com/envoy.config.listener.v3.Listener"
#define RDS_T "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

typedef struct sink_log {
  int cds, eds, lds, rds, removed;
  size_t last_eds_n;
  char last_removed[64];
} sink_log_t;

static void on_cds(void *u, const char *n, const mesh__xds_cds_t *c) { ((sink_log_t *)u)->cds++; }
static void on_lds(void *u, const char *n, const mesh__xds_lds_t *l) { ((sink_log_t *)u)->lds++; }
static void on_rds(void *u, const char *n, const cJSON *r) { ((sink_log_t *)u)->rds++; }
static void on_eds(void *u, const char *n, const mesh__xds_eds_t *e) {
  ((sink_log_t *)u)->eds++;
  ((sink_log_t *)u)->last_eds_n = e->n;
}
static void on_removed(void *u, mesh__xds_type_t t, const char *n) {
  sink_log_t *l = u;
  l->removed++;
  snprintf(l->last_removed, sizeof l->last_removed, "%s", n);
}

/* The next request, decoded (NULL when none is due). */
static Meshxds__DiscoveryRequest *next(mesh__xds_ads_t *a) {
  uint8_t *b;
  size_t n;
  if (mesh__xds_ads_next_request(a, &b, &n) != MESH_OK)
    return NULL;
  Meshxds__DiscoveryRequest *r = meshxds__discovery_request__unpack(NULL, n, b);
  free(b);
  return r;
}

static void rq_free(Meshxds__DiscoveryRequest *r) {
  if (r)
    meshxds__discovery_request__free_unpacked(r, NULL);
}

static const char *node_id = "node-1"; /* the node the session was made for */

/* Check the next request and free it. */
static void expect(mesh__xds_ads_t *a, const char *type, const char *names,
                   const char *version, const char *nonce, const char *error,
                   bool node) {
  Meshxds__DiscoveryRequest *r = next(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  char got[512] = "";
  for (size_t i = 0; i < r->n_resource_names; i++)
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "," : "",
             r->resource_names[i]);
  if (strcmp(r->type_url, type) || strcmp(got, names) || strcmp(r->version_info, version) ||
      strcmp(r->response_nonce, nonce))
    fprintf(stderr, "\nrequest: %s [%s] v=%s nonce=%s\n", r->type_url, got, r->version_info,
            r->response_nonce);
  CU_ASSERT_STRING_EQUAL(r->type_url, type);
  CU_ASSERT_STRING_EQUAL(got, names);
  CU_ASSERT_STRING_EQUAL(r->version_info, version);
  CU_ASSERT_STRING_EQUAL(r->response_nonce, nonce);
  if (error) {
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->error_detail);
    if (!strstr(r->error_detail->message, error))
      fprintf(stderr, "\nerror_detail: %s\n", r->error_detail->message);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->error_detail->message, error));
  } else {
    CU_ASSERT_PTR_NULL(r->error_detail);
  }
  CU_ASSERT_EQUAL(r->node != NULL, node);
  if (node && r->node)
    CU_ASSERT_STRING_EQUAL(r->node->id, node_id);
  rq_free(r);
}

/* Feed a response of type url holding resources (each "TYPE|text"). */
static int respond(mesh__xds_ads_t *a, const char *url, const char *version,
                   const char *nonce, const char *const *res, size_t n,
                   mesh_status_t *st) {
  char text[65536];
  int o = snprintf(text, sizeof text, "version_info: \"%s\" nonce: \"%s\" type_url: \"%s\" ",
                   version, nonce, url);
  for (size_t i = 0; i < n; i++) {
    const char *bar = strchr(res[i], '|');
    char type[64];
    snprintf(type, sizeof type, "%.*s", (int)(bar - res[i]), res[i]);
    /* "WRONG" packs under another type URL */
    char *any = xv_any(strncmp(res[i], "Cluster|", 8) == 0 ? CDS_T :
                       strncmp(res[i], "ClusterLoadAssignment|", 22) == 0 ? EDS_T :
                       strncmp(res[i], "Listener|", 9) == 0 ? LDS_T : RDS_T,
                       type, bar + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    o += snprintf(text + o, sizeof text - (size_t)o, "resources { %s } ", any);
    free(any);
  }
  uint8_t *b;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &len), 0);
  const char *dir = getenv("XDS_WRITE_CORPUS"); /* fuzz seeds, xds_ads */
  static int seq;
  char path[512];
  snprintf(path, sizeof path, "%s/ads-%02d", dir ? dir : ".", seq++);
  FILE *f = dir && len < 65536 ? fopen(path, "wb") : NULL;
  if (f) {
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    fwrite(hdr, 1, 2, f);
    fwrite(b, 1, len, f);
    fclose(f);
  }
  int rc = mesh__xds_ads_on_response(a, b, len, st);
  free(b);
  return rc;
}

static mesh__xds_bootstrap_t *boot(void) {
  cJSON *doc = cJSON_Parse("{\"xds_servers\": [{\"server_uri\": \"x:1\", \"channel_creds\": "
                           "[{\"type\": \"insecure\"}]}], \"node\": {\"id\": \"node-1\"}}");
  mesh_status_t first;
  mesh__cfg_t c = {.first = &first};
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_parse(&c, doc, "b");
  cJSON_Delete(doc);
  return b;
}

#define WEB "Cluster|name: \"web\" type: EDS eds_cluster_config { eds_config { ads {} } " \
            "service_name: \"web-eds\" }"
#define EP(a, p) "lb_endpoints { endpoint { address { socket_address { address: \"" a \
                 "\" port_value: " #p " } } } }"

static const char *view_status(mesh__xds_ads_t *a, const char *type, const char *name,
                               char *err, size_t cap) {
  static char out[32];
  cJSON *v = mesh__xds_ads_view(a);
  cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
      cJSON_GetObjectItem(v, "types"), type), "resources"), name);
  snprintf(out, sizeof out, "%s", r ? cJSON_GetObjectItem(r, "status")->valuestring : "-");
  if (err)
    snprintf(err, cap, "%s", r && cJSON_GetObjectItem(r, "error") ?
             cJSON_GetObjectItem(r, "error")->valuestring : "");
  cJSON_Delete(v);
  return out;
}

static void test_mesh__xds_ads_cds_eds(void) {
  sink_log_t log = {0};
  mesh__xds_sink_t sink = {on_lds, on_rds, on_cds, on_eds, on_removed, &log};
  mesh__xds_bootstrap_t *b = boot();
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  mesh__xds_ads_t *a = mesh__xds_ads_new(b, &sink);
  mesh__xds_bootstrap_free(b);
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "web"), MESH_OK);
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "web"), MESH_OK);
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_EDS, "x"), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_CDS, ""), MESH_ERR_INVALID_ARG);
  expect(a, CDS_T, "web", "", "", NULL, true);
  CU_ASSERT_PTR_NULL(next(a));
  CU_ASSERT_STRING_EQUAL(view_status(a, CDS_T, "web", NULL, 0), "REQUESTED");
  mesh_status_t st;
  const char *c1[] = {WEB};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "c1", "n1", c1, 1, &st), MESH_OK);
  CU_ASSERT_EQUAL(log.cds, 1);
  expect(a, CDS_T, "web", "c1", "n1", NULL, false);       /* ACK */
  expect(a, EDS_T, "web-eds", "", "", NULL, false);       /* follows the cluster */
  CU_ASSERT_PTR_NULL(next(a));
  const char *e1[] = {"ClusterLoadAssignment|cluster_name: \"web-eds\" endpoints { "
                      EP("127.0.0.1", 80) " " EP("127.0.0.2", 80) " }"};
  CU_ASSERT_EQUAL(respond(a, EDS_T, "e1", "n2", e1, 1, &st), MESH_OK);
  CU_ASSERT_EQUAL(log.eds, 1);
  CU_ASSERT_EQUAL(log.last_eds_n, 2);
  expect(a, EDS_T, "web-eds", "e1", "n2", NULL, false);
  /* a NACK-worthy update: NACK with the error, last good stays */
  const char *e2[] = {"ClusterLoadAssignment|cluster_name: \"web-eds\" endpoints { "
                      EP("127.0.0.3", 0) " }"};
  CU_ASSERT_EQUAL(respond(a, EDS_T, "e2", "n3", e2, 1, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "port_value 0"));
  CU_ASSERT_EQUAL(log.eds, 1);
  expect(a, EDS_T, "web-eds", "e1", "n3", "port_value 0", false);
  char err[300];
  CU_ASSERT_STRING_EQUAL(view_status(a, EDS_T, "web-eds", err, sizeof err), "NACKED");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "port_value 0"));
  /* a version rollback is just another state: accepted */
  const char *e0[] = {"ClusterLoadAssignment|cluster_name: \"web-eds\" endpoints { "
                      EP("127.0.0.1", 80) " }"};
  CU_ASSERT_EQUAL(respond(a, EDS_T, "e0", "n4", e0, 1, &st), MESH_OK);
  CU_ASSERT_EQUAL(log.last_eds_n, 1);
  expect(a, EDS_T, "web-eds", "e0", "n4", NULL, false);
  CU_ASSERT_STRING_EQUAL(view_status(a, EDS_T, "web-eds", NULL, 0), "ACKED");
  /* reconnect: everything again, with the ACKed versions, no nonce, node */
  mesh__xds_ads_on_reconnect(a);
  expect(a, CDS_T, "web", "c1", "", NULL, true);
  expect(a, EDS_T, "web-eds", "e0", "", NULL, false);
  CU_ASSERT_PTR_NULL(next(a));
  /* wrong type inside the response: NACK, nothing changes */
  const char *bad[] = {"ClusterLoadAssignment|cluster_name: \"web\""};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "c2", "n5", bad, 1, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "in a " CDS_T " response"));
  expect(a, CDS_T, "web", "c1", "n5", "ClusterLoadAssignment", false);
  /* the cluster is removed from the full state: does not exist, EDS dropped */
  CU_ASSERT_EQUAL(respond(a, CDS_T, "c3", "n6", NULL, 0, &st), MESH_OK);
  CU_ASSERT_EQUAL(log.removed, 1);
  CU_ASSERT_STRING_EQUAL(log.last_removed, "web");
  CU_ASSERT_STRING_EQUAL(view_status(a, CDS_T, "web", NULL, 0), "DOES_NOT_EXIST");
  expect(a, CDS_T, "web", "c3", "n6", NULL, false);
  expect(a, EDS_T, "", "e0", "", NULL, false); /* no EDS response since */
  CU_ASSERT_PTR_NULL(next(a));
  uint64_t up, nk;
  mesh__xds_ads_counts(a, &up, &nk);
  CU_ASSERT_EQUAL(up, 3);
  CU_ASSERT_EQUAL(nk, 2);
  mesh__xds_ads_free(a);
}

static void test_mesh__xds_ads_partial(void) {
  /* gRFC A46: the valid resource of a response is accepted, the refused one
   * keeps its last good version, the response is NACKed naming it */
  sink_log_t log = {0};
  mesh__xds_sink_t sink = {on_lds, on_rds, on_cds, on_eds, on_removed, &log};
  mesh__xds_ads_t *a = mesh__xds_ads_new(NULL, &sink);
  mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "a");
  mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "b");
  rq_free(next(a));
  mesh_status_t st;
  const char *v1[] = {"Cluster|name: \"a\" type: EDS", "Cluster|name: \"b\" type: EDS"};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "1", "n1", v1, 2, &st), MESH_OK);
  const char *v2[] = {"Cluster|name: \"a\" type: EDS lb_policy: RANDOM",
                      "Cluster|name: \"b\" type: STATIC"};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "2", "n2", v2, 2, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "cluster \"b\": type STATIC"));
  CU_ASSERT_EQUAL(log.cds, 3);
  CU_ASSERT_STRING_EQUAL(view_status(a, CDS_T, "a", NULL, 0), "ACKED");
  CU_ASSERT_STRING_EQUAL(view_status(a, CDS_T, "b", NULL, 0), "NACKED");
  /* b is not removed: it was in the response */
  CU_ASSERT_EQUAL(log.removed, 0);
  /* duplicate names in one response */
  const char *dup[] = {"Cluster|name: \"a\" type: EDS", "Cluster|name: \"a\" type: EDS",
                       "Cluster|name: \"b\" type: EDS"};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "3", "n3", dup, 3, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "twice in one response"));
  /* garbage and unknown types */
  static const uint8_t junk[] = {0x12, 0x05, 0x01};
  CU_ASSERT_EQUAL(mesh__xds_ads_on_response(a, junk, sizeof junk, &st), MESH_ERR_PARSE);
  mesh__xds_ads_free(a);
}

#define HCM_T "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_T "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
#define AGG_T "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"

static void test_mesh__xds_ads_chain(void) {
  sink_log_t log = {0};
  mesh__xds_sink_t sink = {on_lds, on_rds, on_cds, on_eds, on_removed, &log};
  mesh__xds_ads_t *a = mesh__xds_ads_new(NULL, &sink);
  node_id = "";
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_LDS, "api"), MESH_OK);
  expect(a, LDS_T, "api", "", "", NULL, true);
  char *router = xv_any(ROUTER_T, "Router", "");
  char hcm[4096];
  snprintf(hcm, sizeof hcm, "rds { config_source { ads {} } route_config_name: \"api-routes\" } "
           "http_filters { name: \"router\" typed_config { %s } }", router);
  free(router);
  char *h = xv_any(HCM_T, "HttpConnectionManager", hcm);
  char lis[8192];
  snprintf(lis, sizeof lis, "Listener|name: \"api\" api_listener { api_listener { %s } }", h);
  free(h);
  const char *l1[] = {lis};
  mesh_status_t st;
  CU_ASSERT_EQUAL(respond(a, LDS_T, "l1", "n1", l1, 1, &st), MESH_OK);
  expect(a, LDS_T, "api", "l1", "n1", NULL, false);
  expect(a, RDS_T, "api-routes", "", "", NULL, false);
  const char *r1[] = {"RouteConfiguration|name: \"api-routes\" virtual_hosts { name: \"v\" "
                      "domains: \"*\" routes { match { prefix: \"/\" } route { weighted_clusters { "
                      "clusters { name: \"v1\" weight { value: 90 } } clusters { name: \"agg\" "
                      "weight { value: 10 } } } } } }"};
  CU_ASSERT_EQUAL(respond(a, RDS_T, "r1", "n2", r1, 1, &st), MESH_OK);
  expect(a, RDS_T, "api-routes", "r1", "n2", NULL, false);
  expect(a, CDS_T, "v1,agg", "", "", NULL, false);
  char *agg = xv_any(AGG_T, "AggregateClusterConfig", "clusters: \"east\" clusters: \"west\"");
  char aggc[4096];
  snprintf(aggc, sizeof aggc, "Cluster|name: \"agg\" cluster_type { name: "
           "\"envoy.clusters.aggregate\" typed_config { %s } }", agg);
  free(agg);
  const char *c1[] = {"Cluster|name: \"v1\" type: EDS", aggc};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "c1", "n3", c1, 2, &st), MESH_OK);
  /* the aggregate's children join the CDS subscription, v1 leads to EDS */
  expect(a, CDS_T, "v1,agg,east,west", "c1", "n3", NULL, false);
  expect(a, EDS_T, "v1", "", "", NULL, false);
  CU_ASSERT_PTR_NULL(next(a));
  /* the split moves to v1 only: agg and its children leave */
  const char *r2[] = {"RouteConfiguration|name: \"api-routes\" virtual_hosts { name: \"v\" "
                      "domains: \"*\" routes { match { prefix: \"/\" } route { cluster: \"v1\" } } }"};
  CU_ASSERT_EQUAL(respond(a, RDS_T, "r2", "n4", r2, 1, &st), MESH_OK);
  expect(a, RDS_T, "api-routes", "r2", "n4", NULL, false);
  expect(a, CDS_T, "v1", "c1", "n3", NULL, false);
  CU_ASSERT_EQUAL(log.lds, 1);
  CU_ASSERT_EQUAL(log.rds, 2);
  mesh__xds_ads_free(a);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_ads", NULL, NULL);
  CU_add_test(s, "mesh__xds_ads_cds_eds", test_mesh__xds_ads_cds_eds);
  CU_add_test(s, "mesh__xds_ads_partial", test_mesh__xds_ads_partial);
  CU_add_test(s, "mesh__xds_ads_chain", test_mesh__xds_ads_chain);
}

int main(void) { return th_run_suites("test_xds_ads", add); }
