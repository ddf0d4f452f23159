/* SPDX-License-Identifier: Apache-2.0 */
/* Zipkin v2 JSON encoding of a span batch (POST /api/v2/spans): a list of
 * spans with microsecond timestamps, string tags, local and remote
 * endpoints. */
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

/* Integers too large for cJSON's double printing are written raw. */
static bool add_raw_u64(cJSON *o, const char *k, uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return cJSON_AddRawToObject(o, k, buf) != NULL;
}

static const mesh__attr_t *find(const struct mesh_span *r, const char *key) {
  for (size_t i = 0; i < r->nattrs; i++)
    if (strcmp(r->attrs[i].key, key) == 0)
      return &r->attrs[i];
  return NULL;
}

static bool add_tag(cJSON *tags, const mesh__attr_t *a) {
  char buf[40];
  const char *v = buf;
  switch (a->type) {
  case MESH_ATTR_STRING:
    v = a->s;
    break;
  case MESH_ATTR_INT:
    snprintf(buf, sizeof buf, "%" PRId64, a->i);
    break;
  case MESH_ATTR_BOOL:
    v = a->i ? "true" : "false";
    break;
  default:
    mesh__fmt_double(buf, sizeof buf, a->d);
    break;
  }
  return cJSON_AddStringToObject(tags, a->key, v) != NULL;
}

static bool remote_endpoint(cJSON *s, const struct mesh_span *r) {
  const mesh__attr_t *addr = find(r, MESH__ATTR_PEER_ADDRESS);
  const mesh__attr_t *port = find(r, MESH__ATTR_PEER_PORT);
  if (!port)
    port = find(r, MESH__ATTR_SERVER_PORT);
  const mesh__attr_t *svc = find(r, MESH__ATTR_SERVICE);
  if (!addr && !svc)
    return true;
  cJSON *ep = cJSON_AddObjectToObject(s, "remoteEndpoint");
  if (!ep)
    return false;
  if (svc && svc->type == MESH_ATTR_STRING &&
      !cJSON_AddStringToObject(ep, "serviceName", svc->s))
    return false;
  if (addr && addr->type == MESH_ATTR_STRING &&
      !cJSON_AddStringToObject(ep, strchr(addr->s, ':') ? "ipv6" : "ipv4",
                               addr->s))
    return false;
  if (port && port->type == MESH_ATTR_INT &&
      !cJSON_AddNumberToObject(ep, "port", (double)port->i))
    return false;
  return true;
}

static cJSON *span_json(const struct mesh__tracer *t,
                        const struct mesh_span *r) {
  static const char *const kinds[] = {NULL, NULL, "SERVER", "CLIENT"};
  cJSON *s = cJSON_CreateObject();
  if (!s)
    return NULL;
  uint64_t ts = r->start_ns / 1000;
  uint64_t dur = (r->end_ns - r->start_ns) / 1000;
  bool ok = add_hex(s, "traceId", r->trace_id, 16) &&
            add_hex(s, "id", r->span_id, 8);
  if (ok && !mesh__is_zero(r->parent_id, 8))
    ok = add_hex(s, "parentId", r->parent_id, 8);
  if (ok && r->kind >= 2 && r->kind <= 3)
    ok = cJSON_AddStringToObject(s, "kind", kinds[r->kind]) != NULL;
  ok = ok && cJSON_AddStringToObject(s, "name", r->name) &&
       add_raw_u64(s, "timestamp", ts) &&
       add_raw_u64(s, "duration", dur ? dur : 1);
  cJSON *local = ok ? cJSON_AddObjectToObject(s, "localEndpoint") : NULL;
  ok = local && cJSON_AddStringToObject(local, "serviceName",
                                        t->service_name) &&
       remote_endpoint(s, r);
  if (ok && r->nevents) {
    cJSON *anns = cJSON_AddArrayToObject(s, "annotations");
    ok = anns != NULL;
    for (size_t i = 0; ok && i < r->nevents; i++) {
      cJSON *a = cJSON_CreateObject();
      if (!a) {
        ok = false;
        break;
      }
      cJSON_AddItemToArray(anns, a);
      ok = add_raw_u64(a, "timestamp", r->events[i].ts_ns / 1000) &&
           cJSON_AddStringToObject(a, "value", r->events[i].name);
    }
  }
  cJSON *tags = ok ? cJSON_AddObjectToObject(s, "tags") : NULL;
  ok = tags != NULL;
  for (size_t i = 0; ok && i < r->nattrs; i++)
    ok = add_tag(tags, &r->attrs[i]);
  if (ok && r->status == MESH_SPAN_STATUS_ERROR)
    ok = cJSON_AddStringToObject(tags, "otel.status_code", "ERROR") &&
         cJSON_AddStringToObject(tags, "error",
                                 r->status_msg ? r->status_msg : "");
  if (ok && r->status == MESH_SPAN_STATUS_OK)
    ok = cJSON_AddStringToObject(tags, "otel.status_code", "OK") != NULL;
  if (!ok) {
    cJSON_Delete(s);
    return NULL;
  }
  return s;
}

int mesh__zipkin_encode(const struct mesh__tracer *t,
                        struct mesh_span *const *spans, size_t n, char **body,
                        size_t *len) {
  cJSON *arr = cJSON_CreateArray();
  bool ok = arr != NULL;
  for (size_t i = 0; ok && i < n; i++) {
    cJSON *s = span_json(t, spans[i]);
    ok = s != NULL;
    if (ok)
      cJSON_AddItemToArray(arr, s);
  }
  char *text = ok ? cJSON_PrintUnformatted(arr) : NULL;
  cJSON_Delete(arr);
  if (!text)
    return MESH_ERR_NOMEM;
  *body = text;
  *len = strlen(text);
  return MESH_OK;
}
