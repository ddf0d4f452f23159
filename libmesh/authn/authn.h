/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: request authentication (Istio RequestAuthentication).
 *
 *   (base64url)  strict, over core/b64.c (RFC 7515 section 2: no
 *                padding, no white space, unused bits zero)
 *   jws_mbedtls.c / jws_openssl.c  the ONE file that calls the crypto
 *                library, picked with the TLS backend (configure
 *                --with-tls): public key import (RSA n/e, EC P-256/P-384
 *                x/y) and signature checks, the same functions, verdicts
 *                and reasons in both (mesh__jwk_key_rsa/_ec,
 *                mesh__jwk_key_free, mesh__jws_verify, mesh__jws_sha256)
 *   jwks.c       JWKS documents -> key sets (bad keys skipped, reason given)
 *   jwt.c        compact JWS parse + verify + claim checks: bytes in,
 *                verdict out, no I/O
 *   config.c     the "authn" section (jwt_rules), checked with JSON paths
 *   authn.c      the part: rules, key sources (inline, JWKS over libcurl on
 *                the worker, JWT bundles), the per-request check
 *
 * Layering: policy layer, beside authz.  Nothing here calls http, authz or
 * anything above; the HTTP layer calls mesh__authn_check_request() and hands
 * the result to authz as plain attributes (principal string, claims tree). */
#ifndef MESH_AUTHN_AUTHN_H
#define MESH_AUTHN_AUTHN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ---- limits --------------------------------------------------------------- */
#define MESH__JWT_MAX_TOKEN 16384u  /* bytes of a compact token */
#define MESH__JWT_MAX_HEADER 2048u  /* bytes of the decoded JOSE header */
#define MESH__JWT_CLOCK_SKEW_S 60   /* Envoy jwt_authn / jwt_verify_lib */
#define MESH__JWKS_MAX_BYTES (1u << 20)
#define MESH__JWKS_MAX_KEYS 64u
#define MESH__JWK_RSA_MIN_BITS 2048u
/* OpenSSL will not verify with a public exponent over 64 bits when the
 * modulus is over 3072 bits; both crypto seams refuse such keys. */
#define MESH__JWK_RSA_BIG_N_BITS 3072
#define MESH__JWK_RSA_BIG_N_MAX_E_BITS 64

/* ---- base64url (core/b64.c) ------------------------------------------------ */

/** Decode strict base64url (no '=' padding, alphabet [A-Za-z0-9-_], the
 *  unused low bits of the last character zero, length % 4 != 1).
 *  out must hold (n * 3) / 4 bytes.  @return the decoded length or -1. */
static inline long mesh__b64url_decode(const char *in, size_t n,
                                       uint8_t *out) {
  return mesh__b64_dec_into(in, n, MESH__B64_URL | MESH__B64_STRICT, out);
}

/* ---- keys and signatures (jws_<backend>.c: the crypto seam) ---------------- */

enum mesh__jws_alg {
  MESH__JWS_NONE = 0, /* unknown or refused */
  MESH__JWS_RS256,
  MESH__JWS_PS256,
  MESH__JWS_ES256,
  MESH__JWS_ES384,
  MESH__JWS_RS384,
  MESH__JWS_RS512,
  MESH__JWS_PS384,
  MESH__JWS_PS512,
  MESH__JWS_ES512,
  MESH__JWS_ALG_COUNT
};

/** The algorithm named by a JOSE "alg", or MESH__JWS_NONE for everything
 *  refused ("none", HS*, EdDSA, ...). */
int mesh__jws_alg_parse(const char *name);
const char *mesh__jws_alg_name(int alg);

typedef struct mesh__jwk_key mesh__jwk_key_t; /* the backend's public key */

enum mesh__jwk_kind {
  MESH__JWK_RSA = 1,
  MESH__JWK_EC256,
  MESH__JWK_EC384,
  MESH__JWK_EC521
};

/** What an algorithm needs, for the JWKS checks, the key choice and both
 *  crypto seams: the key kind (MESH__JWK_*, 0 for MESH__JWS_NONE), the
 *  hash's size in bits (256, 384, 512), whether it is RSASSA-PSS. */
int mesh__jws_alg_kind(int alg);
int mesh__jws_alg_hash_bits(int alg);
bool mesh__jws_alg_pss(int alg);
/** Bytes of one coordinate (and of r, of s) of an EC kind: 32, 48, 66. */
static inline size_t mesh__jwk_ec_size(int kind) {
  return kind == MESH__JWK_EC256 ? 32 : kind == MESH__JWK_EC384 ? 48 : 66;
}

/** Import an RSA public key from big-endian n and e.
 *  @return MESH_OK, MESH_ERR_PARSE (why set: not a valid key, modulus under
 *          MESH__JWK_RSA_MIN_BITS), MESH_ERR_NOMEM. */
int mesh__jwk_key_rsa(const uint8_t *n, size_t nlen, const uint8_t *e,
                      size_t elen, mesh__jwk_key_t **out, const char **why);
/** Import an EC public key (kind MESH__JWK_EC256/384/521) from x and y (each
 *  exactly the coordinate size).  @return as mesh__jwk_key_rsa (not on the
 *  curve: MESH_ERR_PARSE). */
int mesh__jwk_key_ec(int kind, const uint8_t *x, size_t xlen,
                     const uint8_t *y, size_t ylen, mesh__jwk_key_t **out,
                     const char **why);
void mesh__jwk_key_free(mesh__jwk_key_t *k);

/** SHA-256 of in (the token cache's key).  @return MESH_OK or
 *  MESH_ERR_INTERNAL. */
int mesh__jws_sha256(const void *in, size_t n, uint8_t out[32]);

/** Verify sig over msg with key for alg.  The key's kind must fit alg (RSA
 *  for RS* and PS*, P-256 for ES256, P-384 for ES384, P-521 for ES512); an
 *  ES signature is the JWS r||s form.  Pure.  @return MESH_OK or MESH_ERR_DENIED. */
int mesh__jws_verify(int alg, int kind, const mesh__jwk_key_t *key,
                     const uint8_t *msg, size_t msglen, const uint8_t *sig,
                     size_t siglen);

/* ---- key sets (jwks.c) ----------------------------------------------------- */

typedef struct mesh__jwk {
  char *kid;   /* NULL: none */
  int kind;    /* MESH__JWK_* */
  int alg;     /* MESH__JWS_* from "alg", MESH__JWS_NONE when absent */
  mesh__jwk_key_t *key;
} mesh__jwk_t;

typedef struct mesh__jwks {
  _Atomic uint32_t refs;
  uint64_t serial; /* unique per parsed set, never 0 (the token cache's key) */
  mesh__jwk_t *v;
  size_t n;
} mesh__jwks_t;

/** Called once per key that was skipped: its index and why. */
typedef void (*mesh__jwks_skip_fn)(size_t index, const char *why, void *user);

/** Parse a JWKS document ({"keys": [...]}).  Keys with a bad or unsupported
 *  shape are skipped (skip called with the reason); "use" other than "sig"
 *  skips too.  @return MESH_OK (*out, refs 1, at least one key),
 *  MESH_ERR_PARSE (not JSON, no "keys" array, no usable key: why set),
 *  MESH_ERR_NOMEM. */
int mesh__jwks_parse(const char *buf, size_t len, mesh__jwks_t **out,
                     mesh__jwks_skip_fn skip, void *user, const char **why);
void mesh__jwks_ref(mesh__jwks_t *s);
void mesh__jwks_unref(mesh__jwks_t *s);

/* ---- tokens (jwt.c) -------------------------------------------------------- */

/* Why a token was refused (stable names: logs, metrics, tests). */
enum mesh__jwt_err {
  MESH__JWT_OK = 0,
  MESH__JWT_MALFORMED,    /* not three base64url parts, bad JSON */
  MESH__JWT_TOO_LARGE,    /* token or header over the caps */
  MESH__JWT_ALG,          /* alg none, HS*, unknown */
  MESH__JWT_NO_ISSUER,    /* no rule for its iss */
  MESH__JWT_UNKNOWN_KID,  /* no key with its kid (after a refresh) */
  MESH__JWT_NO_KEYS,      /* the issuer's keys are not available */
  MESH__JWT_SIGNATURE,    /* no key verified it */
  MESH__JWT_EXPIRED,
  MESH__JWT_NOT_YET_VALID,
  MESH__JWT_AUDIENCE,
  MESH__JWT_ERR_COUNT
};
const char *mesh__jwt_err_name(int e);

/* A token split and decoded but not verified yet. */
typedef struct mesh__jwt {
  int alg;
  char *kid;              /* NULL: none */
  cJSON *claims;          /* the payload (an object), owned */
  const char *iss;        /* borrowed from claims, NULL: none */
  const char *sig_input;  /* borrowed from the token: header "." payload */
  size_t sig_input_len;
  uint8_t *sig;
  size_t sig_len;
} mesh__jwt_t;

/** Split, decode and parse a compact token (no verification).
 *  @return MESH__JWT_OK, _MALFORMED, _TOO_LARGE, _ALG (MESH__JWT_* codes). */
int mesh__jwt_decode(const char *tok, size_t len, mesh__jwt_t *out);
void mesh__jwt_clear(mesh__jwt_t *t);

/** Signature: the key with the token's kid (or, without kid, any key whose
 *  kind fits) must verify it.  @return MESH__JWT_OK, _UNKNOWN_KID,
 *  _SIGNATURE, _NO_KEYS (keys NULL or empty). */
int mesh__jwt_check_sig(const mesh__jwt_t *t, const mesh__jwks_t *keys);

/** exp / nbf (and iat in the future) against now with skew seconds; aud
 *  against audiences (n 0: any).  @return MESH__JWT_OK, _EXPIRED,
 *  _NOT_YET_VALID, _AUDIENCE, _MALFORMED (a time claim that is not a
 *  number). */
int mesh__jwt_check_claims(const mesh__jwt_t *t, int64_t now_s, int64_t skew,
                           const char *const *audiences, size_t naud);

/* ---- verified-token cache (cache.c) ------------------------------------------
 * Token hash -> "its signature verified with key set <serial>", bounded,
 * lock-free, any thread.  Claims are not cached: they are checked on every
 * request. */
typedef struct mesh__jwt_cache mesh__jwt_cache_t;
#define MESH__JWT_CACHE_SLOTS 1024

/** A cache of slots entries (rounded up to a power of two).  NULL: OOM. */
mesh__jwt_cache_t *mesh__jwt_cache_new(size_t slots);
void mesh__jwt_cache_free(mesh__jwt_cache_t *c);
/** Did the token with SHA-256 h verify with key set serial, and is the
 *  entry still good at now_s?  c NULL: false. */
bool mesh__jwt_cache_hit(mesh__jwt_cache_t *c, const uint8_t h[32],
                         uint64_t serial, int64_t now_s);
/** Remember that h verified with serial, good until until_s.  May drop the
 *  entry (slot busy); evicts the slot's previous token (counted as an
 *  eviction when that entry was still good at now_s). */
void mesh__jwt_cache_put(mesh__jwt_cache_t *c, const uint8_t h[32],
                         uint64_t serial, int64_t until_s, int64_t now_s);
/** Lookups that hit / missed, entries evicted, since creation. */
void mesh__jwt_cache_stats(mesh__jwt_cache_t *c, uint64_t *hits,
                           uint64_t *misses, uint64_t *evictions);
/** Count into m's metrics too: mesh_authn_token_cache_hits_total,
 *  _misses_total, _evictions_total.  Before the cache is used. */
void mesh__jwt_cache_metrics(mesh__jwt_cache_t *c, mesh_t *m);

/* ---- the part (config.c, authn.c) ------------------------------------------ */

typedef struct mesh__authn_loc {
  char *name;   /* header or query parameter name */
  char *prefix; /* headers: the value must start with it ("" none) */
} mesh__authn_loc_t;

typedef struct mesh__authn_claim_hdr {
  char *header;
  char *claim;
} mesh__authn_claim_hdr_t;

enum mesh__authn_keysrc {
  MESH__AUTHN_KEYS_INLINE = 0,
  MESH__AUTHN_KEYS_URI,
  MESH__AUTHN_KEYS_SPIFFE, /* JWT bundles from the Workload API */
};

typedef struct mesh__authn_rule {
  char *issuer;
  char **audiences;
  size_t naud;
  int keysrc;
  char *jwks_uri;      /* KEYS_URI */
  char *trust_domain;  /* KEYS_SPIFFE */
  mesh__jwks_t *inline_keys; /* KEYS_INLINE */
  mesh__authn_loc_t *hdrs;   /* default: Authorization "Bearer " */
  size_t nhdrs;
  char **params;             /* default: access_token */
  size_t nparams;
  mesh__authn_claim_hdr_t *out;
  size_t nout;
  bool forward;
} mesh__authn_rule_t;

typedef struct mesh__authn_cfg {
  mesh__authn_rule_t *rules;
  size_t n;
  int64_t clock_skew_s;
  int64_t refresh_ms;      /* JWKS refresh period */
  int64_t fetch_timeout_ms;
  int64_t refetch_min_ms;  /* unknown kid: at most one refetch per this */
  size_t cache_slots;      /* verified-token cache, 0: none */
} mesh__authn_cfg_t;

/** Validate an "authn" section; when out is non-NULL and there was no
 *  error, build it.  @return MESH_OK, MESH_ERR_CONFIG, MESH_ERR_NOMEM. */
int mesh__authn_cfg_build(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                          mesh__authn_cfg_t **out);
void mesh__authn_cfg_free(mesh__authn_cfg_t *a);

/* What the request offers (borrowed): headers and the raw query. */
typedef struct mesh__authn_input {
  /* first value of a header (case-insensitive name), NULL: absent */
  const char *(*header)(const char *name, void *ctx);
  void *ctx;
  const char *query; /* after '?', NULL: none */
  size_t query_len;
} mesh__authn_input_t;

#define MESH__AUTHN_OUT_MAX 16

/* The verdict of one request, owned by the caller (mesh__authn_result_free).
 * authz reads principal/claims as plain attributes. */
typedef struct mesh__authn_result {
  bool authenticated;  /* a token was present and verified */
  char *principal;     /* "iss/sub" (Istio's request principal) */
  cJSON *claims;       /* the verified payload */
  int err;             /* MESH__JWT_* of a refusal */
  /* the token's location, to remove it (forward_original_token false) */
  const char *strip_header; /* borrowed name, NULL: keep */
  /* output_claim_to_headers: header names borrowed from the config (valid
   * while the context lives), values owned */
  const char *out_name[MESH__AUTHN_OUT_MAX];
  char *out_value[MESH__AUTHN_OUT_MAX];
  size_t nout;
} mesh__authn_result_t;

void mesh__authn_result_free(mesh__authn_result_t *r);

extern const mesh__part_t mesh__authn_part;

/** Is request authentication configured? */
bool mesh__authn_active(mesh_t *m);

/** Authenticate one request as Istio does: no token anywhere -> MESH_OK,
 *  not authenticated; a token in a configured location that fails (or
 *  whose issuer has no rule there) -> MESH_ERR_DENIED (answer 401);
 *  otherwise MESH_OK with the principal and claims.  May wait (bounded by
 *  the rule's fetch timeout) for the first JWKS fetch of an issuer.  Any
 *  thread.  st gets the reason. */
int mesh__authn_check_request(mesh_t *m, const mesh__authn_input_t *in,
                              mesh__authn_result_t *out, mesh_status_t *st);

/** Pure variant for tests and the fuzzer: the same decision over a config
 *  and a key lookup, at time now_s. */
typedef const mesh__jwks_t *(*mesh__authn_keys_fn)(const mesh__authn_rule_t *r,
                                                   bool refetch, void *user);
int mesh__authn_decide(const mesh__authn_cfg_t *cfg,
                       const mesh__authn_input_t *in, int64_t now_s,
                       mesh__authn_keys_fn keys, void *user,
                       mesh__authn_result_t *out);
/** mesh__authn_decide with a verified-token cache (NULL: none): a token
 *  whose signature verified with the key set the lookup returns now skips
 *  the signature check; its claims are still checked at now_s. */
int mesh__authn_decide_cached(const mesh__authn_cfg_t *cfg,
                              const mesh__authn_input_t *in, int64_t now_s,
                              mesh__authn_keys_fn keys, void *user,
                              mesh__jwt_cache_t *cache,
                              mesh__authn_result_t *out);

/* ---- JWT bundles from the Workload API: the seam ---------------------------
 * The workload part (protocols layer, above this one) pushes the JWT bundles
 * it receives from FetchJWTBundles: trust domain -> JWKS text.  Called on any
 * thread; a NULL jwks removes the trust domain.  Rules with
 * "spiffe_bundle": "<trust domain>" verify with the last bundle pushed;
 * until one arrives their tokens are refused (fail closed). */
int mesh__authn_set_jwt_bundle(mesh_t *m, const char *trust_domain,
                               const char *jwks, size_t len);

#endif /* MESH_AUTHN_AUTHN_H */
