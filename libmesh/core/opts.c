/* SPDX-License-Identifier: Apache-2.0 */
/* Connection options: the one internal struct (struct mesh_dial_opts in
 * core.h) and the one set of validators behind both public builders,
 * mesh_dial_opts_* (here) and mesh_call_opts_* (resilience/call_opts.c), so
 * the two give the same verdict for the same input.  Typed setters, no
 * varargs, so cgo and ctypes can call every one. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

/* ---- shared validators ---------------------------------------------------- */

/* "h2,http/1.1": 1..MESH__ALPN_MAX names of 1..255 bytes (RFC 7301: a
 * protocol name is 1..255 bytes; the list may not hold an empty one). */
static bool alpn_valid(const char *s) {
  size_t n = 0, len = 0;
  for (const char *p = s;; p++) {
    if (*p == ',' || *p == '\0') {
      if (len == 0 || len > 255)
        return false;
      n++;
      len = 0;
      if (*p == '\0')
        break;
    } else {
      len++;
    }
  }
  return n <= MESH__ALPN_MAX;
}

int mesh__opts_set_alpn(mesh_dial_opts_t *o, const char *alpn) {
  if (!o)
    return MESH_ERR_INVALID_ARG;
  if (alpn && !alpn_valid(alpn))
    return MESH_ERR_INVALID_ARG;
  char *a = NULL;
  if (alpn) {
    a = strdup(alpn);
    if (!a)
      return MESH_ERR_NOMEM;
  }
  free(o->alpn);
  o->alpn = a;
  return MESH_OK;
}

int mesh__opts_set_hash_key(mesh_dial_opts_t *o, const void *key,
                            size_t len) {
  if (!o || (!key && len) || len > MESH__HASH_KEY_MAX)
    return MESH_ERR_INVALID_ARG;
  char *k = NULL;
  if (len) {
    k = malloc(len);
    if (!k)
      return MESH_ERR_NOMEM;
    memcpy(k, key, len);
  }
  free(o->hash_key);
  o->hash_key = k;
  o->hash_key_len = len;
  return MESH_OK;
}

int mesh__opts_set_trace_parent(mesh_dial_opts_t *o,
                                const mesh_trace_ctx_t *ctx) {
  if (!o)
    return MESH_ERR_INVALID_ARG;
  if (!ctx) {
    o->has_parent = false;
    return MESH_OK;
  }
  o->parent = *ctx;
  o->parent.tracestate[sizeof o->parent.tracestate - 1] = '\0';
  /* All-zero ids are "none" (trace.h): keep only the sampling decision,
   * never a span in an all-zero trace. */
  static const uint8_t zero[16];
  if (memcmp(ctx->trace_id, zero, 16) == 0 ||
      memcmp(ctx->span_id, zero, 8) == 0)
    o->parent.has_ids = 0;
  o->has_parent = true;
  return MESH_OK;
}

void mesh__opts_fini(mesh_dial_opts_t *o) {
  if (!o)
    return;
  for (size_t i = 0; i < o->npeers; i++)
    free(o->peers[i]);
  o->npeers = 0;
  free(o->alpn);
  o->alpn = NULL;
  free(o->hash_key);
  o->hash_key = NULL;
  o->hash_key_len = 0;
}

/* ---- mesh_dial_opts_* ------------------------------------------------------- */

mesh_dial_opts_t *mesh_dial_opts_new(void) {
  return calloc(1, sizeof(mesh_dial_opts_t));
}

void mesh_dial_opts_free(mesh_dial_opts_t *o) {
  if (!o)
    return;
  mesh__opts_fini(o);
  free(o);
}

int mesh_dial_opts_set_timeout(mesh_dial_opts_t *o, int timeout_ms) {
  if (!o || timeout_ms < 0)
    return MESH_ERR_INVALID_ARG;
  o->timeout_ms = timeout_ms;
  return MESH_OK;
}

int mesh_dial_opts_add_peer(mesh_dial_opts_t *o, const char *pattern) {
  if (!o || !pattern || !*pattern || strlen(pattern) > MESH_SPIFFE_ID_MAX)
    return MESH_ERR_INVALID_ARG;
  if (o->npeers >= MESH__MAX_PEERS)
    return MESH_ERR_INVALID_ARG;
  char *p = strdup(pattern);
  if (!p)
    return MESH_ERR_NOMEM;
  o->peers[o->npeers++] = p;
  return MESH_OK;
}

int mesh_dial_opts_set_alpn(mesh_dial_opts_t *o, const char *alpn) {
  return mesh__opts_set_alpn(o, alpn);
}

int mesh_dial_opts_set_nonblocking(mesh_dial_opts_t *o, int on) {
  if (!o)
    return MESH_ERR_INVALID_ARG;
  o->nonblocking = on != 0;
  return MESH_OK;
}

int mesh_dial_opts_set_hash_key(mesh_dial_opts_t *o, const char *key,
                                size_t len) {
  return mesh__opts_set_hash_key(o, key, len);
}

int mesh_dial_opts_set_trace_parent(mesh_dial_opts_t *o,
                                    const mesh_trace_ctx_t *ctx) {
  return mesh__opts_set_trace_parent(o, ctx);
}
