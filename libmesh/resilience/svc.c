/* SPDX-License-Identifier: Apache-2.0 */
/* The registered per-service part: validation of the resilience keys (and "alpn"),
 * building the state at mesh_new(), and the worker-loop timers (outlier
 * sweep, pool sweep, health checks). */
#include "resilience/resilience.h"

#include <stdlib.h>
#include <string.h>

/* ---- worker timers -------------------------------------------------------------- */

/* The sweep period: the service's interval, or with groups the shortest
 * interval of those with outlier detection on (each group then sweeps
 * when its own is due, outlier.c); 0: none is on. */
static int64_t od_period(const mesh__res_live_t *l) {
  int64_t p = l->od.enabled ? l->od.interval_ms : 0; /* or: no group's */
  for (size_t i = 0; i < l->ngrp; i++)
    if (l->grp[i].od.enabled && (!p || l->grp[i].od.interval_ms < p))
      p = l->grp[i].od.interval_ms;
  return p;
}

static void od_tick(void *user) {
  mesh__res_svc_t *rs = user;
  rs->od_timer = 0;
  if (rs->m && atomic_load(&rs->m->closing))
    return;
  mesh__snapshot_t *snap = mesh__res_snapshot(rs->svc);
  mesh__od_sweep(rs, snap, mesh__now_ms());
  mesh__snap_release(snap);
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  int64_t p = od_period(l);
  int64_t id = p ? mesh__loop_timer(rs->m->loop, p, od_tick, rs) : 0;
  mesh__res_live_release(l);
  rs->od_timer = id > 0 ? id : 0;
}

void mesh__res_od_timer_reset(mesh__res_svc_t *rs) {
  if (!rs->m || !rs->m->loop)
    return;
  mesh__loop_timer_cancel(rs->m->loop, rs->od_timer);
  rs->od_timer = 0;
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  int64_t p = od_period(l);
  if (p) {
    int64_t id = mesh__loop_timer(rs->m->loop, p, od_tick, rs);
    rs->od_timer = id > 0 ? id : 0;
  }
  mesh__res_live_release(l);
}

/* Idle connections are swept often enough that an expired one never lives
 * much past its timeout, and never more than every 100 ms; at least every
 * second, because the sweep also drives idle shared HTTP/2 sessions
 * (keepalive PINGs, a dead peer noticed). */
static int64_t pool_period(const mesh__pool_cfg_t *pc) {
  int64_t p = pc->idle_timeout_ms / 4;
  if (p <= 0 || p > 1000)
    p = 1000;
  return p < 100 ? 100 : p;
}

static void pool_tick(void *user) {
  mesh__res_svc_t *rs = user;
  rs->pool_timer = 0;
  if (rs->m && atomic_load(&rs->m->closing))
    return;
  mesh__snapshot_t *snap = mesh__res_snapshot(rs->svc);
  int64_t now = mesh__now_ms();
  for (size_t i = 0; snap && i < snap->n; i++)
    mesh__pool_sweep(mesh__res_pool_peek(snap->hosts[i]), now,
                     rs->cfg->pool.idle_timeout_ms);
  mesh__snap_release(snap);
  int64_t id =
      mesh__loop_timer(rs->m->loop, pool_period(&rs->cfg->pool), pool_tick, rs);
  rs->pool_timer = id > 0 ? id : 0;
}

static void start_timers(mesh__res_svc_t *rs) {
  if (!rs->m || !rs->m->loop)
    return;
  if (rs->cfg->od.enabled) {
    int64_t id =
        mesh__loop_timer(rs->m->loop, rs->cfg->od.interval_ms, od_tick, rs);
    rs->od_timer = id > 0 ? id : 0;
  }
  if (rs->cfg->pool.max_idle > 0) {
    int64_t id =
        mesh__loop_timer(rs->m->loop, pool_period(&rs->cfg->pool), pool_tick, rs);
    rs->pool_timer = id > 0 ? id : 0;
  }
  mesh__hc_start(rs);
}

static void stop_timers(mesh__res_svc_t *rs) {
  if (!rs->m || !rs->m->loop)
    return;
  mesh__loop_timer_cancel(rs->m->loop, rs->od_timer);
  mesh__loop_timer_cancel(rs->m->loop, rs->pool_timer);
  rs->od_timer = rs->pool_timer = 0;
  mesh__hc_stop(rs);
}

/* ---- the registered part ---------------------------------------------------------- */

/* The service's "alpn" key (tls/alpn.c validates and expands it). */
static int set_alpn(mesh__res_svc_t *rs, mesh__service_t *svc,
                    const char *path, mesh_status_t *st) {
  const cJSON *v = cJSON_IsObject(svc->cfg)
                       ? cJSON_GetObjectItemCaseSensitive(svc->cfg, "alpn")
                       : NULL;
  if (!v)
    return MESH_OK;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "alpn");
  mesh__cfg_t c = {.first = st};
  char list[MESH__SVC_ALPN_LEN];
  if (!mesh__tls_svc_alpn(&c, v, p, list, sizeof list))
    return MESH_ERR_CONFIG; /* check() already reported it; defensive */
  rs->alpn = strdup(list);
  if (!rs->alpn)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  return MESH_OK;
}

int mesh__res_svc_init(mesh_t *m, mesh__service_t *svc, const cJSON *v,
                       mesh_status_t *st) {
  (void)v; /* this entry reads all seven keys of the service */
  char path[MESH__PATH_MAX];
  mesh__cfg_path(path, "services", svc->name);
  mesh__cfg_t c = {.first = st};
  mesh__res_cfg_t cfg;
  mesh__res_cfg_parse(&c, svc->cfg, path, &cfg);
  if (c.nerr > 0)
    return MESH_ERR_CONFIG; /* check() already reported it; defensive */
  mesh__res_svc_t *rs;
  int rc = mesh__res_svc_new(m, svc, svc->name, &cfg, &rs);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "services.%s: cannot set up resilience: %s",
                      svc->name, mesh_strerror(rc));
  rc = set_alpn(rs, svc, path, st);
  if (rc != MESH_OK) {
    mesh__res_svc_free(rs);
    return rc;
  }
  svc->res = (struct mesh__res_svc *)rs;
  mesh__res_stats_init(rs);
  mesh__res_register_views(m);
  start_timers(rs);
  return MESH_OK;
}

void mesh__res_svc_fini(mesh_t *m, mesh__service_t *svc) {
  (void)m;
  mesh__res_svc_t *rs = (mesh__res_svc_t *)svc->res;
  if (!rs)
    return;
  /* The worker is stopped before services are torn down, so cancelling
   * here cannot race a firing timer. */
  stop_timers(rs);
  /* Closing a pooled connection gives back a slot in rs: close them now,
   * while rs lives, rather than when discovery drops the hosts. */
  mesh__snapshot_t *snap = mesh__res_snapshot(svc);
  for (size_t i = 0; snap && i < snap->n; i++)
    mesh__pool_clear(mesh__res_pool_peek(snap->hosts[i]));
  mesh__snap_release(snap);
  mesh__res_stats_fini(rs);
  mesh__res_svc_free(rs);
  svc->res = NULL;
}

/* ---- the per-service keys, as registered in core/parts.c ----------------
 * Each key validates itself; the state of all seven is built once by the
 * "outlier_detection" entry's init (it runs for every service, key present
 * or not). */

#define CHECKER(name, key)                                                  \
  static void name(mesh__cfg_t *c, const cJSON *v, const char *path) {      \
    mesh__res_cfg_check_key(c, key, v, path);                               \
  }

CHECKER(check_od, "outlier_detection")
CHECKER(check_hc, "health_check")
CHECKER(check_cb, "circuit_breakers")
CHECKER(check_retry, "retry")
CHECKER(check_timeouts, "timeouts")
CHECKER(check_hedge, "hedge")
CHECKER(check_pool, "pool")

static void check_alpn(mesh__cfg_t *c, const cJSON *v, const char *path) {
  char list[MESH__SVC_ALPN_LEN];
  mesh__tls_svc_alpn(c, v, path, list, sizeof list);
}

const mesh__svc_part_t mesh__res_part_outlier = {
    "outlier_detection", check_od, mesh__res_svc_init, mesh__res_svc_fini};
const mesh__svc_part_t mesh__res_part_health = {"health_check", check_hc,
                                                NULL, NULL};
const mesh__svc_part_t mesh__res_part_breakers = {"circuit_breakers",
                                                  check_cb, NULL, NULL};
const mesh__svc_part_t mesh__res_part_retry = {"retry", check_retry, NULL,
                                               NULL};
const mesh__svc_part_t mesh__res_part_timeouts = {"timeouts", check_timeouts,
                                                  NULL, NULL};
const mesh__svc_part_t mesh__res_part_hedge = {"hedge", check_hedge, NULL,
                                               NULL};
const mesh__svc_part_t mesh__res_part_pool = {"pool", check_pool, NULL, NULL};
/* Envoy's cluster alpn_protocols / Istio's ALPN override, per service. */
const mesh__svc_part_t mesh__res_part_alpn = {"alpn", check_alpn, NULL, NULL};
