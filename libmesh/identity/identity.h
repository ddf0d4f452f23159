/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: identity state used by tls/ and others.
 * Owned by identity/.  The contract below is what tls/ relies on.
 *
 * How tls/ uses it, per handshake:
 *   mesh__creds_t *c = mesh__creds_acquire(m);   // NULL: no identity
 *   the own chain and key go to the TLS library through
 *   mesh__x509_chain_native(c->chain) / mesh__x509_key_native(c->key)
 *   (x509_be.h: the objects of the library the build chose);
 *   ... during the handshake, decide on the peer's chain with
 *   mesh__creds_verify_peer(c, chain, id, len, st) (tls/verify.c);
 *   ... keep c until the connection no longer needs the chain/key, then
 *   mesh__creds_release(c).
 * A conf built for one creds can be cached and reused while
 * mesh__identity_generation(m) == c->generation.
 *
 * A TLS library's own verification against all_roots is NOT enough: it
 * accepts a peer of trust domain A whose chain ends at the root of trust
 * domain B.  Always decide with mesh__creds_verify_peer(), which verifies
 * only against the bundle of the peer's own trust domain and returns
 * precise codes.
 *
 * Threads: published creds are immutable and safe to use from many threads
 * at once (whatever the library computes lazily is computed before
 * publication: mesh__x509_warm, see creds.c). */
#ifndef MESH_IDENTITY_IDENTITY_H
#define MESH_IDENTITY_IDENTITY_H

#include "core/core.h"
#include "identity/x509_be.h"

typedef struct mesh__bundle {
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  mesh__x509_chain_t *roots;
} mesh__bundle_t;

/* One loaded identity: SVID chain, key and trust bundles.  Immutable once
 * published; refcounted so in-flight handshakes keep theirs across a
 * rotation. */
typedef struct mesh__creds {
  _Atomic uint32_t refs;
  uint64_t generation;        /* increases with every successful reload */
  mesh__x509_chain_t *chain; /* leaf first, then intermediates */
  mesh__x509_key_t *key;      /* NULL in a bundles-only set */
  char id[MESH_SPIFFE_ID_MAX + 1]; /* the leaf's SPIFFE ID */
  char td[MESH_TRUST_DOMAIN_MAX + 1];
  int64_t not_before, not_after;   /* leaf validity, Unix seconds */
  mesh__bundle_t *bundles;
  size_t nbundles;
  mesh__x509_chain_t *all_roots; /* union of every bundle */
} mesh__creds_t;

/** Current credentials with a reference taken (NULL if none loaded, or m
 *  is NULL).  Any thread; one mutex-protected pointer read. */
mesh__creds_t *mesh__creds_acquire(mesh_t *m);
/** Drop a reference; the last one frees.  NULL is a no-op.  Any thread. */
void mesh__creds_release(mesh__creds_t *c);
/** Take one more reference on c (returns c; NULL is a no-op). */
mesh__creds_t *mesh__creds_ref(mesh__creds_t *c);

/** Bundle of a trust domain or NULL. */
const mesh__bundle_t *mesh__creds_bundle(const mesh__creds_t *c,
                                         const char *td);

/** Check a leaf against the X.509-SVID rules (exactly one URI SAN holding a
 *  valid SPIFFE ID, not a CA, digitalSignature key usage, ...) and copy its
 *  SPIFFE ID out.  @return MESH_OK, MESH_ERR_SVID, MESH_ERR_SPIFFE_ID. */
int mesh__svid_leaf_check(const mesh__x509_t *leaf, char *id, size_t len,
                          mesh_status_t *st);

/** Full verification of a peer chain (leaf first): SVID rules, then the
 *  chain against the bundle of the leaf's trust domain only, with validity
 *  dates.  Copies the SPIFFE ID.  @return MESH_OK, MESH_ERR_SVID,
 *  MESH_ERR_SPIFFE_ID, MESH_ERR_TRUST_DOMAIN, MESH_ERR_CERT_UNTRUSTED,
 *  MESH_ERR_CERT_EXPIRED, MESH_ERR_CERT_NOT_YET_VALID,
 *  MESH_ERR_NO_PEER_CERT (peer NULL), MESH_ERR_INVALID_ARG (c NULL),
 *  MESH_ERR_BUFFER.  Messages start with "peer <id>". */
int mesh__creds_verify_peer(const mesh__creds_t *c,
                            const mesh__x509_chain_t *peer, char *id,
                            size_t len, mesh_status_t *st);

/** Map verify findings (MESH__X509_*) to a mesh code plus a message.
 *  Precedence: NOT_TRUSTED -> MESH_ERR_CERT_UNTRUSTED, EXPIRED ->
 *  MESH_ERR_CERT_EXPIRED, FUTURE -> MESH_ERR_CERT_NOT_YET_VALID, anything
 *  else -> MESH_ERR_CERT_UNTRUSTED; 0 -> MESH_OK. */
int mesh__x509_flags_to_code(uint32_t flags, mesh_status_t *st);

/* ---- identity part: generation and change notification -----------------
 * Two ways for another part to learn of a rotation:
 *  - poll: mesh__identity_generation(m) is an atomic read; compare it with
 *    the generation a cached object was built from (cheap, any thread);
 *  - push: register a callback at init time (from a part's init, before
 *    the worker starts); it runs after every successful (re)load, on the
 *    thread that reloaded (the worker for file changes, the caller of
 *    mesh_identity_reload), with the identity's reload lock held: keep it
 *    short and do not call mesh_identity_reload from it.  c is borrowed
 *    for the call; take mesh__creds_ref() to keep it. */

/** Generation of the published creds (0: none).  Any thread. */
uint64_t mesh__identity_generation(mesh_t *m);

typedef void (*mesh__identity_change_fn)(mesh_t *m, mesh__creds_t *c,
                                         void *user);
/** @return MESH_OK, MESH_ERR_NOT_FOUND (no identity section),
 *          MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG. */
int mesh__identity_on_change(mesh_t *m, mesh__identity_change_fn fn,
                             void *user);

/* ---- building creds without a context (tests, tools) ------------------ */

typedef struct mesh__creds_src {
  const char *cert;   /* PEM chain, leaf first */
  const char *key;    /* PEM or DER private key, unencrypted */
  const char *bundle; /* bundle of the SVID's own trust domain, or NULL */
  const char *const *bundle_tds;   /* federation: trust domain names... */
  const char *const *bundle_paths; /* ...and their PEM bundle files */
  size_t nbundles;
  /* A SPIFFE trust bundle map file (gRFC A87, {"trust_domains": {TD:
   * JWKS}}): when set it is the only source of trust bundles (bundle and
   * bundle_tds/paths are not read, as A87 ignores ca_certificate_file). */
  const char *bundle_map;
  bool allow_expired; /* accept an own SVID outside its validity dates */
} mesh__creds_src_t;

/** Load and check everything: SVID rules on the chain, key matches leaf,
 *  bundles parse and hold CA certificates, the chain verifies against the
 *  bundle of its own trust domain.  Messages start with the file name.
 *  The result has one reference.
 *  @return MESH_OK, MESH_ERR_IO, MESH_ERR_PEM, MESH_ERR_SVID,
 *          MESH_ERR_SPIFFE_ID, MESH_ERR_KEY_MISMATCH, MESH_ERR_TRUST_DOMAIN,
 *          MESH_ERR_CERT_UNTRUSTED, MESH_ERR_CERT_EXPIRED,
 *          MESH_ERR_CERT_NOT_YET_VALID, MESH_ERR_CONFIG (own trust domain
 *          given twice), MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG, MESH_ERR_TLS. */
int mesh__creds_load(const mesh__creds_src_t *src, uint64_t generation,
                     mesh__creds_t **out, mesh_status_t *st);

/* ---- helpers shared inside identity/ (and usable by tls/) ------------- */

/** Validate a trust domain name alone (SPIFFE-ID 2.1 and 2.3).
 *  @return MESH_OK, MESH_ERR_SPIFFE_ID, MESH_ERR_INVALID_ARG (NULL). */
int mesh__spiffe_td_validate(const char *td, mesh_status_t *st);

/** X.509-SVID rules for a signing (CA) certificate: CA:TRUE, keyCertSign
 *  if keyUsage is present, at most one URI SAN whose ID has no path.
 *  @return MESH_OK or MESH_ERR_SVID. */
int mesh__svid_signing_check(const mesh__x509_t *crt, mesh_status_t *st);

/** Leaf check plus signing check of every further certificate.
 *  @return as mesh__svid_leaf_check / mesh__svid_signing_check. */
int mesh__svid_chain_check(const mesh__x509_chain_t *chain, char *id,
                           size_t len, mesh_status_t *st);

/** Verify chain against one bundle; `ignore` masks MESH__X509_* findings
 *  (e.g. dates when loading an expired own SVID).  id is for messages.
 *  @return MESH_OK, MESH_ERR_CERT_UNTRUSTED, MESH_ERR_CERT_EXPIRED,
 *          MESH_ERR_CERT_NOT_YET_VALID. */
int mesh__svid_verify(const mesh__x509_chain_t *chain,
                      const mesh__bundle_t *bundle, const char *id,
                      uint32_t ignore, mesh_status_t *st);

/** Register what identity shows the readers with telemetry: the gauge
 *  mesh_svid_expires_in_seconds and the "identity" view; called from the
 *  identity part's init (views.c). */
void mesh__identity_register_gauges(mesh_t *m);

/* ---- pushing sources (the Workload API lives in workload/) ---------------
 * A source that is not the PEM files ("identity.source": "workload_api")
 * builds creds from DER and pushes them: they are published through the
 * same path as a file rotation (new handshakes use them at once, in-flight
 * connections keep theirs).  Until the first push mesh__creds_acquire()
 * returns NULL and dials fail with MESH_ERR_SVID ("no SVID loaded"). */

typedef struct mesh__der_bundle {
  const char *td;        /* trust domain name, "example.org" */
  const uint8_t *der;    /* concatenated DER certificates */
  size_t len;
} mesh__der_bundle_t;

typedef struct mesh__creds_der {
  const char *origin;    /* prefix of error messages, e.g. the endpoint */
  const uint8_t *chain;  /* concatenated DER certificates, leaf first */
  size_t chain_len;
  const uint8_t *key;    /* PKCS#8 (or SEC1/PKCS#1) DER private key */
  size_t key_len;
  const mesh__der_bundle_t *bundles; /* the own trust domain's and others */
  size_t nbundles;
} mesh__creds_der_t;

/* ---- SPIFFE trust bundle maps (gRFC A87) -------------------------------
 * {"trust_domains": {"example.org": {"keys": [{"kty": "EC", "use":
 * "x509-svid", "x5c": ["<base64 DER>"]}], "spiffe_sequence": 1}, ...}}.
 * Only keys with "use": "x509-svid" count (a bundle may carry JWT keys
 * too); each such key holds exactly one certificate in x5c (X509-SVID
 * 6.1).  Anything malformed refuses the whole map (A87 ignores the trust
 * domain; refusing keeps the last good map in force, which is safer).
 * A trust domain with no X.509 key is left out; an empty map is valid. */
typedef struct mesh__bundle_map {
  mesh__der_bundle_t *v; /* td and der point into this object */
  size_t n;
} mesh__bundle_map_t;

/** Parse a map's JSON text; origin prefixes the messages (the file name).
 *  @return MESH_OK, MESH_ERR_PARSE (bad JSON, base64, structure),
 *          MESH_ERR_SPIFFE_ID (bad trust domain), MESH_ERR_NOMEM. */
int mesh__bundle_map_parse(const char *text, size_t len, const char *origin,
                           mesh__bundle_map_t *out, mesh_status_t *st);
/** Read and parse a map file.  @return as above, or MESH_ERR_IO. */
int mesh__bundle_map_load(const char *path, mesh__bundle_map_t *out,
                          mesh_status_t *st);
void mesh__bundle_map_free(mesh__bundle_map_t *m);

/** Build creds from DER with the checks of mesh__creds_load() (SVID rules,
 *  key matches, bundles are CAs, the chain verifies against its own trust
 *  domain's bundle, dates included).  One reference.
 *  @return MESH_OK, MESH_ERR_PEM, MESH_ERR_SVID, MESH_ERR_SPIFFE_ID,
 *          MESH_ERR_KEY_MISMATCH, MESH_ERR_TRUST_DOMAIN,
 *          MESH_ERR_CERT_UNTRUSTED, MESH_ERR_CERT_EXPIRED,
 *          MESH_ERR_CERT_NOT_YET_VALID, MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG. */
int mesh__creds_from_der(const mesh__creds_der_t *src, uint64_t generation,
                         mesh__creds_t **out, mesh_status_t *st);

/** Trust bundles without an SVID (FetchX509Bundles, "bundles_only"): a
 *  creds object whose chain and key are empty and id is "", holding the
 *  bundles (each checked as mesh__creds_from_der checks them) and their
 *  union.  One reference.  @return MESH_OK, MESH_ERR_PARSE (no bundle),
 *  MESH_ERR_PEM, MESH_ERR_SVID (a root that is not a CA), MESH_ERR_CONFIG
 *  (a trust domain twice), MESH_ERR_SPIFFE_ID, MESH_ERR_NOMEM. */
int mesh__creds_trust_from_der(const mesh__der_bundle_t *b, size_t n,
                               const char *origin, uint64_t generation,
                               mesh__creds_t **out, mesh_status_t *st);
/** Publish a bundles-only set (takes its reference; the previous one is
 *  released) and wake mesh__identity_wait().  @return MESH_OK or
 *  MESH_ERR_NOT_FOUND (no identity section: t released). */
int mesh__identity_push_trust(mesh_t *m, mesh__creds_t *t);
/** The bundles-only set with a reference, NULL when none (any thread). */
mesh__creds_t *mesh__identity_trust_acquire(mesh_t *m);

/* JWT-SVIDs for outbound calls: the source that can mint them (the
 * Workload API, above) registers here; the HTTP client (below it) asks
 * here for the services configured to carry one. */
typedef int (*mesh__jwt_svid_fn)(mesh_t *m, const char *audience,
                                 char **token, mesh_status_t *st);
/** Set (fn NULL: clear) the provider.  Called at part init / fini, when no
 *  request runs. */
void mesh__identity_set_jwt_provider(mesh_t *m, mesh__jwt_svid_fn fn);
/** A JWT-SVID for audience (*token malloc'd) from the provider.
 *  @return the provider's code, or MESH_ERR_NOT_FOUND (no provider: no
 *          Workload API source).  Any thread. */
int mesh__identity_jwt_svid(mesh_t *m, const char *audience, char **token,
                            mesh_status_t *st);

/** Is ep a Workload API endpoint ("unix:///abs/path", "tcp://IP:port")?
 *  @return MESH_OK or MESH_ERR_CONFIG with the reason in st. */
int mesh__wl_endpoint_check(const char *ep, mesh_status_t *st);
/** "files", "workload_api"; "" without an identity section. */
const char *mesh__identity_source(mesh_t *m);
/** Build and publish a pushed credential set (any thread).  On failure the
 *  published creds stay.  @return as mesh__creds_from_der(), or
 *  MESH_ERR_NOT_FOUND (no identity section). */
int mesh__identity_push(mesh_t *m, const mesh__creds_der_t *src,
                        mesh_status_t *st);
/** Withdraw the published SVID (the source no longer grants it: "every
 *  message is a complete set"): dials fail with MESH_ERR_SVID until the
 *  next push.  Logs svid_withdrawn with the reason. */
void mesh__identity_clear(mesh_t *m, const char *reason);
/** The source's state for the "identity" view ("connected", "retrying in
 *  2000 ms: UNAVAILABLE ..."); copied. */
void mesh__identity_set_source_state(mesh_t *m, const char *state);
/** Copy of the source state ("" when none). */
void mesh__identity_source_state(mesh_t *m, char *out, size_t len);
/** Wait up to timeout_ms (0: do not wait) for published creds.
 *  @return true when there are some. */
bool mesh__identity_wait(mesh_t *m, int64_t timeout_ms);

/* Identity from files a part above names ("identity.source": "xds": the
 * xDS bootstrap's file_watcher certificate provider, gRFC A29/A87).  The
 * part registers the files at its init; identity then watches them like
 * its own PEM files: loaded now, re-read when they change (checked every
 * interval_ms), a bad set keeps the last good one (svid_reload_failed). */
typedef struct mesh__identity_files {
  const char *origin;     /* for messages and the view: 'certificate
                             provider "default" (file_watcher)' */
  const char *cert, *key; /* PEM chain (leaf first) and private key */
  const char *bundle;     /* CA file: the own trust domain's bundle, or NULL */
  const char *bundle_map; /* SPIFFE trust bundle map (wins over bundle) */
  int64_t interval_ms;    /* > 0 */
} mesh__identity_files_t;
/** Load the files now (mesh_new fails with the reason if they do not make
 *  an identity) and watch them.  Once per context, at part init.
 *  @return MESH_OK, MESH_ERR_NOT_FOUND (no identity section),
 *          MESH_ERR_INVALID_ARG (not a source that takes files from above,
 *          or called twice), or as mesh__creds_load(). */
int mesh__identity_watch_files(mesh_t *m, const mesh__identity_files_t *f,
                               mesh_status_t *st);

/* Other file sets watched like the identity's files (fwatch.c): fn runs
 * on the loop thread, every interval_ms, when any file's stat() signature
 * changed since the last look (the first look is at mesh__fwatch_new),
 * and also at every interval, changed or not, while the last call
 * returned false (the load failed: gRPC's file_watcher retries every
 * refresh_interval).  The caller loads the files and keeps its last good
 * state on failure.  mesh__fwatch_retry (any thread): a load elsewhere
 * failed, call fn at the next interval.  Free with mesh__fwatch_free
 * (part fini: the loop is stopped). */
typedef struct mesh__fwatch mesh__fwatch_t;
typedef bool (*mesh__fwatch_fn)(mesh_t *m, bool changed, void *user);
void mesh__fwatch_retry(mesh__fwatch_t *w);
bool mesh__fwatch_failed(const mesh__fwatch_t *w);
int mesh__fwatch_new(mesh_t *m, const char *const *paths, size_t n,
                     int64_t interval_ms, mesh__fwatch_fn fn, void *user,
                     mesh__fwatch_t **out, mesh_status_t *st);
void mesh__fwatch_free(mesh_t *m, mesh__fwatch_t *w);

/* JWT bundles (FetchJWTBundles): trust domain -> JWKS JSON, one immutable,
 * refcounted set; a new set replaces the whole old one. */
typedef struct mesh__jwt_bundle {
  char td[MESH_TRUST_DOMAIN_MAX + 1]; /* "example.org" (no spiffe://) */
  char *jwks;                         /* NUL-terminated JSON */
  size_t jwks_len;
} mesh__jwt_bundle_t;

typedef struct mesh__jwt_bundles {
  _Atomic uint32_t refs;
  uint64_t generation; /* increases with every update */
  mesh__jwt_bundle_t *v;
  size_t n;
} mesh__jwt_bundles_t;

/** A set for n bundles (one reference, generation 0).  NULL on OOM. */
mesh__jwt_bundles_t *mesh__jwt_bundles_new(size_t n);
/** Current set with a reference taken; NULL when none (any thread). */
mesh__jwt_bundles_t *mesh__identity_jwt_bundles(mesh_t *m);
/** Drop a reference.  NULL is a no-op. */
void mesh__jwt_bundles_release(mesh__jwt_bundles_t *b);
/** JWKS JSON of trust domain td in b, or NULL. */
const char *mesh__jwt_bundles_find(const mesh__jwt_bundles_t *b,
                                   const char *td);
/** Publish b (takes its reference; sets its generation) and hand it to the
 *  registered consumer.  @return MESH_OK, MESH_ERR_NOT_FOUND (no identity
 *  section: b is released). */
int mesh__identity_push_jwt_bundles(mesh_t *m, mesh__jwt_bundles_t *b);

/** A consumer of JWT bundle sets: called with each new set (borrowed: take
 *  a reference to keep it), in publication order, on the pushing thread
 *  (the Workload API's stream thread), never concurrently with itself.  It
 *  must not call mesh__identity_on_jwt_bundles. */
typedef void (*mesh__jwt_bundles_fn)(mesh__jwt_bundles_t *b, void *user);
/** Register the consumer (request authentication, which sits below the
 *  Workload API and so cannot be called by it directly; the Workload API
 *  pushes here, and identity, below both, forwards).  The current set, if
 *  any, is delivered before this returns.  fn NULL unregisters: after the
 *  return the old fn is not running and will not be called again.  One
 *  consumer per context (a second registration replaces the first).
 *  @return MESH_OK or MESH_ERR_NOT_FOUND (no identity section). */
int mesh__identity_on_jwt_bundles(mesh_t *m, mesh__jwt_bundles_fn fn,
                                  void *user);

#endif /* MESH_IDENTITY_IDENTITY_H */
