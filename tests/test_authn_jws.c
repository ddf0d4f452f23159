/* SPDX-License-Identifier: Apache-2.0 */
/* authn's crypto seam (jws_mbedtls.c or jws_openssl.c, whichever the build
 * links): one table of expected results, written by an independent
 * implementation (tests/test_authn_peer.py, python3-cryptography), drives
 * both backends — this binary runs in the default (mbedTLS) tree and in the
 * tls-openssl stage's tree.  Rows are the places where two crypto libraries
 * could disagree: RSA public key rules, EC point checks, the JWS r||s form
 * of ECDSA (DER edge cases, r and s out of [1, n-1], malleated s), PSS salt
 * and MGF1 hash.  Then many threads verify with the same keys at once
 * (keys are prepared at load; TSan checks nothing is written while
 * verifying). */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authn/authn.h"
#include "core/core.h"

static const char *seam_dir(void) {
  static char dir[512];
  if (dir[0])
    return dir;
  snprintf(dir, sizeof dir, "%s", th_path("jwt"));
  const char *src = getenv("srcdir");
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 '%s/tests/test_authn_peer.py' mint '%s' "
           "https://issuer.example aud1",
           src ? src : "..", dir);
  if (th_sh(cmd) != 0)
    dir[0] = '\0';
  return dir;
}

static cJSON *seam(void) {
  char p[700];
  snprintf(p, sizeof p, "%s/seam.json", seam_dir());
  size_t len = 0;
  char *txt = th_slurp(p, &len);
  cJSON *doc = txt ? cJSON_ParseWithLength(txt, len) : NULL;
  free(txt);
  return doc;
}

/* hex -> bytes (malloc'd, at least 1 byte); NULL on bad hex. */
static uint8_t *unhex(const char *h, size_t *len) {
  size_t n = strlen(h);
  uint8_t *b = malloc(n / 2 + 1);
  if (!b || n % 2) {
    free(b);
    return NULL;
  }
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(h + 2 * i, "%2x", &v) != 1) {
      free(b);
      return NULL;
    }
    b[i] = (uint8_t)v;
  }
  *len = n / 2;
  return b;
}

static int kind_of(const char *k) {
  return strcmp(k, "rsa") == 0     ? MESH__JWK_RSA
         : strcmp(k, "ec256") == 0 ? MESH__JWK_EC256
         : strcmp(k, "ec384") == 0 ? MESH__JWK_EC384
                                   : MESH__JWK_EC521;
}

/* Import one key from its two hex parameters (n, e or x, y). */
static int import(int kind, const char *h1, const char *h2,
                  mesh__jwk_key_t **out, const char **why) {
  size_t l1 = 0, l2 = 0;
  uint8_t *a = unhex(h1, &l1), *b = unhex(h2, &l2);
  int rc = MESH_ERR_INTERNAL;
  if (a && b)
    rc = kind == MESH__JWK_RSA ? mesh__jwk_key_rsa(a, l1, b, l2, out, why)
                               : mesh__jwk_key_ec(kind, a, l1, b, l2, out, why);
  free(a);
  free(b);
  return rc;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_mesh__jwk_key_import_table(void) {
  cJSON *doc = seam();
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  const cJSON *row;
  int rows = 0;
  cJSON_ArrayForEach(row, cJSON_GetObjectItem(doc, "keys")) {
    const char *name = str(row, "name"), *expect = str(row, "expect");
    mesh__jwk_key_t *k = NULL;
    const char *why = NULL;
    int rc = import(kind_of(str(row, "kind")), str(row, "p1"), str(row, "p2"),
                    &k, &why);
    bool ok = strcmp(expect, "ok") == 0;
    if (ok ? rc != MESH_OK || !k
           : rc != MESH_ERR_PARSE || k || !why || strcmp(why, expect) != 0)
      fprintf(stderr, "key row %s: rc %d, why \"%s\", expected \"%s\"\n", name,
              rc, why ? why : "", expect);
    CU_ASSERT(ok ? rc == MESH_OK && k
                 : rc == MESH_ERR_PARSE && !k && why && strcmp(why, expect) == 0);
    mesh__jwk_key_free(k);
    rows++;
  }
  CU_ASSERT(rows >= 20);
  cJSON_Delete(doc);
}

typedef struct keyset {
  mesh__jwk_key_t *k[5]; /* by kind */
} keyset_t;

static bool keys_load(const cJSON *doc, keyset_t *ks) {
  memset(ks, 0, sizeof *ks);
  static const char *const kinds[] = {"rsa", "ec256", "ec384", "ec521"};
  const cJSON *km = cJSON_GetObjectItem(doc, "key");
  for (int i = 0; i < 4; i++) {
    const cJSON *p = cJSON_GetObjectItem(km, kinds[i]);
    int kind = kind_of(kinds[i]);
    if (cJSON_GetArraySize(p) != 2 ||
        import(kind, cJSON_GetArrayItem(p, 0)->valuestring,
               cJSON_GetArrayItem(p, 1)->valuestring, &ks->k[kind],
               NULL) != MESH_OK)
      return false;
  }
  return true;
}

static void keys_free(keyset_t *ks) {
  for (int i = 0; i < 5; i++)
    mesh__jwk_key_free(ks->k[i]);
}

/* One signature row: @return the seam's verdict (MESH_OK / DENIED). */
static int verify_row(const keyset_t *ks, const char *msg, const cJSON *row) {
  int kind = kind_of(str(row, "key"));
  size_t sl = 0;
  uint8_t *sig = unhex(str(row, "sig"), &sl);
  if (!sig)
    return MESH_ERR_INTERNAL;
  int rc = mesh__jws_verify(mesh__jws_alg_parse(str(row, "alg")), kind,
                            ks->k[kind], (const uint8_t *)msg, strlen(msg),
                            sig, sl);
  free(sig);
  return rc;
}

static void test_mesh__jws_verify_table(void) {
  cJSON *doc = seam();
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  keyset_t ks;
  CU_ASSERT_FATAL(keys_load(doc, &ks));
  const char *msg = str(doc, "msg");
  const cJSON *row;
  int rows = 0, oks = 0;
  cJSON_ArrayForEach(row, cJSON_GetObjectItem(doc, "sigs")) {
    bool want = cJSON_IsTrue(cJSON_GetObjectItem(row, "expect"));
    int rc = verify_row(&ks, msg, row);
    if (rc != (want ? MESH_OK : MESH_ERR_DENIED))
      fprintf(stderr, "sig row %s: rc %d, expected %s\n", str(row, "name"), rc,
              want ? "ok" : "denied");
    CU_ASSERT_EQUAL(rc, want ? MESH_OK : MESH_ERR_DENIED);
    rows++;
    oks += want;
  }
  CU_ASSERT(rows >= 30 && oks >= 6);
  /* a NULL key or a kind that does not match the key is a refusal */
  CU_ASSERT_EQUAL(mesh__jws_verify(MESH__JWS_ES256, MESH__JWK_EC256, NULL,
                                   (const uint8_t *)"x", 1,
                                   (const uint8_t *)"y", 1),
                  MESH_ERR_DENIED);
  CU_ASSERT_EQUAL(mesh__jws_verify(MESH__JWS_ES256, MESH__JWK_EC256,
                                   ks.k[MESH__JWK_EC384], (const uint8_t *)"x",
                                   1, (const uint8_t *)"y", 1),
                  MESH_ERR_DENIED);
  CU_ASSERT_EQUAL(mesh__jws_verify(MESH__JWS_NONE, MESH__JWK_RSA,
                                   ks.k[MESH__JWK_RSA], (const uint8_t *)"x",
                                   1, (const uint8_t *)"y", 1),
                  MESH_ERR_DENIED);
  /* the token cache's hash: SHA-256("abc") (FIPS 180-2 B.1) */
  uint8_t h[32];
  CU_ASSERT_EQUAL(mesh__jws_sha256("abc", 3, h), MESH_OK);
  CU_ASSERT_EQUAL(memcmp(h, "\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41\x40\xde"
                            "\x5d\xae\x22\x23\xb0\x03\x61\xa3\x96\x17\x7a\x9c"
                            "\xb4\x10\xff\x61\xf2\x00\x15\xad", 32), 0);
  keys_free(&ks);
  cJSON_Delete(doc);
}

/* ---- the same keys from several threads at once ------------------------------ */

#define VTHREADS 4
#define VROUNDS 3 /* over the whole table each; bounded by count */

typedef struct vjob {
  const keyset_t *ks;
  const cJSON *doc;
  _Atomic int *wrong;
} vjob_t;

static void *verifier(void *arg) {
  vjob_t *j = arg;
  const char *msg = str(j->doc, "msg");
  for (int r = 0; r < VROUNDS; r++) {
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(j->doc, "sigs")) {
      bool want = cJSON_IsTrue(cJSON_GetObjectItem(row, "expect"));
      if (verify_row(j->ks, msg, row) != (want ? MESH_OK : MESH_ERR_DENIED))
        atomic_fetch_add(j->wrong, 1);
    }
  }
  return NULL;
}

static void test_mesh__jws_verify_concurrent(void) {
  cJSON *doc = seam();
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  keyset_t ks;
  CU_ASSERT_FATAL(keys_load(doc, &ks));
  _Atomic int wrong = 0;
  vjob_t job = {&ks, doc, &wrong};
  pthread_t t[VTHREADS];
  int started = 0;
  for (int i = 0; i < VTHREADS; i++)
    started += pthread_create(&t[i], NULL, verifier, &job) == 0;
  CU_ASSERT_EQUAL(started, VTHREADS);
  for (int i = 0; i < started; i++)
    pthread_join(t[i], NULL);
  CU_ASSERT_EQUAL(atomic_load(&wrong), 0);
  keys_free(&ks);
  cJSON_Delete(doc);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("authn_jws", NULL, NULL);
  CU_add_test(s, "mesh__jwk_key_import_table", test_mesh__jwk_key_import_table);
  CU_add_test(s, "mesh__jws_verify_table", test_mesh__jws_verify_table);
  CU_add_test(s, "mesh__jws_verify_concurrent", test_mesh__jws_verify_concurrent);
}

int main(void) { return th_run_suites("test_authn_jws", add); }
