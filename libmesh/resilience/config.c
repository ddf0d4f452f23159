/* SPDX-License-Identifier: Apache-2.0 */
/* Per-service resilience configuration: outlier_detection, health_check,
 * circuit_breakers, retry, timeouts, hedge, pool.  One parser serves both
 * validation (check, result thrown away) and state building (init), so the
 * two can never disagree.  Defaults are Envoy's unless docs say otherwise
 * (docs/config/resilience.md). */
#include "resilience/resilience.h"

#include <stdio.h>
#include <string.h>

#define MS_MAX ((int64_t)INT32_MAX)

void mesh__res_cfg_defaults(mesh__res_cfg_t *o) {
  memset(o, 0, sizeof *o);
  o->od = (mesh__od_cfg_t){
      .enabled = false,
      .consecutive_5xx = 5,
      .consecutive_gateway_failure = 5,
      .interval_ms = 10000,
      .base_ejection_time_ms = 30000,
      .max_ejection_time_ms = 300000,
      .max_ejection_time_jitter_ms = 0,
      .max_ejection_percent = 10,
      .always_eject_one_host = true,
      .success_rate_minimum_hosts = 5,
      .success_rate_request_volume = 100,
      .success_rate_stdev_factor = 1900,
      .failure_percentage_threshold = 85,
      .failure_percentage_minimum_hosts = 5,
      .failure_percentage_request_volume = 50,
      .enforcing_consecutive_5xx = 100,
      .enforcing_consecutive_gateway_failure = 0,
      .enforcing_success_rate = 100,
      .enforcing_failure_percentage = 0,
      .successful_active_health_check_uneject_host = true,
  };
  o->hc = (mesh__hc_cfg_t){
      .enabled = false,
      .type = MESH__HC_TCP,
      .interval_ms = 10000,
      .timeout_ms = 1000,
      .healthy_threshold = 1,
      .unhealthy_threshold = 3,
  };
  o->cb = (mesh__cb_cfg_t){
      .max_connections = 1024,
      .max_pending_requests = 1024,
      .max_requests = 1024,
      .max_retries = 3,
  };
  o->retry = (mesh__retry_cfg_t){
      .retry_on = MESH__RETRY_CONNECT_FAILURE,
      .num_retries = 1,
      .base_interval_ms = 25,
      .max_interval_ms = 250,
      .budget = true,
      .budget_percent = 20.0,
      .min_retry_concurrency = 3,
  };
  o->to = (mesh__timeout_cfg_t){
      .connect_ms = 5000, .per_try_ms = 0, .overall_ms = 15000};
  o->hedge = (mesh__hedge_cfg_t){
      .enabled = false, .delay_ms = 0, .max_attempts = 2};
  /* check_after_ms 10: a request that meets a connection its peer closed
   * meanwhile is sent again (idempotent HTTP, calldo.c stale_try), so the
   * idle check's syscall is spent only on older connections. */
  o->pool = (mesh__pool_cfg_t){
      .max_idle = 16, .idle_timeout_ms = 3600000, .check_after_ms = 10};
}

/* Typed helpers that write into the destination only when valid. */
static void u32(mesh__cfg_t *c, const cJSON *v, const char *path,
                const char *key, int64_t min, int64_t max, uint32_t *dst) {
  int64_t x;
  if (mesh__cfg_int(c, v, path, key, min, max, *dst, &x))
    *dst = (uint32_t)x;
}

static void i64(mesh__cfg_t *c, const cJSON *v, const char *path,
                const char *key, int64_t min, int64_t max, int64_t *dst) {
  int64_t x;
  if (mesh__cfg_int(c, v, path, key, min, max, *dst, &x))
    *dst = x;
}

static void flag(mesh__cfg_t *c, const cJSON *v, const char *path,
                 const char *key, bool *dst) {
  bool b;
  if (mesh__cfg_bool(c, v, path, key, *dst, &b))
    *dst = b;
}

static void parse_od(mesh__cfg_t *c, const cJSON *v, const char *path,
                     mesh__od_cfg_t *o) {
  static const char *const keys[] = {
      "consecutive_5xx", "consecutive_gateway_failure", "interval_ms",
      "base_ejection_time_ms", "max_ejection_time_ms",
      "max_ejection_time_jitter_ms", "max_ejection_percent",
      "always_eject_one_host", "success_rate_minimum_hosts",
      "success_rate_request_volume", "success_rate_stdev_factor",
      "failure_percentage_threshold", "failure_percentage_minimum_hosts",
      "failure_percentage_request_volume", "enforcing_consecutive_5xx",
      "enforcing_consecutive_gateway_failure", "enforcing_success_rate",
      "enforcing_failure_percentage",
      "successful_active_health_check_uneject_host", NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  o->enabled = true;
  u32(c, v, path, "consecutive_5xx", 0, UINT32_MAX, &o->consecutive_5xx);
  u32(c, v, path, "consecutive_gateway_failure", 0, UINT32_MAX,
      &o->consecutive_gateway_failure);
  i64(c, v, path, "interval_ms", 1, MS_MAX, &o->interval_ms);
  i64(c, v, path, "base_ejection_time_ms", 1, MS_MAX,
      &o->base_ejection_time_ms);
  /* Envoy: an absent max is max(300 s, base). */
  if (o->base_ejection_time_ms > o->max_ejection_time_ms)
    o->max_ejection_time_ms = o->base_ejection_time_ms;
  if (cJSON_GetObjectItemCaseSensitive(v, "max_ejection_time_ms")) {
    int64_t mx;
    if (mesh__cfg_int(c, v, path, "max_ejection_time_ms", 1, MS_MAX,
                      o->max_ejection_time_ms, &mx)) {
      if (mx < o->base_ejection_time_ms) {
        char p[MESH__PATH_MAX];
        mesh__cfg_path(p, path, "max_ejection_time_ms");
        mesh__cfg_error(c, p,
                        "%lld is smaller than base_ejection_time_ms (%lld)",
                        (long long)mx, (long long)o->base_ejection_time_ms);
      } else {
        o->max_ejection_time_ms = mx;
      }
    }
  }
  i64(c, v, path, "max_ejection_time_jitter_ms", 0, MS_MAX,
      &o->max_ejection_time_jitter_ms);
  u32(c, v, path, "max_ejection_percent", 0, 100, &o->max_ejection_percent);
  flag(c, v, path, "always_eject_one_host", &o->always_eject_one_host);
  u32(c, v, path, "success_rate_minimum_hosts", 0, UINT32_MAX,
      &o->success_rate_minimum_hosts);
  u32(c, v, path, "success_rate_request_volume", 0, UINT32_MAX,
      &o->success_rate_request_volume);
  u32(c, v, path, "success_rate_stdev_factor", 0, UINT32_MAX,
      &o->success_rate_stdev_factor);
  u32(c, v, path, "failure_percentage_threshold", 0, 100,
      &o->failure_percentage_threshold);
  u32(c, v, path, "failure_percentage_minimum_hosts", 0, UINT32_MAX,
      &o->failure_percentage_minimum_hosts);
  u32(c, v, path, "failure_percentage_request_volume", 0, UINT32_MAX,
      &o->failure_percentage_request_volume);
  u32(c, v, path, "enforcing_consecutive_5xx", 0, 100,
      &o->enforcing_consecutive_5xx);
  u32(c, v, path, "enforcing_consecutive_gateway_failure", 0, 100,
      &o->enforcing_consecutive_gateway_failure);
  u32(c, v, path, "enforcing_success_rate", 0, 100,
      &o->enforcing_success_rate);
  u32(c, v, path, "enforcing_failure_percentage", 0, 100,
      &o->enforcing_failure_percentage);
  flag(c, v, path, "successful_active_health_check_uneject_host",
       &o->successful_active_health_check_uneject_host);
}

/* An HTTP path we can put on a request line as is. */
static bool valid_path(const char *s) {
  if (s[0] != '/')
    return false;
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || *s == 0x7f)
      return false;
  return true;
}

static void parse_hc(mesh__cfg_t *c, const cJSON *v, const char *path,
                     mesh__hc_cfg_t *o) {
  static const char *const keys[] = {"type",         "path",
                                     "interval_ms",  "timeout_ms",
                                     "healthy_threshold",
                                     "unhealthy_threshold", NULL};
  static const char *const types[] = {"tcp", "tls", "http", NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  o->enabled = true;
  mesh__cfg_enum(c, v, path, "type", types, MESH__HC_TCP, &o->type);
  const char *p = NULL;
  char pp[MESH__PATH_MAX];
  mesh__cfg_path(pp, path, "path");
  if (mesh__cfg_string(c, v, path, "path", NULL, &p)) {
    if (!valid_path(p) || strlen(p) >= sizeof o->path)
      mesh__cfg_error(c, pp,
                      "must start with \"/\", have no spaces or control "
                      "characters, and be shorter than %zu bytes",
                      sizeof o->path);
    else
      mesh__strlcpy(o->path, p, sizeof o->path);
  }
  if (o->type == MESH__HC_HTTP && !o->path[0] && !p)
    mesh__cfg_error(c, pp, "required when type is \"http\"");
  if (o->type != MESH__HC_HTTP && p)
    mesh__cfg_error(c, pp, "only used when type is \"http\"");
  i64(c, v, path, "interval_ms", 1, MS_MAX, &o->interval_ms);
  i64(c, v, path, "timeout_ms", 1, MS_MAX, &o->timeout_ms);
  u32(c, v, path, "healthy_threshold", 1, 1000, &o->healthy_threshold);
  u32(c, v, path, "unhealthy_threshold", 1, 1000, &o->unhealthy_threshold);
}

static void parse_cb(mesh__cfg_t *c, const cJSON *v, const char *path,
                     mesh__cb_cfg_t *o) {
  static const char *const keys[] = {"max_connections", "max_pending_requests",
                                     "max_requests", "max_retries", NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  i64(c, v, path, "max_connections", 0, INT32_MAX, &o->max_connections);
  i64(c, v, path, "max_pending_requests", 0, INT32_MAX,
      &o->max_pending_requests);
  i64(c, v, path, "max_requests", 0, INT32_MAX, &o->max_requests);
  i64(c, v, path, "max_retries", 0, INT32_MAX, &o->max_retries);
}

static const char *const retry_on_names[] = {
    "connect-failure", "reset", "5xx", "gateway-error",
    "retriable-status-codes", NULL};

static void parse_retry_on(mesh__cfg_t *c, const cJSON *v, const char *path,
                           mesh__retry_cfg_t *o) {
  const cJSON *arr;
  if (!mesh__cfg_strings(c, v, path, "retry_on", &arr) || !arr)
    return;
  unsigned bits = 0;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    bool found = false;
    for (unsigned k = 0; retry_on_names[k]; k++) {
      if (strcmp(it->valuestring, retry_on_names[k]) == 0) {
        bits |= 1u << k;
        found = true;
      }
    }
    if (!found) {
      char p[MESH__PATH_MAX + 16], base[MESH__PATH_MAX];
      mesh__cfg_path(base, path, "retry_on");
      snprintf(p, sizeof p, "%s[%d]", base, i);
      mesh__cfg_error(c, p,
                      "unknown value \"%s\" (expected one of "
                      "\"connect-failure\", \"reset\", \"5xx\", "
                      "\"gateway-error\", \"retriable-status-codes\")",
                      it->valuestring);
    }
    i++;
  }
  o->retry_on = bits; /* [] means: never retry */
}

static void parse_codes(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__retry_cfg_t *o) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(v, "retriable_status_codes");
  if (!arr)
    return;
  char base[MESH__PATH_MAX];
  mesh__cfg_path(base, path, "retriable_status_codes");
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(c, base, "expected an array of integers");
    return;
  }
  if (cJSON_GetArraySize(arr) > MESH__MAX_RETRY_CODES) {
    mesh__cfg_error(c, base, "at most %d codes", MESH__MAX_RETRY_CODES);
    return;
  }
  size_t n = 0;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (d < 1 || d > 999 || d != (double)(int)d) {
      char p[MESH__PATH_MAX + 16];
      snprintf(p, sizeof p, "%s[%d]", base, i);
      mesh__cfg_error(c, p, "expected an integer status code in [1, 999]");
    } else {
      o->codes[n++] = (int)d;
    }
    i++;
  }
  o->ncodes = n;
}

static void parse_budget(mesh__cfg_t *c, const cJSON *v, const char *path,
                         mesh__retry_cfg_t *o) {
  static const char *const keys[] = {"budget_percent", "min_retry_concurrency",
                                     NULL};
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "budget");
  if (!b)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "budget");
  if (cJSON_IsFalse(b)) {
    o->budget = false;
    return;
  }
  if (!cJSON_IsObject(b)) {
    mesh__cfg_error(c, p, "expected an object or false");
    return;
  }
  if (!mesh__cfg_object(c, b, p, keys))
    return;
  double pct;
  if (mesh__cfg_double(c, b, p, "budget_percent", 0, 100, o->budget_percent,
                       &pct))
    o->budget_percent = pct;
  u32(c, b, p, "min_retry_concurrency", 0, INT32_MAX,
      &o->min_retry_concurrency);
}

static void parse_retry(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__retry_cfg_t *o) {
  static const char *const keys[] = {
      "retry_on", "retriable_status_codes", "num_retries", "base_interval_ms",
      "max_interval_ms", "budget", NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  parse_retry_on(c, v, path, o);
  parse_codes(c, v, path, o);
  u32(c, v, path, "num_retries", 0, 100, &o->num_retries);
  i64(c, v, path, "base_interval_ms", 1, MS_MAX, &o->base_interval_ms);
  /* Envoy: max defaults to 10 x base. */
  o->max_interval_ms = 10 * o->base_interval_ms;
  int64_t mx;
  if (mesh__cfg_int(c, v, path, "max_interval_ms", 1, MS_MAX,
                    o->max_interval_ms, &mx)) {
    if (mx < o->base_interval_ms) {
      char p[MESH__PATH_MAX];
      mesh__cfg_path(p, path, "max_interval_ms");
      mesh__cfg_error(c, p, "%lld is smaller than base_interval_ms (%lld)",
                      (long long)mx, (long long)o->base_interval_ms);
    } else {
      o->max_interval_ms = mx;
    }
  }
  parse_budget(c, v, path, o);
}

static void parse_timeouts(mesh__cfg_t *c, const cJSON *v, const char *path,
                           mesh__timeout_cfg_t *o) {
  static const char *const keys[] = {"connect_ms", "per_try_ms", "overall_ms",
                                     NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  i64(c, v, path, "connect_ms", 1, MS_MAX, &o->connect_ms);
  i64(c, v, path, "per_try_ms", 0, MS_MAX, &o->per_try_ms);
  i64(c, v, path, "overall_ms", 0, MS_MAX, &o->overall_ms);
}

static void parse_hedge(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__hedge_cfg_t *o) {
  static const char *const keys[] = {"delay_ms", "max_attempts", NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  o->enabled = true;
  i64(c, v, path, "delay_ms", 0, MS_MAX, &o->delay_ms);
  /* gRPC caps hedged attempts at 5. */
  u32(c, v, path, "max_attempts", 1, 5, &o->max_attempts);
}

static void parse_pool(mesh__cfg_t *c, const cJSON *v, const char *path,
                       mesh__pool_cfg_t *o) {
  static const char *const keys[] = {"max_idle", "idle_timeout_ms",
                                     "check_after_ms", NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  u32(c, v, path, "max_idle", 0, 1024, &o->max_idle);
  i64(c, v, path, "idle_timeout_ms", 0, MS_MAX, &o->idle_timeout_ms);
  i64(c, v, path, "check_after_ms", 0, 1000, &o->check_after_ms);
}

static const cJSON *key(const cJSON *svc, const char *k) {
  return cJSON_IsObject(svc) ? cJSON_GetObjectItemCaseSensitive(svc, k) : NULL;
}

void mesh__res_cfg_parse(mesh__cfg_t *c, const cJSON *svc, const char *path,
                         mesh__res_cfg_t *o) {
  char p[MESH__PATH_MAX];
  mesh__res_cfg_defaults(o);
  mesh__cfg_path(p, path, "outlier_detection");
  parse_od(c, key(svc, "outlier_detection"), p, &o->od);
  mesh__cfg_path(p, path, "health_check");
  parse_hc(c, key(svc, "health_check"), p, &o->hc);
  mesh__cfg_path(p, path, "circuit_breakers");
  parse_cb(c, key(svc, "circuit_breakers"), p, &o->cb);
  mesh__cfg_path(p, path, "retry");
  parse_retry(c, key(svc, "retry"), p, &o->retry);
  mesh__cfg_path(p, path, "timeouts");
  parse_timeouts(c, key(svc, "timeouts"), p, &o->to);
  mesh__cfg_path(p, path, "hedge");
  parse_hedge(c, key(svc, "hedge"), p, &o->hedge);
  mesh__cfg_path(p, path, "pool");
  parse_pool(c, key(svc, "pool"), p, &o->pool);
}


void mesh__res_cfg_check_key(mesh__cfg_t *c, const char *key, const cJSON *v,
                             const char *path) {
  mesh__res_cfg_t d;
  mesh__res_cfg_defaults(&d);
  if (strcmp(key, "outlier_detection") == 0)
    parse_od(c, v, path, &d.od);
  else if (strcmp(key, "health_check") == 0)
    parse_hc(c, v, path, &d.hc);
  else if (strcmp(key, "circuit_breakers") == 0)
    parse_cb(c, v, path, &d.cb);
  else if (strcmp(key, "retry") == 0)
    parse_retry(c, v, path, &d.retry);
  else if (strcmp(key, "timeouts") == 0)
    parse_timeouts(c, v, path, &d.to);
  else if (strcmp(key, "hedge") == 0)
    parse_hedge(c, v, path, &d.hedge);
  else if (strcmp(key, "pool") == 0)
    parse_pool(c, v, path, &d.pool);
}
