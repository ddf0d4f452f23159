/* SPDX-License-Identifier: Apache-2.0 */
/* Reading, writing and shutting down an open connection, TLS or plaintext
 * (PERMISSIVE).  Blocking mode waits with poll up to the connection's I/O
 * timeouts; non-blocking mode returns MESH_ERR_WANT_READ/WRITE. */
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define IO_CHUNK (1u << 30) /* keep lengths within int for the backends */

/* Before I/O: finish a pending handshake, refuse failed or closed conns. */
static int ready(mesh_conn_t *c) {
  if (c->state == MESH__CONN_OPEN)
    return MESH_OK;
  if (c->state == MESH__CONN_FAILED)
    return c->last_err ? c->last_err : MESH_ERR_CLOSED;
  return mesh_conn_handshake(c, NULL);
}

static int io_fail(mesh_conn_t *c, int code, const char *what) {
  if (c->rx_alert > 0 && code == MESH_ERR_TLS) {
    /* The peer said why: the same words as in a failed handshake. */
    mesh_status_t s2;
    mesh__tls_alert_error(c, c->rx_alert, &s2);
    mesh__conn_fail(c, NULL, code, "%s %s: %s", what, c->peer_addr,
                    s2.message);
    return code;
  }
  const char *why = code == MESH_ERR_RESET ? "connection reset by peer"
                                           : mesh_strerror(code);
  mesh__conn_fail(c, NULL, code, "%s %s: %s", what, c->peer_addr, why);
  return code;
}

/* Wait for ev until deadline; MESH_OK, MESH_ERR_TIMEOUT or MESH_ERR_IO. */
static int wait_io(mesh_conn_t *c, short ev, int64_t deadline,
                   const char *what) {
  int w = mesh__sock_wait(c->fd, ev, deadline);
  if (w > 0)
    return MESH_OK;
  if (w == 0) {
    /* Not sticky: the caller may retry after a timeout. */
    snprintf(c->errmsg, sizeof c->errmsg, "%s %s timed out", what,
             c->peer_addr);
    return MESH_ERR_TIMEOUT;
  }
  return io_fail(c, MESH_ERR_IO, what);
}

/* ---- blocking sockets ---------------------------------------------------
 * A blocking-mode TLS connection's socket blocks once open: a read waiting
 * for a reply is then one recv (the socket's timeout bounds it), where a
 * non-blocking socket needs poll + recv.  Every socket call made outside a
 * blocking mesh_conn_read/write (close, drain, the pool's idle check,
 * HTTP/2 and hedging, which switch c->nonblocking) passes MSG_DONTWAIT. */

void mesh__conn_block(mesh_conn_t *c) {
  if (!c->tls || c->nonblocking || c->fd_blocking)
    return;
  /* F_SETFL only changes the status flags; ours are O_NONBLOCK alone. */
  if (fcntl(c->fd, F_SETFL, 0) == 0)
    c->fd_blocking = true;
}

void mesh__conn_buffers(mesh_conn_t *c, bool keep) {
  if (c && c->tls && c->be && c->state == MESH__CONN_OPEN &&
      mesh__tls_be.buffers)
    mesh__tls_be.buffers(c, keep);
}

/* The kernel timeout for `left` ms: never more than left, rounded down to
 * a multiple of a power of two near left/16, so a call's shrinking time
 * left (15000, 14999, ...) keeps one value and costs no setsockopt.  A
 * timeout that fires early is followed by a poll for the rest. */
static int64_t quantize(int64_t left) {
  int64_t q = 1;
  while (q * 16 <= left)
    q <<= 1;
  return left / q * q;
}

int mesh__conn_io_flags(mesh_conn_t *c, bool rd) {
  if (!c->fd_blocking || !c->io_block || c->nonblocking)
    return MSG_DONTWAIT;
  int64_t want = 0; /* 0: no timeout */
  if (c->io_deadline) {
    int64_t left = c->io_deadline - mesh__now_ms();
    if (left <= 0)
      return MSG_DONTWAIT;
    want = quantize(left);
  }
  int64_t *have = rd ? &c->so_rcv_ms : &c->so_snd_ms;
  if (*have != want) {
    struct timeval tv = {.tv_sec = (time_t)(want / 1000),
                         .tv_usec = (suseconds_t)(want % 1000) * 1000};
    if (setsockopt(c->fd, SOL_SOCKET, rd ? SO_RCVTIMEO : SO_SNDTIMEO, &tv,
                   sizeof tv) != 0)
      return MSG_DONTWAIT;
    *have = want;
  }
  return 0;
}

static long plain_read(mesh_conn_t *c, void *buf, size_t len,
                       int64_t deadline) {
  for (;;) {
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0)
      return n;
    if (n == 0) {
      c->eof = true;
      return 0;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return io_fail(c, errno == ECONNRESET ? MESH_ERR_RESET : MESH_ERR_IO,
                     "read from");
    if (c->nonblocking)
      return MESH_ERR_WANT_READ;
    int rc = wait_io(c, POLLIN, deadline, "read from");
    if (rc != MESH_OK)
      return rc;
  }
}

/* One backend call that may block on a blocking socket (see above). */
static long be_read(mesh_conn_t *c, void *buf, size_t len, int64_t deadline) {
  c->io_block = !c->nonblocking;
  c->io_deadline = deadline;
  long n = mesh__tls_be.read(c, buf, len);
  c->io_block = false;
  return n;
}

static long be_write(mesh_conn_t *c, const void *buf, size_t len,
                     int64_t deadline) {
  c->io_block = !c->nonblocking;
  c->io_deadline = deadline;
  long n = mesh__tls_be.write(c, buf, len);
  c->io_block = false;
  return n;
}

static long tls_read(mesh_conn_t *c, void *buf, size_t len, int64_t deadline) {
  /* Blocking, non-blocking socket, nothing buffered: the reply is rarely
   * there yet, so wait for it first instead of a read that would only say
   * EAGAIN.  (A blocking socket waits inside its one recv.) */
  if (!c->nonblocking && !c->fd_blocking && mesh__tls_be.pending(c) == 0) {
    int rc = wait_io(c, POLLIN, deadline, "read from");
    if (rc != MESH_OK)
      return rc;
  }
  for (;;) {
    long n = be_read(c, buf, len, deadline);
    if (n > 0)
      return n;
    if (n == 0) {
      c->eof = true;
      return 0;
    }
    /* A FIN inside a record is a truncation, never a clean end. */
    if (c->truncated) {
      mesh__conn_fail(c, NULL, MESH_ERR_TLS,
                      "read from %s: connection closed in the middle of a "
                      "TLS record (truncated)",
                      c->peer_addr);
      return MESH_ERR_TLS;
    }
    if (n != MESH_ERR_WANT_READ && n != MESH_ERR_WANT_WRITE)
      return io_fail(c, (int)n, "read from");
    if (c->nonblocking)
      return n;
    short ev = n == MESH_ERR_WANT_READ ? POLLIN : POLLOUT;
    int rc = wait_io(c, ev, deadline, "read from");
    if (rc != MESH_OK)
      return rc;
  }
}

long mesh_conn_read(mesh_conn_t *c, void *buf, size_t len) {
  if (!c || !buf || len == 0)
    return MESH_ERR_INVALID_ARG;
  int rc = ready(c);
  if (rc != MESH_OK)
    return rc;
  if (c->eof)
    return 0;
  if (len > IO_CHUNK)
    len = IO_CHUNK;
  int64_t deadline = c->read_ms > 0 ? mesh__now_ms() + c->read_ms : 0;
  long n = c->tls ? tls_read(c, buf, len, deadline)
                  : plain_read(c, buf, len, deadline);
  if (n > 0)
    c->rx_bytes += (uint64_t)n;
  else
    mesh__conn_read_end(c); /* the end, if it was one: judged now */
  return n;
}

uint64_t mesh__conn_rx_bytes(const mesh_conn_t *c) {
  return c ? c->rx_bytes : 0;
}

static long plain_write(mesh_conn_t *c, const void *buf, size_t len,
                        int64_t deadline) {
  for (;;) {
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
      return n;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return io_fail(c,
                     errno == ECONNRESET || errno == EPIPE ? MESH_ERR_RESET
                                                           : MESH_ERR_IO,
                     "write to");
    if (c->nonblocking)
      return MESH_ERR_WANT_WRITE;
    int rc = wait_io(c, POLLOUT, deadline, "write to");
    if (rc != MESH_OK)
      return rc;
  }
}

static long tls_write(mesh_conn_t *c, const void *buf, size_t len,
                      int64_t deadline) {
  for (;;) {
    long n = be_write(c, buf, len, deadline);
    if (n >= 0)
      return n;
    if (n != MESH_ERR_WANT_READ && n != MESH_ERR_WANT_WRITE)
      return io_fail(c, (int)n, "write to");
    if (c->nonblocking)
      return n;
    short ev = n == MESH_ERR_WANT_READ ? POLLIN : POLLOUT;
    int rc = wait_io(c, ev, deadline, "write to");
    if (rc != MESH_OK)
      return rc;
  }
}

long mesh_conn_write(mesh_conn_t *c, const void *buf, size_t len) {
  if (!c || !buf || len == 0)
    return MESH_ERR_INVALID_ARG;
  int rc = ready(c);
  if (rc != MESH_OK)
    return rc;
  if (c->shut)
    return MESH_ERR_CLOSED;
  if (len > IO_CHUNK)
    len = IO_CHUNK;
  int64_t deadline = c->write_ms > 0 ? mesh__now_ms() + c->write_ms : 0;
  return c->tls ? tls_write(c, buf, len, deadline)
                : plain_write(c, buf, len, deadline);
}

int mesh_conn_write_all(mesh_conn_t *c, const void *buf, size_t len) {
  if (!c || (!buf && len))
    return MESH_ERR_INVALID_ARG;
  if (c->nonblocking)
    return MESH_ERR_INVALID_ARG; /* partial progress cannot be reported */
  const unsigned char *p = buf;
  while (len > 0) {
    long n = mesh_conn_write(c, p, len);
    if (n < 0)
      return (int)n;
    p += n;
    len -= (size_t)n;
  }
  return MESH_OK;
}

int mesh_conn_set_timeouts(mesh_conn_t *c, int read_ms, int write_ms) {
  if (!c || read_ms < -1 || write_ms < -1)
    return MESH_ERR_INVALID_ARG;
  c->read_ms = read_ms;
  c->write_ms = write_ms;
  return MESH_OK;
}

int mesh_conn_shutdown(mesh_conn_t *c) {
  if (!c)
    return MESH_ERR_INVALID_ARG;
  if (c->state != MESH__CONN_OPEN)
    return c->state == MESH__CONN_FAILED ? MESH_ERR_CLOSED
                                         : MESH_ERR_INVALID_ARG;
  if (c->shut)
    return MESH_OK;
  if (c->tls) {
    int64_t deadline = c->write_ms > 0 ? mesh__now_ms() + c->write_ms : 0;
    for (;;) {
      int ret = mesh__tls_be.close_notify(c);
      if (ret == MESH_OK)
        break;
      if (ret != MESH_ERR_WANT_WRITE && ret != MESH_ERR_WANT_READ)
        return io_fail(c, ret, "close_notify to");
      if (c->nonblocking)
        return ret;
      int rc = wait_io(c, POLLOUT, deadline, "close_notify to");
      if (rc != MESH_OK)
        return rc;
    }
  }
  c->shut = true;
  shutdown(c->fd, SHUT_WR);
  return MESH_OK;
}
