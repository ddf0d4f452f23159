/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: state of the mbedTLS backend (tls/be_mbedtls*.c). */
#ifndef MESH_TLS_BE_MBEDTLS_H
#define MESH_TLS_BE_MBEDTLS_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>

#include "tls/tls.h"

/* mbedTLS 3.x hides struct fields behind MBEDTLS_PRIVATE(). */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define MESH__MBEDTLS_FIELD(f) MBEDTLS_PRIVATE(f)
#else
#define MESH__MBEDTLS_FIELD(f) f
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
} mbe_gen_t;

/* c->be */
typedef struct mbe_conn {
  mbedtls_ssl_context ssl;
  mbedtls_ssl_config own_conf;   /* per-dial ALPN override only */
  bool own_conf_ready;
  bool vstarted;                 /* the verify callback ran */
  uint32_t vflags;               /* mbedTLS's verify flags over the chain */
  const mbedtls_x509_crt *vtop;  /* top of the chain mbedTLS built */
  /* Read-ahead: one recv takes whatever has arrived (several records);
   * mbedTLS then reads header and body from here.  Allocated while it
   * holds bytes only, so an idle connection keeps none. */
  unsigned char *ra;
  size_t ra_off, ra_len;
} mbe_conn_t;

struct mesh__be_sess {
  mbedtls_ssl_session s;
};

/** Client config with the library's policy (be_mbedtls.c). */
int mbe_setup_client(const mesh__tls_t *t, mesh__tlsgen_t *g,
                     mbedtls_ssl_config *conf, const char *const *alpn);

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
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
void mbe_export_keys(void *p, mbedtls_ssl_key_export_type type,
                     const unsigned char *secret, size_t slen,
                     const unsigned char client_random[32],
                     const unsigned char server_random[32],
                     mbedtls_tls_prf_types prf);
#endif

#endif /* MESH_TLS_BE_MBEDTLS_H */
