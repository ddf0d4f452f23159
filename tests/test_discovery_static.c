/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery through mesh_new(): config validation, the static and file
 * sources, the public endpoints API, change callbacks, fail-static on bad
 * files, 10,000 endpoints. */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mesh/discovery.h>

#include "discovery/discovery.h"

/* ---- helpers ------------------------------------------------------------------ */

typedef struct logcap {
  pthread_mutex_t mu;
  int errors;     /* event=discovery_error lines */
  char last[1024];
} logcap_t;

static void cap_log(int level, const char *line, void *user) {
  (void)level;
  logcap_t *c = user;
  pthread_mutex_lock(&c->mu);
  if (strstr(line, "event=discovery_error")) {
    c->errors++;
    snprintf(c->last, sizeof c->last, "%s", line);
  }
  pthread_mutex_unlock(&c->mu);
}

static int cap_errors(logcap_t *c) {
  pthread_mutex_lock(&c->mu);
  int n = c->errors;
  pthread_mutex_unlock(&c->mu);
  return n;
}

static mesh_t *new_mesh(const char *json) {
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  return m;
}

static size_t count_of(mesh_t *m, const char *svc, uint64_t *version) {
  mesh_endpoints_t *e = NULL;
  if (mesh_endpoints_get(m, svc, &e, NULL) != MESH_OK)
    return (size_t)-1;
  size_t n = mesh_endpoints_count(e);
  if (version)
    *version = mesh_endpoints_version(e);
  mesh_endpoints_free(e);
  return n;
}

/* Poll (bounded) until the service has `want` endpoints. */
static bool wait_count(mesh_t *m, const char *svc, size_t want, int ms) {
  for (int i = 0; i < ms / 5; i++) {
    if (count_of(m, svc, NULL) == want)
      return true;
    usleep(5000);
  }
  return count_of(m, svc, NULL) == want;
}

static void stats_of(mesh_t *m, const char *svc, mesh__disc_stats_t *out) {
  memset(out, 0, sizeof *out);
  mesh__disc_stats(mesh__service_find(m, svc), out);
}

/* ---- config validation --------------------------------------------------------- */

struct cfg_case {
  const char *disc; /* value of services.s.discovery */
  const char *err;  /* substring; NULL = valid */
};

static const struct cfg_case cfg_cases[] = {
  {"{\"type\":\"static\",\"endpoints\":[]}", NULL},
  {"{}", "services.s.discovery.type: required"},
  {"[]", "services.s.discovery: expected an object"},
  {"{\"type\":\"consul\"}", "services.s.discovery.type: unknown value"},
  {"{\"type\":\"static\"}", "services.s.discovery.endpoints: required"},
  {"{\"type\":\"static\",\"endpoints\":[{\"address\":\"a\",\"port\":99999}]}",
   "services.s.discovery.endpoints[0].port: 99999 is out of range"},
  {"{\"type\":\"static\",\"endpoints\":[],\"path\":\"x\"}",
   "services.s.discovery.path: unknown key"},
  {"{\"type\":\"file\"}", "services.s.discovery.path: required"},
  {"{\"type\":\"file\",\"path\":\"/x\",\"poll_interval_ms\":0}",
   "services.s.discovery.poll_interval_ms: 0 is out of range"},
  {"{\"type\":\"dns\",\"name\":\"svc.test\",\"port\":80}", NULL},
  {"{\"type\":\"dns\",\"port\":80}", "services.s.discovery.name: required"},
  {"{\"type\":\"dns\",\"name\":\"127.10.0.1\",\"port\":80}",
   "services.s.discovery.name: not a DNS name"},
  {"{\"type\":\"dns\",\"name\":\"svc.test\"}",
   "services.s.discovery.port: required for A/AAAA"},
  {"{\"type\":\"dns\",\"name\":\"_x._tcp.test\",\"record\":\"SRV\","
   "\"port\":80}",
   "services.s.discovery.port: not used with SRV"},
  {"{\"type\":\"dns\",\"name\":\"a.test\",\"port\":1,\"record\":\"MX\"}",
   "services.s.discovery.record: unknown value \"MX\""},
  {"{\"type\":\"dns\",\"name\":\"a.test\",\"port\":1,"
   "\"servers\":[\"dns.google:53\"]}",
   "services.s.discovery.servers[0]: expected an IP address"},
  {"{\"type\":\"dns\",\"name\":\"a.test\",\"port\":1,\"servers\":[]}",
   "services.s.discovery.servers: must list at least one"},
  {"{\"type\":\"dns\",\"name\":\"a.test\",\"port\":1,\"min_ttl_ms\":5000,"
   "\"max_ttl_ms\":1000}",
   "services.s.discovery.min_ttl_ms: greater than max_ttl_ms"},
  {"{\"type\":\"etcd\"}", "services.s.discovery.endpoints: required"},
  {"{\"type\":\"etcd\",\"endpoints\":[\"127.0.0.1:2379\"]}",
   "services.s.discovery.endpoints[0]: expected an http:// or https:// URL"},
  {"{\"type\":\"etcd\",\"endpoints\":[\"http://127.0.0.1:2379\"],"
   "\"cert\":\"/c\"}",
   "services.s.discovery.key: \"cert\" and \"key\" go together"},
  {"{\"type\":\"etcd\",\"endpoints\":[\"http://127.0.0.1:2379\"],"
   "\"username\":\"u\"}",
   "services.s.discovery.password: \"username\" and \"password\""},
  {"{\"type\":\"etcd\",\"endpoints\":[\"http://127.0.0.1:2379\"],"
   "\"prefix\":\"\"}",
   "services.s.discovery.prefix: must be 1-512 bytes"},
  /* "resolver": the DNS settings for hostnames in endpoints */
  {"{\"type\":\"static\",\"endpoints\":[],\"resolver\":{\"servers\":"
   "[\"127.0.0.1:5353\",\"::1\"],\"min_ttl_ms\":100,\"max_ttl_ms\":1000,"
   "\"timeout_ms\":500}}",
   NULL},
  {"{\"type\":\"static\",\"endpoints\":[],\"resolver\":[]}",
   "services.s.discovery.resolver: expected an object"},
  {"{\"type\":\"static\",\"endpoints\":[],\"resolver\":{\"port\":1}}",
   "services.s.discovery.resolver.port: unknown key"},
  {"{\"type\":\"file\",\"path\":\"/x\",\"resolver\":{\"servers\":"
   "[\"dns.google\"]}}",
   "services.s.discovery.resolver.servers[0]: expected an IP address"},
  {"{\"type\":\"file\",\"path\":\"/x\",\"resolver\":{\"servers\":[]}}",
   "services.s.discovery.resolver.servers: must list at least one"},
  {"{\"type\":\"etcd\",\"endpoints\":[\"http://127.0.0.1:2379\"],"
   "\"resolver\":{\"min_ttl_ms\":5000,\"max_ttl_ms\":1000}}",
   "services.s.discovery.resolver.min_ttl_ms: greater than max_ttl_ms"},
  {"{\"type\":\"etcd\",\"endpoints\":[\"http://127.0.0.1:2379\"],"
   "\"resolver\":{\"timeout_ms\":1}}",
   "services.s.discovery.resolver.timeout_ms: 1 is out of range"},
  {"{\"type\":\"dns\",\"name\":\"a.test\",\"port\":1,\"resolver\":{}}",
   "services.s.discovery.resolver: unknown key"},
};

static void test_disc_check(void) {
  for (size_t i = 0; i < sizeof cfg_cases / sizeof cfg_cases[0]; i++) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"services\":{\"s\":{\"discovery\":%s}}}", cfg_cases[i].disc);
    mesh_status_t st = {0};
    int n = mesh_config_check(json, NULL, NULL);
    /* mesh_new reports the first error through st */
    mesh_t *m = NULL;
    int rc = cfg_cases[i].err ? mesh_new(json, &m, &st) : MESH_OK;
    bool ok = cfg_cases[i].err ? (n > 0 && rc == MESH_ERR_CONFIG &&
                                  strstr(st.message, cfg_cases[i].err))
                               : n == 0;
    if (!ok)
      fprintf(stderr, "cfg case %zu: n=%d msg=%s\n", i, n, st.message);
    CU_ASSERT(ok);
    mesh_free(m);
  }
}

static void test_register_check(void) {
  static const struct {
    const char *reg, *err;
  } cases[] = {
    {"{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]},"
     "\"address\":\"127.10.0.1:80\",\"service\":\"s\"}",
     NULL},
    {"{\"address\":\"127.10.0.1:80\"}", "register.etcd: required"},
    {"{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]}}",
     "register.address: required"},
    {"{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]},\"address\":\"x\"}",
     "register.address: expected host:port"},
    {"{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"],\"prefix\":\"p\"},"
     "\"address\":\"a:1\"}",
     "register.etcd.prefix: unknown key"},
    {"{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]},\"address\":\"a:1\","
     "\"ttl_s\":0}",
     "register.ttl_s: 0 is out of range"},
    {"{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]},\"address\":\"a:1\","
     "\"metadata\":{\"weight\":\"heavy\"}}",
     "register.metadata.weight: expected an integer"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char json[1024];
    snprintf(json, sizeof json, "{\"register\":%s}", cases[i].reg);
    int n = mesh_config_check(json, NULL, NULL);
    mesh_status_t st = {0};
    mesh_t *m = NULL;
    if (cases[i].err) {
      CU_ASSERT_EQUAL(mesh_new(json, &m, &st), MESH_ERR_CONFIG);
      if (!strstr(st.message, cases[i].err))
        fprintf(stderr, "register case %zu: %s\n", i, st.message);
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, cases[i].err));
    } else {
      CU_ASSERT_EQUAL(n, 0);
    }
    mesh_free(m);
  }
  /* no "service" and no top-level "name": init refuses */
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new("{\"register\":{\"etcd\":{\"endpoints\":"
                           "[\"http://127.0.0.1:1\"]},\"address\":\"a:1\"}}",
                           &m, &st),
                  MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "register.service: required"));
}

/* ---- static ---------------------------------------------------------------------- */

static const char *static_cfg =
    "{\"services\":{"
    " \"pay\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
    "  {\"address\":\"127.10.0.2\",\"port\":8080,\"weight\":3,\"priority\":1,"
    "   \"locality\":{\"region\":\"eu\",\"zone\":\"eu-1\"},"
    "   \"labels\":{\"version\":\"v2\",\"canary\":\"yes\"},"
    "   \"health\":\"healthy\"},"
    "  {\"address\":\"::1\",\"port\":9090,\"health\":\"draining\"},"
    "  {\"address\":\"::2\",\"port\":80}]}},"
    " \"none\":{}}}";

static void test_mesh_endpoints_get(void) {
  mesh_t *m = new_mesh(static_cfg);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "pay", 0, NULL), MESH_OK);
  mesh_endpoints_t *e = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_endpoints_get(m, "pay", &e, NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh_endpoints_count(e), 3);
  CU_ASSERT_EQUAL(mesh_endpoints_version(e), 1);
  /* ordered by address: "127.10.0.2" < "::1" < "::2" */
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_address(e, 0), "127.10.0.2");
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_hostname(e, 0), ""); /* a literal */
  CU_ASSERT_EQUAL(mesh_endpoint_port(e, 0), 8080);
  CU_ASSERT_EQUAL(mesh_endpoint_weight(e, 0), 3);
  CU_ASSERT_EQUAL(mesh_endpoint_priority(e, 0), 1);
  CU_ASSERT_EQUAL(mesh_endpoint_health(e, 0), MESH_HEALTH_HEALTHY);
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_region(e, 0), "eu");
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_zone(e, 0), "eu-1");
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_subzone(e, 0), "");
  CU_ASSERT_EQUAL(mesh_endpoint_label_count(e, 0), 2);
  const char *k, *v;
  CU_ASSERT_EQUAL(mesh_endpoint_label_at(e, 0, 0, &k, &v), MESH_OK);
  CU_ASSERT_STRING_EQUAL(k, "canary");
  CU_ASSERT_STRING_EQUAL(v, "yes");
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_label(e, 0, "version"), "v2");
  CU_ASSERT_PTR_NULL(mesh_endpoint_label(e, 0, "nope"));
  CU_ASSERT_EQUAL(mesh_endpoint_label_at(e, 0, 2, &k, &v),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_address(e, 1), "::1");
  CU_ASSERT_EQUAL(mesh_endpoint_health(e, 1), MESH_HEALTH_DRAINING);
  CU_ASSERT_EQUAL(mesh_endpoint_health(e, 2), MESH_HEALTH_UNKNOWN);
  CU_ASSERT_EQUAL(mesh_endpoint_weight(e, 2), 1);
  /* out of range */
  CU_ASSERT_PTR_NULL(mesh_endpoint_address(e, 3));
  CU_ASSERT_PTR_NULL(mesh_endpoint_hostname(e, 3));
  CU_ASSERT_EQUAL(mesh_endpoint_port(e, 3), 0);
  CU_ASSERT_EQUAL(mesh_endpoint_health(e, 3), -1);
  CU_ASSERT_PTR_NULL(mesh_endpoint_zone(e, 99));

  /* an active health check's verdict shows through */
  mesh__snapshot_t *s = mesh__snap_acquire(
      mesh__disc_snapref(mesh__service_find(m, "pay")));
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  atomic_store(&s->hosts[2]->hc_health, MESH__HEALTH_UNHEALTHY);
  CU_ASSERT_EQUAL(mesh_endpoint_health(e, 2), MESH_HEALTH_UNHEALTHY);
  mesh__snap_release(s);

  /* a kept set outlives the context */
  mesh_endpoints_t *d = mesh_endpoints_dup(e);
  mesh_endpoints_free(e);

  /* a service without discovery has an (empty) answer at once */
  CU_ASSERT_EQUAL(count_of(m, "none", NULL), 0);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "none", 10, NULL), MESH_OK);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_endpoints_get(m, "nope", &e, &st),
                  MESH_ERR_UNKNOWN_SERVICE);
  CU_ASSERT_PTR_NULL(e);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "\"nope\""));
  CU_ASSERT_EQUAL(mesh_endpoints_get(NULL, "pay", &e, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_endpoints_get(m, "pay", NULL, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "nope", 0, NULL),
                  MESH_ERR_UNKNOWN_SERVICE);
  mesh_free(m);
  CU_ASSERT_EQUAL(mesh_endpoints_count(d), 3);
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_address(d, 2), "::2");
  mesh_endpoints_free(d);
  mesh_endpoints_free(NULL);
  CU_ASSERT_EQUAL(mesh_endpoints_count(NULL), 0);
  CU_ASSERT_PTR_NULL(mesh_endpoints_dup(NULL));
}

/* ---- change callbacks -------------------------------------------------------------- */

typedef struct seen {
  pthread_mutex_t mu;
  int calls;
  size_t last_n;
  uint64_t last_version;
  char service[32];
  mesh_t *m;
  int self_id; /* unwatch from inside the callback when > 0 */
} seen_t;

static void on_change(const char *service, const mesh_endpoints_t *eps,
                      void *user) {
  seen_t *s = user;
  pthread_mutex_lock(&s->mu);
  s->calls++;
  s->last_n = mesh_endpoints_count(eps);
  s->last_version = mesh_endpoints_version(eps);
  snprintf(s->service, sizeof s->service, "%s", service);
  int id = s->self_id;
  pthread_mutex_unlock(&s->mu);
  if (id > 0)
    mesh_discovery_unwatch(s->m, id);
}

static int seen_calls(seen_t *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->calls;
  pthread_mutex_unlock(&s->mu);
  return n;
}

static bool calls_reached(void *arg) {
  seen_t *s = ((void **)arg)[0];
  int want = *(int *)((void **)arg)[1];
  return seen_calls(s) >= want;
}

/* Bounded by the count wanted; ms is raised to the generous cap
 * (TH_CAP_MS): a loaded machine only takes longer. */
static bool wait_calls(seen_t *s, int want, int ms) {
  (void)ms;
  void *arg[2] = {s, &want};
  return th_wait_for(calls_reached, arg, TH_CAP_MS, "change callbacks");
}

/* Write then rename: the poller never sees half a file. */
static void write_atomic(const char *path, const char *content) {
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CU_ASSERT_TRUE(th_write(tmp, content));
  CU_ASSERT_EQUAL(rename(tmp, path), 0);
}

static void write_endpoints(const char *path, int n, int port) {
  size_t cap = 64 + (size_t)n * 64;
  char *buf = malloc(cap);
  size_t off = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < n; i++)
    off += (size_t)snprintf(buf + off, cap - off,
                            "%s{\"address\":\"127.%d.%d.%d\",\"port\":%d}",
                            i ? "," : "", 10 + (i >> 16), (i >> 8) & 255,
                            i & 255, port);
  snprintf(buf + off, cap - off, "]");
  write_atomic(path, buf);
  free(buf);
}

static void test_mesh_discovery_watch(void) {
  const char *path = th_path("watch.json");
  write_endpoints(path, 2, 80);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"services\":{\"w\":{\"discovery\":{\"type\":\"file\","
           "\"path\":\"%s\",\"poll_interval_ms\":20}}}}",
           path);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  seen_t a = {.mu = PTHREAD_MUTEX_INITIALIZER, .m = m};
  seen_t b = {.mu = PTHREAD_MUTEX_INITIALIZER, .m = m};
  int ida = mesh_discovery_watch(m, "w", on_change, &a, NULL);
  CU_ASSERT(ida > 0);
  /* the first call reports the current set */
  CU_ASSERT_EQUAL(seen_calls(&a), 1);
  CU_ASSERT_EQUAL(a.last_n, 2);
  CU_ASSERT_STRING_EQUAL(a.service, "w");
  int idb = mesh_discovery_watch(m, "w", on_change, &b, NULL);
  CU_ASSERT(idb > 0 && idb != ida);
  pthread_mutex_lock(&b.mu);
  b.self_id = idb; /* b removes itself on its next call */
  pthread_mutex_unlock(&b.mu);

  write_endpoints(path, 3, 80);
  CU_ASSERT_TRUE(wait_calls(&a, 2, 3000));
  CU_ASSERT_EQUAL(a.last_n, 3);
  CU_ASSERT_EQUAL(a.last_version, 2);
  CU_ASSERT_TRUE(wait_calls(&b, 2, 3000));
  CU_ASSERT_EQUAL(mesh_discovery_unwatch(m, idb), MESH_ERR_NOT_FOUND);

  /* the same content again: no change, no call */
  write_endpoints(path, 3, 80);
  usleep(150000);
  CU_ASSERT_EQUAL(seen_calls(&a), 2);

  CU_ASSERT_EQUAL(mesh_discovery_unwatch(m, ida), MESH_OK);
  write_endpoints(path, 1, 80);
  CU_ASSERT_TRUE(wait_count(m, "w", 1, 3000));
  usleep(50000);
  CU_ASSERT_EQUAL(seen_calls(&a), 2);
  CU_ASSERT_EQUAL(seen_calls(&b), 2);

  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_discovery_watch(m, "x", on_change, &a, &st),
                  MESH_ERR_UNKNOWN_SERVICE);
  CU_ASSERT_EQUAL(mesh_discovery_watch(m, "w", NULL, &a, &st),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_discovery_unwatch(m, 0), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_discovery_unwatch(NULL, 1), MESH_ERR_INVALID_ARG);
  /* a watch still registered at mesh_free is freed with the context */
  CU_ASSERT(mesh_discovery_watch(m, "w", on_change, &a, NULL) > 0);
  mesh_free(m);
}

/* ---- file source -------------------------------------------------------------------- */

static void test_file_reload(void) {
  const char *path = th_path("eps.json");
  write_endpoints(path, 2, 80);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"services\":{\"f\":{\"discovery\":{\"type\":\"file\","
           "\"path\":\"%s\",\"poll_interval_ms\":20}}}}",
           path);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  logcap_t cap = {.mu = PTHREAD_MUTEX_INITIALIZER};
  mesh_set_log(m, MESH_LOG_WARN, cap_log, &cap);
  /* a local file answers during mesh_new */
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 2);

  /* {"endpoints": [...]} is accepted too */
  write_atomic(path, "{\"endpoints\":[{\"address\":\"127.19.9.9\","
                                "\"port\":1},{\"address\":\"127.19.9.8\","
                                "\"port\":1},{\"address\":\"127.19.9.7\","
                                "\"port\":1}]}");
  CU_ASSERT_TRUE(wait_count(m, "f", 3, 3000));

  /* malformed JSON, invalid fields, a missing file: last good set stays,
   * each failure is logged and counted */
  static const char *const bad[] = {
      "[{\"address\":\"127.10.0.1\",\"port\":80",
      "[{\"address\":\"127.10.0.1\",\"port\":0}]",
      "[{\"address\":\"127.10.0.1\",\"port\":80,\"weight\":0}]",
      "{\"endpoints\":7}",
      "\"just a string\"",
      "",
  };
  mesh__disc_stats_t ds;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int before = cap_errors(&cap);
    write_atomic(path, bad[i]);
    bool ok;
    TH_WAIT_UNTIL(ok, cap_errors(&cap) > before, "file source: the error");
    CU_ASSERT_EQUAL(cap_errors(&cap), before + 1);
    CU_ASSERT_EQUAL(count_of(m, "f", NULL), 3);
    stats_of(m, "f", &ds);
    CU_ASSERT_TRUE(ds.stale);
  }
  pthread_mutex_lock(&cap.mu);
  CU_ASSERT_PTR_NOT_NULL(strstr(cap.last, "service=f source=file"));
  pthread_mutex_unlock(&cap.mu);
  stats_of(m, "f", &ds);
  CU_ASSERT_EQUAL(ds.errors, sizeof bad / sizeof bad[0]);
  CU_ASSERT_PTR_NOT_NULL(strstr(ds.last_error, "eps.json"));
  CU_ASSERT_STRING_EQUAL(ds.source, "file");
  CU_ASSERT_EQUAL(ds.endpoints, 3);

  int before = cap_errors(&cap);
  CU_ASSERT_EQUAL(unlink(path), 0);
  bool gone;
  TH_WAIT_UNTIL(gone, cap_errors(&cap) > before, "file source: missing");
  usleep(100000); /* several polls: a missing file is reported once */
  CU_ASSERT_EQUAL(cap_errors(&cap), before + 1);
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 3);

  /* recovery is automatic */
  write_endpoints(path, 5, 81);
  CU_ASSERT_TRUE(wait_count(m, "f", 5, 3000));
  stats_of(m, "f", &ds);
  CU_ASSERT_FALSE(ds.stale);
  /* an empty list is a valid answer */
  write_atomic(path, "[]");
  CU_ASSERT_TRUE(wait_count(m, "f", 0, 3000));
  mesh_free(m);
}

static void test_file_missing_at_start(void) {
  const char *path = th_path("later.json");
  unlink(path);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"f\":{\"discovery\":"
           "{\"type\":\"file\",\"path\":\"%s\",\"poll_interval_ms\":20}}}}",
           path);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  /* the first answer was an error: dials do not wait for nothing */
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "f", 1000, &st), MESH_ERR_DISCOVERY);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "later.json"));
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 0);
  write_endpoints(path, 4, 80);
  CU_ASSERT_TRUE(wait_count(m, "f", 4, 3000));
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "f", 0, NULL), MESH_OK);
  mesh_free(m);
}

/* ---- metrics ---------------------------------------------------------------------- */

static double metric(mesh_t *m, const char *key) {
  char buf[16384];
  if (mesh_metrics_text(m, buf, sizeof buf, NULL) < 0)
    return -1;
  size_t n = strlen(key);
  for (const char *p = buf; p && *p;) {
    if (strncmp(p, key, n) == 0 && p[n] == ' ')
      return strtod(p + n + 1, NULL);
    const char *eol = strchr(p, '\n');
    p = eol ? eol + 1 : NULL;
  }
  return -1; /* absent */
}

static bool metric_becomes(mesh_t *m, const char *key, double want, int ms) {
  for (int i = 0; i < ms / 5 && metric(m, key) != want; i++)
    usleep(5000);
  if (metric(m, key) == want)
    return true;
  fprintf(stderr, "\n  %s = %g, want %g\n", key, metric(m, key), want);
  return false;
}

#define UPDATES "mesh_discovery_updates_total{service=\"f\",source=\"file\"}"
#define ERRORS "mesh_discovery_errors_total{service=\"f\",source=\"file\"}"
#define EPS(h) "mesh_endpoints{service=\"f\",health=\"" h "\"}"

/* mesh_discovery_updates_total / _errors_total / mesh_endpoints follow the
 * source: a missing file, a good one, a broken one (last set kept). */
static void test_mesh_discovery_metrics(void) {
  const char *path = th_path("metrics.json");
  unlink(path);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"f\":{\"discovery\":"
           "{\"type\":\"file\",\"path\":\"%s\",\"poll_interval_ms\":10}},"
           "\"s\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
           "{\"address\":\"127.10.0.1\",\"port\":80}]}},\"none\":{}}}",
           path);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT(metric_becomes(m, ERRORS, 1, 2000));
  CU_ASSERT_EQUAL(metric(m, UPDATES), 0);
  CU_ASSERT_EQUAL(metric(m, EPS("unknown")), 0);
  CU_ASSERT_EQUAL(metric(m, "mesh_discovery_updates_total{service=\"s\","
                            "source=\"static\"}"),
                  1);
  CU_ASSERT_EQUAL(metric(m, "mesh_endpoints{service=\"s\",health=\"unknown\"}"),
                  1);
  /* a service without discovery has no series */
  CU_ASSERT_EQUAL(metric(m, "mesh_endpoints{service=\"none\",health=\"unknown\"}"),
                  -1);
  write_atomic(path, "[{\"address\":\"127.10.0.1\",\"port\":80,\"health\":"
                     "\"healthy\"},{\"address\":\"127.10.0.2\",\"port\":80,"
                     "\"health\":\"healthy\"},{\"address\":\"127.10.0.3\","
                     "\"port\":80,\"health\":\"draining\"},{\"address\":"
                     "\"127.10.0.4\",\"port\":80}]");
  CU_ASSERT(metric_becomes(m, UPDATES, 1, 3000));
  CU_ASSERT_EQUAL(metric(m, EPS("healthy")), 2);
  CU_ASSERT_EQUAL(metric(m, EPS("draining")), 1);
  CU_ASSERT_EQUAL(metric(m, EPS("unknown")), 1);
  CU_ASSERT_EQUAL(metric(m, EPS("unhealthy")), 0);
  write_atomic(path, "[{\"address\":");
  CU_ASSERT(metric_becomes(m, ERRORS, 2, 3000));
  CU_ASSERT_EQUAL(metric(m, UPDATES), 1);
  CU_ASSERT_EQUAL(metric(m, EPS("healthy")), 2); /* fail static */
  mesh_free(m);
}

/* External-loop mode: nothing happens until the application drives it. */
static void test_file_external_loop(void) {
  const char *path = th_path("ext.json");
  write_endpoints(path, 1, 80);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"worker\":{\"mode\":\"external\"},\"services\":{\"f\":"
           "{\"discovery\":{\"type\":\"file\",\"path\":\"%s\","
           "\"poll_interval_ms\":10}}}}",
           path);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 1);
  write_endpoints(path, 2, 80);
  usleep(50000);
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 1);
  seen_t a = {.mu = PTHREAD_MUTEX_INITIALIZER, .m = m};
  CU_ASSERT(mesh_discovery_watch(m, "f", on_change, &a, NULL) > 0);
  CU_ASSERT_EQUAL(seen_calls(&a), 1); /* inline in the caller's thread */
  for (int i = 0; i < 200 && count_of(m, "f", NULL) != 2; i++) {
    int t = mesh_backend_timeout(m);
    usleep((useconds_t)(t > 0 && t < 50 ? t : 5) * 1000);
    mesh_process(m);
  }
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 2);
  CU_ASSERT_EQUAL(seen_calls(&a), 2);
  mesh_free(m);
}

/* ---- the load balancer's hook ------------------------------------------------------ */

static _Atomic int prepared, lb_freed;
static _Atomic bool fail_prepare;

static void free_lb(void *p) {
  free(p);
  atomic_fetch_add(&lb_freed, 1);
}

static int prepare(mesh__service_t *svc, void *snap) {
  (void)svc;
  mesh__snapshot_t *s = snap;
  if (atomic_load(&fail_prepare))
    return MESH_ERR_NOMEM;
  size_t *n = malloc(sizeof *n);
  *n = s->n;
  s->lb = n;
  s->lb_free = free_lb;
  atomic_fetch_add(&prepared, 1);
  return MESH_OK;
}

static void test_prepare_snapshot(void) {
  const char *path = th_path("lb.json");
  write_endpoints(path, 2, 80);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"worker\":{\"mode\":\"external\"},"
           "\"services\":{\"f\":{\"discovery\":{\"type\":\"file\","
           "\"path\":\"%s\",\"poll_interval_ms\":10}}}}",
           path);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh__service_t *svc = mesh__service_find(m, "f");
  mesh__snapref_t *ref = mesh__disc_snapref(svc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
  /* lb's per-service init runs before discovery's (core/parts.c): the set
   * published inside mesh_new() already carries picker state */
  mesh__snapshot_t *s0 = mesh__snap_acquire(ref);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s0);
  CU_ASSERT_PTR_NOT_NULL(svc->prepare_snapshot);
  CU_ASSERT_PTR_NOT_NULL(s0->lb);
  mesh__snap_release(s0);
  /* stand in for the load balancer's hook from here on */
  svc->prepare_snapshot = prepare;
  atomic_store(&prepared, 0);
  atomic_store(&lb_freed, 0);
  mesh_process(m);
  mesh__snapshot_t *s1 = mesh__snap_acquire(ref);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s1);

  /* every publish is prepared before readers can see it */
  write_endpoints(path, 3, 80);
  for (int i = 0; i < 200 && atomic_load(&prepared) < 1; i++) {
    usleep(5000);
    mesh_process(m);
  }
  CU_ASSERT_EQUAL(atomic_load(&prepared), 1);
  mesh__snapshot_t *s2 = mesh__snap_acquire(ref);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s2->lb);
  CU_ASSERT_EQUAL(*(size_t *)s2->lb, 3);
  CU_ASSERT_EQUAL(s2->version, s1->version + 1);
  mesh__snap_release(s1);
  /* this snapshot's picker state lives as long as its holders */
  CU_ASSERT_EQUAL(atomic_load(&lb_freed), 0);
  write_endpoints(path, 2, 80);
  for (int i = 0; i < 200 && atomic_load(&prepared) < 2; i++) {
    usleep(5000);
    mesh_process(m);
  }
  CU_ASSERT_EQUAL(atomic_load(&lb_freed), 0);
  mesh__snap_release(s2);
  CU_ASSERT_EQUAL(atomic_load(&lb_freed), 1);
  s2 = mesh__snap_acquire(ref);

  /* a failing prepare keeps the last good set and counts an error */
  atomic_store(&fail_prepare, true);
  write_endpoints(path, 4, 80);
  mesh__disc_stats_t ds;
  stats_of(m, "f", &ds);
  for (int64_t end = th_now_ms() + TH_CAP_MS;
       ds.errors == 0 && th_now_ms() < end;) {
    usleep(5000);
    mesh_process(m);
    stats_of(m, "f", &ds);
  }
  CU_ASSERT_EQUAL(ds.errors, 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(ds.last_error, "load balancer"));
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 2);
  /* and retries on its own once the picker accepts again */
  atomic_store(&fail_prepare, false);
  for (int i = 0; i < 200 && count_of(m, "f", NULL) != 4; i++) {
    usleep(5000);
    mesh_process(m);
  }
  CU_ASSERT_EQUAL(count_of(m, "f", NULL), 4);
  mesh__snap_release(s2);
  mesh_free(m);
  CU_ASSERT_EQUAL(atomic_load(&lb_freed), 3);
}

/* ---- scale -------------------------------------------------------------------------- */

static void test_file_10k(void) {
  enum { N = 10000 };
  const char *path = th_path("big.json");
  write_endpoints(path, N, 80);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"services\":{\"big\":{\"discovery\":{\"type\":\"file\","
           "\"path\":\"%s\",\"poll_interval_ms\":20}}}}",
           path);
  int64_t t0 = mesh__now_ns();
  mesh_t *m = new_mesh(json);
  int64_t t1 = mesh__now_ns();
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  uint64_t v1, v2;
  CU_ASSERT_EQUAL(count_of(m, "big", &v1), N);
  mesh__snapshot_t *s1 = mesh__snap_acquire(
      mesh__disc_snapref(mesh__service_find(m, "big")));
  /* change every port: a full replacement */
  write_endpoints(path, N, 81);
  int64_t t2 = mesh__now_ns();
  for (int i = 0; i < 1000; i++) {
    if (count_of(m, "big", &v2) == N && v2 > v1)
      break;
    usleep(2000);
  }
  int64_t t3 = mesh__now_ns();
  CU_ASSERT_EQUAL(v2, v1 + 1);
  mesh_endpoints_t *e = NULL;
  mesh_endpoints_get(m, "big", &e, NULL);
  CU_ASSERT_EQUAL(mesh_endpoint_port(e, 0), 81);
  CU_ASSERT_EQUAL(mesh_endpoint_port(e, N - 1), 81);
  mesh_endpoints_free(e);
  /* the old set is still intact for its holder */
  CU_ASSERT_EQUAL(s1->n, N);
  CU_ASSERT_EQUAL(s1->hosts[N - 1]->port, 80);
  mesh__snap_release(s1);
  printf("\n  10k endpoints from a file: load in mesh_new %.1f ms, "
         "replacement seen after %.1f ms (poll 20 ms)\n",
         (t1 - t0) / 1e6, (t3 - t2) / 1e6);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("discovery_static", NULL, NULL);
  CU_add_test(s, "disc_check", test_disc_check);
  CU_add_test(s, "register_check", test_register_check);
  CU_add_test(s, "mesh_endpoints_get", test_mesh_endpoints_get);
  CU_add_test(s, "mesh_discovery_watch", test_mesh_discovery_watch);
  CU_add_test(s, "file_reload", test_file_reload);
  CU_add_test(s, "file_missing_at_start", test_file_missing_at_start);
  CU_add_test(s, "file_external_loop", test_file_external_loop);
  CU_add_test(s, "mesh_discovery_metrics", test_mesh_discovery_metrics);
  CU_add_test(s, "prepare_snapshot", test_prepare_snapshot);
  CU_add_test(s, "file_10k", test_file_10k);
}

int main(void) { return th_run_suites("test_discovery_static", add); }
