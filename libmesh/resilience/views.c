/* SPDX-License-Identifier: Apache-2.0 */
/* What resilience shows the readers: the "resilience" view (admin
 * /resilience), per service the live circuit breaker thresholds and the
 * counters in use, the outlier detection settings and the hosts ejected
 * now, and the connect timeout; for a service split across clusters (xDS
 * weighted clusters, group.c) the same per cluster, as Envoy's per-cluster
 * circuit_breakers / outlier_detection and stats.  Registered with
 * telemetry so that the admin endpoint reads it without calling into
 * resilience. */
#include "resilience/resilience.h"
#include "telemetry/telemetry.h"

static void cb_json(cJSON *o, const mesh__cb_cfg_t *cb,
                    const mesh__breakers_t *br) {
  cJSON *t = cJSON_AddObjectToObject(o, "circuit_breakers");
  if (!t)
    return;
  cJSON_AddNumberToObject(t, "max_connections", (double)cb->max_connections);
  cJSON_AddNumberToObject(t, "max_pending_requests",
                          (double)cb->max_pending_requests);
  cJSON_AddNumberToObject(t, "max_requests", (double)cb->max_requests);
  cJSON_AddNumberToObject(t, "max_retries", (double)cb->max_retries);
  cJSON *u = cJSON_AddObjectToObject(o, "in_use");
  if (u) {
    cJSON_AddNumberToObject(u, "connections", (double)atomic_load(&br->connections));
    cJSON_AddNumberToObject(u, "pending", (double)atomic_load(&br->pending));
    cJSON_AddNumberToObject(u, "requests", (double)atomic_load(&br->requests));
    cJSON_AddNumberToObject(u, "retries", (double)atomic_load(&br->retries));
  }
  cJSON *v = cJSON_AddObjectToObject(o, "overflows");
  if (v) {
    cJSON_AddNumberToObject(v, "connections", (double)atomic_load(&br->ov_connections));
    cJSON_AddNumberToObject(v, "pending", (double)atomic_load(&br->ov_pending));
    cJSON_AddNumberToObject(v, "requests", (double)atomic_load(&br->ov_requests));
    cJSON_AddNumberToObject(v, "retries", (double)atomic_load(&br->ov_retries));
  }
}

static void od_json(cJSON *o, const mesh__od_cfg_t *c) {
  cJSON *d = cJSON_AddObjectToObject(o, "outlier_detection");
  if (!d)
    return;
  cJSON_AddBoolToObject(d, "enabled", c->enabled);
  if (!c->enabled)
    return;
  cJSON_AddNumberToObject(d, "consecutive_5xx", c->consecutive_5xx);
  cJSON_AddNumberToObject(d, "consecutive_gateway_failure",
                          c->consecutive_gateway_failure);
  cJSON_AddNumberToObject(d, "interval_ms", (double)c->interval_ms);
  cJSON_AddNumberToObject(d, "base_ejection_time_ms",
                          (double)c->base_ejection_time_ms);
  cJSON_AddNumberToObject(d, "max_ejection_time_ms",
                          (double)c->max_ejection_time_ms);
  cJSON_AddNumberToObject(d, "max_ejection_percent", c->max_ejection_percent);
  cJSON_AddNumberToObject(d, "success_rate_minimum_hosts",
                          c->success_rate_minimum_hosts);
  cJSON_AddNumberToObject(d, "failure_percentage_threshold",
                          c->failure_percentage_threshold);
  cJSON_AddNumberToObject(d, "enforcing_success_rate",
                          c->enforcing_success_rate);
  cJSON_AddNumberToObject(d, "enforcing_failure_percentage",
                          c->enforcing_failure_percentage);
}

/* The hosts of snap in group g (NULL with l->ngrp 0: all) ejected now. */
static void ejected_json(cJSON *o, const mesh__res_live_t *l,
                         const mesh__res_grp_t *g, mesh__snapshot_t *snap,
                         int64_t now) {
  cJSON *a = cJSON_AddArrayToObject(o, "ejected");
  size_t n = 0;
  for (size_t i = 0; a && snap && i < snap->n; i++) {
    mesh__host_t *h = snap->hosts[i];
    if ((!l->ngrp || mesh__res_grp_of(l, h) == g) && mesh__od_ejected(h, now)) {
      cJSON_AddItemToArray(a, cJSON_CreateString(h->key));
      n++;
    }
  }
  cJSON_AddNumberToObject(o, "ejections_active", (double)n);
}

static cJSON *service_json(mesh__service_t *svc, int64_t now) {
  mesh__res_svc_t *rs = (mesh__res_svc_t *)svc->res;
  cJSON *o = rs ? cJSON_CreateObject() : NULL;
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "name", svc->name);
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  mesh__snapshot_t *snap = mesh__res_snapshot(svc);
  if (!l->ngrp) { /* one state for the whole service */
    cb_json(o, &l->cb, &rs->br);
    od_json(o, &l->od);
    ejected_json(o, l, NULL, snap, now);
    cJSON_AddNumberToObject(o, "connect_timeout_ms", (double)l->connect_ms);
  } else {
    cJSON_AddStringToObject(o, "cluster_label", l->grp_label);
  }
  cJSON *cl = cJSON_AddArrayToObject(o, "clusters");
  for (size_t i = 0; cl && i < l->ngrp; i++) {
    const mesh__res_grp_t *g = &l->grp[i];
    cJSON *c = cJSON_CreateObject();
    if (!c)
      break;
    cJSON_AddItemToArray(cl, c);
    cJSON_AddStringToObject(c, "name", g->name);
    cJSON_AddNumberToObject(c, "weight", g->weight);
    cb_json(c, &g->cb, g->br);
    od_json(c, &g->od);
    ejected_json(c, l, g, snap, now);
    cJSON_AddNumberToObject(c, "connect_timeout_ms", (double)g->connect_ms);
  }
  mesh__snap_release(snap);
  mesh__res_live_release(l);
  return o;
}

/* The document of the admin endpoint's /resilience: the services of the
 * configuration, then those added at run time. */
static cJSON *resilience_view(mesh_t *m, void *user) {
  (void)user;
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "services") : NULL;
  int64_t now = mesh__now_ms();
  struct mesh__services *ss = m->services;
  size_t ndyn = ss ? atomic_load_explicit(&ss->ndyn, memory_order_acquire) : 0;
  for (size_t i = 0; arr && ss && i < ss->n + ndyn; i++) {
    cJSON *s = service_json(i < ss->n ? ss->v[i] : ss->dyn[i - ss->n], now);
    if (s)
      cJSON_AddItemToArray(arr, s);
  }
  return doc;
}

void mesh__res_register_views(mesh_t *m) {
  if (m)
    mesh__view_register(m, "resilience", resilience_view, NULL);
}
