/* SPDX-License-Identifier: Apache-2.0 */
/* Bare mbedTLS mTLS (no mesh logic): baseline B of the benchmarks.  The same
 * suites libmesh uses (ECDHE-ECDSA AES-128-GCM, TLS 1.2, P-256), with no
 * discovery, balancing, SPIFFE checks, metrics or tracing. */
#ifndef MESH_BENCH_BARETLS_H
#define MESH_BENCH_BARETLS_H

#include <stddef.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

typedef struct baretls_conf {
  mbedtls_ssl_config conf;
  mbedtls_x509_crt ca, crt;
  mbedtls_pk_context key;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_ssl_ticket_context ticket;
} baretls_conf_t;

typedef struct baretls {
  mbedtls_ssl_context ssl;
  int fd;
} baretls_t;

/* server != 0: server side (tickets on).  Returns 0 or -1 (message printed). */
int baretls_conf_init(baretls_conf_t *c, int server, const char *ca,
                      const char *crt, const char *key);
void baretls_conf_free(baretls_conf_t *c);
/* Handshake on a connected fd.  saved: optional session to resume (client),
 * updated after the handshake.  Returns 0 or -1. */
int baretls_open(baretls_t *t, baretls_conf_t *c, int fd,
                 mbedtls_ssl_session *saved);
int baretls_write_all(baretls_t *t, const void *buf, size_t len);
int baretls_read_exact(baretls_t *t, void *buf, size_t len);
void baretls_close(baretls_t *t);

#endif
