/* SPDX-License-Identifier: Apache-2.0 */
/* The "xds" section and services with "discovery": {"type": "xds"}: config
 * checks with JSON paths, subscription at mesh_new, accepted EDS updates
 * published through discovery (mesh_endpoints_get sees them), NACKed ones
 * and outages changing nothing, deletions emptying the set, the admin
 * view "xds".  The responses are fed as the transport will feed them
 * (mesh__xds_feed, on the loop thread). */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "mesh/mesh.h"
#include "mesh/metrics.h"
#include "discovery/discovery.h"
#include "lb/lb.h"
#include "telemetry/telemetry.h"
#include "xds/proto/base.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds_vec.h"

#define CDS_T "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_T "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define BOOT "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", \"channel_creds\": " \
             "[{\"type\": \"insecure\"}]}], \"node\": {\"id\": \"n\"}}"
#define EP(a, p) "lb_endpoints { endpoint { address { socket_address { address: \"" a \
                 "\" port_value: " #p " } } } }"

static int feed(mesh_t *m, const char *url, const char *version, const char *nonce,
                const char *type, const char *res, mesh_status_t *st) {
  char text[16384];
  int o = snprintf(text, sizeof text, "version_info: \"%s\" nonce: \"%s\" type_url: \"%s\" ",
                   version, nonce, url);
  if (res) {
    char *any = xv_any(url, type, res);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    snprintf(text + o, sizeof text - (size_t)o, "resources { %s }", any);
    free(any);
  }
  uint8_t *b;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &n), 0);
  int rc = mesh__xds_feed(m, b, n, st);
  free(b);
  return rc;
}

static size_t endpoints(mesh_t *m, const char *svc, int *port0) {
  mesh_endpoints_t *e = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_endpoints_get(m, svc, &e, &st), MESH_OK);
  size_t n = mesh_endpoints_count(e);
  if (port0)
    *port0 = n ? mesh_endpoint_port(e, 0) : -1;
  mesh_endpoints_free(e);
  return n;
}

static void drain(mesh_t *m, const char *want_first_type) {
  uint8_t *b;
  size_t n;
  bool first = true;
  while (mesh__xds_next_request(m, &b, &n) == MESH_OK) {
    Meshxds__DiscoveryRequest *r = meshxds__discovery_request__unpack(NULL, n, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    if (first && want_first_type)
      CU_ASSERT_STRING_EQUAL(r->type_url, want_first_type);
    first = false;
    meshxds__discovery_request__free_unpacked(r, NULL);
    free(b);
  }
}

static void test_xds_part_publish(void) {
  const char *cfg = "{\"xds\": {\"bootstrap\": " BOOT "}, \"services\": {"
                    "\"web\": {\"discovery\": {\"type\": \"xds\"}}, "
                    "\"api\": {\"discovery\": {\"type\": \"xds\", \"cluster\": \"api-v1\"}}, "
                    "\"local\": {\"discovery\": {\"type\": \"static\", \"endpoints\": []}}}}";
  mesh_t *m;
  mesh_status_t st;
  int rc = mesh_new(cfg, &m, &st);
  if (rc)
    fprintf(stderr, "\nmesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  /* subscribed at mesh_new: one CDS request naming both clusters */
  uint8_t *b;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(mesh__xds_next_request(m, &b, &n), MESH_OK);
  Meshxds__DiscoveryRequest *r = meshxds__discovery_request__unpack(NULL, n, b);
  free(b);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->type_url, CDS_T);
  CU_ASSERT_EQUAL(r->n_resource_names, 2);
  CU_ASSERT_STRING_EQUAL(r->node->id, "n");
  meshxds__discovery_request__free_unpacked(r, NULL);
  CU_ASSERT_EQUAL(endpoints(m, "web", NULL), 0);
  CU_ASSERT_EQUAL(feed(m, CDS_T, "1", "a", "Cluster", "name: \"web\" type: EDS", &st), MESH_OK);
  drain(m, CDS_T);
  CU_ASSERT_EQUAL(feed(m, EDS_T, "1", "b", "ClusterLoadAssignment",
                       "cluster_name: \"web\" endpoints { " EP("127.0.0.1", 8001) " "
                       EP("127.0.0.2", 8002) " }", &st), MESH_OK);
  int p0;
  CU_ASSERT_EQUAL(endpoints(m, "web", &p0), 2);
  CU_ASSERT_EQUAL(p0, 8001);
  /* a NACK-worthy update: the last good set stays */
  CU_ASSERT_EQUAL(feed(m, EDS_T, "2", "c", "ClusterLoadAssignment",
                       "cluster_name: \"web\" endpoints { lb_endpoints { health_status: DEGRADED "
                       "endpoint { address { socket_address { address: \"127.0.0.9\" "
                       "port_value: 1 } } } } }", &st), MESH_ERR_CONFIG);
  CU_ASSERT_EQUAL(endpoints(m, "web", NULL), 2);
  /* the view says so */
  cJSON *v = mesh__view_render(m, "xds");
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
      cJSON_GetObjectItem(v, "types"), EDS_T), "resources"), "web");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(res, "status")->valuestring, "NACKED");
  CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetObjectItem(res, "error")->valuestring, "DEGRADED"));
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(res, "version")->valuestring, "1");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(v, "nacks")->valueint, 1);
  cJSON_Delete(v);
  /* and the metrics */
  static char text[1 << 17];
  CU_ASSERT(mesh_metrics_text(m, text, sizeof text, NULL) > 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_xds_nacks_total 1"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_xds_updates_total 2"));
  /* an update moves the set; a deleted cluster empties it */
  CU_ASSERT_EQUAL(feed(m, EDS_T, "3", "d", "ClusterLoadAssignment",
                       "cluster_name: \"web\" endpoints { " EP("127.0.0.3", 8003) " }", &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(endpoints(m, "web", &p0), 1);
  CU_ASSERT_EQUAL(p0, 8003);
  CU_ASSERT_EQUAL(feed(m, CDS_T, "2", "e", "Cluster", NULL, &st), MESH_OK);
  CU_ASSERT_EQUAL(endpoints(m, "web", NULL), 0);
  mesh_free(m);
}

/* picks of 200 calls: how many went to priority 0 (-1 if any pick failed
 * or went elsewhere than priorities 0 and 1) */
static int picks_p0(mesh_t *m, const char *name) {
  mesh__service_t *svc = mesh__service_find(m, name);
  mesh__snapshot_t *snap = mesh__snap_acquire(mesh__disc_snapref(svc));
  int p0 = 0;
  for (int i = 0; i < 200; i++) {
    mesh__host_t *h = NULL;
    if (mesh__lb_pick(svc, snap, NULL, &h) != MESH_OK || h->priority > 1)
      p0 = -1000;
    else if (h->priority == 0)
      p0++;
  }
  p0 = p0 < 0 ? -1 : p0;
  mesh__snap_release(snap);
  return p0;
}

/* Multi-cluster as EDS expresses it: cluster east's endpoints at priority
 * 0, west's at priority 1.  east unhealthy -> every pick fails over to
 * west; east back -> back to east.  Nothing is configured but the type. */
static void test_xds_part_failover(void) {
  mesh_t *m;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"xds\": {\"bootstrap\": " BOOT "}, \"services\": "
                                 "{\"web\": {\"discovery\": {\"type\": \"xds\"}}}}", &m, &st),
                        MESH_OK);
  CU_ASSERT_EQUAL(feed(m, CDS_T, "1", "a", "Cluster", "name: \"web\" type: EDS", &st), MESH_OK);
#define TWO(h)                                                                  \
  "cluster_name: \"web\" endpoints { locality { zone: \"east\" } "                \
  "lb_endpoints { health_status: " h " endpoint { address { socket_address { "     \
  "address: \"127.0.0.1\" port_value: 8101 } } } } "                              \
  "lb_endpoints { health_status: " h " endpoint { address { socket_address { "     \
  "address: \"127.0.0.1\" port_value: 8102 } } } } } "                            \
  "endpoints { priority: 1 locality { zone: \"west\" } " EP("127.0.0.2", 8201) " }"
  CU_ASSERT_EQUAL(feed(m, EDS_T, "1", "b", "ClusterLoadAssignment", TWO("HEALTHY"), &st), MESH_OK);
  CU_ASSERT_EQUAL(endpoints(m, "web", NULL), 3);
  CU_ASSERT_EQUAL(picks_p0(m, "web"), 200);
  CU_ASSERT_EQUAL(feed(m, EDS_T, "2", "c", "ClusterLoadAssignment", TWO("UNHEALTHY"), &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(picks_p0(m, "web"), 0);
  CU_ASSERT_EQUAL(feed(m, EDS_T, "3", "d", "ClusterLoadAssignment", TWO("HEALTHY"), &st), MESH_OK);
  CU_ASSERT_EQUAL(picks_p0(m, "web"), 200);
#undef TWO
  mesh_free(m);
}

static void collect(const char *msg, void *user) {
  char *buf = user;
  if (!*buf)
    snprintf(buf, 512, "%s", msg);
}

static void test_xds_part_config(void) {
  static const struct { const char *json, *msg; } vec[] = {
      {"{\"services\": {\"w\": {\"discovery\": {\"type\": \"xds\"}}}}",
       "xds.bootstrap: no bootstrap"},
      {"{\"xds\": {\"bootstrap\": {}}}", "xds.bootstrap.xds_servers: required"},
      {"{\"xds\": {\"bootstrap\": \"/nonexistent/b.json\"}}", "cannot open /nonexistent/b.json"},
      {"{\"xds\": {\"bootstrp\": 1}}", "xds.bootstrp: unknown key"},
      {"{\"xds\": {\"bootstrap\": " BOOT "}, \"services\": {\"w\": {\"discovery\": "
       "{\"type\": \"xds\", \"cluster\": \"\"}}}}", "services.w.discovery.cluster: must not be empty"},
      {"{\"xds\": {\"bootstrap\": " BOOT "}, \"services\": {\"w\": {\"discovery\": "
       "{\"type\": \"xds\", \"name\": \"x\"}}}}", "services.w.discovery.name: unknown key"},
  };
  unsetenv("GRPC_XDS_BOOTSTRAP");
  unsetenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  for (size_t i = 0; i < sizeof vec / sizeof *vec; i++) {
    char err[512] = "";
    CU_ASSERT(mesh_config_check(vec[i].json, collect, err) > 0);
    if (!strstr(err, vec[i].msg))
      fprintf(stderr, "\nconfig %zu: \"%s\" (want \"%s\")\n", i, err, vec[i].msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, vec[i].msg));
  }
  /* the environment's bootstrap serves when the section is absent */
  setenv("GRPC_XDS_BOOTSTRAP_CONFIG", BOOT, 1);
  char err[512] = "";
  CU_ASSERT_EQUAL(mesh_config_check("{\"services\": {\"w\": {\"discovery\": {\"type\": "
                                    "\"xds\"}}}}", collect, err), 0);
  mesh_t *m;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new("{\"services\": {\"w\": {\"discovery\": {\"type\": \"xds\"}}}}",
                           &m, &st), MESH_OK);
  unsetenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  drain(m, CDS_T);
  mesh_free(m);
  /* no xds anywhere: nothing is started */
  CU_ASSERT_EQUAL(mesh_new("{}", &m, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__xds_feed(m, (const uint8_t *)"", 0, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_PTR_NULL(mesh__view_render(m, "xds"));
  mesh_free(m);
}

static void test_mesh__xds_target(void) {
  static const struct { const char *uri, *want; } v[] = {
      {"127.0.0.1:15010", "127.0.0.1:15010"},
      {"dns:///istiod.istio-system.svc:15012", "istiod.istio-system.svc:15012"},
      {"unix:///etc/istio/proxy/XDS", "unix:/etc/istio/proxy/XDS"},
      {"unix:/run/xds.sock", "unix:/run/xds.sock"},
      {"[::1]:15010", "[::1]:15010"},
      {"unix://host/x", NULL},
      {"unix:relative", NULL},
  };
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    char out[256];
    int rc = mesh__xds_target(v[i].uri, out, sizeof out);
    CU_ASSERT_EQUAL(rc, v[i].want ? MESH_OK : MESH_ERR_INVALID_ARG);
    if (v[i].want && rc == MESH_OK)
      CU_ASSERT_STRING_EQUAL(out, v[i].want);
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_part", NULL, NULL);
  CU_add_test(s, "xds_part_publish", test_xds_part_publish);
  CU_add_test(s, "xds_part_config", test_xds_part_config);
  CU_add_test(s, "xds_part_failover", test_xds_part_failover);
  CU_add_test(s, "mesh__xds_target", test_mesh__xds_target);
}

int main(void) { return th_run_suites("test_xds_part", add); }
