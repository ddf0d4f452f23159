/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl resolve --admin: a running process's resilience state of one
 * service from its admin /resilience view: breaker thresholds and the
 * counters in use, overflows, outlier detection settings, ejected hosts
 * and the connect timeout, per cluster when the service is split across
 * clusters (xDS). */
#include "meshctl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static double num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

cJSON *meshctl_res_fetch(const char *who, const char *addr,
                         const char *service, long timeout_ms) {
  cJSON *doc = meshctl_admin_get(who, addr, "/resilience", timeout_ms,
                                 " (a libmesh without the /resilience view)");
  const cJSON *s;
  cJSON *out = NULL;
  cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(doc, "services")) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, service) == 0)
      out = cJSON_Duplicate(s, 1);
  }
  cJSON_Delete(doc);
  return out;
}

/* One line: "HEAD: connect 250ms; breakers connections 1/1024, ...". */
static void res_line(const char *head, const cJSON *o) {
  const cJSON *cb = cJSON_GetObjectItemCaseSensitive(o, "circuit_breakers");
  const cJSON *use = cJSON_GetObjectItemCaseSensitive(o, "in_use");
  const cJSON *ov = cJSON_GetObjectItemCaseSensitive(o, "overflows");
  const cJSON *od = cJSON_GetObjectItemCaseSensitive(o, "outlier_detection");
  printf("%s: connect %.0fms; breakers connections %.0f/%.0f, pending "
         "%.0f/%.0f, requests %.0f/%.0f, retries %.0f/%.0f, overflows %.0f; ",
         head, num(o, "connect_timeout_ms"), num(use, "connections"),
         num(cb, "max_connections"), num(use, "pending"),
         num(cb, "max_pending_requests"), num(use, "requests"),
         num(cb, "max_requests"), num(use, "retries"), num(cb, "max_retries"),
         num(ov, "connections") + num(ov, "pending") + num(ov, "requests") +
             num(ov, "retries"));
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(od, "enabled")))
    printf("outlier consecutive_5xx %.0f, interval %.0fms, base ejection "
           "%.0fms, max %.0f%%",
           num(od, "consecutive_5xx"), num(od, "interval_ms"),
           num(od, "base_ejection_time_ms"), num(od, "max_ejection_percent"));
  else
    printf("outlier detection off");
  const cJSON *ej = cJSON_GetObjectItemCaseSensitive(o, "ejected"), *h;
  printf("; ejected %d", cJSON_GetArraySize(ej));
  int i = 0;
  cJSON_ArrayForEach(h, ej)
    printf("%s%s", i++ ? ", " : ": ", cJSON_IsString(h) ? h->valuestring : "?");
  printf("\n");
}

void meshctl_res_print(const cJSON *svc) {
  const cJSON *cl = cJSON_GetObjectItemCaseSensitive(svc, "clusters"), *c;
  if (!cJSON_GetArraySize(cl)) {
    res_line("resilience", svc);
    return;
  }
  cJSON_ArrayForEach(c, cl) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
    char head[256];
    snprintf(head, sizeof head, "cluster %s (weight %.0f)",
             cJSON_IsString(n) ? n->valuestring : "?", num(c, "weight"));
    res_line(head, c);
  }
}
