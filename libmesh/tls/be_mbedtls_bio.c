/* SPDX-License-Identifier: Apache-2.0 */
/* mbedTLS backend: the socket under mbedTLS — handshake flights sent in
 * one piece, records read ahead in one recv. */
#include "tls/be_mbedtls.h"

#include <errno.h>
#include <mbedtls/net_sockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int raw_send(mesh_conn_t *c, const unsigned char *buf, size_t len) {
  for (;;) {
    ssize_t n =
        send(c->fd, buf, len, MSG_NOSIGNAL | mesh__conn_io_flags(c, false));
    if (n >= 0)
      return (int)n;
    if (errno == EINTR)
      continue;
    c->sys_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (errno == ECONNRESET || errno == EPIPE)
      return MBEDTLS_ERR_NET_CONN_RESET;
    return MBEDTLS_ERR_NET_SEND_FAILED;
  }
}

/* During the handshake a flight (e.g. a client's Certificate,
 * CertificateVerify and Finished) goes out in one send, as other TLS
 * stacks do: a peer that refuses the Certificate and closes would
 * otherwise reset the connection under the later messages, and the
 * refusal's alert would be lost.  mbe_flush() sends it after each
 * handshake call. */
#define WB_MAX (64 * 1024)

int mbe_flush(mesh_conn_t *c) {
  mbe_conn_t *b = c->be;
  while (b->wb_off < b->wb_len) {
    int n = raw_send(c, b->wb + b->wb_off, b->wb_len - b->wb_off);
    if (n < 0)
      return n;
    b->wb_off += (size_t)n;
  }
  free(b->wb);
  b->wb = NULL;
  b->wb_off = b->wb_len = 0;
  return 0;
}

int mbe_bio_send(void *ctx, const unsigned char *buf, size_t len) {
  mesh_conn_t *c = ctx;
  mbe_conn_t *b = c->be;
  bool over = b->ssl.MESH__MBEDTLS_FIELD(state) >= MBEDTLS_SSL_HANDSHAKE_OVER;
  if (over && b->wb_len == 0)
    return raw_send(c, buf, len);
  if (b->wb_len + len > WB_MAX) {
    int r = mbe_flush(c);
    if (r != 0)
      return r;
    if (len > WB_MAX)
      return raw_send(c, buf, len);
  }
  unsigned char *nb = realloc(b->wb, b->wb_len + len);
  if (!nb)
    return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  memcpy(nb + b->wb_len, buf, len);
  b->wb = nb;
  b->wb_len += len;
  return (int)len;
}

#define RA_SIZE (16 * 1024 + 512) /* a full record and then some */

/* One recv into the read-ahead buffer.  @return bytes, 0 at EOF, or an
 * mbedTLS error. */
static int fill(mesh_conn_t *c, mbe_conn_t *b) {
  if (!b->ra) {
    b->ra = malloc(RA_SIZE);
    if (!b->ra)
      return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  }
  for (;;) {
    ssize_t n = recv(c->fd, b->ra, RA_SIZE, mesh__conn_io_flags(c, true));
    if (n > 0) {
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
      /* A client's first record must hold a ClientHello: 3.6 would wait
       * for the rest of any other "fragmented" message, up to 16 MB. */
      bool first = c->server && !b->got_first;
      b->got_first = true;
      if (first && n > 5 && b->ra[0] == 0x16 && b->ra[5] != 0x01)
        return MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE;
#endif
      mesh__conn_note_first(c, b->ra, (size_t)n);
      b->ra_off = 0;
      b->ra_len = (size_t)n;
      return (int)n;
    }
    if (n == 0) {
      c->eof = true;
      return 0; /* mbedTLS reports MBEDTLS_ERR_SSL_CONN_EOF */
    }
    if (errno == EINTR)
      continue;
    c->sys_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return MBEDTLS_ERR_SSL_WANT_READ;
    if (errno == ECONNRESET || errno == EPIPE)
      return MBEDTLS_ERR_NET_CONN_RESET;
    return MBEDTLS_ERR_NET_RECV_FAILED;
  }
}

int mbe_bio_recv(void *ctx, unsigned char *buf, size_t len) {
  mesh_conn_t *c = ctx;
  mbe_conn_t *b = c->be;
  if (b->ra_off == b->ra_len) {
    int r = fill(c, b);
    if (r <= 0) {
      free(b->ra);
      b->ra = NULL;
      b->ra_off = b->ra_len = 0;
      return r;
    }
  }
  size_t k = b->ra_len - b->ra_off;
  if (k > len)
    k = len;
  memcpy(buf, b->ra + b->ra_off, k);
  b->ra_off += k;
  if (b->ra_off == b->ra_len) {
    free(b->ra); /* drained: an idle connection holds no buffer */
    b->ra = NULL;
    b->ra_off = b->ra_len = 0;
  }
  return (int)k;
}

