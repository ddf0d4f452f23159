/* SPDX-License-Identifier: Apache-2.0 */
/* The per-service resilience state: built from the config at mesh_new(),
 * its worker-loop timers (outlier sweep, pool sweep, health checks), and the
 * per-host state created on first use. */
#include "discovery/discovery.h"
#include "resilience/resilience.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-host state ---------------------------------------------------------
 * host->res is a typed atomic pointer of the endpoint model; it is created
 * lazily by whichever thread first reports on the host, so it is read and
 * published with C11 atomics (a CAS; the loser frees its copy). */

static void res_host_free(struct mesh__res_host *p) { free(p); }
static void pool_free(struct mesh__pool *p) { mesh__pool_free(p); }

/* How hosts free what resilience attaches to them (endpoint/endpoint.h). */
static const mesh__host_state_ops_t host_ops = {res_host_free, pool_free};

void mesh__res_host_ops_register(void) { mesh__host_state_ops_set(&host_ops); }

mesh__res_host_t *mesh__res_host(mesh__host_t *h) {
  if (!h)
    return NULL;
  mesh__res_host_t *r = atomic_load_explicit(&h->res, memory_order_acquire);
  if (r)
    return r;
  r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->success_rate = -1;
  /* The ops first: host_free() only uses them with res set, and every
   * racer stores the same value. */
  mesh__res_host_ops_register();
  mesh__res_host_t *expected = NULL;
  if (atomic_compare_exchange_strong_explicit(
          &h->res, &expected, r, memory_order_acq_rel, memory_order_acquire))
    return r;
  free(r);
  return expected;
}

/* ---- service state ----------------------------------------------------------- */

/* The defaults every service without resilience keys gets: shared (read
 * only) instead of one copy per service.  Byte-equal to what
 * mesh__res_cfg_parse makes from an empty object (both start from
 * mesh__res_cfg_defaults); a config that compares unequal only costs its
 * own copy. */
static mesh__res_cfg_t shared_defaults;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void shared_init(void) { mesh__res_cfg_defaults(&shared_defaults); }

static const mesh__res_cfg_t *cfg_keep(const mesh__res_cfg_t *cfg) {
  pthread_once(&shared_once, shared_init);
  if (memcmp(cfg, &shared_defaults, sizeof *cfg) == 0)
    return &shared_defaults;
  mesh__res_cfg_t *c = malloc(sizeof *c);
  if (c)
    *c = *cfg;
  return c;
}

static void cfg_drop(const mesh__res_cfg_t *cfg) {
  if (cfg != &shared_defaults)
    free((void *)cfg);
}

int mesh__res_svc_new(mesh_t *m, mesh__service_t *svc, const char *name,
                      const mesh__res_cfg_t *cfg, mesh__res_svc_t **out) {
  if (!cfg || !out)
    return MESH_ERR_INVALID_ARG;
  mesh__res_svc_t *rs = calloc(1, sizeof *rs);
  if (!rs)
    return MESH_ERR_NOMEM;
  rs->m = m;
  rs->svc = svc;
  rs->name = name ? name : "?";
  rs->cfg = cfg_keep(cfg);
  mesh__res_live_t *l = rs->cfg ? mesh__res_live_new(cfg) : NULL;
  if (!l) {
    if (rs->cfg)
      cfg_drop(rs->cfg);
    free(rs);
    return MESH_ERR_NOMEM;
  }
  atomic_init(&rs->live, l);
  rs->sr_mean = rs->sr_threshold = -1;
  pthread_mutex_init(&rs->od_mu, NULL);
  pthread_mutex_init(&rs->live_mu, NULL);
  *out = rs;
  return MESH_OK;
}

void mesh__res_svc_free(mesh__res_svc_t *rs) {
  if (!rs)
    return;
  pthread_mutex_destroy(&rs->od_mu);
  pthread_mutex_destroy(&rs->live_mu);
  mesh__res_live_release(atomic_load(&rs->live));
  cfg_drop(rs->cfg);
  free(rs->alpn);
  for (uint32_t i = 0; i < rs->ngrp_series; i++)
    free(rs->grp_series[i]);
  free(rs->grp_series);
  free(rs);
}


mesh__snapshot_t *mesh__res_snapshot(mesh__service_t *svc) {
  return svc ? mesh__snap_acquire(mesh__disc_snapref(svc)) : NULL;
}
