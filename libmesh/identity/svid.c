/* SPDX-License-Identifier: Apache-2.0 */
/* X.509-SVID rules (X509-SVID.md sections 2 to 5) and peer verification
 * against the bundle of the peer's own trust domain.  No I/O: certificates
 * in, a code and a precise reason out. */
#include "identity/pemfile.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>

#define SAN_URI_TAG (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6)

size_t mesh__x509_uri_sans(const mbedtls_x509_crt *crt,
                           const mbedtls_x509_buf **first) {
  size_t n = 0;
  if (first)
    *first = NULL;
  for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s;
       s = s->next) {
    if (!s->buf.p || s->buf.tag != SAN_URI_TAG)
      continue;
    if (n == 0 && first)
      *first = &s->buf;
    n++;
  }
  return n;
}

/* Copy a URI SAN into a C string and validate it as a SPIFFE ID. */
static int uri_to_id(const mbedtls_x509_buf *uri, char *out, size_t cap,
                     mesh_status_t *st) {
  if (uri->len > MESH_SPIFFE_ID_MAX)
    return mesh__fail(st, MESH_ERR_SPIFFE_ID,
                      "URI SAN is longer than %d bytes (SPIFFE ID limit)",
                      MESH_SPIFFE_ID_MAX);
  if (memchr(uri->p, '\0', uri->len))
    return mesh__fail(st, MESH_ERR_SPIFFE_ID, "URI SAN contains a NUL byte");
  if (uri->len >= cap)
    return mesh__fail(st, MESH_ERR_INTERNAL, "URI SAN buffer too small");
  memcpy(out, uri->p, uri->len);
  out[uri->len] = '\0';
  mesh_status_t sub;
  if (mesh_spiffe_id_validate(out, &sub) != MESH_OK)
    return mesh__fail(st, MESH_ERR_SPIFFE_ID, "URI SAN: %s", sub.message);
  return MESH_OK;
}

static bool id_has_path(const char *id) {
  return strchr(id + sizeof "spiffe://" - 1, '/') != NULL;
}

static int check_leaf_usage(const mbedtls_x509_crt *leaf, const char *id,
                            mesh_status_t *st) {
  if (leaf->MESH__MBX(ca_istrue))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf certificate is a CA (basicConstraints "
                      "CA:TRUE)",
                      id);
  if (!(leaf->MESH__MBX(ext_types) & MBEDTLS_X509_EXT_KEY_USAGE))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf has no keyUsage extension", id);
  if (!(leaf->MESH__MBX(key_usage) & MBEDTLS_X509_KU_DIGITAL_SIGNATURE))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf keyUsage lacks digitalSignature", id);
  if (leaf->MESH__MBX(key_usage) &
      (MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf keyUsage has keyCertSign or cRLSign", id);
  if (!(leaf->MESH__MBX(ext_types) & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE))
    return MESH_OK; /* SHOULD, not MUST (X509-SVID 4.4) */
  if (mbedtls_x509_crt_check_extended_key_usage(
          leaf, MBEDTLS_OID_SERVER_AUTH,
          MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0 ||
      mbedtls_x509_crt_check_extended_key_usage(
          leaf, MBEDTLS_OID_CLIENT_AUTH,
          MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0)
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf extendedKeyUsage lacks serverAuth or "
                      "clientAuth",
                      id);
  return MESH_OK;
}

int mesh__svid_leaf_check(const mbedtls_x509_crt *leaf, char *id, size_t len,
                          mesh_status_t *st) {
  mesh__ok(st);
  if (!leaf || !leaf->raw.p)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "no leaf certificate");
  const mbedtls_x509_buf *uri;
  size_t n = mesh__x509_uri_sans(leaf, &uri);
  if (n == 0)
    return mesh__fail(st, MESH_ERR_SVID,
                      "certificate has no URI SAN (an X.509-SVID carries its "
                      "SPIFFE ID in exactly one)");
  if (n > 1)
    return mesh__fail(st, MESH_ERR_SVID,
                      "certificate has %zu URI SANs (an X.509-SVID must have "
                      "exactly one)",
                      n);
  char buf[MESH_SPIFFE_ID_MAX + 1];
  int rc = uri_to_id(uri, buf, sizeof buf, st);
  if (rc != MESH_OK)
    return rc;
  if (!id_has_path(buf))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: a leaf SPIFFE ID must have a path", buf);
  rc = check_leaf_usage(leaf, buf, st);
  if (rc != MESH_OK)
    return rc;
  if (id && mesh__strlcpy(id, buf, len) >= len)
    return mesh__fail(st, MESH_ERR_BUFFER, "SPIFFE ID needs %zu bytes",
                      strlen(buf) + 1);
  return MESH_OK;
}

int mesh__svid_signing_check(const mbedtls_x509_crt *crt, mesh_status_t *st) {
  mesh__ok(st);
  if (!crt->MESH__MBX(ca_istrue))
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate is not a CA (basicConstraints)");
  if ((crt->MESH__MBX(ext_types) & MBEDTLS_X509_EXT_KEY_USAGE) &&
      !(crt->MESH__MBX(key_usage) & MBEDTLS_X509_KU_KEY_CERT_SIGN))
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate keyUsage lacks keyCertSign");
  const mbedtls_x509_buf *uri;
  size_t n = mesh__x509_uri_sans(crt, &uri);
  if (n == 0)
    return MESH_OK; /* a signing certificate SHOULD (not MUST) be an SVID */
  if (n > 1)
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate has %zu URI SANs", n);
  char buf[MESH_SPIFFE_ID_MAX + 1];
  mesh_status_t sub;
  if (uri_to_id(uri, buf, sizeof buf, &sub) != MESH_OK)
    return mesh__fail(st, MESH_ERR_SVID, "signing certificate %s",
                      sub.message);
  if (id_has_path(buf))
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate SPIFFE ID %s must not have a path",
                      buf);
  return MESH_OK;
}

/* mbedtls_x509_crt_verify_info() writes one "! reason\n" line per flag;
 * fold them into "reason; reason". */
static void flags_text(uint32_t flags, char *out, size_t len) {
  char raw[512];
  out[0] = '\0';
  if (mbedtls_x509_crt_verify_info(raw, sizeof raw, "", flags) < 0)
    return;
  size_t off = 0;
  for (char *line = raw; *line && off + 1 < len;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    while (*line == ' ' || *line == '!')
      line++;
    if (*line) {
      int n = snprintf(out + off, len - off, "%s%s", off ? "; " : "", line);
      if (n < 0 || (size_t)n >= len - off)
        return;
      off += (size_t)n;
    }
    if (!nl)
      break;
    line = nl + 1;
  }
}

int mesh__x509_flags_to_code(uint32_t flags, mesh_status_t *st) {
  mesh__ok(st);
  if (flags == 0)
    return MESH_OK;
  char text[300];
  flags_text(flags, text, sizeof text);
  if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
    return mesh__fail(st, MESH_ERR_CERT_UNTRUSTED,
                      "certificate chain does not lead to the trust bundle "
                      "(%s)",
                      text);
  if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
    return mesh__fail(st, MESH_ERR_CERT_EXPIRED, "certificate expired (%s)",
                      text);
  if (flags & MBEDTLS_X509_BADCERT_FUTURE)
    return mesh__fail(st, MESH_ERR_CERT_NOT_YET_VALID,
                      "certificate not yet valid (%s)", text);
  return mesh__fail(st, MESH_ERR_CERT_UNTRUSTED,
                    "certificate chain rejected (%s)", text);
}

const mesh__bundle_t *mesh__creds_bundle(const mesh__creds_t *c,
                                         const char *td) {
  if (!c || !td)
    return NULL;
  for (size_t i = 0; i < c->nbundles; i++)
    if (strcmp(c->bundles[i].td, td) == 0)
      return &c->bundles[i];
  return NULL;
}

/* Prepend "prefix: " to st->message (best effort on overflow). */
static int prefixed(mesh_status_t *st, int code, const char *prefix) {
  if (!st)
    return code;
  char msg[sizeof st->message];
  mesh__strlcpy(msg, st->message, sizeof msg);
  return mesh__fail(st, code, "%s: %s", prefix, msg);
}

int mesh__svid_chain_check(const mbedtls_x509_crt *chain, char *id,
                           size_t len, mesh_status_t *st) {
  int rc = mesh__svid_leaf_check(chain, id, len, st);
  if (rc != MESH_OK)
    return rc;
  int i = 1;
  for (const mbedtls_x509_crt *c = chain->next; c && c->raw.p;
       c = c->next, i++) {
    rc = mesh__svid_signing_check(c, st);
    if (rc != MESH_OK) {
      char p[48];
      snprintf(p, sizeof p, "chain certificate #%d", i);
      return prefixed(st, rc, p);
    }
  }
  return MESH_OK;
}

/* Which certificate's dates failed, for a message people can act on. */
static int time_detail(const mbedtls_x509_crt *leaf, int rc, const char *id,
                       mesh_status_t *st) {
  const mbedtls_x509_time *t = NULL;
  const char *what = NULL;
  if (rc == MESH_ERR_CERT_EXPIRED && mbedtls_x509_time_is_past(&leaf->valid_to)) {
    t = &leaf->valid_to;
    what = "expired at";
  } else if (rc == MESH_ERR_CERT_NOT_YET_VALID &&
             mbedtls_x509_time_is_future(&leaf->valid_from)) {
    t = &leaf->valid_from;
    what = "is not valid before";
  }
  if (!t)
    return mesh__fail(st, rc, "SVID %s: %s in its chain",
                      id, rc == MESH_ERR_CERT_EXPIRED
                              ? "a CA certificate expired"
                              : "a CA certificate is not valid yet");
  return mesh__fail(st, rc, "SVID %s %s %04d-%02d-%02dT%02d:%02d:%02dZ", id,
                    what, t->year, t->mon, t->day, t->hour, t->min, t->sec);
}

int mesh__svid_verify(const mbedtls_x509_crt *chain,
                      const mesh__bundle_t *bundle, const char *id,
                      uint32_t ignore, mesh_status_t *st) {
  uint32_t flags = 0;
  /* mbedTLS takes non-const pointers but does not modify the chains
   * (the roots' EC tables are precomputed at load, see creds.c). */
  int r = mbedtls_x509_crt_verify((mbedtls_x509_crt *)chain,
                                  (mbedtls_x509_crt *)&bundle->roots, NULL,
                                  NULL, &flags, NULL, NULL);
  if (r != 0 && flags == 0) {
    char e[160];
    mesh__mbedtls_err(r, e, sizeof e);
    return mesh__fail(st, MESH_ERR_CERT_UNTRUSTED,
                      "SVID %s: chain verification failed: %s", id, e);
  }
  flags &= ~ignore;
  int rc = mesh__x509_flags_to_code(flags, st);
  if (rc == MESH_ERR_CERT_EXPIRED || rc == MESH_ERR_CERT_NOT_YET_VALID)
    return time_detail(chain, rc, id, st);
  if (rc != MESH_OK) {
    char p[MESH_SPIFFE_ID_MAX + MESH_TRUST_DOMAIN_MAX + 40];
    snprintf(p, sizeof p, "SVID %s (trust domain %s)", id, bundle->td);
    return prefixed(st, rc, p);
  }
  return MESH_OK;
}

int mesh__creds_verify_peer(const mesh__creds_t *c,
                            const mbedtls_x509_crt *peer, char *id,
                            size_t len, mesh_status_t *st) {
  mesh__ok(st);
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "no credentials loaded");
  if (!peer || !peer->raw.p)
    return mesh__fail(st, MESH_ERR_NO_PEER_CERT,
                      "peer presented no certificate");
  char pid[MESH_SPIFFE_ID_MAX + 1];
  int rc = mesh__svid_chain_check(peer, pid, sizeof pid, st);
  if (rc != MESH_OK)
    return prefixed(st, rc, "peer");
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  mesh_spiffe_id_parse(pid, td, sizeof td, NULL, 0, NULL);
  const mesh__bundle_t *b = mesh__creds_bundle(c, td);
  if (!b)
    return mesh__fail(st, MESH_ERR_TRUST_DOMAIN,
                      "peer %s: no trust bundle for trust domain \"%s\"", pid,
                      td);
  rc = mesh__svid_verify(peer, b, pid, 0, st);
  if (rc != MESH_OK)
    return prefixed(st, rc, "peer");
  if (id && mesh__strlcpy(id, pid, len) >= len)
    return mesh__fail(st, MESH_ERR_BUFFER, "peer SPIFFE ID needs %zu bytes",
                      strlen(pid) + 1);
  return MESH_OK;
}
