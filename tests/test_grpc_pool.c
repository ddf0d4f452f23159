/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC calls to a configured service share one HTTP/2 connection per
 * endpoint, as a gRPC channel does: many threads x many calls against
 * python3-grpcio backends on loopback, the connections counted by the
 * servers (one client port per connection: grpcio's context.peer()).
 * Also: the peer's MAX_CONCURRENT_STREAMS opens more connections, GOAWAY
 * (grpcio's max_connection_age) drains and re-dials without losing a
 * call.  Keepalive (http.http2, gRPC's semantics): a peer that stops
 * answering (SIGSTOP) is found by PINGs, during a call and, with
 * keepalive_permit_without_calls, while idle; our server's ping abuse
 * policy sends GOAWAY ENHANCE_YOUR_CALM to a client pinging too often,
 * and the client doubles its keepalive time for that server (gRFC A8). */
#include "helpers.h"
#include "test_grpc_util.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mesh/mesh.h>

/* A client context with service "echo" over the given ports. */
static mesh_t *client(const int *ports, size_t n, const char *more) {
  char eps[512] = "", extra[4096];
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(eps + off, sizeof eps - off,
                            "%s{\"address\": \"127.0.0.1\", \"port\": %d}",
                            i ? ", " : "", ports[i]);
  snprintf(extra, sizeof extra,
           "\"services\": {\"echo\": {\"discovery\": {\"type\": \"static\","
           " \"endpoints\": [%s]}, \"lb\": {\"policy\": \"round_robin\"},"
           " \"timeouts\": {\"connect_ms\": 5000, \"overall_ms\": 30000}%s}}",
           eps, more ? more : "");
  mesh_t *m = NULL;
  mesh_status_t st;
  if (!tg_svid("cli") || mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
    fprintf(stderr, "\nclient config: %s\n%s\n", st.message, extra);
  return m;
}

typedef struct run {
  mesh_t *m;
  pthread_barrier_t *go;
  int calls;
  const char *sleep_ms; /* x-sleep-ms, or NULL */
  int ok;
  char err[512];
} run_t;

static void *caller(void *p) {
  run_t *r = p;
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  if (r->sleep_ms) {
    mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
    mesh_grpc_metadata_add(md, "x-sleep-ms", r->sleep_ms, NULL);
    mesh_grpc_call_opts_set_metadata(o, md);
    mesh_grpc_metadata_free(md);
  }
  pthread_barrier_wait(r->go); /* every thread's first call at once */
  for (int i = 0; i < r->calls; i++) {
    char req[32];
    int n = snprintf(req, sizeof req, "call %d", i);
    void *resp = NULL;
    size_t rl = 0;
    mesh_status_t st;
    int rc = mesh_grpc_unary(r->m, "echo", "/mesh.v1.Echo/Echo", o, req,
                             (size_t)n, &resp, &rl, NULL, &st);
    if (rc == MESH_OK && rl == (size_t)n && !memcmp(resp, req, rl))
      r->ok++;
    else if (!r->err[0])
      snprintf(r->err, sizeof r->err, "%s: %s", mesh_code_name(rc),
               st.message);
    mesh_grpc_free(resp);
  }
  mesh_grpc_call_opts_free(o);
  return NULL;
}

/* threads x calls against m; returns the calls that succeeded. */
static int run_calls(mesh_t *m, int threads, int calls, const char *sleep_ms) {
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)threads);
  run_t r[16];
  pthread_t t[16];
  int ok = 0;
  for (int i = 0; i < threads; i++) {
    r[i] = (run_t){m, &go, calls, sleep_ms, 0, ""};
    CU_ASSERT_FATAL(pthread_create(&t[i], NULL, caller, &r[i]) == 0);
  }
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    ok += r[i].ok;
    if (r[i].err[0])
      fprintf(stderr, "\nthread %d: %d/%d ok, first error %s\n", i, r[i].ok,
              calls, r[i].err);
  }
  pthread_barrier_destroy(&go);
  return ok;
}

/* ---- one connection per endpoint ---------------------------------------------- */

static void test_one_connection_per_endpoint(void) {
  int ports[2];
  pid_t a = tg_py_server("pool_a", "echo", &ports[0]);
  pid_t b = tg_py_server("pool_b", "echo", &ports[1]);
  CU_ASSERT_FATAL(a > 0 && b > 0);
  mesh_t *m = client(ports, 2, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  /* 8 threads start together (the first callers share one dial per
   * endpoint), then 25 calls each */
  CU_ASSERT_EQUAL(run_calls(m, 8, 25, NULL), 200);
  int ca = tg_events_distinct("pool_a", "peer "),
      cb = tg_events_distinct("pool_b", "peer ");
  CU_ASSERT_EQUAL(ca, 1);
  CU_ASSERT_EQUAL(cb, 1);
  CU_ASSERT_EQUAL(tg_events("pool_a", "start Echo") +
                      tg_events("pool_b", "start Echo"),
                  200);
  if (ca != 1 || cb != 1)
    fprintf(stderr, "\nconnections: %d and %d\n", ca, cb);
  mesh_free(m);
  th_stop(a);
  th_stop(b);
}

/* ---- the peer's MAX_CONCURRENT_STREAMS ---------------------------------------- */

static void test_max_concurrent_streams(void) {
  static const char *const opts[] = {"grpc.max_concurrent_streams=2", NULL};
  int port;
  pid_t a = tg_py_server_opts("pool_mcs", "echo", opts, &port);
  CU_ASSERT_FATAL(a > 0);
  mesh_t *m = client(&port, 1, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  /* 8 callers each holding a call for 100 ms: 2 streams per connection */
  CU_ASSERT_EQUAL(run_calls(m, 8, 4, "100"), 32);
  int conns = tg_events_distinct("pool_mcs", "peer ");
  CU_ASSERT(conns >= 2 && conns <= 8);
  if (conns < 2 || conns > 8)
    fprintf(stderr, "\nconnections: %d\n", conns);
  mesh_free(m);
  th_stop(a);
}

/* ---- GOAWAY mid-run ----------------------------------------------------------- */

static void test_goaway_redial(void) {
  /* grpcio ends every connection with GOAWAY after 300 ms (graceful: the
   * calls in flight get 10 s) */
  static const char *const opts[] = {"grpc.max_connection_age_ms=300",
                                     "grpc.max_connection_age_grace_ms=10000",
                                     NULL};
  int port;
  pid_t a = tg_py_server_opts("pool_goaway", "echo", opts, &port);
  CU_ASSERT_FATAL(a > 0);
  mesh_t *m = client(&port, 1, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  /* >= 40 x 20 ms per thread: several connection ages */
  CU_ASSERT_EQUAL(run_calls(m, 4, 40, "20"), 160);
  int conns = tg_events_distinct("pool_goaway", "peer ");
  CU_ASSERT(conns >= 2);
  CU_ASSERT_EQUAL(tg_events("pool_goaway", "start Echo"), 160);
  fprintf(stderr, "(%d connections) ", conns);
  mesh_free(m);
  th_stop(a);
}

/* ---- keepalive ------------------------------------------------------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Established TCP connections to 127.0.0.1:port seen from the client side
 * (remote port == port), from /proc/net/tcp. */
static int established_to(int port) {
  FILE *f = fopen("/proc/net/tcp", "r");
  if (!f)
    return -1;
  char line[512];
  int n = 0;
  if (!fgets(line, sizeof line, f)) { /* header */
    fclose(f);
    return -1;
  }
  while (fgets(line, sizeof line, f)) {
    unsigned la, lp, ra, rp, state;
    if (sscanf(line, " %*d: %x:%x %x:%x %x", &la, &lp, &ra, &rp, &state) ==
            5 &&
        rp == (unsigned)port && state == 1)
      n++;
  }
  fclose(f);
  return n;
}

#define KA(t, to, permit)                                                   \
  "\"http\": {\"http2\": {\"keepalive_time_ms\": " #t                          \
  ", \"keepalive_timeout_ms\": " #to                                         \
  ", \"keepalive_permit_without_calls\": " #permit "}}"

typedef struct slow {
  mesh_t *m;
  int rc, code;
  _Atomic bool done;
  int64_t end_ms;
} slow_t;

/* One call the server holds for 4 s, no retries. */
static void *slow_call(void *p) {
  slow_t *s = p;
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  mesh_grpc_metadata_add(md, "x-sleep-ms", "4000", NULL);
  mesh_grpc_call_opts_set_metadata(o, md);
  mesh_grpc_call_opts_set_retry(o, 0);
  mesh_grpc_call_opts_set_timeout(o, 30000);
  void *resp = NULL;
  size_t rl;
  mesh_grpc_call_t *c = NULL;
  s->rc = mesh_grpc_unary(s->m, "echo", "/mesh.v1.Echo/Echo", o, "x", 1,
                          &resp, &rl, &c, NULL);
  s->code = c ? mesh_grpc_call_status(c) : -1;
  s->end_ms = now_ms();
  atomic_store(&s->done, true);
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  mesh_grpc_metadata_free(md);
  mesh_grpc_call_opts_free(o);
  return NULL;
}

/* A peer stopped (SIGSTOP) during a call: with keepalive (500 ms + 1 s)
 * the call ends UNAVAILABLE well before the server's 4 s; without, it is
 * still waiting 3 s later and completes once the peer runs again.  Either
 * way the next call works (a new connection after the dead one). */
static void test_keepalive_mid_call(void) {
  static const struct {
    bool keepalive;
    const char *cfg;
  } rows[] = {{true, KA(500, 1000, false)}, {false, NULL}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int port;
    pid_t a = tg_py_server("pool_ka", "echo", &port);
    CU_ASSERT_FATAL(a > 0);
    char extra[2048];
    snprintf(extra, sizeof extra,
             "\"services\": {\"echo\": {\"discovery\": {\"type\":"
             " \"static\", \"endpoints\": [{\"address\": \"127.0.0.1\","
             " \"port\": %d}]}}}%s%s",
             port, rows[i].cfg ? ", " : "", rows[i].cfg ? rows[i].cfg : "");
    mesh_t *m = NULL;
    mesh_status_t st;
    if (mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
      fprintf(stderr, "\nconfig: %s\n", st.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    slow_t s = {.m = m};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, slow_call, &s) == 0);
    int64_t cap = now_ms() + 20000;
    while (tg_events("pool_ka", "start Echo") == 0 && now_ms() < cap)
      usleep(5000);
    kill(a, SIGSTOP);
    int64_t t0 = now_ms();
    if (rows[i].keepalive) {
      while (!atomic_load(&s.done) && now_ms() < t0 + 15000)
        usleep(10000);
      CU_ASSERT(atomic_load(&s.done));
      /* generous: keepalive_time + timeout = 1.5 s, the server's 4 s */
      CU_ASSERT(s.end_ms - t0 < 3500);
      CU_ASSERT_EQUAL(s.rc, MESH_ERR_GRPC_STATUS);
      CU_ASSERT_EQUAL(s.code, MESH_GRPC_UNAVAILABLE);
      kill(a, SIGCONT);
    } else {
      usleep(3000 * 1000);
      CU_ASSERT(!atomic_load(&s.done)); /* nothing else ends it */
      kill(a, SIGCONT);
    }
    pthread_join(t, NULL);
    if (!rows[i].keepalive)
      CU_ASSERT_EQUAL(s.rc, MESH_OK);
    /* the next call gets through (on a new connection after keepalive) */
    CU_ASSERT_EQUAL(run_calls(m, 1, 1, NULL), 1);
    CU_ASSERT_EQUAL(tg_events_distinct("pool_ka", "peer "),
                    rows[i].keepalive ? 2 : 1);
    mesh_free(m);
    th_stop(a);
  }
}

/* An idle pooled connection to a stopped peer: with
 * keepalive_permit_without_calls the client PINGs it anyway and closes it
 * (found by the pool's sweep); without, it stays (gRPC: no PING without
 * calls). */
static void test_keepalive_idle(void) {
  static const struct {
    bool permit;
    const char *cfg;
  } rows[] = {{true, KA(300, 500, true)}, {false, KA(300, 500, false)}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int port;
    pid_t a = tg_py_server("pool_idle", "echo", &port);
    CU_ASSERT_FATAL(a > 0);
    char extra[2048];
    snprintf(extra, sizeof extra,
             "\"services\": {\"echo\": {\"discovery\": {\"type\":"
             " \"static\", \"endpoints\": [{\"address\": \"127.0.0.1\","
             " \"port\": %d}]}, \"pool\": {\"idle_timeout_ms\": 600000}}}, %s",
             port, rows[i].cfg);
    mesh_t *m = NULL;
    mesh_status_t st;
    if (mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
      fprintf(stderr, "\nconfig: %s\n", st.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(run_calls(m, 1, 1, NULL), 1);
    CU_ASSERT_EQUAL(established_to(port), 1);
    kill(a, SIGSTOP);
    int64_t t0 = now_ms();
    int left = 1;
    /* the sweep runs every <= 5 s: 0.3 + 0.5 + 5 s, bounded at 15 s */
    while ((left = established_to(port)) > 0 && now_ms() < t0 + 15000 &&
           (rows[i].permit || now_ms() < t0 + 3000))
      usleep(50000);
    if (rows[i].permit) {
      CU_ASSERT_EQUAL(left, 0);
      fprintf(stderr, "(closed after %lld ms) ", (long long)(now_ms() - t0));
    } else {
      CU_ASSERT_EQUAL(left, 1);
    }
    kill(a, SIGCONT);
    CU_ASSERT_EQUAL(run_calls(m, 1, 1, NULL), 1);
    mesh_free(m);
    th_stop(a);
  }
}

/* Our server's ping abuse policy: a client PINGing every 100 ms during a
 * call the server holds for 4 s gets GOAWAY ENHANCE_YOUR_CALM after 2
 * strikes when the server wants >= 1 s between PINGs (the call fails
 * UNAVAILABLE at once); a server allowing 50 ms lets the call finish. */
static void test_ping_abuse_policy(void) {
  static const struct {
    const char *srv;
    int rc;
  } rows[] = {
      {"\"http\": {\"http2\": {\"min_ping_interval_ms\": 1000}}",
       MESH_ERR_GRPC_STATUS},
      {"\"http\": {\"http2\": {\"min_ping_interval_ms\": 50}}", MESH_OK},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    tg_server_t srv;
    CU_ASSERT_FATAL(tg_server_start(&srv, rows[i].srv));
    char extra[2048];
    snprintf(extra, sizeof extra,
             "\"services\": {\"echo\": {\"discovery\": {\"type\":"
             " \"static\", \"endpoints\": [{\"address\": \"127.0.0.1\","
             " \"port\": %d}]}}}, %s",
             srv.port, KA(100, 2000, false));
    mesh_t *m = NULL;
    mesh_status_t st;
    if (mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
      fprintf(stderr, "\nconfig: %s\n", st.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    slow_t s = {.m = m};
    int64_t t0 = now_ms();
    slow_call(&s);
    CU_ASSERT_EQUAL(s.rc, rows[i].rc);
    if (rows[i].rc != MESH_OK) {
      CU_ASSERT_EQUAL(s.code, MESH_GRPC_UNAVAILABLE);
      CU_ASSERT(s.end_ms - t0 < 3500); /* 3 PINGs, not the 4 s call */
    }
    mesh_free(m);
    tg_server_stop(&srv);
  }
}

/* Log lines of the keepalive backoff, as the client logged them. */
typedef struct ka_log {
  pthread_mutex_t mu;
  long ms[16];
  int n;
} ka_log_t;

static void ka_log_fn(int level, const char *line, void *user) {
  (void)level;
  ka_log_t *k = user;
  const char *p = strstr(line, "h2_keepalive_backoff");
  const char *v = p ? strstr(p, "keepalive_time_ms=") : NULL;
  pthread_mutex_lock(&k->mu);
  if (v && k->n < 16)
    k->ms[k->n++] = atol(v + strlen("keepalive_time_ms="));
  pthread_mutex_unlock(&k->mu);
}

/* gRFC A8: a client whose PINGs (every 100 ms) make our server (>= 1 s
 * between PINGs) end the connection with GOAWAY ENHANCE_YOUR_CALM
 * "too_many_pings" doubles its keepalive time for the next connections to
 * that server: 200, 400, 800 ms (each logged once) ... until 1600 ms
 * passes the policy and the 4 s call completes.  With 100 ms kept (no
 * backoff) every call would fail. */
static void test_keepalive_backoff(void) {
  tg_server_t srv;
  CU_ASSERT_FATAL(tg_server_start(
      &srv, "\"http\": {\"http2\": {\"min_ping_interval_ms\": 1000}}"));
  char extra[2048];
  snprintf(extra, sizeof extra,
           "\"services\": {\"echo\": {\"discovery\": {\"type\":"
           " \"static\", \"endpoints\": [{\"address\": \"127.0.0.1\","
           " \"port\": %d}]}}}, %s",
           srv.port, KA(100, 2000, false));
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
    fprintf(stderr, "\nconfig: %s\n", st.message);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  ka_log_t k = {.n = 0};
  pthread_mutex_init(&k.mu, NULL);
  mesh_set_log(m, MESH_LOG_WARN, ka_log_fn, &k);
  int failed = 0, ok = 0;
  for (int i = 0; i < 6 && !ok; i++) {
    slow_t s = {.m = m};
    slow_call(&s);
    if (s.rc == MESH_OK) {
      ok = 1;
    } else {
      failed++;
      CU_ASSERT_EQUAL(s.code, MESH_GRPC_UNAVAILABLE);
    }
  }
  mesh_set_log(m, MESH_LOG_WARN, NULL, NULL);
  CU_ASSERT_EQUAL(ok, 1);
  /* 100, 200, 400 ms always strike out within the 4 s call; 800 ms
   * (GOAWAY at its 4th PING, ~3.2 s) may pass on a loaded machine */
  CU_ASSERT(failed == 3 || failed == 4);
  pthread_mutex_lock(&k.mu);
  CU_ASSERT_EQUAL(k.n, failed);
  for (int i = 0; i < k.n; i++)
    CU_ASSERT_EQUAL(k.ms[i], 200L << i);
  pthread_mutex_unlock(&k.mu);
  mesh_free(m);
  pthread_mutex_destroy(&k.mu);
  tg_server_stop(&srv);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("grpc_pool", NULL, NULL);
  CU_add_test(s, "one connection per endpoint", test_one_connection_per_endpoint);
  CU_add_test(s, "MAX_CONCURRENT_STREAMS", test_max_concurrent_streams);
  CU_add_test(s, "GOAWAY: drain and re-dial", test_goaway_redial);
  CU_add_test(s, "keepalive: stopped peer mid-call", test_keepalive_mid_call);
  CU_add_test(s, "keepalive: idle connection", test_keepalive_idle);
  CU_add_test(s, "server ping abuse policy", test_ping_abuse_policy);
  CU_add_test(s, "keepalive backoff on too_many_pings",
              test_keepalive_backoff);
}

int main(void) { return th_run_suites("test_grpc_pool", add); }
