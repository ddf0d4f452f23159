/* SPDX-License-Identifier: Apache-2.0 */
/* Secret redaction (core/redact.c): exact rules for log lines and the
 * config view, and a canary secret placed in every secret-bearing field of
 * a config, with real peers that make every part fail and log, then
 * looked for in every output: log lines, the admin views (/config,
 * /metrics and the others), the spans a real collector received, and the
 * error messages of mesh_new, mesh_config_check and mesh_dial. */
#include "helpers.h"

#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include <mesh/authz.h>

#define CANARY "c4n4ry-Zq7x"

/* ---- log lines ------------------------------------------------------------------ */

static void test_mesh__log_redact(void) {
  static const struct {
    const char *in, *out;
    int n;
  } cases[] = {
      {"level=info event=x token=abc123 peer=a",
       "level=info event=x token=[REDACTED] peer=a", 1},
      {"password=\"p w\" x=1", "password=[REDACTED] x=1", 1},
      /* names of secrets, not secrets: a key file's path, an etcd key */
      {"private_key=/etc/k.pem", "private_key=/etc/k.pem", 0},
      {"event=registered key=pay/127.0.0.1:80 lease=1",
       "event=registered key=pay/127.0.0.1:80 lease=1", 0},
      {"monkey=1 keys=2 tokens_used=3", "monkey=1 keys=2 tokens_used=3", 0},
      {"hdr=\"Authorization: Bearer abc.def\"",
       "hdr=\"Authorization: Bearer [REDACTED]\"", 1},
      {"sent Bearer eyJhbGciOi", "sent Bearer [REDACTED]", 1},
      {"X-Api-Key: k1, other: v", "X-Api-Key: [REDACTED], other: v", 1},
      {"client_secret=s&user=u", "client_secret=[REDACTED]&user=u", 1},
      {"keepalive=1 monkeys=2 path=/a", "keepalive=1 monkeys=2 path=/a", 0},
      {"err=\"etcd http://u:pw@127.0.0.1:2379/v3/kv/range: refused\"",
       "err=\"etcd http://[REDACTED]@127.0.0.1:2379/v3/kv/range: refused\"", 1},
      {"url=https://tok@h/x?q=a@b u2=http://h/a@b",
       "url=https://[REDACTED]@h/x?q=a@b u2=http://h/a@b", 1},
      {"pem=\"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE "
       "KEY-----\" ok=1",
       "pem=\"[REDACTED PRIVATE KEY]\" ok=1", 1},
      {"cert=\"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\"",
       "cert=\"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\"",
       0},
      {"token=[REDACTED]", "token=[REDACTED]", 0},
      {"u=http://[REDACTED]@h", "u=http://[REDACTED]@h", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char line[512];
    mesh__strlcpy(line, cases[i].in, sizeof line);
    int n = mesh__log_redact(line, sizeof line);
    if (strcmp(line, cases[i].out) != 0 || n != cases[i].n)
      fprintf(stderr, "case %zu: %s (%d)\n", i, line, n);
    CU_ASSERT_STRING_EQUAL(line, cases[i].out);
    CU_ASSERT_EQUAL(n, cases[i].n);
  }
  /* Growth past the buffer cuts the tail, never overflows. */
  char small[16];
  mesh__strlcpy(small, "token=a b=cdef", sizeof small);
  mesh__log_redact(small, sizeof small);
  CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
  CU_ASSERT_EQUAL(strncmp(small, "token=[REDACTED", 15), 0);
  CU_ASSERT_EQUAL(mesh__log_redact(NULL, 5), 0);
}

/* ---- the config view ------------------------------------------------------------ */

static void test_mesh__json_redact(void) {
  cJSON *j = cJSON_Parse(
      "{\"identity\":{\"key\":\"/k.pem\",\"cert\":\"/c.pem\"},"
      "\"tracing\":{\"otlp\":{\"endpoint\":\"http://u:pw@127.0.0.1:4318\","
      "\"headers\":{\"X-Anything\":\"h1\",\"authorization\":\"Bearer t\"}},"
      "\"zipkin\":{\"endpoint\":\"http://127.0.0.1:9411/api/v2/spans\","
      "\"headers\":{\"x\":\"h2\"}}},"
      "\"register\":{\"etcd\":{\"endpoints\":[\"https://a:b@e:2379\"],"
      "\"username\":\"u\",\"password\":\"pw\"},\"service\":\"s\"},"
      "\"services\":{\"keys\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
      "[\"http://e:2379\"],\"prefix\":\"token/\",\"username\":\"u\","
      "\"password\":\"pw2\"}}},"
      "\"inline\":\"-----BEGIN PRIVATE KEY-----\\nAAA\\n-----END PRIVATE "
      "KEY-----\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  mesh__json_redact(j);
  char *out = cJSON_PrintUnformatted(j);
  CU_ASSERT_STRING_EQUAL(
      out,
      "{\"identity\":{\"key\":\"/k.pem\",\"cert\":\"/c.pem\"},"
      "\"tracing\":{\"otlp\":{\"endpoint\":\"http://[REDACTED]@127.0.0.1:"
      "4318\",\"headers\":{\"X-Anything\":\"[REDACTED]\",\"authorization\":"
      "\"[REDACTED]\"}},\"zipkin\":{\"endpoint\":\"http://127.0.0.1:9411/api/"
      "v2/spans\",\"headers\":{\"x\":\"[REDACTED]\"}}},"
      "\"register\":{\"etcd\":{\"endpoints\":[\"https://[REDACTED]@e:2379\"],"
      "\"username\":\"u\",\"password\":\"[REDACTED]\"},\"service\":\"s\"},"
      "\"services\":{\"keys\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
      "[\"http://e:2379\"],\"prefix\":\"token/\",\"username\":\"u\","
      "\"password\":\"[REDACTED]\"}}},"
      "\"inline\":\"[REDACTED]\"}");
  free(out);
  cJSON_Delete(j);
}

/* ---- the canary ----------------------------------------------------------------- */

static char logbuf[1 << 18];
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

static bool log_has(const char *s) {
  pthread_mutex_lock(&logmu);
  bool r = strstr(logbuf, s) != NULL;
  pthread_mutex_unlock(&logmu);
  return r;
}

typedef struct body {
  char *p;
  size_t n;
} body_t;

static size_t on_data(char *p, size_t sz, size_t n, void *user) {
  body_t *b = user;
  char *nb = realloc(b->p, b->n + sz * n + 1);
  if (!nb)
    return 0;
  b->p = nb;
  memcpy(b->p + b->n, p, sz * n);
  b->n += sz * n;
  b->p[b->n] = '\0';
  return sz * n;
}

static char *http_get(int port, const char *path) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  body_t b = {calloc(1, 1), 0};
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  CU_ASSERT_EQUAL(rc, CURLE_OK);
  return b.p;
}

typedef struct collector {
  pid_t pid;
  int port;
  char dir[512];
} collector_t;

static bool collector_start(collector_t *c, const char *name) {
  snprintf(c->dir, sizeof c->dir, "%s", th_path(name));
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", c->dir);
  if (th_sh(cmd) != 0)
    return false;
  c->port = th_free_port();
  char port[16];
  snprintf(port, sizeof port, "%d", c->port);
  const char *argv[] = {"python3",
                        TEST_SRCDIR "/tests/test_export_collector.py",
                        "--port", port, "--dir", c->dir, NULL};
  c->pid = th_spawn(argv, name);
  return c->pid > 0 && th_wait_port(c->port, 5000);
}

/* Every span body the collector stored, concatenated (NULL: none yet). */
static char *collected(const collector_t *c) {
  DIR *d = opendir(c->dir);
  if (!d)
    return NULL;
  char *all = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
      continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", c->dir, de->d_name);
    size_t len;
    char *t = th_slurp(path, &len);
    char *na = t ? realloc(all, n + len + 2) : NULL;
    if (na) {
      all = na;
      memcpy(all + n, t, len);
      n += len;
      all[n++] = '\n';
      all[n] = '\0';
    }
    free(t);
  }
  closedir(d);
  return all;
}

/* Where the canary was found, for the failure message. */
static void no_canary(const char *what, const char *text) {
  const char *hit = text ? strstr(text, CANARY) : NULL;
  if (hit) {
    const char *from = hit - text > 120 ? hit - 120 : text;
    fprintf(stderr, "\ncanary in %s: ...%.*s...\n", what,
            (int)(hit - from) + 40, from);
  }
  CU_ASSERT_PTR_NULL(hit);
}

static void on_check_error(const char *msg, void *user) {
  char *acc = user;
  size_t n = strlen(acc);
  snprintf(acc + n, 8192 - n, "%s\n", msg);
}

/* Configs that are wrong in ways whose messages quote the offending value:
 * the value carries the canary in a URL's userinfo. */
static void canary_in_errors(void) {
  static const char *const bad[] = {
      "{\"log\":{\"level\":\"http://u:" CANARY "@h\"}}",
      "{\"tracing\":{\"propagation\":[\"http://u:" CANARY "@h\"]}}",
      "{\"tracing\":{\"otlp\":{\"endpoint\":\"ftp://u:" CANARY "@h\"}}}",
      "{\"tracing\":{\"otlp\":{\"endpoint\":\"http://u:" CANARY "@h\","
      "\"headers\":{\"X-K\":\"" CANARY "\\r\\n\"}}}}",
      "{\"register\":{\"etcd\":{\"endpoints\":[\"gopher://u:" CANARY
      "@h\"],\"password\":\"" CANARY "\"},\"address\":\"a:1\"}}",
      "{\"authz\":{\"opa\":{\"url\":\"http://u:" CANARY "@h/nodata\"}}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char acc[8192] = "";
    CU_ASSERT(mesh_config_check(bad[i], on_check_error, acc) > 0);
    no_canary("mesh_config_check errors", acc);
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(bad[i], &m, &st), MESH_ERR_CONFIG);
    no_canary("mesh_new error", st.message);
  }
}

static void test_secrets_canary(void) {
  canary_in_errors();
  collector_t otlp, zipkin;
  CU_ASSERT_FATAL(collector_start(&otlp, "otlp"));
  CU_ASSERT_FATAL(collector_start(&zipkin, "zipkin"));
  int dead = th_free_port(); /* nothing listens: every etcd/OPA call fails */
  char json[4096];
  snprintf(
      json, sizeof json,
      "{\"name\":\"canary\",\"log\":{\"level\":\"trace\"},"
      "\"admin\":{\"listen\":\"127.0.0.1:0\"},"
      "\"tracing\":{\"sampler\":\"always_on\","
      " \"otlp\":{\"endpoint\":\"http://ou:" CANARY "@127.0.0.1:%d\","
      "  \"headers\":{\"X-Tenant\":\"" CANARY "\",\"Authorization\":\"Bearer "
      CANARY "\",\"api-key\":\"" CANARY "\"}},"
      " \"zipkin\":{\"endpoint\":\"http://zu:" CANARY
      "@127.0.0.1:%d/api/v2/spans\",\"headers\":{\"X-Z\":\"" CANARY "\"}},"
      " \"batch\":{\"max_delay_ms\":50},\"retry\":{\"max_attempts\":1}},"
      "\"authz\":{\"policies\":[{\"name\":\"ext\",\"action\":\"CUSTOM\","
      "\"provider\":\"opa\",\"rules\":[{}]}],\"opa\":{\"url\":\"http://pu:"
      CANARY "@127.0.0.1:%d/v1/data/mesh/allow\",\"timeout_ms\":300}},"
      "\"register\":{\"etcd\":{\"endpoints\":[\"http://ru:" CANARY
      "@127.0.0.1:%d\"],\"username\":\"reg\",\"password\":\"" CANARY "\","
      " \"timeout_ms\":200},\"address\":\"127.0.0.1:8080\",\"ttl_s\":3},"
      "\"services\":{\"pay\":{\"discovery\":{\"type\":\"etcd\",\"endpoints\":"
      "[\"http://du:" CANARY "@127.0.0.1:%d\"],\"prefix\":\"pay/\","
      "\"username\":\"disc\",\"password\":\"" CANARY "\",\"timeout_ms\":200}}}}",
      otlp.port, zipkin.port, dead, dead, dead);
  char acc[8192] = "";
  CU_ASSERT_EQUAL(mesh_config_check(json, on_check_error, acc), 0);
  if (acc[0])
    fprintf(stderr, "%s", acc);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  mesh_set_log(m, MESH_LOG_TRACE, capture, NULL);
  /* Spans through both exporters; a dial that fails (no endpoints). */
  for (int i = 0; i < 3; i++) {
    mesh_conn_t *c = NULL;
    mesh_status_t dst;
    CU_ASSERT_NOT_EQUAL(mesh_dial(m, "pay", NULL, &c, &dst), MESH_OK);
    no_canary("mesh_dial error", dst.message);
  }
  /* OPA unreachable: fails closed, and says so without the URL's secret */
  mesh_authz_request_t *ar = mesh_authz_request_new();
  CU_ASSERT_EQUAL(mesh_authz_request_set_principal(
                      ar, "spiffe://example.org/ns/default/sa/web"),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_authz_request_set_http(ar, "GET", "/x", "svc"),
                  MESH_OK);
  mesh_status_t ast;
  CU_ASSERT_EQUAL(mesh_authz_check(m, ar, &ast), MESH_ERR_DENIED);
  no_canary("mesh_authz_check error", ast.message);
  mesh_authz_request_free(ar);
  /* Wait (bounded) until etcd discovery and registration failed and were
   * logged, and both collectors received spans. */
  char *ot = NULL, *zt = NULL;
  for (int i = 0; i < 500; i++) {
    free(ot);
    free(zt);
    ot = collected(&otlp);
    zt = collected(&zipkin);
    if (ot && zt && log_has("event=discovery_error") &&
        log_has("event=register_error"))
      break;
    usleep(20000);
  }
  CU_ASSERT_TRUE(log_has("event=discovery_error"));
  CU_ASSERT_TRUE(log_has("event=register_error"));
  CU_ASSERT_PTR_NOT_NULL(ot);
  CU_ASSERT_PTR_NOT_NULL(zt);
  no_canary("OTLP spans", ot);
  no_canary("Zipkin spans", zt);
  free(ot);
  free(zt);
  int port = mesh_admin_port(m);
  CU_ASSERT_FATAL(port > 0);
  static const char *const views[] = {"/",         "/config",   "/metrics",
                                      "/endpoints", "/identity", "/spans",
                                      "/healthz"};
  for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
    char *b = http_get(port, views[i]);
    no_canary(views[i], b);
    if (!strcmp(views[i], "/config")) {
      /* shown, not dropped: the field is there, its value hidden */
      CU_ASSERT_PTR_NOT_NULL(strstr(b, "X-Tenant"));
      CU_ASSERT_PTR_NOT_NULL(strstr(b, "[REDACTED]@127.0.0.1"));
      CU_ASSERT_PTR_NOT_NULL(strstr(b, "\"prefix\":\"pay/\""));
    }
    free(b);
  }
  size_t need = 0;
  mesh_metrics_text(m, NULL, 0, &need);
  char *metrics = calloc(1, need + 4096);
  CU_ASSERT_FATAL(metrics != NULL);
  CU_ASSERT(mesh_metrics_text(m, metrics, need + 4096, NULL) >= 0);
  no_canary("mesh_metrics_text", metrics);
  free(metrics);
  mesh_free(m);
  pthread_mutex_lock(&logmu);
  no_canary("log lines", logbuf);
  if (getenv("TEST_REDACT_SHOW_LOG"))
    fputs(logbuf, stderr);
  /* the failing URLs are named, without their userinfo */
  CU_ASSERT_PTR_NOT_NULL(strstr(logbuf, "etcd http://[REDACTED]@127.0.0.1:"));
  /* not over-redacted: the etcd key registered under stays readable */
  CU_ASSERT_PTR_NOT_NULL(strstr(logbuf, "key=canary/127.0.0.1:8080"));
  pthread_mutex_unlock(&logmu);
  th_stop(otlp.pid);
  th_stop(zipkin.pid);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("redact", NULL, NULL);
  CU_add_test(s, "mesh__log_redact", test_mesh__log_redact);
  CU_add_test(s, "mesh__json_redact", test_mesh__json_redact);
  CU_add_test(s, "secrets_canary", test_secrets_canary);
}

int main(void) { return th_run_suites("test_redact", add); }
