/* SPDX-License-Identifier: Apache-2.0 */
/* The mesh's cipher suites, in its order of preference: mesh policy,
 * written once for every backend (tls/backend.h).  Each backend
 * translates the names into its own (mbedTLS ids, OpenSSL cipher
 * strings) and leaves out a suite its library was built without.
 *
 * TLS 1.2: ECDHE key exchange with AEAD ciphers only, in Envoy's default
 * order by cipher (AES-128-GCM, then AES-256-GCM, then ChaCha20-Poly1305;
 * Envoy's BoringSSL puts ChaCha20 in one equal-preference group with
 * AES-128-GCM, which neither mbedTLS nor OpenSSL can express, so it comes
 * last here, as in the TLS 1.3 list).  ECDSA before RSA for each cipher:
 * SPIFFE SVIDs are usually P-256 (SPIRE's default, and our dev CA's); the
 * RSA variants keep SVIDs from RSA CAs working.  A server picks by its own
 * order (the first of this list the client also offers), on both
 * backends, as Envoy's server contexts do (SSL_OP_CIPHER_SERVER_PREFERENCE).
 *
 * TLS 1.3: AES-128-GCM first (OpenSSL's default puts AES-256 first).  A
 * TLS 1.3 server takes the client's first choice on both backends
 * (mbedTLS 3 has no server preference in 1.3).
 *
 * Names: the IANA names with '-' for '_', as mesh_conn_cipher() reports
 * them on either backend. */
#include "tls/tls.h"

const char *const mesh__tls_suites12[] = {
    "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
    "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
    "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
    "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
    "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
    "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
    NULL,
};

const char *const mesh__tls_suites13[] = {
    "TLS-AES-128-GCM-SHA256",
    "TLS-AES-256-GCM-SHA384",
    "TLS-CHACHA20-POLY1305-SHA256",
    NULL,
};
