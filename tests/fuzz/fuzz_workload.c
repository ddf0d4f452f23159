/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the Workload API decoders (protobuf-c over libmesh's
 * workload.proto).  The first byte picks the target:
 *   0  X509SVIDResponse, no hint, then the selected SVID built into creds
 *      (DER chain, PKCS#8 key, bundles: mbedTLS parsers and SVID rules);
 *   1  X509SVIDResponse with the hint "a";
 *   2  JWTBundlesResponse;  3  JWTSVIDResponse;  4  a trust domain key;
 *   5  ValidateJWTSVIDResponse, claims through the Struct reader;
 *   6  a bare google.protobuf.Struct (wl_struct.c);
 *   7  X509BundlesResponse, then the bundles built into a trust set.
 * Properties: a decoded set has a chain, a key and the own trust domain's
 * bundle first, every bundle's trust domain is valid; JWT bundles are
 * NUL-terminated with their stated length; a decoded token is non-empty;
 * a decoded Struct is a JSON object that prints and parses back equal;
 * nothing leaks or crashes on any input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "workload/workload.h"

static void x509(const uint8_t *d, size_t n, const char *hint) {
  mesh__wl_x509_t x;
  mesh_status_t st;
  if (mesh__wl_x509_decode(d, n, hint, "fuzz", &x, &st) != MESH_OK)
    return;
  FUZZ_ASSERT(x.der.chain && x.der.chain_len && x.der.key && x.der.key_len);
  FUZZ_ASSERT(x.der.nbundles >= 1 && x.id && x.id[0]);
  for (size_t i = 0; i < x.der.nbundles; i++)
    FUZZ_ASSERT(mesh__spiffe_td_validate(x.der.bundles[i].td, NULL) ==
                MESH_OK);
  if (hint)
    FUZZ_ASSERT(x.hint && !strcmp(x.hint, hint));
  mesh__creds_t *c = NULL;
  if (mesh__creds_from_der(&x.der, 1, &c, &st) == MESH_OK) {
    FUZZ_ASSERT(c && c->nbundles == x.der.nbundles);
    FUZZ_ASSERT(!strcmp(c->bundles[0].td, c->td));
    mesh__creds_release(c);
  } else {
    FUZZ_ASSERT(c == NULL && st.code < 0);
  }
  mesh__wl_x509_free(&x);
}

static void jwt_bundles(const uint8_t *d, size_t n) {
  mesh__jwt_bundles_t *b = NULL;
  mesh_status_t st;
  if (mesh__wl_jwt_bundles_decode(d, n, &b, &st) != MESH_OK) {
    FUZZ_ASSERT(b == NULL);
    return;
  }
  for (size_t i = 0; i < b->n; i++) {
    FUZZ_ASSERT(b->v[i].jwks[b->v[i].jwks_len] == '\0');
    FUZZ_ASSERT(mesh__spiffe_td_validate(b->v[i].td, NULL) == MESH_OK);
    FUZZ_ASSERT(mesh__jwt_bundles_find(b, b->v[i].td) != NULL);
  }
  mesh__jwt_bundles_release(b);
}

static void jwt_svid(const uint8_t *d, size_t n) {
  char *tok = NULL, id[MESH_SPIFFE_ID_MAX + 1];
  mesh_status_t st;
  if (mesh__wl_jwt_svid_decode(d, n, NULL, &tok, id, sizeof id, &st) ==
      MESH_OK)
    FUZZ_ASSERT(tok && tok[0]);
  else
    FUZZ_ASSERT(tok == NULL);
  free(tok);
}

static void claims(const uint8_t *d, size_t n, bool bare) {
  cJSON *j = NULL;
  char id[MESH_SPIFFE_ID_MAX + 1];
  mesh_status_t st;
  int rc = bare ? mesh__wl_struct_json(d, n, &j)
                : mesh__wl_validate_decode(d, n, id, sizeof id, &j, &st);
  if (rc != MESH_OK) {
    FUZZ_ASSERT(j == NULL);
    return;
  }
  if (!bare)
    FUZZ_ASSERT(mesh_spiffe_id_validate(id, NULL) == MESH_OK);
  FUZZ_ASSERT(cJSON_IsObject(j));
  char *txt = cJSON_PrintUnformatted(j);
  cJSON *back = txt ? cJSON_Parse(txt) : NULL;
  FUZZ_ASSERT(!txt || (back && cJSON_Compare(j, back, true)));
  cJSON_Delete(back);
  free(txt);
  cJSON_Delete(j);
}

static void x509_bundles(const uint8_t *d, size_t n) {
  mesh__wl_bundles_t b;
  mesh_status_t st;
  if (mesh__wl_x509_bundles_decode(d, n, &b, &st) != MESH_OK) {
    FUZZ_ASSERT(b.resp == NULL && b.n == 0);
    return;
  }
  FUZZ_ASSERT(b.n >= 1);
  for (size_t i = 0; i < b.n; i++)
    FUZZ_ASSERT(b.v[i].len > 0 &&
                mesh__spiffe_td_validate(b.v[i].td, NULL) == MESH_OK);
  mesh__creds_t *t = NULL;
  if (mesh__creds_trust_from_der(b.v, b.n, "fuzz", 1, &t, &st) == MESH_OK) {
    FUZZ_ASSERT(t && t->nbundles == b.n);
    for (size_t i = 0; i < b.n; i++)
      FUZZ_ASSERT(mesh__creds_bundle(t, b.v[i].td) != NULL);
    mesh__creds_release(t);
  } else {
    FUZZ_ASSERT(t == NULL);
  }
  mesh__wl_bundles_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  switch (data[0] % 8) {
  case 0:
    x509(d, n, NULL);
    break;
  case 1:
    x509(d, n, "a");
    break;
  case 2:
    jwt_bundles(d, n);
    break;
  case 3:
    jwt_svid(d, n);
    break;
  case 5:
    claims(d, n, false);
    break;
  case 6:
    claims(d, n, true);
    break;
  case 7:
    x509_bundles(d, n);
    break;
  default: {
    char *s = malloc(n + 1), td[MESH_TRUST_DOMAIN_MAX + 1];
    if (!s)
      return 0;
    memcpy(s, d, n);
    s[n] = '\0';
    if (mesh__wl_td_key(s, td, sizeof td) == MESH_OK)
      FUZZ_ASSERT(mesh__spiffe_td_validate(td, NULL) == MESH_OK);
    free(s);
  }
  }
  return 0;
}
