/* SPDX-License-Identifier: Apache-2.0 */
/* OTLP/HTTP JSON encoding of a span batch (ExportTraceServiceRequest).
 * Per the OTLP JSON rules: lowerCamelCase field names, trace and span ids
 * as hex strings (not base64), enums as integers, 64-bit integers as
 * decimal strings.
 *
 * Written straight into one growing buffer (issue 19): building a cJSON
 * tree (a dozen small allocations per attribute) and printing it was most
 * of the exporter's CPU per span.  The text is what cJSON printed: the same
 * members in the same order, strings escaped the same way. */
#include "observe/observe.h"
#include "telemetry/telemetry.h"
#include "observe/exporter.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing buffer; on allocation failure it stays failed ---------- */

typedef struct buf {
  char *p;
  size_t len, cap;
  bool oom;
} buf_t;

static bool grow(buf_t *b, size_t more) {
  if (b->oom)
    return false;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->len + more + 1)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = true;
    return false;
  }
  b->p = p;
  b->cap = cap;
  return true;
}

/* Room for `more` bytes and a NUL; inline so that a literal's put is a few
 * moves (the sizes are constants). */
static inline bool reserve(buf_t *b, size_t more) {
  return b->len + more + 1 <= b->cap || grow(b, more);
}

static inline void put(buf_t *b, const char *s, size_t n) {
  if (!reserve(b, n))
    return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

#define PUT(b, lit) put((b), (lit), sizeof(lit) - 1)

/* Does any byte of v need escaping (< 0x20, '"', '\\')?  SWAR: exact
 * about whether one does, not about which. */
static inline bool special8(uint64_t v) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t q = v ^ (ones * '"'), s = v ^ (ones * '\\');
  return (((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((s - ones) & ~s)) &
         high;
}

/* A JSON string, escaped as cJSON does: quote, backslash, \b \f \n \r \t,
 * other control characters as \u00XX; everything else as is.  Eight bytes
 * at a time while none needs escaping. */
static void put_str(buf_t *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  if (!s)
    s = "";
  size_t n = strlen(s);
  if (!reserve(b, 6 * n + 2))
    return;
  char *o = b->p + b->len;
  *o++ = '"';
  const unsigned char *c = (const unsigned char *)s, *end = c + n;
  while (c < end) {
    uint64_t w;
    if (end - c >= 8) {
      memcpy(&w, c, 8);
      if (!special8(w)) {
        memcpy(o, &w, 8);
        o += 8;
        c += 8;
        continue;
      }
    } else if (n >= 8) { /* the tail: the string's last eight bytes */
      size_t k = (size_t)(end - c);
      memcpy(&w, end - 8, 8); /* overlap: already checked, same output */
      if (!special8(w)) {
        memcpy(o + k - 8, &w, 8);
        o += k;
        break;
      }
    }
    if (*c >= 0x20 && *c != '"' && *c != '\\') {
      *o++ = (char)*c++;
      continue;
    }
    *o++ = '\\';
    switch (*c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = hex[*c >> 4];
      *o++ = hex[*c & 15];
    }
    c++;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->p);
}

static void put_hex(buf_t *b, const uint8_t *id, size_t n) {
  if (!reserve(b, 2 * n + 2))
    return;
  char *o = b->p + b->len;
  o[0] = '"';
  mesh__hex_encode(id, n, o + 1);
  o[2 * n + 1] = '"';
  b->len += 2 * n + 2;
}

/* Decimal, quoted or not, by hand (snprintf was a tenth of a span). */
static void put_i64(buf_t *b, int64_t v, bool quoted) {
  char d[24], *o = d + sizeof d;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  if (quoted)
    *--o = '"';
  do {
    *--o = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    *--o = '-';
  if (quoted)
    *--o = '"';
  put(b, o, (size_t)(d + sizeof d - o));
}

/* "00".."99": two digits per division (timestamps have 19). */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

static void put_u64q(buf_t *b, uint64_t v) { /* 64-bit ints: strings */
  char d[24], *o = d + sizeof d;
  *--o = '"';
  while (v >= 100) {
    o -= 2;
    memcpy(o, digit_pairs + 2 * (v % 100), 2);
    v /= 100;
  }
  if (v >= 10) {
    o -= 2;
    memcpy(o, digit_pairs + 2 * v, 2);
  } else {
    *--o = (char)('0' + v);
  }
  *--o = '"';
  put(b, o, (size_t)(d + sizeof d - o));
}

static void put_double(buf_t *b, double v) {
  if (!isfinite(v)) { /* cJSON prints these as null */
    PUT(b, "null");
    return;
  }
  if (v == (double)(int64_t)v && fabs(v) < 1e15) {
    put_i64(b, (int64_t)v, false);
    return;
  }
  char d[32];
  mesh__fmt_double(d, sizeof d, v);
  put(b, d, strlen(d));
}

/* {"key":k,"value":{"stringValue":v}} and friends */
static void put_kv(buf_t *b, const char *key, const mesh__attr_t *a,
                   const char *str) {
  PUT(b, "{\"key\":");
  put_str(b, key);
  PUT(b, ",\"value\":{");
  if (!a) {
    PUT(b, "\"stringValue\":");
    put_str(b, str);
  } else {
    switch (a->type) {
    case MESH_ATTR_STRING:
      PUT(b, "\"stringValue\":");
      put_str(b, a->s);
      break;
    case MESH_ATTR_INT:
      PUT(b, "\"intValue\":");
      put_i64(b, a->i, true);
      break;
    case MESH_ATTR_BOOL:
      if (a->i)
        PUT(b, "\"boolValue\":true");
      else
        PUT(b, "\"boolValue\":false");
      break;
    default:
      PUT(b, "\"doubleValue\":");
      put_double(b, a->d);
      break;
    }
  }
  PUT(b, "}}");
}

/* One span; members in the order the cJSON encoder added them. */
static void put_span(buf_t *b, const struct mesh_span *r) {
  PUT(b, "{\"traceId\":");
  put_hex(b, r->trace_id, 16);
  PUT(b, ",\"spanId\":");
  put_hex(b, r->span_id, 8);
  if (!mesh__is_zero(r->parent_id, 8)) {
    PUT(b, ",\"parentSpanId\":");
    put_hex(b, r->parent_id, 8);
  }
  if (r->tracestate) {
    PUT(b, ",\"traceState\":");
    put_str(b, r->tracestate);
  }
  PUT(b, ",\"name\":");
  put_str(b, r->name);
  PUT(b, ",\"kind\":");
  put_i64(b, r->kind, false);
  PUT(b, ",\"startTimeUnixNano\":");
  put_u64q(b, r->start_ns);
  PUT(b, ",\"endTimeUnixNano\":");
  put_u64q(b, r->end_ns);
  PUT(b, ",\"attributes\":[");
  for (size_t i = 0; i < r->nattrs; i++) {
    if (i)
      PUT(b, ",");
    put_kv(b, r->attrs[i].key, &r->attrs[i], NULL);
  }
  PUT(b, "]");
  if (r->dropped_attrs) {
    PUT(b, ",\"droppedAttributesCount\":");
    put_i64(b, r->dropped_attrs, false);
  }
  if (r->nevents) {
    PUT(b, ",\"events\":[");
    for (size_t i = 0; i < r->nevents; i++) {
      if (i)
        PUT(b, ",");
      PUT(b, "{\"timeUnixNano\":");
      put_u64q(b, r->events[i].ts_ns);
      PUT(b, ",\"name\":");
      put_str(b, r->events[i].name);
      PUT(b, "}");
    }
    PUT(b, "]");
  }
  if (r->dropped_events) {
    PUT(b, ",\"droppedEventsCount\":");
    put_i64(b, r->dropped_events, false);
  }
  if (r->status != MESH_SPAN_STATUS_UNSET) {
    PUT(b, ",\"status\":{\"code\":");
    put_i64(b, r->status, false);
    if (r->status_msg) {
      PUT(b, ",\"message\":");
      put_str(b, r->status_msg);
    }
    PUT(b, "}");
  }
  PUT(b, "}");
}

int mesh__otlp_encode(const struct mesh__tracer *t,
                      struct mesh_span *const *spans, size_t n, char **body,
                      size_t *len) {
  buf_t b = {0};
  reserve(&b, 512 + n * 768); /* a client span is about 600 bytes */
  PUT(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  put_kv(&b, "service.name", NULL, t->service_name);
  PUT(&b, ",");
  put_kv(&b, "telemetry.sdk.name", NULL, "libmesh");
  PUT(&b, ",");
  put_kv(&b, "telemetry.sdk.version", NULL, mesh_version());
  PUT(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"libmesh\",\"version\":");
  put_str(&b, mesh_version());
  PUT(&b, "},\"spans\":[");
  for (size_t i = 0; i < n; i++) {
    if (i)
      PUT(&b, ",");
    put_span(&b, spans[i]);
  }
  PUT(&b, "]}]}]}");
  if (b.oom) {
    free(b.p);
    return MESH_ERR_NOMEM;
  }
  b.p[b.len] = '\0';
  *body = b.p;
  *len = b.len;
  return MESH_OK;
}
