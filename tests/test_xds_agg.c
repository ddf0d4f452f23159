/* SPDX-License-Identifier: Apache-2.0 */
/* Aggregate clusters (gRFC A37) and names subscribed on first use:
 * - mesh__xds_agg_check: the graph table (loops, chains of 16 and 17,
 *   a diamond, an ancestor made too deep by a change below it);
 * - the ADS session: a looping or too deep aggregate is NACKed with the
 *   reason and the last good resource stays; flattening into one
 *   priority list (leaves depth first, a repeated leaf once);
 * - gRFC A27's does-not-exist timer (mesh__xds_ads_expire);
 * - a context's first use (mesh__service_use) of unknown names: a full
 *   state LDS without the name, a name never answered (the timer), the
 *   first_use_max limit, names that are not taken, config errors; a
 *   name whose route names a cluster that does not exist.
 * Responses are fed as the transport feeds them; the end-to-end version
 * with real backends is tests/xds/test_xds_agg.sh. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "mesh/mesh.h"
#include "discovery/discovery.h"
#include "lb/lb.h"
#include "xds/proto/base.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds_vec.h"

#define CDS_T "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_T "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define LDS_T "type.googleapis.com/envoy.config.listener.v3.Listener"
#define AGG_T "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"

/* ---- the graph table ----------------------------------------------------*/

static mesh__xds_cds_t *mk(const char *name, const char *children) {
  mesh__xds_cds_t *c = calloc(1, sizeof *c);
  c->name = strdup(name);
  c->kind = children ? MESH__XDS_CLUSTER_AGGREGATE : MESH__XDS_CLUSTER_EDS;
  c->children = calloc(8, sizeof *c->children);
  for (const char *p = children; p && *p && c->nchildren < 8;) {
    size_t n = strcspn(p, ",");
    c->children[c->nchildren++] = strndup(p, n);
    p += n + (p[n] == ',');
  }
  return c;
}

/* "a=b,c;b=;c=d" -> clusters (an empty list: EDS) */
static size_t graph(const char *spec, mesh__xds_cds_t **v) {
  size_t n = 0;
  for (const char *p = spec; *p;) {
    size_t len = strcspn(p, ";");
    char tok[256];
    snprintf(tok, sizeof tok, "%.*s", (int)len, p);
    char *eq = strchr(tok, '=');
    *eq = '\0';
    v[n++] = mk(tok, eq[1] ? eq + 1 : NULL);
    p += len + (p[len] == ';');
  }
  return n;
}

/* a chain p{from} -> ... -> p{k-1} (EDS) as a graph spec */
static void chain(char *buf, size_t cap, const char *p, int from, int k) {
  size_t o = 0;
  buf[0] = '\0';
  for (int i = from; i < k && o < cap; i++) {
    if (i + 1 < k)
      o += (size_t)snprintf(buf + o, cap - o, "%s%s%d=%s%d", i > from ? ";" : "", p, i, p, i + 1);
    else
      o += (size_t)snprintf(buf + o, cap - o, "%s%s%d=", i > from ? ";" : "", p, i);
  }
}

static void test_mesh__xds_agg_check(void) {
  char c16[1024], c17[1024], c40[4096];
  chain(c16, sizeof c16, "x", 0, 16);
  chain(c17, sizeof c17, "x", 0, 17);
  chain(c40, sizeof c40, "x", 0, 40);
  static const struct {
    const char *cached, *add, *err;
  } v[] = {
      {"e=", "a=e", NULL},
      {"e=;f=", "a=e,f,e", NULL},
      {"", "a=a", "loop (through \"a\")"},
      {"b=a", "a=b", "loop"},
      {"b=c;c=a", "a=b", "loop"},
      {"b=d;c=d;d=", "a=b,c", NULL}, /* a diamond is no loop */
      {"a=b;b=", "b=c", NULL},        /* c unknown: a leaf for now */
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    mesh__xds_cds_t *g[64];
    size_t n = graph(*v[i].cached ? v[i].cached : "z=", g);
    mesh__xds_cds_t *add[2];
    graph(v[i].add, add);
    mesh_status_t st = {0};
    int rc = mesh__xds_agg_check(add[0], (const mesh__xds_cds_t **)g, n, &st);
    CU_ASSERT_EQUAL(rc, v[i].err ? MESH_ERR_CONFIG : MESH_OK);
    if (v[i].err && !strstr(st.message, v[i].err))
      fprintf(stderr, "\ncase %zu: %s\n", i, st.message);
    if (v[i].err)
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, v[i].err));
    for (size_t k = 0; k < n; k++)
      mesh__xds_cds_free(g[k]);
    mesh__xds_cds_free(add[0]);
  }
  /* chains: 16 clusters pass, 17 do not, whichever of them is the new
   * resource (the root, a leaf, one in the middle: its ancestors count) */
  const struct {
    const char *spec;
    bool ok;
  } w[] = {{c16, true}, {c17, false}, {c40, false}};
  for (size_t i = 0; i < 3; i++) {
    mesh__xds_cds_t *g[64];
    size_t n = graph(w[i].spec, g);
    for (size_t j = 0; j < n; j++) { /* each one as the new resource */
      mesh_status_t st = {0};
      int rc = mesh__xds_agg_check(g[j], (const mesh__xds_cds_t **)g, n, &st);
      CU_ASSERT_EQUAL(rc, w[i].ok ? MESH_OK : MESH_ERR_CONFIG);
      if (!w[i].ok)
        CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "nested deeper than 16"));
    }
    for (size_t k = 0; k < n; k++)
      mesh__xds_cds_free(g[k]);
  }
}

/* ---- the session -----------------------------------------------------------*/

static char *agg(const char *name, const char *children) {
  char cfg[1024] = "";
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

static char *eds_cluster(const char *name) {
  char *out = malloc(256);
  snprintf(out, 256, "name: \"%s\" type: EDS eds_cluster_config { eds_config { ads {} } }",
           name);
  return out;
}

/* Feed one response of type url with resources res[] (text of type). */
static int respond(mesh__xds_ads_t *a, const char *url, const char *type,
                   char *const *res, size_t n, mesh_status_t *st) {
  static int version;
  size_t cap = 200000;
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

#define EP(a, p, prio)                                                             \
  "endpoints { priority: " #prio " locality { zone: \"z\" } lb_endpoints { endpoint {" \
  " address { socket_address { address: \"" a "\" port_value: " #p " } } } } } "

static void test_xds_agg_session(void) {
  mesh__xds_ads_t *a = mesh__xds_ads_new(NULL, NULL);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "web"), MESH_OK);
  drain(a);
  /* web = [p, q, p]; q = [r]: leaves p, r (p once) */
  char *good[] = {agg("web", "p,q,p"), eds_cluster("p"), agg("q", "r"), eds_cluster("r")};
  for (int i = 0; i < 3; i++) { /* each round subscribes one level more */
    CU_ASSERT_EQUAL(respond(a, CDS_T, "Cluster", good, 4, &st), MESH_OK);
    drain(a);
  }
  mesh__ep_t *eps;
  size_t n;
  const mesh__xds_cds_t *first;
  char note[256];
  CU_ASSERT_EQUAL(mesh__xds_agg_flatten(a, NULL, "web", &eps, &n, &first, note, sizeof note),
                  MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NOT_NULL(strstr(note, "\"p\": waiting for EDS"));
  char *e[] = {strdup("cluster_name: \"p\" " EP("127.0.0.1", 81, 0) EP("127.0.0.2", 82, 1)),
               strdup("cluster_name: \"r\" " EP("127.0.0.3", 83, 0))};
  CU_ASSERT_EQUAL(respond(a, EDS_T, "ClusterLoadAssignment", e, 2, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh__xds_agg_flatten(a, NULL, "web", &eps, &n, &first, note, sizeof note),
                        MESH_OK);
  CU_ASSERT_EQUAL_FATAL(n, 3);
  CU_ASSERT_STRING_EQUAL(first->name, "p");
  uint32_t want_prio[] = {0, 1, 2}; /* p's 0 and 1, then r's 0 after them */
  uint16_t want_port[] = {81, 82, 83};
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(eps[i].priority, want_prio[i]);
    CU_ASSERT_EQUAL(eps[i].port, want_port[i]);
  }
  free(eps);
  /* web lists itself: NACKed, the cached web (p, q, p) stays */
  char *loop[] = {agg("web", "web,p"), eds_cluster("p"), agg("q", "r"), eds_cluster("r")};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "Cluster", loop, 4, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "cluster \"web\": aggregate clusters form a loop"));
  const mesh__xds_cds_t *w = mesh__xds_ads_cached(a, MESH__XDS_T_CDS, "web");
  CU_ASSERT_EQUAL_FATAL(w->nchildren, 3);
  CU_ASSERT_STRING_EQUAL(w->children[1], "q");
  CU_ASSERT_EQUAL(mesh__xds_ads_status(a, MESH__XDS_T_CDS, "web"), MESH__XDS_NACKED);
  drain(a);
  /* q = [web]: a loop through two clusters, refused at q */
  char *loop2[] = {agg("web", "p,q,p"), eds_cluster("p"), agg("q", "web"), eds_cluster("r")};
  CU_ASSERT_EQUAL(respond(a, CDS_T, "Cluster", loop2, 4, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "cluster \"q\": aggregate clusters form a loop"));
  CU_ASSERT_EQUAL(mesh__xds_agg_flatten(a, NULL, "web", &eps, &n, &first, note, sizeof note),
                  MESH_OK);
  CU_ASSERT_EQUAL(n, 3); /* the last good graph */
  free(eps);
  free_all(good, 4);
  free_all(loop, 4);
  free_all(loop2, 4);
  free_all(e, 2);
  mesh__xds_ads_free(a);
}

static int feed(mesh_t *m, const char *url, const char *type, char *const *res,
                size_t n, mesh_status_t *st) {
  static int version = 1000;
  char text[65536];
  int o = snprintf(text, sizeof text, "version_info: \"%d\" nonce: \"m%d\" type_url: \"%s\" ",
                   version, version, url);
  version++;
  for (size_t i = 0; i < n; i++) {
    char *any = xv_any(url, type, res[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    o += snprintf(text + o, sizeof text - (size_t)o, "resources { %s } ", any);
    free(any);
  }
  uint8_t *b;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &len), 0);
  int rc = mesh__xds_feed(m, b, len, st);
  free(b);
  return rc;
}

/* picks of 100: how many went to port lo..hi (-1: a pick failed) */
static int picks_to(mesh_t *m, const char *name, int lo, int hi) {
  mesh__service_t *svc = mesh__service_find(m, name);
  mesh__snapshot_t *snap = mesh__snap_acquire(mesh__disc_snapref(svc));
  int k = 0;
  for (int i = 0; i < 100 && k >= 0; i++) {
    mesh__host_t *h = NULL;
    if (mesh__lb_pick(svc, snap, NULL, &h) != MESH_OK)
      k = -1;
    else if (h->port >= lo && h->port <= hi)
      k++;
  }
  mesh__snap_release(snap);
  return k;
}

#define BOOT0 "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", \"channel_creds\": " \
              "[{\"type\": \"insecure\"}]}], \"node\": {\"id\": \"n\"}}"

/* A service whose cluster is an aggregate [p, r]: p's lb policy (A37: the
 * first underlying cluster's) applies; p's endpoints all unhealthy ->
 * every pick goes to r; p back -> p; p emptied -> r. */
static void test_xds_agg_context(void) {
  mesh_t *m;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"xds\": {\"bootstrap\": " BOOT0 "}, \"services\": "
                                 "{\"web\": {\"discovery\": {\"type\": \"xds\", "
                                 "\"cluster\": \"agg\"}}}}", &m, &st), MESH_OK);
  char *cds[] = {agg("agg", "p,r"), eds_cluster("p"), eds_cluster("r")};
  char *lr = malloc(512);
  snprintf(lr, 512, "%s lb_policy: LEAST_REQUEST", cds[1]);
  free(cds[1]);
  cds[1] = lr;
  for (int i = 0; i < 2; i++)
    CU_ASSERT_EQUAL(feed(m, CDS_T, "Cluster", cds, 3, &st), MESH_OK);
#define P(h) "cluster_name: \"p\" endpoints { locality { zone: \"a\" } lb_endpoints { " \
             "health_status: " h " endpoint { address { socket_address { address: " \
             "\"127.0.0.1\" port_value: 8101 } } } } lb_endpoints { health_status: " h \
             " endpoint { address { socket_address { address: \"127.0.0.1\" port_value: " \
             "8102 } } } } }"
  char *e[] = {strdup(P("HEALTHY")), strdup("cluster_name: \"r\" " EP("127.0.0.2", 8201, 0))};
  CU_ASSERT_EQUAL(feed(m, EDS_T, "ClusterLoadAssignment", e, 2, &st), MESH_OK);
  CU_ASSERT_EQUAL(picks_to(m, "web", 8101, 8102), 100);
  mesh__service_t *svc = mesh__service_find(m, "web");
  mesh__snapshot_t *snap = mesh__snap_acquire(mesh__disc_snapref(svc));
  CU_ASSERT_EQUAL(snap->n, 3);
  CU_ASSERT_EQUAL(((mesh__lb_state_t *)snap->lb)->policy, MESH__LB_LEAST_REQUEST);
  mesh__snap_release(snap);
  free(e[0]);
  e[0] = strdup(P("UNHEALTHY"));
  CU_ASSERT_EQUAL(feed(m, EDS_T, "ClusterLoadAssignment", e, 2, &st), MESH_OK);
  CU_ASSERT_EQUAL(picks_to(m, "web", 8201, 8201), 100);
  free(e[0]);
  e[0] = strdup(P("HEALTHY"));
  CU_ASSERT_EQUAL(feed(m, EDS_T, "ClusterLoadAssignment", e, 2, &st), MESH_OK);
  CU_ASSERT_EQUAL(picks_to(m, "web", 8101, 8102), 100);
  free(e[0]);
  e[0] = strdup("cluster_name: \"p\"");
  CU_ASSERT_EQUAL(feed(m, EDS_T, "ClusterLoadAssignment", e, 2, &st), MESH_OK);
  CU_ASSERT_EQUAL(picks_to(m, "web", 8201, 8201), 100);
#undef P
  free_all(cds, 3);
  free_all(e, 2);
  mesh_free(m);
}

/* gRFC A27: a subscription never answered does not exist after the
 * timeout, counted from the request that first named it on this stream. */
static void test_mesh__xds_ads_expire(void) {
  mesh__xds_ads_t *a = mesh__xds_ads_new(NULL, NULL);
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_LDS, "x"), MESH_OK);
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh__xds_ads_expire(a, t0 + 100000, 1000), 0); /* not asked yet */
  drain(a);
  CU_ASSERT_EQUAL(mesh__xds_ads_expire(a, t0 - 1000, 1000), 0);
  CU_ASSERT_EQUAL(mesh__xds_ads_status(a, MESH__XDS_T_LDS, "x"), MESH__XDS_REQUESTED);
  mesh__xds_ads_on_reconnect(a); /* the timer restarts with the stream */
  CU_ASSERT_EQUAL(mesh__xds_ads_expire(a, t0 + 100000, 1000), 0);
  drain(a);
  CU_ASSERT_EQUAL(mesh__xds_ads_expire(a, mesh__now_ms() + 1000, 1000), 1);
  CU_ASSERT_EQUAL(mesh__xds_ads_status(a, MESH__XDS_T_LDS, "x"), MESH__XDS_DOES_NOT_EXIST);
  CU_ASSERT_EQUAL(mesh__xds_ads_status(a, MESH__XDS_T_LDS, "y"), -1);
  cJSON *v = mesh__xds_ads_view(a); /* the view says why */
  const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
      cJSON_GetObjectItem(v, "types"), LDS_T), "resources"), "x");
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(r, "status")),
                         "DOES_NOT_EXIST");
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")),
                         "no answer within 1000 ms of the request");
  cJSON_Delete(v);
  mesh__xds_ads_free(a);
}

/* ---- first use in a context ------------------------------------------------*/

#define BOOT "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", \"channel_creds\": " \
             "[{\"type\": \"insecure\"}]}], \"node\": {\"id\": \"n\"}}"

struct use {
  mesh_t *m;
  const char *name;
  int64_t timeout;
  int rc;
  int64_t ms;
  mesh_status_t st;
};

static void *use_thread(void *arg) {
  struct use *u = arg;
  mesh__service_t *svc = NULL;
  int64_t t0 = mesh__now_ms();
  u->rc = mesh__service_use(u->m, u->name, u->timeout, &svc, &u->st);
  u->ms = mesh__now_ms() - t0;
  return NULL;
}

/* Wait (bounded) until the session wants LDS name sent, and drain. */
static bool asked(mesh_t *m, const char *name) {
  for (int i = 0; i < 500; i++) {
    uint8_t *b;
    size_t n;
    bool hit = false;
    while (mesh__xds_next_request(m, &b, &n) == MESH_OK) {
      Meshxds__DiscoveryRequest *r = meshxds__discovery_request__unpack(NULL, n, b);
      for (size_t k = 0; r && k < r->n_resource_names; k++)
        hit = hit || strcmp(r->resource_names[k], name) == 0;
      meshxds__discovery_request__free_unpacked(r, NULL);
      free(b);
    }
    if (hit)
      return true;
    nanosleep(&(struct timespec){0, 10000000L}, NULL);
  }
  return false;
}

static void test_xds_first_use(void) {
  mesh_t *m;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"xds\": {\"bootstrap\": " BOOT ", \"first_use_max\": 2, "
                                 "\"resource_timeout_ms\": 200}}", &m, &st), MESH_OK);
  mesh__service_t *svc = NULL;
  /* not names a config could declare: not taken */
  CU_ASSERT_EQUAL(mesh__service_use(m, "bad name", 100, &svc, &st), 1);
  CU_ASSERT_EQUAL(mesh__service_use(m, "", 100, &svc, &st), 1);
  CU_ASSERT_EQUAL(mesh__service_use(m, "xds:///", 100, &svc, &st), 1);
  CU_ASSERT_EQUAL(mesh__service_use(m, "xds:///a b", 100, &svc, &st), 1);
  CU_ASSERT_EQUAL(mesh__service_use(m, "xds://auth/a", 100, &svc, &st), 1);
  /* a full state LDS without the name: does not exist, at once */
  struct use u = {m, "nope", 10000, 0, 0, {0}};
  pthread_t th;
  pthread_create(&th, NULL, use_thread, &u);
  CU_ASSERT_TRUE(asked(m, "nope"));
  char text[256];
  snprintf(text, sizeof text, "version_info: \"1\" nonce: \"a\" type_url: \"%s\"", LDS_T);
  uint8_t *b;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &n), 0);
  CU_ASSERT_EQUAL(mesh__xds_feed(m, b, n, &st), MESH_OK);
  free(b);
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(u.rc, MESH_ERR_UNKNOWN_SERVICE);
  CU_ASSERT_PTR_NOT_NULL(strstr(u.st.message, "listener \"nope\" does not exist"));
  CU_ASSERT_TRUE(u.ms < 5000);
  /* again: the answer is known, no wait */
  CU_ASSERT_EQUAL(mesh__service_use(m, "nope", 10000, &svc, &st), MESH_ERR_UNKNOWN_SERVICE);
  /* never answered: the 200 ms timer, not the 10 s deadline */
  struct use s = {m, "silent", 10000, 0, 0, {0}};
  pthread_create(&th, NULL, use_thread, &s);
  CU_ASSERT_TRUE(asked(m, "silent"));
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(s.rc, MESH_ERR_UNKNOWN_SERVICE);
  CU_ASSERT_PTR_NOT_NULL(strstr(s.st.message, "does not exist"));
  CU_ASSERT_TRUE(s.ms >= 150 && s.ms < 8000);
  /* the limit: two names are subscribed */
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh__service_use(m, "third", 10000, &svc, &st), MESH_ERR_UNKNOWN_SERVICE);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "xds.first_use_max"));
  CU_ASSERT_TRUE(mesh__now_ms() - t0 < 2000);
  /* the view lists them */
  mesh_free(m);
  /* no "xds" section: nothing is subscribed on first use */
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &m, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__service_use(m, "web", 100, &svc, &st), 1);
  mesh_free(m);
}

static void collect(const char *msg, void *user) {
  char *buf = user;
  size_t o = strlen(buf);
  snprintf(buf + o, 2048 - o, "%s\n", msg);
}

#define RDS_T "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define HCM_T "type.googleapis.com/envoy.extensions.filters.network." \
              "http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_T "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

/* A first-use name whose route names a cluster the full-state CDS response
 * lacks fails then (not at its 10 s deadline), naming the cluster; a gRPC
 * call to it is UNAVAILABLE with that message, as gRPC's. */
static void test_xds_first_use_cluster(void) {
  mesh_t *m;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"xds\": {\"bootstrap\": " BOOT "}}", &m, &st),
                        MESH_OK);
  struct use u = {m, "ghost", 10000, 0, 0, {0}};
  pthread_t th;
  pthread_create(&th, NULL, use_thread, &u);
  CU_ASSERT_TRUE(asked(m, "ghost"));
  char *router = xv_any(ROUTER_T, "Router", "");
  char hcm[2048], lis[4096];
  snprintf(hcm, sizeof hcm, "rds { config_source { ads {} } route_config_name: \"r\" } "
           "http_filters { name: \"router\" typed_config { %s } }", router);
  char *h = xv_any(HCM_T, "HttpConnectionManager", hcm);
  snprintf(lis, sizeof lis, "name: \"ghost\" api_listener { api_listener { %s } }", h);
  free(router);
  free(h);
  char *l1[] = {lis};
  char *r1[] = {"name: \"r\" virtual_hosts { name: \"v\" domains: \"*\" routes { "
                "match { prefix: \"\" } route { cluster: \"nocl\" } } }"};
  CU_ASSERT_EQUAL(feed(m, LDS_T, "Listener", l1, 1, &st), MESH_OK);
  CU_ASSERT_EQUAL(feed(m, RDS_T, "RouteConfiguration", r1, 1, &st), MESH_OK);
  CU_ASSERT_EQUAL(feed(m, CDS_T, "Cluster", NULL, 0, &st), MESH_OK); /* full state */
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(u.rc, MESH_ERR_UNKNOWN_SERVICE);
  CU_ASSERT_PTR_NOT_NULL(strstr(u.st.message, "cluster \"nocl\" does not exist"));
  CU_ASSERT_TRUE(u.ms < 5000);
  mesh_grpc_call_t *c = NULL;
  void *resp = NULL;
  size_t rl;
  CU_ASSERT_EQUAL(mesh_grpc_unary(m, "ghost", "/p.S/M", NULL, "x", 1, &resp, &rl, &c, &st),
                  MESH_ERR_GRPC_STATUS);
  CU_ASSERT_EQUAL(mesh_grpc_call_status(c), 14);
  CU_ASSERT_PTR_NOT_NULL(strstr(mesh_grpc_call_status_message(c), "cluster \"nocl\""));
  mesh_grpc_call_free(c);
  mesh_free(m);
}

static void test_xds_first_use_config(void) {
  static const struct {
    const char *section, *err;
  } v[] = {
      {"\"first_use_max\": -1", "xds.first_use_max"},
      {"\"first_use_max\": 5000", "xds.first_use_max"},
      {"\"resource_timeout_ms\": \"15s\"", "xds.resource_timeout_ms"},
      {"\"resource_timeout_ms\": 0", "xds.resource_timeout_ms"},
      {"\"first_use_max\": 0, \"resource_timeout_ms\": 15000", NULL},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char cfg[512], errs[2048] = "";
    snprintf(cfg, sizeof cfg, "{\"xds\": {\"bootstrap\": " BOOT ", %s}}", v[i].section);
    int n = mesh_config_check(cfg, collect, errs);
    CU_ASSERT_EQUAL(n, v[i].err ? 1 : 0);
    if (v[i].err)
      CU_ASSERT_PTR_NOT_NULL(strstr(errs, v[i].err));
  }
  /* first_use_max 0: first use is off */
  mesh_t *m;
  mesh_status_t st;
  mesh__service_t *svc;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"xds\": {\"bootstrap\": " BOOT ", \"first_use_max\": 0}}",
                                 &m, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__service_use(m, "web", 100, &svc, &st), 1);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_agg", NULL, NULL);
  CU_add_test(s, "mesh__xds_agg_check", test_mesh__xds_agg_check);
  CU_add_test(s, "xds_agg_session", test_xds_agg_session);
  CU_add_test(s, "xds_agg_context", test_xds_agg_context);
  CU_add_test(s, "mesh__xds_ads_expire", test_mesh__xds_ads_expire);
  CU_add_test(s, "xds_first_use", test_xds_first_use);
  CU_add_test(s, "xds_first_use_cluster", test_xds_first_use_cluster);
  CU_add_test(s, "xds_first_use_config", test_xds_first_use_config);
}

int main(void) { return th_run_suites("test_xds_agg", add); }
