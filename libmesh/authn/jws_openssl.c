/* SPDX-License-Identifier: Apache-2.0 */
/* The crypto seam of request authentication, over OpenSSL 3 (EVP_PKEY,
 * EVP_DigestVerify): the same functions, verdicts and reasons as
 * jws_mbedtls.c, linked instead of it in a --with-tls=openssl build.
 *
 * Where the libraries differ, this file does what mbedTLS does, so that
 * one table of expected results holds for both (tests/test_authn.c):
 *  - RSA keys: mbedtls_rsa_check_pubkey's rules are applied by hand
 *    (n odd, 128..8192 bits, e odd, >= 3, < n) before the 2048-bit floor;
 *    OpenSSL would accept an even modulus or e = 1 at import.  The other
 *    way round, OpenSSL refuses to verify with e over 64 bits when n is
 *    over 3072 bits (OPENSSL_RSA_MAX_PUBEXP_BITS): both seams refuse such
 *    a key at import.
 *  - EC keys: x and y exactly the coordinate size, the point on the curve
 *    (EVP_PKEY_public_check), as mbedtls_ecp_check_pubkey.
 *  - ES signatures: JWS r||s (RFC 7518 3.4) converted to the DER that
 *    OpenSSL verifies; r and s must lie in [1, n-1] on both.
 *  - PS*: MGF1 with the signature's hash, salt exactly the hash length.
 *
 * Keys are built once at JWKS load and only read afterwards: each
 * verification makes its own EVP_MD_CTX over the shared EVP_PKEY, which
 * OpenSSL 3 allows from many threads at once. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "authn/authn.h"

struct mesh__jwk_key {
  int kind;
  EVP_PKEY *pkey;
  size_t sig_len; /* RSA: bytes of n (a signature is exactly that long) */
};

/* mbedTLS reads at most MBEDTLS_MPI_MAX_LIMBS (10,000) 64-bit limbs of a
 * big number, leading zeros included, and an RSA modulus of at most
 * MBEDTLS_MPI_MAX_SIZE (1,024) bytes. */
#define JWS_MPI_MAX_INPUT 80000u
#define JWS_RSA_MAX_BITS 8192

static mesh__jwk_key_t *key_new(int kind) {
  mesh__jwk_key_t *k = calloc(1, sizeof *k);
  if (k)
    k->kind = kind;
  return k;
}

/* mbedtls_rsa_check_pubkey (with rsa_check_context) on n and e, and
 * OpenSSL's exponent cap for large moduli (jws_mbedtls.c applies it too). */
static bool rsa_pub_ok(const BIGNUM *n, const BIGNUM *e) {
  int bits = BN_num_bits(n);
  return BN_is_odd(n) && bits >= 128 && bits <= JWS_RSA_MAX_BITS &&
         BN_is_odd(e) && BN_num_bits(e) >= 2 && BN_cmp(e, n) < 0 &&
         (bits <= MESH__JWK_RSA_BIG_N_BITS ||
          BN_num_bits(e) <= MESH__JWK_RSA_BIG_N_MAX_E_BITS);
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *b) {
  OSSL_PARAM *p = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX *c = p ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
  EVP_PKEY *pk = NULL;
  if (!c || EVP_PKEY_fromdata_init(c) != 1 ||
      EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, p) != 1)
    pk = NULL;
  EVP_PKEY_CTX_free(c);
  OSSL_PARAM_free(p);
  return pk;
}

/* n and e -> k->pkey.  @return MESH_OK, MESH_ERR_PARSE (*bad set) or
 * MESH_ERR_NOMEM. */
static int rsa_build(mesh__jwk_key_t *k, BIGNUM *bn, BIGNUM *be,
                     const char **bad) {
  if (!rsa_pub_ok(bn, be)) {
    *bad = "not a valid RSA public key (n, e)";
    return MESH_ERR_PARSE;
  }
  if (BN_num_bits(bn) < (int)MESH__JWK_RSA_MIN_BITS) {
    *bad = "RSA modulus shorter than 2048 bits";
    return MESH_ERR_PARSE;
  }
  OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
  if (b && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) == 1)
    k->pkey = pkey_fromdata("RSA", b);
  OSSL_PARAM_BLD_free(b);
  k->sig_len = (size_t)BN_num_bytes(bn);
  return k->pkey ? MESH_OK : MESH_ERR_NOMEM; /* n, e checked: memory left */
}

int mesh__jwk_key_rsa(const uint8_t *n, size_t nlen, const uint8_t *e,
                      size_t elen, mesh__jwk_key_t **out, const char **why) {
  *out = NULL;
  const char *bad = "not a valid RSA public key (n, e)";
  if (nlen > JWS_MPI_MAX_INPUT || elen > JWS_MPI_MAX_INPUT) {
    if (why)
      *why = bad;
    return MESH_ERR_PARSE;
  }
  mesh__jwk_key_t *k = key_new(MESH__JWK_RSA);
  BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
  int rc = k && bn && be ? rsa_build(k, bn, be, &bad) : MESH_ERR_NOMEM;
  BN_free(bn);
  BN_free(be);
  ERR_clear_error();
  if (rc != MESH_OK) {
    mesh__jwk_key_free(k);
    if (rc == MESH_ERR_PARSE && why)
      *why = bad;
    return rc;
  }
  *out = k;
  return MESH_OK;
}

/* The point 04||x||y on the named curve, checked; NULL if not on it (or no
 * memory: *nomem set). */
static EVP_PKEY *ec_pkey(const char *curve, const uint8_t *x, const uint8_t *y,
                         size_t cs, bool *nomem) {
  uint8_t pt[1 + 2 * 66];
  pt[0] = 0x04; /* POINT_CONVERSION_UNCOMPRESSED */
  memcpy(pt + 1, x, cs);
  memcpy(pt + 1 + cs, y, cs);
  OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
  EVP_PKEY *pk = NULL;
  *nomem = !b || OSSL_PARAM_BLD_push_utf8_string(
                     b, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) != 1 ||
           OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                            1 + 2 * cs) != 1;
  if (!*nomem)
    pk = pkey_fromdata("EC", b); /* decoding the point refuses one off the curve */
  OSSL_PARAM_BLD_free(b);
  if (pk) {
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!c || EVP_PKEY_public_check(c) != 1) {
      EVP_PKEY_free(pk);
      pk = NULL;
      *nomem = c == NULL;
    }
    EVP_PKEY_CTX_free(c);
  }
  ERR_clear_error();
  return pk;
}

int mesh__jwk_key_ec(int kind, const uint8_t *x, size_t xlen,
                     const uint8_t *y, size_t ylen, mesh__jwk_key_t **out,
                     const char **why) {
  *out = NULL;
  size_t cs = mesh__jwk_ec_size(kind);
  if (xlen != cs || ylen != cs) {
    if (why)
      *why = "EC coordinate of the wrong length for the curve";
    return MESH_ERR_PARSE;
  }
  mesh__jwk_key_t *k = key_new(kind);
  if (!k)
    return MESH_ERR_NOMEM;
  bool nomem = false;
  const char *curve = kind == MESH__JWK_EC256   ? "P-256"
                      : kind == MESH__JWK_EC384 ? "P-384"
                                                : "P-521";
  k->pkey = ec_pkey(curve, x, y, cs, &nomem);
  if (!k->pkey) {
    mesh__jwk_key_free(k);
    if (nomem)
      return MESH_ERR_NOMEM;
    if (why)
      *why = "EC point not on the curve";
    return MESH_ERR_PARSE;
  }
  *out = k;
  return MESH_OK;
}

void mesh__jwk_key_free(mesh__jwk_key_t *k) {
  if (!k)
    return;
  EVP_PKEY_free(k->pkey);
  free(k);
}

/* JWS r||s (each cs bytes) -> DER ECDSA-Sig-Value in der (cap bytes).
 * @return its length, 0 on failure. */
static size_t es_der(const uint8_t *sig, size_t cs, uint8_t *der, size_t cap) {
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, (int)cs, NULL), *s = BN_bin2bn(sig + cs, (int)cs, NULL);
  size_t len = 0;
  if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
    r = s = NULL; /* owned by es now */
    int need = i2d_ECDSA_SIG(es, NULL);
    if (need > 0 && (size_t)need <= cap) {
      uint8_t *p = der;
      len = i2d_ECDSA_SIG(es, &p) == need ? (size_t)need : 0;
    }
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  return len;
}

/* EVP_DigestVerify of sig over msg with the algorithm's hash and padding. */
static int digest_verify(int alg, EVP_PKEY *pkey, const uint8_t *msg,
                         size_t msglen, const uint8_t *sig, size_t siglen) {
  int bits = mesh__jws_alg_hash_bits(alg);
  const char *md = bits == 512 ? "SHA512" : bits == 384 ? "SHA384" : "SHA256";
  EVP_MD_CTX *mc = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pc = NULL;
  int ok = mc && EVP_DigestVerifyInit_ex(mc, &pc, md, NULL, NULL, pkey,
                                         NULL) == 1;
  /* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash */
  bool rsa = mesh__jws_alg_kind(alg) == MESH__JWK_RSA;
  if (ok && rsa && mesh__jws_alg_pss(alg))
    ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, md, NULL) == 1;
  else if (ok && rsa)
    ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1;
  ok = ok && EVP_DigestVerify(mc, sig, siglen, msg, msglen) == 1;
  EVP_MD_CTX_free(mc); /* frees pc too */
  ERR_clear_error();   /* a refusal leaves nothing in this thread's queue */
  return ok ? MESH_OK : MESH_ERR_DENIED;
}

int mesh__jws_verify(int alg, int kind, const mesh__jwk_key_t *key,
                     const uint8_t *msg, size_t msglen, const uint8_t *sig,
                     size_t siglen) {
  if (!key || key->kind != kind)
    return MESH_ERR_DENIED;
  int want = mesh__jws_alg_kind(alg);
  if (want == 0 || want != kind)
    return MESH_ERR_DENIED;
  if (kind == MESH__JWK_RSA) {
    if (siglen != key->sig_len)
      return MESH_ERR_DENIED;
    return digest_verify(alg, key->pkey, msg, msglen, sig, siglen);
  }
  size_t cs = mesh__jwk_ec_size(kind);
  uint8_t der[2 * 66 + 16];
  size_t dl = siglen == 2 * cs ? es_der(sig, cs, der, sizeof der) : 0;
  if (dl == 0) {
    ERR_clear_error();
    return MESH_ERR_DENIED;
  }
  return digest_verify(alg, key->pkey, msg, msglen, der, dl);
}

int mesh__jws_sha256(const void *in, size_t n, uint8_t out[32]) {
  unsigned int len = 0;
  int ok = EVP_Digest(in, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32;
  ERR_clear_error();
  return ok ? MESH_OK : MESH_ERR_INTERNAL;
}
