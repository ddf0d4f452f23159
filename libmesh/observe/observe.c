/* SPDX-License-Identifier: Apache-2.0 */
/* The "tracing" config section: sampler and propagation of the tracer
 * (telemetry/), and the exporters (this part) plugged in as its sinks. */
#include "observe/observe.h"
#include "telemetry/telemetry.h"
#include "observe/exporter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- "tracing" section ------------------------------------------------- */

static const char *const tracing_keys[] = {
    "sampler", "ratio", "propagation", "service_name", "otlp", "zipkin",
    "batch",   "retry", NULL};
static const char *const exporter_keys[] = {"endpoint", "timeout_ms",
                                            "headers", NULL};
static const char *const batch_keys[] = {"max_size", "max_delay_ms",
                                         "queue_size", NULL};
static const char *const retry_keys[] = {"initial_backoff_ms",
                                         "max_backoff_ms", "max_attempts",
                                         NULL};
static const char *const propagators[] = {"tracecontext", "b3", "b3multi",
                                          NULL};

/* Defaults: OpenTelemetry SDK (batch span processor, OTLP exporter). */
#define DEF_MAX_BATCH 512
#define DEF_MAX_DELAY_MS 5000
#define DEF_QUEUE 2048
#define DEF_TIMEOUT_MS 10000
#define DEF_BACKOFF_INITIAL_MS 1000
#define DEF_BACKOFF_MAX_MS 5000
#define DEF_MAX_ATTEMPTS 5

typedef struct tracing_cfg {
  int sampler;
  double ratio;
  unsigned formats;
  const char *service_name;
  const cJSON *otlp, *zipkin;
  int64_t max_batch, max_delay_ms, queue_size;
  int64_t backoff_initial_ms, backoff_max_ms, max_attempts;
} tracing_cfg_t;

static void check_exporter(mesh__cfg_t *c, const cJSON *v, const char *path,
                           const char *key) {
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!v || !mesh__cfg_object(c, v, p, exporter_keys))
    return;
  const char *ep;
  if (!mesh__cfg_string(c, v, p, "endpoint", NULL, &ep) || !ep) {
    char q[MESH__PATH_MAX];
    mesh__cfg_path(q, p, "endpoint");
    if (!cJSON_GetObjectItemCaseSensitive(v, "endpoint"))
      mesh__cfg_error(c, q, "required (e.g. \"http://127.0.0.1:%s\")",
                      strcmp(key, "otlp") == 0 ? "4318"
                                               : "9411/api/v2/spans");
  } else if ((strncmp(ep, "http://", 7) != 0 &&
              strncmp(ep, "https://", 8) != 0) ||
             strlen(ep) > 1000) {
    /* 1000: the exporter's URL buffer, with "/v1/traces" appended */
    char q[MESH__PATH_MAX];
    mesh__cfg_path(q, p, "endpoint");
    mesh__cfg_error(c, q, "expected an http:// or https:// URL of at most "
                          "1000 bytes");
  }
  int64_t t;
  mesh__cfg_int(c, v, p, "timeout_ms", 1, 600000, DEF_TIMEOUT_MS, &t);
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "headers");
  if (!h)
    return;
  char q[MESH__PATH_MAX];
  mesh__cfg_path(q, p, "headers");
  if (!cJSON_IsObject(h)) {
    mesh__cfg_error(c, q, "expected an object of header names to values");
    return;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, h) {
    char r[MESH__PATH_MAX];
    mesh__cfg_path(r, q, it->string);
    bool name_ok = it->string[0] != '\0';
    for (const char *s = it->string; *s; s++)
      if (*s <= ' ' || *s >= 127 || *s == ':')
        name_ok = false;
    if (!name_ok)
      mesh__cfg_error(c, r, "invalid header name");
    else if (!cJSON_IsString(it) || strpbrk(it->valuestring, "\r\n"))
      mesh__cfg_error(c, r, "expected a string without line breaks");
  }
}

static void tracing_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                          tracing_cfg_t *out) {
  memset(out, 0, sizeof *out);
  out->sampler = MESH__SAMPLER_PB_ALWAYS_ON;
  out->ratio = 1.0;
  out->formats = MESH_PROPAGATE_TRACECONTEXT;
  out->max_batch = DEF_MAX_BATCH;
  out->max_delay_ms = DEF_MAX_DELAY_MS;
  out->queue_size = DEF_QUEUE;
  out->backoff_initial_ms = DEF_BACKOFF_INITIAL_MS;
  out->backoff_max_ms = DEF_BACKOFF_MAX_MS;
  out->max_attempts = DEF_MAX_ATTEMPTS;
  if (!v || !mesh__cfg_object(c, v, path, tracing_keys))
    return;
  mesh__cfg_enum(c, v, path, "sampler", mesh__sampler_names,
                 MESH__SAMPLER_PB_ALWAYS_ON, &out->sampler);
  mesh__cfg_double(c, v, path, "ratio", 0, 1, 1.0, &out->ratio);
  mesh__cfg_string(c, v, path, "service_name", NULL, &out->service_name);
  const cJSON *props;
  if (mesh__cfg_strings(c, v, path, "propagation", &props) && props) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "propagation");
    out->formats = 0;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, props) {
      int k = 0;
      while (propagators[k] && strcmp(propagators[k], it->valuestring) != 0)
        k++;
      if (!propagators[k]) {
        char q[MESH__PATH_MAX + 16];
        snprintf(q, sizeof q, "%s[%d]", p, i);
        mesh__cfg_error(c, q,
                        "unknown propagator \"%s\" (expected one of "
                        "\"tracecontext\", \"b3\", \"b3multi\")",
                        it->valuestring);
      } else {
        out->formats |= 1u << k;
      }
      i++;
    }
  }
  out->otlp = cJSON_GetObjectItemCaseSensitive(v, "otlp");
  out->zipkin = cJSON_GetObjectItemCaseSensitive(v, "zipkin");
  check_exporter(c, out->otlp, path, "otlp");
  check_exporter(c, out->zipkin, path, "zipkin");
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "batch");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "batch");
  if (b && mesh__cfg_object(c, b, p, batch_keys)) {
    mesh__cfg_int(c, b, p, "max_size", 1, 65536, DEF_MAX_BATCH,
                  &out->max_batch);
    mesh__cfg_int(c, b, p, "max_delay_ms", 1, 3600000, DEF_MAX_DELAY_MS,
                  &out->max_delay_ms);
    mesh__cfg_int(c, b, p, "queue_size", 1, 1 << 20, DEF_QUEUE,
                  &out->queue_size);
    if (out->max_batch > out->queue_size)
      mesh__cfg_error(c, p, "max_size (%lld) must not exceed queue_size "
                      "(%lld)", (long long)out->max_batch,
                      (long long)out->queue_size);
  }
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "retry");
  mesh__cfg_path(p, path, "retry");
  if (r && mesh__cfg_object(c, r, p, retry_keys)) {
    mesh__cfg_int(c, r, p, "initial_backoff_ms", 1, 600000,
                  DEF_BACKOFF_INITIAL_MS, &out->backoff_initial_ms);
    mesh__cfg_int(c, r, p, "max_backoff_ms", 1, 600000, DEF_BACKOFF_MAX_MS,
                  &out->backoff_max_ms);
    mesh__cfg_int(c, r, p, "max_attempts", 1, 100, DEF_MAX_ATTEMPTS,
                  &out->max_attempts);
  }
}

static void tracing_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  tracing_cfg_t tc;
  tracing_parse(c, cfg, path, &tc);
}

static int add_exporter(mesh_t *m, struct mesh__tracer *t,
                        const tracing_cfg_t *tc, const cJSON *ecfg,
                        bool otlp, mesh_status_t *st) {
  const cJSON *ep = cJSON_GetObjectItemCaseSensitive(ecfg, "endpoint");
  const cJSON *to = cJSON_GetObjectItemCaseSensitive(ecfg, "timeout_ms");
  char url[1024];
  if (otlp) {
    /* The endpoint is the collector's base URL, as
     * OTEL_EXPORTER_OTLP_ENDPOINT: the signal path is appended. */
    size_t n = strlen(ep->valuestring);
    const char *sep = n && ep->valuestring[n - 1] == '/' ? "" : "/";
    if (mesh__snprintf(url, sizeof url, "%s%sv1/traces", ep->valuestring,
                       sep) < 0)
      return mesh__fail(st, MESH_ERR_CONFIG, "tracing.otlp.endpoint: too long");
  } else if (mesh__snprintf(url, sizeof url, "%s", ep->valuestring) < 0) {
    return mesh__fail(st, MESH_ERR_CONFIG,
                      "tracing.zipkin.endpoint: too long");
  }
  mesh__export_cfg_t ec = {
      .name = otlp ? "otlp" : "zipkin",
      .url = url,
      .content_type = "application/json",
      .headers = cJSON_GetObjectItemCaseSensitive(ecfg, "headers"),
      .timeout_ms = to ? (int64_t)to->valuedouble : DEF_TIMEOUT_MS,
      .max_batch = tc->max_batch,
      .max_delay_ms = tc->max_delay_ms,
      .queue_size = tc->queue_size,
      .backoff_initial_ms = tc->backoff_initial_ms,
      .backoff_max_ms = tc->backoff_max_ms,
      .max_attempts = tc->max_attempts,
      .encode = otlp ? mesh__otlp_encode : mesh__zipkin_encode,
  };
  mesh__exporter_t *e;
  int rc = mesh__exporter_new(m, t, &ec, &e, st);
  if (rc != MESH_OK)
    return rc;
  t->exp[t->nexp++] = mesh__exporter_sink(e);
  atomic_fetch_add(&t->consumers, 1);
  return MESH_OK;
}

static int tracing_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  struct mesh__observe *o = mesh__observe_get(m);
  if (!o)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mesh__cfg_t c = {.first = st};
  tracing_cfg_t tc;
  tracing_parse(&c, cfg, "tracing", &tc);
  if (c.nerr)
    return MESH_ERR_CONFIG;
  struct mesh__tracer *t;
  if (mesh__tracer_new(m, &t) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mesh__sampler_init(&t->sampler, tc.sampler, tc.ratio);
  t->formats = tc.formats;
  if (tc.service_name) {
    char *s = strdup(tc.service_name);
    if (!s) {
      mesh__tracer_free(t);
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    }
    free(t->service_name);
    t->service_name = s;
  }
  int rc = MESH_OK;
  if (tc.otlp)
    rc = add_exporter(m, t, &tc, tc.otlp, true, st);
  if (rc == MESH_OK && tc.zipkin)
    rc = add_exporter(m, t, &tc, tc.zipkin, false, st);
  if (rc != MESH_OK) {
    mesh__tracer_free(t);
    return rc;
  }
  atomic_store_explicit(&o->tracer, t, memory_order_release);
  return MESH_OK;
}

static void tracing_fini(mesh_t *m) {
  struct mesh__observe *o = m->observe;
  if (!o || !o->tracer)
    return;
  struct mesh__tracer *t = o->tracer;
  /* Spans ended from now on are not recorded; the queued ones are
   * flushed (bounded) by the exporters. */
  atomic_store_explicit(&o->tracer, NULL, memory_order_release);
  mesh__tracer_free(t);
}

/* Exporter headers carry API keys and tokens under any name: every value. */
static const char *const tracing_secrets[] = {"otlp.headers.*",
                                              "zipkin.headers.*", NULL};

const mesh__part_t mesh__part_tracing = {
    .key = "tracing",
    .check = tracing_check,
    .init = tracing_init,
    .fini = tracing_fini,
    .secrets = tracing_secrets,
};
