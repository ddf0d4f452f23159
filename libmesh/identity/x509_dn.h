/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal, identity/'s X.509 seams only: the DN text form. */
#ifndef MESH_IDENTITY_X509_DN_H
#define MESH_IDENTITY_X509_DN_H

#include <stdbool.h>
#include <stddef.h>

/** Append one attribute to buf (len > 0, *off < len, NUL-terminated):
 *  ", " (" + " when same_rdn) unless first, the short name of the OID
 *  (DER body) or its dotted text, "=", the value's bytes with anything
 *  outside printable ASCII as '?'.  @return false when truncated. */
bool mesh__dn_append(char *buf, size_t len, size_t *off, bool first,
                     bool same_rdn, const unsigned char *oid, size_t oid_len,
                     const unsigned char *val, size_t val_len);

#endif /* MESH_IDENTITY_X509_DN_H */
