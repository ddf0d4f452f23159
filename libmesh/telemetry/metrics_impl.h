/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the registry's data, shared by metrics.c (registration,
 * updates) and prometheus.c (rendering).  Nobody else includes this. */
#ifndef MESH_TELEMETRY_METRICS_IMPL_H
#define MESH_TELEMETRY_METRICS_IMPL_H

#include "telemetry/metrics.h"

struct mesh__family {
  struct mesh__family *next;
  char *name, *help;
  int type;              /* enum mesh__metric_type */
  char *keys;            /* label keys "k1,k2" ("" for none) */
  double *bounds;        /* histograms: upper bounds, +Inf implicit */
  size_t nbounds;
  struct mesh__metric *series, *series_tail; /* registration order */
};

struct mesh__metric {
  struct mesh__family *fam;
  struct mesh__metrics *registry;
  struct mesh__metric *next;
  char *labels;              /* rendered `k="v",k2="v2"` or "" */
  _Atomic uint64_t u;        /* counter value, gauge bits, histogram count */
  _Atomic uint64_t sum_bits; /* histogram sum (double bits) */
  _Atomic uint64_t *buckets; /* histogram: nbounds + 1, not cumulative */
  mesh__gauge_fn fn;         /* computed gauge */
  void *user;
};

struct mesh__metrics {
  pthread_mutex_t mu; /* registration and rendering; never updates */
  struct mesh__family *head, *tail;
  /* Every series, open-addressed by (family, labels): registering one per
   * service at mesh_new must not scan the family (quadratic at 10k). */
  struct mesh__idx_slot {
    size_t hash;
    struct mesh__metric *s; /* NULL: free */
  } *idx;
  size_t idx_cap, idx_n; /* cap a power of two, n < cap / 2 */
};

mesh__metrics_t *mesh__metrics_new(void);
/** Name rules of metrics.h for a family of the given type. */
bool mesh__metric_name_ok(const char *name, int type);
/** "k=v,..." -> rendered labels and key list (both malloc'd).
 *  @return MESH_OK, MESH_ERR_PARSE, MESH_ERR_NOMEM. */
int mesh__labels_parse(const char *kv, char **rendered, char **keys);

#endif /* MESH_TELEMETRY_METRICS_IMPL_H */
