/* SPDX-License-Identifier: Apache-2.0 */
/* tls: a libmesh built on one TLS backend against a libmesh built on the
 * other, both ways (this process as client and as server; the peer is the
 * other build's meshctl), TLS 1.2 and 1.3, full and resumed handshakes,
 * and the refusal when one side requires 1.3 and the other lacks it.
 * And the dev CA across builds: the peer build's `meshctl ca` mints a CA
 * and server SVID (checked by `openssl verify`), this build's mesh_ca_issue
 * signs a client SVID with that CA, and the two meshes accept each other.
 *
 * Run by scripts/test.d/tls-openssl.sh with MESH_PEER_MESHCTL set to the
 * other tree's tools/meshctl; without it the test fails (never a silent
 * pass). */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_tls_peer.h"
#include "tls/tls.h"

#define CONTAINS(hay, needle) CU_ASSERT(tp_contains((hay), (needle)))

static const char *peer_bin;
static bool peer13, our13;

/* The peer build's backend and whether it has TLS 1.3 (meshctl --version). */
static bool probe_peer(void) {
  char cmd[600], out[300];
  snprintf(out, sizeof out, "%s", th_path("peer-version.out"));
  snprintf(cmd, sizeof cmd, "'%s' --version > '%s' 2>&1", peer_bin, out);
  if (th_sh(cmd) != 0)
    return false;
  char *v = th_slurp(out, NULL);
  if (!v)
    return false;
  fprintf(stderr, "\n  this build: %s (%s); peer build:\n%s",
          mesh__tls_be.name, mesh__tls_be.lib_version(), v);
  peer13 = strstr(v, "tls13: yes") != NULL;
  free(v);
  our13 = mesh__tls_be.has_tls13();
  return true;
}

typedef enum { V12, V13, REQ13 } want_t;

typedef struct cross_case {
  const char *name;
  want_t want;
} cross_case_t;

static const cross_case_t cases[] = {
    {"TLS 1.2 pinned on both sides", V12},
    {"defaults (TLS 1.3 where both have it, else 1.2)", V13},
    {"one side requires TLS 1.3", REQ13},
};

/* tls section for one side.  REQ13: each side that has TLS 1.3 requires
 * it (required13), so the pair fails where the other lacks it. */
static const char *tls_extra(want_t w, bool has13, bool required13) {
  if (w == V12)
    return "\"tls\":{\"max_version\":\"1.2\"}";
  if (w == REQ13 && has13 && required13)
    return "\"tls\":{\"min_version\":\"1.3\"}";
  return NULL;
}

/* What the pair should negotiate; NULL: the handshake must fail. */
static const char *expected(want_t w) {
  if (w == V12)
    return "TLSv1.2";
  if (our13 && peer13)
    return "TLSv1.3";
  return w == REQ13 && (our13 || peer13) ? NULL : "TLSv1.2";
}

/* The suite both backends agree on (tls/suites.c: the first of the
 * mesh's list for the version), as mesh_conn_cipher() names it. */
static const char *suite_of(const char *version) {
  return strcmp(version, "TLSv1.3") == 0
             ? "TLS-AES-128-GCM-SHA256"
             : "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256";
}

static bool wait_log(const char *log, const char *needle, int ms) {
  for (int i = 0; i < ms / 20; i++) {
    char *t = th_slurp(th_path(log), NULL);
    bool ok = t && strstr(t, needle);
    free(t);
    if (ok)
      return true;
    usleep(20000);
  }
  return false;
}

/* This process dials the peer's `meshctl serve` twice: full, resumed. */
static void we_dial(const cross_case_t *tc) {
  char cfg[4096], file[300];
  tp_config(cfg, sizeof cfg, "server", TD, tls_extra(tc->want, peer13, true));
  snprintf(file, sizeof file, "%s", th_path("cross-peer-srv.json"));
  CU_ASSERT_FATAL(th_write(file, cfg));
  int port = th_free_port();
  char listen[32];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  const char *argv[] = {peer_bin, "serve", "--config", file, "--listen",
                        listen,   "--count", "2",     NULL};
  pid_t pid = th_spawn(argv, "cross-serve.log");
  CU_ASSERT_FATAL(pid > 0);
  CU_ASSERT_FATAL(th_wait_port(port, 5000));
  mesh_t *cm = tp_mesh("client", TD, tls_extra(tc->want, our13, true));
  CU_ASSERT_FATAL(cm != NULL);
  const char *want = expected(tc->want);
  for (int i = 0; i < 2; i++) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_dial(cm, tp_addr(port), NULL, &c, &st);
    if (!want) {
      CU_ASSERT_EQUAL(rc, MESH_ERR_TLS);
      CONTAINS(st.message, "handshake"); /* protocol_version or
                                            handshake_failure */
      break;
    }
    if (rc != MESH_OK)
      fprintf(stderr, "\n  %s: dial %d: %s\n", tc->name, i, st.message);
    CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(mesh_conn_tls_version(c), want);
    CU_ASSERT_STRING_EQUAL(mesh_conn_cipher(c), suite_of(want));
    CU_ASSERT_EQUAL(mesh_conn_resumed(c), i);
    CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), SERVER_ID);
    mesh_conn_set_timeouts(c, 5000, 5000);
    CU_ASSERT_EQUAL(mesh_conn_write_all(c, "ping", 4), MESH_OK);
    char buf[8];
    size_t got = 0;
    while (got < 4) {
      long n = mesh_conn_read(c, buf + got, sizeof buf - got);
      if (n <= 0)
        break;
      got += (size_t)n;
    }
    CU_ASSERT(got == 4 && memcmp(buf, "ping", 4) == 0);
    mesh_conn_close(c);
  }
  if (want)
    CU_ASSERT(wait_log("cross-serve.log", ", resumed)", 5000));
  th_stop(pid);
  mesh_free(cm);
}

/* The peer's `meshctl dial --count 2` dials this process twice. */
static void we_serve(const cross_case_t *tc) {
  mesh_t *sm = tp_mesh("server", TD, tls_extra(tc->want, our13, true));
  CU_ASSERT_FATAL(sm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  char cfg[4096], file[300], out[300], cmd[1500];
  tp_config(cfg, sizeof cfg, "client", TD, tls_extra(tc->want, peer13, true));
  snprintf(file, sizeof file, "%s", th_path("cross-peer-cli.json"));
  CU_ASSERT_FATAL(th_write(file, cfg));
  snprintf(out, sizeof out, "%s", th_path("cross-dial.out"));
  snprintf(cmd, sizeof cmd,
           "'%s' dial --config '%s' --to 127.0.0.1:%d --peer %s --send ping "
           "--count 2 > '%s' 2>&1",
           peer_bin, file, srv.port, SERVER_ID, out);
  int rc = th_sh(cmd);
  char *got = th_slurp(out, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  const char *want = expected(tc->want);
  if (!want) {
    CU_ASSERT(rc != 0);
    CONTAINS(got, "handshake");
  } else {
    if (rc != 0)
      fprintf(stderr, "\n  %s: peer dial: %s\n", tc->name, got);
    CU_ASSERT_EQUAL(rc, 0);
    CONTAINS(got, want);
    CONTAINS(got, suite_of(want)); /* meshctl dial prints the suite */
    CONTAINS(got, "(resumed)");
    CONTAINS(got, "ping");
    CU_ASSERT(tp_server_wait(&srv, 2, 5000));
    CU_ASSERT_EQUAL(tp_server_result(&srv, 0).resumed, 0);
    CU_ASSERT_EQUAL(tp_server_result(&srv, 1).resumed, 1);
  }
  free(got);
  tp_server_stop(&srv);
  mesh_free(sm);
}

static void test_cross(void) {
  tp_certs();
  CU_ASSERT_FATAL(probe_peer());
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fprintf(stderr, "\n  case: %s (expect %s)", cases[i].name,
            expected(cases[i].want) ? expected(cases[i].want) : "refusal");
    we_dial(&cases[i]);
    we_serve(&cases[i]);
  }
}

/* ---- the dev CA across builds ------------------------------------------- */

static int peer_sh(const char *args) {
  char cmd[1500];
  snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >> peer-ca.log 2>&1",
           th_tmpdir(), peer_bin, args);
  return th_sh(cmd);
}

/* A config naming <svid>.crt/.key and the peer build's CA as the bundle. */
static void ca_config(char *buf, size_t len, const char *svid) {
  snprintf(buf, len,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":"
           "\"%s/%s.crt\",\"key\":\"%s/%s.key\",\"bundles\":{\"" TD
           "\":\"%s/x-ca.crt\"}}}",
           th_tmpdir(), svid, th_tmpdir(), svid, th_tmpdir());
}

/* Both builds' CA output, compared as `openssl x509 -text` prints it with
 * the random or time-dependent fields (serials, keys, key IDs, dates,
 * signatures) left out: names, string values, extensions, criticality and
 * their order must be the same.  (Not compared: mbedTLS 2.28 writes a NULL
 * parameter in the ecdsa-with-SHA256 AlgorithmIdentifier, RFC 5758 says
 * absent, OpenSSL leaves it out; both builds accept either.) */
static void same_text(const char *ours, const char *theirs) {
  char cmd[2000];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && for f in %s %s; do openssl x509 -in $f -noout -text "
           "-certopt no_pubkey,no_sigdump,no_serial,no_validity | sed -e "
           "'s/serialNumber = [0-9a-f]*/serialNumber = X/' -e "
           "'/^ *[0-9A-F][0-9A-F]:[0-9A-F:]*$/d' > $f.txt || exit 1; done; "
           "diff %s.txt %s.txt",
           th_tmpdir(), ours, theirs, ours, theirs);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
}

/* One dial of m to the peer at port: its SPIFFE ID, then "ping" echoed. */
static void dial_echo(mesh_t *m, int port) {
  mesh_status_t st;
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(m, tp_addr(port), NULL, &c, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "\n  dial: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), SERVER_ID);
  mesh_conn_set_timeouts(c, 5000, 5000);
  CU_ASSERT_EQUAL(mesh_conn_write_all(c, "ping", 4), MESH_OK);
  char buf[8];
  size_t got = 0;
  while (got < 4) {
    long n = mesh_conn_read(c, buf + got, sizeof buf - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  CU_ASSERT(got == 4 && memcmp(buf, "ping", 4) == 0);
  mesh_conn_close(c);
}

static void test_cross_ca(void) {
  CU_ASSERT_FATAL(peer_sh("ca init --td " TD " --out-cert x-ca.crt "
                          "--out-key x-ca.key --force") == 0);
  CU_ASSERT_FATAL(peer_sh("ca issue --ca-cert x-ca.crt --ca-key x-ca.key "
                          "--id " SERVER_ID " --out-cert x-server.crt "
                          "--out-key x-server.key --force") == 0);
  char cmd[1500];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl verify -CAfile x-ca.crt -purpose sslserver "
           "x-server.crt && openssl verify -CAfile x-ca.crt -purpose "
           "sslclient x-server.crt",
           th_tmpdir());
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  /* this build's CA code, signing with the other build's CA files */
  char ca[512], cakey[512], crt[512], key[512];
  snprintf(ca, sizeof ca, "%s/x-ca.crt", th_tmpdir());
  snprintf(cakey, sizeof cakey, "%s/x-ca.key", th_tmpdir());
  snprintf(crt, sizeof crt, "%s/x-client.crt", th_tmpdir());
  snprintf(key, sizeof key, "%s/x-client.key", th_tmpdir());
  mesh_status_t st;
  int rc = mesh_ca_issue(ca, cakey, CLIENT_ID, 0, 0, 0, crt, key, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "\n  mesh_ca_issue with the peer's CA: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  /* this build's own CA and SVID look like the peer build's */
  char oca[512], ocak[512], ocrt[512], okey[512];
  snprintf(oca, sizeof oca, "%s/o-ca.crt", th_tmpdir());
  snprintf(ocak, sizeof ocak, "%s/o-ca.key", th_tmpdir());
  snprintf(ocrt, sizeof ocrt, "%s/o-server.crt", th_tmpdir());
  snprintf(okey, sizeof okey, "%s/o-server.key", th_tmpdir());
  CU_ASSERT_EQUAL_FATAL(mesh_ca_init(TD, 86400, oca, ocak, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(
      mesh_ca_issue(oca, ocak, SERVER_ID, 0, 0, 0, ocrt, okey, &st), MESH_OK);
  same_text("o-ca.crt", "x-ca.crt");
  same_text("o-server.crt", "x-server.crt");
  /* the peer serves with its own SVID; it verifies our client SVID */
  char cfg[2048], file[300];
  ca_config(cfg, sizeof cfg, "x-server");
  snprintf(file, sizeof file, "%s", th_path("x-srv.json"));
  CU_ASSERT_FATAL(th_write(file, cfg));
  int port = th_free_port();
  char listen[32];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  const char *argv[] = {peer_bin, "serve", "--config", file, "--listen",
                        listen,   "--count", "1",     NULL};
  pid_t pid = th_spawn(argv, "x-serve.log");
  CU_ASSERT_FATAL(pid > 0);
  CU_ASSERT_FATAL(th_wait_port(port, 5000));
  ca_config(cfg, sizeof cfg, "x-client");
  mesh_t *m = NULL;
  if (mesh_new(cfg, &m, &st) != MESH_OK)
    fprintf(stderr, "\n  mesh_new on the peer's CA: %s\n", st.message);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  dial_echo(m, port);
  CU_ASSERT(wait_log("x-serve.log", CLIENT_ID, 5000));
  th_stop(pid);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls cross-backend", NULL, NULL);
  CU_add_test(s, "libmesh on each backend against the other", test_cross);
  CU_add_test(s, "dev CA of the other build", test_cross_ca);
}

int main(void) {
  peer_bin = getenv("MESH_PEER_MESHCTL");
  if (!peer_bin || access(peer_bin, X_OK) != 0) {
    fprintf(stderr, "test_tls_cross: set MESH_PEER_MESHCTL to the other "
                    "backend's tools/meshctl (scripts/test.d/tls-openssl.sh "
                    "does)\n");
    return 1; /* a missing peer is a failure, not a pass */
  }
  return th_run_suites("test_tls_cross", add);
}
