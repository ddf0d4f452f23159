/* SPDX-License-Identifier: Apache-2.0 */
/* OpenSSL 3 backend: one connection — handshake step, record I/O,
 * accessors, sessions — and the backend table. */
#include "tls/be_openssl.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *lib_version(void) { return OpenSSL_version(OPENSSL_VERSION); }

static bool has_tls13(void) { return true; }

static int be_init(mesh__tls_t *t, mesh_status_t *st) {
  (void)t;
  if (OPENSSL_init_ssl(0, NULL) != 1)
    return mesh__fail(st, MESH_ERR_TLS, "OPENSSL_init_ssl failed");
  return MESH_OK;
}

static void be_fini(mesh__tls_t *t) { (void)t; }

/* Empty this thread's error queue before an SSL call, so that
 * SSL_get_error() after it speaks of that call only.  ERR_clear_error()
 * walks all 16 slots of the queue (~800 instructions in OpenSSL 3.0) and
 * runs twice per request; the queue is empty nearly always, and
 * ERR_peek_error() says so in a few dozen. */
static void err_reset(void) {
  if (ERR_peek_error() != 0)
    ERR_clear_error();
}

static int conn_setup(mesh_conn_t *c, const char *const *alpn,
                      mesh_status_t *st) {
  obe_gen_t *g = c->gen->be;
  obe_conn_t *b = calloc(1, sizeof *b);
  if (!b)
    return mesh__conn_fail(c, st, MESH_ERR_NOMEM, "out of memory");
  c->be = b;
  ERR_clear_error();
  b->ssl = SSL_new(c->server ? g->server : g->client);
  BIO *bio = b->ssl ? obe_bio_new(c) : NULL;
  if (!bio) {
    char err[160];
    obe_err_string(err, sizeof err);
    return mesh__conn_fail(c, st, MESH_ERR_TLS, "TLS setup for %s failed: %s",
                           c->peer_addr, err);
  }
  SSL_set_bio(b->ssl, bio, bio);
  SSL_set_app_data(b->ssl, c);
  if (c->server && c->cert_optional)
    SSL_set_verify(b->ssl, SSL_VERIFY_PEER, NULL); /* no FAIL_IF_NO_PEER_CERT */
  if (c->server)
    SSL_set_accept_state(b->ssl);
  else
    SSL_set_connect_state(b->ssl);
  if (alpn) {
    unsigned char wire[MESH__ALPN_MAX * 256];
    size_t n = obe_alpn_wire(alpn, wire, sizeof wire);
    if (!n || SSL_set_alpn_protos(b->ssl, wire, (unsigned)n) != 0)
      return mesh__conn_fail(c, st, MESH_ERR_TLS,
                             "ALPN \"%s\": TLS setup failed",
                             alpn[0] ? alpn[0] : "");
  }
  return MESH_OK;
}

static void conn_free(mesh_conn_t *c) {
  obe_conn_t *b = c->be;
  if (!b)
    return;
  SSL_free(b->ssl);
  free(b);
  c->be = NULL;
}

static bool sock_reset(const mesh_conn_t *c) {
  return c->sys_errno == ECONNRESET || c->sys_errno == EPIPE;
}

/* The queued SSL error that tells what happened (the first one that
 * means something to us; else the first of all, in words). */
static void classify_ssl(mesh_conn_t *c, mesh__hsf_t *f) {
  unsigned long e, first = 0;
  f->kind = MESH__HSF_OTHER;
  while ((e = ERR_get_error()) != 0) {
    if (!first)
      first = e;
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
      continue;
    int r = ERR_GET_REASON(e);
    if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256) {
      f->kind = MESH__HSF_ALERT;
      f->alert = r - SSL_AD_REASON_OFFSET;
    } else if (r == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      f->kind = MESH__HSF_VERIFY;
      f->code = MESH_ERR_CERT_UNTRUSTED;
      snprintf(f->detail, sizeof f->detail, "%s",
               X509_verify_cert_error_string(
                   SSL_get_verify_result(((obe_conn_t *)c->be)->ssl)));
    } else if (r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      f->kind = MESH__HSF_NO_CERT;
    } else if (r == SSL_R_NO_SHARED_CIPHER) {
      f->kind = MESH__HSF_NO_CIPHER;
    } else if (r == SSL_R_UNSUPPORTED_PROTOCOL ||
               r == SSL_R_WRONG_VERSION_NUMBER ||
               r == SSL_R_VERSION_TOO_LOW) {
      f->kind = MESH__HSF_VERSION;
    } else if (r == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      f->kind = sock_reset(c) ? MESH__HSF_RESET : MESH__HSF_EOF;
    } else {
      continue;
    }
    break;
  }
  if (f->kind == MESH__HSF_OTHER) {
    if (first)
      ERR_error_string_n(first, f->detail, sizeof f->detail);
    else
      mesh__strlcpy(f->detail, "unknown OpenSSL error", sizeof f->detail);
  }
  ERR_clear_error();
}

static int handshake(mesh_conn_t *c, mesh__hsf_t *f) {
  obe_conn_t *b = c->be;
  ERR_clear_error();
  int r = SSL_do_handshake(b->ssl);
  if (r == 1)
    return MESH_OK;
  int e = SSL_get_error(b->ssl, r);
  if (e == SSL_ERROR_WANT_READ)
    return MESH_ERR_WANT_READ;
  if (e == SSL_ERROR_WANT_WRITE)
    return MESH_ERR_WANT_WRITE;
  memset(f, 0, sizeof *f);
  if (e == SSL_ERROR_SSL)
    classify_ssl(c, f);
  else if (e == SSL_ERROR_SYSCALL && sock_reset(c))
    f->kind = MESH__HSF_RESET;
  else if (e == SSL_ERROR_SYSCALL && c->sys_errno && !c->eof)
    f->kind = MESH__HSF_SYSCALL;
  else
    f->kind = MESH__HSF_EOF;
  ERR_clear_error();
  return MESH_ERR_TLS;
}

static bool resumed(const mesh_conn_t *c) {
  const obe_conn_t *b = c->be;
  return SSL_session_reused(b->ssl) == 1;
}

/* A fatal alert among the queued errors (after the handshake). */
static void note_alert(mesh_conn_t *c) {
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    int r = ERR_GET_REASON(e);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && r >= SSL_AD_REASON_OFFSET &&
        r < SSL_AD_REASON_OFFSET + 256) {
      c->rx_alert = r - SSL_AD_REASON_OFFSET;
      break;
    }
  }
}

/* SSL_read/SSL_write/SSL_shutdown result to a mesh code. */
static long io_code(mesh_conn_t *c, int r) {
  obe_conn_t *b = c->be;
  int e = SSL_get_error(b->ssl, r);
  if (e == SSL_ERROR_SSL)
    note_alert(c);
  err_reset();
  switch (e) {
  case SSL_ERROR_WANT_READ:
    return MESH_ERR_WANT_READ;
  case SSL_ERROR_WANT_WRITE:
    return MESH_ERR_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN:
    c->rx_close_notify = true;
    return 0;
  case SSL_ERROR_SYSCALL:
    if (sock_reset(c))
      return MESH_ERR_RESET;
    if (!c->eof)
      return MESH_ERR_IO;
    break; /* FIN: see the caller */
  default:
    if (!c->eof)
      return MESH_ERR_TLS;
    break; /* OpenSSL 3 reports FIN as "unexpected eof" */
  }
  return 1; /* EOF, decided by the caller */
}

static long be_read(mesh_conn_t *c, void *buf, size_t len) {
  obe_conn_t *b = c->be;
  err_reset();
  int r = SSL_read(b->ssl, buf, (int)len);
  if (r > 0)
    return r;
  long rc = io_code(c, r);
  if (rc != 1)
    return rc;
  /* A FIN inside a record is a truncation; between records, the end. */
  if (b->hdr_n > 0 || b->body_left > 0) {
    c->truncated = true;
    return MESH_ERR_TLS;
  }
  return 0;
}

static long be_write(mesh_conn_t *c, const void *buf, size_t len) {
  obe_conn_t *b = c->be;
  err_reset();
  int r = SSL_write(b->ssl, buf, (int)len);
  if (r > 0)
    return r;
  long rc = io_code(c, r);
  return rc == 1 || rc == 0 ? MESH_ERR_RESET : rc;
}

static int close_notify(mesh_conn_t *c) {
  obe_conn_t *b = c->be;
  err_reset();
  int r = SSL_shutdown(b->ssl);
  if (r >= 0)
    return MESH_OK;
  long rc = io_code(c, r);
  return rc == 1 || rc == 0 ? MESH_OK : (int)rc;
}

static long drain(mesh_conn_t *c) {
  char buf[256];
  return be_read(c, buf, sizeof buf); /* non-blocking: never waits */
}

/* SSL_MODE_RELEASE_BUFFERS (set on every SSL_CTX) frees the read and
 * write buffers (~17 KiB each) whenever they empty, so every request
 * mallocs and frees both on each side (~1,200 instructions).  A pooled
 * connection turns that off while it is in use and back on, with the
 * buffers freed, once the pool has held it idle a while (pool.c). */
static void buffers(mesh_conn_t *c, bool keep) {
  obe_conn_t *b = c->be;
  if (keep) {
    SSL_clear_mode(b->ssl, SSL_MODE_RELEASE_BUFFERS);
  } else {
    SSL_set_mode(b->ssl, SSL_MODE_RELEASE_BUFFERS);
    (void)SSL_free_buffers(b->ssl); /* 0: bytes pending, freed once read */
  }
}

/* OpenSSL has no call to send an alert on demand: the connection is
 * closed without one (the peer sees the close). */
static void send_alert(mesh_conn_t *c, int desc) {
  (void)c;
  (void)desc;
}

static size_t pending(const mesh_conn_t *c) {
  const obe_conn_t *b = c->be;
  if (!b)
    return 0;
  int n = SSL_pending(b->ssl);
  /* read-ahead bytes not yet decrypted count as unread too */
  return n > 0 ? (size_t)n : SSL_has_pending(b->ssl) ? 1 : 0;
}

/* IANA name with dashes, as mbedTLS names its suites
 * ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"). */
static const char *cipher(const mesh_conn_t *c) {
  obe_conn_t *b = c->be;
  const SSL_CIPHER *ci = SSL_get_current_cipher(b->ssl);
  const char *n = ci ? SSL_CIPHER_standard_name(ci) : NULL;
  if (!n)
    return "";
  mesh__strlcpy(b->cipher, n, sizeof b->cipher);
  for (char *p = b->cipher; *p; p++)
    if (*p == '_')
      *p = '-';
  return b->cipher;
}

static const char *version(const mesh_conn_t *c) {
  const obe_conn_t *b = c->be;
  return SSL_get_version(b->ssl);
}

static const char *alpn(const mesh_conn_t *c) {
  obe_conn_t *b = c->be;
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(b->ssl, &p, &n);
  if (!p || n == 0)
    return NULL;
  memcpy(b->alpn, p, n < sizeof b->alpn ? n : sizeof b->alpn - 1);
  b->alpn[n < sizeof b->alpn ? n : sizeof b->alpn - 1] = '\0';
  return b->alpn;
}

static int peer_chain(const mesh_conn_t *c, mesh__x509_chain_t **out) {
  const obe_conn_t *b = c->be;
  X509 *leaf = b ? SSL_get0_peer_certificate(b->ssl) : NULL;
  *out = NULL;
  if (!leaf)
    return MESH_ERR_NOT_FOUND;
  return obe_chain_of(leaf, SSL_get_peer_cert_chain(b->ssl), out);
}

/* Sessions reach the cache through the new-session callback (TLS 1.3
 * tickets come after the handshake), never by copying at the end. */
static mesh__be_sess_t *sess_get(mesh_conn_t *c) {
  (void)c;
  return NULL;
}

static bool sess_set(mesh_conn_t *c, mesh__be_sess_t *s) {
  obe_conn_t *b = c->be;
  return SSL_set_session(b->ssl, s->s) == 1;
}

static void sess_free(mesh__be_sess_t *s) {
  if (!s)
    return;
  SSL_SESSION_free(s->s);
  free(s);
}

const mesh__tls_backend_t mesh__tls_be = {
    .name = "openssl",
    .lib_version = lib_version,
    .has_tls13 = has_tls13,
    .init = be_init,
    .fini = be_fini,
    .gen_new = obe_gen_new,
    .gen_free = obe_gen_free,
    .conn_setup = conn_setup,
    .conn_free = conn_free,
    .handshake = handshake,
    .resumed = resumed,
    .read = be_read,
    .write = be_write,
    .close_notify = close_notify,
    .drain = drain,
    .buffers = buffers,
    .send_alert = send_alert,
    .pending = pending,
    .cipher = cipher,
    .version = version,
    .alpn = alpn,
    .peer_chain = peer_chain,
    .sess_get = sess_get,
    .sess_set = sess_set,
    .sess_free = sess_free,
};
