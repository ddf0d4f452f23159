/* SPDX-License-Identifier: Apache-2.0 */
/* X.509-SVID rules (X509-SVID.md sections 2 to 5) and peer verification
 * against the bundle of the peer's own trust domain.  No I/O: certificates
 * in, a code and a precise reason out. */
#include "identity/pemfile.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Copy a URI SAN into a C string and validate it as a SPIFFE ID. */
static int uri_to_id(const char *uri, size_t ulen, char *out, size_t cap,
                     mesh_status_t *st) {
  if (ulen > MESH_SPIFFE_ID_MAX)
    return mesh__fail(st, MESH_ERR_SPIFFE_ID,
                      "URI SAN is longer than %d bytes (SPIFFE ID limit)",
                      MESH_SPIFFE_ID_MAX);
  if (memchr(uri, '\0', ulen))
    return mesh__fail(st, MESH_ERR_SPIFFE_ID, "URI SAN contains a NUL byte");
  if (ulen >= cap)
    return mesh__fail(st, MESH_ERR_INTERNAL, "URI SAN buffer too small");
  memcpy(out, uri, ulen);
  out[ulen] = '\0';
  mesh_status_t sub;
  if (mesh_spiffe_id_validate(out, &sub) != MESH_OK)
    return mesh__fail(st, MESH_ERR_SPIFFE_ID, "URI SAN: %s", sub.message);
  return MESH_OK;
}

/* ---- extensions: the mesh's rule, the same on both backends ------------ */

/* An OID's DER content bytes as dotted text (best effort). */
static void oid_text(const unsigned char *o, size_t n, char *out,
                     size_t len) {
  size_t off = 0;
  unsigned long v = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n && off < len; i++) {
    v = (v << 7) | (o[i] & 0x7fu);
    if (o[i] & 0x80u)
      continue;
    int w = off == 0 ? snprintf(out, len, "%lu.%lu", v < 80 ? v / 40 : 2,
                                v < 80 ? v % 40 : v - 80)
                     : snprintf(out + off, len - off, ".%lu", v);
    if (w < 0)
      return;
    off += (size_t)w;
    v = 0;
  }
}

#define EXT_MAX 32
struct ext_seen {
  const unsigned char *oid[EXT_MAX];
  size_t len[EXT_MAX], n;
  char why[120];
};

static bool oid_is(const unsigned char *o, size_t n, unsigned char last) {
  return n == 3 && o[0] == 0x55 && o[1] == 0x1d && o[2] == last;
}

/* Refuse: an extension twice (RFC 5280 4.2), nameConstraints (mbedTLS
 * ignores them, OpenSSL enforces them: a CA's constraints would hold on one
 * build only), a critical extension other than basicConstraints, keyUsage,
 * extendedKeyUsage, subjectAltName (what both builds process alike). */
static int ext_cb(void *arg, const unsigned char *oid, size_t n, bool crit) {
  struct ext_seen *s = arg;
  char t[64];
  oid_text(oid, n, t, sizeof t);
  for (size_t i = 0; i < s->n; i++)
    if (s->len[i] == n && memcmp(s->oid[i], oid, n) == 0) {
      snprintf(s->why, sizeof s->why, "extension %s appears twice", t);
      return -1;
    }
  if (s->n == EXT_MAX) {
    snprintf(s->why, sizeof s->why, "more than %d extensions", EXT_MAX);
    return -1;
  }
  s->oid[s->n] = oid;
  s->len[s->n++] = n;
  if (oid_is(oid, n, 0x1e)) {
    snprintf(s->why, sizeof s->why, "nameConstraints are not supported");
    return -1;
  }
  if (crit && !oid_is(oid, n, 0x13) && !oid_is(oid, n, 0x0f) &&
      !oid_is(oid, n, 0x25) && !oid_is(oid, n, 0x11)) {
    snprintf(s->why, sizeof s->why, "critical extension %s is not supported",
             t);
    return -1;
  }
  return 0;
}

static int ext_check(const mesh__x509_t *crt, const char *what,
                     mesh_status_t *st) {
  struct ext_seen s = {.n = 0};
  if (mesh__x509_ext_walk(crt, ext_cb, &s) != 0)
    return mesh__fail(st, MESH_ERR_SVID, "%s: %s", what, s.why);
  return MESH_OK;
}

static bool id_has_path(const char *id) {
  return strchr(id + sizeof "spiffe://" - 1, '/') != NULL;
}

static int check_leaf_usage(const mesh__x509_t *leaf, const char *id,
                            mesh_status_t *st) {
  unsigned ku, eku;
  if (mesh__x509_is_ca(leaf))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf certificate is a CA (basicConstraints "
                      "CA:TRUE)",
                      id);
  if (!mesh__x509_key_usage(leaf, &ku))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf has no keyUsage extension", id);
  if (!(ku & MESH__KU_DIGITAL_SIGNATURE))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf keyUsage lacks digitalSignature", id);
  if (ku & (MESH__KU_KEY_CERT_SIGN | MESH__KU_CRL_SIGN))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf keyUsage has keyCertSign or cRLSign", id);
  if (!mesh__x509_ext_key_usage(leaf, &eku))
    return MESH_OK; /* SHOULD, not MUST (X509-SVID 4.4) */
  if (eku != (MESH__EKU_SERVER | MESH__EKU_CLIENT))
    return mesh__fail(st, MESH_ERR_SVID,
                      "SVID %s: leaf extendedKeyUsage lacks serverAuth or "
                      "clientAuth",
                      id);
  return MESH_OK;
}

int mesh__svid_leaf_check(const mesh__x509_t *leaf, char *id, size_t len,
                          mesh_status_t *st) {
  mesh__ok(st);
  if (!leaf)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "no leaf certificate");
  int rc = ext_check(leaf, "certificate", st);
  if (rc != MESH_OK)
    return rc;
  char uri[MESH_SPIFFE_ID_MAX + 1];
  size_t ulen;
  size_t n = mesh__x509_uri_sans(leaf, uri, sizeof uri, &ulen);
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
  rc = uri_to_id(uri, ulen, buf, sizeof buf, st);
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

int mesh__svid_signing_check(const mesh__x509_t *crt, mesh_status_t *st) {
  mesh__ok(st);
  unsigned ku;
  if (!mesh__x509_is_ca(crt))
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate is not a CA (basicConstraints)");
  if (mesh__x509_key_usage(crt, &ku) && !(ku & MESH__KU_KEY_CERT_SIGN))
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate keyUsage lacks keyCertSign");
  if (ext_check(crt, "signing certificate", st) != MESH_OK)
    return MESH_ERR_SVID;
  char uri[MESH_SPIFFE_ID_MAX + 1];
  size_t ulen;
  size_t n = mesh__x509_uri_sans(crt, uri, sizeof uri, &ulen);
  if (n == 0)
    return MESH_OK; /* a signing certificate SHOULD (not MUST) be an SVID */
  if (n > 1)
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate has %zu URI SANs", n);
  char buf[MESH_SPIFFE_ID_MAX + 1];
  mesh_status_t sub;
  if (uri_to_id(uri, ulen, buf, sizeof buf, &sub) != MESH_OK)
    return mesh__fail(st, MESH_ERR_SVID, "signing certificate %s",
                      sub.message);
  if (id_has_path(buf))
    return mesh__fail(st, MESH_ERR_SVID,
                      "signing certificate SPIFFE ID %s must not have a path",
                      buf);
  return MESH_OK;
}

/* The words of each finding (mbedTLS's x509_crt_verify_info() texts, in
 * its order), folded into "reason; reason". */
static const struct {
  uint32_t flag;
  const char *text;
} flag_texts[] = {
  {MESH__X509_EXPIRED, "The certificate validity has expired"},
  {MESH__X509_NOT_TRUSTED,
   "The certificate is not correctly signed by the trusted CA"},
  {MESH__X509_OTHER, "Other reason (can be used by verify callback)"},
  {MESH__X509_FUTURE, "The certificate validity starts in the future"},
  {MESH__X509_KEY_USAGE, "Usage does not match the keyUsage extension"},
  {MESH__X509_EXT_KEY_USAGE,
   "Usage does not match the extendedKeyUsage extension"},
  {MESH__X509_BAD_MD, "The certificate is signed with an unacceptable hash."},
  {MESH__X509_BAD_PK, "The certificate is signed with an unacceptable PK alg "
                      "(eg RSA vs ECDSA)."},
  {MESH__X509_BAD_KEY, "The certificate is signed with an unacceptable key "
                       "(eg bad curve, RSA too short)."},
};

static void flags_text(uint32_t flags, char *out, size_t len) {
  size_t off = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof flag_texts / sizeof flag_texts[0]; i++) {
    if (!(flags & flag_texts[i].flag))
      continue;
    int n = snprintf(out + off, len - off, "%s%s", off ? "; " : "",
                     flag_texts[i].text);
    if (n < 0 || (size_t)n >= len - off)
      return;
    off += (size_t)n;
  }
  if (off == 0)
    snprintf(out, len, "verification flags 0x%x", (unsigned)flags);
}

int mesh__x509_flags_to_code(uint32_t flags, mesh_status_t *st) {
  mesh__ok(st);
  if (flags == 0)
    return MESH_OK;
  char text[300];
  flags_text(flags, text, sizeof text);
  if (flags & MESH__X509_NOT_TRUSTED)
    return mesh__fail(st, MESH_ERR_CERT_UNTRUSTED,
                      "certificate chain does not lead to the trust bundle "
                      "(%s)",
                      text);
  if (flags & MESH__X509_EXPIRED)
    return mesh__fail(st, MESH_ERR_CERT_EXPIRED, "certificate expired (%s)",
                      text);
  if (flags & MESH__X509_FUTURE)
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

/* Certificate i's issuer, where the chain has it: the first later
 * certificate whose subject is i's issuer, else any earlier one (-1:
 * none, i.e. the bundle's). */
static long issuer_at(const mesh__x509_chain_t *chain, size_t i) {
  char iss[512], sub[512];
  if (mesh__x509_dn_text(mesh__x509_chain_at(chain, i), true, iss,
                         sizeof iss) != 0)
    return -1;
  size_t n = mesh__x509_chain_len(chain);
  long before = -1;
  for (size_t j = 0; j < n; j++) {
    if (j == i || mesh__x509_dn_text(mesh__x509_chain_at(chain, j), false,
                                     sub, sizeof sub) != 0 ||
        strcmp(iss, sub) != 0)
      continue;
    if (j > i)
      return (long)j;
    before = (long)j;
  }
  return before;
}

/* The order TLS says (RFC 8446 4.4.2, RFC 5246 7.4.2): leaf first, each
 * certificate followed by its issuer.  mbedTLS looks for an issuer only
 * after a certificate, OpenSSL anywhere: the stricter rule, for both. */
static int order_check(const mesh__x509_chain_t *chain, mesh_status_t *st) {
  for (size_t i = 1; i < mesh__x509_chain_len(chain); i++) {
    long at = issuer_at(chain, i);
    if (at >= 0 && (size_t)at < i)
      return mesh__fail(st, MESH_ERR_SVID,
                        "chain certificate #%zu is issued by #%ld, which "
                        "comes before it (each certificate must be followed "
                        "by its issuer)",
                        i, at);
  }
  return MESH_OK;
}

int mesh__svid_chain_check(const mesh__x509_chain_t *chain, char *id,
                           size_t len, mesh_status_t *st) {
  int rc = mesh__svid_leaf_check(mesh__x509_chain_at(chain, 0), id, len, st);
  if (rc != MESH_OK)
    return rc;
  rc = order_check(chain, st);
  if (rc != MESH_OK)
    return rc;
  for (size_t i = 1; i < mesh__x509_chain_len(chain); i++) {
    rc = mesh__svid_signing_check(mesh__x509_chain_at(chain, i), st);
    if (rc != MESH_OK) {
      char p[48];
      snprintf(p, sizeof p, "chain certificate #%zu", i);
      return prefixed(st, rc, p);
    }
  }
  return MESH_OK;
}

/* Which certificate's dates failed, for a message people can act on. */
static int time_detail(const mesh__x509_t *leaf, int rc, const char *id,
                       mesh_status_t *st) {
  int64_t now = mesh__wall_s(), t = 0;
  const char *what = NULL;
  if (rc == MESH_ERR_CERT_EXPIRED && mesh__x509_not_after(leaf) < now) {
    t = mesh__x509_not_after(leaf);
    what = "expired at";
  } else if (rc == MESH_ERR_CERT_NOT_YET_VALID &&
             mesh__x509_not_before(leaf) > now) {
    t = mesh__x509_not_before(leaf);
    what = "is not valid before";
  }
  if (!what)
    return mesh__fail(st, rc, "SVID %s: %s in its chain",
                      id, rc == MESH_ERR_CERT_EXPIRED
                              ? "a CA certificate expired"
                              : "a CA certificate is not valid yet");
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  return mesh__fail(st, rc, "SVID %s %s %04d-%02d-%02dT%02d:%02d:%02dZ", id,
                    what, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                    tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int mesh__svid_verify(const mesh__x509_chain_t *chain,
                      const mesh__bundle_t *bundle, const char *id,
                      uint32_t ignore, mesh_status_t *st) {
  uint32_t flags = 0;
  char e[160];
  if (mesh__x509_verify(chain, bundle->roots, &flags, e, sizeof e) != 0)
    return mesh__fail(st, MESH_ERR_CERT_UNTRUSTED,
                      "SVID %s: chain verification failed: %s", id, e);
  flags &= ~ignore;
  int rc = mesh__x509_flags_to_code(flags, st);
  if (rc == MESH_ERR_CERT_EXPIRED || rc == MESH_ERR_CERT_NOT_YET_VALID)
    return time_detail(mesh__x509_chain_at(chain, 0), rc, id, st);
  if (rc != MESH_OK) {
    char p[MESH_SPIFFE_ID_MAX + MESH_TRUST_DOMAIN_MAX + 40];
    snprintf(p, sizeof p, "SVID %s (trust domain %s)", id, bundle->td);
    return prefixed(st, rc, p);
  }
  return MESH_OK;
}

int mesh__creds_verify_peer(const mesh__creds_t *c,
                            const mesh__x509_chain_t *peer, char *id,
                            size_t len, mesh_status_t *st) {
  mesh__ok(st);
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "no credentials loaded");
  if (mesh__x509_chain_len(peer) == 0)
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
