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

/* TLS 1.3 alerts about certificates, sent by us rather than by mbedTLS 3.6
 * (see server_steps). */
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 &&                                    \
    defined(MBEDTLS_SSL_PROTO_TLS1_3) &&                                       \
    defined(MBEDTLS_SSL_SERVER_NAME_INDICATION)
#define MBE_DEFER 1
#endif

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
  mesh__x509_chain_t *chain = mesh__x509_chain_wrap(crt);
  int rc = chain ? mesh__verify_chain(c, chain, fast,
                                      mesh__x509_from_native(b->vtop))
                 : MESH_ERR_NOMEM;
  mesh__x509_chain_free(chain);
  *flags = rc == MESH_OK ? 0 : flags_for(rc);
  return 0;
}

/* ---- connection ---------------------------------------------------------- */

static void send_alert(mesh_conn_t *c, int desc);

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
  mbedtls_ssl_set_bio(&b->ssl, c, mbe_bio_send, mbe_bio_recv, NULL);
  mbedtls_ssl_set_verify(&b->ssl, verify_cb, c);
  if (c->server && c->cert_optional)
    mbedtls_ssl_set_hs_authmode(&b->ssl, MBEDTLS_SSL_VERIFY_OPTIONAL);
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
  free(b->wb);
  free(b->tleaf);
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
 * errmap.c words the message.  Over 60 lines: one switch over the error
 * codes of 2.28 and 3.x, kept whole so that every code's kind is read in
 * one place. */
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
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  case MBEDTLS_ERR_SSL_INVALID_MAC: {
    /* TLS 1.3 server: a client that refuses our certificate sends its
     * alert before it has keys, in the clear (RFC 8446 5); mbedTLS 3.6
     * tries to decrypt it.  Read the alert from the record. */
    const unsigned char *h = b->ssl.MESH__MBEDTLS_FIELD(in_hdr);
    if (c->server && h && h[0] == MBEDTLS_SSL_MSG_ALERT && h[3] == 0 &&
        h[4] == 2) {
      f->kind = MESH__HSF_ALERT;
      f->alert = h[6];
      return;
    }
    break;
  }
#endif
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
#else /* 3.x: a server failing on the ClientHello found nothing in common */
  case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
    if (!c->server ||
        b->ssl.MESH__MBEDTLS_FIELD(state) != MBEDTLS_SSL_CLIENT_HELLO)
      break;
#endif
    f->kind = MESH__HSF_NO_CIPHER;
    return;
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

#ifdef MBE_DEFER
/* TLS 1.3 server.  mbedTLS 3.6 sends its alert about the client's
 * certificate under the server's handshake keys, after its Finished, when
 * the client already reads with the application keys: the client sees a bad
 * record MAC, not the reason (Mbed-TLS/mbedtls#10877); and it says
 * no_certificate (41) for a missing one, not certificate_required (#10900).
 * So once TLS 1.3 is chosen the client's certificate is optional to mbedTLS
 * (our verify callback still runs and records its verdict), and
 * deferred_verdict() refuses it when the handshake is over, under the
 * application keys, as every other TLS 1.3 stack does. */
static int server_steps(mbe_conn_t *b) {
  mbedtls_ssl_context *ssl = &b->ssl;
  while (!mbedtls_ssl_is_handshake_over(ssl)) {
    int state = ssl->MESH__MBEDTLS_FIELD(state);
    if (!b->mode_set && state > MBEDTLS_SSL_CLIENT_HELLO) {
      b->mode_set = true; /* the ClientHello is processed: version final */
      b->defer = mbedtls_ssl_get_version_number(ssl) ==
                 MBEDTLS_SSL_VERSION_TLS1_3;
      if (b->defer)
        mbedtls_ssl_set_hs_authmode(ssl, MBEDTLS_SSL_VERIFY_OPTIONAL);
    }
    if (state == MBEDTLS_SSL_CLIENT_CERTIFICATE)
      b->cert_asked = true; /* a full handshake, not a resumption */
    int ret = mbedtls_ssl_handshake_step(ssl);
    if (ret != 0)
      return ret;
  }
  return 0;
}

/* The alert mbedTLS would send for these verify flags (ssl_tls.c). */
static int alert_for_flags(uint32_t flags) {
  if (flags & MBEDTLS_X509_BADCERT_OTHER)
    return MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED;
  if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
    return MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
  if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE |
               MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
               MBEDTLS_X509_BADCERT_NS_CERT_TYPE |
               MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY))
    return MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT;
  if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
    return MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED;
  if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
    return MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA;
  return MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN;
}

/* The server's verdict on the client's certificate, deferred (see
 * server_steps); the failure is sorted as classify() would have. */
static bool deferred_verdict(mesh_conn_t *c, mesh__hsf_t *f) {
  mbe_conn_t *b = c->be;
  if (!b->defer || !b->cert_asked)
    return true;
  memset(f, 0, sizeof *f);
  if (!mbedtls_ssl_get_peer_cert(&b->ssl) && c->cert_optional)
    return true; /* TLS without a client certificate (A36 chain) */
  if (!mbedtls_ssl_get_peer_cert(&b->ssl)) {
    f->kind = MESH__HSF_NO_CERT; /* handshake.c sends certificate_required */
    return false;
  }
  uint32_t flags = mbedtls_ssl_get_verify_result(&b->ssl);
  if (c->verified && c->verify_code == MESH_OK && flags == 0)
    return true;
  f->kind = MESH__HSF_VERIFY;
  if (c->verify_code != MESH_OK) {
    flags = flags_for(c->verify_code);
  } else if (c->verified && (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE |
                                      MBEDTLS_X509_BADCERT_EXT_KEY_USAGE))) {
    f->kind = MESH__HSF_KEY_USAGE;
  } else {
    own_verify_fail(b, f);
  }
  send_alert(c, alert_for_flags(flags));
  return false;
}
#endif

/* The mbedTLS handshake calls; on a server, around them, the leaf of a
 * TLS 1.3 ticket (see ticket_write/ticket_parse in be_mbedtls.c). */
static int hs_call(mesh_conn_t *c, mesh__hsf_t *f, bool *refused) {
  mbe_conn_t *b = c->be;
  int ret = 0;
  *refused = false;
  (void)f; /* used by the TLS 1.3 paths only */
#ifdef MBE_DEFER
  if (c->server && !mbedtls_ssl_is_handshake_over(&b->ssl)) {
    ret = server_steps(b);
    if (ret == 0 && !deferred_verdict(c, f)) {
      *refused = true;
      return MESH_ERR_TLS;
    }
  }
#endif
  if (ret == 0) /* the rest, if any (TLS 1.3 tickets) */
    ret = mbedtls_ssl_handshake(&b->ssl);
  return ret;
}

static int handshake(mesh_conn_t *c, mesh__hsf_t *f) {
  bool refused = false;
  int ret = mbe_flush(c); /* what an earlier call could not send */
  if (ret == 0) {
#ifdef MBE_TICKET_PEERS
    mbe_conn_t *b = c->be;
    if (c->server)
      mbe_ticket_leaf_use(b->tleaf, b->tleaf_len);
    ret = hs_call(c, f, &refused);
    if (c->server) {
      mbe_ticket_leaf_use(NULL, 0);
      mbe_ticket_leaf_take(&b->tleaf, &b->tleaf_len);
    }
#else
    ret = hs_call(c, f, &refused);
#endif
    int fr = mbe_flush(c); /* this call's flight, alerts included */
    if (fr != 0 && (ret == 0 || ret == MBEDTLS_ERR_SSL_WANT_READ))
      ret = fr;
  }
  if (refused)
    return MESH_ERR_TLS;
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

#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
/* A TLS 1.3 NewSessionTicket (client): keep the session now.  Signalled
 * by mbedTLS 3.6.1+ (MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET). */
static void got_ticket(mesh_conn_t *c) {
  if (!c->server && c->m->tls->set.resumption) {
    mesh__sesscache_save(&c->m->tls->cache, c);
    c->got_ticket = true;
  }
}
#endif

/* mbedTLS 3.x answers WANT_READ when it has just read a post-handshake
 * message (a TLS 1.3 NewSessionTicket) and left it for the next call, with
 * the state off HANDSHAKE_OVER and nothing more on the socket: call again
 * rather than wait for the socket. */
static bool msg_left(const mbe_conn_t *b) {
  return b->ssl.MESH__MBEDTLS_FIELD(state) != MBEDTLS_SSL_HANDSHAKE_OVER;
}

static long be_read(mesh_conn_t *c, void *buf, size_t len) {
  mbe_conn_t *b = c->be;
  for (int spins = 0;; spins++) {
    int ret = mbedtls_ssl_read(&b->ssl, buf, len);
    if (ret > 0)
      return ret;
    if (ret == MBEDTLS_ERR_SSL_WANT_READ && spins < 8 && msg_left(b))
      continue;
    /* A FIN inside a record (part of it read) is a truncation, never a
     * clean end.  (mbedtls_ssl_read() reports any EOF as 0; in_left says
     * whether bytes of an unfinished record were pending.) */
    if ((ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF) &&
        b->ssl.MESH__MBEDTLS_FIELD(in_left) > 0) {
      c->truncated = true;
      return MESH_ERR_TLS;
    }
    if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
      c->rx_close_notify = true;
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
        ret == MBEDTLS_ERR_SSL_CONN_EOF)
      return 0;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
      got_ticket(c); /* no data: read on */
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
  for (int spins = 0;; spins++) {
    /* A write may first finish a post-handshake message a read left. */
    int ret = mbedtls_ssl_write(&b->ssl, buf, len);
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET && spins < 8) {
      got_ticket(c);
      continue;
    }
#endif
    return ret >= 0 ? ret : io_code(ret);
  }
}

static int close_notify(mesh_conn_t *c) {
  mbe_conn_t *b = c->be;
  int ret = mbedtls_ssl_close_notify(&b->ssl);
  return ret == 0 ? MESH_OK : io_code(ret);
}

static long drain(mesh_conn_t *c) {
  unsigned char buf[256];
  return be_read(c, buf, sizeof buf); /* non-blocking socket: never waits */
}

static void send_alert(mesh_conn_t *c, int desc) {
  mbe_conn_t *b = c->be;
  mbedtls_ssl_send_alert_message(&b->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                 (unsigned char)desc);
  mbe_flush(c); /* mid-handshake the BIO holds it: send it now */
}

static size_t pending(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  if (!b)
    return 0;
  /* decrypted bytes, read-ahead bytes, and any record mbedTLS holds */
  size_t n = mbedtls_ssl_get_bytes_avail(&b->ssl) + (b->ra_len - b->ra_off);
  return n ? n : (size_t)mbedtls_ssl_check_pending(&b->ssl);
}

/* The suite's IANA name with '-' for '_', as the OpenSSL backend reports
 * it: mbedTLS 3 spells TLS 1.3 suites "TLS1-3-AES-128-GCM-SHA256". */
static const char *cipher(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  static const char *const v13[] = {
      "TLS-AES-128-GCM-SHA256", "TLS-AES-256-GCM-SHA384",
      "TLS-CHACHA20-POLY1305-SHA256", "TLS-AES-128-CCM-SHA256",
      "TLS-AES-128-CCM-8-SHA256"};
  const char *n = mbedtls_ssl_get_ciphersuite(&b->ssl);
  if (n && strncmp(n, "TLS1-3-", 7) == 0)
    for (size_t i = 0; i < sizeof v13 / sizeof v13[0]; i++)
      if (strcmp(v13[i] + 4, n + 7) == 0)
        return v13[i];
  return n;
}

static const char *version(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  return mbedtls_ssl_get_version(&b->ssl);
}

static const char *alpn(const mesh_conn_t *c) {
  const mbe_conn_t *b = c->be;
  return mbedtls_ssl_get_alpn_protocol(&b->ssl);
}

static int peer_chain(const mesh_conn_t *c, mesh__x509_chain_t **out) {
  const mbe_conn_t *b = c->be;
  const mbedtls_x509_crt *crt = b ? mbedtls_ssl_get_peer_cert(&b->ssl) : NULL;
  *out = NULL;
  if ((!crt || !crt->raw.p) && !(b && b->tleaf))
    return MESH_ERR_NOT_FOUND;
  mesh__x509_chain_t *ch = mesh__x509_chain_new();
  if (!ch)
    return MESH_ERR_NOMEM;
  *out = ch;
  if (!crt || !crt->raw.p) { /* resumed TLS 1.3 */
    char e[160];
    size_t used;
    return mesh__x509_chain_parse_der1(ch, b->tleaf, b->tleaf_len, &used, e,
                                       sizeof e) == 0
               ? MESH_OK
               : MESH_ERR_NOMEM;
  }
  for (; crt && crt->raw.p; crt = crt->next)
    if (mesh__x509_chain_add_native(ch, (void *)crt) != 0)
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
