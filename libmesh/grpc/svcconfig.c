/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC service config (grpc/doc/service_config.md, gRFC A6 for retries and
 * hedging), the value of a service's "grpc" key:
 *   {"methodConfig": [{"name": [{"service": "pkg.Svc", "method": "M"}],
 *                      "timeout": "1s", "retryPolicy": {...}, ...}]}
 * Validated as gRPC validates it (required fields, maxAttempts >= 2 and
 * clamped to 5, positive backoffs, one policy per entry, no duplicate
 * names), and strictly where gRPC ignores: unknown keys are errors here. */
#include "grpc/grpc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 1024

/* path.key[idx]; truncated paths are only less precise messages. */
static void sub(char *out, const char *path, const char *key, int idx) {
  char base[MESH__PATH_MAX];
  mesh__cfg_path(base, path, key);
  size_t n = strlen(base);
  if (n + 16 >= MESH__PATH_MAX)
    n = MESH__PATH_MAX - 16;
  memcpy(out, base, n);
  snprintf(out + n, 16, "[%d]", idx);
}

/* A Duration field: *ms receives it rounded up to whole ms.  Absent: false
 * (no error, *ms untouched). */
static bool duration_ms(mesh__cfg_t *c, const cJSON *obj, const char *path,
                        const char *key, bool positive, int64_t *ms) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v)
    return false;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  int64_t ns;
  if (!cJSON_IsString(v) ||
      mesh__grpc_duration_parse(v->valuestring, &ns) != MESH_OK) {
    mesh__cfg_error(c, p, "expected a duration string such as \"0.5s\"");
    return false;
  }
  if (positive && ns == 0) {
    mesh__cfg_error(c, p, "must be greater than 0s");
    return false;
  }
  *ms = ns / 1000000 + (ns % 1000000 != 0);
  return true;
}

/* A list of status codes (names, or numbers 0..16) as a bit set. */
static bool codes(mesh__cfg_t *c, const cJSON *obj, const char *path,
                  const char *key, bool required, uint32_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  *out = 0;
  if (!v) {
    if (required)
      mesh__cfg_error(c, p, "required (a non-empty list of status codes)");
    return !required;
  }
  if (!cJSON_IsArray(v) || (required && cJSON_GetArraySize(v) == 0)) {
    mesh__cfg_error(c, p, "expected a non-empty array of status codes");
    return false;
  }
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    int code = -1;
    if (cJSON_IsString(it))
      code = mesh__grpc_code_from_name(it->valuestring);
    else if (cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble) &&
             it->valuedouble >= 0 && it->valuedouble < MESH__GRPC_NCODES)
      code = (int)it->valuedouble;
    if (code < 0) {
      char q[MESH__PATH_MAX];
      sub(q, path, key, i);
      mesh__cfg_error(c, q, "not a status code (e.g. \"UNAVAILABLE\" or 14)");
      return false;
    }
    *out |= 1u << code;
    i++;
  }
  return true;
}

/* maxAttempts: required, >= 2; gRPC clamps values above 5 to 5. */
static bool max_attempts(mesh__cfg_t *c, const cJSON *obj, const char *path,
                         uint32_t *out) {
  int64_t v = 0;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "maxAttempts");
  if (!cJSON_GetObjectItemCaseSensitive(obj, "maxAttempts")) {
    mesh__cfg_error(c, p, "required (an integer >= 2)");
    return false;
  }
  if (!mesh__cfg_int(c, obj, path, "maxAttempts", 2, INT32_MAX, 0, &v))
    return false;
  *out = v > MESH__GRPC_MAX_ATTEMPTS ? MESH__GRPC_MAX_ATTEMPTS : (uint32_t)v;
  return true;
}

static void parse_retry(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__grpc_retry_t *r) {
  static const char *const keys[] = {"maxAttempts", "initialBackoff",
                                     "maxBackoff", "backoffMultiplier",
                                     "retryableStatusCodes", NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  max_attempts(c, v, path, &r->max_attempts);
  const char *req[] = {"initialBackoff", "maxBackoff"};
  int64_t *dst[] = {&r->initial_backoff_ms, &r->max_backoff_ms};
  for (int i = 0; i < 2; i++) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, req[i]);
    if (!cJSON_GetObjectItemCaseSensitive(v, req[i]))
      mesh__cfg_error(c, p, "required (a duration > 0s, e.g. \"0.1s\")");
    else
      duration_ms(c, v, path, req[i], true, dst[i]);
  }
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "backoffMultiplier");
  if (!cJSON_GetObjectItemCaseSensitive(v, "backoffMultiplier"))
    mesh__cfg_error(c, p, "required (a number > 0)");
  else if (mesh__cfg_double(c, v, path, "backoffMultiplier", 0, 1e6, 0,
                            &r->multiplier) &&
           !(r->multiplier > 0))
    mesh__cfg_error(c, p, "must be greater than 0");
  mesh__cfg_path(p, path, "retryableStatusCodes");
  if (codes(c, v, path, "retryableStatusCodes", true, &r->codes) &&
      (r->codes & 1u))
    mesh__cfg_error(c, p, "OK cannot be a retryable status code");
}

static void parse_hedge(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__grpc_hedge_t *h) {
  static const char *const keys[] = {"maxAttempts", "hedgingDelay",
                                     "nonFatalStatusCodes", NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  max_attempts(c, v, path, &h->max_attempts);
  duration_ms(c, v, path, "hedgingDelay", false, &h->delay_ms);
  codes(c, v, path, "nonFatalStatusCodes", false, &h->non_fatal);
}

/* One {"service": ..., "method": ...} of a "name" list. */
static void parse_name(mesh__cfg_t *c, const cJSON *v, const char *path,
                       mesh__grpc_method_cfg_t *e, int *nerr_alloc) {
  static const char *const keys[] = {"service", "method", NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  const char *s = NULL, *m = NULL;
  mesh__cfg_string(c, v, path, "service", NULL, &s);
  mesh__cfg_string(c, v, path, "method", NULL, &m);
  if (s && !*s)
    s = NULL;
  if (m && !*m)
    m = NULL;
  if (m && !s) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "method");
    mesh__cfg_error(c, p, "a method needs its service");
    return;
  }
  if (!e)
    return;
  e->service = mesh__strdup(s);
  e->method = mesh__strdup(m);
  if ((s && !e->service) || (m && !e->method))
    (*nerr_alloc)++;
}

static bool same_name(const mesh__grpc_method_cfg_t *a,
                      const mesh__grpc_method_cfg_t *b) {
  bool s = (!a->service && !b->service) ||
           (a->service && b->service && !strcmp(a->service, b->service));
  bool m = (!a->method && !b->method) ||
           (a->method && b->method && !strcmp(a->method, b->method));
  return s && m;
}

/* Settings of one methodConfig entry (everything but "name"). */
static void parse_settings(mesh__cfg_t *c, const cJSON *v, const char *path,
                           mesh__grpc_method_cfg_t *t) {
  duration_ms(c, v, path, "timeout", false, &t->timeout_ms);
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "retryPolicy");
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "hedgingPolicy");
  char p[MESH__PATH_MAX];
  if (r && h) {
    mesh__cfg_path(p, path, "hedgingPolicy");
    mesh__cfg_error(c, p, "retryPolicy and hedgingPolicy exclude each other");
  }
  if (r) {
    mesh__cfg_path(p, path, "retryPolicy");
    parse_retry(c, r, p, &t->retry);
    t->has_retry = true;
  }
  if (h) {
    mesh__cfg_path(p, path, "hedgingPolicy");
    parse_hedge(c, h, p, &t->hedge);
    t->has_hedge = true;
  }
  int64_t n = 0;
  if (mesh__cfg_int(c, v, path, "maxRequestMessageBytes", 0, INT32_MAX, 0, &n))
    t->max_req = (size_t)n;
  if (mesh__cfg_int(c, v, path, "maxResponseMessageBytes", 0, INT32_MAX, 0,
                    &n))
    t->max_resp = (size_t)n;
  mesh__cfg_bool(c, v, path, "waitForReady", false, &t->wait_for_ready);
}

/* One methodConfig entry: its settings are copied to one output entry per
 * name.  *out grows; duplicates against earlier entries are errors. */
static void parse_entry(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__grpc_svc_cfg_t *out, int *nomem) {
  static const char *const keys[] = {
      "name", "timeout", "retryPolicy", "hedgingPolicy",
      "maxRequestMessageBytes", "maxResponseMessageBytes", "waitForReady",
      NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  mesh__grpc_method_cfg_t t;
  memset(&t, 0, sizeof t);
  parse_settings(c, v, path, &t);
  const cJSON *names = cJSON_GetObjectItemCaseSensitive(v, "name");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "name");
  if (!cJSON_IsArray(names) || cJSON_GetArraySize(names) == 0) {
    mesh__cfg_error(c, p, "required: a non-empty array of "
                          "{\"service\": ..., \"method\": ...}");
    return;
  }
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, names) {
    char q[MESH__PATH_MAX];
    sub(q, path, "name", i++);
    mesh__grpc_method_cfg_t e = t;
    e.service = e.method = NULL;
    parse_name(c, it, q, &e, nomem);
    for (size_t k = 0; k < out->n; k++)
      if (same_name(&out->v[k], &e)) {
        mesh__cfg_error(c, q, "duplicate name (already configured)");
        break;
      }
    mesh__grpc_method_cfg_t *nv =
        realloc(out->v, (out->n + 1) * sizeof *out->v);
    if (!nv) {
      free(e.service);
      free(e.method);
      (*nomem)++;
      continue;
    }
    out->v = nv;
    out->v[out->n++] = e;
  }
}

/* "retryThrottling": {"maxTokens": 1..1000, "tokenRatio": > 0, kept to
 * 3 decimals} (gRFC A6). */
static void parse_throttle(mesh__cfg_t *c, const cJSON *v, const char *path,
                           mesh__grpc_svc_cfg_t *out) {
  static const char *const keys[] = {"maxTokens", "tokenRatio", NULL};
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "retryThrottling");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "retryThrottling");
  if (!t || !mesh__cfg_object(c, t, p, keys))
    return;
  int nerr0 = c->nerr;
  int64_t max = 0;
  double ratio = 0;
  char q[MESH__PATH_MAX];
  if (!cJSON_GetObjectItemCaseSensitive(t, "maxTokens")) {
    mesh__cfg_path(q, p, "maxTokens");
    mesh__cfg_error(c, q, "required (an integer 1..1000)");
  }
  if (!cJSON_GetObjectItemCaseSensitive(t, "tokenRatio")) {
    mesh__cfg_path(q, p, "tokenRatio");
    mesh__cfg_error(c, q, "required (a number > 0)");
  }
  mesh__cfg_int(c, t, p, "maxTokens", 1, 1000, 0, &max);
  mesh__cfg_double(c, t, p, "tokenRatio", 0.001, 1000, 0, &ratio);
  if (c->nerr != nerr0)
    return;
  out->max_tokens_m = max * 1000;
  out->token_ratio_m = (int64_t)(ratio * 1000 + 1e-6); /* 3 decimals */
}

bool mesh__grpc_throttle_ok(const mesh__grpc_svc_cfg_t *cfg,
                            mesh__grpc_tokens_t *missing) {
  if (!cfg || !cfg->max_tokens_m)
    return true;
  return cfg->max_tokens_m - atomic_load(missing) > cfg->max_tokens_m / 2;
}

void mesh__grpc_throttle_record(const mesh__grpc_svc_cfg_t *cfg,
                                mesh__grpc_tokens_t *missing, bool ok) {
  if (!cfg || !cfg->max_tokens_m)
    return;
  int64_t old = atomic_load(missing), nv;
  do {
    nv = ok ? old - cfg->token_ratio_m : old + 1000;
    nv = nv < 0 ? 0 : nv > cfg->max_tokens_m ? cfg->max_tokens_m : nv;
  } while (!atomic_compare_exchange_weak(missing, &old, nv));
}

int mesh__grpc_svc_cfg_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                             mesh__grpc_svc_cfg_t *out) {
  static const char *const keys[] = {"methodConfig", "retryThrottling",
                                     "perRpcBufferLimit", "retryBufferSize",
                                     NULL};
  int nerr0 = c->nerr, nomem = 0;
  mesh__grpc_svc_cfg_t tmp = {0};
  if (mesh__cfg_object(c, v, path, keys)) {
    parse_throttle(c, v, path, &tmp);
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(v, "methodConfig");
    int64_t b;
    if (mesh__cfg_int(c, v, path, "perRpcBufferLimit", 1, INT32_MAX, 0, &b))
      tmp.rpc_buf = (size_t)b;
    if (mesh__cfg_int(c, v, path, "retryBufferSize", 1, INT64_MAX, 0, &b))
      tmp.chan_buf = (size_t)b;
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "methodConfig");
    if (mc && (!cJSON_IsArray(mc) || cJSON_GetArraySize(mc) > MAX_ENTRIES))
      mesh__cfg_error(c, p, "expected an array of at most %d entries",
                      MAX_ENTRIES);
    else if (mc) {
      int i = 0;
      const cJSON *it;
      cJSON_ArrayForEach(it, mc) {
        char q[MESH__PATH_MAX];
        sub(q, path, "methodConfig", i++);
        parse_entry(c, it, q, &tmp, &nomem);
      }
    }
  }
  if (c->nerr != nerr0 || nomem || !out) {
    mesh__grpc_svc_cfg_free(&tmp);
    return nomem ? MESH_ERR_NOMEM
                 : c->nerr != nerr0 ? MESH_ERR_CONFIG : MESH_OK;
  }
  *out = tmp;
  return MESH_OK;
}

void mesh__grpc_svc_cfg_free(mesh__grpc_svc_cfg_t *cfg) {
  if (!cfg)
    return;
  for (size_t i = 0; i < cfg->n; i++) {
    free(cfg->v[i].service);
    free(cfg->v[i].method);
  }
  free(cfg->v);
  cfg->v = NULL;
  cfg->n = 0;
}

int mesh__grpc_path_split(const char *path, const char **svc, size_t *svc_len,
                          const char **method, size_t *method_len) {
  if (!path || path[0] != '/')
    return MESH_ERR_INVALID_ARG;
  const char *slash = strchr(path + 1, '/');
  if (!slash || slash == path + 1 || !slash[1] || strchr(slash + 1, '/'))
    return MESH_ERR_INVALID_ARG;
  for (const char *p = path; *p; p++)
    if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
      return MESH_ERR_INVALID_ARG;
  *svc = path + 1;
  *svc_len = (size_t)(slash - path - 1);
  *method = slash + 1;
  *method_len = strlen(slash + 1);
  return MESH_OK;
}

static bool eq(const char *a, const char *b, size_t blen) {
  return a && strlen(a) == blen && memcmp(a, b, blen) == 0;
}

const mesh__grpc_method_cfg_t *mesh__grpc_svc_cfg_find(
    const mesh__grpc_svc_cfg_t *cfg, const char *path) {
  const char *s, *m;
  size_t sl, ml;
  if (!cfg || mesh__grpc_path_split(path, &s, &sl, &m, &ml) != MESH_OK)
    return NULL;
  const mesh__grpc_method_cfg_t *by_svc = NULL, *def = NULL;
  for (size_t i = 0; i < cfg->n; i++) {
    const mesh__grpc_method_cfg_t *e = &cfg->v[i];
    if (!e->service)
      def = e;
    else if (eq(e->service, s, sl) && !e->method)
      by_svc = e;
    else if (eq(e->service, s, sl) && eq(e->method, m, ml))
      return e;
  }
  return by_svc ? by_svc : def;
}

int mesh__grpc_pushback_parse(const char *v, size_t len, int64_t *ms) {
  if (!v || len == 0 || len > 19)
    return 0;
  int64_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return 0;
    n = n * 10 + (v[i] - '0');
    if (n > INT32_MAX)
      n = INT32_MAX;
  }
  *ms = n;
  return 1;
}

int64_t mesh__grpc_backoff_ms(const mesh__grpc_retry_t *r, uint32_t n,
                              uint64_t rnd) {
  if (n == 0)
    n = 1;
  double cap = (double)r->initial_backoff_ms;
  for (uint32_t i = 1; i < n && cap < (double)r->max_backoff_ms; i++)
    cap *= r->multiplier;
  if (cap > (double)r->max_backoff_ms)
    cap = (double)r->max_backoff_ms;
  if (!(cap >= 1.0))
    return 0;
  /* 53 random bits as a fraction in [0, 1). */
  double u = (double)(rnd >> 11) / 9007199254740992.0;
  return (int64_t)(u * cap);
}

bool mesh__grpc_retryable(const mesh__grpc_retry_t *r, int code) {
  return code > 0 && code < MESH__GRPC_NCODES && (r->codes & (1u << code));
}

/* The per-service "grpc" key: validated here; calls parse it as they go. */
static void svc_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (v)
    mesh__grpc_svc_cfg_parse(c, v, path, NULL);
}

const mesh__svc_part_t mesh__grpc_svc_part = {
    .key = "grpc",
    .check = svc_check,
};
