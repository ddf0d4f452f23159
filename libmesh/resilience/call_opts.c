/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_call_opts_*: the call's own settings (deadlines, retries, hedging,
 * subset) and, through the shared validators of core/opts.c, the hash key,
 * ALPN and trace parent with the same rules as mesh_dial_opts_*. */
#include "resilience/call.h"

#include <stdlib.h>
#include <string.h>

void mesh__call_opts_defaults(mesh_call_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->deadline_ms = -1;
  o->per_try_ms = -1;
  o->connect_ms = -1;
  o->max_retries = -1;
  o->hedging = 1;
}

mesh_call_opts_t *mesh_call_opts_new(void) {
  mesh_call_opts_t *o = malloc(sizeof *o);
  if (!o)
    return NULL;
  mesh__call_opts_defaults(o);
  return o;
}

void mesh_call_opts_free(mesh_call_opts_t *o) {
  if (!o)
    return;
  mesh__opts_fini(&o->conn);
  free(o->subset);
  free(o);
}

int mesh_call_opts_set_subset(mesh_call_opts_t *o, const char *subset) {
  if (!o)
    return MESH_ERR_INVALID_ARG;
  char *s = NULL;
  if (subset) {
    s = strdup(subset);
    if (!s)
      return MESH_ERR_NOMEM;
  }
  free(o->subset);
  o->subset = s;
  return MESH_OK;
}

int mesh_call_opts_set_hash_key(mesh_call_opts_t *o, const void *key,
                                size_t len) {
  return mesh__opts_set_hash_key(o ? &o->conn : NULL, key, len);
}

int mesh_call_opts_set_deadline(mesh_call_opts_t *o, int timeout_ms) {
  if (!o || timeout_ms < 0)
    return MESH_ERR_INVALID_ARG;
  o->deadline_ms = timeout_ms;
  return MESH_OK;
}

int mesh_call_opts_set_per_try_timeout(mesh_call_opts_t *o, int timeout_ms) {
  if (!o || timeout_ms < 0)
    return MESH_ERR_INVALID_ARG;
  o->per_try_ms = timeout_ms;
  return MESH_OK;
}

int mesh_call_opts_set_connect_timeout(mesh_call_opts_t *o, int timeout_ms) {
  if (!o || timeout_ms <= 0)
    return MESH_ERR_INVALID_ARG;
  o->connect_ms = timeout_ms;
  return MESH_OK;
}

int mesh_call_opts_set_max_retries(mesh_call_opts_t *o, int retries) {
  if (!o || retries < 0 || retries > 100)
    return MESH_ERR_INVALID_ARG;
  o->max_retries = retries;
  return MESH_OK;
}

int mesh_call_opts_set_hedging(mesh_call_opts_t *o, int on) {
  if (!o)
    return MESH_ERR_INVALID_ARG;
  o->hedging = on ? 1 : 0;
  return MESH_OK;
}

int mesh_call_opts_set_trace_parent(mesh_call_opts_t *o,
                                    const mesh_trace_ctx_t *ctx) {
  return mesh__opts_set_trace_parent(o ? &o->conn : NULL, ctx);
}

int mesh_call_opts_set_alpn(mesh_call_opts_t *o, const char *alpn) {
  return mesh__opts_set_alpn(o ? &o->conn : NULL, alpn);
}

int mesh_call_opts_set_cancel(mesh_call_opts_t *o, mesh_cancel_t *cancel) {
  if (!o)
    return MESH_ERR_INVALID_ARG;
  o->cancel = cancel;
  return MESH_OK;
}

void mesh__call_opts_set_retry(mesh_call_opts_t *o, const mesh__retry_cfg_t *r) {
  if (!o)
    return;
  o->has_retry = r != NULL;
  if (r)
    o->retry = *r;
}
