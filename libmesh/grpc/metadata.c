/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC metadata rules: key syntax and reserved names, ASCII values, and the
 * base64 of "-bin" keys (sent unpadded, received in any form the spec
 * allows). */
#include "grpc/grpc.h"

#include <stdlib.h>
#include <string.h>

/* Written by the library itself, or banned in HTTP/2 (RFC 9113 8.2.2). */
static const char *const reserved[] = {
    "content-type", "te",      "user-agent",        "host",
    "connection",   "keep-alive", "proxy-connection", "transfer-encoding",
    "upgrade",      "content-length", NULL,
};

static bool key_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' ||
         c == '-' || c == '.';
}

int mesh__grpc_md_key_check(const char *key, mesh_status_t *st) {
  if (!key || !*key)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "metadata key is empty");
  size_t n = strlen(key);
  if (n > 1024)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "metadata key is longer than 1024 bytes");
  for (size_t i = 0; i < n; i++)
    if (!key_char(key[i]))
      return mesh__fail(st, MESH_ERR_INVALID_ARG,
                        "metadata key \"%.64s\": byte 0x%02x at %zu is not "
                        "one of 0-9 a-z _ - . (keys are lower case)",
                        key, (unsigned char)key[i], i);
  if (strncmp(key, "grpc-", 5) == 0)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "metadata key \"%.64s\": the grpc- prefix is reserved "
                      "for gRPC itself",
                      key);
  for (size_t i = 0; reserved[i]; i++)
    if (strcmp(key, reserved[i]) == 0)
      return mesh__fail(st, MESH_ERR_INVALID_ARG,
                        "metadata key \"%s\" is set by the library", key);
  return MESH_OK;
}

bool mesh__grpc_md_is_bin(const char *key) {
  size_t n = key ? strlen(key) : 0;
  return n >= 4 && strcmp(key + n - 4, "-bin") == 0;
}

int mesh__grpc_md_value_check(const char *v, size_t len, mesh_status_t *st) {
  if (!v && len)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "metadata value is NULL");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c > 0x7e)
      return mesh__fail(st, MESH_ERR_INVALID_ARG,
                        "metadata value: byte 0x%02x at %zu is not printable "
                        "ASCII (use a -bin key for binary values)",
                        c, i);
  }
  return MESH_OK;
}

bool mesh__grpc_md_is_transport(const char *key) {
  static const char *const transport[] = {
      "content-type",  "te",           "grpc-timeout", "grpc-encoding",
      "grpc-accept-encoding", "grpc-status", "grpc-message", NULL,
  };
  if (!key || key[0] == ':')
    return true;
  for (size_t i = 0; transport[i]; i++)
    if (strcmp(key, transport[i]) == 0)
      return true;
  return false;
}

/* ---- base64 ------------------------------------------------------------------ */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int mesh__grpc_b64_encode(const void *in, size_t len, char **out) {
  const uint8_t *p = in;
  size_t n = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
  char *s = malloc(n + 1);
  if (!s)
    return MESH_ERR_NOMEM;
  size_t k = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    s[k++] = b64[v >> 18];
    s[k++] = b64[(v >> 12) & 63];
    s[k++] = b64[(v >> 6) & 63];
    s[k++] = b64[v & 63];
  }
  if (len - i == 1) {
    s[k++] = b64[p[i] >> 2];
    s[k++] = b64[(p[i] & 3) << 4];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
    s[k++] = b64[v >> 10];
    s[k++] = b64[(v >> 4) & 63];
    s[k++] = b64[(v & 15) << 2];
  }
  s[k] = '\0';
  *out = s;
  return MESH_OK;
}

static int b64_val(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+' || c == '-')
    return 62;
  if (c == '/' || c == '_')
    return 63;
  return -1;
}

int mesh__grpc_b64_decode(const char *in, size_t len, uint8_t **out,
                          size_t *out_len) {
  /* Padding: up to two '=' at the end, only where a full quantum needs it. */
  size_t n = len;
  while (n > 0 && in[n - 1] == '=' && len - n < 2)
    n--;
  if (n != len && len % 4 != 0)
    return MESH_ERR_PARSE;
  if (n % 4 == 1)
    return MESH_ERR_PARSE;
  uint8_t *d = malloc(n / 4 * 3 + 3);
  if (!d)
    return MESH_ERR_NOMEM;
  size_t k = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_val(in[i]);
    if (v < 0) {
      free(d);
      return MESH_ERR_PARSE;
    }
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      d[k++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  *out = d;
  *out_len = k;
  return MESH_OK;
}
