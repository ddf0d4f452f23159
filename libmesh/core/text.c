/* SPDX-License-Identifier: Apache-2.0 */
/* Text helpers shared by every part (one copy each): number formatting,
 * lower-case hex, names. */
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shortest decimal that reads back as the same double; the special values
 * spelled as the format wants them. */
void mesh__fmt_double(char *buf, size_t len, double v) {
  if (isnan(v)) {
    mesh__strlcpy(buf, "NaN", len);
    return;
  }
  if (isinf(v)) {
    mesh__strlcpy(buf, v > 0 ? "+Inf" : "-Inf", len);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      return;
  }
}

/* Lower-case hex only (HEXDIGLC), stored as value + 1 so that the
 * zero-initialized rest means "not hex" (0 - 1 = 0xff after the cast). */
static const uint8_t hexval[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
    ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12,
    ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

bool mesh__hex_decode(const char *s, size_t n, uint8_t *out) {
  const unsigned char *u = (const unsigned char *)s;
  uint8_t bad = 0;
  /* One check for the whole run: invalid digits set the high bits. */
  for (size_t i = 0; i < n / 2; i++) {
    uint8_t hi = (uint8_t)(hexval[u[2 * i]] - 1);
    uint8_t lo = (uint8_t)(hexval[u[2 * i + 1]] - 1);
    bad |= hi | lo;
    out[i] = (uint8_t)((hi << 4) | (lo & 0x0f));
  }
  return (bad & 0xf0) == 0;
}

void mesh__hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
}

bool mesh__is_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

bool mesh__name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 128)
    return false;
  for (; *s; s++) {
    char ch = *s;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
      return false;
  }
  return true;
}
