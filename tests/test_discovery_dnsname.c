/* SPDX-License-Identifier: Apache-2.0 */
/* discovery/dnsname.c: one name kept resolved in the background (what xds
 * LOGICAL_DNS clusters use), against a dnsmasq on loopback: the lookup
 * families (table), NXDOMAIN and no address of the family, IP literals and
 * "localhost", a changed answer followed at the refresh rate, the TTL
 * followed with respect_ttl (and not without), a first query that fails,
 * and fail static when the server goes away (then recovery). */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "test_dnsmasq.h"
#include "mesh/mesh.h"
#include "discovery/discovery.h"

static int dns_port;
static pid_t dns_pid;
static mesh_t *m;
static cJSON *good_cfg, *dead_cfg; /* {"servers": [...], "timeout_ms"} */

static const char *hosts_file(void) { return th_path("dnsname-hosts"); }

static const char *initial_hosts = "127.0.0.3 both.test\n"
                                   "::1 both.test\n"
                                   "127.0.0.4 four.test\n"
                                   "::1 six.test\n"
                                   "127.0.0.5 mv.test\n";

static bool start_dnsmasq(void) {
  static int gen;
  char logname[32];
  snprintf(logname, sizeof logname, "dnsmasq-dnsname-%d.log", ++gen);
  dns_pid = tdns_start(dns_port, hosts_file(), NULL, logname);
  return dns_pid > 0;
}

static cJSON *servers(int port) {
  char json[128];
  snprintf(json, sizeof json, "{\"servers\": [\"127.0.0.1:%d\"], \"timeout_ms\": 2000}",
           port);
  return cJSON_Parse(json);
}

static int suite_init(void) {
  if (!th_require("dnsmasq", "dnsmasq-base"))
    return 1;
  dns_port = th_free_port();
  good_cfg = servers(dns_port);
  dead_cfg = servers(th_free_port()); /* nothing listens there */
  if (!th_write(hosts_file(), initial_hosts) || !start_dnsmasq())
    return 1;
  mesh_status_t st;
  return mesh_new("{\"log\": {\"level\": \"error\"}}", &m, &st) == MESH_OK ? 0 : 1;
}

static int suite_clean(void) {
  mesh_free(m);
  th_stop(dns_pid);
  cJSON_Delete(good_cfg);
  cJSON_Delete(dead_cfg);
  return 0;
}

/* ---- the name lives on the loop thread: every call goes through it ------ */

typedef struct job {
  mesh__dnsname_opts_t o;
  mesh__dnsname_t *n;
  mesh__dnsname_info_t info;
  int rc;
  _Atomic int changes;
} job_t;

static void on_change(void *user) { atomic_fetch_add(&((job_t *)user)->changes, 1); }

static void do_new(void *user) {
  job_t *j = user;
  mesh_status_t st;
  j->rc = mesh__dnsname_new(m, &j->o, &j->n, &st);
}

static void do_get(void *user) {
  job_t *j = user;
  mesh__dnsname_get(j->n, &j->info);
}

static void do_free(void *user) { mesh__dnsname_free(((job_t *)user)->n); }

static job_t *start(const char *name, int family, int64_t refresh_ms, bool respect,
                    const cJSON *cfg) {
  job_t *j = calloc(1, sizeof *j);
  j->o = (mesh__dnsname_opts_t){.name = name, .family = family, .refresh_ms = refresh_ms,
                                .respect_ttl = respect, .fail_base_ms = 100,
                                .fail_max_ms = 400, .resolver = cfg,
                                .on_change = on_change, .user = j};
  CU_ASSERT_EQUAL_FATAL(mesh__loop_call(m->loop, do_new, j), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(j->rc, MESH_OK);
  return j;
}

static mesh__dnsname_info_t get(job_t *j) {
  mesh__loop_call(m->loop, do_get, j);
  return j->info;
}

static void stop(job_t *j) {
  mesh__loop_call(m->loop, do_free, j);
  free(j);
}

static bool answered(void *arg) { return get(arg).state != MESH__DNSNAME_PENDING; }

typedef struct addr_is {
  job_t *j;
  const char *addr;
} addr_is_t;

static bool has_addr(void *arg) {
  addr_is_t *a = arg;
  mesh__dnsname_info_t in = get(a->j);
  return in.state == MESH__DNSNAME_OK && strcmp(in.addr, a->addr) == 0;
}

static bool failed_twice(void *arg) { return get(arg).failures >= 2; }
static bool recovered(void *arg) {
  mesh__dnsname_info_t in = get(arg);
  return in.failures == 0 && in.err[0] == '\0';
}

/* ---- tests -------------------------------------------------------------------- */

static void test_families(void) {
  static const struct {
    const char *name;
    int family, state;
    const char *addr;
    size_t n;
  } t[] = {
      {"both.test", MESH__DNS_AUTO, MESH__DNSNAME_OK, "::1", 1},
      {"both.test", MESH__DNS_V4_ONLY, MESH__DNSNAME_OK, "127.0.0.3", 1},
      {"both.test", MESH__DNS_V6_ONLY, MESH__DNSNAME_OK, "::1", 1},
      {"both.test", MESH__DNS_V4_PREFERRED, MESH__DNSNAME_OK, "127.0.0.3", 1},
      {"both.test", MESH__DNS_ALL, MESH__DNSNAME_OK, "127.0.0.3", 2},
      {"four.test", MESH__DNS_AUTO, MESH__DNSNAME_OK, "127.0.0.4", 1},
      {"four.test", MESH__DNS_V4_PREFERRED, MESH__DNSNAME_OK, "127.0.0.4", 1},
      {"four.test", MESH__DNS_V6_ONLY, MESH__DNSNAME_NONE, "", 0},
      {"six.test", MESH__DNS_V4_PREFERRED, MESH__DNSNAME_OK, "::1", 1},
      {"six.test", MESH__DNS_V4_ONLY, MESH__DNSNAME_NONE, "", 0},
      {"six.test", MESH__DNS_ALL, MESH__DNSNAME_OK, "::1", 1},
      {"nope.test", MESH__DNS_AUTO, MESH__DNSNAME_NONE, "", 0},
      {"127.0.0.9", MESH__DNS_AUTO, MESH__DNSNAME_OK, "127.0.0.9", 1},
      {"localhost", MESH__DNS_V4_ONLY, MESH__DNSNAME_OK, "127.0.0.1", 1},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    job_t *j = start(t[i].name, t[i].family, 60000, false, good_cfg);
    CU_ASSERT(th_wait_for(answered, j, TH_CAP_MS, t[i].name));
    mesh__dnsname_info_t in = get(j);
    bool ok = in.state == t[i].state && strcmp(in.addr, t[i].addr) == 0 &&
              in.naddrs == t[i].n && in.err[0] == '\0' && in.queries == 1 &&
              atomic_load(&j->changes) == 1;
    if (!ok)
      fprintf(stderr, "\n%s family %d: state %d addr \"%s\" n %zu err \"%s\" queries %llu "
              "changes %d\n", t[i].name, t[i].family, in.state, in.addr, in.naddrs, in.err,
              (unsigned long long)in.queries, atomic_load(&j->changes));
    CU_ASSERT(ok);
    stop(j);
  }
}

/* A new answer is seen at the next refresh; with respect_ttl after the
 * TTL (1 s) even though the refresh rate is 10 minutes; without, not. */
static void test_refresh_and_ttl(void) {
  job_t *fast = start("mv.test", MESH__DNS_AUTO, 100, false, good_cfg);
  job_t *ttl = start("mv.test", MESH__DNS_AUTO, 600000, true, good_cfg);
  job_t *slow = start("mv.test", MESH__DNS_AUTO, 600000, false, good_cfg);
  addr_is_t a5[] = {{fast, "127.0.0.5"}, {ttl, "127.0.0.5"}, {slow, "127.0.0.5"}};
  for (int i = 0; i < 3; i++)
    CU_ASSERT(th_wait_for(has_addr, &a5[i], TH_CAP_MS, "mv.test -> 127.0.0.5"));
  CU_ASSERT_TRUE(th_write(hosts_file(), "127.0.0.6 mv.test\n"));
  kill(dns_pid, SIGHUP);
  addr_is_t a6[] = {{fast, "127.0.0.6"}, {ttl, "127.0.0.6"}};
  CU_ASSERT(th_wait_for(has_addr, &a6[0], TH_CAP_MS, "refresh 100 ms -> 127.0.0.6"));
  CU_ASSERT(th_wait_for(has_addr, &a6[1], TH_CAP_MS, "respect_ttl -> 127.0.0.6"));
  CU_ASSERT_EQUAL(atomic_load(&fast->changes), 2);
  mesh__dnsname_info_t in = get(slow);
  CU_ASSERT_STRING_EQUAL(in.addr, "127.0.0.5"); /* its next query is 10 min away */
  CU_ASSERT_EQUAL(in.queries, 1);
  CU_ASSERT(get(fast).queries >= 2);
  /* the name removed: NXDOMAIN, no address (a change) */
  CU_ASSERT_TRUE(th_write(hosts_file(), initial_hosts));
  kill(dns_pid, SIGHUP);
  stop(ttl);
  stop(slow);
  stop(fast);
}

/* The first query fails (nothing listens): an answer without an address,
 * with the error; retried with backoff. */
static void test_first_failure(void) {
  job_t *j = start("four.test", MESH__DNS_AUTO, 60000, false, dead_cfg);
  CU_ASSERT(th_wait_for(answered, j, TH_CAP_MS, "first query fails"));
  mesh__dnsname_info_t in = get(j);
  CU_ASSERT_EQUAL(in.state, MESH__DNSNAME_NONE);
  CU_ASSERT(in.failures >= 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(in.err, "resolve four.test: "));
  CU_ASSERT_EQUAL(atomic_load(&j->changes), 1);
  CU_ASSERT(th_wait_for(failed_twice, j, TH_CAP_MS, "retried"));
  stop(j);
}

/* The server goes away: the last address stays (fail static), failures
 * counted; it comes back: the next answer clears them. */
static void test_fail_static(void) {
  job_t *j = start("four.test", MESH__DNS_AUTO, 100, false, good_cfg);
  addr_is_t a = {j, "127.0.0.4"};
  CU_ASSERT(th_wait_for(has_addr, &a, TH_CAP_MS, "four.test"));
  th_stop(dns_pid);
  CU_ASSERT(th_wait_for(failed_twice, j, TH_CAP_MS, "two failures"));
  mesh__dnsname_info_t in = get(j);
  CU_ASSERT_EQUAL(in.state, MESH__DNSNAME_OK);
  CU_ASSERT_STRING_EQUAL(in.addr, "127.0.0.4");
  CU_ASSERT(in.err[0] != '\0');
  CU_ASSERT_EQUAL(atomic_load(&j->changes), 1);
  CU_ASSERT_TRUE_FATAL(start_dnsmasq());
  CU_ASSERT(th_wait_for(recovered, j, TH_CAP_MS, "recovered"));
  CU_ASSERT_STRING_EQUAL(get(j).addr, "127.0.0.4");
  stop(j);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("discovery_dnsname", suite_init, suite_clean);
  CU_add_test(s, "families", test_families);
  CU_add_test(s, "refresh_and_ttl", test_refresh_and_ttl);
  CU_add_test(s, "first_failure", test_first_failure);
  CU_add_test(s, "fail_static", test_fail_static);
}

int main(void) { return th_run_suites("test_discovery_dnsname", add); }
