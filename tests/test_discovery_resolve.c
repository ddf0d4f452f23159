/* SPDX-License-Identifier: Apache-2.0 */
/* Hostnames in static and file endpoints, resolved on the worker loop
 * (resolve.c): against a real dnsmasq on a loopback high port (the
 * service's "resolver" servers) and through the system resolver's hosts
 * file ("localhost").  Resolved endpoints are dialed by the call layer
 * against a real mTLS backend (test_call_backend.c). */
#include "helpers.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mesh/discovery.h>

#include "discovery/discovery.h"
#include "test_call_backend.h"
#include "test_dnsmasq.h"

static int dns_port;
static pid_t dns_pid;
static int dns_gen;
static tcb_t backend;

/* ---- helpers -------------------------------------------------------------- */

static const char *hosts_file(void) { return th_path("resolve-hosts"); }

/* dnsmasq with one fixed record plus the addn-hosts file (SIGHUP
 * reloads). */
static bool start_dnsmasq(void) {
  static const char *const records[] = {
      "--host-record=backend.test,127.0.0.1", NULL};
  char logname[32];
  snprintf(logname, sizeof logname, "dnsmasq-%d.log", ++dns_gen);
  dns_pid = tdns_start(dns_port, hosts_file(), records, logname);
  return dns_pid > 0;
}

static const char *initial_hosts = "127.12.0.1 multi.test\n"
                                   "127.12.0.2 multi.test\n"
                                   "fd00::2 multi.test\n"
                                   "::1 moving.test\n";

static int suite_init(void) {
  if (!th_require("dnsmasq", "dnsmasq-base"))
    return 1;
  if (!tcb_start(&backend, "r", "good", 0))
    return 1;
  dns_port = th_free_port();
  if (!th_write(hosts_file(), initial_hosts))
    return 1;
  return start_dnsmasq() ? 0 : 1;
}

static int suite_clean(void) {
  th_stop(dns_pid);
  tcb_stop(&backend);
  return 0;
}

static void reload_hosts(const char *content) {
  CU_ASSERT_TRUE(th_write(hosts_file(), content));
  kill(dns_pid, SIGHUP);
}

/* A client with service "echo" discovered by `disc` (a JSON object). */
static mesh_t *client(const char *disc) {
  char json[4096];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"echo\":{"
           "\"peers\":[\"" TCB_BACKEND_ID "\"],\"discovery\":%s,"
           "\"lb\":{\"policy\":\"round_robin\"}}}}",
           tcb_client_identity(), disc);
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  return m;
}

/* The "resolver" member naming our dnsmasq. */
static const char *resolver(int timeout_ms) {
  static char buf[256];
  snprintf(buf, sizeof buf,
           "\"resolver\":{\"servers\":[\"127.0.0.1:%d\"],\"min_ttl_ms\":100,"
           "\"max_ttl_ms\":2000,\"timeout_ms\":%d}",
           dns_port, timeout_ms);
  return buf;
}

/* "addr:port/hostname/weight,..." of the current set, in set order. */
static void describe(mesh_t *m, char *out, size_t len) {
  mesh_endpoints_t *e = NULL;
  out[0] = '\0';
  if (mesh_endpoints_get(m, "echo", &e, NULL) != MESH_OK)
    return;
  size_t off = 0;
  for (size_t i = 0; i < mesh_endpoints_count(e) && off < len; i++)
    off += (size_t)snprintf(out + off, len - off, "%s%s:%d/%s/%u",
                            i ? "," : "", mesh_endpoint_address(e, i),
                            mesh_endpoint_port(e, i),
                            mesh_endpoint_hostname(e, i),
                            mesh_endpoint_weight(e, i));
  mesh_endpoints_free(e);
}

static bool wait_desc(mesh_t *m, const char *want, int ms) {
  char got[2048];
  for (int i = 0; i <= ms / 10; i++) {
    describe(m, got, sizeof got);
    if (strcmp(got, want) == 0)
      return true;
    usleep(10000);
  }
  fprintf(stderr, "want \"%s\", have \"%s\"\n", want, got);
  return false;
}

static void stats_of(mesh_t *m, mesh__disc_stats_t *out) {
  memset(out, 0, sizeof *out);
  mesh__disc_stats(mesh__service_find(m, "echo"), out);
}

/* One PING through the call layer (pick, dial, mTLS, peer check). */
static int ping(mesh_t *m, mesh_status_t *st) {
  tcb_reply_t r;
  memset(&r, 0, sizeof r);
  int rc = mesh_call_do(m, "echo", NULL, tcb_try, &r, st);
  if (rc == MESH_OK && r.status != 200)
    rc = MESH_ERR_INTERNAL;
  return rc;
}

/* Up to `tries` calls until one succeeds: a set may hold an address
 * nothing listens on (::1 from the hosts file, the record before a
 * change). */
static int ping_until_ok(mesh_t *m, int tries) {
  mesh_status_t st;
  int rc = MESH_ERR_INTERNAL;
  for (int i = 0; i < tries && rc != MESH_OK; i++)
    rc = ping(m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "call: %s\n", st.message);
  return rc;
}

static void static_disc(char *out, size_t len, const char *eps,
                        const char *res) {
  snprintf(out, len, "{\"type\":\"static\",\"endpoints\":[%s]%s%s}", eps,
           res ? "," : "", res ? res : "");
}

/* A client whose one static endpoint is name:<the backend's port>. */
static mesh_t *client_named(const char *name, const char *res) {
  char eps[128], disc[512];
  snprintf(eps, sizeof eps, "{\"address\":\"%s\",\"port\":%d}", name,
           backend.port);
  static_disc(disc, sizeof disc, eps, res);
  return client(disc);
}

/* ---- tests ----------------------------------------------------------------- */

/* A static endpoint given as a name: resolved through the service's DNS
 * server, then dialed by the call layer. */
static void test_mesh__resolver_update_dial(void) {
  mesh_t *m = client_named("backend.test", resolver(600));
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "echo", 3000, &st), MESH_OK);
  char want[128];
  snprintf(want, sizeof want, "127.0.0.1:%d/backend.test/1", backend.port);
  CU_ASSERT_TRUE(wait_desc(m, want, 0));
  int rc = ping(m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "call: %s\n", st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  /* mesh_dial of the service too */
  mesh_conn_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_dial(m, "echo", NULL, &c, &st), MESH_OK);
  if (c)
    CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), TCB_BACKEND_ID);
  mesh_conn_close(c);
  mesh__disc_stats_t ds;
  stats_of(m, &ds);
  CU_ASSERT_EQUAL(ds.errors, 0);
  CU_ASSERT_EQUAL(ds.version, 1);
  CU_ASSERT_STRING_EQUAL(ds.source, "static");
  mesh_free(m);
}

/* Every address of a name is an endpoint (STRICT_DNS) with the endpoint's
 * attributes; literals pass through; NXDOMAIN is an answer (no address,
 * no error); the set is published once, when every name has answered. */
static void test_mesh__resolver_update_many(void) {
  char disc[1024];
  static_disc(disc, sizeof disc,
              "{\"address\":\"multi.test\",\"port\":80,\"weight\":3,"
              "\"labels\":{\"v\":\"2\"}},"
              "{\"address\":\"127.19.0.1\",\"port\":81},"
              "{\"address\":\"missing.test\",\"port\":82}",
              resolver(600));
  mesh_t *m = client(disc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "echo", 3000, NULL), MESH_OK);
  CU_ASSERT_TRUE(wait_desc(m,
                           "127.12.0.1:80/multi.test/3,127.12.0.2:80/multi.test/3,"
                           "127.19.0.1:81//1,fd00::2:80/multi.test/3",
                           0));
  mesh_endpoints_t *e = NULL;
  CU_ASSERT_EQUAL(mesh_endpoints_get(m, "echo", &e, NULL), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_endpoint_label(e, 3, "v"), "2");
  mesh_endpoints_free(e);
  mesh__disc_stats_t ds;
  stats_of(m, &ds);
  CU_ASSERT_EQUAL(ds.errors, 0);
  CU_ASSERT_EQUAL(ds.version, 1);
  mesh_free(m);
}

/* A changed record is followed after its TTL (1 s): the endpoint moves
 * from an address nothing listens on to the backend's. */
static void test_mesh__resolver_ttl_change(void) {
  mesh_t *m = client_named("moving.test", resolver(600));
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char want[128];
  snprintf(want, sizeof want, "::1:%d/moving.test/1", backend.port);
  CU_ASSERT_TRUE(wait_desc(m, want, 3000));
  mesh_status_t st;
  CU_ASSERT_NOT_EQUAL(ping(m, &st), MESH_OK); /* nothing on [::1]:port */

  char hosts[512];
  snprintf(hosts, sizeof hosts, "%s", initial_hosts);
  char *mv = strstr(hosts, "::1 moving.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mv);
  snprintf(mv, sizeof hosts - (size_t)(mv - hosts), "127.0.0.1 moving.test\n");
  reload_hosts(hosts);
  int64_t t0 = mesh__now_ms();
  snprintf(want, sizeof want, "127.0.0.1:%d/moving.test/1", backend.port);
  CU_ASSERT_TRUE(wait_desc(m, want, 4000));
  /* TTL 1 s + a round trip, with slack for a loaded (sanitized) run */
  int64_t dt = mesh__now_ms() - t0;
  if (dt > 3000)
    fprintf(stderr, "change seen after %lld ms\n", (long long)dt);
  CU_ASSERT(dt <= 3000);
  CU_ASSERT_EQUAL(ping_until_ok(m, 3), MESH_OK);
  mesh__disc_stats_t ds;
  stats_of(m, &ds);
  CU_ASSERT_EQUAL(ds.errors, 0);
  CU_ASSERT_EQUAL(ds.version, 2); /* unchanged answers publish nothing */
  mesh_free(m);
  reload_hosts(initial_hosts);
}

/* "localhost" through the system resolver: c-ares reads /etc/hosts. */
static void test_mesh__resolver_localhost(void) {
  mesh_t *m = client_named("localhost", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "echo", 3000, &st), MESH_OK);
  mesh_endpoints_t *e = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_endpoints_get(m, "echo", &e, NULL), MESH_OK);
  /* 127.0.0.1, and ::1 where the hosts file lists it */
  bool v4 = false, other = false;
  for (size_t i = 0; i < mesh_endpoints_count(e); i++) {
    const char *a = mesh_endpoint_address(e, i);
    if (strcmp(a, "127.0.0.1") == 0)
      v4 = true;
    else if (strcmp(a, "::1") != 0)
      other = true;
    CU_ASSERT_STRING_EQUAL(mesh_endpoint_hostname(e, i), "localhost");
    CU_ASSERT_EQUAL(mesh_endpoint_port(e, i), backend.port);
  }
  mesh_endpoints_free(e);
  CU_ASSERT_TRUE(v4);
  CU_ASSERT_FALSE(other);
  CU_ASSERT_EQUAL(ping_until_ok(m, 3), MESH_OK);
  mesh_free(m);
}

/* The file source: names resolved; a file of literals only stops the
 * resolver, and names again restart it. */
static void test_mesh__resolver_release(void) {
  const char *path = th_path("resolve-eps.json");
  CU_ASSERT_TRUE_FATAL(th_write(path, "[{\"address\":\"backend.test\","
                                      "\"port\":1000}]"));
  char disc[512];
  snprintf(disc, sizeof disc,
           "{\"type\":\"file\",\"path\":\"%s\",\"poll_interval_ms\":20,%s}",
           path, resolver(600));
  mesh_t *m = client(disc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(wait_desc(m, "127.0.0.1:1000/backend.test/1", 3000));
  /* a new file: write then rename, with a different size */
  const char *tmp = th_path("resolve-eps.tmp");
  CU_ASSERT_TRUE(th_write(tmp, "[{\"address\":\"127.10.0.7\",\"port\":1001}]"));
  CU_ASSERT_EQUAL(rename(tmp, path), 0);
  CU_ASSERT_TRUE(wait_desc(m, "127.10.0.7:1001//1", 3000));
  CU_ASSERT_TRUE(th_write(tmp, "[{\"address\":\"multi.test\",\"port\":1002},"
                               "{\"address\":\"backend.test\",\"port\":1003}]"));
  CU_ASSERT_EQUAL(rename(tmp, path), 0);
  CU_ASSERT_TRUE(wait_desc(m,
                           "127.0.0.1:1003/backend.test/1,"
                           "127.12.0.1:1002/multi.test/1,127.12.0.2:1002/multi.test/1,"
                           "fd00::2:1002/multi.test/1",
                           3000));
  mesh__disc_stats_t ds;
  stats_of(m, &ds);
  CU_ASSERT_EQUAL(ds.errors, 0);
  mesh_free(m);
}

/* Fail static: the DNS server stopped, the name keeps its addresses and
 * the error is counted; back, the stale flag clears. */
static void test_mesh__resolver_fail_static(void) {
  char disc[512];
  static_disc(disc, sizeof disc,
              "{\"address\":\"backend.test\",\"port\":2000},"
              "{\"address\":\"127.10.0.9\",\"port\":2001}",
              resolver(300));
  mesh_t *m = client(disc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const char *want = "127.0.0.1:2000/backend.test/1,127.10.0.9:2001//1";
  CU_ASSERT_TRUE(wait_desc(m, want, 3000));
  th_stop(dns_pid);
  dns_pid = 0;
  mesh__disc_stats_t ds;
  bool ok;
  TH_WAIT_UNTIL(ok, (stats_of(m, &ds), ds.errors >= 2),
                "resolver outage: 2 errors");
  CU_ASSERT(ok);
  CU_ASSERT_TRUE(ds.stale);
  CU_ASSERT_PTR_NOT_NULL(strstr(ds.last_error, "resolve backend.test: "));
  CU_ASSERT_TRUE(wait_desc(m, want, 0));

  /* first answer failed: no set, the dial's error says why */
  char disc2[512];
  static_disc(disc2, sizeof disc2,
              "{\"address\":\"backend.test\",\"port\":2000}", resolver(300));
  mesh_t *m2 = client(disc2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m2);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_discovery_wait(m2, "echo", 3000, &st),
                  MESH_ERR_DISCOVERY);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "resolve backend.test"));
  mesh_free(m2);

  CU_ASSERT_TRUE_FATAL(start_dnsmasq());
  for (int i = 0; i < 500; i++) {
    stats_of(m, &ds);
    if (!ds.stale)
      break;
    usleep(10000);
  }
  CU_ASSERT_FALSE(ds.stale);
  CU_ASSERT_TRUE(wait_desc(m, want, 0));
  mesh_free(m);
}

/* Nothing blocks mesh_new or mesh_free while the server is silent. */
static void test_mesh__resolver_free_inflight(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  /* no identity: only discovery's own work is timed */
  char json[512];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"echo\":{"
           "\"discovery\":{\"type\":\"static\",\"endpoints\":[{\"address\":"
           "\"silent.test\",\"port\":1}],\"resolver\":{\"servers\":"
           "[\"127.0.0.1:%d\"],\"timeout_ms\":3000}}}}}",
           ntohs(sa.sin_port));
  int64_t t0 = mesh__now_ms();
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, NULL), MESH_OK);
  CU_ASSERT(mesh__now_ms() - t0 < 500);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "echo", 100, NULL), MESH_ERR_TIMEOUT);
  t0 = mesh__now_ms();
  mesh_free(m);
  CU_ASSERT(mesh__now_ms() - t0 < 500);
  close(fd);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("discovery_resolve", suite_init, suite_clean);
  CU_add_test(s, "mesh__resolver_update dial", test_mesh__resolver_update_dial);
  CU_add_test(s, "mesh__resolver_update many", test_mesh__resolver_update_many);
  CU_add_test(s, "mesh__resolver ttl change", test_mesh__resolver_ttl_change);
  CU_add_test(s, "mesh__resolver localhost", test_mesh__resolver_localhost);
  CU_add_test(s, "mesh__resolver_release", test_mesh__resolver_release);
  CU_add_test(s, "mesh__resolver fail static", test_mesh__resolver_fail_static);
  CU_add_test(s, "mesh__resolver_free in flight",
              test_mesh__resolver_free_inflight);
}

int main(int argc, char **argv) {
  int rc = tcb_maybe_backend(argc, argv);
  if (rc >= 0)
    return rc;
  return th_run_suites("test_discovery_resolve", add);
}
