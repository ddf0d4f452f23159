/* SPDX-License-Identifier: Apache-2.0 */
/* Workload API messages (protobuf-c, generated from proto/workload.proto at
 * build time) to what identity takes.  Pure: no I/O; the spec's rules:
 * an X509SVID with a field at its default value is discarded with an
 * error, federated bundle keys are trust domain SPIFFE IDs. */
#include "workload/workload.h"

#include <stdlib.h>
#include <string.h>

#include "workload/proto/workload.pb-c.h"

int mesh__wl_td_key(const char *key, char *out, size_t len) {
  if (!key)
    return MESH_ERR_PARSE;
  if (!strncmp(key, "spiffe://", 9))
    key += 9;
  mesh_status_t st;
  if (strlen(key) >= len || mesh__spiffe_td_validate(key, &st) != MESH_OK)
    return MESH_ERR_PARSE;
  mesh__strlcpy(out, key, len);
  return MESH_OK;
}

void mesh__wl_x509_free(mesh__wl_x509_t *x) {
  if (x->resp)
    x509_svidresponse__free_unpacked(x->resp, NULL);
  free(x->bundles);
  free(x->tds);
  memset(x, 0, sizeof *x);
}

static const X509SVID *pick(const X509SVIDResponse *r, const char *hint,
                            mesh_status_t *st) {
  for (size_t i = 0; i < r->n_svids; i++) {
    const X509SVID *s = r->svids[i];
    if (!s->spiffe_id || !*s->spiffe_id || !s->x509_svid.len ||
        !s->x509_svid_key.len || !s->bundle.len) {
      mesh__fail(st, MESH_ERR_PARSE,
                 "X509SVID #%zu has a field at its default value (the spec "
                 "requires spiffe_id, x509_svid, x509_svid_key, bundle)",
                 i);
      return NULL;
    }
  }
  for (size_t i = 0; i < r->n_svids; i++)
    if (!hint || (r->svids[i]->hint && !strcmp(r->svids[i]->hint, hint)))
      return r->svids[i];
  if (!r->n_svids)
    mesh__fail(st, MESH_ERR_NOT_FOUND, "no SVID received");
  else
    mesh__fail(st, MESH_ERR_NOT_FOUND,
               "no SVID with hint \"%s\" among the %zu received", hint,
               r->n_svids);
  return NULL;
}

/* Own trust domain first (from the SVID's bundle), then the federated
 * ones, skipping a second copy of the own one. */
static int bundles(mesh__wl_x509_t *x, const X509SVIDResponse *r,
                   const X509SVID *s, mesh_status_t *st) {
  size_t n = 1 + r->n_federated_bundles;
  x->bundles = calloc(n, sizeof *x->bundles);
  x->tds = calloc(n, sizeof *x->tds);
  if (!x->bundles || !x->tds)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  char own[MESH_TRUST_DOMAIN_MAX + 1];
  if (mesh_spiffe_id_parse(s->spiffe_id, own, sizeof own, NULL, 0, st) !=
      MESH_OK)
    return MESH_ERR_PARSE;
  mesh__strlcpy(x->tds[0], own, sizeof x->tds[0]);
  x->bundles[0] = (mesh__der_bundle_t){x->tds[0], s->bundle.data,
                                       s->bundle.len};
  size_t k = 1;
  for (size_t i = 0; i < r->n_federated_bundles; i++) {
    const X509SVIDResponse__FederatedBundlesEntry *e =
        r->federated_bundles[i];
    if (mesh__wl_td_key(e->key, x->tds[k], sizeof x->tds[k]) != MESH_OK)
      return mesh__fail(st, MESH_ERR_PARSE,
                        "federated bundle key \"%.200s\" is not a trust "
                        "domain",
                        e->key ? e->key : "");
    if (!strcmp(x->tds[k], own))
      continue;
    x->bundles[k] = (mesh__der_bundle_t){x->tds[k], e->value.data,
                                         e->value.len};
    k++;
  }
  x->der.bundles = x->bundles;
  x->der.nbundles = k;
  return MESH_OK;
}

int mesh__wl_x509_decode(const uint8_t *msg, size_t len, const char *hint,
                         const char *origin, mesh__wl_x509_t *x,
                         mesh_status_t *st) {
  memset(x, 0, sizeof *x);
  X509SVIDResponse *r = x509_svidresponse__unpack(NULL, len, msg);
  if (!r)
    return mesh__fail(st, MESH_ERR_PARSE,
                      "malformed X509SVIDResponse (%zu bytes)", len);
  x->resp = r;
  x->nsvids = r->n_svids;
  const X509SVID *s = pick(r, hint, st);
  if (!s) {
    int rc = st ? st->code : MESH_ERR_PARSE;
    mesh__wl_x509_free(x);
    return rc;
  }
  int rc = bundles(x, r, s, st);
  if (rc != MESH_OK) {
    mesh__wl_x509_free(x);
    return rc;
  }
  x->id = s->spiffe_id;
  x->hint = s->hint && *s->hint ? s->hint : NULL;
  x->der.origin = origin;
  x->der.chain = s->x509_svid.data;
  x->der.chain_len = s->x509_svid.len;
  x->der.key = s->x509_svid_key.data;
  x->der.key_len = s->x509_svid_key.len;
  return MESH_OK;
}

int mesh__wl_jwt_bundles_decode(const uint8_t *msg, size_t len,
                                mesh__jwt_bundles_t **out,
                                mesh_status_t *st) {
  *out = NULL;
  JWTBundlesResponse *r = jwtbundles_response__unpack(NULL, len, msg);
  if (!r)
    return mesh__fail(st, MESH_ERR_PARSE, "malformed JWTBundlesResponse");
  mesh__jwt_bundles_t *b = mesh__jwt_bundles_new(r->n_bundles);
  int rc = b ? MESH_OK : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  for (size_t i = 0; rc == MESH_OK && i < r->n_bundles; i++) {
    const JWTBundlesResponse__BundlesEntry *e = r->bundles[i];
    if (mesh__wl_td_key(e->key, b->v[i].td, sizeof b->v[i].td) != MESH_OK) {
      rc = mesh__fail(st, MESH_ERR_PARSE,
                      "JWT bundle key \"%.200s\" is not a trust domain",
                      e->key ? e->key : "");
      break;
    }
    b->v[i].jwks = malloc(e->value.len + 1);
    if (!b->v[i].jwks) {
      rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
      break;
    }
    if (e->value.len)
      memcpy(b->v[i].jwks, e->value.data, e->value.len);
    b->v[i].jwks[e->value.len] = '\0';
    b->v[i].jwks_len = e->value.len;
  }
  jwtbundles_response__free_unpacked(r, NULL);
  if (rc != MESH_OK) {
    mesh__jwt_bundles_release(b);
    return rc;
  }
  *out = b;
  return MESH_OK;
}

int mesh__wl_jwt_request(const char *audience, uint8_t **out, size_t *len) {
  JWTSVIDRequest req = JWTSVIDREQUEST__INIT;
  char *aud[1] = {(char *)audience};
  req.n_audience = 1;
  req.audience = aud;
  *len = jwtsvidrequest__get_packed_size(&req);
  *out = malloc(*len ? *len : 1);
  if (!*out)
    return MESH_ERR_NOMEM;
  jwtsvidrequest__pack(&req, *out);
  return MESH_OK;
}

int mesh__wl_jwt_svid_decode(const uint8_t *msg, size_t len, const char *hint,
                             char **token, char *id, size_t idlen,
                             mesh_status_t *st) {
  *token = NULL;
  JWTSVIDResponse *r = jwtsvidresponse__unpack(NULL, len, msg);
  if (!r)
    return mesh__fail(st, MESH_ERR_PARSE, "malformed JWTSVIDResponse");
  int rc = mesh__fail(st, MESH_ERR_NOT_FOUND,
                      hint ? "no JWT-SVID with hint \"%s\"" : "no JWT-SVID%s",
                      hint ? hint : "");
  for (size_t i = 0; i < r->n_svids; i++) {
    const JWTSVID *s = r->svids[i];
    if (hint && (!s->hint || strcmp(s->hint, hint)))
      continue;
    if (!s->svid || !*s->svid || !s->spiffe_id) {
      rc = mesh__fail(st, MESH_ERR_PARSE, "JWTSVID without a token");
      break;
    }
    *token = mesh__strdup(s->svid);
    mesh__strlcpy(id, s->spiffe_id, idlen);
    rc = *token ? MESH_OK : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    if (rc == MESH_OK)
      mesh__ok(st);
    break;
  }
  jwtsvidresponse__free_unpacked(r, NULL);
  return rc;
}

int mesh__wl_validate_request(const char *audience, const char *token,
                              uint8_t **out, size_t *len) {
  ValidateJWTSVIDRequest req = VALIDATE_JWTSVIDREQUEST__INIT;
  req.audience = (char *)audience;
  req.svid = (char *)token;
  *len = validate_jwtsvidrequest__get_packed_size(&req);
  *out = malloc(*len ? *len : 1);
  if (!*out)
    return MESH_ERR_NOMEM;
  validate_jwtsvidrequest__pack(&req, *out);
  return MESH_OK;
}

int mesh__wl_validate_decode(const uint8_t *msg, size_t len, char *id,
                             size_t idlen, cJSON **claims, mesh_status_t *st) {
  if (claims)
    *claims = NULL;
  ValidateJWTSVIDResponse *r = validate_jwtsvidresponse__unpack(NULL, len, msg);
  if (!r)
    return mesh__fail(st, MESH_ERR_PARSE, "malformed ValidateJWTSVIDResponse");
  int rc = MESH_OK;
  if (!r->spiffe_id || mesh_spiffe_id_validate(r->spiffe_id, st) != MESH_OK)
    rc = mesh__fail(st, MESH_ERR_PARSE,
                    "ValidateJWTSVIDResponse without a valid SPIFFE ID");
  else if (strlen(r->spiffe_id) >= idlen)
    rc = mesh__fail(st, MESH_ERR_BUFFER, "SPIFFE ID of %zu bytes does not fit",
                    strlen(r->spiffe_id));
  else
    mesh__strlcpy(id, r->spiffe_id, idlen);
  if (rc == MESH_OK && claims &&
      mesh__wl_struct_json(r->claims.data, r->claims.len, claims) != MESH_OK)
    rc = mesh__fail(st, MESH_ERR_PARSE,
                    "ValidateJWTSVIDResponse: malformed claims (Struct)");
  validate_jwtsvidresponse__free_unpacked(r, NULL);
  return rc;
}

void mesh__wl_bundles_free(mesh__wl_bundles_t *b) {
  if (b->resp)
    x509_bundles_response__free_unpacked(b->resp, NULL);
  free(b->v);
  free(b->tds);
  memset(b, 0, sizeof *b);
}

int mesh__wl_x509_bundles_decode(const uint8_t *msg, size_t len,
                                 mesh__wl_bundles_t *out, mesh_status_t *st) {
  memset(out, 0, sizeof *out);
  X509BundlesResponse *r = x509_bundles_response__unpack(NULL, len, msg);
  if (!r)
    return mesh__fail(st, MESH_ERR_PARSE, "malformed X509BundlesResponse");
  out->resp = r;
  if (r->n_bundles == 0) {
    mesh__wl_bundles_free(out);
    return mesh__fail(st, MESH_ERR_PARSE,
                      "X509BundlesResponse without bundles (the spec "
                      "requires at least the own trust domain's)");
  }
  out->v = calloc(r->n_bundles, sizeof *out->v);
  out->tds = calloc(r->n_bundles, sizeof *out->tds);
  int rc = out->v && out->tds
               ? MESH_OK
               : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  for (size_t i = 0; rc == MESH_OK && i < r->n_bundles; i++) {
    const X509BundlesResponse__BundlesEntry *e = r->bundles[i];
    if (mesh__wl_td_key(e->key, out->tds[i], sizeof out->tds[i]) != MESH_OK)
      rc = mesh__fail(st, MESH_ERR_PARSE,
                      "X.509 bundle key \"%.200s\" is not a trust domain",
                      e->key ? e->key : "");
    else if (e->value.len == 0)
      rc = mesh__fail(st, MESH_ERR_PARSE, "empty X.509 bundle of \"%s\"",
                      out->tds[i]);
    for (size_t k = 0; rc == MESH_OK && k < i; k++)
      if (!strcmp(out->tds[k], out->tds[i]))
        rc = mesh__fail(st, MESH_ERR_PARSE, "trust domain \"%s\" twice",
                        out->tds[i]);
    if (rc == MESH_OK)
      out->v[i] = (mesh__der_bundle_t){out->tds[i], e->value.data, e->value.len};
  }
  if (rc != MESH_OK) {
    mesh__wl_bundles_free(out);
    return rc;
  }
  out->n = r->n_bundles;
  return MESH_OK;
}
