/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC length-prefixed messages: the prefix writer and an incremental
 * decoder that takes bytes in any split and hands out whole messages.
 * The announced length is checked against the limit before any buffer is
 * allocated, so a peer cannot make us reserve more than max bytes. */
#include "grpc/grpc.h"

#include <stdlib.h>
#include <string.h>

int mesh__grpc_prefix(uint8_t out[MESH__GRPC_PREFIX], size_t len) {
  if ((uint64_t)len > UINT32_MAX)
    return MESH_ERR_INVALID_ARG;
  out[0] = 0; /* never compressed: no grpc-encoding is negotiated */
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
  return MESH_OK;
}

void mesh__grpc_dec_init(mesh__grpc_dec_t *d, size_t max) {
  memset(d, 0, sizeof *d);
  d->max = max ? max : MESH__GRPC_MAX_MSG_DEFAULT;
}

void mesh__grpc_dec_free(mesh__grpc_dec_t *d) {
  if (!d)
    return;
  free(d->buf);
  d->buf = NULL;
  d->hdr_have = 0;
  d->have = 0;
}

bool mesh__grpc_dec_idle(const mesh__grpc_dec_t *d) {
  return d->hdr_have == 0 && d->buf == NULL;
}

/* The prefix is complete: validate it and allocate the body. */
static int start_body(mesh__grpc_dec_t *d) {
  /* 1 (compressed) is as wrong as 2..255: we never send grpc-encoding, so
   * a peer may not compress (the spec: INTERNAL). */
  if (d->hdr[0] != 0)
    return MESH_ERR_GRPC_PROTOCOL;
  uint32_t len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 |
                 (uint32_t)d->hdr[3] << 8 | (uint32_t)d->hdr[4];
  if ((uint64_t)len > (uint64_t)d->max)
    return MESH_ERR_MSG_TOO_LARGE;
  d->len = len;
  d->have = 0;
  d->buf = malloc(len ? len : 1);
  return d->buf ? MESH_OK : MESH_ERR_NOMEM;
}

long mesh__grpc_dec_feed(mesh__grpc_dec_t *d, const uint8_t *in, size_t n,
                         uint8_t **msg, size_t *msg_len) {
  *msg = NULL;
  *msg_len = 0;
  if (d->err)
    return d->err;
  size_t used = 0;
  if (!d->buf) {
    size_t take = MESH__GRPC_PREFIX - d->hdr_have;
    if (take > n)
      take = n;
    if (take)
      memcpy(d->hdr + d->hdr_have, in, take);
    d->hdr_have += take;
    used = take;
    if (d->hdr_have < MESH__GRPC_PREFIX)
      return (long)used;
    int rc = start_body(d);
    if (rc != MESH_OK) {
      d->err = rc;
      return rc;
    }
  }
  size_t take = d->len - d->have;
  if (take > n - used)
    take = n - used;
  if (take)
    memcpy(d->buf + d->have, in + used, take);
  d->have += take;
  used += take;
  if (d->have == d->len) {
    *msg = d->buf;
    *msg_len = d->len;
    d->buf = NULL;
    d->hdr_have = 0;
    d->have = 0;
    d->len = 0;
    d->messages++;
  }
  return (long)used;
}
