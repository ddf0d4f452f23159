/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC calls to a configured service share one HTTP/2 connection per
 * endpoint, as a gRPC channel does: many threads x many calls against
 * python3-grpcio backends on loopback, the connections counted by the
 * servers (one client port per connection: grpcio's context.peer()).
 * Also: the peer's MAX_CONCURRENT_STREAMS opens more connections, GOAWAY
 * (grpcio's max_connection_age) drains and re-dials without losing a
 * call. */
#include "helpers.h"
#include "test_grpc_util.h"

#include <stdlib.h>
#include <string.h>
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

static void add(void) {
  CU_pSuite s = CU_add_suite("grpc_pool", NULL, NULL);
  CU_add_test(s, "one connection per endpoint", test_one_connection_per_endpoint);
  CU_add_test(s, "MAX_CONCURRENT_STREAMS", test_max_concurrent_streams);
  CU_add_test(s, "GOAWAY: drain and re-dial", test_goaway_redial);
}

int main(void) { return th_run_suites("test_grpc_pool", add); }
