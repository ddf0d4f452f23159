/* SPDX-License-Identifier: Apache-2.0 */
/* W3C Trace Context: the traceparent and tracestate header values.
 * Bytes in, struct out: no I/O, no allocation. */
#include "telemetry/trace_ctx.h"

#include <string.h>

void mesh__trim_ows(const char **s, size_t *len) {
  const char *p = *s;
  size_t n = *len;
  while (n && (*p == ' ' || *p == '\t')) {
    p++;
    n--;
  }
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  *s = p;
  *len = n;
}

/* ---- traceparent ------------------------------------------------------------ */

int mesh_traceparent_parse(const char *s, size_t len, mesh_trace_ctx_t *ctx) {
  if (!s || !ctx)
    return MESH_ERR_INVALID_ARG;
  mesh__trim_ows(&s, &len);
  if (len < MESH_TRACEPARENT_LEN)
    return MESH_ERR_PARSE;
  uint8_t ver, tid[16], sid[8], flags;
  if (!mesh__hex_decode(s, 2, &ver) || ver == 0xff || s[2] != '-' ||
      !mesh__hex_decode(s + 3, 32, tid) || s[35] != '-' ||
      !mesh__hex_decode(s + 36, 16, sid) || s[52] != '-' ||
      !mesh__hex_decode(s + 53, 2, &flags))
    return MESH_ERR_PARSE;
  /* Version 00 has exactly four fields; a later version may append
   * fields, which must start with '-' and are ignored. */
  if (len > MESH_TRACEPARENT_LEN && (ver == 0 || s[55] != '-'))
    return MESH_ERR_PARSE;
  if (mesh__is_zero(tid, 16) || mesh__is_zero(sid, 8))
    return MESH_ERR_PARSE;
  memcpy(ctx->trace_id, tid, 16);
  memcpy(ctx->span_id, sid, 8);
  memset(ctx->parent_span_id, 0, 8);
  ctx->flags = flags;
  ctx->sampling = (flags & MESH_TRACE_FLAG_SAMPLED) ? MESH_SAMPLING_ACCEPT
                                                    : MESH_SAMPLING_DENY;
  ctx->has_ids = 1;
  ctx->trace_id_64 = 0;
  ctx->tracestate[0] = '\0';
  return MESH_OK;
}

bool mesh__ctx_sampled(const mesh_trace_ctx_t *ctx) {
  if (ctx->sampling == MESH_SAMPLING_ACCEPT ||
      ctx->sampling == MESH_SAMPLING_DEBUG)
    return true;
  if (ctx->sampling == MESH_SAMPLING_DENY)
    return false;
  return (ctx->flags & MESH_TRACE_FLAG_SAMPLED) != 0;
}

int mesh_traceparent_format(const mesh_trace_ctx_t *ctx, char *buf,
                            size_t len) {
  if (!ctx || !buf || !ctx->has_ids || mesh__is_zero(ctx->trace_id, 16) ||
      mesh__is_zero(ctx->span_id, 8))
    return MESH_ERR_INVALID_ARG;
  if (len < MESH_TRACEPARENT_LEN + 1)
    return MESH_ERR_BUFFER;
  /* Sampled as decided, random as received (Level 2: kept with the
   * trace-id); flags no version defines are not propagated. */
  uint8_t flags = (uint8_t)((mesh__ctx_sampled(ctx) ? MESH_TRACE_FLAG_SAMPLED
                                                    : 0) |
                            (ctx->flags & MESH_TRACE_FLAG_RANDOM));
  memcpy(buf, "00-", 3);
  mesh__hex_encode(ctx->trace_id, 16, buf + 3);
  buf[35] = '-';
  mesh__hex_encode(ctx->span_id, 8, buf + 36);
  buf[52] = '-';
  mesh__hex_encode(&flags, 1, buf + 53);
  buf[55] = '\0';
  return MESH_TRACEPARENT_LEN;
}

/* ---- tracestate ------------------------------------------------------------ */

static bool ts_keychar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '*' || c == '/' || c == '@';
}

/* The current Trace Context key grammar (Level 2 and the editor's draft):
 *   key     = ( lcalpha / DIGIT ) 0*255 ( keychar )
 *   keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
 * It holds every Level 1 key: simple-key (lcalpha, then up to 255
 * keychars without "@") and multi-tenant-key (tenant-id "@" system-id,
 * at most 241 + 1 + 14 characters). */
bool mesh__tracestate_key_ok(const char *k, size_t n) {
  if (n == 0 || n > 256)
    return false;
  if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!ts_keychar(k[i]))
      return false;
  return true;
}

/* value    = 0*255(chr) nblk-chr
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
 * chr      = %x20 / nblk-chr */
bool mesh__tracestate_value_ok(const char *v, size_t n) {
  if (n == 0 || n > 256)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
      return false;
  }
  return v[n - 1] != ' ';
}

typedef struct member {
  const char *p; /* "key=value" */
  size_t len, klen;
} member_t;

/* Split into members; a repeated key keeps its first member (the
 * left-most is the most recent position of that vendor; the W3C test
 * suite accepts this).  @return count, or -1 if invalid. */
static int ts_split(const char *s, size_t len, member_t *mv) {
  int n = 0;
  size_t i = 0;
  while (i <= len) {
    size_t j = i;
    while (j < len && s[j] != ',')
      j++;
    const char *p = s + i;
    size_t ml = j - i;
    mesh__trim_ows(&p, &ml);
    if (ml > 0) {
      const char *eq = memchr(p, '=', ml);
      if (!eq)
        return -1;
      size_t kl = (size_t)(eq - p);
      if (!mesh__tracestate_key_ok(p, kl) ||
          !mesh__tracestate_value_ok(eq + 1, ml - kl - 1))
        return -1;
      bool dup = false;
      for (int k = 0; k < n && !dup; k++)
        dup = mv[k].klen == kl && memcmp(mv[k].p, p, kl) == 0;
      if (!dup && n == MESH_TRACESTATE_MAX_MEMBERS)
        return -1; /* a 33rd distinct key */
      if (!dup) {
        mv[n].p = p;
        mv[n].len = ml;
        mv[n].klen = kl;
        n++;
      }
    }
    i = j + 1;
  }
  return n;
}

static size_t ts_total(const member_t *mv, const bool *keep, int n) {
  size_t total = 0, k = 0;
  for (int i = 0; i < n; i++) {
    if (!keep[i])
      continue;
    total += mv[i].len + (k ? 1 : 0);
    k++;
  }
  return total;
}

int mesh_tracestate_parse(const char *s, size_t len, char *out,
                          size_t outlen) {
  if (!s || !out || outlen == 0)
    return MESH_ERR_INVALID_ARG;
  member_t mv[MESH_TRACESTATE_MAX_MEMBERS];
  int n = ts_split(s, len, mv);
  if (n < 0)
    return MESH_ERR_PARSE;
  bool keep[MESH_TRACESTATE_MAX_MEMBERS];
  for (int i = 0; i < n; i++)
    keep[i] = true;
  /* Truncation: whole members, long ones (> 128) first, right to left. */
  for (int i = n - 1; i >= 0 && ts_total(mv, keep, n) > MESH_TRACESTATE_MAX;
       i--)
    if (mv[i].len > 128)
      keep[i] = false;
  for (int i = n - 1; i >= 0 && ts_total(mv, keep, n) > MESH_TRACESTATE_MAX;
       i--)
    keep[i] = false;
  size_t total = ts_total(mv, keep, n);
  if (total + 1 > outlen)
    return MESH_ERR_BUFFER;
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    if (!keep[i])
      continue;
    if (o)
      out[o++] = ',';
    memcpy(out + o, mv[i].p, mv[i].len);
    o += mv[i].len;
  }
  out[o] = '\0';
  return (int)o;
}
