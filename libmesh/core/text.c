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

const uint8_t mesh__hexval[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
    ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12,
    ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

void mesh__hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
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
