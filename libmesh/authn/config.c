/* SPDX-License-Identifier: Apache-2.0 */
/* The "authn" section: Istio's RequestAuthentication jwtRules in libmesh's
 * snake_case, every error reported with its JSON path (all of them, not
 * the first).  Inline JWKS are parsed here, so a bad key set is a config
 * error, not a 401 at run time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authn/authn.h"

static const char *const section_keys[] = {
    "jwt_rules", "clock_skew_s", "jwks_refresh_s", "jwks_fetch_timeout_ms",
    "jwks_refetch_min_s", "token_cache_size", NULL};
static const char *const rule_keys[] = {
    "issuer", "audiences", "jwks_uri", "jwks", "spiffe_bundle", "from_headers",
    "from_params", "output_claim_to_headers", "forward_original_token", NULL};

typedef struct bctx {
  mesh__cfg_t *c;
  bool oom;
  bool build;
} bctx_t;

static char *dup_s(bctx_t *b, const char *s) {
  if (!b->build)
    return NULL;
  char *d = strdup(s);
  b->oom |= d == NULL;
  return d;
}

static void idx(char *out, const char *base, const char *key, int i) {
  mesh__cfg_path(out, base, key);
  size_t len = strlen(out);
  if (len + 16 < MESH__PATH_MAX) /* truncated quietly, like every path */
    snprintf(out + len, MESH__PATH_MAX - len, "[%d]", i);
}

/* An HTTP field name: RFC 9110 token characters. */
static bool token(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
        !((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z'))
      return false;
  return true;
}

/* Array of strings into a malloc'd vector (build only). */
static void strings(bctx_t *b, const cJSON *o, const char *path,
                    const char *key, char ***out, size_t *n) {
  const cJSON *arr;
  if (!mesh__cfg_strings(b->c, o, path, key, &arr) || !arr)
    return;
  size_t k = (size_t)cJSON_GetArraySize(arr);
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    if (!it->valuestring[0]) {
      char p[MESH__PATH_MAX];
      idx(p, path, key, i);
      mesh__cfg_error(b->c, p, "must not be empty");
    }
    i++;
  }
  if (!b->build || k == 0)
    return;
  *out = calloc(k, sizeof **out);
  b->oom |= *out == NULL;
  if (!*out)
    return;
  cJSON_ArrayForEach(it, arr) { (*out)[(*n)++] = dup_s(b, it->valuestring); }
}

/* from_headers: [{name, prefix}] */
static void headers(bctx_t *b, const cJSON *o, const char *path,
                    mesh__authn_rule_t *r) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "from_headers");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "from_headers");
  if (!arr)
    return;
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(b->c, p, "expected an array of {name, prefix}");
    return;
  }
  static const char *const keys[] = {"name", "prefix", NULL};
  size_t k = (size_t)cJSON_GetArraySize(arr);
  if (b->build && k) {
    r->hdrs = calloc(k, sizeof *r->hdrs);
    b->oom |= !r->hdrs;
  }
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    char q[MESH__PATH_MAX], qn[MESH__PATH_MAX];
    idx(q, path, "from_headers", i++);
    if (!mesh__cfg_object(b->c, it, q, keys))
      continue;
    const char *name = NULL, *prefix = "";
    mesh__cfg_string(b->c, it, q, "name", NULL, &name);
    mesh__cfg_string(b->c, it, q, "prefix", "", &prefix);
    mesh__cfg_path(qn, q, "name");
    if (!name || !token(name)) {
      mesh__cfg_error(b->c, qn, "a header name (an HTTP token) is required");
      continue;
    }
    if (r->hdrs) {
      r->hdrs[r->nhdrs].name = dup_s(b, name);
      r->hdrs[r->nhdrs++].prefix = dup_s(b, prefix);
    }
  }
}

/* output_claim_to_headers: [{header, claim}] */
static void outputs(bctx_t *b, const cJSON *o, const char *path,
                    mesh__authn_rule_t *r) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "output_claim_to_headers");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "output_claim_to_headers");
  if (!arr)
    return;
  size_t k = cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0;
  if (!cJSON_IsArray(arr) || k > MESH__AUTHN_OUT_MAX) {
    mesh__cfg_error(b->c, p, "expected an array of at most %d {header, claim}",
                    MESH__AUTHN_OUT_MAX);
    return;
  }
  static const char *const keys[] = {"header", "claim", NULL};
  if (b->build && k) {
    r->out = calloc(k, sizeof *r->out);
    b->oom |= !r->out;
  }
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    char q[MESH__PATH_MAX], qn[MESH__PATH_MAX];
    idx(q, path, "output_claim_to_headers", i++);
    if (!mesh__cfg_object(b->c, it, q, keys))
      continue;
    const char *h = NULL, *cl = NULL;
    mesh__cfg_string(b->c, it, q, "header", NULL, &h);
    mesh__cfg_string(b->c, it, q, "claim", NULL, &cl);
    mesh__cfg_path(qn, q, h && token(h) ? "claim" : "header");
    if (!h || !token(h) || !cl || !cl[0]) {
      mesh__cfg_error(b->c, qn, "required: a header name and a claim name");
      continue;
    }
    if (r->out) {
      r->out[r->nout].header = dup_s(b, h);
      r->out[r->nout++].claim = dup_s(b, cl);
    }
  }
}

static void jwks_skip(size_t i, const char *why, void *user) {
  bctx_t *b = ((void **)user)[0];
  const char *p = ((void **)user)[1];
  char q[MESH__PATH_MAX + 32];
  snprintf(q, sizeof q, "%s.keys[%zu]", p, i);
  /* skipped keys of an inline set are config errors: the operator wrote
   * them, and a silently ignored key is a surprise at 3 a.m. */
  mesh__cfg_error(b->c, q, "key skipped: %s", why);
}

/* Exactly one key source: jwks_uri, jwks (inline text or object),
 * spiffe_bundle. */
static void key_source(bctx_t *b, const cJSON *o, const char *path,
                       mesh__authn_rule_t *r) {
  const cJSON *uri = cJSON_GetObjectItemCaseSensitive(o, "jwks_uri");
  const cJSON *inl = cJSON_GetObjectItemCaseSensitive(o, "jwks");
  const cJSON *td = cJSON_GetObjectItemCaseSensitive(o, "spiffe_bundle");
  if ((uri != NULL) + (inl != NULL) + (td != NULL) != 1) {
    mesh__cfg_error(b->c, path, "exactly one of jwks_uri, jwks, spiffe_bundle is required");
    return;
  }
  char p[MESH__PATH_MAX];
  if (uri) {
    const char *u = NULL;
    mesh__cfg_string(b->c, o, path, "jwks_uri", NULL, &u);
    mesh__cfg_path(p, path, "jwks_uri");
    if (u && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
      mesh__cfg_error(b->c, p, "must be an http:// or https:// URL");
    else if (u) {
      r->keysrc = MESH__AUTHN_KEYS_URI;
      r->jwks_uri = dup_s(b, u);
    }
  } else if (td) {
    const char *t = NULL;
    mesh__cfg_string(b->c, o, path, "spiffe_bundle", NULL, &t);
    mesh__cfg_path(p, path, "spiffe_bundle");
    if (t && (!t[0] || strchr(t, '/') || strchr(t, ':')))
      mesh__cfg_error(b->c, p, "must be a trust domain name (\"example.org\")");
    else if (t) {
      r->keysrc = MESH__AUTHN_KEYS_SPIFFE;
      r->trust_domain = dup_s(b, t);
    }
  } else {
    mesh__cfg_path(p, path, "jwks");
    char *txt = cJSON_IsString(inl) ? NULL : cJSON_PrintUnformatted(inl);
    const char *s = cJSON_IsString(inl) ? inl->valuestring : txt;
    const char *why = "out of memory";
    void *u[2] = {b, p};
    mesh__jwks_t *ks = NULL;
    int rc = s ? mesh__jwks_parse(s, strlen(s), &ks, jwks_skip, u, &why)
               : MESH_ERR_NOMEM;
    if (rc != MESH_OK)
      mesh__cfg_error(b->c, p, "invalid JWKS: %s", why);
    r->keysrc = MESH__AUTHN_KEYS_INLINE;
    if (b->build)
      r->inline_keys = ks;
    else
      mesh__jwks_unref(ks);
    free(txt);
  }
}

static void rule(bctx_t *b, const cJSON *o, const char *path,
                 mesh__authn_rule_t *r) {
  if (!mesh__cfg_object(b->c, o, path, rule_keys))
    return;
  const char *iss = NULL;
  mesh__cfg_string(b->c, o, path, "issuer", NULL, &iss);
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "issuer");
  /* A JWT-SVID need not carry "iss" (SPIFFE JWT-SVID 3): a spiffe_bundle
   * rule without issuer takes the iss-less tokens of its trust domain. */
  bool spiffe = cJSON_GetObjectItemCaseSensitive(o, "spiffe_bundle") != NULL;
  if (iss && !iss[0])
    mesh__cfg_error(b->c, p, "must not be empty");
  else if (!iss && !spiffe)
    mesh__cfg_error(b->c, p, "an issuer is required (optional only with "
                             "spiffe_bundle)");
  else if (iss)
    r->issuer = dup_s(b, iss);
  strings(b, o, path, "audiences", &r->audiences, &r->naud);
  key_source(b, o, path, r);
  headers(b, o, path, r);
  strings(b, o, path, "from_params", &r->params, &r->nparams);
  outputs(b, o, path, r);
  mesh__cfg_bool(b->c, o, path, "forward_original_token", false, &r->forward);
  bool none = !cJSON_GetObjectItemCaseSensitive(o, "from_headers") &&
              !cJSON_GetObjectItemCaseSensitive(o, "from_params");
  if (none && b->build) { /* Istio's defaults */
    r->hdrs = calloc(1, sizeof *r->hdrs);
    r->params = calloc(1, sizeof *r->params);
    b->oom |= !r->hdrs || !r->params;
    if (r->hdrs && r->params) {
      r->hdrs[0].name = dup_s(b, "Authorization");
      r->hdrs[0].prefix = dup_s(b, "Bearer ");
      r->params[0] = dup_s(b, "access_token");
      r->nhdrs = r->nparams = 1;
    }
  }
}

static void rules(bctx_t *b, const cJSON *cfg, const char *path,
                  mesh__authn_cfg_t *a) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(cfg, "jwt_rules");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "jwt_rules");
  if (!arr)
    return;
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(b->c, p, "expected an array of rules");
    return;
  }
  size_t k = (size_t)cJSON_GetArraySize(arr);
  if (b->build && k) {
    a->rules = calloc(k, sizeof *a->rules);
    b->oom |= !a->rules;
  }
  mesh__authn_rule_t scratch;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    char q[MESH__PATH_MAX];
    idx(q, path, "jwt_rules", i);
    mesh__authn_rule_t *r = a->rules ? &a->rules[a->n++] : &scratch;
    memset(&scratch, 0, sizeof scratch);
    rule(b, it, q, r);
    /* an issuer picks its rule: two rules for one issuer are ambiguous */
    const char *iss = NULL;
    const cJSON *is = cJSON_GetObjectItemCaseSensitive(it, "issuer");
    iss = cJSON_IsString(is) ? is->valuestring : NULL;
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(it, "spiffe_bundle");
    int j = 0;
    const cJSON *prev;
    cJSON_ArrayForEach(prev, arr) {
      if (j++ >= i)
        break;
      const cJSON *pi = cJSON_GetObjectItemCaseSensitive(prev, "issuer");
      const cJSON *pt = cJSON_GetObjectItemCaseSensitive(prev, "spiffe_bundle");
      char qi[MESH__PATH_MAX];
      mesh__cfg_path(qi, q, "issuer");
      if (iss && cJSON_IsString(pi) && strcmp(pi->valuestring, iss) == 0) {
        mesh__cfg_error(b->c, qi, "issuer \"%s\" already has a rule", iss);
        break;
      }
      if (!iss && !pi && cJSON_IsString(td) && cJSON_IsString(pt) &&
          strcmp(td->valuestring, pt->valuestring) == 0) {
        mesh__cfg_error(b->c, qi, "trust domain \"%s\" already has a rule "
                        "without issuer", td->valuestring);
        break;
      }
    }
    i++;
  }
}

int mesh__authn_cfg_build(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                          mesh__authn_cfg_t **out) {
  if (out)
    *out = NULL;
  if (!cfg)
    return MESH_OK;
  int nerr = c->nerr;
  if (!mesh__cfg_object(c, cfg, path, section_keys))
    return MESH_ERR_CONFIG;
  mesh__authn_cfg_t *a = calloc(1, sizeof *a);
  if (!a)
    return MESH_ERR_NOMEM;
  bctx_t b = {.c = c, .build = out != NULL};
  int64_t v;
  mesh__cfg_int(c, cfg, path, "clock_skew_s", 0, 3600, MESH__JWT_CLOCK_SKEW_S, &v);
  a->clock_skew_s = v;
  mesh__cfg_int(c, cfg, path, "jwks_refresh_s", 1, 86400 * 7, 300, &v);
  a->refresh_ms = v * 1000;
  mesh__cfg_int(c, cfg, path, "jwks_fetch_timeout_ms", 1, 60000, 5000, &v);
  a->fetch_timeout_ms = v;
  mesh__cfg_int(c, cfg, path, "jwks_refetch_min_s", 0, 3600, 10, &v);
  a->refetch_min_ms = v * 1000;
  mesh__cfg_int(c, cfg, path, "token_cache_size", 0, 1 << 20,
                MESH__JWT_CACHE_SLOTS, &v);
  a->cache_slots = (size_t)v;
  rules(&b, cfg, path, a);
  if (!out || b.oom || c->nerr != nerr) {
    mesh__authn_cfg_free(a);
    return b.oom ? MESH_ERR_NOMEM : c->nerr != nerr ? MESH_ERR_CONFIG : MESH_OK;
  }
  *out = a;
  return MESH_OK;
}

static void free_strs(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

void mesh__authn_cfg_free(mesh__authn_cfg_t *a) {
  if (!a)
    return;
  for (size_t i = 0; i < a->n; i++) {
    mesh__authn_rule_t *r = &a->rules[i];
    free(r->issuer);
    free_strs(r->audiences, r->naud);
    free(r->jwks_uri);
    free(r->trust_domain);
    mesh__jwks_unref(r->inline_keys);
    for (size_t k = 0; k < r->nhdrs; k++) {
      free(r->hdrs[k].name);
      free(r->hdrs[k].prefix);
    }
    free(r->hdrs);
    free_strs(r->params, r->nparams);
    for (size_t k = 0; k < r->nout; k++) {
      free(r->out[k].header);
      free(r->out[k].claim);
    }
    free(r->out);
  }
  free(a->rules);
  free(a);
}
