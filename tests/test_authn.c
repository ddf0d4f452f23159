/* SPDX-License-Identifier: Apache-2.0 */
/* authn: strict base64url, JWKS parsing, the token table minted by an
 * independent implementation (Debian python3-jwt) with PyJWT's own verdict
 * compared to ours, the "authn" config, and the whole path with real peers:
 * a JWKS served by python's http.server, a libmesh HTTP server with
 * RequestAuthentication + AuthorizationPolicy, curl as the client. */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "authn/authn.h"
#include "authz/authz.h"
#include "core/core.h"
#include "http/http.h"
#include "mesh/metrics.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ISS "https://issuer.example"
#define AUD "aud1"

static const char *peer_py(void) {
  static char p[1024];
  const char *src = getenv("srcdir");
  snprintf(p, sizeof p, "%s/tests/test_authn_peer.py", src ? src : "..");
  return p;
}

/* Mint keys and tokens once per process (th_tmpdir()/jwt). */
static const char *minted(void) {
  static char dir[512];
  if (dir[0])
    return dir;
  snprintf(dir, sizeof dir, "%s", th_path("jwt"));
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' mint '%s' '%s' '%s'",
           peer_py(), dir, ISS, AUD);
  if (th_sh(cmd) != 0)
    dir[0] = '\0';
  return dir;
}

static char *minted_file(const char *name, size_t *len) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", minted(), name);
  return th_slurp(p, len);
}

static const char *token_named(const cJSON *rows, const char *name) {
  const cJSON *row;
  cJSON_ArrayForEach(row, rows) {
    if (strcmp(cJSON_GetObjectItem(row, "name")->valuestring, name) == 0)
      return cJSON_GetObjectItem(row, "token")->valuestring;
  }
  return NULL;
}

/* ---- base64url -------------------------------------------------------------------- */

static void test_mesh__b64url_decode(void) {
  struct {
    const char *in;
    long want; /* -1: refused */
    const char *out;
  } cases[] = {
      {"", 0, ""},         {"YQ", 1, "a"},     {"YWI", 2, "ab"},
      {"YWJj", 3, "abc"},  {"YQ==", -1, NULL}, {"YR", -1, NULL}, /* bits */
      {"Y", -1, NULL},     {"YW+j", -1, NULL}, {"YW/j", -1, NULL},
      {"YW j", -1, NULL},  {"_-8", 2, "\xff\xef"},
  };
  for (size_t i = 0; i < N(cases); i++) {
    uint8_t out[16];
    long n = mesh__b64url_decode(cases[i].in, strlen(cases[i].in), out);
    CU_ASSERT_EQUAL(n, cases[i].want);
    if (n > 0 && cases[i].out)
      CU_ASSERT_EQUAL(memcmp(out, cases[i].out, (size_t)n), 0);
  }
}

/* ---- JWKS ----------------------------------------------------------------------- */

static int nskip;
static char skips[512];
static void on_skip(size_t i, const char *why, void *user) {
  (void)user;
  nskip++;
  size_t n = strlen(skips);
  snprintf(skips + n, sizeof skips - n, "%zu:%s;", i, why);
}

static void test_mesh__jwks_parse(void) {
  size_t len;
  char *bad = minted_file("jwks_bad.json", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
  mesh__jwks_t *ks = NULL;
  const char *why = NULL;
  nskip = 0;
  skips[0] = '\0';
  CU_ASSERT_EQUAL(mesh__jwks_parse(bad, len, &ks, on_skip, NULL, &why), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ks);
  CU_ASSERT_EQUAL(ks->n, 1); /* only the good rsa1 */
  CU_ASSERT_STRING_EQUAL(ks->v[0].kid, "rsa1");
  CU_ASSERT_EQUAL(nskip, 4);
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "0:RSA modulus shorter than 2048 bits"));
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "1:EC point not on the curve"));
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "2:unsupported \"kty\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "3:\"use\" is not \"sig\""));
  mesh__jwks_unref(ks);
  free(bad);
  struct {
    const char *doc;
    const char *why;
  } errs[] = {
      {"", "not a JWKS"},
      {"[]", "not a JWKS"},
      {"{\"keys\":{}}", "not a JWKS"},
      {"{\"keys\":[],\"keys\":[]}", "not a JWKS"}, /* duplicate key */
      {"{\"keys\":[]}", "no usable key"},
      {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB=\",\"e\":\"AQAB\"}]}",
       "no usable key"},
  };
  for (size_t i = 0; i < N(errs); i++) {
    why = NULL;
    CU_ASSERT_EQUAL(mesh__jwks_parse(errs[i].doc, strlen(errs[i].doc), &ks,
                                     NULL, NULL, &why),
                    MESH_ERR_PARSE);
    CU_ASSERT_PTR_NULL(ks);
    CU_ASSERT(why && strstr(why, errs[i].why));
  }
}

/* ---- the token table (pure decision, inline keys) ------------------------------- */

typedef struct hdrs1 {
  const char *name, *value;
} hdrs1_t;

static const char *get1(const char *name, void *ctx) {
  hdrs1_t *h = ctx;
  return h->name && strcasecmp(h->name, name) == 0 ? h->value : NULL;
}

static const mesh__jwks_t *inline_keys(const mesh__authn_rule_t *r,
                                       bool refetch, void *user) {
  (void)user;
  return refetch ? NULL : r->inline_keys;
}

static mesh__authn_cfg_t *cfg_inline(const char *jwks_file) {
  size_t len;
  char *jwks = minted_file(jwks_file, &len);
  if (!jwks)
    return NULL;
  cJSON *doc = cJSON_CreateObject();
  cJSON *rules = cJSON_AddArrayToObject(doc, "jwt_rules");
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "issuer", ISS);
  cJSON *auds = cJSON_AddArrayToObject(r, "audiences");
  cJSON_AddItemToArray(auds, cJSON_CreateString(AUD));
  cJSON_AddStringToObject(r, "jwks", jwks);
  cJSON *out = cJSON_AddArrayToObject(r, "output_claim_to_headers");
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "header", "x-jwt-role");
  cJSON_AddStringToObject(o, "claim", "nested.role");
  cJSON_AddItemToArray(out, o);
  cJSON_AddItemToArray(rules, r);
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__authn_cfg_t *cfg = NULL;
  int rc = mesh__authn_cfg_build(&c, doc, "authn", &cfg);
  if (rc != MESH_OK)
    fprintf(stderr, "authn config: %s\n", st.message);
  cJSON_Delete(doc);
  free(jwks);
  return cfg;
}

/* Why we expect each refusal (the names of tests/test_authn_peer.py). */
static const struct {
  const char *name, *err;
} reasons[] = {
    {"expired", "expired"},
    {"nbf_future", "not_yet_valid"},
    {"iat_future", "not_yet_valid"},
    {"exp_not_number", "malformed"},
    {"wrong_issuer", "no_issuer"},
    {"wrong_audience", "audience"},
    {"no_audience", "audience"},
    {"bad_signature", "signature"},
    {"es256_bad_signature", "signature"},
    {"es512_bad_signature", "signature"},
    {"ps512_bad_signature", "signature"},
    {"alg_none", "algorithm"},
    {"alg_none_with_sig", "algorithm"},
    {"hs256_rsa_public_key", "algorithm"},
    {"unknown_kid", "unknown_kid"},
    {"ec_key_rs256_header", "unknown_kid"},
    {"es256_der_length_sig", "signature"},
    {"malformed_b64_header", "malformed"},
    {"malformed_json_header", "malformed"},
    {"payload_not_object", "malformed"},
    {"two_parts", "malformed"},
    {"four_parts", "malformed"},
    {"padded_b64", "malformed"},
    {"duplicate_header_key", "malformed"},
    {"oversized_token", "too_large"},
};

static const char *reason_of(const char *name) {
  for (size_t i = 0; i < N(reasons); i++)
    if (strcmp(reasons[i].name, name) == 0)
      return reasons[i].err;
  return NULL;
}

static void test_mesh__authn_decide_pyjwt_table(void) {
  size_t len;
  char *doc = minted_file("tokens.json", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  mesh__authn_cfg_t *cfg = cfg_inline("jwks.json");
  CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
  int n = 0, agree = 0, differ = 0;
  const cJSON *row;
  cJSON_ArrayForEach(row, rows) {
    const char *name = cJSON_GetObjectItem(row, "name")->valuestring;
    const char *tok = cJSON_GetObjectItem(row, "token")->valuestring;
    bool py = cJSON_IsTrue(cJSON_GetObjectItem(row, "pyjwt"));
    bool diff = cJSON_IsString(cJSON_GetObjectItem(row, "differs"));
    char bearer[32768];
    snprintf(bearer, sizeof bearer, "Bearer %s", tok);
    hdrs1_t h = {"Authorization", bearer};
    mesh__authn_input_t in = {.header = get1, .ctx = &h};
    mesh__authn_result_t res;
    int rc = mesh__authn_decide(cfg, &in, (int64_t)time(NULL), inline_keys,
                                NULL, &res);
    bool ours = rc == MESH_OK && res.authenticated;
    n++;
    if (diff) { /* stricter than PyJWT on purpose: we refuse */
      differ++;
      CU_ASSERT(py && !ours);
    } else if (ours == py) {
      agree++;
    } else {
      fprintf(stderr, "token %s: pyjwt %d libmesh %d (%s)\n", name, py, ours,
              mesh__jwt_err_name(res.err));
      CU_FAIL("verdict differs from PyJWT");
    }
    const char *want = reason_of(name);
    if (!ours && want && strcmp(mesh__jwt_err_name(res.err), want) != 0) {
      fprintf(stderr, "token %s: refused as %s, expected %s\n", name,
              mesh__jwt_err_name(res.err), want);
      CU_FAIL("refusal reason");
    }
    if (ours) {
      CU_ASSERT_STRING_EQUAL(res.principal,
                             strcmp(name, "es256_svid") == 0
                                 ? ISS "/spiffe://example.org/alice"
                                 : ISS "/alice");
      CU_ASSERT_STRING_EQUAL(res.strip_header, "Authorization");
      CU_ASSERT_EQUAL(res.nout, 1);
      if (res.nout == 1)
        CU_ASSERT_STRING_EQUAL(res.out_value[0], "ops");
    }
    mesh__authn_result_free(&res);
  }
  printf("\n    pyjwt table: %d tokens, %d same verdict, %d stricter on purpose\n",
         n, agree, differ);
  CU_ASSERT(n >= 30);
  CU_ASSERT_EQUAL(agree + differ, n);
  /* no token at all: passes authentication, not authenticated */
  hdrs1_t none = {NULL, NULL};
  mesh__authn_input_t in = {.header = get1, .ctx = &none};
  mesh__authn_result_t res;
  CU_ASSERT_EQUAL(mesh__authn_decide(cfg, &in, (int64_t)time(NULL),
                                     inline_keys, NULL, &res),
                  MESH_OK);
  CU_ASSERT_FALSE(res.authenticated);
  /* another scheme carries no token (Envoy: the prefix must match) */
  hdrs1_t basic = {"Authorization", "Basic YWxpY2U6cHc="};
  in.ctx = &basic;
  CU_ASSERT_EQUAL(mesh__authn_decide(cfg, &in, (int64_t)time(NULL),
                                     inline_keys, NULL, &res),
                  MESH_OK);
  CU_ASSERT_FALSE(res.authenticated);
  mesh__authn_cfg_free(cfg);
  cJSON_Delete(rows);
  free(doc);
}

/* Every byte of a valid token's signature flipped in turn: never accepted. */
static void test_mesh__jwt_altered_signature(void) {
  size_t len;
  char *doc = minted_file("tokens.json", &len);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  mesh__authn_cfg_t *cfg = cfg_inline("jwks.json");
  CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
  const cJSON *row;
  int tried = 0;
  cJSON_ArrayForEach(row, rows) {
    const char *name = cJSON_GetObjectItem(row, "name")->valuestring;
    if (strcmp(name, "es256") != 0 && strcmp(name, "ps256") != 0)
      continue;
    char *tok = strdup(cJSON_GetObjectItem(row, "token")->valuestring);
    size_t tl = strlen(tok), sig = (size_t)(strrchr(tok, '.') - tok) + 1;
    for (size_t i = sig; i < tl; i++) {
      char was = tok[i];
      tok[i] = was == 'A' ? 'B' : 'A';
      hdrs1_t h = {"x-token", tok};
      char bearer[4096];
      snprintf(bearer, sizeof bearer, "Bearer %s", tok);
      h.name = "Authorization";
      h.value = bearer;
      mesh__authn_input_t in = {.header = get1, .ctx = &h};
      mesh__authn_result_t res;
      int rc = mesh__authn_decide(cfg, &in, (int64_t)time(NULL), inline_keys,
                                  NULL, &res);
      CU_ASSERT_EQUAL(rc, MESH_ERR_DENIED);
      mesh__authn_result_free(&res);
      tok[i] = was;
      tried++;
    }
    free(tok);
  }
  CU_ASSERT(tried > 100);
  mesh__authn_cfg_free(cfg);
  cJSON_Delete(rows);
  free(doc);
}

/* ---- config --------------------------------------------------------------------- */

static char errs[4096];
static void collect(const char *msg, void *user) {
  (*(int *)user)++;
  size_t n = strlen(errs);
  snprintf(errs + n, sizeof errs - n, "%s\n", msg);
}

static void test_mesh_config_check_authn(void) {
  struct {
    const char *json;
    int nerr;
    const char *path; /* in the first error */
  } cases[] = {
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"jwks_uri\":"
       "\"http://127.0.0.1:1/k\"}]}}", 0, NULL},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"spiffe_bundle\":"
       "\"example.org\",\"from_headers\":[{\"name\":\"x-jwt\"}],"
       "\"from_params\":[\"tok\"],\"forward_original_token\":true}]}}", 0, NULL},
      {"{\"authn\":{\"jwt_rules\":[{\"jwks_uri\":\"http://x/k\"}]}}", 1,
       "authn.jwt_rules[0].issuer"},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\"}]}}", 1,
       "authn.jwt_rules[0]"},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"jwks_uri\":\"ftp://x\"}]}}",
       1, "authn.jwt_rules[0].jwks_uri"},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"jwks\":\"{}\"}]}}", 1,
       "authn.jwt_rules[0].jwks"},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"jwks\":{\"keys\":"
       "[{\"kty\":\"oct\"}]}}]}}", 2, "authn.jwt_rules[0].jwks.keys[0]"},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"jwks_uri\":\"http://x\","
       "\"from_headers\":[{\"name\":\"bad name\"}]}]}}", 1,
       "authn.jwt_rules[0].from_headers[0].name"},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"jwks_uri\":\"http://x\","
       "\"output_claim_to_headers\":[{\"header\":\"x\"}]}]}}", 1,
       "authn.jwt_rules[0].output_claim_to_headers[0].claim"},
      {"{\"authn\":{\"jwt_rules\":[{\"issuer\":\"i\",\"jwks_uri\":\"http://x\"},"
       "{\"issuer\":\"i\",\"jwks_uri\":\"http://y\"}]}}", 1,
       "authn.jwt_rules[1].issuer"},
      {"{\"authn\":{\"clock_skew_s\":-1,\"typo\":1}}", 2, "authn"},
      {"{\"authz\":{\"policies\":[{\"name\":\"p\",\"rules\":[{\"when\":[{\"key\":"
       "\"request.auth.claims[]\",\"values\":[\"x\"]}]}]}]}}", 1,
       "authz.policies[0].rules[0].when[0].key"},
      {"{\"authz\":{\"policies\":[{\"name\":\"p\",\"rules\":[{\"from\":[{\"source\":"
       "{\"requestPrincipals\":[\"*\"]}}],\"when\":[{\"key\":"
       "\"request.auth.claims[a][b]\",\"values\":[\"x\"]},{\"key\":"
       "\"request.auth.audiences\",\"values\":[\"x\"]},{\"key\":"
       "\"request.auth.presenter\",\"notValues\":[\"x\"]}]}]}]}}", 0, NULL},
  };
  for (size_t i = 0; i < N(cases); i++) {
    int n = 0;
    errs[0] = '\0';
    int rc = mesh_config_check(cases[i].json, collect, &n);
    if (n != cases[i].nerr)
      fprintf(stderr, "case %zu: %d errors:\n%s", i, n, errs);
    CU_ASSERT_EQUAL(n, cases[i].nerr);
    CU_ASSERT_EQUAL(rc, cases[i].nerr);
    if (cases[i].path)
      CU_ASSERT(strncmp(errs, cases[i].path, strlen(cases[i].path)) == 0);
  }
}

/* ---- the verified-token cache ---------------------------------------------------- */

static const mesh__jwks_t *cur_keys(const mesh__authn_rule_t *r, bool refetch,
                                    void *user) {
  (void)r;
  return refetch ? NULL : *(const mesh__jwks_t **)user;
}

static mesh__jwks_t *jwks_without(const char *file, const char *kid) {
  size_t len;
  char *txt = minted_file(file, &len);
  cJSON *doc = txt ? mesh__json_parse(txt, len, NULL) : NULL;
  cJSON *keys = cJSON_GetObjectItem(doc, "keys");
  for (int i = cJSON_GetArraySize(keys) - 1; kid && i >= 0; i--) {
    const cJSON *k = cJSON_GetObjectItem(cJSON_GetArrayItem(keys, i), "kid");
    if (cJSON_IsString(k) && strcmp(k->valuestring, kid) == 0)
      cJSON_DeleteItemFromArray(keys, i);
  }
  char *out = doc ? cJSON_PrintUnformatted(doc) : NULL;
  mesh__jwks_t *ks = NULL;
  if (out)
    mesh__jwks_parse(out, strlen(out), &ks, NULL, NULL, NULL);
  free(out);
  cJSON_Delete(doc);
  free(txt);
  return ks;
}

/* A cached verdict is only the signature's, only for the key set it was
 * made with, and only until the token's exp: an expired token is refused
 * although cached, a set without its key (rotated out) refuses it, a new
 * set with the same keys verifies again (a miss), another token (an edited
 * signature) is never a hit, and an evicted entry costs a verification. */
static void test_mesh__jwt_cache(void) {
  size_t len;
  char *doc = minted_file("tokens.json", &len);
  cJSON *rows = doc ? mesh__json_parse(doc, len, NULL) : NULL;
  mesh__authn_cfg_t *cfg = cfg_inline("jwks.json");
  mesh__jwks_t *a = jwks_without("jwks.json", NULL);
  mesh__jwks_t *a2 = jwks_without("jwks.json", NULL);
  mesh__jwks_t *rot = jwks_without("jwks.json", "ec1");
  CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
  CU_ASSERT_FATAL(a && a2 && rot && a->serial != a2->serial);
  int64_t now = (int64_t)time(NULL), late = now + 600 + 60 + 5;
  struct {
    const char *token;
    const mesh__jwks_t *keys;
    int64_t at;
    const char *want; /* mesh__jwt_err_name */
    int hit;          /* 1: served from the cache, 0: verified */
  } steps[] = {
      {"es256", a, now, "ok", 0},
      {"es256", a, now, "ok", 1},
      {"es256", a, now + 30, "ok", 1},
      {"es256", a, late, "expired", 0},
      {"es256_bad_signature", a, now, "signature", 0},
      {"es256", rot, now, "unknown_kid", 0},
      {"es256", a2, now, "ok", 0},
      {"es256", a2, now, "ok", 1},
      {"es256", a, now, "ok", 0}, /* a2's entry replaced a's */
      {"rs256", a, now, "ok", 0},
      {"rs256", a, now, "ok", 1},
  };
  mesh__jwt_cache_t *c = mesh__jwt_cache_new(64);
  mesh__jwt_cache_t *one = mesh__jwt_cache_new(1);
  CU_ASSERT_FATAL(c && one);
  for (size_t i = 0; i < N(steps); i++) {
    char bearer[4096];
    snprintf(bearer, sizeof bearer, "Bearer %s", token_named(rows, steps[i].token));
    hdrs1_t h = {"Authorization", bearer};
    mesh__authn_input_t in = {.header = get1, .ctx = &h};
    mesh__authn_result_t res;
    const mesh__jwks_t *k = steps[i].keys;
    uint64_t h0, m0, h1, m1, e;
    mesh__jwt_cache_stats(c, &h0, &m0, &e);
    mesh__authn_decide_cached(cfg, &in, steps[i].at, cur_keys, &k, c, &res);
    mesh__jwt_cache_stats(c, &h1, &m1, &e);
    if (strcmp(mesh__jwt_err_name(res.err), steps[i].want) != 0 ||
        (int)(h1 - h0) != steps[i].hit)
      fprintf(stderr, "cache step %zu: %s hit %d\n", i,
              mesh__jwt_err_name(res.err), (int)(h1 - h0));
    CU_ASSERT_STRING_EQUAL(mesh__jwt_err_name(res.err), steps[i].want);
    CU_ASSERT_EQUAL((int)(h1 - h0), steps[i].hit);
    CU_ASSERT_EQUAL(res.authenticated, strcmp(steps[i].want, "ok") == 0);
    mesh__authn_result_free(&res);
  }
  /* one slot: two tokens take turns, each evicting the other, and both
   * are still accepted (verified again) */
  for (int i = 0; i < 4; i++) {
    char bearer[4096];
    snprintf(bearer, sizeof bearer, "Bearer %s",
             token_named(rows, i % 2 ? "es256" : "ps256"));
    hdrs1_t h = {"Authorization", bearer};
    mesh__authn_input_t in = {.header = get1, .ctx = &h};
    mesh__authn_result_t res;
    const mesh__jwks_t *k = a;
    CU_ASSERT_EQUAL(mesh__authn_decide_cached(cfg, &in, now, cur_keys, &k, one,
                                              &res),
                    MESH_OK);
    mesh__authn_result_free(&res);
  }
  uint64_t hits, misses, evictions;
  mesh__jwt_cache_stats(one, &hits, &misses, &evictions);
  CU_ASSERT_EQUAL(hits, 0);
  CU_ASSERT_EQUAL(misses, 4);
  CU_ASSERT_EQUAL(evictions, 3); /* the first entry took an empty slot */
  mesh__jwt_cache_free(c);
  mesh__jwt_cache_free(one);
  mesh__jwks_unref(a);
  mesh__jwks_unref(a2);
  mesh__jwks_unref(rot);
  mesh__authn_cfg_free(cfg);
  cJSON_Delete(rows);
  free(doc);
}

/* JWT bundles (the Workload API's FetchJWTBundles) as a key source: none
 * yet -> 401 (fail closed); pushed -> verified; removed -> 401 again. */
static void test_mesh__authn_set_jwt_bundle(void) {
  size_t len;
  char *doc = minted_file("tokens.json", &len), *jwks = minted_file("jwks.json", NULL);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
  CU_ASSERT_PTR_NOT_NULL_FATAL(jwks);
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"log\":{\"level\":\"error\"},\"authn\":{\"jwt_rules\":"
               "[{\"issuer\":\"" ISS "\",\"spiffe_bundle\":\"example.org\"}]}}",
               &m, &st),
      MESH_OK);
  char bearer[4096];
  snprintf(bearer, sizeof bearer, "Bearer %s", token_named(rows, "es256_svid"));
  hdrs1_t h = {"Authorization", bearer};
  mesh__authn_input_t in = {.header = get1, .ctx = &h};
  mesh__authn_result_t res;
  CU_ASSERT_EQUAL(mesh__authn_check_request(m, &in, &res, &st), MESH_ERR_DENIED);
  CU_ASSERT_STRING_EQUAL(mesh__jwt_err_name(res.err), "no_keys");
  CU_ASSERT_EQUAL(mesh__authn_set_jwt_bundle(m, "other.org", jwks, strlen(jwks)),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh__authn_check_request(m, &in, &res, &st), MESH_ERR_DENIED);
  CU_ASSERT_EQUAL(mesh__authn_set_jwt_bundle(m, "example.org", "{}", 2),
                  MESH_ERR_PARSE); /* a bad bundle is refused, nothing kept */
  CU_ASSERT_EQUAL(mesh__authn_set_jwt_bundle(m, "example.org", jwks, strlen(jwks)),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh__authn_check_request(m, &in, &res, &st), MESH_OK);
  CU_ASSERT(res.authenticated);
  CU_ASSERT_STRING_EQUAL(res.principal, ISS "/spiffe://example.org/alice");
  mesh__authn_result_free(&res);
  /* a bundle verifies JWT-SVIDs of its trust domain only (SPIFFE JWT-SVID
   * 3: sub is the SPIFFE ID): the same key, sub "alice", has no rule */
  char plain[4096];
  snprintf(plain, sizeof plain, "Bearer %s", token_named(rows, "es256"));
  hdrs1_t hp = {"Authorization", plain};
  mesh__authn_input_t inp = {.header = get1, .ctx = &hp};
  CU_ASSERT_EQUAL(mesh__authn_check_request(m, &inp, &res, &st), MESH_ERR_DENIED);
  CU_ASSERT_STRING_EQUAL(mesh__jwt_err_name(res.err), "no_issuer");
  CU_ASSERT_EQUAL(mesh__authn_set_jwt_bundle(m, "example.org", NULL, 0), MESH_OK);
  CU_ASSERT_EQUAL(mesh__authn_check_request(m, &in, &res, &st), MESH_ERR_DENIED);
  mesh_free(m);
  cJSON_Delete(rows);
  free(doc);
  free(jwks);
}

/* The verified-token cache's metrics, from a context (one slot: two
 * tokens evict each other), as Prometheus text. */
static void test_authn_token_cache_metrics(void) {
  size_t len;
  char *doc = minted_file("tokens.json", &len), *jwks = minted_file("jwks.json", NULL);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
  CU_ASSERT_PTR_NOT_NULL_FATAL(jwks);
  cJSON *cfg = cJSON_Parse("{\"log\":{\"level\":\"error\"},\"authn\":"
                           "{\"token_cache_size\":1,\"jwt_rules\":[{\"issuer\":"
                           "\"" ISS "\",\"audiences\":[\"" AUD "\"]}]}}");
  cJSON *rule = cJSON_GetArrayItem(cJSON_GetObjectItem(
      cJSON_GetObjectItem(cfg, "authn"), "jwt_rules"), 0);
  cJSON_AddStringToObject(rule, "jwks", jwks);
  char *text = cJSON_PrintUnformatted(cfg);
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(text, &m, &st), MESH_OK);
  const char *seq[] = {"es256", "es256", "rs256", "es256", "es256"};
  for (size_t i = 0; i < N(seq); i++) {
    char bearer[4096];
    snprintf(bearer, sizeof bearer, "Bearer %s", token_named(rows, seq[i]));
    hdrs1_t h = {"Authorization", bearer};
    mesh__authn_input_t in = {.header = get1, .ctx = &h};
    mesh__authn_result_t res;
    CU_ASSERT_EQUAL(mesh__authn_check_request(m, &in, &res, &st), MESH_OK);
    CU_ASSERT(res.authenticated);
    mesh__authn_result_free(&res);
  }
  static char buf[262144];
  CU_ASSERT(mesh_metrics_text(m, buf, sizeof buf, NULL) > 0);
  /* es256 miss, hit; rs256 miss (evicts es256); es256 miss (evicts
   * rs256), hit */
  const char *want[] = {
      "# TYPE mesh_authn_token_cache_hits_total counter\n",
      "\nmesh_authn_token_cache_hits_total 2\n",
      "\nmesh_authn_token_cache_misses_total 3\n",
      "\nmesh_authn_token_cache_evictions_total 2\n",
      "# HELP mesh_authn_token_cache_evictions_total ",
  };
  for (size_t i = 0; i < N(want); i++) {
    if (!strstr(buf, want[i]))
      fprintf(stderr, "\n  missing %s", want[i]);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, want[i]));
  }
  mesh_free(m);
  /* no cache (token_cache_size 0): no cache metrics */
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(cfg, "authn"),
                            "token_cache_size", cJSON_CreateNumber(0));
  free(text);
  text = cJSON_PrintUnformatted(cfg);
  CU_ASSERT_EQUAL_FATAL(mesh_new(text, &m, &st), MESH_OK);
  CU_ASSERT(mesh_metrics_text(m, buf, sizeof buf, NULL) > 0);
  CU_ASSERT_PTR_NULL(strstr(buf, "mesh_authn_token_cache_"));
  mesh_free(m);
  free(text);
  cJSON_Delete(cfg);
  cJSON_Delete(rows);
  free(doc);
  free(jwks);
}

/* ---- authz over authn's result (pure evaluation, every stage) ----------------- */

static int decide(const mesh__authz_set_t *set, const char *rp,
                  const cJSON *claims, int stage) {
  mesh_authz_request_t r;
  mesh__az_req_init(&r);
  r.http = stage != MESH__AZ_STAGE_TCP && stage != MESH__AZ_STAGE_CONN;
  r.method = "GET";
  r.path = r.target = "/x";
  r.host = "h";
  r.req_principal = rp;
  r.jwt_claims = claims;
  mesh__authz_result_t out;
  mesh__authz_eval(set, &r, stage, &out);
  return out.decision;
}

static void test_mesh__authz_eval_request_auth(void) {
  const char *json =
      "{\"policies\":[{\"name\":\"no-guests\",\"action\":\"DENY\",\"rules\":"
      "[{\"when\":[{\"key\":\"request.auth.claims[role]\",\"values\":"
      "[\"guest\"]}]}]},{\"name\":\"jwt\",\"rules\":[{\"from\":[{\"source\":"
      "{\"requestPrincipals\":[\"iss/*\"]}}],\"when\":[{\"key\":"
      "\"request.auth.audiences\",\"values\":[\"a\"]},{\"key\":"
      "\"request.auth.presenter\",\"notValues\":[\"evil\"]}]}]}]}";
  cJSON *cfg = mesh__json_parse(json, strlen(json), NULL);
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__authz_set_t *set = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__authz_set_build(&c, cfg, "authz", &set), MESH_OK);
  cJSON *ok = mesh__json_parse("{\"aud\":[\"b\",\"a\"],\"role\":\"dev\"}", 30, NULL);
  cJSON *guest = mesh__json_parse("{\"aud\":\"a\",\"role\":[\"guest\"]}", 28, NULL);
  cJSON *evil = mesh__json_parse("{\"aud\":\"a\",\"azp\":\"evil\"}", 24, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
  CU_ASSERT_PTR_NOT_NULL_FATAL(guest);
  CU_ASSERT_PTR_NOT_NULL_FATAL(evil);
  int R = MESH__AZ_STAGE_REQUEST, A = MESH__AZ_DECIDE_ALLOW,
      D = MESH__AZ_DECIDE_DENY;
  CU_ASSERT_EQUAL(decide(set, "iss/alice", ok, R), A);
  CU_ASSERT_EQUAL(decide(set, "other/alice", ok, R), D);  /* principal */
  CU_ASSERT_EQUAL(decide(set, "", NULL, R), D);           /* no token */
  CU_ASSERT_EQUAL(decide(set, "iss/alice", guest, R), D); /* list claim */
  CU_ASSERT_EQUAL(decide(set, "iss/alice", evil, R), D);  /* presenter */
  /* at accept (HTTP follows) nothing is decided on JWT attributes yet;
   * with Istio's TCP semantics the DENY's HTTP-only condition counts as
   * matched and the ALLOW's as not matched */
  CU_ASSERT_EQUAL(decide(set, NULL, NULL, MESH__AZ_STAGE_CONN), A);
  CU_ASSERT_EQUAL(decide(set, NULL, NULL, MESH__AZ_STAGE_TCP), D);
  cJSON_Delete(ok);
  cJSON_Delete(guest);
  cJSON_Delete(evil);
  cJSON_Delete(cfg);
  mesh__authz_set_unref(set);
}

/* ---- real peers: JWKS over HTTP, a libmesh server, curl ---------------------------- */

typedef struct tcp_srv {
  pthread_t t;
  mesh_t *m;
  int lfd, port;
  atomic_bool stop;
} tcp_srv_t;

/* Echo what the handler sees of the authentication: the claim header and
 * whether the token header reached it. */
static int jwt_echo(const mesh_http_request_t *req, mesh_http_response_t *resp,
                    void *user) {
  (void)user;
  const char *role = mesh_http_request_header(req, "x-jwt-role");
  const char *authz = mesh_http_request_header(req, "Authorization");
  char body[256];
  snprintf(body, sizeof body, "role=%s authorization=%s", role ? role : "-",
           authz ? "present" : "-");
  mesh_http_response_set_status(resp, 200);
  mesh_http_response_set_body(resp, body, strlen(body));
  return 0;
}

static void *tcp_main(void *arg) {
  tcp_srv_t *s = arg;
  while (!atomic_load(&s->stop)) {
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
      continue;
    mesh__http_io_t io;
    mesh__http_io_fd(&io, &fd);
    mesh__http_peer_t peer = {.peer_id = "", .local_port = s->port};
    mesh_status_t st;
    mesh__http_serve_io(s->m, &io, &peer, jwt_echo, NULL, &st);
    close(fd);
  }
  return NULL;
}

static bool tcp_start(tcp_srv_t *s, mesh_t *m) {
  memset(s, 0, sizeof *s);
  s->m = m;
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t al = sizeof a;
  if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(s->lfd, 16) != 0 ||
      getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
    return false;
  s->port = ntohs(a.sin_port);
  return pthread_create(&s->t, NULL, tcp_main, s) == 0;
}

static void tcp_stop(tcp_srv_t *s) {
  atomic_store(&s->stop, true);
  shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
  pthread_join(s->t, NULL);
  close(s->lfd);
}

static char body_out[1024];

/* curl (plain HTTP/1.1) with an optional bearer token; returns the status. */
static int curl_get(int port, const char *path, const char *auth) {
  char hdrfile[600], cmd[40000];
  const char *out = th_path("authn_curl.out"), *code = th_path("authn_curl.code");
  snprintf(hdrfile, sizeof hdrfile, "%s", th_path("authn_curl.hdr"));
  FILE *f = fopen(hdrfile, "w");
  if (!f)
    return -1;
  if (auth)
    fprintf(f, "Authorization: %s\n", auth);
  fclose(f);
  snprintf(cmd, sizeof cmd,
           "curl -sS --http1.1 --max-time 20 -H @'%s' -o '%s' -w '%%{http_code}' "
           "'http://127.0.0.1:%d%s' > '%s'",
           hdrfile, out, port, path, code);
  th_sh(cmd);
  char *c = th_slurp(code, NULL), *b = th_slurp(out, NULL);
  int st = c ? atoi(c) : -1;
  snprintf(body_out, sizeof body_out, "%s", b ? b : "");
  free(c);
  free(b);
  return st;
}


static const char policy_json[] =
    "\"authz\":{\"policies\":[{\"name\":\"jwt\",\"rules\":["
    "{\"to\":[{\"operation\":{\"paths\":[\"/public*\"]}}]},"
    "{\"from\":[{\"source\":{\"requestPrincipals\":[\"" ISS "/*\"]}}],"
    "\"to\":[{\"operation\":{\"paths\":[\"/secure*\"]}}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/admin\"]}}],\"when\":[{\"key\":"
    "\"request.auth.claims[groups]\",\"values\":[\"admin\"]}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/root\"]}}],\"when\":[{\"key\":"
    "\"request.auth.claims[groups]\",\"values\":[\"root\"]}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/ops\"]}}],\"when\":[{\"key\":"
    "\"request.auth.claims[nested][role]\",\"values\":[\"ops\"]}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/aud\"]}}],\"when\":[{\"key\":"
    "\"request.auth.audiences\",\"values\":[\"" AUD "\"]}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/web\"]}}],\"when\":[{\"key\":"
    "\"request.auth.presenter\",\"values\":[\"web\"]}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/hdr\"]}}],\"when\":[{\"key\":"
    "\"request.headers[x-jwt-role]\",\"values\":[\"ops\"]}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/tokhdr\"]}}],\"when\":[{\"key\":"
    "\"request.headers[authorization]\",\"values\":[\"*\"]}]},"
    "{\"to\":[{\"operation\":{\"paths\":[\"/anon\"]}}],\"from\":[{\"source\":"
    "{\"notRequestPrincipals\":[\"*\"]}}]}]}]}";

static mesh_t *new_mesh_with(const char *extra, const char *jwks_uri,
                             int refetch_min_s, int timeout_ms) {
  char cfg[8192];
  snprintf(cfg, sizeof cfg,
           "{%s\"log\":{\"level\":\"error\"},\"authn\":{\"jwks_fetch_timeout_ms\":"
           "%d,\"jwks_refetch_min_s\":%d,\"jwt_rules\":[{\"issuer\":\"" ISS
           "\",\"audiences\":[\"" AUD "\"],\"jwks_uri\":\"%s\","
           "\"output_claim_to_headers\":[{\"header\":\"x-jwt-role\",\"claim\":"
           "\"nested.role\"}]}]},%s}",
           extra, timeout_ms, refetch_min_s, jwks_uri, policy_json);
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(cfg, &m, &st) != MESH_OK) {
    fprintf(stderr, "mesh_new: %s\n", st.message);
    return NULL;
  }
  return m;
}

static mesh_t *new_mesh(const char *jwks_uri, int refetch_min_s,
                        int timeout_ms) {
  return new_mesh_with("", jwks_uri, refetch_min_s, timeout_ms);
}

static pid_t jwks_server(int *port) {
  *port = th_free_port();
  char ps[16];
  snprintf(ps, sizeof ps, "%d", *port);
  const char *argv[] = {"/usr/bin/python3", "-m", "http.server", ps, "--bind",
                        "127.0.0.1", "--directory", minted(), NULL};
  pid_t pid = th_spawn(argv, "jwks_http.log");
  if (pid > 0 && !th_wait_port(*port, 10000)) {
    th_stop(pid);
    return -1;
  }
  return pid;
}

static void test_authn_http_curl_jwks(void) {
  if (!th_require("curl", "curl"))
    return;
  size_t len;
  char *doc = minted_file("tokens.json", &len);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
  int hp;
  pid_t http = jwks_server(&hp);
  CU_ASSERT_FATAL(http > 0);
  char uri[128];
  snprintf(uri, sizeof uri, "http://127.0.0.1:%d/jwks.json", hp);
  mesh_t *m = new_mesh(uri, 0, 5000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  tcp_srv_t s;
  CU_ASSERT_FATAL(tcp_start(&s, m));
  char bearer[32768];
#define BEARER(name) (snprintf(bearer, sizeof bearer, "Bearer %s", token_named(rows, name)), bearer)
  struct {
    const char *path, *token; /* token: a row name, NULL: none */
    int want;
    const char *body; /* substring, NULL: any */
  } cases[] = {
      /* no token: authentication passes, authorization decides */
      {"/public", NULL, 200, "role=- authorization=-"},
      {"/secure", NULL, 403, "RBAC: access denied"},
      {"/anon", NULL, 200, NULL},
      /* a valid token from each algorithm; the token header is not
       * forwarded, the claim is */
      {"/secure", "rs256", 200, "role=ops authorization=-"},
      {"/secure", "ps256", 200, "role=ops"},
      {"/secure", "es256", 200, "role=ops"},
      {"/secure", "es384", 200, "role=ops"},
      {"/anon", "rs256", 403, NULL},
      {"/admin", "rs256", 200, NULL}, /* list claim, one element matches */
      {"/root", "rs256", 403, NULL},
      {"/ops", "rs256", 200, NULL},   /* nested claim */
      {"/ops", NULL, 403, NULL},
      {"/aud", "aud_list", 200, NULL},
      {"/web", "es256", 200, NULL},
      /* authz sees what Envoy's RBAC sees after jwt_authn: the claim
       * header set, the token header gone */
      {"/hdr", "rs256", 200, NULL},
      {"/hdr", NULL, 403, NULL},
      {"/tokhdr", "rs256", 403, NULL},
      /* an invalid token is 401 even where no token is needed */
      {"/public", "expired", 401, "Jwt verification fails"},
      {"/public", "nbf_future", 401, NULL},
      {"/public", "wrong_issuer", 401, NULL},
      {"/public", "wrong_audience", 401, NULL},
      {"/public", "bad_signature", 401, NULL},
      {"/public", "alg_none", 401, NULL},
      {"/public", "hs256_rsa_public_key", 401, NULL},
      {"/public", "malformed_b64_header", 401, NULL},
      {"/public", "malformed_json_header", 401, NULL},
      {"/public", "oversized_token", 401, NULL},
      /* unknown kid: one refetch, still unknown, 401 */
      {"/public", "unknown_kid", 401, NULL},
  };
  for (size_t i = 0; i < N(cases); i++) {
    const char *auth = cases[i].token ? BEARER(cases[i].token) : NULL;
    int got = curl_get(s.port, cases[i].path, auth);
    if (got != cases[i].want)
      fprintf(stderr, "case %zu %s %s: %d (want %d) %s\n", i, cases[i].path,
              cases[i].token ? cases[i].token : "-", got, cases[i].want,
              body_out);
    CU_ASSERT_EQUAL(got, cases[i].want);
    if (cases[i].body)
      CU_ASSERT_PTR_NOT_NULL(strstr(body_out, cases[i].body));
  }
  /* the token as a query parameter (Istio's default access_token) */
  char path[2048];
  snprintf(path, sizeof path, "/secure?access_token=%s", token_named(rows, "es256"));
  CU_ASSERT_EQUAL(curl_get(s.port, path, NULL), 200);
  /* another scheme carries no token */
  CU_ASSERT_EQUAL(curl_get(s.port, "/public", "Basic YWxpY2U6cHc="), 200);
  CU_ASSERT_EQUAL(curl_get(s.port, "/secure", "Basic YWxpY2U6cHc="), 403);
  /* rotation: the issuer starts signing with rsa2; the JWKS now has it and
   * the unknown kid makes libmesh refetch (refetch_min 0) */
  char *k2 = minted_file("jwks2.json", NULL);
  char p1[700];
  snprintf(p1, sizeof p1, "%s/jwks.json", minted());
  CU_ASSERT_FATAL(k2 && th_write(p1, k2));
  free(k2);
  CU_ASSERT_EQUAL(curl_get(s.port, "/secure", BEARER("unknown_kid")), 200);
  tcp_stop(&s);
  mesh_free(m);
  th_stop(http);
  /* put the first JWKS back for the other tests */
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c \"import json,sys; d=json.load(open('%s'));"
           "d['keys']=[k for k in d['keys'] if k['kid']!='rsa2'];"
           "json.dump(d,open('%s','w'))\"", p1, p1);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  cJSON_Delete(rows);
  free(doc);
}

/* JWKS endpoint down: nothing verifies, every token is 401 (fail closed);
 * requests without a token are still judged by policy. */
static void test_authn_jwks_down_fails_closed(void) {
  if (!th_require("curl", "curl"))
    return;
  size_t len;
  char *doc = minted_file("tokens.json", &len);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  char uri[128];
  snprintf(uri, sizeof uri, "http://127.0.0.1:%d/jwks.json", th_free_port());
  mesh_t *m = new_mesh(uri, 0, 300);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  tcp_srv_t s;
  CU_ASSERT_FATAL(tcp_start(&s, m));
  char bearer[32768];
  CU_ASSERT_EQUAL(curl_get(s.port, "/secure", BEARER("rs256")), 401);
  CU_ASSERT_EQUAL(curl_get(s.port, "/public", BEARER("es256")), 401);
  CU_ASSERT_EQUAL(curl_get(s.port, "/public", NULL), 200);
  CU_ASSERT_EQUAL(curl_get(s.port, "/secure", NULL), 403);
  tcp_stop(&s);
  static char text[1 << 17];
  CU_ASSERT(mesh_metrics_text(m, text, sizeof text, NULL) > 0);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "mesh_authn_requests_total{result=\"no_keys\"} 2\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "mesh_authn_requests_total{result=\"no_token\"} 2\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "mesh_authn_requests_total{result=\"ok\"} 0\n"));
  mesh_free(m);
  cJSON_Delete(rows);
  free(doc);
}

/* HTTP/2 (h2c prior knowledge, curl) through mesh_http_serve(): the same
 * guard as HTTP/1.1 (401 before 403, claim header, token removed). */
typedef struct h2srv {
  pthread_t t;
  mesh_t *m;
  mesh_listener_t *l;
  atomic_bool stop;
} h2srv_t;

static void *h2srv_main(void *arg) {
  h2srv_t *h = arg;
  while (!atomic_load(&h->stop)) {
    mesh_conn_t *c = NULL;
    if (mesh_accept(h->l, 200, &c, NULL) != MESH_OK)
      continue;
    mesh_conn_set_timeouts(c, 5000, 5000);
    mesh_http_serve(h->m, c, jwt_echo, NULL, NULL);
    mesh_conn_close(c);
  }
  return NULL;
}

static int curl_h2(int port, const char *path, const char *auth) {
  char cmd[40000], hdr[600];
  snprintf(hdr, sizeof hdr, "%s", th_path("authn_h2.hdr"));
  FILE *f = fopen(hdr, "w");
  if (!f)
    return -1;
  if (auth)
    fprintf(f, "Authorization: %s\n", auth);
  fclose(f);
  const char *out = th_path("authn_h2.out"), *code = th_path("authn_h2.code");
  snprintf(cmd, sizeof cmd,
           "curl -sS --http2-prior-knowledge --max-time 20 -H @'%s' -o '%s' "
           "-w '%%{http_version} %%{http_code}' 'http://127.0.0.1:%d%s' > '%s'",
           hdr, out, port, path, code);
  th_sh(cmd);
  char *c = th_slurp(code, NULL), *b = th_slurp(out, NULL);
  int st = c && strncmp(c, "2 ", 2) == 0 ? atoi(c + 2) : -1; /* HTTP/2 only */
  snprintf(body_out, sizeof body_out, "%s", b ? b : "");
  free(c);
  free(b);
  return st;
}

static void test_authn_http2_curl(void) {
  if (!th_require("curl", "curl"))
    return;
  const char *ca = th_ca("example.org");
  CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
  CU_ASSERT_FATAL(th_svid("example.org", "spiffe://example.org/ns/a/sa/srv",
                          "authn_srv", 0, 0, 0));
  size_t len;
  char *doc = minted_file("tokens.json", &len);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  int hp;
  pid_t http = jwks_server(&hp);
  CU_ASSERT_FATAL(http > 0);
  char uri[128], extra[1024];
  snprintf(uri, sizeof uri, "http://127.0.0.1:%d/jwks.json", hp);
  snprintf(extra, sizeof extra,
           "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"},"
           "\"inbound\":{\"listen\":\"127.0.0.1:0\",\"mode\":\"PERMISSIVE\"},",
           th_path("authn_srv.crt"), th_path("authn_srv.key"), ca);
  h2srv_t h = {0};
  h.m = new_mesh_with(extra, uri, 3600, 5000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(h.m);
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_listen(h.m, NULL, &h.l, &st), MESH_OK);
  int port = mesh_listener_port(h.l);
  pthread_create(&h.t, NULL, h2srv_main, &h);
  char bearer[32768];
  CU_ASSERT_EQUAL(curl_h2(port, "/public", NULL), 200);
  CU_ASSERT_EQUAL(curl_h2(port, "/secure", NULL), 403);
  CU_ASSERT_EQUAL(curl_h2(port, "/secure", BEARER("rs256")), 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(body_out, "role=ops authorization=-"));
  CU_ASSERT_EQUAL(curl_h2(port, "/hdr", BEARER("es256")), 200);
  CU_ASSERT_EQUAL(curl_h2(port, "/admin", BEARER("ps256")), 200);
  CU_ASSERT_EQUAL(curl_h2(port, "/public", BEARER("expired")), 401);
  CU_ASSERT_PTR_NOT_NULL(strstr(body_out, "Jwt verification fails"));
  CU_ASSERT_EQUAL(curl_h2(port, "/public", BEARER("alg_none")), 401);
  CU_ASSERT_EQUAL(curl_h2(port, "/public", BEARER("hs256_rsa_public_key")), 401);
  atomic_store(&h.stop, true);
  pthread_join(h.t, NULL);
  mesh_listener_close(h.l);
  mesh_free(h.m);
  th_stop(http);
  cJSON_Delete(rows);
  free(doc);
}

/* A JWKS with bad keys over HTTP: the good key verifies, the skipped ones
 * verify nothing (their tokens are 401). */
static void test_authn_jwks_bad_keys(void) {
  if (!th_require("curl", "curl"))
    return;
  size_t len;
  char *doc = minted_file("tokens.json", &len);
  cJSON *rows = mesh__json_parse(doc, len, NULL);
  int hp;
  pid_t http = jwks_server(&hp);
  CU_ASSERT_FATAL(http > 0);
  char uri[128];
  snprintf(uri, sizeof uri, "http://127.0.0.1:%d/jwks_bad.json", hp);
  mesh_t *m = new_mesh(uri, 3600, 5000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  tcp_srv_t s;
  CU_ASSERT_FATAL(tcp_start(&s, m));
  char bearer[32768];
  CU_ASSERT_EQUAL(curl_get(s.port, "/secure", BEARER("rs256")), 200);
  CU_ASSERT_EQUAL(curl_get(s.port, "/secure", BEARER("es256")), 401);
  tcp_stop(&s);
  mesh_free(m);
  th_stop(http);
  cJSON_Delete(rows);
  free(doc);
}

/* A token header over the HTTP layer's head limit never reaches authn: the
 * server answers 431. */
static void test_authn_oversized_header(void) {
  if (!th_require("curl", "curl"))
    return;
  char uri[128];
  snprintf(uri, sizeof uri, "http://127.0.0.1:%d/jwks.json", th_free_port());
  mesh_t *m = new_mesh(uri, 0, 300);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  tcp_srv_t s;
  CU_ASSERT_FATAL(tcp_start(&s, m));
  static char big[20000];
  memcpy(big, "Bearer ", 7);
  memset(big + 7, 'a', sizeof big - 8);
  int st = curl_get(s.port, "/public", big);
  CU_ASSERT(st == 431 || st == 401);
  tcp_stop(&s);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("authn", NULL, NULL);
  CU_add_test(s, "mesh__b64url_decode", test_mesh__b64url_decode);
  CU_add_test(s, "mesh__jwks_parse", test_mesh__jwks_parse);
  CU_add_test(s, "mesh__authn_decide_pyjwt_table",
              test_mesh__authn_decide_pyjwt_table);
  CU_add_test(s, "mesh__jwt_altered_signature", test_mesh__jwt_altered_signature);
  CU_add_test(s, "mesh_config_check_authn", test_mesh_config_check_authn);
  CU_add_test(s, "mesh__authn_set_jwt_bundle", test_mesh__authn_set_jwt_bundle);
  CU_add_test(s, "mesh__jwt_cache", test_mesh__jwt_cache);
  CU_add_test(s, "authn_token_cache_metrics", test_authn_token_cache_metrics);
  CU_add_test(s, "mesh__authz_eval_request_auth",
              test_mesh__authz_eval_request_auth);
  CU_add_test(s, "authn_http_curl_jwks", test_authn_http_curl_jwks);
  CU_add_test(s, "authn_jwks_down_fails_closed",
              test_authn_jwks_down_fails_closed);
  CU_add_test(s, "authn_jwks_bad_keys", test_authn_jwks_bad_keys);
  CU_add_test(s, "authn_http2_curl", test_authn_http2_curl);
  CU_add_test(s, "authn_oversized_header", test_authn_oversized_header);
}

int main(void) { return th_run_suites("test_authn", add); }
