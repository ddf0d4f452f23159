/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint over real HTTP (libcurl as the client): every route,
 * strict request handling, /metrics accepted by promtool and scraped by a
 * real Prometheus, the page rendered by headless Chromium; secrets never in
 * /config or in log lines. */
#include "helpers.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "observe/observe.h"
#include "telemetry/telemetry.h"

#define SECRET "s3cr3t-t0ken-9f8e7d"

/* ---- a captured log ----------------------------------------------------- */

static char logbuf[1 << 16];
static size_t loglen;
static pthread_mutex_t logmu = PTHREAD_MUTEX_INITIALIZER;

static void capture(int level, const char *line, void *user) {
  (void)level;
  (void)user;
  pthread_mutex_lock(&logmu);
  size_t n = strlen(line);
  if (loglen + n + 2 < sizeof logbuf) {
    memcpy(logbuf + loglen, line, n);
    loglen += n;
    logbuf[loglen++] = '\n';
    logbuf[loglen] = '\0';
  }
  pthread_mutex_unlock(&logmu);
}

/* ---- HTTP client -------------------------------------------------------- */

typedef struct reply {
  long code;
  char *body;
  size_t len;
  char ctype[128];
} reply_t;

static size_t on_data(char *p, size_t sz, size_t n, void *user) {
  reply_t *r = user;
  char *nb = realloc(r->body, r->len + sz * n + 1);
  if (!nb)
    return 0;
  r->body = nb;
  memcpy(r->body + r->len, p, sz * n);
  r->len += sz * n;
  r->body[r->len] = '\0';
  return sz * n;
}

static reply_t http(int port, const char *method, const char *path,
                    const char *host) {
  reply_t r = {0};
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  CURL *c = curl_easy_init();
  struct curl_slist *h = NULL;
  if (host) {
    char line[128];
    snprintf(line, sizeof line, "Host: %s", host);
    h = curl_slist_append(h, line);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (curl_easy_perform(c) == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
      mesh__strlcpy(r.ctype, ct, sizeof r.ctype);
  }
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  if (!r.body)
    r.body = calloc(1, 1);
  return r;
}

/* Raw bytes to the port; returns the status line's code (0 on failure). */
static int raw(int port, const char *req) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return 0;
  }
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
    close(fd);
    return 0;
  }
  char buf[256] = {0};
  ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  close(fd);
  int code = 0;
  if (n > 12)
    sscanf(buf, "HTTP/1.1 %d", &code);
  return code;
}

/* ---- the mesh under test -------------------------------------------------- */

static mesh_t *admin_mesh(int *port) {
  char json[4096];
  int dead = th_free_port();
  snprintf(json, sizeof json,
           "{\"name\":\"checkout\",\"log\":{\"level\":\"trace\"},"
           "\"admin\":{\"listen\":\"127.0.0.1:0\"},"
           "\"tracing\":{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d\",\"headers\":{\"Authorization\":"
           "\"Bearer " SECRET "\",\"X-Api-Key\":\"" SECRET "\"}},"
           "\"batch\":{\"max_delay_ms\":50},\"retry\":{\"max_attempts\":1}},"
           "\"services\":{"
           "\"payments\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
           "{\"address\":\"127.0.0.21\",\"port\":8443,\"weight\":3,"
           "\"locality\":{\"region\":\"eu-west\",\"zone\":\"eu-west-1a\"},"
           "\"labels\":{\"version\":\"v2\"},\"health\":\"healthy\"},"
           "{\"address\":\"127.0.0.22\",\"port\":8443,\"health\":\"unhealthy\"},"
           "{\"address\":\"fd00::3\",\"port\":8443,\"health\":\"draining\"}]}},"
           "\"search\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
           "{\"address\":\"127.0.0.23\",\"port\":9000}]}}}}",
           dead);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  mesh_set_log(m, MESH_LOG_TRACE, capture, NULL);
  *port = mesh_admin_port(m);
  CU_ASSERT_FATAL(*port > 0);
  /* Some spans for /spans and the page. */
  for (int i = 0; i < 3; i++) {
    mesh__span_t call, try_;
    mesh__span_start(m, &call, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
    mesh__span_attr_str(&call, MESH__ATTR_SERVICE, i == 2 ? "search" : "payments");
    mesh__span_start(m, &try_, "mesh.try", MESH_SPAN_CLIENT, &call, NULL);
    mesh__span_attr_str(&try_, MESH__ATTR_SERVER_ADDRESS, "127.0.0.21");
    if (i == 1)
      mesh__span_fail(&try_, MESH_ERR_CONNECT, "connection refused");
    mesh__span_end(&try_);
    mesh__span_end(&call);
  }
  return m;
}

static void test_admin_routes(void) {
  int port;
  mesh_t *m = admin_mesh(&port);

  reply_t r = http(port, "GET", "/healthz", NULL);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_STRING_EQUAL(r.body, "ok\n");
  free(r.body);

  r = http(port, "GET", "/endpoints", NULL);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_STRING_EQUAL(r.ctype, "application/json");
  cJSON *doc = cJSON_Parse(r.body);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  const cJSON *svcs = cJSON_GetObjectItem(doc, "services");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(svcs), 2);
  const cJSON *pay = cJSON_GetArrayItem(svcs, 0);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(pay, "name")->valuestring,
                         "payments");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(pay, "source")->valuestring,
                         "static");
  const cJSON *eps = cJSON_GetObjectItem(pay, "endpoints");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(eps), 3);
  int healthy = 0, unhealthy = 0, draining = 0;
  const cJSON *ep;
  cJSON_ArrayForEach(ep, eps) {
    const char *h = cJSON_GetObjectItem(ep, "health")->valuestring;
    healthy += strcmp(h, "healthy") == 0;
    unhealthy += strcmp(h, "unhealthy") == 0;
    draining += strcmp(h, "draining") == 0;
    CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(ep, "ejected"));
    CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(cJSON_GetObjectItem(ep, "lb"),
                                               "active_requests"));
    if (strcmp(cJSON_GetObjectItem(ep, "address")->valuestring, "127.0.0.21") ==
        0) {
      CU_ASSERT_EQUAL(cJSON_GetObjectItem(ep, "weight")->valueint, 3);
      CU_ASSERT_STRING_EQUAL(
          cJSON_GetObjectItem(cJSON_GetObjectItem(ep, "locality"), "zone")
              ->valuestring,
          "eu-west-1a");
      CU_ASSERT_STRING_EQUAL(
          cJSON_GetObjectItem(cJSON_GetObjectItem(ep, "labels"), "version")
              ->valuestring,
          "v2");
      CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(ep, "usable")));
    }
  }
  CU_ASSERT_EQUAL(healthy, 1);
  CU_ASSERT_EQUAL(unhealthy, 1);
  CU_ASSERT_EQUAL(draining, 1);
  cJSON_Delete(doc);
  free(r.body);

  r = http(port, "GET", "/config", NULL);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_PTR_NULL(strstr(r.body, SECRET));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"Authorization\":\"[REDACTED]\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"X-Api-Key\":\"[REDACTED]\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"payments\"")); /* the rest stays */
  free(r.body);

  r = http(port, "GET", "/identity", NULL);
  CU_ASSERT_EQUAL(r.code, 200);
  doc = cJSON_Parse(r.body);
  CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(doc, "spiffe_id"));
  cJSON_Delete(doc);
  free(r.body);

  r = http(port, "GET", "/spans?limit=5", NULL); /* query strings ignored */
  CU_ASSERT_EQUAL(r.code, 200);
  doc = cJSON_Parse(r.body);
  const cJSON *spans = cJSON_GetObjectItem(doc, "spans");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(spans), 6);
  const cJSON *newest = cJSON_GetArrayItem(spans, 0);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(newest, "name")->valuestring,
                         "mesh.call");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(newest, "target")->valuestring,
                         "search");
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItem(cJSON_GetArrayItem(spans, 3), "error")->valuestring,
      "MESH_ERR_CONNECT");
  cJSON_Delete(doc);
  free(r.body);

  r = http(port, "GET", "/", NULL);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.ctype, "text/html"));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "<title>libmesh admin</title>"));
  CU_ASSERT_PTR_NULL(strstr(r.body, "http://")); /* no external assets */
  CU_ASSERT_PTR_NULL(strstr(r.body, "https://"));
  free(r.body);

  r = http(port, "HEAD", "/metrics", NULL);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_EQUAL(r.len, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.ctype, "version=0.0.4"));
  free(r.body);

  /* strictness */
  struct {
    const char *method, *path, *host;
    long code;
  } bad[] = {
      {"GET", "/nope", NULL, 404},
      {"POST", "/metrics", NULL, 405},
      {"DELETE", "/config", NULL, 405},
      {"GET", "/config", "evil.example.com", 403},  /* DNS rebinding */
      {"GET", "/config", "localhost:9901", 200},
      {"GET", "/healthz", "[::1]:80", 200},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = http(port, bad[i].method, bad[i].path, bad[i].host);
    if (r.code != bad[i].code)
      fprintf(stderr, "case %zu: %ld\n", i, r.code);
    CU_ASSERT_EQUAL(r.code, bad[i].code);
    free(r.body);
  }
  CU_ASSERT_EQUAL(raw(port, "GET /healthz HTTP/1.1\r\n\r\n"), 400); /* no Host */
  CU_ASSERT_EQUAL(raw(port, "GET /healthz HTTP/1.1\nHost: a\n\n"), 400);
  CU_ASSERT_EQUAL(raw(port, "GARBAGE\r\n\r\n"), 400);
  CU_ASSERT_EQUAL(raw(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Length: 5\r\n\r\nhello"),
                  400);
  char big[9000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, "GET /", 5);
  CU_ASSERT_EQUAL(raw(port, big), 431);

  /* The admin counts its own requests. */
  r = http(port, "GET", "/metrics", NULL);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(r.body, "mesh_admin_requests_total{path=\"other\",code=\"403\"} 1\n"));
  free(r.body);
  mesh_free(m);
  /* Nothing secret reached the log at trace level either. */
  pthread_mutex_lock(&logmu);
  CU_ASSERT_PTR_NULL(strstr(logbuf, SECRET));
  CU_ASSERT_PTR_NOT_NULL(strstr(logbuf, "event=trace_export_drop"));
  pthread_mutex_unlock(&logmu);
}

static void test_admin_config(void) {
  static const struct {
    const char *json, *msg;
  } bad[] = {
      {"{\"admin\":{\"listen\":\"localhost\"}}", "admin.listen: expected"},
      {"{\"admin\":{\"listen\":\"example.com:80\"}}", "admin.listen"},
      {"{\"admin\":{\"listen\":\"127.0.0.1:70000\"}}", "admin.listen"},
      {"{\"admin\":{\"listen\":\"[::1:80\"}}", "admin.listen"},
      {"{\"admin\":{\"port\":80}}", "admin.port: unknown key"},
      {"{\"admin\":{\"enabled\":\"yes\"}}", "admin.enabled"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(bad[i].json, &m, &st), MESH_ERR_CONFIG);
    if (!strstr(st.message, bad[i].msg))
      fprintf(stderr, "case %zu: %s\n", i, st.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, bad[i].msg));
  }
  /* Opt-in: absent or disabled means no listener. */
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL(mesh_new("{}", &m, NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh_admin_port(m), MESH_ERR_NOT_FOUND);
  mesh_free(m);
  CU_ASSERT_EQUAL(mesh_new("{\"admin\":{\"enabled\":false}}", &m, NULL),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_admin_port(m), MESH_ERR_NOT_FOUND);
  mesh_free(m);
  /* IPv6 loopback works too. */
  CU_ASSERT_EQUAL(mesh_new("{\"admin\":{\"listen\":\"[::1]:0\"}}", &m, NULL),
                  MESH_OK);
  CU_ASSERT(mesh_admin_port(m) > 0);
  mesh_free(m);
  /* A port in use is a clear error. */
  int port;
  mesh_t *a = admin_mesh(&port);
  char json[128];
  snprintf(json, sizeof json, "{\"admin\":{\"listen\":\"127.0.0.1:%d\"}}",
           port);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new(json, &m, &st), MESH_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "admin.listen"));
  mesh_free(a);
}

/* ---- idle connections cannot lock the endpoint out (issue 12, item 11) ---- */

static int connect_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* 80 idle sockets (more than the 64 slots) hold connections that never
 * send a byte; /healthz must still answer at once (the oldest idle
 * connection gives way), and well before the 2 s head deadline would
 * have freed a slot.  Without eviction the new connection was closed. */
static void test_admin_idle_connections(void) {
  int port;
  mesh_t *m = admin_mesh(&port);
  enum { IDLE = 80 };
  int fds[IDLE];
  int open_ = 0;
  for (int i = 0; i < IDLE; i++) {
    fds[i] = connect_port(port);
    open_ += fds[i] >= 0;
  }
  CU_ASSERT_EQUAL(open_, IDLE);
  /* let the worker accept them all (bounded wait for the slots to fill) */
  struct timespec ts = {0, 200 * 1000000L};
  nanosleep(&ts, NULL);
  int64_t t0 = mesh__now_ms();
  for (int i = 0; i < 3; i++) {
    reply_t r = http(port, "GET", "/healthz", NULL);
    CU_ASSERT_EQUAL(r.code, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "ok\n");
    free(r.body);
  }
  int64_t took = mesh__now_ms() - t0;
  /* The answer itself (200 above) is what fails without eviction (the new
   * connection was closed at once); the time is only a loud cap. */
  if (took > 1000)
    fprintf(stderr, "admin_idle_connections: 3 answers took %lld ms\n",
            (long long)took);
  CU_ASSERT_TRUE(took < 10000);
  reply_t mr = http(port, "GET", "/metrics", NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(mr.body, "mesh_admin_evicted_total "));
  free(mr.body);
  /* The oldest idle socket was the one closed. */
  char b;
  struct timeval tv = {2, 0};
  setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  CU_ASSERT_EQUAL(recv(fds[0], &b, 1, 0), 0);
  for (int i = 0; i < IDLE; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  mesh_free(m);
}

/* POST /log?level=NAME changes the level at run time: loopback only, with
 * the X-Mesh-Admin header (a cross-origin form cannot send it). */
static void test_admin_log_level(void) {
  int port;
  mesh_t *m = admin_mesh(&port);
  reply_t r = http(port, "GET", "/log", NULL);
  CU_ASSERT_STRING_EQUAL(r.body, "trace\n"); /* admin_mesh's config */
  free(r.body);
  static const struct {
    const char *req;
    int code;
  } cases[] = {
      {"POST /log?level=debug HTTP/1.1\r\nHost: 127.0.0.1\r\n"
       "X-Mesh-Admin: 1\r\nContent-Length: 0\r\n\r\n", 200},
      {"POST /log?level=error HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 403},
      {"POST /log?level=loud HTTP/1.1\r\nHost: 127.0.0.1\r\n"
       "X-Mesh-Admin: 1\r\n\r\n", 400},
      {"POST /log?level=error HTTP/1.1\r\nHost: evil.example\r\n"
       "X-Mesh-Admin: 1\r\n\r\n", 403},
      {"POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int code = raw(port, cases[i].req);
    if (code != cases[i].code)
      fprintf(stderr, "log level case %zu: %d, expected %d\n", i, code,
              cases[i].code);
    CU_ASSERT_EQUAL(code, cases[i].code);
  }
  r = http(port, "GET", "/log", NULL);
  CU_ASSERT_STRING_EQUAL(r.body, "debug\n"); /* only the allowed one took */
  free(r.body);
  mesh_free(m);
}

/* A client that sends part of a head and stalls is cut at the head
 * deadline (2 s), not the old 5 s. */
static void test_admin_head_deadline(void) {
  int port;
  mesh_t *m = admin_mesh(&port);
  int fd = connect_port(port);
  CU_ASSERT_FATAL(fd >= 0);
  const char *part = "GET /healthz HTTP/1.1\r\n"; /* no end of head */
  CU_ASSERT_EQUAL(send(fd, part, strlen(part), MSG_NOSIGNAL),
                  (ssize_t)strlen(part));
  struct timeval tv = {20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int64_t t0 = mesh__now_ms();
  char b;
  ssize_t got = recv(fd, &b, 1, 0);
  if (got != 0)
    fprintf(stderr, "head deadline: recv %zd errno %d\n", got, errno);
  CU_ASSERT_TRUE(got == 0 || (got < 0 && errno == ECONNRESET)); /* closed, no answer */
  int64_t took = mesh__now_ms() - t0;
  CU_ASSERT_TRUE(took >= 1500 && took < 4500);
  close(fd);
  mesh_free(m);
}

/* ---- Prometheus' own tools ------------------------------------------------- */

static void test_admin_promtool(void) {
  if (!th_require("promtool", "prometheus"))
    return;
  int port;
  mesh_t *m = admin_mesh(&port);
  mesh__histogram_observe(
      mesh__histogram(m, "mesh_call_duration_seconds", "Call latency.",
                      "service=payments", NULL, 0),
      0.003);
  reply_t r = http(port, "GET", "/metrics", NULL);
  CU_ASSERT_EQUAL(r.code, 200);
  const char *path = th_path("admin-metrics.txt");
  th_write(path, r.body);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  free(r.body);
  mesh_free(m);
}

static bool prom_query(int pport, const char *query, const char *want) {
  char path[256];
  snprintf(path, sizeof path, "/api/v1/query?query=%s", query);
  reply_t r = http(pport, "GET", path, NULL);
  bool ok = r.code == 200 && strstr(r.body, want) != NULL;
  free(r.body);
  return ok;
}

static void test_admin_prometheus_scrape(void) {
  if (!th_require("prometheus", "prometheus"))
    return;
  int port;
  mesh_t *m = admin_mesh(&port);
  int pport = th_free_port();
  char cfg[512], listen[64], data[512], cfgarg[600], dataarg[600];
  snprintf(cfg, sizeof cfg,
           "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
           "scrape_configs:\n  - job_name: mesh\n    static_configs:\n"
           "      - targets: ['127.0.0.1:%d']\n",
           port);
  const char *cfgpath = th_path("prometheus.yml");
  th_write(cfgpath, cfg);
  snprintf(data, sizeof data, "%s", th_path("prom-data"));
  snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", pport);
  snprintf(cfgarg, sizeof cfgarg, "--config.file=%s", cfgpath);
  snprintf(dataarg, sizeof dataarg, "--storage.tsdb.path=%s", data);
  const char *argv[] = {"prometheus", cfgarg, dataarg, listen, NULL};
  pid_t pid = th_spawn(argv, "prometheus");
  CU_ASSERT_FATAL(pid > 0);
  CU_ASSERT_FATAL(th_wait_port(pport, 15000));
  bool up = false, ours = false;
  for (int i = 0; i < 150 && !(up && ours); i++) {
    up = up || prom_query(pport, "up%7Bjob%3D%22mesh%22%7D", "\"1\"]");
    ours = ours || prom_query(pport,
                              "mesh_trace_spans_total%7Bsampled%3D%22true%22%7D",
                              "\"6\"]");
    if (!(up && ours))
      usleep(100000);
  }
  CU_ASSERT_TRUE(up);
  CU_ASSERT_TRUE(ours);
  /* The scrape itself was clean: no samples rejected. */
  CU_ASSERT_TRUE(prom_query(pport, "scrape_samples_post_metric_relabeling", "job\":\"mesh\""));
  th_stop(pid);
  mesh_free(m);
}

/* ---- the page in a real browser --------------------------------------------- */

/* The sum of a series family's samples in Prometheus text whose line
 * starts with prefix (name and leading labels). */
static double prom_sum(const char *text, const char *prefix) {
  double s = 0;
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, prefix, n) == 0) {
      const char *v = strchr(p, ' ');
      if (v)
        s += strtod(v + 1, NULL);
    }
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  return s;
}

/* The DOM holds `needle` followed, after the end of its tag, by `want`. */
static bool dom_value(const char *html, const char *needle, const char *want) {
  const char *p = strstr(html, needle);
  if (!p)
    return false;
  const char *gt = strchr(p, '>');
  return gt && strncmp(gt + 1, want, strlen(want)) == 0;
}

/* Over 60 lines on purpose: one browser run (seconds each) renders the
 * page once, and every fact of that one DOM is checked here against the
 * series set above and against /metrics. */
static void test_admin_page_chromium(void) {
  if (!th_require("chromium", "chromium"))
    return;
  int port;
  mesh_t *m = admin_mesh(&port);
  /* Calls, latencies and authorization decisions the page must show. */
  mesh__counter_add(mesh__counter(m, "mesh_calls_total", "Calls.",
                                  "service=payments,endpoint=127.0.0.21:8443,"
                                  "outcome=ok"),
                    7);
  mesh__counter_add(mesh__counter(m, "mesh_calls_total", "Calls.",
                                  "service=payments,endpoint=127.0.0.21:8443,"
                                  "outcome=error"),
                    3);
  mesh__metric_t *lat = mesh__histogram(m, "mesh_call_duration_seconds",
                                        "Call latency.", "service=payments",
                                        NULL, 0); /* the library's buckets */
  CU_ASSERT_PTR_NOT_NULL(lat);
  for (int i = 0; i < 10; i++)
    mesh__histogram_observe(lat, i < 9 ? 0.003 : 0.07);
  mesh__counter_add(mesh__counter(m, "mesh_authz_decisions_total", "Authz.",
                                  "action=allow,policy=frontend-only"),
                    5);
  mesh__counter_add(mesh__counter(m, "mesh_authz_decisions_total", "Authz.",
                                  "action=deny,policy=frontend-only"),
                    2);
  char url[64], shot[512], prof[512], arg_shot[600], arg_prof[600];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
  snprintf(shot, sizeof shot, "%s", th_path("admin.png"));
  snprintf(prof, sizeof prof, "%s", th_path("chromium-profile"));
  snprintf(arg_shot, sizeof arg_shot, "--screenshot=%s", shot);
  snprintf(arg_prof, sizeof arg_prof, "--user-data-dir=%s", prof);
  const char *common =
      "chromium --headless --no-sandbox --disable-gpu "
      "--disable-background-networking --disable-component-update "
      "--disable-sync --no-first-run --virtual-time-budget=4000 ";
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s --user-data-dir='%s' --window-size=1280,800 "
           "--screenshot='%s' '%s'", common, prof, shot, url);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  size_t len = 0;
  char *png = th_slurp(shot, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(png);
  CU_ASSERT(len > 20000); /* a rendered page, not a blank one */
  CU_ASSERT_EQUAL(memcmp(png, "\x89PNG\r\n\x1a\n", 8), 0);
  free(png);
  if (getenv("MESH_ADMIN_SCREENSHOT")) { /* refresh docs/admin.png */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", shot,
             getenv("MESH_ADMIN_SCREENSHOT"));
    th_sh(cmd);
  }
  /* The DOM after the scripts ran holds the data from the JSON routes. */
  const char *dom = th_path("admin-dom.html");
  snprintf(cmd, sizeof cmd, "%s --user-data-dir='%s' --dump-dom '%s' > '%s'",
           common, prof, url, dom);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  char *html = th_slurp(dom, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(html);
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "data-service=\"payments\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "data-service=\"search\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "[fd00::3]:8443"));
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "eu-west/eu-west-1a"));
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "mesh.try"));
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "MESH_ERR_CONNECT"));
  CU_ASSERT_PTR_NULL(strstr(html, ">loading</div>"));
  /* States as /endpoints says them: search's endpoint has no health
   * (unknown), payments has one healthy, one unhealthy, one draining. */
  CU_ASSERT_TRUE(dom_value(html, "data-state=\"unknown\"", "unknown<"));
  CU_ASSERT_TRUE(dom_value(html, "data-state=\"draining\"", "draining<"));
  CU_ASSERT_PTR_NULL(strstr(html, "data-state=\"healthy\">unknown"));
  /* The numbers match /metrics. */
  reply_t mr = http(port, "GET", "/metrics", NULL);
  if (getenv("ADMIN_DEBUG"))
    fputs(mr.body, stderr);
  double total = prom_sum(mr.body, "mesh_calls_total{service=\"payments\"");
  double ok = prom_sum(mr.body, "mesh_calls_total{service=\"payments\","
                                "endpoint=\"127.0.0.21:8443\",outcome=\"ok\"");
  double allow = prom_sum(mr.body, "mesh_authz_decisions_total{action=\"allow\","
                                   "policy=\"frontend-only\"");
  double deny = prom_sum(mr.body, "mesh_authz_decisions_total{action=\"deny\","
                                  "policy=\"frontend-only\"");
  free(mr.body);
  CU_ASSERT_EQUAL(total, 10);
  char want[64];
  snprintf(want, sizeof want, "%.0f<", total);
  CU_ASSERT_TRUE(dom_value(html, "data-stat=\"calls\"", want));
  snprintf(want, sizeof want, "%.1f%%<", 100 * ok / total);
  CU_ASSERT_TRUE(dom_value(html, "data-stat=\"success\"", want));
  /* 9 of 10 calls in (2.5 ms, 5 ms]: p50 interpolates to 2.5 + 2.5 * 5/9
   * = 3.89 ms; the slowest in (50 ms, 100 ms]: p99 = 50 + 50 * 0.9 = 95 ms
   * (Prometheus' histogram_quantile) */
  CU_ASSERT_TRUE(dom_value(html, "data-stat=\"p50\"", "3.89 ms<"));
  CU_ASSERT_TRUE(dom_value(html, "data-stat=\"p99\"", "95.00 ms<"));
  const char *row = strstr(html, "data-policy=\"frontend-only\"");
  CU_ASSERT_PTR_NOT_NULL_FATAL(row);
  snprintf(want, sizeof want, "%.0f<", allow);
  CU_ASSERT_TRUE(dom_value(row, "data-action=\"allow\"", want));
  snprintf(want, sizeof want, "%.0f<", deny);
  CU_ASSERT_TRUE(dom_value(row, "data-action=\"deny\"", want));
  /* Spans: the status, and trace ids whole (32 hex digits). */
  const char *tr = strstr(html, "data-trace=\"");
  CU_ASSERT_PTR_NOT_NULL_FATAL(tr);
  tr += strlen("data-trace=\"");
  CU_ASSERT_EQUAL(strspn(tr, "0123456789abcdef"), 32);
  CU_ASSERT_TRUE(dom_value(tr, "", ""));
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "data-status=\"error\""));
  /* The identity card and the log level selector. */
  CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"loglevel\""));
  free(html);
  mesh_free(m);
}

/* Redaction itself is tested in tests/test_redact.c (core/redact.c). */

static void add(void) {
  CU_pSuite s = CU_add_suite("admin", NULL, NULL);
  CU_add_test(s, "admin_routes", test_admin_routes);
  CU_add_test(s, "admin_config", test_admin_config);
  CU_add_test(s, "admin_promtool", test_admin_promtool);
  CU_add_test(s, "admin_prometheus_scrape", test_admin_prometheus_scrape);
  CU_add_test(s, "admin_page_chromium", test_admin_page_chromium);
  CU_add_test(s, "admin_idle_connections", test_admin_idle_connections);
  CU_add_test(s, "admin_head_deadline", test_admin_head_deadline);
  CU_add_test(s, "admin_log_level", test_admin_log_level);
}

int main(void) { return th_run_suites("admin", add); }
