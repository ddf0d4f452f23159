/* SPDX-License-Identifier: Apache-2.0 */
/* mbedTLS backend: one connection — the socket BIO, the handshake step,
 * record I/O, accessors — and the backend table. */
#include "tls/be_mbedtls.h"

#include <errno.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- BIO: the socket under mbedTLS -------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len) {
  mesh_conn_t *c = ctx;
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

static int bio_recv(void *ctx, unsigned char *buf, size_t len) {
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

/* ---- verification glue ------------------------------------------------- */

/* Verify flags that make mbedTLS send the alert of the shared table
 * (mesh__tls_refusal_alert; mbedTLS picks it from the flags in
 * ssl_parse_certificate_verify). */
static uint32_t flags_for(int code) {
  switch (mesh__tls_refusal_alert(code)) {
  case 45:
    return MBEDTLS_X509_BADCERT_EXPIRED; /* certificate_expired */
  case 48:
    return MBEDTLS_X509_BADCERT_NOT_TRUSTED; /* unknown_ca */
  default:
    return MBEDTLS_X509_BADCERT_CN_MISMATCH; /* bad_certificate */
  }
}

/* mbedTLS calls this for every certificate of the chain it built (root
 * first, leaf last).  The decision is made once, at the leaf, by the
 * shared check; a refusal becomes verify flags so that mbedTLS aborts with
 * the matching alert. */
static int verify_cb(void *p, mbedtls_x509_crt *crt, int depth,
                     uint32_t *flags) {
  mesh_conn_t *c = p;
  mbe_conn_t *b = c->be;
  if (!b->vstarted) {
    b->vstarted = true;
    b->vtop = crt;
    b->vflags = 0;
  }
  b->vflags |= *flags;
  if (depth > 0) {
    /* Intermediates and roots are judged by the check at depth 0. */
    *flags = 0;
    return 0;
  }
  bool fast = b->vflags == 0 && b->vtop && b->vtop != crt;
  int rc = mesh__verify_chain(c, crt, fast, b->vtop);
  *flags = rc == MESH_OK ? 0 : flags_for(rc);
  return 0;
}

/* ---- connection ---------------------------------------------------------- */

static int conn_setup(mesh_conn_t *c, const char *const *alpn,
                      mesh_status_t *st) {
  mbe_gen_t *g = c->gen->be;
  mbe_conn_t *b = calloc(1, sizeof *b);
  if (!b)
    return mesh__conn_fail(c, st, MESH_ERR_NOMEM, "out of memory");
  mbedtls_ssl_init(&b->ssl);
  c->be = b;
  const mbedtls_ssl_config *conf = c->server ? &g->server : &g->client;
  if (alpn) {
    mbedtls_ssl_config_init(&b->own_conf);
    b->own_conf_ready = true;
    int ret = mbe_setup_client(c->m->tls, c->gen, &b->own_conf, alpn);
    if (ret != 0)
      return mesh__conn_fail(c, st, MESH_ERR_TLS,
                             "ALPN \"%s\": TLS setup failed (-0x%04x)",
                             alpn[0] ? alpn[0] : "", (unsigned)-ret);
    conf = &b->own_conf;
  }
  int ret = mbedtls_ssl_setup(&b->ssl, conf);
  if (ret != 0)
    return mesh__conn_fail(c, st,
                           ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? MESH_ERR_NOMEM
                                                              : MESH_ERR_TLS,
                           "TLS setup for %s failed (-0x%04x)", c->peer_addr,
                           (unsigned)-ret);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  /* Peers are identified by SPIFFE ID, not host name (the verify callback
   * decides); 3.x requires saying so explicitly. */
  mbedtls_ssl_set_hostname(&b->ssl, NULL);
#endif
  mbedtls_ssl_set_bio(&b->ssl, c, bio_send, bio_recv, NULL);
  mbedtls_ssl_set_verify(&b->ssl, verify_cb, c);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  if (c->m->tls->keylog_fd >= 0)
    mbedtls_ssl_set_export_keys_cb(&b->ssl, mbe_export_keys, c->m->tls);
#endif
  return MESH_OK;
}

static void conn_free(mesh_conn_t *c) {
  mbe_conn_t *b = c->be;
  if (!b)
    return;
  mbedtls_ssl_free(&b->ssl);
  free(b->ra);
  if (b->own_conf_ready)
    mbedtls_ssl_config_free(&b->own_conf);
  free(b);
  c->be = NULL;
}

/* mbedTLS's verdict when our callback passed (profile, key usage...). */
static void own_verify_fail(mbe_conn_t *b, mesh__hsf_t *f) {
  uint32_t flags = mbedtls_ssl_get_verify_result(&b->ssl);
  mesh_status_t s2;
  int rc = mesh__x509_flags_to_code(flags, &s2);
  f->code = rc == MESH_OK ? MESH_ERR_CERT_UNTRUSTED : rc;
  mesh__strlcpy(f->detail, s2.message, sizeof f->detail);
}

/* Sort a failed mbedtls_ssl_handshake() into the backend-neutral kinds;
 * errmap.c words the message. */
static void classify(mesh_conn_t *c, int ret, mesh__hsf_t *f) {
  mbe_conn_t *b = c->be;
  switch (ret) {
  case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    f->kind = MESH__HSF_VERIFY;
    if (c->verify_code == MESH_OK)
      own_verify_fail(b, f);
    return;
  case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
#if defined(MBEDTLS_ERR_SSL_CERTIFICATE_REQUIRED)
  case MBEDTLS_ERR_SSL_CERTIFICATE_REQUIRED:
#endif
    f->kind = MESH__HSF_NO_CERT;
    return;
  case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
    f->kind = MESH__HSF_ALERT;
    f->alert = b->ssl.MESH__MBEDTLS_FIELD(in_msg)[1];
    return;
  case MBEDTLS_ERR_NET_CONN_RESET:
    f->kind = MESH__HSF_RESET;
    return;
  case MBEDTLS_ERR_SSL_CONN_EOF:
    f->kind = MESH__HSF_EOF;
    return;
  case MBEDTLS_ERR_NET_RECV_FAILED:
  case MBEDTLS_ERR_NET_SEND_FAILED:
    f->kind = MESH__HSF_SYSCALL;
    return;
  case MBEDTLS_ERR_SSL_ALLOC_FAILED:
    f->kind = MESH__HSF_NOMEM;
    return;
#if defined(MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN) /* 2.28 */
  case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
    f->kind = MESH__HSF_NO_CIPHER;
    return;
#endif
#if defined(MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION) /* 2.28 */
  case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
#else /* 3.x */
  case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
#endif
    f->kind = MESH__HSF_VERSION;
    return;
  default:
    break;
  }
  uint32_t flags = mbedtls_ssl_get_verify_result(&b->ssl);
  if (c->verified && (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE |
                               MBEDTLS_X509_BADCERT_EXT_KEY_USAGE))) {
    f->kind = MESH__HSF_KEY_USAGE;
    return;
  }
  char err[120];
  mbedtls_strerror(ret, err, sizeof err);
  f->kind = MESH__HSF_OTHER;
  snprintf(f->detail, sizeof f->detail, "%s (-0x%04x)", err, (unsigned)-ret);
}

static int handshake(mesh_conn_t *c, mesh__hsf_t *f) {
  mbe_conn_t *b = c->be;
  int ret = mbedtls_ssl_handshake(&b->ssl);
  if (ret == 0)
    return MESH_OK;
  if (ret == MBEDTLS_ERR_SSL_WANT_READ)
    return MESH_ERR_WANT_READ;
  if (ret == MBEDTLS_ERR_SSL_WANT_WRITE)
    return MESH_ERR_WANT_WRITE;
  memset(f, 0, sizeof *f);
  classify(c, ret, f);
  return MESH_ERR_TLS;
}

/* A full handshake runs our verify callback; a resumed one does not. */
static bool resumed(const mesh_conn_t *c) { return !c->verified; }

static int io_code(int ret) {
  switch (ret) {
  case MBEDTLS_ERR_SSL_WANT_READ:
    return MESH_ERR_WANT_READ;
  case MBEDTLS_ERR_SSL_WANT_WRITE:
    return MESH_ERR_WANT_WRITE;
  case MBEDTLS_ERR_NET_CONN_RESET:
    return MESH_ERR_RESET;
  case MBEDTLS_ERR_NET_RECV_FAILED:
  case MBEDTLS_ERR_NET_SEND_FAILED:
    return MESH_ERR_IO;
  case MBEDTLS_ERR_SSL_ALLOC_FAILED:
    return MESH_ERR_NOMEM;
  default:
    return MESH_ERR_TLS;
  }
}

static long be_read(mesh_conn_t *c, void *buf, size_t len) {
  mbe_conn_t *b = c->be;
  for (;;) {
    int ret = mbedtls_ssl_read(&b->ssl, buf, len);
    if (ret > 0)
      return ret;
    /* A FIN inside a record (part of it read) is a truncation, never a
     * clean end.  (mbedtls_ssl_read() reports any EOF as 0; in_left says
     * whether bytes of an unfinished record were pending.) */
    if ((ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF) &&
        b->ssl.MESH__MBEDTLS_FIELD(in_left) > 0) {
      c->truncated = true;
      return MESH_ERR_TLS;
    }
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
        ret == MBEDTLS_ERR_SSL_CONN_EOF)
      return 0;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
      /* TLS 1.3 post-handshake ticket, no data: keep the session now */
      if (!c->server && c->m->tls->set.resumption) {
        mesh__sesscache_save(&c->m->tls->cache, c);
        c->got_ticket = true;
      }
      continue;
    }
#endif
    if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)
      c->rx_alert = b->ssl.MESH__MBEDTLS_FIELD(in_msg)[1];
    return io_code(ret);
  }
}

static long be_write(mesh_conn_t *c, const void *buf, size_t len) {
  mbe_conn_t *b = c->be;
  int ret = mbedtls_ssl_write(&b->ssl, buf, len);
  return ret >= 0 ? ret : io_code(ret);
}

static int close_notify(mesh_conn_t *c) {
  mbe_conn_t *b = c->be;
  int ret = mbedtls_ssl_close_notify(&b->ssl);
  return ret == 0 ? MESH_OK : io_code(ret);
}

static void drain(mesh_conn_t *c) {
  unsigned char buf[256];
  be_read(c, buf, sizeof buf); /* non-blocking socket: never waits */
}

static void send_alert(mesh_conn_t *c, int desc) {
  mbe_conn_t *b = c->be;
  mbedtls_ssl_send_alert_message(&b->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                 (unsigned char)desc);
}

static size_t pending(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  if (!b)
    return 0;
  /* decrypted bytes, read-ahead bytes, and any record mbedTLS holds */
  size_t n = mbedtls_ssl_get_bytes_avail(&b->ssl) + (b->ra_len - b->ra_off);
  return n ? n : (size_t)mbedtls_ssl_check_pending(&b->ssl);
}

static const char *cipher(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  return mbedtls_ssl_get_ciphersuite(&b->ssl);
}

static const char *version(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  return mbedtls_ssl_get_version(&b->ssl);
}

static const char *alpn(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  return mbedtls_ssl_get_alpn_protocol(&b->ssl);
}

static int peer_chain(const mesh_conn_t *c, mbedtls_x509_crt *out) {
  const mbe_conn_t *b = c->be;
  const mbedtls_x509_crt *crt = b ? mbedtls_ssl_get_peer_cert(&b->ssl) : NULL;
  if (!crt || !crt->raw.p)
    return MESH_ERR_NOT_FOUND;
  for (; crt && crt->raw.p; crt = crt->next)
    if (mbedtls_x509_crt_parse_der(out, crt->raw.p, crt->raw.len) != 0)
      return MESH_ERR_NOMEM;
  return MESH_OK;
}

const mesh__tls_backend_t mesh__tls_be = {
    .name = "mbedtls",
    .lib_version = mbe_lib_version,
    .has_tls13 = mbe_has_tls13,
    .init = mbe_init,
    .fini = mbe_fini,
    .gen_new = mbe_gen_new,
    .gen_free = mbe_gen_free,
    .conn_setup = conn_setup,
    .conn_free = conn_free,
    .handshake = handshake,
    .resumed = resumed,
    .read = be_read,
    .write = be_write,
    .close_notify = close_notify,
    .drain = drain,
    .send_alert = send_alert,
    .pending = pending,
    .cipher = cipher,
    .version = version,
    .alpn = alpn,
    .peer_chain = peer_chain,
    .sess_get = mbe_sess_get,
    .sess_set = mbe_sess_set,
    .sess_free = mbe_sess_free,
};
