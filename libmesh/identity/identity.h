/* libmesh internal: identity state used by tls/ and others.
 * Owned by identity/.  The contract below is what tls/ relies on. */
#ifndef MESH_IDENTITY_IDENTITY_H
#define MESH_IDENTITY_IDENTITY_H

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "core/core.h"

typedef struct mesh__bundle {
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  mbedtls_x509_crt roots;
} mesh__bundle_t;

/* One loaded identity: SVID chain, key and trust bundles.  Immutable once
 * published; refcounted so in-flight handshakes keep theirs across a
 * rotation. */
typedef struct mesh__creds {
  _Atomic uint32_t refs;
  uint64_t generation;        /* increases with every successful reload */
  mbedtls_x509_crt chain;     /* leaf first, then intermediates */
  mbedtls_pk_context key;
  char id[MESH_SPIFFE_ID_MAX + 1]; /* the leaf's SPIFFE ID */
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  int64_t not_before, not_after;   /* leaf validity, Unix seconds */
  mesh__bundle_t *bundles;
  size_t nbundles;
  mbedtls_x509_crt all_roots; /* union of every bundle (mbedTLS ca_chain) */
} mesh__creds_t;

/** Current credentials with a reference taken (NULL if none loaded).
 *  Any thread. */
mesh__creds_t *mesh__creds_acquire(mesh_t *m);
void mesh__creds_release(mesh__creds_t *c);

/** Bundle of a trust domain or NULL. */
const mesh__bundle_t *mesh__creds_bundle(const mesh__creds_t *c,
                                         const char *td);

/** Check a leaf against the X.509-SVID rules (exactly one URI SAN holding a
 *  valid SPIFFE ID, not a CA, digitalSignature key usage, ...) and copy its
 *  SPIFFE ID out.  @return MESH_OK, MESH_ERR_SVID, MESH_ERR_SPIFFE_ID. */
int mesh__svid_leaf_check(const mbedtls_x509_crt *leaf, char *id, size_t len,
                          mesh_status_t *st);

/** Full verification of a peer chain (leaf first): SVID rules, then the
 *  chain against the bundle of the leaf's trust domain only, with validity
 *  dates.  Copies the SPIFFE ID.  @return MESH_OK, MESH_ERR_SVID,
 *  MESH_ERR_SPIFFE_ID, MESH_ERR_TRUST_DOMAIN, MESH_ERR_CERT_UNTRUSTED,
 *  MESH_ERR_CERT_EXPIRED, MESH_ERR_CERT_NOT_YET_VALID. */
int mesh__creds_verify_peer(const mesh__creds_t *c,
                            const mbedtls_x509_crt *peer, char *id,
                            size_t len, mesh_status_t *st);

/** Map mbedTLS X.509 verify flags to a mesh code plus a message. */
int mesh__x509_flags_to_code(uint32_t flags, mesh_status_t *st);

/* ---- helpers shared inside identity/ (and usable by tls/) ------------- */

/** Validate a trust domain name alone (SPIFFE-ID 2.1 and 2.3).
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_INVALID_ARG (NULL). */
int mesh__spiffe_td_validate(const char *td, mesh_status_t *st);

#endif /* MESH_IDENTITY_IDENTITY_H */
