/* SPDX-License-Identifier: Apache-2.0 */
/* Workload API decoding and DER credentials, table-driven, no agent:
 * X509SVIDResponse messages built with protobuf-c from certificates of the
 * library's development CA (two trust domains). */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "identity/pemfile.h"
#include "workload/proto/workload.pb-c.h"
#include "workload/workload.h"

typedef struct der {
  uint8_t *p;
  size_t n;
} der_t;

static der_t crt_der(const char *path) {
  mesh__x509_chain_t *c = mesh__x509_chain_new();
  der_t d = {0};
  if (mesh__pem_load_crts(c, path, NULL) == MESH_OK &&
      mesh__x509_der(mesh__x509_chain_at(c, 0), &d.p, &d.n) != 0)
    d = (der_t){0};
  mesh__x509_chain_free(c);
  return d;
}

/* The key as DER (the dev CA writes SEC1 PEM), by the openssl tool. */
static der_t key_der(const char *path) {
  der_t d = {0};
  char out[600], cmd[1400];
  snprintf(out, sizeof out, "%s.der", path);
  snprintf(cmd, sizeof cmd, "openssl pkey -in '%s' -outform DER -out '%s'",
           path, out);
  if (th_sh(cmd) == 0)
    d.p = (uint8_t *)th_slurp(out, &d.n);
  return d;
}

static der_t a_crt, a_key, b_key, ca_ex, ca_other, garbage;

static int setup(void) {
  const char *ca = th_ca("example.org");
  th_ca("other.org");
  if (!ca || !th_svid("example.org", "spiffe://example.org/a", "wa", 0, 0, 0) ||
      !th_svid("example.org", "spiffe://example.org/b", "wb", 0, 0, 0))
    return 1;
  a_crt = crt_der(th_path("wa.crt"));
  a_key = key_der(th_path("wa.key"));
  b_key = key_der(th_path("wb.key"));
  ca_ex = crt_der(th_path("example.org-ca.crt"));
  ca_other = crt_der(th_path("other.org-ca.crt"));
  static uint8_t junk[] = {0x30, 0x03, 0x02, 0x01};
  garbage = (der_t){junk, sizeof junk};
  return a_crt.n && a_key.n && b_key.n && ca_ex.n && ca_other.n ? 0 : 1;
}

/* ---- mesh__creds_from_der ----------------------------------------------------- */

static void test_creds_from_der(void) {
  static const struct {
    const char *name;
    int chain, key;          /* 0 good, 1 other, 2 garbage */
    const char *td0;         /* first bundle's trust domain */
    int b0;                  /* 0 example CA, 1 other CA, 2 leaf, 3 garbage */
    const char *td1;         /* optional second bundle (other CA) */
    int want;
  } cases[] = {
      {"valid", 0, 0, "example.org", 0, NULL, MESH_OK},
      {"federated", 0, 0, "example.org", 0, "other.org", MESH_OK},
      {"key of another SVID", 0, 1, "example.org", 0, NULL,
       MESH_ERR_KEY_MISMATCH},
      {"garbage chain", 2, 0, "example.org", 0, NULL, MESH_ERR_PEM},
      {"garbage key", 0, 2, "example.org", 0, NULL, MESH_ERR_PEM},
      {"no own bundle", 0, 0, "other.org", 1, NULL, MESH_ERR_TRUST_DOMAIN},
      {"wrong CA for own td", 0, 0, "example.org", 1, NULL,
       MESH_ERR_CERT_UNTRUSTED},
      {"leaf as bundle", 0, 0, "example.org", 2, NULL, MESH_ERR_SVID},
      {"garbage bundle", 0, 0, "example.org", 3, NULL, MESH_ERR_PEM},
      {"trust domain twice", 0, 0, "example.org", 0, "example.org",
       MESH_ERR_CONFIG},
      {"bad trust domain", 0, 0, "Bad..td", 0, NULL, MESH_ERR_SPIFFE_ID},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    der_t chain = cases[i].chain == 2 ? garbage : a_crt;
    der_t key = cases[i].key == 0 ? a_key : cases[i].key == 1 ? b_key
                                                              : garbage;
    der_t b0 = cases[i].b0 == 0   ? ca_ex
               : cases[i].b0 == 1 ? ca_other
               : cases[i].b0 == 2 ? a_crt
                                  : garbage;
    mesh__der_bundle_t bs[2] = {{cases[i].td0, b0.p, b0.n},
                                {cases[i].td1, ca_other.p, ca_other.n}};
    mesh__creds_der_t src = {"unix:///test", chain.p, chain.n, key.p, key.n,
                             bs, cases[i].td1 ? 2 : 1};
    mesh__creds_t *c = NULL;
    mesh_status_t st;
    int rc = mesh__creds_from_der(&src, 7, &c, &st);
    if (rc != cases[i].want)
      fprintf(stderr, "case %s: %s (%s)\n", cases[i].name, mesh_code_name(rc),
              st.message);
    CU_ASSERT_EQUAL(rc, cases[i].want);
    if (rc == MESH_OK) {
      CU_ASSERT_STRING_EQUAL(c->id, "spiffe://example.org/a");
      CU_ASSERT_EQUAL(c->generation, 7);
      CU_ASSERT_EQUAL(c->nbundles, src.nbundles);
    } else {
      CU_ASSERT_PTR_NULL(c);
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "unix:///test"));
    }
    mesh__creds_release(c);
  }
}

/* ---- X509SVIDResponse ------------------------------------------------------------- */

static uint8_t *pack(X509SVID **svids, size_t n, const char *fed_key,
                     size_t *len) {
  X509SVIDResponse r = X509_SVIDRESPONSE__INIT;
  r.n_svids = n;
  r.svids = svids;
  X509SVIDResponse__FederatedBundlesEntry e =
      X509_SVIDRESPONSE__FEDERATED_BUNDLES_ENTRY__INIT;
  X509SVIDResponse__FederatedBundlesEntry *ep = &e;
  if (fed_key) {
    e.key = (char *)fed_key;
    e.value.data = ca_other.p;
    e.value.len = ca_other.n;
    r.n_federated_bundles = 1;
    r.federated_bundles = &ep;
  }
  *len = x509_svidresponse__get_packed_size(&r);
  uint8_t *b = malloc(*len + 1);
  x509_svidresponse__pack(&r, b);
  return b;
}

static void svid(X509SVID *s, const char *id, const char *hint, bool key) {
  x509_svid__init(s);
  s->spiffe_id = (char *)id;
  s->hint = (char *)(hint ? hint : "");
  s->x509_svid = (ProtobufCBinaryData){a_crt.n, a_crt.p};
  if (key)
    s->x509_svid_key = (ProtobufCBinaryData){a_key.n, a_key.p};
  s->bundle = (ProtobufCBinaryData){ca_ex.n, ca_ex.p};
}

static void test_x509_decode(void) {
  X509SVID s1, s2, s3;
  svid(&s1, "spiffe://example.org/a", "internal", true);
  svid(&s2, "spiffe://example.org/a", "external", true);
  svid(&s3, "spiffe://example.org/a", NULL, false); /* no key */
  X509SVID *two[] = {&s1, &s2}, *nokey[] = {&s1, &s3};
  static const struct {
    const char *name;
    int set;            /* 0 two, 1 nokey, 2 none, 3 garbage */
    const char *hint, *fed;
    int want;
    size_t nbundles;
    const char *got_hint;
  } cases[] = {
      {"first by default", 0, NULL, NULL, MESH_OK, 1, "internal"},
      {"by hint", 0, "external", NULL, MESH_OK, 1, "external"},
      {"hint missing", 0, "other", NULL, MESH_ERR_NOT_FOUND, 0, NULL},
      {"empty set", 2, NULL, NULL, MESH_ERR_NOT_FOUND, 0, NULL},
      {"default field", 1, NULL, NULL, MESH_ERR_PARSE, 0, NULL},
      {"garbage", 3, NULL, NULL, MESH_ERR_PARSE, 0, NULL},
      {"federated spiffe://", 0, NULL, "spiffe://other.org", MESH_OK, 2,
       "internal"},
      {"federated bare", 0, NULL, "other.org", MESH_OK, 2, "internal"},
      {"federated own td skipped", 0, NULL, "spiffe://example.org", MESH_OK,
       1, "internal"},
      {"federated bad key", 0, NULL, "spiffe://", MESH_ERR_PARSE, 0, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    uint8_t *b = cases[i].set == 3
                     ? (uint8_t *)strdup("\xff\xff\xff\xff")
                     : pack(cases[i].set == 0   ? two
                            : cases[i].set == 1 ? nokey
                                                : NULL,
                            cases[i].set == 2 ? 0 : 2, cases[i].fed, &len);
    if (cases[i].set == 3)
      len = 4;
    mesh__wl_x509_t x;
    mesh_status_t st;
    int rc = mesh__wl_x509_decode(b, len, cases[i].hint, "t", &x, &st);
    if (rc != cases[i].want)
      fprintf(stderr, "case %s: %s (%s)\n", cases[i].name, mesh_code_name(rc),
              st.message);
    CU_ASSERT_EQUAL(rc, cases[i].want);
    if (rc == MESH_OK) {
      CU_ASSERT_EQUAL(x.der.nbundles, cases[i].nbundles);
      CU_ASSERT_STRING_EQUAL(x.der.bundles[0].td, "example.org");
      CU_ASSERT(x.hint && !strcmp(x.hint, cases[i].got_hint));
      mesh__creds_t *c = NULL;
      CU_ASSERT_EQUAL(mesh__creds_from_der(&x.der, 1, &c, &st), MESH_OK);
      mesh__creds_release(c);
      mesh__wl_x509_free(&x);
    }
    free(b);
  }
}

static void test_jwt_decode(void) {
  JWTBundlesResponse r = JWTBUNDLES_RESPONSE__INIT;
  JWTBundlesResponse__BundlesEntry e = JWTBUNDLES_RESPONSE__BUNDLES_ENTRY__INIT;
  JWTBundlesResponse__BundlesEntry *ep = &e;
  e.key = "spiffe://example.org";
  e.value = (ProtobufCBinaryData){11, (uint8_t *)"{\"keys\":[]}"};
  r.n_bundles = 1;
  r.bundles = &ep;
  uint8_t buf[256];
  size_t n = jwtbundles_response__pack(&r, buf);
  mesh__jwt_bundles_t *b = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh__wl_jwt_bundles_decode(buf, n, &b, &st), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh__jwt_bundles_find(b, "example.org"),
                         "{\"keys\":[]}");
  CU_ASSERT_PTR_NULL(mesh__jwt_bundles_find(b, "other.org"));
  mesh__jwt_bundles_release(b);
  e.key = "not a td";
  n = jwtbundles_response__pack(&r, buf);
  CU_ASSERT_EQUAL(mesh__wl_jwt_bundles_decode(buf, n, &b, &st), MESH_ERR_PARSE);
  CU_ASSERT_PTR_NULL(b);
  /* JWTSVIDResponse: the first, or by hint. */
  JWTSVIDResponse jr = JWTSVIDRESPONSE__INIT;
  JWTSVID j1 = JWTSVID__INIT, j2 = JWTSVID__INIT, *js[] = {&j1, &j2};
  j1.spiffe_id = "spiffe://example.org/a";
  j1.svid = "t1";
  j2.spiffe_id = "spiffe://example.org/b";
  j2.svid = "t2";
  j2.hint = "h";
  jr.n_svids = 2;
  jr.svids = js;
  n = jwtsvidresponse__pack(&jr, buf);
  char *tok, id[300];
  CU_ASSERT_EQUAL(mesh__wl_jwt_svid_decode(buf, n, NULL, &tok, id, sizeof id,
                                           &st),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(tok, "t1");
  free(tok);
  CU_ASSERT_EQUAL(mesh__wl_jwt_svid_decode(buf, n, "h", &tok, id, sizeof id,
                                           &st),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, "spiffe://example.org/b");
  free(tok);
  CU_ASSERT_EQUAL(mesh__wl_jwt_svid_decode(buf, n, "zz", &tok, id, sizeof id,
                                           &st),
                  MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NULL(tok);
  uint8_t *req;
  size_t rl;
  CU_ASSERT_EQUAL_FATAL(mesh__wl_jwt_request("aud1", &req, &rl), MESH_OK);
  JWTSVIDRequest *pr = jwtsvidrequest__unpack(NULL, rl, req);
  CU_ASSERT_FATAL(pr && pr->n_audience == 1);
  CU_ASSERT_STRING_EQUAL(pr->audience[0], "aud1");
  jwtsvidrequest__free_unpacked(pr, NULL);
  free(req);
}

/* ---- google.protobuf.Struct (ValidateJWTSVIDResponse.claims) ---------------- */

static size_t put_varint(uint8_t *b, uint64_t v) {
  size_t n = 0;
  do {
    b[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v)
      b[n] |= 0x80;
    n++;
  } while (v);
  return n;
}

/* A LEN field of number num around in[0..n) into out; returns its size. */
static size_t wrap(uint8_t *out, int num, const uint8_t *in, size_t n) {
  size_t k = put_varint(out, (uint64_t)(num << 3 | 2));
  k += put_varint(out + k, n);
  memmove(out + k, in, n);
  return k + n;
}

/* depth Structs nested through {"k": {"k": ...}}. */
static size_t nested(uint8_t *buf, size_t cap, int depth) {
  static uint8_t a[4096], b[4096];
  size_t n = 0; /* the innermost Struct: empty */
  for (int i = 0; i < depth && n + 32 < cap; i++) {
    size_t v = wrap(a, 5, buf, n);          /* Value.struct_value */
    size_t e = wrap(b, 1, (const uint8_t *)"k", 1);
    e += wrap(b + e, 2, a, v);              /* entry: key, value */
    n = wrap(buf, 1, b, e);                 /* Struct.fields */
  }
  return n;
}

static uint8_t hexval(char c) {
  return (uint8_t)(c <= '9' ? c - '0' : c - 'a' + 10);
}

static void test_struct_json(void) {
  struct {
    const char *hex;   /* wire bytes (NULL: built below) */
    const char *json;  /* expected JSON, NULL: MESH_ERR_PARSE */
  } cases[] = {
      /* python3-protobuf: Struct.update({'a': [1, True, None, 'x'],
       * 'b': {'c': 2.5}}).SerializeToString() */
      {"0a170a016212122a100a0e0a016312091100000000000004400a1f0a0161121a3218"
       "0a0911000000000000f03f0a0220010a0208000a031a0178",
       "{\"b\":{\"c\":2.5},\"a\":[1,true,null,\"x\"]}"},
      {"", "{}"},
      {"1001", "{}"},                                 /* unknown varint field */
      {"0a050a016112", NULL},                         /* truncated entry */
      {"0a0d0a0161120811000000000000f87f", NULL},     /* NaN */
      {"0a070a0261001202", NULL},                     /* NUL in a key */
      {"0b", NULL},                                   /* a group */
      {"0a0a0a0161120508001a0161", "{\"a\":\"a\"}"}, /* last kind wins */
      {"0a080a01611203220161", "{\"a\":null}"},    /* wrong wire type: skipped */
      {"0a040a016112", NULL},                         /* cut inside */
      {"0a030a0161", "{\"a\":null}"},                 /* entry without value */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t buf[256];
    size_t n = strlen(cases[i].hex) / 2;
    for (size_t k = 0; k < n; k++)
      buf[k] = (uint8_t)(hexval(cases[i].hex[2 * k]) << 4 |
                         hexval(cases[i].hex[2 * k + 1]));
    cJSON *j = NULL;
    int rc = mesh__wl_struct_json(buf, n, &j);
    char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
    if ((rc == MESH_OK) != (cases[i].json != NULL) ||
        (txt && cases[i].json && strcmp(txt, cases[i].json) != 0))
      fprintf(stderr, "struct case %zu: rc %d %s\n", i, rc, txt ? txt : "");
    CU_ASSERT_EQUAL(rc, cases[i].json ? MESH_OK : MESH_ERR_PARSE);
    if (cases[i].json && txt)
      CU_ASSERT_STRING_EQUAL(txt, cases[i].json);
    CU_ASSERT((rc == MESH_OK) == (j != NULL));
    free(txt);
    cJSON_Delete(j);
  }
  /* nesting: 15 Structs (30 levels with their Values) pass, 17 do not */
  static uint8_t deep[4096];
  for (int d = 14; d <= 18; d++) {
    size_t n = nested(deep, sizeof deep, d);
    cJSON *j = NULL;
    int rc = mesh__wl_struct_json(deep, n, &j);
    CU_ASSERT_EQUAL(rc, 2 * d + 1 <= MESH__WL_STRUCT_DEPTH ? MESH_OK
                                                           : MESH_ERR_PARSE);
    cJSON_Delete(j);
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("wl_decode", setup, NULL);
  CU_add_test(s, "creds_from_der", test_creds_from_der);
  CU_add_test(s, "x509_decode", test_x509_decode);
  CU_add_test(s, "jwt_decode", test_jwt_decode);
  CU_add_test(s, "struct_json", test_struct_json);
}

int main(void) { return th_run_suites("test_wl_decode", add); }
