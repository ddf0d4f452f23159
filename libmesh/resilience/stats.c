/* SPDX-License-Identifier: Apache-2.0 */
/* Metrics of the resilience part (names reserved in docs/config/observe.md):
 * handles registered once per service at init, per endpoint on first use,
 * and updated lock-free on the hot path.  With no context (unit tests)
 * every handle is NULL and updates do nothing. */
#include "telemetry/telemetry.h"
#include "resilience/resilience.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const call_results[MESH__RES_MAX_] = {
    "ok",      "error",    "connect_failure", "reset",        "timeout",
    "deadline", "protocol_error", "no_endpoints", "circuit_open",
    "retry_budget", "other"};

static const char *const od_reasons[MESH__OD_TYPES_] = {
    "consecutive_5xx", "consecutive_gateway_failure", "success_rate",
    "failure_percentage"};

static const char *const limits[MESH__BR_LIMITS_] = {
    "connections", "pending", "requests", "retries"};

/* Codes with a result label of their own; the groups come from core's
 * classes (core/errclass.c). */
static const struct {
  int code, result;
} results[] = {
    {MESH_OK, MESH__RES_OK},
    {MESH_ERR_UPSTREAM, MESH__RES_ERROR},
    {MESH_ERR_TIMEOUT, MESH__RES_TIMEOUT},
    {MESH_ERR_DEADLINE, MESH__RES_DEADLINE},
    {MESH_ERR_PARSE, MESH__RES_PROTOCOL},
    {MESH_ERR_BUFFER, MESH__RES_PROTOCOL},
    {MESH_ERR_NO_ENDPOINTS, MESH__RES_NO_ENDPOINTS},
    {MESH_ERR_DISCOVERY, MESH__RES_NO_ENDPOINTS},
    {MESH_ERR_CIRCUIT_OPEN, MESH__RES_CIRCUIT_OPEN},
    {MESH_ERR_RETRY_BUDGET, MESH__RES_RETRY_BUDGET},
};

int mesh__res_result_of(int rc) {
  for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
    if (results[i].code == rc)
      return results[i].result;
  unsigned cls = mesh__err_class(rc);
  if (cls & MESH__EF_RESET)
    return MESH__RES_RESET;
  if (cls & MESH__EF_SETUP)
    return MESH__RES_CONNECT;
  return MESH__RES_OTHER;
}

static double ejected_now(void *user) {
  mesh__res_svc_t *rs = user;
  mesh__snapshot_t *s = mesh__res_snapshot(rs->svc);
  int64_t now = mesh__now_ms();
  double n = 0;
  for (size_t i = 0; s && i < s->n; i++)
    n += mesh__od_ejected(s->hosts[i], now);
  mesh__snap_release(s);
  return n;
}

/* Idle pooled connections of the service, summed over its current
 * endpoints at scrape time (nothing to keep in step on put/take). */
static double pooled_now(void *user) {
  mesh__res_svc_t *rs = user;
  mesh__snapshot_t *s = mesh__res_snapshot(rs->svc);
  double n = 0;
  for (size_t i = 0; s && i < s->n; i++)
    n += (double)mesh__pool_idle(mesh__res_pool_peek(s->hosts[i]));
  mesh__snap_release(s);
  return n;
}

void mesh__res_stats_init(mesh__res_svc_t *rs) {
  mesh_t *m = rs->m;
  mesh__res_stats_t *x = &rs->mx;
  if (!m)
    return;
  char l[256];
  snprintf(l, sizeof l, "service=%s", rs->name);
  x->retries = mesh__counter(m, "mesh_retries_total", "Retries made.", l);
  x->budget = mesh__counter(m, "mesh_retry_budget_exhausted_total",
                            "Retries refused by the budget or max retries.", l);
  x->replays = mesh__counter(m, "mesh_stale_connection_replays_total",
                             "Requests sent again on a new connection after "
                             "a pooled one turned out closed.", l);
  x->call_s = mesh__histogram(m, "mesh_call_duration_seconds",
                              "Call latency, all tries.", l, NULL, 0);
  x->try_s = mesh__histogram(m, "mesh_call_try_duration_seconds",
                             "Latency of one try.", l, NULL, 0);
  x->ejected = mesh__gauge_func(m, "mesh_endpoints_ejected",
                                "Endpoints ejected now.", l, ejected_now, rs);
  x->pooled = mesh__gauge_func(m, "mesh_connections_pooled",
                               "Idle pooled connections.", l, pooled_now, rs);
  _Static_assert((int)MESH__BR_LIMITS_ == (int)MESH__OD_TYPES_,
                 "one loop registers both");
  for (int i = 0; i < MESH__BR_LIMITS_; i++) {
    snprintf(l, sizeof l, "service=%s,limit=%s", rs->name, limits[i]);
    x->overflow[i] = mesh__counter(m, "mesh_circuit_breaker_overflows_total",
                                   "Calls refused by a breaker.", l);
    snprintf(l, sizeof l, "service=%s,reason=%s", rs->name, od_reasons[i]);
    x->ejections[i] = mesh__counter(m, "mesh_outlier_ejections_total",
                                    "Ejections.", l);
  }
  for (int i = 0; i < 2; i++) {
    snprintf(l, sizeof l, "service=%s,result=%s", rs->name,
             i ? "failure" : "success");
    x->hc[i] = mesh__counter(m, "mesh_health_checks_total",
                             "Active health checks.", l);
  }
}

/* A label value for mesh__counter's "k=v,..." form: ',' and '\\' escaped
 * (telemetry's mesh__labels_parse undoes it).  False if it does not fit. */
static bool label_value(char *out, size_t cap, const char *v) {
  size_t o = 0;
  for (; *v; v++) {
    if (o + 3 > cap)
      return false;
    if (*v == ',' || *v == '\\')
      out[o++] = '\\';
    out[o++] = *v;
  }
  out[o] = '\0';
  return true;
}

/* Has rs given name series already, or may it (under the cap)?  Records
 * the name.  Loop thread. */
static bool series_slot(mesh__res_svc_t *rs, const char *name) {
  for (uint32_t i = 0; i < rs->ngrp_series; i++)
    if (strcmp(rs->grp_series[i], name) == 0)
      return true;
  if (rs->ngrp_series >= MESH__RES_GRP_SERIES_MAX)
    return false;
  if (!rs->grp_series) {
    rs->grp_series = calloc(MESH__RES_GRP_SERIES_MAX, sizeof *rs->grp_series);
    if (!rs->grp_series)
      return false;
  }
  char *d = mesh__strdup(name);
  if (!d)
    return false;
  rs->grp_series[rs->ngrp_series++] = d;
  return true;
}

/* The cluster's series, in families of their own (a family has one set of
 * label keys: the service-wide ones keep exactly their series, Envoy's
 * cluster stats are per cluster as these).  The registry hands back the
 * same series when a removed cluster comes back, so a name costs its 8
 * series once. */
static void group_series(mesh__res_svc_t *rs, const char *name,
                         mesh__breakers_t *br) {
  char v[400], l[700];
  br->mx_done = true;
  if (!label_value(v, sizeof v, name) ||
      strlen(rs->name) + strlen(v) + 64 > sizeof l) {
    mesh__log(rs->m, MESH_LOG_WARN, "cluster_series_name",
              "service=%s cluster=%.64s...: name too long for a label, "
              "counted in the service's series",
              rs->name, name);
    return;
  }
  if (!series_slot(rs, name)) {
    mesh__log(rs->m, MESH_LOG_WARN, "cluster_series_cap",
              "service=%s cluster=%s: more than %d clusters, counted in the "
              "service's series",
              rs->name, name, MESH__RES_GRP_SERIES_MAX);
    return;
  }
  mesh__grp_mx_t *x = calloc(1, sizeof *x);
  if (!x)
    return;
  for (int i = 0; i < MESH__BR_LIMITS_; i++) {
    snprintf(l, sizeof l, "service=%s,cluster=%s,limit=%s", rs->name, v,
             limits[i]);
    x->ov[i] =
        mesh__counter(rs->m, "mesh_cluster_circuit_breaker_overflows_total",
                      "Calls refused by a cluster's breaker.", l);
    snprintf(l, sizeof l, "service=%s,cluster=%s,reason=%s", rs->name, v,
             od_reasons[i]);
    x->ej[i] = mesh__counter(rs->m, "mesh_cluster_outlier_ejections_total",
                             "Ejections in a cluster.", l);
  }
  br->mx = x;
}

void mesh__res_stats_groups(mesh__res_svc_t *rs, mesh__res_live_t *l) {
  for (size_t i = 0; rs && rs->m && l && i < l->ngrp; i++)
    if (!l->grp[i].br->mx_done)
      group_series(rs, l->grp[i].name, l->grp[i].br);
}

void mesh__res_count_overflow(mesh__res_svc_t *rs, const mesh__breakers_t *br,
                              int limit) {
  mesh__metric_t *c = br && br->mx ? br->mx->ov[limit] : NULL;
  mesh__counter_add(c ? c : rs->mx.overflow[limit], 1);
}

void mesh__res_stats_fini(mesh__res_svc_t *rs) {
  /* the gauge reads rs at scrape time: stop it before rs goes */
  mesh__gauge_func_detach(rs->mx.ejected);
  rs->mx.ejected = NULL;
  mesh__gauge_func_detach(rs->mx.pooled);
  rs->mx.pooled = NULL;
}

/* The calls counter of (endpoint, result), registered on first use; the
 * registry hands every racer the same handle. */
static mesh__metric_t *calls_handle(mesh__res_svc_t *rs, mesh__host_t *h,
                                    int res) {
  _Atomic(mesh__metric_t *) *slot;
  mesh__res_host_t *rh = h ? mesh__res_host(h) : NULL;
  if (rh)
    slot = &rh->calls[res];
  else
    slot = &rs->mx.calls_none[res];
  mesh__metric_t *c = atomic_load_explicit(slot, memory_order_acquire);
  if (c || !rs->m)
    return c;
  char l[256];
  snprintf(l, sizeof l, "service=%s,endpoint=%s,outcome=%s", rs->name,
           rh ? h->key : "", call_results[res]);
  c = mesh__counter(rs->m, "mesh_calls_total", "Calls.", l);
  atomic_store_explicit(slot, c, memory_order_release);
  return c;
}

void mesh__res_count_call(mesh__res_svc_t *rs, mesh__host_t *last, int rc,
                          int64_t start_ns) {
  if (!rs || !rs->m)
    return;
  mesh__counter_add(calls_handle(rs, last, mesh__res_result_of(rc)), 1);
  mesh__histogram_observe(rs->mx.call_s,
                          (double)(mesh__now_ns() - start_ns) / 1e9);
}
