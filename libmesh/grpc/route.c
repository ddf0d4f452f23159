/* SPDX-License-Identifier: Apache-2.0 */
/* A gRPC call routed by a control plane (the xds hook of http.h): the
 * decision for the call's path and metadata, applied to its call options
 * (cluster, deadline A31, retry A44, hash key A42) and its faults (A33);
 * and the decision made once more when the cluster it named is gone by
 * the time of the pick (mesh__http_xroute_again, shared with HTTP;
 * client.c's mesh__grpc_redecide binds the call to it). */
#include "grpc/grpc_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct md_view {
  const mesh_grpc_call_t *c;
  char buf[1024];
} md_view_t;

/* A metadata value, repeated keys joined with "," (gRFC A28). */
static const char *md_get(void *user, const char *name) {
  md_view_t *v = user;
  const mesh_grpc_metadata_t *md = v->c->md;
  const char *one = NULL;
  size_t n = 0, k = 0;
  for (size_t i = 0; md && i < md->n; i++) {
    if (strcmp(md->v[i].key, name) != 0)
      continue;
    one = (const char *)md->v[i].val;
    int w = snprintf(v->buf + n, sizeof v->buf - n, "%s%s", k++ ? "," : "",
                     one);
    n += w > 0 && (size_t)w < sizeof v->buf - n ? (size_t)w : 0;
  }
  return k > 1 ? v->buf : one;
}

void mesh__grpc_preset(mesh_grpc_call_t *c, int code, const char *msg) {
  c->preset = true;
  c->status = code;
  free(c->message);
  c->message = mesh__strdup(msg);
}

/* gRFC A44: the route's retry policy replaces the service config's for
 * this call (only its gRPC status codes count); no policy: no retry. */
static void route_retry(mesh_grpc_call_t *c, const mesh__xroute_t *x) {
  if (c->mcfg && c->mcfg != &c->xcfg) /* decided again: xcfg is the base */
    c->xcfg = *c->mcfg;
  c->xcfg.service = c->xcfg.method = NULL; /* borrowed names: not needed */
  c->xcfg.has_hedge = false;
  c->xcfg.has_retry = x->grpc_codes != 0 && x->retries > 0;
  if (c->xcfg.has_retry) {
    int64_t base = x->base_ms > 0 ? x->base_ms : 25;
    c->xcfg.retry = (mesh__grpc_retry_t){
        .max_attempts = x->retries + 1 > MESH__GRPC_MAX_ATTEMPTS
                            ? MESH__GRPC_MAX_ATTEMPTS : (uint32_t)x->retries + 1,
        .initial_backoff_ms = base,
        .max_backoff_ms = x->max_ms > 0 ? x->max_ms : 10 * base,
        .multiplier = 2.0,
        .codes = x->grpc_codes};
  }
  c->mcfg = &c->xcfg;
}

/* The route's fault (A33): a delay within the call's timeout, an abort
 * presets the call's status. */
static void fault(mesh_grpc_call_t *c, const mesh__xroute_t *x,
                  int64_t *timeout) {
  if (x->delay_ms > 0) {
    int64_t d = *timeout > 0 && *timeout < x->delay_ms ? *timeout : x->delay_ms;
    struct timespec ts = {(time_t)(d / 1000), (long)(d % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
      ;
    if (d < x->delay_ms)
      mesh__grpc_preset(c, MESH__GRPC_DEADLINE_EXCEEDED, "deadline exceeded "
                        "during the route's fault delay");
    else if (*timeout > 0)
      *timeout -= d;
  }
  if (!c->preset && x->abort_grpc >= 0)
    mesh__grpc_preset(c, x->abort_grpc, "fault injected by the route");
  else if (!c->preset && x->abort_http > 0)
    mesh__grpc_preset(c, mesh__grpc_code_from_http(x->abort_http),
                      "fault injected by the route");
}

int mesh__grpc_route_apply(mesh_grpc_call_t *c, const mesh__xroute_t *x,
                           int64_t *timeout, mesh_status_t *st) {
  route_retry(c, x);
  mesh__strlcpy(c->xsubset, x->subset, sizeof c->xsubset);
  if (x->timeout_ms > 0 && (*timeout <= 0 || x->timeout_ms < *timeout))
    *timeout = x->timeout_ms;
  if (mesh_call_opts_set_subset(c->copts, x->subset[0] ? x->subset : NULL) ||
      mesh_call_opts_set_hash_key(c->copts, x->hash_len ? x->hash_key : NULL,
                                  x->hash_len))
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  fault(c, x, timeout);
  return MESH_OK;
}

int mesh__grpc_route(mesh_grpc_call_t *c, const char *service,
                     int64_t *timeout, mesh_status_t *st) {
  md_view_t v = {.c = c};
  mesh__xroute_in_t in = {.path = c->path, .header = md_get, .user = &v,
                          .grpc = true};
  mesh__xroute_t x;
  mesh_status_t why = {0};
  int rc = mesh__http_xroute(c->m, service, &in, &x, &why);
  if (rc == 1)
    return 1;
  if (rc < 0) { /* no route: UNAVAILABLE, as gRPC */
    mesh__grpc_preset(c, MESH__GRPC_UNAVAILABLE, why.message);
    return MESH_OK;
  }
  return mesh__grpc_route_apply(c, &x, timeout, st);
}

int mesh__grpc_route_again(mesh_grpc_call_t *c, const char *service,
                           mesh__xroute_t *x) {
  md_view_t v = {.c = c};
  mesh__xroute_in_t in = {.path = c->path, .header = md_get, .user = &v,
                          .grpc = true};
  return mesh__http_xroute_again(c->m, service, &in, c->xsubset, x);
}
