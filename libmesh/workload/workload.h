/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the SPIFFE Workload API part (protocols layer, above
 * grpc).  A client of an agent's Workload Endpoint (SPIRE, Istio's agent):
 * plaintext gRPC (h2c) over a unix socket or TCP, every request carrying
 * the "workload.spiffe.io: true" metadata the spec demands.
 *
 * - wl_grpc.c: one gRPC call over an h2c session (server streams and
 *   unary), built on http/h2.h and grpc's framing helpers;
 * - wl_decode.c: protobuf-c decoding of the responses into what identity
 *   takes (mesh__creds_der_t, mesh__jwt_bundles_t);
 * - wl_client.c: the part: the FetchX509SVID and FetchJWTBundles streams on
 *   their own threads, retries with backoff like go-spiffe, state in
 *   metrics, a view and one log line per change;
 * - wl_jwt.c: FetchJWTSVID with a cache per audience. */
#ifndef MESH_WORKLOAD_WORKLOAD_H
#define MESH_WORKLOAD_WORKLOAD_H

#include <pthread.h>

#include "grpc/grpc.h" /* also the h2 session API (http/h2.h) */
#include "identity/identity.h"

#define MESH__WL_HEADER "workload.spiffe.io"
#define MESH__WL_SVC "/SpiffeWorkloadAPI/"

/* ---- one call (wl_grpc.c) ------------------------------------------------ */

typedef struct mesh__wl_call {
  mesh__h2_stream_t *x;
  mesh__grpc_dec_t dec;
  uint8_t buf[16384];
  size_t len, off;
  bool got_headers, eos;
  int status;          /* gRPC status once ended, -1 before */
  char message[256];   /* grpc-message, or the transport error */
} mesh__wl_call_t;

/** Connect to an endpoint ("unix:///path", "tcp://IP:port") with h2c.
 *  @return as mesh__h2_dial_plain(); messages name the endpoint. */
int mesh__wl_dial(mesh_t *m, const char *endpoint, int timeout_ms,
                  mesh__h2_session_t **out, mesh_status_t *st);
/** Open the call "/SpiffeWorkloadAPI/<method>" with the security header
 *  (send_header false: without it, for tests of the agent's refusal), send
 *  req and half-close.  @return MESH_OK or the stream's error. */
int mesh__wl_call_start(mesh__wl_call_t *c, mesh__h2_session_t *s,
                        const char *method, const void *req, size_t len,
                        bool send_header, int64_t deadline_ms,
                        mesh_status_t *st);
/** Next response message (free with free()).  deadline_ms: MESH_ERR_TIMEOUT
 *  leaves the call usable.
 *  @return 1 (a message), 0 (ended: c->status, c->message), or an error:
 *          the transport failed (c->status UNAVAILABLE). */
int mesh__wl_call_recv(mesh__wl_call_t *c, int64_t deadline_ms,
                       uint8_t **msg, size_t *len, mesh_status_t *st);
/** Free the stream (RST CANCEL when not ended).  Idempotent. */
void mesh__wl_call_end(mesh__wl_call_t *c);

/* ---- decoding (wl_decode.c) ------------------------------------------------ */

typedef struct mesh__wl_x509 {
  void *resp;                  /* X509SVIDResponse (protobuf-c) */
  mesh__der_bundle_t *bundles; /* own trust domain first, then federated */
  char (*tds)[MESH_TRUST_DOMAIN_MAX + 1];
  mesh__creds_der_t der;       /* the selected SVID */
  const char *id, *hint;       /* of the selected SVID (borrowed) */
  size_t nsvids;
} mesh__wl_x509_t;

/** Decode an X509SVIDResponse and select the SVID: the one whose hint is
 *  hint, else (hint NULL) the first (the spec's default).
 *  @return MESH_OK, MESH_ERR_PARSE (not the message, a field missing: the
 *          spec says discard it), MESH_ERR_NOT_FOUND (no SVID, or none with
 *          that hint), MESH_ERR_NOMEM.  Free with mesh__wl_x509_free(). */
int mesh__wl_x509_decode(const uint8_t *msg, size_t len, const char *hint,
                         const char *origin, mesh__wl_x509_t *out,
                         mesh_status_t *st);
void mesh__wl_x509_free(mesh__wl_x509_t *x);

/* An X509BundlesResponse: trust domain -> DER bundle (borrowed from resp). */
typedef struct mesh__wl_bundles {
  void *resp;                  /* X509BundlesResponse (protobuf-c) */
  mesh__der_bundle_t *v;
  char (*tds)[MESH_TRUST_DOMAIN_MAX + 1];
  size_t n;
} mesh__wl_bundles_t;

/** Decode an X509BundlesResponse (FetchX509Bundles).  @return MESH_OK,
 *  MESH_ERR_PARSE (not the message, no bundle, a key that is not a trust
 *  domain, an empty bundle, a trust domain twice), MESH_ERR_NOMEM.  Free
 *  with mesh__wl_bundles_free(). */
int mesh__wl_x509_bundles_decode(const uint8_t *msg, size_t len,
                                 mesh__wl_bundles_t *out, mesh_status_t *st);
void mesh__wl_bundles_free(mesh__wl_bundles_t *b);

/** Trust domain name from a map key ("spiffe://td" or "td").  Copies into
 *  out.  @return MESH_OK or MESH_ERR_PARSE. */
int mesh__wl_td_key(const char *key, char *out, size_t len);

/** Decode a JWTBundlesResponse.  @return MESH_OK (*out: one reference),
 *  MESH_ERR_PARSE, MESH_ERR_NOMEM. */
int mesh__wl_jwt_bundles_decode(const uint8_t *msg, size_t len,
                                mesh__jwt_bundles_t **out, mesh_status_t *st);
/** Encode a JWTSVIDRequest (malloc'd).  @return MESH_OK or NOMEM. */
int mesh__wl_jwt_request(const char *audience, uint8_t **out, size_t *len);
/** Decode a JWTSVIDResponse: the token of the SVID with hint (or the first)
 *  into a malloc'd string, its SPIFFE ID into id.
 *  @return MESH_OK, MESH_ERR_PARSE, MESH_ERR_NOT_FOUND, MESH_ERR_NOMEM. */
int mesh__wl_jwt_svid_decode(const uint8_t *msg, size_t len, const char *hint,
                             char **token, char *id, size_t idlen,
                             mesh_status_t *st);

/** Encode a ValidateJWTSVIDRequest (malloc'd).  @return MESH_OK or NOMEM. */
int mesh__wl_validate_request(const char *audience, const char *token,
                              uint8_t **out, size_t *len);
/** Decode a ValidateJWTSVIDResponse: the SPIFFE ID into id (required, a
 *  valid SPIFFE ID) and, when claims is non-NULL, the claims as a JSON
 *  object (caller frees with cJSON_Delete).
 *  @return MESH_OK, MESH_ERR_PARSE, MESH_ERR_BUFFER (id too small). */
int mesh__wl_validate_decode(const uint8_t *msg, size_t len, char *id,
                             size_t idlen, cJSON **claims, mesh_status_t *st);

/* ---- google.protobuf.Struct (wl_struct.c) ---------------------------------- */

#define MESH__WL_STRUCT_DEPTH 32 /* nested Struct/ListValue/Value levels */
/** A serialized google.protobuf.Struct as a JSON object (*out; caller
 *  frees).  @return MESH_OK or MESH_ERR_PARSE (malformed wire data, a
 *  group, a non-finite number, a NUL in a string, nesting deeper than
 *  MESH__WL_STRUCT_DEPTH, out of memory). */
int mesh__wl_struct_json(const uint8_t *msg, size_t len, cJSON **out);

/* ---- the part (wl_client.c) ----------------------------------------------- */

/** The endpoint in use (config or SPIFFE_ENDPOINT_SOCKET), "" when none. */
const char *mesh__wl_endpoint(mesh_t *m);
/** The configured svid_hint or NULL. */
const char *mesh__wl_hint(mesh_t *m);
/** The JWT cache slot and its lock (wl_jwt.c). */
void mesh__wl_jwt_access(mesh_t *m, pthread_mutex_t **mu, void ***cache);
/** The per-call timeout (identity.timeout_ms, default 10000). */
int mesh__wl_timeout_ms(mesh_t *m);

/* ---- JWT-SVIDs (wl_jwt.c) --------------------------------------------------- */

/** A JWT-SVID for audience from the agent, cached until 30 s (or a fifth of
 *  its lifetime) before it expires.  *token malloc'd.
 *  @return MESH_OK, MESH_ERR_NOT_FOUND (no Workload API source),
 *          MESH_ERR_GRPC_STATUS (the agent refused: the code in st),
 *          MESH_ERR_CONNECT/TIMEOUT (no agent), MESH_ERR_PARSE. */
int mesh__wl_jwt_svid(mesh_t *m, const char *audience, char **token,
                      mesh_status_t *st);
/** Drop the JWT cache (part fini). */
void mesh__wl_jwt_cache_free(mesh_t *m);

#endif /* MESH_WORKLOAD_WORKLOAD_H */
