/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 (RFC 4648 sections 4 and 5), one codec for every part: gRPC's
 * "-bin" metadata (unpadded, either alphabet accepted), etcd's gateway
 * (standard, padded), SPIFFE bundles' x5c (standard) and JOSE's strict
 * base64url (authn).  The flags say which spelling a caller accepts, so
 * the TLS library in use (mbedTLS or OpenSSL) is not needed for it. */
#include "core/core.h"

#include <stdlib.h>

static const char std_abc[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_abc[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int mesh__b64_enc(const void *in, size_t len, unsigned flags, char **out) {
  const uint8_t *p = in;
  const char *abc = (flags & MESH__B64_URL) ? url_abc : std_abc;
  bool pad = (flags & MESH__B64_PAD) != 0;
  *out = NULL;
  if (len > (SIZE_MAX - 8) / 4 * 3)
    return MESH_ERR_NOMEM; /* no buffer that large */
  size_t rem = len % 3;
  size_t n = len / 3 * 4 + (rem ? (pad ? 4 : rem + 1) : 0);
  char *s = malloc(n + 1);
  if (!s)
    return MESH_ERR_NOMEM;
  size_t k = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    s[k++] = abc[v >> 18];
    s[k++] = abc[(v >> 12) & 63];
    s[k++] = abc[(v >> 6) & 63];
    s[k++] = abc[v & 63];
  }
  if (rem == 1) {
    s[k++] = abc[p[i] >> 2];
    s[k++] = abc[(p[i] & 3) << 4];
  } else if (rem == 2) {
    uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
    s[k++] = abc[v >> 10];
    s[k++] = abc[(v >> 4) & 63];
    s[k++] = abc[(v & 15) << 2];
  }
  while (pad && k % 4)
    s[k++] = '=';
  s[k] = '\0';
  *out = s;
  return MESH_OK;
}

/* The value of one character, or -1 when the flags do not accept it. */
static int val(unsigned char c, unsigned flags) {
  bool std = !(flags & MESH__B64_URL) || (flags & MESH__B64_ANY);
  bool url = (flags & (MESH__B64_URL | MESH__B64_ANY)) != 0;
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if ((c == '+' && std) || (c == '-' && url))
    return 62;
  if ((c == '/' && std) || (c == '_' && url))
    return 63;
  return -1;
}

long mesh__b64_dec_into(const char *in, size_t len, unsigned flags,
                        uint8_t *out) {
  size_t n = len;
  if (flags & MESH__B64_PAD) {
    /* Up to two '=', only where they complete the last quantum. */
    while (n > 0 && in[n - 1] == '=' && len - n < 2)
      n--;
    if (n != len && len % 4 != 0)
      return -1;
  }
  if (n % 4 == 1)
    return -1;
  size_t w = 0;
  uint32_t acc = 0;
  unsigned bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = val((unsigned char)in[i], flags);
    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[w++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if ((flags & MESH__B64_STRICT) && acc != 0)
    return -1; /* one spelling per byte string: unused bits are zero */
  return (long)w;
}

int mesh__b64_dec(const char *in, size_t len, unsigned flags, uint8_t **out,
                  size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (!in)
    return MESH_ERR_PARSE;
  uint8_t *d = malloc(len / 4 * 3 + 3);
  if (!d)
    return MESH_ERR_NOMEM;
  long w = mesh__b64_dec_into(in, len, flags, d);
  if (w < 0) {
    free(d);
    return MESH_ERR_PARSE;
  }
  d[w] = '\0';
  *out = d;
  *out_len = (size_t)w;
  return MESH_OK;
}
