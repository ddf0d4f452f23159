/* SPDX-License-Identifier: Apache-2.0 */
/* The logical call: the policy in effect for all its tries (deadline,
 * per-try and connect timeouts, breaker thresholds, retry policy, the
 * cluster it is bound to), and the retry admission and backoff between
 * tries.  One try is calltry.c; the helpers that loop over tries are
 * calldo.c (mesh_call_do), hedge.c and dial.c. */
#include "resilience/call.h"
#include "core/core.h"
#include "telemetry/telemetry.h"

#include <stdlib.h>
#include <string.h>

/* ---- the logical call ---------------------------------------------------------- */

/* One version of the live settings for the whole call (live.c), and the
 * group the call is bound to: its subset's, else one drawn by weight (the
 * subset its tries then pick from, so retries stay in the cluster, as
 * Envoy's); the group's thresholds, counters and connect timeout, or the
 * service's when there is no group.  MESH_ERR_NOMEM only. */
static int bind_group(mesh__callx_t *x, const mesh_call_opts_t *o) {
  mesh__res_live_t *live = mesh__res_live_acquire(x->rs);
  const mesh__res_grp_t *g = NULL;
  if (live->ngrp)
    g = o && o->subset ? mesh__res_grp_find(live, o->subset)
                       : mesh__res_grp_draw(live, mesh__res_rand());
  if (g && !(x->grp = mesh__strdup(g->name))) {
    mesh__res_live_release(live);
    return MESH_ERR_NOMEM;
  }
  x->cb = g ? g->cb : live->cb;
  x->connect_ms = o && o->connect_ms > 0 ? o->connect_ms
                  : g                    ? g->connect_ms
                                         : live->connect_ms;
  x->br = g ? g->br : &x->rs->br;
  mesh__breakers_ref(x->br); /* outlives the version: held by the call */
  mesh__res_live_release(live);
  return MESH_OK;
}

int mesh__callx_init(mesh__callx_t *x, mesh_t *m, const char *service,
                     const mesh_call_opts_t *o, mesh_status_t *st) {
  memset(x, 0, sizeof *x);
  if (!m || !service)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "m and service must not be NULL");
  if (atomic_load(&m->closing))
    return mesh__fail(st, MESH_ERR_CLOSED, "the mesh context is closing");
  mesh__service_t *svc; /* first use of an xds name: wait, bounded */
  int ur = mesh__service_use(m, service, o ? o->deadline_ms : 0, &svc, st);
  if (ur)
    return ur < 0 ? ur : mesh__fail(st, MESH_ERR_UNKNOWN_SERVICE,
                      "\"%s\" is not a configured service", service);
  if (!svc->res)
    return mesh__fail(st, MESH_ERR_INTERNAL,
                      "service \"%s\" has no resilience state", service);
  x->m = m;
  x->svc = svc;
  x->rs = svc->res;
  const mesh__res_cfg_t *c = x->rs->cfg;
  x->start_ms = mesh__now_ms();
  x->start_ns = mesh__now_ns();
  int64_t overall = o && o->deadline_ms >= 0 ? o->deadline_ms : c->to.overall_ms;
  x->deadline_ms = overall > 0 ? x->start_ms + overall : 0;
  x->per_try_ms = o && o->per_try_ms >= 0 ? o->per_try_ms : c->to.per_try_ms;
  if (bind_group(x, o) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  x->max_retries = o && o->max_retries >= 0 ? (uint32_t)o->max_retries
                                            : c->retry.num_retries;
  x->retry = o && o->has_retry ? o->retry : c->retry;
  x->hedge = c->hedge.enabled && (!o || o->hedging);
  if (o) {
    x->hash_key = o->conn.hash_key;
    x->hash_key_len = o->conn.hash_key_len;
    x->alpn = o->conn.alpn;
    x->mux = o->mux;
    x->subset = o->subset;
    x->cancel = o->cancel;
  }
  if (!x->subset)
    x->subset = x->grp; /* drawn: the tries pick in that cluster */
  x->last_rc = MESH_OK;
  if (o && o->conn.has_parent)
    x->parent = o->conn.parent;
  mesh__span_start(m, &x->span, "mesh.call", MESH_SPAN_CLIENT, NULL,
                   o && o->conn.has_parent ? &x->parent : NULL);
  mesh__span_attr_str(&x->span, MESH__ATTR_SERVICE, svc->name);
  return MESH_OK;
}

void mesh__callx_fini(mesh__callx_t *x) {
  for (size_t i = 0; i < x->navoid; i++)
    mesh__host_unref(x->avoid[i]);
  x->navoid = 0;
  mesh__host_unref(x->last);
  x->last = NULL;
  mesh__breakers_unref(x->br);
  x->br = NULL;
  free(x->grp);
  x->grp = NULL;
}

void mesh__callx_done(mesh__callx_t *x, int rc) {
  if (x->rs)
    mesh__res_count_call(x->rs, x->last, rc, x->start_ns);
  if (rc != MESH_OK)
    mesh__span_fail(&x->span, rc, x->last_msg[0] ? x->last_msg : NULL);
  mesh__span_end(&x->span);
}

void mesh__callx_avoid(mesh__callx_t *x, mesh__host_t *h) {
  for (size_t i = 0; i < x->navoid; i++)
    if (x->avoid[i] == h)
      return;
  if (x->navoid == MESH__CALL_AVOID_MAX)
    return; /* the oldest tries are still avoided; enough to spread */
  mesh__host_ref(h);
  x->avoid[x->navoid++] = h;
}

int64_t mesh__callx_left(const mesh__callx_t *x, int64_t now) {
  if (!x->deadline_ms)
    return -1;
  int64_t left = x->deadline_ms - now;
  return left > 0 ? left : 0;
}

/* The classes are core's table (core/errclass.c). */
bool mesh__call_host_fault(int rc) {
  return (mesh__err_class(rc) & MESH__EF_HOST_FAULT) != 0;
}

void mesh__callx_remember(mesh__callx_t *x, int rc, const char *msg) {
  x->last_rc = rc;
  mesh__strlcpy(x->last_msg, msg ? msg : mesh_strerror(rc), sizeof x->last_msg);
}

/* Sleep the backoff before retry number x->retries (0-based), unless it
 * would end past the deadline; the call's cancel token cuts it short.
 * @return MESH_OK, MESH_ERR_DEADLINE or MESH_ERR_CLOSED (cancelled). */
int mesh__callx_backoff(mesh__callx_t *x, mesh_status_t *st) {
  const mesh__retry_cfg_t *rc = &x->retry;
  int64_t ms = mesh__backoff_ms(rc->base_interval_ms, rc->max_interval_ms,
                                x->retries, mesh__res_rand());
  int64_t left = mesh__callx_left(x, mesh__now_ms());
  if (left >= 0 && ms >= left)
    return mesh__fail(st, MESH_ERR_DEADLINE,
                      "service \"%s\": deadline of %lld ms exceeded before "
                      "retry %u (last error: %s)",
                      x->svc->name, (long long)(x->deadline_ms - x->start_ms),
                      x->retries + 1, x->last_msg);
  if (mesh__cancel_sleep(x->cancel, ms > 0 ? ms : 0))
    return mesh__fail(st, MESH_ERR_CLOSED,
                      "service \"%s\": call cancelled before retry %u (last "
                      "error: %s)",
                      x->svc->name, x->retries + 1, x->last_msg);
  return MESH_OK;
}

/* May try number x->tries be a retry?  Takes the retry slot into *slot.
 * @return MESH_OK, or the error that ends the call. */
int mesh__callx_may_retry(mesh__callx_t *x, bool *slot, mesh_status_t *st) {
  *slot = false;
  if (x->retries >= x->max_retries)
    return mesh__fail(st, x->last_rc, "service \"%s\": %s (after %u tr%s)",
                      x->svc->name, x->last_msg, x->tries,
                      x->tries == 1 ? "y" : "ies");
  if (x->deadline_ms && mesh__now_ms() >= x->deadline_ms)
    return mesh__fail(st, MESH_ERR_DEADLINE,
                      "service \"%s\": deadline of %lld ms exceeded after %u "
                      "tr%s (last error: %s)",
                      x->svc->name, (long long)(x->deadline_ms - x->start_ms),
                      x->tries, x->tries == 1 ? "y" : "ies", x->last_msg);
  mesh__res_svc_t *rs = x->rs;
  if (!mesh__retry_admit(x->br, &rs->cfg->retry, &x->cb)) {
    atomic_fetch_add(&rs->retry_overflow, 1);
    mesh__counter_add(rs->mx.budget, 1);
    mesh__res_count_overflow(rs, x->br, MESH__BR_RETRIES);
    return mesh__fail(st, MESH_ERR_RETRY_BUDGET,
                      "service \"%s\": retry refused by the retry budget "
                      "(%lld retries in flight; last error: %s)",
                      x->svc->name, (long long)atomic_load(&x->br->retries),
                      x->last_msg);
  }
  atomic_fetch_add(&rs->retries, 1);
  mesh__counter_add(rs->mx.retries, 1);
  *slot = true;
  return MESH_OK;
}
