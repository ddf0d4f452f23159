/* SPDX-License-Identifier: Apache-2.0 */
/* authz/opa: the external authorizer against an OPA-shaped Data API on
 * loopback (a small Python stdlib server started here): decisions, the
 * input document, the TTL cache, and the fail mode when the server is
 * slow, down or broken. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "authz/authz.h"
#include "core/core.h"
#include "http/http.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Modes: ok (decide from the input), object ({"result": {"allow": ..}}),
 * slow (no answer while the test lives), error (HTTP 500), garbage (200,
 * not JSON), undefined ({} : no result).  Every request body is appended
 * to LOG.  The stub binds a port of its own choosing and writes it to
 * PORTFILE once it listens: a port picked for it beforehand could be taken
 * by another test's server meanwhile (tests run in parallel). */
static const char stub_py[] =
    "import json, sys, time\n"
    "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
    "import os\n"
    "mode, portfile, log = sys.argv[1], sys.argv[2], sys.argv[3]\n"
    "class H(BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def reply(self, code, body):\n"
    "        b = body.encode()\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "    def do_POST(self):\n"
    "        n = int(self.headers.get('Content-Length', '0'))\n"
    "        body = self.rfile.read(n).decode()\n"
    "        with open(log, 'a') as f:\n"
    "            f.write(self.path + ' ' + body + '\\n')\n"
    "        if mode == 'slow':\n"
    "            time.sleep(600)\n"
    "        if mode == 'error':\n"
    "            return self.reply(500, '{\"code\":\"internal_error\"}')\n"
    "        if mode == 'garbage':\n"
    "            return self.reply(200, 'not json')\n"
    "        if mode == 'undefined':\n"
    "            return self.reply(200, '{}')\n"
    "        a = json.loads(body)['input']['attributes']\n"
    "        if mode == 'path':\n"
    "            p = a['request']['http']['path'].split('?')[0]\n"
    "            ok = not p.startswith('/admin')\n"
    "            return self.reply(200, json.dumps({'result': ok}))\n"
    "        user = a.get('request', {}).get('http', {}).get('headers', {})"
    ".get('x-user')\n"
    "        ok = user == 'alice' or a['source']['principal'].endswith("
    "'/sa/good')\n"
    "        res = {'allow': ok} if mode == 'object' else ok\n"
    "        self.reply(200, json.dumps({'result': res}))\n"
    "ThreadingHTTPServer.daemon_threads = True\n"
    "srv = ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
    "with open(portfile + '.tmp', 'w') as f:\n"
    "    f.write(str(srv.server_address[1]))\n"
    "os.rename(portfile + '.tmp', portfile)\n"
    "srv.serve_forever()\n";

struct stub {
  pid_t pid;
  int port;
  char log[256];
};

static bool file_there(void *path) {
  return access((const char *)path, F_OK) == 0;
}

static bool stub_start(struct stub *s, const char *mode) {
  const char *script = th_path("opa_stub.py");
  if (!th_write(script, stub_py))
    return false;
  char portfile[256];
  snprintf(portfile, sizeof portfile, "%s", th_path("opa_stub.port"));
  unlink(portfile);
  snprintf(s->log, sizeof s->log, "%s", th_path(mode));
  th_write(s->log, "");
  const char *argv[] = {"python3", script, mode, portfile, s->log, NULL};
  s->pid = th_spawn(argv, "opa_stub.log");
  if (s->pid <= 0 ||
      !th_wait_for(file_there, portfile, TH_CAP_MS, "OPA stub listening"))
    return false;
  char *txt = th_slurp(portfile, NULL);
  s->port = txt ? atoi(txt) : 0;
  free(txt);
  return s->port > 0;
}

/* A port where nothing listens, and nothing can start to while the test
 * holds it: bound, never listened on, so a connect is refused. */
static int closed_port(int *fd) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(*fd, (struct sockaddr *)&a, &al) != 0)
    return -1;
  return ntohs(a.sin_port);
}

/* Requests the stub has seen. */
static int stub_hits(const struct stub *s) {
  size_t len = 0;
  char *txt = th_slurp(s->log, &len);
  int n = 0;
  for (size_t i = 0; txt && i < len; i++)
    n += txt[i] == '\n';
  free(txt);
  return n;
}

/* An answer the test waits for must not hit the 200 ms default timeout
 * on a loaded machine (python answering late turns a decision into "OPA
 * unavailable"): TIMEOUT_ANSWER unless `extra` sets its own. */
#define TIMEOUT_ANSWER ",\"timeout_ms\":60000"

static mesh_t *mesh_with_opa(int port, const char *extra) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"authz\":{\"opa\":{\"url\":"
           "\"http://127.0.0.1:%d/v1/data/mesh/allow\"%s%s},\"policies\":[{"
           "\"name\":\"ext\",\"action\":\"CUSTOM\",\"rules\":[{\"to\":[{"
           "\"paths\":[\"/api/*\"]}]}]}]}}",
           port, extra, strstr(extra, "timeout_ms") ? "" : TIMEOUT_ANSWER);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  return m;
}

static int ask(mesh_t *m, const char *principal, const char *user,
               const char *path, mesh_status_t *st) {
  mesh_authz_request_t *r = mesh_authz_request_new();
  mesh_authz_request_set_principal(r, principal);
  mesh_authz_request_set_source_ip(r, "127.0.0.1");
  mesh_authz_request_set_port(r, 8443);
  mesh_authz_request_set_http(r, "GET", path, "svc.local");
  if (user)
    mesh_authz_request_add_header(r, "X-User", user);
  mesh_authz_request_add_header(r, "traceparent",
                                "00-0af7651916cd43dd8448eb211c80319c-"
                                "b7ad6b7169203331-01");
  int rc = mesh_authz_check(m, r, st);
  mesh_authz_request_free(r);
  return rc;
}

static uint64_t counter(mesh_t *m, const char *name) {
  uint64_t v = 0;
  CU_ASSERT_EQUAL(mesh_authz_counter(m, name, &v), MESH_OK);
  return v;
}

static int64_t elapsed_ms(int64_t t0) { return mesh__now_ms() - t0; }

#define BOB "spiffe://example.org/ns/shop/sa/bob"
#define GOOD "spiffe://example.org/ns/shop/sa/good"

static void test_mesh__opa_check_decisions(void) {
  struct stub s;
  CU_ASSERT_FATAL(stub_start(&s, "ok"));
  mesh_t *m = mesh_with_opa(s.port, "");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_status_t st;
  CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
  CU_ASSERT_EQUAL(ask(m, BOB, "mallory", "/api/x", &st), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "\"ext\": denied by OPA"));
  CU_ASSERT_EQUAL(ask(m, GOOD, NULL, "/api/y?q=1", &st), MESH_OK);
  /* outside the CUSTOM rule OPA is not asked */
  CU_ASSERT_EQUAL(ask(m, BOB, "mallory", "/public", &st), MESH_OK);
  CU_ASSERT_EQUAL(stub_hits(&s), 3);

  /* the input document OPA saw (last line: the /api/y request) */
  char *txt = th_slurp(s.log, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(txt);
  CU_ASSERT_PTR_NOT_NULL(strstr(txt, "/v1/data/mesh/allow {"));
  char *last = strrchr(txt, '\n');
  *last = '\0';
  char *line = strrchr(txt, '\n');
  cJSON *doc = cJSON_Parse(strchr(line ? line : txt, '{'));
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  const cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "input"),
                                       "attributes");
  const cJSON *src = cJSON_GetObjectItem(a, "source");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(src, "principal")->valuestring,
                         GOOD);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(src, "namespace")->valuestring,
                         "shop");
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItem(
          cJSON_GetObjectItem(cJSON_GetObjectItem(src, "address"),
                              "socketAddress"),
          "address")
          ->valuestring,
      "127.0.0.1");
  const cJSON *http = cJSON_GetObjectItem(
      cJSON_GetObjectItem(a, "request"), "http");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(http, "method")->valuestring,
                         "GET");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(http, "path")->valuestring,
                         "/api/y?q=1");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(http, "host")->valuestring,
                         "svc.local");
  /* per-request trace headers are left out of the input */
  CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(cJSON_GetObjectItem(http, "headers"),
                                         "traceparent"));
  cJSON_Delete(doc);
  free(txt);
  CU_ASSERT_EQUAL(counter(m, "custom_deny"), 1);
  mesh_free(m);
  th_stop(s.pid);
}

static void test_mesh__opa_check_cache(void) {
  struct stub s;
  CU_ASSERT_FATAL(stub_start(&s, "ok"));
  mesh_t *m = mesh_with_opa(s.port, ",\"cache_ttl_ms\":60000");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_status_t st;
  for (int i = 0; i < 5; i++) {
    CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
    CU_ASSERT_EQUAL(ask(m, BOB, "eve", "/api/x", &st), MESH_ERR_DENIED);
  }
  CU_ASSERT_EQUAL(stub_hits(&s), 2);
  CU_ASSERT_EQUAL(counter(m, "opa_cache_hit"), 8);
  CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
  CU_ASSERT_EQUAL(stub_hits(&s), 2);
  /* a reload drops the cache */
  char json[512];
  snprintf(json, sizeof json,
           "{\"opa\":{\"url\":\"http://127.0.0.1:%d/v1/data/mesh/allow\""
           TIMEOUT_ANSWER "},"
           "\"policies\":[{\"name\":\"ext\",\"action\":\"CUSTOM\",\"rules\":"
           "[{}]}]}",
           s.port);
  CU_ASSERT_EQUAL(mesh_authz_reload(m, json, &st), MESH_OK);
  CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
  CU_ASSERT_EQUAL(stub_hits(&s), 3);
  mesh_free(m);
  /* after the TTL the server is asked again (only "sleep > TTL" matters) */
  m = mesh_with_opa(s.port, ",\"cache_ttl_ms\":100");
  CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
  struct timespec ts = {0, 250 * 1000000L};
  nanosleep(&ts, NULL);
  CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
  CU_ASSERT_EQUAL(stub_hits(&s), 5);
  mesh_free(m);
  /* cache off */
  m = mesh_with_opa(s.port, ",\"cache_ttl_ms\":0");
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
  CU_ASSERT_EQUAL(stub_hits(&s), 8);
  mesh_free(m);
  th_stop(s.pid);
}

struct fail_case {
  const char *mode; /* NULL: nothing listening */
  bool fail_open;
  int want;
  const char *why;
};

/* The timeout cases: a server that never answers (the stub sleeps
 * 600 s) or a refused connection, with a 200 ms timeout.  The call
 * returning at all shows the timeout cut it short; the cap only tells
 * "200 ms" from "the server's 600 s" and is generous for a loaded machine
 * or valgrind.  Every other case waits for the stub's answer (60 s
 * timeout), so that each reaches the path it names (500, garbage, no
 * result) rather than a timeout when python is slow. */
#define TIMEOUT_SHORT 200
#define TIMEOUT_CAP_MS 30000

static void test_mesh__opa_check_fail_modes(void) {
  static const struct fail_case cases[] = {
    {"slow", false, MESH_ERR_DENIED, "OPA unavailable (fail closed)"},
    {"slow", true, MESH_OK, ""},
    {NULL, false, MESH_ERR_DENIED, "OPA unavailable (fail closed)"},
    {NULL, true, MESH_OK, ""},
    {"error", false, MESH_ERR_DENIED, "OPA unavailable (fail closed)"},
    {"garbage", false, MESH_ERR_DENIED, "OPA unavailable (fail closed)"},
    {"garbage", true, MESH_OK, ""},
    {"undefined", true, MESH_ERR_DENIED, "denied by OPA"},
  };
  for (size_t i = 0; i < N(cases); i++) {
    const struct fail_case *tc = &cases[i];
    struct stub s = {.pid = -1};
    int closed_fd = -1;
    if (tc->mode)
      CU_ASSERT_FATAL(stub_start(&s, tc->mode));
    if (!tc->mode)
      CU_ASSERT_FATAL((s.port = closed_port(&closed_fd)) > 0);
    bool short_timeout = !tc->mode || strcmp(tc->mode, "slow") == 0;
    char extra[128];
    snprintf(extra, sizeof extra, ",\"timeout_ms\":%d,\"fail_open\":%s",
             short_timeout ? TIMEOUT_SHORT : 60000,
             tc->fail_open ? "true" : "false");
    mesh_t *m = mesh_with_opa(s.port, extra);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    mesh_status_t st = {0};
    int64_t t0 = mesh__now_ms();
    int rc = ask(m, GOOD, "alice", "/api/x", &st);
    int64_t el = elapsed_ms(t0);
    if (rc != tc->want || !strstr(st.message, tc->why))
      fprintf(stderr, "fail case %zu: rc=%d msg=%s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, tc->why));
    if (short_timeout && el >= TIMEOUT_CAP_MS)
      fprintf(stderr, "fail case %zu: %lld ms, timeout %d ms\n", i,
              (long long)el, TIMEOUT_SHORT);
    CU_ASSERT(!short_timeout || el < TIMEOUT_CAP_MS);
    bool errs = tc->mode == NULL || strcmp(tc->mode, "undefined") != 0;
    CU_ASSERT_EQUAL(counter(m, "opa_error"), errs ? 1u : 0u);
    mesh_free(m);
    if (s.pid > 0)
      th_kill(s.pid);
    if (closed_fd >= 0)
      close(closed_fd);
  }
}

static void test_mesh__opa_check_object_result(void) {
  struct stub s;
  CU_ASSERT_FATAL(stub_start(&s, "object"));
  mesh_t *m = mesh_with_opa(s.port, "");
  mesh_status_t st;
  CU_ASSERT_EQUAL(ask(m, BOB, "alice", "/api/x", &st), MESH_OK);
  CU_ASSERT_EQUAL(ask(m, BOB, "bob", "/api/x", &st), MESH_ERR_DENIED);
  mesh_free(m);
  th_stop(s.pid);
}

static void test_mesh__opa_parse_result(void) {
  struct {
    const char *body;
    int want;
  } cases[] = {
    {"{\"result\":true}", 1},
    {"{\"result\":false}", 0},
    {"{}", 0},
    {"{\"result\":{\"allow\":true,\"reason\":\"x\"}}", 1},
    {"{\"result\":{\"allow\":false}}", 0},
    {"{\"result\":{}}", 0},
    {"{\"result\":{\"allow\":\"yes\"}}", MESH_ERR_PARSE},
    {"{\"result\":\"yes\"}", MESH_ERR_PARSE},
    {"{\"result\":1}", MESH_ERR_PARSE},
    {"[true]", MESH_ERR_PARSE},
    {"", MESH_ERR_PARSE},
    {"{\"result\":true", MESH_ERR_PARSE},
  };
  for (size_t i = 0; i < N(cases); i++)
    CU_ASSERT_EQUAL(mesh__opa_parse_result(cases[i].body,
                                           strlen(cases[i].body)),
                    cases[i].want);
}

static void test_mesh__opa_input(void) {
  mesh_authz_request_t *r = mesh_authz_request_new();
  mesh_authz_request_set_principal(r, BOB);
  mesh_authz_request_set_port(r, 9000);
  char *doc = mesh__opa_input(r, "spiffe://example.org/ns/shop/sa/api");
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  /* no HTTP part for a connection-level request */
  CU_ASSERT_PTR_NULL(strstr(doc, "\"request\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(doc, "\"portValue\":9000"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(doc, "\"principal\":\"spiffe://example.org/ns/shop/sa/api\""));
  free(doc);
  mesh_authz_request_set_http(r, "POST", "/a", "h");
  mesh_authz_request_add_header(r, "X-A", "1");
  mesh_authz_request_add_header(r, "x-a", "2");
  doc = mesh__opa_input(r, NULL);
  /* joined with "," as RBAC's header conditions and Envoy see them */
  CU_ASSERT_PTR_NOT_NULL(strstr(doc, "\"x-a\":\"1,2\""));
  free(doc);
  mesh_authz_request_free(r);
}

/* ---- the served path is the one OPA judges ------------------------------------- */

static int ok_handler(const mesh_http_request_t *req,
                      mesh_http_response_t *resp, void *user) {
  (void)req;
  (void)user;
  mesh_http_response_set_body(resp, "served", 6);
  return 0;
}

struct srv {
  pthread_t t;
  int fd;
  mesh_t *m;
  mesh__http_peer_t peer;
};

static void *srv_main(void *arg) {
  struct srv *s = arg;
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &s->fd);
  mesh__http_serve_io(s->m, &io, &s->peer, ok_handler, NULL, NULL);
  close(s->fd);
  return NULL;
}

/* One request through mesh__http_serve_io; the reply (malloc'd). */
static char *serve_one(mesh_t *m, const char *target) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct srv s = {.fd = sv[1], .m = m};
  s.peer.peer_id = BOB;
  s.peer.local_port = 8443;
  pthread_create(&s.t, NULL, srv_main, &s);
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: svc\r\n\r\n",
                   target);
  CU_ASSERT_EQUAL(write(sv[0], req, (size_t)n), n);
  shutdown(sv[0], SHUT_WR);
  size_t cap = 8192, len = 0;
  char *out = malloc(cap + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  mesh__http_io_t io;
  mesh__http_io_fd(&io, &sv[0]);
  int64_t deadline = mesh__now_ms() + 10000;
  for (long r; len < cap &&
               (r = io.read(io.ctx, out + len, cap - len, deadline)) > 0;)
    len += (size_t)r;
  out[len] = '\0';
  pthread_join(s.t, NULL);
  close(sv[0]);
  return out;
}

/* A CUSTOM policy that sends every request to OPA, whose policy denies
 * /admin: each spelling of /admin is denied, because OPA's
 * attributes.request.http.path is the path RBAC matched (normalized, with
 * the query as sent), as in Envoy's CheckRequest; the target as sent is in
 * original_path. */
static void test_mesh__opa_input_served_path(void) {
  struct stub s;
  CU_ASSERT_FATAL(stub_start(&s, "path"));
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"authz\":{\"opa\":{\"url\":"
           "\"http://127.0.0.1:%d/v1/data/mesh/allow\",\"cache_ttl_ms\":0"
           TIMEOUT_ANSWER "},"
           "\"policies\":[{\"name\":\"ext\",\"action\":\"CUSTOM\","
           "\"rules\":[{\"to\":[{\"paths\":[\"*\"]}]}]}]}}",
           s.port);
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, NULL), MESH_OK);
  static const char *const denied[] = {
      "/admin/x",  "//admin/x",     "/%61dmin/x",      "/x/../admin/x",
      "/./admin/x", "/admin\\x", "/foo\\..\\admin\\x", "/%2e%2e/admin/x",
      "http://svc/admin/x",
  };
  for (size_t i = 0; i < N(denied); i++) {
    char *out = serve_one(m, denied[i]);
    bool refused = strstr(out, "HTTP/1.1 403") != NULL;
    if (!refused)
      fprintf(stderr, "OPA let %s through (%zu bytes): %.200s\n", denied[i],
              strlen(out), out);
    CU_ASSERT(refused);
    free(out);
  }
  char *out = serve_one(m, "/public/./a?x=/admin");
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 200"));
  free(out);
  CU_ASSERT_EQUAL(stub_hits(&s), (int)N(denied) + 1);
  /* the input documents: normalized path + query, original_path as sent */
  char *txt = th_slurp(s.log, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(txt);
  CU_ASSERT_PTR_NOT_NULL(strstr(txt, "\"path\":\"/admin/x\","
                                     "\"original_path\":\"//admin/x\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(txt, "\"path\":\"/public/a?x=/admin\","
                                     "\"original_path\":\"/public/./a?x=/admin\""));
  free(txt);
  mesh_free(m);
  th_stop(s.pid);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("authz_opa", NULL, NULL);
  CU_add_test(s, "mesh__opa_parse_result", test_mesh__opa_parse_result);
  CU_add_test(s, "mesh__opa_input", test_mesh__opa_input);
  CU_add_test(s, "mesh__opa_input_served_path",
              test_mesh__opa_input_served_path);
  CU_add_test(s, "mesh__opa_check_decisions",
              test_mesh__opa_check_decisions);
  CU_add_test(s, "mesh__opa_check_cache", test_mesh__opa_check_cache);
  CU_add_test(s, "mesh__opa_check_fail_modes",
              test_mesh__opa_check_fail_modes);
  CU_add_test(s, "mesh__opa_check_object_result",
              test_mesh__opa_check_object_result);
}

int main(void) { return th_run_suites("test_authz_opa", add); }
