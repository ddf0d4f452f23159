/* SPDX-License-Identifier: Apache-2.0 */
/* core/curl_loop.c: libcurl transfers driven by the worker loop, against
 * a small HTTP server in this process on 127.0.0.1.  The context runs in
 * external-loop mode so the test turns the loop itself (bounded). */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/curl_loop.h"

/* ---- a tiny HTTP server: GET /ok answers, GET /hang never does ---------- */

typedef struct server {
  int fd, port;
  _Atomic bool stop;
  pthread_t th;
} server_t;

static void serve_one(int c) {
  char req[2048];
  size_t len = 0;
  struct pollfd p = {.fd = c, .events = POLLIN};
  /* read the request head, at most 2 s */
  for (int i = 0; i < 200 && len < sizeof req - 1; i++) {
    if (poll(&p, 1, 10) <= 0)
      continue;
    ssize_t n = recv(c, req + len, sizeof req - 1 - len, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
    req[len] = '\0';
    if (strstr(req, "\r\n\r\n"))
      break;
  }
  req[len] = '\0';
  if (strncmp(req, "GET /ok ", 8) == 0) {
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                               "Connection: close\r\n\r\nok";
    send(c, resp, sizeof resp - 1, MSG_NOSIGNAL);
  } else if (strncmp(req, "GET /hang ", 10) == 0) {
    usleep(300000); /* longer than any test waits for it */
  }
  close(c);
}

static void *server_main(void *arg) {
  server_t *s = arg;
  for (int i = 0; i < 100000 && !atomic_load(&s->stop); i++) {
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, 20) <= 0)
      continue;
    int c = accept(s->fd, NULL, NULL);
    if (c >= 0)
      serve_one(c);
  }
  return NULL;
}

static server_t srv;

static int suite_init(void) {
  srv.fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(srv.fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(srv.fd, 16) != 0)
    return 1;
  socklen_t sl = sizeof sa;
  getsockname(srv.fd, (struct sockaddr *)&sa, &sl);
  srv.port = ntohs(sa.sin_port);
  return pthread_create(&srv.th, NULL, server_main, &srv) == 0 ? 0 : 1;
}

static int suite_clean(void) {
  atomic_store(&srv.stop, true);
  pthread_join(srv.th, NULL);
  close(srv.fd);
  return 0;
}

/* ---- helpers --------------------------------------------------------------- */

typedef struct result {
  int calls;
  CURLcode cc;
  long code;
  char body[64];
  size_t blen;
} result_t;

static size_t on_body(char *p, size_t sz, size_t n, void *user) {
  result_t *r = user;
  size_t len = sz * n;
  size_t room = sizeof r->body - 1 - r->blen;
  size_t k = len < room ? len : room;
  memcpy(r->body + r->blen, p, k);
  r->blen += k;
  r->body[r->blen] = '\0';
  return len;
}

static void on_done(CURL *easy, CURLcode cc, void *user) {
  result_t *r = user;
  r->calls++;
  r->cc = cc;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->code);
}

static CURL *easy_for(const char *path, int port, result_t *r) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  CURL *h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  return h;
}

static mesh_t *external_mesh(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new("{\"log\":{\"level\":\"error\"},"
               "\"worker\":{\"mode\":\"external\"}}",
               &m, &st) != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  return m;
}

/* Turn the loop until cond() or ms pass. */
static void run_until(mesh_t *m, bool (*cond)(void *), void *arg, int ms) {
  int64_t end = mesh__now_ms() + ms;
  while (!cond(arg) && mesh__now_ms() < end)
    mesh__loop_run_once(m->loop, 10);
}

static bool both_done(void *arg) {
  result_t *r = arg;
  return r[0].calls > 0 && r[1].calls > 0;
}

static bool one_done(void *arg) { return ((result_t *)arg)->calls > 0; }

static bool never(void *arg) {
  (void)arg;
  return false;
}

/* ---- tests ------------------------------------------------------------------- */

/* Two transfers at once, both complete on the loop with their results. */
static void test_mesh__curlm_add(void) {
  mesh_t *m = external_mesh();
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh__curlm_t *cm = mesh__curlm_new(m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cm);
  result_t r[2];
  memset(r, 0, sizeof r);
  CURL *a = easy_for("/ok", srv.port, &r[0]);
  CURL *b = easy_for("/ok", srv.port, &r[1]);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, a, on_done, &r[0]), MESH_OK);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, b, on_done, &r[1]), MESH_OK);
  CU_ASSERT_EQUAL(mesh__curlm_running(cm), 2);
  /* running: a second add of the same handle is refused, the first
   * transfer unharmed */
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, a, on_done, &r[0]),
                  MESH_ERR_INVALID_ARG);
  run_until(m, both_done, r, 5000);
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(r[i].calls, 1);
    CU_ASSERT_EQUAL(r[i].cc, CURLE_OK);
    CU_ASSERT_EQUAL(r[i].code, 200);
    CU_ASSERT_STRING_EQUAL(r[i].body, "ok");
  }
  CU_ASSERT_EQUAL(mesh__curlm_running(cm), 0);
  /* a finished handle is the caller's again: it can run once more */
  memset(&r[0], 0, sizeof r[0]);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, a, on_done, &r[0]), MESH_OK);
  run_until(m, one_done, &r[0], 5000);
  CU_ASSERT_EQUAL(r[0].calls, 1);
  CU_ASSERT_EQUAL(r[0].code, 200);
  curl_easy_cleanup(a);
  curl_easy_cleanup(b);
  mesh__curlm_free(cm);
  mesh_free(m);
}

/* A connection refused ends the transfer with libcurl's error. */
static void test_mesh__curlm_add_refused(void) {
  mesh_t *m = external_mesh();
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh__curlm_t *cm = mesh__curlm_new(m);
  result_t r = {0};
  CURL *a = easy_for("/ok", th_free_port(), &r);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, a, on_done, &r), MESH_OK);
  run_until(m, one_done, &r, 5000);
  CU_ASSERT_EQUAL(r.calls, 1);
  CU_ASSERT_EQUAL(r.cc, CURLE_COULDNT_CONNECT);
  curl_easy_cleanup(a);
  /* bad arguments */
  CU_ASSERT_EQUAL(mesh__curlm_add(NULL, a, on_done, &r), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, NULL, on_done, &r),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_PTR_NULL(mesh__curlm_new(NULL));
  mesh__curlm_remove(NULL, NULL);
  mesh__curlm_remove(cm, NULL);
  CU_ASSERT_EQUAL(mesh__curlm_drive(NULL, 0), 0);
  mesh__curlm_free(NULL);
  mesh__curlm_free(cm);
  mesh_free(m);
}

/* A removed transfer never calls back; nothing is left behind. */
static void test_mesh__curlm_remove(void) {
  mesh_t *m = external_mesh();
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh__curlm_t *cm = mesh__curlm_new(m);
  result_t r = {0};
  CURL *a = easy_for("/hang", srv.port, &r);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, a, on_done, &r), MESH_OK);
  run_until(m, never, NULL, 100); /* connected, waiting for an answer */
  mesh__curlm_remove(cm, a);
  mesh__curlm_remove(cm, a); /* no longer running: a no-op */
  CU_ASSERT_EQUAL(mesh__curlm_running(cm), 0);
  run_until(m, never, NULL, 50);
  CU_ASSERT_EQUAL(r.calls, 0);
  curl_easy_cleanup(a);
  mesh__curlm_free(cm);
  mesh_free(m);
}

/* Teardown: drive finishes what runs without the loop, and free drops
 * what is still running without callbacks. */
static void test_mesh__curlm_drive(void) {
  mesh_t *m = external_mesh();
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh__curlm_t *cm = mesh__curlm_new(m);
  result_t r = {0}, h = {0};
  CURL *a = easy_for("/ok", srv.port, &r);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, a, on_done, &r), MESH_OK);
  CU_ASSERT_EQUAL(mesh__curlm_drive(cm, mesh__now_ms() + 5000), 0);
  CU_ASSERT_EQUAL(r.calls, 1);
  CU_ASSERT_EQUAL(r.code, 200);
  /* a transfer that does not finish in time is left running... */
  CURL *b = easy_for("/hang", srv.port, &h);
  CU_ASSERT_EQUAL(mesh__curlm_add(cm, b, on_done, &h), MESH_OK);
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh__curlm_drive(cm, t0 + 100), 1);
  CU_ASSERT(mesh__now_ms() - t0 < 1000);
  CU_ASSERT_EQUAL(h.calls, 0);
  /* ...and dropped by free, no callback; the handle is still ours */
  mesh__curlm_free(cm);
  CU_ASSERT_EQUAL(h.calls, 0);
  curl_easy_cleanup(a);
  curl_easy_cleanup(b);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("curl_loop", suite_init, suite_clean);
  CU_add_test(s, "mesh__curlm_add", test_mesh__curlm_add);
  CU_add_test(s, "mesh__curlm_add refused", test_mesh__curlm_add_refused);
  CU_add_test(s, "mesh__curlm_remove", test_mesh__curlm_remove);
  CU_add_test(s, "mesh__curlm_drive", test_mesh__curlm_drive);
}

int main(void) { return th_run_suites("test_curl_loop", add); }
