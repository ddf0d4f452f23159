/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: load balancing — pickers, priorities, localities,
 * subsets and traffic splits.
 *
 * Two halves:
 *  - build (worker thread, before discovery publishes a snapshot):
 *    mesh__lb_prepare() turns the snapshot's hosts and the service's `lb`,
 *    `subsets` and `split` config into immutable per-snapshot state
 *    (snap->lb): host sets per subset, priority levels, localities, and the
 *    policy's structure (EDF schedule, alias table, ring, maglev table).
 *  - pick (any thread, hot path): mesh__lb_pick() reads that state with no
 *    lock and no heap allocation.  A pick writes no shared memory: round
 *    robin keeps one cursor per thread (rr.c); the only shared write is the
 *    health view's refresh (see below), at most once per refresh period.
 *
 * Health is live: a host's ejection or health-check verdict changes without
 * a new snapshot.  Pickers check mesh__host_usable() on every candidate and
 * skip unusable ones; the numbers derived from health (priority loads, panic,
 * locality availability, zone routing share) form a small "health view" per
 * host set that a picking thread recomputes at most every
 * MESH__LB_VIEW_REFRESH_MS, or at once through mesh__lb_refresh().
 */
#ifndef MESH_LB_LB_H
#define MESH_LB_LB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "endpoint/endpoint.h"

/* ---- policies and defaults (Envoy / Linkerd) ----------------------------- */

enum mesh__lb_policy {
  MESH__LB_ROUND_ROBIN = 0,
  MESH__LB_RANDOM,
  MESH__LB_LEAST_REQUEST,
  MESH__LB_PEAK_EWMA,
  MESH__LB_RING_HASH,
  MESH__LB_MAGLEV,
};

#define MESH__LB_CHOICE_COUNT 2u           /* Envoy least_request */
#define MESH__LB_RING_MIN 1024u            /* Envoy ring_hash */
#define MESH__LB_RING_MAX 8388608u         /* Envoy ring_hash */
#define MESH__LB_MAGLEV_SIZE 65537u        /* Envoy maglev (prime) */
#define MESH__LB_MAGLEV_MAX 5000011u       /* Envoy's upper bound */
#define MESH__LB_OVERPROVISIONING 140u     /* Envoy: 1.4 as a percentage */
#define MESH__LB_PANIC 50u                 /* Envoy healthy_panic_threshold */
#define MESH__LB_ZONE_MIN_CLUSTER 6u       /* Envoy zone_aware min_cluster_size */
#define MESH__LB_EWMA_DECAY_NS 10000000000LL   /* Linkerd: 10 s */
#define MESH__LB_EWMA_DEFAULT_RTT_NS 30000000LL /* Linkerd: 30 ms */
#define MESH__LB_VIEW_REFRESH_MS 100       /* health view staleness bound */
#define MESH__LB_SCHED_MAX (1u << 20)      /* longest EDF schedule */

enum mesh__lb_fallback { MESH__LB_FALLBACK_NONE = 0, MESH__LB_FALLBACK_ANY };

/* ---- configuration (one per service, built at init) ----------------------- */

typedef struct mesh__lb_locw {
  char *region, *zone, *subzone; /* "" when absent */
  uint32_t weight;
} mesh__lb_locw_t;

typedef struct mesh__lb_subset {
  char *name;                 /* NULL for a subset written inline in a split */
  size_t nlabels;
  char **keys, **values;
  /* Its own picking policy (mesh__lb_reconfigure's "subset_lb": a control
   * plane's cluster inside one service); false: the service's. */
  bool own;
  int policy;
  uint32_t choice_count;
  uint64_t ring_min, ring_max;
  uint32_t maglev_size;
} mesh__lb_subset_t;

typedef struct mesh__lb_split {
  size_t subset;              /* index into conf.subsets */
  uint32_t weight;
} mesh__lb_split_t;

typedef struct mesh__lb_conf {
  int policy;                 /* enum mesh__lb_policy */
  uint32_t choice_count;
  uint64_t ring_min, ring_max;
  uint32_t maglev_size;
  bool locality_weighted;
  bool zone_aware;            /* effective only with a caller locality */
  uint32_t zone_min_cluster;
  uint32_t overprovisioning;  /* percent */
  uint32_t panic;             /* percent, 0 disables panic */
  char *local_region, *local_zone, *local_subzone; /* caller's; may be NULL */
  size_t nlocw;               /* locality_weights; 0 = sum of host weights */
  mesh__lb_locw_t *locw;
  size_t nsubsets;
  mesh__lb_subset_t *subsets;
  size_t nsplits;
  mesh__lb_split_t *splits;
  int fallback;               /* enum mesh__lb_fallback */
} mesh__lb_conf_t;

struct mesh__lb_svc {
  pthread_mutex_t mu;         /* conf: prepare vs reconfigure */
  mesh__lb_conf_t conf;
};

/* ---- per-snapshot state ---------------------------------------------------- */

typedef struct mesh__lb_ring_entry {
  uint64_t hash;
  uint32_t idx;               /* index into the pool's hosts */
} mesh__lb_ring_entry_t;

/* Hosts with the policy's pick structure. */
typedef struct mesh__lb_pool {
  uint32_t n;
  mesh__host_t **hosts;       /* borrowed: the snapshot holds the refs */
  uint32_t *weight;           /* host weights as used by this pool; NULL
                                 once built when all are equal */
  uint64_t total;             /* sum of weight */
  bool equal;                 /* all weights equal: uniform picks */
  /* round_robin: EDF order of indices (NULL when equal) */
  uint32_t *sched;
  uint32_t nsched;
  uint64_t rr_id;             /* round_robin: key of each thread's cursor */
  /* random, least_request, peak_ewma: Vose alias table (NULL when equal) */
  uint32_t *alias_prob;
  uint32_t *alias;
  /* ring_hash */
  mesh__lb_ring_entry_t *ring;
  size_t nring;
  /* maglev */
  uint32_t *table;
  uint32_t table_size;
} mesh__lb_pool_t;

typedef struct mesh__lb_locality {
  const char *region, *zone, *subzone; /* borrowed from a host; "" if none */
  uint64_t weight;            /* static locality weight */
  bool local;                 /* matches the caller's locality */
  mesh__lb_pool_t pool;
} mesh__lb_locality_t;

typedef struct mesh__lb_level {
  uint32_t priority;
  mesh__lb_pool_t pool;       /* every host of the level */
  uint32_t nloc;              /* > 1 only when locality routing applies */
  mesh__lb_locality_t *loc;
  mesh__lb_pool_t local;      /* caller's zone (zone-aware), n = 0 if none */
  uint32_t slot;              /* first slot of this level in the view */
} mesh__lb_level_t;

/* Health view slots, per set: for each level i:
 *   slot + 0: load percent (0..100)   slot + 1: panic (0/1)
 *   slot + 2: local share in basis points, or MESH__LB_NO_ZONE
 *   slot + 3 + j: cumulative effective weight of localities 0..j */
/* The named slots of a level (offsets from its first slot). */
enum mesh__lb_level_slot {
  MESH__LB_SLOT_LOAD = 0,  /* load percent */
  MESH__LB_SLOT_PANIC = 1, /* panic flag */
  MESH__LB_SLOT_SHARE = 2, /* local share, basis points */
};
#define MESH__LB_LEVEL_SLOTS 3u
#define MESH__LB_NO_ZONE UINT64_MAX

typedef struct mesh__lb_set {
  int32_t subset;             /* conf subset index, -1 for all hosts */
  int policy;                 /* the service's, or the subset's own */
  uint32_t choice_count;
  uint32_t nhosts;
  uint32_t nlevel;
  mesh__lb_level_t *lv;       /* by priority, 0 (highest) first */
  uint32_t nslots;
  _Atomic uint64_t *view[2];
  _Atomic uint32_t seq[2];    /* odd while the buffer is written */
  _Atomic uint32_t cur;       /* buffer readers use */
  _Atomic int64_t view_ms;    /* when the view was computed */
  atomic_flag busy;           /* one refresher at a time */
  uint32_t *scratch;          /* refresher's counts, 2 * nlevel */
} mesh__lb_set_t;

typedef struct mesh__lb_state {
  int policy;
  uint32_t choice_count;
  uint32_t overprovisioning, panic, zone_min_cluster;
  bool zone_aware, locality_weighted;
  int fallback;
  uint32_t nset;
  mesh__lb_set_t *sets;       /* [0] all hosts, [1 + i] conf subset i */
  uint32_t nsplit;
  uint32_t *split_set;        /* set index of each split */
  uint64_t *split_cum;        /* cumulative split weights */
  size_t nsubsets;
  char **subset_names;        /* borrowed copies for ctx->subset lookups */
} mesh__lb_state_t;

/* ---- the pick ---------------------------------------------------------------- */

/* Per-call inputs; every field optional (zero = absent). */
typedef struct mesh__lb_ctx {
  const void *hash_key;       /* ring_hash / maglev key; NULL: random */
  size_t hash_key_len;
  mesh__host_t *const *avoid; /* hosts already tried: prefer others */
  size_t navoid;
  const void *sticky_key;     /* chooses the split deterministically */
  size_t sticky_key_len;
  const char *subset;         /* a named subset: bypasses the split */
  int64_t now_ms;             /* 0: mesh__now_ms() */
} mesh__lb_ctx_t;

/** Choose a host for one request.  Lock-free, allocation-free, any thread.
 *  The host is borrowed from snap: the caller takes its own reference
 *  (mesh__host_ref) before releasing the snapshot.
 *  @param svc   the service (unused today: everything the pick needs is in
 *               snap->lb; kept so a policy may read live service state)
 *  @param snap  the snapshot the caller acquired; NULL = no endpoints
 *  @param ctx   per-call inputs, may be NULL
 *  @return MESH_OK, MESH_ERR_NO_ENDPOINTS (empty set, or no usable host and
 *          panic disabled, or subset empty with fallback "none"),
 *          MESH_ERR_NOT_FOUND (ctx->subset names no configured subset),
 *          MESH_ERR_INVALID_ARG (out NULL). */
int mesh__lb_pick(mesh__service_t *svc, const mesh__snapshot_t *snap,
                  const mesh__lb_ctx_t *ctx, mesh__host_t **out);

/** Account a request started on h (least_request, peak_ewma): the call
 *  layer brackets every attempt with begin/end, on any thread. */
void mesh__lb_begin(mesh__host_t *h);
/** Account a request finished on h (pairs with mesh__lb_begin). */
void mesh__lb_end(mesh__host_t *h);
/** Feed one observed latency to h's peak EWMA.  A failure never lowers
 *  the estimate (a host that fails fast must not look fast). */
void mesh__lb_report(mesh__host_t *h, int64_t latency_ns, bool ok);

/** Build snap->lb for svc (svc->prepare_snapshot points here).  Worker
 *  thread, before publication.  @return MESH_OK or MESH_ERR_NOMEM (snap->lb
 *  stays NULL and picks use the slow fallback). */
int mesh__lb_prepare(mesh__service_t *svc, void *snap);

/** Recompute the health views of snap now (e.g. right after an ejection)
 *  instead of waiting up to MESH__LB_VIEW_REFRESH_MS.  Any thread. */
void mesh__lb_refresh(const mesh__snapshot_t *snap, int64_t now_ms);

/** Seed the calling thread's picker RNG (tests: reproducible picks). */
void mesh__lb_seed(uint64_t seed);
/** Next value of the calling thread's RNG (xoshiro256**). */
uint64_t mesh__lb_rand(void);
/** Uniform integer in [0, n), n > 0, n < 2^32. */
static inline uint32_t mesh__lb_below(uint64_t r, uint32_t n) {
  return (uint32_t)(((r >> 32) * (uint64_t)n) >> 32);
}

/** xxHash64 (XXH64) of data with seed: the hash Envoy uses for rings,
 *  maglev tables and header hash policies. */
uint64_t mesh__xxh64(const void *data, size_t len, uint64_t seed);

/* ---- config (lb.c, subset.c, locality.c) ----------------------------------- */

extern const mesh__svc_part_t mesh__lb_svc_part;      /* "lb" */
extern const mesh__svc_part_t mesh__subsets_svc_part; /* "subsets" */
extern const mesh__svc_part_t mesh__split_svc_part;   /* "split" */
extern const mesh__part_t mesh__locality_part;        /* top-level "locality" */

/** Parse a service's lb keys into conf (check() must have passed).
 *  locality: the top-level "locality" object or NULL. */
int mesh__lb_conf_parse(mesh__lb_conf_t *conf, const cJSON *svc_cfg,
                        const cJSON *locality, mesh_status_t *st);
void mesh__lb_conf_free(mesh__lb_conf_t *conf);
void mesh__lb_conf_default(mesh__lb_conf_t *conf);
/** Replace svc's lb config ("lb", "subsets", "split" of svc_cfg, a
 *  "services.NAME" object; validated here with the same checks as at
 *  mesh_new).  svc_cfg may also hold "subset_lb": {SUBSET: an "lb"
 *  object}, a named subset's own policy (policy, choice_count, ring_hash,
 *  maglev; the rest stays the service's): internal, for xds, whose
 *  clusters are subsets of one service, each with its CDS lb policy; not
 *  a key of the configuration mesh_new reads.  Snapshots already published keep the picker state they were
 *  built with (each owns it), so picks in flight are untouched; the next
 *  prepared snapshot uses the new config: the caller republishes
 *  (mesh__disc_republish) for it to take effect.  Any thread.
 *  @return MESH_OK, MESH_ERR_CONFIG (st: "split[1].weight: ..."; nothing
 *  changed), MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG (svc has no lb state). */
int mesh__lb_reconfigure(mesh_t *m, mesh__service_t *svc,
                         const cJSON *svc_cfg, mesh_status_t *st);

void mesh__subsets_check(mesh__cfg_t *c, const cJSON *v, const char *path);
/* Named references in "split" are resolved here (check() cannot see the
 * sibling "subsets"): MESH_ERR_CONFIG with "split[i].subset: ..." in st. */
int mesh__subsets_parse(mesh__lb_conf_t *conf, const cJSON *svc_cfg,
                        mesh_status_t *st);
bool mesh__subset_match(const mesh__lb_subset_t *s, const mesh__host_t *h);
void mesh__locality_check(mesh__cfg_t *c, const cJSON *v, const char *path);
void mesh__locality_weights_check(mesh__cfg_t *c, const cJSON *v,
                                  const char *path);
int mesh__locality_weights_parse(mesh__lb_conf_t *conf, const cJSON *v);

/* ---- building blocks (one file each) ---------------------------------------- */

/* pools (lb.c) */
int mesh__lb_pool_init(mesh__lb_pool_t *p, const mesh__lb_conf_t *conf,
                       mesh__host_t **hosts, const uint32_t *weight,
                       uint32_t n);
/* norm: normalized weights for ring_hash/maglev (NULL: weight / total). */
int mesh__lb_pool_init_norm(mesh__lb_pool_t *p, const mesh__lb_conf_t *conf,
                            mesh__host_t **hosts, const uint32_t *weight,
                            uint32_t n, const double *norm);
void mesh__lb_pool_fini(mesh__lb_pool_t *p);
/* Does the candidate pass the filters of this attempt? */
bool mesh__lb_acceptable(const mesh__host_t *h, const mesh__lb_ctx_t *ctx,
                         int64_t now_ms, bool need_usable, bool need_fresh);
/* First acceptable host scanning from a random start; NULL if none. */
mesh__host_t *mesh__lb_scan(const mesh__lb_pool_t *p, const mesh__lb_ctx_t *ctx,
                            int64_t now_ms, bool need_usable, bool need_fresh);

/* rr.c */
int mesh__rr_build(mesh__lb_pool_t *p);
/* A fresh key for a pool's per-thread cursors (never 0, never reused). */
uint64_t mesh__rr_new_id(void);
mesh__host_t *mesh__rr_pick(mesh__lb_pool_t *p, const mesh__lb_ctx_t *ctx,
                            int64_t now_ms, bool need_usable, bool need_fresh);
/* random.c */
int mesh__random_build(mesh__lb_pool_t *p);
uint32_t mesh__random_index(const mesh__lb_pool_t *p, uint64_t r);
mesh__host_t *mesh__random_draw(const mesh__lb_pool_t *p,
                                const mesh__lb_ctx_t *ctx, int64_t now_ms,
                                bool need_usable, bool need_fresh,
                                uint32_t *idx);
mesh__host_t *mesh__random_pick(const mesh__lb_pool_t *p,
                                const mesh__lb_ctx_t *ctx, int64_t now_ms,
                                bool need_usable, bool need_fresh);
/* least_request.c */
mesh__host_t *mesh__lr_pick(const mesh__lb_pool_t *p, uint32_t choices,
                            const mesh__lb_ctx_t *ctx, int64_t now_ms,
                            bool need_usable, bool need_fresh);
/* peak_ewma.c */
double mesh__ewma_cost(const mesh__host_t *h, int64_t now_ns);
mesh__host_t *mesh__ewma_pick(const mesh__lb_pool_t *p, uint32_t choices,
                              const mesh__lb_ctx_t *ctx, int64_t now_ms,
                              bool need_usable, bool need_fresh);
/* ring_hash.c */
int mesh__ring_build(mesh__lb_pool_t *p, const double *norm, uint64_t min_size,
                     uint64_t max_size);
size_t mesh__ring_find(const mesh__lb_pool_t *p, uint64_t hash);
mesh__host_t *mesh__ring_pick(const mesh__lb_pool_t *p, uint64_t hash,
                              const mesh__lb_ctx_t *ctx, int64_t now_ms,
                              bool need_usable, bool need_fresh);
/* maglev.c */
int mesh__maglev_build(mesh__lb_pool_t *p, const double *norm,
                       uint32_t table_size);
mesh__host_t *mesh__maglev_pick(const mesh__lb_pool_t *p, uint64_t hash,
                                const mesh__lb_ctx_t *ctx, int64_t now_ms,
                                bool need_usable, bool need_fresh);
/* Envoy's host hash key: "ip:port" / "[ip6]:port" (hostname:port if not an
 * IP literal).  Returns the length (< size) or 0 if it does not fit. */
size_t mesh__lb_host_key(const mesh__host_t *h, char *buf, size_t size);

/* priority.c: health views, priority loads, panic */
int mesh__lb_view_alloc(mesh__lb_set_t *s);
/* Caller holds s->busy, or the set is not published yet. */
void mesh__lb_view_compute(const mesh__lb_state_t *st, mesh__lb_set_t *s,
                           int64_t now_ms);
void mesh__lb_view_maybe_refresh(const mesh__lb_state_t *st, mesh__lb_set_t *s,
                                 int64_t now_ms);
/* A consistent read of the view: begin returns the buffer, valid() tells
 * whether it was left alone meanwhile. */
uint32_t mesh__lb_view_begin(const mesh__lb_set_t *s, uint32_t *seq);
bool mesh__lb_view_valid(const mesh__lb_set_t *s, uint32_t buf, uint32_t seq);
static inline uint64_t mesh__lb_slot(const mesh__lb_set_t *s, uint32_t buf,
                                     uint32_t i) {
  return atomic_load_explicit(&s->view[buf][i], memory_order_relaxed);
}
/* Level by Envoy's choosePriority: h % 100 + 1 against cumulative loads. */
uint32_t mesh__lb_choose_level(const mesh__lb_set_t *s, uint32_t buf,
                               uint64_t h);

/* locality.c */
/* Group lv->pool's hosts into localities (lv->loc) and, for zone-aware
 * routing, the caller's own (lv->local). */
int mesh__lb_level_localities(const mesh__lb_conf_t *conf, mesh__lb_level_t *lv,
                              bool zone);
/* Envoy's normalized host weights with locality weights folded in (hash
 * policies): w * (locality weight / sum) / (host weights of the locality). */
int mesh__lb_locality_norm(const mesh__lb_conf_t *conf, mesh__host_t **hosts,
                           uint32_t n, double *norm);
/* Pool to pick from within a non-panic level, per locality weights or zone
 * preference; NULL = the whole level. */
const mesh__lb_pool_t *mesh__lb_choose_locality(const mesh__lb_state_t *st,
                                                const mesh__lb_set_t *s,
                                                uint32_t buf,
                                                const mesh__lb_level_t *lv);
/* Fill a level's locality slots (v points at the level's first slot). */
void mesh__lb_view_localities(const mesh__lb_state_t *st,
                              const mesh__lb_level_t *lv, _Atomic uint64_t *v,
                              bool first, bool panic, uint32_t healthy,
                              int64_t now_ms);

/* subset.c */
int mesh__lb_choose_set(const mesh__lb_state_t *st, const mesh__lb_ctx_t *ctx,
                        uint32_t *set);

#endif /* MESH_LB_LB_H */
