/* SPDX-License-Identifier: Apache-2.0 */
/* xDS decoders (libmesh/xds): table-driven resource vectors, valid and
 * NACK-worthy, in protobuf text format (tests/xds_vec.c encodes them with
 * protoc against libmesh/xds/proto).  Each NACK vector names the message
 * the control plane must be told. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "xds/xds.h"
#include "xds_vec.h"

typedef struct vec {
  const char *name;
  const char *text;
  int rc;
  const char *msg; /* substring of the NACK message */
} vec_t;

#define EP(addr, port) \
  "lb_endpoints { endpoint { address { socket_address { address: \"" addr \
  "\" port_value: " #port " } } } }"

static const vec_t eds_vecs[] = {
    {"two priorities", "cluster_name: \"web\" endpoints { locality { region: \"r1\" zone: \"a\" } "
     EP("127.0.0.1", 80) " load_balancing_weight { value: 3 } } endpoints { priority: 1 "
     "locality { region: \"r2\" } " EP("127.0.0.2", 81) " load_balancing_weight { value: 1 } }",
     MESH_OK, NULL},
    {"no endpoints", "cluster_name: \"web\"", MESH_OK, NULL},
    {"empty name", "endpoints { " EP("127.0.0.1", 80) " }", MESH_ERR_CONFIG, "cluster_name: empty"},
    {"port 0", "cluster_name: \"w\" endpoints { " EP("127.0.0.1", 0) " }", MESH_ERR_CONFIG,
     "endpoints[0].lb_endpoints[0]: socket_address.port_value 0: out of 1..65535"},
    {"port 70000", "cluster_name: \"w\" endpoints { " EP("127.0.0.1", 70000) " }",
     MESH_ERR_CONFIG, "port_value 70000"},
    {"degraded", "cluster_name: \"w\" endpoints { lb_endpoints { health_status: DEGRADED "
     "endpoint { address { socket_address { address: \"h\" port_value: 1 } } } } }",
     MESH_ERR_UNSUPPORTED, "health_status DEGRADED"},
    {"priority gap", "cluster_name: \"w\" endpoints { " EP("127.0.0.1", 80) " } endpoints { "
     "priority: 2 locality { zone: \"z\" } " EP("127.0.0.2", 80) " }", MESH_ERR_CONFIG,
     "priority 1 missing"},
    {"locality twice", "cluster_name: \"w\" endpoints { locality { zone: \"z\" } " EP("127.0.0.1", 80)
     " } endpoints { locality { zone: \"z\" } " EP("127.0.0.2", 80) " }", MESH_ERR_CONFIG,
     "locality /z/ repeated in priority 0"},
    {"drop overload", "cluster_name: \"w\" policy { drop_overloads { category: \"lb\" "
     "drop_percentage { numerator: 5 } } }", MESH_ERR_UNSUPPORTED,
     "policy.drop_overloads[0] (lb): libmesh does not drop calls"},
    {"drop 0%", "cluster_name: \"w\" policy { drop_overloads { category: \"lb\" } }",
     MESH_OK, NULL},
    {"pipe", "cluster_name: \"w\" endpoints { lb_endpoints { endpoint { address { pipe "
     "{ path: \"/x\" } } } } }", MESH_ERR_UNSUPPORTED, "only socket_address"},
    {"weight 0", "cluster_name: \"w\" endpoints { lb_endpoints { load_balancing_weight {} "
     "endpoint { address { socket_address { address: \"h\" port_value: 1 } } } } }",
     MESH_ERR_CONFIG, "load_balancing_weight: must be >= 1"},
    {"named port", "cluster_name: \"w\" endpoints { lb_endpoints { endpoint { address { "
     "socket_address { address: \"h\" named_port: \"http\" } } } } }", MESH_ERR_UNSUPPORTED,
     "named_port"},
    {"label number", "cluster_name: \"w\" endpoints { lb_endpoints { metadata { filter_metadata "
     "{ key: \"envoy.lb\" value { fields { key: \"v\" value { number_value: 1 } } } } } "
     "endpoint { address { socket_address { address: \"h\" port_value: 1 } } } } }",
     MESH_ERR_UNSUPPORTED, "metadata envoy.lb.v: only string values"},
    {"overprovisioning 0", "cluster_name: \"w\" policy { overprovisioning_factor {} }",
     MESH_ERR_CONFIG, "overprovisioning_factor 0"},
    {"stale after", "cluster_name: \"w\" policy { endpoint_stale_after { seconds: 1 } }",
     MESH_ERR_UNSUPPORTED, "endpoint_stale_after"},
};

/* XDS_WRITE_CORPUS=DIR: also write each vector as a fuzz seed,
 * DIR/<type>-<index> (how tests/fuzz/corpus/xds_* were made). */
static void save_seed(const char *type, size_t i, const uint8_t *b, size_t n) {
  const char *dir = getenv("XDS_WRITE_CORPUS");
  if (!dir)
    return;
  char path[512];
  snprintf(path, sizeof path, "%s/%s-%02zu", dir, type, i);
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(b, 1, n, f);
    fclose(f);
  }
}

static void run_vecs(const char *type, const vec_t *v, size_t n,
                     int (*dec)(const uint8_t *, size_t, mesh_status_t *)) {
  for (size_t i = 0; i < n; i++) {
    uint8_t *b;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(xv_encode(type, v[i].text, &b, &len), 0);
    save_seed(type, i, b, len);
    mesh_status_t st = {0};
    int rc = dec(b, len, &st);
    if (rc != v[i].rc || (v[i].msg && !strstr(st.message, v[i].msg)))
      fprintf(stderr, "\n%s vector \"%s\": rc %d (want %d) message \"%s\" "
              "(want \"%s\")\n", type, v[i].name, rc, v[i].rc, st.message,
              v[i].msg ? v[i].msg : "");
    CU_ASSERT_EQUAL(rc, v[i].rc);
    if (v[i].msg)
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, v[i].msg));
    free(b);
  }
}

static int eds_dec(const uint8_t *b, size_t n, mesh_status_t *st) {
  mesh__xds_eds_t *e;
  int rc = mesh__xds_decode_eds(b, n, &e, st);
  mesh__xds_eds_free(e);
  return rc;
}

static void test_mesh__xds_decode_eds(void) {
  run_vecs("ClusterLoadAssignment", eds_vecs, sizeof eds_vecs / sizeof *eds_vecs,
           eds_dec);
  /* the model of the first vector */
  uint8_t *b;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(xv_encode("ClusterLoadAssignment", eds_vecs[0].text, &b, &n), 0);
  mesh__xds_eds_t *e;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh__xds_decode_eds(b, n, &e, &st), MESH_OK);
  CU_ASSERT_STRING_EQUAL(e->name, "web");
  CU_ASSERT_EQUAL_FATAL(e->n, 2);
  CU_ASSERT_STRING_EQUAL(e->eps[0].address, "127.0.0.1");
  CU_ASSERT_EQUAL(e->eps[0].port, 80);
  CU_ASSERT_EQUAL(e->eps[0].priority, 0);
  CU_ASSERT_STRING_EQUAL(e->eps[0].region, "r1");
  CU_ASSERT_STRING_EQUAL(e->eps[0].zone, "a");
  CU_ASSERT_PTR_NULL(e->eps[0].subzone);
  CU_ASSERT_EQUAL(e->eps[1].priority, 1);
  CU_ASSERT_EQUAL(e->npriorities, 2);
  CU_ASSERT_EQUAL(e->overprovisioning, 140);
  CU_ASSERT_PTR_NOT_NULL_FATAL(e->locality_weights);
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(e->locality_weights, "r1/a/")->valueint, 3);
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(e->locality_weights, "r2//")->valueint, 1);
  mesh__xds_eds_free(e);
  free(b);
  /* health and labels */
  const char *t = "cluster_name: \"w\" endpoints { lb_endpoints { health_status: DRAINING "
      "load_balancing_weight { value: 7 } metadata { filter_metadata { key: \"envoy.lb\" value "
      "{ fields { key: \"version\" value { string_value: \"v2\" } } } } } endpoint { hostname: "
      "\"b.example\" address { socket_address { address: \"::1\" port_value: 9 } } } } }";
  CU_ASSERT_EQUAL_FATAL(xv_encode("ClusterLoadAssignment", t, &b, &n), 0);
  CU_ASSERT_EQUAL_FATAL(mesh__xds_decode_eds(b, n, &e, &st), MESH_OK);
  CU_ASSERT_EQUAL(e->eps[0].health, MESH__HEALTH_DRAINING);
  CU_ASSERT_EQUAL(e->eps[0].weight, 7);
  CU_ASSERT_STRING_EQUAL(e->eps[0].hostname, "b.example");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(e->eps[0].labels, "version")->valuestring, "v2");
  CU_ASSERT_PTR_NULL(e->locality_weights);
  /* and they build a snapshot (the path discovery publishes through) */
  mesh__snapshot_t *s = NULL;
  CU_ASSERT_EQUAL(mesh__snap_build(NULL, e->eps, e->n, &s), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(s->n, 1);
  CU_ASSERT_STRING_EQUAL(mesh__host_label(s->hosts[0], "version"), "v2");
  mesh__snap_release(s);
  mesh__xds_eds_free(e);
  free(b);
  /* garbage */
  static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
  CU_ASSERT_EQUAL(mesh__xds_decode_eds(junk, sizeof junk, &e, &st), MESH_ERR_PARSE);
  CU_ASSERT_PTR_NULL(e);
}

#define AGG_URL "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"
#define UTLS_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

static const vec_t cds_vecs[] = {
    {"eds rr", "name: \"web\" type: EDS eds_cluster_config { eds_config { ads {} } "
     "service_name: \"web-eds\" }", MESH_OK, NULL},
    {"static", "name: \"web\" type: STATIC", MESH_ERR_UNSUPPORTED,
     "cluster \"web\": type STATIC: only EDS, LOGICAL_DNS and aggregate"},
    {"logical dns", "name: \"d\" type: LOGICAL_DNS", MESH_ERR_CONFIG,
     "LOGICAL_DNS: load_assignment is required"}, /* more: test_xds_ldns */
    {"empty name", "type: EDS", MESH_ERR_CONFIG, "name: empty"},
    {"eds by path", "name: \"w\" type: EDS eds_cluster_config { eds_config { path: \"/x\" } }",
     MESH_ERR_UNSUPPORTED, "eds_config: only ads and self"},
    {"maglev not prime", "name: \"w\" type: EDS lb_policy: MAGLEV maglev_lb_config { "
     "table_size { value: 4 } }", MESH_ERR_CONFIG, "cluster \"w\": lb.maglev.table_size"},
    {"ring hash murmur", "name: \"w\" type: EDS lb_policy: RING_HASH ring_hash_lb_config { "
     "hash_function: MURMUR_HASH_2 }", MESH_ERR_UNSUPPORTED, "only XX_HASH"},
    {"ring min > max", "name: \"w\" type: EDS lb_policy: RING_HASH ring_hash_lb_config { "
     "minimum_ring_size { value: 100 } maximum_ring_size { value: 10 } }", MESH_ERR_CONFIG,
     "lb.ring_hash"},
    {"cluster provided", "name: \"w\" type: EDS lb_policy: CLUSTER_PROVIDED",
     MESH_ERR_UNSUPPORTED, "lb_policy 6: not supported"},
    {"custom lb", "name: \"w\" type: EDS load_balancing_policy {}", MESH_ERR_UNSUPPORTED,
     "load_balancing_policy"},
    {"lrs", "name: \"w\" type: EDS lrs_server { self {} }", MESH_ERR_UNSUPPORTED, "lrs_server"},
    {"health checks", "name: \"w\" type: EDS health_checks: \"\"", MESH_ERR_UNSUPPORTED,
     "health_checks"},
    {"breakers high", "name: \"w\" type: EDS circuit_breakers { thresholds { priority: HIGH } }",
     MESH_ERR_UNSUPPORTED, "priority HIGH"},
    {"breakers twice", "name: \"w\" type: EDS circuit_breakers { thresholds {} thresholds {} }",
     MESH_ERR_CONFIG, "second DEFAULT"},
    {"split local origin", "name: \"w\" type: EDS outlier_detection { "
     "split_external_local_origin_errors: true }", MESH_ERR_UNSUPPORTED,
     "split_external_local_origin_errors"},
    {"outlier pct 200", "name: \"w\" type: EDS outlier_detection { max_ejection_percent "
     "{ value: 200 } }", MESH_ERR_CONFIG, "outlier_detection.max_ejection_percent"},
    {"zone aware", "name: \"w\" type: EDS common_lb_config { zone_aware_lb_config {} }",
     MESH_ERR_UNSUPPORTED, "zone_aware_lb_config"},
    {"least request bias", "name: \"w\" type: EDS lb_policy: LEAST_REQUEST "
     "least_request_lb_config { active_request_bias {} }", MESH_ERR_UNSUPPORTED,
     "active_request_bias"},
    {"inline endpoints", "name: \"w\" type: EDS load_assignment {}", MESH_ERR_UNSUPPORTED,
     "load_assignment"},
    {"negative timeout", "name: \"w\" type: EDS connect_timeout { seconds: -1 }",
     MESH_ERR_CONFIG, "connect_timeout"},
    {"other transport", "name: \"w\" type: EDS transport_socket { name: \"raw\" }",
     MESH_ERR_UNSUPPORTED, "only UpstreamTlsContext"},
};

static int cds_dec(const uint8_t *b, size_t n, mesh_status_t *st) {
  mesh__xds_cds_t *c;
  int rc = mesh__xds_decode_cds(b, n, &c, st);
  mesh__xds_cds_free(c);
  return rc;
}

static mesh__xds_cds_t *cds_of(const char *text) {
  uint8_t *b;
  size_t n;
  mesh__xds_cds_t *c = NULL;
  mesh_status_t st = {0};
  if (xv_encode("Cluster", text, &b, &n) == 0) {
    if (mesh__xds_decode_cds(b, n, &c, &st))
      fprintf(stderr, "\ncds: %s\n", st.message);
    free(b);
  }
  return c;
}

static const char *js(const cJSON *o, const char *a, const char *b) {
  const cJSON *x = cJSON_GetObjectItem(cJSON_GetObjectItem(o, a), b);
  return x && cJSON_IsString(x) ? x->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *a, const char *b) {
  const cJSON *x = cJSON_GetObjectItem(cJSON_GetObjectItem(o, a), b);
  return x ? x->valuedouble : -1;
}

static void test_mesh__xds_decode_cds(void) {
  run_vecs("Cluster", cds_vecs, sizeof cds_vecs / sizeof *cds_vecs, cds_dec);
  mesh__xds_cds_t *c = cds_of(cds_vecs[0].text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(c->kind, MESH__XDS_CLUSTER_EDS);
  CU_ASSERT_STRING_EQUAL(c->eds_name, "web-eds");
  CU_ASSERT_STRING_EQUAL(js(c->svc, "lb", "policy"), "round_robin");
  mesh__xds_cds_free(c);
  /* EDS name defaults to the cluster's */
  c = cds_of("name: \"api\" type: EDS lb_policy: LEAST_REQUEST least_request_lb_config "
             "{ choice_count { value: 3 } } common_lb_config { locality_weighted_lb_config {} "
             "healthy_panic_threshold { value: 30 } }");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_STRING_EQUAL(c->eds_name, "api");
  CU_ASSERT_STRING_EQUAL(js(c->svc, "lb", "policy"), "least_request");
  CU_ASSERT_EQUAL(jnum(c->svc, "lb", "choice_count"), 3);
  CU_ASSERT_EQUAL(jnum(c->svc, "lb", "panic_threshold"), 30);
  CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(c->svc, "lb"),
                                             "locality_weighted")));
  mesh__xds_cds_free(c);
  /* outlier, breakers (2^32-1 = unlimited saturates), connect timeout */
  c = cds_of("name: \"o\" type: EDS connect_timeout { seconds: 1 nanos: 500000000 } "
             "outlier_detection { consecutive_5xx { value: 3 } interval { seconds: 2 } "
             "base_ejection_time { seconds: 30 } max_ejection_percent { value: 50 } "
             "successful_active_health_check_uneject_host { value: false } } "
             "circuit_breakers { thresholds { max_connections { value: 4294967295 } "
             "max_requests { value: 100 } } }");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(jnum(c->svc, "outlier_detection", "consecutive_5xx"), 3);
  CU_ASSERT_EQUAL(jnum(c->svc, "outlier_detection", "interval_ms"), 2000);
  CU_ASSERT_EQUAL(jnum(c->svc, "outlier_detection", "base_ejection_time_ms"), 30000);
  CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(c->svc, "outlier_detection"),
                                              "successful_active_health_check_uneject_host")));
  CU_ASSERT_EQUAL(jnum(c->svc, "circuit_breakers", "max_connections"), 2147483647.0);
  CU_ASSERT_EQUAL(jnum(c->svc, "circuit_breakers", "max_requests"), 100);
  CU_ASSERT_EQUAL(jnum(c->svc, "timeouts", "connect_ms"), 1500);
  mesh__xds_cds_free(c);
  /* ring hash, maglev */
  c = cds_of("name: \"r\" type: EDS lb_policy: RING_HASH ring_hash_lb_config { "
             "minimum_ring_size { value: 2048 } }");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(jnum(cJSON_GetObjectItem(c->svc, "lb"), "ring_hash", "minimum_ring_size"), 2048);
  mesh__xds_cds_free(c);
  c = cds_of("name: \"m\" type: EDS lb_policy: MAGLEV");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_STRING_EQUAL(js(c->svc, "lb", "policy"), "maglev");
  mesh__xds_cds_free(c);
  /* aggregate: children in priority order */
  char *any = xv_any(AGG_URL, "AggregateClusterConfig",
                     "clusters: \"east\" clusters: \"west\"");
  CU_ASSERT_PTR_NOT_NULL_FATAL(any);
  char text[4096];
  snprintf(text, sizeof text, "name: \"agg\" cluster_type { name: "
           "\"envoy.clusters.aggregate\" typed_config { %s } }", any);
  free(any);
  c = cds_of(text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(c->kind, MESH__XDS_CLUSTER_AGGREGATE);
  CU_ASSERT_EQUAL_FATAL(c->nchildren, 2);
  CU_ASSERT_STRING_EQUAL(c->children[0], "east");
  CU_ASSERT_STRING_EQUAL(c->children[1], "west");
  mesh__xds_cds_free(c);
  /* A29, both forms Istio emits */
  static const char *const tls[] = {
      "common_tls_context { tls_certificate_provider_instance { instance_name: \"default\" "
      "certificate_name: \"default\" } combined_validation_context { "
      "default_validation_context { ca_certificate_provider_instance { instance_name: "
      "\"ca\" } } } }",
      "common_tls_context { tls_certificate_certificate_provider_instance { instance_name: "
      "\"default\" } combined_validation_context { "
      "validation_context_certificate_provider_instance { instance_name: \"ca\" } } }",
  };
  for (size_t i = 0; i < 2; i++) {
    any = xv_any(UTLS_URL, "UpstreamTlsContext", tls[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    snprintf(text, sizeof text, "name: \"t\" type: EDS transport_socket { name: "
             "\"envoy.transport_sockets.tls\" typed_config { %s } }", any);
    free(any);
    c = cds_of(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->tls_cert_instance, "default");
    CU_ASSERT_STRING_EQUAL(c->tls_ca_instance, "ca");
    mesh__xds_cds_free(c);
  }
  /* SDS is refused */
  any = xv_any(UTLS_URL, "UpstreamTlsContext",
               "common_tls_context { tls_certificate_sds_secret_configs: \"x\" }");
  snprintf(text, sizeof text, "name: \"t\" type: EDS transport_socket { typed_config { %s } }",
           any);
  free(any);
  uint8_t *b;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(xv_encode("Cluster", text, &b, &n), 0);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__xds_decode_cds(b, n, &c, &st), MESH_ERR_UNSUPPORTED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "SDS"));
  free(b);
}

#define VH(routes) "name: \"rc\" virtual_hosts { name: \"vh\" domains: \"*\" " routes " }"
#define RT(match, action) "routes { match { " match " } route { " action " } }"

static const vec_t rds_vecs[] = {
    {"split", VH(RT("prefix: \"/\"", "weighted_clusters { clusters { name: \"v1\" weight { "
     "value: 90 } } clusters { name: \"v2\" weight { value: 10 } } }")), MESH_OK, NULL},
    {"empty name", "virtual_hosts { domains: \"*\" }", MESH_ERR_CONFIG, "name: empty"},
    {"no domains", "name: \"rc\" virtual_hosts { name: \"vh\" }", MESH_ERR_CONFIG,
     "virtual_hosts[0]: no domains"},
    {"total mismatch", VH(RT("prefix: \"/\"", "weighted_clusters { clusters { name: \"a\" "
     "weight { value: 1 } } total_weight { value: 100 } }")), MESH_ERR_CONFIG,
     "total_weight 100 != sum of weights 1"},
    {"zero weights", VH(RT("prefix: \"/\"", "weighted_clusters { clusters { name: \"a\" } }")),
     MESH_ERR_CONFIG, "weights sum to 0"},
    {"redirect", VH("routes { match { prefix: \"/\" } redirect: \"\" }"), MESH_ERR_UNSUPPORTED,
     "virtual_hosts[0].routes[0]: action: only route"},
    {"cluster header", VH(RT("prefix: \"/\"", "cluster_header: \"x\"")), MESH_ERR_UNSUPPORTED,
     "only cluster and weighted_clusters"},
    {"bad retry_on", VH(RT("prefix: \"/\"", "cluster: \"a\" retry_policy { retry_on: "
     "\"5xx,envoy-ratelimited\" }")), MESH_ERR_UNSUPPORTED,
     "retry_on: \"envoy-ratelimited\" is not supported"},
    {"istio retry", VH(RT("prefix: \"/\"", "cluster: \"a\" retry_policy { retry_on: "
     "\"connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes\" "
     "num_retries { value: 2 } }")), MESH_OK, NULL},
    {"cookie hash", VH(RT("prefix: \"/\"", "cluster: \"a\" hash_policy { cookie: \"\" }")),
     MESH_ERR_UNSUPPORTED, "hash_policy[0]"},
    {"bad regex", VH(RT("safe_regex { regex: \"(\" }", "cluster: \"a\"")), MESH_ERR_CONFIG,
     "does not compile"},
    {"query params", VH(RT("prefix: \"/\" query_parameters: \"\"", "cluster: \"a\"")),
     MESH_ERR_UNSUPPORTED, "query_parameters"},
    {"runtime key", VH(RT("prefix: \"/\" runtime_fraction { runtime_key: \"k\" }",
     "cluster: \"a\"")), MESH_ERR_UNSUPPORTED, "libmesh has no runtime"},
    {"range header", VH(RT("prefix: \"/\" headers { name: \"x\" range_match: \"\" }",
     "cluster: \"a\"")), MESH_ERR_UNSUPPORTED, "range_match"},
    {"rewrite", VH(RT("prefix: \"/\"", "cluster: \"a\" prefix_rewrite: \"/v2\"")),
     MESH_ERR_UNSUPPORTED, "prefix_rewrite"},
    {"regex rewrite", VH(RT("prefix: \"/\"", "cluster: \"a\" regex_rewrite {}")),
     MESH_ERR_UNSUPPORTED, "route.regex_rewrite"},
    {"metadata match", VH(RT("prefix: \"/\"", "cluster: \"a\" metadata_match {}")),
     MESH_ERR_UNSUPPORTED, "route.metadata_match"},
    {"split metadata match", VH(RT("prefix: \"/\"", "weighted_clusters { clusters { name: "
     "\"a\" weight { value: 1 } metadata_match {} } }")), MESH_ERR_UNSUPPORTED,
     "weighted_clusters[0].metadata_match"},
    {"other per-filter", VH("routes { match { prefix: \"/\" } route { cluster: \"a\" } "
     "typed_per_filter_config { key: \"envoy.filters.http.rbac\" value {} } }"),
     MESH_ERR_UNSUPPORTED, "typed_per_filter_config[envoy.filters.http.rbac]"},
};

static int rds_dec(const uint8_t *b, size_t n, mesh_status_t *st) {
  cJSON *d;
  int rc = mesh__xds_decode_rds(b, n, &d, st);
  cJSON_Delete(d);
  return rc;
}

static cJSON *rds_of(const char *text) {
  uint8_t *b;
  size_t n;
  cJSON *d = NULL;
  mesh_status_t st = {0};
  if (xv_encode("RouteConfiguration", text, &b, &n) == 0) {
    if (mesh__xds_decode_rds(b, n, &d, &st))
      fprintf(stderr, "\nrds: %s\n", st.message);
    free(b);
  }
  return d;
}

static cJSON *first_route(cJSON *d) {
  cJSON *vh = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "virtual_hosts"), 0);
  return cJSON_GetArrayItem(cJSON_GetObjectItem(vh, "routes"), 0);
}

#define FAULT_T "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

static void test_mesh__xds_decode_rds(void) {
  run_vecs("RouteConfiguration", rds_vecs, sizeof rds_vecs / sizeof *rds_vecs, rds_dec);
  cJSON *d = rds_of(rds_vecs[0].text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  cJSON *r = first_route(d);
  CU_ASSERT_STRING_EQUAL(js(r, "match", "prefix"), "/");
  cJSON *cl = cJSON_GetObjectItem(r, "clusters");
  CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(cl), 2);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetArrayItem(cl, 0), "name")->valuestring, "v1");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(cJSON_GetArrayItem(cl, 0), "weight")->valueint, 90);
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(cJSON_GetArrayItem(cl, 1), "weight")->valueint, 10);
  cJSON_Delete(d);
  /* matchers, timeout (max_stream_duration wins, A17), retry, hash policy */
  d = rds_of(VH("routes { match { path: \"/pkg.Svc/M\" case_sensitive { value: false } "
                "headers { name: \"x-canary\" exact_match: \"1\" invert_match: true } "
                "runtime_fraction { default_value { numerator: 25 } } } route { cluster: \"a\" "
                "timeout { seconds: 9 } max_stream_duration { max_stream_duration { seconds: 2 } } "
                "retry_policy { retry_on: \"5xx,unavailable\" num_retries { value: 3 } "
                "per_try_timeout { nanos: 100000000 } retry_back_off { base_interval { nanos: "
                "50000000 } } } hash_policy { header { header_name: \"x-user\" } terminal: true } "
                "hash_policy { filter_state { key: \"io.grpc.channel_id\" } } } }"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  r = first_route(d);
  CU_ASSERT_STRING_EQUAL(js(r, "match", "path"), "/pkg.Svc/M");
  CU_ASSERT_EQUAL(jnum(r, "match", "fraction_ppm"), 250000);
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(r, "timeout_ms")->valueint, 2000);
  CU_ASSERT_EQUAL(jnum(r, "retry", "num_retries"), 3);
  CU_ASSERT_EQUAL(jnum(r, "retry", "per_try_ms"), 100);
  CU_ASSERT_EQUAL(jnum(r, "retry", "base_interval_ms"), 50);
  cJSON *retry = cJSON_GetObjectItem(r, "retry");
  CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(retry, "retry_on"), 0)->valuestring, "5xx");
  CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(retry, "grpc_retry_on"), 0)->valuestring,
                         "unavailable");
  cJSON *hp = cJSON_GetObjectItem(r, "hash_policy");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetArrayItem(hp, 0), "header")->valuestring, "x-user");
  CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(hp, 1), "channel_id")));
  cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "match"), "headers"), 0);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(h, "exact")->valuestring, "1");
  CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(h, "invert")));
  cJSON_Delete(d);
  /* per-route fault (A33) */
  char *any = xv_any(FAULT_T, "HTTPFault", "delay { fixed_delay { seconds: 1 } percentage { "
                     "numerator: 50 } } abort { grpc_status: 14 percentage { numerator: 10 "
                     "denominator: TEN_THOUSAND } }");
  CU_ASSERT_PTR_NOT_NULL_FATAL(any);
  char text[4096];
  snprintf(text, sizeof text, VH("routes { match { prefix: \"/\" } route { cluster: \"a\" } "
           "typed_per_filter_config { key: \"envoy.filters.http.fault\" value { %s } } }"), any);
  free(any);
  d = rds_of(text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  r = first_route(d);
  CU_ASSERT_EQUAL(jnum(r, "fault", "delay_ms"), 1000);
  CU_ASSERT_EQUAL(jnum(r, "fault", "delay_ppm"), 500000);
  CU_ASSERT_EQUAL(jnum(r, "fault", "abort_grpc"), 14);
  CU_ASSERT_EQUAL(jnum(r, "fault", "abort_ppm"), 1000);
  cJSON_Delete(d);
  /* a fault libmesh cannot inject is refused, not dropped */
  any = xv_any(FAULT_T, "HTTPFault", "response_rate_limit {}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(any);
  snprintf(text, sizeof text, VH("routes { match { prefix: \"/\" } route { cluster: \"a\" } "
           "typed_per_filter_config { key: \"envoy.filters.http.fault\" value { %s } } }"), any);
  free(any);
  uint8_t *b;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(xv_encode("RouteConfiguration", text, &b, &n), 0);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__xds_decode_rds(b, n, &d, &st), MESH_ERR_UNSUPPORTED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "response_rate_limit"));
  free(b);
}

#define HCM_T "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_T "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
#define RBAC_T "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
#define DTLS_T "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

/* A Listener around an HCM whose body is hcm (text); server: a filter
 * chain instead of an api_listener, with extra chain text. */
static int lds_of(const char *hcm, bool server, const char *chain,
                  mesh__xds_lds_t **out, mesh_status_t *st) {
  char *router = xv_any(ROUTER_T, "Router", "");
  char hbuf[8192];
  snprintf(hbuf, sizeof hbuf, "%s http_filters { name: \"router\" typed_config { %s } }",
           hcm, router);
  free(router);
  char *h = xv_any(HCM_T, "HttpConnectionManager", hbuf);
  char text[16384];
  if (server)
    snprintf(text, sizeof text, "name: \"in\" address { socket_address { address: \"0.0.0.0\" "
             "port_value: 8080 } } filter_chains { filters { name: \"hcm\" typed_config { %s } "
             "} %s }", h, chain ? chain : "");
  else
    snprintf(text, sizeof text, "name: \"web\" api_listener { api_listener { %s } }", h);
  free(h);
  uint8_t *b;
  size_t n;
  *out = NULL;
  if (xv_encode("Listener", text, &b, &n))
    return -1000;
  static size_t seq;
  save_seed("Listener", seq++, b, n);
  int rc = mesh__xds_decode_lds(b, n, out, st);
  free(b);
  return rc;
}

static void test_mesh__xds_decode_lds(void) {
  mesh__xds_lds_t *l;
  mesh_status_t st = {0};
  CU_ASSERT_EQUAL_FATAL(lds_of("rds { config_source { ads {} } route_config_name: \"rc1\" }",
                               false, NULL, &l, &st), MESH_OK);
  CU_ASSERT_FALSE(l->server);
  CU_ASSERT_STRING_EQUAL(l->rds_name, "rc1");
  mesh__xds_lds_free(l);
  /* inline route config */
  CU_ASSERT_EQUAL_FATAL(lds_of("route_config { name: \"in\" virtual_hosts { name: \"v\" domains: "
                               "\"*\" routes { match { prefix: \"\" } route { cluster: \"c\" } } } }",
                               false, NULL, &l, &st), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL(l->route_config);
  CU_ASSERT_PTR_NULL(l->rds_name);
  mesh__xds_lds_free(l);
  /* NACKs */
  struct { const char *hcm; const char *msg; int rc; } bad[] = {
      {"rds { config_source { path: \"/x\" } route_config_name: \"r\" }",
       "api_listener: rds.config_source: only ads and self", MESH_ERR_UNSUPPORTED},
      {"rds { }", "rds.route_config_name: empty", MESH_ERR_CONFIG},
      {"scoped_routes: \"\"", "scoped_routes is not", MESH_ERR_UNSUPPORTED},
      {"http_filters { name: \"lua\" typed_config { type_url: \"type.googleapis.com/x.Lua\" } } "
       "rds { route_config_name: \"r\" }", "http_filters[0]: lua (type.googleapis.com/x.Lua) is "
       "not supported", MESH_ERR_UNSUPPORTED},
      {"http_filters { name: \"rbac\" typed_config { type_url: \"" RBAC_T "\" } } "
       "rds { route_config_name: \"r\" }", "not supported on a client", MESH_ERR_UNSUPPORTED},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = lds_of(bad[i].hcm, false, NULL, &l, &st);
    CU_ASSERT_EQUAL(rc, bad[i].rc);
    if (!strstr(st.message, bad[i].msg))
      fprintf(stderr, "\nlds %zu: %s\n", i, st.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, bad[i].msg));
    CU_ASSERT_PTR_NULL(l);
  }
  /* an optional unknown filter is skipped, as the resource allows */
  CU_ASSERT_EQUAL(lds_of("http_filters { name: \"lua\" is_optional: true typed_config { "
                         "type_url: \"type.googleapis.com/x.Lua\" } } rds { route_config_name: "
                         "\"r\" }", false, NULL, &l, &st), MESH_OK);
  mesh__xds_lds_free(l);
  /* router not last */
  char *router = xv_any(ROUTER_T, "Router", "");
  char *h = xv_any(HCM_T, "HttpConnectionManager", "rds { route_config_name: \"r\" }");
  char text[8192];
  snprintf(text, sizeof text, "name: \"x\" api_listener { api_listener { %s } }", h);
  free(h);
  free(router);
  uint8_t *b;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(xv_encode("Listener", text, &b, &n), 0);
  CU_ASSERT_EQUAL(mesh__xds_decode_lds(b, n, &l, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "the last filter must be the router"));
  free(b);
}

static void test_mesh__xds_decode_lds_server(void) {
  /* Istio's shape: and_rules of or_rules; both A29 forms */
  char *rbac = xv_any(RBAC_T, "RBAC",
      "rules { action: ALLOW policies { key: \"ns[default]-policy[web]-rule[0]\" value { "
      "permissions { and_rules { rules { or_rules { rules { header { name: \":method\" "
      "exact_match: \"GET\" } } } } rules { or_rules { rules { url_path { path { prefix: "
      "\"/info\" } } } } } } } principals { and_ids { ids { or_ids { ids { authenticated { "
      "principal_name { exact: \"spiffe://cluster.local/ns/default/sa/sleep\" } } } } } } } } } }");
  CU_ASSERT_PTR_NOT_NULL_FATAL(rbac);
  char *tls = xv_any(DTLS_T, "DownstreamTlsContext",
      "require_client_certificate { value: true } common_tls_context { "
      "tls_certificate_certificate_provider_instance { instance_name: \"default\" } "
      "combined_validation_context { validation_context_certificate_provider_instance { "
      "instance_name: \"default\" } } }");
  char hcm[8192], chain[4096];
  snprintf(hcm, sizeof hcm, "rds { route_config_name: \"in\" } http_filters { name: "
           "\"envoy.filters.http.rbac\" typed_config { %s } }", rbac);
  snprintf(chain, sizeof chain, "transport_socket { name: \"tls\" typed_config { %s } }", tls);
  mesh__xds_lds_t *l;
  mesh_status_t st = {0};
  int rc = lds_of(hcm, true, chain, &l, &st);
  if (rc)
    fprintf(stderr, "\nserver lds: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  CU_ASSERT(l->server);
  CU_ASSERT(l->require_client_cert);
  CU_ASSERT_STRING_EQUAL(l->tls_cert_instance, "default");
  CU_ASSERT_STRING_EQUAL(l->tls_ca_instance, "default");
  CU_ASSERT_PTR_NOT_NULL_FATAL(l->rbac);
  cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(l->rbac, "policies"), 0);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(p, "name")->valuestring,
                         "ns_default_-policy_web_-rule_0_");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(p, "action")->valuestring, "ALLOW");
  cJSON *rule = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "rules"), 0);
  cJSON *to = cJSON_GetArrayItem(cJSON_GetObjectItem(rule, "to"), 0);
  cJSON *from = cJSON_GetArrayItem(cJSON_GetObjectItem(rule, "from"), 0);
  CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(to, "methods"), 0)->valuestring, "GET");
  CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(to, "paths"), 0)->valuestring, "/info*");
  CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(from, "principals"), 0)->valuestring,
                         "spiffe://cluster.local/ns/default/sa/sleep");
  mesh__xds_lds_free(l);
  free(rbac);
  /* each permission is its own rule; a header permission is a `when`
   * condition of its rule (inverted: notValues) */
  rbac = xv_any(RBAC_T, "RBAC",
      "rules { action: DENY policies { key: \"h\" value { "
      "permissions { header { name: \"x-debug\" prefix_match: \"on\" } } "
      "permissions { and_rules { rules { url_path { path { exact: \"/a\" } } } "
      "rules { header { name: \"x-env\" exact_match: \"prod\" invert_match: true } } } } "
      "principals { any: true } } } }");
  snprintf(hcm, sizeof hcm, "rds { route_config_name: \"in\" } http_filters { name: "
           "\"rbac\" typed_config { %s } }", rbac);
  free(rbac);
  rc = lds_of(hcm, true, NULL, &l, &st);
  if (rc)
    fprintf(stderr, "\nheader rbac: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  p = cJSON_GetArrayItem(cJSON_GetObjectItem(l->rbac, "policies"), 0);
  cJSON *rules = cJSON_GetObjectItem(p, "rules");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(rules), 2);
  char *txt = cJSON_PrintUnformatted(rules);
  CU_ASSERT_STRING_EQUAL(txt,
      "[{\"to\":[{}],\"from\":[{}],\"when\":[{\"key\":\"request.headers[x-debug]\","
      "\"values\":[\"on*\"]}]},{\"to\":[{\"paths\":[\"/a\"]}],\"from\":[{}],"
      "\"when\":[{\"key\":\"request.headers[x-env]\",\"notValues\":[\"prod\"]}]}]");
  if (strcmp(txt, "") && !strstr(txt, "notValues"))
    fprintf(stderr, "\nheader rules: %s\n", txt);
  free(txt);
  mesh__xds_lds_free(l);
  free(tls);
  /* NACKs: RBAC with a condition, with metadata; two chains */
  static const struct { const char *rules; const char *msg; } bad[] = {
      {"rules { policies { key: \"p\" value { condition {} permissions { any: true } "
       "principals { any: true } } } }", "conditions (CEL)"},
      {"rules { policies { key: \"p\" value { permissions { metadata: \"\" } "
       "principals { any: true } } } }", "policies[p].permissions[0]: permission rule"},
      {"shadow_rules { }", "shadow_rules"},
      {"matcher { }", "RBAC.matcher"},
      {"rules { policies { key: \"p\" value { permissions { matcher: \"\" } "
       "principals { any: true } } } }", "permission rule 12"},
      {"rules { policies { key: \"p\" value { permissions { any: true } principals { "
       "authenticated { principal_name { contains: \"x\" } } } } } }", "only exact, prefix"},
      {"rules { policies { key: \"p\" value { permissions { header { name: \"x\" "
       "safe_regex_match { regex: \"a.*\" } } } principals { any: true } } } }",
       "permission header x: only exact, prefix, suffix and present"},
      {"rules { policies { key: \"p\" value { permissions { and_rules { rules { or_rules { "
       "rules { header { name: \"x\" exact_match: \"1\" } } rules { header { name: \"y\" "
       "exact_match: \"1\" } } } } } } principals { any: true } } } }", "or_rules of header matchers"},
      {"rules { policies { key: \"p\" value { permissions { header { name: \":path\" "
       "exact_match: \"/\" } } principals { any: true } } } }", "pseudo-headers"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rbac = xv_any(RBAC_T, "RBAC", bad[i].rules);
    snprintf(hcm, sizeof hcm, "rds { route_config_name: \"in\" } http_filters { name: "
             "\"rbac\" typed_config { %s } }", rbac);
    free(rbac);
    CU_ASSERT_EQUAL(lds_of(hcm, true, NULL, &l, &st), MESH_ERR_UNSUPPORTED);
    if (!strstr(st.message, bad[i].msg))
      fprintf(stderr, "\nrbac %zu: %s\n", i, st.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, bad[i].msg));
  }
  /* a second filter chain without its HttpConnectionManager (A36 chains
   * are decoded one by one: tests/test_xds_fcm.c) */
  CU_ASSERT_EQUAL(lds_of("rds { route_config_name: \"in\" }", true,
                         "} filter_chains { name: \"2\"", &l, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "filter_chains[1]: exactly one network filter"));
}

static void collect(const char *msg, void *user) {
  char *buf = user;
  if (!*buf)
    snprintf(buf, 512, "%s", msg);
}

static mesh__xds_bootstrap_t *boot(const char *json, char *err) {
  cJSON *doc = cJSON_Parse(json);
  mesh_status_t first = {0};
  err[0] = 0;
  mesh__cfg_t c = {.first = &first, .fn = collect, .user = err};
  mesh__xds_bootstrap_t *b = doc ? mesh__xds_bootstrap_parse(&c, doc, "xds.bootstrap") : NULL;
  cJSON_Delete(doc);
  return b;
}

static void test_mesh__xds_bootstrap_parse(void) {
  /* Istio's generated bootstrap (GENERATOR: grpc) through the environment */
  char err[512];
  setenv("GRPC_XDS_BOOTSTRAP", TEST_SRCDIR "/tests/data/xds/istio-bootstrap.json", 1);
  mesh_status_t first = {0};
  mesh__cfg_t c = {.first = &first, .fn = collect, .user = err};
  err[0] = 0;
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_load(&c, NULL, "xds");
  unsetenv("GRPC_XDS_BOOTSTRAP");
  if (!b)
    fprintf(stderr, "\nistio bootstrap: %s\n", err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(b->nservers, 1);
  CU_ASSERT_STRING_EQUAL(b->servers[0].uri, "unix:///etc/istio/proxy/XDS");
  CU_ASSERT_FALSE(b->servers[0].tls);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(b->node_metadata, "GENERATOR")->valuestring, "grpc");
  CU_ASSERT_EQUAL_FATAL(b->nproviders, 1);
  CU_ASSERT_STRING_EQUAL(b->providers[0].name, "default");
  CU_ASSERT_STRING_EQUAL(b->providers[0].ca_file, "/var/lib/istio/data/root-cert.pem");
  CU_ASSERT_EQUAL(b->providers[0].refresh_ms, 900000);
  CU_ASSERT_STRING_EQUAL(b->server_listener_template, "xds.istio.io/grpc/lds/inbound/%s");
  mesh__xds_bootstrap_free(b);
  /* inline config through GRPC_XDS_BOOTSTRAP_CONFIG; first supported creds */
  setenv("GRPC_XDS_BOOTSTRAP_CONFIG", "{\"xds_servers\": [{\"server_uri\": \"cp:15010\", "
         "\"channel_creds\": [{\"type\": \"google_default\"}, {\"type\": \"tls\"}], "
         "\"server_features\": [\"ignore_resource_deletion\"]}], \"node\": {\"id\": \"n1\", "
         "\"locality\": {\"region\": \"r\", \"zone\": \"z\", \"sub_zone\": \"s\"}}}", 1);
  b = mesh__xds_bootstrap_load(&c, NULL, "xds");
  unsetenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT(b->servers[0].tls);
  CU_ASSERT(b->servers[0].ignore_resource_deletion);
  CU_ASSERT_STRING_EQUAL(b->node_id, "n1");
  CU_ASSERT_STRING_EQUAL(b->subzone, "s");
  mesh__xds_bootstrap_free(b);
  /* errors, with JSON paths */
  static const struct { const char *json, *msg; } bad[] = {
      {"{}", "xds.bootstrap.xds_servers: required"},
      {"{\"xds_servers\": [{\"channel_creds\": [{\"type\": \"insecure\"}]}]}",
       "xds.bootstrap.xds_servers[0].server_uri: required"},
      {"{\"xds_servers\": [{\"server_uri\": \"x:1\", \"channel_creds\": [{\"type\": "
       "\"google_default\"}]}]}", "xds.bootstrap.xds_servers[0].channel_creds: no supported type"},
      {"{\"xds_servers\": [{\"server_uri\": \"x:1\", \"channel_creds\": [{\"type\": "
       "\"insecure\"}]}], \"certificate_providers\": {\"p\": {\"plugin_name\": \"meshca\"}}}",
       "xds.bootstrap.certificate_providers.p.plugin_name: only \"file_watcher\""},
      {"{\"xds_servers\": [{\"server_uri\": \"x:1\", \"channel_creds\": [{\"type\": "
       "\"insecure\"}]}], \"certificate_providers\": {\"p\": {\"plugin_name\": \"file_watcher\", "
       "\"config\": {\"certificate_file\": \"c\", \"refresh_interval\": \"10m\"}}}}",
       "certificate_file and private_key_file go together"},
      {"{\"xds_servers\": [{\"server_uri\": \"x:1\", \"channel_creds\": [{\"type\": "
       "\"insecure\"}]}], \"authorities\": {\"a\": {}}}", "xds.bootstrap.authorities: xDS federation"},
      {"{\"xds_servers\": [{\"server_uri\": \"x:1\", \"channel_creds\": [{\"type\": "
       "\"insecure\"}]}], \"nodes\": {}}", "xds.bootstrap.nodes: unknown key"},
      {"{\"xds_servers\": [{\"server_uri\": \"unix:///run/xds.sock\", \"channel_creds\": "
       "[{\"type\": \"tls\"}]}]}", "xds.bootstrap.xds_servers[0].server_uri: channel_creds "
       "\"tls\" needs a host:port target"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    b = boot(bad[i].json, err);
    CU_ASSERT_PTR_NULL(b);
    mesh__xds_bootstrap_free(b);
    if (!strstr(err, bad[i].msg))
      fprintf(stderr, "\nbootstrap %zu: \"%s\" (want \"%s\")\n", i, err, bad[i].msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].msg));
  }
  /* no source at all */
  err[0] = 0;
  CU_ASSERT_PTR_NULL(mesh__xds_bootstrap_load(&c, NULL, "xds"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "no bootstrap"));
}

/* channel_creds "tls" (A65 config): files checked and loaded at config
 * time; the three go together; unknown keys and durations refused. */
static void test_mesh__xds_bootstrap_parse_tls(void) {
  CU_ASSERT_FATAL(th_svid("cp.example", "spiffe://cp.example/xds-client", "xcli", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid("other.example", "spiffe://other.example/x", "xoth", 0, 0, 0));
  char crt[512], key[512], ca[512], oca[512], notpem[512];
  snprintf(crt, sizeof crt, "%s", th_path("xcli.crt"));
  snprintf(key, sizeof key, "%s", th_path("xcli.key"));
  snprintf(ca, sizeof ca, "%s", th_ca("cp.example"));
  snprintf(oca, sizeof oca, "%s", th_ca("other.example"));
  snprintf(notpem, sizeof notpem, "%s", th_path("notpem.crt"));
  CU_ASSERT_FATAL(th_write(notpem, "not a certificate\n"));
  static const struct {
    const char *ca, *crt, *key, *extra, *msg; /* msg NULL: accepted */
  } v[] = {
      {"CA", "CRT", "KEY", "", NULL},
      {"CA", "CRT", "KEY", ", \"refresh_interval\": \"60s\"", NULL},
      {"CA", "CRT", "KEY", ", \"refresh_interval\": \"1m\"", "config.refresh_interval: a duration"},
      {"CA", NULL, NULL, "", "go together"},
      {"CA", "/nonexistent/x.crt", "KEY", "", "config.certificate_file: cannot read \"/nonexistent/x.crt\""},
      {"CA", "NOTPEM", "KEY", "", "notpem.crt"},
      {"OCA", "CRT", "KEY", "", "channel_creds[0].config: "},
      {"CA", "CRT", "KEY", ", \"cert\": \"x\"", "config.cert: unknown key"},
      {"CA", "KEY", "CRT", "", "channel_creds[0].config: "},
  };
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    const char *f[3] = {v[i].ca, v[i].crt, v[i].key};
    const char *names[3] = {"ca_certificate_file", "certificate_file", "private_key_file"};
    char cfg[3072] = "", err[512];
    size_t off = 0;
    for (size_t k = 0; k < 3; k++) {
      if (!f[k])
        continue;
      const char *path = strcmp(f[k], "CA") == 0 ? ca : strcmp(f[k], "OCA") == 0 ? oca
                       : strcmp(f[k], "CRT") == 0 ? crt : strcmp(f[k], "KEY") == 0 ? key
                       : strcmp(f[k], "NOTPEM") == 0 ? notpem : f[k];
      off += (size_t)snprintf(cfg + off, sizeof cfg - off, "%s\"%s\": \"%s\"", off ? ", " : "",
                              names[k], path);
    }
    char json[4096];
    snprintf(json, sizeof json, "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", "
             "\"channel_creds\": [{\"type\": \"tls\", \"config\": {%s%s}}]}]}", cfg, v[i].extra);
    mesh__xds_bootstrap_t *b = boot(json, err);
    if (!v[i].msg) {
      if (!b)
        fprintf(stderr, "\ntls creds %zu: %s\n", i, err);
      CU_ASSERT_PTR_NOT_NULL_FATAL(b);
      CU_ASSERT(b->servers[0].tls);
      CU_ASSERT_STRING_EQUAL(b->servers[0].tls_ca_file, ca);
      CU_ASSERT_STRING_EQUAL(b->servers[0].tls_cert_file, crt);
      CU_ASSERT_STRING_EQUAL(b->servers[0].tls_key_file, key);
    } else {
      CU_ASSERT_PTR_NULL(b);
      if (!strstr(err, v[i].msg))
        fprintf(stderr, "\ntls creds %zu: \"%s\" (want \"%s\")\n", i, err, v[i].msg);
      CU_ASSERT_PTR_NOT_NULL(strstr(err, v[i].msg));
      CU_ASSERT_PTR_NOT_NULL(strstr(err, "xds.bootstrap.xds_servers[0].channel_creds[0].config"));
    }
    mesh__xds_bootstrap_free(b);
  }
  /* {"type": "tls"} alone: the mesh identity, no files */
  char err[512];
  mesh__xds_bootstrap_t *b = boot("{\"xds_servers\": [{\"server_uri\": \"x:1\", \"channel_creds\": "
                                  "[{\"type\": \"tls\"}]}]}", err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT(b->servers[0].tls);
  CU_ASSERT_PTR_NULL(b->servers[0].tls_cert_file);
  mesh__xds_bootstrap_free(b);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_decode", NULL, NULL);
  CU_add_test(s, "mesh__xds_decode_eds", test_mesh__xds_decode_eds);
  CU_add_test(s, "mesh__xds_decode_cds", test_mesh__xds_decode_cds);
  CU_add_test(s, "mesh__xds_decode_rds", test_mesh__xds_decode_rds);
  CU_add_test(s, "mesh__xds_decode_lds", test_mesh__xds_decode_lds);
  CU_add_test(s, "mesh__xds_decode_lds_server", test_mesh__xds_decode_lds_server);
  CU_add_test(s, "mesh__xds_bootstrap_parse", test_mesh__xds_bootstrap_parse);
  CU_add_test(s, "mesh__xds_bootstrap_parse_tls", test_mesh__xds_bootstrap_parse_tls);
}

int main(void) { return th_run_suites("test_xds_decode", add); }
