/* SPDX-License-Identifier: Apache-2.0 */
/* Stale pooled connections (resilience/calldo.c stale_try): a try on a
 * reused keep-alive connection that the peer closed ends in EOF/reset
 * before any response byte; mesh_http_call sends an idempotent request once
 * more on a newly dialed connection, not as a retry; a POST and a generic
 * mesh_call_do try are not sent again; a peer that resets every connection
 * gets one new dial, not a loop.  The peer is a loopback mTLS server whose
 * every connection runs in its own thread and counts what it saw. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/core.h"
#include "http/http.h"
#include "resilience/resilience.h"

#define MAX_CONNS 64

/* ---- the peer ------------------------------------------------------------------ */

static struct {
  mesh_t *m;
  mesh_listener_t *l;
  pthread_t acceptor, conns[MAX_CONNS];
  atomic_int nconns;   /* connections accepted (threads started) */
  atomic_int used;     /* connections with a request read: counted before
                          the answer, so a client's count is exact */
  atomic_int closed;   /* connections the server closed */
  atomic_int requests; /* requests read */
  atomic_bool stop;
  atomic_int drops;    /* close the next N requests' connections unanswered */
  atomic_int resets;   /* reset (SO_LINGER 0) on the next N requests */
  atomic_bool close_after; /* keep-alive answer, then close the connection */
} srv;

/* Read one request head (no body is sent here).  @return true if read. */
static bool read_request(mesh_conn_t *c) {
  char buf[2048];
  size_t n = 0;
  while (n < sizeof buf - 1 && !atomic_load(&srv.stop)) {
    long r = mesh_conn_read(c, buf + n, sizeof buf - 1 - n);
    if (r == MESH_ERR_TIMEOUT)
      continue;
    if (r <= 0)
      return false;
    n += (size_t)r;
    buf[n] = '\0';
    if (strstr(buf, "\r\n\r\n"))
      return true;
  }
  return false;
}

static void *conn_main(void *arg) {
  mesh_conn_t *c = arg;
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  mesh_conn_set_timeouts(c, 100, 2000); /* reads look at srv.stop */
  for (bool first = true; read_request(c); first = false) {
    if (first)
      atomic_fetch_add(&srv.used, 1);
    atomic_fetch_add(&srv.requests, 1);
    if (atomic_load(&srv.drops) > 0) {
      atomic_fetch_sub(&srv.drops, 1);
      break;
    }
    if (atomic_load(&srv.resets) > 0) {
      atomic_fetch_sub(&srv.resets, 1);
      struct linger lg = {1, 0};
      setsockopt(mesh_conn_fd(c), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      break;
    }
    if (mesh_conn_write_all(c, ok, sizeof ok - 1) != MESH_OK ||
        atomic_load(&srv.close_after))
      break;
  }
  mesh_conn_close(c);
  atomic_fetch_add(&srv.closed, 1);
  return NULL;
}

static void *acceptor_main(void *arg) {
  (void)arg;
  while (!atomic_load(&srv.stop)) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    if (mesh_accept(srv.l, 50, &c, &st) != MESH_OK)
      continue;
    int k = atomic_load(&srv.nconns);
    if (k >= MAX_CONNS) {
      mesh_conn_close(c);
      continue;
    }
    pthread_create(&srv.conns[k], NULL, conn_main, c);
    atomic_store(&srv.nconns, k + 1);
  }
  return NULL;
}

/* ---- the fixture ---------------------------------------------------------------- */

static mesh_t *client;

static const char *identity_json(const char *name) {
  static char buf[1024];
  char crt[64], key[64];
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(buf, sizeof buf,
           "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"}",
           th_path(crt), th_path(key), th_ca("example.org"));
  return buf;
}

static int setup(void) {
  if (!th_ca("example.org") ||
      !th_svid("example.org", "spiffe://example.org/ns/shop/sa/backend",
               "backend", 0, 0, 0) ||
      !th_svid("example.org", "spiffe://example.org/ns/shop/sa/web", "web", 0,
               0, 0))
    return 1;
  char json[4096];
  mesh_status_t st;
  snprintf(json, sizeof json, "{\"log\":{\"level\":\"error\"},%s}",
           identity_json("backend"));
  if (mesh_new(json, &srv.m, &st) != MESH_OK ||
      mesh_listen(srv.m, "127.0.0.1:0", &srv.l, &st) != MESH_OK) {
    fprintf(stderr, "server: %s\n", st.message);
    return 1;
  }
  pthread_create(&srv.acceptor, NULL, acceptor_main, NULL);
  /* One service per test (own pools); pooled connections are reused
   * without the idle check for up to 1000 ms (the cap), so a peer's close
   * is found by the request, not before it. */
#define SVC(name, extra)                                                     \
  "\"" name "\":{\"discovery\":{\"type\":\"static\",\"endpoints\":[{"        \
  "\"address\":\"127.0.0.1\",\"port\":%d}]},\"pool\":{\"check_after_ms\":"  \
  "1000}" extra "}"
  int port = mesh_listener_port(srv.l);
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{"
           SVC("closed", "") "," SVC("post", "") "," SVC("drop", "") ","
           SVC("rst", "") "," SVC("generic", "") ","
           SVC("rst-retry", ",\"retry\":{\"retry_on\":[\"reset\"],"
                            "\"num_retries\":2,\"base_interval_ms\":1}")
           "}}",
           identity_json("web"), port, port, port, port, port, port);
  if (mesh_new(json, &client, &st) != MESH_OK) {
    fprintf(stderr, "client: %s\n", st.message);
    return 1;
  }
  return 0;
}

static int teardown(void) {
  mesh_free(client); /* closes pooled connections: the peer sees EOF */
  atomic_store(&srv.stop, true);
  if (srv.l) {
    pthread_join(srv.acceptor, NULL);
    for (int i = 0; i < atomic_load(&srv.nconns); i++)
      pthread_join(srv.conns[i], NULL);
    mesh_listener_close(srv.l);
  }
  mesh_free(srv.m);
  return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

static mesh__res_svc_t *rs(const char *service) {
  return mesh__service_find(client, service)->res;
}

/* One request; *status gets the response status (0 on failure). */
static int call(const char *service, const char *method, int *status) {
  mesh_http_request_t *req = mesh_http_request_new(method, "/");
  mesh_http_response_t *resp = NULL;
  mesh_status_t st;
  int rc = mesh_http_call(client, service, req, &resp, &st);
  *status = rc == MESH_OK ? mesh_http_response_status(resp) : 0;
  mesh_http_response_free(resp);
  mesh_http_request_free(req);
  return rc;
}

/* Counts before a test, compared after. */
typedef struct counts {
  int conns, requests;
  uint64_t retries, replays;
} counts_t;

static counts_t counts(const char *service) {
  return (counts_t){atomic_load(&srv.used), atomic_load(&srv.requests),
                    atomic_load(&rs(service)->retries),
                    atomic_load(&rs(service)->replays)};
}

/* Idle connections in the pool of the service's only endpoint. */
static size_t pooled(const char *service) {
  mesh__snapshot_t *s = mesh__res_snapshot(mesh__service_find(client, service));
  size_t n = s && s->n ? mesh__pool_idle(mesh__res_pool_peek(s->hosts[0])) : 0;
  mesh__snap_release(s);
  return n;
}

/* A first call that leaves one connection in the service's pool. */
static void warm(const char *service) {
  int status;
  CU_ASSERT_EQUAL_FATAL(call(service, "GET", &status), MESH_OK);
  CU_ASSERT_EQUAL(status, 200);
  CU_ASSERT_EQUAL(pooled(service), 1);
}

/* ---- tests ---------------------------------------------------------------------- */

/* The server closes a keep-alive connection right after its answer; the
 * next GET takes it from the pool and finds it closed: sent again on a new
 * connection, it succeeds, without a retry.  The pool skips its idle check
 * for 1000 ms after the park: when both calls took less than that, the
 * request itself must have found the close (one replay); else the check
 * may have (no replay); a new connection either way. */
static void test_mesh_http_call_stale_closed(void) {
  atomic_store(&srv.close_after, true);
  int closed = atomic_load(&srv.closed);
  counts_t c0 = counts("closed");
  int64_t t0 = th_now_ms();
  warm("closed");
  CU_ASSERT_TRUE(th_wait_count(&srv.closed, closed + 1, 5000, "server close"));
  int status;
  CU_ASSERT_EQUAL(call("closed", "GET", &status), MESH_OK);
  CU_ASSERT_EQUAL(status, 200);
  int64_t took = th_now_ms() - t0;
  counts_t c1 = counts("closed");
  CU_ASSERT_EQUAL(c1.conns - c0.conns, 2);
  CU_ASSERT_EQUAL(c1.requests - c0.requests, 2);
  CU_ASSERT_EQUAL(c1.retries, c0.retries);
  if (took < 1000) {
    CU_ASSERT_EQUAL(c1.replays - c0.replays, 1);
  } else {
    fprintf(stderr, "stale_closed: %lld ms, the idle check ran\n",
            (long long)took);
  }
  atomic_store(&srv.close_after, false);
}

/* The peer reads the request on the pooled connection and hangs up
 * without a word (the race of a closing peer, whatever the idle check
 * saw): a GET is sent again on a new connection and succeeds, not counted
 * as a retry. */
static void test_mesh_http_call_stale_drop(void) {
  warm("drop");
  counts_t c0 = counts("drop");
  atomic_store(&srv.drops, 1);
  int status;
  CU_ASSERT_EQUAL(call("drop", "GET", &status), MESH_OK);
  CU_ASSERT_EQUAL(status, 200);
  counts_t c1 = counts("drop");
  CU_ASSERT_EQUAL(c1.conns - c0.conns, 1);
  CU_ASSERT_EQUAL(c1.requests - c0.requests, 2);
  CU_ASSERT_EQUAL(c1.retries, c0.retries);
  CU_ASSERT_EQUAL(c1.replays - c0.replays, 1);
  CU_ASSERT_EQUAL(pooled("drop"), 1); /* the new connection, parked */
}

/* The same for a POST: the server did read it, so it is not sent again;
 * the call fails with the reset (the default policy retries connect
 * failures only). */
static void test_mesh_http_call_stale_post(void) {
  warm("post");
  counts_t c0 = counts("post");
  atomic_store(&srv.drops, 1);
  int status;
  CU_ASSERT_EQUAL(call("post", "POST", &status), MESH_ERR_RESET);
  counts_t c1 = counts("post");
  CU_ASSERT_EQUAL(c1.conns, c0.conns);
  CU_ASSERT_EQUAL(c1.requests - c0.requests, 1);
  CU_ASSERT_EQUAL(c1.retries, c0.retries);
  CU_ASSERT_EQUAL(c1.replays, c0.replays);
  CU_ASSERT_EQUAL(atomic_load(&srv.drops), 0);
}

/* A peer that resets every connection after reading the request: one
 * new dial for the stale pooled one, then the reset is the call's error. */
static void test_mesh_http_call_stale_reset(void) {
  warm("rst");
  counts_t c0 = counts("rst");
  atomic_store(&srv.resets, 100);
  int status;
  CU_ASSERT_EQUAL(call("rst", "GET", &status), MESH_ERR_RESET);
  counts_t c1 = counts("rst");
  CU_ASSERT_EQUAL(c1.conns - c0.conns, 1);
  CU_ASSERT_EQUAL(c1.requests - c0.requests, 2);
  CU_ASSERT_EQUAL(c1.retries, c0.retries);
  CU_ASSERT_EQUAL(c1.replays - c0.replays, 1);
  CU_ASSERT_EQUAL(pooled("rst"), 0);
  atomic_store(&srv.resets, 0);
}

/* With retry_on reset and 2 retries: the replay is not one of them (1
 * replay + 2 retries, each on a new connection: 3 dials, 2 retries). */
static void test_mesh_http_call_stale_reset_retries(void) {
  warm("rst-retry");
  counts_t c0 = counts("rst-retry");
  atomic_store(&srv.resets, 100);
  int status;
  CU_ASSERT_EQUAL(call("rst-retry", "GET", &status), MESH_ERR_RESET);
  counts_t c1 = counts("rst-retry");
  CU_ASSERT_EQUAL(c1.conns - c0.conns, 3);
  CU_ASSERT_EQUAL(c1.requests - c0.requests, 4);
  CU_ASSERT_EQUAL(c1.retries - c0.retries, 2);
  CU_ASSERT_EQUAL(c1.replays - c0.replays, 1);
  atomic_store(&srv.resets, 0);
}

/* mesh_call_do with the application's own try: never sent again. */
static int raw_get(mesh_call_t *call, mesh_conn_t *conn, int *status,
                   void *user) {
  (void)call;
  (void)user;
  static const char req[] = "GET / HTTP/1.1\r\nHost: generic\r\n\r\n";
  int rc = mesh_conn_write_all(conn, req, sizeof req - 1);
  if (rc != MESH_OK)
    return rc;
  char buf[256];
  size_t n = 0;
  while (n < sizeof buf - 1) {
    long r = mesh_conn_read(conn, buf + n, sizeof buf - 1 - n);
    if (r == 0)
      return MESH_CALL_RESET;
    if (r < 0)
      return (int)r;
    n += (size_t)r;
    buf[n] = '\0';
    if (strstr(buf, "\r\n\r\nok")) {
      *status = 200;
      return MESH_CALL_OK;
    }
  }
  return MESH_CALL_PROTOCOL_ERROR;
}

static void test_mesh_call_do_stale(void) {
  CU_ASSERT_EQUAL_FATAL(
      mesh_call_do(client, "generic", NULL, raw_get, NULL, NULL), MESH_OK);
  CU_ASSERT_EQUAL(pooled("generic"), 1);
  counts_t c0 = counts("generic");
  atomic_store(&srv.drops, 1);
  CU_ASSERT_EQUAL(mesh_call_do(client, "generic", NULL, raw_get, NULL, NULL),
                  MESH_ERR_RESET);
  counts_t c1 = counts("generic");
  CU_ASSERT_EQUAL(c1.conns, c0.conns);
  CU_ASSERT_EQUAL(c1.requests - c0.requests, 1);
  CU_ASSERT_EQUAL(c1.replays, c0.replays);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("http_stale", setup, teardown);
  CU_add_test(s, "mesh_http_call: stale closed", test_mesh_http_call_stale_closed);
  CU_add_test(s, "mesh_http_call: stale drop", test_mesh_http_call_stale_drop);
  CU_add_test(s, "mesh_http_call: stale POST", test_mesh_http_call_stale_post);
  CU_add_test(s, "mesh_http_call: stale reset", test_mesh_http_call_stale_reset);
  CU_add_test(s, "mesh_http_call: stale reset, retries",
              test_mesh_http_call_stale_reset_retries);
  CU_add_test(s, "mesh_call_do: stale", test_mesh_call_do_stale);
}

int main(void) { return th_run_suites("test_http_stale", add); }
