/* SPDX-License-Identifier: Apache-2.0 */
/* The development CA: mint an ECDSA P-256 CA and X.509-SVIDs, so demos and
 * tests need no outside CA.  Certificates follow the X.509-SVID profile
 * (one URI SAN, CA:TRUE/keyCertSign for the CA, CA:FALSE/digitalSignature
 * + serverAuth/clientAuth for leaves) unless a MESH_CA_ISSUE_* flag asks
 * for a deliberately broken one.  This file is the policy; the crypto is
 * behind ca_be.h (ca_mbedtls.c or ca_openssl.c, by configure --with-tls). */
#include "identity/ca_be.h"
#include "identity/pemfile.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISSUE_FLAGS_ALL                                                     \
  (MESH_CA_ISSUE_AS_CA | MESH_CA_ISSUE_NO_URI | MESH_CA_ISSUE_TWO_URIS |    \
   MESH_CA_ISSUE_CHAIN)

/* ---- CA ------------------------------------------------------------------ */

static int ca_subject(const char *td, char *out, size_t len,
                      mesh_status_t *st) {
  unsigned char b[8];
  int rc = mesh__ca_random(b, sizeof b, st);
  if (rc != MESH_OK)
    return rc;
  char hex[2 * sizeof b + 1];
  mesh__hex_encode(b, sizeof b, hex);
  hex[2 * sizeof b] = '\0';
  /* CN is bounded to 64 characters (RFC 5280 ub-common-name); the random
   * serialNumber keeps two CAs of one trust domain apart by name. */
  snprintf(out, len, "O=SPIFFE,OU=libmesh development CA,CN=%s,serialNumber=%s",
           strlen(td) <= 64 ? td : "trust domain CA", hex);
  return MESH_OK;
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
  char subject[512], uri[MESH_TRUST_DOMAIN_MAX + 16];
  snprintf(uri, sizeof uri, "spiffe://%s", trust_domain);
  const char *uris[] = {uri};
  int64_t now = mesh__wall_s();
  mesh__ca_tbs_t t = {.subject = subject,
                      .not_before = now - 60,
                      .not_after = now + lifetime_s,
                      .ca = true,
                      .uris = uris,
                      .nuris = 1};
  mesh__ca_key_t *key = NULL;
  char *pem = NULL;
  size_t pem_len = 0;
  rc = ca_subject(trust_domain, subject, sizeof subject, st);
  if (rc == MESH_OK)
    rc = mesh__ca_keygen(&key, st);
  if (rc == MESH_OK)
    rc = mesh__ca_sign(&t, key, NULL, &pem, &pem_len, "the CA certificate",
                       st);
  if (rc == MESH_OK)
    rc = mesh__ca_key_write(key, key_path, st);
  if (rc == MESH_OK)
    rc = mesh__file_write(cert_path, pem, pem_len, 0644, st);
  free(pem);
  mesh__ca_key_free(key);
  return rc;
}

/* ---- leaf SVIDs ------------------------------------------------------------ */

/* SANs of a leaf, with the deliberate defects the flags ask for. */
static void leaf_sans(mesh__ca_tbs_t *t, const char *id, unsigned flags,
                      const char *const dns[], size_t ndns,
                      const char *uris[2], char *second, size_t second_len) {
  static const char *const localhost[] = {"localhost"};
  t->dns = dns;
  t->ndns = ndns;
  if (flags & MESH_CA_ISSUE_NO_URI) {
    t->nuris = 0;
    if (!ndns) {
      t->dns = localhost;
      t->ndns = 1;
    }
    return;
  }
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  mesh_spiffe_id_parse(id, td, sizeof td, NULL, 0, NULL);
  snprintf(second, second_len, "spiffe://%s/second", td);
  uris[0] = id;
  uris[1] = second;
  t->uris = uris;
  t->nuris = (flags & MESH_CA_ISSUE_TWO_URIS) ? 2 : 1;
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
  mesh__ca_tbs_t t = {.not_before = not_before,
                      .not_after = not_after,
                      .ca = (flags & MESH_CA_ISSUE_AS_CA) != 0,
                      .leaf_usage = true,
                      .append_issuer = (flags & MESH_CA_ISSUE_CHAIN) != 0};
  const char *uris[2];
  char second[MESH_TRUST_DOMAIN_MAX + 32];
  leaf_sans(&t, spiffe_id, flags, dns, ndns, uris, second, sizeof second);
  mesh__ca_ca_t *ca = NULL;
  mesh__ca_key_t *key = NULL;
  char *pem = NULL;
  size_t pem_len = 0;
  rc = mesh__ca_load(&ca, ca_cert_path, ca_key_path, st);
  if (rc == MESH_OK)
    rc = mesh__ca_keygen(&key, st);
  if (rc == MESH_OK)
    rc = mesh__ca_sign(&t, key, ca, &pem, &pem_len, "the SVID", st);
  if (rc == MESH_OK)
    rc = mesh__ca_key_write(key, key_path, st);
  if (rc == MESH_OK)
    rc = mesh__file_write(cert_path, pem, pem_len, 0644, st);
  free(pem);
  mesh__ca_key_free(key);
  mesh__ca_free(ca);
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
