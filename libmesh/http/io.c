/* SPDX-License-Identifier: Apache-2.0 */
/* Byte transports for the HTTP layer: a mesh connection (TLS or a
 * PERMISSIVE plaintext peer) and a plain socket.  Each bounds blocking I/O
 * by an absolute deadline. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "tls/tls.h"

/* ms left before deadline (deadline 0: -1, no bound; past: 0). */
static int left_ms(int64_t deadline) {
  if (deadline <= 0)
    return -1;
  int64_t l = deadline - mesh__now_ms();
  if (l <= 0)
    return 0;
  return l > 0x7fffffff ? 0x7fffffff : (int)l;
}

/* ---- mesh connection --------------------------------------------------------- */

/* The connection's own timeouts apply without a deadline; with one, each
 * blocking step gets what is left, and the connection's settings are put
 * back afterwards. */
static long conn_read(void *ctx, void *buf, size_t n, int64_t deadline) {
  mesh_conn_t *c = ctx;
  int l = left_ms(deadline);
  if (l == 0)
    return MESH_ERR_TIMEOUT;
  int saved = c->read_ms;
  if (l > 0)
    c->read_ms = l;
  long r = mesh_conn_read(c, buf, n);
  c->read_ms = saved;
  return r;
}

static int conn_write(void *ctx, const void *buf, size_t n, int64_t deadline) {
  mesh_conn_t *c = ctx;
  int l = left_ms(deadline);
  if (l == 0)
    return MESH_ERR_TIMEOUT;
  int saved = c->write_ms;
  if (l > 0)
    c->write_ms = l;
  int r = mesh_conn_write_all(c, buf, n);
  c->write_ms = saved;
  return r;
}

void mesh__http_io_conn(mesh__http_io_t *io, mesh_conn_t *c) {
  io->read = conn_read;
  io->write = conn_write;
  io->ctx = c;
}

/* ---- plain socket ------------------------------------------------------------ */

static int wait_fd(int fd, short ev, int64_t deadline) {
  struct pollfd p = {.fd = fd, .events = ev};
  for (;;) {
    int l = left_ms(deadline);
    if (l == 0)
      return MESH_ERR_TIMEOUT;
    int r = poll(&p, 1, l);
    if (r > 0)
      return MESH_OK;
    if (r == 0)
      return MESH_ERR_TIMEOUT;
    if (errno != EINTR)
      return MESH_ERR_IO;
  }
}

static int errno_code(int e) {
  return e == ECONNRESET || e == EPIPE ? MESH_ERR_RESET : MESH_ERR_IO;
}

static long fd_read(void *ctx, void *buf, size_t n, int64_t deadline) {
  int fd = *(int *)ctx;
  for (;;) {
    int rc = wait_fd(fd, POLLIN, deadline);
    if (rc != MESH_OK)
      return rc;
    ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);
    if (r >= 0)
      return (long)r;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      return errno_code(errno);
  }
}

static int fd_write(void *ctx, const void *buf, size_t n, int64_t deadline) {
  int fd = *(int *)ctx;
  const char *p = buf;
  while (n) {
    int rc = wait_fd(fd, POLLOUT, deadline);
    if (rc != MESH_OK)
      return rc;
    ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      return errno_code(errno);
    }
    p += w;
    n -= (size_t)w;
  }
  return MESH_OK;
}

void mesh__http_io_fd(mesh__http_io_t *io, int *fd) {
  io->read = fd_read;
  io->write = fd_write;
  io->ctx = fd;
}
