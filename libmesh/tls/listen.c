/* SPDX-License-Identifier: Apache-2.0 */
/* Server side: the listener, blocking and non-blocking accept.  STRICT
 * requires mTLS from every peer; PERMISSIVE peeks at the first byte and
 * hands plaintext peers over as non-TLS connections (a TLS ClientHello
 * always starts with record type 0x16).
 *
 * A blocking mesh_accept never finishes one handshake at a time: it keeps
 * a bounded set of pending handshakes on the listener, advances whichever
 * socket is ready, and returns the first that completes (or fails), so an
 * idle or trickling peer delays nobody else.  Bounds: PENDING_MAX
 * handshakes in all, PENDING_PER_SOURCE per peer IP; past either, the
 * oldest pending handshake (of that source, or of all) gives way to the
 * new one.  Each handshake keeps its own tls.handshake_timeout_ms. */
#include "tls/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_BACKLOG 128
#define PENDING_MAX 64
#define PENDING_PER_SOURCE 16

struct mesh_listener {
  mesh_t *m;
  int fd;
  int port;
  int mode;
  char addr[MESH__ADDR_MAX];
  /* handshakes in progress (blocking mesh_accept), oldest first */
  mesh_conn_t *pend[PENDING_MAX];
  short pend_ev[PENDING_MAX];
  size_t npend;
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
  for (size_t i = 0; i < l->npend; i++)
    mesh_conn_close(l->pend[i]);
  close(l->fd);
  free(l);
}

/* The part above's choice for c (A36 filter chains): mode becomes STRICT
 * or PERMISSIVE, c->cert_optional for TLS without a required client
 * certificate; CLOSE fails with MESH_ERR_DENIED (nothing was sent). */
static int inpick(mesh_listener_t *l, mesh_conn_t *c, int *mode,
                  mesh_status_t *st) {
  mesh__tls_inpick_fn fn = l->m->tls->inpick;
  if (!fn)
    return MESH_OK;
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(c->fd, (struct sockaddr *)&local, &len) != 0)
    memset(&local, 0, sizeof local);
  char why[200] = "";
  mesh__tlsgen_t *gen = NULL;
  int pick = fn(l->m, (const struct sockaddr *)&local,
                (const struct sockaddr *)&c->peer_sa, &gen, why, sizeof why);
  if (gen) {
    mesh__tlsgen_release(c->gen);
    c->gen = gen;
  }
  switch (pick) {
  case MESH__INPICK_MTLS:
    *mode = MESH__INBOUND_STRICT;
    break;
  case MESH__INPICK_TLS:
    *mode = MESH__INBOUND_STRICT;
    c->cert_optional = true;
    break;
  case MESH__INPICK_PLAIN:
    *mode = MESH__INBOUND_PERMISSIVE;
    break;
  case MESH__INPICK_CLOSE:
    mesh__log(l->m, MESH_LOG_INFO, "inbound_closed", "peer=%s reason=\"%s\"",
              c->peer_addr, why);
    return mesh__fail(st, MESH_ERR_DENIED, "peer %s: connection closed: %s",
                      c->peer_addr, why);
  default:
    break;
  }
  return MESH_OK;
}

/* Take one pending socket.  @return MESH_OK, MESH_ERR_WANT_READ (none),
 * MESH_ERR_FD_LIMIT, MESH_ERR_IO, MESH_ERR_DENIED (the inpick hook closed
 * it: no filter chain), or a TLS setup error. */
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
  int mode = l->mode;
  rc = inpick(l, c, &mode, st);
  if (rc != MESH_OK) {
    mesh_conn_close(c);
    return rc;
  }
  if (mode == MESH__INBOUND_PERMISSIVE) {
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

/* ---- blocking accept: many handshakes at once ---------------------------- */

static bool same_ip(const struct sockaddr_storage *a,
                    const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  if (a->ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
  return false;
}

static mesh_conn_t *pend_take(mesh_listener_t *l, size_t i) {
  mesh_conn_t *c = l->pend[i];
  memmove(&l->pend[i], &l->pend[i + 1], (l->npend - i - 1) * sizeof *l->pend);
  memmove(&l->pend_ev[i], &l->pend_ev[i + 1],
          (l->npend - i - 1) * sizeof *l->pend_ev);
  l->npend--;
  return c;
}

static void evict(mesh_listener_t *l, size_t i, const char *why) {
  mesh_conn_t *c = pend_take(l, i);
  mesh__conn_abort(c, MESH_ERR_TIMEOUT,
                   "TLS handshake with %s abandoned: %s (the oldest pending "
                   "handshake gives way)",
                   c->peer_addr, why);
  mesh_conn_close(c);
}

/* Make room for c (per-source bound, then the global one), then keep it. */
static void pend_add(mesh_listener_t *l, mesh_conn_t *c) {
  size_t same = 0, oldest = l->npend;
  for (size_t i = 0; i < l->npend; i++)
    if (same_ip(&l->pend[i]->peer_sa, &c->peer_sa)) {
      if (oldest == l->npend)
        oldest = i;
      same++;
    }
  if (same >= PENDING_PER_SOURCE)
    evict(l, oldest, "too many pending handshakes from this address");
  if (l->npend >= PENDING_MAX)
    evict(l, 0, "too many pending handshakes on the listener");
  l->pend[l->npend] = c;
  l->pend_ev[l->npend] = POLLIN;
  l->npend++;
}

/* One step of pending handshake i.  @return MESH_OK with *out (done), a
 * failure (the conn closed, st says why), or MESH_ERR_WANT_READ (pending). */
static int advance(mesh_listener_t *l, size_t i, mesh_conn_t **out,
                   mesh_status_t *st) {
  mesh_conn_t *c = l->pend[i];
  mesh_status_t cst;
  int rc = mesh__conn_step(c, &cst);
  if (rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE) {
    l->pend_ev[i] = rc == MESH_ERR_WANT_READ ? POLLIN : POLLOUT;
    return MESH_ERR_WANT_READ;
  }
  pend_take(l, i);
  if (rc == MESH_OK) {
    *out = c;
    return MESH_OK;
  }
  mesh__fail(st, rc, "%s", cst.message);
  mesh_conn_close(c);
  return rc;
}

/* Accept every queued socket into the pending set, each stepped once (a
 * ClientHello often arrives with the connection).  @return as advance, or
 * an accept error (FD limit). */
static int take_all(mesh_listener_t *l, mesh_conn_t **out, mesh_status_t *st) {
  for (int k = 0; k < PENDING_MAX; k++) {
    mesh_conn_t *c = NULL;
    int rc = take(l, false, &c, st);
    if (rc == MESH_ERR_WANT_READ)
      return rc;
    if (rc != MESH_OK)
      return rc;
    pend_add(l, c);
    rc = advance(l, l->npend - 1, out, st);
    if (rc != MESH_ERR_WANT_READ)
      return rc;
  }
  return MESH_ERR_WANT_READ;
}

/* Poll the listener and every pending handshake until the earliest of the
 * accept deadline and the handshakes' own deadlines. */
static int wait_any(mesh_listener_t *l, int64_t deadline,
                    struct pollfd *pf) {
  pf[0] = (struct pollfd){.fd = l->fd, .events = POLLIN};
  int64_t until = deadline;
  for (size_t i = 0; i < l->npend; i++) {
    pf[i + 1] = (struct pollfd){.fd = l->pend[i]->fd, .events = l->pend_ev[i]};
    int64_t d = l->pend[i]->deadline_ms;
    if (d && (!until || d < until))
      until = d;
  }
  int ms = -1;
  if (until) {
    int64_t left = until - mesh__now_ms();
    ms = left <= 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
  }
  int r = poll(pf, l->npend + 1, ms);
  return r < 0 && errno != EINTR ? MESH_ERR_IO : MESH_OK;
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
  struct pollfd pf[PENDING_MAX + 1];
  for (;;) {
    int rc = take_all(l, out, st);
    if (rc != MESH_ERR_WANT_READ)
      return rc;
    if (wait_any(l, deadline, pf) != MESH_OK)
      return mesh__fail(st, MESH_ERR_IO, "poll on %s: %s", l->addr,
                        strerror(errno));
    int64_t now = mesh__now_ms();
    /* pf[] matches the set as it was polled; walk it backwards so that
     * removals do not shift the entries still to visit. */
    for (size_t i = l->npend; i-- > 0;) {
      mesh_conn_t *c = l->pend[i];
      if (pf[i + 1].revents || (c->deadline_ms && now >= c->deadline_ms)) {
        rc = advance(l, i, out, st);
        if (rc != MESH_ERR_WANT_READ)
          return rc;
      }
    }
    if (deadline && mesh__now_ms() >= deadline)
      return mesh__fail(st, MESH_ERR_TIMEOUT,
                        "no connection on %s within %d ms", l->addr,
                        timeout_ms);
  }
}
