/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint's views: what each path answers (see admin.c for the
 * list and the server around them).  Each reads the library's state
 * through the parts' own accessors and never blocks. */
#include "observe/admin.h"
#include "observe/observe.h"
#include "telemetry/tracer.h"

#include <arpa/inet.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery.h"
#include "identity/identity.h"

/* ---- responses --------------------------------------------------------------- */


const char *mesh__admin_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Error";
  }
}

void mesh__admin_resp_text(resp_t *r, int status, const char *text) {
  r->status = status;
  r->ctype = "text/plain; charset=utf-8";
  r->body = strdup(text);
  r->len = r->body ? strlen(r->body) : 0;
}

static void resp_json(resp_t *r, cJSON *doc) {
  char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
  cJSON_Delete(doc);
  if (!text) {
    mesh__admin_resp_text(r, 500, "out of memory\n");
    return;
  }
  r->status = 200;
  r->ctype = "application/json";
  r->body = text;
  r->len = strlen(text);
}

/* ---- /endpoints ------------------------------------------------------------ */

static const char *health_name(int h) {
  switch (h) {
  case MESH__HEALTH_HEALTHY: return "healthy";
  case MESH__HEALTH_UNHEALTHY: return "unhealthy";
  case MESH__HEALTH_DRAINING: return "draining";
  default: return "unknown";
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
  return o;
}

static cJSON *service_json(mesh__service_t *svc, int64_t now_ms) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "name", svc->name);
  cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
  mesh__disc_stats_t st;
  if (mesh__disc_stats(svc, &st) == MESH_OK) {
    cJSON_AddStringToObject(o, "source", st.source ? st.source : "none");
    cJSON_AddBoolToObject(o, "stale", st.stale);
    cJSON_AddNumberToObject(o, "version", (double)st.version);
    cJSON_AddNumberToObject(o, "updates", (double)st.updates);
    cJSON_AddNumberToObject(o, "errors", (double)st.errors);
    cJSON_AddStringToObject(o, "last_error", st.last_error);
  } else {
    cJSON_AddStringToObject(o, "source", "none");
  }
  mesh__snapref_t *ref = mesh__disc_snapref(svc);
  mesh__snapshot_t *snap = ref ? mesh__snap_acquire(ref) : NULL;
  size_t healthy = 0;
  for (size_t i = 0; snap && eps && i < snap->n; i++) {
    cJSON *h = host_json(snap->hosts[i], now_ms);
    if (h)
      cJSON_AddItemToArray(eps, h);
    if (mesh__host_usable(snap->hosts[i], now_ms))
      healthy++;
  }
  cJSON_AddNumberToObject(o, "usable", (double)healthy);
  if (snap)
    mesh__snap_release(snap);
  return o;
}

static void route_endpoints(mesh__admin_t *a, resp_t *r) {
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "services") : NULL;
  int64_t now = mesh__now_ms();
  struct mesh__services *ss = a->m->services;
  for (size_t i = 0; arr && ss && i < ss->n; i++) {
    cJSON *s = service_json(ss->v[i], now);
    if (s)
      cJSON_AddItemToArray(arr, s);
  }
  resp_json(r, doc);
}

/* ---- /identity ---------------------------------------------------------------- */

static void add_time(cJSON *o, const char *key, const mbedtls_x509_time *t) {
  char buf[32];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", t->year, t->mon,
           t->day, t->hour, t->min, t->sec);
  cJSON_AddStringToObject(o, key, buf);
}

static void route_identity(mesh__admin_t *a, resp_t *r) {
  cJSON *doc = cJSON_CreateObject();
  if (!doc) {
    mesh__admin_resp_text(r, 500, "out of memory\n");
    return;
  }
  /* Where the SVID comes from, and what that source last said (the
   * identity view carries the same two keys). */
  char state[300];
  cJSON_AddStringToObject(doc, "source", mesh__identity_source(a->m));
  mesh__identity_source_state(a->m, state, sizeof state);
  if (state[0])
    cJSON_AddStringToObject(doc, "source_state", state);
  mesh__creds_t *c = mesh__creds_acquire(a->m);
  if (!c) {
    cJSON_AddNullToObject(doc, "spiffe_id");
    cJSON_AddStringToObject(doc, "status", "no SVID loaded");
    resp_json(r, doc);
    return;
  }
  cJSON_AddStringToObject(doc, "spiffe_id", c->id);
  cJSON_AddStringToObject(doc, "trust_domain", c->td);
  cJSON_AddNumberToObject(doc, "not_before", (double)c->not_before);
  cJSON_AddNumberToObject(doc, "not_after", (double)c->not_after);
  cJSON_AddNumberToObject(doc, "expires_in_s",
                          (double)(c->not_after - mesh__wall_s()));
  cJSON_AddNumberToObject(doc, "generation", (double)c->generation);
  cJSON *chain = cJSON_AddArrayToObject(doc, "chain");
  for (const mbedtls_x509_crt *crt = &c->chain; chain && crt && crt->raw.p;
       crt = crt->next) {
    cJSON *e = cJSON_CreateObject();
    if (!e)
      break;
    char buf[512];
    if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->subject) >= 0)
      cJSON_AddStringToObject(e, "subject", buf);
    if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->issuer) >= 0)
      cJSON_AddStringToObject(e, "issuer", buf);
    if (mbedtls_x509_serial_gets(buf, sizeof buf, &crt->serial) >= 0)
      cJSON_AddStringToObject(e, "serial", buf);
    add_time(e, "not_before", &crt->valid_from);
    add_time(e, "not_after", &crt->valid_to);
    cJSON_AddItemToArray(chain, e);
  }
  cJSON *bundles = cJSON_AddArrayToObject(doc, "bundles");
  for (size_t i = 0; bundles && i < c->nbundles; i++)
    cJSON_AddItemToArray(bundles, cJSON_CreateString(c->bundles[i].td));
  /* Each bundle's roots with their validity (the page shows expiry). */
  cJSON *roots = cJSON_AddArrayToObject(doc, "bundle_roots");
  for (size_t i = 0; roots && i < c->nbundles; i++) {
    for (const mbedtls_x509_crt *crt = &c->bundles[i].roots;
         crt && crt->raw.p; crt = crt->next) {
      cJSON *e = cJSON_CreateObject();
      if (!e)
        break;
      char buf[512];
      cJSON_AddStringToObject(e, "trust_domain", c->bundles[i].td);
      if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->subject) >= 0)
        cJSON_AddStringToObject(e, "subject", buf);
      add_time(e, "not_after", &crt->valid_to);
      cJSON_AddItemToArray(roots, e);
    }
  }
  mesh__creds_release(c);
  resp_json(r, doc);
}

/* ---- /spans, /config ------------------------------------------------------------ */

static const char *kind_name(int k) {
  return k == MESH_SPAN_SERVER ? "server"
         : k == MESH_SPAN_CLIENT ? "client"
                                 : "internal";
}

static void route_spans(mesh__admin_t *a, resp_t *r) {
  mesh__recent_t *rec = calloc(MESH__RECENT_SPANS, sizeof *rec);
  size_t n = rec ? mesh__tracer_recent(mesh__tracer_get(a->m), rec,
                                       MESH__RECENT_SPANS)
                 : 0;
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "spans") : NULL;
  for (size_t i = 0; arr && i < n; i++) {
    cJSON *s = cJSON_CreateObject();
    if (!s)
      break;
    cJSON_AddStringToObject(s, "trace_id", rec[i].trace_id);
    cJSON_AddStringToObject(s, "span_id", rec[i].span_id);
    cJSON_AddStringToObject(s, "parent_id", rec[i].parent_id);
    cJSON_AddStringToObject(s, "name", rec[i].name);
    cJSON_AddStringToObject(s, "kind", kind_name(rec[i].kind));
    cJSON_AddStringToObject(s, "target", rec[i].target);
    cJSON_AddStringToObject(s, "peer_id", rec[i].peer_id);
    cJSON_AddStringToObject(s, "status",
                            rec[i].status == MESH_SPAN_STATUS_ERROR ? "error"
                            : rec[i].status == MESH_SPAN_STATUS_OK  ? "ok"
                                                                    : "unset");
    cJSON_AddStringToObject(s, "error", rec[i].error);
    cJSON_AddNumberToObject(s, "start_ms", (double)(rec[i].start_ns / 1000000));
    cJSON_AddNumberToObject(s, "duration_us", (double)rec[i].dur_ns / 1e3);
    cJSON_AddItemToArray(arr, s);
  }
  free(rec);
  resp_json(r, doc);
}

static void route_config(mesh__admin_t *a, resp_t *r) {
  cJSON *copy = cJSON_Duplicate(a->m->config, 1);
  mesh__json_redact(copy);
  resp_json(r, copy);
}

static void route_metrics(mesh__admin_t *a, resp_t *r) {
  char *text;
  size_t len;
  if (mesh__metrics_render(a->m, &text, &len) != MESH_OK) {
    mesh__admin_resp_text(r, 500, "out of memory\n");
    return;
  }
  r->status = 200;
  r->ctype = "text/plain; version=0.0.4; charset=utf-8";
  r->body = text;
  r->len = len;
}

/* ---- /log ---------------------------------------------------------------------- */

static const char *const log_names[] = {"error", "warn", "info", "debug",
                                        "trace"};

static void route_log(mesh__admin_t *a, resp_t *r) {
  int lv = atomic_load(&a->m->log.level);
  char buf[32];
  snprintf(buf, sizeof buf, "%s\n",
           lv >= 0 && lv <= 4 ? log_names[lv] : "unknown");
  mesh__admin_resp_text(r, 200, buf);
}

void mesh__admin_set_log(mesh__admin_t *a, mesh__http_str_t target,
                         resp_t *r) {
  const char *q = memchr(target.p, '?', target.n);
  size_t qn = q ? target.n - (size_t)(q + 1 - target.p) : 0;
  if (q && qn > 6 && memcmp(q + 1, "level=", 6) == 0) {
    const char *v = q + 7;
    size_t vn = qn - 6;
    for (int i = 0; i < 5; i++) {
      if (strlen(log_names[i]) == vn && memcmp(v, log_names[i], vn) == 0) {
        int old = atomic_exchange(&a->m->log.level, i);
        mesh__log(a->m, MESH_LOG_WARN, "log_level_changed",
                  "from=%s to=%s via=admin",
                  old >= 0 && old <= 4 ? log_names[old] : "unknown",
                  log_names[i]);
        route_log(a, r);
        return;
      }
    }
  }
  mesh__admin_resp_text(r, 400, "expected ?level=error|warn|info|debug|trace\n");
}

const char *mesh__admin_route(mesh__admin_t *a, mesh__http_str_t target,
                              resp_t *r) {
  size_t n = 0;
  while (n < target.n && target.p[n] != '?')
    n++;
  mesh__http_str_t path = {target.p, n};
  if (mesh__http_str_eq(path, "/")) {
    r->status = 200;
    r->ctype = "text/html; charset=utf-8";
    r->body = strdup(mesh__admin_page);
    r->len = r->body ? strlen(r->body) : 0;
    r->extra = "Content-Security-Policy: default-src 'self'; "
               "script-src 'unsafe-inline'; style-src 'unsafe-inline'\r\n";
    return "/";
  }
  static const struct {
    const char *path;
    void (*fn)(mesh__admin_t *, resp_t *);
  } routes[] = {
      {"/metrics", route_metrics}, {"/endpoints", route_endpoints},
      {"/config", route_config},   {"/identity", route_identity},
      {"/spans", route_spans},     {"/log", route_log},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (mesh__http_str_eq(path, routes[i].path)) {
      routes[i].fn(a, r);
      return routes[i].path;
    }
  }
  if (mesh__http_str_eq(path, "/healthz")) {
    bool closing = atomic_load(&a->m->closing);
    mesh__admin_resp_text(r, closing ? 503 : 200, closing ? "closing\n" : "ok\n");
    return "/healthz";
  }
  mesh__admin_resp_text(r, 404, "not found\n");
  return "other";
}

