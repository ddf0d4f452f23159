/* SPDX-License-Identifier: Apache-2.0 */
/* Load balancing: the per-service "lb" config (policy, ring and maglev
 * sizes, locality weighting, fallback): checked at mesh_config_check() and
 * built into svc->lb at mesh_new(). */
#include "lb/lb.h"

#include <stdlib.h>
#include <string.h>

/* ---- config ------------------------------------------------------------------ */

static const char *const policies[] = {"round_robin", "random",
                                       "least_request", "peak_ewma",
                                       "ring_hash", "maglev", NULL};
static const char *const fallbacks[] = {"none", "any", NULL};

static bool is_prime(uint64_t n) {
  if (n < 2)
    return false;
  for (uint64_t d = 2; d * d <= n; d++)
    if (n % d == 0)
      return false;
  return true;
}

static void check_ring(mesh__cfg_t *c, const cJSON *lb, const char *path) {
  static const char *const keys[] = {"minimum_ring_size", "maximum_ring_size",
                                     NULL};
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(lb, "ring_hash");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "ring_hash");
  if (!v || !mesh__cfg_object(c, v, p, keys))
    return;
  int64_t lo, hi;
  bool a = mesh__cfg_int(c, v, p, "minimum_ring_size", 1, MESH__LB_RING_MAX,
                         MESH__LB_RING_MIN, &lo);
  bool b = mesh__cfg_int(c, v, p, "maximum_ring_size", 1, MESH__LB_RING_MAX,
                         MESH__LB_RING_MAX, &hi);
  if ((a || b) && lo > hi)
    mesh__cfg_error(c, p, "minimum_ring_size (%lld) > maximum_ring_size (%lld)",
                    (long long)lo, (long long)hi);
}

static void check_maglev(mesh__cfg_t *c, const cJSON *lb, const char *path) {
  static const char *const keys[] = {"table_size", NULL};
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(lb, "maglev");
  char p[MESH__PATH_MAX], q[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "maglev");
  if (!v || !mesh__cfg_object(c, v, p, keys))
    return;
  int64_t size;
  if (mesh__cfg_int(c, v, p, "table_size", 2, MESH__LB_MAGLEV_MAX,
                    MESH__LB_MAGLEV_SIZE, &size) &&
      !is_prime((uint64_t)size)) {
    mesh__cfg_path(q, p, "table_size");
    mesh__cfg_error(c, q, "%lld is not a prime number", (long long)size);
  }
}

static void check_zone(mesh__cfg_t *c, const cJSON *lb, const char *path) {
  static const char *const keys[] = {"enabled", "min_cluster_size", NULL};
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(lb, "zone_aware");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "zone_aware");
  if (!v || !mesh__cfg_object(c, v, p, keys))
    return;
  bool b;
  int64_t n;
  mesh__cfg_bool(c, v, p, "enabled", true, &b);
  mesh__cfg_int(c, v, p, "min_cluster_size", 0, 1000000,
                MESH__LB_ZONE_MIN_CLUSTER, &n);
}

static void lb_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {
      "policy", "choice_count", "ring_hash", "maglev", "locality_weighted",
      "locality_weights", "zone_aware", "overprovisioning_factor",
      "panic_threshold", "subset_fallback", NULL};
  if (!v || !mesh__cfg_object(c, v, path, keys))
    return;
  int e;
  int64_t n;
  bool b;
  mesh__cfg_enum(c, v, path, "policy", policies, MESH__LB_ROUND_ROBIN, &e);
  mesh__cfg_int(c, v, path, "choice_count", 2, 64, MESH__LB_CHOICE_COUNT, &n);
  check_ring(c, v, path);
  check_maglev(c, v, path);
  mesh__cfg_bool(c, v, path, "locality_weighted", false, &b);
  const cJSON *lw = cJSON_GetObjectItemCaseSensitive(v, "locality_weights");
  if (lw) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "locality_weights");
    mesh__locality_weights_check(c, lw, p);
  }
  check_zone(c, v, path);
  mesh__cfg_int(c, v, path, "overprovisioning_factor", 1, 100000,
                MESH__LB_OVERPROVISIONING, &n);
  mesh__cfg_int(c, v, path, "panic_threshold", 0, 100, MESH__LB_PANIC, &n);
  mesh__cfg_enum(c, v, path, "subset_fallback", fallbacks,
                 MESH__LB_FALLBACK_NONE, &e);
}

void mesh__lb_conf_default(mesh__lb_conf_t *conf) {
  memset(conf, 0, sizeof *conf);
  conf->policy = MESH__LB_ROUND_ROBIN;
  conf->choice_count = MESH__LB_CHOICE_COUNT;
  conf->ring_min = MESH__LB_RING_MIN;
  conf->ring_max = MESH__LB_RING_MAX;
  conf->maglev_size = MESH__LB_MAGLEV_SIZE;
  conf->zone_aware = true;
  conf->zone_min_cluster = MESH__LB_ZONE_MIN_CLUSTER;
  conf->overprovisioning = MESH__LB_OVERPROVISIONING;
  conf->panic = MESH__LB_PANIC;
  conf->fallback = MESH__LB_FALLBACK_NONE;
}

void mesh__lb_conf_free(mesh__lb_conf_t *conf) {
  if (!conf)
    return;
  free(conf->local_region);
  free(conf->local_zone);
  free(conf->local_subzone);
  for (size_t i = 0; i < conf->nlocw; i++) {
    free(conf->locw[i].region);
    free(conf->locw[i].zone);
    free(conf->locw[i].subzone);
  }
  free(conf->locw);
  for (size_t i = 0; i < conf->nsubsets; i++) {
    mesh__lb_subset_t *s = &conf->subsets[i];
    for (size_t j = 0; j < s->nlabels; j++) {
      free(s->keys[j]);
      free(s->values[j]);
    }
    free(s->keys);
    free(s->values);
    free(s->name);
  }
  free(conf->subsets);
  free(conf->splits);
  memset(conf, 0, sizeof *conf);
}

/* Values were validated by check(); a silent default covers the rest. */
static void parse_lb(mesh__lb_conf_t *conf, const cJSON *v) {
  mesh__cfg_t c = {0};
  int e;
  int64_t n;
  if (mesh__cfg_enum(&c, v, "lb", "policy", policies, MESH__LB_ROUND_ROBIN, &e))
    conf->policy = e;
  if (mesh__cfg_int(&c, v, "lb", "choice_count", 2, 64, 2, &n))
    conf->choice_count = (uint32_t)n;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "ring_hash");
  if (mesh__cfg_int(&c, r, "", "minimum_ring_size", 1, MESH__LB_RING_MAX,
                    MESH__LB_RING_MIN, &n))
    conf->ring_min = (uint64_t)n;
  if (mesh__cfg_int(&c, r, "", "maximum_ring_size", 1, MESH__LB_RING_MAX,
                    MESH__LB_RING_MAX, &n))
    conf->ring_max = (uint64_t)n;
  const cJSON *mg = cJSON_GetObjectItemCaseSensitive(v, "maglev");
  if (mesh__cfg_int(&c, mg, "", "table_size", 2, MESH__LB_MAGLEV_MAX,
                    MESH__LB_MAGLEV_SIZE, &n) &&
      is_prime((uint64_t)n))
    conf->maglev_size = (uint32_t)n;
  mesh__cfg_bool(&c, v, "", "locality_weighted", false,
                 &conf->locality_weighted);
  const cJSON *z = cJSON_GetObjectItemCaseSensitive(v, "zone_aware");
  mesh__cfg_bool(&c, z, "", "enabled", true, &conf->zone_aware);
  if (mesh__cfg_int(&c, z, "", "min_cluster_size", 0, 1000000,
                    MESH__LB_ZONE_MIN_CLUSTER, &n))
    conf->zone_min_cluster = (uint32_t)n;
  if (mesh__cfg_int(&c, v, "", "overprovisioning_factor", 1, 100000,
                    MESH__LB_OVERPROVISIONING, &n))
    conf->overprovisioning = (uint32_t)n;
  if (mesh__cfg_int(&c, v, "", "panic_threshold", 0, 100, MESH__LB_PANIC, &n))
    conf->panic = (uint32_t)n;
  if (mesh__cfg_enum(&c, v, "", "subset_fallback", fallbacks,
                     MESH__LB_FALLBACK_NONE, &e))
    conf->fallback = e;
}

static int parse_local(mesh__lb_conf_t *conf, const cJSON *loc) {
  const char *names[] = {"region", "zone", "subzone"};
  char **dst[] = {&conf->local_region, &conf->local_zone,
                  &conf->local_subzone};
  for (int i = 0; i < 3; i++) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(loc, names[i]);
    if (!cJSON_IsString(s) || !s->valuestring[0])
      continue;
    *dst[i] = strdup(s->valuestring);
    if (!*dst[i])
      return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

int mesh__lb_conf_parse(mesh__lb_conf_t *conf, const cJSON *svc_cfg,
                        const cJSON *locality, mesh_status_t *st) {
  mesh__lb_conf_default(conf);
  const cJSON *lb = cJSON_GetObjectItemCaseSensitive(svc_cfg, "lb");
  if (cJSON_IsObject(lb))
    parse_lb(conf, lb);
  int rc = parse_local(conf, locality);
  if (rc == MESH_OK && cJSON_IsObject(lb))
    rc = mesh__locality_weights_parse(
        conf, cJSON_GetObjectItemCaseSensitive(lb, "locality_weights"));
  if (rc == MESH_OK)
    rc = mesh__subsets_parse(conf, svc_cfg, st);
  if (rc == MESH_ERR_NOMEM)
    mesh__fail(st, rc, "out of memory");
  if (rc != MESH_OK)
    mesh__lb_conf_free(conf);
  return rc;
}

static int lb_init(mesh_t *m, mesh__service_t *svc, const cJSON *v,
                   mesh_status_t *st) {
  (void)v;
  struct mesh__lb_svc *lb = calloc(1, sizeof *lb);
  if (!lb)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  const cJSON *loc =
      m ? cJSON_GetObjectItemCaseSensitive(m->config, "locality") : NULL;
  int rc = mesh__lb_conf_parse(&lb->conf, svc->cfg, loc, st);
  if (rc == MESH_ERR_CONFIG) {
    /* Unreachable once check() passed (it sees the sibling "subsets" key
     * through c->svc); kept so that a gap shows its path. */
    char msg[sizeof st->message];
    mesh__strlcpy(msg, st ? st->message : "", sizeof msg);
    mesh__fail(st, rc, "services.%s.%s", svc->name, msg);
  }
  if (rc != MESH_OK) {
    free(lb);
    return rc;
  }
  pthread_mutex_init(&lb->mu, NULL);
  svc->lb = lb;
  svc->prepare_snapshot = mesh__lb_prepare;
  return MESH_OK;
}

/* "subset_lb" (see mesh__lb_reconfigure): each named subset's own policy.
 * Checked with the "lb" checker; an unknown subset name is an error. */
static int subset_lb(mesh__cfg_t *c, mesh__lb_conf_t *conf, const cJSON *v) {
  const cJSON *e;
  cJSON_ArrayForEach(e, v) {
    char path[160];
    snprintf(path, sizeof path, "subset_lb.%.100s", e->string);
    lb_check(c, e, path);
    size_t i = 0;
    while (i < conf->nsubsets &&
           !(conf->subsets[i].name && strcmp(conf->subsets[i].name, e->string) == 0))
      i++;
    if (i == conf->nsubsets)
      mesh__cfg_error(c, path, "no such subset");
    if (c->nerr > 0)
      return MESH_ERR_CONFIG;
    mesh__lb_conf_t own;
    mesh__lb_conf_default(&own);
    parse_lb(&own, e);
    mesh__lb_subset_t *s = &conf->subsets[i];
    s->own = true;
    s->policy = own.policy;
    s->choice_count = own.choice_count;
    s->ring_min = own.ring_min;
    s->ring_max = own.ring_max;
    s->maglev_size = own.maglev_size;
  }
  return MESH_OK;
}

int mesh__lb_reconfigure(mesh_t *m, mesh__service_t *svc,
                         const cJSON *svc_cfg, mesh_status_t *st) {
  if (!svc || !svc->lb)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "no lb state");
  mesh__cfg_t c = {.first = st, .svc = svc_cfg, .svc_name = svc->name};
  static const mesh__svc_part_t *const parts[] = {
      &mesh__lb_svc_part, &mesh__subsets_svc_part, &mesh__split_svc_part};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(svc_cfg, parts[i]->key);
    if (v)
      parts[i]->check(&c, v, parts[i]->key);
  }
  if (c.nerr > 0)
    return MESH_ERR_CONFIG;
  const cJSON *loc =
      m ? cJSON_GetObjectItemCaseSensitive(m->config, "locality") : NULL;
  mesh__lb_conf_t conf;
  int rc = mesh__lb_conf_parse(&conf, svc_cfg, loc, st);
  if (rc != MESH_OK)
    return rc;
  const cJSON *own = cJSON_GetObjectItemCaseSensitive(svc_cfg, "subset_lb");
  if (own && subset_lb(&c, &conf, own) != MESH_OK) {
    mesh__lb_conf_free(&conf);
    return MESH_ERR_CONFIG;
  }
  pthread_mutex_lock(&svc->lb->mu);
  mesh__lb_conf_t old = svc->lb->conf;
  svc->lb->conf = conf;
  pthread_mutex_unlock(&svc->lb->mu);
  mesh__lb_conf_free(&old);
  return MESH_OK;
}

static void lb_fini(mesh_t *m, mesh__service_t *svc) {
  (void)m;
  if (!svc->lb)
    return;
  mesh__lb_conf_free(&svc->lb->conf);
  pthread_mutex_destroy(&svc->lb->mu);
  free(svc->lb);
  svc->lb = NULL;
  svc->prepare_snapshot = NULL;
}

const mesh__svc_part_t mesh__lb_svc_part = {
    .key = "lb", .check = lb_check, .init = lb_init, .fini = lb_fini};
