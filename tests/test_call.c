/* SPDX-License-Identifier: Apache-2.0 */
/* The call layer against real misbehaving backends (child processes running
 * libmesh's own mTLS listener on 127.0.0.1): pooling, outlier ejection and
 * return, resets, breakers tripping and recovering, total failure under the
 * retry budget, a backend killed mid-stream, hedging, deadlines and per-try
 * timeouts, mesh_dial() of a service. */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mesh/metrics.h>

#include "resilience/resilience.h"
#include "test_call_backend.h"

#define SVC "echo"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A client whose service "echo" has the given endpoints (ports) and extra
 * per-service keys (JSON members, starting with a comma, or ""). */
static mesh_t *client(const int *ports, size_t n, const char *extra) {
  char eps[1024] = "";
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(eps + off, sizeof eps - off,
                            "%s{\"address\":\"127.0.0.1\",\"port\":%d}",
                            i ? "," : "", ports[i]);
  char json[8192];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"" SVC "\":{"
           "\"peers\":[\"" TCB_BACKEND_ID "\"],\"discovery\":{\"type\":"
           "\"static\",\"endpoints\":[%s]},\"lb\":{\"policy\":"
           "\"round_robin\"}%s}}}",
           tcb_client_identity(), eps, extra);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "client config: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  return m;
}

static mesh__res_svc_t *rs_of(mesh_t *m) {
  return mesh__service_find(m, SVC)->res;
}

/* The live host object for a port (borrowed; the test's snapshot is static). */
static mesh__host_t *host_of(mesh_t *m, int port) {
  mesh__snapshot_t *s = mesh__res_snapshot(mesh__service_find(m, SVC));
  mesh__host_t *h = NULL;
  for (size_t i = 0; s && i < s->n; i++)
    if (s->hosts[i]->port == port)
      h = s->hosts[i];
  mesh__snap_release(s);
  return h;
}

static int call(mesh_t *m, tcb_reply_t *r, mesh_status_t *st) {
  memset(r, 0, sizeof *r);
  return mesh_call_do(m, SVC, NULL, tcb_try, r, st);
}

/* Does the metrics text hold this exact line? */
static bool has_metric(mesh_t *m, const char *line) {
  static char buf[1 << 16];
  if (mesh_metrics_text(m, buf, sizeof buf, NULL) < 0)
    return false;
  char want[512];
  snprintf(want, sizeof want, "%s\n", line);
  bool ok = strstr(buf, want) != NULL;
  if (!ok)
    fprintf(stderr, "metric line not found: %s\n", line);
  return ok;
}

static void assert_idle_breakers(mesh_t *m) {
  mesh__res_svc_t *rs = rs_of(m);
  CU_ASSERT_EQUAL(atomic_load(&rs->br.requests), 0);
  CU_ASSERT_EQUAL(atomic_load(&rs->br.retries), 0);
  CU_ASSERT_EQUAL(atomic_load(&rs->br.pending), 0);
}

/* ---- the happy path: pooling and spreading ------------------------------------ */

static void test_mesh_call_do(void) {
  tcb_t a, b;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b, "b", "good", 0));
  int ports[] = {a.port, b.port};
  mesh_t *m = client(ports, 2, "");
  int seen_a = 0, seen_b = 0, max_conn_a = 0, max_conn_b = 0;
  for (int i = 0; i < 20; i++) {
    tcb_reply_t r;
    mesh_status_t st;
    int rc = call(m, &r, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "call %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_EQUAL(r.status, 200);
    if (strcmp(r.name, "a") == 0) {
      seen_a++;
      max_conn_a = r.conn > max_conn_a ? r.conn : max_conn_a;
    } else if (strcmp(r.name, "b") == 0) {
      seen_b++;
      max_conn_b = r.conn > max_conn_b ? r.conn : max_conn_b;
    }
  }
  /* round robin over both, each over one pooled connection (the backends
   * number connections from 1; the waits for the port count one each) */
  CU_ASSERT_EQUAL(seen_a, 10);
  CU_ASSERT_EQUAL(seen_b, 10);
  char line[256];
  snprintf(line, sizeof line,
           "mesh_calls_total{service=\"echo\",endpoint=\"127.0.0.1:%d\","
           "outcome=\"ok\"} 10", a.port);
  CU_ASSERT_TRUE(has_metric(m, line));
  CU_ASSERT_TRUE(has_metric(m, "mesh_call_duration_seconds_count{service="
                               "\"echo\"} 20"));
  CU_ASSERT_TRUE(has_metric(m, "mesh_call_try_duration_seconds_count{service="
                               "\"echo\"} 20"));
  CU_ASSERT(max_conn_a <= 2);
  CU_ASSERT(max_conn_b <= 2);
  assert_idle_breakers(m);
  mesh__res_svc_t *rs = rs_of(m);
  CU_ASSERT_EQUAL(atomic_load(&rs->br.connections), 2);
  CU_ASSERT_EQUAL(mesh__pool_idle(mesh__res_pool_peek(host_of(m, a.port))), 1);
  /* one idle connection to each backend */
  CU_ASSERT_TRUE(has_metric(m, "mesh_connections_pooled{service=\"echo\"} 2"));
  mesh_free(m);
  tcb_stop(&a);
  tcb_stop(&b);
}

static void test_mesh_call_begin(void) {
  tcb_t a;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "good", 0));
  int ports[] = {a.port};
  mesh_t *m = client(ports, 1, "");
  mesh_status_t st;
  mesh_call_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_call_begin(m, "nope", NULL, &c, &st),
                  MESH_ERR_UNKNOWN_SERVICE);
  CU_ASSERT_PTR_NULL(c);
  CU_ASSERT_EQUAL(mesh_call_begin(NULL, SVC, NULL, &c, &st),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, NULL, NULL, &st),
                  MESH_ERR_INVALID_ARG);

  mesh_call_opts_t *o = mesh_call_opts_new();
  CU_ASSERT_EQUAL(mesh_call_opts_set_deadline(o, 2000), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_opts_set_deadline(o, -1), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_call_opts_set_hash_key(o, "k", 1), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, o, &c, &st), MESH_OK);
  char want[32];
  snprintf(want, sizeof want, "127.0.0.1:%d", a.port);
  CU_ASSERT_STRING_EQUAL(mesh_call_endpoint(c), want);
  CU_ASSERT_EQUAL(mesh_call_attempt(c), 0);
  int left = mesh_call_remaining_ms(c);
  CU_ASSERT(left > 1500 && left <= 2000);
  tcb_reply_t r;
  int status = 0;
  CU_ASSERT_EQUAL(tcb_try(c, mesh_call_conn(c), &status, &r), MESH_CALL_OK);
  CU_ASSERT_EQUAL(status, 200);
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.requests), 1);
  CU_ASSERT_EQUAL(mesh_call_end(c, MESH_CALL_OK, status), MESH_OK);
  /* the connection went back to the pool, the request slot was freed */
  CU_ASSERT_EQUAL(mesh__pool_idle(mesh__res_pool_peek(host_of(m, a.port))), 1);
  assert_idle_breakers(m);
  /* an unknown outcome still ends the call (as a protocol error) */
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, NULL, &c, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_end(c, 42, 0), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_call_end(NULL, MESH_CALL_OK, 0), MESH_OK);
  assert_idle_breakers(m);
  mesh_call_opts_free(o);
  mesh_call_opts_free(NULL);
  mesh_free(m);
  tcb_stop(&a);
}

/* ---- outlier detection against real backends -------------------------------------- */

static const char *od_cfg =
    ",\"outlier_detection\":{\"consecutive_5xx\":3,\"interval_ms\":100,"
    "\"base_ejection_time_ms\":700},\"retry\":{\"retry_on\":[]}";

static void test_outlier_error_backend(void) {
  tcb_t b[3];
  CU_ASSERT_FATAL(tcb_start(&b[0], "bad", "error", 0));
  CU_ASSERT_FATAL(tcb_start(&b[1], "g1", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b[2], "g2", "good", 0));
  int ports[] = {b[0].port, b[1].port, b[2].port};
  mesh_t *m = client(ports, 3, od_cfg);
  mesh__host_t *bad = host_of(m, b[0].port);
  int errors = 0, i;
  for (i = 0; i < 30 && !mesh__od_ejected(bad, mesh__now_ms()); i++) {
    tcb_reply_t r;
    int rc = call(m, &r, NULL);
    if (strcmp(r.name, "bad") == 0) {
      CU_ASSERT_EQUAL(rc, MESH_ERR_UPSTREAM);
      errors++;
    } else {
      CU_ASSERT_EQUAL(rc, MESH_OK);
    }
  }
  /* ejected on its 3rd consecutive 503, under the 10% cap thanks to
   * always_eject_one_host (3 hosts) */
  CU_ASSERT_EQUAL(errors, 3);
  CU_ASSERT_TRUE(mesh__od_ejected(bad, mesh__now_ms()));
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->od_enforced[MESH__OD_CONSECUTIVE_5XX]),
                  1);
  CU_ASSERT_TRUE(has_metric(m, "mesh_outlier_ejections_total{service=\"echo\","
                               "reason=\"consecutive_5xx\"} 1"));
  CU_ASSERT_TRUE(has_metric(m, "mesh_endpoints_ejected{service=\"echo\"} 1"));
  char line[256];
  snprintf(line, sizeof line,
           "mesh_calls_total{service=\"echo\",endpoint=\"127.0.0.1:%d\","
           "outcome=\"error\"} 3", b[0].port);
  CU_ASSERT_TRUE(has_metric(m, line));
  int64_t until = atomic_load(&bad->ejected_until_ms);
  CU_ASSERT_TRUE_FATAL(tcb_mode(m, &b[0], "good"));
  /* while ejected it gets nothing */
  while (mesh__now_ms() < until - 100) {
    tcb_reply_t r;
    CU_ASSERT_EQUAL(call(m, &r, NULL), MESH_OK);
    CU_ASSERT_STRING_NOT_EQUAL(r.name, "bad");
    sleep_ms(20);
  }
  /* after its ejection time it is back in rotation */
  while (mesh__now_ms() <= until)
    sleep_ms(10);
  int back = 0;
  for (int k = 0; k < 9; k++) {
    tcb_reply_t r;
    CU_ASSERT_EQUAL(call(m, &r, NULL), MESH_OK);
    back += strcmp(r.name, "bad") == 0;
  }
  CU_ASSERT(back >= 2);
  assert_idle_breakers(m);
  mesh_free(m);
  for (int k = 0; k < 3; k++)
    tcb_stop(&b[k]);
}

static void test_outlier_reset_backend(void) {
  /* A backend that closes every connection without answering: with
   * retry_on reset the callers never notice, and it is ejected. */
  tcb_t b[3];
  CU_ASSERT_FATAL(tcb_start(&b[0], "bad", "reset", 0));
  CU_ASSERT_FATAL(tcb_start(&b[1], "g1", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b[2], "g2", "good", 0));
  int ports[] = {b[0].port, b[1].port, b[2].port};
  mesh_t *m = client(ports, 3,
                     ",\"outlier_detection\":{\"consecutive_5xx\":3},"
                     "\"retry\":{\"retry_on\":[\"reset\"],\"num_retries\":2,"
                     "\"base_interval_ms\":1}");
  mesh__host_t *bad = host_of(m, b[0].port);
  for (int i = 0; i < 15; i++) {
    tcb_reply_t r;
    mesh_status_t st;
    int rc = call(m, &r, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "reset case %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_STRING_NOT_EQUAL(r.name, "bad");
  }
  CU_ASSERT_TRUE(mesh__od_ejected(bad, mesh__now_ms()));
  CU_ASSERT(atomic_load(&rs_of(m)->retries) >= 3);
  /* an ejected host keeps no idle connections */
  CU_ASSERT_EQUAL(mesh__pool_idle(mesh__res_pool_peek(bad)), 0);
  assert_idle_breakers(m);
  mesh_free(m);
  for (int k = 0; k < 3; k++)
    tcb_stop(&b[k]);
}

/* ---- circuit breakers --------------------------------------------------------------- */

static void test_breaker_trips_and_recovers(void) {
  tcb_t a;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "good", 0));
  int ports[] = {a.port};
  mesh_t *m = client(ports, 1, ",\"circuit_breakers\":{\"max_requests\":2}");
  mesh_status_t st;
  mesh_call_t *c1, *c2, *c3 = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_call_begin(m, SVC, NULL, &c1, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_call_begin(m, SVC, NULL, &c2, &st), MESH_OK);
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, NULL, &c3, &st),
                  MESH_ERR_CIRCUIT_OPEN);
  CU_ASSERT(mesh__now_ms() - t0 < 50); /* fails fast: no dial, no wait */
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "max_requests"));
  tcb_reply_t r;
  CU_ASSERT_EQUAL(call(m, &r, &st), MESH_ERR_CIRCUIT_OPEN);
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.ov_requests), 2);
  CU_ASSERT_TRUE(has_metric(m, "mesh_circuit_breaker_overflows_total{service="
                               "\"echo\",limit=\"requests\"} 2"));
  CU_ASSERT_TRUE(has_metric(m, "mesh_calls_total{service=\"echo\",endpoint="
                               "\"\",outcome=\"circuit_open\"} 2"));
  /* one ends: the breaker closes again */
  mesh_call_end(c1, MESH_CALL_CANCELLED, 0);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, NULL, &c3, &st), MESH_OK);
  mesh_call_end(c2, MESH_CALL_CANCELLED, 0);
  mesh_call_end(c3, MESH_CALL_CANCELLED, 0);
  CU_ASSERT_EQUAL(call(m, &r, &st), MESH_OK);
  assert_idle_breakers(m);
  mesh_free(m);

  /* max_connections counts pooled connections too */
  m = client(ports, 1, ",\"circuit_breakers\":{\"max_connections\":1}");
  CU_ASSERT_EQUAL_FATAL(mesh_call_begin(m, SVC, NULL, &c1, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, NULL, &c2, &st),
                  MESH_ERR_CIRCUIT_OPEN);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "max_connections"));
  int status;
  CU_ASSERT_EQUAL(tcb_try(c1, mesh_call_conn(c1), &status, &r), MESH_CALL_OK);
  mesh_call_end(c1, MESH_CALL_OK, status);
  /* the one connection is idle in the pool: the next call reuses it */
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, NULL, &c2, &st), MESH_OK);
  mesh_call_end(c2, MESH_CALL_RESET, 0); /* closed: its slot is free */
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.connections), 0);
  CU_ASSERT_EQUAL(call(m, &r, &st), MESH_OK);
  mesh_free(m);

  /* max_pending_requests 0: no call may wait for a new connection */
  m = client(ports, 1, ",\"circuit_breakers\":{\"max_pending_requests\":0}");
  CU_ASSERT_EQUAL(call(m, &r, &st), MESH_ERR_CIRCUIT_OPEN);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "max_pending_requests"));
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.ov_pending), 1);
  mesh_free(m);
  tcb_stop(&a);
}

/* ---- total failure and the retry budget ---------------------------------------------- */

struct storm {
  mesh_t *m;
  pthread_barrier_t *bar;
  int rc;
  int64_t ms;
};

static void *storm_call(void *arg) {
  struct storm *s = arg;
  pthread_barrier_wait(s->bar);
  int64_t t0 = mesh__now_ms();
  tcb_reply_t r;
  s->rc = call(s->m, &r, NULL);
  s->ms = mesh__now_ms() - t0;
  return NULL;
}

struct watch {
  mesh__res_svc_t *rs;
  _Atomic bool stop;
  int64_t max;
};

/* Watches until told to stop (it used to give up after 5000 x 200 us,
 * so on a slow run the storm's later retries went unwatched and "at most
 * 3 in flight" held vacuously); the cap only stops a broken run. */
static void *watch_retries(void *arg) {
  struct watch *w = arg;
  int64_t cap = th_now_ms() + TH_CAP_MS;
  while (!atomic_load(&w->stop) && th_now_ms() < cap) {
    int64_t v = atomic_load(&w->rs->br.retries);
    w->max = v > w->max ? v : w->max;
    usleep(200);
  }
  return NULL;
}

static void test_total_failure_budget(void) {
  CU_ASSERT_FATAL(tcb_init());
  /* three endpoints where nothing listens */
  int ports[] = {th_free_port(), th_free_port(), th_free_port()};
  mesh_t *m = client(ports, 3,
                     ",\"retry\":{\"num_retries\":2,\"base_interval_ms\":100}");
  /* one call: a fast, clear error naming what failed */
  tcb_reply_t r;
  mesh_status_t st;
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(call(m, &r, &st), MESH_ERR_CONNECT);
  CU_ASSERT(mesh__now_ms() - t0 < 1000);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "after 3 tries"));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "127.0.0.1:"));

  /* 16 at once: at most max(3, 20% of 16) = 3 retries may be in flight */
  enum { N = 16 };
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, N);
  struct storm s[N];
  pthread_t t[N], wt;
  struct watch w = {rs_of(m), false, 0};
  pthread_create(&wt, NULL, watch_retries, &w);
  for (int i = 0; i < N; i++) {
    s[i] = (struct storm){m, &bar, 0, 0};
    pthread_create(&t[i], NULL, storm_call, &s[i]);
  }
  int budget = 0, connect = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    budget += s[i].rc == MESH_ERR_RETRY_BUDGET;
    if (s[i].rc != MESH_ERR_RETRY_BUDGET && s[i].rc != MESH_ERR_CONNECT)
      fprintf(stderr, "storm %d: %s\n", i, mesh_code_name(s[i].rc));
    connect += s[i].rc == MESH_ERR_CONNECT;
    CU_ASSERT(s[i].ms < 2000);
  }
  atomic_store(&w.stop, true);
  pthread_join(wt, NULL);
  pthread_barrier_destroy(&bar);
  CU_ASSERT_EQUAL(budget + connect, N);
  CU_ASSERT(budget >= 1);
  CU_ASSERT(w.max <= 3);
  mesh__res_svc_t *rs = rs_of(m);
  CU_ASSERT_EQUAL(atomic_load(&rs->retry_overflow), (uint64_t)budget);
  char line[256];
  snprintf(line, sizeof line,
           "mesh_retry_budget_exhausted_total{service=\"echo\"} %d", budget);
  CU_ASSERT_TRUE(has_metric(m, line));
  /* the budget, not num_retries, bounded the work: fewer than 2 retries
   * per call on average */
  CU_ASSERT(atomic_load(&rs->retries) < 2 * N + 2);
  assert_idle_breakers(m);
  mesh_free(m);
}

/* ---- a backend killed mid-stream -------------------------------------------------------- */

struct killer {
  tcb_t *victim;
  bool killed;
  tcb_reply_t r;
};

static int try_and_kill(mesh_call_t *call, mesh_conn_t *conn, int *status,
                        void *user) {
  struct killer *k = user;
  char want[32];
  snprintf(want, sizeof want, "127.0.0.1:%d", k->victim->port);
  if (strcmp(mesh_call_endpoint(call), want) != 0)
    return tcb_try(call, conn, status, &k->r);
  if (mesh_conn_write_all(conn, "PING\n", 5) != MESH_OK)
    return MESH_CALL_RESET;
  char buf[64];
  long n = mesh_conn_read(conn, buf, sizeof buf); /* "20", then it hangs */
  CU_ASSERT_EQUAL(n, 2);
  tcb_kill(k->victim);
  k->killed = true;
  n = mesh_conn_read(conn, buf, sizeof buf); /* EOF or a reset */
  return n == 0 ? MESH_CALL_RESET : (int)n;
}

static void test_backend_killed_midstream(void) {
  tcb_t a, b;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "partial", 0));
  CU_ASSERT_FATAL(tcb_start(&b, "b", "good", 0));
  int ports[] = {a.port, b.port};
  mesh_t *m = client(ports, 2, ",\"timeouts\":{\"per_try_ms\":2000}");
  struct killer k = {&a, false, {0}};
  int rc = MESH_OK;
  mesh_status_t st;
  for (int i = 0; i < 4 && !k.killed; i++)
    rc = mesh_call_do(m, SVC, NULL, try_and_kill, &k, &st);
  CU_ASSERT_TRUE_FATAL(k.killed);
  /* EOF mid-response: a clean error, not retried (retry_on is
   * connect-failure by default: the request may have been processed) */
  if (rc != MESH_ERR_RESET)
    fprintf(stderr, "killed: %s %s\n", mesh_code_name(rc), st.message);
  CU_ASSERT_EQUAL(rc, MESH_ERR_RESET);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "reset or closed"));
  /* the next calls go elsewhere: the dead endpoint refuses connections and
   * the connect failure is retried on b */
  for (int i = 0; i < 5; i++) {
    tcb_reply_t r;
    rc = call(m, &r, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "after kill %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.name, "b");
  }
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&b);
}

static void test_pool_peer_closed(void) {
  /* "drop" answers and then closes: every pooled connection is dead by the
   * next call, which must notice before using it. */
  tcb_t a;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "drop", 0));
  int ports[] = {a.port};
  mesh_t *m = client(ports, 1, "");
  int last = 0;
  for (int i = 0; i < 5; i++) {
    tcb_reply_t r;
    mesh_status_t st;
    int rc = call(m, &r, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "drop %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT(r.conn > last); /* a new connection every time */
    last = r.conn;
    sleep_ms(20); /* let the FIN arrive */
  }
  /* restart the backend on the same port: pooled connections to the old
   * process are dead, the call still succeeds */
  tcb_mode(m, &a, "good");
  tcb_reply_t r;
  CU_ASSERT_EQUAL(call(m, &r, NULL), MESH_OK);
  int port = a.port;
  tcb_stop(&a);
  CU_ASSERT_FATAL(tcb_start(&a, "a2", "good", port));
  mesh_status_t st;
  CU_ASSERT_EQUAL(call(m, &r, &st), MESH_OK);
  CU_ASSERT_STRING_EQUAL(r.name, "a2");
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&a);
}

/* ---- deadlines, per-try timeouts, hedging --------------------------------------------------- */

/* A deadline that fires is bounded below by the deadline; above, it only
 * has to end long before the backend would answer (30 s): a loaded
 * machine can be late by a second, a broken deadline waits it out. */
#define SLOW_BACKEND "slow:30000"
#define LATE_CAP_MS 15000

static void test_deadline(void) {
  tcb_t a;
  CU_ASSERT_FATAL(tcb_start(&a, "a", SLOW_BACKEND, 0));
  int ports[] = {a.port};
  mesh_t *m = client(ports, 1, ",\"timeouts\":{\"overall_ms\":150}");
  tcb_reply_t r;
  mesh_status_t st;
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(call(m, &r, &st), MESH_ERR_DEADLINE);
  int64_t el = mesh__now_ms() - t0;
  CU_ASSERT(el >= 140 && el < LATE_CAP_MS);
  char buf[64];
  size_t len;
  int status;
  t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh_call_request(m, SVC, NULL, "PING\n", 5, tcb_frame, NULL,
                                    buf, sizeof buf, &len, &status, &st),
                  MESH_ERR_DEADLINE);
  el = mesh__now_ms() - t0;
  CU_ASSERT(el >= 140 && el < LATE_CAP_MS);
  /* a per-call deadline replaces the config's */
  CU_ASSERT_TRUE(tcb_mode(m, &a, "slow:200"));
  mesh_call_opts_t *o = mesh_call_opts_new();
  mesh_call_opts_set_deadline(o, 3000);
  CU_ASSERT_EQUAL(mesh_call_request(m, SVC, o, "PING\n", 5, tcb_frame, NULL,
                                    buf, sizeof buf, &len, &status, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(status, 200);
  CU_ASSERT(len > 0 && buf[len - 1] == '\n');
  mesh_call_opts_free(o);
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&a);
}

static void test_per_try_timeout_retry(void) {
  tcb_t a, b;
  CU_ASSERT_FATAL(tcb_start(&a, "slow", "slow:800", 0));
  CU_ASSERT_FATAL(tcb_start(&b, "fast", "good", 0));
  int ports[] = {a.port, b.port};
  mesh_t *m = client(ports, 2,
                     ",\"timeouts\":{\"per_try_ms\":100},\"retry\":{"
                     "\"retry_on\":[\"reset\"],\"base_interval_ms\":1}");
  for (int i = 0; i < 4; i++) {
    tcb_reply_t r;
    mesh_status_t st;
    int64_t t0 = mesh__now_ms();
    int rc = call(m, &r, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "per-try %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.name, "fast");
    CU_ASSERT(mesh__now_ms() - t0 < 700); /* the slow one answers at 800 */
  }
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&a);
  tcb_stop(&b);
}

static void test_mesh_call_request_hedge(void) {
  tcb_t a, b;
  CU_ASSERT_FATAL(tcb_start(&a, "slow", "slow:1000", 0));
  CU_ASSERT_FATAL(tcb_start(&b, "fast", "good", 0));
  int ports[] = {a.port, b.port};
  /* consecutive_5xx 1: any try counted as a failure would eject at once;
   * lost hedges are cancelled, not failures */
  mesh_t *m = client(ports, 2,
                     ",\"hedge\":{\"delay_ms\":50,\"max_attempts\":2},"
                     "\"outlier_detection\":{\"consecutive_5xx\":1}");
  for (int i = 0; i < 6; i++) {
    char buf[64];
    size_t len = 0;
    int status = 0;
    mesh_status_t st;
    int64_t t0 = mesh__now_ms();
    int rc = mesh_call_request(m, SVC, NULL, "PING\n", 5, tcb_frame, NULL, buf,
                               sizeof buf, &len, &status, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "hedge %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_EQUAL(status, 200);
    tcb_reply_t r;
    CU_ASSERT(tcb_parse(buf, len - 1, &r));
    CU_ASSERT_STRING_EQUAL(r.name, "fast");
    /* well before the slow answer, even with a new handshake under ASan */
    CU_ASSERT(mesh__now_ms() - t0 < 700);
  }
  mesh__res_svc_t *rs = rs_of(m);
  CU_ASSERT(atomic_load(&rs->hedges) >= 2);
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, a.port), mesh__now_ms()));
  /* hedging off for one call: it waits for the slow one when picked */
  CU_ASSERT_TRUE(tcb_mode(m, &a, "slow:200"));
  mesh_call_opts_t *o = mesh_call_opts_new();
  mesh_call_opts_set_hedging(o, 0);
  uint64_t before = atomic_load(&rs->hedges);
  for (int i = 0; i < 2; i++) {
    char buf[64];
    size_t len;
    int status;
    CU_ASSERT_EQUAL(mesh_call_request(m, SVC, o, "PING\n", 5, tcb_frame, NULL,
                                      buf, sizeof buf, &len, &status, NULL),
                    MESH_OK);
  }
  CU_ASSERT_EQUAL(atomic_load(&rs->hedges), before);
  mesh_call_opts_free(o);
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&a);
  tcb_stop(&b);
}

static void test_mesh_call_request_errors(void) {
  tcb_t a;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "error", 0));
  int ports[] = {a.port};
  mesh_t *m = client(ports, 1, ",\"retry\":{\"retry_on\":[\"5xx\"],"
                               "\"num_retries\":2,\"base_interval_ms\":1}");
  char buf[64];
  size_t len = 0;
  int status = 0;
  mesh_status_t st;
  /* retried twice, then the last 503 is returned with its bytes */
  CU_ASSERT_EQUAL(mesh_call_request(m, SVC, NULL, "PING\n", 5, tcb_frame, NULL,
                                    buf, sizeof buf, &len, &status, &st),
                  MESH_ERR_UPSTREAM);
  CU_ASSERT_EQUAL(status, 503);
  CU_ASSERT(len > 4 && memcmp(buf, "503 ", 4) == 0);
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->retries), 2);
  /* a buffer too small for the response */
  CU_ASSERT_EQUAL(mesh_call_request(m, SVC, NULL, "PING\n", 5, tcb_frame, NULL,
                                    buf, 4, &len, &status, &st),
                  MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(len, 0);
  CU_ASSERT_EQUAL(mesh_call_request(m, SVC, NULL, "PING\n", 5, NULL, NULL, buf,
                                    sizeof buf, &len, &status, &st),
                  MESH_ERR_INVALID_ARG);
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&a);
}

static void test_connect_timeout(void) {
  tcb_t b;
  CU_ASSERT_FATAL(tcb_start(&b, "b", "good", 0));
  /* a plain TCP listener that never speaks TLS: the connect succeeds, the
   * handshake never ends, timeouts.connect_ms bounds both */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  CU_ASSERT_EQUAL_FATAL(listen(fd, 8), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  int ports[] = {ntohs(sa.sin_port), b.port};
  mesh_t *m = client(ports, 1, ",\"timeouts\":{\"connect_ms\":300}");
  tcb_reply_t r;
  mesh_status_t st;
  int64_t t0 = mesh__now_ms();
  mesh_call_opts_t *o = mesh_call_opts_new();
  mesh_call_opts_set_max_retries(o, 0);
  CU_ASSERT_EQUAL(mesh_call_do(m, SVC, o, tcb_try, &r, &st), MESH_ERR_TIMEOUT);
  int64_t el = mesh__now_ms() - t0;
  CU_ASSERT(el >= 290 && el < LATE_CAP_MS); /* the handshake never ends */
  mesh_free(m);
  /* a per-call connect timeout replaces the config's (30 s here, so that
   * telling them apart does not depend on the machine's speed) */
  m = client(ports, 1, ",\"timeouts\":{\"connect_ms\":30000}");
  mesh_call_opts_set_connect_timeout(o, 50);
  t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh_call_do(m, SVC, o, tcb_try, &r, &st), MESH_ERR_TIMEOUT);
  el = mesh__now_ms() - t0;
  CU_ASSERT(el >= 45 && el < LATE_CAP_MS);
  mesh_call_opts_free(o);
  mesh_free(m);
  /* with a good endpoint next to it, the timed-out connect is retried there
   * (the budget leaves room for b's own first handshake on a busy machine) */
  m = client(ports, 2, ",\"timeouts\":{\"connect_ms\":500}");
  for (int i = 0; i < 2; i++) {
    int rc = call(m, &r, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "connect timeout %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.name, "b");
  }
  CU_ASSERT(atomic_load(&rs_of(m)->retries) >= 1);
  assert_idle_breakers(m);
  mesh_free(m);
  close(fd);
  tcb_stop(&b);
}

struct worker {
  mesh_t *m;
  int ok, n;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < w->n; i++) {
    tcb_reply_t r;
    w->ok += call(w->m, &r, NULL) == MESH_OK;
  }
  return NULL;
}

static void test_mesh_call_do_threads(void) {
  /* many threads through pick, pool, breakers and outlier counters at once
   * (the ThreadSanitizer run covers this test) */
  tcb_t a, b;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b, "b", "good", 0));
  int ports[] = {a.port, b.port};
  mesh_t *m = client(ports, 2,
                     ",\"outlier_detection\":{\"interval_ms\":50},"
                     "\"pool\":{\"max_idle\":4}");
  enum { T = 6 };
  struct worker w[T];
  pthread_t t[T];
  for (int i = 0; i < T; i++) {
    w[i] = (struct worker){m, 0, 30};
    pthread_create(&t[i], NULL, worker_main, &w[i]);
  }
  int ok = 0;
  for (int i = 0; i < T; i++) {
    pthread_join(t[i], NULL);
    ok += w[i].ok;
  }
  CU_ASSERT_EQUAL(ok, T * 30);
  assert_idle_breakers(m);
  mesh__res_svc_t *rs = rs_of(m);
  size_t idle = mesh__pool_idle(mesh__res_pool_peek(host_of(m, a.port))) +
                mesh__pool_idle(mesh__res_pool_peek(host_of(m, b.port)));
  CU_ASSERT(idle <= 8);
  CU_ASSERT_EQUAL((size_t)atomic_load(&rs->br.connections), idle);
  mesh_free(m);
  tcb_stop(&a);
  tcb_stop(&b);
}

static void test_retry_prefers_another_host(void) {
  /* ring_hash sends one key to one host; the retry must still go elsewhere */
  tcb_t bad, good;
  CU_ASSERT_FATAL(tcb_start(&bad, "bad", "error", 0));
  CU_ASSERT_FATAL(tcb_start(&good, "good", "good", 0));
  /* client() sets round_robin: this one needs its own config */
  mesh_t *m = NULL;
  char json[4096];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"" SVC "\":{"
           "\"peers\":[\"" TCB_BACKEND_ID "\"],\"discovery\":{\"type\":"
           "\"static\",\"endpoints\":[{\"address\":\"127.0.0.1\",\"port\":%d},"
           "{\"address\":\"127.0.0.1\",\"port\":%d}]},\"lb\":{\"policy\":"
           "\"ring_hash\"},\"retry\":{\"retry_on\":[\"5xx\"],"
           "\"num_retries\":1,\"base_interval_ms\":1}}}}",
           tcb_client_identity(), bad.port, good.port);
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, NULL), MESH_OK);
  char want[32], key[16];
  snprintf(want, sizeof want, "127.0.0.1:%d", bad.port);
  mesh_call_opts_t *o = mesh_call_opts_new();
  bool found = false;
  for (int k = 0; k < 64 && !found; k++) {
    snprintf(key, sizeof key, "k%d", k);
    mesh_call_opts_set_hash_key(o, key, strlen(key));
    mesh_call_t *c;
    CU_ASSERT_EQUAL_FATAL(mesh_call_begin(m, SVC, o, &c, NULL), MESH_OK);
    found = strcmp(mesh_call_endpoint(c), want) == 0;
    mesh_call_end(c, MESH_CALL_CANCELLED, 0);
  }
  CU_ASSERT_TRUE_FATAL(found);
  for (int i = 0; i < 3; i++) {
    tcb_reply_t r;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_call_do(m, SVC, o, tcb_try, &r, &st), MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.name, "good");
  }
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->retries), 3);
  mesh_call_opts_free(o);
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&bad);
  tcb_stop(&good);
}

/* ---- mesh_dial() of a service ----------------------------------------------------------------- */

static void test_mesh_dial_service(void) {
  tcb_t a;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "good", 0));
  int ports[] = {a.port};
  mesh_t *m = client(ports, 1, "");
  /* warm the pool through a call, then dial: the pooled connection is
   * handed over (same backend connection number) */
  tcb_reply_t r1, r2;
  CU_ASSERT_EQUAL(call(m, &r1, NULL), MESH_OK);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(m, SVC, NULL, &c, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__pool_idle(mesh__res_pool_peek(host_of(m, a.port))), 0);
  int status;
  CU_ASSERT_EQUAL(tcb_try(NULL, c, &status, &r2), MESH_CALL_OK);
  CU_ASSERT_EQUAL(r2.conn, r1.conn);
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), TCB_BACKEND_ID);
  mesh_conn_close(c);
  /* the application owns it: it left the breaker's count */
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.connections), 0);
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&a);
}

/* ---- spans ------------------------------------------------------------------------------------ */

struct spans {
  pthread_mutex_t mu;
  int n;
  char name[16][16];
  mesh_trace_ctx_t ctx[16];
  int status[16];
  char endpoint[16][32];
};

static void on_end(const mesh_span_t *sp, void *user) {
  struct spans *c = user;
  pthread_mutex_lock(&c->mu);
  if (c->n < 16) {
    snprintf(c->name[c->n], sizeof c->name[0], "%s", mesh_span_name(sp));
    mesh_span_context(sp, &c->ctx[c->n]);
    c->status[c->n] = mesh_span_status(sp, NULL);
    c->endpoint[c->n][0] = '\0';
    mesh_span_attr_text(sp, "network.peer.address", c->endpoint[c->n],
                        sizeof c->endpoint[0]);
    c->n++;
  }
  pthread_mutex_unlock(&c->mu);
}

static void test_mesh_call_trace_context(void) {
  tcb_t b;
  CU_ASSERT_FATAL(tcb_start(&b, "b", "good", 0));
  /* first endpoint down: the call is a failed try, then a good one */
  int ports[] = {th_free_port(), b.port};
  mesh_t *m = client(ports, 2, "");
  struct spans cap = {.n = 0};
  pthread_mutex_init(&cap.mu, NULL);
  CU_ASSERT_EQUAL(mesh_set_span_hooks(m, NULL, on_end, &cap), MESH_OK);
  mesh_trace_ctx_t parent;
  memset(&parent, 0, sizeof parent);
  for (int i = 0; i < 16; i++)
    parent.trace_id[i] = (uint8_t)(i + 1);
  for (int i = 0; i < 8; i++)
    parent.span_id[i] = (uint8_t)(0xa0 + i);
  parent.flags = MESH_TRACE_FLAG_SAMPLED;
  parent.sampling = MESH_SAMPLING_ACCEPT;
  parent.has_ids = 1;
  mesh_call_opts_t *o = mesh_call_opts_new();
  CU_ASSERT_EQUAL(mesh_call_opts_set_trace_parent(o, &parent), MESH_OK);
  /* two calls: round robin makes one of them start on the dead endpoint */
  for (int i = 0; i < 2; i++) {
    mesh_call_t *c;
    mesh_status_t st;
    CU_ASSERT_EQUAL_FATAL(mesh_call_begin(m, SVC, o, &c, &st), MESH_OK);
    mesh_trace_ctx_t tc;
    CU_ASSERT_EQUAL(mesh_call_trace_context(c, &tc), MESH_OK);
    CU_ASSERT_EQUAL(memcmp(tc.trace_id, parent.trace_id, 16), 0);
    tcb_reply_t r;
    int status;
    CU_ASSERT_EQUAL(tcb_try(c, mesh_call_conn(c), &status, &r), MESH_CALL_OK);
    mesh_call_end(c, MESH_CALL_OK, status);
  }
  mesh_set_span_hooks(m, NULL, NULL, NULL);
  /* 2 calls; each try on the dead endpoint failed and was retried on b
   * (where the round robin starts decides whether that is 1 or 2 tries) */
  int calls = 0, tries = 0, failed = 0;
  for (int i = 0; i < cap.n; i++) {
    CU_ASSERT_EQUAL(memcmp(cap.ctx[i].trace_id, parent.trace_id, 16), 0);
    if (strcmp(cap.name[i], "mesh.call") == 0) {
      calls++;
      CU_ASSERT_EQUAL(memcmp(cap.ctx[i].parent_span_id, parent.span_id, 8), 0);
      CU_ASSERT_NOT_EQUAL(cap.status[i], MESH_SPAN_STATUS_ERROR);
    } else if (strcmp(cap.name[i], "mesh.try") == 0) {
      tries++;
      failed += cap.status[i] == MESH_SPAN_STATUS_ERROR;
      CU_ASSERT(cap.endpoint[i][0] != '\0');
    }
  }
  CU_ASSERT_EQUAL(calls, 2);
  CU_ASSERT(failed >= 1 && failed <= 2);
  CU_ASSERT_EQUAL(tries, calls + failed);
  /* each try is a child of a call of the same trace */
  for (int i = 0; i < cap.n; i++) {
    if (strcmp(cap.name[i], "mesh.try") != 0)
      continue;
    bool found = false;
    for (int j = 0; j < cap.n; j++)
      if (strcmp(cap.name[j], "mesh.call") == 0 &&
          memcmp(cap.ctx[i].parent_span_id, cap.ctx[j].span_id, 8) == 0)
        found = true;
    CU_ASSERT_TRUE(found);
  }
  /* a new connection's dial span is a child of the try that made it */
  int dials = 0;
  for (int i = 0; i < cap.n; i++) {
    if (strcmp(cap.name[i], "mesh.dial") != 0)
      continue;
    dials++;
    bool found = false;
    for (int j = 0; j < cap.n; j++)
      if (strcmp(cap.name[j], "mesh.try") == 0 &&
          memcmp(cap.ctx[i].parent_span_id, cap.ctx[j].span_id, 8) == 0)
        found = true;
    CU_ASSERT_TRUE(found);
  }
  CU_ASSERT(dials >= 1);
  mesh_call_opts_free(o);
  pthread_mutex_destroy(&cap.mu);
  mesh_free(m);
  tcb_stop(&b);
}

/* A connect failure is retried on another host too, even when the hash key
 * pins the dead one (the demo found the retry going back to it). */
static void test_connect_retry_prefers_another_host(void) {
  tcb_t good;
  CU_ASSERT_FATAL(tcb_start(&good, "good", "good", 0));
  int dead = th_free_port();
  mesh_t *m = NULL;
  char json[4096];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"" SVC "\":{"
           "\"peers\":[\"" TCB_BACKEND_ID "\"],\"discovery\":{\"type\":"
           "\"static\",\"endpoints\":[{\"address\":\"127.0.0.1\",\"port\":%d},"
           "{\"address\":\"127.0.0.1\",\"port\":%d}]},\"lb\":{\"policy\":"
           "\"ring_hash\"},\"retry\":{\"retry_on\":[\"connect-failure\"],"
           "\"num_retries\":2,\"base_interval_ms\":1}}}}",
           tcb_client_identity(), dead, good.port);
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, NULL), MESH_OK);
  mesh_call_opts_t *o = mesh_call_opts_new();
  char key[16];
  bool found = false;
  for (int k = 0; k < 64 && !found; k++) {
    snprintf(key, sizeof key, "k%d", k);
    mesh_call_opts_set_hash_key(o, key, strlen(key));
    mesh_call_opts_set_max_retries(o, 0);
    mesh_call_t *c = NULL;
    int rc = mesh_call_begin(m, SVC, o, &c, NULL);
    if (rc == MESH_OK)
      mesh_call_end(c, MESH_CALL_CANCELLED, 0);
    found = rc == MESH_ERR_CONNECT;
  }
  CU_ASSERT_TRUE_FATAL(found);
  mesh_call_opts_set_max_retries(o, 2);
  for (int i = 0; i < 3; i++) {
    tcb_reply_t r;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_call_do(m, SVC, o, tcb_try, &r, &st), MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.name, "good");
  }
  mesh_call_opts_free(o);
  assert_idle_breakers(m);
  mesh_free(m);
  tcb_stop(&good);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("call", NULL, NULL);
  CU_add_test(s, "mesh_call_do", test_mesh_call_do);
  CU_add_test(s, "mesh_call_begin", test_mesh_call_begin);
  CU_add_test(s, "outlier_error_backend", test_outlier_error_backend);
  CU_add_test(s, "outlier_reset_backend", test_outlier_reset_backend);
  CU_add_test(s, "breaker_trips_and_recovers",
              test_breaker_trips_and_recovers);
  CU_add_test(s, "total_failure_budget", test_total_failure_budget);
  CU_add_test(s, "backend_killed_midstream", test_backend_killed_midstream);
  CU_add_test(s, "pool_peer_closed", test_pool_peer_closed);
  CU_add_test(s, "deadline", test_deadline);
  CU_add_test(s, "per_try_timeout_retry", test_per_try_timeout_retry);
  CU_add_test(s, "mesh_call_request_hedge", test_mesh_call_request_hedge);
  CU_add_test(s, "mesh_call_request_errors", test_mesh_call_request_errors);
  CU_add_test(s, "connect_timeout", test_connect_timeout);
  CU_add_test(s, "mesh_call_do_threads", test_mesh_call_do_threads);
  CU_add_test(s, "retry_prefers_another_host",
              test_retry_prefers_another_host);
  CU_add_test(s, "connect_retry_prefers_another_host",
              test_connect_retry_prefers_another_host);
  CU_add_test(s, "mesh_dial_service", test_mesh_dial_service);
  CU_add_test(s, "mesh_call_trace_context", test_mesh_call_trace_context);
}

int main(int argc, char **argv) {
  int rc = tcb_maybe_backend(argc, argv);
  if (rc >= 0)
    return rc;
  return th_run_suites("test_call", add);
}
