/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint's views: what each path answers (see admin.c for the
 * list and the server around them).  Each reads the library's state
 * through the parts' own accessors and never blocks. */
#include "observe/admin.h"
#include "observe/observe.h"
#include "telemetry/telemetry.h"

#include <arpa/inet.h>
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

/* ---- /endpoints, /identity ---------------------------------------------------
 * The parts render their own documents (discovery: "endpoints", identity:
 * "identity") through telemetry's views: admin only reads. */

static void route_view(resp_t *r, mesh_t *m, const char *name) {
  cJSON *doc = mesh__view_render(m, name);
  if (!doc) {
    mesh__admin_resp_text(r, 500, "view unavailable\n");
    return;
  }
  resp_json(r, doc);
}

static void route_endpoints(mesh__admin_t *a, resp_t *r) {
  route_view(r, a->m, "endpoints");
}

static void route_identity(mesh__admin_t *a, resp_t *r) {
  route_view(r, a->m, "identity");
}

/* The resilience part's view (per service and cluster: breaker
 * thresholds and counters, outlier settings and ejected hosts, connect
 * timeout). */
static void route_resilience(mesh__admin_t *a, resp_t *r) {
  route_view(r, a->m, "resilience");
}

/* The xds part's view (per type and resource: version, status, error). */
static void route_xds(mesh__admin_t *a, resp_t *r) {
  cJSON *v = mesh__view_render(a->m, "xds");
  if (!v) {
    mesh__admin_resp_text(r, 404, "xds is not configured\n");
    return;
  }
  resp_json(r, v);
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
      {"/xds", route_xds},         {"/resilience", route_resilience},
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

