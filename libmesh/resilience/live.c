/* SPDX-License-Identifier: Apache-2.0 */
/* The settings of a service that a control plane changes while calls run:
 * outlier detection, circuit breaker thresholds, the connect timeout, for
 * the whole service and per group of hosts (group.c).  One
 * immutable, reference-counted object per version, published with the
 * same epoch scheme as endpoint snapshots (endpoint/endpoint.c), so a
 * reader on any thread sees a whole version and never a freed one. */
#include <sched.h>
#include <stdlib.h>

#include "resilience/resilience.h"

mesh__res_live_t *mesh__res_live_new(const mesh__res_cfg_t *cfg) {
  mesh__res_live_t *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  atomic_init(&l->refs, 1);
  l->od = cfg->od;
  l->cb = cfg->cb;
  l->connect_ms = cfg->to.connect_ms;
  return l;
}

void mesh__res_live_release(mesh__res_live_t *l) {
  if (l && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1) {
    mesh__res_grp_free(l);
    free(l);
  }
}

mesh__res_live_t *mesh__res_live_acquire(mesh__res_svc_t *rs) {
  for (;;) {
    uint32_t e = atomic_load(&rs->live_epoch);
    atomic_fetch_add(&rs->live_readers[e & 1], 1);
    if (atomic_load(&rs->live_epoch) != e) {
      /* A writer flipped between our load and our announcement. */
      atomic_fetch_sub(&rs->live_readers[e & 1], 1);
      continue;
    }
    mesh__res_live_t *l = atomic_load(&rs->live);
    if (l)
      atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    atomic_fetch_sub(&rs->live_readers[e & 1], 1);
    return l;
  }
}

void mesh__res_live_publish(mesh__res_svc_t *rs, mesh__res_live_t *l) {
  pthread_mutex_lock(&rs->live_mu);
  mesh__res_live_t *old = atomic_exchange(&rs->live, l);
  uint32_t e = atomic_fetch_add(&rs->live_epoch, 1);
  /* Readers of the old epoch are inside a few instructions of acquire. */
  for (unsigned spins = 0; atomic_load(&rs->live_readers[e & 1]) != 0; spins++)
    if (spins > 64)
      sched_yield();
  pthread_mutex_unlock(&rs->live_mu);
  mesh__res_live_release(old);
}

int mesh__res_reconfigure(mesh__service_t *svc, const cJSON *svc_cfg,
                          mesh_status_t *st) {
  mesh__res_svc_t *rs = svc ? (mesh__res_svc_t *)svc->res : NULL;
  if (!rs)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "no resilience state");
  static const char *const keys[] = {"outlier_detection", "circuit_breakers",
                                     "timeouts", NULL};
  mesh__cfg_t c = {.first = st};
  for (size_t i = 0; keys[i]; i++)
    mesh__res_cfg_check_key(
        &c, keys[i], cJSON_GetObjectItemCaseSensitive(svc_cfg, keys[i]),
        keys[i]);
  if (c.nerr > 0)
    return MESH_ERR_CONFIG;
  mesh__res_cfg_t cfg;
  mesh__res_cfg_parse(&c, svc_cfg, "", &cfg);
  if (c.nerr > 0)
    return MESH_ERR_CONFIG;
  mesh__res_live_t *l = mesh__res_live_new(&cfg);
  if (!l)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  /* Writers are serialized (loop thread), so the version in force is the
   * one whose group counters the new version carries over. */
  mesh__res_live_t *cur = mesh__res_live_acquire(rs);
  int rc = mesh__res_grp_parse(l, cur, svc_cfg, st);
  mesh__res_live_release(cur);
  if (rc != MESH_OK) {
    mesh__res_live_release(l);
    return rc;
  }
  mesh__res_stats_groups(rs, l);
  mesh__res_live_publish(rs, l);
  mesh__res_od_timer_reset(rs);
  return MESH_OK;
}
