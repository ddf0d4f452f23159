/* SPDX-License-Identifier: Apache-2.0 */
/* Request attributes: the internal setters the HTTP layer uses without
 * allocating, and the public builder / accessors (mesh_authz_request_*). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authz/authz.h"

enum own_slot { OWN_PRINCIPAL = 0, OWN_METHOD, OWN_PATH, OWN_TARGET, OWN_HOST };

void mesh__az_req_init(mesh_authz_request_t *r) {
  memset(r, 0, sizeof *r);
  r->principal = "";
  r->port = -1;
  r->path_norm = MESH__PATH_NORM_DEFAULT;
}

/* Istio's source.namespace: the segment after "/ns/" when the SPIFFE ID's
 * path starts with it (spiffe://td/ns/<ns>/sa/<sa>). */
void mesh__az_req_set_principal(mesh_authz_request_t *r, const char *id) {
  r->principal = id ? id : "";
  r->ns[0] = '\0';
  const char *p = r->principal;
  if (strncmp(p, "spiffe://", 9) == 0)
    p += 9;
  const char *slash = strchr(p, '/');
  if (!slash || strncmp(slash, "/ns/", 4) != 0)
    return;
  const char *ns = slash + 4;
  size_t n = strcspn(ns, "/");
  if (n == 0 || n >= sizeof r->ns)
    return;
  memcpy(r->ns, ns, n);
  r->ns[n] = '\0';
}

const char *mesh__az_req_header(const mesh_authz_request_t *r,
                                const char *name) {
  for (size_t i = 0; r && name && i < r->nhdrs; i++)
    if (strcasecmp(r->hdrs[i].name, name) == 0)
      return r->hdrs[i].value;
  return NULL;
}

char *mesh__az_req_normalize(const char *target, int mode) {
  size_t n = strlen(target);
  char *path = malloc(n + 2);
  if (path && mesh__path_normalize(target, n, mode, path, n + 2, NULL) !=
                  MESH_OK)
    path[0] = '\0';
  return path;
}

bool mesh__az_req_built(const mesh_authz_request_t *r) {
  return r && r->own[OWN_TARGET] != NULL;
}

/* ---- builder ------------------------------------------------------------------ */

mesh_authz_request_t *mesh_authz_request_new(void) {
  mesh_authz_request_t *r = malloc(sizeof *r);
  if (r)
    mesh__az_req_init(r);
  return r;
}

void mesh_authz_request_free(mesh_authz_request_t *r) {
  if (!r)
    return;
  for (size_t i = 0; i < sizeof r->own / sizeof r->own[0]; i++)
    free(r->own[i]);
  for (size_t i = 0; i < r->nhdrs && r->own_hdrs; i++) {
    free((char *)r->own_hdrs[i].name);
    free((char *)r->own_hdrs[i].value);
  }
  free(r->own_hdrs);
  free(r);
}

static int own(mesh_authz_request_t *r, int slot, const char *s,
               const char **field) {
  char *d = strdup(s);
  if (!d)
    return MESH_ERR_NOMEM;
  free(r->own[slot]);
  r->own[slot] = d;
  *field = d;
  return MESH_OK;
}

int mesh_authz_request_set_principal(mesh_authz_request_t *r,
                                     const char *spiffe_id) {
  if (!r || !spiffe_id)
    return MESH_ERR_INVALID_ARG;
  const char *p;
  int rc = own(r, OWN_PRINCIPAL, spiffe_id, &p);
  if (rc == MESH_OK)
    mesh__az_req_set_principal(r, p);
  return rc;
}

/* The peer of a connection as the request's source; the connection's local
 * port as its destination port. */
int mesh_authz_request_set_conn(mesh_authz_request_t *r, const mesh_conn_t *c) {
  if (!r || !c || mesh_conn_fd(c) < 0)
    return MESH_ERR_INVALID_ARG;
  int rc = mesh_authz_request_set_principal(r, mesh_conn_peer_id(c));
  if (rc != MESH_OK)
    return rc;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(mesh_conn_fd(c), (struct sockaddr *)&ss, &len) == 0)
    r->src = ss;
  len = sizeof ss;
  if (getsockname(mesh_conn_fd(c), (struct sockaddr *)&ss, &len) == 0)
    r->port = ss.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return MESH_OK;
}

int mesh_authz_request_set_source_ip(mesh_authz_request_t *r, const char *ip) {
  if (!r || !ip)
    return MESH_ERR_INVALID_ARG;
  struct sockaddr_storage ss;
  if (mesh__ip_parse(ip, &ss) != MESH_OK)
    return MESH_ERR_INVALID_ARG;
  r->src = ss;
  return MESH_OK;
}

int mesh_authz_request_set_port(mesh_authz_request_t *r, int port) {
  if (!r || port < 0 || port > 65535)
    return MESH_ERR_INVALID_ARG;
  r->port = port;
  return MESH_OK;
}

/* RFC 9112 3.2.2: the authority of an absolute-form target is the host,
 * whatever Host says, as the HTTP server has it. */
static int set_host(mesh_authz_request_t *r, const char *target,
                    const char *host) {
  mesh__target_t t;
  if (mesh__target_split(target, strlen(target), &t) != MESH_OK ||
      t.form != MESH__TARGET_ABSOLUTE)
    return own(r, OWN_HOST, host ? host : "", &r->host);
  char *a = strndup(t.authority, t.authority_n);
  if (!a)
    return MESH_ERR_NOMEM;
  free(r->own[OWN_HOST]);
  r->own[OWN_HOST] = a;
  r->host = a;
  return MESH_OK;
}

int mesh_authz_request_set_http(mesh_authz_request_t *r, const char *method,
                                const char *target, const char *host) {
  if (!r || !method || !target || !*method)
    return MESH_ERR_INVALID_ARG;
  char *path = mesh__az_req_normalize(target, MESH__PATH_NORM_DEFAULT);
  if (!path)
    return MESH_ERR_NOMEM;
  if (!path[0]) {
    free(path);
    return MESH_ERR_HTTP_PARSE;
  }
  free(r->own[OWN_PATH]);
  r->own[OWN_PATH] = path;
  r->path = path;
  r->path_norm = MESH__PATH_NORM_DEFAULT;
  int rc = own(r, OWN_METHOD, method, &r->method);
  if (rc == MESH_OK)
    rc = own(r, OWN_TARGET, target, &r->target);
  if (rc == MESH_OK)
    rc = set_host(r, target, host);
  if (rc == MESH_OK)
    r->http = true;
  return rc;
}

int mesh_authz_request_add_header(mesh_authz_request_t *r, const char *name,
                                  const char *value) {
  if (!r || !name || !*name || !value)
    return MESH_ERR_INVALID_ARG;
  if (r->hdrs && r->hdrs != r->own_hdrs)
    return MESH_ERR_INVALID_ARG; /* headers borrowed from the HTTP layer */
  if (r->nhdrs == r->own_cap) {
    size_t cap = r->own_cap ? r->own_cap * 2 : 8;
    mesh__az_hdr_t *nh = realloc(r->own_hdrs, cap * sizeof *nh);
    if (!nh)
      return MESH_ERR_NOMEM;
    r->own_hdrs = nh;
    r->own_cap = cap;
  }
  char *n = strdup(name), *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return MESH_ERR_NOMEM;
  }
  r->own_hdrs[r->nhdrs].name = n;
  r->own_hdrs[r->nhdrs].value = v;
  r->nhdrs++;
  r->hdrs = r->own_hdrs;
  return MESH_OK;
}

/* ---- accessors ------------------------------------------------------------------ */

const char *mesh_authz_request_principal(const mesh_authz_request_t *r) {
  return r && r->principal ? r->principal : "";
}

const char *mesh_authz_request_namespace(const mesh_authz_request_t *r) {
  return r ? r->ns : "";
}

int mesh_authz_request_source_ip(const mesh_authz_request_t *r, char *buf,
                                 size_t len) {
  if (!r || !buf || len < 46)
    return MESH_ERR_BUFFER;
  mesh__ip_format(r->src.ss_family ? (const struct sockaddr *)&r->src : NULL,
                  buf, len);
  return MESH_OK;
}

int mesh_authz_request_port(const mesh_authz_request_t *r) {
  return r ? r->port : -1;
}

const char *mesh_authz_request_method(const mesh_authz_request_t *r) {
  return r && r->http ? r->method : NULL;
}

const char *mesh_authz_request_path(const mesh_authz_request_t *r) {
  return r && r->http ? r->path : NULL;
}

const char *mesh_authz_request_host(const mesh_authz_request_t *r) {
  return r && r->http ? r->host : NULL;
}

const char *mesh_authz_request_header(const mesh_authz_request_t *r,
                                      const char *name) {
  return mesh__az_req_header(r, name);
}

size_t mesh__az_hdr_values(const mesh__az_hdr_t *h, size_t n,
                           const char *name, const char **values, size_t cap) {
  size_t count = 0;
  for (size_t i = 0; h && name && i < n; i++) {
    if (strcasecmp(h[i].name, name) != 0)
      continue;
    if (values && count < cap)
      values[count] = h[i].value;
    count++;
  }
  return count;
}

size_t mesh_authz_request_header_values(const mesh_authz_request_t *r,
                                        const char *name, const char **values,
                                        size_t cap) {
  return r ? mesh__az_hdr_values(r->hdrs, r->nhdrs, name, values, cap) : 0;
}
