/* SPDX-License-Identifier: Apache-2.0 */
/* "localhost" and "*.localhost" are loopback without /etc/hosts and
 * without DNS (RFC 6761 §6.3; issue 12, item 15), through every resolver
 * of the library:
 *   - mesh_dial / mesh_listen addresses (tls/sock.c, getaddrinfo): names
 *     under .localhost are in no hosts file, so they show it;
 *   - hostnames in static endpoints (discovery/resolve.c, c-ares), with
 *     c-ares reading an EMPTY hosts file ($CARES_HOSTS) and its DNS server
 *     a dead port: before the fix "localhost" itself failed there;
 *   - the DNS source (discovery/src_dns.c) asked for A, AAAA, A+AAAA and
 *     SRV of localhost names, its server a dead port: no query leaves.
 * A control name (not under .localhost) fails in the same setting, which
 * shows the setting really has no hosts file and no DNS. */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mesh/discovery.h>

#include "core/core.h"
#include "test_tls_peer.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the name test ---------------------------------------------------------- */

static void test_mesh__is_localhost(void) {
  static const struct {
    const char *name;
    bool yes;
  } cases[] = {
      {"localhost", true},        {"LOCALHOST", true},
      {"localhost.", true},       {"LocalHost.", true},
      {"api.localhost", true},    {"a.b.localhost", true},
      {"api.localhost.", true},   {"API.LOCALHOST", true},
      {"notlocalhost", false},    {".localhost", false},
      {"a..localhost", false},    {"localhost.example", false},
      {"localhost.localdomain", false}, {"localhos", false},
      {"", false},                {".", false},
      {"127.0.0.1", false},       {"localhost..", false},
  };
  for (size_t i = 0; i < N(cases); i++) {
    bool got = mesh__is_localhost(cases[i].name);
    if (got != cases[i].yes)
      fprintf(stderr, "\n  \"%s\": %d, want %d\n", cases[i].name, got,
              cases[i].yes);
    CU_ASSERT_EQUAL(got, cases[i].yes);
  }
  CU_ASSERT_FALSE(mesh__is_localhost(NULL));
  struct sockaddr_storage ss[2];
  size_t n = mesh__localhost_addrs(AF_INET, 8443, ss, 2);
  CU_ASSERT_EQUAL_FATAL(n, 1);
  const struct sockaddr_in *a = (const struct sockaddr_in *)&ss[0];
  CU_ASSERT_EQUAL(a->sin_family, AF_INET);
  CU_ASSERT_EQUAL(ntohl(a->sin_addr.s_addr), INADDR_LOOPBACK);
  CU_ASSERT_EQUAL(ntohs(a->sin_port), 8443);
  n = mesh__localhost_addrs(AF_UNSPEC, 1, ss, 2);
  CU_ASSERT(n == 1 || n == 2);
  CU_ASSERT_EQUAL(ss[0].ss_family, AF_INET); /* IPv4 first */
  if (n == 2)
    CU_ASSERT_EQUAL(ss[1].ss_family, AF_INET6);
  CU_ASSERT_EQUAL(mesh__localhost_addrs(AF_INET, 1, ss, 0), 0);
}

/* ---- dial and listen (getaddrinfo) ------------------------------------------- */

static void test_dial_listen_localhost_names(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL && cm != NULL);
  /* listen on a localhost name: bound to 127.0.0.1 */
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, "app.localhost:0", TP_ECHO));
  static const char *const names[] = {"localhost", "app.localhost",
                                      "LOCALHOST.", "a.b.localhost."};
  for (size_t i = 0; i < N(names); i++) {
    char target[128];
    snprintf(target, sizeof target, "%s:%d", names[i], srv.port);
    mesh_status_t st;
    int rc = tp_echo_once(cm, target, "hello", &st, NULL, 0, NULL);
    if (rc != MESH_OK)
      fprintf(stderr, "\n  dial %s: %s\n", target, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
  }
  /* a plain TCP connect to 127.0.0.1 reaches the listener */
  int fd = tp_raw_connect(srv.port);
  CU_ASSERT(fd >= 0);
  if (fd >= 0)
    close(fd);
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- c-ares: no hosts file, no DNS -------------------------------------------- */

/* A UDP port nobody answers on (bound and released: queries to it are
 * refused at once). */
static int dead_udp_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static void no_hosts_file(void) {
  const char *empty = th_path("empty-hosts");
  CU_ASSERT_FATAL(th_write(empty, "# nothing here\n"));
  setenv("CARES_HOSTS", empty, 1);
}

/* The endpoints of service "s" after its first answer (sorted text
 * "addr:port,..." into buf); the wait's code. */
static int endpoints_of(mesh_t *m, char *buf, size_t len) {
  mesh_status_t st;
  int rc = mesh_discovery_wait(m, "s", 10000, &st);
  buf[0] = '\0';
  mesh_endpoints_t *e = NULL;
  if (mesh_endpoints_get(m, "s", &e, NULL) != MESH_OK)
    return rc;
  for (size_t i = 0; i < mesh_endpoints_count(e); i++) {
    size_t off = strlen(buf);
    snprintf(buf + off, len - off, "%s%s:%d", i ? "," : "",
             mesh_endpoint_address(e, i), mesh_endpoint_port(e, i));
  }
  mesh_endpoints_free(e);
  return rc;
}

static mesh_t *disc_mesh(const char *discovery) {
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"s\":{"
           "\"discovery\":%s}}}",
           discovery);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "\n  mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  return m;
}

/* 127.0.0.1:port, and ::1:port when this host has IPv6 loopback. */
static void loopback_set(int port, char *buf, size_t len) {
  struct sockaddr_storage ss[2];
  size_t n = mesh__localhost_addrs(AF_UNSPEC, port, ss, 2);
  snprintf(buf, len, "127.0.0.1:%d", port);
  if (n == 2) {
    size_t off = strlen(buf);
    snprintf(buf + off, len - off, ",::1:%d", port);
  }
}

/* Do two comma-separated lists hold the same items (any order)? */
static bool same_set(const char *a, const char *b) {
  if (strlen(a) != strlen(b))
    return false;
  char item[128];
  for (const char *p = a; *p;) {
    size_t n = strcspn(p, ",");
    snprintf(item, sizeof item, ",%.*s,", (int)n, p);
    char wrapped[512];
    snprintf(wrapped, sizeof wrapped, ",%s,", b);
    if (!strstr(wrapped, item))
      return false;
    p += n + (p[n] == ',');
  }
  return true;
}

static void test_static_endpoint_localhost_without_hosts_file(void) {
  no_hosts_file();
  int dns = dead_udp_port();
  CU_ASSERT_FATAL(dns > 0);
  static const char *const names[] = {"localhost", "LocalHost.",
                                      "api.localhost"};
  char want[128];
  loopback_set(8080, want, sizeof want);
  for (size_t i = 0; i < N(names); i++) {
    char disc[512], got[256];
    snprintf(disc, sizeof disc,
             "{\"type\":\"static\",\"endpoints\":[{\"address\":\"%s\","
             "\"port\":8080}],\"resolver\":{\"servers\":[\"127.0.0.1:%d\"],"
             "\"timeout_ms\":300}}",
             names[i], dns);
    mesh_t *m = disc_mesh(disc);
    CU_ASSERT_FATAL(m != NULL);
    int rc = endpoints_of(m, got, sizeof got);
    bool ok = rc == MESH_OK && same_set(got, want);
    if (!ok)
      fprintf(stderr, "\n  %s: %s \"%s\", want \"%s\"\n", names[i],
              mesh_code_name(rc), got, want);
    CU_ASSERT_TRUE(ok);
    mesh_free(m);
  }
  /* the control: any other name fails in this setting */
  char disc[512], got[256];
  snprintf(disc, sizeof disc,
           "{\"type\":\"static\",\"endpoints\":[{\"address\":"
           "\"app.example.test\",\"port\":8080}],\"resolver\":{\"servers\":"
           "[\"127.0.0.1:%d\"],\"timeout_ms\":300}}",
           dns);
  mesh_t *m = disc_mesh(disc);
  CU_ASSERT_FATAL(m != NULL);
  CU_ASSERT_EQUAL(endpoints_of(m, got, sizeof got), MESH_ERR_DISCOVERY);
  CU_ASSERT_STRING_EQUAL(got, "");
  mesh_free(m);
  unsetenv("CARES_HOSTS");
}

/* ---- the DNS source --------------------------------------------------------------- */

static void test_dns_source_localhost(void) {
  int dns = dead_udp_port();
  CU_ASSERT_FATAL(dns > 0);
  struct sockaddr_storage ss[2];
  bool v6 = mesh__localhost_addrs(AF_INET6, 0, ss, 2) == 1;
  static const struct {
    const char *name, *record;
    const char *want_v4, *want_v6; /* endpoint set, by IPv6 loopback */
  } cases[] = {
      {"localhost", "A", "127.0.0.1:9000", "127.0.0.1:9000"},
      {"db.localhost.", "A", "127.0.0.1:9000", "127.0.0.1:9000"},
      {"localhost", "AAAA", "", "::1:9000"},
      {"localhost", "A+AAAA", "127.0.0.1:9000", "::1:9000,127.0.0.1:9000"},
      /* other query types: a negative answer, not an error */
      {"_grpc._tcp.localhost", "SRV", "", ""},
  };
  for (size_t i = 0; i < N(cases); i++) {
    char disc[512], got[256];
    snprintf(disc, sizeof disc,
             "{\"type\":\"dns\",\"name\":\"%s\",\"record\":\"%s\",%s"
             "\"servers\":[\"127.0.0.1:%d\"],\"timeout_ms\":300}",
             cases[i].name, cases[i].record,
             strcmp(cases[i].record, "SRV") ? "\"port\":9000," : "", dns);
    mesh_t *m = disc_mesh(disc);
    CU_ASSERT_FATAL(m != NULL);
    int rc = endpoints_of(m, got, sizeof got);
    const char *want = v6 ? cases[i].want_v6 : cases[i].want_v4;
    if (rc != MESH_OK || !same_set(got, want))
      fprintf(stderr, "\n  dns %s %s: %s \"%s\", want \"%s\"\n",
              cases[i].record, cases[i].name, mesh_code_name(rc), got, want);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_TRUE(same_set(got, want));
    mesh_free(m);
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("localhost", NULL, NULL);
  CU_add_test(s, "mesh__is_localhost", test_mesh__is_localhost);
  CU_add_test(s, "mesh_dial/mesh_listen to localhost names",
              test_dial_listen_localhost_names);
  CU_add_test(s, "static endpoint localhost without a hosts file",
              test_static_endpoint_localhost_without_hosts_file);
  CU_add_test(s, "dns source: localhost names", test_dns_source_localhost);
}

int main(void) { return th_run_suites("test_localhost", add); }
