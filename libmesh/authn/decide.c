/* SPDX-License-Identifier: Apache-2.0 */
/* The decision of one request, as Envoy's jwt_authn filter makes it for
 * Istio (requires_any over the issuers, allow_missing): a request without
 * a token in any configured location passes (authz may still require a
 * principal); a token that is present must verify for an issuer configured
 * at that location, else 401.  Pure: keys come from a lookup function, the
 * time is a parameter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authn/authn.h"

void mesh__authn_result_free(mesh__authn_result_t *r) {
  if (!r)
    return;
  free(r->principal);
  cJSON_Delete(r->claims);
  for (size_t i = 0; i < r->nout; i++)
    free(r->out_value[i]);
  memset(r, 0, sizeof *r);
}

/* A location: a header (name + prefix) or a query parameter. */
typedef struct loc {
  const char *name;
  const char *prefix; /* NULL: a query parameter */
} loc_t;

static bool loc_eq(const loc_t *a, const loc_t *b) {
  if ((a->prefix == NULL) != (b->prefix == NULL))
    return false;
  if (!a->prefix)
    return strcmp(a->name, b->name) == 0;
  return strcasecmp(a->name, b->name) == 0 && strcmp(a->prefix, b->prefix) == 0;
}

static bool rule_has(const mesh__authn_rule_t *r, const loc_t *l) {
  for (size_t i = 0; i < r->nhdrs; i++) {
    loc_t h = {r->hdrs[i].name, r->hdrs[i].prefix};
    if (loc_eq(&h, l))
      return true;
  }
  for (size_t i = 0; i < r->nparams; i++) {
    loc_t p = {r->params[i], NULL};
    if (loc_eq(&p, l))
      return true;
  }
  return false;
}

/* The token at l, or NULL. */
static const char *extract(const mesh__authn_input_t *in, const loc_t *l,
                           size_t *len) {
  if (l->prefix) {
    const char *v = in->header ? in->header(l->name, in->ctx) : NULL;
    size_t pn = strlen(l->prefix);
    if (!v || strncmp(v, l->prefix, pn) != 0)
      return NULL; /* Envoy: a value without the prefix carries no token */
    v += pn;
    *len = strlen(v);
    return *len ? v : NULL;
  }
  size_t nn = strlen(l->name);
  const char *q = in->query, *end = q ? q + in->query_len : NULL;
  while (q && q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *e = amp ? amp : end;
    if ((size_t)(e - q) > nn && memcmp(q, l->name, nn) == 0 && q[nn] == '=') {
      *len = (size_t)(e - q - (long)nn - 1);
      return *len ? q + nn + 1 : NULL;
    }
    q = amp ? amp + 1 : NULL;
  }
  return NULL;
}

/* A claim (top level, or nested with "a.b" as Envoy's claim_to_headers)
 * as header text: strings as they are, numbers and booleans printed;
 * anything else, or text with control characters, gives NULL. */
static char *claim_text(const cJSON *claims, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, name);
  if (!v && strchr(name, '.')) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", name);
    v = claims;
    for (char *s = buf, *dot; v && s; s = dot ? dot + 1 : NULL) {
      dot = strchr(s, '.');
      if (dot)
        *dot = '\0';
      v = cJSON_GetObjectItemCaseSensitive(v, s);
    }
  }
  char num[64];
  const char *s = NULL;
  if (cJSON_IsString(v))
    s = v->valuestring;
  else if (cJSON_IsBool(v))
    s = cJSON_IsTrue(v) ? "true" : "false";
  else if (cJSON_IsNumber(v)) {
    mesh__fmt_double(num, sizeof num, v->valuedouble);
    s = num;
  }
  for (const char *p = s; p && *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return NULL;
  return s ? strdup(s) : NULL;
}

static const char *sub_of(const mesh__jwt_t *t) {
  const cJSON *sub = cJSON_GetObjectItemCaseSensitive(t->claims, "sub");
  return cJSON_IsString(sub) ? sub->valuestring : NULL;
}

/* The rule for a token found at l: the one of its issuer; for a JWT-SVID
 * (SPIFFE JWT-SVID 3: "sub" is the SPIFFE ID, "iss" optional) a
 * spiffe_bundle rule also needs the sub in the rule's trust domain, and a
 * token without iss goes to the rule of its trust domain without issuer. */
static const mesh__authn_rule_t *rule_for(const mesh__authn_cfg_t *cfg,
                                          const mesh__jwt_t *t,
                                          const loc_t *l) {
  const char *sub = sub_of(t);
  for (size_t i = 0; i < cfg->n; i++) {
    const mesh__authn_rule_t *r = &cfg->rules[i];
    if (!r->issuer != !t->iss || (t->iss && strcmp(r->issuer, t->iss) != 0) ||
        !rule_has(r, l))
      continue;
    if (r->keysrc != MESH__AUTHN_KEYS_SPIFFE)
      return r;
    size_t n = strlen(r->trust_domain);
    if (sub && strncmp(sub, "spiffe://", 9) == 0 &&
        strncmp(sub + 9, r->trust_domain, n) == 0 && sub[9 + n] == '/')
      return r;
  }
  return NULL;
}

static int accept_token(const mesh__authn_rule_t *r, const loc_t *l,
                        mesh__jwt_t *t, mesh__authn_result_t *out) {
  const char *s = sub_of(t) ? sub_of(t) : "";
  /* Istio's "iss/sub"; a JWT-SVID without iss is its SPIFFE ID */
  const char *iss = t->iss ? t->iss : "";
  size_t n = strlen(iss) + strlen(s) + 2;
  out->principal = malloc(n);
  if (!out->principal)
    return MESH_ERR_NOMEM;
  snprintf(out->principal, n, "%s%s%s", iss, t->iss ? "/" : "", s);
  out->claims = t->claims;
  t->claims = NULL;
  out->authenticated = true;
  out->strip_header = !r->forward && l->prefix ? l->name : NULL;
  for (size_t i = 0; i < r->nout && out->nout < MESH__AUTHN_OUT_MAX; i++) {
    char *v = claim_text(out->claims, r->out[i].claim);
    if (!v)
      continue;
    out->out_name[out->nout] = r->out[i].header;
    out->out_value[out->nout++] = v;
  }
  return MESH_OK;
}

/* The signature, through the cache: a hit for the key set the lookup gives
 * now skips the check; a verified signature is remembered until the
 * token's exp (plus skew: the claims check decides expiry on its own). */
static int check_sig(const mesh__authn_rule_t *r, const mesh__jwt_t *t,
                     const char *tok, size_t len, int64_t now, int64_t skew,
                     mesh__authn_keys_fn keys, void *user,
                     mesh__jwt_cache_t *cache) {
  uint8_t h[32];
  bool hashed = cache && mesh__jws_sha256(tok, len, h) == MESH_OK;
  const mesh__jwks_t *ks = keys(r, false, user);
  if (hashed && ks && mesh__jwt_cache_hit(cache, h, ks->serial, now))
    return MESH__JWT_OK;
  int e = mesh__jwt_check_sig(t, ks);
  /* a kid we do not know may be a rotation: refetch (rate-limited) */
  if (e == MESH__JWT_UNKNOWN_KID || e == MESH__JWT_NO_KEYS) {
    const mesh__jwks_t *again = keys(r, true, user);
    if (again) {
      ks = again;
      e = mesh__jwt_check_sig(t, again);
    }
  }
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(t->claims, "exp");
  if (e == MESH__JWT_OK && hashed && cJSON_IsNumber(exp) &&
      exp->valuedouble < 9e15)
    mesh__jwt_cache_put(cache, h, ks->serial, (int64_t)exp->valuedouble + skew,
                        now);
  return e;
}

/* Verify the token found at l.  @return MESH__JWT_* (OK: out filled). */
static int verify_at(const mesh__authn_cfg_t *cfg, const loc_t *l,
                     const char *tok, size_t len, int64_t now,
                     mesh__authn_keys_fn keys, void *user,
                     mesh__jwt_cache_t *cache, mesh__authn_result_t *out) {
  mesh__jwt_t t;
  int e = mesh__jwt_decode(tok, len, &t);
  if (e != MESH__JWT_OK)
    return e;
  const mesh__authn_rule_t *r = rule_for(cfg, &t, l);
  e = r ? MESH__JWT_OK : MESH__JWT_NO_ISSUER;
  if (e == MESH__JWT_OK)
    e = check_sig(r, &t, tok, len, now, cfg->clock_skew_s, keys, user, cache);
  if (e == MESH__JWT_OK)
    e = mesh__jwt_check_claims(&t, now, cfg->clock_skew_s,
                               (const char *const *)r->audiences, r->naud);
  if (e == MESH__JWT_OK && !out->authenticated &&
      accept_token(r, l, &t, out) != MESH_OK)
    e = MESH__JWT_MALFORMED;
  mesh__jwt_clear(&t);
  return e;
}

int mesh__authn_decide(const mesh__authn_cfg_t *cfg,
                       const mesh__authn_input_t *in, int64_t now_s,
                       mesh__authn_keys_fn keys, void *user,
                       mesh__authn_result_t *out) {
  return mesh__authn_decide_cached(cfg, in, now_s, keys, user, NULL, out);
}

int mesh__authn_decide_cached(const mesh__authn_cfg_t *cfg,
                              const mesh__authn_input_t *in, int64_t now_s,
                              mesh__authn_keys_fn keys, void *user,
                              mesh__jwt_cache_t *cache,
                              mesh__authn_result_t *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; cfg && i < cfg->n; i++) {
    const mesh__authn_rule_t *r = &cfg->rules[i];
    size_t nl = r->nhdrs + r->nparams;
    for (size_t k = 0; k < nl; k++) {
      loc_t l = k < r->nhdrs ? (loc_t){r->hdrs[k].name, r->hdrs[k].prefix}
                             : (loc_t){r->params[k - r->nhdrs], NULL};
      bool seen = false; /* one location, checked once */
      for (size_t j = 0; j < i && !seen; j++)
        seen = rule_has(&cfg->rules[j], &l);
      size_t len = 0;
      const char *tok = seen ? NULL : extract(in, &l, &len);
      if (!tok)
        continue;
      int e = verify_at(cfg, &l, tok, len, now_s, keys, user, cache, out);
      if (e != MESH__JWT_OK) {
        mesh__authn_result_free(out);
        out->err = e;
        return MESH_ERR_DENIED;
      }
    }
  }
  return MESH_OK;
}
