/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl's one reader of a running process's admin endpoint (resolve
 * --admin, xds --admin): GET over plain HTTP, never via a proxy from the
 * environment, the body capped, parsed as JSON. */
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
  if (b->n + add > MESHCTL_ADMIN_MAX)
    return 0; /* aborts the transfer */
  char *np = realloc(b->p, b->n + add + 1);
  if (!np)
    return 0;
  memcpy(np + b->n, data, add);
  b->p = np;
  b->n += add;
  b->p[b->n] = '\0';
  return add;
}

cJSON *meshctl_admin_get(const char *who, const char *addr, const char *path,
                         long timeout_ms, const char *hint404) {
  char url[512];
  int n = snprintf(url, sizeof url, "http://%s%s", addr, path);
  if (n < 0 || (size_t)n >= sizeof url)
    return NULL;
  CURL *h = curl_easy_init();
  if (!h)
    return NULL;
  body_t b = {NULL, 0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* never via an env proxy */
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  cJSON *doc = NULL;
  if (rc != CURLE_OK)
    fprintf(stderr, "meshctl %s: %s: %s\n", who, url, curl_easy_strerror(rc));
  else if (code != 200)
    fprintf(stderr, "meshctl %s: %s: HTTP %ld%s\n", who, url, code,
            code == 404 && hint404 ? hint404 : "");
  else if (!(doc = b.p ? mesh__json_parse(b.p, strlen(b.p), NULL) : NULL))
    fprintf(stderr, "meshctl %s: %s: not JSON\n", who, url);
  free(b.p);
  return doc;
}
