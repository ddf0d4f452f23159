/* SPDX-License-Identifier: Apache-2.0 */
/* What discovery shows the readers: the "endpoints" view (every service's
 * source, freshness and endpoints with their live state), registered with
 * telemetry so that the admin endpoint reads it without calling into
 * discovery. */
#include "discovery/discovery.h"

static const char *health_name(int h) {
  switch (h) {
  case MESH__HEALTH_HEALTHY: return "healthy";
  case MESH__HEALTH_UNHEALTHY: return "unhealthy";
  case MESH__HEALTH_DRAINING: return "draining";
  default: return "unknown";
  }
}

static void host_state(cJSON *o, const mesh__host_t *h, int64_t now_ms) {
  int hc = atomic_load(&h->hc_health);
  int health = hc != MESH__HEALTH_UNKNOWN ? hc : h->source_health;
  cJSON_AddStringToObject(o, "health", health_name(health));
  cJSON_AddStringToObject(o, "source_health", health_name(h->source_health));
  cJSON_AddStringToObject(o, "check_health", health_name(hc));
  int64_t until = atomic_load(&h->ejected_until_ms);
  bool ejected = until > now_ms;
  cJSON_AddBoolToObject(o, "ejected", ejected);
  cJSON_AddNumberToObject(o, "ejected_for_ms",
                          ejected ? (double)(until - now_ms) : 0);
  cJSON_AddBoolToObject(o, "usable", mesh__host_usable(h, now_ms));
  cJSON *lb = cJSON_AddObjectToObject(o, "lb");
  if (lb) {
    cJSON_AddNumberToObject(lb, "active_requests", atomic_load(&h->active_rq));
    cJSON_AddNumberToObject(lb, "ewma_ms",
                            (double)atomic_load(&h->ewma_ns) / 1e6);
  }
}

static cJSON *host_json(const mesh__host_t *h, int64_t now_ms) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "address", h->address ? h->address : "");
  cJSON_AddNumberToObject(o, "port", h->port);
  cJSON_AddNumberToObject(o, "weight", h->weight);
  cJSON_AddNumberToObject(o, "priority", h->priority);
  cJSON *loc = cJSON_AddObjectToObject(o, "locality");
  if (loc) {
    cJSON_AddStringToObject(loc, "region", h->region ? h->region : "");
    cJSON_AddStringToObject(loc, "zone", h->zone ? h->zone : "");
    cJSON_AddStringToObject(loc, "subzone", h->subzone ? h->subzone : "");
  }
  cJSON *labels = cJSON_AddObjectToObject(o, "labels");
  for (size_t i = 0; labels && i < h->nlabels; i++)
    cJSON_AddStringToObject(labels, h->labels[i].key, h->labels[i].value);
  host_state(o, h, now_ms);
  return o;
}

static void add_stats(cJSON *o, mesh__service_t *svc) {
  mesh__disc_stats_t st;
  if (mesh__disc_stats(svc, &st) != MESH_OK) {
    cJSON_AddStringToObject(o, "source", "none");
    return;
  }
  cJSON_AddStringToObject(o, "source", st.source ? st.source : "none");
  cJSON_AddBoolToObject(o, "stale", st.stale);
  cJSON_AddNumberToObject(o, "version", (double)st.version);
  cJSON_AddNumberToObject(o, "updates", (double)st.updates);
  cJSON_AddNumberToObject(o, "errors", (double)st.errors);
  cJSON_AddStringToObject(o, "last_error", st.last_error);
}

static cJSON *service_json(mesh__service_t *svc, int64_t now_ms) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "name", svc->name);
  cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
  add_stats(o, svc);
  mesh__snapref_t *ref = mesh__disc_snapref(svc);
  mesh__snapshot_t *snap = ref ? mesh__snap_acquire(ref) : NULL;
  size_t usable = 0;
  for (size_t i = 0; snap && eps && i < snap->n; i++) {
    cJSON *h = host_json(snap->hosts[i], now_ms);
    if (h)
      cJSON_AddItemToArray(eps, h);
    if (mesh__host_usable(snap->hosts[i], now_ms))
      usable++;
  }
  cJSON_AddNumberToObject(o, "usable", (double)usable);
  mesh__snap_release(snap);
  return o;
}

/* The document of the admin endpoint's /endpoints. */
static cJSON *endpoints_view(mesh_t *m, void *user) {
  (void)user;
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "services") : NULL;
  int64_t now = mesh__now_ms();
  struct mesh__services *ss = m->services;
  for (size_t i = 0; arr && ss && i < ss->n; i++) {
    cJSON *s = service_json(ss->v[i], now);
    if (s)
      cJSON_AddItemToArray(arr, s);
  }
  return doc;
}

void mesh__disc_register_views(mesh_t *m) {
  mesh__view_register(m, "endpoints", endpoints_view, NULL);
}
