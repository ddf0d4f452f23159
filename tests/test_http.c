/* SPDX-License-Identifier: Apache-2.0 */
/* http: the serving loop and the client exchange (over socket pairs, byte
 * for byte), per-request authorization, routes and faults (pure), the
 * "http" config, and curl as a client of mesh_http_serve() over mTLS. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "http/http.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a handler ----------------------------------------------------------------- */

static atomic_int calls;

/* Echo "METHOD TARGET peer=ID body=BODY"; /status/NNN answers NNN;
 * /fail makes the library answer 500. */
static int echo(const mesh_http_request_t *req, mesh_http_response_t *resp,
                void *user) {
  (void)user;
  atomic_fetch_add(&calls, 1);
  const char *t = mesh_http_request_target(req);
  if (strcmp(t, "/fail") == 0)
    return -1;
  if (strncmp(t, "/status/", 8) == 0)
    mesh_http_response_set_status(resp, atoi(t + 8));
  size_t blen;
  const char *body = mesh_http_request_body(req, &blen);
  char out[8192];
  int n = snprintf(out, sizeof out, "%s %s peer=%s body=%.*s",
                   mesh_http_request_method(req), t,
                   mesh_http_request_peer_id(req), (int)blen, body);
  if (n < 0 || (size_t)n >= sizeof out)
    n = (int)sizeof out - 1;
  mesh_http_response_add_header(resp, "X-Body-Len", blen ? "some" : "none");
  mesh_http_response_set_body(resp, out, (size_t)n);
  return 0;
}

/* ---- the server on one end of a socket pair ------------------------------------ */

struct srv {
  pthread_t t;
  int fd;
  mesh_t *m;
  mesh__http_peer_t peer;
  int rc;
  mesh_status_t st;
};

static void *srv_main(void *arg) {
  struct srv *s = arg;
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &s->fd);
  s->rc = mesh__http_serve_io(s->m, &io, &s->peer, echo, NULL, &s->st);
  close(s->fd);
  return NULL;
}

/* Start a server; returns the client's end. */
static int srv_start(struct srv *s, mesh_t *m, const char *peer_id) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  memset(s, 0, sizeof *s);
  s->fd = sv[1];
  s->m = m;
  s->peer.peer_id = peer_id ? peer_id : "";
  s->peer.local_port = 8080;
  pthread_create(&s->t, NULL, srv_main, s);
  return sv[0];
}

/* Everything the server sends until it closes (bounded: 5 s). */
static char *read_all(int fd, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  int64_t deadline = mesh__now_ms() + 5000;
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &fd);
  for (;;) {
    if (n == cap)
      break;
    long r = io.read(io.ctx, buf + n, cap - n, deadline);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

static int count_str(const char *h, const char *needle) {
  int n = 0;
  for (const char *p = strstr(h, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

struct raw_case {
  const char *req;
  const char *want;     /* substring of the reply */
  int responses;        /* "HTTP/1.1 " status lines expected */
  int handler_calls;
  int want_rc;          /* what mesh__http_serve_io returns */
};

#define H "Host: x\r\n"

static const struct raw_case raw_cases[] = {
  {"GET /a HTTP/1.1\r\n" H "\r\n", "HTTP/1.1 200 OK", 1, 1, MESH_OK},
  {"GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\n" H "\r\n",
   "GET /b peer=spiffe://td/ns/a/sa/x", 2, 2, MESH_OK},
  {"POST /p HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
   "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
   "body=hello world", 1, 1, MESH_OK},
  {"POST /p HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabcGET /n HTTP/1.1\r\n"
   H "\r\n",
   "GET /n", 2, 2, MESH_OK},
  {"HEAD /a HTTP/1.1\r\n" H "\r\n", "Content-Length: 40\r\n\r\n", 1, 1,
   MESH_OK},
  {"GET /a HTTP/1.0\r\n\r\n", "Connection: close", 1, 1, MESH_OK},
  {"GET /fail HTTP/1.1\r\n" H "\r\n", "HTTP/1.1 500 Internal Server Error", 1,
   1, MESH_OK},
  {"GET /status/404 HTTP/1.1\r\n" H "\r\n", "HTTP/1.1 404 Not Found", 1, 1,
   MESH_OK},
  {"GET /status/204 HTTP/1.1\r\n" H "\r\n", "HTTP/1.1 204 No Content", 1, 1,
   MESH_OK},
  {"GET /status/101 HTTP/1.1\r\n" H "\r\n", "HTTP/1.1 500", 1, 1, MESH_OK},
  {"POST /e HTTP/1.1\r\n" H "Content-Length: 5\r\nExpect: 100-continue\r\n"
   "\r\nhello",
   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 2, 1, MESH_OK},
  /* smuggling attempts: 400, connection closed, nothing reaches the
   * handler (not even the request hidden in the body) */
  {"POST / HTTP/1.1\r\n" H "Content-Length: 6\r\nTransfer-Encoding: "
   "chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" H "\r\n",
   "HTTP/1.1 400 Bad Request", 1, 0, MESH_ERR_HTTP_PARSE},
  {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding:"
   " identity\r\n\r\n0\r\n\r\n",
   "Connection: close", 1, 0, MESH_ERR_HTTP_PARSE},
  {"GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", "HTTP/1.1 400", 1, 0,
   MESH_ERR_HTTP_PARSE},
  {"GET / HTTP/1.1\n" H "\n", "HTTP/1.1 400", 1, 0, MESH_ERR_HTTP_PARSE},
  {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n"
   "0\r\n\r\n",
   "HTTP/1.1 400", 1, 0, MESH_ERR_HTTP_PARSE},
  {"POST / HTTP/1.1\r\n" H "Content-Length: 2000000\r\n\r\n",
   "HTTP/1.1 413", 1, 0, MESH_ERR_HTTP_TOO_LARGE},
  {"GET /%zz HTTP/1.1\r\n" H "\r\n", "HTTP/1.1 400", 1, 0,
   MESH_ERR_HTTP_PARSE},
  /* a keep-alive peer that goes away between requests: clean end */
  {"", "", 0, 0, MESH_OK},
  /* ... or in the middle of one */
  {"GET / HTTP/1.1\r\nHo", "", 0, 0, MESH_ERR_PEER_CLOSED},
};

static void test_mesh__http_serve_io_raw(void) {
  for (size_t i = 0; i < N(raw_cases); i++) {
    const struct raw_case *tc = &raw_cases[i];
    atomic_store(&calls, 0);
    struct srv s;
    int fd = srv_start(&s, NULL, "spiffe://td/ns/a/sa/x");
    size_t n = strlen(tc->req);
    CU_ASSERT_EQUAL((size_t)write(fd, tc->req, n), n);
    shutdown(fd, SHUT_WR);
    char *out = read_all(fd, NULL);
    pthread_join(s.t, NULL);
    close(fd);
    int resp = count_str(out, "HTTP/1.1 ");
    if (!strstr(out, tc->want) || resp != tc->responses ||
        atomic_load(&calls) != tc->handler_calls || s.rc != tc->want_rc)
      fprintf(stderr, "raw case %zu: rc=%d calls=%d out=%s\n", i, s.rc,
              atomic_load(&calls), out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, tc->want));
    CU_ASSERT_EQUAL(resp, tc->responses);
    CU_ASSERT_EQUAL(atomic_load(&calls), tc->handler_calls);
    CU_ASSERT_EQUAL(s.rc, tc->want_rc);
    free(out);
  }
}

static void test_mesh__http_serve_io_limits(void) {
  /* 101 fields: 431 */
  char req[8192];
  size_t off = (size_t)snprintf(req, sizeof req, "GET / HTTP/1.1\r\n" H);
  for (int i = 0; i < 100; i++)
    off += (size_t)snprintf(req + off, sizeof req - off, "X-%d: v\r\n", i);
  off += (size_t)snprintf(req + off, sizeof req - off, "\r\n");
  struct srv s;
  int fd = srv_start(&s, NULL, NULL);
  CU_ASSERT_EQUAL((size_t)write(fd, req, off), off);
  char *out = read_all(fd, NULL);
  pthread_join(s.t, NULL);
  close(fd);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 431"));
  CU_ASSERT_EQUAL(s.rc, MESH_ERR_HTTP_TOO_LARGE);
  free(out);
  /* a configured lower body limit: 413 for a chunked body over it */
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"http\":{\"max_body_bytes\":4}}", &m, NULL), MESH_OK);
  fd = srv_start(&s, m, NULL);
  const char *big = "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n";
  CU_ASSERT_EQUAL((size_t)write(fd, big, strlen(big)), strlen(big));
  out = read_all(fd, NULL);
  pthread_join(s.t, NULL);
  close(fd);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 413"));
  free(out);
  mesh_free(m);
}

/* The client over a socket pair: two requests on one connection (keep-alive),
 * a body, and a response the client must parse strictly. */
static void test_mesh__http_exchange_io(void) {
  struct srv s;
  int fd = srv_start(&s, NULL, "spiffe://td/ns/a/sa/x");
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &fd);
  mesh_http_request_t *req = mesh_http_request_new("POST", "/x?y=1");
  CU_ASSERT_PTR_NOT_NULL_FATAL(req);
  CU_ASSERT_EQUAL(mesh_http_request_set_body(req, "data", 4), MESH_OK);
  CU_ASSERT_EQUAL(mesh_http_request_add_header(req, "X-A", "1"), MESH_OK);
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  for (int i = 0; i < 2; i++) {
    mesh_http_response_t *resp = NULL;
    bool reuse = false;
    mesh_status_t st;
    int rc = mesh__http_exchange_io(&io, "svc", req, NULL, 0, &lim,
                                    mesh__now_ms() + 5000, &resp, &reuse, &st);
    CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
    CU_ASSERT(reuse);
    CU_ASSERT_EQUAL(mesh_http_response_status(resp), 200);
    size_t blen;
    const char *b = mesh_http_response_body(resp, &blen);
    CU_ASSERT_STRING_EQUAL(b, "POST /x?y=1 peer=spiffe://td/ns/a/sa/x "
                              "body=data");
    CU_ASSERT_STRING_EQUAL(mesh_http_response_header(resp, "x-body-len"),
                           "some");
    CU_ASSERT_PTR_NOT_NULL(mesh_http_response_header(resp, "Date"));
    mesh_http_response_free(resp);
  }
  mesh_http_request_free(req);
  shutdown(fd, SHUT_WR);
  pthread_join(s.t, NULL);
  CU_ASSERT_EQUAL(s.rc, MESH_OK);
  close(fd);
}

/* Canned responses from a fake upstream, checked by the client. */
struct resp_case {
  const char *bytes;
  int want_rc;
  int status;
  const char *body;
  bool reusable;
};

static const struct resp_case resp_cases[] = {
  {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", MESH_OK, 200, "hi", 1},
  {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0"
   "\r\n\r\n",
   MESH_OK, 201, "", 1},
  {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
   "2\r\nde\r\n0\r\n\r\n",
   MESH_OK, 200, "abcde", 1},
  {"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n"
   "Connection: close\r\n\r\nbusy",
   MESH_OK, 503, "busy", 0},
  {"HTTP/1.0 200 OK\r\n\r\nuntil close", MESH_OK, 200, "until close", 0},
  {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA", MESH_OK, 200, "hi",
   0},
  {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n"
   "\r\n0\r\n\r\n",
   MESH_ERR_HTTP_PARSE, 0, NULL, 0},
  {"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", MESH_ERR_PEER_CLOSED,
   0, NULL, 0},
  {"", MESH_ERR_PEER_CLOSED, 0, NULL, 0},
  {"HTTP/1.1 200 OK\nContent-Length: 0\n\n", MESH_ERR_HTTP_PARSE, 0, NULL, 0},
  {"HTTP/1.1 101 Switching Protocols\r\n\r\n", MESH_ERR_HTTP_PARSE, 0, NULL,
   0},
};

static void test_mesh__http_exchange_io_responses(void) {
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  for (size_t i = 0; i < N(resp_cases); i++) {
    const struct resp_case *tc = &resp_cases[i];
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* the "server" answered before the request: fine for a socket pair */
    size_t n = strlen(tc->bytes);
    CU_ASSERT_EQUAL((size_t)write(sv[1], tc->bytes, n), n);
    shutdown(sv[1], SHUT_WR);
    mesh__http_io_t io;
    mesh__http_io_fd(&io, &sv[0]);
    mesh_http_request_t *req = mesh_http_request_new("GET", "/");
    mesh_http_response_t *resp = NULL;
    bool reuse = true;
    mesh_status_t st = {0};
    int rc = mesh__http_exchange_io(&io, "h", req, NULL, 0, &lim,
                                    mesh__now_ms() + 2000, &resp, &reuse, &st);
    if (rc != tc->want_rc)
      fprintf(stderr, "resp case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want_rc);
    CU_ASSERT_EQUAL(resp != NULL, rc == MESH_OK);
    if (resp) {
      CU_ASSERT_EQUAL(mesh_http_response_status(resp), tc->status);
      CU_ASSERT_STRING_EQUAL(mesh_http_response_body(resp, NULL), tc->body);
      CU_ASSERT_EQUAL(reuse, tc->reusable);
    }
    /* what the client sent */
    shutdown(sv[0], SHUT_WR);
    char *sent = read_all(sv[1], NULL);
    CU_ASSERT_STRING_EQUAL(sent, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    free(sent);
    mesh_http_response_free(resp);
    mesh_http_request_free(req);
    close(sv[0]);
    close(sv[1]);
  }
}

static void test_mesh_http_request_new(void) {
  CU_ASSERT_PTR_NULL(mesh_http_request_new("GE T", "/"));
  CU_ASSERT_PTR_NULL(mesh_http_request_new("GET", "no-slash"));
  CU_ASSERT_PTR_NULL(mesh_http_request_new("GET", "/a b"));
  CU_ASSERT_PTR_NULL(mesh_http_request_new("GET", "/a\r\nX: y"));
  CU_ASSERT_PTR_NULL(mesh_http_request_new(NULL, "/"));
  mesh_http_request_t *r = mesh_http_request_new("GET", "/");
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "X-A", "v\r\nEvil: 1"),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "Bad Name", "v"),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "Content-Length", "5"),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "transfer-encoding", "x"),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "X-Ok", "v"), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_http_request_header(r, "x-ok"), "v");
  CU_ASSERT_EQUAL(mesh_http_request_header_count(r), 1);
  CU_ASSERT_EQUAL(mesh_http_request_header_at(r, 1, NULL, NULL),
                  MESH_ERR_NOT_FOUND);
  CU_ASSERT_EQUAL(mesh_http_request_set_timeout(r, -1), MESH_ERR_INVALID_ARG);
  mesh_http_request_free(r);
  mesh_http_request_free(NULL);
  mesh_http_response_t *resp = mesh_http_response_new();
  CU_ASSERT_EQUAL(mesh_http_response_set_status(resp, 99),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_response_set_status(resp, 600),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_http_response_add_header(resp, "Connection", "close"),
                  MESH_ERR_INVALID_ARG);
  mesh_http_response_free(resp);
  mesh_http_response_free(NULL);
}

/* ---- authorization per request ------------------------------------------------- */

static void test_mesh__http_serve_io_authz(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"log\":{\"level\":\"error\"},\"authz\":{\"policies\":["
               "{\"name\":\"no-admin\",\"action\":\"DENY\",\"rules\":[{\"to\":"
               "[{\"operation\":{\"paths\":[\"/admin*\"]}}]}]},"
               "{\"name\":\"ns-a\",\"rules\":[{\"from\":[{\"source\":{"
               "\"namespaces\":[\"a\"]}}]}]}]}}",
               &m, &st),
      MESH_OK);
  struct {
    const char *peer, *req, *want;
    int calls;
  } cases[] = {
    {"spiffe://td/ns/a/sa/x", "GET /ok HTTP/1.1\r\n" H "\r\n", " 200 OK", 1},
    {"spiffe://td/ns/a/sa/x", "GET /admin/users HTTP/1.1\r\n" H "\r\n",
     "403 Forbidden", 0},
    /* normalization: the same path spelled differently is still denied */
    {"spiffe://td/ns/a/sa/x", "GET //admin HTTP/1.1\r\n" H "\r\n", "403", 0},
    {"spiffe://td/ns/a/sa/x", "GET /x/../%61dmin HTTP/1.1\r\n" H "\r\n",
     "RBAC: access denied", 0},
    {"spiffe://td/ns/b/sa/x", "GET /ok HTTP/1.1\r\n" H "\r\n", "403", 0},
    {"", "GET /ok HTTP/1.1\r\n" H "\r\n", "403", 0},
    /* a denied request on a kept-alive connection does not end it */
    {"spiffe://td/ns/a/sa/x",
     "GET /admin HTTP/1.1\r\n" H "\r\nGET /ok HTTP/1.1\r\n" H "\r\n",
     "200 OK", 1},
    /* a denied request with a body closes (the body is never read) */
    {"spiffe://td/ns/a/sa/x",
     "POST /admin HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabcGET /ok "
     "HTTP/1.1\r\n" H "\r\n",
     "Connection: close", 0},
  };
  uint64_t deny0 = 0;
  mesh_authz_counter(m, "deny", &deny0);
  int denials = 0;
  for (size_t i = 0; i < N(cases); i++) {
    atomic_store(&calls, 0);
    struct srv s;
    int fd = srv_start(&s, m, cases[i].peer);
    size_t n = strlen(cases[i].req);
    CU_ASSERT_EQUAL((size_t)write(fd, cases[i].req, n), n);
    shutdown(fd, SHUT_WR);
    char *out = read_all(fd, NULL);
    pthread_join(s.t, NULL);
    close(fd);
    if (!strstr(out, cases[i].want) || atomic_load(&calls) != cases[i].calls)
      fprintf(stderr, "authz case %zu: calls=%d out=%s\n", i,
              atomic_load(&calls), out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, cases[i].want));
    CU_ASSERT_EQUAL(atomic_load(&calls), cases[i].calls);
    denials += count_str(out, "403 Forbidden");
    free(out);
  }
  uint64_t deny1 = 0;
  mesh_authz_counter(m, "deny", &deny1);
  CU_ASSERT_EQUAL(deny1 - deny0, (uint64_t)denials);
  CU_ASSERT_EQUAL(denials, 7);
  mesh_free(m);
}

/* ---- routes and faults (pure) ---------------------------------------------------- */

static const char *routes_json =
    "[{\"name\":\"canary\",\"match\":{\"headers\":[{\"name\":\"x-canary\","
    "\"exact\":\"1\"}]},\"service\":\"b\"},"
    "{\"name\":\"api\",\"match\":{\"path\":{\"prefix\":\"/api/\"},"
    "\"method\":[\"GET\",\"HEAD\"]},\"service\":\"a\"},"
    "{\"name\":\"exact\",\"match\":{\"path\":{\"exact\":\"/x\"}},\"service\":"
    "\"b\"},"
    "{\"name\":\"present\",\"match\":{\"headers\":[{\"name\":\"x-debug\","
    "\"present\":true}]},\"service\":\"b\"},"
    "{\"name\":\"absent\",\"hosts\":[\"h2\"],\"match\":{\"headers\":[{\"name\":"
    "\"x-user\",\"present\":false}]},\"service\":\"a\"},"
    "{\"name\":\"split\",\"match\":{\"path\":{\"prefix\":\"/s\"}},\"split\":["
    "{\"service\":\"a\",\"weight\":90},{\"service\":\"b\",\"subset\":\"v2\","
    "\"weight\":10}]},"
    "{\"name\":\"pre\",\"match\":{\"headers\":[{\"name\":\"x-v\",\"prefix\":"
    "\"v2\"}]},\"service\":\"b\"}]";

static void test_mesh__routes_match(void) {
  cJSON *j = cJSON_Parse(routes_json);
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__routes_t t = {0};
  mesh__routes_parse(&c, j, "http.routes", NULL, &t);
  if (c.nerr)
    fprintf(stderr, "routes: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(c.nerr, 0);
  struct {
    const char *host, *method, *path, *h[4];
    const char *want;
  } cases[] = {
    {"h", "GET", "/anything", {"X-Canary", "1"}, "canary"},
    {"h", "GET", "/anything", {"x-canary", "2"}, NULL},
    {"h", "GET", "/api/v1", {NULL}, "api"},
    {"h", "HEAD", "/api/", {NULL}, "api"},
    {"h", "POST", "/api/v1", {NULL}, NULL},
    {"h", "GET", "/api", {NULL}, NULL},
    {"h", "GET", "/x", {NULL}, "exact"},
    {"h", "GET", "/x/", {NULL}, NULL},
    {"h", "GET", "/y", {"x-debug", ""}, "present"},
    {"h2", "GET", "/y", {NULL}, "absent"},
    {"h2", "GET", "/y", {"x-user", "bob"}, NULL},
    {"h", "GET", "/y", {NULL}, NULL},
    {"h", "GET", "/split", {NULL}, "split"},
    {"h", "GET", "/y", {"x-v", "v2.1"}, "pre"},
    {"h", "GET", "/y", {"x-v", "v1"}, NULL},
  };
  for (size_t i = 0; i < N(cases); i++) {
    mesh__az_hdr_t hdrs[2];
    size_t nh = 0;
    for (int k = 0; k < 4 && cases[i].h[k]; k += 2) {
      hdrs[nh].name = cases[i].h[k];
      hdrs[nh++].value = cases[i].h[k + 1];
    }
    mesh__rt_input_t in = {cases[i].host, cases[i].method, cases[i].path,
                           hdrs, nh};
    const mesh__route_t *r = mesh__routes_match(&t, &in);
    const char *got = r ? r->name : NULL;
    if ((got == NULL) != (cases[i].want == NULL) ||
        (got && strcmp(got, cases[i].want)))
      fprintf(stderr, "route case %zu: got %s\n", i, got ? got : "none");
    CU_ASSERT_EQUAL(got == NULL, cases[i].want == NULL);
    if (got && cases[i].want)
      CU_ASSERT_STRING_EQUAL(got, cases[i].want);
  }
  /* weighted pick: the draw decides, by cumulative weight */
  const mesh__route_t *split = &t.v[5];
  CU_ASSERT_STRING_EQUAL(mesh__route_pick(split, 0.0)->service, "a");
  CU_ASSERT_STRING_EQUAL(mesh__route_pick(split, 0.8999)->service, "a");
  CU_ASSERT_STRING_EQUAL(mesh__route_pick(split, 0.9)->service, "b");
  CU_ASSERT_STRING_EQUAL(mesh__route_pick(split, 0.9)->subset, "v2");
  CU_ASSERT_STRING_EQUAL(mesh__route_pick(split, 0.99999)->service, "b");
  CU_ASSERT_PTR_NULL(mesh__route_pick(NULL, 0.5));
  mesh__routes_free(&t);
  cJSON_Delete(j);
}

static void test_mesh__fault_decide(void) {
  mesh__fault_t f = {.delay = true, .delay_ms = 50, .delay_pct = 10,
                     .abort = true, .abort_status = 503, .abort_pct = 25};
  struct {
    double ud, ua;
    int64_t delay;
    int status;
  } cases[] = {
    {0.0, 0.0, 50, 503},   {0.099, 0.249, 50, 503}, {0.1, 0.25, 0, 0},
    {0.5, 0.1, 0, 503},    {0.05, 0.9, 50, 0},      {0.999, 0.999, 0, 0},
  };
  for (size_t i = 0; i < N(cases); i++) {
    int64_t d;
    int s;
    mesh__fault_decide(&f, cases[i].ud, cases[i].ua, &d, &s);
    CU_ASSERT_EQUAL(d, cases[i].delay);
    CU_ASSERT_EQUAL(s, cases[i].status);
  }
  mesh__fault_t all = {.abort = true, .abort_status = 418, .abort_pct = 100};
  int64_t d;
  int s;
  mesh__fault_decide(&all, 0.999999, 0.999999, &d, &s);
  CU_ASSERT_EQUAL(s, 418);
  mesh__fault_t none = {.abort = true, .abort_status = 418, .abort_pct = 0};
  mesh__fault_decide(&none, 0.0, 0.0, &d, &s);
  CU_ASSERT_EQUAL(s, 0);
}

struct cfg_case {
  const char *json;
  const char *want;
};

static const struct cfg_case cfg_cases[] = {
  {"{\"http\":{\"routes\":[{\"match\":{\"path\":{\"exact\":\"x\"}},"
   "\"service\":\"a\"}]}}",
   "http.routes[0].match.path.exact: a path must start with \"/\""},
  {"{\"http\":{\"routes\":[{\"match\":{}}]}}",
   "http.routes[0].service: required"},
  {"{\"http\":{\"routes\":[{\"split\":[{\"service\":\"a\",\"weight\":0}]}]}}",
   "http.routes[0].split: the weights add up to 0"},
  {"{\"http\":{\"routes\":[{\"split\":[{\"service\":\"a\"}]}]}}",
   "http.routes[0].split[0].weight: required"},
  {"{\"http\":{\"routes\":[{\"service\":\"a\",\"match\":{\"headers\":[{"
   "\"name\":\"x\",\"exact\":\"1\",\"prefix\":\"2\"}]}}]}}",
   "http.routes[0].match.headers[0]: needs exactly one of"},
  {"{\"http\":{\"routes\":[{\"service\":\"a\",\"match\":{\"method\":\"G T\"}}"
   "]}}",
   "http.routes[0].match.method: \"G T\" is not an HTTP method"},
  {"{\"http\":{\"routes\":[{\"service\":\"a\",\"fault\":{\"abort\":{"
   "\"http_status\":99}}}]}}",
   "http.routes[0].fault.abort.http_status: 99 is out of range"},
  {"{\"http\":{\"routes\":[{\"service\":\"a\",\"fault\":{}}]}}",
   "http.routes[0].fault: needs \"delay\" or \"abort\""},
  {"{\"http\":{\"routes\":[{\"service\":\"a\",\"fault\":{\"delay\":{"
   "\"fixed_delay_ms\":5,\"percentage\":101}}}]}}",
   "http.routes[0].fault.delay.percentage: 101 is out of range"},
  {"{\"http\":{\"routes\":[{\"service\":\"a\",\"matches\":{}}]}}",
   "http.routes[0].matches: unknown key"},
  {"{\"http\":{\"max_headers\":0}}", "http.max_headers: 0 is out of range"},
  {"{\"http\":{\"routes\":{}}}", "http.routes: expected an array of routes"},
  {"{\"services\":{\"a\":{\"routes\":[{\"hosts\":[\"x\"]}]}}}",
   "services.a.routes[0].hosts: unknown key"},
  {"{\"http\":{\"routes\":[{\"service\":\"a\",\"subset\":\"v1\",\"split\":"
   "[{\"weight\":1}]}]}}",
   "http.routes[0].subset: use \"split\" or \"subset\", not both"},
};

static void first_err(const char *msg, void *user) {
  char *out = user;
  if (!out[0])
    mesh__strlcpy(out, msg, 384);
}

static void test_mesh_config_check_http(void) {
  for (size_t i = 0; i < N(cfg_cases); i++) {
    char first[384] = "";
    int n = mesh_config_check(cfg_cases[i].json, first_err, first);
    if (n < 1 || !strstr(first, cfg_cases[i].want))
      fprintf(stderr, "http cfg case %zu: n=%d %s\n", i, n, first);
    CU_ASSERT(n >= 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(first, cfg_cases[i].want));
  }
  /* references are checked when the context is built */
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new("{\"http\":{\"routes\":[{\"service\":\"zzz\"}]}}",
                           &m, &st),
                  MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "unknown service \"zzz\""));
  CU_ASSERT_EQUAL(mesh_new("{\"services\":{\"a\":{\"routes\":[{\"subset\":"
                           "\"v9\"}]}}}",
                           &m, &st),
                  MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(st.message, "services.a.routes[0]: service \"a\" has no subset"));
  CU_ASSERT_EQUAL(mesh_new("{\"http\":{\"max_body_bytes\":10,\"routes\":[]}}",
                           &m, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh__http_settings(m)->lim.max_body, 10);
  mesh_free(m);
  CU_ASSERT_EQUAL(mesh__http_settings(NULL)->lim.max_headers, 100);
}

/* ---- curl over mTLS ------------------------------------------------------------- */

struct tls_srv {
  pthread_t t;
  mesh_t *m;
  mesh_listener_t *l;
  atomic_bool stop;
  atomic_int served, refused;
};

static void *tls_main(void *arg) {
  struct tls_srv *s = arg;
  for (int i = 0; i < 200 && !atomic_load(&s->stop); i++) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_accept(s->l, 100, &c, &st);
    if (rc == MESH_ERR_TIMEOUT)
      continue;
    if (rc != MESH_OK) {
      atomic_fetch_add(&s->refused, 1);
      continue;
    }
    mesh_conn_set_timeouts(c, 5000, 5000);
    mesh_http_serve(s->m, c, echo, NULL, &st);
    atomic_fetch_add(&s->served, 1);
    mesh_conn_close(c);
  }
  return NULL;
}

static const char *curl(int port, const char *who, const char *extra,
                        const char *path, char *body, size_t blen) {
  static char code[16];
  char cmd[2048];
  const char *out = th_path("curl.out"), *codef = th_path("curl.code");
  /* -k: SVIDs carry a SPIFFE URI SAN, not the host name curl would check;
   * what is tested here is the server side (mTLS, HTTP, authorization). */
  char crt[300], key[300];
  snprintf(crt, sizeof crt, "%s.crt", who);
  snprintf(key, sizeof key, "%s.key", who);
  snprintf(cmd, sizeof cmd,
           "curl -sS --http1.1 -k --max-time 10 --cert '%s' --key '%s' %s "
           "-o '%s' -w '%%{http_code}' 'https://127.0.0.1:%d%s' > '%s'",
           th_path(crt), th_path(key), extra, out, port, path, codef);
  th_sh(cmd);
  char *c = th_slurp(codef, NULL);
  snprintf(code, sizeof code, "%s", c ? c : "");
  free(c);
  char *b = th_slurp(out, NULL);
  snprintf(body, blen, "%s", b ? b : "");
  free(b);
  return code;
}

static void test_mesh_http_serve_curl_mtls(void) {
  const char *ca = th_ca("example.org");
  CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
  CU_ASSERT_FATAL(th_svid("example.org", "spiffe://example.org/ns/default/sa/"
                          "server", "server", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid("example.org", "spiffe://example.org/ns/default/sa/"
                          "curl", "curl", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid("example.org", "spiffe://example.org/ns/other/sa/"
                          "intruder", "intruder", 0, 0, 0));
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"},\"inbound\":{\"listen\":"
           "\"127.0.0.1:0\"},\"authz\":{\"policies\":["
           "{\"name\":\"no-admin\",\"action\":\"DENY\",\"rules\":[{\"to\":"
           "[{\"operation\":{\"paths\":[\"/admin*\"]}}]}]},"
           "{\"name\":\"default-ns\",\"rules\":[{\"from\":[{\"source\":{"
           "\"principals\":[\"example.org/ns/default/*\"]}}]}]}]}}",
           th_path("server.crt"), th_path("server.key"), ca);
  struct tls_srv s = {0};
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &s.m, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_listen(s.m, NULL, &s.l, &st), MESH_OK);
  int port = mesh_listener_port(s.l);
  pthread_create(&s.t, NULL, tls_main, &s);

  char body[8192];
  CU_ASSERT_STRING_EQUAL(curl(port, "curl", "", "/hello?x=1", body,
                              sizeof body),
                         "200");
  CU_ASSERT_STRING_EQUAL(body, "GET /hello?x=1 peer=spiffe://example.org/ns/"
                               "default/sa/curl body=");
  /* a body large enough that curl asks for 100-continue */
  const char *big = th_path("big.txt");
  char *data = malloc(5001);
  memset(data, 'z', 5000);
  data[5000] = '\0';
  th_write(big, data);
  char extra[512];
  snprintf(extra, sizeof extra, "--data-binary @%s", big);
  CU_ASSERT_STRING_EQUAL(curl(port, "curl", extra, "/upload", body,
                              sizeof body),
                         "200");
  CU_ASSERT_PTR_NOT_NULL(strstr(body, "POST /upload"));
  CU_ASSERT_PTR_NOT_NULL(strstr(body, data + 4990));
  free(data);
  CU_ASSERT_STRING_EQUAL(curl(port, "curl", "-H 'Transfer-Encoding: chunked'"
                                            " --data-binary abc",
                              "/chunked", body, sizeof body),
                         "200");
  CU_ASSERT_PTR_NOT_NULL(strstr(body, "body=abc"));
  /* authorization per request */
  CU_ASSERT_STRING_EQUAL(curl(port, "curl", "", "/admin/x", body, sizeof body),
                         "403");
  CU_ASSERT_STRING_EQUAL(body, "RBAC: access denied");
  /* a principal no ALLOW policy names is refused at accept (the
   * connection-level check): curl sees a TLS alert, no HTTP status */
  CU_ASSERT_STRING_EQUAL(curl(port, "intruder", "", "/hello", body,
                              sizeof body),
                         "000");
  /* no client certificate: the handshake is refused (STRICT) */
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "curl -sS --http1.1 -k --max-time 10 https://127.0.0.1:%d/ "
           "-o /dev/null",
           port);
  CU_ASSERT_NOT_EQUAL(th_sh(cmd), 0);
  atomic_store(&s.stop, true);
  pthread_join(s.t, NULL);
  CU_ASSERT_EQUAL(atomic_load(&s.served), 4);
  CU_ASSERT(atomic_load(&s.refused) >= 2);
  mesh_listener_close(s.l);
  mesh_free(s.m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("http", NULL, NULL);
  CU_add_test(s, "mesh__http_serve_io_raw", test_mesh__http_serve_io_raw);
  CU_add_test(s, "mesh__http_serve_io_limits",
              test_mesh__http_serve_io_limits);
  CU_add_test(s, "mesh__http_exchange_io", test_mesh__http_exchange_io);
  CU_add_test(s, "mesh__http_exchange_io_responses",
              test_mesh__http_exchange_io_responses);
  CU_add_test(s, "mesh_http_request_new", test_mesh_http_request_new);
  CU_add_test(s, "mesh__http_serve_io_authz", test_mesh__http_serve_io_authz);
  CU_add_test(s, "mesh__routes_match", test_mesh__routes_match);
  CU_add_test(s, "mesh__fault_decide", test_mesh__fault_decide);
  CU_add_test(s, "mesh_config_check_http", test_mesh_config_check_http);
  CU_add_test(s, "mesh_http_serve_curl_mtls", test_mesh_http_serve_curl_mtls);
}

int main(void) { return th_run_suites("test_http", add); }
