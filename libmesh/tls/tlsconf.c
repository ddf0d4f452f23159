/* TLS configurations, one generation per identity snapshot.
 *
 * Building a config costs a DRBG seed from the entropy pool and a warm-up
 * signature, so it happens once per credentials generation, not per
 * connection.  Handshakes take a reference on the generation they start
 * with; a rotation publishes a new one and the old one is freed when its
 * last connection closes. */
#include "tls/tls.h"

#include <mbedtls/error.h>
#include <stdlib.h>
#include <string.h>

/* ECDHE key exchange with AEAD ciphers only.  ECDSA first: SPIFFE SVIDs are
 * usually P-256 (SPIRE's default, and our dev CA's); the RSA-signed
 * variants keep SVIDs from RSA CAs working. */
static const int suites12[] = {
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
#if defined(MBEDTLS_CHACHAPOLY_C)
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
#endif
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
#if defined(MBEDTLS_CHACHAPOLY_C)
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
#endif
    0,
};

/* mbedTLS 3.2 introduced the tls_version setters (and TLS 1.3 servers). */
static void set_versions(const mesh__tls_t *t, mbedtls_ssl_config *conf) {
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
  mbedtls_ssl_conf_min_tls_version(conf, t->set.min_version == MESH__TLS_V13
                                             ? MBEDTLS_SSL_VERSION_TLS1_3
                                             : MBEDTLS_SSL_VERSION_TLS1_2);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
  mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
#else
  mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
#else
  (void)t;
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

/* Policy shared by both ends. */
static int setup_common(const mesh__tls_t *t, mesh__tlsgen_t *g,
                        mbedtls_ssl_config *conf, int endpoint,
                        const char *const *alpn) {
  int ret = mbedtls_ssl_config_defaults(conf, endpoint,
                                        MBEDTLS_SSL_TRANSPORT_STREAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0)
    return ret;
  set_versions(t, conf);
  mbedtls_ssl_conf_ciphersuites(conf, suites12);
  mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &g->drbg);
  /* Mutual TLS both ways; mesh__verify_cb makes the final decision. */
  mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
#if defined(MBEDTLS_SSL_RENEGOTIATION)
  mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
  mbedtls_ssl_conf_ca_chain(conf, &g->creds->all_roots, NULL);
  ret = mbedtls_ssl_conf_own_cert(conf, &g->creds->chain, &g->creds->key);
  if (ret != 0)
    return ret;
  if (alpn && alpn[0])
    ret = mbedtls_ssl_conf_alpn_protocols(conf, (const char **)alpn);
  return ret;
}

int mesh__tlsgen_setup_client(const mesh__tls_t *t, mesh__tlsgen_t *g,
                              mbedtls_ssl_config *conf,
                              const char *const *alpn) {
  int ret = setup_common(t, g, conf, MBEDTLS_SSL_IS_CLIENT, alpn);
  if (ret != 0)
    return ret;
  mbedtls_ssl_conf_session_tickets(conf, t->set.resumption
                                             ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                             : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
  return 0;
}

static int setup_server(const mesh__tls_t *t, mesh__tlsgen_t *g) {
  int ret = setup_common(t, g, &g->server, MBEDTLS_SSL_IS_SERVER,
                         (const char *const *)t->set.alpn);
  if (ret != 0 || !t->set.resumption)
    return ret;
  /* New ticket keys per generation: after a server rotation, old tickets
   * no longer decrypt and clients get a full handshake with the new SVID.
   * mbedTLS also rotates the keys every ticket lifetime. */
  ret = mbedtls_ssl_ticket_setup(&g->ticket, mbedtls_ctr_drbg_random,
                                 &g->drbg, MBEDTLS_CIPHER_AES_256_GCM,
                                 (uint32_t)t->set.ticket_lifetime_s);
  if (ret != 0)
    return ret;
  mbedtls_ssl_conf_session_tickets_cb(&g->server, mbedtls_ssl_ticket_write,
                                      mbedtls_ssl_ticket_parse, &g->ticket);
  return 0;
}

/* Sign once before the key is shared between threads: mbedTLS may fill
 * lazily computed tables on first use, which must not race. */
static int warm_up(mesh__tlsgen_t *g) {
  unsigned char hash[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t siglen = 0;
  memset(hash, 0x5a, sizeof hash);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  return mbedtls_pk_sign(&g->creds->key, MBEDTLS_MD_SHA256, hash, sizeof hash,
                         sig, sizeof sig, &siglen, mbedtls_ctr_drbg_random,
                         &g->drbg);
#else
  return mbedtls_pk_sign(&g->creds->key, MBEDTLS_MD_SHA256, hash, sizeof hash,
                         sig, &siglen, mbedtls_ctr_drbg_random, &g->drbg);
#endif
}

static void gen_free(mesh__tlsgen_t *g) {
  mbedtls_ssl_config_free(&g->client);
  mbedtls_ssl_config_free(&g->server);
  mbedtls_ssl_ticket_free(&g->ticket);
  mbedtls_ctr_drbg_free(&g->drbg);
  mesh__creds_release(g->creds);
  free(g);
}

static int gen_build(mesh_t *m, mesh__creds_t *creds, mesh__tlsgen_t **out,
                     mesh_status_t *st) {
  mesh__tls_t *t = m->tls;
  mesh__tlsgen_t *g = calloc(1, sizeof *g);
  if (!g) {
    mesh__creds_release(creds);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  atomic_init(&g->refs, 1);
  g->creds = creds;
  g->generation = creds->generation;
  mbedtls_ctr_drbg_init(&g->drbg);
  mbedtls_ssl_config_init(&g->client);
  mbedtls_ssl_config_init(&g->server);
  mbedtls_ssl_ticket_init(&g->ticket);
  static const unsigned char pers[] = "libmesh tls";
  const char *what = "seeding the DRBG";
  int ret = mbedtls_ctr_drbg_seed(&g->drbg, mbedtls_entropy_func, &t->entropy,
                                  pers, sizeof pers - 1);
  if (ret == 0) {
    what = "checking the SVID key";
    ret = warm_up(g);
  }
  if (ret == 0) {
    what = "building the client config";
    ret = mesh__tlsgen_setup_client(t, g, &g->client,
                                    (const char *const *)t->set.alpn);
  }
  if (ret == 0) {
    what = "building the server config";
    ret = setup_server(t, g);
  }
  if (ret != 0) {
    char err[128];
    mbedtls_strerror(ret, err, sizeof err);
    gen_free(g);
    return mesh__fail(st, MESH_ERR_TLS, "TLS setup failed %s: %s (-0x%04x)",
                      what, err, (unsigned)-ret);
  }
  *out = g;
  return MESH_OK;
}

int mesh__tlsgen_acquire(mesh_t *m, mesh__tlsgen_t **out, mesh_status_t *st) {
  *out = NULL;
  if (!m->tls)
    return mesh__fail(st, MESH_ERR_INTERNAL, "the tls part is not set up");
  mesh__tls_t *t = m->tls;
  /* Fast path: one atomic read tells whether the current generation is
   * still the identity's. */
  uint64_t want = mesh__identity_generation(m);
  pthread_mutex_lock(&t->mu);
  if (t->gen && want && t->gen->generation == want) {
    atomic_fetch_add(&t->gen->refs, 1);
    *out = t->gen;
    pthread_mutex_unlock(&t->mu);
    return MESH_OK;
  }
  pthread_mutex_unlock(&t->mu);
  mesh__creds_t *creds = mesh__creds_acquire(m);
  if (!creds)
    return mesh__fail(st, MESH_ERR_SVID,
                      "no SVID loaded: mTLS needs the identity section "
                      "(SVID and trust bundle)");
  pthread_mutex_lock(&t->mu);
  mesh__tlsgen_t *g = t->gen;
  if (g && g->generation == creds->generation) {
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&t->mu);
    mesh__creds_release(creds);
    *out = g;
    return MESH_OK;
  }
  /* Build under the lock: rotations are rare and this keeps concurrent
   * dials from seeding the same generation twice. */
  mesh__tlsgen_t *ng = NULL;
  int rc = gen_build(m, creds, &ng, st); /* takes the creds reference */
  if (rc != MESH_OK) {
    pthread_mutex_unlock(&t->mu);
    return rc;
  }
  t->gen = ng;
  atomic_fetch_add(&ng->refs, 1);
  pthread_mutex_unlock(&t->mu);
  mesh__tlsgen_release(g);
  mesh__log(m, MESH_LOG_INFO, "tls_config", "generation=%llu id=%s",
            (unsigned long long)ng->generation, ng->creds->id);
  *out = ng;
  return MESH_OK;
}

void mesh__tlsgen_release(mesh__tlsgen_t *g) {
  if (!g)
    return;
  if (atomic_fetch_sub(&g->refs, 1) == 1)
    gen_free(g);
}
