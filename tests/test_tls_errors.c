/* SPDX-License-Identifier: Apache-2.0 */
/* tls: every way a peer can fail mTLS, each with its own code and a
 * message naming the peer and the check, and nothing leaked (memory under
 * ASan; file descriptors counted here).  Misbehaving peers are the
 * library itself with bad identities, `openssl s_server` / `s_client`
 * presenting certificates the library would never load (expired, not yet
 * valid, rule-breaking), and raw TCP peers (plaintext, stalled). */
#include "helpers.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "test_tls_peer.h"

#define CONTAINS(hay, needle) CU_ASSERT(tp_contains((hay), (needle)))

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  int n = 0;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

/* Extra SVIDs only openssl will present. */
static void bad_certs(void) {
  static bool done;
  if (done)
    return;
  done = true;
  tp_certs();
  CU_ASSERT_FATAL(th_svid(TD, SERVER_ID, "expired", -7200, -3600, 0));
  CU_ASSERT_FATAL(th_svid(TD, SERVER_ID, "future", 3600, 7200, 0));
  CU_ASSERT_FATAL(th_svid(TD, CLIENT_ID, "two-uris", 0, 0,
                          MESH_CA_ISSUE_TWO_URIS));
  /* Claims example.org but is signed by other.org's CA. */
  CU_ASSERT_FATAL(th_svid(TD2, SERVER_ID, "cross-td", 0, 0, 0));
}

static pid_t openssl_server(int port, const char *svid, const char *log) {
  char acc[32], crt[300], key[300], ca[300];
  snprintf(acc, sizeof acc, "127.0.0.1:%d", port);
  snprintf(crt, sizeof crt, "%s.crt", th_path(svid));
  snprintf(key, sizeof key, "%s.key", th_path(svid));
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  const char *argv[] = {"openssl", "s_server", "-accept", acc, "-cert", crt,
                        "-key", key, "-CAfile", ca, "-Verify", "1",
                        "-verify_return_error", "-rev", NULL};
  pid_t pid = th_spawn(argv, log);
  if (pid > 0 && !th_wait_port(port, 5000)) {
    th_stop(pid);
    return -1;
  }
  return pid;
}

/* ---- the library as client ----------------------------------------------- */

typedef enum { PEER_MESH, PEER_OPENSSL } peer_kind_t;

/* One table for every backend: the alert a refusing side sends is
 * mesh__tls_refusal_alert(code), whatever the TLS library (mbedTLS and
 * OpenSSL builds run these same rows).  `alert`: the alert's name the
 * receiving side must report; for an openssl s_server peer, its log must
 * show that alert number. */
typedef struct dial_case {
  const char *name;
  peer_kind_t kind;
  const char *svid, *tds; /* the server's identity */
  const char *server_extra;
  const char *client_tds;
  const char *expect_peer; /* dial option, or NULL */
  int rc;
  const char *msg1, *msg2;
  int server_rc; /* mesh servers: what the server saw (0: not checked) */
  const char *server_msg;
  const char *alert; /* the alert sent by the refusing side */
  int alert_num;
} dial_case_t;

#define UNKNOWN_CA "unknown_ca", 48
#define BAD_CERT "bad_certificate", 42
#define EXPIRED "certificate_expired", 45

static const dial_case_t dial_cases[] = {
    {"untrusted CA", PEER_MESH, "rogue", "rogue", NULL, TD, NULL,
     MESH_ERR_CERT_UNTRUSTED, SERVER_ID, "127.0.0.1:", MESH_ERR_TLS,
     "unknown_ca", UNKNOWN_CA},
    {"expired SVID", PEER_OPENSSL, "expired", NULL, NULL, TD, NULL,
     MESH_ERR_CERT_EXPIRED, "expired at", "127.0.0.1:", 0, NULL, EXPIRED},
    {"not-yet-valid SVID", PEER_OPENSSL, "future", NULL, NULL, TD, NULL,
     MESH_ERR_CERT_NOT_YET_VALID, "not valid before", "127.0.0.1:", 0, NULL,
     BAD_CERT},
    /* With both bundles held, mbedTLS alone would accept this chain. */
    {"SVID signed by another trust domain's CA", PEER_OPENSSL, "cross-td",
     NULL, NULL, TD "," TD2, NULL, MESH_ERR_CERT_UNTRUSTED, SERVER_ID,
     "127.0.0.1:", 0, NULL, UNKNOWN_CA},
    {"wrong SPIFFE ID", PEER_MESH, "server", TD, NULL, TD,
     "spiffe://example.org/ns/default/sa/payments", MESH_ERR_PEER_ID,
     "presented " SERVER_ID,
     "allowed peers (spiffe://example.org/ns/default/sa/payments)",
     MESH_ERR_TLS, "bad_certificate", BAD_CERT},
    {"wrong trust domain", PEER_MESH, "other", TD2 "," TD, NULL, TD, NULL,
     MESH_ERR_TRUST_DOMAIN, "no trust bundle for trust domain \"other.org\"",
     "127.0.0.1:", MESH_ERR_TLS, "unknown_ca", UNKNOWN_CA},
    {"peer refuses our ID", PEER_MESH, "server", TD,
     "\"inbound\":{\"peers\":[\"spiffe://example.org/ns/default/sa/web\"]}",
     TD, NULL, MESH_ERR_TLS, "rejected our certificate", "bad_certificate",
     MESH_ERR_PEER_ID, "presented " CLIENT_ID, BAD_CERT},
};

/* s_server (stderr unbuffered) logs the alert it received. */
static bool log_has_alert(const char *log, int num) {
  char want[48];
  snprintf(want, sizeof want, "SSL alert number %d", num);
  bool ok = false;
  int64_t end = th_now_ms() + TH_CAP_MS;
  while (!ok && th_now_ms() < end) {
    char *s = th_slurp(th_path(log), NULL);
    ok = s && strstr(s, want);
    free(s);
    if (!ok)
      usleep(10000);
  }
  if (!ok) {
    char *s = th_slurp(th_path(log), NULL);
    fprintf(stderr, "\n  %s: no \"%s\" in:\n%s\n", log, want, s ? s : "");
    free(s);
  }
  return ok;
}

static void run_dial_case(const dial_case_t *tc, int idx) {
  char log[48];
  snprintf(log, sizeof log, "s_server-errors-%d.log", idx);
  mesh_t *cm = tp_mesh("client", tc->client_tds, NULL);
  CU_ASSERT_FATAL(cm != NULL);
  int fds = count_fds();
  mesh_t *sm = NULL;
  tp_server_t srv = {0};
  pid_t pid = -1;
  int port;
  if (tc->kind == PEER_MESH) {
    sm = tp_mesh(tc->svid, tc->tds, tc->server_extra);
    CU_ASSERT_FATAL(sm != NULL);
    CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
    port = srv.port;
  } else {
    port = th_free_port();
    pid = openssl_server(port, tc->svid, log);
    CU_ASSERT_FATAL(pid > 0);
  }
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  if (tc->expect_peer)
    mesh_dial_opts_add_peer(o, tc->expect_peer);
  mesh_status_t st;
  int rc = tp_dial_refused(cm, tp_addr(port), o, &st);
  mesh_dial_opts_free(o);
  if (rc != tc->rc)
    fprintf(stderr, "\n  %s: got %s: %s\n", tc->name, mesh_code_name(rc),
            st.message);
  CU_ASSERT_EQUAL(rc, tc->rc);
  CU_ASSERT_EQUAL(st.code, tc->rc);
  CONTAINS(st.message, tc->msg1);
  CONTAINS(st.message, tc->msg2);
  if (tc->kind == PEER_MESH) {
    if (tc->server_rc) {
      CU_ASSERT(tp_server_wait(&srv, 1, 3000));
      tp_result_t r = tp_server_result(&srv, 0);
      if (r.rc != tc->server_rc)
        fprintf(stderr, "\n  %s (server): got %s: %s\n", tc->name,
                mesh_code_name(r.rc), r.msg);
      CU_ASSERT_EQUAL(r.rc, tc->server_rc);
      CONTAINS(r.msg, tc->server_msg);
    }
    tp_server_stop(&srv);
    mesh_free(sm);
  } else {
    CU_ASSERT(log_has_alert(log, tc->alert_num));
    th_stop(pid);
  }
  CU_ASSERT_EQUAL(count_fds(), fds);
  mesh_free(cm);
}

static void test_mesh_dial_peer_errors(void) {
  bad_certs();
  for (size_t i = 0; i < sizeof dial_cases / sizeof dial_cases[0]; i++)
    run_dial_case(&dial_cases[i], (int)i);
}

/* ---- the library as server, independent clients -------------------------- */

typedef struct accept_case {
  const char *name;
  const char *svid; /* client SVID for openssl s_client; NULL: no -cert */
  int rc;
  const char *msg1, *msg2;
  int alert_num; /* what s_client must log receiving (same table as the
                    dial cases); 0: version-dependent, asserted in
                    test_tls_accept */
} accept_case_t;

static const accept_case_t accept_cases[] = {
    {"no client certificate (STRICT)", NULL, MESH_ERR_NO_PEER_CERT,
     "sent no client certificate", "127.0.0.1:", 0},
    {"expired client SVID", "expired", MESH_ERR_CERT_EXPIRED, "expired at",
     "127.0.0.1:", 45},
    {"not-yet-valid client SVID", "future", MESH_ERR_CERT_NOT_YET_VALID,
     "not valid before", "127.0.0.1:", 42},
    {"client from an untrusted CA", "rogue", MESH_ERR_CERT_UNTRUSTED,
     "127.0.0.1:", SERVER_ID, 48},
    {"client of another trust domain", "other", MESH_ERR_TRUST_DOMAIN,
     "other.org", "127.0.0.1:", 48},
    {"client breaking the X.509-SVID rules", "two-uris", MESH_ERR_SVID,
     "URI", "127.0.0.1:", 42},
};

static void run_accept_case(mesh_t *sm, const accept_case_t *tc, int idx) {
  char log[48];
  snprintf(log, sizeof log, "s_client-errors-%d.log", idx);
  int fds = count_fds();
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  char conn[32], crt[300], key[300], ca[300];
  snprintf(conn, sizeof conn, "127.0.0.1:%d", srv.port);
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  const char *argv[16] = {"openssl", "s_client", "-connect", conn,
                          "-CAfile", ca, "-quiet"};
  int n = 7;
  if (tc->svid) {
    snprintf(crt, sizeof crt, "%s.crt", th_path(tc->svid));
    snprintf(key, sizeof key, "%s.key", th_path(tc->svid));
    argv[n++] = "-cert";
    argv[n++] = crt;
    argv[n++] = "-key";
    argv[n++] = key;
  }
  argv[n] = NULL;
  pid_t pid = th_spawn(argv, log);
  CU_ASSERT(pid > 0);
  CU_ASSERT(tp_server_wait(&srv, 1, 5000));
  tp_result_t r = tp_server_result(&srv, 0);
  if (r.rc != tc->rc)
    fprintf(stderr, "\n  %s: got %s: %s\n", tc->name, mesh_code_name(r.rc),
            r.msg);
  CU_ASSERT_EQUAL(r.rc, tc->rc);
  CONTAINS(r.msg, tc->msg1);
  CONTAINS(r.msg, tc->msg2);
  if (tc->alert_num)
    CU_ASSERT(log_has_alert(log, tc->alert_num));
  th_stop(pid);
  tp_server_stop(&srv);
  CU_ASSERT_EQUAL(count_fds(), fds);
}

static void test_mesh_accept_peer_errors(void) {
  bad_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL);
  for (size_t i = 0; i < sizeof accept_cases / sizeof accept_cases[0]; i++)
    run_accept_case(sm, &accept_cases[i], (int)i);
  mesh_free(sm);
}

/* ---- plaintext and stalled peers ------------------------------------------ */

typedef struct raw_peer {
  int lfd;
  const char *answer;  /* written after accept (and after reading if rd) */
  bool read_first;
  pthread_t th;
} raw_peer_t;

static void *raw_main(void *arg) {
  raw_peer_t *p = arg;
  int fd = accept(p->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  char buf[512];
  if (p->read_first && read(fd, buf, sizeof buf) <= 0) {
    close(fd);
    return NULL;
  }
  if (p->answer && write(fd, p->answer, strlen(p->answer)) < 0) {
    /* the client may be gone already */
  }
  /* Hold the connection open: the client must decide on its own. */
  struct timeval tv = {.tv_sec = 3};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return NULL;
}

typedef struct raw_case {
  const char *name;
  const char *answer;
  bool read_first;
  int timeout_ms;  /* dial option; 0: config handshake_timeout_ms=200 */
  int rc;
  const char *msg1, *msg2;
} raw_case_t;

static const raw_case_t raw_cases[] = {
    {"plaintext banner", "SSH-2.0-OpenSSH_9.2\r\n", false, 0,
     MESH_ERR_PLAINTEXT_PEER, "non-TLS bytes \"SSH-2\"", "127.0.0.1:"},
    {"plaintext HTTP answer", "HTTP/1.1 400 Bad Request\r\n\r\n", true, 0,
     MESH_ERR_PLAINTEXT_PEER, "non-TLS bytes \"HTTP/\"", "127.0.0.1:"},
    {"stall, no answer (dial budget)", NULL, true, 300, MESH_ERR_TIMEOUT,
     "timed out after 300 ms", "sent nothing"},
    {"stall, no answer (config budget)", NULL, true, 0, MESH_ERR_TIMEOUT,
     "timed out after 200 ms", "127.0.0.1:"},
    {"stall mid-handshake", "\x16\x03\x03\x00\x40\x02", true, 300,
     MESH_ERR_TIMEOUT, "timed out after 300 ms", "mid-handshake"},
};

static void test_mesh_dial_raw_peers(void) {
  tp_certs();
  mesh_t *cm = tp_mesh("client", TD, "\"tls\":{\"handshake_timeout_ms\":200}");
  CU_ASSERT_FATAL(cm != NULL);
  for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
    const raw_case_t *tc = &raw_cases[i];
    int fds = count_fds();
    raw_peer_t p = {.answer = tc->answer, .read_first = tc->read_first};
    int port;
    p.lfd = tp_raw_listen(&port);
    CU_ASSERT_FATAL(p.lfd >= 0);
    CU_ASSERT_FATAL(pthread_create(&p.th, NULL, raw_main, &p) == 0);
    mesh_dial_opts_t *o = mesh_dial_opts_new();
    if (tc->timeout_ms)
      mesh_dial_opts_set_timeout(o, tc->timeout_ms);
    mesh_conn_t *c = (mesh_conn_t *)1;
    mesh_status_t st;
    int64_t t0 = mesh__now_ms();
    int rc = mesh_dial(cm, tp_addr(port), o, &c, &st);
    int64_t el = mesh__now_ms() - t0;
    mesh_dial_opts_free(o);
    if (rc != tc->rc)
      fprintf(stderr, "\n  %s: got %s: %s\n", tc->name, mesh_code_name(rc),
              st.message);
    CU_ASSERT_EQUAL(rc, tc->rc);
    CU_ASSERT_PTR_NULL(c);
    CONTAINS(st.message, tc->msg1);
    CONTAINS(st.message, tc->msg2);
    if (rc == MESH_ERR_TIMEOUT) {
      /* Not before the budget; after it, only "returned at all": the
       * stalled peer never answers while the dial runs, and the message
       * checked above names the budget that fired.  A loaded machine can
       * be late by seconds (CI was by > 1 s), so no tight upper bound. */
      int budget = tc->timeout_ms ? tc->timeout_ms : 200;
      if (el < budget - 5 || el >= budget + 30000)
        fprintf(stderr, "\n  %s: returned after %lld ms, budget %d ms\n",
                tc->name, (long long)el, budget);
      CU_ASSERT(el >= budget - 5 && el < budget + 30000);
    }
    shutdown(p.lfd, SHUT_RDWR);
    pthread_join(p.th, NULL);
    close(p.lfd);
    CU_ASSERT_EQUAL(count_fds(), fds);
  }
  mesh_free(cm);
}

/* ---- bad own identity at mesh_new ------------------------------------------ */

static void test_mesh_new_bad_identity(void) {
  tp_certs();
  CU_ASSERT_FATAL(th_write(th_path("garbage.crt"),
                           "-----BEGIN CERTIFICATE-----\nnot base64!\n"
                           "-----END CERTIFICATE-----\n"));
  static const struct {
    const char *crt, *key;
    int rc;
    const char *msg;
  } cases[] = {
      {"server.crt", "client.key", MESH_ERR_KEY_MISMATCH, "server.crt"},
      {"garbage.crt", "server.key", MESH_ERR_PEM, "garbage.crt"},
      {"server.crt", "garbage.crt", MESH_ERR_PEM, "garbage.crt"},
      {"missing.crt", "server.key", MESH_ERR_IO, "missing.crt"},
  };
  int fds = count_fds();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char cfg[2048], crt[300], k[300];
    snprintf(crt, sizeof crt, "%s", th_path(cases[i].crt));
    snprintf(k, sizeof k, "%s", th_path(cases[i].key));
    snprintf(cfg, sizeof cfg,
             "{\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"}}",
             crt, k, th_path(TD "-ca.crt"));
    mesh_t *m = (mesh_t *)1;
    mesh_status_t st;
    int rc = mesh_new(cfg, &m, &st);
    if (rc != cases[i].rc)
      fprintf(stderr, "\n  case %zu: got %s: %s\n", i, mesh_code_name(rc),
              st.message);
    CU_ASSERT_EQUAL(rc, cases[i].rc);
    CU_ASSERT_PTR_NULL(m);
    CONTAINS(st.message, cases[i].msg);
  }
  CU_ASSERT_EQUAL(count_fds(), fds);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls errors", NULL, NULL);
  CU_add_test(s, "mesh_dial peer failures", test_mesh_dial_peer_errors);
  CU_add_test(s, "mesh_accept peer failures (openssl s_client)",
              test_mesh_accept_peer_errors);
  CU_add_test(s, "mesh_dial plaintext and stalled peers",
              test_mesh_dial_raw_peers);
  CU_add_test(s, "mesh_new with a bad own identity",
              test_mesh_new_bad_identity);
}

int main(void) {
  if (!th_require("openssl", "openssl"))
    return 77; /* SKIP; scripts/test fails on any skip */
  return th_run_suites("test_tls_errors", add);
}
