/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal, identity/ only: PEM files in and out.
 * Every error message starts with the file name. */
#ifndef MESH_IDENTITY_PEMFILE_H
#define MESH_IDENTITY_PEMFILE_H

#include <sys/types.h>

#include "identity/identity.h"

/* Largest PEM file read (a chain or bundle of a few hundred certificates). */
#define MESH__PEM_MAX (4u << 20)

/** Read a whole file into a malloc'd buffer with a NUL appended (mbedTLS
 *  wants the NUL counted in the length of PEM input: *len includes it).
 *  @return MESH_OK, MESH_ERR_IO, MESH_ERR_PEM (empty or too large),
 *          MESH_ERR_NOMEM. */
int mesh__pem_read(const char *path, unsigned char **buf, size_t *len,
                   mesh_status_t *st);

/** Parse every certificate of a PEM file into crt (appended).  A file with
 *  no certificate, or with any block that does not parse, is an error.
 *  @return MESH_OK, MESH_ERR_IO, MESH_ERR_PEM, MESH_ERR_NOMEM. */
int mesh__pem_load_crts(mesh__x509_chain_t *crt, const char *path,
                        mesh_status_t *st);

/** Parse an unencrypted private key (PKCS#8 or SEC1/PKCS#1, PEM or DER).
 *  @return MESH_OK, MESH_ERR_IO, MESH_ERR_PEM, MESH_ERR_NOMEM. */
int mesh__pem_load_key(mesh__x509_key_t **pk, const char *path,
                       mesh_status_t *st);

/** Write data to path atomically (temp file in the same directory, then
 *  rename) with exactly `mode` (umask does not widen or narrow it).
 *  @return MESH_OK or MESH_ERR_IO. */
int mesh__file_write(const char *path, const void *data, size_t len,
                     mode_t mode, mesh_status_t *st);

#endif /* MESH_IDENTITY_PEMFILE_H */
