/* SPDX-License-Identifier: Apache-2.0 */
/* Transports under HTTP/2 sessions: a mesh connection (mTLS, or a
 * plaintext peer a PERMISSIVE listener accepted) switched to non-blocking
 * I/O, and a plain socket (h2c prior knowledge over TCP or a unix socket). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "http/h2_int.h"
#include "tls/tls.h"

/* ---- mesh connection ------------------------------------------------------- */

static long conn_read(void *ctx, void *buf, size_t n) {
  return mesh_conn_read(ctx, buf, n);
}

static long conn_write(void *ctx, const void *buf, size_t n) {
  return mesh_conn_write(ctx, buf, n);
}

static int conn_fd(void *ctx) {
  return mesh_conn_fd(ctx);
}

static void conn_close(void *ctx) {
  mesh_conn_close(ctx);
}

void mesh__h2_io_conn(mesh__h2_io_t *io, mesh_conn_t *c, bool take) {
  *io = (mesh__h2_io_t){conn_read, conn_write, conn_fd,
                        take ? conn_close : NULL, c};
}

int mesh__h2_session_new_conn(mesh_t *m, mesh_conn_t *c, bool server,
                              const mesh__h2_settings_t *set,
                              mesh__h2_session_t **out, mesh_status_t *st) {
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 session: no connection");
  /* The session polls the socket itself and must never block inside the
   * connection while holding its lock: the one field of the connection this
   * layer sets (the sockets are O_NONBLOCK already; blocking mode is poll
   * inside mesh_conn_read). */
  c->nonblocking = true;
  mesh__h2_io_t io;
  mesh__h2_io_conn(&io, c, true);
  int rc = mesh__h2_session_new_io(m ? m : c->m, &io, server, set, out, st);
  if (rc == MESH_OK) {
    (*out)->tls = mesh_conn_is_tls(c);
    mesh__strlcpy((*out)->peer_id, mesh_conn_peer_id(c),
                  sizeof (*out)->peer_id);
  }
  return rc;
}

/* ---- plain socket -------------------------------------------------------- */

typedef struct fdio {
  int fd;
} fdio_t;

static long fd_read(void *ctx, void *buf, size_t n) {
  fdio_t *f = ctx;
  for (;;) {
    ssize_t r = recv(f->fd, buf, n, MSG_DONTWAIT);
    if (r >= 0)
      return (long)r;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return MESH_ERR_WANT_READ;
    return errno == ECONNRESET ? MESH_ERR_RESET : MESH_ERR_IO;
  }
}

static long fd_write(void *ctx, const void *buf, size_t n) {
  fdio_t *f = ctx;
  for (;;) {
    ssize_t w = send(f->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w >= 0)
      return (long)w;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return MESH_ERR_WANT_WRITE;
    return errno == ECONNRESET || errno == EPIPE ? MESH_ERR_RESET
                                                 : MESH_ERR_IO;
  }
}

static int fd_fd(void *ctx) {
  return ((fdio_t *)ctx)->fd;
}

static void fd_close(void *ctx) {
  fdio_t *f = ctx;
  close(f->fd);
  free(f);
}

int mesh__h2_session_new_fd(mesh_t *m, int fd, bool server,
                            const mesh__h2_settings_t *set,
                            mesh__h2_session_t **out, mesh_status_t *st) {
  if (fd < 0)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 session: bad fd");
  fdio_t *f = malloc(sizeof *f);
  if (!f) {
    close(fd);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  f->fd = fd;
  mesh__h2_io_t io = {fd_read, fd_write, fd_fd, fd_close, f};
  return mesh__h2_session_new_io(m, &io, server, set, out, st);
}

/* ---- plaintext dial -------------------------------------------------------- */

static int dial_unix(const char *path, int *fd, mesh_status_t *st) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (!path[0] || strlen(path) >= sizeof sa.sun_path)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "bad unix socket path \"%s\"",
                      path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (*fd < 0)
    return mesh__fail(st, mesh__sock_errno_code(errno, MESH_ERR_IO),
                      "socket: %s", strerror(errno));
  /* unix connects complete at once or fail (EAGAIN: backlog full) */
  if (connect(*fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(*fd);
    *fd = -1;
    return mesh__fail(st, MESH_ERR_CONNECT, "connect to unix:%s: %s", path,
                      strerror(e));
  }
  return MESH_OK;
}

static int dial_tcp(const char *target, int timeout_ms, int *fd,
                    mesh_status_t *st) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = mesh__sock_resolve(target, false, &ss, &len, st);
  bool pending = false;
  if (rc == MESH_OK)
    rc = mesh__sock_connect((struct sockaddr *)&ss, len, fd, &pending, st);
  if (rc != MESH_OK || !pending)
    return rc;
  int w = mesh__sock_wait(*fd, POLLOUT, mesh__deadline(timeout_ms));
  int err = 0;
  socklen_t el = sizeof err;
  if (w == 1)
    getsockopt(*fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (w == 1 && err == 0)
    return MESH_OK;
  close(*fd);
  *fd = -1;
  if (w != 1)
    return mesh__fail(st, w == 0 ? MESH_ERR_TIMEOUT : MESH_ERR_IO,
                      "connect to %s: %s", target,
                      w == 0 ? "timed out" : "poll failed");
  return mesh__fail(st, MESH_ERR_CONNECT, "connect to %s: %s", target,
                    strerror(err));
}

int mesh__h2_dial_plain(mesh_t *m, const char *target, int timeout_ms,
                        const mesh__h2_settings_t *set,
                        mesh__h2_session_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  if (!target || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 dial: target and out");
  if (timeout_ms <= 0)
    timeout_ms = 5000;
  int fd = -1;
  int rc = strncmp(target, "unix:", 5) == 0
               ? dial_unix(target + 5, &fd, st)
               : dial_tcp(target, timeout_ms, &fd, st);
  if (rc != MESH_OK)
    return rc;
  return mesh__h2_session_new_fd(m, fd, false, set, out, st);
}
