/* Server side: the listener, blocking and non-blocking accept.  STRICT
 * requires mTLS from every peer; PERMISSIVE peeks at the first byte and
 * hands plaintext peers over as non-TLS connections (a TLS ClientHello
 * always starts with record type 0x16). */
#include "tls/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_BACKLOG 128

struct mesh_listener {
  mesh_t *m;
  int fd;
  int port;
  int mode;
  char addr[MESH__ADDR_MAX];
};

static int bind_listen(const struct sockaddr *sa, socklen_t len, int *fd_out,
                       const char *addr, mesh_status_t *st) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
  if (fd < 0) {
    int e = errno;
    return mesh__fail(st, mesh__sock_errno_code(e, MESH_ERR_IO),
                      "socket for %s: %s", addr, strerror(e));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, sa, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    int e = errno;
    close(fd);
    return mesh__fail(st, MESH_ERR_IO, "listen on %s: %s", addr,
                      strerror(e));
  }
  *fd_out = fd;
  return MESH_OK;
}

int mesh_listen(mesh_t *m, const char *addr, mesh_listener_t **out,
                mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  if (!m || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_listen: m and out must not be NULL");
  if (!m->tls)
    return mesh__fail(st, MESH_ERR_INTERNAL, "the tls part is not set up");
  if (!addr)
    addr = m->tls->in.listen;
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = mesh__sock_resolve(addr, true, &ss, &len, st);
  if (rc != MESH_OK)
    return rc == MESH_ERR_CONNECT ? mesh__fail(st, MESH_ERR_INVALID_ARG,
                                               "%s", st ? st->message : "")
                                  : rc;
  mesh_listener_t *l = calloc(1, sizeof *l);
  if (!l)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  rc = bind_listen((struct sockaddr *)&ss, len, &l->fd, addr, st);
  if (rc != MESH_OK) {
    free(l);
    return rc;
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(l->fd, (struct sockaddr *)&bound, &blen);
  mesh__sock_format((struct sockaddr *)&bound, l->addr, sizeof l->addr);
  l->port = bound.ss_family == AF_INET6
                ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  l->m = m;
  l->mode = m->tls->in.mode;
  mesh__log(m, MESH_LOG_INFO, "listen", "addr=%s mode=%s", l->addr,
            l->mode == MESH__INBOUND_PERMISSIVE ? "PERMISSIVE" : "STRICT");
  *out = l;
  return MESH_OK;
}

int mesh_listener_port(const mesh_listener_t *l) { return l ? l->port : -1; }

int mesh_listener_fd(const mesh_listener_t *l) { return l ? l->fd : -1; }

void mesh_listener_close(mesh_listener_t *l) {
  if (!l)
    return;
  close(l->fd);
  free(l);
}

/* Take one pending socket.  @return MESH_OK, MESH_ERR_WANT_READ (none),
 * MESH_ERR_FD_LIMIT, MESH_ERR_IO, or a TLS setup error. */
static int take(mesh_listener_t *l, bool nonblocking, mesh_conn_t **out,
                mesh_status_t *st) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd;
  do {
    fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
  if (fd < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK)
      return MESH_ERR_WANT_READ;
    return mesh__fail(st, mesh__sock_errno_code(e, MESH_ERR_IO),
                      "accept on %s: %s", l->addr, strerror(e));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  mesh__tlsgen_t *gen;
  int rc = mesh__tlsgen_acquire(l->m, &gen, st);
  if (rc != MESH_OK) {
    close(fd);
    return rc;
  }
  mesh_conn_t *c = mesh__conn_new(l->m, fd, true, nonblocking);
  if (!c) {
    mesh__tlsgen_release(gen);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  c->gen = gen;
  mesh__sock_format((struct sockaddr *)&ss, c->peer_addr, sizeof c->peer_addr);
  memcpy(&c->peer_sa, &ss, sizeof c->peer_sa);
  c->local_port = l->port;
  mesh__conn_obs_accept(c);
  c->peers_ref = (const char *const *)l->m->tls->in.peers;
  c->npeers_ref = l->m->tls->in.npeers;
  c->phase_ms = l->m->tls->set.handshake_timeout_ms;
  c->deadline_ms = mesh__now_ms() + c->phase_ms;
  if (l->mode == MESH__INBOUND_PERMISSIVE) {
    c->state = MESH__CONN_SNIFF;
  } else {
    rc = mesh__conn_tls_setup(c, st);
    if (rc != MESH_OK) {
      mesh_conn_close(c);
      return rc;
    }
    c->state = MESH__CONN_HANDSHAKE;
    mesh__conn_obs_tls_start(c);
  }
  *out = c;
  return MESH_OK;
}

int mesh_accept_start(mesh_listener_t *l, mesh_conn_t **out,
                      mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  if (!l || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_accept_start: l and out must not be NULL");
  int rc = take(l, true, out, st);
  if (rc == MESH_ERR_WANT_READ)
    return mesh__fail(st, rc, "no pending connection on %s", l->addr);
  return rc;
}

int mesh_accept(mesh_listener_t *l, int timeout_ms, mesh_conn_t **out,
                mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  if (!l || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_accept: l and out must not be NULL");
  int64_t deadline = timeout_ms < 0 ? 0 : mesh__now_ms() + timeout_ms;
  mesh_conn_t *c = NULL;
  for (;;) {
    int rc = take(l, false, &c, st);
    if (rc == MESH_OK)
      break;
    if (rc != MESH_ERR_WANT_READ)
      return rc;
    int w = mesh__sock_wait(l->fd, POLLIN, deadline);
    if (w == 0)
      return mesh__fail(st, MESH_ERR_TIMEOUT,
                        "no connection on %s within %d ms", l->addr,
                        timeout_ms);
    if (w < 0)
      return mesh__fail(st, MESH_ERR_IO, "poll on %s: %s", l->addr,
                        strerror(errno));
  }
  /* timeout_ms bounds the wait for a peer; its handshake then has
   * tls.handshake_timeout_ms, so a peer arriving late is not cut short. */
  int rc = mesh__conn_finish(c, st);
  if (rc != MESH_OK) {
    mesh_conn_close(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}
