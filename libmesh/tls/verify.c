/* SPDX-License-Identifier: Apache-2.0 */
/* Peer verification, the same for every backend.  The backend hands the
 * peer's chain to mesh__verify_chain() during the handshake; we decide with
 * identity's own check (SVID rules, chain against the bundle of the peer's
 * trust domain only, validity dates) plus the authorizer patterns, and the
 * backend turns a refusal into the matching alert (unknown_ca,
 * certificate_expired, bad_certificate: mesh__tls_refusal_alert).  The
 * precise code and message stay on the connection for the caller. */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

void mesh__tls_set_conn_authz(mesh_t *m, mesh__tls_conn_authz_fn fn) {
  if (m && m->tls)
    m->tls->conn_authz = fn;
}

void mesh__tls_set_inpick(mesh_t *m, mesh__tls_inpick_fn fn) {
  if (m && m->tls)
    m->tls->inpick = fn;
}

int mesh__tls_conn_authz(mesh_conn_t *c, const char *id, mesh_status_t *st) {
  mesh__tls_conn_authz_fn fn = c->m->tls ? c->m->tls->conn_authz : NULL;
  if (!fn) {
    mesh__ok(st);
    return MESH_OK;
  }
  return fn(c->m, id, (const struct sockaddr *)&c->peer_sa, c->local_port,
            st);
}

bool mesh__peers_allow(const char *const *pats, size_t n, const char *id) {
  if (n == 0)
    return true; /* any ID that verified against a bundle we hold */
  for (size_t i = 0; i < n; i++)
    if (mesh_spiffe_match(pats[i], id))
      return true;
  return false;
}

static void peers_of(const mesh_conn_t *c, const char *const **pats,
                     size_t *n) {
  if (c->server) {
    *pats = c->peers_ref;
    *n = c->npeers_ref;
  } else {
    *pats = (const char *const *)c->peers;
    *n = c->npeers;
  }
}

/* "a, b, c" (truncated) for messages. */
static void list_peers(const char *const *pats, size_t n, char *buf,
                       size_t len) {
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && off + 1 < len; i++) {
    int k = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", pats[i]);
    if (k < 0)
      return;
    off += (size_t)k;
  }
}

/* Inbound: the connection-level authorization policies (principal, peer
 * IP, local port), once the peer's SPIFFE ID is verified.  Deciding here,
 * inside the handshake, lets a denied peer learn why from the alert
 * (bad_certificate) instead of a reset on its first read. */
static int authorize_conn(mesh_conn_t *c, const char *id, mesh_status_t *st) {
  mesh_status_t az;
  if (mesh__tls_conn_authz(c, id, &az) == MESH_OK)
    return MESH_OK;
  /* The accept span names whom it refused (the ID is not kept on a failed
   * connection). */
  mesh__span_attr_str(&c->span, MESH__ATTR_PEER_SPIFFE_ID, id);
  return mesh__fail(st, MESH_ERR_DENIED, "peer %s (%s): %s", c->peer_addr, id,
                    az.message);
}

static int authorize(mesh_conn_t *c, const char *id, mesh_status_t *st) {
  const char *const *pats;
  size_t n;
  peers_of(c, &pats, &n);
  if (!c->server && !mesh__tls_san_match(c->san, c->nsan, id))
    return mesh__fail(st, MESH_ERR_PEER_ID,
                      "peer %s presented %s, which matches none of the "
                      "service's match_subject_alt_names (%zu)",
                      c->peer_addr, id, c->nsan);
  if (mesh__peers_allow(pats, n, id))
    return c->server ? authorize_conn(c, id, st) : MESH_OK;
  char list[160];
  list_peers(pats, n, list, sizeof list);
  return mesh__fail(st, MESH_ERR_PEER_ID,
                    "peer %s presented %s, which matches none of the "
                    "allowed peers (%s)",
                    c->peer_addr, id, list);
}

/* Is root one of the roots of the bundle of the leaf's trust domain? */
static bool root_of_own_td(const mesh__creds_t *cr, const char *id,
                           const mesh__x509_t *root) {
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  if (mesh_spiffe_id_parse(id, td, sizeof td, NULL, 0, NULL) != MESH_OK)
    return false;
  const mesh__bundle_t *b = mesh__creds_bundle(cr, td);
  for (size_t i = 0; b && i < mesh__x509_chain_len(b->roots); i++)
    if (mesh__x509_same(mesh__x509_chain_at(b->roots, i), root))
      return true;
  return false;
}

/* The decision for a full handshake.  fast: the backend has already
 * verified the chain against the union of all bundles, and top is the
 * root it chained to.  When that root belongs to the bundle of the peer's
 * own trust domain, this was exactly the chain verification identity
 * does, so only the X.509-SVID rules remain: one ECDSA chain verification
 * less per handshake.  Anything else (not verified, a root of another
 * trust domain) goes through mesh__creds_verify_peer, which decides and
 * words the precise error. */
static int check_peer(mesh_conn_t *c, const mesh__x509_chain_t *chain,
                      bool fast, const mesh__x509_t *top, char *id,
                      size_t len, mesh_status_t *st) {
  const mesh__creds_t *cr = c->gen->creds;
  const mesh__x509_t *leaf = mesh__x509_chain_at(chain, 0);
  if (fast && top && leaf && !mesh__x509_same(top, leaf) &&
      mesh__svid_chain_check(chain, id, len, NULL) == MESH_OK &&
      root_of_own_td(cr, id, top)) {
    mesh__ok(st);
    return MESH_OK;
  }
  return mesh__creds_verify_peer(cr, chain, id, len, st);
}

int mesh__verify_chain(mesh_conn_t *c, const mesh__x509_chain_t *leaf,
                       bool fast, const mesh__x509_t *top) {
  c->verified = true;
  mesh_status_t st;
  char id[MESH_SPIFFE_ID_MAX + 1];
  int rc = check_peer(c, leaf, fast, top, id, sizeof id, &st);
  if (rc != MESH_OK) {
    /* identity's message names the check; put the peer's address in. */
    char msg[sizeof st.message];
    const char *m = st.message;
    if (strncmp(m, "peer: ", 6) == 0)
      m += 6;
    else if (strncmp(m, "peer ", 5) == 0)
      m += 5;
    mesh__strlcpy(msg, m, sizeof msg);
    mesh__fail(&st, rc, "peer %s: %s", c->peer_addr, msg);
  } else {
    rc = authorize(c, id, &st);
  }
  c->verify_code = rc;
  if (rc != MESH_OK) {
    mesh__strlcpy(c->errmsg, st.message, sizeof c->errmsg);
    return rc;
  }
  free(c->peer_id);
  c->peer_id = strdup(id); /* NULL on OOM: the handshake then fails closed */
  return MESH_OK;
}

int mesh__verify_resumed(mesh_conn_t *c, mesh_status_t *st) {
  /* A resumed session carries only the peer's leaf (the chain was verified
   * when the session was made, under the same creds generation).  Re-check
   * what can change since: the authorizer and the leaf's validity. */
  mesh__x509_chain_t *chain = NULL;
  if (mesh__tls_be.peer_chain(c, &chain) != MESH_OK ||
      mesh__x509_chain_len(chain) == 0) {
    mesh__x509_chain_free(chain);
    return mesh__fail(st, MESH_ERR_NO_PEER_CERT,
                      "peer %s: resumed session has no peer certificate",
                      c->peer_addr);
  }
  char id[MESH_SPIFFE_ID_MAX + 1];
  mesh_status_t s2;
  const mesh__x509_t *leaf = mesh__x509_chain_at(chain, 0);
  int rc = mesh__svid_leaf_check(leaf, id, sizeof id, &s2);
  bool expired = mesh__x509_not_after(leaf) < mesh__wall_s();
  mesh__x509_chain_free(chain);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "peer %s: %s", c->peer_addr, s2.message);
  if (expired)
    return mesh__fail(st, MESH_ERR_CERT_EXPIRED,
                      "peer %s: certificate for %s has expired (resumed "
                      "session)",
                      c->peer_addr, id);
  rc = authorize(c, id, st);
  if (rc != MESH_OK)
    return rc;
  free(c->peer_id);
  c->peer_id = strdup(id);
  if (!c->peer_id)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  return MESH_OK;
}
