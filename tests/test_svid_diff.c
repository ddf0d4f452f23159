/* SPDX-License-Identifier: Apache-2.0 */
/* The X.509 differential table (issue 14): certificates where mbedTLS and
 * OpenSSL could draw the line differently, minted at test time by
 * tests/x509diff_mint.py (python3-cryptography), and ONE
 * expected result per row for both builds, through the two ways the mesh
 * takes a chain: its own SVID (mesh__creds_load) and a peer's
 * (mesh__creds_verify_peer, what tls/verify.c calls in a handshake). */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"
#include "identity/pemfile.h"
#include "test_tls_peer.h"

#define MINT TEST_SRCDIR "/tests/x509diff_mint.py"
#define X "spiffe://example.org/x"

struct diff_case {
  const char *name; /* <name>.crt (chain as sent, leaf first), <name>.key */
  int want;
  const char *msg; /* after "<file>: " (load) or "peer" (peer); substring */
};

#define UNTRUSTED "certificate chain does not lead to the trust bundle"
#define REJECTED "certificate chain rejected"
#define MALFORMED "malformed certificate"

static const struct diff_case diff_cases[] = {
  {"ok", MESH_OK, ""},
  /* extensions */
  {"unk_crit", MESH_ERR_PEM, MALFORMED},
  {"unk_noncrit", MESH_OK, ""},
  {"crit_san", MESH_OK, ""},
  {"crit_eku", MESH_OK, ""},
  {"crit_policy", MESH_ERR_PEM, MALFORMED},
  {"crit_anypolicy", MESH_ERR_SVID,
   "certificate: critical extension 2.5.29.32 is not supported"},
  {"dup_san", MESH_ERR_PEM, MALFORMED},
  /* CA constraints */
  {"pathlen0", MESH_ERR_CERT_UNTRUSTED, UNTRUSTED},
  {"pathlen1", MESH_OK, ""},
  {"nc_permit_other", MESH_ERR_PEM, "1 certificate could not be parsed"},
  {"nc_exclude_other", MESH_ERR_PEM, "1 certificate could not be parsed"},
  {"nc_permit_noncrit", MESH_ERR_SVID,
   "chain certificate #1: signing certificate: nameConstraints are not "
   "supported"},
  {"int_no_bc", MESH_ERR_SVID,
   "chain certificate #1: signing certificate is not a CA (basicConstraints)"},
  {"int_no_certsign", MESH_ERR_SVID,
   "chain certificate #1: signing certificate keyUsage lacks keyCertSign"},
  /* the SPIFFE ID in the URI SAN */
  {"uri_upper_scheme", MESH_ERR_SPIFFE_ID, "scheme"},
  {"uri_upper_td", MESH_ERR_SPIFFE_ID, "trust domain must be lowercase"},
  {"uri_pct", MESH_ERR_SPIFFE_ID, "path"},
  {"uri_slash", MESH_ERR_SPIFFE_ID, "trailing"},
  {"uri_query", MESH_ERR_SPIFFE_ID, "query"},
  {"uri_frag", MESH_ERR_SPIFFE_ID, "fragment"},
  {"uri_port", MESH_ERR_SPIFFE_ID, "port"},
  {"uri_userinfo", MESH_ERR_SPIFFE_ID, "user info"},
  {"uri_dns", MESH_OK, ""},
  /* keys and hashes */
  {"sha1", MESH_ERR_CERT_UNTRUSTED, REJECTED},
  {"rsa1024", MESH_ERR_CERT_UNTRUSTED, REJECTED},
  {"p384", MESH_OK, ""},
  {"p384_sha384", MESH_OK, ""},
  {"rsa2048", MESH_OK, ""},
  /* dates of a CA */
  {"int_expired", MESH_ERR_CERT_EXPIRED,
   "SVID " X ": a CA certificate expired in its chain"},
  {"int_future", MESH_ERR_CERT_NOT_YET_VALID,
   "SVID " X ": a CA certificate is not valid yet in its chain"},
  /* the order of what is sent */
  {"out_of_order", MESH_ERR_SVID,
   "chain certificate #2 is issued by #1, which comes before it"},
  {"extra_unrelated", MESH_OK, ""},
};

static int suite_init(void) {
  char cmd[2000];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 -W ignore '%s' '%s'", MINT,
           th_tmpdir());
  return th_sh(cmd) != 0;
}

static int load_row(const char *name, mesh__creds_t **out,
                    mesh_status_t *st) {
  char cert[512], key[512], b[512], n[300];
  snprintf(n, sizeof n, "%s.crt", name);
  snprintf(cert, sizeof cert, "%s", th_path(n));
  snprintf(n, sizeof n, "%s.key", name);
  snprintf(key, sizeof key, "%s", th_path(n));
  snprintf(b, sizeof b, "%s", th_path("root.crt"));
  mesh__creds_src_t src = {.cert = cert, .key = key, .bundle = b};
  return mesh__creds_load(&src, 1, out, st);
}

static bool row_ok(const struct diff_case *tc, const char *how, int rc,
                   const mesh_status_t *st, const char *prefix) {
  bool ok = rc == tc->want && strstr(st->message, tc->msg) &&
            strncmp(st->message, prefix, strlen(prefix)) == 0;
  if (!ok)
    fprintf(stderr, "%s %s: rc=%d %s\n", how, tc->name, rc, st->message);
  return ok;
}

static void test_diff_creds_load(void) {
  for (size_t i = 0; i < sizeof diff_cases / sizeof diff_cases[0]; i++) {
    const struct diff_case *tc = &diff_cases[i];
    mesh__creds_t *c = NULL;
    mesh_status_t st;
    int rc = load_row(tc->name, &c, &st);
    CU_ASSERT(row_ok(tc, "load", rc, &st, rc ? th_path(tc->name) : ""));
    CU_ASSERT_EQUAL(rc == MESH_OK, c != NULL);
    if (c)
      CU_ASSERT_STRING_EQUAL(c->id, X);
    mesh__creds_release(c);
  }
}

static void test_diff_verify_peer(void) {
  mesh__creds_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(load_row("ok", &c, &st), MESH_OK);
  for (size_t i = 0; i < sizeof diff_cases / sizeof diff_cases[0]; i++) {
    const struct diff_case *tc = &diff_cases[i];
    char n[300];
    snprintf(n, sizeof n, "%s.crt", tc->name);
    mesh__x509_chain_t *p = mesh__x509_chain_new();
    int rc = mesh__pem_load_crts(p, th_path(n), &st);
    if (rc == MESH_OK) {
      char id[MESH_SPIFFE_ID_MAX + 1] = "";
      rc = mesh__creds_verify_peer(c, p, id, sizeof id, &st);
      CU_ASSERT(row_ok(tc, "peer", rc, &st, rc ? "peer" : ""));
      if (rc == MESH_OK)
        CU_ASSERT_STRING_EQUAL(id, X);
    } else {
      /* what the TLS layer never gets as a chain: the parse refuses it */
      CU_ASSERT(row_ok(tc, "peer-parse", rc, &st, ""));
    }
    mesh__x509_chain_free(p);
  }
  mesh__creds_release(c);
}

/* ---- end to end: a real mTLS handshake (tls/verify.c's path) ----------- */

/* Chains a libmesh mesh serves: the other mesh's handshake accepts them
 * on both builds (client verifies the server's row chain, server the
 * client's). */
static const char *const e2e_ok[] = {"p384", "rsa2048", "crit_san",
                                     "pathlen1", "extra_unrelated",
                                     "uri_dns"};
/* Chains no mesh would load, so openssl s_client presents them (as sent,
 * order kept): the libmesh server refuses the handshake on both builds.
 * "ok" first: the same client with a good chain gets in. */
static const char *const e2e_peer[] = {
    "ok",           "unk_crit",          "dup_san",       "crit_policy",
    "crit_anypolicy", "nc_exclude_other", "nc_permit_noncrit",
    "out_of_order", "int_expired",       "pathlen0"};

static void test_diff_handshake_ok(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", th_path("root.crt"),
           th_path("example.org-ca.crt"));
  CU_ASSERT_FATAL(th_sh(cmd) == 0);
  mesh_t *cm = tp_mesh("ok", "example.org", NULL);
  CU_ASSERT_FATAL(cm != NULL);
  for (size_t i = 0; i < sizeof e2e_ok / sizeof e2e_ok[0]; i++) {
    mesh_t *sm = tp_mesh(e2e_ok[i], "example.org", NULL);
    CU_ASSERT_FATAL(sm != NULL);
    tp_server_t srv;
    CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
    mesh_status_t st;
    mesh_conn_t *c = NULL;
    int rc = mesh_dial(cm, tp_addr(srv.port), NULL, &c, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "e2e %s: rc=%d %s\n", e2e_ok[i], rc, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    if (c) {
      CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), X);
      mesh_conn_close(c);
    }
    CU_ASSERT(tp_server_wait(&srv, 1, 10000));
    tp_result_t r = tp_server_result(&srv, 0);
    CU_ASSERT_EQUAL(r.rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.peer, X);
    tp_server_stop(&srv);
    mesh_free(sm);
  }
  mesh_free(cm);
}

static void test_diff_handshake_refused(void) {
  if (!th_require("openssl", "openssl"))
    return;
  mesh_t *sm = tp_mesh("ok", "example.org", NULL);
  CU_ASSERT_FATAL(sm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  size_t n = sizeof e2e_peer / sizeof e2e_peer[0];
  for (size_t i = 0; i < n; i++) {
    const char *r = e2e_peer[i];
    char cmd[2000];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && echo | timeout 10 openssl s_client -connect "
             "127.0.0.1:%d -cert %s.leaf.pem -key %s.key $([ -s "
             "%s.rest.pem ] && echo -cert_chain %s.rest.pem) >/dev/null 2>&1",
             th_tmpdir(), srv.port, r, r, r, r);
    th_sh(cmd); /* its verdict is the server's */
    CU_ASSERT_FATAL(tp_server_wait(&srv, (int)i + 1, 15000));
    tp_result_t res = tp_server_result(&srv, (int)i);
    bool want_ok = i == 0;
    if ((res.rc == MESH_OK) != want_ok)
      fprintf(stderr, "e2e peer %s: rc=%d %s\n", r, res.rc, res.msg);
    CU_ASSERT_EQUAL(res.rc == MESH_OK, want_ok);
    if (want_ok)
      CU_ASSERT_STRING_EQUAL(res.peer, X);
  }
  tp_server_stop(&srv);
  mesh_free(sm);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("svid_diff", suite_init, NULL);
  CU_add_test(s, "mesh__creds_load", test_diff_creds_load);
  CU_add_test(s, "mesh__creds_verify_peer", test_diff_verify_peer);
  CU_add_test(s, "handshake accepted", test_diff_handshake_ok);
  CU_add_test(s, "handshake refused", test_diff_handshake_refused);
}

int main(void) { return th_run_suites("test_svid_diff", add); }
