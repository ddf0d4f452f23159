/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC status codes: names, grpc-status parsing, the HTTP <-> gRPC status
 * tables, and grpc-message percent-encoding. */
#include "grpc/grpc.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[MESH__GRPC_NCODES] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

/* Envoy's Grpc::Utility::grpcToHttpStatus, index = gRPC code. */
static const int to_http[MESH__GRPC_NCODES] = {
    200, 499, 500, 400, 504, 404, 409, 403, 429,
    400, 409, 400, 501, 500, 503, 500, 401,
};

const char *mesh__grpc_code_name(int code) {
  return code >= 0 && code < MESH__GRPC_NCODES ? names[code] : NULL;
}

int mesh__grpc_code_from_name(const char *name) {
  if (!name)
    return -1;
  for (int i = 0; i < MESH__GRPC_NCODES; i++)
    if (strcmp(name, names[i]) == 0)
      return i;
  return -1;
}

int mesh__grpc_status_parse(const char *s, size_t len, int *out) {
  if (!s || len == 0 || len > 10)
    return MESH_ERR_PARSE;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return MESH_ERR_PARSE;
    v = v * 10 + (s[i] - '0');
  }
  if (v > INT32_MAX)
    return MESH_ERR_PARSE;
  *out = (int)v;
  return MESH_OK;
}

int mesh__grpc_code_from_http(int http_status) {
  switch (http_status) {
  case 400:
    return MESH__GRPC_INTERNAL;
  case 401:
    return MESH__GRPC_UNAUTHENTICATED;
  case 403:
    return MESH__GRPC_PERMISSION_DENIED;
  case 404:
    return MESH__GRPC_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return MESH__GRPC_UNAVAILABLE;
  default:
    return MESH__GRPC_UNKNOWN;
  }
}

int mesh__grpc_code_to_http(int code) {
  return code >= 0 && code < MESH__GRPC_NCODES ? to_http[code] : 500;
}

/* ---- grpc-message ---------------------------------------------------------- */

static bool unreserved(unsigned char c) {
  return c >= 0x20 && c <= 0x7e && c != '%';
}

int mesh__grpc_msg_encode(const char *msg, size_t len, char **out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += unreserved((unsigned char)msg[i]) ? 1 : 3;
  char *s = malloc(n + 1);
  if (!s)
    return MESH_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)msg[i];
    if (unreserved(c)) {
      s[k++] = (char)c;
      continue;
    }
    s[k++] = '%';
    s[k++] = hex[c >> 4];
    s[k++] = hex[c & 15];
  }
  s[k] = '\0';
  *out = s;
  return MESH_OK;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int mesh__grpc_msg_decode(const char *s, size_t len, char **out,
                          size_t *out_len) {
  char *d = malloc(len + 1);
  if (!d)
    return MESH_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    int hi = s[i] == '%' && i + 2 < len ? hexval(s[i + 1]) : -1;
    int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
    if (lo < 0) {
      d[k++] = s[i];
      continue;
    }
    d[k++] = (char)(hi << 4 | lo);
    i += 2;
  }
  d[k] = '\0';
  *out = d;
  if (out_len)
    *out_len = k;
  return MESH_OK;
}
