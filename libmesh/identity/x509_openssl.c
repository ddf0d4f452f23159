/* SPDX-License-Identifier: Apache-2.0 */
/* The X.509 seam (x509_be.h) on OpenSSL 3, with x509_mbedtls.c's outward
 * behaviour: the same codes and messages, PEM blocks cut at their markers
 * (a broken block is counted, as mbedTLS counts it), EC and RSA keys only
 * (what mbedTLS parses: an Ed25519 certificate or key is malformed on both
 * builds), chain verification with mbedTLS's default profile (RSA >= 2048
 * bits, no SHA-1: OpenSSL's security level 2) and its findings as
 * MESH__X509_* flags.  The thread's OpenSSL error queue is left empty (the
 * TLS backend reads it).  No mbedTLS call in this file. */
#include "identity/x509_be.h"
#include "identity/x509_dn.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct mesh__x509_chain {
  STACK_OF(X509) *sk;
  /* The roots as a store for mesh__x509_verify, built before publication
   * (mesh__x509_warm) or per call. */
  X509_STORE *store;
};

struct mesh__x509_key {
  EVP_PKEY *pk;
};

#define X(c) ((X509 *)(c)) /* OpenSSL's getters take non-const X509 */

/* The last OpenSSL error of this thread as text; clears the queue. */
static void ossl_err(char *buf, size_t len) {
  unsigned long e = ERR_peek_last_error();
  if (e)
    ERR_error_string_n(e, buf, len);
  else
    snprintf(buf, len, "unknown error");
  ERR_clear_error();
}

/* Key algorithms mbedTLS's X.509 takes: EC and RSA. */
static bool key_type_ok(const EVP_PKEY *pk) {
  return pk && (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC ||
                EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA);
}

/* Critical certificatePolicies that mbedTLS's parser takes: anyPolicy
 * only. */
static bool any_policy_only(X509 *x) {
  CERTIFICATEPOLICIES *cp =
      X509_get_ext_d2i(x, NID_certificate_policies, NULL, NULL);
  bool ok = cp != NULL;
  for (int i = 0; ok && i < sk_POLICYINFO_num(cp); i++)
    ok = OBJ_obj2nid(sk_POLICYINFO_value(cp, i)->policyid) == NID_any_policy;
  CERTIFICATEPOLICIES_free(cp);
  return ok;
}

/* Extensions as mbedTLS's parser takes them (RFC 5280 4.2): none twice,
 * and no critical one it does not process.  OpenSSL would parse both (and
 * a critical nameConstraints it enforces, which mbedTLS does not): the
 * differential table in tests/test_svid_diff.c. */
static bool exts_ok(X509 *x) {
  int n = X509_get_ext_count(x);
  for (int i = 0; i < n; i++) {
    X509_EXTENSION *e = X509_get_ext(x, i);
    const ASN1_OBJECT *o = X509_EXTENSION_get_object(e);
    for (int j = 0; j < i; j++)
      if (OBJ_cmp(o, X509_EXTENSION_get_object(X509_get_ext(x, j))) == 0)
        return false;
    if (X509_EXTENSION_get_critical(e) <= 0)
      continue;
    switch (OBJ_obj2nid(o)) {
    case NID_basic_constraints:
    case NID_key_usage:
    case NID_ext_key_usage:
    case NID_subject_alt_name:
    case NID_netscape_cert_type:
      break;
    case NID_certificate_policies:
      if (!any_policy_only(x))
        return false;
      break;
    default:
      return false;
    }
  }
  return true;
}

/* A parsed certificate we keep: supported key, extensions that decode and
 * that mbedTLS's parser would take. */
static bool crt_ok(X509 *x) {
  return key_type_ok(X509_get0_pubkey(x)) &&
         !(X509_get_extension_flags(x) & EXFLAG_INVALID) && exts_ok(x);
}

/* ---- chains -------------------------------------------------------------- */

mesh__x509_chain_t *mesh__x509_chain_new(void) {
  mesh__x509_chain_t *ch = calloc(1, sizeof *ch);
  if (ch && !(ch->sk = sk_X509_new_null())) {
    free(ch);
    return NULL;
  }
  return ch;
}

void mesh__x509_chain_free(mesh__x509_chain_t *ch) {
  if (!ch)
    return;
  sk_X509_pop_free(ch->sk, X509_free);
  X509_STORE_free(ch->store);
  free(ch);
}

size_t mesh__x509_chain_len(const mesh__x509_chain_t *ch) {
  return ch ? (size_t)sk_X509_num(ch->sk) : 0;
}

const mesh__x509_t *mesh__x509_chain_at(const mesh__x509_chain_t *ch,
                                        size_t i) {
  if (i >= mesh__x509_chain_len(ch))
    return NULL;
  return (const mesh__x509_t *)sk_X509_value(ch->sk, (int)i);
}

/* Takes x (freed on failure).  @return 0 or -1. */
static int push(mesh__x509_chain_t *ch, X509 *x) {
  if (sk_X509_push(ch->sk, x) > 0)
    return 0;
  X509_free(x);
  return -1;
}

static int no_pass(char *buf, int size, int rw, void *u) {
  (void)buf, (void)size, (void)rw, (void)u;
  return -1;
}

/* Every CERTIFICATE block of PEM text, cut at its markers (as mbedTLS's
 * parser does, so a broken block is counted, never skipped). */
static int pem_blocks(mesh__x509_chain_t *ch, const char *text, int *good,
                      int *bad) {
  static const char begin[] = "-----BEGIN CERTIFICATE-----";
  static const char end[] = "-----END CERTIFICATE-----";
  for (const char *p = strstr(text, begin); p; p = strstr(p, begin)) {
    const char *e = strstr(p + sizeof begin - 1, end);
    if (!e) {
      (*bad)++;
      break;
    }
    e += sizeof end - 1;
    BIO *b = BIO_new_mem_buf(p, (int)(e - p));
    X509 *x = b ? PEM_read_bio_X509(b, NULL, no_pass, NULL) : NULL;
    BIO_free(b);
    if (x && !crt_ok(x)) {
      X509_free(x);
      x = NULL;
      ERR_raise_data(ERR_LIB_X509, X509_R_UNSUPPORTED_ALGORITHM,
                     "unsupported key or malformed extension");
    }
    if (!x)
      (*bad)++;
    else if (push(ch, x) != 0)
      return -1;
    else
      (*good)++;
    p = e;
  }
  return 0;
}

int mesh__x509_chain_parse(mesh__x509_chain_t *ch, const unsigned char *buf,
                           size_t len, bool pem, const char *origin,
                           mesh_status_t *st) {
  int good = 0, bad = 0;
  if (pem) {
    if (pem_blocks(ch, (const char *)buf, &good, &bad) != 0) {
      ERR_clear_error();
      return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", origin);
    }
  } else {
    size_t used;
    char e[160];
    if (mesh__x509_chain_parse_der1(ch, buf, len, &used, e, sizeof e) == 0)
      good = 1;
    else
      return mesh__fail(st, MESH_ERR_PEM, "%s: malformed certificate: %s",
                        origin, e);
  }
  if (good && bad) {
    ERR_clear_error();
    return mesh__fail(st, MESH_ERR_PEM,
                      "%s: %d certificate%s could not be parsed", origin, bad,
                      bad > 1 ? "s" : "");
  }
  if (!good) {
    char e[160];
    ossl_err(e, sizeof e);
    return mesh__fail(st, MESH_ERR_PEM, "%s: malformed certificate: %s",
                      origin, e);
  }
  ERR_clear_error();
  return MESH_OK;
}

int mesh__x509_chain_parse_der1(mesh__x509_chain_t *ch, const unsigned char *p,
                                size_t n, size_t *used, char *err,
                                size_t errlen) {
  const unsigned char *q = p;
  X509 *x = n <= (size_t)LONG_MAX ? d2i_X509(NULL, &q, (long)n) : NULL;
  if (x && !crt_ok(x)) {
    X509_free(x);
    ERR_clear_error();
    mesh__strlcpy(err, "unsupported key or malformed extension", errlen);
    return -1;
  }
  if (!x) {
    ossl_err(err, errlen);
    return -1;
  }
  *used = (size_t)(q - p);
  if (push(ch, x) != 0) {
    mesh__strlcpy(err, "out of memory", errlen);
    return -1;
  }
  return 0;
}

int mesh__x509_chain_add(mesh__x509_chain_t *ch, const mesh__x509_t *crt) {
  if (X509_up_ref(X(crt)) != 1)
    return -1;
  return push(ch, X(crt));
}

long mesh__x509_chain_pem(const mesh__x509_chain_t *ch, char *buf,
                          size_t len) {
  BIO *b = BIO_new(BIO_s_mem());
  bool ok = b != NULL;
  for (size_t i = 0; ok && i < mesh__x509_chain_len(ch); i++)
    ok = PEM_write_bio_X509(b, sk_X509_value(ch->sk, (int)i)) == 1;
  char *p = NULL;
  long n = ok ? BIO_get_mem_data(b, &p) : -1;
  ok = ok && n >= 0 && (size_t)n < len;
  if (ok) {
    memcpy(buf, p, (size_t)n);
    buf[n] = '\0';
  } else {
    buf[0] = '\0';
  }
  BIO_free(b);
  ERR_clear_error();
  return ok ? n : MESH_ERR_BUFFER;
}

/* ---- one certificate ----------------------------------------------------- */

size_t mesh__x509_uri_sans(const mesh__x509_t *crt, char *first, size_t cap,
                           size_t *first_len) {
  if (first_len)
    *first_len = 0;
  GENERAL_NAMES *gens = X509_get_ext_d2i(X(crt), NID_subject_alt_name, NULL,
                                         NULL);
  size_t n = 0;
  for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type != GEN_URI)
      continue;
    size_t l = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
    const unsigned char *d =
        ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
    if (n == 0 && first)
      memcpy(first, d, l < cap ? l : cap);
    if (n == 0 && first_len)
      *first_len = l;
    n++;
  }
  GENERAL_NAMES_free(gens);
  ERR_clear_error();
  return n;
}

bool mesh__x509_is_ca(const mesh__x509_t *crt) {
  /* EXFLAG_CA: basicConstraints present with cA TRUE (what mbedTLS's
   * ca_istrue says; X509_check_ca would also accept v1 roots). */
  return (X509_get_extension_flags(X(crt)) & EXFLAG_CA) != 0;
}

bool mesh__x509_key_usage(const mesh__x509_t *crt, unsigned *bits) {
  *bits = 0;
  if (!(X509_get_extension_flags(X(crt)) & EXFLAG_KUSAGE))
    return false;
  /* KU_* have X.509's bit values, as MESH__KU_* */
  *bits = (unsigned)X509_get_key_usage(X(crt)) &
          (MESH__KU_DIGITAL_SIGNATURE | MESH__KU_KEY_CERT_SIGN |
           MESH__KU_CRL_SIGN);
  return true;
}

bool mesh__x509_ext_key_usage(const mesh__x509_t *crt, unsigned *bits) {
  *bits = 0;
  if (!(X509_get_extension_flags(X(crt)) & EXFLAG_XKUSAGE))
    return false;
  uint32_t x = X509_get_extended_key_usage(X(crt));
  if (x & (XKU_SSL_SERVER | XKU_ANYEKU))
    *bits |= MESH__EKU_SERVER;
  if (x & (XKU_SSL_CLIENT | XKU_ANYEKU))
    *bits |= MESH__EKU_CLIENT;
  return true;
}

static int64_t asn1_time_unix(const ASN1_TIME *t) {
  struct tm tm;
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  return (int64_t)timegm(&tm);
}

int64_t mesh__x509_not_before(const mesh__x509_t *crt) {
  return asn1_time_unix(X509_get0_notBefore(X(crt)));
}

int64_t mesh__x509_not_after(const mesh__x509_t *crt) {
  return asn1_time_unix(X509_get0_notAfter(X(crt)));
}

int mesh__x509_serial_text(const mesh__x509_t *crt, char *buf, size_t len) {
  /* mbedtls_x509_serial_gets' form (the magnitude has no sign byte) */
  const ASN1_INTEGER *s = X509_get0_serialNumber(X(crt));
  const unsigned char *p = ASN1_STRING_get0_data(s);
  size_t n = (size_t)ASN1_STRING_length(s);
  size_t nr = n <= 32 ? n : 28, off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < nr; i++) {
    int k = snprintf(buf + off, len - off, "%02X%s", p[i],
                     i < nr - 1 ? ":" : "");
    if (k < 0 || (size_t)k >= len - off)
      return -1;
    off += (size_t)k;
  }
  if (nr != n && snprintf(buf + off, len - off, "....") >= (int)(len - off))
    return -1;
  return 0;
}

int mesh__x509_dn_text(const mesh__x509_t *crt, bool issuer, char *buf,
                       size_t len) {
  const X509_NAME *n =
      issuer ? X509_get_issuer_name(X(crt)) : X509_get_subject_name(X(crt));
  size_t off = 0;
  bool ok = true;
  int prev_set = -1;
  buf[0] = '\0';
  for (int i = 0; ok && i < X509_NAME_entry_count(n); i++) {
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(n, i);
    const ASN1_OBJECT *o = X509_NAME_ENTRY_get_object(e);
    const ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
    int set = X509_NAME_ENTRY_set(e);
    ok = mesh__dn_append(buf, len, &off, i == 0, set == prev_set,
                         OBJ_get0_data(o), OBJ_length(o),
                         ASN1_STRING_get0_data(v),
                         (size_t)ASN1_STRING_length(v));
    prev_set = set;
  }
  return ok ? 0 : -1;
}

int mesh__x509_der(const mesh__x509_t *crt, unsigned char **der,
                   size_t *len) {
  int n = i2d_X509(X(crt), NULL);
  unsigned char *p = n > 0 ? malloc((size_t)n) : NULL;
  *der = p;
  if (!p || i2d_X509(X(crt), &p) != n) {
    free(*der);
    *der = NULL;
    ERR_clear_error();
    return -1;
  }
  *len = (size_t)n;
  return 0;
}

int mesh__x509_ext_walk(const mesh__x509_t *crt, mesh__x509_ext_cb cb,
                        void *arg) {
  for (int i = 0; i < X509_get_ext_count(X(crt)); i++) {
    X509_EXTENSION *e = X509_get_ext(X(crt), i);
    const ASN1_OBJECT *o = X509_EXTENSION_get_object(e);
    int r = cb(arg, OBJ_get0_data(o), OBJ_length(o),
               X509_EXTENSION_get_critical(e) > 0);
    if (r)
      return r;
  }
  return 0;
}

bool mesh__x509_same(const mesh__x509_t *a, const mesh__x509_t *b) {
  return X509_cmp(X(a), X(b)) == 0;
}

/* ---- keys ---------------------------------------------------------------- */

int mesh__x509_key_parse(mesh__x509_key_t **out, const unsigned char *buf,
                         size_t len, bool pem, const char *origin,
                         mesh_status_t *st) {
  *out = NULL;
  const char *s = (const char *)buf;
  bool enc = pem && (strstr(s, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
                     strstr(s, "Proc-Type: 4,ENCRYPTED"));
  if (enc)
    return mesh__fail(st, MESH_ERR_PEM,
                      "%s: private key is encrypted (not supported)", origin);
  EVP_PKEY *pk = NULL;
  if (pem && len > 0 && len - 1 <= (size_t)INT32_MAX) {
    BIO *b = BIO_new_mem_buf(buf, (int)(len - 1)); /* len counts the NUL */
    pk = b ? PEM_read_bio_PrivateKey(b, NULL, no_pass, NULL) : NULL;
    BIO_free(b);
  } else if (!pem && len <= (size_t)LONG_MAX) {
    const unsigned char *p = buf;
    pk = d2i_AutoPrivateKey(NULL, &p, (long)len);
  }
  if (pk && !key_type_ok(pk)) {
    EVP_PKEY_free(pk);
    pk = NULL;
    ERR_raise_data(ERR_LIB_EVP, EVP_R_UNSUPPORTED_ALGORITHM,
                   "key algorithm is unsupported");
  }
  mesh__x509_key_t *k = pk ? calloc(1, sizeof *k) : NULL;
  if (pk && !k) {
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", origin);
  }
  if (!pk) {
    char e[160];
    ossl_err(e, sizeof e);
    return mesh__fail(st, MESH_ERR_PEM, "%s: malformed private key: %s",
                      origin, e);
  }
  ERR_clear_error();
  k->pk = pk;
  *out = k;
  return MESH_OK;
}

void mesh__x509_key_free(mesh__x509_key_t *k) {
  if (!k)
    return;
  EVP_PKEY_free(k->pk);
  free(k);
}

bool mesh__x509_key_matches(const mesh__x509_key_t *k,
                            const mesh__x509_t *crt) {
  bool ok = k && crt && EVP_PKEY_eq(X509_get0_pubkey(X(crt)), k->pk) == 1;
  ERR_clear_error();
  return ok;
}

/* ---- verification -------------------------------------------------------- */

/* What mbedTLS would flag for an OpenSSL verification error. */
static uint32_t flag_of(int err) {
  switch (err) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return MESH__X509_EXPIRED;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return MESH__X509_FUTURE;
  case X509_V_ERR_EE_KEY_TOO_SMALL:
  case X509_V_ERR_CA_KEY_TOO_SMALL:
    return MESH__X509_BAD_KEY;
  case X509_V_ERR_CA_MD_TOO_WEAK:
    return MESH__X509_BAD_MD;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_CERT_SIGNATURE_FAILURE:
  case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
  case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_CERT_UNTRUSTED:
  case X509_V_ERR_CERT_REJECTED:
  case X509_V_ERR_INVALID_CA:
  case X509_V_ERR_PATH_LENGTH_EXCEEDED:
  case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
  case X509_V_ERR_CERT_CHAIN_TOO_LONG:
    return MESH__X509_NOT_TRUSTED;
  default:
    return MESH__X509_OTHER;
  }
}

/* Record every finding and go on, as mbedTLS collects its flags. */
static int verify_cb(int ok, X509_STORE_CTX *ctx) {
  uint32_t *flags = X509_STORE_CTX_get_app_data(ctx);
  if (!ok && flags)
    *flags |= flag_of(X509_STORE_CTX_get_error(ctx));
  return 1;
}

static X509_STORE *store_of(const mesh__x509_chain_t *roots) {
  X509_STORE *s = X509_STORE_new();
  for (size_t i = 0; s && i < mesh__x509_chain_len(roots); i++)
    if (X509_STORE_add_cert(s, sk_X509_value(roots->sk, (int)i)) != 1) {
      X509_STORE_free(s);
      s = NULL;
    }
  return s;
}

int mesh__x509_verify(const mesh__x509_chain_t *chain,
                      const mesh__x509_chain_t *roots, uint32_t *flags,
                      char *err, size_t errlen) {
  *flags = 0;
  X509_STORE *s = roots->store;
  X509_STORE *own = s ? NULL : (s = store_of(roots));
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *untrusted = sk_X509_dup(chain->sk);
  X509 *leaf = untrusted ? sk_X509_shift(untrusted) : NULL;
  int rc = -1;
  if (s && ctx && leaf &&
      X509_STORE_CTX_init(ctx, s, leaf, untrusted) == 1) {
    X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
    /* mbedTLS's default profile: RSA >= 2048 bits, no SHA-1; a bundle's
     * certificate is a trust anchor whether self-signed or not. */
    X509_VERIFY_PARAM_set_auth_level(p, 2);
    X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_PARTIAL_CHAIN);
    X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
    X509_STORE_CTX_set_app_data(ctx, flags);
    if (X509_verify_cert(ctx) >= 0)
      rc = 0;
  }
  if (rc != 0)
    ossl_err(err, errlen);
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted); /* references stay the chain's */
  X509_STORE_free(own);
  ERR_clear_error();
  return rc;
}

int mesh__x509_warm(const mesh__x509_key_t *key,
                    const mesh__x509_chain_t *chain, mesh_status_t *st) {
  (void)key; /* OpenSSL computes nothing lazily in a shared key */
  if (!chain || chain->store || mesh__x509_chain_len(chain) == 0)
    return MESH_OK;
  /* The roots' store, once, before the chain is shared (the only field
   * written after construction). */
  ((mesh__x509_chain_t *)chain)->store = store_of(chain);
  ERR_clear_error();
  if (!chain->store)
    return mesh__fail(st, MESH_ERR_TLS, "cannot build a trust store");
  return MESH_OK;
}

/* ---- the TLS backend's view ---------------------------------------------- */

void *mesh__x509_chain_native(const mesh__x509_chain_t *ch) {
  return ch ? ch->sk : NULL;
}

void *mesh__x509_key_native(const mesh__x509_key_t *k) {
  return k ? k->pk : NULL;
}

const mesh__x509_t *mesh__x509_from_native(const void *crt) {
  return (const mesh__x509_t *)crt;
}

mesh__x509_chain_t *mesh__x509_chain_wrap(void *native) {
  STACK_OF(X509) *sk = native;
  mesh__x509_chain_t *ch = mesh__x509_chain_new();
  for (int i = 0; ch && sk && i < sk_X509_num(sk); i++)
    if (mesh__x509_chain_add_native(ch, sk_X509_value(sk, i)) != 0) {
      mesh__x509_chain_free(ch);
      ch = NULL;
    }
  return ch;
}

int mesh__x509_chain_add_native(mesh__x509_chain_t *ch, void *crt) {
  return mesh__x509_chain_add(ch, mesh__x509_from_native(crt));
}
