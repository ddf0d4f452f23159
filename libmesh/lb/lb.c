/* SPDX-License-Identifier: Apache-2.0 */
/* Load balancing: the per-snapshot state built before publication, and the
 * lock-free pick that dispatches to the policy (the per-service config is
 * config.c).  See lb.h for the split between build and pick. */
#include "lb/lb.h"

#include <stdlib.h>
#include <string.h>

/* ---- the pickers' RNG -------------------------------------------------------
 * The core generator (core/rand.c) on a per-thread stream of lb's own, so
 * tests can seed the picks without touching anyone else's randomness. */

static _Thread_local mesh__prng_t rng;

void mesh__lb_seed(uint64_t seed) { mesh__prng_seed(&rng, seed); }

uint64_t mesh__lb_rand(void) { return mesh__prng_next(&rng); }

/* ---- pools ----------------------------------------------------------------------- */

bool mesh__lb_acceptable(const mesh__host_t *h, const mesh__lb_ctx_t *ctx,
                         int64_t now_ms, bool need_usable, bool need_fresh) {
  if (need_usable && !mesh__host_usable(h, now_ms))
    return false;
  if (need_fresh)
    for (size_t i = 0; i < ctx->navoid; i++)
      if (ctx->avoid[i] == h)
        return false;
  return true;
}

mesh__host_t *mesh__lb_scan(const mesh__lb_pool_t *p, const mesh__lb_ctx_t *ctx,
                            int64_t now_ms, bool need_usable, bool need_fresh) {
  if (p->n == 0)
    return NULL;
  uint32_t start = mesh__lb_below(mesh__lb_rand(), p->n);
  for (uint32_t k = 0; k < p->n; k++) {
    mesh__host_t *h = p->hosts[(start + k) % p->n];
    if (mesh__lb_acceptable(h, ctx, now_ms, need_usable, need_fresh))
      return h;
  }
  return NULL;
}

static bool hash_policy(int policy) {
  return policy == MESH__LB_RING_HASH || policy == MESH__LB_MAGLEV;
}

/* norm: normalized weights for the hash policies (NULL: weight / total). */
static int pool_structure(mesh__lb_pool_t *p, const mesh__lb_conf_t *conf,
                          const double *norm) {
  switch (conf->policy) {
  case MESH__LB_ROUND_ROBIN:
    p->rr_id = mesh__rr_new_id();
    return mesh__rr_build(p);
  case MESH__LB_RANDOM:
  case MESH__LB_LEAST_REQUEST:
  case MESH__LB_PEAK_EWMA:
    return mesh__random_build(p);
  default:
    break;
  }
  double *own = NULL;
  if (!norm) {
    own = malloc(sizeof *own * (p->n ? p->n : 1));
    if (!own)
      return MESH_ERR_NOMEM;
    for (uint32_t i = 0; i < p->n; i++)
      own[i] = (double)p->weight[i] / (double)p->total;
    norm = own;
  }
  int rc = conf->policy == MESH__LB_RING_HASH
               ? mesh__ring_build(p, norm, conf->ring_min, conf->ring_max)
               : mesh__maglev_build(p, norm, conf->maglev_size);
  free(own);
  return rc;
}

int mesh__lb_pool_init(mesh__lb_pool_t *p, const mesh__lb_conf_t *conf,
                       mesh__host_t **hosts, const uint32_t *weight,
                       uint32_t n) {
  return mesh__lb_pool_init_norm(p, conf, hosts, weight, n, NULL);
}

int mesh__lb_pool_init_norm(mesh__lb_pool_t *p, const mesh__lb_conf_t *conf,
                            mesh__host_t **hosts, const uint32_t *weight,
                            uint32_t n, const double *norm) {
  memset(p, 0, sizeof *p);
  p->hosts = malloc(sizeof *p->hosts * (n ? n : 1));
  p->weight = malloc(sizeof *p->weight * (n ? n : 1));
  if (!p->hosts || !p->weight)
    return MESH_ERR_NOMEM;
  p->n = n;
  p->equal = true;
  for (uint32_t i = 0; i < n; i++) {
    p->hosts[i] = hosts[i];
    p->weight[i] = weight ? weight[i] : hosts[i]->weight;
    if (p->weight[i] == 0)
      p->weight[i] = 1;
    p->total += p->weight[i];
    if (p->weight[i] != p->weight[0])
      p->equal = false;
  }
  int rc = pool_structure(p, conf, norm);
  if (rc == MESH_OK && p->equal) {
    /* equal weights: no picker reads the array (total / n is the weight),
     * and 4 B per endpoint per pool is worth giving back */
    free(p->weight);
    p->weight = NULL;
  }
  return rc;
}

void mesh__lb_pool_fini(mesh__lb_pool_t *p) {
  free(p->hosts);
  free(p->weight);
  free(p->sched);
  free(p->alias_prob);
  free(p->alias);
  free(p->ring);
  free(p->table);
  memset(p, 0, sizeof *p);
}

/* ---- building the state -------------------------------------------------------- */

static void level_free(mesh__lb_level_t *lv) {
  mesh__lb_pool_fini(&lv->pool);
  for (uint32_t j = 0; j < lv->nloc; j++)
    mesh__lb_pool_fini(&lv->loc[j].pool);
  free(lv->loc);
  mesh__lb_pool_fini(&lv->local);
}

static void state_free(void *p) {
  mesh__lb_state_t *st = p;
  if (!st)
    return;
  for (uint32_t i = 0; i < st->nset; i++) {
    mesh__lb_set_t *s = &st->sets[i];
    for (uint32_t l = 0; l < s->nlevel; l++)
      level_free(&s->lv[l]);
    free(s->lv);
    free((void *)s->view[0]);
    free((void *)s->view[1]);
    free(s->scratch);
  }
  free(st->sets);
  free(st->split_set);
  free(st->split_cum);
  for (size_t i = 0; i < st->nsubsets; i++)
    free(st->subset_names[i]);
  free(st->subset_names);
  free(st);
}

/* Hosts ordered by priority, snapshot order kept inside a level. */
typedef struct prio_idx {
  uint32_t priority, idx;
} prio_idx_t;

static int cmp_prio_idx(const void *a, const void *b) {
  const prio_idx_t *x = a, *y = b;
  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int sort_by_priority(mesh__host_t **hosts, uint32_t n) {
  prio_idx_t *k = malloc(sizeof *k * n);
  mesh__host_t **copy = malloc(sizeof *copy * n);
  if (!k || !copy) {
    free(k);
    free(copy);
    return MESH_ERR_NOMEM;
  }
  for (uint32_t i = 0; i < n; i++) {
    k[i] = (prio_idx_t){hosts[i]->priority, i};
    copy[i] = hosts[i];
  }
  qsort(k, n, sizeof *k, cmp_prio_idx);
  for (uint32_t i = 0; i < n; i++)
    hosts[i] = copy[k[i].idx];
  free(k);
  free(copy);
  return MESH_OK;
}

static int level_build(const mesh__lb_conf_t *conf, mesh__lb_level_t *lv,
                       mesh__host_t **hosts, uint32_t n, bool first) {
  lv->priority = hosts[0]->priority;
  double *norm = NULL;
  if (hash_policy(conf->policy) && conf->locality_weighted) {
    norm = malloc(sizeof *norm * n);
    if (!norm)
      return MESH_ERR_NOMEM;
    int rc = mesh__lb_locality_norm(conf, hosts, n, norm);
    if (rc != MESH_OK) {
      free(norm);
      return rc;
    }
  }
  int rc = mesh__lb_pool_init_norm(&lv->pool, conf, hosts, NULL, n, norm);
  free(norm);
  if (rc != MESH_OK || hash_policy(conf->policy))
    return rc;
  bool zone = first && conf->zone_aware &&
              (conf->local_region || conf->local_zone || conf->local_subzone);
  if (conf->locality_weighted || zone)
    return mesh__lb_level_localities(conf, lv, zone);
  return MESH_OK;
}

/* Hosts of one set, grouped into levels by priority (stable). */
static int set_build(const mesh__lb_conf_t *conf, mesh__lb_set_t *s,
                     mesh__host_t **hosts, uint32_t n) {
  s->nhosts = n;
  if (n > 0) {
    int rc = sort_by_priority(hosts, n);
    if (rc != MESH_OK)
      return rc;
    uint32_t nl = 1;
    for (uint32_t i = 1; i < n; i++)
      nl += hosts[i]->priority != hosts[i - 1]->priority;
    s->lv = calloc(nl, sizeof *s->lv);
    if (!s->lv)
      return MESH_ERR_NOMEM;
    uint32_t start = 0;
    for (uint32_t i = 1; i <= n; i++) {
      if (i < n && hosts[i]->priority == hosts[start]->priority)
        continue;
      rc = level_build(conf, &s->lv[s->nlevel], hosts + start, i - start,
                       s->nlevel == 0);
      s->nlevel++;
      if (rc != MESH_OK)
        return rc;
      start = i;
    }
  }
  return mesh__lb_view_alloc(s);
}

/* Hosts of subset si (-1: all) into a fresh array. */
static int set_hosts(const mesh__lb_conf_t *conf, const mesh__snapshot_t *snap,
                     int32_t si, mesh__host_t ***out, uint32_t *n) {
  mesh__host_t **v = malloc(sizeof *v * (snap->n ? snap->n : 1));
  if (!v)
    return MESH_ERR_NOMEM;
  uint32_t k = 0;
  for (size_t i = 0; i < snap->n; i++)
    if (si < 0 || mesh__subset_match(&conf->subsets[si], snap->hosts[i]))
      v[k++] = snap->hosts[i];
  *out = v;
  *n = k;
  return MESH_OK;
}

static int copy_splits(mesh__lb_state_t *st, const mesh__lb_conf_t *conf) {
  st->subset_names = calloc(conf->nsubsets ? conf->nsubsets : 1,
                            sizeof *st->subset_names);
  if (st->subset_names)
    st->nsubsets = conf->nsubsets; /* state_free walks the names */
  st->split_set = calloc(conf->nsplits ? conf->nsplits : 1,
                         sizeof *st->split_set);
  st->split_cum = calloc(conf->nsplits ? conf->nsplits : 1,
                         sizeof *st->split_cum);
  if (!st->subset_names || !st->split_set || !st->split_cum)
    return MESH_ERR_NOMEM;
  for (size_t i = 0; i < conf->nsubsets; i++) {
    if (!conf->subsets[i].name)
      continue;
    st->subset_names[i] = strdup(conf->subsets[i].name);
    if (!st->subset_names[i])
      return MESH_ERR_NOMEM;
  }
  uint64_t cum = 0;
  for (size_t i = 0; i < conf->nsplits; i++) {
    cum += conf->splits[i].weight;
    st->split_set[i] = (uint32_t)conf->splits[i].subset + 1;
    st->split_cum[i] = cum;
  }
  st->nsplit = (uint32_t)conf->nsplits;
  return MESH_OK;
}

static int state_build(const mesh__lb_conf_t *conf, const mesh__snapshot_t *snap,
                       mesh__lb_state_t **out) {
  mesh__lb_state_t *st = calloc(1, sizeof *st);
  if (!st)
    return MESH_ERR_NOMEM;
  st->policy = conf->policy;
  st->choice_count = conf->choice_count;
  st->overprovisioning = conf->overprovisioning;
  st->panic = conf->panic;
  st->zone_min_cluster = conf->zone_min_cluster;
  st->locality_weighted = conf->locality_weighted;
  st->zone_aware = conf->zone_aware;
  st->fallback = conf->fallback;
  st->sets = calloc(1 + conf->nsubsets, sizeof *st->sets);
  int rc = st->sets ? copy_splits(st, conf) : MESH_ERR_NOMEM;
  int64_t now = mesh__now_ms();
  for (size_t i = 0; rc == MESH_OK && i <= conf->nsubsets; i++) {
    mesh__lb_set_t *s = &st->sets[i];
    s->subset = (int32_t)i - 1;
    st->nset++;
    mesh__host_t **hosts = NULL;
    uint32_t n = 0;
    rc = set_hosts(conf, snap, s->subset, &hosts, &n);
    /* a subset with its own policy: the service's conf with it */
    mesh__lb_conf_t sc = *conf;
    const mesh__lb_subset_t *sub = i ? &conf->subsets[i - 1] : NULL;
    if (sub && sub->own) {
      sc.policy = sub->policy;
      sc.choice_count = sub->choice_count;
      sc.ring_min = sub->ring_min;
      sc.ring_max = sub->ring_max;
      sc.maglev_size = sub->maglev_size;
    }
    s->policy = sc.policy;
    s->choice_count = sc.choice_count;
    if (rc == MESH_OK)
      rc = set_build(&sc, s, hosts, n);
    free(hosts);
    if (rc == MESH_OK)
      mesh__lb_view_compute(st, s, now);
  }
  if (rc != MESH_OK) {
    state_free(st);
    return rc;
  }
  *out = st;
  return MESH_OK;
}

int mesh__lb_prepare(mesh__service_t *svc, void *vsnap) {
  mesh__snapshot_t *snap = vsnap;
  if (!snap)
    return MESH_ERR_INVALID_ARG;
  mesh__lb_conf_t def;
  mesh__lb_state_t *st = NULL;
  int rc;
  if (svc && svc->lb) {
    /* the conf may be replaced meanwhile (mesh__lb_reconfigure) */
    pthread_mutex_lock(&svc->lb->mu);
    rc = state_build(&svc->lb->conf, snap, &st);
    pthread_mutex_unlock(&svc->lb->mu);
  } else {
    mesh__lb_conf_default(&def);
    rc = state_build(&def, snap, &st);
  }
  if (rc != MESH_OK)
    return rc;
  if (snap->lb && snap->lb_free)
    snap->lb_free(snap->lb);
  snap->lb = st;
  snap->lb_free = state_free;
  return MESH_OK;
}

void mesh__lb_refresh(const mesh__snapshot_t *snap, int64_t now_ms) {
  if (!snap || !snap->lb || snap->lb_free != state_free)
    return;
  mesh__lb_state_t *st = snap->lb;
  for (uint32_t i = 0; i < st->nset; i++) {
    mesh__lb_set_t *s = &st->sets[i];
    /* Spin only against another refresher, which finishes in O(n). */
    while (atomic_flag_test_and_set_explicit(&s->busy, memory_order_acquire))
      ;
    mesh__lb_view_compute(st, s, now_ms);
    atomic_flag_clear_explicit(&s->busy, memory_order_release);
  }
}

/* ---- the pick ---------------------------------------------------------------------- */

static mesh__host_t *pick_in(const mesh__lb_set_t *set, mesh__lb_pool_t *p,
                             uint64_t hash, const mesh__lb_ctx_t *ctx,
                             int64_t now, bool usable, bool fresh) {
  switch (set->policy) {
  case MESH__LB_ROUND_ROBIN:
    return mesh__rr_pick(p, ctx, now, usable, fresh);
  case MESH__LB_RANDOM:
    return mesh__random_pick(p, ctx, now, usable, fresh);
  case MESH__LB_LEAST_REQUEST:
    return mesh__lr_pick(p, set->choice_count, ctx, now, usable, fresh);
  case MESH__LB_PEAK_EWMA:
    return mesh__ewma_pick(p, set->choice_count, ctx, now, usable, fresh);
  case MESH__LB_RING_HASH:
    return mesh__ring_pick(p, hash, ctx, now, usable, fresh);
  case MESH__LB_MAGLEV:
    return mesh__maglev_pick(p, hash, ctx, now, usable, fresh);
  default:
    return NULL;
  }
}

/* The decision the health view drives: level, panic, pool. */
typedef struct choice {
  uint32_t level;
  bool panic;
  mesh__lb_pool_t *pool;
} choice_t;

static choice_t decide(const mesh__lb_state_t *st, mesh__lb_set_t *s,
                       uint64_t hash) {
  choice_t ch = {0};
  bool hashing = hash_policy(s->policy);
  for (int t = 0;; t++) {
    uint32_t seq, buf = mesh__lb_view_begin(s, &seq);
    /* Envoy chooses the priority from the request hash for the hashing
     * policies (same key, same level) and from a random draw otherwise. */
    ch.level = s->nlevel == 1 ? 0
               : mesh__lb_choose_level(s, buf,
                                       hashing ? hash : mesh__lb_rand());
    mesh__lb_level_t *lv = &s->lv[ch.level];
    ch.panic = mesh__lb_slot(s, buf, lv->slot + MESH__LB_SLOT_PANIC) != 0;
    ch.pool = &lv->pool;
    if (!ch.panic && !hashing) {
      const mesh__lb_pool_t *lp = mesh__lb_choose_locality(st, s, buf, lv);
      if (lp)
        ch.pool = (mesh__lb_pool_t *)lp;
    }
    if (mesh__lb_view_valid(s, buf, seq) || t == 3)
      return ch;
  }
}

/* One attempt under the given filters: the chosen pool, its whole level,
 * then every level in priority order.  A level in panic takes unusable
 * hosts too (Envoy uses all hosts of a panicking level). */
static mesh__host_t *attempt(const mesh__lb_state_t *st, mesh__lb_set_t *s,
                             const choice_t *ch, uint64_t hash,
                             const mesh__lb_ctx_t *ctx, int64_t now,
                             bool usable, bool fresh) {
  bool u = usable && !ch->panic;
  mesh__host_t *h = pick_in(s, ch->pool, hash, ctx, now, u, fresh);
  mesh__lb_pool_t *lvp = &s->lv[ch->level].pool;
  if (!h && ch->pool != lvp)
    h = pick_in(s, lvp, hash, ctx, now, u, fresh);
  for (uint32_t l = 0; !h && l < s->nlevel; l++)
    if (l != ch->level || u != usable)
      h = pick_in(s, &s->lv[l].pool, hash, ctx, now, usable, fresh);
  return h;
}

/* No lb state (prepare failed): any usable host, else any host. */
static int pick_plain(const mesh__snapshot_t *snap, const mesh__lb_ctx_t *ctx,
                      int64_t now, mesh__host_t **out) {
  mesh__lb_pool_t p = {.n = (uint32_t)snap->n, .hosts = snap->hosts};
  mesh__host_t *h = mesh__lb_scan(&p, ctx, now, true, true);
  if (!h)
    h = mesh__lb_scan(&p, ctx, now, false, false);
  *out = h;
  return h ? MESH_OK : MESH_ERR_NO_ENDPOINTS;
}

static const mesh__lb_ctx_t no_ctx;

int mesh__lb_pick(mesh__service_t *svc, const mesh__snapshot_t *snap,
                  const mesh__lb_ctx_t *ctx, mesh__host_t **out) {
  (void)svc;
  if (!out)
    return MESH_ERR_INVALID_ARG;
  *out = NULL;
  if (!ctx)
    ctx = &no_ctx;
  if (!snap || snap->n == 0)
    return MESH_ERR_NO_ENDPOINTS;
  int64_t now = ctx->now_ms ? ctx->now_ms : mesh__now_ms();
  mesh__lb_state_t *st = snap->lb_free == state_free ? snap->lb : NULL;
  if (!st)
    return pick_plain(snap, ctx, now, out);
  uint32_t si = 0;
  int rc = mesh__lb_choose_set(st, ctx, &si);
  if (rc != MESH_OK)
    return rc;
  if (st->sets[si].nhosts == 0 && si != 0 &&
      st->fallback == MESH__LB_FALLBACK_ANY)
    si = 0;
  mesh__lb_set_t *s = &st->sets[si];
  if (s->nhosts == 0)
    return MESH_ERR_NO_ENDPOINTS;
  mesh__lb_view_maybe_refresh(st, s, now);
  uint64_t hash = 0;
  if (hash_policy(s->policy))
    hash = ctx->hash_key ? mesh__xxh64(ctx->hash_key, ctx->hash_key_len, 0)
                         : mesh__lb_rand();
  choice_t ch = decide(st, s, hash);
  /* Preference order: usable and untried; usable (a retry may go back to
   * a tried host rather than to a known-bad one); then, unless panic is
   * disabled, any host (Envoy's panic: with nothing healthy, use all). */
  bool retry = ctx->navoid > 0;
  mesh__host_t *h = retry ? attempt(st, s, &ch, hash, ctx, now, true, true)
                          : NULL;
  if (!h)
    h = attempt(st, s, &ch, hash, ctx, now, true, false);
  if (!h && st->panic > 0 && retry)
    h = attempt(st, s, &ch, hash, ctx, now, false, true);
  if (!h && st->panic > 0)
    h = attempt(st, s, &ch, hash, ctx, now, false, false);
  *out = h;
  return h ? MESH_OK : MESH_ERR_NO_ENDPOINTS;
}

/* ---- request accounting ---------------------------------------------------------- */

void mesh__lb_begin(mesh__host_t *h) {
  if (h)
    atomic_fetch_add_explicit(&h->active_rq, 1, memory_order_relaxed);
}

void mesh__lb_end(mesh__host_t *h) {
  if (!h)
    return;
  /* Never wrap below zero, even on an unpaired end. */
  uint32_t v = atomic_load_explicit(&h->active_rq, memory_order_relaxed);
  while (v > 0 && !atomic_compare_exchange_weak_explicit(
                      &h->active_rq, &v, v - 1, memory_order_relaxed,
                      memory_order_relaxed))
    ;
}
