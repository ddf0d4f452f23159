/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the tls tests; see test_tls_peer.h. */
#include "test_tls_peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "tls/tls.h"

void tp_certs(void) {
  static bool done;
  if (done)
    return;
  done = true;
  CU_ASSERT_FATAL(th_svid(TD, SERVER_ID, "server", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid(TD, CLIENT_ID, "client", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid(TD2, OTHER_ID, "other", 0, 0, 0));
  mesh_status_t st;
  char ca[512], cakey[512], crt[512], key[512];
  snprintf(ca, sizeof ca, "%s", th_path("rogue-ca.crt"));
  snprintf(cakey, sizeof cakey, "%s", th_path("rogue-ca.key"));
  snprintf(crt, sizeof crt, "%s", th_path("rogue.crt"));
  snprintf(key, sizeof key, "%s", th_path("rogue.key"));
  CU_ASSERT_FATAL(mesh_ca_init(TD, 86400, ca, cakey, &st) == MESH_OK);
  CU_ASSERT_FATAL(mesh_ca_issue(ca, cakey, SERVER_ID, 0, 0, 0, crt, key,
                                &st) == MESH_OK);
}

static void append(char *buf, size_t len, const char *s) {
  size_t n = strlen(buf);
  snprintf(buf + n, len - n, "%s", s);
}

void tp_config(char *buf, size_t len, const char *svid, const char *tds,
               const char *extra) {
  char crt[300], key[300], item[700];
  snprintf(crt, sizeof crt, "%s.crt", svid);
  snprintf(key, sizeof key, "%s.key", svid);
  snprintf(buf, len,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\",",
           th_path(crt));
  snprintf(item, sizeof item, "\"key\":\"%s\",\"bundles\":{", th_path(key));
  append(buf, len, item);
  bool first = true;
  for (const char *p = tds; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    char td[64], f[300];
    snprintf(td, sizeof td, "%.*s", (int)n, p);
    if (strcmp(td, "rogue") == 0) {
      snprintf(f, sizeof f, "rogue-ca.crt");
      snprintf(td, sizeof td, "%s", TD);
    } else {
      snprintf(f, sizeof f, "%s-ca.crt", td);
    }
    snprintf(item, sizeof item, "%s\"%s\":\"%s\"", first ? "" : ",", td,
             th_path(f));
    append(buf, len, item);
    first = false;
    p = comma ? comma + 1 : NULL;
  }
  append(buf, len, "}}");
  if (extra) {
    append(buf, len, ",");
    append(buf, len, extra);
  }
  append(buf, len, "}");
}

mesh_t *tp_mesh(const char *svid, const char *tds, const char *extra) {
  char cfg[4096];
  tp_config(cfg, sizeof cfg, svid, tds, extra);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(cfg, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "tp_mesh(%s): %s\n", svid, st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  return m;
}

bool tp_contains(const char *hay, const char *needle) {
  if (hay && needle && strstr(hay, needle))
    return true;
  fprintf(stderr, "\n  missing \"%s\" in \"%s\"\n", needle ? needle : "(null)",
          hay ? hay : "(null)");
  return false;
}

const char *tp_addr(int port) {
  static char ring[8][32];
  static int k;
  char *b = ring[k++ % 8];
  snprintf(b, 32, "127.0.0.1:%d", port);
  return b;
}

/* ---- server thread ---------------------------------------------------------- */

static void record(tp_server_t *s, int rc, const mesh_status_t *st,
                   mesh_conn_t *c) {
  pthread_mutex_lock(&s->mu);
  if (s->nres < TP_MAX_RESULTS) {
    tp_result_t *r = &s->res[s->nres++];
    memset(r, 0, sizeof *r);
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", rc == MESH_OK ? "" : st->message);
    if (c) {
      snprintf(r->peer, sizeof r->peer, "%s", mesh_conn_peer_id(c));
      r->resumed = mesh_conn_resumed(c);
      r->is_tls = mesh_conn_is_tls(c);
      snprintf(r->alpn, sizeof r->alpn, "%s", mesh_conn_alpn(c));
    }
  }
  pthread_mutex_unlock(&s->mu);
}

static void serve_echo(mesh_conn_t *c, bool once) {
  char buf[4096];
  for (int i = 0; i < 100000; i++) {
    long n = mesh_conn_read(c, buf, sizeof buf);
    if (n <= 0)
      return;
    if (mesh_conn_write_all(c, buf, (size_t)n) != MESH_OK)
      return;
    if (once) {
      mesh_conn_shutdown(c);
      return;
    }
  }
}

static void serve_http(mesh_conn_t *c) {
  char buf[4096];
  size_t got = 0;
  while (got < sizeof buf - 1) {
    long n = mesh_conn_read(c, buf + got, sizeof buf - 1 - got);
    if (n <= 0)
      return;
    got += (size_t)n;
    buf[got] = '\0';
    if (strstr(buf, "\r\n\r\n"))
      break;
  }
  char body[400], resp[600];
  snprintf(body, sizeof body, "hello %s\n", mesh_conn_peer_id(c));
  snprintf(resp, sizeof resp,
           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
           "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
           strlen(body), body);
  mesh_conn_write_all(c, resp, strlen(resp));
  mesh_conn_shutdown(c);
}

static void serve_reset(mesh_conn_t *c) {
  /* SO_LINGER 0 then closing the socket sends RST; /dev/null takes the
   * fd number so mesh_conn_close() closes that instead. */
  int fd = mesh_conn_fd(c);
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  int nul = open("/dev/null", O_WRONLY);
  dup2(nul, fd);
  close(nul);
}

static void *server_main(void *arg) {
  tp_server_t *s = arg;
  while (!atomic_load(&s->stop)) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_accept(s->l, 50, &c, &st);
    if (rc == MESH_ERR_TIMEOUT)
      continue;
    record(s, rc, &st, c);
    if (rc != MESH_OK)
      continue;
    switch (s->mode) {
    case TP_ECHO:
      serve_echo(c, false);
      break;
    case TP_ONESHOT:
      serve_echo(c, true);
      break;
    case TP_HTTP:
      serve_http(c);
      break;
    case TP_RESET:
      serve_reset(c);
      break;
    }
    mesh_conn_close(c);
  }
  return NULL;
}

bool tp_server_start(tp_server_t *s, mesh_t *m, const char *addr,
                     tp_mode_t mode) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->m = m;
  s->mode = mode;
  mesh_status_t st;
  if (mesh_listen(m, addr ? addr : "127.0.0.1:0", &s->l, &st) != MESH_OK) {
    fprintf(stderr, "tp_server_start: %s\n", st.message);
    return false;
  }
  s->port = mesh_listener_port(s->l);
  if (pthread_create(&s->th, NULL, server_main, s) != 0) {
    mesh_listener_close(s->l);
    s->l = NULL;
    return false;
  }
  return true;
}

void tp_server_stop(tp_server_t *s) {
  if (!s->l)
    return;
  atomic_store(&s->stop, true);
  pthread_join(s->th, NULL);
  mesh_listener_close(s->l);
  s->l = NULL;
  pthread_mutex_destroy(&s->mu);
}

/* Bounded by the count of results wanted; the cap is at least TH_CAP_MS
 * (a loaded machine or valgrind only takes longer), reported loudly. */
bool tp_server_wait(tp_server_t *s, int n, int ms) {
  int64_t end = th_now_ms() + (ms > TH_CAP_MS ? ms : TH_CAP_MS);
  for (;;) {
    pthread_mutex_lock(&s->mu);
    int have = s->nres;
    pthread_mutex_unlock(&s->mu);
    if (have >= n)
      return true;
    if (th_now_ms() >= end)
      break;
    usleep(10000);
  }
  fprintf(stderr, "\n  TIME CAP: %d accept results wanted\n", n);
  return false;
}

tp_result_t tp_server_result(tp_server_t *s, int i) {
  tp_result_t r = {.rc = 1};
  pthread_mutex_lock(&s->mu);
  if (i >= 0 && i < s->nres)
    r = s->res[i];
  pthread_mutex_unlock(&s->mu);
  return r;
}

/* ---- raw peers -------------------------------------------------------------- */

int tp_raw_listen(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(fd, 8) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

int tp_raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
    return fd;
  if (fd >= 0)
    close(fd);
  return -1;
}

int tp_echo_once(mesh_t *m, const char *target, const char *msg,
                 mesh_status_t *st, char *peer_pem, size_t pem_len,
                 int *resumed) {
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(m, target, NULL, &c, st);
  if (rc != MESH_OK)
    return rc;
  if (resumed)
    *resumed = mesh_conn_resumed(c);
  if (peer_pem)
    mesh_conn_peer_chain_pem(c, peer_pem, pem_len);
  mesh_conn_set_timeouts(c, 5000, 5000);
  size_t len = strlen(msg);
  rc = mesh_conn_write_all(c, msg, len);
  char buf[1024];
  size_t got = 0;
  while (rc == MESH_OK && got < len && got < sizeof buf) {
    long n = mesh_conn_read(c, buf + got, sizeof buf - got);
    if (n <= 0) {
      rc = n == 0 ? MESH_ERR_PEER_CLOSED : (int)n;
      break;
    }
    got += (size_t)n;
  }
  if (rc == MESH_OK && (got != len || memcmp(buf, msg, len) != 0))
    rc = MESH_ERR_INTERNAL;
  if (rc != MESH_OK && st)
    snprintf(st->message, sizeof st->message, "echo: %s",
             mesh_conn_errmsg(c));
  if (st)
    st->code = rc;
  mesh_conn_close(c);
  return rc;
}

/* ---- what differs by TLS backend ----------------------------------------- */

const char *tp_tls_version(void) {
  return mesh__tls_be.has_tls13() ? "TLSv1.3" : "TLSv1.2";
}

int tp_dial_refused(mesh_t *m, const char *target, const mesh_dial_opts_t *o,
                    mesh_status_t *st) {
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(m, target, o, &c, st);
  if (rc != MESH_OK)
    return rc;
  if (strcmp(mesh_conn_tls_version(c), "TLSv1.3") == 0) {
    mesh_conn_set_timeouts(c, 5000, 5000);
    char b;
    long n = mesh_conn_read(c, &b, 1);
    rc = n < 0 ? (int)n : MESH_ERR_INTERNAL; /* data or EOF: not refused */
    snprintf(st->message, sizeof st->message, "%s", mesh_conn_errmsg(c));
    st->code = rc;
  } else {
    rc = MESH_ERR_INTERNAL; /* a TLS 1.2 refusal fails the handshake */
    snprintf(st->message, sizeof st->message, "dial succeeded");
    st->code = rc;
  }
  mesh_conn_close(c);
  return rc;
}
