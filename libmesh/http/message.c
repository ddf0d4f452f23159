/* SPDX-License-Identifier: Apache-2.0 */
/* Request and response objects: construction with validated fields (no
 * header injection: names are tokens, values have no CR, LF or NUL),
 * accessors, and a small buffer for serializing heads. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

/* ---- head buffer ------------------------------------------------------------ */

void mesh__hbuf_add(mesh__hbuf_t *b, const void *s, size_t n) {
  if (b->oom)
    return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

void mesh__hbuf_str(mesh__hbuf_t *b, const char *s) {
  mesh__hbuf_add(b, s, strlen(s));
}

void mesh__hbuf_fmt(mesh__hbuf_t *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    b->oom = true; /* callers format short, fixed fields only */
    return;
  }
  mesh__hbuf_add(b, tmp, (size_t)n);
}

void mesh__hbuf_free(mesh__hbuf_t *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- header lists ------------------------------------------------------------ */

bool mesh__http_reserved_header(const char *name) {
  static const char *const r[] = {"content-length", "transfer-encoding",
                                  "connection",     "host",
                                  "keep-alive",     "upgrade",
                                  "te",             "trailer",
                                  "proxy-connection", NULL};
  for (size_t i = 0; r[i]; i++)
    if (strcasecmp(name, r[i]) == 0)
      return true;
  return false;
}

static char *dupn(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

int mesh__http_hdrs_add(mesh__az_hdr_t **v, size_t *n, size_t *cap,
                        const char *name, size_t nlen, const char *value,
                        size_t vlen) {
  if (!mesh__http_valid_token(name, nlen) ||
      !mesh__http_valid_value(value, vlen))
    return MESH_ERR_INVALID_ARG;
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    mesh__az_hdr_t *nv = realloc(*v, nc * sizeof *nv);
    if (!nv)
      return MESH_ERR_NOMEM;
    *v = nv;
    *cap = nc;
  }
  char *a = dupn(name, nlen), *b = dupn(value, vlen);
  if (!a || !b) {
    free(a);
    free(b);
    return MESH_ERR_NOMEM;
  }
  (*v)[*n].name = a;
  (*v)[*n].value = b;
  (*n)++;
  return MESH_OK;
}

void mesh__http_hdrs_free(mesh__az_hdr_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free((char *)v[i].name);
    free((char *)v[i].value);
  }
  free(v);
}

const char *mesh__http_hdrs_get(const mesh__az_hdr_t *v, size_t n,
                                const char *name) {
  for (size_t i = 0; name && i < n; i++)
    if (strcasecmp(v[i].name, name) == 0)
      return v[i].value;
  return NULL;
}

const char *mesh__http_hdr_value(const mesh__az_hdr_t *v, size_t n,
                                 const mesh__az_hdr_t *joined, size_t nj,
                                 const char *name) {
  const char *j = mesh__http_hdrs_get(joined, nj, name);
  return j ? j : mesh__http_hdrs_get(v, n, name);
}

/* Keep the joined entry of `name` current in a built request: every value
 * in order, separated by "," (Envoy's rule for repeated fields). */
static int join_update(mesh_http_request_t *r, const char *name) {
  size_t count = 0, len = 0;
  for (size_t i = 0; i < r->nhdrs; i++)
    if (strcasecmp(r->hdrs[i].name, name) == 0) {
      len += strlen(r->hdrs[i].value) + (count ? 1 : 0);
      count++;
    }
  if (count < 2)
    return MESH_OK;
  char *val = malloc(len + 1);
  if (!val)
    return MESH_ERR_NOMEM;
  size_t w = 0, k = 0;
  for (size_t i = 0; i < r->nhdrs; i++)
    if (strcasecmp(r->hdrs[i].name, name) == 0) {
      if (k++)
        val[w++] = ',';
      size_t vn = strlen(r->hdrs[i].value);
      memcpy(val + w, r->hdrs[i].value, vn);
      w += vn;
    }
  val[w] = '\0';
  for (size_t i = 0; i < r->njoined; i++)
    if (strcasecmp(r->joined[i].name, name) == 0) {
      free((char *)r->joined[i].value);
      r->joined[i].value = val;
      return MESH_OK;
    }
  int rc = mesh__http_hdrs_add(&r->joined, &r->njoined, &r->jcap, name,
                               strlen(name), "", 0);
  if (rc != MESH_OK) {
    free(val);
    return rc;
  }
  free((char *)r->joined[r->njoined - 1].value);
  r->joined[r->njoined - 1].value = val;
  return MESH_OK;
}

const char *mesh__http_reason(int status) {
  static const struct {
    int code;
    const char *text;
  } t[] = {
      {100, "Continue"},          {200, "OK"},
      {201, "Created"},           {202, "Accepted"},
      {204, "No Content"},        {206, "Partial Content"},
      {301, "Moved Permanently"}, {302, "Found"},
      {304, "Not Modified"},      {400, "Bad Request"},
      {401, "Unauthorized"},      {403, "Forbidden"},
      {404, "Not Found"},         {405, "Method Not Allowed"},
      {408, "Request Timeout"},   {409, "Conflict"},
      {413, "Content Too Large"}, {414, "URI Too Long"},
      {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"}, {501, "Not Implemented"},
      {502, "Bad Gateway"},       {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (t[i].code == status)
      return t[i].text;
  return "";
}

/* ---- requests -------------------------------------------------------------- */

mesh_http_request_t *mesh_http_request_new(const char *method,
                                           const char *target) {
  if (!method || !target || !mesh__http_valid_token(method, strlen(method)))
    return NULL;
  size_t tn = strlen(target);
  if (tn == 0 || (target[0] != '/' && strcmp(target, "*") != 0))
    return NULL;
  for (size_t i = 0; i < tn; i++)
    if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f ||
        target[i] == '#')
      return NULL;
  mesh_http_request_t *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->method = strdup(method);
  r->target = strdup(target);
  char *path = malloc(tn + 2);
  r->path = path;
  if (!r->method || !r->target || !path ||
      mesh__path_normalize(target, tn, MESH__PATH_NORM_DEFAULT, path, tn + 2,
                           NULL) != MESH_OK) {
    mesh_http_request_free(r);
    return NULL;
  }
  return r;
}

void mesh_http_request_free(mesh_http_request_t *r) {
  if (!r || r->borrowed)
    return;
  free((char *)r->method);
  free((char *)r->target);
  free((char *)r->path);
  mesh__http_hdrs_free(r->hdrs, r->nhdrs);
  mesh__http_hdrs_free(r->joined, r->njoined);
  free((char *)r->body);
  free(r);
}

int mesh_http_request_add_header(mesh_http_request_t *r, const char *name,
                                 const char *value) {
  if (!r || r->borrowed || !name || !value ||
      mesh__http_reserved_header(name))
    return MESH_ERR_INVALID_ARG;
  int rc = mesh__http_hdrs_add(&r->hdrs, &r->nhdrs, &r->cap, name,
                               strlen(name), value, strlen(value));
  if (rc == MESH_OK && join_update(r, name) != MESH_OK) {
    /* all or nothing: the field goes with its joined view */
    r->nhdrs--;
    free((char *)r->hdrs[r->nhdrs].name);
    free((char *)r->hdrs[r->nhdrs].value);
    rc = MESH_ERR_NOMEM;
  }
  return rc;
}

int mesh_http_request_set_body(mesh_http_request_t *r, const void *body,
                               size_t len) {
  if (!r || r->borrowed || (!body && len))
    return MESH_ERR_INVALID_ARG;
  char *b = malloc(len + 1);
  if (!b)
    return MESH_ERR_NOMEM;
  if (len)
    memcpy(b, body, len);
  b[len] = '\0';
  free((char *)r->body);
  r->body = b;
  r->body_len = len;
  return MESH_OK;
}

int mesh_http_request_set_timeout(mesh_http_request_t *r, int timeout_ms) {
  if (!r || timeout_ms < 0)
    return MESH_ERR_INVALID_ARG;
  r->timeout_ms = timeout_ms;
  return MESH_OK;
}

const char *mesh_http_request_method(const mesh_http_request_t *r) {
  return r ? r->method : NULL;
}

const char *mesh_http_request_target(const mesh_http_request_t *r) {
  return r ? r->target : NULL;
}

int mesh_http_path_normalize(mesh_t *m, const char *target, char *buf,
                             size_t len) {
  if (!target || !buf)
    return MESH_ERR_INVALID_ARG;
  int mode = m ? mesh__authz_path_norm(m) : MESH__PATH_NORM_DEFAULT;
  return mesh__path_normalize(target, strlen(target), mode, buf, len, NULL);
}

const char *mesh_http_request_original_target(const mesh_http_request_t *r) {
  if (!r)
    return NULL;
  return r->orig_target ? r->orig_target : r->target;
}

const char *mesh_http_request_path(const mesh_http_request_t *r) {
  return r ? r->path : NULL;
}

const char *mesh_http_request_header(const mesh_http_request_t *r,
                                     const char *name) {
  if (!r || !name)
    return NULL;
  return mesh__http_hdr_value(r->hdrs, r->nhdrs, r->joined, r->njoined, name);
}

size_t mesh_http_request_header_values(const mesh_http_request_t *r,
                                       const char *name, const char **values,
                                       size_t cap) {
  return r ? mesh__az_hdr_values(r->hdrs, r->nhdrs, name, values, cap) : 0;
}

size_t mesh_http_request_header_count(const mesh_http_request_t *r) {
  return r ? r->nhdrs : 0;
}

int mesh_http_request_header_at(const mesh_http_request_t *r, size_t i,
                                const char **name, const char **value) {
  if (!r || i >= r->nhdrs)
    return MESH_ERR_NOT_FOUND;
  if (name)
    *name = r->hdrs[i].name;
  if (value)
    *value = r->hdrs[i].value;
  return MESH_OK;
}

const void *mesh_http_request_body(const mesh_http_request_t *r, size_t *len) {
  if (len)
    *len = r ? r->body_len : 0;
  return r && r->body ? r->body : "";
}

const char *mesh_http_request_peer_id(const mesh_http_request_t *r) {
  return r && r->peer_id ? r->peer_id : "";
}

/* ---- responses ------------------------------------------------------------- */

mesh_http_response_t *mesh_http_response_new(void) {
  mesh_http_response_t *r = calloc(1, sizeof *r);
  if (r)
    r->status = 200;
  return r;
}

void mesh_http_response_free(mesh_http_response_t *r) {
  if (!r)
    return;
  mesh__http_hdrs_free(r->hdrs, r->nhdrs);
  free(r->body);
  free(r);
}

int mesh_http_response_set_status(mesh_http_response_t *r, int status) {
  if (!r || status < 100 || status > 599)
    return MESH_ERR_INVALID_ARG;
  r->status = status;
  return MESH_OK;
}

int mesh_http_response_add_header(mesh_http_response_t *r, const char *name,
                                  const char *value) {
  if (!r || !name || !value || mesh__http_reserved_header(name))
    return MESH_ERR_INVALID_ARG;
  return mesh__http_hdrs_add(&r->hdrs, &r->nhdrs, &r->cap, name, strlen(name),
                             value, strlen(value));
}

int mesh_http_response_set_body(mesh_http_response_t *r, const void *body,
                                size_t len) {
  if (!r || (!body && len))
    return MESH_ERR_INVALID_ARG;
  char *b = malloc(len + 1);
  if (!b)
    return MESH_ERR_NOMEM;
  if (len)
    memcpy(b, body, len);
  b[len] = '\0';
  free(r->body);
  r->body = b;
  r->body_len = len;
  return MESH_OK;
}

int mesh_http_response_status(const mesh_http_response_t *r) {
  return r ? r->status : 0;
}

const char *mesh_http_response_header(const mesh_http_response_t *r,
                                      const char *name) {
  return r ? mesh__http_hdrs_get(r->hdrs, r->nhdrs, name) : NULL;
}

size_t mesh_http_response_header_count(const mesh_http_response_t *r) {
  return r ? r->nhdrs : 0;
}

int mesh_http_response_header_at(const mesh_http_response_t *r, size_t i,
                                 const char **name, const char **value) {
  if (!r || i >= r->nhdrs)
    return MESH_ERR_NOT_FOUND;
  if (name)
    *name = r->hdrs[i].name;
  if (value)
    *value = r->hdrs[i].value;
  return MESH_OK;
}

const void *mesh_http_response_body(const mesh_http_response_t *r,
                                    size_t *len) {
  if (len)
    *len = r ? r->body_len : 0;
  return r && r->body ? r->body : "";
}
