/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC calls to a configured service under failures, with real backends
 * on loopback: a python3-grpcio backend that answers UNAVAILABLE, one
 * killed in the middle of a call, one that sends GOAWAY (graceful stop)
 * in the middle of a call -- each next to a healthy one: every call must
 * succeed (retried per the retryPolicy, the bad host ejected by outlier
 * detection).  Also: pushback, the retry switch, authorization on
 * /pkg.Service/Method, and the rpc.* span attributes. */
#include "helpers.h"
#include "test_grpc_util.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mesh/mesh.h>

#define RETRY_POLICY                                                        \
  "\"grpc\": {\"methodConfig\": [{\"name\": [{\"service\": \"mesh.v1.Echo\"}]," \
  " \"retryPolicy\": {\"maxAttempts\": 3, \"initialBackoff\": \"0.01s\","    \
  " \"maxBackoff\": \"0.05s\", \"backoffMultiplier\": 2,"                     \
  " \"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A client context with service "echo" over ports a and b (b 0: none). */
static mesh_t *client(int a, int b, const char *more) {
  char eps[256], extra[4096];
  int n = snprintf(eps, sizeof eps,
                   "{\"address\": \"127.0.0.1\", \"port\": %d}", a);
  if (b)
    snprintf(eps + n, sizeof eps - (size_t)n,
             ", {\"address\": \"127.0.0.1\", \"port\": %d}", b);
  snprintf(extra, sizeof extra,
           "\"services\": {\"echo\": {\"discovery\": {\"type\": \"static\","
           " \"endpoints\": [%s]}, \"lb\": {\"policy\": \"round_robin\"},"
           " \"outlier_detection\": {\"consecutive_5xx\": 2,"
           " \"interval_ms\": 60000, \"base_ejection_time_ms\": 60000,"
           " \"max_ejection_percent\": 50},"
           " \"timeouts\": {\"connect_ms\": 2000, \"overall_ms\": 20000},"
           " %s%s}}",
           eps, RETRY_POLICY, more ? more : "");
  mesh_t *m = NULL;
  mesh_status_t st;
  if (!tg_svid("cli") || mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
    fprintf(stderr, "\nclient config: %s\n%s\n", st.message, extra);
  return m;
}

static int call_echo(mesh_t *m, mesh_grpc_metadata_t *md, int *attempts,
                     int *code) {
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_call_opts_set_metadata(o, md);
  void *resp = NULL;
  size_t rl;
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_grpc_unary(m, "echo", "/mesh.v1.Echo/Echo", o, "ping", 4,
                           &resp, &rl, &c, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "\necho: %s: %s\n", mesh_code_name(rc), st.message);
  if (rc == MESH_OK && (rl != 4 || memcmp(resp, "ping", 4)))
    rc = MESH_ERR_INTERNAL;
  if (attempts)
    *attempts = mesh_grpc_call_attempts(c);
  if (code)
    *code = c ? mesh_grpc_call_status(c) : -1;
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  mesh_grpc_call_opts_free(o);
  return rc;
}

/* ---- a backend answering UNAVAILABLE -------------------------------------------- */

static void test_unavailable_backend(void) {
  int pa, pb;
  pid_t a = tg_py_server("bad", "unavailable", &pa);
  pid_t b = tg_py_server("good", "echo", &pb);
  CU_ASSERT_FATAL(a > 0 && b > 0);
  mesh_t *m = client(pa, pb, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int ok = 0, retried = 0;
  for (int i = 0; i < 20; i++) {
    int att = 0;
    ok += call_echo(m, NULL, &att, NULL) == MESH_OK;
    retried += att > 1;
  }
  CU_ASSERT_EQUAL(ok, 20);
  CU_ASSERT(retried >= 1);
  /* two UNAVAILABLE (503) in a row eject it: it sees no more calls */
  int seen = tg_events("bad", "start Echo");
  CU_ASSERT(seen >= 2 && seen <= 3);
  CU_ASSERT(tg_events("good", "start Echo") >= 20);
  mesh_free(m);
  th_stop(a);
  th_stop(b);
}

/* ---- a backend killed, or stopping with GOAWAY, in the middle of a call ------------ */

typedef struct run {
  mesh_t *m;
  int n, ok;
  const char *sleep_ms;
} run_t;

static void *caller(void *p) {
  run_t *r = p;
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  mesh_grpc_metadata_add(md, "x-sleep-ms", r->sleep_ms, NULL);
  for (int i = 0; i < r->n; i++)
    r->ok += call_echo(r->m, md, NULL, NULL) == MESH_OK;
  mesh_grpc_metadata_free(md);
  return NULL;
}

/* Calls of sleep_ms each in a thread; when backend "a" has one in flight,
 * hit it with sig.  Every call must succeed. */
static void mid_call(int sig, const char *tag) {
  int pa, pb;
  pid_t a = tg_py_server(tag, "echo", &pa);
  pid_t b = tg_py_server("healthy", "echo", &pb);
  CU_ASSERT_FATAL(a > 0 && b > 0);
  mesh_t *m = client(pa, pb, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  run_t r = {m, 8, 0, "300"};
  pthread_t t;
  CU_ASSERT_FATAL(pthread_create(&t, NULL, caller, &r) == 0);
  int64_t end = now_ms() + 20000;
  while (tg_events(tag, "start Echo") == 0 && now_ms() < end)
    usleep(5000);
  CU_ASSERT(tg_events(tag, "start Echo") == 1);
  if (sig == SIGKILL)
    th_kill(a);
  else
    kill(a, sig);
  pthread_join(t, NULL);
  CU_ASSERT_EQUAL(r.ok, r.n);
  if (sig != SIGKILL) /* graceful: the call in flight finished there */
    CU_ASSERT_EQUAL(tg_events(tag, "done Echo"), 1);
  mesh_free(m);
  th_stop(a);
  th_stop(b);
}

static void test_backend_killed_mid_call(void) { mid_call(SIGKILL, "killed"); }
static void test_backend_goaway_mid_call(void) { mid_call(SIGUSR1, "goaway"); }

/* ---- pushback and the retry switch ------------------------------------------------ */

static void test_pushback(void) {
  tg_server_t s;
  CU_ASSERT_FATAL(tg_server_start(&s, NULL));
  mesh_t *m = client(s.port, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  static const struct {
    const char *pushback;
    int attempts;
    int64_t min_ms;
  } cases[] = {
      {NULL, 3, 0},   /* retryable: maxAttempts */
      {"-1", 1, 0},   /* the server says: do not retry */
      {"junk", 1, 0}, /* unparseable is "do not retry" too */
      {"200", 3, 400}, /* wait what the server asks, twice */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
    mesh_grpc_metadata_add(md, "x-status", "14", NULL);
    if (cases[i].pushback)
      mesh_grpc_metadata_add(md, "x-pushback", cases[i].pushback, NULL);
    int att = 0, code = -1;
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(call_echo(m, md, &att, &code), MESH_ERR_GRPC_STATUS);
    CU_ASSERT_EQUAL(code, MESH_GRPC_UNAVAILABLE);
    CU_ASSERT_EQUAL(att, cases[i].attempts);
    CU_ASSERT(now_ms() - t0 >= cases[i].min_ms);
    mesh_grpc_metadata_free(md);
  }
  /* a non-retryable status is not retried */
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  mesh_grpc_metadata_add(md, "x-status", "13", NULL);
  int att = 0, code = -1;
  CU_ASSERT_EQUAL(call_echo(m, md, &att, &code), MESH_ERR_GRPC_STATUS);
  CU_ASSERT(code == MESH_GRPC_INTERNAL && att == 1);
  /* retries off for this call */
  mesh_grpc_metadata_add(md, "x-status", "14", NULL);
  mesh_grpc_metadata_free(md);
  md = mesh_grpc_metadata_new();
  mesh_grpc_metadata_add(md, "x-status", "14", NULL);
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_call_opts_set_metadata(o, md);
  CU_ASSERT_EQUAL(mesh_grpc_call_opts_set_retry(o, 2), MESH_ERR_INVALID_ARG);
  mesh_grpc_call_opts_set_retry(o, 0);
  void *resp;
  size_t rl;
  mesh_grpc_call_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_grpc_unary(m, "echo", "/mesh.v1.Echo/Echo", o, "x", 1,
                                  &resp, &rl, &c, NULL),
                  MESH_ERR_GRPC_STATUS);
  CU_ASSERT_EQUAL(mesh_grpc_call_attempts(c), 1);
  mesh_grpc_call_free(c);
  mesh_grpc_call_opts_free(o);
  mesh_grpc_metadata_free(md);
  mesh_free(m);
  tg_server_stop(&s);
}

/* ---- authorization on /pkg.Service/Method ------------------------------------------- */

static void test_authz_method_paths(void) {
  tg_server_t s;
  CU_ASSERT_FATAL(tg_server_start(
      &s, "\"authz\": {\"policies\": [{\"name\": \"echo-only\","
          " \"action\": \"ALLOW\", \"rules\": [{\"from\": [{\"source\":"
          " {\"principals\": [\"example.org/ns/default/sa/cli\"]}}],"
          " \"to\": [{\"operation\": {\"methods\": [\"POST\"],"
          " \"paths\": [\"/mesh.v1.Echo/Echo\"]}}]}]}]}"));
  mesh_t *m = client(s.port, 0, NULL);
  mesh_t *other = NULL;
  CU_ASSERT_FATAL(tg_svid("other"));
  CU_ASSERT_EQUAL(mesh_new(tg_config("other", NULL), &other, NULL), MESH_OK);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", s.port);
  static const struct {
    int who; /* 0 cli, 1 other */
    const char *method;
    int code;
  } cases[] = {
      {0, "/mesh.v1.Echo/Echo", MESH_GRPC_OK},
      {0, "/mesh.v1.Echo/Collect", MESH_GRPC_PERMISSION_DENIED},
      {0, "/mesh.v1.Echo/Nope", MESH_GRPC_PERMISSION_DENIED},
      /* no policy can match this principal: refused at the handshake,
       * as the engine does for every connection (Istio's TCP view) */
      {1, "/mesh.v1.Echo/Echo", -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *resp = NULL;
    size_t rl;
    mesh_grpc_call_t *c = NULL;
    int rc = mesh_grpc_unary(cases[i].who ? other : m, target,
                             cases[i].method, NULL, "x", 1, &resp, &rl, &c,
                             NULL);
    /* Refused at the handshake.  In TLS 1.2 the client's dial fails; in
     * TLS 1.3 (OpenSSL backend) the client's handshake is over before the
     * server checks its certificate, so the refusal arrives as the alert
     * on the first read: a transport failure, which gRPC reports as
     * UNAVAILABLE.  Either way the call is not served. */
    bool refused_13 = cases[i].code < 0 && c &&
                      mesh_grpc_call_status(c) == MESH_GRPC_UNAVAILABLE;
    CU_ASSERT(cases[i].code >= 0 || refused_13 ||
              (rc != MESH_OK && rc != MESH_ERR_GRPC_STATUS && !c));
    CU_ASSERT(cases[i].code >= 0 || rc != MESH_OK);
    if (mesh_grpc_call_status(c) != cases[i].code && !refused_13)
      fprintf(stderr, "\nauthz case %zu: status %d (%s)\n", i,
              mesh_grpc_call_status(c), mesh_grpc_call_status_message(c));
    if (!refused_13)
      CU_ASSERT_EQUAL(mesh_grpc_call_status(c), cases[i].code);
    if (cases[i].code == MESH_GRPC_PERMISSION_DENIED)
      CU_ASSERT_STRING_EQUAL(mesh_grpc_call_status_message(c),
                             "RBAC: access denied");
    mesh_grpc_free(resp);
    mesh_grpc_call_free(c);
  }
  uint64_t denied = 0;
  CU_ASSERT_EQUAL(mesh_authz_counter(s.m, "deny", &denied), MESH_OK);
  CU_ASSERT(denied >= 3); /* two calls, one connection */
  mesh_free(other);
  mesh_free(m);
  tg_server_stop(&s);
}

/* ---- spans ---------------------------------------------------------------------------- */

static char span_attrs[4][128];
static _Atomic int spans_seen;

static void on_end(const mesh_span_t *sp, void *user) {
  (void)user;
  if (strcmp(mesh_span_name(sp), "mesh.call"))
    return;
  static const char *const keys[] = {"rpc.system", "rpc.service",
                                     "rpc.method", "rpc.grpc.status_code"};
  for (int i = 0; i < 4; i++)
    if (mesh_span_attr_text(sp, keys[i], span_attrs[i], 128) < 0)
      span_attrs[i][0] = '\0';
  atomic_fetch_add(&spans_seen, 1);
}

static void test_spans(void) {
  tg_server_t s;
  CU_ASSERT_FATAL(tg_server_start(&s, NULL));
  mesh_t *m = client(s.port, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(mesh_set_span_hooks(m, NULL, on_end, NULL), MESH_OK);
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  mesh_grpc_metadata_add(md, "x-status", "5", NULL);
  call_echo(m, md, NULL, NULL);
  mesh_grpc_metadata_free(md);
  CU_ASSERT(atomic_load(&spans_seen) >= 1);
  CU_ASSERT_STRING_EQUAL(span_attrs[0], "grpc");
  CU_ASSERT_STRING_EQUAL(span_attrs[1], "mesh.v1.Echo");
  CU_ASSERT_STRING_EQUAL(span_attrs[2], "Echo");
  CU_ASSERT_STRING_EQUAL(span_attrs[3], "5");
  mesh_free(m);
  tg_server_stop(&s);
}

/* A service with the Istio preset "istio-h2": gRPC offers that list
 * (tests/test_tls_alpn.c checks the offer against openssl s_server); a
 * server listing only "h2" selects it and the call works. */
static void test_istio_preset(void) {
  tg_server_t s;
  CU_ASSERT_FATAL(tg_server_start(&s, NULL));
  mesh_t *m = client(s.port, 0, ", \"alpn\": \"istio-h2\"");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int code = -1;
  CU_ASSERT_EQUAL(call_echo(m, NULL, NULL, &code), MESH_OK);
  CU_ASSERT_EQUAL(code, 0);
  mesh_free(m);
  tg_server_stop(&s);
}

/* ---- message limits of the method config --------------------------------------- */

static void test_message_limits(void) {
  tg_server_t s;
  CU_ASSERT_FATAL(tg_server_start(&s, NULL));
  char extra[1024];
  snprintf(extra, sizeof extra,
           "\"services\": {\"lim\": {\"discovery\": {\"type\": \"static\","
           " \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]},"
           " \"grpc\": {\"methodConfig\": [{\"name\": [{}],"
           " \"maxRequestMessageBytes\": 4, \"maxResponseMessageBytes\": 3}]}}}",
           s.port);
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new(tg_config("cli", extra), &m, NULL), MESH_OK);
  int before = atomic_load(&s.calls);
  static const struct {
    const char *req;
    int code;
  } cases[] = {
      {"12345", MESH_GRPC_RESOURCE_EXHAUSTED}, /* request over 4: not sent */
      {"1234", MESH_GRPC_RESOURCE_EXHAUSTED},  /* response over 3 */
      {"123", MESH_GRPC_OK},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *resp = NULL;
    size_t rl;
    mesh_grpc_call_t *c = NULL;
    int64_t t0 = now_ms();
    mesh_grpc_unary(m, "lim", "/mesh.v1.Echo/Echo", NULL, cases[i].req,
                    strlen(cases[i].req), &resp, &rl, &c, NULL);
    CU_ASSERT_EQUAL(mesh_grpc_call_status(c), cases[i].code);
    CU_ASSERT_EQUAL(mesh_grpc_call_attempts(c), 1);
    CU_ASSERT(now_ms() - t0 < 5000);
    mesh_grpc_free(resp);
    mesh_grpc_call_free(c);
  }
  /* the last two ran a handler (the first may, if its HEADERS won the race
   * with the RST_STREAM, but it never got a message) */
  CU_ASSERT(atomic_load(&s.calls) - before >= 2);
  mesh_free(m);
  tg_server_stop(&s);
}

/* ---- config errors ---------------------------------------------------------------------- */

static void test_grpc_config_errors(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  const char *bad = "\"services\": {\"echo\": {\"discovery\": {\"type\":"
                    " \"static\", \"endpoints\": [{\"address\": \"127.0.0.1\","
                    " \"port\": 1}]}, \"grpc\": {\"methodConfig\": [{\"name\":"
                    " [{}], \"retryPolicy\": {\"maxAttempts\": 1}}]}}}";
  CU_ASSERT_EQUAL(mesh_new(tg_config("cli", bad), &m, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT(strstr(st.message, "services.echo.grpc.methodConfig[0]."
                               "retryPolicy") != NULL);
  /* hedging is executed (test_grpc_hedge): a valid policy loads */
  const char *hedge = "\"services\": {\"echo\": {\"discovery\": {\"type\":"
                      " \"static\", \"endpoints\": [{\"address\":"
                      " \"127.0.0.1\", \"port\": 1}]}, \"grpc\":"
                      " {\"methodConfig\": [{\"name\": [{}], \"hedgingPolicy\":"
                      " {\"maxAttempts\": 2}}]}}}";
  CU_ASSERT_EQUAL(mesh_new(tg_config("cli", hedge), &m, &st), MESH_OK);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("grpc_resilience", NULL, NULL);
  CU_add_test(s, "unavailable backend: retried, ejected",
              test_unavailable_backend);
  CU_add_test(s, "backend killed mid-call", test_backend_killed_mid_call);
  CU_add_test(s, "backend GOAWAY mid-call", test_backend_goaway_mid_call);
  CU_add_test(s, "pushback and retry switch", test_pushback);
  CU_add_test(s, "authz on /pkg.Service/Method", test_authz_method_paths);
  CU_add_test(s, "rpc.* span attributes", test_spans);
  CU_add_test(s, "method message limits", test_message_limits);
  CU_add_test(s, "service alpn istio-h2", test_istio_preset);
  CU_add_test(s, "grpc config errors", test_grpc_config_errors);
}

int main(void) { return th_run_suites("test_grpc_resilience", add); }
