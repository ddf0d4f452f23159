/* SPDX-License-Identifier: Apache-2.0 */
/* mbedTLS backend (2.28 and 3.x): process state, per-generation configs,
 * saved sessions.  Building a config costs a DRBG seed from the entropy
 * pool and a warm-up signature, so it happens once per credentials
 * generation, not per connection. */
#include "tls/be_mbedtls.h"

#include <mbedtls/error.h>
#include <mbedtls/sha256.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mbe_lib_version(void) { return "mbedTLS " MBEDTLS_VERSION_STRING; }

bool mbe_has_tls13(void) {
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
  return true;
#else
  return false;
#endif
}

int mbe_init(mesh__tls_t *t, mesh_status_t *st) {
  mbe_tls_t *b = calloc(1, sizeof *b);
  if (!b)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mbedtls_entropy_init(&b->entropy);
  t->be = b;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 &&                                    \
    (defined(MBEDTLS_USE_PSA_CRYPTO) || defined(MBEDTLS_SSL_PROTO_TLS1_3))
  /* TLS 1.3 in mbedTLS 3.x runs on PSA; idempotent. */
  if (psa_crypto_init() != PSA_SUCCESS)
    return mesh__fail(st, MESH_ERR_TLS, "psa_crypto_init failed");
#endif
  return MESH_OK;
}

void mbe_fini(mesh__tls_t *t) {
  mbe_tls_t *b = t->be;
  if (!b)
    return;
  mbedtls_entropy_free(&b->entropy);
  free(b);
  t->be = NULL;
}

/* The mesh's suites (tls/suites.c) as mbedTLS ids, built once: TLS 1.3
 * first where this mbedTLS has it (one list serves both versions), then
 * TLS 1.2.  A suite the library was built without (no id for its name,
 * e.g. ChaCha20 without MBEDTLS_CHACHAPOLY_C) is left out. */
static int suites[16];
static pthread_once_t suites_once = PTHREAD_ONCE_INIT;

static size_t add_suites(const char *const *names, const char *prefix,
                         size_t n) {
  for (size_t i = 0; names[i] && n + 1 < sizeof suites / sizeof *suites;
       i++) {
    /* "TLS-..." as mbedTLS names 1.2 suites; mbedTLS 3 spells 1.3 suites
     * "TLS1-3-AES-128-GCM-SHA256" */
    char name[64];
    snprintf(name, sizeof name, "%s%s", prefix, names[i] + 4);
    int id = mbedtls_ssl_get_ciphersuite_id(name);
    if (id != 0)
      suites[n++] = id;
  }
  return n;
}

static void suites_init(void) {
  size_t n = 0;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
  n = add_suites(mesh__tls_suites13, "TLS1-3-", n);
#endif
  n = add_suites(mesh__tls_suites12, "TLS-", n);
  suites[n] = 0;
}

/* mbedTLS 3.2 introduced the tls_version setters (and TLS 1.3 servers). */
static void set_versions(const mesh__tls_t *t, mbedtls_ssl_config *conf) {
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
  mbedtls_ssl_conf_min_tls_version(conf, t->set.min_version == MESH__TLS_V13
                                             ? MBEDTLS_SSL_VERSION_TLS1_3
                                             : MBEDTLS_SSL_VERSION_TLS1_2);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
  mbedtls_ssl_conf_max_tls_version(conf, t->set.max_version == MESH__TLS_V13
                                             ? MBEDTLS_SSL_VERSION_TLS1_3
                                             : MBEDTLS_SSL_VERSION_TLS1_2);
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

/* ---- SSLKEYLOGFILE ------------------------------------------------------- */

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* 3.x: one call per secret, per connection (mbedtls_ssl_set_export_keys_cb
 * in be_mbedtls_conn.c). */
void mbe_export_keys(void *p, mbedtls_ssl_key_export_type type,
                     const unsigned char *secret, size_t slen,
                     const unsigned char client_random[32],
                     const unsigned char server_random[32],
                     mbedtls_tls_prf_types prf) {
  (void)server_random;
  (void)prf;
  const char *label = NULL;
  switch (type) {
  case MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET:
    label = "CLIENT_RANDOM";
    break;
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
  case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_HANDSHAKE_TRAFFIC_SECRET:
    label = "CLIENT_HANDSHAKE_TRAFFIC_SECRET";
    break;
  case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_HANDSHAKE_TRAFFIC_SECRET:
    label = "SERVER_HANDSHAKE_TRAFFIC_SECRET";
    break;
  case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_APPLICATION_TRAFFIC_SECRET:
    label = "CLIENT_TRAFFIC_SECRET_0";
    break;
  case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_APPLICATION_TRAFFIC_SECRET:
    label = "SERVER_TRAFFIC_SECRET_0";
    break;
#endif
  default:
    return;
  }
  mesh__tls_keylog(p, label, client_random, 32, secret, slen);
}
#elif defined(MBEDTLS_SSL_EXPORT_KEYS)
/* 2.28: the TLS 1.2 master secret, once per handshake. */
static int export_keys(void *p, const unsigned char *ms,
                       const unsigned char *kb, size_t maclen, size_t keylen,
                       size_t ivlen, const unsigned char client_random[32],
                       const unsigned char server_random[32],
                       mbedtls_tls_prf_types prf) {
  (void)kb;
  (void)maclen;
  (void)keylen;
  (void)ivlen;
  (void)server_random;
  (void)prf;
  mesh__tls_keylog(p, "CLIENT_RANDOM", client_random, 32, ms, 48);
  return 0;
}
#endif

/* Policy shared by both ends. */
static int setup_common(const mesh__tls_t *t, mesh__tlsgen_t *g,
                        mbedtls_ssl_config *conf, int endpoint,
                        const char *const *alpn) {
  mbe_gen_t *b = g->be;
  int ret = mbedtls_ssl_config_defaults(conf, endpoint,
                                        MBEDTLS_SSL_TRANSPORT_STREAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0)
    return ret;
  set_versions(t, conf);
  pthread_once(&suites_once, suites_init);
  if (suites[0] == 0)
    return MBEDTLS_ERR_SSL_BAD_INPUT_DATA; /* none of the mesh's suites */
  mbedtls_ssl_conf_ciphersuites(conf, suites);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_SSL_SRV_C)
  /* TLS 1.2 server: the mesh's order wins (3.x's default, said once
   * more); 2.28 does so unless built with
   * MBEDTLS_SSL_SRV_RESPECT_CLIENT_PREFERENCE (Debian's is not;
   * test_tls_accept would fail).  No effect on 1.3 (client's order). */
  if (endpoint == MBEDTLS_SSL_IS_SERVER)
    mbedtls_ssl_conf_preference_order(conf,
                                      MBEDTLS_SSL_SRV_CIPHERSUITE_ORDER_SERVER);
#endif
  mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &b->drbg);
  /* Mutual TLS both ways; the verify callback makes the final decision. */
  mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
#if defined(MBEDTLS_SSL_RENEGOTIATION)
  mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
  mbedtls_ssl_conf_ca_chain(conf, mesh__x509_chain_native(g->creds->all_roots),
                            NULL);
  ret = mbedtls_ssl_conf_own_cert(conf,
                                  mesh__x509_chain_native(g->creds->chain),
                                  mesh__x509_key_native(g->creds->key));
  if (ret != 0)
    return ret;
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_EXPORT_KEYS)
  if (t->keylog_fd >= 0)
    mbedtls_ssl_conf_export_keys_ext_cb(conf, export_keys, (void *)t);
#endif
  if (alpn && alpn[0])
    ret = mbedtls_ssl_conf_alpn_protocols(conf, (const char **)alpn);
  return ret;
}

int mbe_setup_client(const mesh__tls_t *t, mesh__tlsgen_t *g,
                     mbedtls_ssl_config *conf, const char *const *alpn) {
  int ret = setup_common(t, g, conf, MBEDTLS_SSL_IS_CLIENT, alpn);
  if (ret != 0)
    return ret;
  mbedtls_ssl_conf_session_tickets(conf, t->set.resumption
                                             ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                             : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#if defined(MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED)
  /* 3.6.1+: TLS 1.3 tickets are ignored unless signalled (be_read keeps
   * them in the session cache) */
  if (t->set.resumption)
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
        conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
#endif
  return 0;
}

#ifdef MBE_TICKET_PEERS
/* mbedTLS 3.6's TLS 1.3 tickets do not carry the client's certificate (its
 * TLS 1.2 tickets do), and the re-check of a resumed session
 * (mesh__verify_resumed) needs the leaf.  The server keeps the leaf of each
 * TLS 1.3 ticket it issues, keyed by the ticket's SHA-256, in a ring of
 * MBE_TICKET_PEERS per generation; a ticket whose leaf has left the ring
 * gets a full handshake.  Nothing is added to the ticket itself: it
 * travels in the clear in the ClientHello. */
/* The leaf of the last ticket parsed by this thread: mbedTLS copies only
 * the ticket's keys into the new session, so handshake() takes the leaf
 * from here right after the mbedTLS call that parsed it (same thread, same
 * connection). */
static _Thread_local unsigned char *parsed_der;
static _Thread_local size_t parsed_len;

/* The leaf of the resumed session the calling thread is handshaking (set
 * around the mbedTLS calls): a ticket issued on a resumed TLS 1.3
 * connection has no peer certificate in its session either. */
static _Thread_local const unsigned char *resumed_der;
static _Thread_local size_t resumed_len;

void mbe_ticket_leaf_use(const unsigned char *der, size_t len) {
  resumed_der = der;
  resumed_len = len;
}

void mbe_ticket_leaf_take(unsigned char **der, size_t *len) {
  if (!parsed_der)
    return;
  free(*der);
  *der = parsed_der;
  *len = parsed_len;
  parsed_der = NULL;
  parsed_len = 0;
}

static int ticket_write(void *p, const mbedtls_ssl_session *s,
                        unsigned char *start, const unsigned char *end,
                        size_t *tlen, uint32_t *lifetime) {
  mbe_gen_t *b = p;
  int ret = mbedtls_ssl_ticket_write(&b->ticket, s, start, end, tlen,
                                     lifetime);
  const mbedtls_x509_crt *peer = s->MBEDTLS_PRIVATE(peer_cert);
  /* A resumed session: its leaf from handshake(), or parsed in this very
   * call when the client's Finished was already there. */
  const unsigned char *leaf = peer ? peer->raw.p
                              : resumed_der ? resumed_der
                                            : parsed_der;
  size_t leaf_len = peer ? peer->raw.len
                    : resumed_der ? resumed_len
                                  : parsed_len;
  if (ret != 0 ||
      s->MBEDTLS_PRIVATE(tls_version) != MBEDTLS_SSL_VERSION_TLS1_3 ||
      !leaf)
    return ret;
  unsigned char *der = malloc(leaf_len);
  if (!der)
    return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  memcpy(der, leaf, leaf_len);
  unsigned char id[32];
  mbedtls_sha256(start, *tlen, id, 0);
  pthread_mutex_lock(&b->tmu);
  mbe_tpeer_t *e = &b->tpeers[b->tnext++ % MBE_TICKET_PEERS];
  free(e->der);
  memcpy(e->id, id, sizeof id);
  e->der = der;
  e->len = leaf_len;
  pthread_mutex_unlock(&b->tmu);
  return 0;
}

static int ticket_parse(void *p, mbedtls_ssl_session *s, unsigned char *buf,
                        size_t len) {
  mbe_gen_t *b = p;
  unsigned char id[32];
  mbedtls_sha256(buf, len, id, 0); /* before the parse decrypts in place */
  int ret = mbedtls_ssl_ticket_parse(&b->ticket, s, buf, len);
  if (ret != 0 ||
      s->MBEDTLS_PRIVATE(tls_version) != MBEDTLS_SSL_VERSION_TLS1_3)
    return ret;
  unsigned char *der = NULL;
  size_t dlen = 0;
  pthread_mutex_lock(&b->tmu);
  for (size_t i = 0; i < MBE_TICKET_PEERS; i++) {
    const mbe_tpeer_t *e = &b->tpeers[i];
    if (!e->der || memcmp(e->id, id, sizeof id) != 0)
      continue;
    der = malloc(e->len);
    if (der) {
      memcpy(der, e->der, e->len);
      dlen = e->len;
    }
    break;
  }
  pthread_mutex_unlock(&b->tmu);
  if (!der)
    return MBEDTLS_ERR_SSL_INVALID_MAC; /* not (any more) ours: full hs */
  free(parsed_der);
  parsed_der = der;
  parsed_len = dlen;
  return 0;
}
#endif

static int setup_server(const mesh__tls_t *t, mesh__tlsgen_t *g) {
  mbe_gen_t *b = g->be;
  int ret = setup_common(t, g, &b->server, MBEDTLS_SSL_IS_SERVER,
                         (const char *const *)t->set.alpn);
  if (ret != 0 || !t->set.resumption)
    return ret;
  /* New ticket keys per generation: after a server rotation, old tickets
   * no longer decrypt and clients get a full handshake with the new SVID.
   * mbedTLS also rotates the keys every ticket lifetime. */
  ret = mbedtls_ssl_ticket_setup(&b->ticket, mbedtls_ctr_drbg_random,
                                 &b->drbg, MBEDTLS_CIPHER_AES_256_GCM,
                                 (uint32_t)t->set.ticket_lifetime_s);
  if (ret != 0)
    return ret;
#ifdef MBE_TICKET_PEERS
  b->tpeers = calloc(MBE_TICKET_PEERS, sizeof *b->tpeers);
  if (!b->tpeers)
    return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  mbedtls_ssl_conf_session_tickets_cb(&b->server, ticket_write, ticket_parse,
                                      b);
#else
  mbedtls_ssl_conf_session_tickets_cb(&b->server, mbedtls_ssl_ticket_write,
                                      mbedtls_ssl_ticket_parse, &b->ticket);
#endif
  return 0;
}

/* Sign once before the key is shared between threads: mbedTLS may fill
 * lazily computed tables on first use, which must not race. */
static int warm_up(mesh__tlsgen_t *g) {
  mbe_gen_t *b = g->be;
  unsigned char hash[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t siglen = 0;
  memset(hash, 0x5a, sizeof hash);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  return mbedtls_pk_sign(mesh__x509_key_native(g->creds->key),
                         MBEDTLS_MD_SHA256, hash, sizeof hash, sig,
                         sizeof sig, &siglen, mbedtls_ctr_drbg_random,
                         &b->drbg);
#else
  return mbedtls_pk_sign(mesh__x509_key_native(g->creds->key),
                         MBEDTLS_MD_SHA256, hash, sizeof hash, sig, &siglen,
                         mbedtls_ctr_drbg_random, &b->drbg);
#endif
}

void mbe_gen_free(mesh__tlsgen_t *g) {
  mbe_gen_t *b = g->be;
  if (!b)
    return;
  mbedtls_ssl_config_free(&b->client);
  mbedtls_ssl_config_free(&b->server);
  mbedtls_ssl_ticket_free(&b->ticket);
  mbedtls_ctr_drbg_free(&b->drbg);
#ifdef MBE_TICKET_PEERS
  if (b->tpeers)
    for (size_t i = 0; i < MBE_TICKET_PEERS; i++)
      free(b->tpeers[i].der);
  free(b->tpeers);
  pthread_mutex_destroy(&b->tmu);
#endif
  free(b);
  g->be = NULL;
}

int mbe_gen_new(mesh__tls_t *t, mesh__tlsgen_t *g, mesh_status_t *st) {
  mbe_tls_t *tb = t->be;
  mbe_gen_t *b = calloc(1, sizeof *b);
  if (!b)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  g->be = b;
#ifdef MBE_TICKET_PEERS
  pthread_mutex_init(&b->tmu, NULL);
#endif
  mbedtls_ctr_drbg_init(&b->drbg);
  mbedtls_ssl_config_init(&b->client);
  mbedtls_ssl_config_init(&b->server);
  mbedtls_ssl_ticket_init(&b->ticket);
  static const unsigned char pers[] = "libmesh tls";
  const char *what = "seeding the DRBG";
  int ret = mbedtls_ctr_drbg_seed(&b->drbg, mbedtls_entropy_func,
                                  &tb->entropy, pers, sizeof pers - 1);
  if (ret == 0) {
    what = "checking the SVID key";
    ret = warm_up(g);
  }
  if (ret == 0) {
    what = "building the client config";
    ret = mbe_setup_client(t, g, &b->client,
                           (const char *const *)t->set.alpn);
  }
  if (ret == 0) {
    what = "building the server config";
    ret = setup_server(t, g);
  }
  if (ret != 0) {
    char err[128];
    mbedtls_strerror(ret, err, sizeof err);
    mbe_gen_free(g);
    return mesh__fail(st, MESH_ERR_TLS, "TLS setup failed %s: %s (-0x%04x)",
                      what, err, (unsigned)-ret);
  }
  return MESH_OK;
}

/* ---- sessions ------------------------------------------------------------ */

mesh__be_sess_t *mbe_sess_get(mesh_conn_t *c) {
  mbe_conn_t *b = c->be;
  mesh__be_sess_t *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  mbedtls_ssl_session_init(&s->s);
  if (mbedtls_ssl_get_session(&b->ssl, &s->s) != 0) {
    mbe_sess_free(s);
    return NULL;
  }
  return s;
}

bool mbe_sess_set(mesh_conn_t *c, mesh__be_sess_t *s) {
  mbe_conn_t *b = c->be;
  return mbedtls_ssl_set_session(&b->ssl, &s->s) == 0;
}

void mbe_sess_free(mesh__be_sess_t *s) {
  if (!s)
    return;
  mbedtls_ssl_session_free(&s->s);
  free(s);
}
