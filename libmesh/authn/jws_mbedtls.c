/* SPDX-License-Identifier: Apache-2.0 */
/* The crypto seam of request authentication, over Mbed TLS (pk, rsa,
 * ecdsa, md).  Nothing else in authn/ includes a crypto header: an OpenSSL
 * version is this file again with EVP_PKEY (RSA_PKCS1_PSS_PADDING with
 * salt length = digest length, ECDSA_SIG_set0 from r||s), chosen by the
 * build like tls/'s backends. */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/version.h>

/* mbedTLS 3.x hides the key pair's and point's fields (MBEDTLS_PRIVATE). */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define JWS_F(f) MBEDTLS_PRIVATE(f)
#else
#define JWS_F(f) f
#endif

#include "authn/authn.h"

struct mesh__jwk_key {
  int kind;
  mbedtls_pk_context pk;     /* RSA */
  mbedtls_ecp_keypair ec;    /* EC */
};

/* Bits of a big-endian number. */
static size_t e_bits(const uint8_t *e, size_t len) {
  size_t i = 0;
  while (i < len && e[i] == 0)
    i++;
  if (i == len)
    return 0;
  size_t bits = (len - i) * 8;
  for (uint8_t top = e[i]; !(top & 0x80); top = (uint8_t)(top << 1))
    bits--;
  return bits;
}

int mesh__jwk_key_rsa(const uint8_t *n, size_t nlen, const uint8_t *e,
                      size_t elen, mesh__jwk_key_t **out, const char **why) {
  *out = NULL;
  mesh__jwk_key_t *k = calloc(1, sizeof *k);
  if (!k)
    return MESH_ERR_NOMEM;
  k->kind = MESH__JWK_RSA;
  mbedtls_pk_init(&k->pk);
  mbedtls_ecp_keypair_init(&k->ec);
  const char *bad = NULL;
  if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)))
    bad = "cannot set up an RSA key";
  mbedtls_rsa_context *rsa = bad ? NULL : mbedtls_pk_rsa(k->pk);
  if (!bad && (mbedtls_rsa_import_raw(rsa, n, nlen, NULL, 0, NULL, 0, NULL, 0,
                                      e, elen) ||
               mbedtls_rsa_complete(rsa) || mbedtls_rsa_check_pubkey(rsa)))
    bad = "not a valid RSA public key (n, e)";
  /* OpenSSL's cap (jws_openssl.c), so that both seams take the same keys */
  if (!bad && mbedtls_pk_get_bitlen(&k->pk) > MESH__JWK_RSA_BIG_N_BITS &&
      e_bits(e, elen) > MESH__JWK_RSA_BIG_N_MAX_E_BITS)
    bad = "not a valid RSA public key (n, e)";
  if (!bad && mbedtls_pk_get_bitlen(&k->pk) < MESH__JWK_RSA_MIN_BITS)
    bad = "RSA modulus shorter than 2048 bits";
  if (bad) {
    mesh__jwk_key_free(k);
    if (why)
      *why = bad;
    return MESH_ERR_PARSE;
  }
  *out = k;
  return MESH_OK;
}

/* mbedTLS (ECP_FIXED_POINT_OPTIM) fills a group's comb table for the base
 * point lazily, inside the first multiplication by it, by writing to the
 * group: two requests verifying with one key set at once raced on that
 * write (valgrind saw the loser's table leak; identity/creds.c warms SVID
 * keys for the same reason).  One 2G + Q here, before the key is shared,
 * computes it; verifications then only read it.  No RNG: muladd takes
 * none. */
static int warm_ec(mbedtls_ecp_keypair *ec) {
  mbedtls_ecp_point R;
  mbedtls_mpi two, one;
  mbedtls_ecp_point_init(&R);
  mbedtls_mpi_init(&two);
  mbedtls_mpi_init(&one);
  int e = mbedtls_mpi_lset(&two, 2);
  if (e == 0)
    e = mbedtls_mpi_lset(&one, 1);
  if (e == 0)
    e = mbedtls_ecp_muladd(&ec->JWS_F(grp), &R, &two, &ec->JWS_F(grp).G, &one,
                           &ec->JWS_F(Q));
  mbedtls_ecp_point_free(&R);
  mbedtls_mpi_free(&two);
  mbedtls_mpi_free(&one);
  return e;
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
  mesh__jwk_key_t *k = calloc(1, sizeof *k);
  if (!k)
    return MESH_ERR_NOMEM;
  k->kind = kind;
  mbedtls_pk_init(&k->pk);
  mbedtls_ecp_keypair_init(&k->ec);
  mbedtls_ecp_group_id gid = kind == MESH__JWK_EC256   ? MBEDTLS_ECP_DP_SECP256R1
                             : kind == MESH__JWK_EC384 ? MBEDTLS_ECP_DP_SECP384R1
                                                       : MBEDTLS_ECP_DP_SECP521R1;
  mbedtls_ecp_group *grp = &k->ec.JWS_F(grp);
  mbedtls_ecp_point *q = &k->ec.JWS_F(Q);
  if (mbedtls_ecp_group_load(grp, gid) ||
      mbedtls_mpi_read_binary(&q->JWS_F(X), x, xlen) ||
      mbedtls_mpi_read_binary(&q->JWS_F(Y), y, ylen) ||
      mbedtls_mpi_lset(&q->JWS_F(Z), 1) || mbedtls_ecp_check_pubkey(grp, q)) {
    mesh__jwk_key_free(k);
    if (why)
      *why = "EC point not on the curve";
    return MESH_ERR_PARSE;
  }
  if (warm_ec(&k->ec) != 0) {
    mesh__jwk_key_free(k);
    return MESH_ERR_NOMEM;
  }
  *out = k;
  return MESH_OK;
}

void mesh__jwk_key_free(mesh__jwk_key_t *k) {
  if (!k)
    return;
  mbedtls_pk_free(&k->pk);
  mbedtls_ecp_keypair_free(&k->ec);
  free(k);
}

static int ec_verify(const mesh__jwk_key_t *k, const uint8_t *h, size_t hlen,
                     const uint8_t *sig, size_t siglen) {
  size_t cs = mesh__jwk_ec_size(k->kind);
  if (siglen != 2 * cs)
    return MESH_ERR_DENIED;
  mbedtls_mpi r, s;
  mbedtls_mpi_init(&r);
  mbedtls_mpi_init(&s);
  int rc = MESH_ERR_DENIED;
  /* mbedtls_ecdsa_verify takes a non-const group (it may cache tables) */
  mbedtls_ecp_keypair *ec = (mbedtls_ecp_keypair *)&k->ec;
  if (!mbedtls_mpi_read_binary(&r, sig, cs) &&
      !mbedtls_mpi_read_binary(&s, sig + cs, cs) &&
      !mbedtls_ecdsa_verify(&ec->JWS_F(grp), h, hlen, &ec->JWS_F(Q), &r,
                            &s))
    rc = MESH_OK;
  mbedtls_mpi_free(&r);
  mbedtls_mpi_free(&s);
  return rc;
}

int mesh__jws_verify(int alg, int kind, const mesh__jwk_key_t *key,
                     const uint8_t *msg, size_t msglen, const uint8_t *sig,
                     size_t siglen) {
  if (!key || key->kind != kind)
    return MESH_ERR_DENIED;
  int want = mesh__jws_alg_kind(alg), bits = mesh__jws_alg_hash_bits(alg);
  if (want == 0 || want != kind)
    return MESH_ERR_DENIED;
  mbedtls_md_type_t md = bits == 512   ? MBEDTLS_MD_SHA512
                         : bits == 384 ? MBEDTLS_MD_SHA384
                                       : MBEDTLS_MD_SHA256;
  const mbedtls_md_info_t *mi = mbedtls_md_info_from_type(md);
  uint8_t h[64];
  if (!mi || mbedtls_md(mi, msg, msglen, h))
    return MESH_ERR_DENIED;
  size_t hlen = mbedtls_md_get_size(mi);
  if (kind != MESH__JWK_RSA)
    return ec_verify(key, h, hlen, sig, siglen);
  mbedtls_pk_context *pk = (mbedtls_pk_context *)&key->pk;
  if (siglen != mbedtls_pk_get_len(pk))
    return MESH_ERR_DENIED;
  if (!mesh__jws_alg_pss(alg))
    return mbedtls_pk_verify(pk, md, h, hlen, sig, siglen) ? MESH_ERR_DENIED
                                                           : MESH_OK;
  /* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash */
  mbedtls_pk_rsassa_pss_options o = {.mgf1_hash_id = md,
                                     .expected_salt_len = (int)hlen};
  return mbedtls_pk_verify_ext(MBEDTLS_PK_RSASSA_PSS, &o, pk, md, h, hlen,
                               sig, siglen)
             ? MESH_ERR_DENIED
             : MESH_OK;
}

int mesh__jws_sha256(const void *in, size_t n, uint8_t out[32]) {
  const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  return md && mbedtls_md(md, in, n, out) == 0 ? MESH_OK : MESH_ERR_INTERNAL;
}
