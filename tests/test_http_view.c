/* SPDX-License-Identifier: Apache-2.0 */
/* http: one view of each served request.  The policy, the OPA input, the
 * span and the handler see the same normalized path (in every
 * authz.path_normalization mode), the same host (the authority of an
 * absolute-form target wins over Host) and the same header value (repeated
 * fields joined with ","), so no spelling of a request reaches a handler
 * with a value a policy would have denied.  Also: the head of a pipelined
 * request is bounded by request_timeout_ms, not the idle timeout.  Served
 * over socket pairs, byte for byte. */
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
#define H "Host: x\r\n"

static atomic_int calls;

/* Echo what the handler sees: "target=T host=H x-user=U". */
static int view(const mesh_http_request_t *req, mesh_http_response_t *resp,
                void *user) {
  (void)user;
  atomic_fetch_add(&calls, 1);
  const char *u = mesh_http_request_header(req, "x-user");
  const char *h = mesh_http_request_header(req, "host");
  char out[1024];
  int n = snprintf(out, sizeof out, "target=%s host=%s x-user=%s|",
                   mesh_http_request_target(req), h ? h : "(none)",
                   u ? u : "(none)");
  if (n < 0 || (size_t)n >= sizeof out)
    n = (int)sizeof out - 1;
  mesh_http_response_set_body(resp, out, (size_t)n);
  return 0;
}

struct srv {
  pthread_t t;
  int fd;
  mesh_t *m;
  mesh__http_peer_t peer;
  mesh_http_handler_fn fn;
  int rc;
  mesh_status_t st;
};

static void *srv_main(void *arg) {
  struct srv *s = arg;
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &s->fd);
  s->rc = mesh__http_serve_io(s->m, &io, &s->peer, s->fn, NULL, &s->st);
  close(s->fd);
  return NULL;
}

static int srv_start(struct srv *s, mesh_t *m, mesh_http_handler_fn fn) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  memset(s, 0, sizeof *s);
  s->fd = sv[1];
  s->m = m;
  s->fn = fn;
  s->peer.peer_id = "spiffe://td/ns/a/sa/x";
  s->peer.local_port = 8080;
  pthread_create(&s->t, NULL, srv_main, s);
  return sv[0];
}

/* Everything the server sends until it closes (bounded: 15 s). */
static char *read_all(int fd) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  int64_t deadline = mesh__now_ms() + 15000;
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &fd);
  while (n < cap) {
    long r = io.read(io.ctx, buf + n, cap - n, deadline);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  return buf;
}

/* Send req (then EOF) to a server with m; the reply. */
static char *exchange(mesh_t *m, const char *req, int *rc) {
  struct srv s;
  int fd = srv_start(&s, m, view);
  size_t n = strlen(req);
  CU_ASSERT_EQUAL((size_t)write(fd, req, n), n);
  shutdown(fd, SHUT_WR);
  char *out = read_all(fd);
  pthread_join(s.t, NULL);
  close(fd);
  if (rc)
    *rc = s.rc;
  return out;
}

static mesh_t *mesh_with(const char *authz) {
  char json[2048];
  snprintf(json, sizeof json, "{\"log\":{\"level\":\"error\"},\"authz\":%s}",
           authz);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  return m;
}

struct view_case {
  const char *req;
  const char *want; /* substring of the reply */
  int calls;        /* handler calls */
};

static void run_cases(mesh_t *m, const struct view_case *c, size_t n,
                      const char *what) {
  for (size_t i = 0; i < n; i++) {
    atomic_store(&calls, 0);
    char *out = exchange(m, c[i].req, NULL);
    bool ok = strstr(out, c[i].want) && atomic_load(&calls) == c[i].calls;
    if (!ok)
      fprintf(stderr, "%s case %zu: calls=%d want=%s out=%s\n", what, i,
              atomic_load(&calls), c[i].want, out);
    CU_ASSERT(ok);
    free(out);
  }
}

/* ---- item 3: Istio's modes, MERGE_SLASHES by default
 * ------------------------------ */

#define DENY_ADMIN                                                             \
  "\"policies\":[{\"name\":\"no-admin\",\"action\":\"DENY\",\"rules\":[{"      \
  "\"to\":[{\"operation\":{\"paths\":[\"/admin/*\"]}}]}]}]"

static void test_mesh__http_serve_io_path_default(void) {
  mesh_t *m = mesh_with("{" DENY_ADMIN "}");
  static const struct view_case c[] = {
      {"GET /admin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET //admin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /%61dmin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /x/../admin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /./admin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      /* backslashes are slashes (Envoy's normalize_path) */
      {"GET /admin\\x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /foo\\..\\admin\\x HTTP/1.1\r\n" H "\r\n", "403", 0},
      /* %00 is refused outright; a bad escape too */
      {"GET /a%00b HTTP/1.1\r\n" H "\r\n", "400 Bad Request", 0},
      {"GET /admin%00/x HTTP/1.1\r\n" H "\r\n", "400 Bad Request", 0},
      /* %2F stays encoded outside DECODE_AND_MERGE_SLASHES */
      {"GET /admin%2fx HTTP/1.1\r\n" H "\r\n", "target=/admin%2Fx ", 1},
      /* the handler's target is the normalized path + the query as sent */
      {"GET /a/./b//c/../d?q=/../x HTTP/1.1\r\n" H "\r\n",
       "target=/a/b/d?q=/../x ", 1},
  };
  run_cases(m, c, N(c), "default");
  mesh_free(m);
}

static void test_mesh__http_serve_io_path_modes(void) {
  mesh_t *m = mesh_with("{\"path_normalization\":\"BASE\"," DENY_ADMIN "}");
  static const struct view_case base[] = {
      /* BASE keeps "//": the policy and the handler both see it */
      {"GET //admin/x HTTP/1.1\r\n" H "\r\n", "target=//admin/x ", 1},
      {"GET /x/../admin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /admin\\x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /a%00b HTTP/1.1\r\n" H "\r\n", "400", 0},
  };
  run_cases(m, base, N(base), "BASE");
  mesh_free(m);
  m = mesh_with(
      "{\"path_normalization\":\"DECODE_AND_MERGE_SLASHES\"," DENY_ADMIN "}");
  static const struct view_case dec[] = {
      {"GET /admin%2fx HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /admin%5Cx HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /x%2f..%2fadmin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET //admin/x HTTP/1.1\r\n" H "\r\n", "403", 0},
      {"GET /a%2fb HTTP/1.1\r\n" H "\r\n", "target=/a/b ", 1},
  };
  run_cases(m, dec, N(dec), "DECODE_AND_MERGE_SLASHES");
  mesh_free(m);
  m = mesh_with("{\"path_normalization\":\"NONE\"," DENY_ADMIN "}");
  static const struct view_case none[] = {
      /* NONE: what was sent is what everyone sees (and %00 still 400) */
      {"GET /x/../admin/x HTTP/1.1\r\n" H "\r\n", "target=/x/../admin/x ", 1},
      {"GET /a%00b HTTP/1.1\r\n" H "\r\n", "400", 0},
  };
  run_cases(m, none, N(none), "NONE");
  mesh_free(m);
}

static char cfg_errors[1024];

static void on_cfg_error(const char *msg, void *user) {
  (void)user;
  size_t n = strlen(cfg_errors);
  snprintf(cfg_errors + n, sizeof cfg_errors - n, "%s\n", msg);
}

static void test_mesh_config_check_path_normalization(void) {
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_config_check("{\"authz\":{\"path_normalization\":"
                                    "\"MERGE_SLASHES\"}}",
                                    on_cfg_error, NULL),
                  0);
  cfg_errors[0] = '\0';
  CU_ASSERT_EQUAL(
      mesh_config_check("{\"authz\":{\"path_normalization\":\"merge\"}}",
                        on_cfg_error, NULL),
      1);
  CU_ASSERT_PTR_NOT_NULL(strstr(cfg_errors, "authz.path_normalization"));
  CU_ASSERT_PTR_NOT_NULL(strstr(cfg_errors, "DECODE_AND_MERGE_SLASHES"));
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL(mesh_new("{\"authz\":{\"path_normalization\":7}}", &m, &st),
                  MESH_ERR_CONFIG);
  /* fixed at startup: a reload may repeat it, not change it */
  m = mesh_with("{\"path_normalization\":\"BASE\"}");
  CU_ASSERT_EQUAL(mesh_authz_reload(m,
                                    "{\"path_normalization\":\"BASE\","
                                    "\"policies\":[]}",
                                    &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_authz_reload(m, "{\"policies\":[]}", &st), MESH_OK);
  CU_ASSERT_EQUAL(
      mesh_authz_reload(m, "{\"path_normalization\":\"NONE\"}", &st),
      MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "path_normalization"));
  /* the public normalizer follows the context's mode */
  char buf[64];
  CU_ASSERT_EQUAL(mesh_http_path_normalize(m, "//a/./b?q", buf, sizeof buf),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(buf, "//a/b");
  CU_ASSERT_EQUAL(mesh_http_path_normalize(NULL, "//a/./b?q", buf,
                                           sizeof buf),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(buf, "/a/b");
  CU_ASSERT_EQUAL(mesh_http_path_normalize(m, "/a%00", buf, sizeof buf),
                  MESH_ERR_HTTP_PARSE);
  CU_ASSERT_EQUAL(mesh_http_path_normalize(m, "/abcdef", buf, 4),
                  MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(mesh_http_path_normalize(m, NULL, buf, 4),
                  MESH_ERR_INVALID_ARG);
  /* the builder's requests are judged with the context's mode too */
  CU_ASSERT_EQUAL(mesh_authz_reload(m, "{" DENY_ADMIN "}", &st), MESH_OK);
  mesh_authz_request_t *r = mesh_authz_request_new();
  mesh_authz_request_set_http(r, "GET", "//admin/x", "h");
  CU_ASSERT_EQUAL(mesh_authz_check(m, r, &st), MESH_OK); /* BASE: "//" */
  mesh_authz_request_set_http(r, "GET", "/x/../admin/x", "h");
  CU_ASSERT_EQUAL(mesh_authz_check(m, r, &st), MESH_ERR_DENIED);
  mesh_authz_request_free(r);
  mesh_free(m);
}

/* ---- item 4: a repeated header is one joined value for everyone
 * --------------------- */

static void test_mesh__http_serve_io_repeated_header(void) {
  mesh_t *m = mesh_with(
      "{\"policies\":[{\"name\":\"no-mallory\",\"action\":\"DENY\","
      "\"rules\":[{\"when\":[{\"key\":\"request.headers[x-user]\","
      "\"values\":[\"mallory\"]}]}]},"
      "{\"name\":\"no-eve\",\"action\":\"DENY\",\"rules\":[{\"when\":[{"
      "\"key\":\"request.headers[x-user]\",\"values\":[\"eve*\"]}]}]}]}");
  static const struct view_case c[] = {
      {"GET / HTTP/1.1\r\n" H "X-User: mallory\r\n\r\n", "403", 0},
      /* the policy saw "mallory,bob": so does the handler, never "mallory" */
      {"GET / HTTP/1.1\r\n" H "x-user: mallory\r\nX-User: bob\r\n\r\n",
       "x-user=mallory,bob|", 1},
      {"GET / HTTP/1.1\r\n" H "x-user: mallory\r\nX-User:\r\n\r\n",
       "x-user=mallory,|", 1},
      {"GET / HTTP/1.1\r\n" H "X-User:\r\nx-user: mallory\r\n\r\n",
       "x-user=,mallory|", 1},
      /* a prefix matches the joined value, whichever copy comes second */
      {"GET / HTTP/1.1\r\n" H "x-user: eve\r\nX-User: bob\r\n\r\n", "403", 0},
      {"GET / HTTP/1.1\r\n" H "X-User: bob\r\n\r\n", "x-user=bob|", 1},
  };
  run_cases(m, c, N(c), "repeated header");
  mesh_free(m);
}

/* Every value, in order, through the public API (served and built). */
static const char *seen_values[8];
static size_t seen_count;
static char seen_buf[256];

static int values_handler(const mesh_http_request_t *req,
                          mesh_http_response_t *resp, void *user) {
  (void)user;
  (void)resp;
  const char *v[8];
  seen_count = mesh_http_request_header_values(req, "X-User", v, N(v));
  CU_ASSERT_EQUAL(mesh_http_request_header_values(req, "x-user", NULL, 0),
                  seen_count);
  size_t w = 0;
  for (size_t i = 0; i < seen_count && i < N(v); i++) {
    int n = snprintf(seen_buf + w, sizeof seen_buf - w, "[%s]", v[i]);
    w += n > 0 ? (size_t)n : 0;
    seen_values[i] = v[i];
  }
  return 0;
}

static void test_mesh_http_request_header_values(void) {
  struct srv s;
  int fd = srv_start(&s, NULL, values_handler);
  const char *req = "GET / HTTP/1.1\r\n" H "X-User: a\r\nOther: o\r\n"
                    "x-user:\r\nX-USER:  c d \r\n\r\n";
  CU_ASSERT_EQUAL((size_t)write(fd, req, strlen(req)), strlen(req));
  shutdown(fd, SHUT_WR);
  char *out = read_all(fd);
  pthread_join(s.t, NULL);
  close(fd);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "200 OK"));
  CU_ASSERT_EQUAL(seen_count, 3);
  CU_ASSERT_STRING_EQUAL(seen_buf, "[a][][c d]");
  free(out);

  mesh_http_request_t *r = mesh_http_request_new("GET", "/x/./y//z");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(mesh_http_request_path(r), "/x/y/z");
  CU_ASSERT_STRING_EQUAL(mesh_http_request_original_target(r), "/x/./y//z");
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "X-A", "1"), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_http_request_header(r, "x-a"), "1");
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "x-a", "2"), MESH_OK);
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "X-a", "3"), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_http_request_header(r, "X-A"), "1,2,3");
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "X-E", ""), MESH_OK);
  CU_ASSERT_EQUAL(mesh_http_request_add_header(r, "X-E", "e"), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_http_request_header(r, "x-e"), ",e");
  const char *v[2];
  CU_ASSERT_EQUAL(mesh_http_request_header_values(r, "x-a", v, 2), 3);
  CU_ASSERT_STRING_EQUAL(v[0], "1");
  CU_ASSERT_STRING_EQUAL(v[1], "2");
  CU_ASSERT_EQUAL(mesh_http_request_header_values(r, "nope", v, 2), 0);
  CU_ASSERT_EQUAL(mesh_http_request_header_values(NULL, "x-a", v, 2), 0);
  CU_ASSERT_EQUAL(mesh_http_request_header_values(r, NULL, v, 2), 0);
  mesh_http_request_free(r);
}

/* ---- item 9: the authority of an absolute-form target is the host
 * ------------------ */

static void test_mesh__http_serve_io_absolute_form(void) {
  mesh_t *m = mesh_with(
      "{\"policies\":[{\"name\":\"no-internal\",\"action\":\"DENY\","
      "\"rules\":[{\"to\":[{\"operation\":{\"hosts\":["
      "\"internal.example.com\"]}}]}]},"
      "{\"name\":\"no-root\",\"action\":\"DENY\",\"rules\":[{\"to\":[{"
      "\"operation\":{\"hosts\":[\"root.example\"],\"paths\":[\"/\"]}}]}]}]}");
  static const struct view_case c[] = {
      {"GET http://internal.example.com/x HTTP/1.1\r\nHost: a\r\n\r\n", "403",
       0},
      /* hosts match case-insensitively, with any port (Istio's regex) */
      {"GET http://INTERNAL.example.com:80/x HTTP/1.1\r\nHost: a\r\n\r\n",
       "403", 0},
      {"GET /x HTTP/1.1\r\nHost: internal.example.com:8080\r\n\r\n", "403", 0},
      /* the handler sees the authority as Host too, and an origin path */
      {"GET http://other.example/x?y HTTP/1.1\r\nHost: a\r\n\r\n",
       "target=/x?y host=other.example ", 1},
      /* HTTP/1.0 without Host: the authority is the Host */
      {"GET http://internal.example.com/ HTTP/1.0\r\n\r\n", "403", 0},
      {"GET http://other.example HTTP/1.0\r\n\r\n",
       "target=/ host=other.example ", 1},
      /* the authority ends at "?": the path is "/" */
      {"GET http://root.example?/x HTTP/1.1\r\nHost: a\r\n\r\n", "403", 0},
      {"GET http://other.example?/x HTTP/1.1\r\nHost: a\r\n\r\n",
       "target=/?/x host=other.example ", 1},
      /* userinfo or an empty authority: 400 */
      {"GET http://a@internal.example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", "400",
       0},
      {"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "400", 0},
      /* the Host header alone still counts for origin-form */
      {"GET /x HTTP/1.1\r\nHost: internal.example.com\r\n\r\n", "403", 0},
  };
  run_cases(m, c, N(c), "absolute-form");
  /* the same for a request described with the public builder */
  mesh_authz_request_t *r = mesh_authz_request_new();
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_authz_request_set_http(
                      r, "GET", "http://internal.example.com/x", "a"),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_host(r), "internal.example.com");
  CU_ASSERT_EQUAL(mesh_authz_check(m, r, &st), MESH_ERR_DENIED);
  CU_ASSERT_EQUAL(mesh_authz_request_set_http(r, "GET", "/x", "a"), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_host(r), "a");
  CU_ASSERT_EQUAL(mesh_authz_check(m, r, &st), MESH_OK);
  mesh_authz_request_free(r);
  mesh_free(m);
}

/* ---- item 10: a pipelined head gets request_timeout_ms
 * ------------------------------- */

static void test_mesh__http_serve_io_pipelined_timeout(void) {
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"log\":{\"level\":\"error\"},\"http\":{\"idle_timeout_ms\":"
               "60000,\"request_timeout_ms\":200}}",
               &m, NULL),
      MESH_OK);
  struct srv s;
  int fd = srv_start(&s, m, view);
  /* a complete request, then the start of a second one that never ends;
   * the client keeps its side open */
  const char *req = "GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\nHo";
  CU_ASSERT_EQUAL((size_t)write(fd, req, strlen(req)), strlen(req));
  int64_t t0 = mesh__now_ms();
  char *out = read_all(fd); /* until the server closes, at most 15 s */
  int64_t took = mesh__now_ms() - t0;
  pthread_join(s.t, NULL);
  close(fd);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "target=/a "));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 408 Request Timeout"));
  CU_ASSERT_EQUAL(s.rc, MESH_ERR_TIMEOUT);
  /* generous: the idle timeout (60 s) would exceed read_all's cap */
  CU_ASSERT(took < 14000);
  free(out);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("http_view", NULL, NULL);
  CU_add_test(s, "mesh__http_serve_io_path_default",
              test_mesh__http_serve_io_path_default);
  CU_add_test(s, "mesh__http_serve_io_path_modes",
              test_mesh__http_serve_io_path_modes);
  CU_add_test(s, "mesh_config_check_path_normalization",
              test_mesh_config_check_path_normalization);
  CU_add_test(s, "mesh__http_serve_io_repeated_header",
              test_mesh__http_serve_io_repeated_header);
  CU_add_test(s, "mesh_http_request_header_values",
              test_mesh_http_request_header_values);
  CU_add_test(s, "mesh__http_serve_io_absolute_form",
              test_mesh__http_serve_io_absolute_form);
  CU_add_test(s, "mesh__http_serve_io_pipelined_timeout",
              test_mesh__http_serve_io_pipelined_timeout);
}

int main(void) { return th_run_suites("test_http_view", add); }
