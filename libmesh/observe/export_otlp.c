/* SPDX-License-Identifier: Apache-2.0 */
/* OTLP/HTTP JSON encoding of a span batch (ExportTraceServiceRequest).
 * Per the OTLP JSON rules: lowerCamelCase field names, trace and span ids
 * as hex strings (not base64), enums as integers, 64-bit integers as
 * decimal strings. */
#include "observe/observe.h"
#include "telemetry/telemetry.h"
#include "observe/exporter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool add_hex(cJSON *o, const char *k, const uint8_t *id, size_t n) {
  char buf[33];
  mesh__hex_encode(id, n, buf);
  buf[2 * n] = '\0';
  return cJSON_AddStringToObject(o, k, buf) != NULL;
}

static bool add_u64(cJSON *o, const char *k, uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return cJSON_AddStringToObject(o, k, buf) != NULL;
}

/* {"key": k, "value": {"stringValue": v}} and friends */
static cJSON *kv(const char *key, const mesh__attr_t *a, const char *str) {
  cJSON *o = cJSON_CreateObject();
  cJSON *v = cJSON_CreateObject();
  if (!o || !v || !cJSON_AddStringToObject(o, "key", key)) {
    cJSON_Delete(o);
    cJSON_Delete(v);
    return NULL;
  }
  cJSON_AddItemToObject(o, "value", v);
  bool ok;
  char buf[24];
  if (!a) {
    ok = cJSON_AddStringToObject(v, "stringValue", str) != NULL;
  } else {
    switch (a->type) {
    case MESH_ATTR_STRING:
      ok = cJSON_AddStringToObject(v, "stringValue", a->s) != NULL;
      break;
    case MESH_ATTR_INT:
      snprintf(buf, sizeof buf, "%" PRId64, a->i);
      ok = cJSON_AddStringToObject(v, "intValue", buf) != NULL;
      break;
    case MESH_ATTR_BOOL:
      ok = cJSON_AddBoolToObject(v, "boolValue", a->i != 0) != NULL;
      break;
    default:
      ok = cJSON_AddNumberToObject(v, "doubleValue", a->d) != NULL;
      break;
    }
  }
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static bool add_item(cJSON *arr, cJSON *it) {
  if (!it)
    return false;
  cJSON_AddItemToArray(arr, it);
  return true;
}

static cJSON *span_json(const struct mesh_span *r) {
  cJSON *s = cJSON_CreateObject();
  if (!s)
    return NULL;
  bool ok = add_hex(s, "traceId", r->trace_id, 16) &&
            add_hex(s, "spanId", r->span_id, 8);
  if (ok && !mesh__is_zero(r->parent_id, 8))
    ok = add_hex(s, "parentSpanId", r->parent_id, 8);
  if (ok && r->tracestate)
    ok = cJSON_AddStringToObject(s, "traceState", r->tracestate) != NULL;
  ok = ok && cJSON_AddStringToObject(s, "name", r->name) &&
       cJSON_AddNumberToObject(s, "kind", r->kind) &&
       add_u64(s, "startTimeUnixNano", r->start_ns) &&
       add_u64(s, "endTimeUnixNano", r->end_ns);
  cJSON *attrs = ok ? cJSON_AddArrayToObject(s, "attributes") : NULL;
  ok = attrs != NULL;
  for (size_t i = 0; ok && i < r->nattrs; i++)
    ok = add_item(attrs, kv(r->attrs[i].key, &r->attrs[i], NULL));
  if (ok && r->dropped_attrs)
    ok = cJSON_AddNumberToObject(s, "droppedAttributesCount",
                                 r->dropped_attrs) != NULL;
  if (ok && r->nevents) {
    cJSON *evs = cJSON_AddArrayToObject(s, "events");
    ok = evs != NULL;
    for (size_t i = 0; ok && i < r->nevents; i++) {
      cJSON *ev = cJSON_CreateObject();
      ok = add_item(evs, ev) &&
           add_u64(ev, "timeUnixNano", r->events[i].ts_ns) &&
           cJSON_AddStringToObject(ev, "name", r->events[i].name);
    }
  }
  if (ok && r->dropped_events)
    ok = cJSON_AddNumberToObject(s, "droppedEventsCount",
                                 r->dropped_events) != NULL;
  if (ok && r->status != MESH_SPAN_STATUS_UNSET) {
    cJSON *st = cJSON_AddObjectToObject(s, "status");
    ok = st && cJSON_AddNumberToObject(st, "code", r->status);
    if (ok && r->status_msg)
      ok = cJSON_AddStringToObject(st, "message", r->status_msg) != NULL;
  }
  if (!ok) {
    cJSON_Delete(s);
    return NULL;
  }
  return s;
}

int mesh__otlp_encode(const struct mesh__tracer *t,
                      struct mesh_span *const *spans, size_t n, char **body,
                      size_t *len) {
  cJSON *root = cJSON_CreateObject();
  cJSON *rss = root ? cJSON_AddArrayToObject(root, "resourceSpans") : NULL;
  cJSON *rs = cJSON_CreateObject();
  bool ok = rss && add_item(rss, rs);
  cJSON *res = ok ? cJSON_AddObjectToObject(rs, "resource") : NULL;
  cJSON *rattrs = res ? cJSON_AddArrayToObject(res, "attributes") : NULL;
  ok = rattrs && add_item(rattrs, kv("service.name", NULL, t->service_name)) &&
       add_item(rattrs, kv("telemetry.sdk.name", NULL, "libmesh")) &&
       add_item(rattrs, kv("telemetry.sdk.version", NULL, mesh_version()));
  cJSON *sss = ok ? cJSON_AddArrayToObject(rs, "scopeSpans") : NULL;
  cJSON *ss = cJSON_CreateObject();
  ok = sss && add_item(sss, ss);
  cJSON *scope = ok ? cJSON_AddObjectToObject(ss, "scope") : NULL;
  ok = scope && cJSON_AddStringToObject(scope, "name", "libmesh") &&
       cJSON_AddStringToObject(scope, "version", mesh_version());
  cJSON *arr = ok ? cJSON_AddArrayToObject(ss, "spans") : NULL;
  ok = arr != NULL;
  for (size_t i = 0; ok && i < n; i++)
    ok = add_item(arr, span_json(spans[i]));
  char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (rs && !rss) /* never attached */
    cJSON_Delete(rs);
  if (ss && !sss)
    cJSON_Delete(ss);
  if (!text)
    return MESH_ERR_NOMEM;
  *body = text;
  *len = strlen(text);
  return MESH_OK;
}
