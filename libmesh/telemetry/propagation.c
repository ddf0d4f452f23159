/* SPDX-License-Identifier: Apache-2.0 */
/* Extract and inject trace context through getter/setter callbacks, so any
 * protocol (HTTP headers, gRPC metadata, a custom framing) can carry it. */
#include "telemetry/trace_ctx.h"

#include <string.h>

int mesh__b3_multi_extract(mesh_trace_getter get, void *user,
                           mesh_trace_ctx_t *ctx);
int mesh__b3_multi_inject(const mesh_trace_ctx_t *ctx, mesh_trace_setter set,
                          void *user);

#define B3_ANY (MESH_PROPAGATE_B3 | MESH_PROPAGATE_B3_MULTI)

int mesh_trace_extract(unsigned formats, mesh_trace_getter get, void *user,
                       mesh_trace_ctx_t *ctx) {
  if (!get || !ctx)
    return MESH_ERR_INVALID_ARG;
  bool present = false;
  if (formats & MESH_PROPAGATE_TRACECONTEXT) {
    const char *tp = get("traceparent", user);
    if (tp) {
      present = true;
      if (mesh_traceparent_parse(tp, strlen(tp), ctx) == MESH_OK) {
        /* An invalid tracestate does not void a valid traceparent. */
        const char *ts = get("tracestate", user);
        if (ts && mesh_tracestate_parse(ts, strlen(ts), ctx->tracestate,
                                        sizeof ctx->tracestate) < 0)
          ctx->tracestate[0] = '\0';
        return MESH_OK;
      }
    }
  }
  if (formats & B3_ANY) {
    /* The single header wins over the multi headers (B3 spec). */
    const char *b3 = get("b3", user);
    if (b3) {
      present = true;
      if (mesh_b3_parse(b3, strlen(b3), ctx) == MESH_OK)
        return MESH_OK;
    }
    int rc = mesh__b3_multi_extract(get, user, ctx);
    if (rc == MESH_OK)
      return MESH_OK;
    if (rc == MESH_ERR_PARSE)
      present = true;
  }
  return present ? MESH_ERR_PARSE : MESH_ERR_NOT_FOUND;
}

int mesh_trace_inject(const mesh_trace_ctx_t *ctx, unsigned formats,
                      mesh_trace_setter set, void *user) {
  if (!ctx || !set)
    return MESH_ERR_INVALID_ARG;
  char buf[80];
  if ((formats & MESH_PROPAGATE_TRACECONTEXT) && ctx->has_ids) {
    int n = mesh_traceparent_format(ctx, buf, sizeof buf);
    if (n < 0)
      return n;
    if (set("traceparent", buf, user) != 0)
      return MESH_ERR_IO;
    if (ctx->tracestate[0] && set("tracestate", ctx->tracestate, user) != 0)
      return MESH_ERR_IO;
  }
  if (formats & MESH_PROPAGATE_B3) {
    int n = mesh_b3_format(ctx, buf, sizeof buf);
    if (n < 0)
      return n;
    if (set("b3", buf, user) != 0)
      return MESH_ERR_IO;
  }
  if (formats & MESH_PROPAGATE_B3_MULTI) {
    if (!ctx->has_ids && ctx->sampling == MESH_SAMPLING_DEFERRED)
      return MESH_ERR_INVALID_ARG;
    return mesh__b3_multi_inject(ctx, set, user);
  }
  if (!ctx->has_ids && !(formats & B3_ANY))
    return MESH_ERR_INVALID_ARG;
  return MESH_OK;
}
