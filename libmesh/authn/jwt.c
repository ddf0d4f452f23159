/* SPDX-License-Identifier: Apache-2.0 */
/* Compact JWS tokens: split, decode, verify, check claims.  Bytes in,
 * verdict out: no I/O, no clock (the caller passes the time), so the
 * fuzzer drives it directly.  Only asymmetric algorithms exist here: "none"
 * and every HS* are refused before a key is looked at, which is what makes
 * alg confusion (an HMAC keyed with an RSA public key) impossible. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "authn/authn.h"

/* By enum mesh__jws_alg: name, key kind, hash bits, PSS. */
static const struct {
  const char *name;
  int kind, bits;
  bool pss;
} algs[MESH__JWS_ALG_COUNT] = {
    [MESH__JWS_RS256] = {"RS256", MESH__JWK_RSA, 256, false},
    [MESH__JWS_PS256] = {"PS256", MESH__JWK_RSA, 256, true},
    [MESH__JWS_ES256] = {"ES256", MESH__JWK_EC256, 256, false},
    [MESH__JWS_ES384] = {"ES384", MESH__JWK_EC384, 384, false},
    [MESH__JWS_RS384] = {"RS384", MESH__JWK_RSA, 384, false},
    [MESH__JWS_RS512] = {"RS512", MESH__JWK_RSA, 512, false},
    [MESH__JWS_PS384] = {"PS384", MESH__JWK_RSA, 384, true},
    [MESH__JWS_PS512] = {"PS512", MESH__JWK_RSA, 512, true},
    [MESH__JWS_ES512] = {"ES512", MESH__JWK_EC521, 512, false},
};

static bool alg_ok(int alg) { return alg > 0 && alg < MESH__JWS_ALG_COUNT; }

int mesh__jws_alg_parse(const char *name) {
  for (int i = 1; i < MESH__JWS_ALG_COUNT; i++)
    if (strcmp(name, algs[i].name) == 0)
      return i;
  return MESH__JWS_NONE;
}

const char *mesh__jws_alg_name(int alg) {
  return alg_ok(alg) ? algs[alg].name : "none";
}

int mesh__jws_alg_kind(int alg) { return alg_ok(alg) ? algs[alg].kind : 0; }
int mesh__jws_alg_hash_bits(int alg) { return alg_ok(alg) ? algs[alg].bits : 0; }
bool mesh__jws_alg_pss(int alg) { return alg_ok(alg) && algs[alg].pss; }

static const char *const err_names[MESH__JWT_ERR_COUNT] = {
    "ok",          "malformed",  "too_large",     "algorithm",
    "no_issuer",   "unknown_kid", "no_keys",      "signature",
    "expired",     "not_yet_valid", "audience"};

const char *mesh__jwt_err_name(int e) {
  return e >= 0 && e < MESH__JWT_ERR_COUNT ? err_names[e] : "unknown";
}

void mesh__jwt_clear(mesh__jwt_t *t) {
  free(t->kid);
  cJSON_Delete(t->claims);
  free(t->sig);
  memset(t, 0, sizeof *t);
}

/* Decode one part into a malloc'd, NUL-terminated buffer. */
static int part(const char *p, size_t n, size_t cap, uint8_t **out,
                size_t *len) {
  if (n == 0)
    return MESH__JWT_MALFORMED;
  if ((n / 4) * 3 + 3 > cap)
    return MESH__JWT_TOO_LARGE;
  uint8_t *b = malloc(n + 1);
  if (!b)
    return MESH__JWT_MALFORMED;
  long w = mesh__b64url_decode(p, n, b);
  if (w <= 0) {
    free(b);
    return MESH__JWT_MALFORMED;
  }
  b[w] = '\0';
  *out = b;
  *len = (size_t)w;
  return MESH__JWT_OK;
}

static cJSON *json_object(const uint8_t *b, size_t n) {
  cJSON *j = mesh__json_parse((const char *)b, n, NULL);
  if (j && !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return NULL;
  }
  return j;
}

/* The JOSE header: alg (supported), kid (a string), no "crit". */
static int header(const uint8_t *b, size_t n, mesh__jwt_t *t) {
  cJSON *h = json_object(b, n);
  if (!h)
    return MESH__JWT_MALFORMED;
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
  const cJSON *kid = cJSON_GetObjectItemCaseSensitive(h, "kid");
  int rc = MESH__JWT_OK;
  if (!cJSON_IsString(alg) || (kid && !cJSON_IsString(kid)) ||
      cJSON_GetObjectItemCaseSensitive(h, "crit")) {
    rc = MESH__JWT_MALFORMED;
  } else {
    t->alg = mesh__jws_alg_parse(alg->valuestring);
    if (t->alg == MESH__JWS_NONE)
      rc = MESH__JWT_ALG;
    else if (kid)
      t->kid = strdup(kid->valuestring);
    if (kid && rc == MESH__JWT_OK && !t->kid)
      rc = MESH__JWT_MALFORMED;
  }
  cJSON_Delete(h);
  return rc;
}

int mesh__jwt_decode(const char *tok, size_t len, mesh__jwt_t *t) {
  memset(t, 0, sizeof *t);
  if (len > MESH__JWT_MAX_TOKEN)
    return MESH__JWT_TOO_LARGE;
  const char *d1 = memchr(tok, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
    return MESH__JWT_MALFORMED;
  uint8_t *hb = NULL, *pb = NULL;
  size_t hn = 0, pn = 0;
  int rc = part(tok, (size_t)(d1 - tok), MESH__JWT_MAX_HEADER, &hb, &hn);
  if (rc == MESH__JWT_OK)
    rc = header(hb, hn, t);
  if (rc == MESH__JWT_OK)
    rc = part(d1 + 1, (size_t)(d2 - d1 - 1), MESH__JWT_MAX_TOKEN, &pb, &pn);
  if (rc == MESH__JWT_OK) {
    t->claims = json_object(pb, pn);
    rc = t->claims ? MESH__JWT_OK : MESH__JWT_MALFORMED;
  }
  if (rc == MESH__JWT_OK)
    rc = part(d2 + 1, len - (size_t)(d2 + 1 - tok), MESH__JWT_MAX_TOKEN,
              &t->sig, &t->sig_len);
  free(hb);
  free(pb);
  if (rc == MESH__JWT_OK) {
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(t->claims, "iss");
    if (iss && !cJSON_IsString(iss))
      rc = MESH__JWT_MALFORMED;
    t->iss = cJSON_IsString(iss) ? iss->valuestring : NULL;
  }
  if (rc != MESH__JWT_OK) {
    mesh__jwt_clear(t);
    return rc;
  }
  t->sig_input = tok;
  t->sig_input_len = (size_t)(d2 - tok);
  return MESH__JWT_OK;
}

static bool key_fits(const mesh__jwt_t *t, const mesh__jwk_t *k) {
  if (t->kid && k->kid && strcmp(t->kid, k->kid) != 0)
    return false;
  if (k->alg != MESH__JWS_NONE && k->alg != t->alg)
    return false;
  return k->kind == mesh__jws_alg_kind(t->alg);
}

int mesh__jwt_check_sig(const mesh__jwt_t *t, const mesh__jwks_t *keys) {
  if (!keys || keys->n == 0)
    return MESH__JWT_NO_KEYS;
  bool candidate = false;
  for (size_t i = 0; i < keys->n; i++) {
    const mesh__jwk_t *k = &keys->v[i];
    if (!key_fits(t, k))
      continue;
    candidate = true;
    if (mesh__jws_verify(t->alg, k->kind, k->key,
                         (const uint8_t *)t->sig_input, t->sig_input_len,
                         t->sig, t->sig_len) == MESH_OK)
      return MESH__JWT_OK;
  }
  return candidate ? MESH__JWT_SIGNATURE : MESH__JWT_UNKNOWN_KID;
}

/* A NumericDate claim: absent (true, *has false), a finite number (true),
 * anything else (false). */
static bool num_claim(const cJSON *c, const char *key, double *v, bool *has) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(c, key);
  *has = j != NULL;
  if (!j)
    return true;
  if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
    return false;
  *v = j->valuedouble;
  return true;
}

static bool aud_listed(const char *a, const char *const *audiences,
                       size_t naud) {
  for (size_t i = 0; i < naud; i++)
    if (strcmp(a, audiences[i]) == 0)
      return true;
  return false;
}

int mesh__jwt_check_claims(const mesh__jwt_t *t, int64_t now_s, int64_t skew,
                           const char *const *audiences, size_t naud) {
  double exp = 0, nbf = 0, iat = 0, now = (double)now_s;
  bool hexp, hnbf, hiat;
  if (!num_claim(t->claims, "exp", &exp, &hexp) ||
      !num_claim(t->claims, "nbf", &nbf, &hnbf) ||
      !num_claim(t->claims, "iat", &iat, &hiat))
    return MESH__JWT_MALFORMED;
  /* jwt_verify_lib: expired when now > exp + skew, early when
   * now + skew < nbf; a future iat counts as early (PyJWT) */
  if (hexp && now > exp + (double)skew)
    return MESH__JWT_EXPIRED;
  if ((hnbf && now + (double)skew < nbf) || (hiat && now + (double)skew < iat))
    return MESH__JWT_NOT_YET_VALID;
  if (naud == 0)
    return MESH__JWT_OK;
  const cJSON *aud = cJSON_GetObjectItemCaseSensitive(t->claims, "aud");
  if (cJSON_IsString(aud))
    return aud_listed(aud->valuestring, audiences, naud) ? MESH__JWT_OK
                                                         : MESH__JWT_AUDIENCE;
  const cJSON *a;
  if (cJSON_IsArray(aud))
    cJSON_ArrayForEach(a, aud) {
      if (cJSON_IsString(a) && aud_listed(a->valuestring, audiences, naud))
        return MESH__JWT_OK;
    }
  return MESH__JWT_AUDIENCE;
}
