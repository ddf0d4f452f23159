/* SPDX-License-Identifier: Apache-2.0 */
/* http/h2 with independent peers on loopback, started by the test:
 *   - curl --http2-prior-knowledge, nghttp and h2load (h2c) and curl
 *     --http2 over mTLS (ALPN h2) against mesh_http_serve();
 *   - the libmesh HTTP/2 client against nghttpd, plaintext (h2c prior
 *     knowledge) and over TLS with ALPN h2 and a client certificate
 *     (--verify-client), echoing an upload larger than every window. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "http/h2.h"

#define DL(ms) (mesh__now_ms() + (ms))

static bool have_tools(void) {
  return th_have("curl") && th_have("nghttp") && th_have("nghttpd") &&
         th_have("h2load");
}

/* ---- the libmesh server ----------------------------------------------------------- */

static atomic_int handled;

static int handler(const mesh_http_request_t *req, mesh_http_response_t *resp,
                   void *user) {
  (void)user;
  atomic_fetch_add(&handled, 1);
  size_t blen;
  mesh_http_request_body(req, &blen);
  char out[512];
  snprintf(out, sizeof out, "%s %s len=%zu peer=%s\n",
           mesh_http_request_method(req), mesh_http_request_target(req), blen,
           mesh_http_request_peer_id(req));
  mesh_http_response_add_header(resp, "Content-Type", "text/plain");
  mesh_http_response_set_body(resp, out, strlen(out));
  return 0;
}

struct srv {
  pthread_t t;
  mesh_t *m;
  mesh_listener_t *l;
  atomic_bool stop;
};

struct conn_job {
  mesh_t *m;
  mesh_conn_t *c;
};

static void *conn_main(void *arg) {
  struct conn_job *j = arg;
  mesh_http_serve(j->m, j->c, handler, NULL, NULL);
  mesh_conn_close(j->c);
  free(j);
  return NULL;
}

static void *srv_main(void *arg) {
  struct srv *s = arg;
  pthread_t t[64];
  int n = 0;
  while (!atomic_load(&s->stop) && n < 64) {
    mesh_conn_t *c = NULL;
    if (mesh_accept(s->l, 100, &c, NULL) != MESH_OK)
      continue;
    struct conn_job *j = malloc(sizeof *j);
    *j = (struct conn_job){s->m, c};
    pthread_create(&t[n++], NULL, conn_main, j);
  }
  for (int i = 0; i < n; i++)
    pthread_join(t[i], NULL);
  return NULL;
}

static const char *certs(void) {
  const char *ca = th_ca("example.org");
  if (!ca ||
      !th_svid("example.org", "spiffe://example.org/ns/default/sa/server",
               "server", 0, 0, 0) ||
      !th_svid("example.org", "spiffe://example.org/ns/default/sa/client",
               "client", 0, 0, 0))
    return NULL;
  return ca;
}

static int srv_start(struct srv *s, const char *mode) {
  const char *ca = certs();
  CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"},\"tls\":{\"alpn\":[\"h2\","
           "\"http/1.1\"]},\"inbound\":{\"listen\":\"127.0.0.1:0\","
           "\"mode\":\"%s\"},\"http\":{\"idle_timeout_ms\":3000}}",
           th_path("server.crt"), th_path("server.key"), ca, mode);
  memset(s, 0, sizeof *s);
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &s->m, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_listen(s->m, NULL, &s->l, &st), MESH_OK);
  pthread_create(&s->t, NULL, srv_main, s);
  return mesh_listener_port(s->l);
}

static void srv_stop(struct srv *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->t, NULL);
  mesh_listener_close(s->l);
  mesh_free(s->m);
}

static char *run(const char *cmd, int *status) {
  const char *out = th_path("interop.out");
  char full[4096];
  snprintf(full, sizeof full, "%s > '%s' 2>&1", cmd, out);
  *status = th_sh(full);
  char *s = th_slurp(out, NULL);
  return s ? s : calloc(1, 1);
}

/* ---- real clients against mesh_http_serve() ------------------------------------ */

/* One peer after another against one server (a script more than a
 * function: over 60 lines, read top to bottom). */
static void test_mesh_http_serve_h2_clients(void) {
  if (!have_tools()) {
    CU_FAIL("curl, nghttp, nghttpd and h2load are required "
            "(Debian nghttp2-client, nghttp2-server)");
    return;
  }
  struct srv s;
  int port = srv_start(&s, "PERMISSIVE");
  char cmd[2048];
  int rc;
  /* curl, h2c prior knowledge, with an upload */
  snprintf(cmd, sizeof cmd,
           "curl -sS --http2-prior-knowledge --max-time 10 -w "
           "' v=%%{http_version}' --data-binary 'hello' "
           "http://127.0.0.1:%d/c?x=1",
           port);
  char *out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_STRING_EQUAL(out, "POST /c?x=1 len=5 peer=\n v=2");
  free(out);
  /* nghttp, h2c: several requests on one connection */
  snprintf(cmd, sizeof cmd,
           "nghttp -n -s http://127.0.0.1:%d/a http://127.0.0.1:%d/b "
           "http://127.0.0.1:%d/c",
           port, port, port);
  out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "/a"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "/c"));
  free(out);
  /* h2load: 2000 requests, 4 connections, 20 streams each at once */
  atomic_store(&handled, 0);
  snprintf(cmd, sizeof cmd,
           "h2load -n 2000 -c 4 -m 20 http://127.0.0.1:%d/load", port);
  out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  if (!strstr(out, "2000 succeeded"))
    fprintf(stderr, "h2load: %s\n", out ? out : "");
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "2000 succeeded, 0 failed, 0 errored"));
  CU_ASSERT_EQUAL(atomic_load(&handled), 2000);
  free(out);
  /* curl over mTLS: ALPN h2, the peer's SPIFFE ID reaches the handler */
  snprintf(cmd, sizeof cmd,
           "curl -sS --http2 -k --max-time 10 --cert '%s' --key '%s' -w "
           "' v=%%{http_version}' https://127.0.0.1:%d/tls",
           th_path("client.crt"), th_path("client.key"), port);
  out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_STRING_EQUAL(out, "GET /tls len=0 peer=spiffe://example.org/ns/"
                              "default/sa/client\n v=2");
  free(out);
  /* and HTTP/1.1 over TLS on the same listener */
  snprintf(cmd, sizeof cmd,
           "curl -sS --http1.1 -k --max-time 10 --cert '%s' --key '%s' -w "
           "' v=%%{http_version}' https://127.0.0.1:%d/h1",
           th_path("client.crt"), th_path("client.key"), port);
  out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "v=1.1"));
  free(out);
  srv_stop(&s);
}

/* ---- the libmesh client against nghttpd ------------------------------------------- */

static void fetch(mesh__h2_session_t *c, const char *path, size_t body,
                  char *status, size_t *got, bool *same) {
  mesh__h2_hdr_t h[] = {{":method", body ? "POST" : "GET"},
                        {":scheme", "https"},
                        {":path", path},
                        {":authority", "127.0.0.1"}};
  mesh__h2_stream_t *x;
  mesh_status_t st;
  status[0] = '\0';
  *got = 0;
  *same = false;
  if (mesh__h2_stream_open(c, h, 4, body == 0, &x, &st) != MESH_OK) {
    fprintf(stderr, "open: %s\n", st.message);
    return;
  }
  char *b = malloc(body + 1);
  for (size_t i = 0; i < body; i++)
    b[i] = (char)('A' + i % 23);
  if (body)
    mesh__h2_stream_write(x, b, body, true, DL(10000), &st);
  const mesh__h2_hdr_t *rh;
  size_t rn;
  if (mesh__h2_stream_headers(x, DL(10000), &rh, &rn, &st) == MESH_OK) {
    snprintf(status, 8, "%s", rh[0].value);
    char *r = malloc(body + 65536);
    for (;;) {
      long k = mesh__h2_stream_read(x, r + *got, 65536, DL(10000), &st);
      if (k <= 0)
        break;
      *got += (size_t)k;
    }
    *same = *got == body && memcmp(r, b, body) == 0;
    free(r);
  } else {
    fprintf(stderr, "headers: %s\n", st.message);
  }
  free(b);
  mesh__h2_stream_free(x);
}

/* nghttpd plaintext, then over TLS (a script: over 60 lines). */
static void test_mesh__h2_client_nghttpd(void) {
  if (!have_tools()) {
    CU_FAIL("nghttpd is required (Debian nghttp2-server)");
    return;
  }
  const char *ca = certs();
  CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
  th_write(th_path("index.html"), "hello from nghttpd\n");
  /* plaintext h2c */
  int port = th_free_port();
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  const char *argv[] = {"nghttpd", "--no-tls", "--echo-upload", "-d",
                        th_tmpdir(), ps, NULL};
  pid_t pid = th_spawn(argv, "nghttpd-plain.log");
  CU_ASSERT_FATAL(pid > 0 && th_wait_port(port, 5000));
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mesh__h2_session_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_dial_plain(NULL, target, 2000, NULL, &c,
                                            NULL),
                        MESH_OK);
  char status[8];
  size_t got;
  bool same;
  fetch(c, "/index.html", 0, status, &got, &same);
  CU_ASSERT_STRING_EQUAL(status, "200");
  CU_ASSERT_EQUAL(got, strlen("hello from nghttpd\n"));
  fetch(c, "/echo", (2u << 20) + 3, status, &got, &same);
  CU_ASSERT_STRING_EQUAL(status, "200");
  CU_ASSERT(same);
  fetch(c, "/missing", 0, status, &got, &same);
  CU_ASSERT_STRING_EQUAL(status, "404");
  CU_ASSERT(mesh__h2_session_ping(c, DL(5000)) >= 0);
  mesh__h2_session_free(c);
  th_stop(pid);

  /* TLS, ALPN h2, client certificate required */
  port = th_free_port();
  snprintf(ps, sizeof ps, "%d", port);
  const char *argv2[] = {"nghttpd", "--verify-client", "--echo-upload", "-d",
                         th_tmpdir(), ps, th_path("server.key"),
                         th_path("server.crt"), NULL};
  pid = th_spawn(argv2, "nghttpd-tls.log");
  CU_ASSERT_FATAL(pid > 0 && th_wait_port(port, 5000));
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"}}",
           th_path("client.crt"), th_path("client.key"), ca);
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, &st), MESH_OK);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_set_alpn(o, "h2");
  mesh_conn_t *conn = NULL;
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  CU_ASSERT_EQUAL_FATAL(mesh_dial(m, target, o, &conn, &st), MESH_OK);
  mesh_dial_opts_free(o);
  CU_ASSERT_STRING_EQUAL(mesh_conn_alpn(conn), "h2");
  CU_ASSERT_EQUAL_FATAL(mesh__h2_session_new_conn(m, conn, false, NULL, &c,
                                                  &st),
                        MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh__h2_session_peer_id(c),
                         "spiffe://example.org/ns/default/sa/server");
  fetch(c, "/index.html", 0, status, &got, &same);
  CU_ASSERT_STRING_EQUAL(status, "200");
  fetch(c, "/echo", (1u << 20) + 17, status, &got, &same);
  CU_ASSERT_STRING_EQUAL(status, "200");
  CU_ASSERT(same);
  mesh__h2_session_free(c);
  th_stop(pid);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("h2_interop", NULL, NULL);
  CU_add_test(s, "mesh_http_serve_h2_clients",
              test_mesh_http_serve_h2_clients);
  CU_add_test(s, "mesh__h2_client_nghttpd", test_mesh__h2_client_nghttpd);
}

int main(void) { return th_run_suites("test_h2_interop", add); }
