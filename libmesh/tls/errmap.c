/* SPDX-License-Identifier: Apache-2.0 */
/* Handshake failures (as a backend reports them) to mesh codes, with
 * messages that name the peer and the check that failed.  Pure functions
 * over the connection's recorded state; the same for every backend. */
#include "tls/tls.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

const char *mesh__tls_alert_name(int desc) {
  static const struct {
    int d;
    const char *name;
  } names[] = {
      {0, "close_notify"},
      {10, "unexpected_message"},
      {20, "bad_record_mac"},
      {22, "record_overflow"},
      {40, "handshake_failure"},
      {42, "bad_certificate"},
      {43, "unsupported_certificate"},
      {44, "certificate_revoked"},
      {45, "certificate_expired"},
      {46, "certificate_unknown"},
      {47, "illegal_parameter"},
      {48, "unknown_ca"},
      {49, "access_denied"},
      {50, "decode_error"},
      {51, "decrypt_error"},
      {70, "protocol_version"},
      {71, "insufficient_security"},
      {80, "internal_error"},
      {86, "inappropriate_fallback"},
      {90, "user_canceled"},
      {100, "no_renegotiation"},
      {109, "missing_extension"},
      {110, "unsupported_extension"},
      {112, "unrecognized_name"},
      {116, "certificate_required"},
      {120, "no_application_protocol"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].d == desc)
      return names[i].name;
  return "alert";
}

bool mesh__tls_record_start(const unsigned char *b, size_t n) {
  if (n == 0)
    return true; /* nothing seen: cannot tell */
  /* content types change_cipher_spec..application_data, then major 3 */
  if (b[0] < 0x14 || b[0] > 0x17)
    return false;
  return n < 2 || b[1] == 0x03;
}

/* Printable excerpt of the first bytes, for "answered non-TLS bytes". */
static void excerpt(const unsigned char *b, size_t n, char *out, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < len; i++) {
    unsigned char ch = b[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
      out[o++] = (char)ch;
    } else {
      int k = snprintf(out + o, len - o, "\\x%02x", ch);
      if (k < 0)
        break;
      o += (size_t)k;
    }
  }
  out[o < len ? o : len - 1] = '\0';
}

/* The one table, for every backend: each must be able to send it from its
 * verify hook (OpenSSL only sends what its X509 error -> alert table
 * holds, which has no access_denied: so a refused SPIFFE ID or an
 * authorizer's denial is bad_certificate everywhere). */
int mesh__tls_refusal_alert(int code) {
  switch (code) {
  case MESH_ERR_CERT_EXPIRED:
    return 45; /* certificate_expired */
  case MESH_ERR_CERT_UNTRUSTED:
  case MESH_ERR_TRUST_DOMAIN:
    return 48; /* unknown_ca */
  default:
    return 42; /* bad_certificate: not yet valid, SVID rules, peer ID,
                  denied by policy */
  }
}

int mesh__tls_alert_error(mesh_conn_t *c, int desc, mesh_status_t *st) {
  const char *name = mesh__tls_alert_name(desc);
  bool about_us = desc == 42 || desc == 43 || desc == 44 || desc == 45 ||
                  desc == 46 || desc == 48 || desc == 49 || desc == 116;
  if (about_us)
    return mesh__fail(st, MESH_ERR_TLS,
                      "peer %s rejected our certificate (%s alert %s, %d)",
                      c->peer_addr, c->gen ? c->gen->creds->id : "?", name,
                      desc);
  return mesh__fail(st, MESH_ERR_TLS,
                    "peer %s aborted the TLS handshake (alert %s, %d)",
                    c->peer_addr, name, desc);
}

/* A peer that refuses us sends an alert and closes; if we were still
 * writing our flight, our next write fails with a reset before mbedTLS
 * reads the alert.  Look for a plaintext alert record among the bytes
 * already received so the caller learns why.  @return its description or
 * -1.  (Alerts after ChangeCipherSpec are encrypted: not found.) */
static int unread_alert(int fd) {
  unsigned char b[1024];
  ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
  for (ssize_t i = 0; n > 0 && i + 5 <= n;) {
    size_t len = (size_t)b[i + 3] << 8 | b[i + 4];
    if (b[i] == 0x15 && len == 2 && i + 7 <= n)
      return b[i + 6];
    i += 5 + (ssize_t)len;
  }
  return -1;
}

static int verify_error(mesh_conn_t *c, const mesh__hsf_t *f,
                        mesh_status_t *st) {
  if (c->verify_code != MESH_OK)
    return mesh__fail(st, c->verify_code, "%s", c->errmsg);
  /* the backend refused before or after our check (profile, key usage) */
  int rc = f->code ? f->code : MESH_ERR_CERT_UNTRUSTED;
  return mesh__fail(st, rc, "peer %s: %s", c->peer_addr, f->detail);
}

/* One case per failure kind; long because each words its own message. */
int mesh__tls_handshake_error(mesh_conn_t *c, const mesh__hsf_t *f,
                              mesh_status_t *st) {
  char first[48];
  if (!mesh__tls_record_start(c->first, c->nfirst)) {
    /* a record header's worth, whatever the backend read at once */
    excerpt(c->first, c->nfirst < 5 ? c->nfirst : 5, first, sizeof first);
    return mesh__fail(st, MESH_ERR_PLAINTEXT_PEER,
                      "peer %s answered non-TLS bytes \"%s\" (a plaintext "
                      "service?)",
                      c->peer_addr, first);
  }
  switch (f->kind) {
  case MESH__HSF_VERIFY:
    return verify_error(c, f, st);
  case MESH__HSF_NO_CERT:
    return mesh__fail(st, MESH_ERR_NO_PEER_CERT,
                      "peer %s sent no client certificate (mutual TLS "
                      "required)",
                      c->peer_addr);
  case MESH__HSF_ALERT:
    return mesh__tls_alert_error(c, f->alert, st);
  case MESH__HSF_RESET: {
    int desc = unread_alert(c->fd);
    if (desc >= 0)
      return mesh__tls_alert_error(c, desc, st);
    return mesh__fail(st, MESH_ERR_RESET,
                      "peer %s reset the connection during the TLS "
                      "handshake",
                      c->peer_addr);
  }
  case MESH__HSF_EOF:
    /* An inbound peer gone before its first byte (a probe, a port scan)
     * is MESH_ERR_PEER_CLOSED, as mesh_accept() documents and as in
     * PERMISSIVE mode; after bytes it is a failed handshake. */
    if (c->server && !c->nfirst)
      return mesh__fail(st, MESH_ERR_PEER_CLOSED,
                        "peer %s closed the connection before sending "
                        "anything",
                        c->peer_addr);
    return mesh__fail(st, MESH_ERR_TLS,
                      "peer %s closed the connection during the TLS "
                      "handshake%s",
                      c->peer_addr,
                      c->nfirst ? "" : " (before sending anything)");
  case MESH__HSF_SYSCALL:
    return mesh__fail(st, MESH_ERR_IO, "peer %s: socket error: %s",
                      c->peer_addr, strerror(c->sys_errno));
  case MESH__HSF_NOMEM:
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory in TLS handshake");
  default:
    break;
  }
  if (c->verify_code != MESH_OK)
    return mesh__fail(st, c->verify_code, "%s", c->errmsg);
  if (f->kind == MESH__HSF_NO_CIPHER)
    return mesh__fail(st, MESH_ERR_TLS,
                      "TLS handshake with %s failed: no ciphersuites in "
                      "common (libmesh offers ECDHE with AEAD only)",
                      c->peer_addr);
  if (f->kind == MESH__HSF_VERSION)
    return mesh__fail(st, MESH_ERR_TLS,
                      "TLS handshake with %s failed: no TLS version in "
                      "common (libmesh speaks TLS 1.2%s)",
                      c->peer_addr,
                      mesh__tls_be.has_tls13() ? " and 1.3" : " only");
  if (f->kind == MESH__HSF_KEY_USAGE)
    return mesh__fail(st, MESH_ERR_SVID,
                      "peer %s: certificate key usage does not allow TLS "
                      "%s authentication",
                      c->peer_addr, c->server ? "client" : "server");
  return mesh__fail(st, MESH_ERR_TLS, "TLS handshake with %s failed: %s",
                    c->peer_addr, f->detail);
}
