/* SPDX-License-Identifier: Apache-2.0 */
/* google.protobuf.Struct (the claims of a ValidateJWTSVIDResponse) to
 * JSON, read straight off the wire: protobuf-c has no Struct (it is a
 * well-known type of the C++/Python runtimes), and its generic unpacking
 * recurses without a bound on nested messages, so this small reader keeps
 * the depth under MESH__WL_STRUCT_DEPTH.  Pure: bytes in, cJSON out.
 *
 *   Struct    { map<string, Value> fields = 1; }   (entries: key 1, value 2)
 *   Value     { oneof: null_value 1 (varint), number_value 2 (double),
 *               string_value 3, bool_value 4 (varint), struct_value 5,
 *               list_value 6 }
 *   ListValue { repeated Value values = 1; }
 * Unknown fields are skipped by wire type; groups and truncation are
 * errors. */
#include "workload/workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct rd {
  const uint8_t *p, *end;
} rd_t;

static bool varint(rd_t *r, uint64_t *v) {
  *v = 0;
  for (int s = 0; s < 64 && r->p < r->end; s += 7) {
    uint8_t b = *r->p++;
    *v |= (uint64_t)(b & 0x7f) << s;
    if (!(b & 0x80))
      return true;
  }
  return false;
}

/* The next field: number, wire type, and for LEN its bytes (sub).
 * @return false on a malformed or truncated field. */
static bool field(rd_t *r, uint32_t *num, int *wt, rd_t *sub, uint64_t *v) {
  uint64_t key;
  if (!varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
    return false;
  *num = (uint32_t)(key >> 3);
  *wt = (int)(key & 7);
  switch (*wt) {
  case 0:
    return varint(r, v);
  case 1:
  case 5: {
    size_t n = *wt == 1 ? 8 : 4;
    if ((size_t)(r->end - r->p) < n)
      return false;
    *v = 0;
    memcpy(v, r->p, n); /* little-endian hosts (as protobuf-c assumes) */
    r->p += n;
    return true;
  }
  case 2: {
    uint64_t n;
    if (!varint(r, &n) || n > (uint64_t)(r->end - r->p))
      return false;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return true;
  }
  default:
    return false; /* groups (3, 4) and reserved types */
  }
}

static cJSON *value(rd_t r, int depth);

/* A string field as a NUL-terminated copy; NULL: no memory or an embedded
 * NUL (JSON text from it would differ from the claim). */
static char *dupn(const rd_t *s) {
  size_t n = (size_t)(s->end - s->p);
  if (memchr(s->p, '\0', n))
    return NULL;
  char *c = malloc(n + 1);
  if (c) {
    memcpy(c, s->p, n);
    c[n] = '\0';
  }
  return c;
}

static cJSON *object(rd_t r, int depth) {
  if (depth >= MESH__WL_STRUCT_DEPTH)
    return NULL;
  cJSON *o = cJSON_CreateObject();
  while (o && r.p < r.end) {
    uint32_t num;
    int wt;
    rd_t e = {0}, sub = {0};
    uint64_t v;
    if (!field(&r, &num, &wt, &e, &v))
      goto bad;
    if (num != 1 || wt != 2)
      continue;
    char *key = NULL; /* entry: key 1, value 2 (last one wins, as protobuf) */
    cJSON *val = NULL;
    bool ok = true;
    while (ok && e.p < e.end) {
      ok = field(&e, &num, &wt, &sub, &v);
      if (ok && num == 1 && wt == 2) {
        free(key);
        key = dupn(&sub);
        ok = key != NULL;
      } else if (ok && num == 2 && wt == 2) {
        cJSON_Delete(val);
        val = value(sub, depth + 1);
        ok = val != NULL;
      }
    }
    if (ok && key && !val)
      val = cJSON_CreateNull(); /* an entry without value: null */
    ok = ok && key && val;
    /* a repeated key replaces the earlier one (protobuf map semantics) */
    if (ok)
      cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    if (ok && !cJSON_AddItemToObject(o, key, val))
      ok = false;
    free(key);
    if (!ok) {
      cJSON_Delete(val);
      goto bad;
    }
  }
  return o;
bad:
  cJSON_Delete(o);
  return NULL;
}

static cJSON *list(rd_t r, int depth) {
  if (depth >= MESH__WL_STRUCT_DEPTH)
    return NULL;
  cJSON *a = cJSON_CreateArray();
  while (a && r.p < r.end) {
    uint32_t num;
    int wt;
    rd_t sub = {0};
    uint64_t v;
    bool ok = field(&r, &num, &wt, &sub, &v);
    cJSON *it = ok && num == 1 && wt == 2 ? value(sub, depth + 1) : NULL;
    if (!ok || (num == 1 && wt == 2 && !it)) {
      cJSON_Delete(a);
      return NULL;
    }
    if (it)
      cJSON_AddItemToArray(a, it);
  }
  return a;
}

/* A Value: the last kind on the wire wins (oneof semantics); none: null. */
static cJSON *value(rd_t r, int depth) {
  if (depth >= MESH__WL_STRUCT_DEPTH)
    return NULL;
  cJSON *out = cJSON_CreateNull();
  while (out && r.p < r.end) {
    uint32_t num;
    int wt;
    rd_t sub = {0};
    uint64_t v = 0;
    cJSON *next = NULL;
    bool ok = field(&r, &num, &wt, &sub, &v);
    double d;
    memcpy(&d, &v, sizeof d);
    if (!ok)
      next = NULL;
    else if (num == 1 && wt == 0)
      next = cJSON_CreateNull();
    else if (num == 2 && wt == 1)
      next = isfinite(d) ? cJSON_CreateNumber(d) : NULL;
    else if (num == 3 && wt == 2) {
      char *s = dupn(&sub);
      next = s ? cJSON_CreateString(s) : NULL;
      free(s);
    } else if (num == 4 && wt == 0)
      next = cJSON_CreateBool(v != 0);
    else if (num == 5 && wt == 2)
      next = object(sub, depth + 1);
    else if (num == 6 && wt == 2)
      next = list(sub, depth + 1);
    else
      continue; /* unknown field */
    cJSON_Delete(out);
    out = next;
  }
  return out;
}

int mesh__wl_struct_json(const uint8_t *msg, size_t len, cJSON **out) {
  if (!len) { /* msg may be NULL then: no pointer arithmetic on it */
    *out = cJSON_CreateObject();
    return *out ? MESH_OK : MESH_ERR_PARSE;
  }
  rd_t r = {msg, msg + len};
  *out = object(r, 0);
  return *out ? MESH_OK : MESH_ERR_PARSE;
}
