/* SPDX-License-Identifier: Apache-2.0 */
/* The dev CA's crypto seam (ca_be.h) on OpenSSL 3: P-256 keys
 * (EVP_EC_gen), X509 + X509V3 extensions, PEM of certificates and SEC1
 * keys.  Certificates carry the same names, string types, extensions and
 * criticality as ca_mbedtls.c's; the CA files are loaded through the
 * X.509 seam (pemfile.c's loaders over x509_openssl.c), so codes and
 * messages are those of every other PEM file.  No mbedTLS call here. */
#include "identity/ca_be.h"
#include "identity/pemfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct mesh__ca_key {
  EVP_PKEY *pk;
};

struct mesh__ca_ca {
  mesh__x509_chain_t *ch; /* the CA file, through the X.509 seam */
  mesh__x509_key_t *k;
  X509 *crt;              /* its first certificate = the CA (ch's) */
  mesh__ca_key_t key;     /* k's EVP_PKEY, borrowed */
};

/* The last OpenSSL error of this thread as text; clears the queue (the TLS
 * backend reads it). */
static void ossl_err(char *buf, size_t len) {
  unsigned long e = ERR_peek_last_error();
  if (e)
    ERR_error_string_n(e, buf, len);
  else
    snprintf(buf, len, "unknown error");
  ERR_clear_error();
}

static int tls_fail(mesh_status_t *st, const char *what, const char *obj) {
  char e[160];
  ossl_err(e, sizeof e);
  return mesh__fail(st, MESH_ERR_TLS, "%s%s: %s", what, obj, e);
}

int mesh__ca_random(unsigned char *out, size_t n, mesh_status_t *st) {
  if (n > (size_t)INT32_MAX || RAND_bytes(out, (int)n) != 1)
    return tls_fail(st, "cannot draw random bytes", "");
  return MESH_OK;
}

int mesh__ca_keygen(mesh__ca_key_t **out, mesh_status_t *st) {
  *out = NULL;
  mesh__ca_key_t *k = calloc(1, sizeof *k);
  if (!k)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  k->pk = EVP_EC_gen("P-256");
  if (!k->pk) {
    free(k);
    return tls_fail(st, "cannot generate a P-256 key", "");
  }
  *out = k;
  return MESH_OK;
}

void mesh__ca_key_free(mesh__ca_key_t *k) {
  if (!k)
    return;
  EVP_PKEY_free(k->pk);
  free(k);
}

int mesh__ca_key_write(mesh__ca_key_t *k, const char *path,
                       mesh_status_t *st) {
  /* secure-heap BIO: the key's PEM is cleansed when freed.  "Traditional"
   * = SEC1 "EC PRIVATE KEY", what mbedtls_pk_write_key_pem writes. */
  BIO *b = BIO_new(BIO_s_secmem());
  if (!b)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  int rc;
  if (PEM_write_bio_PrivateKey_traditional(b, k->pk, NULL, NULL, 0, NULL,
                                           NULL) != 1) {
    rc = tls_fail(st, "cannot encode the private key", "");
  } else {
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    rc = mesh__file_write(path, p, (size_t)n, 0600, st);
  }
  BIO_free(b);
  ERR_clear_error();
  return rc;
}

/* ---- loading the CA ---------------------------------------------------- */

int mesh__ca_load(mesh__ca_ca_t **out, const char *cert, const char *key,
                  mesh_status_t *st) {
  *out = NULL;
  mesh__ca_ca_t *c = calloc(1, sizeof *c);
  if (!c)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  /* The seam's loaders: pemfile.c's codes and messages, whatever the
   * library (x509_openssl.c). */
  c->ch = mesh__x509_chain_new();
  int rc = c->ch ? mesh__pem_load_crts(c->ch, cert, st)
                 : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK)
    rc = mesh__pem_load_key(&c->k, key, st);
  if (rc == MESH_OK) {
    STACK_OF(X509) *sk = mesh__x509_chain_native(c->ch);
    c->crt = sk_X509_value(sk, 0);
    c->key.pk = mesh__x509_key_native(c->k);
  }
  if (rc == MESH_OK &&
      !mesh__x509_key_matches(c->k, mesh__x509_chain_at(c->ch, 0)))
    rc = mesh__fail(st, MESH_ERR_KEY_MISMATCH,
                    "%s: private key does not match the CA certificate %s",
                    key, cert);
  if (rc == MESH_OK && !mesh__x509_is_ca(mesh__x509_chain_at(c->ch, 0)))
    rc = mesh__fail(st, MESH_ERR_SVID,
                    "%s: not a CA certificate (basicConstraints CA:FALSE)",
                    cert);
  ERR_clear_error();
  if (rc != MESH_OK) {
    mesh__ca_free(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}

void mesh__ca_free(mesh__ca_ca_t *c) {
  if (!c)
    return;
  mesh__x509_chain_free(c->ch);
  mesh__x509_key_free(c->k);
  free(c);
}

/* ---- certificate writing ---------------------------------------------- */

/* "K=V,K=V" (ca_be.h: no ',' or '=' inside values) into a name, in order;
 * O, OU, CN become UTF8String, serialNumber PrintableString (OpenSSL's
 * string table), as mbedTLS's x509_create writes them. */
static bool set_subject(X509_NAME *n, const char *s) {
  char buf[512];
  if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf)
    return false;
  for (char *p = buf; *p;) {
    char *comma = strchr(p, ',');
    if (comma)
      *comma = '\0';
    char *eq = strchr(p, '=');
    if (!eq)
      return false;
    *eq = '\0';
    if (X509_NAME_add_entry_by_txt(n, p, MBSTRING_UTF8,
                                   (const unsigned char *)(eq + 1), -1, -1,
                                   0) != 1)
      return false;
    p = comma ? comma + 1 : p + strlen(p);
  }
  return true;
}

/* 128 random bits, positive and non-zero (RFC 5280 4.1.2.2). */
static bool set_serial(X509 *x) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1)
    return false;
  b[0] = (unsigned char)((b[0] & 0x7f) | 0x01);
  BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
  bool ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
  BN_free(bn);
  return ok;
}

/* Clamped to the years X.509 can express; UTCTime before 2050, else
 * GeneralizedTime (RFC 5280 4.1.2.5, as mbedTLS writes). */
static bool set_time(ASN1_TIME *t, int64_t v) {
  const int64_t max = 253402300799; /* 9999-12-31T23:59:59Z */
  if (v < 0)
    v = 0;
  if (v > max)
    v = max;
  return ASN1_TIME_set(t, (time_t)v) != NULL;
}

static bool add_conf(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  bool ok = e && X509_add_ext(x, e, -1) == 1;
  X509_EXTENSION_free(e);
  return ok;
}

static bool push_name(GENERAL_NAMES *g, int type, const char *s) {
  GENERAL_NAME *n = GENERAL_NAME_new();
  ASN1_IA5STRING *v = ASN1_IA5STRING_new();
  if (!n || !v || ASN1_STRING_set(v, s, (int)strlen(s)) != 1) {
    GENERAL_NAME_free(n);
    ASN1_IA5STRING_free(v);
    return false;
  }
  GENERAL_NAME_set0_value(n, type, v);
  if (sk_GENERAL_NAME_push(g, n) <= 0) {
    GENERAL_NAME_free(n);
    return false;
  }
  return true;
}

/* subjectAltName (not critical): the URIs, then the DNS names. */
static bool set_san(X509 *x, const mesh__ca_tbs_t *t) {
  GENERAL_NAMES *g = sk_GENERAL_NAME_new_null();
  bool ok = g != NULL;
  for (size_t i = 0; ok && i < t->nuris; i++)
    ok = push_name(g, GEN_URI, t->uris[i]);
  for (size_t i = 0; ok && i < t->ndns; i++)
    ok = push_name(g, GEN_DNS, t->dns[i]);
  if (ok)
    ok = X509_add1_ext_i2d(x, NID_subject_alt_name, g, 0,
                           X509V3_ADD_APPEND) == 1;
  GENERAL_NAMES_free(g);
  return ok;
}

/* In mbedTLS's order: SKID, AKID (CA), basicConstraints (critical only
 * when CA:TRUE, as mbedTLS marks it), keyUsage (critical), EKU, SAN. */
static bool extensions(X509 *x, X509 *issuer, const mesh__ca_tbs_t *t) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  bool ok = add_conf(x, &ctx, NID_subject_key_identifier, "hash");
  if (ok && !t->leaf_usage)
    ok = add_conf(x, &ctx, NID_authority_key_identifier, "keyid:always");
  if (ok)
    ok = add_conf(x, &ctx, NID_basic_constraints,
                  t->ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (ok)
    ok = add_conf(x, &ctx, NID_key_usage,
                  t->leaf_usage ? "critical,digitalSignature"
                                : "critical,keyCertSign,cRLSign");
  if (ok && t->leaf_usage)
    ok = add_conf(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
  if (ok)
    ok = set_san(x, t);
  return ok;
}

static bool fill(X509 *x, const mesh__ca_tbs_t *t, EVP_PKEY *subject_key,
                 mesh__ca_ca_t *issuer) {
  X509_NAME *subject = X509_NAME_new();
  bool ok = subject && X509_set_version(x, 2) == 1 && set_serial(x) &&
            set_subject(subject, t->subject ? t->subject : "O=SPIFFE") &&
            X509_set_subject_name(x, subject) == 1 &&
            X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->crt)
                                           : subject) == 1 &&
            set_time(X509_getm_notBefore(x), t->not_before) &&
            set_time(X509_getm_notAfter(x), t->not_after) &&
            X509_set_pubkey(x, subject_key) == 1 &&
            extensions(x, issuer ? issuer->crt : NULL, t);
  X509_NAME_free(subject);
  return ok;
}

int mesh__ca_sign(const mesh__ca_tbs_t *t, mesh__ca_key_t *subject_key,
                  mesh__ca_ca_t *issuer, char **pem_out, size_t *pem_len,
                  const char *what, mesh_status_t *st) {
  *pem_out = NULL;
  *pem_len = 0;
  X509 *x = X509_new();
  BIO *b = BIO_new(BIO_s_mem());
  EVP_PKEY *signer = issuer ? issuer->key.pk : subject_key->pk;
  int rc = MESH_OK;
  if (!x || !b)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  else if (!fill(x, t, subject_key->pk, issuer) ||
           X509_sign(x, signer, EVP_sha256()) <= 0)
    rc = tls_fail(st, "cannot build ", what);
  else if (PEM_write_bio_X509(b, x) != 1 ||
           (t->append_issuer && issuer && PEM_write_bio_X509(b, issuer->crt) != 1))
    rc = tls_fail(st, "cannot encode ", what);
  char *p = NULL;
  long n = rc == MESH_OK ? BIO_get_mem_data(b, &p) : 0;
  if (rc == MESH_OK && (n <= 0 || n > MESH__CA_PEM_MAX))
    rc = mesh__fail(st, MESH_ERR_TLS, "cannot encode %s: %ld bytes", what, n);
  if (rc == MESH_OK) {
    *pem_out = malloc((size_t)n);
    if (!*pem_out)
      rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    else
      memcpy(*pem_out, p, (size_t)n);
    if (*pem_out)
      *pem_len = (size_t)n;
  }
  BIO_free(b);
  X509_free(x);
  ERR_clear_error(); /* nothing left for the TLS backend to misread */
  return rc;
}
