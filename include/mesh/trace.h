/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — distributed tracing: trace context propagation (W3C Trace
 * Context, B3) and span hooks.
 *
 * The parsers and formatters below do no I/O and no allocation; they are
 * safe to call from any thread without a context.  Header names passed to
 * getters and setters are lower case ("traceparent", "x-b3-traceid"); a
 * getter for a case-insensitive protocol (HTTP/1.1) should compare without
 * case. */
#ifndef MESH_TRACE_H
#define MESH_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;

/** Length of a version-00 traceparent value. */
#define MESH_TRACEPARENT_LEN 55
/** Longest tracestate kept (the W3C propagation minimum). */
#define MESH_TRACESTATE_MAX 512
/** Most list members in a tracestate. */
#define MESH_TRACESTATE_MAX_MEMBERS 32
/** W3C trace-flags bit 0. */
#define MESH_TRACE_FLAG_SAMPLED 0x01u
/** W3C Trace Context Level 2 trace-flags bit 1: at least the right-most 7
 *  bytes of the trace-id are random.  Kept from an incoming traceparent and
 *  propagated as long as the trace-id is kept; set on the traces the
 *  library starts (its trace ids are random).  Level 1 peers ignore it. */
#define MESH_TRACE_FLAG_RANDOM 0x02u

/** Sampling decision carried by the context. */
typedef enum mesh_sampling {
  MESH_SAMPLING_DEFERRED = 0, /* B3 ids without a decision: decide locally */
  MESH_SAMPLING_ACCEPT = 1,
  MESH_SAMPLING_DENY = 2,
  MESH_SAMPLING_DEBUG = 3     /* B3 "d" / X-B3-Flags: 1: sampled, forced */
} mesh_sampling_t;

/** A span context as carried between processes.  Plain data of fixed size
 *  (it will not grow).  All-zero ids mean "none". */
typedef struct mesh_trace_ctx {
  uint8_t trace_id[16];       /* a 64-bit B3 id sits in the low 8 bytes */
  uint8_t span_id[8];         /* the caller's span: our parent */
  uint8_t parent_span_id[8];  /* B3 ParentSpanId if sent, else zero */
  uint8_t flags;              /* W3C trace-flags */
  uint8_t sampling;           /* mesh_sampling_t */
  uint8_t has_ids;            /* 0: B3 sampling-only header ("b3: 0") */
  uint8_t trace_id_64;        /* 1: B3 sent a 64-bit trace id */
  char tracestate[MESH_TRACESTATE_MAX + 1]; /* normalized, "" if none */
} mesh_trace_ctx_t;

/* ---- W3C Trace Context ------------------------------------------------- */

/** Parse a traceparent value (https://www.w3.org/TR/trace-context/).
 *  Version 00 must be exactly 55 characters; a higher version is parsed
 *  from its first four fields and trailing "-..." data is ignored; version
 *  ff, upper-case hex, all-zero trace-id or parent-id are invalid.
 *  Leading and trailing spaces/tabs (HTTP OWS) are ignored.  Sets ids,
 *  flags and sampling; clears the B3 fields and tracestate.
 *  @param s    the value (need not be NUL-terminated).
 *  @param len  its length.
 *  @return MESH_OK, MESH_ERR_PARSE (ctx untouched), MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_traceparent_parse(const char *s, size_t len,
                                       mesh_trace_ctx_t *ctx);

/** Format a version-00 traceparent ("00-<trace>-<span>-<flags>"); the
 *  flags are the sampled flag (set by a debug or accept decision) and the
 *  random-trace-id flag of ctx->flags; other bits are not propagated
 *  (Trace Context: "Vendors MUST set those to zero").
 *  @param buf at least MESH_TRACEPARENT_LEN + 1 bytes.
 *  @return MESH_TRACEPARENT_LEN, MESH_ERR_BUFFER, MESH_ERR_INVALID_ARG
 *          (NULL or all-zero ids). */
MESH_EXTERN int mesh_traceparent_format(const mesh_trace_ctx_t *ctx,
                                        char *buf, size_t len);

/** Validate and normalize a tracestate value (several header fields joined
 *  with ","): empty members and OWS around members dropped; a repeated key
 *  keeps its first (left-most, most recent) member and later ones are
 *  dropped; a bad key or value, or more than 32 distinct keys make the
 *  whole value invalid.  Keys follow the current Trace Context grammar:
 *  ( lcalpha / DIGIT ) 0*255 ( lcalpha / DIGIT / "_" / "-" / "*" / "/" /
 *  "@" ), which holds every Level 1 key (simple and "tenant@system").
 *  Longer than 512 characters: whole members are dropped, those longer
 *  than 128 characters first, then from the right.
 *  @param out receives the normalized list (NUL-terminated), outlen >= 1.
 *  @return its length (0: empty), MESH_ERR_PARSE, MESH_ERR_BUFFER,
 *          MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_tracestate_parse(const char *s, size_t len, char *out,
                                      size_t outlen);

/* ---- B3 (https://github.com/openzipkin/b3-propagation) ----------------- */

/** Parse a single-header value: "{TraceId}-{SpanId}[-{Sampling}[-{Parent}]]"
 *  with 16 or 32 lower-hex TraceId, or a bare sampling state "0", "1" or
 *  "d".  Sampling is "0", "1" or "d".
 *  @return MESH_OK, MESH_ERR_PARSE, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_b3_parse(const char *s, size_t len,
                              mesh_trace_ctx_t *ctx);

/** Format a single-header value (128-bit trace id unless the context came
 *  as 64-bit; parent id when known).
 *  @return the length, MESH_ERR_BUFFER, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_b3_format(const mesh_trace_ctx_t *ctx, char *buf,
                               size_t len);

/* ---- extract / inject through any carrier ---------------------------- */

/** Propagation formats (bit mask). */
#define MESH_PROPAGATE_TRACECONTEXT 0x1u /* traceparent + tracestate */
#define MESH_PROPAGATE_B3 0x2u           /* b3 single header */
#define MESH_PROPAGATE_B3_MULTI 0x4u     /* x-b3-* headers */

/** Return the value of header `key` (lower case) or NULL.  The value must
 *  stay valid until the next call of the getter. */
typedef const char *(*mesh_trace_getter)(const char *key, void *user);
/** Set header `key` to `value` (both NUL-terminated, copied by the
 *  callee).  @return 0 on success, non-zero to abort the injection. */
typedef int (*mesh_trace_setter)(const char *key, const char *value,
                                 void *user);

/** Extract a context, trying W3C first, then b3, then the x-b3-* headers
 *  among the enabled formats.  Both B3 formats are read when either B3
 *  bit is set.  tracestate is read only with a valid traceparent; an
 *  invalid tracestate is dropped (the traceparent is kept).
 *  @return MESH_OK, MESH_ERR_NOT_FOUND (no header present),
 *          MESH_ERR_PARSE (headers present but invalid: start a new
 *          trace), MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_trace_extract(unsigned formats, mesh_trace_getter get,
                                   void *user, mesh_trace_ctx_t *ctx);

/** Inject ctx in every enabled format.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (no ids), MESH_ERR_IO (the setter
 *          failed). */
MESH_EXTERN int mesh_trace_inject(const mesh_trace_ctx_t *ctx,
                                  unsigned formats, mesh_trace_setter set,
                                  void *user);

/** The formats configured in `tracing.propagation` (thread-safe). */
MESH_EXTERN unsigned mesh_trace_formats(mesh_t *m);

/* ---- spans --------------------------------------------------------------- *
 * The library opens spans around dials, handshakes, calls and their tries,
 * inbound accepts and requests.  Sampled spans are exported (OTLP, Zipkin)
 * and handed to the application's hooks. */

typedef struct mesh_span mesh_span_t;

typedef enum mesh_span_kind {
  MESH_SPAN_INTERNAL = 1, /* values as OTLP's SpanKind */
  MESH_SPAN_SERVER = 2,
  MESH_SPAN_CLIENT = 3
} mesh_span_kind_t;

typedef enum mesh_span_status {
  MESH_SPAN_STATUS_UNSET = 0, /* values as OTLP's StatusCode */
  MESH_SPAN_STATUS_OK = 1,
  MESH_SPAN_STATUS_ERROR = 2
} mesh_span_status_t;

typedef enum mesh_attr_type {
  MESH_ATTR_STRING = 1,
  MESH_ATTR_INT = 2,
  MESH_ATTR_BOOL = 3,
  MESH_ATTR_DOUBLE = 4
} mesh_attr_type_t;

/** Called when a sampled span starts or ends, on the thread that started
 *  or ended it.  The span is borrowed for the duration of the call only;
 *  copy what you need.  Must not call mesh_free(). */
typedef void (*mesh_span_hook)(const mesh_span_t *span, void *user);

/** Register span hooks (either may be NULL); replaces earlier ones.
 *  Thread-safe; spans already running may still report to the old hooks
 *  until they end.  @return MESH_OK, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_set_span_hooks(mesh_t *m, mesh_span_hook on_start,
                                    mesh_span_hook on_end, void *user);

/** Span name (borrowed). */
MESH_EXTERN const char *mesh_span_name(const mesh_span_t *s);
MESH_EXTERN mesh_span_kind_t mesh_span_kind(const mesh_span_t *s);
/** The span's own context (trace id, span id, flags, tracestate) and, in
 *  parent_span_id, its parent's span id (zero for a root). */
MESH_EXTERN void mesh_span_context(const mesh_span_t *s,
                                   mesh_trace_ctx_t *out);
/** Start and end as Unix nanoseconds (end is 0 while running). */
MESH_EXTERN uint64_t mesh_span_start_ns(const mesh_span_t *s);
MESH_EXTERN uint64_t mesh_span_end_ns(const mesh_span_t *s);
/** Status and its message (borrowed, "" if none). */
MESH_EXTERN mesh_span_status_t mesh_span_status(const mesh_span_t *s,
                                                const char **message);
/** Number of attributes. */
MESH_EXTERN size_t mesh_span_attr_count(const mesh_span_t *s);
/** Attribute i: key, and its value in the out-parameter of its type (the
 *  others are untouched; any may be NULL).  Strings are borrowed.
 *  @return its mesh_attr_type_t, or MESH_ERR_NOT_FOUND. */
MESH_EXTERN int mesh_span_attr(const mesh_span_t *s, size_t i,
                               const char **key, const char **str,
                               int64_t *num, double *dbl);
/** Value of the string or integer attribute `key` rendered as text into
 *  buf.  @return length, MESH_ERR_NOT_FOUND, MESH_ERR_BUFFER. */
MESH_EXTERN int mesh_span_attr_text(const mesh_span_t *s, const char *key,
                                    char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* MESH_TRACE_H */
