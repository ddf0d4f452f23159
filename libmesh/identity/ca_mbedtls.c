/* SPDX-License-Identifier: Apache-2.0 */
/* The dev CA's crypto seam (ca_be.h) on mbedTLS 2.28 / 3.x: P-256 keys
 * with a CTR-DRBG, x509write_crt, hand-built SAN and EKU (2.28 has no
 * writer for them), PEM of certificates and keys. */
#include "identity/ca_be.h"
#include "identity/mbx.h"
#include "identity/pemfile.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform.h>
#include <mbedtls/x509_crt.h>

#define PEM_CRT_BEGIN "-----BEGIN CERTIFICATE-----\n"
#define PEM_CRT_END "-----END CERTIFICATE-----\n"

struct mesh__ca_key {
  mbedtls_pk_context pk;
};

struct mesh__ca_ca {
  mesh__x509_chain_t *ch; /* the CA file, through the X.509 seam */
  mesh__x509_key_t *k;
  const mbedtls_x509_crt *crt;  /* its first certificate = the CA */
  const mbedtls_pk_context *pk; /* the CA's key */
};

static int tls_fail(mesh_status_t *st, int err, const char *what,
                    const char *obj) {
  char e[160];
  mesh__mbedtls_err(err, e, sizeof e);
  return mesh__fail(st, MESH_ERR_TLS, "%s%s: %s", what, obj, e);
}

/* One DRBG per process, seeded on first use and again in a forked child
 * (a copied DRBG state would hand parent and child the same keys and
 * serials); the CA is a tool, no hot path: a mutex keeps callers apart. */
static pthread_mutex_t rng_mu = PTHREAD_MUTEX_INITIALIZER;
static mesh__rng_t rng;
static pid_t rng_pid; /* 0 = not seeded */

static int rng_fn(void *p, unsigned char *out, size_t n) {
  (void)p;
  pthread_mutex_lock(&rng_mu);
  int e = mbedtls_ctr_drbg_random(&rng.drbg, out, n);
  pthread_mutex_unlock(&rng_mu);
  return e;
}

static int rng_ensure(mesh_status_t *st) {
  pthread_mutex_lock(&rng_mu);
  int rc = MESH_OK;
  pid_t me = getpid();
  if (rng_pid != me) {
    if (rng_pid != 0)
      mesh__rng_free(&rng);
    rng_pid = 0;
    rc = mesh__rng_init(&rng, st);
    if (rc == MESH_OK)
      rng_pid = me;
  }
  pthread_mutex_unlock(&rng_mu);
  return rc;
}

int mesh__ca_random(unsigned char *out, size_t n, mesh_status_t *st) {
  int rc = rng_ensure(st);
  if (rc != MESH_OK)
    return rc;
  int e = rng_fn(NULL, out, n);
  return e ? tls_fail(st, e, "cannot draw random bytes", "") : MESH_OK;
}

int mesh__ca_keygen(mesh__ca_key_t **out, mesh_status_t *st) {
  *out = NULL;
  int rc = rng_ensure(st);
  if (rc != MESH_OK)
    return rc;
  mesh__ca_key_t *k = calloc(1, sizeof *k);
  if (!k)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mbedtls_pk_init(&k->pk);
  int e = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (e == 0)
    e = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk),
                            rng_fn, NULL);
  if (e) {
    mesh__ca_key_free(k);
    return tls_fail(st, e, "cannot generate a P-256 key", "");
  }
  *out = k;
  return MESH_OK;
}

void mesh__ca_key_free(mesh__ca_key_t *k) {
  if (!k)
    return;
  mbedtls_pk_free(&k->pk);
  free(k);
}

int mesh__ca_key_write(mesh__ca_key_t *k, const char *path,
                       mesh_status_t *st) {
  unsigned char pem[4096];
  int e = mbedtls_pk_write_key_pem(&k->pk, pem, sizeof pem);
  if (e)
    return tls_fail(st, e, "cannot encode the private key", "");
  int rc = mesh__file_write(path, pem, strlen((char *)pem), 0600, st);
  mbedtls_platform_zeroize(pem, sizeof pem);
  return rc;
}

int mesh__ca_load(mesh__ca_ca_t **out, const char *cert, const char *key,
                  mesh_status_t *st) {
  *out = NULL;
  mesh__ca_ca_t *c = calloc(1, sizeof *c);
  if (!c)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  c->ch = mesh__x509_chain_new();
  int rc = c->ch ? mesh__pem_load_crts(c->ch, cert, st)
                 : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK)
    rc = mesh__pem_load_key(&c->k, key, st);
  if (rc == MESH_OK) {
    c->crt = mesh__x509_chain_native(c->ch);
    c->pk = mesh__x509_key_native(c->k);
  }
  if (rc == MESH_OK &&
      !mesh__x509_key_matches(c->k, mesh__x509_chain_at(c->ch, 0)))
    rc = mesh__fail(st, MESH_ERR_KEY_MISMATCH,
                    "%s: private key does not match the CA certificate %s",
                    key, cert);
  if (rc == MESH_OK && !c->crt->MESH__MBX(ca_istrue))
    rc = mesh__fail(st, MESH_ERR_SVID,
                    "%s: not a CA certificate (basicConstraints CA:FALSE)",
                    cert);
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

/* X.509 time as mbedTLS wants it, "YYYYMMDDhhmmss", clamped to the years
 * X.509 can express. */
static void x509_time(int64_t t,
                      char out[MBEDTLS_X509_RFC5280_UTC_TIME_LEN + 1]) {
  const int64_t max = 253402300799; /* 9999-12-31T23:59:59Z */
  if (t < 0)
    t = 0;
  if (t > max)
    t = max;
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  if (strftime(out, MBEDTLS_X509_RFC5280_UTC_TIME_LEN + 1, "%Y%m%d%H%M%S",
               &tm) == 0)
    out[0] = '\0'; /* cannot happen for years 1970-9999 */
}

/* 128 random bits, positive and non-zero (RFC 5280 4.1.2.2). */
static int random_serial(mbedtls_x509write_cert *w) {
  unsigned char b[16];
  int e = rng_fn(NULL, b, sizeof b);
  if (e)
    return e;
  b[0] = (unsigned char)((b[0] & 0x7f) | 0x01);
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
  return mbedtls_x509write_crt_set_serial_raw(w, b, sizeof b);
#else
  mbedtls_mpi s;
  mbedtls_mpi_init(&s);
  e = mbedtls_mpi_read_binary(&s, b, sizeof b);
  if (e == 0)
    e = mbedtls_x509write_crt_set_serial(w, &s);
  mbedtls_mpi_free(&s);
  return e;
#endif
}

/* DER writers return a length or a negative error; chain them without
 * assignments in conditions: *len accumulates while *err stays 0. */
static void der_add(int *len, int *err, int r) {
  if (*err)
    return;
  if (r < 0)
    *err = r;
  else
    *len += r;
}

/* One GeneralName [tag] IMPLICIT IA5String, written backwards at *p. */
static void write_general_name(unsigned char **p, unsigned char *start,
                               int tag, const char *s, int *len, int *err) {
  size_t n = strlen(s);
  der_add(len, err,
          mbedtls_asn1_write_raw_buffer(p, start, (const unsigned char *)s, n));
  if (!*err)
    der_add(len, err, mbedtls_asn1_write_len(p, start, n));
  if (!*err)
    der_add(len, err,
            mbedtls_asn1_write_tag(
                p, start,
                (unsigned char)(MBEDTLS_ASN1_CONTEXT_SPECIFIC | tag)));
}

/* Wrap the *len bytes already written at *p in a SEQUENCE. */
static void wrap_sequence(unsigned char **p, unsigned char *start, int *len,
                          int *err) {
  if (*err)
    return;
  der_add(len, err, mbedtls_asn1_write_len(p, start, (size_t)*len));
  if (!*err)
    der_add(len, err,
            mbedtls_asn1_write_tag(p, start,
                                   MBEDTLS_ASN1_CONSTRUCTED |
                                       MBEDTLS_ASN1_SEQUENCE));
}

/* subjectAltName: mbedTLS 2.28 has no writer for it, so the DER is built
 * here: SEQUENCE OF GeneralName, URI = [6], dNSName = [2]. */
static int set_san(mbedtls_x509write_cert *w, const mesh__ca_tbs_t *t) {
  unsigned char buf[2 * MESH_SPIFFE_ID_MAX +
                    MESH_CA_DNS_MAX * (MESH_CA_DNS_NAME_MAX + 8) + 512];
  unsigned char *p = buf + sizeof buf;
  int len = 0, err = 0;
  for (size_t i = t->ndns; i-- > 0;)
    write_general_name(&p, buf, 2, t->dns[i], &len, &err);
  for (size_t i = t->nuris; i-- > 0;)
    write_general_name(&p, buf, 6, t->uris[i], &len, &err);
  wrap_sequence(&p, buf, &len, &err);
  if (err)
    return err;
  return mbedtls_x509write_crt_set_extension(
      w, MBEDTLS_OID_SUBJECT_ALT_NAME,
      MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, p, (size_t)len);
}

/* extendedKeyUsage serverAuth + clientAuth (X.509-SVID 4.4). */
static int set_eku(mbedtls_x509write_cert *w) {
  unsigned char buf[64];
  unsigned char *p = buf + sizeof buf;
  int len = 0, err = 0;
  der_add(&len, &err,
          mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH,
                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));
  if (!err)
    der_add(&len, &err,
            mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
  wrap_sequence(&p, buf, &len, &err);
  if (err)
    return err;
  return mbedtls_x509write_crt_set_extension(
      w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
      MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, p, (size_t)len);
}

/* Issuer name = the CA's subject, copied attribute by attribute so the
 * bytes (string types included) match exactly; a text round trip through
 * mbedtls_x509_dn_gets would lose escaping and types. */
static int copy_issuer(mbedtls_x509write_cert *w, const mbedtls_x509_name *n,
                       mesh_status_t *st) {
  for (; n && n->oid.p; n = n->next) {
    if (n->MESH__MBX(next_merged))
      return mesh__fail(st, MESH_ERR_UNSUPPORTED,
                        "CA subject has a multi-valued RDN (not supported)");
    mbedtls_asn1_named_data *d = mbedtls_calloc(1, sizeof *d);
    if (!d)
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    d->next = w->MESH__MBX(issuer); /* prepend: the writer emits backwards */
    w->MESH__MBX(issuer) = d;
    d->oid.p = mbedtls_calloc(1, n->oid.len ? n->oid.len : 1);
    d->val.p = mbedtls_calloc(1, n->val.len ? n->val.len : 1);
    if (!d->oid.p || !d->val.p)
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    memcpy(d->oid.p, n->oid.p, n->oid.len);
    memcpy(d->val.p, n->val.p, n->val.len);
    d->oid.len = n->oid.len;
    d->oid.tag = n->oid.tag;
    d->val.len = n->val.len;
    d->val.tag = n->val.tag;
  }
  return MESH_OK;
}

/* Every field and extension of the certificate; returns an mbedTLS error. */
static int fill(mbedtls_x509write_cert *w, const mesh__ca_tbs_t *t,
                mbedtls_pk_context *subject_key, mbedtls_pk_context *issuer_key,
                bool self) {
  const char *subject = t->subject ? t->subject : "O=SPIFFE";
  mbedtls_x509write_crt_set_version(w, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(w, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(w, subject_key);
  mbedtls_x509write_crt_set_issuer_key(w, issuer_key);
  char a[MBEDTLS_X509_RFC5280_UTC_TIME_LEN + 1];
  char b[MBEDTLS_X509_RFC5280_UTC_TIME_LEN + 1];
  x509_time(t->not_before, a);
  x509_time(t->not_after, b);
  int e = mbedtls_x509write_crt_set_subject_name(w, subject);
  if (e == 0 && self)
    e = mbedtls_x509write_crt_set_issuer_name(w, subject);
  if (e == 0)
    e = mbedtls_x509write_crt_set_validity(w, a, b);
  if (e == 0)
    e = random_serial(w);
  if (e == 0)
    e = mbedtls_x509write_crt_set_subject_key_identifier(w);
  if (e == 0 && !t->leaf_usage)
    e = mbedtls_x509write_crt_set_authority_key_identifier(w);
  if (e == 0)
    e = mbedtls_x509write_crt_set_basic_constraints(w, t->ca ? 1 : 0, -1);
  if (e == 0)
    e = mbedtls_x509write_crt_set_key_usage(
        w, t->leaf_usage ? MBEDTLS_X509_KU_DIGITAL_SIGNATURE
                         : MBEDTLS_X509_KU_KEY_CERT_SIGN |
                               MBEDTLS_X509_KU_CRL_SIGN);
  if (e == 0 && t->leaf_usage)
    e = set_eku(w);
  if (e == 0)
    e = set_san(w, t);
  return e;
}

/* Append one DER certificate as PEM to pem[*off..]. */
static int append_pem(const unsigned char *der, size_t len, unsigned char *pem,
                      size_t *off) {
  size_t olen = 0;
  int e = mbedtls_pem_write_buffer(PEM_CRT_BEGIN, PEM_CRT_END, der, len,
                                   pem + *off, MESH__CA_PEM_MAX - *off, &olen);
  if (e)
    return e;
  *off += olen - 1; /* olen counts the NUL */
  return 0;
}

int mesh__ca_sign(const mesh__ca_tbs_t *t, mesh__ca_key_t *subject_key,
                  mesh__ca_ca_t *issuer, char **pem_out, size_t *pem_len,
                  const char *what, mesh_status_t *st) {
  *pem_out = NULL;
  *pem_len = 0;
  unsigned char *der = calloc(1, MESH__CA_DER_MAX);
  unsigned char *pem = calloc(1, MESH__CA_PEM_MAX);
  mbedtls_x509write_cert w;
  mbedtls_x509write_crt_init(&w);
  int rc = der && pem ? MESH_OK : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK && issuer)
    rc = copy_issuer(&w, &issuer->crt->subject, st);
  int e = 0, n = 0;
  if (rc == MESH_OK) {
    e = fill(&w, t, &subject_key->pk,
             issuer ? (mbedtls_pk_context *)issuer->pk : &subject_key->pk,
             issuer == NULL);
    if (e == 0)
      n = mbedtls_x509write_crt_der(&w, der, MESH__CA_DER_MAX, rng_fn, NULL);
    if (e == 0 && n < 0)
      e = n;
    if (e)
      rc = tls_fail(st, e, "cannot build ", what);
  }
  size_t off = 0;
  if (rc == MESH_OK) {
    e = append_pem(der + MESH__CA_DER_MAX - n, (size_t)n, pem, &off);
    if (e == 0 && t->append_issuer && issuer)
      e = append_pem(issuer->crt->raw.p, issuer->crt->raw.len, pem, &off);
    if (e)
      rc = tls_fail(st, e, "cannot encode ", what);
  }
  mbedtls_x509write_crt_free(&w);
  free(der);
  if (rc != MESH_OK) {
    free(pem);
    return rc;
  }
  *pem_out = (char *)pem;
  *pem_len = off;
  return MESH_OK;
}
