/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal, mbedTLS builds only (identity/x509_mbedtls.c,
 * ca_mbedtls.c, tls/be_mbedtls*.c): version shims and a seeded RNG. */
#ifndef MESH_IDENTITY_MBX_H
#define MESH_IDENTITY_MBX_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include "core/core.h"

/* mbedTLS 2.28 and 3.x: 3.x hides struct fields behind MBEDTLS_PRIVATE()
 * and wants an RNG for key parsing and pair checks (blinding). */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define MESH__MBX(f) MBEDTLS_PRIVATE(f)
/** RNG for those calls (PSA's; initialises PSA once). */
int mesh__mbx_rng(void *p, unsigned char *out, size_t len);
#define MESH__MBX_RNG , mesh__mbx_rng, NULL
#else
#define MESH__MBX(f) f
#define MESH__MBX_RNG
#endif

/** One-line text of an mbedTLS error code (writes buf). */
void mesh__mbedtls_err(int err, char *buf, size_t len);

/* A CTR-DRBG seeded from the system entropy source. */
typedef struct mesh__rng {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
} mesh__rng_t;

/** @return MESH_OK or MESH_ERR_TLS (entropy source failed). */
int mesh__rng_init(mesh__rng_t *r, mesh_status_t *st);
void mesh__rng_free(mesh__rng_t *r);

#endif /* MESH_IDENTITY_MBX_H */
