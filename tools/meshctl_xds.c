/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl xds --admin HOST:PORT [--json]: the xDS client's state as the
 * admin endpoint serves it at /xds (in the spirit of Envoy's config_dump /
 * CSDS): per resource type and name, the status (ACKED; NACKED with the
 * word NACK and the error; DOES_NOT_EXIST; REQUESTED), the version and
 * the age of the last update; then the update and NACK counts. */
#include "meshctl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *get_xds(const char *addr) {
  return meshctl_admin_get("xds", addr, "/xds", 5000L,
                           " (xds is not configured)");
}

/* "type.googleapis.com/envoy.config.cluster.v3.Cluster" -> "Cluster" */
static const char *short_type(const char *url) {
  const char *d = strrchr(url, '.');
  return d ? d + 1 : url;
}

static void print_table(const cJSON *doc) {
  printf("%-22s %-40s %-15s %-10s %s\n", "TYPE", "NAME", "STATUS", "VERSION",
         "ERROR");
  const cJSON *t, *r;
  cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "types")) {
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(t, "resources")) {
      const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
      const char *err = cJSON_GetStringValue(cJSON_GetObjectItem(r, "error"));
      bool nack = status && strcmp(status, "NACKED") == 0;
      printf("%-22s %-40s %-15s %-10s %s%s\n", short_type(t->string),
             r->string, nack ? "NACK" : status ? status : "?",
             cJSON_GetStringValue(cJSON_GetObjectItem(r, "version")),
             nack ? "NACK: " : "", err ? err : "");
    }
  }
  printf("updates %.0f, nacks %.0f\n",
         cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "updates")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "nacks")));
}

int meshctl_xds(int argc, char **argv) {
  const char *admin = NULL;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--admin") == 0 && i + 1 < argc)
      admin = argv[++i];
    else if (strcmp(argv[i], "--json") == 0)
      json = true;
    else {
      fprintf(stderr, "usage: meshctl xds --admin HOST:PORT [--json]\n");
      return 2;
    }
  }
  if (!admin) {
    fprintf(stderr, "usage: meshctl xds --admin HOST:PORT [--json]\n");
    return 2;
  }
  cJSON *doc = get_xds(admin);
  if (!doc)
    return 1;
  if (json) {
    char *s = cJSON_Print(doc);
    printf("%s\n", s ? s : "");
    free(s);
  } else {
    print_table(doc);
  }
  cJSON_Delete(doc);
  return 0;
}
