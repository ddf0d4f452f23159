/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz request authentication's parsers: compact JWS tokens, JWKS
 * documents, and the decision over both.
 * Input: the first byte picks a mode, the rest is
 *   0: a token, checked against a fixed JWKS (one P-256 key) and a fixed
 *      valid token (signed by tests/test_authn_peer.py's PyJWT, no exp);
 *   1: a JWKS document (any shape);
 *   2: edits (offset byte, value byte pairs) applied to the valid token.
 * Properties: nothing crashes or leaks; a token is accepted only if its
 * signed part (header "." payload) is exactly the valid token's (nobody
 * can forge ES256 here); an edited token that differs from the valid one
 * in its signature text is never accepted (strict base64url: one text per
 * signature); a JWKS that parses has 1..64 keys. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authn/authn.h"
#include "fuzz.h"

static const char jwks_text[] =
    "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"fz\", \"x\": "
    "\"nKp194pcc1vRZyvqzf2iiqK82JWD1uZs7-ZnNs7OJgM\", \"y\": "
    "\"fjw0c3RImva8BcCsZWwqyFZNWOE0_xbNjR26_DYfHjg\"}]}";
static const char valid[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImZ6IiwidHlwIjoiSldUIn0."
    "eyJpc3MiOiJodHRwczovL2Z1enouZXhhbXBsZSIsInN1YiI6InMiLCJhdWQiOiJhIiwiaWF0"
    "IjoxNzAwMDAwMDAwfQ."
    "Tbp8v2fenw1LWX88ZcyB5XnSywfIhucEPvw3Kij8BkO_sl1mFlN0X2IFJcYzhxJwJXbRIJ7s"
    "SjYu8O62bksaIA";

static mesh__jwks_t *keys(void) {
  static mesh__jwks_t *k;
  if (!k)
    mesh__jwks_parse(jwks_text, strlen(jwks_text), &k, NULL, NULL, NULL);
  return k;
}

/* Verify tok fully (signature and claims at a fixed time).  true: accepted. */
static bool accepted(const char *tok, size_t len) {
  mesh__jwt_t t;
  if (mesh__jwt_decode(tok, len, &t) != MESH__JWT_OK)
    return false;
  static const char *const aud[] = {"a"};
  bool ok = mesh__jwt_check_sig(&t, keys()) == MESH__JWT_OK &&
            mesh__jwt_check_claims(&t, 1700000100, 60, aud, 1) == MESH__JWT_OK;
  if (ok) {
    const char *dot = strrchr(valid, '.');
    FUZZ_ASSERT(t.sig_input_len == (size_t)(dot - valid));
    FUZZ_ASSERT(memcmp(t.sig_input, valid, t.sig_input_len) == 0);
  }
  mesh__jwt_clear(&t);
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool checked; /* the fixed token verifies: once, it costs an ECDSA */
  if (!checked) {
    FUZZ_ASSERT(keys() != NULL);
    FUZZ_ASSERT(accepted(valid, strlen(valid)));
    checked = true;
  }
  if (size == 0)
    return 0;
  int mode = data[0] % 3;
  data++;
  size--;
  if (mode == 0) {
    accepted((const char *)data, size);
  } else if (mode == 1) {
    mesh__jwks_t *k = NULL;
    if (mesh__jwks_parse((const char *)data, size, &k, NULL, NULL, NULL) ==
        MESH_OK) {
      FUZZ_ASSERT(k && k->n >= 1 && k->n <= MESH__JWKS_MAX_KEYS);
      mesh__jwks_unref(k);
    }
  } else {
    char tok[sizeof valid];
    memcpy(tok, valid, sizeof valid);
    size_t n = sizeof valid - 1;
    size_t sig = (size_t)(strrchr(valid, '.') - valid) + 1;
    for (size_t i = 0; i + 1 < size; i += 2) {
      size_t at = sig + data[i] % (n - sig);
      tok[at] = (char)data[i + 1];
    }
    bool same = memcmp(tok, valid, n) == 0;
    bool ok = accepted(tok, strnlen(tok, n));
    FUZZ_ASSERT(same ? ok : !ok);
  }
  return 0;
}
