/* SPDX-License-Identifier: Apache-2.0 */
/* http/call: mesh_http_call end to end over mTLS — header and path routing,
 * a 90/10 split, retries that recover from a backend answering 503 for a
 * while, fault aborts and delays, per-request timeouts — and the library's
 * client reaching a plain HTTP backend (Python) through a mesh gateway. */
#include "helpers.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "http/http.h"
#include "telemetry/telemetry.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_CONNS 64

/* ---- mTLS backends served by mesh_http_serve ------------------------------------ */

struct backend;
typedef int (*backend_fn)(struct backend *b, const mesh_http_request_t *req,
                          mesh_http_response_t *resp);

struct backend {
  const char *name;
  mesh_t *m;
  mesh_listener_t *l;
  backend_fn fn;
  pthread_t acceptor;
  pthread_t conns[MAX_CONNS];
  atomic_int nconns;
  atomic_bool stop;
  atomic_int requests;
  atomic_int fail_first; /* answer 503 to this many requests first */
  atomic_int drop_first; /* close this many new connections unanswered */
  atomic_int dropped;
  int plain_port;        /* gateway: the plain HTTP backend */
};

struct conn_arg {
  struct backend *b;
  mesh_conn_t *c;
};

static int backend_handler(const mesh_http_request_t *req,
                           mesh_http_response_t *resp, void *user) {
  struct backend *b = user;
  atomic_fetch_add(&b->requests, 1);
  if (b->fn)
    return b->fn(b, req, resp);
  if (strcmp(mesh_http_request_target(req), "/sleep") == 0) {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
  }
  if (strcmp(mesh_http_request_target(req), "/trace") == 0) {
    const char *tp = mesh_http_request_header(req, "traceparent");
    return mesh_http_response_set_body(resp, tp ? tp : "-",
                                       strlen(tp ? tp : "-"));
  }
  if (atomic_load(&b->fail_first) > 0) {
    atomic_fetch_sub(&b->fail_first, 1);
    mesh_http_response_set_status(resp, 503);
    return mesh_http_response_set_body(resp, "busy", 4);
  }
  return mesh_http_response_set_body(resp, b->name, strlen(b->name));
}

static void *conn_main(void *arg) {
  struct conn_arg *a = arg;
  mesh_status_t st;
  if (atomic_load(&a->b->drop_first) > 0) {
    /* read the request, then hang up without a word: a reset */
    atomic_fetch_sub(&a->b->drop_first, 1);
    char buf[512];
    mesh_conn_set_timeouts(a->c, 2000, 2000);
    mesh_conn_read(a->c, buf, sizeof buf);
    atomic_fetch_add(&a->b->dropped, 1);
    mesh_conn_close(a->c);
    free(a);
    return NULL;
  }
  mesh_http_serve(a->b->m, a->c, backend_handler, a->b, &st);
  mesh_conn_close(a->c);
  free(a);
  return NULL;
}

static void *acceptor_main(void *arg) {
  struct backend *b = arg;
  for (int i = 0; i < 100000 && !atomic_load(&b->stop); i++) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    if (mesh_accept(b->l, 50, &c, &st) != MESH_OK)
      continue;
    int k = atomic_load(&b->nconns);
    struct conn_arg *a = malloc(sizeof *a);
    if (k >= MAX_CONNS || !a) {
      free(a);
      mesh_conn_close(c);
      continue;
    }
    a->b = b;
    a->c = c;
    pthread_create(&b->conns[k], NULL, conn_main, a);
    atomic_store(&b->nconns, k + 1);
  }
  return NULL;
}

static mesh_t *server_mesh;

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

static int backend_start(struct backend *b, const char *name, backend_fn fn) {
  memset(b, 0, sizeof *b);
  b->name = name;
  b->m = server_mesh;
  b->fn = fn;
  mesh_status_t st;
  if (mesh_listen(b->m, "127.0.0.1:0", &b->l, &st) != MESH_OK) {
    fprintf(stderr, "listen: %s\n", st.message);
    return 1;
  }
  pthread_create(&b->acceptor, NULL, acceptor_main, b);
  return 0;
}

/* After every client is gone (their pooled connections closed). */
static void backend_stop(struct backend *b) {
  atomic_store(&b->stop, true);
  pthread_join(b->acceptor, NULL);
  for (int i = 0; i < atomic_load(&b->nconns); i++)
    pthread_join(b->conns[i], NULL);
  mesh_listener_close(b->l);
}

/* ---- the plain backend and the gateway to it --------------------------------- */

static const char plain_py[] =
    "import sys\n"
    "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
    "class H(BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def do_GET(self):\n"
    "        if self.path == '/chunked':\n"
    "            self.send_response(200)\n"
    "            self.send_header('Transfer-Encoding', 'chunked')\n"
    "            self.end_headers()\n"
    "            for part in (b'chunked ', b'from ', b'python'):\n"
    "                self.wfile.write(b'%x\\r\\n%s\\r\\n' % (len(part), part))\n"
    "            self.wfile.write(b'0\\r\\n\\r\\n')\n"
    "            return\n"
    "        body = ('hello from python: ' + self.path + ' x-from=' +\n"
    "                str(self.headers.get('x-from'))).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "ThreadingHTTPServer.daemon_threads = True\n"
    "ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* The gateway: a mesh service whose handler forwards to the plain backend
 * with the library's client over a plain TCP socket. */
static int gateway(struct backend *b, const mesh_http_request_t *in,
                   mesh_http_response_t *resp) {
  int fd = tcp_connect(b->plain_port);
  if (fd < 0)
    return -1;
  mesh_http_request_t *out = mesh_http_request_new(
      mesh_http_request_method(in), mesh_http_request_target(in));
  mesh_http_request_add_header(out, "X-From", mesh_http_request_peer_id(in));
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &fd);
  mesh_http_response_t *r = NULL;
  bool reuse;
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  int rc = mesh__http_exchange_io(&io, "backend", out, NULL, 0, &lim,
                                  mesh__now_ms() + 5000, &r, &reuse, NULL);
  close(fd);
  mesh_http_request_free(out);
  if (rc != MESH_OK)
    return -1;
  size_t len;
  const void *body = mesh_http_response_body(r, &len);
  mesh_http_response_set_status(resp, mesh_http_response_status(r));
  mesh_http_response_set_body(resp, body, len);
  mesh_http_response_free(r);
  return 0;
}

/* ---- the fixture -------------------------------------------------------------- */

static struct backend ba, bb, bflaky, bgw, brst, bbad;
static mesh_t *client;
static pid_t py;

static int setup(void) {
  if (!th_ca("example.org") ||
      !th_svid("example.org", "spiffe://example.org/ns/shop/sa/backend",
               "backend", 0, 0, 0) ||
      !th_svid("example.org", "spiffe://example.org/ns/shop/sa/web", "web", 0,
               0, 0))
    return 1;
  char json[8192];
  mesh_status_t st;
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"http\":{\"idle_timeout_ms\":"
           "10000}}",
           identity_json("backend"));
  if (mesh_new(json, &server_mesh, &st) != MESH_OK) {
    fprintf(stderr, "server mesh: %s\n", st.message);
    return 1;
  }
  if (backend_start(&ba, "a", NULL) || backend_start(&bb, "b", NULL) ||
      backend_start(&bflaky, "flaky", NULL) ||
      backend_start(&bgw, "gw", gateway) || backend_start(&brst, "rst", NULL) ||
      backend_start(&bbad, "bad", NULL))
    return 1;
  atomic_store(&bbad.fail_first, 1000000);
  bgw.plain_port = th_free_port();
  const char *script = th_path("plain.py");
  th_write(script, plain_py);
  char port[16];
  snprintf(port, sizeof port, "%d", bgw.plain_port);
  const char *argv[] = {"python3", script, port, NULL};
  py = th_spawn(argv, "plain_py.log");
  if (py <= 0 || !th_wait_port(bgw.plain_port, 5000))
    return 1;
#define SVC(name, b, extra)                                                  \
  "\"" name "\":{\"discovery\":{\"type\":\"static\",\"endpoints\":[{"        \
  "\"address\":\"127.0.0.1\",\"port\":%d}]}" extra "}"
  snprintf(
      json, sizeof json,
      "{\"log\":{\"level\":\"error\"},%s,\"services\":{" SVC("a", ba, "") ","
      SVC("b", bb, "") ","
      SVC("flaky", bflaky, ",\"retry\":{\"retry_on\":[\"5xx\"],"
                           "\"num_retries\":3,\"base_interval_ms\":5}") ","
      SVC("gw", bgw, "") ","
      "\"ab\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
      "{\"address\":\"127.0.0.1\",\"port\":%d,\"labels\":{\"version\":\"v1\"}},"
      "{\"address\":\"127.0.0.1\",\"port\":%d,\"labels\":{\"version\":\"v2\"}}]},"
      "\"subsets\":{\"v1\":{\"version\":\"v1\"},\"v2\":{\"version\":\"v2\"}}},"
      SVC("rst", brst, ",\"retry\":{\"retry_on\":[\"reset\"],"
                       "\"num_retries\":3,\"base_interval_ms\":5}") ","
      "\"od\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
      "{\"address\":\"127.0.0.1\",\"port\":%d},"
      "{\"address\":\"127.0.0.1\",\"port\":%d}]},"
      "\"outlier_detection\":{\"consecutive_5xx\":3,"
      "\"max_ejection_percent\":50}}},"
      "\"http\":{\"routes\":["
      "{\"name\":\"to-v2\",\"hosts\":[\"ab\"],\"match\":{\"headers\":[{"
      "\"name\":\"x-version\",\"exact\":\"v2\"}]},\"service\":\"ab\","
      "\"subset\":\"v2\"},"
      "{\"name\":\"to-v1\",\"hosts\":[\"ab\"],\"service\":\"ab\","
      "\"subset\":\"v1\"},"
      "{\"name\":\"canary\",\"hosts\":[\"a\"],\"match\":{\"headers\":[{"
      "\"name\":\"x-canary\",\"exact\":\"1\"}]},\"service\":\"b\"},"
      "{\"name\":\"to-b\",\"hosts\":[\"a\"],\"match\":{\"path\":{\"prefix\":"
      "\"/b/\"}},\"service\":\"b\"},"
      "{\"name\":\"split\",\"hosts\":[\"shop\"],\"split\":[{\"service\":\"a\","
      "\"weight\":90},{\"service\":\"b\",\"weight\":10}]},"
      "{\"name\":\"abort\",\"hosts\":[\"a\"],\"match\":{\"path\":{\"exact\":"
      "\"/fault\"}},\"service\":\"a\",\"fault\":{\"abort\":{\"http_status\":"
      "503,\"percentage\":100}}},"
      "{\"name\":\"delay\",\"hosts\":[\"a\"],\"match\":{\"path\":{\"exact\":"
      "\"/slow\"}},\"service\":\"a\",\"fault\":{\"delay\":{"
      "\"fixed_delay_ms\":150}}},"
      "{\"name\":\"too-slow\",\"hosts\":[\"a\"],\"match\":{\"path\":{"
      "\"exact\":\"/too-slow\"}},\"service\":\"a\",\"timeout_ms\":50,"
      "\"fault\":{\"delay\":{\"fixed_delay_ms\":2000}}}"
      "]}}",
      identity_json("web"), mesh_listener_port(ba.l), mesh_listener_port(bb.l),
      mesh_listener_port(bflaky.l), mesh_listener_port(bgw.l),
      mesh_listener_port(ba.l), mesh_listener_port(bb.l),
      mesh_listener_port(brst.l), mesh_listener_port(bbad.l),
      mesh_listener_port(ba.l));
  if (mesh_new(json, &client, &st) != MESH_OK) {
    fprintf(stderr, "client mesh: %s\n", st.message);
    return 1;
  }
  return 0;
}

static int teardown(void) {
  mesh_free(client); /* closes pooled connections: backends see EOF */
  struct backend *all[] = {&ba, &bb, &bflaky, &bgw, &brst, &bbad};
  for (size_t i = 0; i < N(all); i++)
    if (all[i]->l)
      backend_stop(all[i]);
  mesh_free(server_mesh);
  if (py > 0)
    th_stop(py);
  return 0;
}

/* GET service+path with optional header; returns the status, body in buf. */
static int get(const char *service, const char *path, const char *hn,
               const char *hv, char *buf, size_t len, int *rc_out) {
  mesh_http_request_t *req = mesh_http_request_new("GET", path);
  if (hn)
    mesh_http_request_add_header(req, hn, hv);
  mesh_http_response_t *resp = NULL;
  mesh_status_t st;
  int rc = mesh_http_call(client, service, req, &resp, &st);
  if (rc_out)
    *rc_out = rc;
  int status = 0;
  if (buf)
    buf[0] = '\0';
  if (rc == MESH_OK) {
    status = mesh_http_response_status(resp);
    if (buf)
      snprintf(buf, len, "%s", (const char *)mesh_http_response_body(resp, NULL));
  } else if (!rc_out) {
    fprintf(stderr, "mesh_http_call %s%s: %s\n", service, path, st.message);
  }
  mesh_http_response_free(resp);
  mesh_http_request_free(req);
  return status;
}

static void test_mesh_http_call_routing(void) {
  char body[256];
  CU_ASSERT_EQUAL(get("a", "/x", NULL, NULL, body, sizeof body, NULL), 200);
  CU_ASSERT_STRING_EQUAL(body, "a");
  CU_ASSERT_EQUAL(get("a", "/x", "X-Canary", "1", body, sizeof body, NULL),
                  200);
  CU_ASSERT_STRING_EQUAL(body, "b");
  CU_ASSERT_EQUAL(get("a", "/x", "X-Canary", "0", body, sizeof body, NULL),
                  200);
  CU_ASSERT_STRING_EQUAL(body, "a");
  CU_ASSERT_EQUAL(get("a", "/b/item", NULL, NULL, body, sizeof body, NULL),
                  200);
  CU_ASSERT_STRING_EQUAL(body, "b");
  CU_ASSERT_EQUAL(get("a", "/bx", NULL, NULL, body, sizeof body, NULL), 200);
  CU_ASSERT_STRING_EQUAL(body, "a");
  /* routes scoped to "a" do not apply to calls to "b" */
  CU_ASSERT_EQUAL(get("b", "/fault", NULL, NULL, body, sizeof body, NULL),
                  200);
  CU_ASSERT_STRING_EQUAL(body, "b");
  int rc;
  get("nowhere", "/", NULL, NULL, NULL, 0, &rc);
  CU_ASSERT_EQUAL(rc, MESH_ERR_UNKNOWN_SERVICE);
}

/* A route to a named subset reaches only that subset's hosts. */
static void test_mesh_http_call_subset(void) {
  char body[256];
  for (int i = 0; i < 10; i++) {
    CU_ASSERT_EQUAL(get("ab", "/x", "x-version", "v2", body, sizeof body, NULL),
                    200);
    CU_ASSERT_STRING_EQUAL(body, "b");
    CU_ASSERT_EQUAL(get("ab", "/x", NULL, NULL, body, sizeof body, NULL), 200);
    CU_ASSERT_STRING_EQUAL(body, "a");
  }
  /* the call layer itself: an unknown subset is a clear error */
  mesh_call_opts_t *o = mesh_call_opts_new();
  CU_ASSERT_EQUAL(mesh_call_opts_set_subset(o, "v3"), MESH_OK);
  mesh_call_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_call_begin(client, "ab", o, &c, &st),
                  MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "no subset \"v3\""));
  CU_ASSERT_EQUAL(mesh_call_opts_set_subset(NULL, "v1"), MESH_ERR_INVALID_ARG);
  mesh_call_opts_free(o);
}

/* A route decision that names a cluster gone by the time of the pick (a
 * table replaced twice meanwhile, as xds can do under load) is decided
 * once more from the table in force; a decision that still names it
 * fails with the call layer's error.  The hook plays the xds router: its
 * first answer names subset v3 (no host), later ones v2. */
static atomic_int xroute_calls;
static atomic_int xroute_stale; /* answers naming v3 still to give */
static int stale_xroute(mesh_t *m, const char *service,
                        const mesh__xroute_in_t *in, mesh__xroute_t *out,
                        mesh_status_t *st) {
  if (strcmp(service, "ab") != 0)
    return 1;
  atomic_fetch_add(&xroute_calls, 1);
  memset(out, 0, sizeof *out);
  out->abort_grpc = -1;
  bool stale = atomic_fetch_sub(&xroute_stale, 1) > 0;
  snprintf(out->subset, sizeof out->subset, "%s", stale ? "v3" : "v2");
  snprintf(out->route, sizeof out->route, "stale-test");
  return MESH_OK;
}

static void test_mesh_http_call_stale_route(void) {
  char body[256];
  int rc = 0;
  mesh__http_set_xroute(client, stale_xroute);
  atomic_store(&xroute_calls, 0);
  atomic_store(&xroute_stale, 1);
  CU_ASSERT_EQUAL(get("ab", "/x", NULL, NULL, body, sizeof body, &rc), 200);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(body, "b");
  CU_ASSERT_EQUAL(atomic_load(&xroute_calls), 2);
  /* both decisions name the missing cluster: the call fails, once more
   * decided and no further */
  atomic_store(&xroute_calls, 0);
  atomic_store(&xroute_stale, 2);
  CU_ASSERT_EQUAL(get("ab", "/x", NULL, NULL, body, sizeof body, &rc), 0);
  CU_ASSERT_EQUAL(rc, MESH_ERR_NOT_FOUND);
  CU_ASSERT_EQUAL(atomic_load(&xroute_calls), 2);
  mesh__http_set_xroute(client, NULL);
  CU_ASSERT_EQUAL(get("ab", "/x", NULL, NULL, body, sizeof body, NULL), 200);
  CU_ASSERT_STRING_EQUAL(body, "a");
}

/* 90/10 by weight: with n = 2000 calls, b's share has mean 200 and standard
 * deviation sqrt(2000 * 0.1 * 0.9) = 13.4; accept within 4.5 sd. */
static void test_mesh_http_call_split(void) {
  int n = 2000, nb = 0, other = 0;
  char body[64];
  for (int i = 0; i < n; i++) {
    int st = get("shop", "/", NULL, NULL, body, sizeof body, NULL);
    if (st == 200 && strcmp(body, "b") == 0)
      nb++;
    else if (!(st == 200 && strcmp(body, "a") == 0))
      other++;
  }
  double sd = sqrt(n * 0.1 * 0.9);
  fprintf(stderr, "split: %d of %d to b (expected %.0f +- %.1f)\n", nb, n,
          n * 0.1, sd);
  CU_ASSERT_EQUAL(other, 0);
  CU_ASSERT(fabs(nb - n * 0.1) < 4.5 * sd);
}

static void test_mesh_http_call_retries(void) {
  char body[64];
  /* 503 twice, then fine: the third try answers (retry_on 5xx, 3 retries) */
  atomic_store(&bflaky.requests, 0);
  atomic_store(&bflaky.fail_first, 2);
  CU_ASSERT_EQUAL(get("flaky", "/", NULL, NULL, body, sizeof body, NULL), 200);
  CU_ASSERT_STRING_EQUAL(body, "flaky");
  CU_ASSERT_EQUAL(atomic_load(&bflaky.requests), 3);
  /* 503 for longer than the policy allows: the last 503 is the answer */
  atomic_store(&bflaky.requests, 0);
  atomic_store(&bflaky.fail_first, 10);
  CU_ASSERT_EQUAL(get("flaky", "/", NULL, NULL, body, sizeof body, NULL), 503);
  CU_ASSERT_STRING_EQUAL(body, "busy");
  CU_ASSERT_EQUAL(atomic_load(&bflaky.requests), 4);
  atomic_store(&bflaky.fail_first, 0);
  /* without a 5xx retry policy a 503 is not retried */
  atomic_store(&ba.requests, 0);
  atomic_store(&ba.fail_first, 1);
  CU_ASSERT_EQUAL(get("a", "/", NULL, NULL, body, sizeof body, NULL), 503);
  CU_ASSERT_EQUAL(atomic_load(&ba.requests), 1);
}

/* A backend that hangs up twice before answering: the resets are retried
 * (retry_on reset) on new connections and the third try answers. */
static void test_mesh_http_call_reset_retry(void) {
  char body[64];
  atomic_store(&brst.drop_first, 2);
  CU_ASSERT_EQUAL(get("rst", "/", NULL, NULL, body, sizeof body, NULL), 200);
  CU_ASSERT_STRING_EQUAL(body, "rst");
  CU_ASSERT_EQUAL(atomic_load(&brst.dropped), 2);
  CU_ASSERT_EQUAL(atomic_load(&brst.requests), 1);
}

/* A per-request timeout shorter than the backend's answer. */
static void test_mesh_http_call_timeout(void) {
  mesh_http_request_t *req = mesh_http_request_new("GET", "/sleep");
  mesh_http_request_set_timeout(req, 100);
  mesh_http_response_t *resp = NULL;
  mesh_status_t st;
  int64_t t0 = mesh__now_ms();
  int rc = mesh_http_call(client, "a", req, &resp, &st);
  int64_t el = mesh__now_ms() - t0;
  CU_ASSERT(rc == MESH_ERR_TIMEOUT || rc == MESH_ERR_DEADLINE);
  CU_ASSERT_PTR_NULL(resp);
  CU_ASSERT(el >= 90 && el < 900); /* not the backend's 1 s */
  mesh_http_request_free(req);
}

/* Statuses reach outlier detection: an endpoint answering 503 is ejected
 * after 3 in a row and the service keeps answering from the other. */
static void test_mesh_http_call_outlier(void) {
  char body[64];
  int bad = 0;
  for (int i = 0; i < 12; i++)
    bad += get("od", "/", NULL, NULL, body, sizeof body, NULL) == 503;
  CU_ASSERT(bad >= 3);
  int before = atomic_load(&bbad.requests);
  for (int i = 0; i < 20; i++) {
    CU_ASSERT_EQUAL(get("od", "/", NULL, NULL, body, sizeof body, NULL), 200);
    CU_ASSERT_STRING_EQUAL(body, "a");
  }
  CU_ASSERT_EQUAL(atomic_load(&bbad.requests), before);
}

static void test_mesh_http_call_faults(void) {
  char body[64];
  int before = atomic_load(&ba.requests);
  for (int i = 0; i < 5; i++) {
    CU_ASSERT_EQUAL(get("a", "/fault", NULL, NULL, body, sizeof body, NULL),
                    503);
    CU_ASSERT_STRING_EQUAL(body, "fault filter abort");
  }
  /* an aborted request never reaches the backend */
  CU_ASSERT_EQUAL(atomic_load(&ba.requests), before);
  CU_ASSERT_EQUAL(atomic_load(&client->http->faults_aborted), 5);
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(get("a", "/slow", NULL, NULL, body, sizeof body, NULL), 200);
  CU_ASSERT(mesh__now_ms() - t0 >= 150);
  CU_ASSERT_EQUAL(atomic_load(&ba.requests), before + 1);
  /* a delay longer than the route's timeout ends the request at the timeout */
  int rc;
  t0 = mesh__now_ms();
  get("a", "/too-slow", NULL, NULL, NULL, 0, &rc);
  int64_t el = mesh__now_ms() - t0;
  CU_ASSERT_EQUAL(rc, MESH_ERR_DEADLINE);
  CU_ASSERT(el >= 50 && el < 1500); /* not the 2 s delay */
}

static void test_mesh_http_call_plain_backend(void) {
  char body[256];
  CU_ASSERT_EQUAL(get("gw", "/hello", NULL, NULL, body, sizeof body, NULL),
                  200);
  CU_ASSERT_STRING_EQUAL(body, "hello from python: /hello x-from="
                               "spiffe://example.org/ns/shop/sa/web");
  CU_ASSERT_EQUAL(get("gw", "/chunked", NULL, NULL, body, sizeof body, NULL),
                  200);
  CU_ASSERT_STRING_EQUAL(body, "chunked from python");
}

static void test_mesh_http_call_keepalive(void) {
  /* sequential calls reuse pooled connections: far fewer connections than
   * requests reach the backend */
  int before = atomic_load(&bb.nconns), reqs = atomic_load(&bb.requests);
  char body[16];
  for (int i = 0; i < 50; i++)
    CU_ASSERT_EQUAL(get("b", "/", NULL, NULL, body, sizeof body, NULL), 200);
  CU_ASSERT_EQUAL(atomic_load(&bb.requests), reqs + 50);
  CU_ASSERT(atomic_load(&bb.nconns) - before <= 1);
}

/* The trace continues through the call: the backend sees the caller's
 * trace id with a new parent (our CLIENT span, then its SERVER span). */
static void test_mesh_http_call_trace(void) {
  static const char app[] =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  char body[256];
  CU_ASSERT_EQUAL(get("a", "/trace", "traceparent", app, body, sizeof body,
                      NULL),
                  200);
  CU_ASSERT_EQUAL(strlen(body), strlen(app));
  CU_ASSERT_EQUAL(strncmp(body, app, 36), 0); /* version and trace id */
  CU_ASSERT_NOT_EQUAL(strncmp(body + 36, app + 36, 16), 0);
  /* without one, a new trace starts and is still propagated */
  CU_ASSERT_EQUAL(get("a", "/trace", NULL, NULL, body, sizeof body, NULL),
                  200);
  CU_ASSERT_EQUAL(strlen(body), strlen(app));
  CU_ASSERT_NOT_EQUAL(strncmp(body, app, 36), 0);
}

/* Outcomes are counted per service and status on both sides. */
static void test_mesh_http_call_metrics(void) {
  char *text = NULL;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(mesh__metrics_render(client, &text, &len), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_http_requests_total{service="
                                      "\"a\",code=\"503\"} 6"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_http_requests_total{service="
                                      "\"flaky\",code=\"200\"} 1"));
  free(text);
  CU_ASSERT_EQUAL_FATAL(mesh__metrics_render(server_mesh, &text, &len),
                        MESH_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_http_requests_total{service="
                                      "\"inbound\",code=\"200\"}"));
  free(text);
}

/* The authz request of a real connection: peer ID, namespace, address. */
static void test_mesh_authz_request_set_conn(void) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", mesh_listener_port(bb.l));
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(client, target, NULL, &c, &st), MESH_OK);
  mesh_authz_request_t *r = mesh_authz_request_new();
  CU_ASSERT_EQUAL(mesh_authz_request_set_conn(r, c), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_principal(r),
                         "spiffe://example.org/ns/shop/sa/backend");
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_namespace(r), "shop");
  char ip[64];
  mesh_authz_request_source_ip(r, ip, sizeof ip);
  CU_ASSERT_STRING_EQUAL(ip, "127.0.0.1");
  CU_ASSERT(mesh_authz_request_port(r) > 0);
  CU_ASSERT_EQUAL(mesh_authz_request_set_conn(r, NULL), MESH_ERR_INVALID_ARG);
  mesh_authz_request_free(r);
  /* and one HTTP exchange over the held connection */
  mesh_http_request_t *req = mesh_http_request_new("GET", "/");
  mesh_http_response_t *resp = NULL;
  int ka = 0;
  CU_ASSERT_EQUAL(mesh_http_exchange(c, "b", req, &resp, &ka, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_http_response_status(resp), 200);
  CU_ASSERT_STRING_EQUAL(mesh_http_response_body(resp, NULL), "b");
  CU_ASSERT_EQUAL(ka, 1);
  mesh_http_response_free(resp);
  mesh_http_request_free(req);
  mesh_conn_close(c);
}

static void test_mesh_http_call_args(void) {
  mesh_http_request_t *req = mesh_http_request_new("GET", "/");
  mesh_http_response_t *resp = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_http_call(NULL, "a", req, &resp, &st),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_call(client, NULL, req, &resp, &st),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_call(client, "a", NULL, &resp, &st),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_call(client, "a", req, NULL, &st),
                  MESH_ERR_INVALID_ARG);
  mesh_http_request_free(req);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("http_call", setup, teardown);
  CU_add_test(s, "mesh_http_call_routing", test_mesh_http_call_routing);
  CU_add_test(s, "mesh_http_call_split", test_mesh_http_call_split);
  CU_add_test(s, "mesh_http_call_subset", test_mesh_http_call_subset);
  CU_add_test(s, "mesh_http_call_stale_route",
              test_mesh_http_call_stale_route);
  CU_add_test(s, "mesh_http_call_retries", test_mesh_http_call_retries);
  CU_add_test(s, "mesh_http_call_reset_retry",
              test_mesh_http_call_reset_retry);
  CU_add_test(s, "mesh_http_call_timeout", test_mesh_http_call_timeout);
  CU_add_test(s, "mesh_http_call_outlier", test_mesh_http_call_outlier);
  CU_add_test(s, "mesh_http_call_faults", test_mesh_http_call_faults);
  CU_add_test(s, "mesh_http_call_plain_backend",
              test_mesh_http_call_plain_backend);
  CU_add_test(s, "mesh_http_call_keepalive", test_mesh_http_call_keepalive);
  CU_add_test(s, "mesh_http_call_trace", test_mesh_http_call_trace);
  CU_add_test(s, "mesh_http_call_metrics", test_mesh_http_call_metrics);
  CU_add_test(s, "mesh_authz_request_set_conn",
              test_mesh_authz_request_set_conn);
  CU_add_test(s, "mesh_http_call_args", test_mesh_http_call_args);
}

int main(void) { return th_run_suites("test_http_call", add); }
