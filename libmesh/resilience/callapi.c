/* SPDX-License-Identifier: Apache-2.0 */
/* The public single try: mesh_call_begin() acquires one connection through
 * the call layer (calltry.c), the application speaks on it, and
 * mesh_call_end() reports how it went. */
#include "resilience/call.h"
#include "core/core.h"

#include <stdlib.h>


int mesh_call_begin(mesh_t *m, const char *service,
                    const mesh_call_opts_t *opts, mesh_call_t **out,
                    mesh_status_t *st) {
  mesh_status_t local; /* the machinery keeps the last message */
  if (!st)
    st = &local;
  mesh__ok(st);
  if (!out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "out must not be NULL");
  *out = NULL;
  mesh_call_t *c = calloc(1, sizeof *c);
  if (!c)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  c->x = &c->own;
  int rc = mesh__callx_init(c->x, m, service, opts, st);
  if (rc == MESH_OK)
    rc = mesh__call_acquire(c, false, NULL, st);
  if (rc != MESH_OK) {
    mesh__callx_done(c->x, rc);
    mesh__callx_fini(c->x);
    free(c);
    return rc;
  }
  mesh__call_arm(c);
  *out = c;
  return MESH_OK;
}

mesh_conn_t *mesh_call_conn(mesh_call_t *call) {
  return call ? call->conn : NULL;
}

int mesh_call_remaining_ms(const mesh_call_t *call) {
  if (!call || !call->try_deadline_ms)
    return -1;
  int64_t left = call->try_deadline_ms - mesh__now_ms();
  return left > 0 ? (int)left : 0;
}

const char *mesh_call_endpoint(const mesh_call_t *call) {
  return call && call->host ? call->host->key : "";
}

int mesh_call_trace_context(const mesh_call_t *call, mesh_trace_ctx_t *out) {
  if (!call || !out)
    return MESH_ERR_INVALID_ARG;
  mesh__span_context(&call->span, out);
  return MESH_OK;
}

int mesh_call_attempt(const mesh_call_t *call) {
  return call ? call->attempt : -1;
}

int mesh_call_end(mesh_call_t *call, int outcome, int status_code) {
  if (!call)
    return MESH_OK;
  int rc = MESH_OK;
  if (outcome < 0 || outcome >= MESH__OUT_MAX_) {
    outcome = MESH__OUT_PROTOCOL_ERROR;
    rc = MESH_ERR_INVALID_ARG;
  }
  mesh__call_finish(call, outcome, status_code);
  int res = MESH_OK;
  if (outcome == MESH__OUT_OK || outcome == MESH__OUT_OK_CLOSE) {
    if (mesh__status_is_error(&call->x->retry, status_code))
      res = MESH_ERR_UPSTREAM;
  } else {
    res = mesh__call_try_error(call->x, "", outcome, status_code, NULL);
  }
  mesh__callx_done(call->x, res);
  mesh__callx_fini(call->x);
  free(call);
  return rc;
}
