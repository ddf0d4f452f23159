/* SPDX-License-Identifier: Apache-2.0 */
/* DNS source against a real dnsmasq on a loopback high port (A, AAAA, SRV,
 * TTL-driven re-resolution, outage and recovery), and against a fake
 * server in this process for faults dnsmasq will not produce (SERVFAIL,
 * malformed answers, silence). */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mesh/discovery.h>

#include "discovery/discovery.h"
#include "test_dnsmasq.h"

static int dns_port;
static pid_t dns_pid;
static int dns_gen;

/* ---- helpers -------------------------------------------------------------- */

static mesh_t *new_mesh(const char *json) {
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  return m;
}

/* "addr:port/prio/weight,..." of the current set, in set order. */
static void describe(mesh_t *m, const char *svc, char *out, size_t len) {
  mesh_endpoints_t *e = NULL;
  out[0] = '\0';
  if (mesh_endpoints_get(m, svc, &e, NULL) != MESH_OK)
    return;
  size_t off = 0;
  for (size_t i = 0; i < mesh_endpoints_count(e) && off < len; i++)
    off += (size_t)snprintf(out + off, len - off, "%s%s:%d/%u/%u",
                            i ? "," : "", mesh_endpoint_address(e, i),
                            mesh_endpoint_port(e, i),
                            mesh_endpoint_priority(e, i),
                            mesh_endpoint_weight(e, i));
  mesh_endpoints_free(e);
}

static bool wait_desc(mesh_t *m, const char *svc, const char *want, int ms) {
  char got[1024];
  for (int i = 0; i <= ms / 10; i++) {
    describe(m, svc, got, sizeof got);
    if (strcmp(got, want) == 0)
      return true;
    usleep(10000);
  }
  fprintf(stderr, "%s: want \"%s\", have \"%s\"\n", svc, want, got);
  return false;
}

static void stats_of(mesh_t *m, const char *svc, mesh__disc_stats_t *out) {
  memset(out, 0, sizeof *out);
  mesh__disc_stats(mesh__service_find(m, svc), out);
}

static const char *hosts_file(void) { return th_path("dns-hosts"); }

/* dnsmasq with fixed records plus the addn-hosts file (SIGHUP reloads). */
static bool start_dnsmasq(void) {
  static const char *const records[] = {
      "--host-record=a.test,127.10.0.1,fd00::1",
      "--host-record=b.test,127.10.0.2",
      "--host-record=six.test,fd00::6",
      "--srv-host=_http._tcp.svc.test,a.test,8080,1,10",
      "--srv-host=_http._tcp.svc.test,b.test,9090,0,0",
      "--srv-host=_http._tcp.empty.test,.,0,0,0", NULL};
  char logname[32];
  snprintf(logname, sizeof logname, "dnsmasq-%d.log", ++dns_gen);
  dns_pid = tdns_start(dns_port, hosts_file(), records, logname);
  return dns_pid > 0;
}

static int count_queries(const char *needle) {
  char logname[32];
  snprintf(logname, sizeof logname, "dnsmasq-%d.log", dns_gen);
  size_t len;
  char *log = th_slurp(th_path(logname), &len);
  int n = 0;
  for (char *p = log ? strstr(log, needle) : NULL; p; p = strstr(p + 1, needle))
    n++;
  free(log);
  return n;
}

static int suite_init(void) {
  if (!th_require("dnsmasq", "dnsmasq-base"))
    return 1;
  dns_port = th_free_port();
  if (!th_write(hosts_file(), "127.11.0.1 web.test\n"))
    return 1;
  return start_dnsmasq() ? 0 : 1;
}

static int suite_clean(void) {
  th_stop(dns_pid);
  return 0;
}

static void cfg(char *out, size_t len, const char *svc, const char *name,
                const char *record, int port, int min_ms, int max_ms) {
  char portkey[32] = "";
  if (port)
    snprintf(portkey, sizeof portkey, "\"port\":%d,", port);
  snprintf(out, len,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"%s\":{"
           "\"discovery\":{\"type\":\"dns\",\"name\":\"%s\",%s"
           "\"record\":\"%s\",\"servers\":[\"127.0.0.1:%d\"],"
           "\"min_ttl_ms\":%d,\"max_ttl_ms\":%d,\"timeout_ms\":600}}}}",
           svc, name, portkey, record, dns_port, min_ms, max_ms);
}

/* ---- records ---------------------------------------------------------------- */

struct rec_case {
  const char *name, *record;
  int port;
  const char *want;
};

static const struct rec_case rec_cases[] = {
  {"a.test", "A", 80, "127.10.0.1:80/0/1"},
  {"a.test", "AAAA", 81, "fd00::1:81/0/1"},
  {"a.test", "A+AAAA", 82, "127.10.0.1:82/0/1,fd00::1:82/0/1"},
  {"six.test", "A+AAAA", 83, "fd00::6:83/0/1"},
  /* SRV: priority and weight from the records (weight 0 -> 1); targets'
   * A and AAAA */
  {"_http._tcp.svc.test", "SRV", 0,
   "127.10.0.1:8080/1/10,127.10.0.2:9090/0/1,fd00::1:8080/1/10"},
  /* "." target: the service is explicitly not available */
  {"_http._tcp.empty.test", "SRV", 0, ""},
  /* NXDOMAIN and NODATA are answers: no endpoints, no error */
  {"missing.test", "A+AAAA", 80, ""},
  {"b.test", "AAAA", 80, ""},
};

static void test_dns_records(void) {
  for (size_t i = 0; i < sizeof rec_cases / sizeof rec_cases[0]; i++) {
    const struct rec_case *tc = &rec_cases[i];
    char json[1024];
    cfg(json, sizeof json, "s", tc->name, tc->record, tc->port, 1000, 5000);
    mesh_t *m = new_mesh(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* the first dial waits for the first answer */
    CU_ASSERT_EQUAL(mesh_discovery_wait(m, "s", 3000, NULL), MESH_OK);
    char got[1024];
    describe(m, "s", got, sizeof got);
    if (strcmp(got, tc->want) != 0)
      fprintf(stderr, "case %zu %s %s: got \"%s\"\n", i, tc->name, tc->record,
              got);
    CU_ASSERT_STRING_EQUAL(got, tc->want);
    mesh__disc_stats_t ds;
    stats_of(m, "s", &ds);
    CU_ASSERT_EQUAL(ds.errors, 0);
    CU_ASSERT_EQUAL(ds.version, 1);
    mesh_free(m);
  }
}

/* A changed record is seen once its TTL (1 s) has run out, and the source
 * honours the TTL rather than its 100 ms floor. */
static void test_dns_ttl_change(void) {
  char json[1024];
  cfg(json, sizeof json, "web", "web.test", "A", 80, 100, 5000);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(wait_desc(m, "web", "127.11.0.1:80/0/1", 3000));
  int q0 = count_queries("query[A] web.test");
  /* Wait (bounded) for two re-resolutions: with a TTL of 1 s they come
   * about a second apart; with the 100 ms floor there would be ten a
   * second.  Polling keeps a loaded machine from failing the first half. */
  int64_t w0 = mesh__now_ms();
  int q = 0;
  while (q < 2 && mesh__now_ms() - w0 < 8000) {
    usleep(100000);
    q = count_queries("query[A] web.test") - q0;
  }
  int64_t el = mesh__now_ms() - w0;
  CU_ASSERT(q >= 2);
  CU_ASSERT(el >= 900); /* two queries at the floor would take ~200 ms */
  CU_ASSERT(q <= el / 1000 + 2);
  if (q < 2 || el < 900 || q > el / 1000 + 2)
    fprintf(stderr, "queries in %lld ms: %d\n", (long long)el, q);

  CU_ASSERT_TRUE(th_write(hosts_file(), "127.11.0.2 web.test\n"
                                        "127.11.0.3 web.test\n"));
  kill(dns_pid, SIGHUP);
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_TRUE(wait_desc(m, "web", "127.11.0.2:80/0/1,127.11.0.3:80/0/1", 3000));
  int64_t dt = mesh__now_ms() - t0;
  CU_ASSERT(dt <= 2000); /* TTL 1 s + one round trip, with slack */
  mesh__disc_stats_t ds;
  stats_of(m, "web", &ds);
  CU_ASSERT_EQUAL(ds.errors, 0);
  CU_ASSERT_EQUAL(ds.version, 2); /* unchanged answers published nothing */
  mesh_free(m);
  th_write(hosts_file(), "127.11.0.1 web.test\n");
  kill(dns_pid, SIGHUP);
}

/* dnsmasq stopped: the last good set stays and errors are counted;
 * restarted: updates flow again. */
static void test_dns_outage(void) {
  char json[1024];
  cfg(json, sizeof json, "a", "a.test", "A", 80, 100, 1000);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(wait_desc(m, "a", "127.10.0.1:80/0/1", 3000));
  th_stop(dns_pid);
  dns_pid = 0;
  mesh__disc_stats_t ds;
  bool ok;
  TH_WAIT_UNTIL(ok, (stats_of(m, "a", &ds), ds.errors >= 2),
                "dns outage: 2 errors");
  CU_ASSERT(ok);
  CU_ASSERT_TRUE(ds.stale);
  CU_ASSERT_EQUAL(ds.endpoints, 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(ds.last_error, "a.test"));
  CU_ASSERT_TRUE(wait_desc(m, "a", "127.10.0.1:80/0/1", 0));

  /* back, with a different answer for the name */
  CU_ASSERT_TRUE(th_write(hosts_file(), "127.11.0.1 web.test\n"));
  char json2[1024];
  cfg(json2, sizeof json2, "b", "b.test", "A", 80, 100, 1000);
  mesh_t *m2 = new_mesh(json2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m2);
  CU_ASSERT_EQUAL(mesh_discovery_wait(m2, "b", 3000, NULL),
                  MESH_ERR_DISCOVERY);
  CU_ASSERT_TRUE(start_dnsmasq());
  CU_ASSERT_TRUE(wait_desc(m2, "b", "127.10.0.2:80/0/1", 5000));
  for (int i = 0; i < 500; i++) {
    stats_of(m, "a", &ds);
    if (!ds.stale)
      break;
    usleep(10000);
  }
  CU_ASSERT_FALSE(ds.stale);
  CU_ASSERT_TRUE(wait_desc(m, "a", "127.10.0.1:80/0/1", 0));
  mesh_free(m2);
  mesh_free(m);
}

/* ---- a misbehaving server ------------------------------------------------------ */

enum { FAKE_GOOD, FAKE_SERVFAIL, FAKE_GARBAGE, FAKE_SHORT, FAKE_SILENT };

typedef struct fake {
  int fd;
  int port;
  _Atomic int mode;
  _Atomic bool stop;
  _Atomic int queries;
  pthread_t th;
} fake_t;

/* Answer a query for an A record with 127.17.7.7 (TTL 0), or misbehave. */
static void *fake_main(void *p) {
  fake_t *f = p;
  for (int spins = 0; spins < 20000 && !atomic_load(&f->stop); spins++) {
    unsigned char q[512], r[600];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(f->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 12)
      continue;
    atomic_fetch_add(&f->queries, 1);
    int mode = atomic_load(&f->mode);
    if (mode == FAKE_SILENT)
      continue;
    /* echo header and question only (the query carries an EDNS OPT
     * record in its additional section) */
    size_t len = 12;
    while (len < (size_t)n && q[len] != 0)
      len += 1 + q[len];
    len += 5;
    if (len > (size_t)n)
      continue;
    memcpy(r, q, len);
    r[2] = 0x81;
    r[3] = mode == FAKE_SERVFAIL ? 0x82 : 0x80;
    memset(r + 6, 0, 6); /* an/ns/ar counts */
    unsigned qtype = (unsigned)(q[len - 4] << 8 | q[len - 3]);
    if (mode == FAKE_GOOD || mode == FAKE_GARBAGE) {
      bool a = qtype == 1;
      r[7] = a ? 1 : 0; /* ancount */
      if (a) {
        static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0,
                                           0,    0,    0, 4, 127, 17, 7, 7};
        memcpy(r + len, rr, sizeof rr);
        len += sizeof rr;
        if (mode == FAKE_GARBAGE)
          r[len - 5] = 40; /* rdlength runs past the end */
      }
    }
    if (mode == FAKE_SHORT)
      len = 7;
    sendto(f->fd, r, len, 0, (struct sockaddr *)&from, fl);
  }
  return NULL;
}

static bool fake_start(fake_t *f) {
  memset(f, 0, sizeof *f);
  f->fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
  setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (bind(f->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return false;
  socklen_t sl = sizeof sa;
  getsockname(f->fd, (struct sockaddr *)&sa, &sl);
  f->port = ntohs(sa.sin_port);
  return pthread_create(&f->th, NULL, fake_main, f) == 0;
}

static void fake_stop(fake_t *f) {
  atomic_store(&f->stop, true);
  pthread_join(f->th, NULL);
  close(f->fd);
}

static void test_dns_bad_answers(void) {
  fake_t f;
  CU_ASSERT_TRUE_FATAL(fake_start(&f));
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"x\":{"
           "\"discovery\":{\"type\":\"dns\",\"name\":\"x.test\",\"port\":80,"
           "\"record\":\"A\",\"servers\":[\"127.0.0.1:%d\"],"
           "\"min_ttl_ms\":50,\"max_ttl_ms\":200,\"timeout_ms\":150}}}}",
           f.port);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(wait_desc(m, "x", "127.17.7.7:80/0/1", 3000));
  static const struct {
    int mode;
    const char *err;
  } faults[] = {
      {FAKE_SERVFAIL, "A x.test: "},
      {FAKE_GARBAGE, "A x.test: "},
      {FAKE_SHORT, "A x.test: "},
      {FAKE_SILENT, "A x.test: "},
  };
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
    mesh__disc_stats_t ds;
    stats_of(m, "x", &ds);
    uint64_t before = ds.errors;
    atomic_store(&f.mode, faults[i].mode);
    bool ok;
    TH_WAIT_UNTIL(ok, (stats_of(m, "x", &ds), ds.errors >= before + 2),
                  "misbehaving server: 2 errors");
    if (!ok)
      fprintf(stderr, "fault %zu: errors %llu -> %llu\n", i,
              (unsigned long long)before, (unsigned long long)ds.errors);
    CU_ASSERT(ds.errors >= before + 2);
    CU_ASSERT_TRUE(ds.stale);
    CU_ASSERT_PTR_NOT_NULL(strstr(ds.last_error, faults[i].err));
    CU_ASSERT_TRUE(wait_desc(m, "x", "127.17.7.7:80/0/1", 0));
    /* recovery is automatic */
    atomic_store(&f.mode, FAKE_GOOD);
    for (int t = 0; t < 300 && ds.stale; t++) {
      usleep(10000);
      stats_of(m, "x", &ds);
    }
    CU_ASSERT_FALSE(ds.stale);
  }
  mesh_free(m);
  fake_stop(&f);
}

/* Nothing blocks mesh_new or a lookup while the server is silent. */
static void test_dns_wait_bounded(void) {
  fake_t f;
  CU_ASSERT_TRUE_FATAL(fake_start(&f));
  atomic_store(&f.mode, FAKE_SILENT);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"x\":{"
           "\"discovery\":{\"type\":\"dns\",\"name\":\"x.test\",\"port\":80,"
           "\"servers\":[\"127.0.0.1:%d\"],\"timeout_ms\":3000}}}}",
           f.port);
  int64_t t0 = mesh__now_ms();
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT(mesh__now_ms() - t0 < 500);
  mesh_status_t st;
  t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh_discovery_wait(m, "x", 200, &st), MESH_ERR_TIMEOUT);
  int64_t dt = mesh__now_ms() - t0;
  CU_ASSERT(dt >= 190 && dt < 1000);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "within 200 ms"));
  mesh_endpoints_t *e = NULL;
  CU_ASSERT_EQUAL(mesh_endpoints_get(m, "x", &e, NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh_endpoints_count(e), 0);
  CU_ASSERT_EQUAL(mesh_endpoints_version(e), 0);
  mesh_endpoints_free(e);
  /* teardown with a query in flight */
  t0 = mesh__now_ms();
  mesh_free(m);
  CU_ASSERT(mesh__now_ms() - t0 < 500);
  fake_stop(&f);
}

/* Server lists in every accepted form reach c-ares. */
static void test_dns_servers(void) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"a\":{"
           "\"discovery\":{\"type\":\"dns\",\"name\":\"a.test\",\"port\":1,"
           "\"record\":\"A\",\"servers\":[\"127.0.0.1:%d\",\"[::1]:%d\","
           "\"::1\",\"127.0.0.2\"],\"timeout_ms\":600}}}}",
           dns_port, dns_port);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(wait_desc(m, "a", "127.10.0.1:1/0/1", 3000));
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("discovery_dns", suite_init, suite_clean);
  CU_add_test(s, "dns_records", test_dns_records);
  CU_add_test(s, "dns_servers", test_dns_servers);
  CU_add_test(s, "dns_ttl_change", test_dns_ttl_change);
  CU_add_test(s, "dns_outage", test_dns_outage);
  CU_add_test(s, "dns_bad_answers", test_dns_bad_answers);
  CU_add_test(s, "dns_wait_bounded", test_dns_wait_bounded);
}

int main(void) { return th_run_suites("test_discovery_dns", add); }
