/* SPDX-License-Identifier: Apache-2.0 */
/* tls: the library's client against the library's server on loopback —
 * echo, peer identity, resumption, ALPN, PERMISSIVE, non-blocking use,
 * IPv6, EOF/RST, fd limits, rotation, and the "tls"/"inbound" config. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_tls_peer.h"
#include "identity/pemfile.h"
#include "tls/tls.h"

#define CONTAINS(hay, needle) CU_ASSERT(tp_contains((hay), (needle)))

/* ---- echo, identity, connection accessors ------------------------------- */

static void test_mesh_dial_echo(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm && cm);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));

  mesh_status_t st;
  mesh_conn_t *c = NULL;
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  CU_ASSERT_EQUAL(mesh_dial_opts_add_peer(o, SERVER_ID), MESH_OK);
  int rc = mesh_dial(cm, tp_addr(srv.port), o, &c, &st);
  mesh_dial_opts_free(o);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), SERVER_ID);
  CU_ASSERT_STRING_EQUAL(mesh_conn_tls_version(c), tp_tls_version());
  /* TLS 1.2: ECDHE-ECDSA suites; TLS 1.3 suites name no key exchange */
  if (strcmp(tp_tls_version(), "TLSv1.2") == 0)
    CU_ASSERT_PTR_NOT_NULL(strstr(mesh_conn_cipher(c), "ECDHE-ECDSA"));
  CU_ASSERT_PTR_NOT_NULL(strstr(mesh_conn_cipher(c), "GCM"));
  CU_ASSERT_EQUAL(mesh_conn_is_tls(c), 1);
  CU_ASSERT_EQUAL(mesh_conn_resumed(c), 0);
  CU_ASSERT_STRING_EQUAL(mesh_conn_alpn(c), "");
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_addr(c), tp_addr(srv.port));
  CU_ASSERT(mesh_conn_fd(c) >= 0);

  /* The PEM chain parses and its leaf is the server's SVID. */
  char pem[8192];
  long n = mesh_conn_peer_chain_pem(c, pem, sizeof pem);
  CU_ASSERT(n > 0 && (size_t)n == strlen(pem));
  mesh__x509_chain_t *crt = mesh__x509_chain_new();
  CU_ASSERT_EQUAL(mesh__x509_chain_parse(crt, (unsigned char *)pem,
                                         strlen(pem) + 1, true, "pem", NULL),
                  MESH_OK);
  char id[256];
  CU_ASSERT_EQUAL(mesh__svid_leaf_check(mesh__x509_chain_at(crt, 0), id,
                                        sizeof id, NULL),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, SERVER_ID);
  mesh__x509_chain_free(crt);
  char small[16];
  CU_ASSERT_EQUAL(mesh_conn_peer_chain_pem(c, small, sizeof small),
                  MESH_ERR_BUFFER);

  /* Echo in both directions, twice over one connection. */
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(mesh_conn_write_all(c, "hello mesh", 10), MESH_OK);
    char buf[32] = {0};
    size_t got = 0;
    while (got < 10) {
      long r = mesh_conn_read(c, buf + got, sizeof buf - got);
      CU_ASSERT_FATAL(r > 0);
      got += (size_t)r;
    }
    CU_ASSERT_STRING_EQUAL(buf, "hello mesh");
  }
  CU_ASSERT_EQUAL(mesh_conn_shutdown(c), MESH_OK);
  CU_ASSERT_EQUAL(mesh_conn_write(c, "x", 1), MESH_ERR_CLOSED);
  char b;
  CU_ASSERT_EQUAL(mesh_conn_read(c, &b, 1), 0); /* server closes after EOF */
  mesh_conn_close(c);

  CU_ASSERT(tp_server_wait(&srv, 1, 2000));
  tp_result_t r = tp_server_result(&srv, 0);
  CU_ASSERT_EQUAL(r.rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(r.peer, CLIENT_ID);
  CU_ASSERT_EQUAL(r.is_tls, 1);
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

static void test_mesh_conn_null(void) {
  CU_ASSERT_EQUAL(mesh_conn_read(NULL, NULL, 0), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_conn_write(NULL, "x", 1), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_conn_write_all(NULL, "x", 1), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_conn_shutdown(NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_conn_handshake(NULL, NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_conn_set_timeouts(NULL, 1, 1), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_conn_fd(NULL), -1);
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(NULL), "");
  CU_ASSERT_STRING_EQUAL(mesh_conn_cipher(NULL), "");
  CU_ASSERT_STRING_EQUAL(mesh_conn_tls_version(NULL), "");
  CU_ASSERT_STRING_EQUAL(mesh_conn_alpn(NULL), "");
  CU_ASSERT_EQUAL(mesh_conn_resumed(NULL), 0);
  CU_ASSERT_EQUAL(mesh_conn_is_tls(NULL), 0);
  char buf[8];
  CU_ASSERT_EQUAL(mesh_conn_peer_chain_pem(NULL, buf, sizeof buf),
                  MESH_ERR_INVALID_ARG);
  mesh_conn_close(NULL);
  mesh_listener_close(NULL);
  CU_ASSERT_EQUAL(mesh_listener_port(NULL), -1);
  CU_ASSERT_EQUAL(mesh_listener_fd(NULL), -1);
  mesh_status_t st;
  mesh_conn_t *c;
  CU_ASSERT_EQUAL(mesh_accept(NULL, 0, &c, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_accept_start(NULL, &c, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_dial(NULL, "127.0.0.1:1", NULL, &c, &st),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_listen(NULL, NULL, NULL, &st), MESH_ERR_INVALID_ARG);
}

/* ---- dial options ------------------------------------------------------- */

static void test_mesh_dial_opts(void) {
  mesh_dial_opts_free(NULL);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_timeout(o, -1), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_timeout(o, 250), MESH_OK);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_timeout(NULL, 1), MESH_ERR_INVALID_ARG);
  static const struct {
    const char *alpn;
    int rc;
  } alpn[] = {
      {"h2", MESH_OK},          {"h2,http/1.1", MESH_OK},
      {"", MESH_ERR_INVALID_ARG}, {"h2,", MESH_ERR_INVALID_ARG},
      {",h2", MESH_ERR_INVALID_ARG}, {"a,b,c,d,e,f,g,h,i", MESH_ERR_INVALID_ARG},
      {NULL, MESH_OK},
  };
  for (size_t i = 0; i < sizeof alpn / sizeof alpn[0]; i++)
    CU_ASSERT_EQUAL(mesh_dial_opts_set_alpn(o, alpn[i].alpn), alpn[i].rc);
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  CU_ASSERT_EQUAL(mesh_dial_opts_set_alpn(o, longname), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_dial_opts_add_peer(o, NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_dial_opts_add_peer(o, ""), MESH_ERR_INVALID_ARG);
  int added = 0;
  for (int i = 0; i < 20; i++)
    if (mesh_dial_opts_add_peer(o, "spiffe://example.org/x") == MESH_OK)
      added++;
  CU_ASSERT_EQUAL(added, 16);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_hash_key(o, "k", 1), MESH_OK);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_hash_key(o, NULL, 3),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_nonblocking(o, 1), MESH_OK);
  mesh_dial_opts_free(o);
}

/* ---- targets and connect errors ---------------------------------------- */

static void test_mesh_dial_targets(void) {
  tp_certs();
  mesh_t *m = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(m != NULL);
  int free_port = th_free_port();
  char refused[32];
  snprintf(refused, sizeof refused, "127.0.0.1:%d", free_port);
  static const struct {
    const char *target;
    int rc;
    const char *msg;
  } cases[] = {
      {"payments", MESH_ERR_UNKNOWN_SERVICE, "neither a configured service"},
      {"127.0.0.1", MESH_ERR_UNKNOWN_SERVICE, "neither"},
      {"127.0.0.1:", MESH_ERR_INVALID_ARG, "is not \"host:port\""},
      {"127.0.0.1:99999", MESH_ERR_INVALID_ARG, "is not"},
      {"127.0.0.1:8x", MESH_ERR_INVALID_ARG, "is not"},
      {"::1:80", MESH_ERR_INVALID_ARG, "is not"},
      {"[::1:80", MESH_ERR_INVALID_ARG, "is not"},
      {":80", MESH_ERR_INVALID_ARG, "is not"},
      {NULL, MESH_ERR_CONNECT, "Connection refused"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *t = cases[i].target ? cases[i].target : refused;
    mesh_status_t st;
    mesh_conn_t *c = (mesh_conn_t *)1;
    int rc = mesh_dial(m, t, NULL, &c, &st);
    CU_ASSERT_EQUAL(rc, cases[i].rc);
    CU_ASSERT_EQUAL(st.code, cases[i].rc);
    CU_ASSERT_PTR_NULL(c);
    CONTAINS(st.message, cases[i].msg);
  }
  mesh_free(m);
}

/* ---- resumption --------------------------------------------------------- */

static void test_mesh_conn_resumed(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm && cm);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  const char *a = tp_addr(srv.port);
  mesh_status_t st;
  int resumed[3] = {-1, -1, -1};
  char pem[8192];
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(tp_echo_once(cm, a, "ping", &st, pem, sizeof pem,
                                 &resumed[i]),
                    MESH_OK);
  }
  CU_ASSERT_EQUAL(resumed[0], 0);
  CU_ASSERT_EQUAL(resumed[1], 1);
  CU_ASSERT_EQUAL(resumed[2], 1);
  /* After resumption the leaf is still known (chain PEM of the leaf). */
  CU_ASSERT_PTR_NOT_NULL(strstr(pem, "BEGIN CERTIFICATE"));
  CU_ASSERT(tp_server_wait(&srv, 3, 2000));
  CU_ASSERT_EQUAL(tp_server_result(&srv, 0).resumed, 0);
  CU_ASSERT_EQUAL(tp_server_result(&srv, 1).resumed, 1);
  CU_ASSERT_STRING_EQUAL(tp_server_result(&srv, 1).peer, CLIENT_ID);

  /* A resumed session is still checked against the allowed peers. */
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_add_peer(o, "spiffe://example.org/ns/default/sa/other");
  mesh_conn_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_dial(cm, a, o, &c, &st), MESH_ERR_PEER_ID);
  CONTAINS(st.message, SERVER_ID);
  mesh_dial_opts_free(o);
  tp_server_stop(&srv);

  /* Resumption off on the client: always full handshakes. */
  mesh_t *cm2 = tp_mesh("client", TD, "\"tls\":{\"session_resumption\":false}");
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  a = tp_addr(srv.port);
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(tp_echo_once(cm2, a, "ping", &st, NULL, 0, &resumed[i]),
                    MESH_OK);
    CU_ASSERT_EQUAL(resumed[i], 0);
  }
  tp_server_stop(&srv);
  mesh_free(cm2);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- ALPN ---------------------------------------------------------------- */

static void test_mesh_conn_alpn(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, "\"tls\":{\"alpn\":[\"h2\",\"http/1.1\"]}");
  mesh_t *cm = tp_mesh("client", TD, "\"tls\":{\"alpn\":[\"h2\"]}");
  CU_ASSERT_FATAL(sm && cm);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  static const struct {
    const char *opt; /* NULL: the config's */
    int rc;
    const char *want;
  } cases[] = {
      {NULL, MESH_OK, "h2"},
      {"http/1.1", MESH_OK, "http/1.1"},
      {"spdy/3,http/1.1", MESH_OK, "http/1.1"},
      {"imap", MESH_ERR_TLS, ""}, /* no common protocol */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mesh_dial_opts_t *o = mesh_dial_opts_new();
    if (cases[i].opt)
      mesh_dial_opts_set_alpn(o, cases[i].opt);
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_dial(cm, tp_addr(srv.port), o, &c, &st);
    CU_ASSERT_EQUAL(rc, cases[i].rc);
    if (rc == MESH_OK)
      CU_ASSERT_STRING_EQUAL(mesh_conn_alpn(c), cases[i].want);
    if (rc != MESH_OK)
      CONTAINS(st.message, "no_application_protocol");
    mesh_conn_close(c);
    mesh_dial_opts_free(o);
  }
  CU_ASSERT(tp_server_wait(&srv, 4, 2000));
  /* The server finishes handshakes in the order they complete, not the
   * order they began: a resumed TLS 1.2 handshake ends on the server after
   * the client has gone on to the next dial.  So count what it saw. */
  int h2 = 0, h11 = 0, refused = 0;
  for (int i = 0; i < 4; i++) {
    tp_result_t r = tp_server_result(&srv, i);
    if (r.rc != MESH_OK)
      refused++;
    else if (!strcmp(r.alpn, "h2"))
      h2++;
    else if (!strcmp(r.alpn, "http/1.1"))
      h11++;
  }
  CU_ASSERT_EQUAL(h2, 1);
  CU_ASSERT_EQUAL(h11, 2);
  CU_ASSERT_EQUAL(refused, 1);
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- IPv6 ---------------------------------------------------------------- */

static void test_mesh_listen_ipv6(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm && cm);
  tp_server_t srv;
  if (!tp_server_start(&srv, sm, "[::1]:0", TP_ECHO)) {
    /* A machine without IPv6 loopback cannot run this; say so. */
    fprintf(stderr, "\n  ::1 unavailable: IPv6 case not run\n");
    CU_FAIL("IPv6 loopback unavailable");
  } else {
    char target[64];
    snprintf(target, sizeof target, "[::1]:%d", srv.port);
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, target, NULL, &c, &st), MESH_OK);
    CU_ASSERT_STRING_EQUAL(mesh_conn_peer_addr(c), target);
    CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), SERVER_ID);
    mesh_conn_close(c);
    tp_server_stop(&srv);
  }
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- inbound modes ---------------------------------------------------------- */

static void test_mesh_accept_permissive(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, "\"inbound\":{\"mode\":\"PERMISSIVE\"}");
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm && cm);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  /* A plaintext peer is served as such... */
  int fd = tp_raw_connect(srv.port);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_EQUAL(write(fd, "plain hello", 11), 11);
  char buf[64] = {0};
  size_t got = 0;
  for (int i = 0; i < 100 && got < 11; i++) {
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  CU_ASSERT_STRING_EQUAL(buf, "plain hello");
  /* ...and an mTLS peer as mTLS. */
  mesh_status_t st;
  CU_ASSERT_EQUAL(tp_echo_once(cm, tp_addr(srv.port), "tls hello", &st, NULL,
                               0, NULL),
                  MESH_OK);
  CU_ASSERT(tp_server_wait(&srv, 2, 2000));
  tp_result_t r0 = tp_server_result(&srv, 0), r1 = tp_server_result(&srv, 1);
  CU_ASSERT_EQUAL(r0.rc, MESH_OK);
  CU_ASSERT_EQUAL(r0.is_tls, 0);
  CU_ASSERT_STRING_EQUAL(r0.peer, "");
  CU_ASSERT_EQUAL(r1.is_tls, 1);
  CU_ASSERT_STRING_EQUAL(r1.peer, CLIENT_ID);
  /* A peer that connects and closes without a byte is reported. */
  fd = tp_raw_connect(srv.port);
  close(fd);
  CU_ASSERT(tp_server_wait(&srv, 3, 2000));
  CU_ASSERT_EQUAL(tp_server_result(&srv, 2).rc, MESH_ERR_PEER_CLOSED);
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

static void test_mesh_accept_strict_plaintext(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  int fd = tp_raw_connect(srv.port);
  CU_ASSERT_FATAL(fd >= 0);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  CU_ASSERT_EQUAL(write(fd, req, strlen(req)), (ssize_t)strlen(req));
  CU_ASSERT(tp_server_wait(&srv, 1, 3000));
  tp_result_t r = tp_server_result(&srv, 0);
  CU_ASSERT_EQUAL(r.rc, MESH_ERR_PLAINTEXT_PEER);
  CONTAINS(r.msg, "non-TLS bytes \"GET /\"");
  CONTAINS(r.msg, "127.0.0.1:");
  close(fd);
  tp_server_stop(&srv);
  mesh_free(sm);
}

/* ---- non-blocking dial and accept, driven by poll in one thread ---------- */

static int step_both(mesh_conn_t *a, int *ra, mesh_conn_t *b, int *rb) {
  struct pollfd p[2];
  int n = 0;
  if (*ra == MESH_ERR_WANT_READ || *ra == MESH_ERR_WANT_WRITE)
    p[n++] = (struct pollfd){mesh_conn_fd(a),
                             *ra == MESH_ERR_WANT_READ ? POLLIN : POLLOUT, 0};
  if (*rb == MESH_ERR_WANT_READ || *rb == MESH_ERR_WANT_WRITE)
    p[n++] = (struct pollfd){mesh_conn_fd(b),
                             *rb == MESH_ERR_WANT_READ ? POLLIN : POLLOUT, 0};
  if (n == 0)
    return 0;
  poll(p, (nfds_t)n, 100);
  if (*ra != MESH_OK)
    *ra = mesh_conn_handshake(a, NULL);
  if (*rb != MESH_OK)
    *rb = mesh_conn_handshake(b, NULL);
  return 1;
}

static void test_mesh_conn_handshake_nonblocking(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm && cm);
  mesh_status_t st;
  mesh_listener_t *l;
  CU_ASSERT_EQUAL_FATAL(mesh_listen(sm, "127.0.0.1:0", &l, &st), MESH_OK);
  mesh_conn_t *s = NULL;
  CU_ASSERT_EQUAL(mesh_accept_start(l, &s, &st), MESH_ERR_WANT_READ);
  CU_ASSERT_PTR_NULL(s);

  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_set_nonblocking(o, 1);
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(cm, tp_addr(mesh_listener_port(l)), o, &c, &st);
  mesh_dial_opts_free(o);
  CU_ASSERT(rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  /* Reads before the handshake is done say what to wait for. */
  char b;
  long r0 = mesh_conn_read(c, &b, 1);
  CU_ASSERT(r0 == MESH_ERR_WANT_READ || r0 == MESH_ERR_WANT_WRITE);

  struct pollfd lp = {mesh_listener_fd(l), POLLIN, 0};
  CU_ASSERT_EQUAL(poll(&lp, 1, 2000), 1);
  CU_ASSERT_EQUAL_FATAL(mesh_accept_start(l, &s, &st), MESH_OK);
  int rs = mesh_conn_handshake(s, NULL);
  int rounds = 0;
  while (step_both(c, &rc, s, &rs) && rounds < 200)
    rounds++;
  CU_ASSERT_EQUAL(rc, MESH_OK);
  CU_ASSERT_EQUAL(rs, MESH_OK);
  CU_ASSERT(rounds >= 1);
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), SERVER_ID);
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(s), CLIENT_ID);

  /* Non-blocking I/O: nothing to read yet, then data. */
  char buf[64];
  CU_ASSERT_EQUAL(mesh_conn_read(s, buf, sizeof buf), MESH_ERR_WANT_READ);
  CU_ASSERT_EQUAL(mesh_conn_write(c, "nb-ping", 7), 7);
  CU_ASSERT_EQUAL(mesh_conn_write_all(c, "x", 1), MESH_ERR_INVALID_ARG);
  long n = MESH_ERR_WANT_READ;
  for (int i = 0; i < 100 && n == MESH_ERR_WANT_READ; i++) {
    struct pollfd p = {mesh_conn_fd(s), POLLIN, 0};
    poll(&p, 1, 50);
    n = mesh_conn_read(s, buf, sizeof buf);
  }
  CU_ASSERT_EQUAL(n, 7);
  CU_ASSERT_EQUAL(memcmp(buf, "nb-ping", 7), 0);
  mesh_conn_close(c);
  mesh_conn_close(s);
  mesh_listener_close(l);
  mesh_free(cm);
  mesh_free(sm);
}

/* A non-blocking handshake called after its budget fails with TIMEOUT. */
static void test_mesh_conn_handshake_budget(void) {
  tp_certs();
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(cm != NULL);
  int port;
  int lfd = tp_raw_listen(&port);
  CU_ASSERT_FATAL(lfd >= 0);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_set_nonblocking(o, 1);
  mesh_dial_opts_set_timeout(o, 100);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_dial(cm, tp_addr(port), o, &c, &st);
  CU_ASSERT(rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE);
  usleep(150000);
  CU_ASSERT_EQUAL(mesh_conn_handshake(c, &st), MESH_ERR_TIMEOUT);
  CONTAINS(st.message, "timed out after 100 ms");
  /* Sticky. */
  CU_ASSERT_EQUAL(mesh_conn_handshake(c, &st), MESH_ERR_TIMEOUT);
  CU_ASSERT_EQUAL(mesh_conn_write(c, "x", 1), MESH_ERR_TIMEOUT);
  CONTAINS(mesh_conn_errmsg(c), "timed out");
  mesh_conn_close(c);
  mesh_dial_opts_free(o);
  close(lfd);
  mesh_free(cm);
}

/* ---- EOF and RST ----------------------------------------------------------- */

static void test_mesh_conn_read_reset(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm && cm);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_RESET));
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(srv.port), NULL, &c, &st),
                        MESH_OK);
  mesh_conn_set_timeouts(c, 3000, 3000);
  char buf[16];
  long n = mesh_conn_read(c, buf, sizeof buf);
  CU_ASSERT_EQUAL(n, MESH_ERR_RESET);
  CONTAINS(mesh_conn_errmsg(c), "reset");
  mesh_conn_close(c);
  tp_server_stop(&srv);

  /* close_notify then FIN: a clean EOF (0), not an error. */
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(srv.port), NULL, &c, &st),
                        MESH_OK);
  CU_ASSERT_EQUAL(mesh_conn_write_all(c, "bye", 3), MESH_OK);
  long got = 0;
  for (int i = 0; i < 10 && got < 3; i++) {
    n = mesh_conn_read(c, buf + got, sizeof buf - (size_t)got);
    if (n <= 0)
      break;
    got += n;
  }
  CU_ASSERT_EQUAL(got, 3);
  CU_ASSERT_EQUAL(mesh_conn_read(c, buf, sizeof buf), 0);
  CU_ASSERT_EQUAL(mesh_conn_read(c, buf, sizeof buf), 0);
  mesh_conn_close(c);
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

static void test_mesh_conn_read_timeout(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, "\"tls\":{\"read_timeout_ms\":100}");
  CU_ASSERT_FATAL(sm && cm);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(srv.port), NULL, &c, &st),
                        MESH_OK);
  char buf[8];
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh_conn_read(c, buf, sizeof buf), MESH_ERR_TIMEOUT);
  int64_t el = mesh__now_ms() - t0;
  CU_ASSERT(el >= 90 && el < 2000);
  /* Not sticky: the connection still works. */
  CU_ASSERT_EQUAL(mesh_conn_write_all(c, "ok", 2), MESH_OK);
  CU_ASSERT(mesh_conn_read(c, buf, sizeof buf) > 0);
  CU_ASSERT_EQUAL(mesh_conn_set_timeouts(c, -2, 0), MESH_ERR_INVALID_ARG);
  mesh_conn_close(c);
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- out of file descriptors ---------------------------------------------- */

static void test_mesh_dial_fd_limit(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm && cm);
  mesh_status_t st;
  mesh_listener_t *l;
  CU_ASSERT_EQUAL_FATAL(mesh_listen(sm, "127.0.0.1:0", &l, &st), MESH_OK);
  int pending = tp_raw_connect(mesh_listener_port(l));
  CU_ASSERT_FATAL(pending >= 0);
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  /* Fill the table up to a low soft limit (bounded: at most 256 fds). */
  struct rlimit low = {.rlim_cur = 256, .rlim_max = old.rlim_max};
  CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
  /* TLS configs (and their DRBG seeds) exist before the table is full. */
  mesh__tlsgen_t *g;
  CU_ASSERT_EQUAL(mesh__tlsgen_acquire(cm, &g, &st), MESH_OK);
  mesh__tlsgen_release(g);
  CU_ASSERT_EQUAL(mesh__tlsgen_acquire(sm, &g, &st), MESH_OK);
  mesh__tlsgen_release(g);
  int fds[256], nfds = 0;
  while (nfds < 256) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0)
      break;
    fds[nfds++] = fd;
  }
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(cm, tp_addr(mesh_listener_port(l)), NULL, &c, &st);
  int rca = mesh_accept(l, 1000, &c, &st);
  for (int i = 0; i < nfds; i++)
    close(fds[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  CU_ASSERT_EQUAL(rc, MESH_ERR_FD_LIMIT);
  CU_ASSERT_EQUAL(rca, MESH_ERR_FD_LIMIT);
  CONTAINS(st.message, "accept");
  close(pending);
  mesh_listener_close(l);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- rotation ---------------------------------------------------------------- */

typedef struct rot_client {
  mesh_t *m;
  const char *target;
  atomic_bool stop;
  pthread_mutex_t mu; /* guards everything below */
  int ok, failed;
  char first_fail[512];
  char first_pem[4096], last_pem[4096];
} rot_client_t;

static void *rot_main(void *arg) {
  rot_client_t *rc = arg;
  for (int i = 0; i < 100000 && !atomic_load(&rc->stop); i++) {
    mesh_status_t st;
    char pem[4096] = "";
    char msg[32];
    snprintf(msg, sizeof msg, "call %d", i);
    int r = tp_echo_once(rc->m, rc->target, msg, &st, pem, sizeof pem, NULL);
    pthread_mutex_lock(&rc->mu);
    if (r != MESH_OK) {
      if (!rc->failed++)
        snprintf(rc->first_fail, sizeof rc->first_fail, "%s: %s",
                 mesh_code_name(r), st.message);
    } else {
      if (!rc->ok++)
        memcpy(rc->first_pem, pem, sizeof pem);
      memcpy(rc->last_pem, pem, sizeof pem);
    }
    pthread_mutex_unlock(&rc->mu);
  }
  return NULL;
}

/* Replace <tmp>/<dst>.crt/.key with <src>'s by rename (like cert tools). */
static void replace_svid(const char *src, const char *dst) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cp '%s/%s.key' '%s/%s.key.new' && cp '%s/%s.crt' '%s/%s.crt.new' "
           "&& mv '%s/%s.key.new' '%s/%s.key' && mv '%s/%s.crt.new' "
           "'%s/%s.crt'",
           th_tmpdir(), src, th_tmpdir(), dst, th_tmpdir(), src, th_tmpdir(),
           dst, th_tmpdir(), dst, th_tmpdir(), dst, th_tmpdir(), dst,
           th_tmpdir(), dst);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
}

/* Is the first certificate of pem the first one of the file? */
static bool same_leaf(const char *pem, const char *path) {
  mesh__x509_chain_t *a = mesh__x509_chain_new();
  mesh__x509_chain_t *b = mesh__x509_chain_new();
  bool same = mesh__x509_chain_parse(a, (const unsigned char *)pem,
                                     strlen(pem) + 1, true, "pem",
                                     NULL) == MESH_OK &&
              mesh__pem_load_crts(b, path, NULL) == MESH_OK &&
              mesh__x509_same(mesh__x509_chain_at(a, 0),
                              mesh__x509_chain_at(b, 0));
  mesh__x509_chain_free(a);
  mesh__x509_chain_free(b);
  return same;
}

static int rot_ok(rot_client_t *rc) {
  pthread_mutex_lock(&rc->mu);
  int n = rc->ok;
  pthread_mutex_unlock(&rc->mu);
  return n;
}

/* Wait until `more` further calls succeeded (bounded). */
/* Waits are bounded by what must happen (handshakes, a new leaf), not
 * by a time window: valgrind makes a handshake 20-50x slower.  The cap
 * (TH_CAP_MS) only stops a broken run, loudly. */
struct rot_wait {
  rot_client_t *rc;
  int want;
  const char *old;
};

static bool rot_ok_reached(void *arg) {
  struct rot_wait *w = arg;
  return rot_ok(w->rc) >= w->want;
}

static bool rot_wait_ok(rot_client_t *rc, int more) {
  struct rot_wait w = {rc, rot_ok(rc) + more, NULL};
  return th_wait_for(rot_ok_reached, &w, TH_CAP_MS, "rotation: handshakes");
}

static bool pem_changed(void *arg) {
  struct rot_wait *w = arg;
  pthread_mutex_lock(&w->rc->mu);
  bool changed = w->rc->ok > 0 && strcmp(w->rc->last_pem, w->old) != 0;
  pthread_mutex_unlock(&w->rc->mu);
  return changed;
}

static bool wait_pem_change(rot_client_t *rc, const char *old) {
  struct rot_wait w = {rc, 0, old};
  return th_wait_for(pem_changed, &w, TH_CAP_MS, "rotation: the new leaf");
}

static void test_rotation_under_load(void) {
  tp_certs();
  /* The server's own SVID files, rotated below. */
  CU_ASSERT_FATAL(th_svid(TD, SERVER_ID, "rot-server", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid(TD, SERVER_ID, "rot-next", 0, 0, 0));
  mesh_t *sm = NULL;
  char cfg[4096];
  tp_config(cfg, sizeof cfg, "rot-server", TD, NULL);
  /* faster file polling than the default, for a short test */
  char *p = strstr(cfg, "\"bundles\"");
  CU_ASSERT_FATAL(p != NULL);
  char cfg2[4200];
  snprintf(cfg2, sizeof cfg2, "%.*s\"reload_interval_ms\":50,%s",
           (int)(p - cfg), cfg, p);
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(cfg2, &sm, &st), MESH_OK);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));

  static rot_client_t rc; /* large: not on the stack */
  memset(&rc, 0, sizeof rc);
  rc.m = cm;
  rc.target = tp_addr(srv.port);
  pthread_mutex_init(&rc.mu, NULL);
  pthread_t th;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, rot_main, &rc), 0);
  CU_ASSERT(rot_wait_ok(&rc, 5));
  char before[4096];
  pthread_mutex_lock(&rc.mu);
  memcpy(before, rc.last_pem, sizeof before);
  pthread_mutex_unlock(&rc.mu);

  /* 1. A broken file: the old identity keeps serving. */
  CU_ASSERT(th_write(th_path("rot-server.crt"), "-----BEGIN CERTIFICATE-----\n"
                                                "garbage\n"));
  usleep(300000);
  CU_ASSERT_NOT_EQUAL(mesh_identity_reload(sm, &st), MESH_OK);
  CU_ASSERT(rot_wait_ok(&rc, 5));
  pthread_mutex_lock(&rc.mu);
  CU_ASSERT_STRING_EQUAL(rc.last_pem, before);
  pthread_mutex_unlock(&rc.mu);

  /* 2. A new SVID replaces the files: new handshakes present it. */
  replace_svid("rot-next", "rot-server");
  CU_ASSERT(wait_pem_change(&rc, before));
  CU_ASSERT(rot_wait_ok(&rc, 5));
  atomic_store(&rc.stop, true);
  pthread_join(th, NULL);
  pthread_mutex_destroy(&rc.mu);

  if (rc.failed)
    fprintf(stderr, "\n  first failure: %s\n", rc.first_fail);
  CU_ASSERT_EQUAL(rc.failed, 0);
  CU_ASSERT(rc.ok >= 15);
  /* The last handshakes presented exactly the new certificate. */
  CU_ASSERT(same_leaf(rc.last_pem, th_path("rot-next.crt")));
  CU_ASSERT(!same_leaf(rc.first_pem, th_path("rot-next.crt")));
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- config ------------------------------------------------------------------ */

static void test_tls_config(void) {
  static const struct {
    const char *json;
    const char *msg; /* NULL: valid */
  } cases[] = {
      {"{\"tls\":{}}", NULL},
      {"{\"tls\":{\"min_version\":\"1.2\",\"alpn\":[\"h2\"],"
       "\"session_resumption\":false,\"ticket_lifetime_s\":60,"
       "\"session_cache_size\":0,\"connect_timeout_ms\":100,"
       "\"handshake_timeout_ms\":100,\"read_timeout_ms\":-1,"
       "\"write_timeout_ms\":5}}",
       NULL},
      {"{\"tls\":{\"min_version\":\"1.3\"}}",
       "tls.min_version: \"1.3\" needs a TLS backend with TLS 1.3"},
      {"{\"tls\":{\"min_version\":\"1.1\"}}",
       "tls.min_version: unknown value \"1.1\""},
      {"{\"tls\":{\"alpn\":[\"\"]}}", "tls.alpn[0]: protocol name must be"},
      {"{\"tls\":{\"alpn\":\"h2\"}}", "tls.alpn: expected an array"},
      {"{\"tls\":{\"alpn\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
       "\"9\"]}}",
       "tls.alpn: at most 8 protocols"},
      {"{\"tls\":{\"connect_timeout_ms\":0}}",
       "tls.connect_timeout_ms: 0 is out of range"},
      {"{\"tls\":{\"handshake_timeout_ms\":\"5s\"}}",
       "tls.handshake_timeout_ms: expected an integer"},
      {"{\"tls\":{\"ticket_lifetime_s\":0}}", "tls.ticket_lifetime_s: 0 is out"},
      {"{\"tls\":{\"session_resumption\":1}}",
       "tls.session_resumption: expected true or false"},
      {"{\"tls\":{\"verify\":false}}", "tls.verify: unknown key"},
      {"{\"tls\":[]}", "tls: expected an object"},
      {"{\"inbound\":{\"listen\":\"[::1]:0\",\"mode\":\"PERMISSIVE\","
       "\"peers\":[\"*\"]}}",
       NULL},
      {"{\"inbound\":{\"mode\":\"strict\"}}",
       "inbound.mode: unknown value \"strict\" (expected one of \"STRICT\", "
       "\"PERMISSIVE\")"},
      {"{\"inbound\":{\"listen\":\"localhost\"}}",
       "inbound.listen: \"localhost\" is not \"host:port\""},
      {"{\"inbound\":{\"listen\":\"0.0.0.0:70000\"}}", "inbound.listen"},
      {"{\"inbound\":{\"peers\":[]}}", "inbound.peers: must list at least one"},
      {"{\"inbound\":{\"peers\":[3]}}", "inbound.peers[0]: expected a string"},
      {"{\"inbound\":{\"port\":1}}", "inbound.port: unknown key"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mesh_t *m = NULL;
    mesh_status_t st;
    int rc = mesh_new(cases[i].json, &m, &st);
    /* "1.3" is an error only where the backend lacks TLS 1.3 */
    bool tls13_ok = strstr(cases[i].json, "\"1.3\"") &&
                    strcmp(tp_tls_version(), "TLSv1.3") == 0;
    if (!cases[i].msg || tls13_ok) {
      if (rc != MESH_OK)
        fprintf(stderr, "\n  case %zu: %s\n", i, st.message);
      CU_ASSERT_EQUAL(rc, MESH_OK);
      mesh_free(m);
      continue;
    }
    CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(m);
    CONTAINS(st.message, cases[i].msg);
    CU_ASSERT_EQUAL(mesh_config_check(cases[i].json, NULL, NULL), 1);
  }
}

/* Without an identity section, dials and accepts say what is missing. */
static void test_mesh_dial_no_identity(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &m, &st), MESH_OK);
  mesh_conn_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_dial(m, "127.0.0.1:1", NULL, &c, &st), MESH_ERR_SVID);
  CONTAINS(st.message, "no SVID loaded");
  mesh_free(m);
}

/* SSLKEYLOGFILE: off by default; when set, every handshake's secrets are
 * appended in NSS key log format and mesh_new warns loudly (on stderr,
 * before any log hook can be installed). */
static void test_sslkeylogfile(void) {
  tp_certs();
  char path[300], errp[300];
  snprintf(path, sizeof path, "%s", th_path("keylog.txt"));
  snprintf(errp, sizeof errp, "%s", th_path("keylog-stderr.txt"));
  unlink(path);
  /* off: nothing written */
  mesh_t *sm = tp_mesh("server", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(cm != NULL);
  mesh_status_t st;
  CU_ASSERT_EQUAL(tp_echo_once(cm, tp_addr(srv.port), "k", &st, NULL, 0, NULL),
                  MESH_OK);
  mesh_free(cm);
  CU_ASSERT(access(path, F_OK) != 0);
  /* on: a warning, and one line per secret */
  setenv("SSLKEYLOGFILE", path, 1);
  fflush(stderr);
  int saved = dup(2);
  int efd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(efd, 2);
  char cfg[4096];
  tp_config(cfg, sizeof cfg, "client", TD, NULL);
  char *lv = strstr(cfg, "\"level\":\"error\"");
  if (lv)
    memcpy(lv, "\"level\":\"warn\" ", 15); /* same length, no NUL */
  cm = NULL;
  mesh_new(cfg, &cm, &st);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(efd);
  unsetenv("SSLKEYLOGFILE");
  CU_ASSERT_FATAL(cm != NULL);
  CU_ASSERT_EQUAL(tp_echo_once(cm, tp_addr(srv.port), "k", &st, NULL, 0, NULL),
                  MESH_OK);
  mesh_free(cm);
  tp_server_stop(&srv);
  mesh_free(sm);
  char *err = th_slurp(errp, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(err);
  CONTAINS(err, "level=warn event=tls_keylog");
  CONTAINS(err, path);
  free(err);
  char *kl = th_slurp(path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(kl);
  /* TLS 1.2: CLIENT_RANDOM <32-byte random> <48-byte master secret>;
   * TLS 1.3: CLIENT_TRAFFIC_SECRET_0 and the other secrets */
  const char *label = strcmp(tp_tls_version(), "TLSv1.3") == 0
                          ? "CLIENT_TRAFFIC_SECRET_0 "
                          : "CLIENT_RANDOM ";
  const char *l = strstr(kl, label);
  CU_ASSERT_PTR_NOT_NULL(l);
  if (l) {
    l += strlen(label);
    size_t hex = strspn(l, "0123456789abcdef");
    CU_ASSERT_EQUAL(hex, 64);
    CU_ASSERT(l[hex] == ' ' && strspn(l + hex + 1, "0123456789abcdef") >= 64);
  }
  struct stat sb;
  CU_ASSERT(stat(path, &sb) == 0 && (sb.st_mode & 077) == 0);
  free(kl);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls", NULL, NULL);
  CU_add_test(s, "mesh_dial echo and peer identity", test_mesh_dial_echo);
  CU_add_test(s, "mesh_conn_* with NULL", test_mesh_conn_null);
  CU_add_test(s, "mesh_dial_opts setters", test_mesh_dial_opts);
  CU_add_test(s, "mesh_dial targets and connect errors",
              test_mesh_dial_targets);
  CU_add_test(s, "mesh_dial without identity", test_mesh_dial_no_identity);
  CU_add_test(s, "mesh_conn_resumed", test_mesh_conn_resumed);
  CU_add_test(s, "mesh_conn_alpn", test_mesh_conn_alpn);
  CU_add_test(s, "mesh_listen on IPv6", test_mesh_listen_ipv6);
  CU_add_test(s, "mesh_accept PERMISSIVE", test_mesh_accept_permissive);
  CU_add_test(s, "mesh_accept STRICT refuses plaintext",
              test_mesh_accept_strict_plaintext);
  CU_add_test(s, "mesh_conn_handshake non-blocking",
              test_mesh_conn_handshake_nonblocking);
  CU_add_test(s, "mesh_conn_handshake budget", test_mesh_conn_handshake_budget);
  CU_add_test(s, "mesh_conn_read EOF and RST", test_mesh_conn_read_reset);
  CU_add_test(s, "mesh_conn_read timeout", test_mesh_conn_read_timeout);
  CU_add_test(s, "mesh_dial and mesh_accept out of fds",
              test_mesh_dial_fd_limit);
  CU_add_test(s, "rotation under load", test_rotation_under_load);
  CU_add_test(s, "tls and inbound config", test_tls_config);
  CU_add_test(s, "SSLKEYLOGFILE", test_sslkeylogfile);
}

int main(void) { return th_run_suites("test_tls", add); }
