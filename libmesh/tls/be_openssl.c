/* SPDX-License-Identifier: Apache-2.0 */
/* OpenSSL 3 backend: per-generation SSL_CTXs, the socket BIO, the peer
 * check hook and the client session hook.
 *
 * The credentials come from identity/ as OpenSSL objects (x509_openssl.c
 * behind the X.509 seam): the chain, key and roots are handed over by
 * reference, and the peer's X509s go to the shared check the same way.
 * OpenSSL's own chain verification is replaced
 * (SSL_CTX_set_cert_verify_callback) by the shared decision,
 * mesh__verify_chain(), so the X.509-SVID rules, codes and messages are
 * the same as with mbedTLS. */
#include "tls/be_openssl.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void obe_err_string(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (e)
    ERR_error_string_n(e, buf, len);
  else
    mesh__strlcpy(buf, "unknown OpenSSL error", len);
  ERR_clear_error();
}

/* ---- BIO over the connection's socket ----------------------------------- */

static BIO_METHOD *bio_meth;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Follow TLS record boundaries through the bytes handed to OpenSSL. */
static void track(obe_conn_t *b, const unsigned char *p, size_t n) {
  while (n > 0) {
    if (b->body_left > 0) {
      size_t k = n < b->body_left ? n : b->body_left;
      b->body_left -= k;
      p += k;
      n -= k;
      continue;
    }
    b->hdr[b->hdr_n++] = *p++;
    n--;
    if (b->hdr_n == 5) {
      b->body_left = (size_t)b->hdr[3] << 8 | b->hdr[4];
      b->hdr_n = 0;
    }
  }
}

static int bio_read(BIO *bio, char *buf, int len) {
  mesh_conn_t *c = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  for (;;) {
    ssize_t n = recv(c->fd, buf, (size_t)len, mesh__conn_io_flags(c, true));
    if (n > 0) {
      mesh__conn_note_first(c, (unsigned char *)buf, (size_t)n);
      if (c->be)
        track(c->be, (unsigned char *)buf, (size_t)n);
      return (int)n;
    }
    if (n == 0) {
      c->eof = true;
      return 0;
    }
    if (errno == EINTR)
      continue;
    c->sys_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_read(bio);
    return -1;
  }
}

static int bio_write(BIO *bio, const char *buf, int len) {
  mesh_conn_t *c = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  for (;;) {
    ssize_t n = send(c->fd, buf, (size_t)len,
                     MSG_NOSIGNAL | mesh__conn_io_flags(c, false));
    if (n >= 0)
      return (int)n;
    if (errno == EINTR)
      continue;
    c->sys_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_write(bio);
    return -1;
  }
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  mesh_conn_t *c = BIO_get_data(bio);
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF:
    return c && c->eof;
  default:
    return 0;
  }
}

static int bio_create(BIO *bio) {
  BIO_set_init(bio, 1);
  return 1;
}

static void bio_meth_init(void) {
  bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                          "libmesh socket");
  if (!bio_meth)
    return;
  BIO_meth_set_read(bio_meth, bio_read);
  BIO_meth_set_write(bio_meth, bio_write);
  BIO_meth_set_ctrl(bio_meth, bio_ctrl);
  BIO_meth_set_create(bio_meth, bio_create);
}

BIO *obe_bio_new(mesh_conn_t *c) {
  pthread_once(&bio_once, bio_meth_init);
  if (!bio_meth)
    return NULL;
  BIO *bio = BIO_new(bio_meth);
  if (bio)
    BIO_set_data(bio, c);
  return bio;
}

/* ---- peer check hook ------------------------------------------------------ */

/* X509 error that makes OpenSSL send the alert of the shared table
 * (mesh__tls_refusal_alert; OpenSSL's ssl_x509err2alert). */
static int x509err_for(int code) {
  switch (mesh__tls_refusal_alert(code)) {
  case 45:
    return X509_V_ERR_CERT_HAS_EXPIRED; /* certificate_expired */
  case 48:
    return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY; /* unknown_ca */
  default:
    return X509_V_ERR_CERT_REJECTED; /* bad_certificate */
  }
}

int obe_chain_of(X509 *leaf, STACK_OF(X509) *untrusted,
                 mesh__x509_chain_t **out) {
  *out = NULL;
  if (!leaf)
    return MESH_ERR_NOT_FOUND;
  mesh__x509_chain_t *ch = mesh__x509_chain_new();
  if (!ch || mesh__x509_chain_add_native(ch, leaf) != 0) {
    mesh__x509_chain_free(ch);
    return MESH_ERR_NOMEM;
  }
  *out = ch;
  for (int i = 0; untrusted && i < sk_X509_num(untrusted); i++) {
    X509 *x = sk_X509_value(untrusted, i);
    if (X509_cmp(x, leaf) == 0)
      continue;
    if (mesh__x509_chain_add_native(ch, x) != 0)
      return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

/* The root of the chain X509_verify_cert built (borrowed from ctx), or
 * NULL. */
static const mesh__x509_t *top_of(X509_STORE_CTX *ctx) {
  STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
  int n = built ? sk_X509_num(built) : 0;
  if (n < 2)
    return NULL; /* a leaf alone is never its own trust anchor here */
  return mesh__x509_from_native(sk_X509_value(built, n - 1));
}

static int cert_verify_cb(X509_STORE_CTX *ctx, void *arg) {
  (void)arg;
  SSL *ssl = X509_STORE_CTX_get_ex_data(ctx,
                                        SSL_get_ex_data_X509_STORE_CTX_idx());
  mesh_conn_t *c = ssl ? SSL_get_app_data(ssl) : NULL;
  if (!c) {
    X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  mesh__x509_chain_t *chain = NULL;
  int rc = obe_chain_of(X509_STORE_CTX_get0_cert(ctx),
                        X509_STORE_CTX_get0_untrusted(ctx), &chain);
  if (rc == MESH_OK) {
    /* Fast path, as with mbedTLS: OpenSSL verifies the chain against the
     * union of the bundles (the context's store); when the root it reached
     * is of the peer's own trust domain, the shared check only applies
     * the SVID rules.  Otherwise it decides (and words) in full. */
    bool fast = X509_verify_cert(ctx) == 1 && top_of(ctx) != NULL;
    rc = mesh__verify_chain(c, chain, fast, fast ? top_of(ctx) : NULL);
  } else {
    c->verified = true;
    c->verify_code = MESH_ERR_SVID;
    snprintf(c->errmsg, sizeof c->errmsg,
             "peer %s: certificate could not be parsed", c->peer_addr);
    rc = MESH_ERR_SVID;
  }
  mesh__x509_chain_free(chain);
  if (rc == MESH_OK) {
    X509_STORE_CTX_set_error(ctx, X509_V_OK);
    return 1;
  }
  X509_STORE_CTX_set_error(ctx, x509err_for(rc));
  return 0;
}

/* ---- client sessions: TLS 1.3 tickets arrive after the handshake -------- */

static int new_session_cb(SSL *ssl, SSL_SESSION *sess) {
  mesh_conn_t *c = SSL_get_app_data(ssl);
  if (!c || !c->m->tls->set.resumption || !c->gen)
    return 0;
  mesh__be_sess_t *s = malloc(sizeof *s);
  if (!s)
    return 0;
  s->s = sess; /* returning 1 keeps OpenSSL's reference for us */
  mesh__sesscache_put(&c->m->tls->cache, c, s);
  if (SSL_is_init_finished(ssl))
    c->got_ticket = true;
  return 1;
}

/* Server preference, as mbedTLS does; no overlap is fatal
 * (no_application_protocol). */
static int alpn_select_cb(SSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg) {
  (void)ssl;
  obe_gen_t *b = arg;
  unsigned char *o = NULL;
  if (SSL_select_next_proto(&o, outlen, b->alpn_wire,
                            (unsigned int)b->alpn_len, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}

size_t obe_alpn_wire(const char *const *alpn, unsigned char *out,
                     size_t len) {
  size_t off = 0;
  for (size_t i = 0; alpn && alpn[i]; i++) {
    size_t n = strlen(alpn[i]);
    if (n == 0 || n > 255 || off + 1 + n > len)
      return 0;
    out[off++] = (unsigned char)n;
    memcpy(out + off, alpn[i], n);
    off += n;
  }
  return off;
}

/* SSLKEYLOGFILE: OpenSSL formats the NSS key log lines itself. */
static void keylog_cb(const SSL *ssl, const char *line) {
  mesh_conn_t *c = SSL_get_app_data(ssl);
  if (c)
    mesh__tls_keylog_line(c->m->tls, line);
}

/* ---- per-generation contexts --------------------------------------------- */

/* The own SVID chain and key: identity's OpenSSL objects, by reference. */
static int use_creds(SSL_CTX *ctx, const mesh__creds_t *cr) {
  STACK_OF(X509) *sk = mesh__x509_chain_native(cr->chain);
  EVP_PKEY *k = mesh__x509_key_native(cr->key);
  if (!sk || sk_X509_num(sk) < 1 || !k)
    return -1;
  for (int i = 0; i < sk_X509_num(sk); i++) {
    X509 *x = sk_X509_value(sk, i);
    int ok = i == 0 ? SSL_CTX_use_certificate(ctx, x)
                    : (int)SSL_CTX_add1_chain_cert(ctx, x);
    if (ok != 1)
      return -1;
  }
  int ok = SSL_CTX_use_PrivateKey(ctx, k);
  return ok == 1 && SSL_CTX_check_private_key(ctx) == 1 ? 0 : -1;
}

/* Every bundle's roots into the context's store: only for the fast path
 * of cert_verify_cb (the decision is always the shared one). */
static int add_roots(SSL_CTX *ctx, const mesh__creds_t *cr) {
  X509_STORE *st = SSL_CTX_get_cert_store(ctx);
  STACK_OF(X509) *sk = mesh__x509_chain_native(cr->all_roots);
  for (int i = 0; sk && i < sk_X509_num(sk); i++)
    if (X509_STORE_add_cert(st, sk_X509_value(sk, i)) != 1)
      return -1;
  return 0;
}

/* The mesh's suites (tls/suites.c) as an OpenSSL cipher string: TLS 1.2
 * names through OPENSSL_cipher_name() (IANA name in, OpenSSL's out); TLS
 * 1.3 names are the IANA names.  A name OpenSSL does not know is left
 * out (an empty TLS 1.2 list then fails SSL_CTX_set_cipher_list). */
static void suite_list(const char *const *names, bool tls13, char *out,
                       size_t len) {
  size_t off = 0;
  out[0] = '\0';
  for (size_t i = 0; names[i]; i++) {
    char iana[64];
    mesh__strlcpy(iana, names[i], sizeof iana);
    for (char *p = iana; *p; p++)
      if (*p == '-')
        *p = '_';
    const char *n = tls13 ? iana : OPENSSL_cipher_name(iana);
    if (!n || strcmp(n, "(NONE)") == 0)
      continue;
    int k = snprintf(out + off, len - off, "%s%s", off ? ":" : "", n);
    if (k < 0 || (size_t)k >= len - off) {
      out[off] = '\0';
      return;
    }
    off += (size_t)k;
  }
}

/* TLS 1.2: the server's order wins, as with the mbedTLS backend and in
 * Envoy's server contexts (SSL_OP_CIPHER_SERVER_PREFERENCE).  TLS 1.3:
 * the client's, as with mbedTLS 3 (which has no server preference in
 * 1.3), so the option cannot go on the SSL_CTX (OpenSSL applies it to both
 * versions).  It is set per connection here: OpenSSL calls the
 * certificate callback once the version is known, after it chose a TLS
 * 1.3 suite and before it chooses a TLS 1.2 one
 * (tls_post_process_client_hello); test_tls_accept checks both. */
static int server_pref_cb(SSL *ssl, void *arg) {
  (void)arg;
  if (SSL_version(ssl) < TLS1_3_VERSION)
    SSL_set_options(ssl, SSL_OP_CIPHER_SERVER_PREFERENCE);
  return 1;
}

static SSL_CTX *ctx_common(const mesh__tls_t *t, mesh__tlsgen_t *g,
                           bool server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx)
    return NULL;
  int minv = t->set.min_version == MESH__TLS_V13 ? TLS1_3_VERSION
                                                 : TLS1_2_VERSION;
  int maxv = t->set.max_version == MESH__TLS_V12 ? TLS1_2_VERSION
                                                 : TLS1_3_VERSION;
  char s12[512], s13[256];
  suite_list(mesh__tls_suites12, false, s12, sizeof s12);
  suite_list(mesh__tls_suites13, true, s13, sizeof s13);
  if (SSL_CTX_set_min_proto_version(ctx, minv) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, maxv) != 1 ||
      SSL_CTX_set_cipher_list(ctx, s12) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, s13) != 1 ||
      use_creds(ctx, g->creds) != 0) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (t->set.resumption ? 0 : SSL_OP_NO_TICKET));
  /* one read per batch of arrived records */
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  /* Mutual TLS both ways; the shared check makes the decision. */
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     NULL);
  SSL_CTX_set_cert_verify_callback(ctx, cert_verify_cb, NULL);
  if (add_roots(ctx, g->creds) != 0) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (t->keylog_fd >= 0)
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
  return ctx;
}

static int setup_server(const mesh__tls_t *t, mesh__tlsgen_t *g) {
  obe_gen_t *b = g->be;
  b->server = ctx_common(t, g, true);
  if (!b->server)
    return -1;
  static const unsigned char sid[] = "libmesh";
  SSL_CTX_set_session_id_context(b->server, sid, sizeof sid - 1);
  SSL_CTX_set_cert_cb(b->server, server_pref_cb, NULL);
  /* Stateless tickets only, keys new per generation (a new SSL_CTX): after
   * a server rotation old tickets no longer decrypt. */
  SSL_CTX_set_session_cache_mode(b->server, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(b->server, t->set.ticket_lifetime_s);
  /* TLS 1.3: one ticket per connection, not OpenSSL's 2: our clients keep
   * one session per target (sesscache.c) and each ticket costs them ~116k
   * instructions (notes: osslcost.md, closeres.md). */
  SSL_CTX_set_num_tickets(b->server, t->set.resumption ? 1 : 0);
  b->alpn_len = obe_alpn_wire((const char *const *)t->set.alpn, b->alpn_wire,
                              sizeof b->alpn_wire);
  if (b->alpn_len)
    SSL_CTX_set_alpn_select_cb(b->server, alpn_select_cb, b);
  return 0;
}

static int setup_client(const mesh__tls_t *t, mesh__tlsgen_t *g) {
  obe_gen_t *b = g->be;
  b->client = ctx_common(t, g, false);
  if (!b->client)
    return -1;
  SSL_CTX_set_session_cache_mode(b->client, SSL_SESS_CACHE_CLIENT |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(b->client, new_session_cb);
  unsigned char wire[MESH__ALPN_MAX * 256];
  size_t n = obe_alpn_wire((const char *const *)t->set.alpn, wire, sizeof wire);
  if (n && SSL_CTX_set_alpn_protos(b->client, wire, (unsigned)n) != 0)
    return -1;
  return 0;
}

void obe_gen_free(mesh__tlsgen_t *g) {
  obe_gen_t *b = g->be;
  if (!b)
    return;
  SSL_CTX_free(b->client);
  SSL_CTX_free(b->server);
  free(b);
  g->be = NULL;
}

int obe_gen_new(mesh__tls_t *t, mesh__tlsgen_t *g, mesh_status_t *st) {
  obe_gen_t *b = calloc(1, sizeof *b);
  if (!b)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  g->be = b;
  ERR_clear_error();
  const char *what = "building the client config";
  int ret = setup_client(t, g);
  if (ret == 0) {
    what = "building the server config";
    ret = setup_server(t, g);
  }
  if (ret != 0) {
    char err[160];
    obe_err_string(err, sizeof err);
    obe_gen_free(g);
    return mesh__fail(st, MESH_ERR_TLS, "TLS setup failed %s: %s", what,
                      err);
  }
  return MESH_OK;
}
