/* SPDX-License-Identifier: Apache-2.0 */
/* http/h2_serve + h2_workers: mesh_http_serve() serves the streams of one
 * HTTP/2 connection concurrently.  A slow handler (held on a gate the test
 * opens) does not hold up the fast streams of the same connection, with
 * nghttp (several URIs over one connection) and with our own client; the
 * handlers of one connection never exceed the MAX_CONCURRENT_STREAMS we
 * advertise, also against a peer resetting its streams while the handlers
 * run; a client that goes away with handlers in flight ends the serve call
 * once they return, their responses dropped. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "http/h2.h"

#define DL(ms) (mesh__now_ms() + (ms))
#define GATE_CAP_MS 20000 /* a slow handler never waits longer */

/* ---- the server: mesh_http_serve on a PERMISSIVE listener (h2c) ----------- */

struct srv {
  pthread_t t;
  mesh_t *m;
  mesh_listener_t *l;
  int port;
  int serve_rc;
  atomic_bool served;          /* mesh_http_serve returned */
  /* the handlers */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;                   /* the gate of /slow */
  int open_after_fast;         /* > 0: also opens after this many /fast */
  int slow_extra_ms;           /* /slow then sleeps this long */
  atomic_int slow_started, slow_done, fast_done, running, max_running;
  atomic_bool capped;          /* a /slow gave up on the gate */
};

static void gate_open(struct srv *s) {
  pthread_mutex_lock(&s->mu);
  s->open = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static bool gate_wait(struct srv *s) {
  int64_t until = mesh__now_ms() + GATE_CAP_MS;
  pthread_mutex_lock(&s->mu);
  while (!s->open && !(s->open_after_fast > 0 &&
                       atomic_load(&s->fast_done) >= s->open_after_fast)) {
    if (mesh__now_ms() >= until)
      break;
    mesh__cond_wait_until(&s->cv, &s->mu, CLOCK_MONOTONIC, until);
  }
  bool ok = s->open || (s->open_after_fast > 0 &&
                        atomic_load(&s->fast_done) >= s->open_after_fast);
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static int handler(const mesh_http_request_t *req, mesh_http_response_t *resp,
                   void *user) {
  struct srv *s = user;
  int now = atomic_fetch_add(&s->running, 1) + 1;
  for (int m = atomic_load(&s->max_running); now > m;
       m = atomic_load(&s->max_running))
    if (atomic_compare_exchange_weak(&s->max_running, &m, now))
      break;
  const char *path = mesh_http_request_path(req);
  const char *body = "fast";
  if (strcmp(path, "/slow") == 0) {
    atomic_fetch_add(&s->slow_started, 1);
    if (!gate_wait(s))
      atomic_store(&s->capped, true);
    if (s->slow_extra_ms)
      usleep((useconds_t)s->slow_extra_ms * 1000);
    atomic_fetch_add(&s->slow_done, 1);
    body = "slow";
  } else {
    pthread_mutex_lock(&s->mu);
    atomic_fetch_add(&s->fast_done, 1);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  atomic_fetch_sub(&s->running, 1);
  mesh_http_response_set_body(resp, body, strlen(body));
  return 0;
}

/* One connection, served on this thread. */
static void *srv_main(void *arg) {
  struct srv *s = arg;
  mesh_conn_t *c = NULL;
  s->serve_rc = mesh_accept(s->l, 30000, &c, NULL);
  if (s->serve_rc == MESH_OK)
    s->serve_rc = mesh_http_serve(s->m, c, handler, s, NULL);
  mesh_conn_close(c);
  atomic_store(&s->served, true);
  return NULL;
}

/* open_after_fast, slow_extra_ms: see struct srv (set before the thread) */
static bool srv_start(struct srv *s, int max_streams, int open_after_fast,
                      int slow_extra_ms) {
  memset(s, 0, sizeof *s);
  s->open_after_fast = open_after_fast;
  s->slow_extra_ms = slow_extra_ms;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  const char *ca = th_ca("example.org");
  if (!ca || !th_svid("example.org", "spiffe://example.org/ns/default/sa/"
                      "server", "server", 0, 0, 0))
    return false;
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"},\"inbound\":{\"listen\":"
           "\"127.0.0.1:0\",\"mode\":\"PERMISSIVE\"},"
           "\"http\":{\"idle_timeout_ms\":30000,"
           "\"http2\":{\"max_concurrent_streams\":%d}}}",
           th_path("server.crt"), th_path("server.key"), ca, max_streams);
  mesh_status_t st;
  if (mesh_new(json, &s->m, &st) != MESH_OK ||
      mesh_listen(s->m, NULL, &s->l, &st) != MESH_OK) {
    fprintf(stderr, "server: %s\n", st.message);
    return false;
  }
  s->port = mesh_listener_port(s->l);
  return pthread_create(&s->t, NULL, srv_main, s) == 0;
}

/* Also when a test failed: the gate opens, the serve call ends. */
static void srv_stop(struct srv *s) {
  gate_open(s);
  pthread_join(s->t, NULL);
  mesh_listener_close(s->l);
  mesh_free(s->m);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
}

static bool served(void *arg) {
  return atomic_load(&((struct srv *)arg)->served);
}

static bool slow_started(void *arg) {
  return atomic_load(&((struct srv *)arg)->slow_started) > 0;
}

static bool no_workers(void *arg) {
  (void)arg;
  return mesh__h2_workers_total() == 0;
}

/* ---- our client ------------------------------------------------------------ */

static int open_get(mesh__h2_session_t *c, const char *path,
                    mesh__h2_stream_t **x) {
  mesh__h2_hdr_t h[] = {{":method", "GET"}, {":scheme", "http"},
                        {":path", path}, {":authority", "svc"}};
  return mesh__h2_stream_open(c, h, 4, true, x, NULL);
}

/* Status and body of a response ("" when none), within the deadline. */
static int finish(mesh__h2_stream_t *x, char *body, size_t cap) {
  const mesh__h2_hdr_t *h;
  size_t n;
  body[0] = '\0';
  int rc = mesh__h2_stream_headers(x, DL(GATE_CAP_MS * 2), &h, &n, NULL);
  if (rc != MESH_OK)
    return rc;
  int status = atoi(h[0].value);
  size_t got = 0;
  for (;;) {
    long k = mesh__h2_stream_read(x, body + got, cap - 1 - got,
                                  DL(GATE_CAP_MS * 2), NULL);
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  body[got] = '\0';
  return status;
}

static mesh__h2_session_t *dial(const struct srv *s) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
  mesh__h2_session_t *c = NULL;
  mesh_status_t st;
  if (mesh__h2_dial_plain(NULL, target, 5000, NULL, &c, &st) != MESH_OK)
    fprintf(stderr, "dial: %s\n", st.message);
  return c;
}

/* ---- tests ----------------------------------------------------------------- */

/* Our client, one session: /slow first, then 5 /fast.  Every fast
 * response arrives while /slow still waits on its gate (a serial server
 * would run /slow first and answer the others only after its 20 s cap);
 * the gate opens after the last one, then /slow completes. */
static void test_mesh_http_serve_h2_concurrent(void) {
  struct srv s;
  CU_ASSERT_FATAL(srv_start(&s, 100, 0, 0));
  mesh__h2_session_t *c = dial(&s);
  CU_ASSERT_PTR_NOT_NULL(c);
  mesh__h2_stream_t *slow = NULL, *fast[5] = {0};
  if (c) {
    CU_ASSERT_EQUAL(open_get(c, "/slow", &slow), MESH_OK);
    for (int i = 0; i < 5; i++)
      CU_ASSERT_EQUAL(open_get(c, "/fast", &fast[i]), MESH_OK);
  }
  char body[64];
  for (int i = 0; i < 5; i++) {
    if (!fast[i])
      continue;
    CU_ASSERT_EQUAL(finish(fast[i], body, sizeof body), 200);
    CU_ASSERT_STRING_EQUAL(body, "fast");
    mesh__h2_stream_free(fast[i]);
  }
  /* all five answered while /slow was still held (its handler may start
   * before or after them: the order of concurrent handlers is the
   * scheduler's) */
  CU_ASSERT_EQUAL(atomic_load(&s.slow_done), 0);
  CU_ASSERT_EQUAL(atomic_load(&s.fast_done), 5);
  CU_ASSERT(th_wait_for(slow_started, &s, TH_CAP_MS, "/slow started"));
  CU_ASSERT_EQUAL(atomic_load(&s.slow_done), 0);
  gate_open(&s);
  if (slow) {
    CU_ASSERT_EQUAL(finish(slow, body, sizeof body), 200);
    CU_ASSERT_STRING_EQUAL(body, "slow");
    mesh__h2_stream_free(slow);
  }
  CU_ASSERT_FALSE(atomic_load(&s.capped));
  mesh__h2_session_free(c);
  CU_ASSERT(th_wait_for(served, &s, TH_CAP_MS, "serve returned"));
  CU_ASSERT_EQUAL(s.serve_rc, MESH_OK);
  srv_stop(&s);
  CU_ASSERT(th_wait_for(no_workers, NULL, TH_CAP_MS, "workers ended"));
}

/* nghttp, one connection, /slow then 5 /fast: /slow's gate opens once the
 * 5 fast handlers ran, then it takes 1 s more; nghttp receives the END of
 * every fast stream before /slow's (stream 1).  nghttp -v prints each
 * frame received in order ("recv DATA frame <length=4, flags=0x01,
 * stream_id=1>" with flag END_STREAM). */
static void test_mesh_http_serve_h2_nghttp(void) {
  /* longer than 60 lines: one scenario, run then parsed, top to bottom */
  if (!th_require("nghttp", "nghttp2-client"))
    return;
  struct srv s;
  CU_ASSERT_FATAL(srv_start(&s, 100, 5, 1000));
  char cmd[1024];
  const char *out = th_path("nghttp.out");
  int n = snprintf(cmd, sizeof cmd, "timeout 60 nghttp -nv http://127.0.0.1:%d"
                   "/slow", s.port);
  for (int i = 0; i < 5; i++)
    n += snprintf(cmd + n, sizeof cmd - (size_t)n,
                  " http://127.0.0.1:%d/fast%d", s.port, i);
  snprintf(cmd + n, sizeof cmd - (size_t)n, " > %s 2>&1", out);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  char *log = th_slurp(out, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(log);
  int ends[8], nends = 0, ok200 = 0;
  for (char *p = log; (p = strstr(p, "recv ")) != NULL; p++) {
    unsigned flags;
    int id;
    char kind[16];
    if (sscanf(p, "recv %15s frame <length=%*d, flags=0x%x, stream_id=%d>",
               kind, &flags, &id) == 3 &&
        (flags & 1) && id > 0 && nends < 8 &&
        (!strcmp(kind, "DATA") || !strcmp(kind, "HEADERS")))
      ends[nends++] = id;
  }
  for (char *p = log; (p = strstr(p, ":status: 200")) != NULL; p++)
    ok200++;
  /* nghttp numbers its requests after its priority anchor streams: the
   * id of /slow is the one of the HEADERS frame sent before ":path: /slow" */
  int slow_id = -1;
  char *sp = strstr(log, ":path: /slow");
  for (char *p = log; sp && (p = strstr(p, "send HEADERS frame")) && p < sp;
       p++)
    if (sscanf(strstr(p, "stream_id=") ? strstr(p, "stream_id=") : "",
               "stream_id=%d", &slow_id) != 1)
      slow_id = -1;
  CU_ASSERT(slow_id > 0);
  CU_ASSERT_EQUAL(nends, 6);
  CU_ASSERT_EQUAL(ok200, 6);
  if (nends == 6)
    CU_ASSERT_EQUAL(ends[5], slow_id); /* sent first, ended last */
  for (int i = 0; i + 1 < nends; i++)
    CU_ASSERT_NOT_EQUAL(ends[i], slow_id);
  if (nends != 6 || ends[5] != slow_id)
    fprintf(stderr, "nghttp output:\n%s\n", log);
  free(log);
  CU_ASSERT_FALSE(atomic_load(&s.capped));
  CU_ASSERT(th_wait_for(served, &s, TH_CAP_MS, "serve returned"));
  srv_stop(&s);
}

/* A peer that resets each stream at once while the handlers run (rapid
 * reset against slow handlers), the server advertising 4 streams: never
 * more than 4 handlers at once, whatever the peer opens; the reset
 * streams' responses are dropped; the connection still answers after. */
static void test_mesh_http_serve_h2_rapid_reset(void) {
  struct srv s;
  CU_ASSERT_FATAL(srv_start(&s, 4, 0, 0));
  mesh__h2_session_t *c = dial(&s);
  CU_ASSERT_PTR_NOT_NULL(c);
  /* 4 handlers held on the gate, then their streams reset */
  mesh__h2_stream_t *held[4] = {0};
  for (int i = 0; c && i < 4; i++)
    CU_ASSERT_EQUAL(open_get(c, "/slow", &held[i]), MESH_OK);
  for (int k = 0; c && k < 4000 && atomic_load(&s.slow_started) < 4; k++)
    mesh__h2_session_poll(c, 5);
  CU_ASSERT_EQUAL(atomic_load(&s.slow_started), 4);
  for (int i = 0; i < 4; i++) {
    if (held[i])
      mesh__h2_stream_reset(held[i], MESH__H2_CANCEL);
    mesh__h2_stream_free(held[i]);
  }
  /* 40 more, each reset at once: the peer's streams are closed, our
   * handlers still run: none may start */
  int opened = 0;
  for (int i = 0; c && i < 40; i++) {
    mesh__h2_stream_t *x = NULL;
    int rc = open_get(c, "/slow", &x);
    for (int k = 0; rc == MESH_ERR_CIRCUIT_OPEN && k < 4000; k++) {
      mesh__h2_session_poll(c, 5); /* the client honours the advertised 4 */
      rc = open_get(c, "/slow", &x);
    }
    CU_ASSERT_EQUAL(rc, MESH_OK);
    if (rc != MESH_OK)
      break;
    opened++;
    mesh__h2_session_poll(c, 0);
    mesh__h2_stream_reset(x, MESH__H2_CANCEL);
    mesh__h2_stream_free(x);
  }
  CU_ASSERT_EQUAL(opened, 40);
  /* the server has read every frame before it answers this PING */
  CU_ASSERT(c && mesh__h2_session_ping(c, DL(10000)) >= 0);
  CU_ASSERT_EQUAL(atomic_load(&s.slow_started), 4);
  CU_ASSERT(atomic_load(&s.max_running) <= 4);
  gate_open(&s);
  /* the slots come back: a normal request is answered */
  mesh__h2_stream_t *x = NULL;
  if (c && open_get(c, "/fast", &x) == MESH_OK) {
    char body[64];
    CU_ASSERT_EQUAL(finish(x, body, sizeof body), 200);
    CU_ASSERT_STRING_EQUAL(body, "fast");
    mesh__h2_stream_free(x);
  } else {
    CU_FAIL("no stream after the resets");
  }
  CU_ASSERT(atomic_load(&s.max_running) <= 4);
  CU_ASSERT(th_wait_count(&s.slow_done, 4, TH_CAP_MS, "slow handlers"));
  CU_ASSERT_EQUAL(atomic_load(&s.slow_started), 4);
  CU_ASSERT_FALSE(atomic_load(&s.capped));
  mesh__h2_session_free(c);
  CU_ASSERT(th_wait_for(served, &s, TH_CAP_MS, "serve returned"));
  srv_stop(&s);
  CU_ASSERT(th_wait_for(no_workers, NULL, TH_CAP_MS, "workers ended"));
}

/* The client goes away (connection closed) while 3 handlers are held: the
 * serve call returns once they do, their responses dropped, nothing kept. */
static void test_mesh_http_serve_h2_client_gone(void) {
  struct srv s;
  CU_ASSERT_FATAL(srv_start(&s, 100, 0, 0));
  mesh__h2_session_t *c = dial(&s);
  CU_ASSERT_PTR_NOT_NULL(c);
  mesh__h2_stream_t *x[3] = {0};
  for (int i = 0; c && i < 3; i++)
    CU_ASSERT_EQUAL(open_get(c, "/slow", &x[i]), MESH_OK);
  /* driven by our reads: wait until the server runs all three */
  for (int k = 0; c && k < 4000 && atomic_load(&s.slow_started) < 3; k++)
    mesh__h2_session_poll(c, 5);
  CU_ASSERT_EQUAL(atomic_load(&s.slow_started), 3);
  mesh__h2_session_free(c); /* the connection closes under the streams */
  for (int i = 0; i < 3; i++)
    mesh__h2_stream_free(x[i]);
  /* the session ended, the handlers still run: serve waits for them */
  usleep(100 * 1000);
  CU_ASSERT_FALSE(atomic_load(&s.served));
  gate_open(&s);
  CU_ASSERT(th_wait_for(served, &s, TH_CAP_MS, "serve returned"));
  CU_ASSERT_EQUAL(atomic_load(&s.slow_done), 3);
  CU_ASSERT_FALSE(atomic_load(&s.capped));
  srv_stop(&s);
  CU_ASSERT(th_wait_for(no_workers, NULL, TH_CAP_MS, "workers ended"));
}

static void add(void) {
  static const struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"mesh_http_serve_h2_concurrent", test_mesh_http_serve_h2_concurrent},
      {"mesh_http_serve_h2_nghttp", test_mesh_http_serve_h2_nghttp},
      {"mesh_http_serve_h2_rapid_reset", test_mesh_http_serve_h2_rapid_reset},
      {"mesh_http_serve_h2_client_gone", test_mesh_http_serve_h2_client_gone},
  };
  CU_pSuite s = CU_add_suite("h2_serve", NULL, NULL);
  const char *only = getenv("TH_ONLY"); /* one test, when debugging */
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
    if (!only || strstr(tests[i].name, only))
      CU_add_test(s, tests[i].name, tests[i].fn);
}

int main(void) { return th_run_suites("test_h2_serve", add); }
