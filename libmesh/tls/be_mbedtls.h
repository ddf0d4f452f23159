/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: state of the mbedTLS backend (tls/be_mbedtls*.c). */
#ifndef MESH_TLS_BE_MBEDTLS_H
#define MESH_TLS_BE_MBEDTLS_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>
#include <pthread.h>

#include "tls/tls.h"

/* mbedTLS 3.x hides struct fields behind MBEDTLS_PRIVATE(). */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define MESH__MBEDTLS_FIELD(f) MBEDTLS_PRIVATE(f)
#else
#define MESH__MBEDTLS_FIELD(f) f
#endif

#if MBEDTLS_VERSION_NUMBER >= 0x03020000 &&                                    \
    defined(MBEDTLS_SSL_PROTO_TLS1_3) &&                                       \
    defined(MBEDTLS_SSL_SESSION_TICKETS) &&                                    \
    defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
/* Client leaves of the TLS 1.3 tickets a server issued (be_mbedtls.c). */
#define MBE_TICKET_PEERS 256
typedef struct mbe_tpeer {
  unsigned char id[32]; /* SHA-256 of the ticket */
  unsigned char *der;   /* the client's leaf */
  size_t len;
} mbe_tpeer_t;
#endif

/* t->be */
typedef struct mbe_tls {
  mbedtls_entropy_context entropy; /* thread-safe (THREADING_C) */
} mbe_tls_t;

/* g->be */
typedef struct mbe_gen {
  mbedtls_ctr_drbg_context drbg; /* seeded once; mutex inside (THREADING_C) */
  mbedtls_ssl_config client;
  mbedtls_ssl_config server;
  mbedtls_ssl_ticket_context ticket; /* server session tickets */
#ifdef MBE_TICKET_PEERS
  pthread_mutex_t tmu; /* guards tpeers, tnext */
  mbe_tpeer_t *tpeers; /* ring of MBE_TICKET_PEERS, NULL if no tickets */
  size_t tnext;
#endif
} mbe_gen_t;

/* c->be */
typedef struct mbe_conn {
  mbedtls_ssl_context ssl;
  mbedtls_ssl_config own_conf;   /* per-dial ALPN override only */
  bool own_conf_ready;
  bool vstarted;                 /* the verify callback ran */
  uint32_t vflags;               /* mbedTLS's verify flags over the chain */
  const mbedtls_x509_crt *vtop;  /* top of the chain mbedTLS built */
  bool mode_set;                 /* server: version known, authmode chosen */
  bool defer;                    /* server, TLS 1.3: we refuse, not mbedTLS */
  bool cert_asked;               /* server: a client Certificate was read */
  bool got_first;                /* the first recv is done */
  unsigned char *tleaf;          /* server: client leaf of a TLS 1.3 ticket */
  size_t tleaf_len;
  /* Read-ahead: one recv takes whatever has arrived (several records);
   * mbedTLS then reads header and body from here.  Allocated while it
   * holds bytes only, so an idle connection keeps none. */
  unsigned char *ra;
  size_t ra_off, ra_len;
  /* Handshake flight not yet sent (be_mbedtls_bio.c). */
  unsigned char *wb;
  size_t wb_off, wb_len;
} mbe_conn_t;

struct mesh__be_sess {
  mbedtls_ssl_session s;
};

/** Client config with the library's policy (be_mbedtls.c). */
int mbe_setup_client(const mesh__tls_t *t, mesh__tlsgen_t *g,
                     mbedtls_ssl_config *conf, const char *const *alpn);

/* be_mbedtls_bio.c: the BIO; mbe_flush sends a held flight (0, or an
 * mbedTLS error such as MBEDTLS_ERR_SSL_WANT_WRITE). */
int mbe_bio_send(void *ctx, const unsigned char *buf, size_t len);
int mbe_bio_recv(void *ctx, unsigned char *buf, size_t len);
int mbe_flush(mesh_conn_t *c);

/* be_mbedtls.c */
const char *mbe_lib_version(void);
bool mbe_has_tls13(void);
int mbe_init(mesh__tls_t *t, mesh_status_t *st);
void mbe_fini(mesh__tls_t *t);
int mbe_gen_new(mesh__tls_t *t, mesh__tlsgen_t *g, mesh_status_t *st);
void mbe_gen_free(mesh__tlsgen_t *g);
mesh__be_sess_t *mbe_sess_get(mesh_conn_t *c);
bool mbe_sess_set(mesh_conn_t *c, mesh__be_sess_t *s);
void mbe_sess_free(mesh__be_sess_t *s);
#ifdef MBE_TICKET_PEERS
/** Move the leaf of the ticket this thread last parsed into *der. */
void mbe_ticket_leaf_take(unsigned char **der, size_t *len);
/** The leaf of the resumed session being handshaken (NULL: none). */
void mbe_ticket_leaf_use(const unsigned char *der, size_t len);
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
void mbe_export_keys(void *p, mbedtls_ssl_key_export_type type,
                     const unsigned char *secret, size_t slen,
                     const unsigned char client_random[32],
                     const unsigned char server_random[32],
                     mbedtls_tls_prf_types prf);
#endif

#endif /* MESH_TLS_BE_MBEDTLS_H */
