/* SPDX-License-Identifier: Apache-2.0 */
/* The external authorizer: Open Policy Agent's Data API.
 *
 *   POST <url>  {"input": {...}}   ->  {"result": true}
 *
 * through libcurl with a hard timeout, and a decision cache with a TTL.
 * The input document follows the shape of OPA's Envoy plugin
 * (input.attributes.source / destination / request.http) so existing
 * policies read it unchanged.  Failure handling (fail closed unless
 * fail_open) is the caller's: this file reports ALLOW, DENY or ERROR. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authz/authz.h"

#define OPA_MAX_BODY (64 * 1024)
#define OPA_IDLE_HANDLES 4

typedef struct opa_entry {
  char *key; /* the serialized input */
  uint64_t hash;
  uint64_t generation;
  int64_t expires_ms;
  bool allow;
} opa_entry_t;

struct mesh__opa {
  pthread_mutex_t mu;
  opa_entry_t *cache;
  size_t cap;
  CURL *idle[OPA_IDLE_HANDLES]; /* kept for keep-alive to the OPA server */
  size_t nidle;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

/* curl_global_init is process-wide and not reference counted safely by
 * every libcurl build: do it once, never clean up (other parts may share). */
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int mesh__opa_new(mesh__opa_t **out) {
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK)
    return MESH_ERR_INTERNAL;
  mesh__opa_t *o = calloc(1, sizeof *o);
  if (!o)
    return MESH_ERR_NOMEM;
  pthread_mutex_init(&o->mu, NULL);
  *out = o;
  return MESH_OK;
}

static void cache_clear(mesh__opa_t *o) {
  for (size_t i = 0; i < o->cap; i++)
    free(o->cache[i].key);
  free(o->cache);
  o->cache = NULL;
  o->cap = 0;
}

void mesh__opa_free(mesh__opa_t *o) {
  if (!o)
    return;
  cache_clear(o);
  for (size_t i = 0; i < o->nidle; i++)
    curl_easy_cleanup(o->idle[i]);
  pthread_mutex_destroy(&o->mu);
  free(o);
}

void mesh__opa_flush(mesh__opa_t *o) {
  if (!o)
    return;
  pthread_mutex_lock(&o->mu);
  cache_clear(o);
  pthread_mutex_unlock(&o->mu);
}

/* ---- the input document ------------------------------------------------------ */

/* Per-request noise that no policy should key on: leaving it out keeps
 * the cache useful (a new trace ID would otherwise miss every time). */
static bool volatile_header(const char *name) {
  static const char *const skip[] = {
      "traceparent", "tracestate", "x-request-id", "b3", "x-b3-traceid",
      "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", NULL};
  for (size_t i = 0; skip[i]; i++)
    if (strcasecmp(name, skip[i]) == 0)
      return true;
  return false;
}

static bool add_headers(cJSON *http, const mesh_authz_request_t *r) {
  cJSON *h = cJSON_AddObjectToObject(http, "headers");
  if (!h)
    return false;
  for (size_t i = 0; i < r->nhdrs; i++) {
    char name[128];
    size_t n = mesh__strlcpy(name, r->hdrs[i].name, sizeof name);
    if (n >= sizeof name || volatile_header(name))
      continue;
    for (size_t k = 0; name[k]; k++)
      if (name[k] >= 'A' && name[k] <= 'Z')
        name[k] = (char)(name[k] + 32);
    cJSON *prev = cJSON_GetObjectItemCaseSensitive(h, name);
    if (!prev) {
      if (!cJSON_AddStringToObject(h, name, r->hdrs[i].value))
        return false;
      continue;
    }
    /* repeated fields join with "," as Envoy's CheckRequest and the
     * policy's header conditions join them: OPA sees what RBAC saw */
    size_t len = strlen(prev->valuestring) + strlen(r->hdrs[i].value) + 2;
    char *joined = malloc(len);
    if (!joined)
      return false;
    snprintf(joined, len, "%s,%s", prev->valuestring, r->hdrs[i].value);
    cJSON *nv = cJSON_CreateString(joined);
    free(joined);
    if (!nv || !cJSON_ReplaceItemInObjectCaseSensitive(h, name, nv)) {
      cJSON_Delete(nv);
      return false;
    }
  }
  return true;
}

/* "path" is what Envoy's CheckRequest carries: the normalized path (the
 * one RBAC matched) and the query as sent.  "original_path" is the target
 * exactly as sent. */
static bool add_path(cJSON *http, const mesh_authz_request_t *r) {
  const char *path = r->path ? r->path : "";
  const char *q = r->target ? strchr(r->target, '?') : NULL;
  if (!q)
    return cJSON_AddStringToObject(http, "path", path) != NULL;
  size_t len = strlen(path) + strlen(q) + 1;
  char *full = malloc(len);
  if (!full)
    return false;
  snprintf(full, len, "%s%s", path, q);
  bool ok = cJSON_AddStringToObject(http, "path", full) != NULL;
  free(full);
  return ok;
}

static bool build_input(cJSON *attrs, const mesh_authz_request_t *r,
                        const char *self_id) {
  cJSON *src = cJSON_AddObjectToObject(attrs, "source");
  cJSON *dst = cJSON_AddObjectToObject(attrs, "destination");
  if (!src || !dst)
    return false;
  char ip[64];
  mesh__ip_format(r->src.ss_family ? (const struct sockaddr *)&r->src : NULL,
                  ip, sizeof ip);
  cJSON *sa = cJSON_AddObjectToObject(cJSON_AddObjectToObject(src, "address"),
                                      "socketAddress");
  cJSON *da = cJSON_AddObjectToObject(cJSON_AddObjectToObject(dst, "address"),
                                      "socketAddress");
  if (!sa || !da || !cJSON_AddStringToObject(sa, "address", ip) ||
      !cJSON_AddStringToObject(src, "principal",
                               r->principal ? r->principal : "") ||
      !cJSON_AddStringToObject(src, "namespace", r->ns) ||
      !cJSON_AddStringToObject(dst, "principal", self_id ? self_id : "") ||
      !cJSON_AddNumberToObject(da, "portValue", r->port))
    return false;
  if (!r->http)
    return true;
  cJSON *http = cJSON_AddObjectToObject(
      cJSON_AddObjectToObject(attrs, "request"), "http");
  return http &&
         cJSON_AddStringToObject(http, "method", r->method ? r->method : "") &&
         add_path(http, r) &&
         cJSON_AddStringToObject(http, "original_path",
                                 r->target ? r->target : "") &&
         cJSON_AddStringToObject(http, "host", r->host ? r->host : "") &&
         add_headers(http, r);
}

char *mesh__opa_input(const mesh_authz_request_t *r, const char *self_id) {
  cJSON *root = cJSON_CreateObject();
  cJSON *input = root ? cJSON_AddObjectToObject(root, "input") : NULL;
  cJSON *attrs = input ? cJSON_AddObjectToObject(input, "attributes") : NULL;
  char *s = NULL;
  if (attrs && build_input(attrs, r, self_id))
    s = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return s;
}

int mesh__opa_parse_result(const char *body, size_t len) {
  cJSON *root = mesh__json_parse(body, len, NULL);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return MESH_ERR_PARSE;
  }
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
  int rc;
  if (!res)
    rc = 0; /* undefined decision: deny */
  else if (cJSON_IsBool(res))
    rc = cJSON_IsTrue(res) ? 1 : 0;
  else if (cJSON_IsObject(res)) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(res, "allow");
    rc = !a ? 0 : cJSON_IsBool(a) ? (cJSON_IsTrue(a) ? 1 : 0) : MESH_ERR_PARSE;
  } else {
    rc = MESH_ERR_PARSE;
  }
  cJSON_Delete(root);
  return rc;
}

/* ---- cache ---------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

/* Direct-mapped: a colliding key simply replaces the older entry. */
static int cache_get(mesh__opa_t *o, const mesh__az_opa_cfg_t *cfg,
                     uint64_t gen, const char *key, uint64_t h) {
  int rc = -1;
  pthread_mutex_lock(&o->mu);
  if (o->cap == (size_t)cfg->cache_size && o->cap) {
    opa_entry_t *e = &o->cache[h % o->cap];
    if (e->key && e->hash == h && e->generation == gen &&
        e->expires_ms > mesh__now_ms() && strcmp(e->key, key) == 0)
      rc = e->allow ? 1 : 0;
  }
  pthread_mutex_unlock(&o->mu);
  return rc;
}

static void cache_put(mesh__opa_t *o, const mesh__az_opa_cfg_t *cfg,
                      uint64_t gen, char *key, uint64_t h, bool allow) {
  pthread_mutex_lock(&o->mu);
  if (o->cap != (size_t)cfg->cache_size) {
    cache_clear(o);
    o->cache = calloc((size_t)cfg->cache_size, sizeof *o->cache);
    o->cap = o->cache ? (size_t)cfg->cache_size : 0;
  }
  if (o->cap) {
    opa_entry_t *e = &o->cache[h % o->cap];
    free(e->key);
    e->key = key;
    key = NULL;
    e->hash = h;
    e->generation = gen;
    e->allow = allow;
    e->expires_ms = mesh__now_ms() + cfg->cache_ttl_ms;
  }
  pthread_mutex_unlock(&o->mu);
  free(key);
}

/* ---- the HTTP exchange --------------------------------------------------------- */

typedef struct body {
  char *p;
  size_t n;
  bool overflow;
} body_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user) {
  body_t *b = user;
  size_t n = size * nmemb;
  if (b->n + n > OPA_MAX_BODY) {
    b->overflow = true;
    return 0;
  }
  char *np = realloc(b->p, b->n + n + 1);
  if (!np)
    return 0;
  b->p = np;
  memcpy(b->p + b->n, ptr, n);
  b->n += n;
  b->p[b->n] = '\0';
  return n;
}

static CURL *handle_get(mesh__opa_t *o) {
  CURL *h = NULL;
  pthread_mutex_lock(&o->mu);
  if (o->nidle)
    h = o->idle[--o->nidle];
  pthread_mutex_unlock(&o->mu);
  if (h) {
    curl_easy_reset(h);
    return h;
  }
  return curl_easy_init();
}

static void handle_put(mesh__opa_t *o, CURL *h) {
  pthread_mutex_lock(&o->mu);
  if (o->nidle < OPA_IDLE_HANDLES) {
    o->idle[o->nidle++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&o->mu);
  if (h)
    curl_easy_cleanup(h);
}

static int post(mesh__opa_t *o, const mesh__az_opa_cfg_t *cfg,
                const char *doc, body_t *b, mesh_status_t *err) {
  CURL *h = handle_get(o);
  if (!h)
    return mesh__fail(err, MESH_ERR_NOMEM, "curl_easy_init failed");
  struct curl_slist *hdrs =
      curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, cfg->url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, doc);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  /* Never route through an environment proxy: the authorizer is local. */
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
  CURLcode cc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdrs);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  handle_put(o, h);
  if (cc == CURLE_OPERATION_TIMEDOUT)
    return mesh__fail(err, MESH_ERR_TIMEOUT, "OPA did not answer within %lld ms",
                      (long long)cfg->timeout_ms);
  if (cc != CURLE_OK)
    return mesh__fail(err, b->overflow ? MESH_ERR_HTTP_TOO_LARGE : MESH_ERR_IO,
                      "OPA request failed: %s", curl_easy_strerror(cc));
  if (status != 200)
    return mesh__fail(err, MESH_ERR_UPSTREAM, "OPA answered HTTP %ld", status);
  return MESH_OK;
}

int mesh__opa_check(mesh__opa_t *o, const mesh__az_opa_cfg_t *cfg,
                    uint64_t generation, const mesh_authz_request_t *r,
                    const char *self_id, bool *cached, mesh_status_t *err) {
  *cached = false;
  if (!o || !cfg || !cfg->url) {
    mesh__fail(err, MESH_ERR_INVALID_ARG, "no OPA configured");
    return MESH__OPA_ERROR;
  }
  char *doc = mesh__opa_input(r, self_id);
  if (!doc) {
    mesh__fail(err, MESH_ERR_NOMEM, "out of memory");
    return MESH__OPA_ERROR;
  }
  uint64_t h = fnv1a(doc);
  bool use_cache = cfg->cache_ttl_ms > 0 && cfg->cache_size > 0;
  int hit = use_cache ? cache_get(o, cfg, generation, doc, h) : -1;
  if (hit >= 0) {
    free(doc);
    *cached = true;
    return hit ? MESH__OPA_ALLOW : MESH__OPA_DENY;
  }
  body_t b = {0};
  int rc = post(o, cfg, doc, &b, err);
  int res = rc == MESH_OK ? mesh__opa_parse_result(b.p ? b.p : "", b.n)
                          : rc;
  free(b.p);
  if (rc == MESH_OK && res < 0)
    mesh__fail(err, MESH_ERR_PARSE, "OPA answer is not a decision document");
  if (res < 0) {
    free(doc);
    return MESH__OPA_ERROR;
  }
  if (use_cache)
    cache_put(o, cfg, generation, doc, h, res == 1);
  else
    free(doc);
  return res == 1 ? MESH__OPA_ALLOW : MESH__OPA_DENY;
}
