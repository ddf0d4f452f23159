/* SPDX-License-Identifier: Apache-2.0 */
/* Record buffers of pooled TLS connections, through calls against the
 * library's own echo server on loopback: a pooled connection keeps its
 * buffers while it is in use (no allocation per request) and gives them
 * back once the pool has held it idle MESH__POOL_TRIM_MS; a connection
 * whose buffers were given back still carries requests, for TLS 1.2 and
 * 1.3, full and resumed handshakes.
 *
 * The memory figures are OpenSSL's (its allocator hooks count the live
 * bytes the TLS library holds); the mbedTLS backend keeps one buffer
 * policy of its own (tls/backend.h `buffers` is NULL), so in that build
 * the rows check the requests and the reuse only. */
#include "helpers.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resilience/resilience.h"
#include "test_tls_peer.h"
#include "tls/tls.h"

#ifdef MESH_TEST_OPENSSL
#include <malloc.h>
#include <openssl/crypto.h>

/* Live bytes allocated by OpenSSL (usable sizes). */
static _Atomic long ossl_live;
static int hooks_set;

static void *c_malloc(size_t n, const char *f, int l) {
  (void)f;
  (void)l;
  void *p = malloc(n);
  if (p)
    atomic_fetch_add(&ossl_live, (long)malloc_usable_size(p));
  return p;
}
static void *c_realloc(void *p, size_t n, const char *f, int l) {
  (void)f;
  (void)l;
  long old = p ? (long)malloc_usable_size(p) : 0;
  void *q = realloc(p, n);
  if (!q && n > 0)
    return NULL;
  atomic_fetch_add(&ossl_live, (q ? (long)malloc_usable_size(q) : 0) - old);
  return q;
}
static void c_free(void *p, const char *f, int l) {
  (void)f;
  (void)l;
  if (p)
    atomic_fetch_sub(&ossl_live, (long)malloc_usable_size(p));
  free(p);
}
static bool counting(void) { return hooks_set; }
static long live(void) { return atomic_load(&ossl_live); }
#else
static bool counting(void) { return false; }
static long live(void) { return 0; }
#endif

/* What one connection's two record buffers take (OpenSSL 3.0: ~17 KiB
 * each); a drop of this much is the pair given back. */
#define BUFS_MIN (30 * 1024)

static tp_server_t srv;
static mesh_t *srv_mesh;

static bool server_up(void) {
  if (srv_mesh)
    return true;
  tp_certs();
  srv_mesh = tp_mesh("server", TD, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(srv_mesh);
  CU_ASSERT_FATAL(tp_server_start(&srv, srv_mesh, NULL, TP_ECHO));
  return true;
}

static void client_config(char *cfg, size_t len, const char *max_version) {
  char extra[768];
  snprintf(extra, sizeof extra,
           "\"tls\":{\"max_version\":\"%s\"},"
           "\"services\":{\"echo\":{\"peers\":[\"%s\"],"
           "\"discovery\":{\"type\":\"static\",\"endpoints\":[{\"address\":"
           "\"127.0.0.1\",\"port\":%d}]}}}",
           max_version, SERVER_ID, srv.port);
  tp_config(cfg, len, "client", TD, extra);
}

static mesh_t *client(const char *max_version) {
  char cfg[4096];
  client_config(cfg, sizeof cfg, max_version);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(cfg, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "\n  client: %s\n", st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  return m;
}

/* One request of 1 KiB through a call; its connection in *conn. */
static bool request(mesh_t *m, int outcome, mesh_conn_t **conn, int *resumed) {
  mesh_call_t *call = NULL;
  mesh_status_t st;
  if (mesh_call_begin(m, "echo", NULL, &call, &st) != MESH_OK) {
    fprintf(stderr, "\n  mesh_call_begin: %s\n", st.message);
    return false;
  }
  mesh_conn_t *c = mesh_call_conn(call);
  char out[1024], in[1024];
  for (size_t i = 0; i < sizeof out; i++)
    out[i] = (char)('a' + i % 26);
  bool ok = c && mesh_conn_write_all(c, out, sizeof out) == MESH_OK;
  size_t got = 0;
  while (ok && got < sizeof in) {
    long r = mesh_conn_read(c, in + got, sizeof in - got);
    ok = r > 0;
    got += ok ? (size_t)r : 0;
  }
  ok = ok && memcmp(in, out, sizeof in) == 0;
  if (conn)
    *conn = c;
  if (resumed)
    *resumed = c ? mesh_conn_resumed(c) : -1;
  mesh_call_end(call, ok ? outcome : MESH_CALL_RESET, 0);
  return ok;
}

typedef struct buf_case {
  const char *name;
  const char *max_version; /* client's tls.max_version */
  bool resumed;            /* the pooled connection resumed a session */
} buf_case_t;

static const buf_case_t buf_cases[] = {
    {"TLS 1.2, full handshake", "1.2", false},
    {"TLS 1.2, resumed", "1.2", true},
    {"TLS 1.3, full handshake", "1.3", false},
    {"TLS 1.3, resumed", "1.3", true},
};

static void run_case(const buf_case_t *k) {
  if (strcmp(k->max_version, "1.3") == 0 && !mesh__tls_be.has_tls13()) {
    /* mbedTLS 2.28: the config is refused, saying why */
    char cfg[4096];
    client_config(cfg, sizeof cfg, k->max_version);
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(cfg, &m, &st), MESH_ERR_CONFIG);
    CU_ASSERT(tp_contains(st.message, "needs a TLS backend with TLS 1.3"));
    mesh_free(m);
    return;
  }
  mesh_t *m = client(k->max_version);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  if (k->resumed) /* a first connection, closed: its session is saved */
    CU_ASSERT(request(m, MESH_CALL_RESET, NULL, NULL));
  mesh_conn_t *c1 = NULL, *c2 = NULL, *c3 = NULL;
  int res = -1;
  CU_ASSERT_FATAL(request(m, MESH_CALL_OK, &c1, &res));
  CU_ASSERT_EQUAL(res, k->resumed ? 1 : 0);
  /* the dial's first request ran before the pool had it: now it is a
   * pooled connection in use, holding its buffers */
  CU_ASSERT(request(m, MESH_CALL_OK, &c2, NULL));
  CU_ASSERT_PTR_EQUAL(c2, c1);
  long l1 = live();
  /* in use again at once: the same connection, no buffers freed or grown */
  CU_ASSERT(request(m, MESH_CALL_OK, &c2, NULL));
  CU_ASSERT_PTR_EQUAL(c2, c1);
  long l2 = live();
  if (counting()) {
    if (labs(l2 - l1) >= 4096)
      fprintf(stderr, "\n  %s: live %ld -> %ld after a reused request\n",
              k->name, l1, l2);
    CU_ASSERT(labs(l2 - l1) < 4096);
  }
  /* parked MESH__POOL_TRIM_MS and swept (every second by default):
   * the buffers go back */
  bool gone = false;
  if (counting()) {
    int64_t end = th_now_ms() + MESH__POOL_TRIM_MS + TH_CAP_MS / 10;
    while (!(gone = live() <= l2 - BUFS_MIN) && th_now_ms() < end)
      usleep(20000);
    if (!gone)
      fprintf(stderr, "\n  %s: live %ld, want <= %ld after the trim\n",
              k->name, live(), l2 - BUFS_MIN);
    CU_ASSERT(gone);
  } else {
    usleep((MESH__POOL_TRIM_MS + 1100) * 1000); /* past a sweep */
  }
  long l3 = live();
  if (counting())
    fprintf(stderr, " reused request: %+ld bytes held; idle trim gave back %ld",
            l2 - l1, l2 - l3);
  /* the connection without buffers carries the next request */
  CU_ASSERT(request(m, MESH_CALL_OK, &c3, &res));
  CU_ASSERT_PTR_EQUAL(c3, c1);
  CU_ASSERT_EQUAL(res, k->resumed ? 1 : 0);
  /* parked again: from its next request on it keeps them again */
  CU_ASSERT(request(m, MESH_CALL_OK, &c2, NULL));
  CU_ASSERT_PTR_EQUAL(c2, c1);
  if (counting() && gone) {
    long l4 = live();
    if (l4 < l3 + BUFS_MIN)
      fprintf(stderr, "\n  %s: live %ld -> %ld, buffers not kept\n", k->name,
              l3, l4);
    CU_ASSERT(l4 >= l3 + BUFS_MIN);
  }
  mesh_free(m);
}

static void server_down(void) {
  if (!srv_mesh)
    return;
  tp_server_stop(&srv);
  mesh_free(srv_mesh);
  srv_mesh = NULL;
}

static void test_buffers(void) {
#ifdef MESH_TEST_OPENSSL
  CU_ASSERT_FATAL(hooks_set); /* set before OpenSSL allocated anything */
#endif
  CU_ASSERT_FATAL(server_up());
  for (size_t i = 0; i < sizeof buf_cases / sizeof *buf_cases; i++) {
    fprintf(stderr, "\n  [%s]", buf_cases[i].name);
    run_case(&buf_cases[i]);
  }
  server_down();
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls_buffers", NULL, NULL);
  CU_add_test(s, "pooled connection: record buffers kept, trimmed, reused",
              test_buffers);
}

int main(void) {
#ifdef MESH_TEST_OPENSSL
  hooks_set = CRYPTO_set_mem_functions(c_malloc, c_realloc, c_free);
#endif
  int rc = th_run_suites("test_tls_buffers", add);
  server_down(); /* a fatal assertion left it running */
  return rc;
}
