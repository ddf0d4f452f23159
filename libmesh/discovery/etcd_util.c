/* SPDX-License-Identifier: Apache-2.0 */
/* Pure helpers of the etcd client (base64 of keys and values: etcd.h over
 * core/b64.c): int64s as
 * the gateway encodes them, and the splitter for streamed JSON messages.
 * No I/O: the fuzzer feeds them directly. */
#include "discovery/etcd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool mesh__etcd_int(const cJSON *obj, const char *key, int64_t *out) {
  const cJSON *v = cJSON_IsObject(obj)
                       ? cJSON_GetObjectItemCaseSensitive(obj, key)
                       : NULL;
  if (cJSON_IsNumber(v)) {
    if (v->valuedouble < -9.2e18 || v->valuedouble > 9.2e18)
      return false;
    *out = (int64_t)v->valuedouble;
    return true;
  }
  if (!cJSON_IsString(v) || !v->valuestring || !*v->valuestring)
    return false;
  const char *s = v->valuestring;
  if (strlen(s) > 19)
    return false;
  char *end = NULL;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (errno || !end || *end)
    return false;
  *out = x;
  return true;
}

/* core's one JSON entry point (duplicate keys refused); kept for the
 * callers that want only the offset of a syntax error. */
cJSON *mesh__json_parse_exact(const char *buf, size_t len, size_t *err_off) {
  mesh__json_err_t e;
  cJSON *v = mesh__json_parse(buf, len, &e);
  if (err_off)
    *err_off = v ? 0 : e.offset;
  return v;
}

/* ---- streamed JSON splitter ------------------------------------------------- */

void mesh__jsplit_init(mesh__jsplit_t *j, size_t max) {
  memset(j, 0, sizeof *j);
  j->max = max;
}

void mesh__jsplit_free(mesh__jsplit_t *j) {
  free(j->buf);
  memset(j, 0, sizeof *j);
}

static bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int append(mesh__jsplit_t *j, const char *data, size_t n) {
  if (j->len + n > j->cap) {
    size_t cap = j->cap ? j->cap : 4096;
    while (cap < j->len + n)
      cap *= 2;
    char *b = realloc(j->buf, cap);
    if (!b)
      return MESH_ERR_NOMEM;
    j->buf = b;
    j->cap = cap;
  }
  memcpy(j->buf + j->len, data, n);
  j->len += n;
  return MESH_OK;
}

/* Drop the consumed bytes before `start`. */
static void compact(mesh__jsplit_t *j, size_t start, size_t i) {
  if (start > 0)
    memmove(j->buf, j->buf + start, j->len - start);
  j->len -= start;
  j->scan = i - start;
}

int mesh__jsplit_feed(mesh__jsplit_t *j, const char *data, size_t n,
                      mesh__jsplit_fn fn, void *user) {
  if (n && append(j, data, n) != MESH_OK)
    return MESH_ERR_NOMEM;
  size_t i = j->scan, start = 0;
  while (i < j->len) {
    char ch = j->buf[i];
    if (j->depth == 0) {
      if (is_ws(ch)) {
        start = ++i;
        continue;
      }
      if (ch != '{' && ch != '[')
        return MESH_ERR_PARSE;
      start = i++;
      j->depth = 1;
      continue;
    }
    i++;
    if (j->in_str) {
      if (j->esc)
        j->esc = false;
      else if (ch == '\\')
        j->esc = true;
      else if (ch == '"')
        j->in_str = false;
      continue;
    }
    if (ch == '"') {
      j->in_str = true;
    } else if (ch == '{' || ch == '[') {
      if (++j->depth > 512)
        return MESH_ERR_PARSE;
    } else if ((ch == '}' || ch == ']') && --j->depth == 0) {
      bool go = fn(j->buf + start, i - start, user);
      start = i;
      if (!go) {
        compact(j, start, i);
        return MESH_ERR_CLOSED;
      }
    }
  }
  compact(j, start, i);
  return j->len > j->max ? MESH_ERR_PARSE : MESH_OK;
}
