/* libmesh — SPIFFE identity: IDs, X.509-SVIDs, trust bundles, dev CA. */
#ifndef MESH_IDENTITY_H
#define MESH_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh mesh_t;

/* Limits from the SPIFFE ID specification. */
#define MESH_SPIFFE_ID_MAX 2048      /* whole URI, bytes */
#define MESH_TRUST_DOMAIN_MAX 255    /* trust domain name, bytes */

/** Validate a SPIFFE ID exactly per the SPIFFE ID specification.
 *  @return MESH_OK or MESH_ERR_SPIFFE_ID (reason in st). Thread-safe. */
MESH_EXTERN int mesh_spiffe_id_validate(const char *id, mesh_status_t *st);

/** Split a valid SPIFFE ID into trust domain and path ("" or "/a/b").
 *  Buffers may be NULL when not wanted.
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_BUFFER. */
MESH_EXTERN int mesh_spiffe_id_parse(const char *id, char *td, size_t td_len,
                                     char *path, size_t path_len,
                                     mesh_status_t *st);

/** Does `id` match `pattern`?  Patterns, Istio principal style:
 *  - "*": any ID;
 *  - "spiffe://td/path" or "td/path": exactly that ID;
 *  - a leading or trailing "*": suffix or prefix wildcard, for example
 *    "example.org/ns/default/sa/" followed by "*";
 *  - "spiffe://td": any ID of trust domain td.
 *  @return 1 match, 0 no match (also for NULL). Thread-safe. */
MESH_EXTERN int mesh_spiffe_match(const char *pattern, const char *id);

/** Seconds until this context's SVID expires (negative once expired);
 *  INT64_MIN with no SVID loaded. */
MESH_EXTERN int64_t mesh_svid_expires_in(mesh_t *m);

/** Copy this context's SPIFFE ID into buf.
 *  @return MESH_OK, MESH_ERR_NOT_FOUND (no SVID), MESH_ERR_BUFFER. */
MESH_EXTERN int mesh_self_id(mesh_t *m, char *buf, size_t len);

/** Re-read the SVID and bundle files now (the worker also does this when
 *  they change).  On failure the old identity stays in use.
 *  @return MESH_OK or the load error with detail in st. */
MESH_EXTERN int mesh_identity_reload(mesh_t *m, mesh_status_t *st);

/* ---- development CA (ECDSA P-256), for demos and tests ---------------- */

/** Create a self-signed CA for `trust_domain`, valid from now for
 *  `lifetime_s` seconds, written as PEM (key file mode 0600).
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_IO, MESH_ERR_TLS. */
MESH_EXTERN int mesh_ca_init(const char *trust_domain, int64_t lifetime_s,
                             const char *cert_path, const char *key_path,
                             mesh_status_t *st);

/* Flags for mesh_ca_issue(); all but 0 produce certificates that break the
 * X.509-SVID rules on purpose, for negative tests. */
#define MESH_CA_ISSUE_DEFAULT 0u
#define MESH_CA_ISSUE_AS_CA 1u        /* basicConstraints CA:TRUE */
#define MESH_CA_ISSUE_NO_URI 2u       /* no URI SAN at all */
#define MESH_CA_ISSUE_TWO_URIS 4u     /* a second URI SAN */
#define MESH_CA_ISSUE_CHAIN 8u        /* write leaf + CA chain in cert file */

/** Issue an X.509-SVID for `spiffe_id` signed by the CA in ca_cert/ca_key.
 *  Valid from `not_before` to `not_after` (Unix seconds; 0,0 = now - 60 s
 *  to now + 1 h).  Writes chain and a fresh P-256 key as PEM.
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_PEM, MESH_ERR_IO,
 *          MESH_ERR_KEY_MISMATCH, MESH_ERR_TLS. */
MESH_EXTERN int mesh_ca_issue(const char *ca_cert_path, const char *ca_key_path,
                              const char *spiffe_id, int64_t not_before,
                              int64_t not_after, unsigned flags,
                              const char *cert_path, const char *key_path,
                              mesh_status_t *st);

#ifdef __cplusplus
}
#endif
#endif /* MESH_IDENTITY_H */
