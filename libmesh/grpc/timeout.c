/* SPDX-License-Identifier: Apache-2.0 */
/* grpc-timeout (gRPC over HTTP/2: "TimeoutValue TimeoutUnit", at most 8
 * digits) and proto3 JSON Durations (the service config's "1.5s"). */
#include "grpc/grpc.h"

#include <stdio.h>
#include <string.h>

#define MAX_VALUE 99999999LL /* 8 digits */

static const struct {
  char unit;
  int64_t ns;
} units[] = {
    {'n', 1LL},
    {'u', 1000LL},
    {'m', 1000000LL},
    {'S', 1000000000LL},
    {'M', 60000000000LL},
    {'H', 3600000000000LL},
};
#define NUNITS (sizeof units / sizeof units[0])

void mesh__grpc_timeout_encode(int64_t ns, char out[MESH__GRPC_TIMEOUT_MAX]) {
  if (ns <= 0) {
    memcpy(out, "1n", 3);
    return;
  }
  for (size_t i = 0; i < NUNITS; i++) {
    int64_t v = ns / units[i].ns + (ns % units[i].ns != 0); /* round up */
    if (v <= MAX_VALUE) {
      int n = snprintf(out, MESH__GRPC_TIMEOUT_MAX - 1, "%lld", (long long)v);
      out[n] = units[i].unit; /* n <= 8: v has at most 8 digits */
      out[n + 1] = '\0';
      return;
    }
  }
  snprintf(out, MESH__GRPC_TIMEOUT_MAX, "%lldH", MAX_VALUE);
}

int mesh__grpc_timeout_parse(const char *s, size_t len, int64_t *ns) {
  if (!s || len < 2 || len > 9)
    return MESH_ERR_PARSE;
  int64_t v = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return MESH_ERR_PARSE;
    v = v * 10 + (s[i] - '0');
  }
  for (size_t i = 0; i < NUNITS; i++) {
    if (s[len - 1] != units[i].unit)
      continue;
    *ns = v > INT64_MAX / units[i].ns ? INT64_MAX : v * units[i].ns;
    return MESH_OK;
  }
  return MESH_ERR_PARSE;
}

#define DURATION_MAX_S 315576000000LL /* google.protobuf.Duration's bound */

int mesh__grpc_duration_parse(const char *s, int64_t *ns) {
  if (!s || *s < '0' || *s > '9')
    return MESH_ERR_PARSE;
  int64_t sec = 0, frac = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    sec = sec * 10 + (*p - '0');
    if (sec > DURATION_MAX_S)
      return MESH_ERR_PARSE;
  }
  if (*p == '.') {
    p++;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (++digits > 9)
        return MESH_ERR_PARSE;
      frac = frac * 10 + (*p - '0');
    }
    if (digits == 0)
      return MESH_ERR_PARSE;
    for (; digits < 9; digits++)
      frac *= 10;
  }
  if (p[0] != 's' || p[1] != '\0')
    return MESH_ERR_PARSE;
  *ns = sec > (INT64_MAX - frac) / 1000000000LL ? INT64_MAX
                                                 : sec * 1000000000LL + frac;
  return MESH_OK;
}
