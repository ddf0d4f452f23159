/* SPDX-License-Identifier: Apache-2.0 */
/* The connection object: lifetime, accessors (the TLS library's part is
 * behind mesh__tls_be). */
#include "tls/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

mesh_conn_t *mesh__conn_new(mesh_t *m, int fd, bool server, bool nonblocking) {
  mesh_conn_t *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return NULL;
  }
  c->m = m;
  c->fd = fd;
  c->server = server;
  c->nonblocking = nonblocking;
  c->tls = true;
  c->read_ms = m->tls ? m->tls->set.read_timeout_ms : -1;
  c->write_ms = m->tls ? m->tls->set.write_timeout_ms : -1;
  return c;
}

int mesh__conn_fail(mesh_conn_t *c, mesh_status_t *st, int code,
                    const char *fmt, ...) {
  char msg[sizeof c->errmsg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->state = MESH__CONN_FAILED;
  c->last_err = code;
  mesh__strlcpy(c->errmsg, msg, sizeof c->errmsg);
  return mesh__fail(st, code, "%s", msg);
}

void mesh__conn_note_first(mesh_conn_t *c, const unsigned char *b,
                           size_t n) {
  size_t k = sizeof c->first - c->nfirst;
  if (k > n)
    k = n;
  memcpy(c->first + c->nfirst, b, k);
  c->nfirst += k;
}

int mesh__conn_tls_setup(mesh_conn_t *c, mesh_status_t *st) {
  return mesh__tls_be.conn_setup(
      c, c->own_alpn ? (const char *const *)c->alpn_list : NULL, st);
}

/* Closing a socket with unread input makes the kernel send RST, and an RST
 * can overtake our last bytes: the peer would see "connection reset"
 * instead of the alert that says why we refused it.  So send FIN first and
 * discard what has already arrived (bounded, never blocking). */
static void lingering_close(int fd) {
  char buf[4096];
  shutdown(fd, SHUT_WR);
  for (int i = 0; i < 16; i++) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0)
      break;
  }
  close(fd);
}

/* Did the open TLS connection c end cleanly?  Either side's close_notify
 * ends it (we sent ours, or the peer's arrived), or it is still up and we
 * end it now.  A connection that failed (reset, fatal alert, a record cut
 * by a FIN), or whose peer sent a FIN without close_notify (possibly a
 * truncation attack), did not. */
static bool ended_cleanly(const mesh_conn_t *c) {
  return c->state == MESH__CONN_OPEN && !c->truncated &&
         (c->shut || !c->eof || c->rx_close_notify);
}

/* Mesh policy for both backends, decided once per connection: after a
 * clean end the client's saved session for this target stays resumable;
 * after any other end of a connection that had opened, the session this
 * connection resumed or saved is forgotten (OpenSSL marks it not
 * resumable itself; mbedTLS would keep it), but not a newer one another
 * connection to the same target saved meanwhile (sesscache.c compares
 * ids).  Made where the end is first known: the read that saw it
 * (mesh__conn_read_end), else at close.  Dropping at the read, not only
 * at close, keeps a dial made in between from resuming on mbedTLS only
 * (OpenSSL forgets its session the moment SSL_read sees a fatal end).
 * An unclean verdict is final (c->end_unclean); a clean one is judged
 * again at close (a later write may still fail). */
static bool judge_end(mesh_conn_t *c) {
  if (c->end_unclean)
    return false;
  if (ended_cleanly(c))
    return true;
  c->end_unclean = true;
  if (c->opened && !c->server && c->m->tls->set.resumption)
    mesh__sesscache_drop(&c->m->tls->cache, c->target, c->sess_id);
  return false;
}

void mesh__conn_read_end(mesh_conn_t *c) {
  if (c->tls && c->be && (c->eof || c->state == MESH__CONN_FAILED))
    judge_end(c);
}

/* The TLS part of closing: never blocks (every send is MSG_DONTWAIT). */
static void tls_close(mesh_conn_t *c) {
  if (c->state == MESH__CONN_OPEN && !c->server && !c->eof &&
      !c->got_ticket && c->m->tls->set.resumption &&
      strcmp(mesh__tls_be.version(c), "TLSv1.3") == 0) {
    long n = mesh__tls_be.drain(c);
    if (n < 0 && n != MESH_ERR_WANT_READ && n != MESH_ERR_WANT_WRITE)
      c->state = MESH__CONN_FAILED; /* reset, alert, truncation */
  }
  /* Ours also answers the peer's (RFC 5246 7.2.1, RFC 8446 6.1); with
   * OpenSSL it is what keeps the session resumable. */
  if (judge_end(c) && !c->shut)
    mesh__tls_be.close_notify(c);
}

void mesh_conn_close(mesh_conn_t *c) {
  if (!c)
    return;
  mesh__conn_obs_close(c);
  if (c->be && c->tls)
    tls_close(c);
  if (c->fd >= 0)
    lingering_close(c->fd);
  if (c->be)
    mesh__tls_be.conn_free(c);
  mesh__tlsgen_release(c->gen);
  for (size_t i = 0; i < c->npeers; i++)
    free(c->peers[i]);
  free(c->peers);
  mesh__tls_san_free(c->san, c->nsan);
  free(c->alpn_buf);
  free(c->peer_id);
  free(c);
}

bool mesh__conn_idle_ok(mesh_conn_t *c) {
  if (!c || c->state != MESH__CONN_OPEN || c->eof || c->shut)
    return false;
  if (c->tls && c->be && mesh__tls_be.pending(c) > 0)
    return false; /* unread data: not idle */
  unsigned char b;
  ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  /* EAGAIN: nothing pending, still open.  Anything else (EOF, RST, an
   * unsolicited record such as close_notify) means it is not reusable. */
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* ---- accessors ---------------------------------------------------------- */

int mesh_conn_fd(const mesh_conn_t *c) { return c ? c->fd : -1; }

const char *mesh_conn_peer_id(const mesh_conn_t *c) {
  return c && c->peer_id ? c->peer_id : "";
}

static bool tls_open(const mesh_conn_t *c) {
  return c && c->tls && c->be && c->state == MESH__CONN_OPEN;
}

const char *mesh_conn_cipher(const mesh_conn_t *c) {
  if (!tls_open(c))
    return "";
  const char *s = mesh__tls_be.cipher(c);
  return s ? s : "";
}

const char *mesh_conn_tls_version(const mesh_conn_t *c) {
  if (!tls_open(c))
    return "";
  const char *s = mesh__tls_be.version(c);
  return s ? s : "";
}

const char *mesh_conn_alpn(const mesh_conn_t *c) {
  if (!tls_open(c))
    return "";
  const char *s = mesh__tls_be.alpn(c);
  return s ? s : "";
}

int mesh_conn_resumed(const mesh_conn_t *c) {
  return tls_open(c) && c->resumed ? 1 : 0;
}

int mesh_conn_is_tls(const mesh_conn_t *c) { return c && c->tls ? 1 : 0; }

const char *mesh_conn_peer_addr(const mesh_conn_t *c) {
  return c ? c->peer_addr : "";
}

const char *mesh_conn_errmsg(const mesh_conn_t *c) {
  if (!c)
    return "no connection";
  return c->errmsg;
}

long mesh_conn_peer_chain_pem(const mesh_conn_t *c, char *buf, size_t len) {
  if (!c || !buf || len == 0)
    return MESH_ERR_INVALID_ARG;
  buf[0] = '\0';
  if (!tls_open(c))
    return MESH_ERR_NOT_FOUND;
  mesh__x509_chain_t *chain = NULL;
  int rc = mesh__tls_be.peer_chain(c, &chain);
  long n = rc == MESH_OK ? mesh__x509_chain_pem(chain, buf, len) : rc;
  mesh__x509_chain_free(chain);
  return n;
}
