/* SPDX-License-Identifier: Apache-2.0 */
/* The one text form of a distinguished name, for both X.509 seams
 * (x509_mbedtls.c, x509_openssl.c hand the attributes over one by one):
 * "O=SPIFFE, CN=x", " + " inside a multi-valued RDN. */
#include "identity/x509_dn.h"

#include <stdio.h>
#include <string.h>

/* Short names of the attributes under 2.5.4 (id-at), RFC 4514 and
 * mbedTLS's names. */
static const char *id_at_name(unsigned char k) {
  switch (k) {
  case 3: return "CN";
  case 4: return "SN";
  case 5: return "serialNumber";
  case 6: return "C";
  case 7: return "L";
  case 8: return "ST";
  case 10: return "O";
  case 11: return "OU";
  case 12: return "title";
  case 16: return "postalAddress";
  case 17: return "postalCode";
  case 42: return "GN";
  case 43: return "initials";
  case 44: return "generationQualifier";
  case 45: return "uniqueIdentifier";
  case 46: return "dnQualifier";
  case 65: return "pseudonym";
  default: return NULL;
  }
}

static const unsigned char OID_EMAIL[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
                                          0x0d, 0x01, 0x09, 0x01};
static const unsigned char OID_DC[] = {0x09, 0x92, 0x26, 0x89, 0x93,
                                       0xf2, 0x2c, 0x64, 0x01, 0x19};

/* Dotted text of a DER OID body (false when malformed or too long). */
static bool oid_dotted(const unsigned char *p, size_t n, char *out,
                       size_t len) {
  size_t off = 0;
  unsigned long v = 0;
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (v > (~0ul >> 8))
      return false;
    v = v << 7 | (p[i] & 0x7f);
    if (p[i] & 0x80)
      continue;
    int k;
    if (first)
      k = snprintf(out + off, len - off, "%lu.%lu", v < 80 ? v / 40 : 2,
                   v < 80 ? v % 40 : v - 80);
    else
      k = snprintf(out + off, len - off, ".%lu", v);
    if (k < 0 || (size_t)k >= len - off)
      return false;
    off += (size_t)k;
    first = false;
    v = 0;
  }
  return !first;
}

static bool put(char *buf, size_t len, size_t *off, const char *s, size_t n) {
  size_t room = len - *off - 1;
  bool fits = n <= room;
  if (!fits)
    n = room;
  memcpy(buf + *off, s, n);
  *off += n;
  buf[*off] = '\0';
  return fits;
}

bool mesh__dn_append(char *buf, size_t len, size_t *off, bool first,
                     bool same_rdn, const unsigned char *oid, size_t oid_len,
                     const unsigned char *val, size_t val_len) {
  char name[64];
  const char *nm = NULL;
  if (oid_len == 3 && oid[0] == 0x55 && oid[1] == 0x04)
    nm = id_at_name(oid[2]);
  else if (oid_len == sizeof OID_EMAIL && !memcmp(oid, OID_EMAIL, oid_len))
    nm = "emailAddress";
  else if (oid_len == sizeof OID_DC && !memcmp(oid, OID_DC, oid_len))
    nm = "DC";
  if (!nm)
    nm = oid_dotted(oid, oid_len, name, sizeof name) ? name : "?";
  bool ok = true;
  if (!first)
    ok = put(buf, len, off, same_rdn ? " + " : ", ", same_rdn ? 3 : 2);
  ok = ok && put(buf, len, off, nm, strlen(nm)) && put(buf, len, off, "=", 1);
  for (size_t i = 0; ok && i < val_len; i++) {
    char c = val[i] >= 32 && val[i] < 127 ? (char)val[i] : '?';
    ok = put(buf, len, off, &c, 1);
  }
  return ok;
}
