/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: helpers shared by the trace-context codecs
 * (traceparent.c, b3.c, propagation.c) and spans. */
#ifndef MESH_TELEMETRY_TRACE_CTX_H
#define MESH_TELEMETRY_TRACE_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mesh/trace.h>

#include "core/core.h"

/* mesh__hex_decode/_encode, mesh__is_zero: core/core.h (core/text.c). */
/** Strip HTTP optional whitespace (SP, HTAB) at both ends. */
void mesh__trim_ows(const char **s, size_t *len);
/** Is the context's decision "sampled" (accept or debug, else the flag)? */
bool mesh__ctx_sampled(const mesh_trace_ctx_t *ctx);
bool mesh__tracestate_key_ok(const char *k, size_t n);
bool mesh__tracestate_value_ok(const char *v, size_t n);

#endif /* MESH_TELEMETRY_TRACE_CTX_H */
