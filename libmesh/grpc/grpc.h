/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the grpc part -- gRPC over the HTTP/2 layer.
 *
 * The protocol pieces here do no I/O (bytes in, decisions out) so that they
 * are unit-tested from tables and fuzzed directly:
 *   frame.c      length-prefixed messages: encoder, incremental decoder
 *   timeout.c    grpc-timeout encode/parse, proto3 JSON Duration parse
 *   status.c     status names, grpc-message percent-encoding, the HTTP
 *                status -> gRPC status table, gRPC status -> call outcome
 *   metadata.c   metadata keys and values, -bin base64, reserved headers
 *   svcconfig.c  gRPC service config: methodConfig, retryPolicy,
 *                hedgingPolicy, timeouts, message limits; pushback; backoff
 *
 * Every function that can fail returns a mesh_code_t (0 or negative) and
 * says which codes in its comment.  Nothing here is exported. */
#ifndef MESH_GRPC_GRPC_H
#define MESH_GRPC_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <mesh/grpc.h>
#include <mesh/mesh.h>

#include "core/core.h"
#include "http/http.h"

/* ---- status codes (status.c) --------------------------------------------- */

/* gRPC status codes (grpc/include/grpc/status.h; values are the wire
 * values of grpc-status). */
enum mesh__grpc_code {
  MESH__GRPC_OK = 0,
  MESH__GRPC_CANCELLED = 1,
  MESH__GRPC_UNKNOWN = 2,
  MESH__GRPC_INVALID_ARGUMENT = 3,
  MESH__GRPC_DEADLINE_EXCEEDED = 4,
  MESH__GRPC_NOT_FOUND = 5,
  MESH__GRPC_ALREADY_EXISTS = 6,
  MESH__GRPC_PERMISSION_DENIED = 7,
  MESH__GRPC_RESOURCE_EXHAUSTED = 8,
  MESH__GRPC_FAILED_PRECONDITION = 9,
  MESH__GRPC_ABORTED = 10,
  MESH__GRPC_OUT_OF_RANGE = 11,
  MESH__GRPC_UNIMPLEMENTED = 12,
  MESH__GRPC_INTERNAL = 13,
  MESH__GRPC_UNAVAILABLE = 14,
  MESH__GRPC_DATA_LOSS = 15,
  MESH__GRPC_UNAUTHENTICATED = 16,
  MESH__GRPC_NCODES = 17
};

/** "UNAVAILABLE" for 14; NULL for a value outside 0..16. */
const char *mesh__grpc_code_name(int code);

/** The code of a name: upper case as in the service config ("UNAVAILABLE");
 *  the matching is exact.  @return 0..16, or -1 when unknown. */
int mesh__grpc_code_from_name(const char *name);

/** Parse a grpc-status value: decimal ASCII, no sign, no spaces, at most
 *  10 digits, value <= INT32_MAX (codes above 16 are kept: the spec lets
 *  peers send them and applications see them as is).
 *  @return MESH_OK, MESH_ERR_PARSE. */
int mesh__grpc_status_parse(const char *s, size_t len, int *out);

/** gRPC's "HTTP to gRPC Status Code Mapping" (doc/http-grpc-status-
 *  mapping.md), used when a response has no grpc-status: 400 INTERNAL,
 *  401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 *  429/502/503/504 UNAVAILABLE, anything else UNKNOWN. */
int mesh__grpc_code_from_http(int http_status);

/** The HTTP-like status a gRPC status counts as for the call layer
 *  (outlier detection, success rate, metrics): Envoy's
 *  Grpc::Utility::grpcToHttpStatus.  OK 200, CANCELLED 499, UNKNOWN 500,
 *  INVALID_ARGUMENT 400, DEADLINE_EXCEEDED 504, NOT_FOUND 404,
 *  ALREADY_EXISTS 409, PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429,
 *  FAILED_PRECONDITION 400, ABORTED 409, OUT_OF_RANGE 400,
 *  UNIMPLEMENTED 501, INTERNAL 500, UNAVAILABLE 503, DATA_LOSS 500,
 *  UNAUTHENTICATED 401; codes above 16 500.  So the failures that eject
 *  and count against success rate are the 5xx ones: UNKNOWN, INTERNAL,
 *  DATA_LOSS, UNIMPLEMENTED, UNAVAILABLE and DEADLINE_EXCEEDED; the last
 *  two are also gateway failures (503, 504). */
int mesh__grpc_code_to_http(int code);

/* ---- grpc-message (status.c) ----------------------------------------------
 * Percent-encoding of the gRPC HTTP/2 spec: bytes 0x20-0x7E except '%' as
 * is, every other byte (including '%' and UTF-8 bytes) as %XX, upper case.
 * Decoding never fails: a '%' not followed by two hex digits is kept as is,
 * as the spec allows ("leave broken %-encodings as-is"). */

/** Encode len bytes of msg into a malloc'd NUL-terminated string.
 *  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_msg_encode(const char *msg, size_t len, char **out);
/** Decode into a malloc'd NUL-terminated string; *out_len its length
 *  (may be NULL).  Decoded NUL bytes are kept (so use the length).
 *  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_msg_decode(const char *s, size_t len, char **out,
                          size_t *out_len);

/* ---- grpc-timeout (timeout.c) --------------------------------------------- */

#define MESH__GRPC_TIMEOUT_MAX 20 /* bytes with NUL: 8 digits + unit + NUL */

/** Encode a timeout of `ns` nanoseconds as grpc-timeout: at most 8 digits
 *  and the finest unit (n, u, m, S, M, H) that holds it; a value that is
 *  not a whole number of that unit is rounded up (the deadline the peer
 *  sees is never earlier than ours).  ns <= 0 (already expired) is "1n";
 *  more than 99999999 hours saturates there.  out has
 *  MESH__GRPC_TIMEOUT_MAX bytes.  Never fails. */
void mesh__grpc_timeout_encode(int64_t ns, char out[MESH__GRPC_TIMEOUT_MAX]);

/** Parse a grpc-timeout value: 1 to 8 ASCII digits then one unit letter
 *  (H M S m u n), nothing else (no sign, no spaces).  *ns receives the
 *  timeout, saturated at INT64_MAX (~292 years).  0 is accepted (an
 *  expired deadline, as grpc-go and gRPC core accept it).
 *  @return MESH_OK, MESH_ERR_PARSE. */
int mesh__grpc_timeout_parse(const char *s, size_t len, int64_t *ns);

/** Parse a proto3 JSON Duration ("1s", "0.5s", "1.000000001s", "-1s"
 *  refused here): digits, optional '.' and 1-9 fraction digits, then 's'.
 *  Seconds at most 315576000000 (the proto limit).
 *  @return MESH_OK (*ns set, saturating), MESH_ERR_PARSE. */
int mesh__grpc_duration_parse(const char *s, int64_t *ns);

/* ---- length-prefixed messages (frame.c) -----------------------------------
 * Each message on the wire: 1 byte compressed-flag (0 or 1), 4 bytes
 * big-endian length, then the bytes. */

#define MESH__GRPC_PREFIX 5
#define MESH__GRPC_MAX_MSG_DEFAULT (4u << 20) /* gRPC's receive default */

/** Write the 5-byte prefix of an uncompressed message of len bytes.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (len > UINT32_MAX). */
int mesh__grpc_prefix(uint8_t out[MESH__GRPC_PREFIX], size_t len);

/** Incremental decoder: bytes in (any split), whole messages out. */
typedef struct mesh__grpc_dec {
  size_t max;          /* largest message accepted */
  uint8_t hdr[MESH__GRPC_PREFIX];
  size_t hdr_have;     /* bytes of hdr read so far */
  uint8_t *buf;        /* the message being read (NULL when empty) */
  size_t len;          /* its announced length */
  size_t have;         /* bytes of it read so far */
  int err;             /* sticky error, 0 when none */
  uint64_t messages;   /* messages delivered so far */
} mesh__grpc_dec_t;

/** A decoder with a size limit (0: MESH__GRPC_MAX_MSG_DEFAULT).  Cannot
 *  fail; free with mesh__grpc_dec_free(). */
void mesh__grpc_dec_init(mesh__grpc_dec_t *d, size_t max);
void mesh__grpc_dec_free(mesh__grpc_dec_t *d);

/** Feed bytes.  Consumes input until one message is complete or the input
 *  ends.  When a message completes, *msg receives it (malloc'd, the caller
 *  frees it; a 1-byte buffer for an empty message) and *msg_len its length,
 *  and the call returns at once: call again with the rest of the input.
 *  Otherwise *msg is NULL.
 *  @return bytes consumed (>= 0), or a negative sticky error:
 *          MESH_ERR_MSG_TOO_LARGE (announced length > max: gRPC's
 *          RESOURCE_EXHAUSTED), MESH_ERR_GRPC_PROTOCOL (flag byte other
 *          than 0/1, or 1: compressed, which this library never
 *          negotiates: INTERNAL), MESH_ERR_NOMEM. */
long mesh__grpc_dec_feed(mesh__grpc_dec_t *d, const uint8_t *in, size_t n,
                         uint8_t **msg, size_t *msg_len);

/** Is the decoder between messages (no partial prefix or body)?  A stream
 *  that ends elsewhere lost bytes: gRPC reports INTERNAL. */
bool mesh__grpc_dec_idle(const mesh__grpc_dec_t *d);

/* ---- metadata (metadata.c) -------------------------------------------------- */

/** Is key a valid metadata key for applications: 1+ bytes of [0-9a-z_.-]
 *  (lower case: HTTP/2 field names), not starting with "grpc-" (reserved
 *  for gRPC), not a pseudo-header, and not one of the headers the library
 *  writes itself (content-type, te, user-agent, host, connection, ...).
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (with the reason in st). */
int mesh__grpc_md_key_check(const char *key, mesh_status_t *st);

/** Does key name binary metadata (ends in "-bin")? */
bool mesh__grpc_md_is_bin(const char *key);

/** Is an ASCII metadata value valid: bytes 0x20-0x7E only (the spec's
 *  printable ASCII).  @return MESH_OK, MESH_ERR_INVALID_ARG. */
int mesh__grpc_md_value_check(const char *v, size_t len, mesh_status_t *st);

/** Base64 of a -bin value as sent: standard alphabet without padding
 *  (gRPC sends unpadded).  Malloc'd, NUL-terminated.
 *  @return MESH_OK, MESH_ERR_NOMEM. */
static inline int mesh__grpc_b64_encode(const void *in, size_t len,
                                        char **out) {
  return mesh__b64_enc(in, len, 0, out);
}

/** Decode a received -bin value: standard or URL-safe alphabet, padded or
 *  not (the spec says receivers must accept both); comma-separated values
 *  of a repeated key are not split here.  Malloc'd (1 byte for empty).
 *  @return MESH_OK, MESH_ERR_PARSE (bad character, impossible length,
 *          non-zero trailing bits are accepted as gRPC core does),
 *          MESH_ERR_NOMEM. */
static inline int mesh__grpc_b64_decode(const char *in, size_t len,
                                        uint8_t **out, size_t *out_len) {
  return mesh__b64_dec(in, len, MESH__B64_ANY | MESH__B64_PAD, out, out_len);
}

/** Headers of a received request or response that are gRPC's own and
 *  not handed to the application as metadata: pseudo-headers, content-type,
 *  te, grpc-timeout, grpc-encoding, grpc-accept-encoding, grpc-status,
 *  grpc-message, grpc-status-details-bin is kept (applications read it). */
bool mesh__grpc_md_is_transport(const char *key);

/* ---- service config (svcconfig.c) -------------------------------------------
 * gRPC's service config JSON (grpc/doc/service_config.md, gRFC A6): a
 * "methodConfig" list whose entries name methods ({"service": "pkg.Svc",
 * "method": "M"}, service only, or {} for all) and set timeout,
 * retryPolicy or hedgingPolicy, and message limits. */

#define MESH__GRPC_MAX_ATTEMPTS 5 /* gRPC clamps maxAttempts to 5 */

typedef struct mesh__grpc_retry {
  uint32_t max_attempts;       /* 2..5 (values above 5 are clamped) */
  int64_t initial_backoff_ms;  /* > 0 */
  int64_t max_backoff_ms;      /* > 0 */
  double multiplier;           /* > 0 */
  uint32_t codes;              /* bit per retryable status code */
} mesh__grpc_retry_t;

typedef struct mesh__grpc_hedge {
  uint32_t max_attempts;       /* 2..5 */
  int64_t delay_ms;            /* >= 0 */
  uint32_t non_fatal;          /* bit per non-fatal status code */
} mesh__grpc_hedge_t;

typedef struct mesh__grpc_method_cfg {
  char *service;               /* NULL: every service (the default entry) */
  char *method;                /* NULL: every method of service */
  int64_t timeout_ms;          /* 0: none */
  bool has_retry, has_hedge;   /* at most one of them */
  mesh__grpc_retry_t retry;
  mesh__grpc_hedge_t hedge;
  size_t max_req, max_resp;    /* bytes; 0: default */
  bool wait_for_ready;
} mesh__grpc_method_cfg_t;

/* Buffers of hedged streaming calls (gRFC A6's channel arguments
 * grpc.per_rpc_retry_buffer_size and grpc.retry_buffer_size, as the
 * service config keys "perRpcBufferLimit" and "retryBufferSize"). */
#define MESH__GRPC_RPC_BUF_DEFAULT (256u << 10)
#define MESH__GRPC_CHAN_BUF_DEFAULT (16u << 20)

typedef struct mesh__grpc_svc_cfg {
  mesh__grpc_method_cfg_t *v;
  size_t n;
  size_t rpc_buf, chan_buf;    /* bytes; 0: the defaults above */
  /* retryThrottling (gRFC A6), in thousandths of a token; 0: none */
  int64_t max_tokens_m, token_ratio_m;
} mesh__grpc_svc_cfg_t;

/** retryThrottling's token bucket of one channel (a service), kept as the
 *  tokens missing from maxTokens (0 at start: full), in thousandths. */
typedef _Atomic int64_t mesh__grpc_tokens_t;

/** May a retry or a hedge start?  True without retryThrottling; else
 *  when the tokens are above maxTokens / 2 (A6). */
bool mesh__grpc_throttle_ok(const mesh__grpc_svc_cfg_t *cfg,
                            mesh__grpc_tokens_t *missing);
/** Record an attempt's end: ok (status OK) adds tokenRatio tokens, a
 *  failure (a retryable / non-fatal status, or pushback saying stop)
 *  takes one; bounded by 0 and maxTokens.  No-op without
 *  retryThrottling. */
void mesh__grpc_throttle_record(const mesh__grpc_svc_cfg_t *cfg,
                                mesh__grpc_tokens_t *missing, bool ok);

/** Validate and parse a service config object (the value of a service's
 *  "grpc" key).  Every error goes to c with its path (all are collected);
 *  out is filled only when there is none (free with
 *  mesh__grpc_svc_cfg_free; may be NULL to only check).  Unknown keys are
 *  errors (a silently ignored setting would be a surprise).
 *  @return MESH_OK, MESH_ERR_CONFIG, MESH_ERR_NOMEM. */
int mesh__grpc_svc_cfg_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                             mesh__grpc_svc_cfg_t *out);
void mesh__grpc_svc_cfg_free(mesh__grpc_svc_cfg_t *cfg);

/** The entry for "/pkg.Svc/Method": exact service+method, else the
 *  service's entry, else the default ({}), else NULL (gRPC's lookup
 *  order).  path must have that form. */
const mesh__grpc_method_cfg_t *mesh__grpc_svc_cfg_find(
    const mesh__grpc_svc_cfg_t *cfg, const char *path);

/** Split "/pkg.Svc/Method" into its service and method (pointers into
 *  path and lengths).  @return MESH_OK, MESH_ERR_INVALID_ARG (not of that
 *  form: empty parts, missing leading '/', a third '/', bytes outside
 *  0x21-0x7E). */
int mesh__grpc_path_split(const char *path, const char **svc, size_t *svc_len,
                          const char **method, size_t *method_len);

/** Parse grpc-retry-pushback-ms (gRFC A6): a non-negative decimal integer
 *  is a delay in ms (saturated at INT32_MAX); anything else (negative,
 *  empty, junk) means "do not retry".
 *  @return 1 delay in *ms, 0 do not retry. */
int mesh__grpc_pushback_parse(const char *v, size_t len, int64_t *ms);

/** Pure: the backoff before retry number n (1 = first retry): uniform in
 *  [0, min(initial * multiplier^(n-1), max)) using rnd, as gRFC A6 says. */
int64_t mesh__grpc_backoff_ms(const mesh__grpc_retry_t *r, uint32_t n,
                              uint64_t rnd);

/** Pure: should a try that ended with code be retried under r?  Only
 *  listed codes; never OK.  (Attempts, budget, deadline and commitment
 *  are the caller's.) */
bool mesh__grpc_retryable(const mesh__grpc_retry_t *r, int code);

/* ---- metadata lists and header lists (md.c) -------------------------------- */

typedef struct mesh__grpc_md_ent {
  char *key;
  uint8_t *val;   /* decoded bytes, NUL-terminated too */
  size_t len;
} mesh__grpc_md_ent_t;

struct mesh_grpc_metadata {
  mesh__grpc_md_ent_t *v;
  size_t n, cap;
};

/** Append without checks (keys and values already valid).
 *  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_md_push(mesh_grpc_metadata_t *md, const char *key,
                       const void *val, size_t len);
/** Copy src (NULL: an empty list).  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_md_copy(const mesh_grpc_metadata_t *src,
                       mesh_grpc_metadata_t **out);
/** Append src's entries to dst.  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_md_append(mesh_grpc_metadata_t *dst,
                         const mesh_grpc_metadata_t *src);
/** The application's view of a received header list: transport headers
 *  left out, -bin values decoded (an undecodable one is dropped, as gRPC
 *  core drops it).  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_md_from_h2(const mesh__h2_hdr_t *h, size_t n,
                          mesh_grpc_metadata_t **out);
/** First value of name in a header list, NULL when absent. */
const char *mesh__grpc_h2_get(const mesh__h2_hdr_t *h, size_t n,
                              const char *name);

/* A header list being built for the HTTP/2 layer; owns what it copied. */
typedef struct mesh__grpc_hl {
  mesh__h2_hdr_t *h;
  size_t n, cap;
  char **own;
  size_t nown, owncap;
} mesh__grpc_hl_t;

/** Append name: value; copy says whether to copy value (names are
 *  static or outlive the list).  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_hl_add(mesh__grpc_hl_t *l, const char *name, const char *value,
                      bool copy);
/** Append name: value, both copied.  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_hl_add_copy(mesh__grpc_hl_t *l, const char *name,
                           const char *value);
/** Append metadata entries (-bin values base64-encoded).
 *  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__grpc_hl_add_md(mesh__grpc_hl_t *l, const mesh_grpc_metadata_t *md);
/** As mesh__grpc_hl_add_md, leaving out the entries named skip (a key the
 *  library sets itself, e.g. "authorization" with a JWT-SVID). */
int mesh__grpc_hl_add_md_except(mesh__grpc_hl_t *l,
                                const mesh_grpc_metadata_t *md,
                                const char *skip);
void mesh__grpc_hl_free(mesh__grpc_hl_t *l);

/** The gRPC status an HTTP/2 RST_STREAM code stands for (gRPC's table):
 *  REFUSED_STREAM UNAVAILABLE, CANCEL CANCELLED, ENHANCE_YOUR_CALM
 *  RESOURCE_EXHAUSTED, INADEQUATE_SECURITY PERMISSION_DENIED, others
 *  INTERNAL. */
int mesh__grpc_code_from_h2_error(uint32_t h2_code);

#endif /* MESH_GRPC_GRPC_H */
