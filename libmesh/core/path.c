/* SPDX-License-Identifier: Apache-2.0 */
/* Request targets and URL path normalization.
 *
 * Pure functions (bytes in, result out; no allocation, no I/O, no state):
 * the HTTP/1.1 server, HTTP/2, the route table and authorization all call
 * them, so that every consumer of a request sees one path.
 *
 * The modes are Istio's MeshConfig.pathNormalization, built as Istio builds
 * them on Envoy (normalize_path, merge_slashes,
 * path_with_escaped_slashes_action), in Envoy's order:
 *   1. DECODE_AND_MERGE_SLASHES only: %2F and %5C are decoded;
 *   2. BASE (Envoy's normalize_path): %XX of unreserved characters decoded
 *      (RFC 3986 6.2.2.2), the hex of other escapes upper-cased, "\" made
 *      "/", dot segments removed (RFC 3986 5.2.4);
 *   3. MERGE_SLASHES and DECODE_AND_MERGE_SLASHES: runs of "/" merged.
 * "%00" is refused in every mode (Istio answers 400), as is a "%" not
 * followed by two hex digits. */
#include <string.h>

#include "core/core.h"

static const char *const norm_names[] = {"NONE", "BASE", "MERGE_SLASHES",
                                         "DECODE_AND_MERGE_SLASHES", NULL};

const char *const *mesh__path_norm_names(void) { return norm_names; }

const char *mesh__path_norm_name(int mode) {
  if (mode < MESH__PATH_NONE || mode > MESH__PATH_DECODE_AND_MERGE_SLASHES)
    return "";
  return norm_names[mode];
}

/* ---- request targets (RFC 9112 3.2) -----------------------------------------
 */

static bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_scheme_char(unsigned char c) {
  return is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
         c == '.';
}

/* Path and query of [p, p+n): the query starts after the first '?'. */
static void split_query(const char *p, size_t n, mesh__target_t *out) {
  const char *q = n ? memchr(p, '?', n) : NULL;
  out->path = p;
  out->path_n = q ? (size_t)(q - p) : n;
  out->query = q ? q + 1 : NULL;
  out->query_n = q ? n - out->path_n - 1 : 0;
}

/* absolute-form: scheme "://" authority [path-abempty] ["?" query].  The
 * authority ends at the first "/" or "?" ("#" is gone already; RFC 3986
 * 3.2), so
 * "http://h?/x" has authority "h", path "" (that is "/") and query "/x". */
static int split_absolute(const char *t, size_t n, mesh__target_t *out) {
  size_t i = 0;
  while (i < n && is_scheme_char((unsigned char)t[i]))
    i++;
  if (i == 0 || !is_alpha((unsigned char)t[0]) || i + 3 > n ||
      memcmp(t + i, "://", 3) != 0)
    return MESH_ERR_HTTP_PARSE;
  const char *a = t + i + 3;
  size_t rest = n - i - 3, an = 0;
  while (an < rest && a[an] != '/' && a[an] != '?')
    an++;
  /* an http(s) URI has a host; userinfo is deprecated (RFC 9110 4.2.4) and
   * would let "a@b" name two hosts to two readers */
  if (an == 0 || memchr(a, '@', an))
    return MESH_ERR_HTTP_PARSE;
  out->form = MESH__TARGET_ABSOLUTE;
  out->authority = a;
  out->authority_n = an;
  split_query(a + an, rest - an, out);
  return MESH_OK;
}

int mesh__target_split(const char *t, size_t n, mesh__target_t *out) {
  if (!t || !out)
    return MESH_ERR_INVALID_ARG;
  memset(out, 0, sizeof *out);
  /* a fragment is never part of what is requested (RFC 3986 3.5; the
   * parser refuses "#", a caller-built target may carry one) */
  const char *frag = n ? memchr(t, '#', n) : NULL;
  if (frag)
    n = (size_t)(frag - t);
  if (n == 0)
    return MESH_ERR_HTTP_PARSE;
  if (t[0] == '/') {
    out->form = MESH__TARGET_ORIGIN;
    split_query(t, n, out);
    return MESH_OK;
  }
  if (n == 1 && t[0] == '*') {
    out->form = MESH__TARGET_ASTERISK;
    out->path = t;
    out->path_n = 1;
    return MESH_OK;
  }
  if (split_absolute(t, n, out) == MESH_OK)
    return MESH_OK;
  memset(out, 0, sizeof *out);
  /* authority-form (CONNECT host:port): no path at all */
  out->form = MESH__TARGET_AUTHORITY;
  out->authority = t;
  out->authority_n = n;
  return MESH_OK;
}

/* ---- normalization
 * ------------------------------------------------------------ */

static bool unreserved(unsigned char c) {
  return is_alpha(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

typedef struct wbuf {
  char *p;
  size_t n, cap; /* cap keeps one byte for the NUL */
} wbuf_t;

static bool put(wbuf_t *w, char c) {
  if (w->n + 1 >= w->cap)
    return false;
  w->p[w->n++] = c;
  return true;
}

/* Steps 1 and 2a: percent-decoding and backslashes, into w. */
static int decode(const char *p, size_t n, int mode, wbuf_t *w) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\\' && mode != MESH__PATH_NONE)
      c = '/';
    if (c != '%') {
      if (!put(w, (char)c))
        return MESH_ERR_BUFFER;
      continue;
    }
    int hi = i + 2 < n ? mesh__hex_digit((unsigned char)p[i + 1]) : -1;
    int lo = i + 2 < n ? mesh__hex_digit((unsigned char)p[i + 2]) : -1;
    if (hi < 0 || lo < 0)
      return MESH_ERR_HTTP_PARSE;
    unsigned char d = (unsigned char)(hi * 16 + lo);
    i += 2;
    if (d == 0)
      return MESH_ERR_HTTP_PARSE;
    bool slash = d == '/' || d == '\\';
    if (mode == MESH__PATH_NONE) {
      if (!put(w, '%') || !put(w, p[i - 1]) || !put(w, p[i]))
        return MESH_ERR_BUFFER;
    } else if (unreserved(d) ||
               (slash && mode == MESH__PATH_DECODE_AND_MERGE_SLASHES)) {
      if (!put(w, slash ? '/' : (char)d))
        return MESH_ERR_BUFFER;
    } else if (!put(w, '%') || !put(w, hex[hi]) || !put(w, hex[lo])) {
      return MESH_ERR_BUFFER;
    }
  }
  return MESH_OK;
}

/* Step 2b: RFC 3986 5.2.4 remove_dot_segments on an absolute path, in
 * place (the output never overtakes the input).  Empty segments are kept:
 * "/a//../b" is "/a/b", as Envoy's normalize_path has it.  Returns the new
 * length. */
static size_t remove_dots(char *b, size_t n) {
  size_t r = 0, w = 0;
  while (r < n) {
    size_t s = r + 1, e = s; /* b[r] == '/' */
    while (e < n && b[e] != '/')
      e++;
    size_t seg = e - s;
    bool dot = seg == 1 && b[s] == '.';
    bool dotdot = seg == 2 && b[s] == '.' && b[s + 1] == '.';
    if (dot || dotdot) {
      if (dotdot)
        while (w > 0 && b[--w] != '/')
          ;
      if (e == n)
        b[w++] = '/';
    } else {
      b[w++] = '/';
      memmove(b + w, b + s, seg);
      w += seg;
    }
    r = e;
  }
  if (w == 0)
    b[w++] = '/';
  return w;
}

/* Step 3: merge runs of "/". */
static size_t merge_slashes(char *b, size_t n) {
  size_t w = 0;
  for (size_t r = 0; r < n; r++)
    if (!(b[r] == '/' && w > 0 && b[w - 1] == '/'))
      b[w++] = b[r];
  return w;
}

int mesh__path_normalize(const char *target, size_t n, int mode, char *out,
                         size_t len, size_t *out_n) {
  if (out_n)
    *out_n = 0;
  if (!target || !out || len < 2 || mode < MESH__PATH_NONE ||
      mode > MESH__PATH_DECODE_AND_MERGE_SLASHES)
    return MESH_ERR_INVALID_ARG;
  mesh__target_t t;
  int rc = mesh__target_split(target, n, &t);
  if (rc != MESH_OK)
    return rc;
  if (t.form == MESH__TARGET_AUTHORITY)
    return MESH_ERR_HTTP_PARSE;
  wbuf_t w = {out, 0, len};
  if (t.form == MESH__TARGET_ASTERISK || t.path_n == 0) {
    out[0] = t.form == MESH__TARGET_ASTERISK ? '*' : '/';
    w.n = 1;
  } else {
    rc = decode(t.path, t.path_n, mode, &w);
    if (rc != MESH_OK)
      return rc;
    if (mode != MESH__PATH_NONE)
      w.n = remove_dots(out, w.n);
    if (mode >= MESH__PATH_MERGE_SLASHES)
      w.n = merge_slashes(out, w.n);
  }
  out[w.n] = '\0';
  if (out_n)
    *out_n = w.n;
  return MESH_OK;
}

/* ---- tokens (RFC 9110 5.6.2)
 * ---------------------------------------------------- */

bool mesh__is_tchar(unsigned char c) {
  if (is_alpha(c) || (c >= '0' && c <= '9'))
    return true;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool mesh__token_valid(const char *s, size_t n) {
  if (!s || n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!mesh__is_tchar((unsigned char)s[i]))
      return false;
  return true;
}
