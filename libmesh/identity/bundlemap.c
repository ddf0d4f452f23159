/* SPDX-License-Identifier: Apache-2.0 */
/* SPIFFE trust bundle maps (gRFC A87, the file_watcher certificate
 * provider's spiffe_trust_bundle_map_file): trust domain -> SPIFFE bundle
 * (a JWK set whose "x509-svid" keys carry the X.509 authorities in x5c),
 * parsed into DER bundles that mesh__creds_load() checks like any other. */
#include "identity/pemfile.h"

#include <stdlib.h>
#include <string.h>


void mesh__bundle_map_free(mesh__bundle_map_t *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->n; i++) {
    free((char *)m->v[i].td);
    free((uint8_t *)m->v[i].der);
  }
  free(m->v);
  m->v = NULL;
  m->n = 0;
}

/* Append the DER of one x5c entry (standard base64, RFC 7517 4.7) to
 * *der. */
static int add_x5c(const cJSON *s, uint8_t **der, size_t *len,
                   const char *what, mesh_status_t *st) {
  if (!cJSON_IsString(s) || !*s->valuestring)
    return mesh__fail(st, MESH_ERR_PARSE, "%s: x5c: expected one base64 "
                      "certificate", what);
  size_t in = strlen(s->valuestring);
  uint8_t *p = realloc(*der, *len + in / 4 * 3 + 3);
  if (!p)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  *der = p;
  long got = mesh__b64_dec_into(s->valuestring, in, MESH__B64_PAD, p + *len);
  if (got <= 0)
    return mesh__fail(st, MESH_ERR_PARSE, "%s: x5c: not base64", what);
  *len += (size_t)got;
  return MESH_OK;
}

/* The X.509 authorities of one SPIFFE bundle (a JWK set). */
static int one_bundle(const cJSON *b, const char *what, uint8_t **der,
                      size_t *len, mesh_status_t *st) {
  const cJSON *keys = cJSON_GetObjectItemCaseSensitive(b, "keys");
  if (!cJSON_IsObject(b) || !cJSON_IsArray(keys))
    return mesh__fail(st, MESH_ERR_PARSE, "%s: expected a JWK set with "
                      "\"keys\"", what);
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(b, "spiffe_sequence");
  if (seq && (!cJSON_IsNumber(seq) || seq->valuedouble < 0))
    return mesh__fail(st, MESH_ERR_PARSE, "%s: spiffe_sequence: expected "
                      "a non-negative number", what);
  const cJSON *k;
  cJSON_ArrayForEach(k, keys) {
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(k, "use");
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(k, "kty");
    if (!cJSON_IsObject(k) || !cJSON_IsString(use) || !cJSON_IsString(kty))
      return mesh__fail(st, MESH_ERR_PARSE, "%s: every key needs \"kty\" "
                        "and \"use\"", what);
    if (strcmp(use->valuestring, "x509-svid") != 0)
      continue; /* JWT authorities: not for X.509 */
    const cJSON *x5c = cJSON_GetObjectItemCaseSensitive(k, "x5c");
    if (!cJSON_IsArray(x5c) || cJSON_GetArraySize(x5c) != 1)
      return mesh__fail(st, MESH_ERR_PARSE, "%s: an x509-svid key holds "
                        "exactly one certificate in \"x5c\"", what);
    int rc = add_x5c(x5c->child, der, len, what, st);
    if (rc != MESH_OK)
      return rc;
  }
  return MESH_OK;
}

static int add_bundle(mesh__bundle_map_t *out, const cJSON *b,
                      const char *origin, mesh_status_t *st) {
  char what[512];
  snprintf(what, sizeof what, "%.200s: trust_domains.%.255s", origin,
           b->string);
  mesh_status_t why;
  int rc = mesh__spiffe_td_validate(b->string, &why);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "%s: %s", what, why.message);
  uint8_t *der = NULL;
  size_t len = 0;
  rc = one_bundle(b, what, &der, &len, st);
  if (rc != MESH_OK || len == 0) {
    free(der);
    return rc; /* no X.509 authority: the trust domain is left out */
  }
  char *td = mesh__strdup(b->string);
  if (!td) {
    free(der);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  out->v[out->n++] = (mesh__der_bundle_t){td, der, len};
  return MESH_OK;
}

int mesh__bundle_map_parse(const char *text, size_t len, const char *origin,
                           mesh__bundle_map_t *out, mesh_status_t *st) {
  memset(out, 0, sizeof *out);
  mesh__json_err_t e;
  cJSON *doc = mesh__json_parse(text, len, &e);
  if (!doc)
    return mesh__fail(st, MESH_ERR_PARSE, "%s: %s", origin, e.message);
  const cJSON *tds = cJSON_GetObjectItemCaseSensitive(doc, "trust_domains");
  int rc = MESH_OK;
  if (!cJSON_IsObject(doc) || !cJSON_IsObject(tds))
    rc = mesh__fail(st, MESH_ERR_PARSE, "%s: expected {\"trust_domains\": "
                    "{...}} (a SPIFFE trust bundle map)", origin);
  size_t n = rc == MESH_OK ? (size_t)cJSON_GetArraySize(tds) : 0;
  if (rc == MESH_OK)
    out->v = calloc(n ? n : 1, sizeof *out->v);
  if (rc == MESH_OK && !out->v)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  const cJSON *b;
  if (rc == MESH_OK) {
    cJSON_ArrayForEach(b, tds) {
      rc = add_bundle(out, b, origin, st);
      if (rc != MESH_OK)
        break;
    }
  }
  cJSON_Delete(doc);
  if (rc != MESH_OK)
    mesh__bundle_map_free(out);
  return rc;
}

int mesh__bundle_map_load(const char *path, mesh__bundle_map_t *out,
                          mesh_status_t *st) {
  memset(out, 0, sizeof *out);
  unsigned char *buf;
  size_t len;
  int rc = mesh__pem_read(path, &buf, &len, st);
  if (rc == MESH_ERR_PEM) /* empty or too large: the reader says which */
    rc = MESH_ERR_PARSE;
  if (rc != MESH_OK)
    return rc;
  rc = mesh__bundle_map_parse((const char *)buf, len - 1, path, out, st);
  free(buf);
  return rc;
}
