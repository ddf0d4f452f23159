/* SPDX-License-Identifier: Apache-2.0 */
/* Text helpers shared by every part (one copy each): number formatting. */
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
