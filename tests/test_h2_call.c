/* SPDX-License-Identifier: Apache-2.0 */
/* http/h2 through the call layer: mesh_http_call() to a service whose
 * backend negotiates ALPN h2 over mTLS.  Calls share pooled sessions (few
 * connections for many calls), a full session (the backend's
 * MAX_CONCURRENT_STREAMS) makes the pool dial another connection, a
 * session that received GOAWAY is retired and later calls re-dial, and
 * routes, faults and retries apply unchanged. */
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

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the backend: mTLS listener, HTTP/2 sessions, a thread per stream ---- */

struct backend {
  mesh_t *m;
  mesh_listener_t *l;
  pthread_t acceptor;
  atomic_bool stop;
  atomic_int conns, streams, inflight, max_inflight;
  uint32_t max_streams;   /* SETTINGS_MAX_CONCURRENT_STREAMS */
  int goaway_after;       /* drain each session after this many streams */
  int hold_ms;            /* per request */
  int status;             /* answer (200) */
  atomic_bool gate;       /* while set, requests wait (at most 10 s) */
};

static atomic_int callers_done;

struct sjob {
  struct backend *b;
  mesh__h2_stream_t *x;
};

static void *stream_main(void *arg) {
  struct sjob *j = arg;
  struct backend *b = j->b;
  int now = atomic_fetch_add(&b->inflight, 1) + 1;
  int seen = atomic_load(&b->max_inflight);
  while (now > seen &&
         !atomic_compare_exchange_weak(&b->max_inflight, &seen, now))
    ;
  const mesh__h2_hdr_t *h;
  size_t n;
  mesh__h2_stream_headers(j->x, mesh__now_ms() + 5000, &h, &n, NULL);
  const char *path = "";
  for (size_t i = 0; i < n; i++)
    if (strcmp(h[i].name, ":path") == 0)
      path = h[i].value;
  char buf[256];
  while (mesh__h2_stream_read(j->x, buf, sizeof buf, mesh__now_ms() + 5000,
                              NULL) > 0)
    ;
  for (int i = 0; i < 10000 && atomic_load(&b->gate); i++) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  if (b->hold_ms) {
    struct timespec ts = {0, (long)b->hold_ms * 1000000L};
    nanosleep(&ts, NULL);
  }
  char status[8], body[300];
  snprintf(status, sizeof status, "%d", b->status ? b->status : 200);
  snprintf(body, sizeof body, "h2 %s", path);
  mesh__h2_hdr_t r[] = {{":status", status}};
  atomic_fetch_sub(&b->inflight, 1);
  mesh__h2_stream_respond(j->x, r, 1, false, NULL);
  mesh__h2_stream_write(j->x, body, strlen(body), true,
                        mesh__now_ms() + 5000, NULL);
  mesh__h2_stream_free(j->x);
  free(j);
  return NULL;
}

struct sess_arg {
  struct backend *b;
  mesh__h2_session_t *s;
};

static void *session_main(void *arg) {
  struct sess_arg *a = arg;
  struct backend *b = a->b;
  pthread_t t[512];
  int nt = 0;
  for (;;) {
    mesh__h2_stream_t *x;
    if (mesh__h2_accept(a->s, mesh__now_ms() + 5000, &x, NULL) != MESH_OK)
      break;
    atomic_fetch_add(&b->streams, 1);
    struct sjob *j = malloc(sizeof *j);
    *j = (struct sjob){b, x};
    if (nt < (int)N(t))
      pthread_create(&t[nt++], NULL, stream_main, j);
    else
      stream_main(j);
    if (b->goaway_after && nt == b->goaway_after)
      mesh__h2_session_drain(a->s);
  }
  for (int i = 0; i < nt; i++)
    pthread_join(t[i], NULL);
  mesh__h2_session_free(a->s);
  free(a);
  return NULL;
}

static void *acceptor_main(void *arg) {
  struct backend *b = arg;
  pthread_t t[64];
  int nt = 0;
  while (!atomic_load(&b->stop)) {
    mesh_conn_t *c = NULL;
    if (mesh_accept(b->l, 50, &c, NULL) != MESH_OK)
      continue;
    atomic_fetch_add(&b->conns, 1);
    mesh__h2_settings_t set;
    mesh__h2_settings_default(&set);
    set.max_concurrent_streams = b->max_streams ? b->max_streams : 100;
    struct sess_arg *a = malloc(sizeof *a);
    a->b = b;
    if (nt == (int)N(t) ||
        mesh__h2_session_new_conn(b->m, c, true, &set, &a->s, NULL) !=
            MESH_OK) {
      free(a);
      continue;
    }
    pthread_create(&t[nt++], NULL, session_main, a);
  }
  for (int i = 0; i < nt; i++)
    pthread_join(t[i], NULL);
  return NULL;
}

static const char *identity(const char *name) {
  static char buf[1024];
  th_svid("example.org", name[0] == 's'
                             ? "spiffe://example.org/ns/default/sa/server"
                             : "spiffe://example.org/ns/default/sa/client",
          name, 0, 0, 0);
  char crt[64], key[64];
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(buf, sizeof buf,
           "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"}",
           th_path(crt), th_path(key), th_ca("example.org"));
  return buf;
}

static void backend_start(struct backend *b) {
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"tls\":{\"alpn\":[\"h2\"]}}",
           identity("server"));
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &b->m, NULL), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_listen(b->m, "127.0.0.1:0", &b->l, NULL),
                        MESH_OK);
  pthread_create(&b->acceptor, NULL, acceptor_main, b);
}

static void backend_stop(struct backend *b) {
  atomic_store(&b->stop, true);
  pthread_join(b->acceptor, NULL);
  mesh_listener_close(b->l);
  mesh_free(b->m);
}

/* A client whose service "api" is the backend; extra: service keys. */
static mesh_t *client(struct backend *b, const char *extra) {
  char json[4096];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"tls\":{\"alpn\":[\"h2\","
           "\"http/1.1\"]},\"services\":{\"api\":{\"discovery\":{\"type\":"
           "\"static\",\"endpoints\":[{\"address\":\"127.0.0.1\",\"port\":%d}"
           "]}%s}}}",
           identity("client"), mesh_listener_port(b->l), extra ? extra : "");
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK)
    fprintf(stderr, "client config: %s\n", st.message);
  return m;
}

static int call(mesh_t *m, const char *path, char *body, size_t blen) {
  mesh_http_request_t *req = mesh_http_request_new("GET", path);
  mesh_http_response_t *resp = NULL;
  mesh_status_t st;
  int rc = mesh_http_call(m, "api", req, &resp, &st);
  mesh_http_request_free(req);
  if (rc != MESH_OK) {
    fprintf(stderr, "call %s: %s\n", path, st.message);
    return rc;
  }
  size_t n;
  const char *b = mesh_http_response_body(resp, &n);
  snprintf(body, blen, "%d %.*s", mesh_http_response_status(resp), (int)n, b);
  mesh_http_response_free(resp);
  return MESH_OK;
}

struct caller {
  pthread_t t;
  mesh_t *m;
  int idx, n, ok;
};

static void *caller_main(void *arg) {
  struct caller *c = arg;
  for (int i = 0; i < c->n; i++) {
    char path[64], want[80], got[300];
    snprintf(path, sizeof path, "/c%d/%d", c->idx, i);
    snprintf(want, sizeof want, "200 h2 %s", path);
    if (call(c->m, path, got, sizeof got) == MESH_OK &&
        strcmp(got, want) == 0)
      c->ok++;
  }
  atomic_fetch_add(&callers_done, 1);
  return NULL;
}

static int run_callers(mesh_t *m, int threads, int each) {
  struct caller c[16];
  for (int i = 0; i < threads; i++) {
    c[i] = (struct caller){.m = m, .idx = i, .n = each};
    pthread_create(&c[i].t, NULL, caller_main, &c[i]);
  }
  int ok = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(c[i].t, NULL);
    ok += c[i].ok;
  }
  return ok;
}

/* ---- tests ------------------------------------------------------------------ */

/* Many calls, few connections: sessions are shared. */
static void test_mesh_http_call_h2_shared(void) {
  struct backend b = {.hold_ms = 2};
  backend_start(&b);
  mesh_t *m = client(&b, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char got[300];
  CU_ASSERT_EQUAL(call(m, "/first", got, sizeof got), MESH_OK);
  CU_ASSERT_STRING_EQUAL(got, "200 h2 /first");
  CU_ASSERT_EQUAL(atomic_load(&b.conns), 1);
  CU_ASSERT_EQUAL(run_callers(m, 8, 25), 200);
  /* one session had room for everyone (100 streams): at most the
   * connections that were dialed while the first session was busy */
  CU_ASSERT(atomic_load(&b.conns) <= 2);
  CU_ASSERT(atomic_load(&b.max_inflight) >= 2); /* really concurrent */
  CU_ASSERT_EQUAL(atomic_load(&b.streams), 201);
  mesh_free(m);
  backend_stop(&b);
}

/* The backend allows 2 streams per connection: 8 concurrent callers need
 * at least 4 connections, and never more than 2 streams run on one. */
static void test_mesh_http_call_h2_max_streams(void) {
  struct backend b = {.max_streams = 2, .hold_ms = 30};
  backend_start(&b);
  mesh_t *m = client(&b, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char got[300];
  CU_ASSERT_EQUAL(call(m, "/warm", got, sizeof got), MESH_OK);
  CU_ASSERT_EQUAL(run_callers(m, 8, 5), 40);
  int conns = atomic_load(&b.conns);
  CU_ASSERT(conns >= 4);
  if (conns < 4)
    fprintf(stderr, "max_streams: %d connections\n", conns);
  mesh_free(m);
  backend_stop(&b);
}

/* GOAWAY after 3 streams per connection: every call still succeeds, on
 * new connections. */
static void test_mesh_http_call_h2_goaway(void) {
  struct backend b = {.goaway_after = 3};
  backend_start(&b);
  mesh_t *m = client(&b, ",\"retry\":{\"retry_on\":[\"reset\","
                         "\"connect-failure\"],\"num_retries\":3,"
                         "\"base_interval_ms\":1}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int ok = 0;
  for (int i = 0; i < 12; i++) {
    char path[32], want[64], got[300];
    snprintf(path, sizeof path, "/g%d", i);
    snprintf(want, sizeof want, "200 h2 %s", path);
    if (call(m, path, got, sizeof got) == MESH_OK && strcmp(got, want) == 0)
      ok++;
  }
  CU_ASSERT_EQUAL(ok, 12);
  CU_ASSERT(atomic_load(&b.conns) >= 4);
  mesh_free(m);
  backend_stop(&b);
}

/* Retries on 5xx and fault injection work the same over HTTP/2. */
static void test_mesh_http_call_h2_policy(void) {
  struct backend b = {.status = 503};
  backend_start(&b);
  mesh_t *m = client(&b, ",\"retry\":{\"retry_on\":[\"5xx\"],"
                         "\"num_retries\":2,\"base_interval_ms\":1},"
                         "\"routes\":[{\"match\":{\"path\":{\"prefix\":\"/fault\"}},"
                         "\"fault\":{\"abort\":{\"http_status\":418,"
                         "\"percentage\":100}}}]");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char got[300];
  CU_ASSERT_EQUAL(call(m, "/x", got, sizeof got), MESH_OK);
  CU_ASSERT_STRING_EQUAL(got, "503 h2 /x");
  CU_ASSERT_EQUAL(atomic_load(&b.streams), 3); /* the try and 2 retries */
  CU_ASSERT_EQUAL(call(m, "/fault/y", got, sizeof got), MESH_OK);
  CU_ASSERT_STRING_EQUAL(got, "418 fault filter abort");
  CU_ASSERT_EQUAL(atomic_load(&b.streams), 3);
  mesh_free(m);
  backend_stop(&b);
}

/* Circuit breakers count streams as requests: with max_requests 2, at most
 * two streams run at once on the shared session and the rest of a burst is
 * refused with MESH_ERR_CIRCUIT_OPEN (nothing sent). */
static void test_mesh_http_call_h2_breaker(void) {
  struct backend b = {0};
  backend_start(&b);
  mesh_t *m = client(&b, ",\"circuit_breakers\":{\"max_requests\":2}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char got[300];
  CU_ASSERT_EQUAL(call(m, "/warm", got, sizeof got), MESH_OK);
  /* the backend holds requests until the four refused callers are back:
   * no verdict depends on timing */
  atomic_store(&b.gate, true);
  atomic_store(&callers_done, 0);
  struct caller c[6];
  for (int i = 0; i < 6; i++) {
    c[i] = (struct caller){.m = m, .idx = i, .n = 1};
    pthread_create(&c[i].t, NULL, caller_main, &c[i]);
  }
  for (int i = 0; i < 10000 && (atomic_load(&callers_done) < 4 ||
                                 atomic_load(&b.inflight) < 2);
       i++) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  CU_ASSERT_EQUAL(atomic_load(&callers_done), 4);
  CU_ASSERT_EQUAL(atomic_load(&b.inflight), 2);
  atomic_store(&b.gate, false);
  int ok = 0;
  for (int i = 0; i < 6; i++) {
    pthread_join(c[i].t, NULL);
    ok += c[i].ok;
  }
  CU_ASSERT_EQUAL(ok, 2);
  CU_ASSERT(atomic_load(&b.max_inflight) <= 2);
  CU_ASSERT_EQUAL(atomic_load(&b.streams), 3);
  mesh_free(m);
  backend_stop(&b);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("h2_call", NULL, NULL);
  CU_add_test(s, "mesh_http_call_h2_shared", test_mesh_http_call_h2_shared);
  CU_add_test(s, "mesh_http_call_h2_max_streams",
              test_mesh_http_call_h2_max_streams);
  CU_add_test(s, "mesh_http_call_h2_goaway", test_mesh_http_call_h2_goaway);
  CU_add_test(s, "mesh_http_call_h2_policy", test_mesh_http_call_h2_policy);
  CU_add_test(s, "mesh_http_call_h2_breaker", test_mesh_http_call_h2_breaker);
}

int main(void) { return th_run_suites("test_h2_call", add); }
