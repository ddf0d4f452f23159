/* SPDX-License-Identifier: Apache-2.0 */
/* Span exporters: OTLP/HTTP JSON and Zipkin v2 to a loopback collector
 * (tests/test_export_collector.py), batching, backoff on 429/5xx, drops,
 * flush at shutdown; OTLP bodies checked against the official
 * opentelemetry-proto definitions by protobuf's own JSON parser
 * (tests/test_export_otlp_check.py). */
#include "helpers.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "telemetry/telemetry.h"
#include "telemetry/tracer.h"
#include "observe/exporter.h"


static const char *collector_py(void) {
  return TEST_SRCDIR "/tests/test_export_collector.py";
}

typedef struct collector {
  pid_t pid;
  int port;
  char dir[512];
} collector_t;

static int ncollectors;

static bool collector_start(collector_t *c, const char *fail,
                            const char *code, const char *retry_after) {
  char name[32];
  snprintf(name, sizeof name, "collector%d", ++ncollectors);
  snprintf(c->dir, sizeof c->dir, "%s", th_path(name));
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", c->dir);
  if (th_sh(cmd) != 0)
    return false;
  c->port = th_free_port();
  char port[16];
  snprintf(port, sizeof port, "%d", c->port);
  const char *argv[] = {"python3", collector_py(), "--port", port, "--dir",
                        c->dir, "--fail", fail, "--code", code,
                        "--retry-after", retry_after, NULL};
  c->pid = th_spawn(argv, name);
  return c->pid > 0 && th_wait_port(c->port, 5000);
}

/* Bodies received so far (sorted by arrival), with the given suffix. */
static size_t list_bodies(const collector_t *c, const char *suffix,
                          char names[][600], size_t max) {
  struct dirent **ents;
  int n = scandir(c->dir, &ents, NULL, alphasort);
  size_t k = 0;
  for (int i = 0; i < n; i++) {
    const char *nm = ents[i]->d_name;
    size_t l = strlen(nm), sl = strlen(suffix);
    if (k < max && l > sl && strcmp(nm + l - sl, suffix) == 0)
      snprintf(names[k++], 600, "%s/%s", c->dir, nm);
    free(ents[i]);
  }
  free(ents);
  return k;
}

static cJSON *load_json(const char *path) {
  char *text = th_slurp(path, NULL);
  cJSON *j = text ? cJSON_Parse(text) : NULL;
  free(text);
  return j;
}

static size_t otlp_span_count(const cJSON *doc) {
  size_t n = 0;
  const cJSON *rs, *ss;
  cJSON_ArrayForEach(rs, cJSON_GetObjectItem(doc, "resourceSpans"))
    cJSON_ArrayForEach(ss, cJSON_GetObjectItem(rs, "scopeSpans"))
      n += (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(ss, "spans"));
  return n;
}

static size_t received_spans(const collector_t *c, bool otlp) {
  char names[64][600];
  size_t nb = list_bodies(c, ".json", names, 64), total = 0;
  for (size_t i = 0; i < nb; i++) {
    cJSON *j = load_json(names[i]);
    total += otlp ? otlp_span_count(j) : (size_t)cJSON_GetArraySize(j);
    cJSON_Delete(j);
  }
  return total;
}

/* Bounded by the spans wanted; the cap is at least TH_CAP_MS (a loaded
 * machine only takes longer) and reported loudly. */
static bool wait_spans(const collector_t *c, bool otlp, size_t want,
                       int timeout_ms) {
  int64_t end = th_now_ms() + (timeout_ms > TH_CAP_MS ? timeout_ms : TH_CAP_MS);
  while (th_now_ms() < end) {
    if (received_spans(c, otlp) >= want)
      return true;
    usleep(20000);
  }
  if (received_spans(c, otlp) >= want)
    return true;
  fprintf(stderr, "\n  TIME CAP: %zu spans at the collector, want %zu\n",
          received_spans(c, otlp), want);
  return false;
}

static mesh_t *export_mesh(const char *tracing, bool external) {
  char json[2048];
  snprintf(json, sizeof json,
           "{\"name\":\"checkout\",\"log\":{\"level\":\"error\"},"
           "\"worker\":{\"mode\":\"%s\"},\"tracing\":%s}",
           external ? "external" : "thread", tracing);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  return m;
}

/* A call with one try, like the call layer will make them. */
static void make_call(mesh_t *m, int i) {
  mesh__span_t call, try_;
  mesh__span_start(m, &call, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
  mesh__span_attr_str(&call, MESH__ATTR_SERVICE, "payments");
  mesh__span_start(m, &try_, "mesh.try", MESH_SPAN_CLIENT, &call, NULL);
  mesh__span_attr_str(&try_, MESH__ATTR_SERVER_ADDRESS, "payments.internal");
  mesh__span_attr_int(&try_, MESH__ATTR_SERVER_PORT, 8443);
  mesh__span_attr_str(&try_, MESH__ATTR_PEER_ADDRESS, "127.0.0.1");
  mesh__span_attr_int(&try_, MESH__ATTR_PEER_PORT, 8443);
  mesh__span_attr_str(&try_, MESH__ATTR_PEER_SPIFFE_ID,
                      "spiffe://example.org/ns/prod/sa/payments");
  mesh__span_attr_int(&try_, MESH__ATTR_TRY, i);
  mesh__span_attr_bool(&try_, MESH__ATTR_TLS_RESUMED, i % 2);
  mesh__span_attr_double(&try_, "mesh.weight", 0.25);
  mesh__span_event(&try_, "handshake_done");
  if (i % 2)
    mesh__span_fail(&try_, MESH_ERR_TIMEOUT, "read timed out");
  mesh__span_end(&try_);
  mesh__span_end(&call);
}

static char *metrics(mesh_t *m) {
  char *text = NULL;
  mesh__metrics_render(m, &text, NULL);
  return text ? text : strdup("");
}

/* The metrics once they hold want: the collector has the body before the
 * exporter thread has read the answer and counted it (up to 5 s). */
static char *metrics_with(mesh_t *m, const char *want) {
  char *text = metrics(m);
  for (int i = 0; i < 500 && !strstr(text, want); i++) {
    free(text);
    nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
    text = metrics(m);
  }
  return text;
}

/* ---- the official protos (tests/data/otlp-proto, see its README) --------- */

static const char *otlp_protos(void) {
  static char dir[600];
  if (dir[0])
    return dir;
  const char *env = getenv("MESH_OTLP_PROTO_DIR");
  snprintf(dir, sizeof dir, "%s",
           env ? env : TEST_SRCDIR "/tests/data/otlp-proto");
  return dir;
}

/* ---- OTLP ------------------------------------------------------------------ */

static const cJSON *attr(const cJSON *attrs, const char *key) {
  const cJSON *a;
  cJSON_ArrayForEach(a, attrs) {
    const cJSON *k = cJSON_GetObjectItem(a, "key");
    if (cJSON_IsString(k) && strcmp(k->valuestring, key) == 0)
      return cJSON_GetObjectItem(a, "value");
  }
  return NULL;
}

static void check_otlp_try(const cJSON *s) {
  const cJSON *attrs = cJSON_GetObjectItem(s, "attributes");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(s, "kind")->valueint, 3);
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItem(attr(attrs, "server.address"), "stringValue")
          ->valuestring,
      "payments.internal");
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItem(attr(attrs, "server.port"), "intValue")->valuestring,
      "8443");
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItem(attr(attrs, "mesh.peer.spiffe_id"), "stringValue")
          ->valuestring,
      "spiffe://example.org/ns/prod/sa/payments");
  CU_ASSERT_PTR_NOT_NULL(
      cJSON_GetObjectItem(attr(attrs, "tls.resumed"), "boolValue"));
  CU_ASSERT_DOUBLE_EQUAL(
      cJSON_GetObjectItem(attr(attrs, "mesh.weight"), "doubleValue")
          ->valuedouble,
      0.25, 1e-12);
  const cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "events"), 0);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(ev, "name")->valuestring,
                         "handshake_done");
  CU_ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(ev, "timeUnixNano")));
  const cJSON *parent = cJSON_GetObjectItem(s, "parentSpanId");
  CU_ASSERT_TRUE(cJSON_IsString(parent) && strlen(parent->valuestring) == 16);
}

static void test_otlp_export(void) {
  collector_t c;
  CU_ASSERT_FATAL(collector_start(&c, "0", "503", "0"));
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d\",\"headers\":{\"X-Test-Token\":\"t0k\"}},"
           "\"batch\":{\"max_size\":4,\"max_delay_ms\":200}}",
           c.port);
  mesh_t *m = export_mesh(tracing, false);
  for (int i = 0; i < 5; i++) /* 10 spans: batches of 4, 4 and 2 */
    make_call(m, i);
  CU_ASSERT_TRUE(wait_spans(&c, true, 10, 5000));
  char names[16][600];
  size_t nb = list_bodies(&c, ".json", names, 16);
  CU_ASSERT_EQUAL(nb, 3);
  size_t tries = 0, calls = 0;
  for (size_t i = 0; i < nb; i++) {
    cJSON *doc = load_json(names[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT(otlp_span_count(doc) <= 4);
    const cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "resourceSpans"), 0);
    const cJSON *svc = attr(cJSON_GetObjectItem(cJSON_GetObjectItem(rs, "resource"),
                                                "attributes"),
                            "service.name");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(svc, "stringValue")->valuestring,
                           "checkout");
    const cJSON *ss = cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "scopeSpans"), 0);
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetObjectItem(cJSON_GetObjectItem(ss, "scope"), "name")
            ->valuestring,
        "libmesh");
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(ss, "spans")) {
      const char *name = cJSON_GetObjectItem(s, "name")->valuestring;
      CU_ASSERT_EQUAL(strlen(cJSON_GetObjectItem(s, "traceId")->valuestring),
                      32);
      CU_ASSERT_EQUAL(strlen(cJSON_GetObjectItem(s, "spanId")->valuestring),
                      16);
      CU_ASSERT(strtoull(cJSON_GetObjectItem(s, "endTimeUnixNano")->valuestring,
                         NULL, 10) >=
                strtoull(cJSON_GetObjectItem(s, "startTimeUnixNano")
                             ->valuestring,
                         NULL, 10));
      if (strcmp(name, "mesh.try") == 0) {
        tries++;
        check_otlp_try(s);
      } else if (strcmp(name, "mesh.call") == 0) {
        calls++;
        CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(s, "parentSpanId"));
      }
    }
    cJSON_Delete(doc);
    /* Content type and configured headers went along. */
    char meta[600];
    snprintf(meta, sizeof meta, "%.*s.meta", (int)(strlen(names[i]) - 5),
             names[i]);
    char *mt = th_slurp(meta, NULL);
    CU_ASSERT_PTR_NOT_NULL(mt ? strstr(mt, "application/json t0k ok") : NULL);
    free(mt);
    CU_ASSERT_PTR_NOT_NULL(strstr(names[i], "v1_traces"));
  }
  CU_ASSERT_EQUAL(tries, 5);
  CU_ASSERT_EQUAL(calls, 5);
  char *text = metrics_with(
      m, "mesh_trace_export_requests_total{exporter=\"otlp\",code=\"200\"} 3\n");
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "mesh_trace_export_spans_total{exporter=\"otlp\"} 10\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_requests_total{exporter=\"otlp\",code=\"200\"} 3\n"));
  free(text);
  mesh_free(m);

  /* The bodies, against the official proto definitions. */
  if (!th_require("protoc", "protobuf-compiler")) {
    th_stop(c.pid);
    return;
  }
  char cmd[8192];
  int o = snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/test_export_otlp_check.py' '%s'",
                   TEST_SRCDIR, otlp_protos());
  for (size_t i = 0; i < nb; i++)
    o += snprintf(cmd + o, sizeof cmd - (size_t)o, " '%s'", names[i]);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  /* The checker does fail on a body that breaks the schema. */
  const char *bad = th_path("bad-otlp.json");
  th_write(bad, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
                "\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":"
                "\"00f067aa0ba902b7\",\"name\":\"x\",\"kind\":\"3x\"}]}]}]}");
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/test_export_otlp_check.py' '%s' '%s'",
           TEST_SRCDIR, otlp_protos(), bad);
  CU_ASSERT_NOT_EQUAL(th_sh(cmd), 0);
  th_stop(c.pid);
}

/* ---- Zipkin ---------------------------------------------------------------- */

static void test_zipkin_export(void) {
  collector_t c;
  CU_ASSERT_FATAL(collector_start(&c, "0", "503", "0"));
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"zipkin\":{\"endpoint\":"
           "\"http://127.0.0.1:%d/api/v2/spans\"},"
           "\"batch\":{\"max_size\":100,\"max_delay_ms\":100}}",
           c.port);
  mesh_t *m = export_mesh(tracing, false);
  make_call(m, 1);
  CU_ASSERT_TRUE(wait_spans(&c, false, 2, 5000));
  char names[4][600];
  CU_ASSERT_EQUAL_FATAL(list_bodies(&c, ".json", names, 4), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(names[0], "api_v2_spans"));
  char *raw = th_slurp(names[0], NULL);
  cJSON *doc = cJSON_Parse(raw);
  CU_ASSERT_TRUE_FATAL(cJSON_IsArray(doc));
  const cJSON *try_ = NULL, *call = NULL, *s;
  cJSON_ArrayForEach(s, doc) {
    const char *name = cJSON_GetObjectItem(s, "name")->valuestring;
    if (strcmp(name, "mesh.try") == 0)
      try_ = s;
    else
      call = s;
  }
  CU_ASSERT_PTR_NOT_NULL_FATAL(try_);
  CU_ASSERT_PTR_NOT_NULL_FATAL(call);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(try_, "kind")->valuestring,
                         "CLIENT");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(try_, "parentId")->valuestring,
                         cJSON_GetObjectItem(call, "id")->valuestring);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(try_, "traceId")->valuestring,
                         cJSON_GetObjectItem(call, "traceId")->valuestring);
  /* Microsecond integers, written as plain integers. */
  const cJSON *ts = cJSON_GetObjectItem(try_, "timestamp");
  CU_ASSERT_TRUE(cJSON_IsNumber(ts) && ts->valuedouble > 1.5e15);
  CU_ASSERT_PTR_NULL(strstr(raw, "e+15"));
  CU_ASSERT(cJSON_GetObjectItem(try_, "duration")->valuedouble >= 1);
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItem(cJSON_GetObjectItem(try_, "localEndpoint"),
                          "serviceName")
          ->valuestring,
      "checkout");
  const cJSON *re = cJSON_GetObjectItem(try_, "remoteEndpoint");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(re, "ipv4")->valuestring,
                         "127.0.0.1");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(re, "port")->valueint, 8443);
  const cJSON *tags = cJSON_GetObjectItem(try_, "tags");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(tags, "mesh.try")->valuestring,
                         "1");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(tags, "error")->valuestring,
                         "read timed out");
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(tags, "error.type")->valuestring,
                         "MESH_ERR_TIMEOUT");
  const cJSON *ann = cJSON_GetArrayItem(cJSON_GetObjectItem(try_, "annotations"), 0);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(ann, "value")->valuestring,
                         "handshake_done");
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItem(cJSON_GetObjectItem(call, "remoteEndpoint"),
                          "serviceName")
          ->valuestring,
      "payments");
  cJSON_Delete(doc);
  free(raw);
  mesh_free(m);
  th_stop(c.pid);
}

/* ---- backoff --------------------------------------------------------------- */

static void test_export_backoff_5xx(void) {
  collector_t c;
  CU_ASSERT_FATAL(collector_start(&c, "2", "503", "0"));
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d/\"},\"batch\":{\"max_size\":2,"
           "\"max_delay_ms\":50},\"retry\":{\"initial_backoff_ms\":50}}",
           c.port);
  mesh_t *m = export_mesh(tracing, false);
  make_call(m, 0);
  CU_ASSERT_TRUE(wait_spans(&c, true, 2, 5000));
  char names[8][600];
  CU_ASSERT_EQUAL(list_bodies(&c, ".failed", names, 8), 2);
  CU_ASSERT_EQUAL(list_bodies(&c, ".json", names, 8), 1);
  char *text = metrics_with(
      m, "mesh_trace_export_requests_total{exporter=\"otlp\",code=\"200\"} 1\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_requests_total{exporter=\"otlp\",code=\"503\"} 2\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_requests_total{exporter=\"otlp\",code=\"200\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_dropped_spans_total{exporter=\"otlp\",reason=\"retries_exhausted\"} 0\n"));
  free(text);
  mesh_free(m);
  th_stop(c.pid);
}

static void test_export_backoff_429_retry_after(void) {
  collector_t c;
  CU_ASSERT_FATAL(collector_start(&c, "1", "429", "1"));
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d\"},\"batch\":{\"max_size\":2,"
           "\"max_delay_ms\":50},\"retry\":{\"initial_backoff_ms\":10}}",
           c.port);
  mesh_t *m = export_mesh(tracing, false);
  int64_t t0 = mesh__now_ms();
  make_call(m, 0);
  CU_ASSERT_TRUE(wait_spans(&c, true, 2, 5000));
  /* Retry-After: 1 beat the 10 ms backoff. */
  CU_ASSERT(mesh__now_ms() - t0 >= 900);
  mesh_free(m);
  th_stop(c.pid);
}

static void test_export_rejected_4xx(void) {
  collector_t c;
  CU_ASSERT_FATAL(collector_start(&c, "100", "400", "0"));
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d\"},\"batch\":{\"max_size\":2,"
           "\"max_delay_ms\":50},\"retry\":{\"initial_backoff_ms\":10}}",
           c.port);
  mesh_t *m = export_mesh(tracing, false);
  make_call(m, 0);
  char names[8][600];
  for (int i = 0; i < 250 && list_bodies(&c, ".failed", names, 8) < 1; i++)
    usleep(20000);
  usleep(200000); /* a retry would come within 10 ms */
  CU_ASSERT_EQUAL(list_bodies(&c, ".failed", names, 8), 1);
  char *text = metrics(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_dropped_spans_total{exporter=\"otlp\",reason=\"rejected\"} 2\n"));
  free(text);
  mesh_free(m);
  th_stop(c.pid);
}

/* ---- drops, and never blocking ---------------------------------------------- */

static void test_export_drops(void) {
  /* External mode: nothing drains the queue until we run the loop. */
  int port = th_free_port(); /* nobody listens there */
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d\",\"timeout_ms\":500},\"batch\":"
           "{\"max_size\":4,\"queue_size\":4,\"max_delay_ms\":10},"
           "\"retry\":{\"initial_backoff_ms\":10,\"max_attempts\":2}}",
           port);
  mesh_t *m = export_mesh(tracing, true);
  for (int i = 0; i < 5; i++)
    make_call(m, i); /* 10 spans into a queue of 4 */
  char *text = metrics(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_dropped_spans_total{exporter=\"otlp\",reason=\"queue_full\"} 6\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "mesh_trace_export_queue_spans{exporter=\"otlp\"} 4\n"));
  free(text);
  /* Connection refused twice: the batch is dropped as retries exhausted. */
  for (int i = 0; i < 300; i++) {
    mesh_process(m);
    text = metrics(m);
    bool done = strstr(text, "reason=\"retries_exhausted\"} 4\n") != NULL;
    free(text);
    if (done)
      break;
    usleep(5000);
  }
  text = metrics(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_dropped_spans_total{exporter=\"otlp\",reason=\"retries_exhausted\"} 4\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      text, "mesh_trace_export_requests_total{exporter=\"otlp\",code=\"error\"} 2\n"));
  free(text);
  mesh_free(m);
}

static void test_export_never_blocks(void) {
  /* A "collector" that accepts TCP but never answers. */
  int port = th_free_port();
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  const char *argv[] = {"python3", "-c",
                        "import socket,sys,time\n"
                        "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
                        "socket.SO_REUSEADDR,1)\n"
                        "s.bind(('127.0.0.1',int(sys.argv[1])));s.listen(64)\n"
                        "c=[]\n"
                        "while True: c.append(s.accept())\n",
                        portstr, NULL};
  pid_t pid = th_spawn(argv, "blackhole");
  CU_ASSERT_FATAL(th_wait_port(port, 5000));
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d\",\"timeout_ms\":3000},\"batch\":"
           "{\"max_size\":2,\"max_delay_ms\":10}}",
           port);
  mesh_t *m = export_mesh(tracing, false);
  int64_t t0 = mesh__now_ms();
  for (int i = 0; i < 200; i++)
    make_call(m, i);
  /* Blocking on the stalled collector would take its 3 s timeout. */
  CU_ASSERT(mesh__now_ms() - t0 < 1000);
  th_stop(pid);
  mesh_free(m);
}

/* Spans still queued at mesh_free() are delivered before it returns. */
static void test_export_flush_on_free(void) {
  collector_t c;
  CU_ASSERT_FATAL(collector_start(&c, "0", "503", "0"));
  char tracing[512];
  snprintf(tracing, sizeof tracing,
           "{\"sampler\":\"always_on\",\"otlp\":{\"endpoint\":"
           "\"http://127.0.0.1:%d\"},\"batch\":{\"max_size\":512,"
           "\"max_delay_ms\":600000}}",
           c.port);
  mesh_t *m = export_mesh(tracing, false);
  make_call(m, 0);
  make_call(m, 1);
  CU_ASSERT_EQUAL(received_spans(&c, true), 0);
  mesh_free(m);
  CU_ASSERT_EQUAL(received_spans(&c, true), 4);
  th_stop(c.pid);
}

/* The OTLP JSON encoder writes text by hand: every string must come back
 * from a JSON parser as it went in, whatever the length (the encoder copies
 * eight bytes at a time) and wherever a character that needs escaping sits;
 * 64-bit values must survive as decimal strings. */
static void test_otlp_encode_strings(void) {
  static const char specials[] = {'"', '\\', '\n', '\t', '\x01', '\x1f', 'x'};
  struct mesh__tracer t;
  memset(&t, 0, sizeof t);
  t.service_name = "svc \"quoted\"";
  static struct mesh_span sp;
  struct mesh_span *p = &sp;
  int bad = 0;
  for (size_t len = 1; len <= 40; len++)
    for (size_t at = 0; at < len; at++)
      for (size_t k = 0; k < sizeof specials; k++) {
        char name[48];
        for (size_t i = 0; i < len; i++)
          name[i] = (char)('a' + i % 26);
        name[at] = specials[k];
        name[len] = '\0';
        memset(&sp, 0, sizeof sp);
        sp.name = name;
        sp.start_ns = UINT64_MAX;
        sp.attrs[0] = (mesh__attr_t){"i", MESH_ATTR_INT, NULL, INT64_MIN, 0};
        sp.attrs[1] = (mesh__attr_t){"s", MESH_ATTR_STRING, name, 0, 0};
        sp.nattrs = 2;
        char *body = NULL;
        size_t blen = 0;
        CU_ASSERT_EQUAL_FATAL(mesh__otlp_encode(&t, &p, 1, &body, &blen),
                              MESH_OK);
        CU_ASSERT_EQUAL(strlen(body), blen);
        cJSON *doc = cJSON_Parse(body);
        const cJSON *s = cJSON_GetArrayItem(
            cJSON_GetObjectItem(
                cJSON_GetArrayItem(
                    cJSON_GetObjectItem(
                        cJSON_GetArrayItem(
                            cJSON_GetObjectItem(doc, "resourceSpans"), 0),
                        "scopeSpans"),
                    0),
                "spans"),
            0);
        const cJSON *attrs = cJSON_GetObjectItem(s, "attributes");
        const char *got = cJSON_GetStringValue(cJSON_GetObjectItem(s, "name"));
        const char *got2 = cJSON_GetStringValue(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(attrs, 1), "value"),
            "stringValue"));
        const char *i64 = cJSON_GetStringValue(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(attrs, 0), "value"),
            "intValue"));
        const char *u64 = cJSON_GetStringValue(
            cJSON_GetObjectItem(s, "startTimeUnixNano"));
        if (!got || strcmp(got, name) || !got2 || strcmp(got2, name) ||
            !i64 || strcmp(i64, "-9223372036854775808") || !u64 ||
            strcmp(u64, "18446744073709551615"))
          bad++;
        cJSON_Delete(doc);
        free(body);
      }
  CU_ASSERT_EQUAL(bad, 0);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("export", NULL, NULL);
  CU_add_test(s, "otlp_export", test_otlp_export);
  CU_add_test(s, "otlp_encode_strings", test_otlp_encode_strings);
  CU_add_test(s, "zipkin_export", test_zipkin_export);
  CU_add_test(s, "export_backoff_5xx", test_export_backoff_5xx);
  CU_add_test(s, "export_backoff_429_retry_after",
              test_export_backoff_429_retry_after);
  CU_add_test(s, "export_rejected_4xx", test_export_rejected_4xx);
  CU_add_test(s, "export_drops", test_export_drops);
  CU_add_test(s, "export_never_blocks", test_export_never_blocks);
  CU_add_test(s, "export_flush_on_free", test_export_flush_on_free);
}

int main(void) { return th_run_suites("export", add); }
