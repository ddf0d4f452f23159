/* The connection object: lifetime, the socket BIO for mbedTLS, accessors. */
#include "tls/tls.h"

#include <errno.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pem.h>
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
  mbedtls_ssl_init(&c->ssl);
  c->ssl_ready = true;
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

/* ---- BIO: the socket under mbedTLS -------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len) {
  mesh_conn_t *c = ctx;
  for (;;) {
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
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

static int bio_recv(void *ctx, unsigned char *buf, size_t len) {
  mesh_conn_t *c = ctx;
  for (;;) {
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0) {
      /* Keep the first bytes: they tell a plaintext peer apart. */
      size_t k = sizeof c->first - c->nfirst;
      if (k > (size_t)n)
        k = (size_t)n;
      memcpy(c->first + c->nfirst, buf, k);
      c->nfirst += k;
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

int mesh__conn_tls_setup(mesh_conn_t *c, mesh_status_t *st) {
  const mbedtls_ssl_config *conf;
  if (c->own_conf_ready)
    conf = &c->own_conf;
  else
    conf = c->server ? &c->gen->server : &c->gen->client;
  int ret = mbedtls_ssl_setup(&c->ssl, conf);
  if (ret != 0)
    return mesh__conn_fail(c, st,
                           ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? MESH_ERR_NOMEM
                                                              : MESH_ERR_TLS,
                           "TLS setup for %s failed (-0x%04x)", c->peer_addr,
                           (unsigned)-ret);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  /* Peers are identified by SPIFFE ID, not host name (the verify callback
   * decides); 3.x requires saying so explicitly. */
  mbedtls_ssl_set_hostname(&c->ssl, NULL);
#endif
  mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
  mbedtls_ssl_set_verify(&c->ssl, mesh__verify_cb, c);
  return MESH_OK;
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

void mesh_conn_close(mesh_conn_t *c) {
  if (!c)
    return;
  mesh__conn_obs_close(c);
  /* Best effort close_notify; never block here. */
  if (c->tls && c->state == MESH__CONN_OPEN && !c->shut && !c->eof)
    mbedtls_ssl_close_notify(&c->ssl);
  if (c->fd >= 0)
    lingering_close(c->fd);
  if (c->ssl_ready)
    mbedtls_ssl_free(&c->ssl);
  if (c->own_conf_ready)
    mbedtls_ssl_config_free(&c->own_conf);
  mesh__tlsgen_release(c->gen);
  for (size_t i = 0; i < c->npeers; i++)
    free(c->peers[i]);
  free(c->peers);
  free(c->alpn_buf);
  free(c->peer_id);
  free(c);
}

bool mesh__conn_idle_ok(mesh_conn_t *c) {
  if (!c || c->state != MESH__CONN_OPEN || c->eof || c->shut)
    return false;
  if (c->tls && mbedtls_ssl_get_bytes_avail(&c->ssl) > 0)
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
  return c && c->tls && c->state == MESH__CONN_OPEN;
}

const char *mesh_conn_cipher(const mesh_conn_t *c) {
  if (!tls_open(c))
    return "";
  const char *s = mbedtls_ssl_get_ciphersuite(&c->ssl);
  return s ? s : "";
}

const char *mesh_conn_tls_version(const mesh_conn_t *c) {
  if (!tls_open(c))
    return "";
  const char *s = mbedtls_ssl_get_version(&c->ssl);
  return s ? s : "";
}

const char *mesh_conn_alpn(const mesh_conn_t *c) {
  if (!tls_open(c))
    return "";
  const char *s = mbedtls_ssl_get_alpn_protocol(&c->ssl);
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
  const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&c->ssl);
  if (!crt || !crt->raw.p)
    return MESH_ERR_NOT_FOUND;
  size_t off = 0;
  for (; crt && crt->raw.p; crt = crt->next) {
    size_t olen = 0;
    int ret = mbedtls_pem_write_buffer(
        "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
        crt->raw.p, crt->raw.len, (unsigned char *)buf + off, len - off,
        &olen);
    if (ret != 0) {
      buf[0] = '\0';
      return MESH_ERR_BUFFER;
    }
    off += olen - 1; /* olen counts the NUL */
  }
  return (long)off;
}
