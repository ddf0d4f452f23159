/* SPDX-License-Identifier: Apache-2.0 */
/* tls/alpn.c: a service's "alpn" (Istio presets, explicit lists) on the
 * call layer's dial path.  `openssl s_server` on loopback prints the ALPN
 * list the client advertised; each case asserts that list, in order, and
 * what was negotiated, for this build's TLS backend (the tls-openssl stage
 * runs this file again against OpenSSL).  A libmesh server selects
 * "istio-h2" and the service's connections are pooled.  Bad values are
 * config errors at services.NAME.alpn. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mesh/grpc.h>

#include "test_tls_peer.h"

#define CONTAINS(hay, needle) CU_ASSERT(tp_contains((hay), (needle)))
#define ADVERTISED "ALPN protocols advertised by the client: "

/* s_server selects the first of its list the client offers; every case
 * offers one of them (with none in common it would refuse the handshake).
 * -naccept 2 (th_wait_port's probe, then the dial): it exits after the
 * dial's connection, flushing what it printed. */
static pid_t alpn_server(int port, const char *log) {
  char acc[32], crt[300], key[300], ca[300];
  snprintf(acc, sizeof acc, "127.0.0.1:%d", port);
  snprintf(crt, sizeof crt, "%s", th_path("server.crt"));
  snprintf(key, sizeof key, "%s", th_path("server.key"));
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  const char *argv[] = {"openssl", "s_server", "-accept", acc, "-cert", crt,
                        "-key", key, "-CAfile", ca, "-Verify", "1",
                        "-verify_return_error", "-alpn", "istio,h2,http/1.1",
                        "-naccept", "2", "-rev", NULL};
  pid_t pid = th_spawn(argv, log);
  if (pid > 0 && !th_wait_port(port, 5000)) {
    th_stop(pid);
    return -1;
  }
  return pid;
}

/* Wait (bounded) until pid has exited, leaving it for th_stop to reap. */
static bool exited(pid_t pid) {
  int64_t end = th_now_ms() + TH_CAP_MS;
  while (th_now_ms() < end) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == pid)
      return true;
    usleep(5000);
  }
  th_cap_report("openssl s_server exit");
  return false;
}

/* The list s_server printed ("" if the client sent no ALPN extension), in
 * out; false if the log cannot be read. */
static bool advertised(const char *log, char *out, size_t len) {
  char *s = th_slurp(th_path(log), NULL);
  if (!s)
    return false;
  out[0] = '\0';
  char *p = strstr(s, ADVERTISED);
  if (p) {
    p += strlen(ADVERTISED);
    size_t n = strcspn(p, "\r\n");
    snprintf(out, len, "%.*s", (int)n, p);
  }
  free(s);
  return true;
}

static mesh_t *client(const char *tls, const char *svc_alpn, int port) {
  char extra[1024];
  snprintf(extra, sizeof extra,
           "%s%s\"services\":{\"s\":{%s%s%s\"discovery\":{\"type\":\"static\","
           "\"endpoints\":[{\"address\":\"127.0.0.1\",\"port\":%d}]}}}",
           tls ? tls : "", tls ? "," : "", svc_alpn ? "\"alpn\":" : "",
           svc_alpn ? svc_alpn : "", svc_alpn ? "," : "", port);
  return tp_mesh("client", TD, extra);
}

typedef struct alpn_case {
  const char *name;
  const char *tls;      /* top-level "tls" member, or NULL */
  const char *svc_alpn; /* the service's "alpn" value (JSON), or NULL */
  const char *dial;     /* mesh_dial_opts_set_alpn, or NULL */
  const char *offered;  /* as s_server prints it; "": no extension */
  const char *selected; /* mesh_conn_alpn() */
} alpn_case_t;

static const alpn_case_t alpn_cases[] = {
    {"preset istio-http/1.1", NULL, "\"istio-http/1.1\"", NULL,
     "istio-http/1.1, istio, http/1.1", "istio"},
    {"preset istio-h2", NULL, "\"istio-h2\"", NULL, "istio-h2, istio, h2",
     "istio"},
    {"preset istio", NULL, "\"istio\"", NULL, "istio", "istio"},
    {"explicit list", NULL, "[\"http/1.1\",\"h2\"]", NULL, "http/1.1, h2",
     "h2"},
    {"preset replaces tls.alpn", "\"tls\":{\"alpn\":[\"h2\"]}",
     "\"istio-h2\"", NULL, "istio-h2, istio, h2", "istio"},
    {"dial option replaces the preset", NULL, "\"istio-h2\"", "http/1.1",
     "http/1.1", "http/1.1"},
    {"default unchanged: tls.alpn", "\"tls\":{\"alpn\":[\"h2\",\"http/1.1\"]}",
     NULL, NULL, "h2, http/1.1", "h2"},
    {"default unchanged: no ALPN", NULL, NULL, NULL, "", ""},
};

static void run_alpn_case(const alpn_case_t *tc, int idx) {
  char log[64];
  snprintf(log, sizeof log, "s_server-alpn-%d.log", idx);
  int port = th_free_port();
  pid_t pid = alpn_server(port, log);
  CU_ASSERT_FATAL(pid > 0);
  mesh_t *m = client(tc->tls, tc->svc_alpn, port);
  CU_ASSERT_FATAL(m != NULL);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  CU_ASSERT_FATAL(o != NULL);
  if (tc->dial)
    CU_ASSERT_EQUAL(mesh_dial_opts_set_alpn(o, tc->dial), MESH_OK);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_dial(m, "s", o, &c, &st);
  mesh_dial_opts_free(o);
  if (rc != MESH_OK)
    fprintf(stderr, "\n  %s: dial: %s\n", tc->name, st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  if (c) {
    CU_ASSERT_STRING_EQUAL(mesh_conn_alpn(c), tc->selected);
    mesh_conn_close(c);
  }
  CU_ASSERT(exited(pid));
  th_stop(pid);
  char got[1024];
  CU_ASSERT_FATAL(advertised(log, got, sizeof got));
  if (strcmp(got, tc->offered) != 0)
    fprintf(stderr, "\n  %s: offered \"%s\", expected \"%s\"\n", tc->name,
            got, tc->offered);
  CU_ASSERT_STRING_EQUAL(got, tc->offered);
  mesh_free(m);
}

static void test_offered_lists(void) {
  if (!th_require("openssl", "openssl"))
    return;
  tp_certs();
  for (size_t i = 0; i < sizeof alpn_cases / sizeof alpn_cases[0]; i++)
    run_alpn_case(&alpn_cases[i], (int)i);
}

/* gRPC over a service with "istio-h2" offers the preset (not just "h2"):
 * s_server selects "istio", which is not HTTP/2, so the call fails with a
 * protocol error that names it. */
static void test_grpc_offer(void) {
  if (!th_require("openssl", "openssl"))
    return;
  tp_certs();
  const char *log = "s_server-alpn-grpc.log";
  int port = th_free_port();
  pid_t pid = alpn_server(port, log);
  CU_ASSERT_FATAL(pid > 0);
  mesh_t *m = client(NULL, "\"istio-h2\"", port);
  CU_ASSERT_FATAL(m != NULL);
  void *resp = NULL;
  size_t rl = 0;
  mesh_status_t st;
  int rc = mesh_grpc_unary(m, "s", "/mesh.v1.Echo/Echo", NULL, "ping", 4,
                           &resp, &rl, NULL, &st);
  CU_ASSERT_NOT_EQUAL(rc, MESH_OK);
  CONTAINS(st.message, "did not negotiate ALPN h2 (got \"istio\")");
  mesh_grpc_free(resp);
  CU_ASSERT(exited(pid));
  th_stop(pid);
  char got[1024];
  CU_ASSERT_FATAL(advertised(log, got, sizeof got));
  CU_ASSERT_STRING_EQUAL(got, "istio-h2, istio, h2");
  mesh_free(m);
}

/* A libmesh server listing "istio-h2" selects it for a client of the
 * preset; the service's connections go back to the pool (two calls, one
 * connection accepted). */
static void test_libmesh_server_and_pool(void) {
  tp_certs();
  mesh_t *sm =
      tp_mesh("server", TD, "\"tls\":{\"alpn\":[\"istio-h2\",\"h2\"]}");
  CU_ASSERT_FATAL(sm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  mesh_t *cm = client(NULL, "\"istio-h2\"", srv.port);
  CU_ASSERT_FATAL(cm != NULL);
  for (int i = 0; i < 2; i++) {
    mesh_call_t *call = NULL;
    mesh_status_t st;
    int rc = mesh_call_begin(cm, "s", NULL, &call, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "\n  call %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
    mesh_conn_t *c = mesh_call_conn(call);
    CU_ASSERT_STRING_EQUAL(mesh_conn_alpn(c), "istio-h2");
    char buf[8];
    CU_ASSERT_EQUAL(mesh_conn_write(c, "ping", 4), 4);
    CU_ASSERT_EQUAL(mesh_conn_read(c, buf, sizeof buf), 4);
    mesh_call_end(call, MESH_CALL_OK, 0);
  }
  CU_ASSERT(tp_server_wait(&srv, 1, 3000));
  tp_result_t r = tp_server_result(&srv, 0);
  CU_ASSERT_EQUAL(r.rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(r.alpn, "istio-h2");
  mesh_free(cm); /* closes the pooled connection */
  tp_server_stop(&srv);
  CU_ASSERT_EQUAL(srv.nres, 1);
  mesh_free(sm);
}

/* ---- config errors ------------------------------------------------------ */

typedef struct err_acc {
  int n;
  char first[512];
} err_acc_t;

static void on_err(const char *msg, void *user) {
  err_acc_t *a = user;
  if (a->n++ == 0)
    snprintf(a->first, sizeof a->first, "%s", msg);
}

static const struct {
  const char *value;
  const char *path, *msg;
} bad_values[] = {
    {"\"istio-h3\"", "services.s.alpn",
     "unknown ALPN preset \"istio-h3\" (expected \"istio-http/1.1\""},
    {"\"ISTIO\"", "services.s.alpn", "unknown ALPN preset \"ISTIO\""},
    {"42", "services.s.alpn", "expected a preset name"},
    {"[]", "services.s.alpn", "must list 1 to 8 protocols"},
    {"[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]",
     "services.s.alpn", "must list 1 to 8 protocols"},
    {"[\"h2\",\"\"]", "services.s.alpn[1]", "1-255 bytes"},
    {"[\"h2,http/1.1\"]", "services.s.alpn[0]", "must not contain ','"},
    {"[7]", "services.s.alpn[0]", "expected a string"},
};

static void test_config_errors(void) {
  tp_certs();
  for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
    char extra[512], cfg[4096];
    snprintf(extra, sizeof extra,
             "\"services\":{\"s\":{\"alpn\":%s,\"discovery\":{\"type\":"
             "\"static\",\"endpoints\":[{\"address\":\"127.0.0.1\","
             "\"port\":9}]}}}",
             bad_values[i].value);
    tp_config(cfg, sizeof cfg, "client", TD, extra);
    err_acc_t a = {0};
    CU_ASSERT_EQUAL(mesh_config_check(cfg, on_err, &a), 1);
    CONTAINS(a.first, bad_values[i].path);
    CONTAINS(a.first, bad_values[i].msg);
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(cfg, &m, &st), MESH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(m);
    CONTAINS(st.message, bad_values[i].path);
  }
  /* the presets and a list are accepted */
  const char *good[] = {"\"istio-http/1.1\"", "\"istio-h2\"", "\"istio\"",
                        "[\"x\"]"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    char extra[512], cfg[4096];
    snprintf(extra, sizeof extra, "\"services\":{\"s\":{\"alpn\":%s}}",
             good[i]);
    tp_config(cfg, sizeof cfg, "client", TD, extra);
    CU_ASSERT_EQUAL(mesh_config_check(cfg, NULL, NULL), 0);
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls_alpn", NULL, NULL);
  CU_add_test(s, "service alpn offered to openssl s_server",
              test_offered_lists);
  CU_add_test(s, "gRPC offers the service's istio-h2", test_grpc_offer);
  CU_add_test(s, "libmesh server selects istio-h2; pooled",
              test_libmesh_server_and_pool);
  CU_add_test(s, "service alpn config errors", test_config_errors);
}

int main(void) { return th_run_suites("test_tls_alpn", add); }
