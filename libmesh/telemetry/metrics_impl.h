/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the registry's data, shared by metrics.c (registration,
 * updates) and prometheus.c (rendering).  Nobody else includes this. */
#ifndef MESH_TELEMETRY_METRICS_IMPL_H
#define MESH_TELEMETRY_METRICS_IMPL_H

#include "telemetry/metrics.h"

struct mesh__family {
  struct mesh__family *next;
  struct mesh__metrics *registry;
  char *name, *help;
  int type;              /* enum mesh__metric_type */
  char *keys;            /* label keys "k1,k2" ("" for none) */
  double *bounds;        /* histograms: upper bounds, +Inf implicit */
  size_t nbounds;
  struct mesh__metric *series, *series_tail; /* registration order */
};

/* One allocation per series: the struct, a histogram's buckets, then the
 * labels (~23 series per service: a separate labels string and buckets
 * array cost two more malloc chunks each). */
struct mesh__metric {
  struct mesh__family *fam;
  struct mesh__metric *next;
  _Atomic uint64_t u;        /* counter value, gauge bits, histogram count */
  union {                    /* by the family's type */
    struct {                 /* gauge: computed when fn is set */
      mesh__gauge_fn fn;
      void *user;
    };
    struct {                 /* histogram */
      _Atomic uint64_t sum_bits;  /* sum (double bits) */
      _Atomic uint64_t *buckets;  /* nbounds + 1, not cumulative, inline */
    };
  };
  char labels[];             /* rendered `k="v",k2="v2"` or "" */
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
  size_t idx_cap, idx_n; /* cap a power of two, n <= 3 cap / 4 */
  /* Series are never freed one by one, so they are cut from chunks
   * (series_alloc): mesh_free frees ~40 chunks, not one series each
   * (~22 per service, 110,000 free() calls at 5,000 services). */
  struct mesh__series_chunk *chunks;
};

mesh__metrics_t *mesh__metrics_new(void);
/** Name rules of metrics.h for a family of the given type. */
bool mesh__metric_name_ok(const char *name, int type);
/** "k=v,..." -> rendered labels and key list (both malloc'd).
 *  @return MESH_OK, MESH_ERR_PARSE, MESH_ERR_NOMEM. */
int mesh__labels_parse(const char *kv, char **rendered, char **keys);

#endif /* MESH_TELEMETRY_METRICS_IMPL_H */
