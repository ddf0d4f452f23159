/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — SPIFFE identity: IDs, X.509-SVIDs, trust bundles, dev CA.
 *
 * Every function here is thread-safe.  The context's SVID, key and trust
 * bundles come from the "identity" config section (docs/config/identity.md)
 * and are reloaded by the worker thread when the files change. */
#ifndef MESH_IDENTITY_H
#define MESH_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;

/* Limits from the SPIFFE ID specification. */
#define MESH_SPIFFE_ID_MAX 2048      /* whole URI, bytes */
#define MESH_TRUST_DOMAIN_MAX 255    /* trust domain name, bytes */

/** Validate a SPIFFE ID exactly per the SPIFFE ID specification:
 *  lowercase "spiffe://" scheme; a trust domain of [a-z0-9.-_] only (no
 *  uppercase, port, user info or percent-encoding), at most 255 bytes; a
 *  path of "/"-separated segments of [a-zA-Z0-9.-_], none empty, "." or
 *  "..", no trailing slash; no query or fragment; at most 2048 bytes.
 *  @param id  NUL-terminated string (borrowed).
 *  @param st  optional: on failure `invalid SPIFFE ID "<id>": <reason>`.
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_INVALID_ARG (id NULL).
 *  Thread-safe, no I/O. */
MESH_EXTERN int mesh_spiffe_id_validate(const char *id, mesh_status_t *st);

/** Split a valid SPIFFE ID into trust domain and path ("" or "/a/b"),
 *  copied NUL-terminated into the caller's buffers (MESH_TRUST_DOMAIN_MAX+1
 *  and MESH_SPIFFE_ID_MAX+1 always suffice).  A buffer may be NULL when
 *  not wanted.  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_BUFFER,
 *  MESH_ERR_INVALID_ARG (id NULL).  Thread-safe, no I/O. */
MESH_EXTERN int mesh_spiffe_id_parse(const char *id, char *td, size_t td_len,
                                     char *path, size_t path_len,
                                     mesh_status_t *st);

/** Does `id` match `pattern`?  Patterns, Istio principal style (the ID is
 *  compared without its "spiffe://" prefix, byte for byte):
 *  - "*": any ID;
 *  - "spiffe://td/path" or "td/path": exactly that ID;
 *  - a leading or trailing "*" (one only): suffix or prefix wildcard, for
 *    example "example.org/ns/default/sa/" followed by "*";
 *  - "spiffe://td" (scheme, no path): any ID of trust domain td;
 *  - "td" (no scheme, no path): exactly the ID "spiffe://td".
 *  A '*' elsewhere matches nothing.
 *  @return 1 match, 0 no match (also for NULL or an invalid id).
 *  Thread-safe, no I/O. */
MESH_EXTERN int mesh_spiffe_match(const char *pattern, const char *id);

/** Seconds until this context's SVID expires (negative once expired);
 *  INT64_MIN with no SVID loaded or m NULL.  Thread-safe. */
MESH_EXTERN int64_t mesh_svid_expires_in(mesh_t *m);

/** Copy this context's SPIFFE ID into buf (MESH_SPIFFE_ID_MAX + 1 bytes
 *  always suffice; truncated and NUL-terminated on MESH_ERR_BUFFER).
 *  @return MESH_OK, MESH_ERR_NOT_FOUND (no SVID), MESH_ERR_BUFFER,
 *  MESH_ERR_INVALID_ARG.  Thread-safe. */
MESH_EXTERN int mesh_self_id(mesh_t *m, char *buf, size_t len);

/** A JWT-SVID for audience from the SPIFFE Workload API (config
 *  "identity": {"source": "workload_api"}), to send on an outbound call as
 *  "Authorization: Bearer <token>".  Cached per audience until shortly
 *  before it expires (30 s, or a fifth of its lifetime when shorter), so
 *  calling it per request is cheap.  Blocks at most identity.timeout_ms
 *  (default 10 s) when the agent must be asked.  Thread-safe.
 *  @param buf  receives the token, NUL-terminated (tokens are usually
 *              under 1 KiB; 8 KiB always suffices for SPIRE's).
 *  @return MESH_OK, MESH_ERR_BUFFER (buf too small: nothing copied),
 *          MESH_ERR_NOT_FOUND (no Workload API source, or the agent sent no
 *          JWT-SVID), MESH_ERR_GRPC_STATUS (the agent refused: its status in
 *          st), MESH_ERR_CONNECT / MESH_ERR_TIMEOUT (no agent),
 *          MESH_ERR_PARSE, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_jwt_svid(mesh_t *m, const char *audience, char *buf,
                              size_t len, mesh_status_t *st);

/** Have the SPIFFE Workload API agent validate a JWT-SVID for audience
 *  (the API's ValidateJWTSVID: the agent checks the signature against its
 *  JWT bundles, the expiry and the audience).  Not cached: one call to the
 *  agent each time (for request authentication with cached keys use the
 *  "authn" section's "spiffe_bundle" rules).  Blocks at most
 *  identity.timeout_ms.  Thread-safe.
 *  @param spiffe_id   receives the token's SPIFFE ID (MESH_SPIFFE_ID_MAX + 1
 *                     bytes always suffice)
 *  @param claims      receives the token's claims as a JSON object, or NULL
 *                     when not wanted
 *  @return MESH_OK; MESH_ERR_DENIED (the agent refused the token: its
 *          reason in st); MESH_ERR_BUFFER (a buffer too small); as
 *          mesh_jwt_svid otherwise (NOT_FOUND: no Workload API source). */
MESH_EXTERN int mesh_validate_jwt_svid(mesh_t *m, const char *token,
                                       const char *audience, char *spiffe_id,
                                       size_t id_len, char *claims,
                                       size_t claims_len, mesh_status_t *st);

/** Re-read the SVID, key and bundle files now (the worker also does this
 *  when they change) and publish them as a new generation, even when
 *  unchanged.  On failure the old identity stays in use and the failure is
 *  logged (event=svid_reload_failed).  Runs on the calling thread;
 *  serialized with the worker's reloads.
 *  @return MESH_OK; MESH_ERR_NOT_FOUND (no "identity" section); or the load
 *  error with the file name in st: MESH_ERR_IO, MESH_ERR_PEM, MESH_ERR_SVID,
 *  MESH_ERR_SPIFFE_ID, MESH_ERR_KEY_MISMATCH, MESH_ERR_TRUST_DOMAIN,
 *  MESH_ERR_CERT_UNTRUSTED, MESH_ERR_CERT_EXPIRED,
 *  MESH_ERR_CERT_NOT_YET_VALID. */
MESH_EXTERN int mesh_identity_reload(mesh_t *m, mesh_status_t *st);

/* ---- development CA (ECDSA P-256), for demos and tests ---------------- */

/** The CA lifetime `meshctl ca init` and the bindings use when none is
 *  given: 10 years (87600 h).  Since 0.1. */
#define MESH_CA_LIFETIME_DEFAULT_S 315360000

/** Create a self-signed CA for `trust_domain` (e.g. "example.org"), valid
 *  from one minute ago for `lifetime_s` seconds: basicConstraints CA:TRUE,
 *  keyUsage keyCertSign + cRLSign, URI SAN "spiffe://<trust_domain>".
 *  Written as PEM, each file replaced atomically; key file mode 0600.
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID (bad trust domain),
 *  MESH_ERR_INVALID_ARG (NULL, lifetime <= 0), MESH_ERR_IO, MESH_ERR_TLS.
 *  Thread-safe. */
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

/** Issue an X.509-SVID for `spiffe_id` signed by the CA in ca_cert/ca_key:
 *  one URI SAN, CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
 *  serverAuth + clientAuth, subject O=SPIFFE, random 128-bit serial.
 *  Valid from `not_before` to `not_after` (Unix seconds; 0,0 = now - 60 s
 *  to now + 1 h).  Writes the certificate (plus the CA with
 *  MESH_CA_ISSUE_CHAIN) and a fresh P-256 key (mode 0600) as PEM, the key
 *  first, each replaced atomically.  The ID's trust domain need not be the
 *  CA's (negative tests use that).
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_INVALID_ARG (NULL, unknown
 *          flags, not_after <= not_before), MESH_ERR_PEM, MESH_ERR_IO,
 *          MESH_ERR_KEY_MISMATCH (CA key vs CA cert), MESH_ERR_SVID (the CA
 *          certificate is not a CA), MESH_ERR_UNSUPPORTED (CA subject with a
 *          multi-valued RDN), MESH_ERR_TLS.  Thread-safe. */
MESH_EXTERN int mesh_ca_issue(const char *ca_cert_path, const char *ca_key_path,
                              const char *spiffe_id, int64_t not_before,
                              int64_t not_after, unsigned flags,
                              const char *cert_path, const char *key_path,
                              mesh_status_t *st);

#define MESH_CA_DNS_MAX 16        /* DNS names per certificate */
#define MESH_CA_DNS_NAME_MAX 253  /* bytes per DNS name */

/** As mesh_ca_issue(), plus DNS SANs beside the SPIFFE URI SAN (the
 *  X.509-SVID spec allows other SAN types; gRPC clients in other languages
 *  check a host name and ignore URI SANs).  Added in 0.2.
 *  @param dns_names  ndns host names ("localhost", "svc.example.org",
 *                    "*.example.org"); read, not kept.  NULL when ndns is 0.
 *  @param ndns       0..MESH_CA_DNS_MAX.
 *  @return as mesh_ca_issue(); MESH_ERR_INVALID_ARG also for a malformed
 *          DNS name (LDH labels of 1-63 bytes, at most 253 bytes, an
 *          optional leading "*.") or too many.  Thread-safe. */
MESH_EXTERN int mesh_ca_issue_dns(const char *ca_cert_path,
                                  const char *ca_key_path,
                                  const char *spiffe_id,
                                  const char *const *dns_names, size_t ndns,
                                  int64_t not_before, int64_t not_after,
                                  unsigned flags, const char *cert_path,
                                  const char *key_path, mesh_status_t *st);

#ifdef __cplusplus
}
#endif
#endif /* MESH_IDENTITY_H */
