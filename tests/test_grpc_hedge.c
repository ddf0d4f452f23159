/* SPDX-License-Identifier: Apache-2.0 */
/* Hedged unary calls (gRFC A6 hedgingPolicy) against python3-grpcio
 * backends on loopback: a slow one (3 s per call unless cancelled) next to
 * a fast one, and a broken one (UNAVAILABLE) next to a fast one.  The
 * first response wins, the other tries are cancelled (the slow backend
 * sees the cancellation), a non-fatal status sends the next hedge at once,
 * a fatal one ends the call. */
#include "helpers.h"
#include "test_grpc_util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mesh/mesh.h>

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static mesh_t *client(int a, int b, const char *delay) {
  char extra[4096];
  snprintf(extra, sizeof extra,
           "\"services\": {\"echo\": {\"discovery\": {\"type\": \"static\","
           " \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d},"
           " {\"address\": \"127.0.0.1\", \"port\": %d}]},"
           " \"lb\": {\"policy\": \"round_robin\"},"
           " \"timeouts\": {\"connect_ms\": 5000, \"overall_ms\": 20000},"
           " \"grpc\": {\"methodConfig\": [{\"name\": [{\"service\":"
           " \"mesh.v1.Echo\"}], \"hedgingPolicy\": {\"maxAttempts\": 3,"
           " \"hedgingDelay\": \"%s\", \"nonFatalStatusCodes\":"
           " [\"UNAVAILABLE\"]}}]}}}",
           a, b, delay);
  mesh_t *m = NULL;
  mesh_status_t st;
  if (!tg_svid("cli") || mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
    fprintf(stderr, "\nclient config: %s\n", st.message);
  return m;
}

/* One call; its status code, attempts and duration. */
static int call(mesh_t *m, const char *xstatus, int *code, int *attempts,
                int64_t *ms) {
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  if (xstatus) {
    mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
    mesh_grpc_metadata_add(md, "x-status", xstatus, NULL);
    mesh_grpc_call_opts_set_metadata(o, md);
    mesh_grpc_metadata_free(md);
  }
  void *resp = NULL;
  size_t rl = 0;
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  int64_t t0 = now_ms();
  int rc = mesh_grpc_unary(m, "echo", "/mesh.v1.Echo/Echo", o, "hedge", 5,
                           &resp, &rl, &c, &st);
  *ms = now_ms() - t0;
  if (rc == MESH_OK && (rl != 5 || memcmp(resp, "hedge", 5)))
    rc = MESH_ERR_INTERNAL;
  *code = c ? mesh_grpc_call_status(c) : -1;
  *attempts = c ? mesh_grpc_call_attempts(c) : 0;
  if (rc != MESH_OK && rc != MESH_ERR_GRPC_STATUS)
    fprintf(stderr, "\ncall: %s: %s\n", mesh_code_name(rc), st.message);
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  mesh_grpc_call_opts_free(o);
  return rc;
}

/* Wait (bounded) until tag's events have n lines equal to line. */
static int events_reach(const char *tag, const char *line, int n) {
  int64_t end = now_ms() + 10000;
  int got;
  while ((got = tg_events(tag, line)) < n && now_ms() < end)
    usleep(20000);
  return got;
}

static void test_hedging(void) {
  static const struct {
    const char *bad_mode;  /* the backend that is not "echo" */
    const char *delay;     /* hedgingDelay */
    const char *xstatus;   /* x-status for the fast backend, or NULL */
    int code;              /* the call's status */
    int64_t max_ms;        /* each call took less (generous) */
  } rows[] = {
      /* first response wins; the slow try is cancelled */
      {"slow", "0.1s", NULL, 0, 2500},
      /* a fatal status from the fast backend ends the call */
      {"slow", "0.1s", "3", 3, 2500},
      /* non-fatal UNAVAILABLE: the next hedge goes at once, not after
       * the 10 s delay */
      {"unavailable", "10s", NULL, 0, 5000},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    int pa, pb;
    pid_t a = tg_py_server("hedge_bad", rows[r].bad_mode, &pa);
    pid_t b = tg_py_server("hedge_fast", "echo", &pb);
    CU_ASSERT_FATAL(a > 0 && b > 0);
    mesh_t *m = client(pa, pb, rows[r].delay);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* Each hedged try runs on a thread of its own, and round robin keeps
     * a cursor per thread that starts at a random turn: the first try of
     * a call goes to either backend with even odds.  So call until the bad
     * backend got a first try (at least 6 calls, at most 40: all 40 on the
     * fast one has odds 2^-40). */
    int tries = 0, calls = 0;
    for (int i = 0; i < 40; i++) {
      if (i >= 6 && tg_events("hedge_bad", "start Echo") >= 1)
        break;
      calls++;
      int code = -1, att = 0;
      int64_t ms = 0;
      int rc = call(m, rows[r].xstatus, &code, &att, &ms);
      CU_ASSERT_EQUAL(rc, rows[r].code ? MESH_ERR_GRPC_STATUS : MESH_OK);
      CU_ASSERT_EQUAL(code, rows[r].code);
      CU_ASSERT(ms < rows[r].max_ms);
      CU_ASSERT(att >= 1 && att <= 3); /* maxAttempts */
      tries += att;
      if (ms >= rows[r].max_ms || code != rows[r].code)
        fprintf(stderr, "\nrow %zu call %d: status %d after %lld ms, %d "
                "attempts\n", r, i, code, (long long)ms, att);
    }
    /* round robin sends some first tries to the bad backend; every call
     * was answered by the fast one; each try reached one backend (or was
     * cancelled before it did: a loaded machine can make a fast try slower
     * than the delay, and start one more hedge) */
    int bad = tg_events("hedge_bad", "start Echo");
    int fast = tg_events("hedge_fast", "start Echo");
    CU_ASSERT(bad >= 1);
    CU_ASSERT(fast >= calls);
    CU_ASSERT(tries >= bad + fast && tries > calls);
    if (bad < 1 || fast < calls || tries < bad + fast)
      fprintf(stderr, "\nrow %zu: %d calls, %d tries, bad backend saw %d, "
              "fast %d\n", r, calls, tries, bad, fast);
    if (!strcmp(rows[r].bad_mode, "slow")) {
      /* every slow try was cancelled, none answered */
      CU_ASSERT_EQUAL(events_reach("hedge_bad", "cancelled Echo", bad), bad);
      CU_ASSERT_EQUAL(tg_events("hedge_bad", "done Echo"), 0);
    }
    mesh_free(m);
    th_stop(a);
    th_stop(b);
  }
}

/* retryPolicy and hedgingPolicy exclude each other (A6). */
static void test_hedging_config(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  const char *both =
      "\"services\": {\"echo\": {\"discovery\": {\"type\": \"static\","
      " \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": 1}]},"
      " \"grpc\": {\"methodConfig\": [{\"name\": [{}], \"hedgingPolicy\":"
      " {\"maxAttempts\": 2}, \"retryPolicy\": {\"maxAttempts\": 2,"
      " \"initialBackoff\": \"1s\", \"maxBackoff\": \"1s\","
      " \"backoffMultiplier\": 2, \"retryableStatusCodes\": [14]}}]}}}";
  CU_ASSERT_EQUAL(mesh_new(tg_config("cli", both), &m, &st), MESH_ERR_CONFIG);
  CU_ASSERT(strstr(st.message, "exclude each other") != NULL);
  const char *bad = "\"services\": {\"echo\": {\"discovery\": {\"type\":"
                    " \"static\", \"endpoints\": [{\"address\": \"127.0.0.1\","
                    " \"port\": 1}]}, \"grpc\": {\"methodConfig\": [{\"name\":"
                    " [{}], \"hedgingPolicy\": {\"maxAttempts\": 2,"
                    " \"hedgingDelay\": \"soon\"}}]}}}";
  CU_ASSERT_EQUAL(mesh_new(tg_config("cli", bad), &m, &st), MESH_ERR_CONFIG);
  CU_ASSERT(strstr(st.message, "hedgingPolicy.hedgingDelay") != NULL);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("grpc_hedge", NULL, NULL);
  CU_add_test(s, "hedging: slow/fast, fatal, non-fatal", test_hedging);
  CU_add_test(s, "hedging config", test_hedging_config);
}

int main(void) { return th_run_suites("test_grpc_hedge", add); }
