/* SPDX-License-Identifier: Apache-2.0 */
/* etcd source and registration against a real etcd on loopback: list and
 * watch, registration and deregistration, a SIGKILLed registrant expiring
 * with its lease, etcd restarted without losing updates, malformed values,
 * an unreachable cluster, authentication, the bound on concurrent lists. */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mesh/discovery.h>

#include "discovery/discovery.h"
#include "discovery/etcd.h"

static int cport, pport;
static pid_t etcd_pid;
static int etcd_gen;
static char self_exe[512];

/* ---- helpers ------------------------------------------------------------------ */

static mesh_t *new_mesh(const char *json) {
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  return m;
}

static int etcdctl(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:%d "
           "--command-timeout=5s %s",
           cport, args);
  return th_sh(cmd);
}

static bool start_etcd(void) {
  char data[600], lc[80], ac[80], lp[80], ap[80], ic[100], logname[32];
  snprintf(data, sizeof data, "--data-dir=%s", th_path("etcd-data"));
  snprintf(lc, sizeof lc, "--listen-client-urls=http://127.0.0.1:%d", cport);
  snprintf(ac, sizeof ac, "--advertise-client-urls=http://127.0.0.1:%d",
           cport);
  snprintf(lp, sizeof lp, "--listen-peer-urls=http://127.0.0.1:%d", pport);
  snprintf(ap, sizeof ap, "--initial-advertise-peer-urls=http://127.0.0.1:%d",
           pport);
  snprintf(ic, sizeof ic, "--initial-cluster=default=http://127.0.0.1:%d",
           pport);
  snprintf(logname, sizeof logname, "etcd-%d.log", ++etcd_gen);
  /* Fast elections also lower etcd's minimum lease TTL (1.5 heartbeats x
   * election ticks), so 1 s leases are honoured. */
  const char *argv[] = {"etcd", "--name=default", data, lc, ac, lp, ap, ic,
                        "--heartbeat-interval=10", "--election-timeout=100",
                        NULL};
  etcd_pid = th_spawn(argv, logname);
  if (etcd_pid <= 0 || !th_wait_port(cport, 10000))
    return false;
  for (int i = 0; i < 50; i++) {
    if (etcdctl("endpoint health") == 0)
      return true;
    usleep(100000);
  }
  return false;
}

static int suite_init(void) {
  if (!th_require("etcd", "etcd-server") ||
      !th_require("etcdctl", "etcd-client"))
    return 1;
  cport = th_free_port();
  do
    pport = th_free_port();
  while (pport == cport);
  return start_etcd() ? 0 : 1;
}

static int suite_clean(void) {
  th_stop(etcd_pid);
  return 0;
}

static void disc_cfg(char *out, size_t len, const char *svc,
                     const char *extra) {
  snprintf(out, len,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"%s\":{"
           "\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
           "[\"http://127.0.0.1:%d\"],\"timeout_ms\":1000,"
           "\"backoff_base_ms\":50,\"backoff_max_ms\":300%s}}}}",
           svc, cport, extra ? extra : "");
}

static void describe(mesh_t *m, const char *svc, char *out, size_t len) {
  mesh_endpoints_t *e = NULL;
  out[0] = '\0';
  if (mesh_endpoints_get(m, svc, &e, NULL) != MESH_OK)
    return;
  size_t off = 0;
  for (size_t i = 0; i < mesh_endpoints_count(e) && off < len; i++)
    off += (size_t)snprintf(out + off, len - off, "%s%s:%d/%u", i ? "," : "",
                            mesh_endpoint_address(e, i),
                            mesh_endpoint_port(e, i),
                            mesh_endpoint_weight(e, i));
  mesh_endpoints_free(e);
}

/* Wait until the set reads `want`; returns the ms it took, or -1. */
static int64_t wait_desc(mesh_t *m, const char *svc, const char *want,
                         int ms) {
  char got[2048];
  int64_t t0 = mesh__now_ms();
  for (int i = 0; i <= ms / 5; i++) {
    describe(m, svc, got, sizeof got);
    if (strcmp(got, want) == 0)
      return mesh__now_ms() - t0;
    usleep(5000);
  }
  fprintf(stderr, "%s: want \"%s\", have \"%s\"\n", svc, want, got);
  return -1;
}

static void stats_of(mesh_t *m, const char *svc, mesh__disc_stats_t *out) {
  memset(out, 0, sizeof *out);
  mesh__disc_stats(mesh__service_find(m, svc), out);
}

/* ---- list and watch ---------------------------------------------------------- */

static void test_etcd_list_watch(void) {
  CU_ASSERT_EQUAL(etcdctl("put pay/127.10.0.1:80 "
                          "'{\"Op\":0,\"Addr\":\"127.10.0.1:80\","
                          "\"Metadata\":null}'"),
                  0);
  CU_ASSERT_EQUAL(etcdctl("put pay/127.10.0.2:80 '{\"Addr\":\"127.10.0.2:80\","
                          "\"Metadata\":{\"weight\":7}}'"),
                  0);
  /* other prefixes are not ours: "payx/" and "pay" itself */
  CU_ASSERT_EQUAL(etcdctl("put payx/127.19.9.9:80 '{\"Addr\":\"127.19.9.9:80\"}'"),
                  0);
  CU_ASSERT_EQUAL(etcdctl("put pay '{\"Addr\":\"127.19.9.8:80\"}'"), 0);
  char json[1024];
  disc_cfg(json, sizeof json, "pay", NULL);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "pay", 3000, NULL), MESH_OK);
  CU_ASSERT(wait_desc(m, "pay", "127.10.0.1:80/1,127.10.0.2:80/7", 0) >= 0);

  /* the watch sees a change within one second */
  CU_ASSERT_EQUAL(etcdctl("put pay/127.10.0.3:81 '{\"Addr\":\"127.10.0.3:81\"}'"),
                  0);
  int64_t dt = wait_desc(m, "pay", "127.10.0.1:80/1,127.10.0.2:80/7,127.10.0.3:81/1",
                         1000);
  CU_ASSERT(dt >= 0 && dt < 1000);
  CU_ASSERT_EQUAL(etcdctl("del pay/127.10.0.1:80"), 0);
  dt = wait_desc(m, "pay", "127.10.0.2:80/7,127.10.0.3:81/1", 1000);
  CU_ASSERT(dt >= 0 && dt < 1000);
  /* an update of attributes */
  CU_ASSERT_EQUAL(etcdctl("put pay/127.10.0.3:81 '{\"Addr\":\"127.10.0.3:81\","
                          "\"Metadata\":{\"weight\":2}}'"),
                  0);
  CU_ASSERT(wait_desc(m, "pay", "127.10.0.2:80/7,127.10.0.3:81/2", 1000) >= 0);

  /* malformed values: the key keeps its last good endpoint, new bad keys
   * are ignored, each is counted */
  mesh__disc_stats_t ds;
  stats_of(m, "pay", &ds);
  uint64_t e0 = ds.errors;
  CU_ASSERT_EQUAL(etcdctl("put pay/127.10.0.3:81 'not json'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put pay/bad '{\"Addr\":\"127.10.0.4\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put pay/bad2 '{\"Addr\":\"127.10.0.5:80\","
                          "\"Metadata\":{\"weight\":0}}'"),
                  0);
  /* one report per watch message: three, or fewer when etcd sent the
   * events together (the last report then names the last bad key) */
  bool ok;
  TH_WAIT_UNTIL(ok,
                (stats_of(m, "pay", &ds), strstr(ds.last_error, "pay/bad2") != NULL),
                "etcd: the bad values reported");
  CU_ASSERT(ds.errors >= e0 + 1 && ds.errors <= e0 + 3);
  CU_ASSERT_PTR_NOT_NULL(strstr(ds.last_error, "pay/bad2"));
  CU_ASSERT(wait_desc(m, "pay", "127.10.0.2:80/7,127.10.0.3:81/2", 0) >= 0);
  /* a full re-list (new context) keeps the same view of the bad keys */
  mesh_t *m2 = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m2);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m2, "pay", 3000, NULL), MESH_OK);
  CU_ASSERT(wait_desc(m2, "pay", "127.10.0.2:80/7", 0) >= 0);
  /* the report follows the publish on the worker: poll (bounded) */
  TH_WAIT_UNTIL(ok, (stats_of(m2, "pay", &ds), ds.errors >= 1),
                "etcd: the re-list's report");
  CU_ASSERT_EQUAL(ds.errors, 1); /* one report for the three bad values */
  CU_ASSERT_PTR_NOT_NULL(strstr(ds.last_error, "3 malformed values"));
  mesh_free(m2);
  /* repaired */
  CU_ASSERT_EQUAL(etcdctl("put pay/127.10.0.3:81 '{\"Addr\":\"127.10.0.3:81\"}'"),
                  0);
  CU_ASSERT(wait_desc(m, "pay", "127.10.0.2:80/7,127.10.0.3:81/1", 1000) >= 0);
  /* Op 1 (the old naming API's delete) removes the endpoint */
  CU_ASSERT_EQUAL(etcdctl("put pay/127.10.0.2:80 '{\"Op\":1,"
                          "\"Addr\":\"127.10.0.2:80\"}'"),
                  0);
  CU_ASSERT(wait_desc(m, "pay", "127.10.0.3:81/1", 1000) >= 0);
  mesh_free(m);
  etcdctl("del --prefix pay");
}

/* A hostname in Addr is resolved (here from the hosts file) and the
 * endpoint follows the key. */
static void test_etcd_hostname(void) {
  CU_ASSERT_EQUAL(etcdctl("put hn/localhost:7000 "
                          "'{\"Addr\":\"localhost:7000\","
                          "\"Metadata\":{\"weight\":4}}'"),
                  0);
  char json[1024];
  disc_cfg(json, sizeof json, "hn", NULL);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "hn", 3000, NULL), MESH_OK);
  mesh_endpoints_t *e = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_endpoints_get(m, "hn", &e, NULL), MESH_OK);
  /* 127.0.0.1 first (ordered by address), ::1 too where /etc/hosts says */
  CU_ASSERT_FATAL(mesh_endpoints_count(e) >= 1);
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_address(e, 0), "127.0.0.1");
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_hostname(e, 0), "localhost");
  CU_ASSERT_EQUAL(mesh_endpoint_port(e, 0), 7000);
  CU_ASSERT_EQUAL(mesh_endpoint_weight(e, 0), 4);
  mesh_endpoints_free(e);
  CU_ASSERT_EQUAL(etcdctl("del hn/localhost:7000"), 0);
  CU_ASSERT(wait_desc(m, "hn", "", 1000) >= 0);
  mesh_free(m);
}

/* ---- registration -------------------------------------------------------------- */

static void reg_cfg(char *out, size_t len, const char *svc, const char *addr,
                    int ttl, const char *metadata) {
  snprintf(out, len,
           "{\"log\":{\"level\":\"error\"},\"register\":{\"etcd\":{"
           "\"endpoints\":[\"http://127.0.0.1:%d\"],\"timeout_ms\":1000},"
           "\"service\":\"%s\",\"address\":\"%s\",\"ttl_s\":%d%s%s}}",
           cport, svc, addr, ttl, metadata ? ",\"metadata\":" : "",
           metadata ? metadata : "");
}

static void test_etcd_register(void) {
  char json[1024];
  disc_cfg(json, sizeof json, "reg", NULL);
  mesh_t *watcher = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(watcher);
  CU_ASSERT_EQUAL(mesh_discovery_wait(watcher, "reg", 3000, NULL), MESH_OK);
  CU_ASSERT(wait_desc(watcher, "reg", "", 0) >= 0);

  char rj[1024];
  reg_cfg(rj, sizeof rj, "reg", "127.15.5.5:7000", 1,
          "{\"weight\":4,\"team\":\"payments\"}");
  mesh_t *r = new_mesh(rj);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT(wait_desc(watcher, "reg", "127.15.5.5:7000/4", 2000) >= 0);
  /* the watcher may see the key before the put's answer reaches r */
  bool registered = false;
  uint64_t errors = 99;
  for (int i = 0; i < 200 && !registered; i++) {
    CU_ASSERT_TRUE(mesh__register_state(r, &registered, &errors));
    if (!registered)
      usleep(5000);
  }
  CU_ASSERT_TRUE(registered);
  CU_ASSERT_EQUAL(errors, 0);
  /* the value is what etcd's Go naming package writes */
  char cmd[256];
  snprintf(cmd, sizeof cmd, "get --print-value-only reg/127.15.5.5:7000 > %s",
           th_path("regval"));
  CU_ASSERT_EQUAL(etcdctl(cmd), 0);
  char *val = th_slurp(th_path("regval"), NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(val);
  CU_ASSERT_STRING_EQUAL(val, "{\"Op\":0,\"Addr\":\"127.15.5.5:7000\","
                              "\"Metadata\":{\"weight\":4,"
                              "\"team\":\"payments\"}}\n");
  free(val);

  /* keepalives hold the 1 s lease well past its TTL */
  usleep(2500000);
  CU_ASSERT(wait_desc(watcher, "reg", "127.15.5.5:7000/4", 0) >= 0);

  /* a second registrant whose first etcd endpoint is dead (it fails
   * over), then deregistration on mesh_free */
  char rj2[1024];
  snprintf(rj2, sizeof rj2,
           "{\"log\":{\"level\":\"error\"},\"register\":{\"etcd\":{"
           "\"endpoints\":[\"http://127.0.0.1:%d\",\"http://127.0.0.1:%d\"],"
           "\"timeout_ms\":1000},\"service\":\"reg\","
           "\"address\":\"[fd00::5]:7001\",\"ttl_s\":5}}",
           th_free_port(), cport);
  mesh_t *r2 = new_mesh(rj2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r2);
  CU_ASSERT(wait_desc(watcher, "reg", "127.15.5.5:7000/4,fd00::5:7001/1", 2000) >=
            0);
  mesh_free(r2);
  int64_t dt = wait_desc(watcher, "reg", "127.15.5.5:7000/4", 1000);
  CU_ASSERT(dt >= 0 && dt < 1000); /* revoked, not expired (TTL 5 s) */
  mesh_free(r);
  CU_ASSERT(wait_desc(watcher, "reg", "", 1000) >= 0);
  mesh_free(watcher);
}

/* A registrant killed with SIGKILL cannot revoke: its endpoint goes when
 * the lease expires. */
static void test_etcd_register_sigkill(void) {
  char json[1024];
  disc_cfg(json, sizeof json, "kid", NULL);
  mesh_t *watcher = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(watcher);
  char rj[1024];
  reg_cfg(rj, sizeof rj, "kid", "127.16.6.6:6000", 1, NULL);
  const char *argv[] = {self_exe, "--register", rj, NULL};
  pid_t child = th_spawn(argv, "registrant.log");
  CU_ASSERT_TRUE_FATAL(child > 0);
  CU_ASSERT(wait_desc(watcher, "kid", "127.16.6.6:6000/1", 5000) >= 0);
  usleep(1500000); /* alive past its TTL: it keeps the lease */
  CU_ASSERT(wait_desc(watcher, "kid", "127.16.6.6:6000/1", 0) >= 0);
  th_kill(child);
  int64_t t0 = mesh__now_ms();
  CU_ASSERT(wait_desc(watcher, "kid", "", 4000) >= 0);
  int64_t dt = mesh__now_ms() - t0;
  /* expired, not revoked: a revoke shows in a few ms; the lease had between
   * TTL-renewal (>= 667 ms) and, on a starved machine, somewhat less left */
  CU_ASSERT(dt >= 100);
  printf("\n  SIGKILLed registrant (TTL 1 s) gone after %lld ms\n",
         (long long)dt);
  mesh_free(watcher);
}

/* ---- faults ------------------------------------------------------------------------ */

/* etcd restarted: the set stays while it is down, and every change made
 * around the restart arrives. */
static void test_etcd_restart(void) {
  CU_ASSERT_EQUAL(etcdctl("put rs/a '{\"Addr\":\"127.18.0.1:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put rs/b '{\"Addr\":\"127.18.0.2:80\"}'"), 0);
  char json[1024];
  disc_cfg(json, sizeof json, "rs", NULL);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT(wait_desc(m, "rs", "127.18.0.1:80/1,127.18.0.2:80/1", 3000) >= 0);
  th_stop(etcd_pid);
  mesh__disc_stats_t ds;
  bool ok;
  TH_WAIT_UNTIL(ok, (stats_of(m, "rs", &ds), ds.errors >= 2),
                "etcd restart: 2 errors");
  CU_ASSERT(ok);
  CU_ASSERT_TRUE(ds.stale);
  CU_ASSERT(wait_desc(m, "rs", "127.18.0.1:80/1,127.18.0.2:80/1", 0) >= 0);
  CU_ASSERT_TRUE_FATAL(start_etcd());
  /* changed as soon as etcd is back, racing our reconnect */
  CU_ASSERT_EQUAL(etcdctl("put rs/c '{\"Addr\":\"127.18.0.3:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("del rs/a"), 0);
  CU_ASSERT(wait_desc(m, "rs", "127.18.0.2:80/1,127.18.0.3:80/1", 5000) >= 0);
  /* and the watch is live again */
  CU_ASSERT_EQUAL(etcdctl("put rs/d '{\"Addr\":\"127.18.0.4:80\"}'"), 0);
  int64_t dt = wait_desc(m, "rs", "127.18.0.2:80/1,127.18.0.3:80/1,127.18.0.4:80/1",
                         1000);
  CU_ASSERT(dt >= 0 && dt < 1000);
  stats_of(m, "rs", &ds);
  CU_ASSERT_FALSE(ds.stale);
  mesh_free(m);
  etcdctl("del --prefix rs/");
}

static void test_etcd_unreachable(void) {
  int dead = th_free_port();
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"u\":{"
           "\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
           "[\"http://127.0.0.1:%d\",\"http://127.0.0.1:%d\"],"
           "\"timeout_ms\":300,\"backoff_base_ms\":20,\"backoff_max_ms\":50}}}}",
           dead, dead);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "u", 2000, &st), MESH_ERR_DISCOVERY);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "127.0.0.1"));
  mesh__disc_stats_t ds = {0};
  bool ok;
  TH_WAIT_UNTIL(ok, (stats_of(m, "u", &ds), ds.errors >= 3),
                "etcd unreachable: 3 errors");
  CU_ASSERT(ok); /* retried with backoff */
  int64_t t0 = mesh__now_ms();
  mesh_free(m);
  CU_ASSERT(mesh__now_ms() - t0 < 500);
}

/* A registrant whose etcd is unreachable does not hold up mesh_free beyond
 * the bounded revoke. */
static void test_etcd_register_unreachable(void) {
  int dead = th_free_port();
  char rj[1024];
  snprintf(rj, sizeof rj,
           "{\"log\":{\"level\":\"error\"},\"register\":{\"etcd\":{"
           "\"endpoints\":[\"http://127.0.0.1:%d\"],\"timeout_ms\":200},"
           "\"service\":\"z\",\"address\":\"127.10.0.1:1\"}}",
           dead);
  mesh_t *r = new_mesh(rj);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  /* until the first failed attempt, not for a fixed 300 ms */
  bool registered = true, ok;
  uint64_t errors = 0;
  TH_WAIT_UNTIL(ok, (mesh__register_state(r, &registered, &errors),
                     errors >= 1),
                "register unreachable: a failed attempt");
  CU_ASSERT_TRUE(mesh__register_state(r, &registered, &errors));
  CU_ASSERT_FALSE(registered);
  CU_ASSERT(errors >= 1);
  int64_t t0 = mesh__now_ms();
  mesh_free(r);
  CU_ASSERT(mesh__now_ms() - t0 < 1000);
}

static void test_etcd_auth(void) {
  CU_ASSERT_EQUAL(etcdctl("put au/x '{\"Addr\":\"127.13.3.3:3\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("user add root:rootpw"), 0);
  CU_ASSERT_EQUAL(etcdctl("auth enable"), 0);
  char json[1024];
  disc_cfg(json, sizeof json, "au",
           ",\"username\":\"root\",\"password\":\"rootpw\"");
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "au", 3000, NULL), MESH_OK);
  CU_ASSERT(wait_desc(m, "au", "127.13.3.3:3/1", 0) >= 0);
  CU_ASSERT_EQUAL(etcdctl("--user root:rootpw put au/y "
                          "'{\"Addr\":\"127.13.3.4:3\"}'"),
                  0);
  CU_ASSERT(wait_desc(m, "au", "127.13.3.3:3/1,127.13.3.4:3/1", 1000) >= 0);
  /* wrong password, and no credentials: errors, no endpoints */
  char bad[1024];
  disc_cfg(bad, sizeof bad, "au",
           ",\"username\":\"root\",\"password\":\"wrong\"");
  mesh_t *b = new_mesh(bad);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_discovery_wait(b, "au", 3000, &st), MESH_ERR_DISCOVERY);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "authentication failed"));
  mesh_free(b);
  char none[1024];
  disc_cfg(none, sizeof none, "au", NULL);
  b = new_mesh(none);
  CU_ASSERT_EQUAL(mesh_discovery_wait(b, "au", 3000, &st), MESH_ERR_DISCOVERY);
  mesh_free(b);
  mesh_free(m);
  CU_ASSERT_EQUAL(etcdctl("--user root:rootpw auth disable"), 0);
  etcdctl("del --prefix au/");
}

/* ---- TLS ------------------------------------------------------------------------------
 * A second etcd serving clients over https with client-certificate auth;
 * certificates from openssl (the library's dev CA mints SPIFFE SVIDs, not
 * etcd server certificates).  etcd's gateway dials its own gRPC server
 * with the server certificate, so that one needs clientAuth as well. */

static int tport, tpport;
static pid_t tls_pid;

static bool mint(const char *name, const char *cn, const char *eku) {
  char cmd[2048], ext[64];
  snprintf(ext, sizeof ext, "%s.ext", name);
  char body[256];
  snprintf(body, sizeof body,
           "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=%s\n", eku);
  if (!th_write(th_path(ext), body))
    return false;
  snprintf(cmd, sizeof cmd,
           "cd %s && openssl req -newkey ec -pkeyopt "
           "ec_paramgen_curve:prime256v1 -nodes -keyout %s.key -out %s.csr "
           "-subj /CN=%s && openssl x509 -req -in %s.csr -CA ca.crt "
           "-CAkey ca.key -CAcreateserial -out %s.crt -days 1 -extfile %s",
           th_tmpdir(), name, name, cn, name, name, ext);
  return th_sh(cmd) == 0;
}

static int tls_init(void) {
  if (!th_require("openssl", "openssl"))
    return 1;
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "cd %s && openssl req -x509 -newkey ec -pkeyopt "
           "ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt "
           "-days 1 -subj /CN=etcd-test-ca",
           th_tmpdir());
  if (th_sh(cmd) != 0 || !mint("srv", "etcd", "serverAuth,clientAuth") ||
      !mint("cli", "root", "clientAuth"))
    return 1;
  tport = th_free_port();
  do
    tpport = th_free_port();
  while (tpport == tport);
  char data[600], lc[80], ac[80], lp[80], ap[80], ic[100], cert[600], key[600],
      ca[600];
  snprintf(data, sizeof data, "--data-dir=%s", th_path("etcd-tls-data"));
  snprintf(lc, sizeof lc, "--listen-client-urls=https://127.0.0.1:%d", tport);
  snprintf(ac, sizeof ac, "--advertise-client-urls=https://127.0.0.1:%d",
           tport);
  snprintf(lp, sizeof lp, "--listen-peer-urls=http://127.0.0.1:%d", tpport);
  snprintf(ap, sizeof ap, "--initial-advertise-peer-urls=http://127.0.0.1:%d",
           tpport);
  snprintf(ic, sizeof ic, "--initial-cluster=default=http://127.0.0.1:%d",
           tpport);
  snprintf(cert, sizeof cert, "--cert-file=%s", th_path("srv.crt"));
  snprintf(key, sizeof key, "--key-file=%s", th_path("srv.key"));
  snprintf(ca, sizeof ca, "--trusted-ca-file=%s", th_path("ca.crt"));
  const char *argv[] = {"etcd", "--name=default", data, lc, ac, lp, ap, ic,
                        cert, key, ca, "--client-cert-auth",
                        "--heartbeat-interval=10", "--election-timeout=100",
                        NULL};
  tls_pid = th_spawn(argv, "etcd-tls.log");
  if (tls_pid <= 0 || !th_wait_port(tport, 10000))
    return 1;
  for (int i = 0; i < 50; i++) {
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:%d "
             "--cacert=%s --cert=%s --key=%s put tls/127.14.4.4:443 "
             "'{\"Addr\":\"127.14.4.4:443\"}'",
             tport, th_path("ca.crt"), th_path("cli.crt"), th_path("cli.key"));
    if (th_sh(cmd) == 0)
      return 0;
    usleep(100000);
  }
  return 1;
}

static int tls_clean(void) {
  th_stop(tls_pid);
  return 0;
}

static mesh_t *tls_mesh(bool ca, bool client) {
  char json[2048], cak[700] = "", clik[1400] = "";
  if (ca)
    snprintf(cak, sizeof cak, ",\"ca\":\"%s\"", th_path("ca.crt"));
  if (client)
    snprintf(clik, sizeof clik, ",\"cert\":\"%s\",\"key\":\"%s\"",
             th_path("cli.crt"), th_path("cli.key"));
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"tls\":{"
           "\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
           "[\"https://127.0.0.1:%d\"],\"timeout_ms\":5000%s%s}}}}",
           tport, cak, clik);
  return new_mesh(json);
}

static void test_etcd_tls(void) {
  mesh_t *m = tls_mesh(true, true);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_status_t st0;
  /* generous: TLS set-up is slow under valgrind */
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "tls", 10000, &st0), MESH_OK);
  mesh__disc_stats_t ds0;
  stats_of(m, "tls", &ds0);
  if (ds0.errors)
    fprintf(stderr, "tls: %s\n", ds0.last_error);
  CU_ASSERT(wait_desc(m, "tls", "127.14.4.4:443/1", 0) >= 0);
  mesh_free(m);
  /* no client certificate: etcd refuses; no CA: we refuse etcd */
  mesh_status_t st;
  m = tls_mesh(true, false);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "tls", 10000, &st),
                  MESH_ERR_DISCOVERY);
  mesh_free(m);
  m = tls_mesh(false, true);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "tls", 10000, &st),
                  MESH_ERR_DISCOVERY);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "certificate"));
  mesh_free(m);
}

/* ---- the bound on concurrent lists ------------------------------------------
 * A loopback proxy between the context and etcd counts range requests in
 * flight (a "POST /v3/kv/range" seen, its answer not begun) and holds each
 * answer back 50 ms, so that lists sent together overlap at the server. */

#define LP_MAX 2048
#define LP_DELAY_MS 50

typedef struct lproxy {
  int lfd, port;
  _Atomic bool stop;
  pthread_t th;
  /* written by the proxy thread, read after the join */
  int inflight, peak;
  _Atomic int ranges, watches; /* requests seen, also read while running */
  /* a range whose request holds this string is answered only once release
   * is set; cut closes every connection and refuses new ones */
  const char *hold_match;
  _Atomic bool release, cut;
  struct lp_conn {
    int c, u;
    bool range, held;
    int64_t t_req;
  } conn[LP_MAX];
  int n;
} lproxy_t;

static bool lp_write(int fd, const char *b, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, b, (size_t)n);
    if (w <= 0)
      return false;
    b += w;
    n -= w;
  }
  return true;
}

static void lp_close(lproxy_t *p, int i) {
  if (p->conn[i].range)
    p->inflight--;
  close(p->conn[i].c);
  close(p->conn[i].u);
  p->conn[i] = p->conn[--p->n];
}

static void lp_accept(lproxy_t *p) {
  int c = accept(p->lfd, NULL, NULL);
  if (c < 0)
    return;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)cport),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int u = socket(AF_INET, SOCK_STREAM, 0);
  if (p->n == LP_MAX || u < 0 ||
      connect(u, (struct sockaddr *)&a, sizeof a) != 0) {
    close(c);
    if (u >= 0)
      close(u);
    return;
  }
  p->conn[p->n++] = (struct lp_conn){.c = c, .u = u};
}

/* One pass over the connections: forward what is readable (an answer to a
 * range once LP_DELAY_MS passed since its request). */
static void lp_pass(lproxy_t *p, struct pollfd *fds) {
  int64_t now = th_now_ms();
  for (int i = p->n - 1; i >= 0; i--) {
    struct lp_conn *k = &p->conn[i];
    char buf[65536];
    if (fds[1 + 2 * i].revents) {
      ssize_t r = read(k->c, buf, sizeof buf);
      if (r <= 0 || !lp_write(k->u, buf, r)) {
        lp_close(p, i);
        continue;
      }
      if (!k->range && memmem(buf, (size_t)r, "POST /v3/kv/range", 17)) {
        k->range = true;
        k->t_req = now;
        p->ranges++;
        if (++p->inflight > p->peak)
          p->peak = p->inflight;
      }
      if (memmem(buf, (size_t)r, "POST /v3/watch", 14))
        p->watches++;
      if (k->range && p->hold_match &&
          memmem(buf, (size_t)r, p->hold_match, strlen(p->hold_match)))
        k->held = true;
    }
    if (fds[2 + 2 * i].revents) {
      if (k->range) {
        k->range = false;
        k->held = false;
        p->inflight--;
      }
      ssize_t r = read(k->u, buf, sizeof buf);
      if (r <= 0 || !lp_write(k->c, buf, r))
        lp_close(p, i);
    }
  }
}

static void *lp_main(void *arg) {
  lproxy_t *p = arg;
  static struct pollfd fds[1 + 2 * LP_MAX];
  while (!atomic_load(&p->stop)) {
    int64_t now = th_now_ms();
    bool cut = atomic_load(&p->cut);
    while (cut && p->n > 0)
      lp_close(p, p->n - 1);
    fds[0] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
    for (int i = 0; i < p->n; i++) {
      struct lp_conn *k = &p->conn[i];
      bool hold = k->range && (now < k->t_req + LP_DELAY_MS ||
                               (k->held && !atomic_load(&p->release)));
      fds[1 + 2 * i] = (struct pollfd){.fd = k->c, .events = POLLIN};
      fds[2 + 2 * i] =
          (struct pollfd){.fd = k->u, .events = hold ? 0 : POLLIN};
    }
    int nf = 1 + 2 * p->n;
    if (poll(fds, (nfds_t)nf, 5) <= 0)
      continue;
    lp_pass(p, fds);
    int refused = fds[0].revents && cut ? accept(p->lfd, NULL, NULL) : -1;
    if (refused >= 0)
      close(refused);
    else if (fds[0].revents && !cut)
      lp_accept(p);
  }
  while (p->n > 0)
    lp_close(p, p->n - 1);
  close(p->lfd);
  return NULL;
}

static bool lp_start(lproxy_t *p) {
  memset(p, 0, sizeof *p);
  p->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(p->lfd, 1024) != 0 ||
      getsockname(p->lfd, (struct sockaddr *)&a, &al) != 0)
    return false;
  p->port = ntohs(a.sin_port);
  return pthread_create(&p->th, NULL, lp_main, p) == 0;
}

/* Write services l0..l{n-1}, one endpoint each, through the gateway (txns
 * of 100 puts; etcd allows 128 operations per txn). */
static bool lists_put(int n) {
  for (int base = 0; base < n; base += 100) {
    char *body = malloc(100 * 256 + 64), cmd[1024];
    size_t off = (size_t)snprintf(body, 64, "{\"success\":[");
    for (int i = base; i < n && i < base + 100; i++) {
      char k[64], v[128];
      snprintf(k, sizeof k, "l%d/127.20.0.1:%d", i, 1000 + i);
      snprintf(v, sizeof v, "{\"Op\":0,\"Addr\":\"127.20.0.1:%d\"}", 1000 + i);
      char *kb = mesh__b64_encode(k, strlen(k));
      char *vb = mesh__b64_encode(v, strlen(v));
      off += (size_t)snprintf(body + off, 256,
                              "%s{\"request_put\":{\"key\":\"%s\","
                              "\"value\":\"%s\"}}",
                              i > base ? "," : "", kb, vb);
      free(kb);
      free(vb);
    }
    snprintf(body + off, 8, "]}");
    FILE *f = fopen(th_path("txn.json"), "w");
    fputs(body, f);
    fclose(f);
    free(body);
    snprintf(cmd, sizeof cmd,
             "curl -sf -o /dev/null -X POST --data-binary @%s "
             "http://127.0.0.1:%d/v3/kv/txn",
             th_path("txn.json"), cport);
    if (th_sh(cmd) != 0)
      return false;
  }
  return true;
}

/* 200 services through one context all reach their lists, and etcd never
 * has more than MESH__ETCD_MAX_LISTS of the context's lists in flight. */
static void test_etcd_list_bound(void) {
  enum { N = 200 };
  CU_ASSERT_FATAL(lists_put(N));
  static lproxy_t p;
  CU_ASSERT_FATAL(lp_start(&p));
  size_t cap = (size_t)N * 256 + 256, off = 0;
  char *json = malloc(cap);
  off += (size_t)snprintf(json, cap,
                          "{\"log\":{\"level\":\"error\"},\"services\":{");
  for (int i = 0; i < N; i++)
    off += (size_t)snprintf(
        json + off, cap - off,
        "%s\"l%d\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
        "[\"http://127.0.0.1:%d\"],\"backoff_base_ms\":50}}",
        i ? "," : "", i, p.port);
  snprintf(json + off, cap - off, "}}");
  mesh_t *m = new_mesh(json);
  free(json);
  int listed = 0;
  for (int i = 0; m && i < N; i++) {
    char svc[16], want[64], got[64];
    snprintf(svc, sizeof svc, "l%d", i);
    snprintf(want, sizeof want, "127.20.0.1:%d/1", 1000 + i);
    mesh_status_t st;
    if (mesh_discovery_wait(m, svc, TH_CAP_MS, &st) != MESH_OK)
      fprintf(stderr, "%s: %s\n", svc, st.message);
    describe(m, svc, got, sizeof got);
    listed += strcmp(got, want) == 0;
  }
  mesh_free(m);
  atomic_store(&p.stop, true);
  pthread_join(p.th, NULL);
  etcdctl("del --prefix l");
  CU_ASSERT_PTR_NOT_NULL(m);
  CU_ASSERT_EQUAL(listed, N);
  /* every service listed through the proxy, and they overlapped there */
  CU_ASSERT(p.ranges >= N);
  CU_ASSERT(p.peak >= 2);
  CU_ASSERT(p.peak <= MESH__ETCD_MAX_LISTS);
  fprintf(stderr, "lists in flight at etcd: peak %d (bound %d), %d lists\n",
          p.peak, MESH__ETCD_MAX_LISTS, p.ranges);
}

/* Failed lists give their slot back: 3x the bound of services on an
 * unreachable cluster all get their first answer (an error) and retry. */
static void test_etcd_list_bound_failures(void) {
  enum { N = 3 * MESH__ETCD_MAX_LISTS };
  int dead = th_free_port();
  size_t cap = (size_t)N * 256 + 256, off = 0;
  char *json = malloc(cap);
  off += (size_t)snprintf(json, cap,
                          "{\"log\":{\"level\":\"error\"},\"services\":{");
  for (int i = 0; i < N; i++)
    off += (size_t)snprintf(
        json + off, cap - off,
        "%s\"f%d\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
        "[\"http://127.0.0.1:%d\"],\"timeout_ms\":300,"
        "\"backoff_base_ms\":20,\"backoff_max_ms\":50}}",
        i ? "," : "", i, dead);
  snprintf(json + off, cap - off, "}}");
  mesh_t *m = new_mesh(json);
  free(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int answered = 0;
  for (int i = 0; i < N; i++) {
    char svc[16];
    snprintf(svc, sizeof svc, "f%d", i);
    mesh_status_t st;
    answered += mesh_discovery_wait(m, svc, TH_CAP_MS, &st) ==
                MESH_ERR_DISCOVERY;
  }
  CU_ASSERT_EQUAL(answered, N);
  mesh__disc_stats_t ds = {0};
  char last[16];
  snprintf(last, sizeof last, "f%d", N - 1);
  bool ok;
  TH_WAIT_UNTIL(ok, (stats_of(m, "f0", &ds), ds.errors >= 3) &&
                        (stats_of(m, last, &ds), ds.errors >= 3),
                "etcd lists retried past the bound");
  CU_ASSERT(ok);
  mesh_free(m);
}

/* ---- one client and one watch per cluster ------------------------------------
 * The services of a context on one etcd cluster share a client and a
 * watch stream over the range spanning their prefixes; events reach only
 * the services whose prefix the key is under. */

static void lp_stop(lproxy_t *p) {
  atomic_store(&p->stop, true);
  pthread_join(p->th, NULL);
}

/* services "<pfx>0".."<pfx>{n-1}" through port, plus extra (JSON members
 * with their leading comma, or ""). */
static char *shared_cfg(const char *pfx, int n, int port, const char *extra) {
  size_t cap = (size_t)n * 256 + strlen(extra) + 256, off = 0;
  char *json = malloc(cap);
  off += (size_t)snprintf(json, cap,
                          "{\"log\":{\"level\":\"error\"},\"services\":{");
  for (int i = 0; i < n; i++)
    off += (size_t)snprintf(
        json + off, cap - off,
        "%s\"%s%d\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
        "[\"http://127.0.0.1:%d\"],\"timeout_ms\":1000,"
        "\"backoff_base_ms\":50,\"backoff_max_ms\":200}}",
        i ? "," : "", pfx, i, port);
  snprintf(json + off, cap - off, "%s}}", extra);
  return json;
}

/* Over 60 lines: one context's sequence (list, then each kind of key the
 * shared watch must route or drop), asserted in order. */
static void test_etcd_shared_watch(void) {
  enum { N = 30 };
  char cmd[256];
  for (int i = 0; i < N; i++) {
    snprintf(cmd, sizeof cmd, "put w%d/a '{\"Addr\":\"127.22.0.%d:80\"}'", i,
             i + 1);
    CU_ASSERT_EQUAL_FATAL(etcdctl(cmd), 0);
  }
  static lproxy_t p;
  CU_ASSERT_FATAL(lp_start(&p));
  /* "same" shares w3's prefix; "direct" is another cluster (no proxy) */
  char extra[512];
  snprintf(extra, sizeof extra,
           ",\"same\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
           "[\"http://127.0.0.1:%d\"],\"timeout_ms\":1000,\"prefix\":\"w3\"}},"
           "\"direct\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
           "[\"http://127.0.0.1:%d\"],\"timeout_ms\":1000,\"prefix\":\"w4\"}}",
           p.port, cport);
  char *json = shared_cfg("w", N, p.port, extra);
  mesh_t *m = new_mesh(json);
  free(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char svc[16], want[64];
  for (int i = 0; i < N; i++) {
    snprintf(svc, sizeof svc, "w%d", i);
    snprintf(want, sizeof want, "127.22.0.%d:80/1", i + 1);
    CU_ASSERT(wait_desc(m, svc, want, 5000) >= 0);
  }
  CU_ASSERT(wait_desc(m, "same", "127.22.0.4:80/1", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "direct", "127.22.0.5:80/1", 5000) >= 0);
  /* keys between the prefixes ("w1x/", "w2") and under a longer prefix
   * ("w1/x/" is w1's) */
  CU_ASSERT_EQUAL(etcdctl("put w1x/b '{\"Addr\":\"127.22.1.1:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put w2 '{\"Addr\":\"127.22.1.2:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put w1/x/c '{\"Addr\":\"127.22.1.3:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put w3/b '{\"Addr\":\"127.22.1.4:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("del w17/a"), 0);
  CU_ASSERT_EQUAL(etcdctl("put w4/b '{\"Addr\":\"127.22.1.5:80\"}'"), 0);
  CU_ASSERT(wait_desc(m, "w1", "127.22.0.2:80/1,127.22.1.3:80/1", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "w3", "127.22.0.4:80/1,127.22.1.4:80/1", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "same", "127.22.0.4:80/1,127.22.1.4:80/1", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "w17", "", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "w4", "127.22.0.5:80/1,127.22.1.5:80/1", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "direct", "127.22.0.5:80/1,127.22.1.5:80/1", 5000) >=
            0);
  CU_ASSERT(wait_desc(m, "w2", "127.22.0.3:80/1", 0) >= 0);
  CU_ASSERT(wait_desc(m, "w0", "127.22.0.1:80/1", 0) >= 0);
  /* 31 services through the proxy: 31 lists, one watch */
  CU_ASSERT_EQUAL(atomic_load(&p.watches), 1);
  CU_ASSERT_EQUAL(atomic_load(&p.ranges), N + 1);
  mesh_free(m);
  lp_stop(&p);
  etcdctl("del --prefix w");
}

/* An event the watch delivers while a service's list is in flight (its
 * answer older than the event) is applied after the answer. */
static void test_etcd_event_while_listing(void) {
  CU_ASSERT_EQUAL(etcdctl("put qa/a '{\"Addr\":\"127.23.0.1:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put qb/a '{\"Addr\":\"127.23.0.2:80\"}'"), 0);
  static lproxy_t p;
  CU_ASSERT_FATAL(lp_start(&p));
  p.hold_match = "cWIv"; /* base64 "qb/": qb's range waits for release */
  char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "{\"log\":{\"level\":\"error\"},\"services\":{"
           "\"qa\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
           "[\"http://127.0.0.1:%d\"],\"timeout_ms\":60000}},"
           "\"qb\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
           "[\"http://127.0.0.1:%d\"],\"timeout_ms\":60000}}}}",
           p.port, p.port);
  mesh_t *m = new_mesh(cfg);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT(wait_desc(m, "qa", "127.23.0.1:80/1", 5000) >= 0);
  bool ok;
  TH_WAIT_UNTIL(ok, atomic_load(&p.watches) >= 1 && atomic_load(&p.ranges) >= 2,
                "qa's watch and qb's list at the proxy");
  /* qb's answer (without b) is held; the watch brings b meanwhile */
  CU_ASSERT_EQUAL(etcdctl("put qb/b '{\"Addr\":\"127.23.0.3:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("put qa/b '{\"Addr\":\"127.23.0.4:80\"}'"), 0);
  /* qa's event came through the same stream: qb's did too, by now */
  CU_ASSERT(wait_desc(m, "qa", "127.23.0.1:80/1,127.23.0.4:80/1", 5000) >= 0);
  char got[128];
  describe(m, "qb", got, sizeof got);
  CU_ASSERT_STRING_EQUAL(got, ""); /* still listing */
  atomic_store(&p.release, true);
  CU_ASSERT(wait_desc(m, "qb", "127.23.0.2:80/1,127.23.0.3:80/1", 5000) >= 0);
  CU_ASSERT_EQUAL(atomic_load(&p.watches), 1);
  mesh_free(m);
  lp_stop(&p);
  etcdctl("del --prefix q");
}

static int64_t etcd_revision(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:%d "
           "endpoint status -w json | grep -o '\"revision\":[0-9]*' | "
           "head -1 | cut -d: -f2 > %s",
           cport, th_path("rev.txt"));
  long long rev = 0;
  FILE *f = th_sh(cmd) == 0 ? fopen(th_path("rev.txt"), "r") : NULL;
  if (f) {
    if (fscanf(f, "%lld", &rev) != 1)
      rev = 0;
    fclose(f);
  }
  return rev;
}

/* A dropped stream resumes where it stopped: the changes made meanwhile
 * arrive and nothing is listed again.  After a compaction past that point
 * etcd cancels the resumed watch: every service lists again. */
/* Over 60 lines: two outages of the same watch in sequence (resume, then
 * compaction), each depending on the state the previous one left. */
static void test_etcd_resume_compaction(void) {
  enum { N = 5 };
  char cmd[256];
  for (int i = 0; i < N; i++) {
    snprintf(cmd, sizeof cmd, "put k%d/a '{\"Addr\":\"127.24.0.%d:80\"}'", i,
             i + 1);
    CU_ASSERT_EQUAL_FATAL(etcdctl(cmd), 0);
  }
  static lproxy_t p;
  CU_ASSERT_FATAL(lp_start(&p));
  char *json = shared_cfg("k", N, p.port, "");
  mesh_t *m = new_mesh(json);
  free(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char svc[16], want[64];
  for (int i = 0; i < N; i++) {
    snprintf(svc, sizeof svc, "k%d", i);
    snprintf(want, sizeof want, "127.24.0.%d:80/1", i + 1);
    CU_ASSERT(wait_desc(m, svc, want, 5000) >= 0);
  }
  int ranges = atomic_load(&p.ranges);
  /* cut: the changes meanwhile come with the resumed stream */
  mesh__disc_stats_t ds;
  atomic_store(&p.cut, true);
  bool ok;
  TH_WAIT_UNTIL(ok, (stats_of(m, "k0", &ds), ds.stale), "k0 sees the cut");
  CU_ASSERT_EQUAL(etcdctl("put k1/b '{\"Addr\":\"127.24.1.1:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("del k2/a"), 0);
  atomic_store(&p.cut, false);
  CU_ASSERT(wait_desc(m, "k1", "127.24.0.2:80/1,127.24.1.1:80/1", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "k2", "", 5000) >= 0);
  TH_WAIT_UNTIL(ok, (stats_of(m, "k0", &ds), !ds.stale), "k0 settles");
  CU_ASSERT_EQUAL(atomic_load(&p.ranges), ranges); /* nothing re-listed */
  /* cut again, change and compact: the resumed watch is canceled */
  atomic_store(&p.cut, true);
  TH_WAIT_UNTIL(ok, (stats_of(m, "k0", &ds), ds.stale), "k0 sees the cut");
  CU_ASSERT_EQUAL(etcdctl("put k3/b '{\"Addr\":\"127.24.1.3:80\"}'"), 0);
  CU_ASSERT_EQUAL(etcdctl("del k4/a"), 0);
  CU_ASSERT_EQUAL(etcdctl("put k0/b '{\"Addr\":\"127.24.1.0:80\"}'"), 0);
  int64_t rev = etcd_revision();
  CU_ASSERT_FATAL(rev > 0);
  snprintf(cmd, sizeof cmd, "compact %lld", (long long)rev);
  CU_ASSERT_EQUAL(etcdctl(cmd), 0);
  atomic_store(&p.cut, false);
  CU_ASSERT(wait_desc(m, "k3", "127.24.0.4:80/1,127.24.1.3:80/1", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "k4", "", 5000) >= 0);
  CU_ASSERT(wait_desc(m, "k0", "127.24.0.1:80/1,127.24.1.0:80/1", 5000) >= 0);
  TH_WAIT_UNTIL(ok, atomic_load(&p.ranges) >= ranges + N,
                "every service listed again after the compaction");
  CU_ASSERT(ok);
  /* and the new watch is live */
  CU_ASSERT_EQUAL(etcdctl("put k4/c '{\"Addr\":\"127.24.2.4:80\"}'"), 0);
  CU_ASSERT(wait_desc(m, "k4", "127.24.2.4:80/1", 5000) >= 0);
  mesh_free(m);
  lp_stop(&p);
  etcdctl("del --prefix k");
}

/* ---- a 3-member cluster ------------------------------------------------------
 * Three real members on loopback; the context lists the three client URLs.
 * One member killed, then the leader: the shared watch moves to the next
 * member and resumes where it stopped, so the changes made meanwhile all
 * arrive. */

static int c3_client[3], c3_peer[3];
static pid_t c3_pid[3];

static bool c3_start(int i) {
  char name[16], data[600], lc[80], ac[80], lp[80], ap[80], ic[400], log[32];
  snprintf(name, sizeof name, "--name=m%d", i);
  snprintf(log, sizeof log, "m%d", i);
  snprintf(data, sizeof data, "--data-dir=%s", th_path(log));
  snprintf(lc, sizeof lc, "--listen-client-urls=http://127.0.0.1:%d",
           c3_client[i]);
  snprintf(ac, sizeof ac, "--advertise-client-urls=http://127.0.0.1:%d",
           c3_client[i]);
  snprintf(lp, sizeof lp, "--listen-peer-urls=http://127.0.0.1:%d", c3_peer[i]);
  snprintf(ap, sizeof ap, "--initial-advertise-peer-urls=http://127.0.0.1:%d",
           c3_peer[i]);
  snprintf(ic, sizeof ic,
           "--initial-cluster=m0=http://127.0.0.1:%d,m1=http://127.0.0.1:%d,"
           "m2=http://127.0.0.1:%d",
           c3_peer[0], c3_peer[1], c3_peer[2]);
  snprintf(log, sizeof log, "etcd-m%d-%d.log", i, ++etcd_gen);
  const char *argv[] = {"etcd", name, data, lc, ac, lp, ap, ic,
                        "--heartbeat-interval=10", "--election-timeout=100",
                        NULL};
  c3_pid[i] = th_spawn(argv, log);
  return c3_pid[i] > 0;
}

/* etcdctl against the members other than `skip` (-1: all). */
static int c3_ctl(int skip, const char *args) {
  char eps[200] = "", cmd[2048];
  size_t off = 0;
  for (int i = 0; i < 3; i++)
    if (i != skip)
      off += (size_t)snprintf(eps + off, sizeof eps - off, "%shttp://127.0.0.1:%d",
                              off ? "," : "", c3_client[i]);
  snprintf(cmd, sizeof cmd,
           "ETCDCTL_API=3 etcdctl --endpoints=%s --command-timeout=5s %s", eps,
           args);
  return th_sh(cmd);
}

/* As c3_ctl, again while the members elect ("leader changed"): bounded. */
static int c3_ctl_retry(int skip, const char *args) {
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; i++) {
    rc = c3_ctl(skip, args);
    if (rc != 0)
      usleep(200000);
  }
  return rc;
}

static int c3_init(void) {
  for (int i = 0; i < 3; i++) {
    c3_client[i] = th_free_port();
    c3_peer[i] = th_free_port();
  }
  for (int i = 0; i < 3; i++)
    if (!c3_start(i))
      return 1;
  for (int i = 0; i < 3; i++)
    if (!th_wait_port(c3_client[i], 10000))
      return 1;
  for (int i = 0; i < 100; i++) {
    if (c3_ctl(-1, "endpoint health") == 0)
      return 0;
    usleep(100000);
  }
  return 1;
}

static int c3_clean(void) {
  for (int i = 0; i < 3; i++)
    if (c3_pid[i] > 0)
      th_stop(c3_pid[i]);
  return 0;
}

/* The index of the member that leads now, or -1. */
static int c3_leader(void) {
  for (int i = 0; i < 3; i++) {
    char args[200];
    snprintf(args, sizeof args,
             "--endpoints=http://127.0.0.1:%d endpoint status | "
             "grep -q ', true, false,'",
             c3_client[i]);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl %s", args);
    if (c3_pid[i] > 0 && th_sh(cmd) == 0)
      return i;
  }
  return -1;
}

static void c3_kill(int i) {
  th_kill(c3_pid[i]);
  c3_pid[i] = 0;
}

/* Over 60 lines: two member kills in sequence, each with the writes made
 * while that member is down and their arrival asserted. */
static void test_etcd_member_kill(void) {
  enum { N = 4 };
  char cmd[256];
  for (int i = 0; i < N; i++) {
    snprintf(cmd, sizeof cmd, "put x%d/a '{\"Addr\":\"127.25.0.%d:80\"}'", i,
             i + 1);
    CU_ASSERT_EQUAL_FATAL(c3_ctl(-1, cmd), 0);
  }
  size_t cap = 4096, off = 0;
  char *json = malloc(cap);
  off += (size_t)snprintf(json, cap,
                          "{\"log\":{\"level\":\"error\"},\"services\":{");
  for (int i = 0; i < N; i++)
    off += (size_t)snprintf(
        json + off, cap - off,
        "%s\"x%d\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
        "[\"http://127.0.0.1:%d\",\"http://127.0.0.1:%d\","
        "\"http://127.0.0.1:%d\"],\"timeout_ms\":1000,"
        "\"backoff_base_ms\":50,\"backoff_max_ms\":200}}",
        i ? "," : "", i, c3_client[0], c3_client[1], c3_client[2]);
  snprintf(json + off, cap - off, "}}");
  mesh_t *m = new_mesh(json);
  free(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char svc[16], want[64];
  for (int i = 0; i < N; i++) {
    snprintf(svc, sizeof svc, "x%d", i);
    snprintf(want, sizeof want, "127.25.0.%d:80/1", i + 1);
    CU_ASSERT(wait_desc(m, svc, want, 5000) >= 0);
  }
  /* the member the client talks to (the first URL) */
  c3_kill(0);
  CU_ASSERT_EQUAL(c3_ctl_retry(0, "put x1/b '{\"Addr\":\"127.25.1.1:80\"}'"), 0);
  CU_ASSERT_EQUAL(c3_ctl_retry(0, "del x2/a"), 0);
  CU_ASSERT(wait_desc(m, "x1", "127.25.0.2:80/1,127.25.1.1:80/1", 10000) >= 0);
  CU_ASSERT(wait_desc(m, "x2", "", 10000) >= 0);
  /* back, then the leader */
  CU_ASSERT_FATAL(c3_start(0));
  bool ok;
  TH_WAIT_UNTIL(ok, c3_ctl(-1, "endpoint health") == 0, "m0 back");
  int leader = -1;
  TH_WAIT_UNTIL(ok, (leader = c3_leader()) >= 0, "a leader");
  CU_ASSERT_FATAL(leader >= 0);
  c3_kill(leader);
  CU_ASSERT_EQUAL(c3_ctl_retry(leader, "put x3/b '{\"Addr\":\"127.25.1.3:80\"}'"), 0);
  CU_ASSERT_EQUAL(c3_ctl_retry(leader, "put x0/b '{\"Addr\":\"127.25.1.0:80\"}'"), 0);
  CU_ASSERT(wait_desc(m, "x3", "127.25.0.4:80/1,127.25.1.3:80/1", 10000) >= 0);
  CU_ASSERT(wait_desc(m, "x0", "127.25.0.1:80/1,127.25.1.0:80/1", 10000) >= 0);
  /* and the watch is live on what is left */
  CU_ASSERT_EQUAL(c3_ctl_retry(leader, "put x2/c '{\"Addr\":\"127.25.2.2:80\"}'"), 0);
  CU_ASSERT(wait_desc(m, "x2", "127.25.2.2:80/1", 10000) >= 0);
  CU_ASSERT(wait_desc(m, "x1", "127.25.0.2:80/1,127.25.1.1:80/1", 0) >= 0);
  mesh_free(m);
  CU_ASSERT_TRUE(c3_start(leader));
}

static void add(void) {
  CU_pSuite s = CU_add_suite("discovery_etcd", suite_init, suite_clean);
  CU_add_test(s, "etcd_list_watch", test_etcd_list_watch);
  CU_add_test(s, "etcd_hostname", test_etcd_hostname);
  CU_add_test(s, "etcd_register", test_etcd_register);
  CU_add_test(s, "etcd_register_sigkill", test_etcd_register_sigkill);
  CU_add_test(s, "etcd_restart", test_etcd_restart);
  CU_add_test(s, "etcd_unreachable", test_etcd_unreachable);
  CU_add_test(s, "etcd_register_unreachable", test_etcd_register_unreachable);
  CU_add_test(s, "etcd_auth", test_etcd_auth);
  CU_add_test(s, "etcd_list_bound", test_etcd_list_bound);
  CU_add_test(s, "etcd_list_bound_failures", test_etcd_list_bound_failures);
  CU_add_test(s, "etcd_shared_watch", test_etcd_shared_watch);
  CU_add_test(s, "etcd_event_while_listing", test_etcd_event_while_listing);
  CU_add_test(s, "etcd_resume_compaction", test_etcd_resume_compaction);
  CU_pSuite t = CU_add_suite("discovery_etcd_tls", tls_init, tls_clean);
  CU_add_test(t, "etcd_tls", test_etcd_tls);
  CU_pSuite c = CU_add_suite("discovery_etcd_cluster", c3_init, c3_clean);
  CU_add_test(c, "etcd_member_kill", test_etcd_member_kill);
}

/* Child mode: register from a config and wait to be killed (bounded). */
static int run_registrant(const char *json) {
  mesh_t *m = new_mesh(json);
  if (!m)
    return 2;
  for (int i = 0; i < 300; i++)
    usleep(100000);
  mesh_free(m);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--register") == 0)
    return run_registrant(argv[2]);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0)
    self_exe[n] = '\0';
  return th_run_suites("test_discovery_etcd", add);
}
