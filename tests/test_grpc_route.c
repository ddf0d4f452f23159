/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC calls routed by a control plane (libmesh/grpc/route.c), against
 * two python3-grpcio peers on loopback: service "ab" has subsets v1 (peer
 * a) and v2 (peer b), and a router hook plays the xds router.
 *
 * A route decision that names a cluster gone by the time of the pick (a
 * table replaced twice meanwhile, as xds can do under load) is decided
 * once more from the table in force and the call goes there, unary and
 * streaming alike; the fault of the new decision is not applied (faults
 * are decided once).  A decision still naming the missing cluster fails
 * with the call layer's error, decided once more and no further. */
#include "helpers.h"
#include "test_grpc_util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "http/http.h"

static pid_t pa, pb;
static mesh_t *m;

static atomic_int xroute_calls;
static atomic_int xroute_stale;  /* answers naming v3 still to give */
static atomic_int xroute_abort;  /* abort_grpc of the later answers (-1 none) */

/* First answers name subset v3 (no host), later ones v2. */
static int stale_xroute(mesh_t *mm, const char *service,
                        const mesh__xroute_in_t *in, mesh__xroute_t *out,
                        mesh_status_t *st) {
  (void)mm;
  (void)in;
  (void)st;
  if (strcmp(service, "ab") != 0)
    return 1;
  atomic_fetch_add(&xroute_calls, 1);
  memset(out, 0, sizeof *out);
  bool stale = atomic_fetch_sub(&xroute_stale, 1) > 0;
  out->abort_grpc = stale ? -1 : atomic_load(&xroute_abort);
  snprintf(out->subset, sizeof out->subset, "%s", stale ? "v3" : "v2");
  snprintf(out->route, sizeof out->route, "stale-test");
  return MESH_OK;
}

static void arm(int stale, int abort_code) {
  atomic_store(&xroute_calls, 0);
  atomic_store(&xroute_stale, stale);
  atomic_store(&xroute_abort, abort_code);
}

static int setup(void) {
  int a, b;
  pa = tg_py_server("route_a", "echo", &a);
  pb = tg_py_server("route_b", "echo", &b);
  if (pa <= 0 || pb <= 0 || !tg_svid("cli"))
    return 1;
  char extra[1024];
  snprintf(extra, sizeof extra,
           "\"services\": {\"ab\": {\"discovery\": {\"type\": \"static\","
           " \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d,"
           " \"labels\": {\"version\": \"v1\"}}, {\"address\": \"127.0.0.1\","
           " \"port\": %d, \"labels\": {\"version\": \"v2\"}}]},"
           " \"subsets\": {\"v1\": {\"version\": \"v1\"}, \"v2\":"
           " {\"version\": \"v2\"}},"
           " \"timeouts\": {\"connect_ms\": 5000, \"overall_ms\": 20000}}}",
           a, b);
  mesh_status_t st;
  if (mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK) {
    fprintf(stderr, "\nmesh_new: %s\n", st.message);
    return 1;
  }
  mesh__http_set_xroute(m, stale_xroute);
  return 0;
}

static int teardown(void) {
  mesh_free(m);
  th_stop(pa);
  th_stop(pb);
  return 0;
}

/* One unary Echo to "ab": the return code, the status (-1 no call) and
 * the message. */
static int unary(int *code, char *msg, size_t cap) {
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_call_opts_set_timeout(o, 20000);
  void *resp = NULL;
  size_t rl = 0;
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_grpc_unary(m, "ab", "/mesh.v1.Echo/Echo", o, "ping", 4, &resp,
                           &rl, &c, &st);
  *code = c ? mesh_grpc_call_status(c) : -1;
  snprintf(msg, cap, "%s", st.message);
  if (rc == MESH_OK && (rl != 4 || memcmp(resp, "ping", 4)))
    rc = MESH_ERR_INTERNAL;
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  mesh_grpc_call_opts_free(o);
  return rc;
}

static void test_unary_stale_route(void) {
  int code;
  char msg[512];
  int a0 = tg_events("route_a", "start Echo");
  int b0 = tg_events("route_b", "start Echo");
  arm(1, -1);
  CU_ASSERT_EQUAL(unary(&code, msg, sizeof msg), MESH_OK);
  CU_ASSERT_EQUAL(code, 0);
  CU_ASSERT_EQUAL(atomic_load(&xroute_calls), 2);
  CU_ASSERT_EQUAL(tg_events("route_a", "start Echo"), a0);
  CU_ASSERT_EQUAL(tg_events("route_b", "start Echo"), b0 + 1);
  /* the new decision's fault is not applied: decided once, with the first */
  arm(1, 7);
  CU_ASSERT_EQUAL(unary(&code, msg, sizeof msg), MESH_OK);
  CU_ASSERT_EQUAL(code, 0);
  CU_ASSERT_EQUAL(atomic_load(&xroute_calls), 2);
  CU_ASSERT_EQUAL(tg_events("route_b", "start Echo"), b0 + 2);
  /* ... while a first decision's abort is (the hook is honoured) */
  arm(0, 7);
  CU_ASSERT_EQUAL(unary(&code, msg, sizeof msg), MESH_ERR_GRPC_STATUS);
  CU_ASSERT_EQUAL(code, 7);
  /* stale twice: the call layer's error, decided once more and no further */
  arm(2, -1);
  CU_ASSERT_EQUAL(unary(&code, msg, sizeof msg), MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no subset \"v3\""));
  CU_ASSERT_EQUAL(atomic_load(&xroute_calls), 2);
  CU_ASSERT_EQUAL(tg_events("route_a", "start Echo"), a0);
  CU_ASSERT_EQUAL(tg_events("route_b", "start Echo"), b0 + 2);
}

/* A bidi Stream call: two messages back, status OK. */
static int stream(char *msg, size_t cap) {
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_call_opts_set_timeout(o, 20000);
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_grpc_call_start(m, "ab", "/mesh.v1.Echo/Stream", o, &c, &st);
  mesh_grpc_call_opts_free(o);
  snprintf(msg, cap, "%s", st.message);
  if (rc != MESH_OK)
    return rc;
  static const char *const want[] = {"one", "two"};
  for (size_t i = 0; i < 2 && rc == MESH_OK; i++) {
    void *r = NULL;
    size_t rl = 0;
    rc = mesh_grpc_call_send(c, want[i], strlen(want[i]), &st);
    if (rc == MESH_OK && (mesh_grpc_call_recv(c, &r, &rl, &st) != 1 ||
                          rl != strlen(want[i]) || memcmp(r, want[i], rl)))
      rc = MESH_ERR_INTERNAL;
    mesh_grpc_free(r);
  }
  if (rc == MESH_OK)
    rc = mesh_grpc_call_close_send(c, &st);
  int fin = mesh_grpc_call_finish(c, &st);
  mesh_grpc_call_free(c);
  return rc == MESH_OK ? fin : rc;
}

static void test_stream_stale_route(void) {
  char msg[512];
  int a0 = tg_events("route_a", "start Stream");
  int b0 = tg_events("route_b", "start Stream");
  arm(1, -1);
  CU_ASSERT_EQUAL(stream(msg, sizeof msg), MESH_OK);
  CU_ASSERT_EQUAL(atomic_load(&xroute_calls), 2);
  CU_ASSERT_EQUAL(tg_events("route_a", "start Stream"), a0);
  CU_ASSERT_EQUAL(tg_events("route_b", "start Stream"), b0 + 1);
  arm(1, 7); /* no fault decided again */
  CU_ASSERT_EQUAL(stream(msg, sizeof msg), MESH_OK);
  CU_ASSERT_EQUAL(tg_events("route_b", "start Stream"), b0 + 2);
  arm(2, -1);
  CU_ASSERT_EQUAL(stream(msg, sizeof msg), MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no subset \"v3\""));
  CU_ASSERT_EQUAL(atomic_load(&xroute_calls), 2);
  CU_ASSERT_EQUAL(tg_events("route_a", "start Stream"), a0);
  CU_ASSERT_EQUAL(tg_events("route_b", "start Stream"), b0 + 2);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("grpc_route", setup, teardown);
  CU_add_test(s, "unary: stale route decided once more", test_unary_stale_route);
  CU_add_test(s, "stream: stale route decided once more",
              test_stream_stale_route);
}

int main(void) { return th_run_suites("test_grpc_route", add); }
