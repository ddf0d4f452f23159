/* SPDX-License-Identifier: Apache-2.0 */
/* Bare mbedTLS mTLS baseline; see baretls.h. */
#include "baretls.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/error.h>

static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0};

static int fail(const char *what, int rc) {
  char buf[128];
  mbedtls_strerror(rc, buf, sizeof buf);
  fprintf(stderr, "baretls: %s: %s (-0x%04x)\n", what, buf, -rc);
  return -1;
}

int baretls_conf_init(baretls_conf_t *c, int server, const char *ca,
                      const char *crt, const char *key) {
  memset(c, 0, sizeof *c);
  mbedtls_ssl_config_init(&c->conf);
  mbedtls_x509_crt_init(&c->ca);
  mbedtls_x509_crt_init(&c->crt);
  mbedtls_pk_init(&c->key);
  mbedtls_entropy_init(&c->entropy);
  mbedtls_ctr_drbg_init(&c->drbg);
  mbedtls_ssl_ticket_init(&c->ticket);
  int rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                 (const unsigned char *)"bench", 5);
  if (rc)
    return fail("drbg", rc);
  rc = mbedtls_x509_crt_parse_file(&c->ca, ca);
  if (rc != 0)
    return fail(ca, rc);
  rc = mbedtls_x509_crt_parse_file(&c->crt, crt);
  if (rc != 0)
    return fail(crt, rc);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  rc = mbedtls_pk_parse_keyfile(&c->key, key, NULL, mbedtls_ctr_drbg_random,
                                &c->drbg);
#else
  rc = mbedtls_pk_parse_keyfile(&c->key, key, NULL);
#endif
  if (rc != 0)
    return fail(key, rc);
  rc = mbedtls_ssl_config_defaults(
      &c->conf, server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
      MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc)
    return fail("defaults", rc);
  mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
  mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
  mbedtls_ssl_conf_ciphersuites(&c->conf, suites);
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
  mbedtls_ssl_conf_min_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
  mbedtls_ssl_conf_max_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
  mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);
#endif
  rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->crt, &c->key);
  if (rc != 0)
    return fail("own cert", rc);
  if (server) {
    rc = mbedtls_ssl_ticket_setup(&c->ticket, mbedtls_ctr_drbg_random,
                                  &c->drbg, MBEDTLS_CIPHER_AES_256_GCM, 3600);
    if (rc)
      return fail("ticket", rc);
    mbedtls_ssl_conf_session_tickets_cb(&c->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &c->ticket);
  }
  return 0;
}

void baretls_conf_free(baretls_conf_t *c) {
  mbedtls_ssl_ticket_free(&c->ticket);
  mbedtls_ssl_config_free(&c->conf);
  mbedtls_x509_crt_free(&c->ca);
  mbedtls_x509_crt_free(&c->crt);
  mbedtls_pk_free(&c->key);
  mbedtls_ctr_drbg_free(&c->drbg);
  mbedtls_entropy_free(&c->entropy);
}

int baretls_open(baretls_t *t, baretls_conf_t *c, int fd,
                 mbedtls_ssl_session *saved) {
  t->fd = fd;
  mbedtls_ssl_init(&t->ssl);
  int rc = mbedtls_ssl_setup(&t->ssl, &c->conf);
  if (rc)
    return fail("setup", rc);
  mbedtls_ssl_set_bio(&t->ssl, &t->fd, mbedtls_net_send, mbedtls_net_recv,
                      NULL);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  if (saved && saved->MBEDTLS_PRIVATE(ciphersuite))
#else
  if (saved && saved->ciphersuite)
#endif
    mbedtls_ssl_set_session(&t->ssl, saved);
  for (rc = mbedtls_ssl_handshake(&t->ssl); rc != 0;
       rc = mbedtls_ssl_handshake(&t->ssl)) {
    if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
      return fail("handshake", rc);
  }
  if (saved) {
    mbedtls_ssl_session_free(saved);
    mbedtls_ssl_session_init(saved);
    mbedtls_ssl_get_session(&t->ssl, saved);
  }
  return 0;
}

int baretls_write_all(baretls_t *t, const void *buf, size_t len) {
  const unsigned char *p = buf;
  while (len > 0) {
    int rc = mbedtls_ssl_write(&t->ssl, p, len);
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ)
      continue;
    if (rc <= 0)
      return -1;
    p += rc;
    len -= (size_t)rc;
  }
  return 0;
}

int baretls_read_exact(baretls_t *t, void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    int rc = mbedtls_ssl_read(&t->ssl, p, len);
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ)
      continue;
    if (rc <= 0)
      return -1;
    p += rc;
    len -= (size_t)rc;
  }
  return 0;
}

void baretls_close(baretls_t *t) {
  mbedtls_ssl_close_notify(&t->ssl);
  mbedtls_ssl_free(&t->ssl);
  close(t->fd);
}
