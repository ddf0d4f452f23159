/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl xds --admin HOST:PORT [--json]: the xDS client's state as the
 * admin endpoint serves it at /xds (in the spirit of Envoy's config_dump /
 * CSDS): per resource type and name, the status (ACKED; NACKED with the
 * word NACK and the error; DOES_NOT_EXIST; REQUESTED), the version and
 * the age of the last update; then the update and NACK counts. */
#include "meshctl.h"
#include "core/core.h" /* mesh__json_parse */

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct body {
  char *p;
  size_t n;
} body_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
  body_t *b = user;
  size_t add = size * nmemb;
  if (b->n + add > (16u << 20))
    return 0;
  char *np = realloc(b->p, b->n + add + 1);
  if (!np)
    return 0;
  memcpy(np + b->n, data, add);
  b->p = np;
  b->n += add;
  b->p[b->n] = '\0';
  return add;
}

static cJSON *get_xds(const char *addr) {
  char url[512];
  int n = snprintf(url, sizeof url, "http://%s/xds", addr);
  if (n < 0 || (size_t)n >= sizeof url)
    return NULL;
  CURL *h = curl_easy_init();
  if (!h)
    return NULL;
  body_t b = {NULL, 0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  cJSON *doc = NULL;
  if (rc != CURLE_OK)
    fprintf(stderr, "meshctl xds: %s: %s\n", url, curl_easy_strerror(rc));
  else if (code != 200)
    fprintf(stderr, "meshctl xds: %s: HTTP %ld%s\n", url, code,
            code == 404 ? " (xds is not configured)" : "");
  else if (!(doc = b.p ? mesh__json_parse(b.p, strlen(b.p), NULL) : NULL))
    fprintf(stderr, "meshctl xds: %s: not JSON\n", url);
  free(b.p);
  return doc;
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
