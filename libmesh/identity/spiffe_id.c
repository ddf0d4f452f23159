/* SPDX-License-Identifier: Apache-2.0 */
/* SPIFFE ID validation, splitting and matching (SPIFFE-ID.md sections 2.1
 * to 2.3).  Pure functions: no I/O, no allocation, safe from any thread.
 *
 * The scanner walks the string once, left to right, and reports the first
 * violation it meets, so a given input always yields the same reason.  The
 * reasons follow go-spiffe's wording where it has one, and are more precise
 * where the specification names the case (port, user info, query, ...). */
#include "identity/identity.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SCHEME "spiffe://"
#define SCHEME_LEN (sizeof SCHEME - 1)

static bool td_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

static bool path_char(char c) {
  return td_char(c) || (c >= 'A' && c <= 'Z');
}

/* Reason for a character that is not allowed in the trust domain. */
static const char *td_char_reason(char c) {
  if (c >= 'A' && c <= 'Z')
    return "trust domain must be lowercase";
  switch (c) {
  case ':':
    return "trust domain cannot contain a port";
  case '@':
    return "trust domain cannot contain user info";
  case '%':
    return "trust domain cannot contain percent-encoded characters";
  case '?':
    return "query is not allowed";
  case '#':
    return "fragment is not allowed";
  default:
    return "trust domain characters are limited to lowercase letters, "
           "numbers, dots, dashes, and underscores";
  }
}

static const char *path_char_reason(char c) {
  switch (c) {
  case '%':
    return "path cannot contain percent-encoded characters";
  case '?':
    return "query is not allowed";
  case '#':
    return "fragment is not allowed";
  default:
    return "path segment characters are limited to letters, numbers, dots, "
           "dashes, and underscores";
  }
}

/* Check the trust domain name td[0..n); NULL when valid, else the reason. */
static const char *td_reason(const char *td, size_t n) {
  if (n == 0)
    return "trust domain is missing";
  /* "user:pw@host" would otherwise read as a port at the ':'; a '@' after
   * a '?' or '#' belongs to the query or fragment. */
  size_t auth = strcspn(td, "?#");
  if (memchr(td, '@', auth < n ? auth : n))
    return td_char_reason('@');
  for (size_t i = 0; i < n; i++)
    if (!td_char(td[i]))
      return td_char_reason(td[i]);
  if (n > MESH_TRUST_DOMAIN_MAX)
    return "trust domain is longer than 255 bytes";
  return NULL;
}

/* A segment is the text after a '/' up to the next '/' or the end. */
static const char *segment_reason(const char *seg, size_t n, bool last) {
  if (n == 0)
    return last ? "path cannot have a trailing slash"
                : "path cannot contain empty segments";
  if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
    return "path cannot contain dot segments";
  return NULL;
}

/* Check a path ("" or "/a/b"); NULL when valid, else the reason. */
static const char *path_reason(const char *p) {
  if (!*p)
    return NULL;
  if (*p != '/')
    return "path must have a leading slash";
  const char *seg = p + 1;
  for (const char *c = seg;; c++) {
    if (*c == '/' || *c == '\0') {
      const char *r = segment_reason(seg, (size_t)(c - seg), *c == '\0');
      if (r)
        return r;
      if (*c == '\0')
        return NULL;
      seg = c + 1;
      continue;
    }
    if (!path_char(*c))
      return path_char_reason(*c);
  }
}

/* Validate and locate the parts; NULL when valid, else the reason. */
static const char *id_reason(const char *id, size_t *td_off, size_t *td_n) {
  if (!*id)
    return "cannot be empty";
  size_t len = strnlen(id, MESH_SPIFFE_ID_MAX + 1);
  if (len > MESH_SPIFFE_ID_MAX)
    return "longer than 2048 bytes";
  if (strncmp(id, SCHEME, SCHEME_LEN) != 0) {
    if (strncasecmp(id, SCHEME, SCHEME_LEN) == 0)
      return "scheme must be lowercase \"spiffe\"";
    return "scheme is missing or invalid (expected \"spiffe://\")";
  }
  const char *td = id + SCHEME_LEN;
  size_t n = strcspn(td, "/");
  const char *r = td_reason(td, n);
  if (r)
    return r;
  *td_off = SCHEME_LEN;
  *td_n = n;
  return path_reason(td + n);
}

static int id_fail(mesh_status_t *st, const char *id, const char *reason) {
  size_t len = strnlen(id, 121);
  return mesh__fail(st, MESH_ERR_SPIFFE_ID, "invalid SPIFFE ID \"%.120s%s\": %s",
                    id, len > 120 ? "..." : "", reason);
}

int mesh_spiffe_id_validate(const char *id, mesh_status_t *st) {
  mesh__ok(st);
  if (!id)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "SPIFFE ID is NULL");
  size_t off, n;
  const char *r = id_reason(id, &off, &n);
  return r ? id_fail(st, id, r) : MESH_OK;
}

int mesh__spiffe_td_validate(const char *td, mesh_status_t *st) {
  mesh__ok(st);
  if (!td)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "trust domain is NULL");
  const char *r = td_reason(td, strnlen(td, MESH_TRUST_DOMAIN_MAX + 1));
  if (!r)
    return MESH_OK;
  return mesh__fail(st, MESH_ERR_SPIFFE_ID, "invalid trust domain \"%.120s%s\": %s",
                    td, strlen(td) > 120 ? "..." : "", r);
}

static int copy_out(char *dst, size_t cap, const char *src, size_t n,
                    const char *what, mesh_status_t *st) {
  if (!dst)
    return MESH_OK;
  if (n >= cap)
    return mesh__fail(st, MESH_ERR_BUFFER, "%s needs %zu bytes, buffer has %zu",
                      what, n + 1, cap);
  memcpy(dst, src, n);
  dst[n] = '\0';
  return MESH_OK;
}

int mesh_spiffe_id_parse(const char *id, char *td, size_t td_len, char *path,
                         size_t path_len, mesh_status_t *st) {
  mesh__ok(st);
  if (!id)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "SPIFFE ID is NULL");
  size_t off = 0, n = 0;
  const char *r = id_reason(id, &off, &n);
  if (r)
    return id_fail(st, id, r);
  int rc = copy_out(td, td_len, id + off, n, "trust domain", st);
  if (rc != MESH_OK)
    return rc;
  const char *p = id + off + n;
  return copy_out(path, path_len, p, strlen(p), "path", st);
}

/* ---- matching ------------------------------------------------------------ */

static bool has_prefix(const char *s, const char *pre) {
  return strncmp(s, pre, strlen(pre)) == 0;
}

static bool has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && memcmp(s + a - b, suf, b) == 0;
}

int mesh_spiffe_match(const char *pattern, const char *id) {
  if (!pattern || !id || mesh_spiffe_id_validate(id, NULL) != MESH_OK)
    return 0;
  const char *i = id + SCHEME_LEN; /* "td/path" as Istio principals read */
  bool scheme = has_prefix(pattern, SCHEME);
  const char *p = scheme ? pattern + SCHEME_LEN : pattern;
  size_t plen = strlen(p);
  if (strcmp(p, "*") == 0)
    return 1;
  if (scheme && plen > 0 && !strchr(p, '/') && !strchr(p, '*')) {
    /* "spiffe://td": any ID of that trust domain. */
    size_t n = strcspn(i, "/");
    return n == plen && memcmp(i, p, n) == 0;
  }
  const char *star = strchr(p, '*');
  if (!star)
    return strcmp(p, i) == 0;
  if (strchr(star + 1, '*'))
    return 0; /* one wildcard only, as in Istio */
  if (star == p + plen - 1) {
    /* prefix match: copy without the '*' */
    return strncmp(i, p, plen - 1) == 0;
  }
  if (star == p)
    return has_suffix(i, p + 1);
  return 0; /* a '*' in the middle matches nothing */
}
