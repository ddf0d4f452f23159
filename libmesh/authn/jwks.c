/* SPDX-License-Identifier: Apache-2.0 */
/* JWKS documents (RFC 7517) -> immutable, refcounted key sets.  A key the
 * verifier cannot use is skipped with a reason (the caller logs it), as
 * Envoy's jwt_verify_lib does; a set with no usable key is an error. */
#include <stdlib.h>
#include <string.h>

#include "authn/authn.h"

/* Decode a base64url member into a malloc'd buffer.  NULL: absent, not a
 * string, bad base64url or empty. */
static uint8_t *member_b64(const cJSON *o, const char *key, size_t *len) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsString(v))
    return NULL;
  size_t n = strlen(v->valuestring);
  if (n == 0 || n > 4096)
    return NULL;
  uint8_t *buf = malloc(n);
  if (!buf)
    return NULL;
  long w = mesh__b64url_decode(v->valuestring, n, buf);
  if (w <= 0) {
    free(buf);
    return NULL;
  }
  *len = (size_t)w;
  return buf;
}

static const char *str_member(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int rsa_key(const cJSON *o, mesh__jwk_t *k, const char **why) {
  size_t nl = 0, el = 0;
  uint8_t *n = member_b64(o, "n", &nl), *e = member_b64(o, "e", &el);
  int rc = MESH_ERR_PARSE;
  if (!n || !e)
    *why = "RSA key without valid base64url \"n\" and \"e\"";
  else
    rc = mesh__jwk_key_rsa(n, nl, e, el, &k->key, why);
  k->kind = MESH__JWK_RSA;
  free(n);
  free(e);
  return rc;
}

static int ec_key(const cJSON *o, mesh__jwk_t *k, const char **why) {
  const char *crv = str_member(o, "crv");
  static const char *const curves[] = {"P-256", "P-384", "P-521"};
  static const int kinds[] = {MESH__JWK_EC256, MESH__JWK_EC384, MESH__JWK_EC521};
  k->kind = 0;
  for (size_t i = 0; crv && i < 3; i++)
    if (strcmp(crv, curves[i]) == 0)
      k->kind = kinds[i];
  if (k->kind == 0) {
    *why = "EC key on an unsupported curve (P-256, P-384 and P-521 are)";
    return MESH_ERR_PARSE;
  }
  size_t xl = 0, yl = 0;
  uint8_t *x = member_b64(o, "x", &xl), *y = member_b64(o, "y", &yl);
  int rc = MESH_ERR_PARSE;
  if (!x || !y)
    *why = "EC key without valid base64url \"x\" and \"y\"";
  else
    rc = mesh__jwk_key_ec(k->kind, x, xl, y, yl, &k->key, why);
  free(x);
  free(y);
  return rc;
}

/* One key; MESH_ERR_PARSE (why set) when it must be skipped. */
static int one_key(const cJSON *o, mesh__jwk_t *k, const char **why) {
  if (!cJSON_IsObject(o)) {
    *why = "not an object";
    return MESH_ERR_PARSE;
  }
  const char *kty = str_member(o, "kty"), *use = str_member(o, "use");
  const char *alg = str_member(o, "alg");
  const cJSON *kid = cJSON_GetObjectItemCaseSensitive(o, "kid");
  /* "jwt-svid": a SPIFFE bundle's JWT authority (SPIFFE Trust Domain and
   * Bundle, section 4.2.1); "x509-svid" keys and "enc" are skipped */
  if (use && strcmp(use, "sig") != 0 && strcmp(use, "jwt-svid") != 0) {
    *why = "\"use\" is not \"sig\" or \"jwt-svid\"";
    return MESH_ERR_PARSE;
  }
  if (kid && !cJSON_IsString(kid)) {
    *why = "\"kid\" is not a string";
    return MESH_ERR_PARSE;
  }
  k->alg = alg ? mesh__jws_alg_parse(alg) : MESH__JWS_NONE;
  if (alg && k->alg == MESH__JWS_NONE) {
    *why = "unsupported \"alg\"";
    return MESH_ERR_PARSE;
  }
  int rc;
  if (kty && strcmp(kty, "RSA") == 0)
    rc = rsa_key(o, k, why);
  else if (kty && strcmp(kty, "EC") == 0)
    rc = ec_key(o, k, why);
  else {
    *why = "unsupported \"kty\" (RSA and EC are)";
    return MESH_ERR_PARSE;
  }
  if (rc != MESH_OK)
    return rc;
  if (k->alg != MESH__JWS_NONE && mesh__jws_alg_kind(k->alg) != k->kind) {
    *why = "\"alg\" does not fit the key type or curve";
    return MESH_ERR_PARSE;
  }
  if (kid) {
    k->kid = strdup(kid->valuestring);
    if (!k->kid)
      return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

static void jwk_clear(mesh__jwk_t *k) {
  free(k->kid);
  mesh__jwk_key_free(k->key);
  memset(k, 0, sizeof *k);
}

int mesh__jwks_parse(const char *buf, size_t len, mesh__jwks_t **out,
                     mesh__jwks_skip_fn skip, void *user, const char **why) {
  *out = NULL;
  const char *dummy;
  why = why ? why : &dummy;
  if (len > MESH__JWKS_MAX_BYTES) {
    *why = "JWKS larger than 1 MiB";
    return MESH_ERR_PARSE;
  }
  cJSON *root = mesh__json_parse(buf, len, NULL);
  const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
  if (!cJSON_IsObject(root) || !cJSON_IsArray(keys)) {
    cJSON_Delete(root);
    *why = "not a JWKS (a JSON object with a \"keys\" array)";
    return MESH_ERR_PARSE;
  }
  size_t nk = (size_t)cJSON_GetArraySize(keys);
  mesh__jwks_t *s = calloc(1, sizeof *s);
  mesh__jwk_t *v = calloc(nk ? nk : 1, sizeof *v);
  if (!s || !v) {
    free(s);
    free(v);
    cJSON_Delete(root);
    return MESH_ERR_NOMEM;
  }
  s->v = v;
  atomic_init(&s->refs, 1);
  static _Atomic uint64_t serials;
  s->serial = atomic_fetch_add(&serials, 1) + 1;
  size_t i = 0;
  const cJSON *o;
  cJSON_ArrayForEach(o, keys) {
    const char *r = "more than 64 keys";
    int rc = MESH_ERR_PARSE;
    if (s->n < MESH__JWKS_MAX_KEYS)
      rc = one_key(o, &v[s->n], &r);
    if (rc == MESH_OK)
      s->n++;
    else {
      jwk_clear(&v[s->n]);
      if (rc == MESH_ERR_NOMEM) {
        cJSON_Delete(root);
        mesh__jwks_unref(s);
        return rc;
      }
      if (skip)
        skip(i, r, user);
    }
    i++;
  }
  cJSON_Delete(root);
  if (s->n == 0) {
    mesh__jwks_unref(s);
    *why = "no usable key in the JWKS";
    return MESH_ERR_PARSE;
  }
  *out = s;
  return MESH_OK;
}

void mesh__jwks_ref(mesh__jwks_t *s) {
  if (s)
    atomic_fetch_add(&s->refs, 1);
}

void mesh__jwks_unref(mesh__jwks_t *s) {
  if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  for (size_t i = 0; i < s->n; i++)
    jwk_clear(&s->v[i]);
  free(s->v);
  free(s);
}
