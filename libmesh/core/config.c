/* SPDX-License-Identifier: Apache-2.0 */
/* Config helpers: typed getters that report `path: reason` and keep going,
 * so every error in a file is listed, not just the first. */
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A message that did not fit: cut it after the last whole token (at a
 * space or comma) and mark the cut, rather than end mid-word. */
static void cut_at_token(char *msg, size_t cap) {
  static const char mark[] = " [...]";
  size_t end = strlen(msg);
  if (end + sizeof mark > cap)
    end = cap - sizeof mark;
  while (end > 0 && msg[end - 1] != ' ' && msg[end - 1] != ',')
    end--;
  while (end > 0 && (msg[end - 1] == ' ' || msg[end - 1] == ','))
    end--;
  memcpy(msg + end, mark, sizeof mark);
}

void mesh__cfg_error(mesh__cfg_t *c, const char *path, const char *fmt, ...) {
  char msg[sizeof(((mesh_status_t *)0)->message)];
  int n = snprintf(msg, sizeof msg, "%s: ", path && *path ? path : "(root)");
  if (n < 0 || (size_t)n >= sizeof msg)
    n = 0;
  va_list ap;
  va_start(ap, fmt);
  int r = vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  va_end(ap);
  if (r > 0 && (size_t)n + (size_t)r >= sizeof msg)
    cut_at_token(msg, sizeof msg);
  /* values quoted in reasons may be URLs: never their userinfo */
  mesh__redact_userinfo(msg, sizeof msg);
  if (c->nerr == 0 && c->first) {
    c->first->code = MESH_ERR_CONFIG;
    mesh__strlcpy(c->first->message, msg, sizeof c->first->message);
  }
  c->nerr++;
  if (c->fn)
    c->fn(msg, c->user);
}

void mesh__cfg_path(char *out, const char *base, const char *key) {
  if (!base || !*base)
    snprintf(out, MESH__PATH_MAX, "%s", key);
  else
    snprintf(out, MESH__PATH_MAX, "%s.%s", base, key);
}

static const char *type_name(const cJSON *v) {
  if (cJSON_IsObject(v))
    return "an object";
  if (cJSON_IsArray(v))
    return "an array";
  if (cJSON_IsString(v))
    return "a string";
  if (cJSON_IsNumber(v))
    return "a number";
  if (cJSON_IsBool(v))
    return "a boolean";
  if (cJSON_IsNull(v))
    return "null";
  return "invalid";
}

/* `"a", "b", "c"` within len bytes, whole names only: when the list does
 * not fit, it ends with `, ... (N more)` instead of a name cut in two. */
static void list_expected(char *buf, size_t len, const char *const vals[]) {
  size_t off = 0, total = 0;
  buf[0] = '\0';
  while (vals && vals[total])
    total++;
  for (size_t i = 0; i < total; i++) {
    size_t need = (i ? 2 : 0) + strlen(vals[i]) + 2;
    /* room for this name, and for the "more" tail unless it is the last */
    size_t tail = i + 1 < total ? sizeof ", ... (99999 more)" : 0;
    if (off + need + tail + 1 > len) {
      snprintf(buf + off, len - off, "%s... (%zu more)", i ? ", " : "",
               total - i);
      return;
    }
    off += (size_t)snprintf(buf + off, len - off, "%s\"%s\"", i ? ", " : "",
                            vals[i]);
  }
}

/* Room left for a list of expected values after "path: " and a reason of
 * about 40 bytes, within one status message. */
static size_t list_room(const char *path) {
  size_t room = sizeof(((mesh_status_t *)0)->message);
  size_t used = strlen(path) + 48;
  return used + 64 < room ? room - used : 64;
}

bool mesh__cfg_object(mesh__cfg_t *c, const cJSON *node, const char *path,
                      const char *const allowed[]) {
  if (!cJSON_IsObject(node)) {
    mesh__cfg_error(c, path, "expected an object, got %s", type_name(node));
    return false;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, node) {
    bool ok = false;
    for (size_t i = 0; allowed && allowed[i]; i++)
      if (strcmp(allowed[i], it->string) == 0)
        ok = true;
    if (!ok) {
      char p[MESH__PATH_MAX], exp[sizeof(((mesh_status_t *)0)->message)];
      mesh__cfg_path(p, path, it->string);
      list_expected(exp, list_room(p), allowed);
      mesh__cfg_error(c, p, "unknown key (expected one of %s)", exp);
    }
  }
  return true;
}

static const cJSON *get(const cJSON *obj, const char *key) {
  return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key)
                             : NULL;
}

bool mesh__cfg_string(mesh__cfg_t *c, const cJSON *obj, const char *path,
                      const char *key, const char *def, const char **out) {
  const cJSON *v = get(obj, key);
  *out = def;
  if (!v)
    return false;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!cJSON_IsString(v) || !v->valuestring) {
    mesh__cfg_error(c, p, "expected a string, got %s", type_name(v));
    return false;
  }
  *out = v->valuestring;
  return true;
}

bool mesh__cfg_int(mesh__cfg_t *c, const cJSON *obj, const char *path,
                   const char *key, int64_t min, int64_t max, int64_t def,
                   int64_t *out) {
  const cJSON *v = get(obj, key);
  *out = def;
  if (!v)
    return false;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!cJSON_IsNumber(v)) {
    mesh__cfg_error(c, p, "expected an integer, got %s", type_name(v));
    return false;
  }
  double d = v->valuedouble;
  if (d != floor(d) || !isfinite(d)) {
    mesh__cfg_error(c, p, "expected an integer, got %g", d);
    return false;
  }
  if (d < (double)min || d > (double)max) {
    mesh__cfg_error(c, p, "%.0f is out of range [%lld, %lld]", d,
                    (long long)min, (long long)max);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool mesh__cfg_double(mesh__cfg_t *c, const cJSON *obj, const char *path,
                      const char *key, double min, double max, double def,
                      double *out) {
  const cJSON *v = get(obj, key);
  *out = def;
  if (!v)
    return false;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
    mesh__cfg_error(c, p, "expected a number, got %s", type_name(v));
    return false;
  }
  if (v->valuedouble < min || v->valuedouble > max) {
    mesh__cfg_error(c, p, "%g is out of range [%g, %g]", v->valuedouble, min,
                    max);
    return false;
  }
  *out = v->valuedouble;
  return true;
}

bool mesh__cfg_bool(mesh__cfg_t *c, const cJSON *obj, const char *path,
                    const char *key, bool def, bool *out) {
  const cJSON *v = get(obj, key);
  *out = def;
  if (!v)
    return false;
  if (!cJSON_IsBool(v)) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, key);
    mesh__cfg_error(c, p, "expected true or false, got %s", type_name(v));
    return false;
  }
  *out = cJSON_IsTrue(v);
  return true;
}

bool mesh__cfg_enum(mesh__cfg_t *c, const cJSON *obj, const char *path,
                    const char *key, const char *const values[], int def,
                    int *out) {
  const char *s;
  *out = def;
  if (!mesh__cfg_string(c, obj, path, key, NULL, &s))
    return false;
  for (int i = 0; values[i]; i++) {
    if (strcmp(values[i], s) == 0) {
      *out = i;
      return true;
    }
  }
  char p[MESH__PATH_MAX], exp[sizeof(((mesh_status_t *)0)->message)];
  mesh__cfg_path(p, path, key);
  list_expected(exp, list_room(p) > 64 + strlen(s) ? list_room(p) - strlen(s)
                                                   : 64,
                values);
  mesh__cfg_error(c, p, "unknown value \"%s\" (expected one of %s)", s, exp);
  return false;
}

bool mesh__cfg_strings(mesh__cfg_t *c, const cJSON *obj, const char *path,
                       const char *key, const cJSON **out) {
  const cJSON *v = get(obj, key);
  *out = NULL;
  if (!v)
    return false;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!cJSON_IsArray(v)) {
    mesh__cfg_error(c, p, "expected an array of strings, got %s",
                    type_name(v));
    return false;
  }
  bool ok = true;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    if (!cJSON_IsString(it)) {
      char q[MESH__PATH_MAX + 16];
      snprintf(q, sizeof q, "%s[%d]", p, i);
      mesh__cfg_error(c, q, "expected a string, got %s", type_name(it));
      ok = false;
    }
    i++;
  }
  if (ok)
    *out = v;
  return ok;
}
