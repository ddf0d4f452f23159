/* SPDX-License-Identifier: Apache-2.0 */
/* Building policy fields from JSON: strings with Istio's four forms, IP
 * blocks and ports, plus the small allocation and path helpers the policy
 * builder (policy.c) shares.  Every error is reported with its JSON path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"

void *mesh__az_zalloc(mesh__az_bctx_t *b, size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p)
    b->oom = true;
  return p;
}

char *mesh__az_dupn(mesh__az_bctx_t *b, const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p) {
    b->oom = true;
    return NULL;
  }
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* "base.key[i]" (or "base[i]"), truncated quietly like every config path. */
void mesh__az_idx_path(char *out, const char *base, const char *key, int i) {
  if (key)
    mesh__cfg_path(out, base, key);
  else
    mesh__strlcpy(out, base, MESH__PATH_MAX);
  size_t len = strlen(out);
  if (len + 16 < MESH__PATH_MAX)
    snprintf(out + len, MESH__PATH_MAX - len, "[%d]", i);
}

/* ---- string matchers ------------------------------------------------------
 */

static void strip_spiffe(const char **s, size_t *n) {
  if (*n >= 9 && strncmp(*s, "spiffe://", 9) == 0) {
    *s += 9;
    *n -= 9;
  }
}

/* Istio allows a single '*' at the start or the end (or alone). */
static bool str_parse(mesh__az_bctx_t *b, const char *p, const char *s, int ctx,
                      mesh__az_str_t *out) {
  size_t n = strlen(s);
  if (n == 0) {
    mesh__cfg_error(b->c, p, "empty value");
    return false;
  }
  out->icase = ctx == MESH__AZS_HOST;
  if (n == 1 && s[0] == '*') {
    out->kind = MESH__AZ_PRESENCE;
  } else if (s[n - 1] == '*') {
    out->kind = MESH__AZ_PREFIX;
    n--;
  } else if (s[0] == '*') {
    out->kind = MESH__AZ_SUFFIX;
    s++;
    n--;
  } else {
    out->kind = MESH__AZ_EXACT;
  }
  if (out->kind != MESH__AZ_PRESENCE && memchr(s, '*', n)) {
    mesh__cfg_error(
        b->c, p, "\"*\" is allowed only at the start or the end of \"%s\"", s);
    return false;
  }
  if (ctx == MESH__AZS_PRINCIPAL && out->kind != MESH__AZ_SUFFIX)
    strip_spiffe(&s, &n);
  if (ctx == MESH__AZS_PATH && out->kind != MESH__AZ_SUFFIX &&
      out->kind != MESH__AZ_PRESENCE && s[0] != '/') {
    mesh__cfg_error(b->c, p, "a path must start with \"/\" or \"*\"");
    return false;
  }
  if (ctx == MESH__AZS_METHOD && out->kind == MESH__AZ_EXACT &&
      !mesh__token_valid(s, n)) {
    mesh__cfg_error(b->c, p, "\"%s\" is not an HTTP method token", s);
    return false;
  }
  if (ctx == MESH__AZS_NAMESPACE && memchr(s, '/', n)) {
    mesh__cfg_error(b->c, p, "a namespace cannot contain \"/\"");
    return false;
  }
  out->s = mesh__az_dupn(b, s, n);
  out->n = n;
  return out->s != NULL;
}

void mesh__az_strs_build(mesh__az_bctx_t *b, const cJSON *obj, const char *path,
                         const char *key, int ctx, mesh__az_strs_t *out) {
  const cJSON *arr;
  if (!mesh__cfg_strings(b->c, obj, path, key, &arr) || !arr)
    return;
  int n = cJSON_GetArraySize(arr);
  if (n == 0)
    return;
  out->v = mesh__az_zalloc(b, (size_t)n, sizeof *out->v);
  if (!out->v)
    return;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    char p[MESH__PATH_MAX];
    mesh__az_idx_path(p, path, key, i++);
    if (str_parse(b, p, it->valuestring, ctx, &out->v[out->n]))
      out->n++;
  }
}

void mesh__az_strs_free(mesh__az_strs_t *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].s);
  free(s->v);
}

/* ---- IP blocks and ports ---------------------------------------------------
 */

void mesh__az_cidrs_build(mesh__az_bctx_t *b, const cJSON *obj,
                          const char *path, const char *key,
                          mesh__az_cidrs_t *out) {
  const cJSON *arr;
  if (!mesh__cfg_strings(b->c, obj, path, key, &arr) || !arr)
    return;
  int n = cJSON_GetArraySize(arr);
  if (n == 0)
    return;
  mesh__cidr_t *v = mesh__az_zalloc(b, (size_t)n, sizeof *v);
  if (!v)
    return;
  out->v = v;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    char p[MESH__PATH_MAX];
    mesh__az_idx_path(p, path, key, i++);
    if (mesh__cidr_parse(it->valuestring, &v[out->n]) == MESH_OK)
      out->n++;
    else
      mesh__cfg_error(b->c, p,
                      "\"%s\" is not an IP address or CIDR block "
                      "(e.g. \"10.0.0.0/8\", \"2001:db8::/32\")",
                      it->valuestring);
  }
}

/* A port as Istio spells it ("8080") or as a JSON number. */
static int port_value(const cJSON *it) {
  if (cJSON_IsNumber(it)) {
    double d = it->valuedouble;
    return (d >= 0 && d <= 65535 && d == (double)(int)d) ? (int)d : -1;
  }
  if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 5)
    return -1;
  int v = 0;
  for (const char *s = it->valuestring; *s; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
  }
  return v <= 65535 ? v : -1;
}

void mesh__az_ports_build(mesh__az_bctx_t *b, const cJSON *obj,
                          const char *path, const char *key,
                          mesh__az_ports_t *out) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!arr)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(b->c, p, "expected an array of ports");
    return;
  }
  int n = cJSON_GetArraySize(arr);
  if (n == 0)
    return;
  out->v = mesh__az_zalloc(b, (size_t)n, sizeof *out->v);
  if (!out->v)
    return;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    mesh__az_idx_path(p, path, key, i++);
    int v = port_value(it);
    if (v < 0)
      mesh__cfg_error(b->c, p, "expected a port number 0-65535");
    else
      out->v[out->n++] = v;
  }
}
