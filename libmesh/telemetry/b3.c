/* SPDX-License-Identifier: Apache-2.0 */
/* B3 propagation (openzipkin/b3-propagation): the single `b3` header and
 * the X-B3-* multi headers.  Bytes in, struct out: no I/O, no allocation. */
#include "telemetry/trace_ctx.h"

#include <string.h>

static bool streq_n(const char *s, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n == l && memcmp(s, lit, n) == 0;
}

/* 16 or 32 lower-hex digits, not all zero; 64-bit ids go to the low half. */
static bool parse_trace_id(const char *s, size_t n, mesh_trace_ctx_t *c) {
  uint8_t tid[16] = {0};
  if (n == 32) {
    if (!mesh__hex_decode(s, 32, tid))
      return false;
  } else if (n == 16) {
    if (!mesh__hex_decode(s, 16, tid + 8))
      return false;
  } else {
    return false;
  }
  if (mesh__is_zero(tid, 16))
    return false;
  memcpy(c->trace_id, tid, 16);
  c->trace_id_64 = n == 16;
  return true;
}

static bool parse_span_id(const char *s, size_t n, uint8_t out[8]) {
  uint8_t id[8];
  if (n != 16 || !mesh__hex_decode(s, 16, id) || mesh__is_zero(id, 8))
    return false;
  memcpy(out, id, 8);
  return true;
}

/* "1" accept, "0" deny, "d" debug. */
static int parse_sampling_single(const char *s, size_t n) {
  if (n != 1)
    return -1;
  switch (s[0]) {
  case '1':
    return MESH_SAMPLING_ACCEPT;
  case '0':
    return MESH_SAMPLING_DENY;
  case 'd':
    return MESH_SAMPLING_DEBUG;
  default:
    return -1;
  }
}

static void set_flags(mesh_trace_ctx_t *c, int sampling) {
  c->sampling = (uint8_t)sampling;
  c->flags = (sampling == MESH_SAMPLING_ACCEPT ||
              sampling == MESH_SAMPLING_DEBUG)
                 ? MESH_TRACE_FLAG_SAMPLED
                 : 0;
}

int mesh_b3_parse(const char *s, size_t len, mesh_trace_ctx_t *ctx) {
  if (!s || !ctx)
    return MESH_ERR_INVALID_ARG;
  mesh__trim_ows(&s, &len);
  mesh_trace_ctx_t c;
  memset(&c, 0, offsetof(mesh_trace_ctx_t, tracestate));
  int sampling = parse_sampling_single(s, len);
  if (sampling >= 0) { /* "b3: 0" and friends: a decision without ids */
    set_flags(&c, sampling);
    memcpy(ctx, &c, offsetof(mesh_trace_ctx_t, tracestate));
    ctx->tracestate[0] = '\0';
    return MESH_OK;
  }
  /* {TraceId:16|32}-{SpanId:16}[-{Sampling:1}[-{ParentSpanId:16}]] */
  const char *dash = memchr(s, '-', len);
  size_t tl = dash ? (size_t)(dash - s) : 0;
  if ((tl != 16 && tl != 32) || !parse_trace_id(s, tl, &c))
    return MESH_ERR_PARSE;
  size_t p = tl + 1;
  if (len < p + 16 || !parse_span_id(s + p, 16, c.span_id))
    return MESH_ERR_PARSE;
  p += 16;
  sampling = MESH_SAMPLING_DEFERRED;
  if (p < len) {
    if (s[p] != '-' || len < p + 2)
      return MESH_ERR_PARSE;
    sampling = parse_sampling_single(s + p + 1, 1);
    if (sampling < 0)
      return MESH_ERR_PARSE;
    p += 2;
    if (p < len) {
      if (s[p] != '-' || len != p + 17 ||
          !parse_span_id(s + p + 1, 16, c.parent_span_id))
        return MESH_ERR_PARSE;
    }
  }
  set_flags(&c, sampling);
  c.has_ids = 1;
  memcpy(ctx, &c, offsetof(mesh_trace_ctx_t, tracestate));
  ctx->tracestate[0] = '\0';
  return MESH_OK;
}

static char sampling_char(const mesh_trace_ctx_t *ctx) {
  switch (ctx->sampling) {
  case MESH_SAMPLING_DEBUG:
    return 'd';
  case MESH_SAMPLING_ACCEPT:
    return '1';
  case MESH_SAMPLING_DENY:
    return '0';
  default:
    return 0;
  }
}

int mesh_b3_format(const mesh_trace_ctx_t *ctx, char *buf, size_t len) {
  if (!ctx || !buf)
    return MESH_ERR_INVALID_ARG;
  char smp = sampling_char(ctx);
  if (!ctx->has_ids) {
    if (!smp)
      return MESH_ERR_INVALID_ARG;
    if (len < 2)
      return MESH_ERR_BUFFER;
    buf[0] = smp;
    buf[1] = '\0';
    return 1;
  }
  if (mesh__is_zero(ctx->trace_id, 16) || mesh__is_zero(ctx->span_id, 8))
    return MESH_ERR_INVALID_ARG;
  bool t64 = ctx->trace_id_64 && mesh__is_zero(ctx->trace_id, 8);
  bool parent = !mesh__is_zero(ctx->parent_span_id, 8);
  size_t need = (t64 ? 16 : 32) + 1 + 16 + (smp ? 2 : 0) +
                (smp && parent ? 17 : 0);
  if (len < need + 1)
    return MESH_ERR_BUFFER;
  size_t o = 0;
  if (t64) {
    mesh__hex_encode(ctx->trace_id + 8, 8, buf);
    o = 16;
  } else {
    mesh__hex_encode(ctx->trace_id, 16, buf);
    o = 32;
  }
  buf[o++] = '-';
  mesh__hex_encode(ctx->span_id, 8, buf + o);
  o += 16;
  if (smp) {
    buf[o++] = '-';
    buf[o++] = smp;
    if (parent) {
      buf[o++] = '-';
      mesh__hex_encode(ctx->parent_span_id, 8, buf + o);
      o += 16;
    }
  }
  buf[o] = '\0';
  return (int)o;
}

/* ---- multi headers ------------------------------------------------------- */

int mesh__b3_multi_extract(mesh_trace_getter get, void *user,
                           mesh_trace_ctx_t *ctx) {
  mesh_trace_ctx_t c;
  memset(&c, 0, offsetof(mesh_trace_ctx_t, tracestate));
  c.tracestate[0] = '\0';
  int sampling = MESH_SAMPLING_DEFERRED;
  bool any = false;
  /* X-B3-Flags: "1" is debug; the spec defines no other value, so any
   * other is ignored rather than voiding the context. */
  const char *v = get("x-b3-flags", user);
  if (v) {
    size_t n = strlen(v);
    mesh__trim_ows(&v, &n);
    if (streq_n(v, n, "1")) {
      any = true;
      sampling = MESH_SAMPLING_DEBUG;
    }
  }
  v = get("x-b3-sampled", user);
  if (v) {
    any = true;
    size_t n = strlen(v);
    mesh__trim_ows(&v, &n);
    int smp;
    /* "true"/"false" predate the spec; it asks receivers to accept them. */
    if (streq_n(v, n, "1") || streq_n(v, n, "true"))
      smp = MESH_SAMPLING_ACCEPT;
    else if (streq_n(v, n, "0") || streq_n(v, n, "false"))
      smp = MESH_SAMPLING_DENY;
    else
      return MESH_ERR_PARSE;
    if (sampling != MESH_SAMPLING_DEBUG) /* debug implies accept */
      sampling = smp;
  }
  /* The getter's value is valid only until its next call: parse at once. */
  const char *tid = get("x-b3-traceid", user);
  if (tid) {
    any = true;
    size_t n = strlen(tid);
    mesh__trim_ows(&tid, &n);
    if (!parse_trace_id(tid, n, &c))
      return MESH_ERR_PARSE;
  }
  const char *sid = get("x-b3-spanid", user);
  if (sid) {
    any = true;
    size_t n = strlen(sid);
    mesh__trim_ows(&sid, &n);
    if (!parse_span_id(sid, n, c.span_id))
      return MESH_ERR_PARSE;
  }
  const char *pid = get("x-b3-parentspanid", user);
  if (pid) {
    any = true;
    size_t n = strlen(pid);
    mesh__trim_ows(&pid, &n);
    if (!parse_span_id(pid, n, c.parent_span_id))
      return MESH_ERR_PARSE;
  }
  if (!any)
    return MESH_ERR_NOT_FOUND;
  bool have_tid = !mesh__is_zero(c.trace_id, 16);
  bool have_sid = !mesh__is_zero(c.span_id, 8);
  if (have_tid != have_sid || (pid && !have_tid))
    return MESH_ERR_PARSE; /* ids come together or not at all */
  if (!have_tid && sampling == MESH_SAMPLING_DEFERRED)
    return MESH_ERR_PARSE;
  set_flags(&c, sampling);
  c.has_ids = have_tid;
  memcpy(ctx, &c, offsetof(mesh_trace_ctx_t, tracestate) + 1);
  return MESH_OK;
}

int mesh__b3_multi_inject(const mesh_trace_ctx_t *ctx, mesh_trace_setter set,
                          void *user) {
  char buf[40];
  if (ctx->has_ids) {
    bool t64 = ctx->trace_id_64 && mesh__is_zero(ctx->trace_id, 8);
    if (t64) {
      mesh__hex_encode(ctx->trace_id + 8, 8, buf);
      buf[16] = '\0';
    } else {
      mesh__hex_encode(ctx->trace_id, 16, buf);
      buf[32] = '\0';
    }
    if (set("x-b3-traceid", buf, user) != 0)
      return MESH_ERR_IO;
    mesh__hex_encode(ctx->span_id, 8, buf);
    buf[16] = '\0';
    if (set("x-b3-spanid", buf, user) != 0)
      return MESH_ERR_IO;
    if (!mesh__is_zero(ctx->parent_span_id, 8)) {
      mesh__hex_encode(ctx->parent_span_id, 8, buf);
      buf[16] = '\0';
      if (set("x-b3-parentspanid", buf, user) != 0)
        return MESH_ERR_IO;
    }
  }
  /* Debug implies accept: X-B3-Sampled is not sent with X-B3-Flags. */
  const char *key = NULL, *val = NULL;
  if (ctx->sampling == MESH_SAMPLING_DEBUG) {
    key = "x-b3-flags";
    val = "1";
  } else if (ctx->sampling != MESH_SAMPLING_DEFERRED) {
    key = "x-b3-sampled";
    val = mesh__ctx_sampled(ctx) ? "1" : "0";
  }
  if (key && set(key, val, user) != 0)
    return MESH_ERR_IO;
  return MESH_OK;
}
