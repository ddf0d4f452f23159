/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: state of the OpenSSL 3 backend (tls/be_openssl*.c). */
#ifndef MESH_TLS_BE_OPENSSL_H
#define MESH_TLS_BE_OPENSSL_H

#include <openssl/ssl.h>

#include "tls/tls.h"

/* g->be */
typedef struct obe_gen {
  SSL_CTX *client;
  SSL_CTX *server;
  unsigned char alpn_wire[MESH__ALPN_MAX * 256]; /* server's list, wire form */
  size_t alpn_len;
} obe_gen_t;

/* c->be */
typedef struct obe_conn {
  SSL *ssl;
  /* Record framing of the bytes read so far, to tell a FIN between
   * records (clean end) from one inside a record (truncation). */
  unsigned char hdr[5];
  size_t hdr_n;
  size_t body_left;
  char cipher[64];
  char alpn[256];
} obe_conn_t;

struct mesh__be_sess {
  SSL_SESSION *s;
};

/* be_openssl.c */
int obe_gen_new(mesh__tls_t *t, mesh__tlsgen_t *g, mesh_status_t *st);
void obe_gen_free(mesh__tlsgen_t *g);
/** Wire-form ALPN list ("\x02h2\x08http/1.1") from a NULL-terminated list.
 *  @return its length, 0 if none or too long. */
size_t obe_alpn_wire(const char *const *alpn, unsigned char *out, size_t len);
/** BIO over c's socket (sets c->sys_errno, c->eof, first bytes). */
BIO *obe_bio_new(mesh_conn_t *c);
/** The peer's chain as presented (leaf first; untrusted may or may not
 *  start with the leaf) as a new identity chain in *out (references to the
 *  X509s, no copy; free with mesh__x509_chain_free).  @return MESH_OK,
 *  MESH_ERR_NOT_FOUND (no leaf), MESH_ERR_NOMEM. */
int obe_chain_of(X509 *leaf, STACK_OF(X509) *untrusted,
                 mesh__x509_chain_t **out);
/** "error:...:reason" of the oldest queued error (then cleared). */
void obe_err_string(char *buf, size_t len);

#endif /* MESH_TLS_BE_OPENSSL_H */
