/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC metadata rules: key syntax and reserved names, ASCII values, and the
 * base64 of "-bin" keys (grpc.h's wrappers over core/b64.c: sent unpadded,
 * received in any form the spec allows). */
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

