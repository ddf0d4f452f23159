/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the X.509 seam of identity/ (and, through identity.h,
 * of tls/).  One of x509_mbedtls.c / x509_openssl.c is linked, chosen by
 * configure --with-tls (the same conditional as tls/'s backends and the
 * dev CA's ca_*.c).  The mesh logic above it (svid.c's X.509-SVID rules,
 * creds.c, views.c, tls/verify.c) is written once over these functions; a
 * backend parses, answers questions about a certificate and verifies a
 * chain, and adds no behaviour of its own.  Codes and message prefixes are
 * the same on both; only the crypto library's own words after
 * "malformed certificate: " / "malformed private key: " differ.
 *
 * Certificates live in chains (leaf first, or a bundle's roots); a
 * mesh__x509_t is borrowed from its chain and valid while the chain is.
 * Chains and keys are immutable once built and then safe to read from many
 * threads (x509_mbedtls.c fills mbedTLS's lazy EC tables in
 * mesh__x509_warm, before publication). */
#ifndef MESH_IDENTITY_X509_BE_H
#define MESH_IDENTITY_X509_BE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct mesh__x509 mesh__x509_t;             /* one certificate */
typedef struct mesh__x509_chain mesh__x509_chain_t; /* certificates */
typedef struct mesh__x509_key mesh__x509_key_t;     /* a private key */

/* keyUsage bits (X.509's first byte, as mbedTLS numbers them). */
#define MESH__KU_DIGITAL_SIGNATURE 0x80u
#define MESH__KU_KEY_CERT_SIGN 0x04u
#define MESH__KU_CRL_SIGN 0x02u
/* extendedKeyUsage purposes (anyExtendedKeyUsage counts as both). */
#define MESH__EKU_SERVER 0x1u
#define MESH__EKU_CLIENT 0x2u

/* Chain verification findings: the values of mbedTLS's
 * MBEDTLS_X509_BADCERT_* (so mesh__x509_flags_to_code's table has one
 * meaning); x509_openssl.c maps X509_V_ERR_* onto them. */
#define MESH__X509_EXPIRED 0x01u
#define MESH__X509_NOT_TRUSTED 0x08u
#define MESH__X509_OTHER 0x0100u
#define MESH__X509_FUTURE 0x0200u
#define MESH__X509_KEY_USAGE 0x0800u
#define MESH__X509_EXT_KEY_USAGE 0x1000u
#define MESH__X509_BAD_MD 0x4000u
#define MESH__X509_BAD_PK 0x8000u
#define MESH__X509_BAD_KEY 0x010000u

/* ---- chains -------------------------------------------------------------- */

/** An empty chain (NULL on OOM). */
mesh__x509_chain_t *mesh__x509_chain_new(void);
/** NULL is a no-op.  A wrapped chain releases only its own wrapper. */
void mesh__x509_chain_free(mesh__x509_chain_t *ch);
/** Number of certificates (NULL: 0). */
size_t mesh__x509_chain_len(const mesh__x509_chain_t *ch);
/** Certificate i (NULL when out of range). */
const mesh__x509_t *mesh__x509_chain_at(const mesh__x509_chain_t *ch,
                                        size_t i);

/** Append every certificate of buf: PEM text (NUL-terminated, len counts
 *  the NUL) or one DER certificate (len without NUL).  A PEM block that
 *  does not parse is an error (counted).  origin prefixes the messages.
 *  @return MESH_OK, MESH_ERR_PEM ("<origin>: N certificate(s) could not be
 *  parsed", "<origin>: malformed certificate: <library's words>"),
 *  MESH_ERR_NOMEM. */
int mesh__x509_chain_parse(mesh__x509_chain_t *ch, const unsigned char *buf,
                           size_t len, bool pem, const char *origin,
                           mesh_status_t *st);
/** Append the first DER certificate of p[0..n) (concatenated DER: what
 *  follows is left); *used gets its length.  err: the library's words.
 *  @return 0 or -1. */
int mesh__x509_chain_parse_der1(mesh__x509_chain_t *ch, const unsigned char *p,
                                size_t n, size_t *used, char *err,
                                size_t errlen);
/** Append a copy of (or a reference to) crt.  @return 0 or -1 (OOM). */
int mesh__x509_chain_add(mesh__x509_chain_t *ch, const mesh__x509_t *crt);

/** The chain as PEM CERTIFICATE blocks (64-column base64) into buf,
 *  NUL-terminated.  @return bytes written without the NUL, or
 *  MESH_ERR_BUFFER (buf[0] = '\0'). */
long mesh__x509_chain_pem(const mesh__x509_chain_t *ch, char *buf,
                          size_t len);

/* ---- one certificate ----------------------------------------------------- */

/** Number of URI SANs.  The first one's length goes to *first_len (if
 *  non-NULL; 0 when none) and up to cap of its bytes to first (if
 *  non-NULL; no NUL appended). */
size_t mesh__x509_uri_sans(const mesh__x509_t *crt, char *first, size_t cap,
                           size_t *first_len);
/** basicConstraints present with cA TRUE. */
bool mesh__x509_is_ca(const mesh__x509_t *crt);
/** keyUsage: false when the extension is absent; else *bits gets the
 *  MESH__KU_* bits set. */
bool mesh__x509_key_usage(const mesh__x509_t *crt, unsigned *bits);
/** extendedKeyUsage: false when absent; else *bits gets MESH__EKU_*. */
bool mesh__x509_ext_key_usage(const mesh__x509_t *crt, unsigned *bits);
/** Validity dates as Unix seconds (UTC). */
int64_t mesh__x509_not_before(const mesh__x509_t *crt);
int64_t mesh__x509_not_after(const mesh__x509_t *crt);
/** Serial number as "01:AB:..." (uppercase, one leading zero byte of a
 *  positive DER integer dropped, "...." after 32 bytes).  @return 0, -1. */
int mesh__x509_serial_text(const mesh__x509_t *crt, char *buf, size_t len);
/** Subject (issuer: false) or issuer DN as "O=SPIFFE, CN=x" in encoded
 *  order, " + " inside a multi-valued RDN, short names of RFC 4514 and
 *  mbedTLS (OID dotted text otherwise), bytes outside printable ASCII as
 *  '?'.  @return 0 or -1 (buffer too small: truncated). */
int mesh__x509_dn_text(const mesh__x509_t *crt, bool issuer, char *buf,
                       size_t len);
/** The certificate's DER, malloc'd (*der, free()).  @return 0 or -1. */
int mesh__x509_der(const mesh__x509_t *crt, unsigned char **der,
                   size_t *len);
/** Call cb for every extension of crt, in encoded order, with its OID's
 *  DER content bytes (55 1d 13 for basicConstraints) and its critical flag;
 *  stops at the first non-zero return.  @return that value, or 0. */
typedef int (*mesh__x509_ext_cb)(void *arg, const unsigned char *oid,
                                 size_t oidlen, bool critical);
int mesh__x509_ext_walk(const mesh__x509_t *crt, mesh__x509_ext_cb cb,
                        void *arg);
/** Same certificate (same DER)? */
bool mesh__x509_same(const mesh__x509_t *a, const mesh__x509_t *b);

/* ---- keys ---------------------------------------------------------------- */

/** Parse an unencrypted private key (PKCS#8, SEC1 or PKCS#1; PEM text with
 *  the NUL counted in len, or DER).  @return MESH_OK, MESH_ERR_PEM
 *  ("<origin>: private key is encrypted (not supported)", "<origin>:
 *  malformed private key: <library's words>"), MESH_ERR_NOMEM. */
int mesh__x509_key_parse(mesh__x509_key_t **out, const unsigned char *buf,
                         size_t len, bool pem, const char *origin,
                         mesh_status_t *st);
void mesh__x509_key_free(mesh__x509_key_t *k);
/** Does key k belong to crt's public key? */
bool mesh__x509_key_matches(const mesh__x509_key_t *k,
                            const mesh__x509_t *crt);

/* ---- verification -------------------------------------------------------- */

/** Verify chain (leaf first; the rest are untrusted intermediates) against
 *  roots at the current time: signatures, issuers being CAs, dates of
 *  every certificate, key and hash strength (RSA >= 2048, SHA-256 or
 *  better).  *flags gets MESH__X509_* for every finding (0: trusted).
 *  @return 0, or -1 when the library failed without a finding (err). */
int mesh__x509_verify(const mesh__x509_chain_t *chain,
                      const mesh__x509_chain_t *roots, uint32_t *flags,
                      char *err, size_t errlen);

/** Precompute whatever the library computes lazily on first use, so that
 *  later concurrent readers never write (key may be NULL).
 *  @return MESH_OK or MESH_ERR_TLS. */
int mesh__x509_warm(const mesh__x509_key_t *key,
                    const mesh__x509_chain_t *chain, mesh_status_t *st);

/* ---- the TLS backend's view (tls/be_*.c only) ---------------------------- */

/** The library's objects: mbedTLS: mbedtls_x509_crt * (list head) and
 *  mbedtls_pk_context *; OpenSSL: STACK_OF(X509) * and EVP_PKEY *.  Not
 *  to be modified. */
void *mesh__x509_chain_native(const mesh__x509_chain_t *ch);
void *mesh__x509_key_native(const mesh__x509_key_t *k);
/** A certificate of the library (mbedtls_x509_crt * / X509 *) as ours. */
const mesh__x509_t *mesh__x509_from_native(const void *crt);
/** A chain over the library's list without copying: mbedTLS: an
 *  mbedtls_x509_crt list; OpenSSL: a STACK_OF(X509) (references taken).
 *  The caller keeps native alive while the chain is used.  NULL on OOM. */
mesh__x509_chain_t *mesh__x509_chain_wrap(void *native);
/** Append a library certificate (mbedTLS: copied; OpenSSL: referenced).
 *  @return 0 or -1. */
int mesh__x509_chain_add_native(mesh__x509_chain_t *ch, void *crt);

#endif /* MESH_IDENTITY_X509_BE_H */
