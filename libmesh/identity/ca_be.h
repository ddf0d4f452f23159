/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal, identity/ only: the dev CA's crypto seam.  One of
 * ca_mbedtls.c / ca_openssl.c is linked, chosen by configure --with-tls
 * (the same conditional as tls/'s backends and authn's jws_*.c).  ca.c
 * holds the policy (names, lifetimes, SANs, flags, argument checks, files)
 * and calls only these functions; a backend adds no behaviour of its own.
 * Error codes and message prefixes are the same on both; where a message
 * quotes the crypto library's own words (after the last ": "), they differ. */
#ifndef MESH_IDENTITY_CA_BE_H
#define MESH_IDENTITY_CA_BE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Largest certificate / PEM the dev CA writes. */
#define MESH__CA_DER_MAX 16384
#define MESH__CA_PEM_MAX 24576

typedef struct mesh__ca_key mesh__ca_key_t; /* a private key */
typedef struct mesh__ca_ca mesh__ca_ca_t;   /* a loaded CA: cert + key */

/* What to put in one certificate. */
typedef struct mesh__ca_tbs {
  const char *subject; /* "O=..,OU=..,CN=..,serialNumber=.." (only O, OU,
                        * CN, serialNumber; values without ',' or '='),
                        * NULL = "O=SPIFFE" */
  int64_t not_before, not_after; /* Unix seconds, clamped to 1970..9999 */
  bool ca;          /* basicConstraints CA:TRUE (then critical) */
  bool leaf_usage;  /* keyUsage digitalSignature + EKU serverAuth,
                     * clientAuth; else keyCertSign|cRLSign + AKID */
  const char *const *uris; /* SAN URIs, in this order, then DNS names */
  size_t nuris;
  const char *const *dns;
  size_t ndns;
  bool append_issuer; /* PEM output = leaf, then the issuer's certificate */
} mesh__ca_tbs_t;

/** Random bytes from the backend's CSPRNG.
 *  @return MESH_OK or MESH_ERR_TLS. */
int mesh__ca_random(unsigned char *out, size_t n, mesh_status_t *st);

/** A fresh ECDSA P-256 key.  @return MESH_OK, MESH_ERR_TLS, MESH_ERR_NOMEM. */
int mesh__ca_keygen(mesh__ca_key_t **key, mesh_status_t *st);
void mesh__ca_key_free(mesh__ca_key_t *key);

/** Write the key as unencrypted SEC1 PEM ("EC PRIVATE KEY"), mode 0600.
 *  @return MESH_OK, MESH_ERR_TLS, MESH_ERR_IO. */
int mesh__ca_key_write(mesh__ca_key_t *key, const char *path,
                       mesh_status_t *st);

/** Load a CA: the first certificate of cert_path and the key of key_path;
 *  they must match and the certificate must say CA:TRUE.
 *  @return MESH_OK, MESH_ERR_IO, MESH_ERR_PEM (same messages as
 *  mesh__pem_load_crts / _key), MESH_ERR_KEY_MISMATCH, MESH_ERR_SVID,
 *  MESH_ERR_NOMEM. */
int mesh__ca_load(mesh__ca_ca_t **ca, const char *cert_path,
                  const char *key_path, mesh_status_t *st);
void mesh__ca_free(mesh__ca_ca_t *ca);

/** Build and sign one certificate for subject_key: by issuer, or
 *  self-signed when issuer is NULL (the issuer name is then the subject).
 *  The serial is 128 random bits, positive; SKID is always set.  *pem is
 *  malloc'd (free()), *pem_len excludes no NUL (there is none).
 *  @return MESH_OK, MESH_ERR_TLS, MESH_ERR_NOMEM, MESH_ERR_UNSUPPORTED. */
int mesh__ca_sign(const mesh__ca_tbs_t *t, mesh__ca_key_t *subject_key,
                  mesh__ca_ca_t *issuer, char **pem, size_t *pem_len,
                  const char *what, mesh_status_t *st);

#endif /* MESH_IDENTITY_CA_BE_H */
