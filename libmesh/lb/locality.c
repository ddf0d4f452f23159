/* SPDX-License-Identifier: Apache-2.0 */
/* Localities: locality-weighted picking and zone-aware routing.
 *
 * A locality is a (region, zone, subzone) triple, as in Envoy.  Inside a
 * priority level that is not in panic:
 *  - locality_weighted: choose a locality in proportion to its effective
 *    weight = locality weight * min(100%, overprovisioning * healthy share)
 *    (Envoy's effectiveLocalityWeight), then a host inside it.  Locality
 *    weights come from lb.locality_weights; without that map a locality
 *    weighs the sum of its host weights.
 *  - zone-aware (the caller's "locality" is set, lb.zone_aware.enabled):
 *    Envoy compares the share of callers in each zone (from the local
 *    cluster) with the share of upstream hosts.  A proxyless client does
 *    not know the other callers, so libmesh assumes callers are spread like
 *    the upstream hosts — Envoy's "LocalityDirect" case — and sends all
 *    traffic to the caller's zone while it is healthy enough, a fraction
 *    min(100%, overprovisioning * healthy share) of it when it degrades, and
 *    the rest to the other localities by effective weight.  Only in the
 *    first level, only with >= min_cluster_size usable hosts in it (Envoy's
 *    defaults: first priority, 6 hosts).
 * Hash policies ignore both at pick time (as Envoy's ring/maglev do); with
 * locality_weighted the locality weights scale the host weights of the
 * ring or table instead. */
#include "lb/lb.h"

#include <stdlib.h>
#include <string.h>

static const char *str(const char *s) { return s ? s : ""; }

/* ---- config ---------------------------------------------------------------- */

void mesh__locality_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"region", "zone", "subzone", NULL};
  if (!v || !mesh__cfg_object(c, v, path, keys))
    return;
  const char *s;
  for (int i = 0; keys[i]; i++)
    mesh__cfg_string(c, v, path, keys[i], NULL, &s);
}

static void locality_part_check(mesh__cfg_t *c, const cJSON *v,
                                const char *path) {
  mesh__locality_check(c, v, path);
}

const mesh__part_t mesh__locality_part = {
    .key = "locality", .check = locality_part_check};

/* "region/zone/subzone" with trailing parts optional. */
static int split_key(const char *key, char *parts[3]) {
  const char *p = key;
  for (int i = 0; i < 3; i++) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (parts) {
      parts[i] = strndup(p, len);
      if (!parts[i])
        return MESH_ERR_NOMEM;
    }
    if (!slash) {
      for (int j = i + 1; parts && j < 3; j++) {
        parts[j] = strdup("");
        if (!parts[j])
          return MESH_ERR_NOMEM;
      }
      return MESH_OK;
    }
    p = slash + 1;
  }
  return MESH_ERR_CONFIG; /* a fourth part */
}

void mesh__locality_weights_check(mesh__cfg_t *c, const cJSON *v,
                                  const char *path) {
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, path,
                    "expected an object of \"region/zone/subzone\": weight");
    return;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, it->string);
    if (split_key(it->string, NULL) != MESH_OK)
      mesh__cfg_error(c, p, "expected \"region\", \"region/zone\" or "
                            "\"region/zone/subzone\"");
    /* range first: casting an out-of-range double is undefined */
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) ||
        it->valuedouble > 1000000 ||
        it->valuedouble != (double)(int64_t)it->valuedouble)
      mesh__cfg_error(c, p, "expected an integer weight in [0, 1000000]");
  }
}

int mesh__locality_weights_parse(mesh__lb_conf_t *conf, const cJSON *v) {
  if (!cJSON_IsObject(v))
    return MESH_OK;
  size_t n = (size_t)cJSON_GetArraySize(v);
  conf->locw = calloc(n ? n : 1, sizeof *conf->locw);
  if (!conf->locw)
    return MESH_ERR_NOMEM;
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    mesh__lb_locw_t *w = &conf->locw[conf->nlocw++];
    char *parts[3] = {0};
    int rc = split_key(it->string, parts);
    w->region = parts[0];
    w->zone = parts[1];
    w->subzone = parts[2];
    if (rc != MESH_OK)
      return rc;
    w->weight = (uint32_t)it->valuedouble;
  }
  return MESH_OK;
}

/* ---- grouping ---------------------------------------------------------------- */

static int cmp_loc(const mesh__host_t *a, const mesh__host_t *b) {
  int c = strcmp(str(a->region), str(b->region));
  if (!c)
    c = strcmp(str(a->zone), str(b->zone));
  if (!c)
    c = strcmp(str(a->subzone), str(b->subzone));
  return c;
}

typedef struct hidx {
  mesh__host_t *h;
  uint32_t i;
} hidx_t;

static int cmp_hidx(const void *a, const void *b) {
  const hidx_t *x = a, *y = b;
  int c = cmp_loc(x->h, y->h);
  if (c)
    return c;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Hosts sorted by locality (level order inside one), as a new array. */
static mesh__host_t **by_locality(mesh__host_t **hosts, uint32_t n,
                                  uint32_t *ngroups) {
  hidx_t *k = malloc(sizeof *k * (n ? n : 1));
  mesh__host_t **out = malloc(sizeof *out * (n ? n : 1));
  if (!k || !out) {
    free(k);
    free(out);
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++)
    k[i] = (hidx_t){hosts[i], i};
  qsort(k, n, sizeof *k, cmp_hidx);
  *ngroups = n ? 1 : 0;
  for (uint32_t i = 0; i < n; i++) {
    out[i] = k[i].h;
    if (i && cmp_loc(out[i], out[i - 1]) != 0)
      (*ngroups)++;
  }
  free(k);
  return out;
}

static uint64_t loc_weight(const mesh__lb_conf_t *conf, const mesh__host_t *h,
                           uint64_t host_sum) {
  if (conf->nlocw == 0)
    return host_sum;
  for (size_t i = 0; i < conf->nlocw; i++) {
    const mesh__lb_locw_t *w = &conf->locw[i];
    if (!strcmp(w->region, str(h->region)) && !strcmp(w->zone, str(h->zone)) &&
        !strcmp(w->subzone, str(h->subzone)))
      return w->weight;
  }
  return 0; /* Envoy: a locality without weight takes no traffic */
}

static bool is_local(const mesh__lb_conf_t *conf, const mesh__host_t *h) {
  if (conf->local_region && strcmp(conf->local_region, str(h->region)))
    return false;
  if (conf->local_zone && strcmp(conf->local_zone, str(h->zone)))
    return false;
  if (conf->local_subzone && strcmp(conf->local_subzone, str(h->subzone)))
    return false;
  return conf->local_region || conf->local_zone || conf->local_subzone;
}

static int build_local(const mesh__lb_conf_t *conf, mesh__lb_level_t *lv) {
  mesh__host_t **v = malloc(sizeof *v * (lv->pool.n ? lv->pool.n : 1));
  if (!v)
    return MESH_ERR_NOMEM;
  uint32_t k = 0;
  for (uint32_t i = 0; i < lv->pool.n; i++)
    if (is_local(conf, lv->pool.hosts[i]))
      v[k++] = lv->pool.hosts[i];
  int rc = mesh__lb_pool_init(&lv->local, conf, v, NULL, k);
  free(v);
  return rc;
}

int mesh__lb_level_localities(const mesh__lb_conf_t *conf, mesh__lb_level_t *lv,
                              bool zone) {
  uint32_t g = 0, n = lv->pool.n;
  mesh__host_t **sorted = by_locality(lv->pool.hosts, n, &g);
  if (!sorted)
    return MESH_ERR_NOMEM;
  lv->loc = calloc(g ? g : 1, sizeof *lv->loc);
  int rc = lv->loc ? MESH_OK : MESH_ERR_NOMEM;
  for (uint32_t i = 0, start = 0; rc == MESH_OK && i < n; i++) {
    if (i + 1 < n && cmp_loc(sorted[i + 1], sorted[start]) == 0)
      continue;
    mesh__lb_locality_t *loc = &lv->loc[lv->nloc++];
    rc = mesh__lb_pool_init(&loc->pool, conf, sorted + start, NULL,
                            i + 1 - start);
    loc->region = str(sorted[start]->region);
    loc->zone = str(sorted[start]->zone);
    loc->subzone = str(sorted[start]->subzone);
    loc->weight = loc_weight(conf, sorted[start], loc->pool.total);
    loc->local = zone && is_local(conf, sorted[start]);
    start = i + 1;
  }
  free(sorted);
  if (rc == MESH_OK && zone)
    rc = build_local(conf, lv);
  return rc;
}

int mesh__lb_locality_norm(const mesh__lb_conf_t *conf, mesh__host_t **hosts,
                           uint32_t n, double *norm) {
  hidx_t *k = malloc(sizeof *k * (n ? n : 1));
  if (!k)
    return MESH_ERR_NOMEM;
  for (uint32_t i = 0; i < n; i++)
    k[i] = (hidx_t){hosts[i], i};
  qsort(k, n, sizeof *k, cmp_hidx);
  /* First pass: sum of locality weights; second: each host's share. */
  double lsum = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t start = 0, end; start < n; start = end) {
      double hsum = 0;
      for (end = start; end < n && cmp_loc(k[end].h, k[start].h) == 0; end++)
        hsum += k[end].h->weight ? k[end].h->weight : 1;
      double lw = (double)loc_weight(conf, k[start].h, (uint64_t)hsum);
      if (pass == 0) {
        lsum += lw;
        continue;
      }
      for (uint32_t i = start; i < end; i++) {
        double w = k[i].h->weight ? k[i].h->weight : 1;
        norm[k[i].i] = lsum > 0 ? w * (lw / lsum) / hsum : 0.0;
      }
    }
  }
  free(k);
  return MESH_OK;
}

/* ---- the health view and the pick ------------------------------------------ */

static uint32_t count_usable(const mesh__lb_pool_t *p, int64_t now_ms) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < p->n; i++)
    k += mesh__host_usable(p->hosts[i], now_ms);
  return k;
}

static bool zone_mode(const mesh__lb_state_t *st, const mesh__lb_level_t *lv) {
  return st->zone_aware && !st->locality_weighted && lv->local.n > 0;
}

void mesh__lb_view_localities(const mesh__lb_state_t *st,
                              const mesh__lb_level_t *lv, _Atomic uint64_t *v,
                              bool first, bool panic, uint32_t healthy,
                              int64_t now_ms) {
  bool zone = first && zone_mode(st, lv);
  uint64_t cum = 0;
  for (uint32_t j = 0; j < lv->nloc; j++) {
    const mesh__lb_locality_t *loc = &lv->loc[j];
    uint64_t avail = (uint64_t)st->overprovisioning *
                     count_usable(&loc->pool, now_ms) / loc->pool.n;
    if (avail > 100)
      avail = 100;
    if (!(zone && loc->local))
      cum += loc->weight * avail;
    atomic_store_explicit(&v[MESH__LB_LEVEL_SLOTS + j], cum,
                          memory_order_relaxed);
  }
  uint64_t share = MESH__LB_NO_ZONE;
  if (zone && !panic && healthy >= st->zone_min_cluster) {
    share = (uint64_t)st->overprovisioning * 100 *
            count_usable(&lv->local, now_ms) / lv->local.n;
    if (share > 10000)
      share = 10000;
  }
  atomic_store_explicit(&v[MESH__LB_SLOT_SHARE], share, memory_order_relaxed);
}

static const mesh__lb_pool_t *by_weight(const mesh__lb_set_t *s, uint32_t buf,
                                        const mesh__lb_level_t *lv) {
  uint32_t base = lv->slot + MESH__LB_LEVEL_SLOTS;
  uint64_t total = mesh__lb_slot(s, buf, base + lv->nloc - 1);
  if (total == 0)
    return NULL;
  uint64_t x = mesh__lb_rand() % total;
  uint32_t lo = 0, hi = lv->nloc - 1;
  while (lo < hi) { /* first locality whose cumulative weight exceeds x */
    uint32_t mid = lo + (hi - lo) / 2;
    if (mesh__lb_slot(s, buf, base + mid) > x)
      hi = mid;
    else
      lo = mid + 1;
  }
  return &lv->loc[lo].pool;
}

const mesh__lb_pool_t *mesh__lb_choose_locality(const mesh__lb_state_t *st,
                                                const mesh__lb_set_t *s,
                                                uint32_t buf,
                                                const mesh__lb_level_t *lv) {
  if (lv->nloc == 0)
    return NULL;
  if (st->locality_weighted)
    return by_weight(s, buf, lv);
  uint64_t share = mesh__lb_slot(s, buf, lv->slot + MESH__LB_SLOT_SHARE);
  if (share == MESH__LB_NO_ZONE)
    return NULL;
  if (mesh__lb_rand() % 10000 < share)
    return &lv->local;
  return by_weight(s, buf, lv);
}
