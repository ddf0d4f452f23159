/* SPDX-License-Identifier: Apache-2.0 */
/* xds/route.c: the RDS route table applied per request.  Table-driven from
 * RouteConfigurations in protobuf text (encoded by protoc, decoded by
 * mesh__xds_decode_rds as the ADS client does): Envoy's virtual host
 * choice by domain; routes matched in order on prefix / path / safe_regex
 * (case_sensitive), headers (exact, prefix, present, invert, "-bin",
 * gRPC's content-type), runtime fraction; the decision: cluster (weighted
 * pick), timeout (max_stream_duration over timeout), retry (HTTP tokens,
 * gRPC codes, backoff), hash key (A42), fault (A33); NACKs for matchers
 * and actions libmesh cannot honour; readers on 3 threads while a writer
 * publishes 400 versions see whole versions only (TSan); and gRPC calls
 * through a context fed LDS/RDS/CDS/EDS (the session API, as the stream
 * would) to two real mTLS gRPC servers: routed by method and metadata,
 * the route's retry policy (A44) and max_stream_duration (A31) applied,
 * a fault abort (A33) answered without a call, no route -> UNAVAILABLE. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "mesh/mesh.h"
#include "test_grpc_util.h"
#include "resilience/resilience.h"
#include "xds/proto/base.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds_vec.h"

#define FAULT_T "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

/* Decode a RouteConfiguration from text; NULL (st set) when refused. */
static cJSON *rds(const char *text, mesh_status_t *st) {
  uint8_t *b = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL_FATAL(xv_encode("RouteConfiguration", text, &b, &n), 0);
  cJSON *doc = NULL;
  int rc = mesh__xds_decode_rds(b, n, &doc, st);
  free(b);
  return rc == MESH_OK ? doc : NULL;
}

/* ---- virtual hosts ---------------------------------------------------------------- */

static void test_mesh__xds_vhost_pick(void) {
  mesh_status_t st;
  cJSON *doc = rds("name: \"r\" "
                   "virtual_hosts { name: \"any\" domains: \"*\" } "
                   "virtual_hosts { name: \"pre\" domains: \"web.*\" } "
                   "virtual_hosts { name: \"pre-long\" domains: \"web.ex*\" } "
                   "virtual_hosts { name: \"suf\" domains: \"*.example.com\" } "
                   "virtual_hosts { name: \"suf-long\" domains: \"*.b.example.com\" } "
                   "virtual_hosts { name: \"exact\" domains: \"Web\" domains: \"api\" }",
                   &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  static const struct { const char *host, *want; } v[] = {
      {"web", "exact"},            /* exact, case-insensitive */
      {"API", "exact"},
      {"a.b.example.com", "suf-long"}, /* the longest suffix wins */
      {"x.example.com", "suf"},
      {"web.example", "pre-long"}, /* suffix before prefix; longest prefix */
      {"web.other", "pre"},
      {"other", "any"},
      {"example.com", "any"},      /* "*.example.com" needs a label */
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    const cJSON *vh = mesh__xds_vhost_pick(doc, v[i].host);
    const char *got = vh ? cJSON_GetStringValue(cJSON_GetObjectItem(vh, "name")) : "-";
    CU_ASSERT_STRING_EQUAL(got, v[i].want);
  }
  cJSON_Delete(doc);
  doc = rds("name: \"r\" virtual_hosts { name: \"a\" domains: \"a.com\" }", &st);
  CU_ASSERT_PTR_NULL(mesh__xds_vhost_pick(doc, "b.com")); /* no "*": none */
  cJSON_Delete(doc);
}

/* ---- routes ---------------------------------------------------------------------- */

#define ROUTES \
  "name: \"r\" virtual_hosts { name: \"web\" domains: \"*\" " \
  /* 0 */ "routes { name: \"hdr\" match { prefix: \"/api\" headers { name: \"X-Canary\" " \
  "exact_match: \"yes\" } } route { cluster: \"v2\" } } " \
  /* 1 */ "routes { name: \"absent\" match { prefix: \"/api\" headers { name: \"x-user\" " \
  "present_match: true invert_match: true } } route { cluster: \"anon\" } } " \
  /* 2 */ "routes { name: \"api\" match { prefix: \"/api\" } route { cluster: \"v1\" " \
  "timeout { seconds: 2 } max_stream_duration { max_stream_duration { nanos: 500000000 } } " \
  "hash_policy { header { header_name: \"x-user\" } } " \
  "hash_policy { header { header_name: \"x-session\" } terminal: true } " \
  "hash_policy { filter_state { key: \"io.grpc.channel_id\" } } } } " \
  /* 3 */ "routes { name: \"exact\" match { path: \"/Exact\" case_sensitive { value: false } } " \
  "route { cluster: \"ex\" retry_policy { retry_on: \"5xx,reset,unavailable,cancelled\" " \
  "num_retries { value: 3 } retry_back_off { base_interval { nanos: 10000000 } " \
  "max_interval { nanos: 80000000 } } } } } " \
  /* 4 */ "routes { name: \"re\" match { safe_regex { regex: \"/pkg[.]Svc/(Get|List)\" } } " \
  "route { cluster: \"re\" } } " \
  /* 5 */ "routes { name: \"ct\" match { prefix: \"/ct\" headers { name: \"content-type\" " \
  "exact_match: \"application/grpc\" } } route { cluster: \"grpc-only\" } } " \
  /* 6 */ "routes { name: \"bin\" match { prefix: \"/bin\" headers { name: \"k-bin\" " \
  "present_match: true } } route { cluster: \"never\" } } " \
  /* 7 */ "routes { name: \"frac\" match { prefix: \"/frac\" runtime_fraction { " \
  "default_value { numerator: 250000 denominator: MILLION } } } route { cluster: \"frac\" } } " \
  /* 8 */ "routes { name: \"split\" match { prefix: \"/\" } route { weighted_clusters { " \
  "clusters { name: \"a\" weight { value: 1 } } clusters { name: \"b\" weight { value: 3 } } } } } }"

typedef struct hdrs {
  const char *k[3], *v[3];
} hdrs_t;

static const char *get_hdr(void *user, const char *name) {
  const hdrs_t *h = user;
  for (int i = 0; i < 3 && h->k[i]; i++)
    if (strcmp(h->k[i], name) == 0)
      return h->v[i];
  return NULL;
}

static void test_mesh__xds_rtab_route(void) {
  mesh_status_t st;
  cJSON *doc = rds(ROUTES, &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  const cJSON *vh = mesh__xds_vhost_pick(doc, "web");
  mesh__xds_rtab_t *t;
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_build(vh, NULL, true, (void *)0x1, &t), MESH_OK);
  CU_ASSERT_EQUAL(mesh__xds_rtab_size(t), 9);
  static const struct {
    const char *path;
    hdrs_t h;
    bool grpc;
    double u0, u1; /* fraction, split */
    const char *cluster; /* NULL: no route */
  } v[] = {
      {"/api/x", {{"x-canary", "x-user"}, {"yes", "u"}}, false, 0, 0, "v2"},
      {"/api/x", {{"x-canary"}, {"no"}}, false, 0, 0, "anon"}, /* inverted present */
      {"/api/x", {{"x-user"}, {"u"}}, false, 0, 0, "v1"},
      {"/API/x", {{"x-user"}, {"u"}}, false, 0, 0.1, "a"}, /* case-sensitive prefix */
      {"/eXACT", {{NULL}}, false, 0, 0, "ex"},
      {"/exact/", {{NULL}}, false, 0, 0.9, "b"},
      {"/pkg.Svc/Get", {{NULL}}, true, 0, 0, "re"},
      {"/pkg.Svc/GetX", {{NULL}}, true, 0, 0.2, "a"}, /* regex is a full match */
      {"/ct", {{"content-type"}, {"text/plain"}}, true, 0, 0, "grpc-only"},
      {"/ct", {{"content-type"}, {"text/plain"}}, false, 0, 0.5, "b"}, /* HTTP: as sent */
      {"/bin", {{"k-bin"}, {"x"}}, false, 0, 0.24, "a"}, /* -bin never matches */
      {"/frac", {{NULL}}, false, 0.2499, 0, "frac"},
      {"/frac", {{NULL}}, false, 0.25, 0.25, "b"}, /* 1/4 a, 3/4 b */
      {"/", {{NULL}}, false, 0, 0.2499, "a"},
      {"nopath", {{NULL}}, false, 0, 0, NULL},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    mesh__xroute_in_t in = {.path = v[i].path, .header = get_hdr,
                            .user = (void *)&v[i].h, .grpc = v[i].grpc};
    double u[4] = {v[i].u0, v[i].u1, 0.99, 0.99};
    mesh__xroute_t x;
    int rc = mesh__xds_rtab_route(t, &in, u, &x);
    if (!v[i].cluster) {
      CU_ASSERT_EQUAL(rc, MESH_ERR_NOT_FOUND);
      continue;
    }
    CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
    if (strcmp(x.cluster, v[i].cluster) != 0)
      fprintf(stderr, "\n  vector %zu (%s): got %s want %s\n", i, v[i].path,
              x.cluster, v[i].cluster);
    CU_ASSERT_STRING_EQUAL(x.cluster, v[i].cluster);
    CU_ASSERT_STRING_EQUAL(x.subset, v[i].cluster); /* labelled */
  }
  /* the decision's settings */
  hdrs_t h = {{"x-session", "x-user"}, {"s1", "u1"}};
  mesh__xroute_in_t in = {.path = "/api", .header = get_hdr, .user = &h};
  mesh__xroute_t x;
  double u[4] = {0, 0, 0, 0};
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_route(t, &in, u, &x), MESH_OK);
  CU_ASSERT_STRING_EQUAL(x.route, "api");
  CU_ASSERT_EQUAL(x.timeout_ms, 500);  /* A31: max_stream_duration first */
  CU_ASSERT_EQUAL(x.retries, 0);       /* no retry_policy: none */
  CU_ASSERT_EQUAL(x.hash_len, strlen("u1\ns1")); /* terminal stops */
  CU_ASSERT_EQUAL(memcmp(x.hash_key, "u1\ns1", x.hash_len), 0);
  CU_ASSERT_EQUAL(x.delay_ms, 0);
  CU_ASSERT_EQUAL(x.abort_grpc, -1);
  hdrs_t none = {{NULL}};
  in.user = &none;
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_route(t, &in, u, &x), MESH_OK);
  CU_ASSERT_STRING_EQUAL(x.cluster, "anon");
  in.path = "/exact";
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_route(t, &in, u, &x), MESH_OK);
  CU_ASSERT_EQUAL(x.retries, 3);
  CU_ASSERT_EQUAL(x.retry_on, MESH__RETRY_5XX | MESH__RETRY_RESET);
  CU_ASSERT_EQUAL(x.grpc_codes, (1u << 14) | (1u << 1)); /* unavailable, cancelled */
  CU_ASSERT_EQUAL(x.base_ms, 10);
  CU_ASSERT_EQUAL(x.max_ms, 80);
  mesh__xds_rtab_release(t);
  /* unlabelled (one cluster in the service): no subset named */
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_build(vh, NULL, false, NULL, &t), MESH_OK);
  in.path = "/eXact";
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_route(t, &in, u, &x), MESH_OK);
  CU_ASSERT_STRING_EQUAL(x.subset, "");
  mesh__xds_rtab_release(t);
  cJSON_Delete(doc);
}

/* The channel-id hash (A42) and a route's fault (A33), the listener's
 * fault filter config as the default. */
static void test_mesh__xds_rtab_fault(void) {
  char *fault = xv_any(FAULT_T, "HTTPFault",
                       "delay { fixed_delay { nanos: 20000000 } percentage { numerator: 50 } } "
                       "abort { grpc_status: 14 percentage { numerator: 100 } }");
  CU_ASSERT_PTR_NOT_NULL_FATAL(fault);
  char text[4096];
  snprintf(text, sizeof text,
           "name: \"r\" virtual_hosts { name: \"v\" domains: \"*\" "
           "routes { match { prefix: \"/f\" } route { cluster: \"c\" hash_policy { "
           "filter_state { key: \"io.grpc.channel_id\" } } } "
           "typed_per_filter_config { key: \"envoy.filters.http.fault\" value { %s } } } "
           "routes { match { prefix: \"/\" } route { cluster: \"c\" } } }", fault);
  free(fault);
  mesh_status_t st;
  cJSON *doc = rds(text, &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  cJSON *lfault = cJSON_Parse("{\"abort_http\": 418, \"abort_ppm\": 1000000}");
  mesh__xds_rtab_t *t;
  int chan;
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_build(mesh__xds_vhost_pick(doc, "x"), lfault,
                                             false, &chan, &t), MESH_OK);
  mesh__xroute_in_t in = {.path = "/f"};
  mesh__xroute_t x;
  double hit[4] = {0, 0, 0.49, 0.99}, miss[4] = {0, 0, 0.5, 0.99};
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_route(t, &in, hit, &x), MESH_OK);
  CU_ASSERT_EQUAL(x.delay_ms, 20);
  CU_ASSERT_EQUAL(x.abort_grpc, 14);
  CU_ASSERT_EQUAL(x.abort_http, 503); /* only a gRPC status: HTTP gets 503 */
  char want[32];
  snprintf(want, sizeof want, "%p", (void *)&chan);
  CU_ASSERT_EQUAL(x.hash_len, strlen(want));
  CU_ASSERT_EQUAL(memcmp(x.hash_key, want, x.hash_len), 0);
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_route(t, &in, miss, &x), MESH_OK);
  CU_ASSERT_EQUAL(x.delay_ms, 0);
  in.path = "/other"; /* no override: the listener's fault */
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_route(t, &in, miss, &x), MESH_OK);
  CU_ASSERT_EQUAL(x.abort_http, 418);
  CU_ASSERT_EQUAL(x.abort_grpc, -1);
  mesh__xds_rtab_release(t);
  cJSON_Delete(lfault);
  cJSON_Delete(doc);
}

/* What cannot be honoured is refused (NACK), with the field named. */
static void test_mesh__xds_decode_rds_refusals(void) {
  static const struct { const char *route, *msg; } v[] = {
      {"match { path_separated_prefix: \"/a\" } route { cluster: \"c\" }",
       "only prefix, path and safe_regex"},
      {"match { prefix: \"/\" query_parameters: \"\\n\\001q\" } route { cluster: \"c\" }",
       "query_parameters"},
      {"match { prefix: \"/\" grpc { } } route { cluster: \"c\" }", "grpc"},
      {"match { prefix: \"/\" headers { name: \"h\" range_match: \"\\010\\001\" } } "
       "route { cluster: \"c\" }", "range_match"},
      {"match { prefix: \"/\" } redirect: \"\"", "only route"},
      {"match { prefix: \"/\" } route { cluster_header: \"h\" }", "cluster and weighted"},
      {"match { prefix: \"/\" } route { cluster: \"c\" retry_policy { retry_on: \"4xx\" } }",
       "4xx"},
      {"match { prefix: \"/\" } route { cluster: \"c\" hash_policy { cookie: \"\" } }",
       "hash_policy[0]"},
      {"match { safe_regex { regex: \"(\" } } route { cluster: \"c\" }", "does not compile"},
      {"match { prefix: \"/\" runtime_fraction { runtime_key: \"k\" } } route { cluster: \"c\" }",
       "runtime"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char text[1024];
    snprintf(text, sizeof text, "name: \"r\" virtual_hosts { name: \"v\" domains: \"*\" "
             "routes { %s } }", v[i].route);
    mesh_status_t st = {0};
    cJSON *doc = rds(text, &st);
    CU_ASSERT_PTR_NULL(doc);
    if (!strstr(st.message, v[i].msg))
      fprintf(stderr, "\n  vector %zu: message \"%s\" lacks \"%s\"\n", i, st.message,
              v[i].msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, v[i].msg));
    cJSON_Delete(doc);
  }
}

/* ---- publishing ---------------------------------------------------------------------- */

static mesh__xds_rtpub_t pub;
static _Atomic bool done;
static _Atomic unsigned long torn, reads;

/* Version A: /x -> "ca" with 1000 ms; B: /x -> "cb" with 2000 ms. */
static void *reader(void *arg) {
  (void)arg;
  mesh__xroute_in_t in = {.path = "/x"};
  double u[4] = {0, 0, 0, 0};
  while (!atomic_load(&done)) {
    mesh__xds_rtab_t *t = mesh__xds_rtab_acquire(&pub);
    mesh__xroute_t x;
    if (t && mesh__xds_rtab_route(t, &in, u, &x) == MESH_OK) {
      bool a = strcmp(x.cluster, "ca") == 0 && x.timeout_ms == 1000;
      bool b = strcmp(x.cluster, "cb") == 0 && x.timeout_ms == 2000;
      if (!a && !b)
        atomic_fetch_add(&torn, 1);
      atomic_fetch_add(&reads, 1);
    }
    mesh__xds_rtab_release(t);
  }
  return NULL;
}

static void test_mesh__xds_rtab_publish(void) {
  mesh_status_t st;
  cJSON *a = rds("name: \"r\" virtual_hosts { name: \"v\" domains: \"*\" routes { match { "
                 "prefix: \"/\" } route { cluster: \"ca\" timeout { seconds: 1 } } } }", &st);
  cJSON *b = rds("name: \"r\" virtual_hosts { name: \"v\" domains: \"*\" routes { match { "
                 "prefix: \"/\" } route { cluster: \"cb\" timeout { seconds: 2 } } } }", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  pthread_t th[3];
  for (int i = 0; i < 3; i++)
    pthread_create(&th[i], NULL, reader, NULL);
  mesh__xds_rtab_t *t0;
  CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_build(mesh__xds_vhost_pick(a, "w"), NULL, false,
                                             NULL, &t0), MESH_OK);
  mesh__xds_rtab_publish(&pub, t0);
  /* the readers are running before the flips (bounded wait) */
  for (int64_t end = th_now_ms() + 10000; atomic_load(&reads) < 100 && th_now_ms() < end;)
    sched_yield();
  CU_ASSERT(atomic_load(&reads) >= 100);
  for (int i = 0; i < 400; i++) {
    mesh__xds_rtab_t *t;
    CU_ASSERT_EQUAL_FATAL(mesh__xds_rtab_build(mesh__xds_vhost_pick(i % 2 ? b : a, "w"),
                                               NULL, false, NULL, &t), MESH_OK);
    mesh__xds_rtab_publish(&pub, t);
    sched_yield();
  }
  atomic_store(&done, true);
  for (int i = 0; i < 3; i++)
    pthread_join(th[i], NULL);
  mesh__xds_rtab_publish(&pub, NULL);
  CU_ASSERT_EQUAL(atomic_load(&torn), 0);
  CU_ASSERT(atomic_load(&reads) > 0);
  cJSON_Delete(a);
  cJSON_Delete(b);
}

/* ---- gRPC calls routed by a fed route table --------------------------------------- */

#define LDS_T "type.googleapis.com/envoy.config.listener.v3.Listener"
#define RDS_T "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define CDS_T "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_T "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define HCM_T "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_T "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
#define BOOT "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", \"channel_creds\": " \
             "[{\"type\": \"insecure\"}]}], \"node\": {\"id\": \"n\"}}"

/* Feed one response of type url with the resources (text of type). */
static int feed(mesh_t *m, const char *url, const char *type, const char *const *res,
                size_t n) {
  static int version;
  char *text = malloc(65536);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  version++;
  size_t o = (size_t)snprintf(text, 65536, "version_info: \"%d\" nonce: \"n%d\" "
                              "type_url: \"%s\" ", version, version, url);
  for (size_t i = 0; i < n; i++) {
    char *any = xv_any(url, type, res[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    o += (size_t)snprintf(text + o, 65536 - o, "resources { %s } ", any);
    free(any);
  }
  uint8_t *b, *q;
  size_t len, ql;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &len), 0);
  free(text);
  mesh_status_t st;
  int rc = mesh__xds_feed(m, b, len, &st);
  if (rc)
    fprintf(stderr, "\nfeed %s: %s\n", type, st.message);
  while (mesh__xds_next_request(m, &q, &ql) == MESH_OK)
    free(q);
  free(b);
  return rc;
}

static void feed_state(mesh_t *m, int p1, int p2) {
  char *router = xv_any(ROUTER_T, "Router", "");
  char *abort = xv_any(FAULT_T, "HTTPFault",
                       "abort { grpc_status: 7 percentage { numerator: 100 } }");
  char hcm[4096], lis[8192], rc[8192], cl[2][256], ep[2][256];
  snprintf(hcm, sizeof hcm, "rds { config_source { ads {} } route_config_name: \"r\" } "
           "http_filters { name: \"router\" typed_config { %s } }", router);
  char *h = xv_any(HCM_T, "HttpConnectionManager", hcm);
  snprintf(lis, sizeof lis, "name: \"web\" api_listener { api_listener { %s } }", h);
  snprintf(rc, sizeof rc,
           "name: \"r\" virtual_hosts { name: \"v\" domains: \"web\" "
           "routes { match { prefix: \"/mesh.v1.Echo/\" headers { name: \"x-canary\" "
           "exact_match: \"yes\" } } route { cluster: \"g2\" } } "
           "routes { match { path: \"/mesh.v1.Echo/Echo\" } route { cluster: \"g1\" "
           "retry_policy { retry_on: \"unavailable\" num_retries { value: 2 } "
           "retry_back_off { base_interval { nanos: 5000000 } } } } } "
           "routes { match { path: \"/mesh.v1.Echo/Collect\" } route { cluster: \"g1\" "
           "max_stream_duration { max_stream_duration { nanos: 200000000 } } } } "
           "routes { match { path: \"/mesh.v1.Echo/Expand\" } route { cluster: \"g2\" } "
           "typed_per_filter_config { key: \"envoy.filters.http.fault\" value { %s } } } "
           "routes { match { safe_regex { regex: \"/mesh[.]v1[.]Echo/S.*\" } } "
           "route { cluster: \"g2\" } } }", abort);
  free(router);
  free(abort);
  free(h);
  for (int i = 0; i < 2; i++) {
    snprintf(cl[i], sizeof cl[i], "name: \"g%d\" type: EDS eds_cluster_config { "
             "eds_config { ads {} } }", i + 1);
    snprintf(ep[i], sizeof ep[i], "cluster_name: \"g%d\" endpoints { lb_endpoints { "
             "endpoint { address { socket_address { address: \"127.0.0.1\" "
             "port_value: %d } } } } }", i + 1, i ? p2 : p1);
  }
  const char *l1[] = {lis}, *r1[] = {rc}, *c2[] = {cl[0], cl[1]}, *e2[] = {ep[0], ep[1]};
  CU_ASSERT_EQUAL(feed(m, LDS_T, "Listener", l1, 1), MESH_OK);
  CU_ASSERT_EQUAL(feed(m, RDS_T, "RouteConfiguration", r1, 1), MESH_OK);
  CU_ASSERT_EQUAL(feed(m, CDS_T, "Cluster", c2, 2), MESH_OK);
  CU_ASSERT_EQUAL(feed(m, EDS_T, "ClusterLoadAssignment", e2, 2), MESH_OK);
}

/* One unary call of method with metadata k=v (k NULL: none): the gRPC
 * status (-1 when the call failed otherwise), attempts and ms taken. */
static int unary(mesh_t *m, const char *method, const char *k, const char *v,
                 int *attempts, int64_t *ms) {
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  if (k)
    mesh_grpc_metadata_add(md, k, v, NULL);
  mesh_grpc_call_opts_set_metadata(o, md);
  void *resp = NULL;
  size_t rl;
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  int64_t t0 = th_now_ms();
  int rc = mesh_grpc_unary(m, "web", method, o, "ping", 4, &resp, &rl, &c, &st);
  *ms = th_now_ms() - t0;
  int code = c ? mesh_grpc_call_status(c) : -1;
  *attempts = c ? mesh_grpc_call_attempts(c) : 0;
  if (rc != MESH_OK && rc != MESH_ERR_GRPC_STATUS)
    fprintf(stderr, "\n%s: %s: %s\n", method, mesh_code_name(rc), st.message);
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  mesh_grpc_metadata_free(md);
  mesh_grpc_call_opts_free(o);
  return code;
}

static void test_mesh__xds_route_grpc(void) {
  tg_server_t s1, s2;
  CU_ASSERT_FATAL(tg_server_start(&s1, NULL));
  CU_ASSERT_FATAL(tg_server_start(&s2, NULL));
  CU_ASSERT_FATAL(tg_svid("cli"));
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(tg_config("cli", "\"xds\": {\"bootstrap\": " BOOT "}, \"services\": "
                              "{\"web\": {\"discovery\": {\"type\": \"xds\", "
                              "\"listener\": \"web\"}}}"), &m, &st);
  if (rc)
    fprintf(stderr, "\nmesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  feed_state(m, s1.port, s2.port);
  int att;
  int64_t ms;
  static const struct {
    const char *method, *k, *v;
    int code, attempts, calls1, calls2; /* server calls added */
  } vec[] = {
      {"/mesh.v1.Echo/Echo", NULL, NULL, 0, 1, 1, 0},
      {"/mesh.v1.Echo/Echo", "x-canary", "yes", 0, 1, 0, 1},   /* header route */
      {"/mesh.v1.Echo/Stream", NULL, NULL, 0, 1, 0, 1},         /* regex route */
      {"/mesh.v1.Echo/Echo", "x-status", "14", 14, 3, 3, 0},   /* A44: 2 retries */
      {"/mesh.v1.Echo/Echo", "x-status", "13", 13, 1, 1, 0},   /* not retried */
      {"/mesh.v1.Echo/Expand", NULL, NULL, 7, 0, 0, 0},         /* A33 abort */
      {"/other.Svc/M", NULL, NULL, 14, 0, 0, 0},                /* no route */
      {"/mesh.v1.Echo/Stream", "x-status", "14", 14, 1, 0, 1}, /* no policy */
  };
  for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
    int c1 = atomic_load(&s1.calls), c2 = atomic_load(&s2.calls);
    int code = unary(m, vec[i].method, vec[i].k, vec[i].v, &att, &ms);
    bool ok = code == vec[i].code && att == vec[i].attempts &&
              atomic_load(&s1.calls) - c1 == vec[i].calls1 &&
              atomic_load(&s2.calls) - c2 == vec[i].calls2;
    if (!ok)
      fprintf(stderr, "\n  grpc vector %zu: status %d attempts %d calls %d/%d\n", i, code,
              att, atomic_load(&s1.calls) - c1, atomic_load(&s2.calls) - c2);
    CU_ASSERT(ok);
  }
  /* A31: the route's max_stream_duration (200 ms) cuts a 2 s handler */
  int code = unary(m, "/mesh.v1.Echo/Collect", "x-sleep-ms", "2000", &att, &ms);
  CU_ASSERT_EQUAL(code, 4); /* DEADLINE_EXCEEDED */
  CU_ASSERT(ms >= 150 && ms < 1500);
  mesh_free(m);
  tg_server_stop(&s1);
  tg_server_stop(&s2);
}

/* The same through gRPC's target form on a context with no services:
 * the first call to xds:///web subscribes listener "web" (first use,
 * xds/firstuse.c), waits while the responses are fed, and is routed to
 * g1 like a declared service's. */
struct fu_call {
  mesh_t *m;
  int rc, code;
};

static void *fu_call(void *arg) {
  struct fu_call *f = arg;
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_call_opts_set_timeout(o, 10000);
  void *resp = NULL;
  size_t rl;
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  f->rc = mesh_grpc_unary(f->m, "xds:///web", "/mesh.v1.Echo/Echo", o, "ping", 4, &resp,
                          &rl, &c, &st);
  f->code = c ? mesh_grpc_call_status(c) : -1;
  if (f->rc)
    fprintf(stderr, "\nfirst use: %s: %s\n", mesh_code_name(f->rc), st.message);
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  mesh_grpc_call_opts_free(o);
  return NULL;
}

static void test_xds_first_use_grpc(void) {
  tg_server_t s1, s2;
  CU_ASSERT_FATAL(tg_server_start(&s1, NULL));
  CU_ASSERT_FATAL(tg_server_start(&s2, NULL));
  CU_ASSERT_FATAL(tg_svid("cli"));
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(tg_config("cli", "\"xds\": {\"bootstrap\": " BOOT "}"), &m,
                                 &st), MESH_OK);
  struct fu_call f = {m, -1, -1};
  pthread_t th;
  pthread_create(&th, NULL, fu_call, &f);
  bool asked = false; /* the first use subscribed listener "web" */
  for (int i = 0; i < 1000 && !asked; i++) {
    uint8_t *b;
    size_t n;
    while (mesh__xds_next_request(m, &b, &n) == MESH_OK) {
      Meshxds__DiscoveryRequest *r = meshxds__discovery_request__unpack(NULL, n, b);
      for (size_t k = 0; r && k < r->n_resource_names; k++)
        asked = asked || strcmp(r->resource_names[k], "web") == 0;
      meshxds__discovery_request__free_unpacked(r, NULL);
      free(b);
    }
    if (!asked)
      nanosleep(&(struct timespec){0, 5000000L}, NULL);
  }
  CU_ASSERT_TRUE(asked);
  int c1 = atomic_load(&s1.calls);
  feed_state(m, s1.port, s2.port);
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(f.rc, MESH_OK);
  CU_ASSERT_EQUAL(f.code, 0);
  CU_ASSERT_EQUAL(atomic_load(&s1.calls) - c1, 1);
  mesh_free(m);
  tg_server_stop(&s1);
  tg_server_stop(&s2);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_route", NULL, NULL);
  CU_add_test(s, "xds_first_use_grpc", test_xds_first_use_grpc);
  CU_add_test(s, "mesh__xds_vhost_pick", test_mesh__xds_vhost_pick);
  CU_add_test(s, "mesh__xds_rtab_route", test_mesh__xds_rtab_route);
  CU_add_test(s, "mesh__xds_rtab_fault", test_mesh__xds_rtab_fault);
  CU_add_test(s, "mesh__xds_decode_rds_refusals", test_mesh__xds_decode_rds_refusals);
  CU_add_test(s, "mesh__xds_rtab_publish", test_mesh__xds_rtab_publish);
  CU_add_test(s, "mesh__xds_route_grpc", test_mesh__xds_route_grpc);
}

int main(void) { return th_run_suites("test_xds_route", add); }
