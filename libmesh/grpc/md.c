/* SPDX-License-Identifier: Apache-2.0 */
/* Metadata lists (the public mesh_grpc_metadata_t) and the header lists
 * handed to the HTTP/2 layer. */
#include "grpc/grpc.h"

#include <stdlib.h>
#include <string.h>

#include <mesh/grpc.h>

const char *mesh_grpc_status_name(int code) {
  const char *n = mesh__grpc_code_name(code);
  return n ? n : "UNKNOWN_STATUS";
}

void mesh_grpc_free(void *p) { free(p); }

mesh_grpc_metadata_t *mesh_grpc_metadata_new(void) {
  return calloc(1, sizeof(mesh_grpc_metadata_t));
}

void mesh_grpc_metadata_free(mesh_grpc_metadata_t *md) {
  if (!md)
    return;
  for (size_t i = 0; i < md->n; i++) {
    free(md->v[i].key);
    free(md->v[i].val);
  }
  free(md->v);
  free(md);
}

int mesh__grpc_md_push(mesh_grpc_metadata_t *md, const char *key,
                       const void *val, size_t len) {
  if (md->n == md->cap) {
    size_t cap = md->cap ? md->cap * 2 : 8;
    mesh__grpc_md_ent_t *v = realloc(md->v, cap * sizeof *v);
    if (!v)
      return MESH_ERR_NOMEM;
    md->v = v;
    md->cap = cap;
  }
  char *k = strdup(key);
  uint8_t *b = malloc(len + 1);
  if (!k || !b) {
    free(k);
    free(b);
    return MESH_ERR_NOMEM;
  }
  if (len)
    memcpy(b, val, len);
  b[len] = '\0';
  md->v[md->n++] = (mesh__grpc_md_ent_t){k, b, len};
  return MESH_OK;
}

int mesh_grpc_metadata_add(mesh_grpc_metadata_t *md, const char *key,
                           const char *value, mesh_status_t *st) {
  if (!md || !value)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "metadata: NULL argument");
  int rc = mesh__grpc_md_key_check(key, st);
  if (rc == MESH_OK && mesh__grpc_md_is_bin(key))
    rc = mesh__fail(st, MESH_ERR_INVALID_ARG,
                    "metadata key \"%s\" ends in -bin: use "
                    "mesh_grpc_metadata_add_bin()",
                    key);
  if (rc == MESH_OK)
    rc = mesh__grpc_md_value_check(value, strlen(value), st);
  if (rc == MESH_OK && mesh__grpc_md_push(md, key, value, strlen(value)))
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  return rc;
}

int mesh_grpc_metadata_add_bin(mesh_grpc_metadata_t *md, const char *key,
                               const void *value, size_t len,
                               mesh_status_t *st) {
  if (!md || (!value && len))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "metadata: NULL argument");
  int rc = mesh__grpc_md_key_check(key, st);
  if (rc == MESH_OK && !mesh__grpc_md_is_bin(key))
    rc = mesh__fail(st, MESH_ERR_INVALID_ARG,
                    "metadata key \"%s\" must end in -bin for a binary value",
                    key);
  if (rc == MESH_OK && mesh__grpc_md_push(md, key, value, len))
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  return rc;
}

size_t mesh_grpc_metadata_count(const mesh_grpc_metadata_t *md) {
  return md ? md->n : 0;
}

int mesh_grpc_metadata_at(const mesh_grpc_metadata_t *md, size_t i,
                          const char **key, const void **value, size_t *len) {
  if (!md || i >= md->n)
    return MESH_ERR_NOT_FOUND;
  if (key)
    *key = md->v[i].key;
  if (value)
    *value = md->v[i].val;
  if (len)
    *len = md->v[i].len;
  return MESH_OK;
}

const void *mesh_grpc_metadata_get(const mesh_grpc_metadata_t *md,
                                   const char *key, size_t *len) {
  for (size_t i = 0; md && key && i < md->n; i++)
    if (strcmp(md->v[i].key, key) == 0) {
      if (len)
        *len = md->v[i].len;
      return md->v[i].val;
    }
  return NULL;
}

int mesh__grpc_md_append(mesh_grpc_metadata_t *dst,
                         const mesh_grpc_metadata_t *src) {
  for (size_t i = 0; src && i < src->n; i++)
    if (mesh__grpc_md_push(dst, src->v[i].key, src->v[i].val,
                           src->v[i].len) != MESH_OK)
      return MESH_ERR_NOMEM;
  return MESH_OK;
}

int mesh__grpc_md_copy(const mesh_grpc_metadata_t *src,
                       mesh_grpc_metadata_t **out) {
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  if (!md || mesh__grpc_md_append(md, src) != MESH_OK) {
    mesh_grpc_metadata_free(md);
    return MESH_ERR_NOMEM;
  }
  *out = md;
  return MESH_OK;
}

int mesh__grpc_md_from_h2(const mesh__h2_hdr_t *h, size_t n,
                          mesh_grpc_metadata_t **out) {
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  if (!md)
    return MESH_ERR_NOMEM;
  int rc = MESH_OK;
  for (size_t i = 0; i < n && rc == MESH_OK; i++) {
    if (mesh__grpc_md_is_transport(h[i].name))
      continue;
    if (!mesh__grpc_md_is_bin(h[i].name)) {
      rc = mesh__grpc_md_push(md, h[i].name, h[i].value, strlen(h[i].value));
      continue;
    }
    uint8_t *b;
    size_t bl;
    int d = mesh__grpc_b64_decode(h[i].value, strlen(h[i].value), &b, &bl);
    if (d == MESH_ERR_NOMEM)
      rc = d;
    if (d != MESH_OK)
      continue;
    rc = mesh__grpc_md_push(md, h[i].name, b, bl);
    free(b);
  }
  if (rc != MESH_OK) {
    mesh_grpc_metadata_free(md);
    return rc;
  }
  *out = md;
  return MESH_OK;
}

const char *mesh__grpc_h2_get(const mesh__h2_hdr_t *h, size_t n,
                              const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(h[i].name, name) == 0)
      return h[i].value;
  return NULL;
}

/* ---- header lists ------------------------------------------------------------ */

static int own(mesh__grpc_hl_t *l, char *s) {
  if (l->nown == l->owncap) {
    size_t cap = l->owncap ? l->owncap * 2 : 8;
    char **v = realloc(l->own, cap * sizeof *v);
    if (!v)
      return MESH_ERR_NOMEM;
    l->own = v;
    l->owncap = cap;
  }
  l->own[l->nown++] = s;
  return MESH_OK;
}

int mesh__grpc_hl_add(mesh__grpc_hl_t *l, const char *name, const char *value,
                      bool copy) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    mesh__h2_hdr_t *h = realloc(l->h, cap * sizeof *h);
    if (!h)
      return MESH_ERR_NOMEM;
    l->h = h;
    l->cap = cap;
  }
  if (copy) {
    char *v = strdup(value);
    if (!v || own(l, v) != MESH_OK) {
      free(v);
      return MESH_ERR_NOMEM;
    }
    value = v;
  }
  l->h[l->n++] = (mesh__h2_hdr_t){name, value};
  return MESH_OK;
}

int mesh__grpc_hl_add_copy(mesh__grpc_hl_t *l, const char *name,
                           const char *value) {
  char *n = strdup(name);
  if (!n || own(l, n) != MESH_OK) {
    free(n);
    return MESH_ERR_NOMEM;
  }
  return mesh__grpc_hl_add(l, n, value, true);
}

int mesh__grpc_hl_add_md(mesh__grpc_hl_t *l, const mesh_grpc_metadata_t *md) {
  return mesh__grpc_hl_add_md_except(l, md, NULL);
}

int mesh__grpc_hl_add_md_except(mesh__grpc_hl_t *l,
                                const mesh_grpc_metadata_t *md,
                                const char *skip) {
  for (size_t i = 0; md && i < md->n; i++) {
    const mesh__grpc_md_ent_t *e = &md->v[i];
    if (skip && !strcmp(e->key, skip))
      continue; /* keys are lowercase (checked when added) */
    if (!mesh__grpc_md_is_bin(e->key)) {
      if (mesh__grpc_hl_add(l, e->key, (const char *)e->val, false))
        return MESH_ERR_NOMEM;
      continue;
    }
    char *b64;
    if (mesh__grpc_b64_encode(e->val, e->len, &b64) != MESH_OK)
      return MESH_ERR_NOMEM;
    if (own(l, b64) != MESH_OK) {
      free(b64);
      return MESH_ERR_NOMEM;
    }
    if (mesh__grpc_hl_add(l, e->key, b64, false))
      return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

void mesh__grpc_hl_free(mesh__grpc_hl_t *l) {
  for (size_t i = 0; i < l->nown; i++)
    free(l->own[i]);
  free(l->own);
  free(l->h);
  memset(l, 0, sizeof *l);
}

int mesh__grpc_code_from_h2_error(uint32_t h2_code) {
  switch (h2_code) {
  case MESH__H2_REFUSED_STREAM:
    return MESH__GRPC_UNAVAILABLE;
  case MESH__H2_CANCEL:
    return MESH__GRPC_CANCELLED;
  case MESH__H2_ENHANCE_YOUR_CALM:
    return MESH__GRPC_RESOURCE_EXHAUSTED;
  case 0xcu: /* INADEQUATE_SECURITY */
    return MESH__GRPC_PERMISSION_DENIED;
  default:
    return MESH__GRPC_INTERNAL;
  }
}
