/* SPDX-License-Identifier: Apache-2.0 */
/* Strict base64url (RFC 7515 section 2, RFC 4648 section 5): a token has
 * one spelling.  Padding, white space, the standard alphabet's '+' and '/'
 * and non-zero unused bits are refused, so that two different texts never
 * carry the same signed bytes (the fuzzer's "altered token" property). */
#include "authn/authn.h"

static int val(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

long mesh__b64url_decode(const char *in, size_t n, uint8_t *out) {
  if (n % 4 == 1)
    return -1;
  size_t w = 0;
  uint32_t acc = 0;
  unsigned bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = val((unsigned char)in[i]);
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
  if (acc != 0) /* unused bits of the last character must be zero */
    return -1;
  return (long)w;
}
