/* SPDX-License-Identifier: Apache-2.0 */
/* The connection state machine: TCP connect → (server, PERMISSIVE: sniff
 * the first byte) → TLS handshake → open.  One non-blocking step function
 * serves both modes; the blocking mode waits with poll between steps until
 * the phase's deadline. */
#include "tls/tls.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char *phase_name(const mesh_conn_t *c) {
  switch (c->state) {
  case MESH__CONN_CONNECTING:
    return "connect";
  case MESH__CONN_SNIFF:
    return "first byte";
  default:
    return "TLS handshake";
  }
}

static int timeout_fail(mesh_conn_t *c, mesh_status_t *st) {
  if (c->state == MESH__CONN_CONNECTING)
    return mesh__conn_fail(c, st, MESH_ERR_TIMEOUT,
                           "connect to %s timed out after %lld ms",
                           c->peer_addr, (long long)c->phase_ms);
  if (c->state == MESH__CONN_SNIFF)
    return mesh__conn_fail(c, st, MESH_ERR_TIMEOUT,
                           "peer %s sent nothing within %lld ms",
                           c->peer_addr, (long long)c->phase_ms);
  return mesh__conn_fail(c, st, MESH_ERR_TIMEOUT,
                         "TLS handshake with %s timed out after %lld ms (peer "
                         "stalled%s)",
                         c->peer_addr, (long long)c->phase_ms,
                         c->nfirst ? " mid-handshake" : ", sent nothing");
}

/* Identity failures of inbound peers are news for the operator.  Probes
 * that connect and leave (health checks, port scans), resets and timeouts
 * are not worth a warning each; failed dials go back to the caller. */
static int failure_level(const mesh_conn_t *c, int code) {
  if (!c->server)
    return MESH_LOG_DEBUG;
  /* identity failures: core's classes (core/errclass.c) */
  return (mesh__err_class(code) & MESH__EF_IDENTITY) ? MESH_LOG_WARN
                                                     : MESH_LOG_DEBUG;
}

/* Every setup failure passes here once: log, count, end the spans. */
static void on_failure(mesh_conn_t *c, int code) {
  mesh__conn_obs_fail(c, code);
  int level = failure_level(c, code);
  if (!mesh__log_on(c->m, level))
    return;
  mesh__log(c->m, level, c->server ? "tls_accept_failed" : "tls_dial_failed",
            "peer=%s code=%s reason=\"%s\"", c->peer_addr,
            mesh_code_name(code), c->errmsg);
}

static int start_tls(mesh_conn_t *c, mesh_status_t *st) {
  int rc = mesh__conn_tls_setup(c, st);
  if (rc != MESH_OK)
    return rc;
  if (!c->server && c->m->tls->set.resumption)
    mesh__sesscache_load(&c->m->tls->cache, c);
  c->state = MESH__CONN_HANDSHAKE;
  mesh__conn_obs_tls_start(c);
  return MESH_OK;
}

static int on_connected(mesh_conn_t *c, mesh_status_t *st) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err != 0)
    return mesh__conn_fail(c, st, MESH_ERR_CONNECT, "connect to %s: %s",
                           c->peer_addr, strerror(err));
  if (c->hs_timeout_ms > 0) {
    c->deadline_ms = mesh__now_ms() + c->hs_timeout_ms;
    c->phase_ms = c->hs_timeout_ms;
  }
  return start_tls(c, st);
}

static int step_connect(mesh_conn_t *c, mesh_status_t *st) {
  struct pollfd p = {.fd = c->fd, .events = POLLOUT};
  int r = poll(&p, 1, 0);
  if (r == 0 || (r < 0 && errno == EINTR))
    return MESH_ERR_WANT_WRITE;
  if (r < 0)
    return mesh__conn_fail(c, st, MESH_ERR_IO, "poll: %s", strerror(errno));
  return on_connected(c, st);
}

static int step_sniff(mesh_conn_t *c, mesh_status_t *st) {
  unsigned char b;
  ssize_t n;
  do {
    n = recv(c->fd, &b, 1, MSG_PEEK);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return MESH_ERR_WANT_READ;
  if (n < 0)
    return mesh__conn_fail(c, st,
                           errno == ECONNRESET ? MESH_ERR_RESET : MESH_ERR_IO,
                           "peer %s: %s", c->peer_addr, strerror(errno));
  if (n == 0)
    return mesh__conn_fail(c, st, MESH_ERR_PEER_CLOSED,
                           "peer %s closed the connection before sending "
                           "anything",
                           c->peer_addr);
  if (b == 0x16) /* TLS handshake record */
    return start_tls(c, st);
  c->tls = false;
  /* No certificate: connection-level policies see an empty principal. */
  mesh_status_t az;
  if (mesh__tls_conn_authz(c, "", &az) != MESH_OK)
    return mesh__conn_fail(c, st, MESH_ERR_DENIED,
                           "plaintext peer %s: %s", c->peer_addr, az.message);
  c->state = MESH__CONN_OPEN;
  mesh__log(c->m, MESH_LOG_DEBUG, "inbound_plaintext", "peer=%s",
            c->peer_addr);
  mesh__conn_obs_open(c);
  return MESH_OK;
}

static void send_alert(mesh_conn_t *c, int code) {
  /* The same alert as a full handshake's refusal (OpenSSL has no call to
   * send one after the handshake: it closes without). */
  mesh__tls_be.send_alert(c, mesh__tls_refusal_alert(code));
}

static int after_handshake(mesh_conn_t *c, mesh_status_t *st) {
  c->resumed = mesh__tls_be.resumed(c);
  if (c->resumed && !c->server)
    c->sess_id = c->offered_id; /* the session this connection now uses */
  bool no_cert = false;
  if (c->resumed) {
    mesh_status_t s2;
    int rc = mesh__verify_resumed(c, &s2);
    /* mbedTLS reports a full handshake without our check as resumed: with
     * an optional client certificate, no certificate is no principal */
    no_cert = rc == MESH_ERR_NO_PEER_CERT && c->cert_optional;
    if (no_cert)
      c->resumed = false;
    if (rc != MESH_OK && !no_cert) {
      send_alert(c, rc);
      if (!c->server)
        mesh__sesscache_drop(&c->m->tls->cache, c->target, c->offered_id);
      return mesh__conn_fail(c, st, rc, "%s", s2.message);
    }
  }
  if (no_cert || (!c->resumed && c->cert_optional && !c->verified)) {
    /* TLS without a client certificate (A36 chain): no principal, so
     * connection-level policies judge an empty one */
    mesh_status_t az;
    if (mesh__tls_conn_authz(c, "", &az) != MESH_OK)
      return mesh__conn_fail(c, st, MESH_ERR_DENIED, "peer %s (no client "
                             "certificate): %s", c->peer_addr, az.message);
  } else if (!c->resumed &&
             (c->verify_code != MESH_OK || !c->peer_id || !c->peer_id[0])) {
    /* Fail closed: a full handshake must have passed our check. */
    return mesh__conn_fail(c, st, MESH_ERR_NO_PEER_CERT,
                           "peer %s: no verified certificate", c->peer_addr);
  }
  if (!c->server && c->m->tls->set.resumption)
    mesh__sesscache_save(&c->m->tls->cache, c);
  c->state = MESH__CONN_OPEN;
  c->opened = true;
  c->deadline_ms = 0;
  mesh__conn_block(c);
  mesh__conn_obs_open(c);
  if (mesh__log_on(c->m, MESH_LOG_DEBUG))
    mesh__log(c->m, MESH_LOG_DEBUG, "tls_handshake",
              "side=%s peer=%s id=%s version=%s cipher=%s resumed=%d",
              c->server ? "server" : "client", c->peer_addr, c->peer_id,
              mesh__tls_be.version(c), mesh__tls_be.cipher(c), c->resumed);
  return MESH_OK;
}

static int step_handshake(mesh_conn_t *c, mesh_status_t *st) {
  mesh__hsf_t f;
  int ret = mesh__tls_be.handshake(c, &f);
  if (ret == MESH_ERR_WANT_READ || ret == MESH_ERR_WANT_WRITE)
    return ret;
  if (ret != MESH_OK) {
    if (c->offered_id)
      mesh__sesscache_drop(&c->m->tls->cache, c->target, c->offered_id);
    if (f.kind == MESH__HSF_NO_CERT && c->server) {
      /* Say why before closing (RFC 8446 4.4.2.4: certificate_required;
       * RFC 5246 7.4.6: handshake_failure).  Backends that already sent
       * it ignore this. */
      const char *v = mesh__tls_be.version(c);
      mesh__tls_be.send_alert(c, v && strcmp(v, "TLSv1.3") == 0 ? 116 : 40);
    }
    mesh_status_t s2;
    int code = mesh__tls_handshake_error(c, &f, &s2);
    return mesh__conn_fail(c, st, code, "%s", s2.message);
  }
  return after_handshake(c, st);
}

static int step(mesh_conn_t *c, mesh_status_t *st) {
  switch (c->state) {
  case MESH__CONN_CONNECTING: {
    int rc = step_connect(c, st);
    if (rc != MESH_OK)
      return rc;
    return step_handshake(c, st);
  }
  case MESH__CONN_SNIFF: {
    int rc = step_sniff(c, st);
    if (rc != MESH_OK || c->state == MESH__CONN_OPEN)
      return rc;
    return step_handshake(c, st);
  }
  case MESH__CONN_HANDSHAKE:
    return step_handshake(c, st);
  case MESH__CONN_OPEN:
    return MESH_OK;
  default:
    return mesh__fail(st, c->last_err ? c->last_err : MESH_ERR_CLOSED, "%s",
                      c->errmsg);
  }
}

void mesh__conn_abort(mesh_conn_t *c, int code, const char *fmt, ...) {
  if (c->state == MESH__CONN_FAILED || c->state == MESH__CONN_OPEN)
    return;
  char msg[sizeof c->errmsg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  mesh__conn_fail(c, NULL, code, "%s", msg);
  on_failure(c, code);
}

int mesh__conn_step(mesh_conn_t *c, mesh_status_t *st) {
  if (c->state == MESH__CONN_OPEN)
    return MESH_OK;
  if (c->state != MESH__CONN_FAILED && c->deadline_ms &&
      mesh__now_ms() >= c->deadline_ms) {
    timeout_fail(c, st);
    on_failure(c, MESH_ERR_TIMEOUT);
    return MESH_ERR_TIMEOUT;
  }
  bool was_failed = c->state == MESH__CONN_FAILED;
  int rc = step(c, st);
  if (!was_failed && c->state == MESH__CONN_FAILED)
    on_failure(c, rc);
  return rc;
}

int mesh__conn_finish(mesh_conn_t *c, mesh_status_t *st) {
  for (;;) {
    int rc = mesh__conn_step(c, st);
    if (rc != MESH_ERR_WANT_READ && rc != MESH_ERR_WANT_WRITE)
      return rc;
    short ev = rc == MESH_ERR_WANT_READ ? POLLIN : POLLOUT;
    int w = mesh__sock_wait(c->fd, ev, c->deadline_ms);
    if (w == 0) {
      timeout_fail(c, st);
      on_failure(c, MESH_ERR_TIMEOUT);
      return MESH_ERR_TIMEOUT;
    }
    if (w < 0) {
      mesh__conn_fail(c, st, MESH_ERR_IO, "poll on %s (%s): %s", c->peer_addr,
                      phase_name(c), strerror(errno));
      on_failure(c, MESH_ERR_IO);
      return MESH_ERR_IO;
    }
  }
}

int mesh_conn_handshake(mesh_conn_t *c, mesh_status_t *st) {
  mesh__ok(st);
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "connection is NULL");
  if (c->nonblocking)
    return mesh__conn_step(c, st);
  return mesh__conn_finish(c, st);
}
