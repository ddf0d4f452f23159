/* SPDX-License-Identifier: Apache-2.0 */
/* The development CA: mint an ECDSA P-256 CA and X.509-SVIDs with mbedTLS,
 * so demos and tests need no outside CA.  Certificates follow the
 * X.509-SVID profile (one URI SAN, CA:TRUE/keyCertSign for the CA,
 * CA:FALSE/digitalSignature + serverAuth/clientAuth for leaves) unless a
 * MESH_CA_ISSUE_* flag asks for a deliberately broken one. */
#include "identity/pemfile.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform.h>
#include <mbedtls/x509_crt.h>

#define DER_MAX 16384
#define PEM_MAX 24576
#define ISSUE_FLAGS_ALL                                                     \
  (MESH_CA_ISSUE_AS_CA | MESH_CA_ISSUE_NO_URI | MESH_CA_ISSUE_TWO_URIS |    \
   MESH_CA_ISSUE_CHAIN)
#define PEM_CRT_BEGIN "-----BEGIN CERTIFICATE-----\n"
#define PEM_CRT_END "-----END CERTIFICATE-----\n"

static int tls_fail(mesh_status_t *st, int err, const char *what) {
  char e[160];
  mesh__mbedtls_err(err, e, sizeof e);
  return mesh__fail(st, MESH_ERR_TLS, "%s: %s", what, e);
}

static int gen_key(mbedtls_pk_context *key, mesh__rng_t *r,
                   mesh_status_t *st) {
  int e = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (e == 0)
    e = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
                            mbedtls_ctr_drbg_random, &r->drbg);
  return e ? tls_fail(st, e, "cannot generate a P-256 key") : MESH_OK;
}

/* X.509 time as mbedTLS wants it, "YYYYMMDDhhmmss", clamped to the years
 * X.509 can express. */
static void x509_time(int64_t t, char out[MBEDTLS_X509_RFC5280_UTC_TIME_LEN + 1]) {
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
static int random_serial(mbedtls_x509write_cert *w, mesh__rng_t *r) {
  unsigned char b[16];
  int e = mbedtls_ctr_drbg_random(&r->drbg, b, sizeof b);
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
static int set_san(mbedtls_x509write_cert *w, const char *const uris[],
                   size_t nuris, const char *const dns[], size_t ndns) {
  unsigned char buf[2 * MESH_SPIFFE_ID_MAX +
                    MESH_CA_DNS_MAX * (MESH_CA_DNS_NAME_MAX + 8) + 512];
  unsigned char *p = buf + sizeof buf;
  int len = 0, err = 0;
  for (size_t i = ndns; i-- > 0;)
    write_general_name(&p, buf, 2, dns[i], &len, &err);
  for (size_t i = nuris; i-- > 0;)
    write_general_name(&p, buf, 6, uris[i], &len, &err);
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
    d->next = w->MESH__MBX(issuer); /* prepend: the writer emits the list backwards */
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

/* The common part of CA and leaf certificates. */
static int set_common(mbedtls_x509write_cert *w, mesh__rng_t *r,
                      mbedtls_pk_context *subject_key,
                      mbedtls_pk_context *issuer_key, int64_t nb, int64_t na) {
  mbedtls_x509write_crt_set_version(w, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(w, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(w, subject_key);
  mbedtls_x509write_crt_set_issuer_key(w, issuer_key);
  char a[MBEDTLS_X509_RFC5280_UTC_TIME_LEN + 1];
  char b[MBEDTLS_X509_RFC5280_UTC_TIME_LEN + 1];
  x509_time(nb, a);
  x509_time(na, b);
  int e = mbedtls_x509write_crt_set_validity(w, a, b);
  if (e == 0)
    e = random_serial(w, r);
  if (e == 0)
    e = mbedtls_x509write_crt_set_subject_key_identifier(w);
  return e;
}

/* DER of the certificate into der[]; returns a pointer into it. */
static int sign_der(mbedtls_x509write_cert *w, mesh__rng_t *r,
                    unsigned char *der, const unsigned char **out,
                    size_t *len) {
  int n = mbedtls_x509write_crt_der(w, der, DER_MAX, mbedtls_ctr_drbg_random,
                                    &r->drbg);
  if (n < 0)
    return n;
  *out = der + DER_MAX - n;
  *len = (size_t)n;
  return 0;
}

/* Append one DER certificate as PEM to pem[*off..]. */
static int append_pem(const unsigned char *der, size_t len, unsigned char *pem,
                      size_t *off) {
  size_t olen = 0;
  int e = mbedtls_pem_write_buffer(PEM_CRT_BEGIN, PEM_CRT_END, der, len,
                                   pem + *off, PEM_MAX - *off, &olen);
  if (e)
    return e;
  *off += olen - 1; /* olen counts the NUL */
  return 0;
}

static int write_key(mbedtls_pk_context *key, const char *path,
                     mesh_status_t *st) {
  unsigned char pem[4096];
  int e = mbedtls_pk_write_key_pem(key, pem, sizeof pem);
  if (e)
    return tls_fail(st, e, "cannot encode the private key");
  int rc = mesh__file_write(path, pem, strlen((char *)pem), 0600, st);
  mbedtls_platform_zeroize(pem, sizeof pem);
  return rc;
}

/* ---- CA ------------------------------------------------------------------ */

static int ca_subject(mesh__rng_t *r, const char *td, char *out, size_t len) {
  unsigned char b[8];
  int e = mbedtls_ctr_drbg_random(&r->drbg, b, sizeof b);
  if (e)
    return e;
  char hex[2 * sizeof b + 1];
  mesh__hex_encode(b, sizeof b, hex);
  hex[2 * sizeof b] = '\0';
  /* CN is bounded to 64 characters (RFC 5280 ub-common-name); the random
   * serialNumber keeps two CAs of one trust domain apart by name. */
  snprintf(out, len, "O=SPIFFE,OU=libmesh development CA,CN=%s,serialNumber=%s",
           strlen(td) <= 64 ? td : "trust domain CA", hex);
  return 0;
}

static int ca_build(mesh__rng_t *r, const char *td, int64_t lifetime_s,
                    mbedtls_pk_context *key, unsigned char *der,
                    const unsigned char **crt, size_t *crt_len,
                    mesh_status_t *st) {
  char subject[512], uri[MESH_TRUST_DOMAIN_MAX + 16];
  snprintf(uri, sizeof uri, "spiffe://%s", td);
  const char *uris[] = {uri};
  int64_t now = mesh__wall_s();
  mbedtls_x509write_cert w;
  mbedtls_x509write_crt_init(&w);
  int e = ca_subject(r, td, subject, sizeof subject);
  if (e == 0)
    e = mbedtls_x509write_crt_set_subject_name(&w, subject);
  if (e == 0)
    e = mbedtls_x509write_crt_set_issuer_name(&w, subject);
  if (e == 0)
    e = set_common(&w, r, key, key, now - 60, now + lifetime_s);
  if (e == 0)
    e = mbedtls_x509write_crt_set_authority_key_identifier(&w);
  if (e == 0)
    e = mbedtls_x509write_crt_set_basic_constraints(&w, 1, -1);
  if (e == 0)
    e = mbedtls_x509write_crt_set_key_usage(
        &w, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN);
  if (e == 0)
    e = set_san(&w, uris, 1, NULL, 0);
  if (e == 0)
    e = sign_der(&w, r, der, crt, crt_len);
  mbedtls_x509write_crt_free(&w);
  return e ? tls_fail(st, e, "cannot build the CA certificate") : MESH_OK;
}

int mesh_ca_init(const char *trust_domain, int64_t lifetime_s,
                 const char *cert_path, const char *key_path,
                 mesh_status_t *st) {
  mesh__ok(st);
  if (!trust_domain || !cert_path || !key_path)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_ca_init: trust_domain, cert_path and key_path "
                      "must not be NULL");
  if (lifetime_s <= 0)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_ca_init: lifetime must be positive, got %lld s",
                      (long long)lifetime_s);
  int rc = mesh__spiffe_td_validate(trust_domain, st);
  if (rc != MESH_OK)
    return rc;
  mesh__rng_t r;
  mbedtls_pk_context key;
  mbedtls_pk_init(&key);
  unsigned char *derbuf = mbedtls_calloc(1, DER_MAX);
  unsigned char *pem = mbedtls_calloc(1, PEM_MAX);
  rc = mesh__rng_init(&r, st);
  if (rc == MESH_OK && (!derbuf || !pem))
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK)
    rc = gen_key(&key, &r, st);
  const unsigned char *crt = NULL;
  size_t crt_len = 0, off = 0;
  if (rc == MESH_OK)
    rc = ca_build(&r, trust_domain, lifetime_s, &key, derbuf, &crt, &crt_len,
                  st);
  if (rc == MESH_OK && append_pem(crt, crt_len, pem, &off) != 0)
    rc = mesh__fail(st, MESH_ERR_TLS, "cannot encode the CA certificate");
  if (rc == MESH_OK)
    rc = write_key(&key, key_path, st);
  if (rc == MESH_OK)
    rc = mesh__file_write(cert_path, pem, off, 0644, st);
  mbedtls_free(derbuf);
  mbedtls_free(pem);
  mbedtls_pk_free(&key);
  mesh__rng_free(&r);
  return rc;
}

/* ---- leaf SVIDs ------------------------------------------------------------ */

typedef struct issue_ctx {
  mbedtls_x509_crt ca;
  mbedtls_pk_context ca_key;
  mbedtls_pk_context key;
  mesh__rng_t rng;
  unsigned char *der;
  unsigned char *pem;
} issue_ctx_t;

static int load_ca(issue_ctx_t *c, const char *cert, const char *key,
                   mesh_status_t *st) {
  int rc = mesh__pem_load_crts(&c->ca, cert, st);
  if (rc != MESH_OK)
    return rc;
  rc = mesh__pem_load_key(&c->ca_key, key, st);
  if (rc != MESH_OK)
    return rc;
  if (mbedtls_pk_check_pair(&c->ca.pk, &c->ca_key MESH__MBX_RNG) != 0)
    return mesh__fail(st, MESH_ERR_KEY_MISMATCH,
                      "%s: private key does not match the CA certificate %s",
                      key, cert);
  if (!c->ca.MESH__MBX(ca_istrue))
    return mesh__fail(st, MESH_ERR_SVID,
                      "%s: not a CA certificate (basicConstraints CA:FALSE)",
                      cert);
  return MESH_OK;
}

/* Extensions of a leaf, with the deliberate defects the flags ask for. */
static int leaf_extensions(mbedtls_x509write_cert *w, const char *id,
                           unsigned flags, const char *const dns[],
                           size_t ndns) {
  int e = mbedtls_x509write_crt_set_basic_constraints(
      w, (flags & MESH_CA_ISSUE_AS_CA) ? 1 : 0, -1);
  if (e == 0)
    e = mbedtls_x509write_crt_set_key_usage(w,
                                            MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
  if (e == 0)
    e = set_eku(w);
  if (e)
    return e;
  if (flags & MESH_CA_ISSUE_NO_URI) {
    const char *const localhost[] = {"localhost"};
    return set_san(w, NULL, 0, ndns ? dns : localhost, ndns ? ndns : 1);
  }
  char second[MESH_TRUST_DOMAIN_MAX + 32];
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  mesh_spiffe_id_parse(id, td, sizeof td, NULL, 0, NULL);
  snprintf(second, sizeof second, "spiffe://%s/second", td);
  const char *uris[] = {id, second};
  return set_san(w, uris, (flags & MESH_CA_ISSUE_TWO_URIS) ? 2 : 1, dns,
                 ndns);
}

static int leaf_build(issue_ctx_t *c, const char *id, int64_t nb, int64_t na,
                      unsigned flags, const char *const dns[], size_t ndns,
                      size_t *pem_len, mesh_status_t *st) {
  mbedtls_x509write_cert w;
  mbedtls_x509write_crt_init(&w);
  int rc = copy_issuer(&w, &c->ca.subject, st);
  if (rc != MESH_OK) {
    mbedtls_x509write_crt_free(&w);
    return rc;
  }
  const unsigned char *crt = NULL;
  size_t len = 0;
  int e = mbedtls_x509write_crt_set_subject_name(&w, "O=SPIFFE");
  if (e == 0)
    e = set_common(&w, &c->rng, &c->key, &c->ca_key, nb, na);
  if (e == 0)
    e = leaf_extensions(&w, id, flags, dns, ndns);
  if (e == 0)
    e = sign_der(&w, &c->rng, c->der, &crt, &len);
  mbedtls_x509write_crt_free(&w);
  if (e)
    return tls_fail(st, e, "cannot build the SVID");
  *pem_len = 0;
  e = append_pem(crt, len, c->pem, pem_len);
  if (e == 0 && (flags & MESH_CA_ISSUE_CHAIN))
    e = append_pem(c->ca.raw.p, c->ca.raw.len, c->pem, pem_len);
  return e ? tls_fail(st, e, "cannot encode the SVID") : MESH_OK;
}

static int issue_args(const char *ca_cert, const char *ca_key, const char *id,
                      int64_t *nb, int64_t *na, unsigned flags,
                      const char *cert, const char *key, mesh_status_t *st) {
  if (!ca_cert || !ca_key || !id || !cert || !key)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_ca_issue: paths and SPIFFE ID must not be NULL");
  if (flags & ~(unsigned)ISSUE_FLAGS_ALL)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_ca_issue: unknown flags 0x%x", flags);
  if (*nb == 0 && *na == 0) {
    int64_t now = mesh__wall_s();
    *nb = now - 60;
    *na = now + 3600;
  }
  if (*na <= *nb)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_ca_issue: not_after (%lld) must be after "
                      "not_before (%lld)",
                      (long long)*na, (long long)*nb);
  return mesh_spiffe_id_validate(id, st);
}

/* A DNS name as X.509 dNSName wants it (RFC 5280 4.2.1.6, RFC 1034 LDH
 * labels; a leading "*." wildcard label allowed, as web PKI does). */
static int dns_check(const char *name, mesh_status_t *st) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > MESH_CA_DNS_NAME_MAX)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "DNS name \"%.64s\": empty or longer than %d bytes",
                      name ? name : "", MESH_CA_DNS_NAME_MAX);
  const char *p = name;
  if (strncmp(p, "*.", 2) == 0)
    p += 2;
  for (;;) {
    size_t label = strcspn(p, ".");
    bool ok = label >= 1 && label <= 63 && p[0] != '-' && p[label - 1] != '-';
    for (size_t i = 0; ok && i < label; i++) {
      char c = p[i];
      ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
    }
    if (!ok)
      return mesh__fail(st, MESH_ERR_INVALID_ARG,
                        "DNS name \"%.64s\": labels are 1-63 letters, digits "
                        "or inner hyphens, separated by dots",
                        name);
    if (!p[label])
      return MESH_OK;
    p += label + 1;
  }
}

static int issue(const char *ca_cert_path, const char *ca_key_path,
                 const char *spiffe_id, const char *const dns[], size_t ndns,
                 int64_t not_before, int64_t not_after, unsigned flags,
                 const char *cert_path, const char *key_path,
                 mesh_status_t *st) {
  int rc = issue_args(ca_cert_path, ca_key_path, spiffe_id, &not_before,
                      &not_after, flags, cert_path, key_path, st);
  if (rc != MESH_OK)
    return rc;
  issue_ctx_t c;
  memset(&c, 0, sizeof c);
  mbedtls_x509_crt_init(&c.ca);
  mbedtls_pk_init(&c.ca_key);
  mbedtls_pk_init(&c.key);
  c.der = mbedtls_calloc(1, DER_MAX);
  c.pem = mbedtls_calloc(1, PEM_MAX);
  rc = mesh__rng_init(&c.rng, st);
  if (rc == MESH_OK && (!c.der || !c.pem))
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK)
    rc = load_ca(&c, ca_cert_path, ca_key_path, st);
  if (rc == MESH_OK)
    rc = gen_key(&c.key, &c.rng, st);
  size_t pem_len = 0;
  if (rc == MESH_OK)
    rc = leaf_build(&c, spiffe_id, not_before, not_after, flags, dns, ndns,
                    &pem_len, st);
  if (rc == MESH_OK)
    rc = write_key(&c.key, key_path, st);
  if (rc == MESH_OK)
    rc = mesh__file_write(cert_path, c.pem, pem_len, 0644, st);
  mbedtls_free(c.der);
  mbedtls_free(c.pem);
  mbedtls_pk_free(&c.key);
  mbedtls_pk_free(&c.ca_key);
  mbedtls_x509_crt_free(&c.ca);
  mesh__rng_free(&c.rng);
  return rc;
}

int mesh_ca_issue(const char *ca_cert_path, const char *ca_key_path,
                  const char *spiffe_id, int64_t not_before, int64_t not_after,
                  unsigned flags, const char *cert_path, const char *key_path,
                  mesh_status_t *st) {
  mesh__ok(st);
  return issue(ca_cert_path, ca_key_path, spiffe_id, NULL, 0, not_before,
               not_after, flags, cert_path, key_path, st);
}

int mesh_ca_issue_dns(const char *ca_cert_path, const char *ca_key_path,
                      const char *spiffe_id, const char *const *dns_names,
                      size_t ndns, int64_t not_before, int64_t not_after,
                      unsigned flags, const char *cert_path,
                      const char *key_path, mesh_status_t *st) {
  mesh__ok(st);
  if (ndns > MESH_CA_DNS_MAX || (ndns && !dns_names))
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_ca_issue_dns: at most %d DNS names (got %zu)",
                      MESH_CA_DNS_MAX, ndns);
  for (size_t i = 0; i < ndns; i++) {
    int rc = dns_check(dns_names[i], st);
    if (rc != MESH_OK)
      return rc;
  }
  return issue(ca_cert_path, ca_key_path, spiffe_id, dns_names, ndns,
               not_before, not_after, flags, cert_path, key_path, st);
}
